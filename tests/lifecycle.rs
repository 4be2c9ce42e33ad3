//! Between boot and delete: a rebuild or an evacuation wipes the guest,
//! which runs cloud-init again. The real server and listener share a Redis
//! answer cache (as replicas do); nova's rebuild notifications are
//! published with the real oslo.messaging Notifier, field for field as nova
//! sends them, and the IPA double's state is checked.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::ipa::IpaDouble;
use support::notify::{
    join_conf, legacy_instance_of, publish, versioned_instance_of, wait_queue_settled,
    NotifyProcess,
};
use support::rabbit::{OsloMessage, RabbitNames};
use support::redis::RedisNamespace;
use support::vendordata::{new_instance_id, nova_body_with, ServiceEnv};
use support::wait_until;

const PROJECT: &str = "d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4";
const SECRET: &str = "lifecycle-secret-0123456789abcdef0123456789";

fn cache_section(ns: &RedisNamespace) -> String {
    format!(
        "[cache]\nbackend = redis\nttl = 600\nredis_url = {}\nsecret_key = {SECRET}\nkey_prefix = {}\n",
        ns.url, ns.prefix
    )
}

fn fqdn(ipa: &IpaDouble, short: &str) -> String {
    format!("{short}.{}", ipa.domain())
}

async fn ask(env: &ServiceEnv, instance: &str, hostname: &str) -> (u16, Value) {
    env.post_json(&nova_body_with(
        hostname,
        instance,
        None,
        Some(PROJECT),
        json!({"ipa_enroll": "True"}),
    ))
    .await
}

/// nova's rebuild of `instance` in `format` (`evacuate` for the versioned
/// `instance.evacuate`).
fn rebuild(format: &str, instance: &str, hostname: &str) -> OsloMessage {
    let md = json!({"ipa_enroll": "True"});
    match format {
        "unversioned" => OsloMessage::info(
            "compute.cmp-1",
            "compute.instance.rebuild.start",
            legacy_instance_of(
                "compute.instance.rebuild.start",
                instance,
                hostname,
                PROJECT,
                md,
            ),
        ),
        "versioned" => OsloMessage::info(
            "nova-compute:cmp-1",
            "instance.rebuild.start",
            versioned_instance_of(
                "instance.rebuild.start",
                "1.8",
                instance,
                hostname,
                PROJECT,
                md,
            ),
        ),
        _ => OsloMessage::info(
            "nova-compute:cmp-2",
            "instance.evacuate",
            versioned_instance_of("instance.evacuate", "1.9", instance, hostname, PROJECT, md),
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_instance_enrolls_again_with_a_fresh_otp() {
    let ns = RedisNamespace::new("rebuild");
    let env = ServiceEnv::builder()
        .sections(&cache_section(&ns))
        .start()
        .await;
    let ipa = &env.ipa;
    for (format, short) in [
        ("unversioned", "rb1"),
        ("versioned", "rb2"),
        ("evacuate", "rb3"),
    ] {
        let id = new_instance_id();
        let host = fqdn(ipa, short);
        let (status, first) = ask(&env, &id, short).await;
        assert_eq!(status, 200, "{first}");
        let old_otp = first["ipaotp"].as_str().unwrap().to_string();
        ipa.ipa_join(&host, &old_otp).unwrap();
        assert!(ipa.retrieve_keytab(&host, &format!("host/{host}")).is_ok());
        // Until the rebuild, nova gets the cached answer.
        assert_eq!(ask(&env, &id, short).await.1, first);

        let names = RabbitNames::new("rebuild");
        let listener_format = if format == "unversioned" {
            "unversioned"
        } else {
            "versioned"
        };
        let _listener = NotifyProcess::start(&join_conf(
            ipa,
            &names,
            listener_format,
            &cache_section(&ns),
        ))
        .await;
        publish(
            &names,
            &names.nova_exchange,
            "",
            vec![rebuild(format, &id, short)],
        )
        .await;
        wait_until("the enrollment revoked", Duration::from_secs(30), || {
            !ipa.host(&host).unwrap().enrolled
        })
        .await;
        wait_queue_settled(&names, Duration::from_secs(30)).await;
        assert!(
            ipa.retrieve_keytab(&host, &format!("host/{host}")).is_err(),
            "{format}: the old keytab is revoked"
        );

        // The rebuilt guest asks again: a new OTP, which IPA holds.
        let (status, second) = ask(&env, &id, short).await;
        assert_eq!(status, 200, "{format}: {second}");
        let new_otp = second["ipaotp"].as_str().expect("a fresh OTP");
        assert_ne!(new_otp, old_otp, "{format}");
        assert_eq!(ipa.host(&host).unwrap().otp.as_deref(), Some(new_otp));
        ipa.ipa_join(&host, new_otp)
            .unwrap_or_else(|e| panic!("{format}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_changes_nothing_for_hosts_that_are_not_enrolled_or_not_the_instances() {
    let ns = RedisNamespace::new("rebuild-none");
    let env = ServiceEnv::builder()
        .sections(&cache_section(&ns))
        .start()
        .await;
    let ipa = &env.ipa;
    // Enrolled through vendordata but the guest never ran ipa-client-install.
    let waiting = new_instance_id();
    let (status, body) = ask(&env, &waiting, "waiting").await;
    assert_eq!(status, 200, "{body}");
    // Enrolled, but the rebuild is another instance's of the same name.
    let owner = new_instance_id();
    let (_, owned) = ask(&env, &owner, "owned").await;
    ipa.ipa_join(&fqdn(ipa, "owned"), owned["ipaotp"].as_str().unwrap())
        .unwrap();
    // An infrastructure host of the name.
    ipa.seed_host_with(&fqdn(ipa, "infra"), None, None, true, None);

    let names = RabbitNames::new("rebuild-none");
    let _listener =
        NotifyProcess::start(&join_conf(ipa, &names, "versioned", &cache_section(&ns))).await;
    // The listener's OTP sweep counts the enrollment of "owned" at start
    // (the issue time leaves its binding); the rebuilds come after.
    wait_until("the enrollment counted", Duration::from_secs(30), || {
        ipa.host(&fqdn(ipa, "owned"))
            .and_then(|h| h.platform)
            .is_some_and(|p| !p.contains("otp-issued="))
    })
    .await;
    let before = ipa.hosts();
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![
            rebuild("versioned", &waiting, "waiting"),
            rebuild("versioned", &new_instance_id(), "owned"),
            rebuild("evacuate", &new_instance_id(), "infra"),
        ],
    )
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    assert_eq!(ipa.hosts(), before, "no host changed");
    assert_eq!(
        ipa.host(&fqdn(ipa, "waiting")).unwrap().otp.as_deref(),
        body["ipaotp"].as_str(),
        "the waiting guest's OTP still stands"
    );
}
