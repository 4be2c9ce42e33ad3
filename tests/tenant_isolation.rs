//! The tenant is an attacker: instance names, metadata and image properties
//! are the tenant's to choose. Each test plays a hostile tenant against the
//! real `novajoin server` (behind the real keystone and the repository's
//! pipeline) and the real `novajoin notify` (through the real RabbitMQ and
//! oslo.messaging), and asserts on what the IPA double holds afterwards:
//! nothing the tenant's instance does not own changes.
//!
//! Floating-IP records are played the same way in tests/notify.rs.

mod support;

use std::time::Duration;

use novajoin::ownership::HostBinding;
use serde_json::{json, Value};
use support::ipa::IpaDouble;
use support::keystone::{Keystone, Provider};
use support::notify::{join_conf, nova_delete, publish, wait_queue_settled, NotifyProcess};
use support::nova_neutron::NovaNeutron;
use support::rabbit::{OsloMessage, RabbitNames};
use support::vendordata::{new_instance_id, nova_body_with, ServiceEnv};
use support::wait_until;

const PROJECT_A: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const PROJECT_B: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

/// The vendordata service with nova's double in keystone's catalog (for
/// the hosts of the Python novajoin, whose owner only nova can tell).
async fn service() -> (ServiceEnv, &'static NovaNeutron) {
    let keystone = tokio::task::spawn_blocking(|| Keystone::shared(Provider::Fernet))
        .await
        .unwrap();
    let nova = NovaNeutron::shared(keystone).await;
    (ServiceEnv::builder().start().await, nova)
}

/// nova asks for `instance` of `project`, named `hostname`.
async fn ask(
    env: &ServiceEnv,
    instance: &str,
    project: &str,
    hostname: &str,
    metadata: Value,
) -> (u16, Value) {
    env.post_json(&nova_body_with(
        hostname,
        instance,
        None,
        Some(project),
        metadata,
    ))
    .await
}

fn enroll() -> Value {
    json!({"ipa_enroll": "True"})
}

fn fqdn(ipa: &IpaDouble, short: &str) -> String {
    format!("{short}.{}", ipa.domain())
}

/// The owner a host's binding names (its OTP's issue time left out).
fn owner_of(platform: Option<&str>) -> Option<HostBinding> {
    platform
        .and_then(HostBinding::parse)
        .map(|b| b.instance_host())
}

fn binding(instance: &str, project: &str) -> Option<HostBinding> {
    HostBinding::for_instance(Some(instance), Some(project), None).ok()
}

/// A listener on the service's IPA double; `extra` goes into `[notify]`.
async fn listener(
    ipa: &IpaDouble,
    names: &RabbitNames,
    format: &str,
    extra: &str,
) -> NotifyProcess {
    NotifyProcess::start(&join_conf(ipa, names, format, extra)).await
}

/// Publishes nova's messages and waits until the listener has settled them.
async fn deliver(names: &RabbitNames, messages: Vec<OsloMessage>) {
    publish(names, &names.nova_exchange, "", messages).await;
    wait_queue_settled(names, Duration::from_secs(30)).await;
}

// ---------------------------------------------------------------------------
// "Name an instance like an existing infrastructure host and set ipa_enroll."

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_named_like_an_infrastructure_host_changes_nothing_in_ipa() {
    let (env, _) = service().await;
    let ipa = &env.ipa;
    // A pre-created host an administrator is about to enroll, and an
    // enrolled controller with a DNS name.
    let db1 = fqdn(ipa, "db1");
    let ctl = fqdn(ipa, "controller-0");
    ipa.seed_host_with(&db1, Some("database"), None, false, Some("admins-otp"));
    ipa.seed_host_with(&ctl, None, None, true, None);
    ipa.add_a_record(&format!("{}.", ipa.domain()), "controller-0", "192.0.2.10");
    let before = ipa.hosts();

    for name in ["db1", "controller-0"] {
        let (status, body) = ask(&env, &new_instance_id(), PROJECT_B, name, enroll()).await;
        assert_eq!(status, 409, "{name}: {body}");
        let message = body["conflictingRequest"]["message"].as_str().unwrap();
        assert!(message.contains(&fqdn(ipa, name)), "{message}");
        assert!(message.contains("not created by novajoin"), "{message}");
    }
    assert_eq!(ipa.hosts(), before, "no host changed");
    assert_eq!(
        ipa.host(&db1).unwrap().otp.as_deref(),
        Some("admins-otp"),
        "the administrator's OTP is still the only one"
    );

    // Deleting such an instance (whose payload says ipa_enroll) removes
    // nothing, in either notification format.
    for format in ["unversioned", "versioned"] {
        let names = RabbitNames::new("infra");
        let _listener = listener(ipa, &names, format, "").await;
        deliver(
            &names,
            vec![
                nova_delete(format, &new_instance_id(), "db1", PROJECT_B),
                nova_delete(format, &new_instance_id(), "controller-0", PROJECT_B),
            ],
        )
        .await;
        assert_eq!(ipa.hosts(), before, "{format}: no host removed");
        let zone = ipa.dns_records(ipa.domain()).unwrap();
        assert_eq!(zone["controller-0"].a, ["192.0.2.10"], "{format}");
    }
}

// ---------------------------------------------------------------------------
// "Two projects, one instance name, no project_subdomain."

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_project_cannot_take_over_the_first_ones_host() {
    let (env, _) = service().await;
    let ipa = &env.ipa;
    let first = new_instance_id();
    let (status, body) = ask(&env, &first, PROJECT_A, "web", enroll()).await;
    assert_eq!(status, 200, "{body}");
    let otp = body["ipaotp"].as_str().unwrap().to_string();
    let host = ipa.host(&fqdn(ipa, "web")).unwrap();
    assert_eq!(
        owner_of(host.platform.as_deref()),
        binding(&first, PROJECT_A)
    );

    let (status, body) = ask(&env, &new_instance_id(), PROJECT_B, "web", enroll()).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["conflictingRequest"]["message"]
            .as_str()
            .unwrap()
            .contains("belongs to another instance"),
        "{body}"
    );
    let after = ipa.host(&fqdn(ipa, "web")).unwrap();
    assert_eq!(
        after.otp.as_deref(),
        Some(otp.as_str()),
        "the first instance's OTP stands"
    );
    assert_eq!(after.platform, host.platform, "the binding is unchanged");
    // The first instance's guest still enrolls with its OTP.
    ipa.ipa_join(&fqdn(ipa, "web"), &otp).unwrap();
}

// ---------------------------------------------------------------------------
// "Deleting a never-enrolled instance removes the enrolled host of another
// instance with the same name."

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_another_instance_of_the_same_name_leaves_the_host() {
    let (env, _) = service().await;
    let ipa = &env.ipa;
    let owner = new_instance_id();
    let (status, body) = ask(&env, &owner, PROJECT_A, "app", enroll()).await;
    assert_eq!(status, 200, "{body}");
    ipa.ipa_join(&fqdn(ipa, "app"), body["ipaotp"].as_str().unwrap())
        .unwrap();
    ipa.add_a_record(&format!("{}.", ipa.domain()), "app", "192.0.2.20");

    for format in ["unversioned", "versioned"] {
        let names = RabbitNames::new("same");
        let _listener = listener(ipa, &names, format, "").await;
        // Another project's instance, and even another instance of the
        // owner's own project, of the same name; both payloads say
        // ipa_enroll (the tenant writes the metadata).
        deliver(
            &names,
            vec![
                nova_delete(format, &new_instance_id(), "app", PROJECT_B),
                nova_delete(format, &new_instance_id(), "app", PROJECT_A),
            ],
        )
        .await;
        let host = ipa.host(&fqdn(ipa, "app")).expect("the owner's host stays");
        assert!(host.enrolled, "{format}");
        let zone = ipa.dns_records(ipa.domain()).unwrap();
        assert_eq!(
            zone["app"].a,
            ["192.0.2.20"],
            "{format}: its DNS name stays"
        );
    }

    // The owner's own delete removes it, found by its binding even though
    // the instance was renamed meanwhile (nova API 2.90).
    let names = RabbitNames::new("owner");
    let _listener = listener(ipa, &names, "versioned", "").await;
    deliver(
        &names,
        vec![nova_delete("versioned", &owner, "renamed-app", PROJECT_A)],
    )
    .await;
    wait_until("the owner's host removed", Duration::from_secs(10), || {
        ipa.host(&fqdn(ipa, "app")).is_none()
    })
    .await;
    assert!(
        !ipa.dns_records(ipa.domain()).unwrap().contains_key("app"),
        "its DNS name went with it"
    );
}

// ---------------------------------------------------------------------------
// "managed_service_* / compact_service_* add the tenant's host to the
// managedby of any existing principal."

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_become_a_manager_of_a_service_it_does_not_own() {
    let (env, _) = service().await;
    let ipa = &env.ipa;
    let ca = fqdn(ipa, "ipa-ca");
    ipa.seed_host_with(&ca, None, None, true, None);
    ipa.seed_service(&format!("HTTP/{ca}"));
    let before = ipa.service(&format!("HTTP/{ca}")).unwrap();

    // managed_service_* naming the existing principal.
    let attacker = new_instance_id();
    let (status, body) = ask(
        &env,
        &attacker,
        PROJECT_B,
        "evil",
        json!({"ipa_enroll": "True", "managed_service_x": format!("HTTP/{ca}")}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(ipa.service(&format!("HTTP/{ca}")).unwrap(), before);
    assert!(
        ipa.host(&fqdn(ipa, "evil")).is_none(),
        "nothing was written"
    );

    // An instance enrolled without services cannot fetch the keytab either.
    let (status, body) = ask(&env, &attacker, PROJECT_B, "evil", enroll()).await;
    assert_eq!(status, 200, "{body}");
    ipa.ipa_join(&fqdn(ipa, "evil"), body["ipaotp"].as_str().unwrap())
        .unwrap();
    assert!(ipa
        .retrieve_keytab(&fqdn(ipa, "evil"), &format!("HTTP/{ca}"))
        .is_err());

    // compact_service_* whose sub-host name is taken by a host the
    // instance does not own: `<short>.<network>.<domain>` of another
    // instance, or an infrastructure host.
    let victim = new_instance_id();
    let (status, body) = ask(
        &env,
        &victim,
        PROJECT_A,
        "api",
        json!({"ipa_enroll": "True", "compact_service_HTTP": "[\"internal\"]"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sub = fqdn(ipa, "api.internal");
    let sub_before = ipa.host(&sub).expect("the victim's sub-host");
    assert!(sub_before.platform.unwrap().contains(&victim));
    ipa.seed_host_with(&fqdn(ipa, "nfs.storage"), None, None, true, None);
    let hosts_before = ipa.hosts();
    let services_before = ipa.services();
    for (name, net) in [("api", "internal"), ("nfs", "storage")] {
        let (status, body) = ask(
            &env,
            &new_instance_id(),
            PROJECT_B,
            name,
            json!({"ipa_enroll": "True", "compact_service_HTTP": format!("[\"{net}\"]")}),
        )
        .await;
        assert_eq!(status, 409, "{name}: {body}");
    }
    assert_eq!(ipa.hosts(), hosts_before, "no host changed");
    assert_eq!(
        ipa.services(),
        services_before,
        "no service created or linked"
    );
}

// ---------------------------------------------------------------------------
// Hosts made by the Python novajoin (description, no binding).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_of_the_python_novajoin_is_bound_only_when_nova_proves_the_owner() {
    let (env, nova) = service().await;
    let ipa = &env.ipa;
    let legacy = fqdn(ipa, "old-vm");
    ipa.seed_host_with(
        &legacy,
        Some("IPA host for OpenStack"),
        None,
        false,
        Some("old-otp"),
    );

    // Two live servers carry the name: the host cannot be proven to be
    // either's.
    let (owner, other) = (new_instance_id(), new_instance_id());
    nova.add_server_with(&owner, "old-vm", "old-vm", PROJECT_A);
    nova.add_server_with(&other, "old-vm", "old-vm", PROJECT_B);
    let (status, body) = ask(&env, &other, PROJECT_B, "old-vm", enroll()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(ipa.host(&legacy).unwrap().otp.as_deref(), Some("old-otp"));
    assert_eq!(ipa.host(&legacy).unwrap().platform, None);

    // Once the other is gone, nova shows one owner: the host is bound to it
    // and gets a fresh OTP.
    assert!(nova.remove_server(&other));
    let (status, body) = ask(&env, &owner, PROJECT_A, "old-vm", enroll()).await;
    assert_eq!(status, 200, "{body}");
    let host = ipa.host(&legacy).unwrap();
    assert_eq!(host.otp.as_deref(), body["ipaotp"].as_str());
    assert_eq!(
        owner_of(host.platform.as_deref()),
        binding(&owner, PROJECT_A)
    );
}

// ---------------------------------------------------------------------------
// "In the listener, an IPA permission error (ACIError) counts as success."

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipa_permission_error_in_the_listener_is_retried_then_dead_lettered() {
    let (env, _) = service().await;
    let ipa = &env.ipa;
    let owner = new_instance_id();
    let (status, body) = ask(&env, &owner, PROJECT_A, "locked", enroll()).await;
    assert_eq!(status, 200, "{body}");
    let host = fqdn(ipa, "locked");
    ipa.deny("host_del", Some(&host));

    let names = RabbitNames::new("aci");
    let listener = listener(
        ipa,
        &names,
        "unversioned",
        &format!(
            "retry_max_attempts = 3\ndead_letter_queue = {}\n",
            names.dead_letter_queue
        ),
    )
    .await;
    deliver(
        &names,
        vec![nova_delete("unversioned", &owner, "locked", PROJECT_A)],
    )
    .await;
    assert!(ipa.host(&host).is_some(), "IPA refused the delete");
    let dead = names.take_dead_letters().await;
    assert_eq!(
        dead.len(),
        1,
        "the refused delete is kept, not acknowledged as done"
    );
    assert_eq!(
        listener.count_log("notification failed for a transient reason; retrying"),
        2,
        "retried before it was given up"
    );

    // Once the operator fixes the privilege, the same delete succeeds.
    ipa.allow_all();
    deliver(
        &names,
        vec![nova_delete("unversioned", &owner, "locked", PROJECT_A)],
    )
    .await;
    assert!(ipa.host(&host).is_none());
}
