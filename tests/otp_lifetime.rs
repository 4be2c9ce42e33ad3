//! The lifetime of enrollment OTPs (`[DEFAULT] otp_lifetime`): the real
//! server and listener against the IPA double, with lifetimes of a few
//! seconds. The issue time lives in the host's binding in IPA; the
//! listener's sweep replaces unused OTPs and counts used ones; the answer
//! cache (memory and Redis) never serves an expired OTP.

mod support;

use std::time::{Duration, SystemTime};

use novajoin::ipa::HostEntry;
use novajoin::otp_lifetime::{settle, OtpState};
use novajoin::ownership::HostBinding;
use serde_json::{json, Value};
use support::ipa::IpaDouble;
use support::notify::{join_conf, nova_delete, publish, wait_queue_settled, NotifyProcess};
use support::rabbit::RabbitNames;
use support::redis::RedisNamespace;
use support::vendordata::{new_instance_id, nova_body_with, ServiceEnv};
use support::wait_until;

const PROJECT: &str = "e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5";
const OTHER_PROJECT: &str = "f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6";

fn fqdn(ipa: &IpaDouble, short: &str) -> String {
    format!("{short}.{}", ipa.domain())
}

async fn ask_as(
    env: &ServiceEnv,
    instance: &str,
    hostname: &str,
    project: &str,
    metadata: Value,
) -> Value {
    let mut md = json!({"ipa_enroll": "True"});
    md.as_object_mut()
        .unwrap()
        .extend(metadata.as_object().unwrap().clone());
    let (status, body) = env
        .post_json(&nova_body_with(hostname, instance, None, Some(project), md))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn ask(env: &ServiceEnv, instance: &str, hostname: &str) -> String {
    ask_as(env, instance, hostname, PROJECT, json!({})).await["ipaotp"]
        .as_str()
        .expect("an OTP")
        .to_string()
}

fn binding_of(ipa: &IpaDouble, host: &str) -> HostBinding {
    let platform = ipa.host(host).unwrap().platform.expect("a binding");
    HostBinding::parse(&platform).expect("a novajoin binding")
}

/// The listener with `otp_lifetime` and its metrics endpoint.
async fn listener(ipa: &IpaDouble, lifetime: u64, metrics_port: u16) -> NotifyProcess {
    let names = RabbitNames::new("otp");
    let conf = join_conf(
        ipa,
        &names,
        "unversioned",
        &format!("[metrics]\nnotify_listen = 127.0.0.1:{metrics_port}\n"),
    )
    .replacen(
        "[DEFAULT]\n",
        &format!("[DEFAULT]\notp_lifetime = {lifetime}\n"),
        1,
    );
    NotifyProcess::start(&conf).await
}

async fn metric(port: u16, series: &str) -> f64 {
    let text = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    support::prometheus_sample(&text, series).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_otp_is_replaced_in_ipa_and_the_next_request_gets_a_new_one() {
    let env = ServiceEnv::builder()
        .default_lines("otp_lifetime = 3")
        .sections("[cache]\nttl = 600\n")
        .start()
        .await;
    let ipa = &env.ipa;
    let host = fqdn(ipa, "exp1");
    let id = new_instance_id();
    let first = ask(&env, &id, "exp1").await;
    let issued = binding_of(ipa, &host).otp_issued.expect("the issue time");
    let now = novajoin::otp_lifetime::unix_seconds(SystemTime::now());
    assert!(issued <= now && now - issued <= 5, "{issued} vs {now}");
    assert_eq!(ask(&env, &id, "exp1").await, first, "within its lifetime");

    let port = support::server::free_port();
    let _listener = listener(ipa, 3, port).await;
    wait_until(
        "the unused OTP replaced in IPA",
        Duration::from_secs(20),
        || ipa.host(&host).unwrap().otp.as_deref() != Some(first.as_str()),
    )
    .await;
    let h = ipa.host(&host).unwrap();
    assert!(h.has_password && !h.enrolled, "a random OTP, not enrolled");
    assert_eq!(
        binding_of(ipa, &host),
        binding_of(ipa, &host).instance_host()
    );
    assert!(ipa.ipa_join(&host, &first).is_err(), "the old OTP is dead");
    assert_eq!(metric(port, "novajoin_otp_expired_total").await, 1.0);

    // The guest asks again: a new OTP, which IPA holds, with a new issue time.
    let second = ask(&env, &id, "exp1").await;
    assert_ne!(second, first);
    assert_eq!(
        ipa.host(&host).unwrap().otp.as_deref(),
        Some(second.as_str())
    );
    assert!(binding_of(ipa, &host).otp_issued.is_some());
    ipa.ipa_join(&host, &second).expect("the new OTP enrolls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_cache_never_serves_an_expired_otp() {
    let ns = RedisNamespace::new("otp-exp");
    let redis = format!(
        "[cache]\nbackend = redis\nttl = 600\nredis_url = {}\nsecret_key = otp-lifetime-secret-0123456789abcdef0123\nkey_prefix = {}\n",
        ns.url, ns.prefix
    );
    for (backend, sections) in [
        ("memory", "[cache]\nttl = 600\n".to_string()),
        ("redis", redis),
    ] {
        let env = ServiceEnv::builder()
            .default_lines("otp_lifetime = 2")
            .sections(&sections)
            .start()
            .await;
        let ipa = &env.ipa;
        let id = new_instance_id();
        let first = ask(&env, &id, "cache1").await;
        assert_eq!(ask(&env, &id, "cache1").await, first, "{backend}: cached");
        tokio::time::sleep(Duration::from_millis(2200)).await;
        // No listener runs: IPA still holds the old OTP, but it has expired,
        // so the cache does not hand it out again.
        let second = ask(&env, &id, "cache1").await;
        assert_ne!(second, first, "{backend}: an expired OTP was served");
        assert_eq!(
            ipa.host(&fqdn(ipa, "cache1")).unwrap().otp.as_deref(),
            Some(second.as_str()),
            "{backend}"
        );
        assert_eq!(
            ask(&env, &id, "cache1").await,
            second,
            "{backend}: cached again"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_otp_is_counted_with_the_time_to_enrollment() {
    let env = ServiceEnv::builder()
        .default_lines("otp_lifetime = 8")
        .start()
        .await;
    let ipa = &env.ipa;
    let host = fqdn(ipa, "used1");
    let otp = ask(&env, &new_instance_id(), "used1").await;
    ipa.ipa_join(&host, &otp).expect("enrolls");

    let port = support::server::free_port();
    let _listener = listener(ipa, 8, port).await;
    wait_until("the enrollment counted", Duration::from_secs(20), || {
        binding_of(ipa, &host).otp_issued.is_none()
    })
    .await;
    assert!(ipa.host(&host).unwrap().enrolled, "left enrolled");
    assert_eq!(metric(port, "novajoin_otp_used_total").await, 1.0);
    assert_eq!(
        metric(port, "novajoin_otp_enrollment_seconds_count").await,
        1.0
    );
    assert_eq!(
        metric(port, "novajoin_otp_enrollment_seconds_bucket{le=\"15\"}").await,
        1.0,
        "enrolled within seconds of the issue"
    );
    assert_eq!(metric(port, "novajoin_otp_expired_total").await, 0.0);
}

/// The sweep changes a host only if its binding is still the one it read:
/// an OTP issued since (by any replica) is never replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_never_replaces_an_otp_issued_after_it_read_the_host() {
    let env = ServiceEnv::builder()
        .default_lines("otp_lifetime = 1")
        .sections("[cache]\nttl = 0\n")
        .start()
        .await;
    let ipa = &env.ipa;
    let host = fqdn(ipa, "race1");
    let id = new_instance_id();
    ask(&env, &id, "race1").await;
    let client = support::ipa::client(ipa);
    let stale = HostEntry::from_entry(
        client
            .call(novajoin::ipa::IpaCommand::host_show(&host))
            .await
            .unwrap()
            .entry()
            .unwrap(),
    )
    .unwrap();
    let stale_binding = HostBinding::parse(stale.binding.as_deref().unwrap()).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = ask(&env, &id, "race1").await;

    let err = settle(&client, &stale, &stale_binding, &OtpState::Expired)
        .await
        .unwrap_err();
    assert!(
        matches!(err, novajoin::ipa::IpaError::AttrValueNotFound(_)),
        "{err:?}"
    );
    assert_eq!(
        ipa.host(&host).unwrap().otp.as_deref(),
        Some(fresh.as_str())
    );
    ipa.ipa_join(&host, &fresh)
        .expect("the fresh OTP still enrolls");
}

/// Hostile tenants: instance metadata goes into attributes IPA's free-text
/// search also reads (`ipa_host_location` → `nshostlocation`). A tenant
/// that writes another instance's binding there must neither make the
/// sweep touch that instance's OTP early nor be removed with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_binding_in_tenant_metadata_changes_nothing() {
    let env = ServiceEnv::builder()
        .default_lines("otp_lifetime = 20")
        .start()
        .await;
    let ipa = &env.ipa;
    let victim = new_instance_id();
    let victim_host = fqdn(ipa, "victim1");
    let victim_otp = ask(&env, &victim, "victim1").await;
    let forged = format!("novajoin/1 instance={victim} project={PROJECT} otp-issued=0");
    let attacker_host = fqdn(ipa, "attacker1");
    ask_as(
        &env,
        &new_instance_id(),
        "attacker1",
        OTHER_PROJECT,
        json!({"ipa_host_location": forged}),
    )
    .await;
    // A host an administrator made, with the same text and an OTP.
    ipa.seed_host_with(
        &fqdn(ipa, "admin1"),
        Some("db server"),
        None,
        false,
        Some("admin-otp"),
    );
    support::ipa::client(ipa)
        .call(
            novajoin::ipa::IpaCommand::host_update(&fqdn(ipa, "admin1"), None, None)
                .with_option("nshostlocation", json!(forged)),
        )
        .await
        .unwrap();

    let port = support::server::free_port();
    let _listener = listener(ipa, 20, port).await;
    // Two sweeps at least (every 5 s with this lifetime).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        ipa.host(&victim_host).unwrap().otp.as_deref(),
        Some(victim_otp.as_str()),
        "the victim's OTP is untouched"
    );
    assert_eq!(
        ipa.host(&fqdn(ipa, "admin1")).unwrap().otp.as_deref(),
        Some("admin-otp"),
        "a host without a binding is never swept"
    );
    assert_eq!(metric(port, "novajoin_otp_expired_total").await, 0.0);

    // The victim's delete removes the victim's host, not the one whose
    // location names it.
    let names = RabbitNames::new("otp-del");
    let _deleter = NotifyProcess::start(&join_conf(ipa, &names, "unversioned", "")).await;
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![nova_delete("unversioned", &victim, "victim1", PROJECT)],
    )
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    assert!(
        ipa.host(&victim_host).is_none(),
        "the victim's host is removed"
    );
    assert!(
        ipa.host(&attacker_host).is_some(),
        "the attacker's host stays"
    );
    assert!(ipa.host(&fqdn(ipa, "admin1")).is_some());
}
