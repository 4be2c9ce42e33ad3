//! `novajoin notify` end to end: the real oslo.messaging Notifier publishes
//! nova's and neutron's notifications to the real RabbitMQ, the real
//! `novajoin notify` binary consumes them, and the IPA double's state is
//! checked afterwards.
//!
//! Every test has its own topic, exchanges and IPA double, so tests run in
//! parallel with each other and with other engineers' tests.

mod support;

use std::time::{Duration, Instant};

use novajoin::ipa::{EnrollmentBatch, HostOutcome, HostWrite, NewHost, Secret};
use serde_json::{json, Value};
use support::ipa::{self as ipa_support, seed_bound_host, IpaDouble};
use support::notify::{
    join_conf, legacy_instance, publish, queue_settles, versioned_instance, wait_queue_settled,
    NotifyProcess, TENANT,
};
use support::rabbit::{self, OsloMessage, RabbitNames};
use support::wait_until;

// ---------------------------------------------------------------------------
// The broker restart test must not run while other tests of this binary
// depend on the broker: a restart drops their (transient) queues. Every test
// holds this lock shared; the restart test holds it exclusively.

static BROKER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// nova-compute's unversioned `compute.instance.delete.end` for a new
/// instance enrolled through its metadata.
fn legacy_delete(hostname: &str) -> OsloMessage {
    legacy_delete_of(&new_id(), hostname)
}

/// The same for a given instance id.
fn legacy_delete_of(instance_id: &str, hostname: &str) -> OsloMessage {
    OsloMessage::info(
        "compute.cmp-1",
        "compute.instance.delete.end",
        legacy_instance(
            "compute.instance.delete.end",
            instance_id,
            hostname,
            json!({"ipa_enroll": "True"}),
        ),
    )
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Metadata of an instance with a managed service on a shared VIP host and
/// one compact service on network `ctlplane`.
fn service_metadata(vip: &str) -> Value {
    json!({"ipa_enroll": "True", "managed_service_api": format!("HTTP/{vip}"),
           "compact_service_HTTP": "[\"ctlplane\"]"})
}

/// What the Python novajoin left in IPA for an instance with
/// [`service_metadata`]: the host (with novajoin's description and an OTP,
/// no binding), the sub-hosts, the services and their managed-by links, and
/// a DNS name. Deletes of such hosts follow the original's rule.
async fn enroll_like_vendordata(ipa: &IpaDouble, fqdn: &str, vip: Option<&str>) {
    let client = ipa_support::client(ipa);
    let short = fqdn.split('.').next().unwrap();
    let host = NewHost {
        description: Some(novajoin::join::decision::HOST_DESCRIPTION.into()),
        otp: Some(Secret::new("0123456789abcdef0123456789abcdef")),
        ..NewHost::subhost(fqdn)
    };
    let mut batch = EnrollmentBatch::new().host(HostWrite::Create(host));
    if let Some(vip) = vip {
        let sub = format!("{short}.ctlplane.{}", ipa.domain());
        batch = batch
            .subhost(NewHost::subhost(vip))
            .subhost(NewHost::subhost(sub.clone()))
            .service(format!("HTTP/{vip}"))
            .service(format!("HTTP/{sub}"))
            .managed_by(format!("HTTP/{vip}"), fqdn)
            .managed_by(format!("HTTP/{sub}"), fqdn);
    }
    let out = client.enroll(&batch).await.expect("enroll");
    assert!(
        matches!(out.host, HostOutcome::Created) && out.failures.is_empty(),
        "{out:?}"
    );
    ipa.add_a_record(&format!("{}.", ipa.domain()), short, "10.0.0.12");
}

fn realm_principal(ipa: &IpaDouble, p: &str) -> String {
    format!("{p}@{}", ipa.realm())
}

// ---------------------------------------------------------------------------
// Acceptance 1: every event, both formats, IPA state asserted.

#[tokio::test(flavor = "multi_thread")]
async fn legacy_delete_removes_host_subhosts_orphaned_services_and_dns() {
    let _broker = BROKER.read().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("ldel");
    let vip = format!("overcloud.internalapi.{}", ipa.domain());
    enroll_like_vendordata(&ipa, "vm1.example.test", Some(&vip)).await;
    // vm2 shares the VIP service: it must survive vm1's delete.
    enroll_like_vendordata(&ipa, "vm2.example.test", Some(&vip)).await;
    ipa.seed_host("bystander.example.test");
    let listener = NotifyProcess::start(&join_conf(&ipa, &names, "unversioned", "")).await;

    let (id1, id2) = (new_id(), new_id());
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![OsloMessage::info(
            "compute.cmp-1",
            "compute.instance.delete.end",
            legacy_instance(
                "compute.instance.delete.end",
                &id1,
                "vm1",
                service_metadata(&vip),
            ),
        )],
    )
    .await;
    wait_until("vm1 gone from IPA", Duration::from_secs(30), || {
        ipa.host("vm1.example.test").is_none()
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;

    assert!(
        ipa.host("vm1.ctlplane.example.test").is_none(),
        "compact sub-host removed"
    );
    assert!(ipa
        .service(&realm_principal(&ipa, "HTTP/vm1.ctlplane.example.test"))
        .is_none());
    let vip_service = ipa
        .service(&realm_principal(&ipa, &format!("HTTP/{vip}")))
        .expect("shared service kept");
    assert!(
        vip_service
            .managed_by
            .iter()
            .any(|h| h == "vm2.example.test"),
        "{vip_service:?}"
    );
    assert!(
        ipa.host(&vip).is_some(),
        "VIP host kept while vm2 manages its service"
    );
    let zone = ipa.dns_records("example.test.").unwrap();
    assert!(
        !zone.contains_key("vm1") && zone.contains_key("vm2"),
        "{zone:?}"
    );
    assert!(ipa.host("vm2.example.test").is_some() && ipa.host("bystander.example.test").is_some());

    // The last manager goes: so do the VIP service and its host.
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![OsloMessage::info(
            "compute.cmp-1",
            "compute.instance.delete.end",
            legacy_instance(
                "compute.instance.delete.end",
                &id2,
                "vm2",
                service_metadata(&vip),
            ),
        )],
    )
    .await;
    wait_until("vm2 gone from IPA", Duration::from_secs(30), || {
        ipa.host("vm2.example.test").is_none()
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    assert!(
        ipa.service(&realm_principal(&ipa, &format!("HTTP/{vip}")))
            .is_none(),
        "orphaned service removed"
    );
    assert!(
        ipa.host(&vip).is_none(),
        "VIP host removed with its last service"
    );
    assert!(ipa.host("bystander.example.test").is_some());
    assert!(listener.log_text().contains("instance removed from IPA"));
}

#[tokio::test(flavor = "multi_thread")]
async fn versioned_deletes_from_compute_and_api_are_handled() {
    let _broker = BROKER.read().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("vdel");
    enroll_like_vendordata(&ipa, "vm1.example.test", None).await;
    enroll_like_vendordata(&ipa, "vm2.example.test", None).await;
    enroll_like_vendordata(&ipa, "vm3.example.test", None).await;
    let _listener = NotifyProcess::start(&join_conf(&ipa, &names, "versioned", "")).await;
    let md = json!({"ipa_enroll": "True"});
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![
            // nova-compute, current payload version.
            OsloMessage::info(
                "nova-compute:cmp-1",
                "instance.delete.end",
                versioned_instance("instance.delete.end", "1.9", &new_id(), "vm1", md.clone()),
            ),
            // nova-api deletes an instance that was never scheduled / whose compute is down.
            OsloMessage::info(
                "nova-api:ctl-1",
                "instance.delete.end",
                versioned_instance("instance.delete.end", "1.9", &new_id(), "vm2", md.clone()),
            ),
            // The 1.7 payload the original was written for.
            OsloMessage::info(
                "nova-compute:cmp-1",
                "instance.delete.end",
                versioned_instance("instance.delete.end", "1.7", &new_id(), "vm3", md),
            ),
        ],
    )
    .await;
    wait_until("all three hosts gone", Duration::from_secs(30), || {
        ["vm1", "vm2", "vm3"]
            .iter()
            .all(|h| ipa.host(&format!("{h}.example.test")).is_none())
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_without_the_flag_in_the_payload_is_decided_by_ipa_not_glance() {
    let _broker = BROKER.read().await;
    // Image-enrolled instances carry no ipa_enroll in their metadata, and
    // versioned payloads carry no image properties. The original asked
    // Glance (and lost the delete when Glance failed); the listener has no
    // Glance configured here at all and must still clean up the host bound
    // to the instance, while leaving alone a host novajoin did not create.
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("noflag");
    let img1 = new_id();
    seed_bound_host(&ipa, "img1.example.test", &img1, TENANT);
    ipa.seed_host("manual.example.test");
    let listener = NotifyProcess::start(&join_conf(&ipa, &names, "versioned", "")).await;
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![
            OsloMessage::info(
                "nova-compute:cmp-1",
                "instance.delete.end",
                versioned_instance("instance.delete.end", "1.9", &new_id(), "manual", json!({})),
            ),
            OsloMessage::info(
                "nova-compute:cmp-1",
                "instance.delete.end",
                versioned_instance("instance.delete.end", "1.9", &img1, "img1", json!({})),
            ),
        ],
    )
    .await;
    wait_until("img1 gone", Duration::from_secs(30), || {
        ipa.host("img1.example.test").is_none()
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    assert!(
        ipa.host("manual.example.test").is_some(),
        "a host novajoin did not create is kept"
    );
    assert!(listener.log_text().contains("not this instance's"));
}

async fn check_update_adds_services(format: &str, messages: impl Fn(&str, Value) -> OsloMessage) {
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new(&format!("upd{}", &format[..1]));
    let vm1 = new_id();
    seed_bound_host(&ipa, "vm1.example.test", &vm1, TENANT);
    let _listener = NotifyProcess::start(&join_conf(&ipa, &names, format, "")).await;
    // A managed service on the instance's own host, a compact service, and
    // a managed service on a shared name the instance does not own (only
    // the vendordata service, which can ask the policy, may add that).
    let vip = format!("overcloud.storage.{}", ipa.domain());
    let md = json!({"ipa_enroll": "True", "managed_service_own": "nfs/vm1.example.test",
                    "managed_service_api": format!("HTTP/{vip}"),
                    "compact_service_HTTP": "[\"ctlplane\"]"});
    publish(&names, &names.nova_exchange, "", vec![messages(&vm1, md)]).await;
    let sub_svc = realm_principal(&ipa, "HTTP/vm1.ctlplane.example.test");
    wait_until("compact service created", Duration::from_secs(30), || {
        ipa.service(&sub_svc).is_some()
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    let own = ipa
        .service(&realm_principal(&ipa, "nfs/vm1.example.test"))
        .expect("managed service on the instance's own host created");
    assert!(
        own.managed_by.iter().any(|h| h == "vm1.example.test"),
        "{own:?}"
    );
    let sub = ipa.service(&sub_svc).unwrap();
    assert!(
        sub.managed_by.iter().any(|h| h == "vm1.example.test"),
        "{sub:?}"
    );
    let sub_host = ipa.host("vm1.ctlplane.example.test").expect("sub-host");
    assert!(sub_host
        .platform
        .unwrap()
        .contains(&format!("subhost-of={vm1}")));
    assert!(
        ipa.host(&vip).is_none(),
        "no host made for a name the instance does not own"
    );
    assert!(ipa
        .service(&realm_principal(&ipa, &format!("HTTP/{vip}")))
        .is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_update_adds_managed_and_compact_services() {
    let _broker = BROKER.read().await;
    check_update_adds_services("unversioned", |id, md| {
        OsloMessage::info(
            "compute.cmp-1",
            "compute.instance.update",
            legacy_instance("compute.instance.update", id, "vm1", md),
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn versioned_update_2_1_adds_managed_and_compact_services() {
    let _broker = BROKER.read().await;
    // The original dropped every 2.x update (nova >= 25 sends 2.1).
    check_update_adds_services("versioned", |id, md| {
        OsloMessage::info(
            "nova-compute:cmp-1",
            "instance.update",
            versioned_instance("instance.update", "2.1", id, "vm1", md),
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn creates_are_logged_in_both_formats_without_touching_ipa() {
    let _broker = BROKER.read().await;
    let ipa = ipa_support::start().await;
    for (format, msg) in [
        (
            "unversioned",
            OsloMessage::info(
                "compute.cmp-1",
                "compute.instance.create.end",
                legacy_instance(
                    "compute.instance.create.end",
                    &new_id(),
                    "newvm",
                    json!({"ipa_enroll": "True"}),
                ),
            ),
        ),
        (
            "versioned",
            OsloMessage::info(
                "nova-compute:cmp-1",
                "instance.create.end",
                versioned_instance(
                    "instance.create.end",
                    "1.13",
                    &new_id(),
                    "newvm",
                    json!({"ipa_enroll": "True"}),
                ),
            ),
        ),
    ] {
        let names = RabbitNames::new("create");
        let listener = NotifyProcess::start(&join_conf(&ipa, &names, format, "")).await;
        ipa.reset_counters();
        publish(&names, &names.nova_exchange, "", vec![msg]).await;
        listener
            .wait_log("\"fqdn\":\"newvm.example.test\"", Duration::from_secs(30))
            .await;
        wait_queue_settled(&names, Duration::from_secs(30)).await;
        assert_eq!(ipa.round_trips(), 0, "{format}: create must not call IPA");
        assert!(ipa.host("newvm.example.test").is_none());
    }
}

// ---------------------------------------------------------------------------
// Acceptance 3: malformed messages are logged and rejected; the listener
// keeps going.

#[tokio::test(flavor = "multi_thread")]
async fn malformed_messages_are_dead_lettered_with_the_reason_and_the_listener_goes_on() {
    let _broker = BROKER.read().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("bad");
    enroll_like_vendordata(&ipa, "after.example.test", None).await;
    let conf = join_conf(
        &ipa,
        &names,
        "unversioned",
        &format!("dead_letter_queue = {}\n", names.dead_letter_queue),
    );
    let listener = NotifyProcess::start(&conf).await;

    // Not JSON; JSON but not an object; an envelope of another version; an
    // envelope whose message is not a string.
    for body in [
        &b"this is not json"[..],
        &b"[1, 2, 3]"[..],
        &br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#[..],
        &br#"{"oslo.version": "2.0", "oslo.message": {"event_type": "x"}}"#[..],
    ] {
        names.publish_raw(&names.control_exchange, body).await;
    }
    // Through the real Notifier: an unknown event inside the filter, a
    // delete without the hostname, an update with an unknown major version
    // (the listener is legacy here, so that one is a legacy payload with a
    // broken metadata type instead).
    let mut no_hostname = legacy_instance(
        "compute.instance.delete.end",
        &new_id(),
        "x",
        json!({"ipa_enroll": "True"}),
    );
    no_hostname.as_object_mut().unwrap().remove("hostname");
    let mut bad_metadata =
        legacy_instance("compute.instance.delete.end", &new_id(), "y", json!({}));
    bad_metadata["metadata"] = json!("not an object");
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![
            OsloMessage::info(
                "compute.cmp-1",
                "compute.instance.update.bogus",
                json!({"instance_id": "i"}),
            ),
            OsloMessage::info("compute.cmp-1", "compute.instance.delete.end", no_hostname),
            OsloMessage::info("compute.cmp-1", "compute.instance.delete.end", bad_metadata),
        ],
    )
    .await;
    // And a good message after all of them: the listener must still work.
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![legacy_delete("after")],
    )
    .await;
    wait_until("the good delete handled", Duration::from_secs(30), || {
        ipa.host("after.example.test").is_none()
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;

    let dead = names.take_dead_letters().await;
    assert_eq!(
        dead.len(),
        7,
        "every malformed message is dead-lettered once"
    );
    let reasons: Vec<String> = dead
        .iter()
        .map(|(_, h)| rabbit::header_text(h, "x-novajoin-error").unwrap_or_default())
        .collect();
    for expected in [
        "not JSON",
        "not an object",
        "oslo.version",
        "oslo.message",
        "unknown event type",
        "'hostname'",
        "'metadata'",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "no reason mentions {expected:?}: {reasons:?}"
        );
    }
    assert!(
        dead.iter().any(|(body, _)| body == b"this is not json"),
        "the original body is kept"
    );
    let log = listener.log_text();
    assert_eq!(log.matches("notification rejected").count(), 7, "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn by_default_a_permanently_failing_notification_lands_in_the_topics_failed_queue() {
    let _broker = BROKER.read().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("dlq");
    // No dead_letter_queue in join.conf: the default applies.
    let listener = NotifyProcess::start(&join_conf(&ipa, &names, "unversioned", "")).await;
    names
        .publish_raw(&names.control_exchange, b"{not json")
        .await;
    listener
        .wait_log("notification rejected", Duration::from_secs(30))
        .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    let dead = names
        .take_messages(&names.default_dead_letter_queue())
        .await;
    assert_eq!(dead.len(), 1, "the failure is kept, not dropped");
    assert_eq!(dead[0].0, b"{not json");
    let reason = rabbit::header_text(&dead[0].1, "x-novajoin-error").unwrap_or_default();
    assert!(reason.contains("not JSON"), "{reason}");
    assert_eq!(
        rabbit::header_text(&dead[0].1, "x-original-exchange").as_deref(),
        Some(names.control_exchange.as_str())
    );
    assert!(
        listener
            .log_text()
            .contains(&names.default_dead_letter_queue()),
        "the log names where the notification went"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_dead_letter_queue_malformed_messages_are_rejected_not_requeued() {
    let _broker = BROKER.read().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("rej");
    let listener = NotifyProcess::start(&join_conf(
        &ipa,
        &names,
        "versioned",
        "dead_letter_queue =\n",
    ))
    .await;
    names
        .publish_raw(&names.control_exchange, b"{garbage")
        .await;
    // An unknown major version of a versioned payload.
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![OsloMessage::info(
            "nova-compute:cmp-1",
            "instance.update",
            versioned_instance("instance.update", "3.0", &new_id(), "vm1", json!({})),
        )],
    )
    .await;
    listener
        .wait_log("version 3.0 is not supported", Duration::from_secs(30))
        .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    assert_eq!(listener.count_log("notification rejected"), 2);
    assert_eq!(
        names.passive_ready_count(&names.queue()).await,
        Some(0),
        "rejected, not requeued"
    );
}

// ---------------------------------------------------------------------------
// Acceptance 4: SIGTERM finishes the work in progress and exits within 10 s.

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_in_flight_work_and_gives_the_rest_back() {
    let _broker = BROKER.read().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("term");
    for h in ["slow1", "slow2", "slow3"] {
        enroll_like_vendordata(&ipa, &format!("{h}.example.test"), None).await;
    }
    let conf = join_conf(&ipa, &names, "unversioned", "max_concurrent_messages = 1\n");
    let mut listener = NotifyProcess::start(&conf).await;
    // Each IPA round trip now takes 1 s: a delete is 2-3 s of work.
    ipa.set_latency(Duration::from_secs(1));
    publish(
        &names,
        &names.nova_exchange,
        "",
        ["slow1", "slow2", "slow3"]
            .iter()
            .map(|h| legacy_delete(h))
            .collect(),
    )
    .await;
    listener
        .wait_log("handling notification", Duration::from_secs(30))
        .await;
    let started = Instant::now();
    listener.sigterm();
    let status = listener
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exited within 10 s of SIGTERM");
    assert!(status.success(), "clean exit: {status}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let log = listener.log_text();
    assert!(
        log.contains("finishing notifications in progress")
            && log.contains("notification listener stopped"),
        "{log}"
    );
    // Every delete that was started was finished; the others are back in
    // the queue, none left unacked.
    let started_n = log.matches("\"message\":\"handling notification\"").count();
    let finished = log.matches("instance removed from IPA").count();
    assert_eq!(started_n, finished, "in-flight work finished: {log}");
    assert!(
        (1..3).contains(&finished),
        "stopped with work left to give back: {finished} of 3 done"
    );
    let gone = ["slow1", "slow2", "slow3"]
        .iter()
        .filter(|h| ipa.host(&format!("{h}.example.test")).is_none())
        .count();
    assert_eq!(gone, finished);
    let counts = tokio::task::spawn_blocking({
        let q = names.queue();
        move || rabbit::queue_counts(&q)
    })
    .await
    .unwrap();
    assert_eq!(
        counts,
        Some(((3 - finished) as u64, 0)),
        "the rest wait in the queue, none unacked"
    );
}

// ---------------------------------------------------------------------------
// Declarations equal oslo.messaging's: whoever declares first, the other
// side never gets PRECONDITION_FAILED, for the default, durable and quorum
// settings.

async fn check_declarations(
    query: &str,
    rabbit_section: &str,
    expect_durable: bool,
    expect_args: &str,
) {
    let ipa = ipa_support::start().await;
    // Listener first, then nova's notifier.
    let names = RabbitNames::new("decl");
    enroll_like_vendordata(&ipa, "first.example.test", None).await;
    enroll_like_vendordata(&ipa, "second.example.test", None).await;
    let extra = format!("[oslo_messaging_rabbit]\n{rabbit_section}\n");
    let listener = NotifyProcess::start(&join_conf(&ipa, &names, "unversioned", &extra)).await;
    publish(
        &names,
        &names.nova_exchange,
        query,
        vec![legacy_delete("first")],
    )
    .await;
    wait_until(
        "delivered with the listener declaring first",
        Duration::from_secs(30),
        || ipa.host("first.example.test").is_none(),
    )
    .await;
    let flags = rabbit::queue_flags(&names.queue()).expect("queue exists");
    assert_eq!(flags.0, expect_durable, "durable flag: {flags:?}");
    assert!(!flags.1, "never auto-delete");
    assert!(
        flags.2.contains(expect_args),
        "arguments {:?} should contain {expect_args:?}",
        flags.2
    );
    drop(listener);

    // nova's notifier first (it creates queue and exchange), then the listener.
    let names = RabbitNames::new("decl2");
    publish(
        &names,
        &names.nova_exchange,
        query,
        vec![legacy_delete("second")],
    )
    .await;
    let listener = NotifyProcess::start(&join_conf(&ipa, &names, "unversioned", &extra)).await;
    wait_until(
        "delivered with nova declaring first",
        Duration::from_secs(30),
        || ipa.host("second.example.test").is_none(),
    )
    .await;
    assert!(!listener.log_text().contains("PRECONDITION_FAILED"));
}

#[tokio::test(flavor = "multi_thread")]
async fn declarations_match_oslo_defaults() {
    let _broker = BROKER.read().await;
    check_declarations("", "", false, "[]").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn declarations_match_oslo_durable_queues() {
    let _broker = BROKER.read().await;
    check_declarations(
        "amqp_durable_queues=true",
        "amqp_durable_queues = true",
        true,
        "[]",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn declarations_match_oslo_quorum_queues() {
    let _broker = BROKER.read().await;
    check_declarations(
        "rabbit_quorum_queue=true",
        "rabbit_quorum_queue = true",
        true,
        "quorum",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mismatched_flags_are_reported_with_the_brokers_words() {
    let _broker = BROKER.read().await;
    // nova made the queue durable; a listener left at the default cannot
    // redeclare it and must say why instead of crashing or looping hot.
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("mismatch");
    publish(
        &names,
        &names.nova_exchange,
        "amqp_durable_queues=true",
        vec![legacy_delete("x")],
    )
    .await;
    // The listener's control exchange must not exist yet with other flags:
    // the queue is what differs.
    let mut listener = NotifyProcess::spawn(&join_conf(&ipa, &names, "unversioned", ""));
    listener
        .wait_log("inequivalent arg 'durable'", Duration::from_secs(30))
        .await;
    listener
        .wait_log("amqp_durable_queues", Duration::from_secs(5))
        .await;
    assert!(listener.is_running(), "keeps retrying with backoff");
    assert_eq!(
        names.passive_ready_count(&names.queue()).await,
        Some(1),
        "nothing consumed or lost"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_first_broker_is_skipped_for_the_next_one() {
    let _broker = BROKER.read().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("failover");
    enroll_like_vendordata(&ipa, "fo.example.test", None).await;
    // A closed port first: oslo's multi-host URL, same credentials.
    let closed = support::server::free_port();
    let conf = join_conf(&ipa, &names, "unversioned", "").replace(
        rabbit::TRANSPORT_URL,
        &format!("rabbit://guest:guest@127.0.0.1:{closed},guest:guest@127.0.0.1:5672/"),
    );
    let listener = NotifyProcess::start(&conf).await;
    assert!(listener.log_text().contains("cannot connect to the broker"));
    publish(&names, &names.nova_exchange, "", vec![legacy_delete("fo")]).await;
    wait_until(
        "delivered through the second broker",
        Duration::from_secs(30),
        || ipa.host("fo.example.test").is_none(),
    )
    .await;
}

// ---------------------------------------------------------------------------
// Acceptance 2: 1,000 deletes, a broker restart, 10% transient IPA failures.

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_deletes_survive_a_broker_restart_and_flaky_ipa() {
    let _broker = BROKER.write().await;
    const N: usize = 1000;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("storm");
    let ids: Vec<String> = (0..N).map(|_| new_id()).collect();
    for (i, id) in ids.iter().enumerate() {
        seed_bound_host(&ipa, &format!("storm{i}.example.test"), id, TENANT);
    }
    // Durable: a transient queue and its messages do not survive a broker
    // restart (oslo's default loses notifications there too).
    let conf = join_conf(
        &ipa,
        &names,
        "unversioned",
        "max_concurrent_messages = 16\n[oslo_messaging_rabbit]\namqp_durable_queues = true\n",
    );
    let listener = NotifyProcess::start(&conf).await;
    ipa.set_failure_rate(0.10, ipa_support::Fault::Http503);

    let messages: Vec<OsloMessage> = (0..N)
        .map(|i| {
            OsloMessage::info(
                "compute.cmp-1",
                "compute.instance.delete.end",
                legacy_instance(
                    "compute.instance.delete.end",
                    &ids[i],
                    &format!("storm{i}"),
                    json!({"ipa_enroll": "True"}),
                ),
            )
        })
        .collect();
    let oslo = names.publisher();
    let exchange = names.nova_exchange.clone();
    let publisher = tokio::task::spawn_blocking(move || {
        let mut child = oslo.spawn(
            &exchange,
            "amqp_durable_queues=true",
            &messages,
            Duration::from_millis(4),
        );
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        // Restart the broker once, a third of the way through publishing.
        let mut restarted = false;
        let mut last = String::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if !restarted && line == format!("sent {}", N / 3) {
                rabbit::restart_broker(Duration::from_secs(3));
                restarted = true;
            }
            last = line;
        }
        let status = child.wait().unwrap();
        (status, restarted, last)
    });
    let (status, restarted, last) = publisher.await.unwrap();
    assert!(
        status.success() && restarted,
        "publisher: {status}, restarted: {restarted}, last line {last:?}"
    );
    assert_eq!(last, format!("done {N}"));

    wait_until(
        "all 1,000 hosts gone from IPA",
        Duration::from_secs(240),
        || ipa.hosts().iter().all(|h| !h.fqdn.starts_with("storm")),
    )
    .await;
    // A delivery left unacked fails the test with the listener's warnings
    // and errors, which say why.
    if let Err(last) = queue_settles(&names, Duration::from_secs(120)).await {
        let log = listener.log_text();
        let notable: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked"))
            .collect();
        panic!(
            "queue {} still holds (ready, unacked) = {last:?} after 120 s; the listener's last warnings:\n{}",
            names.queue(),
            notable[notable.len().saturating_sub(40)..].join("\n")
        );
    }
    let log = listener.log_text();
    assert!(
        log.contains("lost the broker connection"),
        "the restart was noticed"
    );
    assert!(ipa.injected_failures() > 0, "IPA failures were injected");
    eprintln!(
        "storm: {} IPA requests, {} injected failures, {} retries logged, {} reconnect notices",
        ipa.http_requests(),
        ipa.injected_failures(),
        log.matches("retrying").count(),
        log.matches("lost the broker connection").count()
    );
}

// ---------------------------------------------------------------------------
// TLS (ssl options): the broker's certificate is verified against
// ssl_ca_file, including its host name.

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_the_configured_ca_and_refusal_of_an_unknown_one() {
    let _broker = BROKER.read().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("tls");
    enroll_like_vendordata(&ipa, "tls.example.test", None).await;
    let front = rabbit::TlsFront::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &front.ca_pem).unwrap();
    let tls_url = format!("rabbit://guest:guest@localhost:{}/", front.port);

    // A CA that did not sign the broker's certificate: no connection.
    let other = rabbit::TlsFront::start().await;
    let wrong_ca = dir.path().join("wrong.pem");
    std::fs::write(&wrong_ca, &other.ca_pem).unwrap();
    let conf = join_conf(
        &ipa,
        &names,
        "unversioned",
        &format!(
            "[oslo_messaging_rabbit]\nssl = true\nssl_ca_file = {}\n",
            wrong_ca.display()
        ),
    )
    .replace(rabbit::TRANSPORT_URL, &tls_url);
    let refused = NotifyProcess::spawn(&conf);
    refused
        .wait_log("cannot connect to the broker", Duration::from_secs(30))
        .await;
    assert!(!refused.log_text().contains("listening for notifications"));
    drop(refused);

    // The right CA but another name for the broker (its certificate is for
    // localhost): refused, even with ssl_enforce_hostname_verification =
    // false, which oslo.messaging ignores too.
    let conf = join_conf(
        &ipa,
        &names,
        "unversioned",
        &format!(
            "[oslo_messaging_rabbit]\nssl = true\nssl_ca_file = {}\n\
             ssl_enforce_hostname_verification = false\n",
            ca.display()
        ),
    )
    .replace(
        rabbit::TRANSPORT_URL,
        &format!("rabbit://guest:guest@127.0.0.1:{}/", front.port),
    );
    let wrong_name = NotifyProcess::spawn(&conf);
    wrong_name
        .wait_log("cannot connect to the broker", Duration::from_secs(30))
        .await;
    let log = wrong_name.log_text();
    assert!(
        log.contains("ssl_enforce_hostname_verification = false is ignored"),
        "{log}"
    );
    assert!(!log.contains("listening for notifications"), "{log}");
    drop(wrong_name);

    let conf = join_conf(
        &ipa,
        &names,
        "unversioned",
        &format!(
            "[oslo_messaging_rabbit]\nssl = true\nssl_ca_file = {}\n",
            ca.display()
        ),
    )
    .replace(rabbit::TRANSPORT_URL, &tls_url);
    let _listener = NotifyProcess::start(&conf).await;
    publish(&names, &names.nova_exchange, "", vec![legacy_delete("tls")]).await;
    wait_until("delivered over TLS", Duration::from_secs(30), || {
        ipa.host("tls.example.test").is_none()
    })
    .await;
}

// ---------------------------------------------------------------------------
// Events that need the cloud: the real keystone (service credentials,
// catalog, project names) and the nova/neutron API double in its catalog.

use support::keystone::{Keystone, Provider};
use support::nova_neutron::NovaNeutron;

async fn cloud() -> (&'static Keystone, &'static NovaNeutron) {
    let ks = tokio::task::spawn_blocking(|| Keystone::shared(Provider::Fernet))
        .await
        .unwrap();
    let api = NovaNeutron::shared(ks).await;
    (ks, api)
}

fn service_credentials(ks: &Keystone) -> String {
    let nova = ks.user("nova");
    format!(
        "[service_credentials]\nauth_type = password\nauth_url = {}\nusername = nova\npassword = {}\n\
         project_name = service\nuser_domain_name = Default\nproject_domain_name = Default\n",
        ks.auth_url(),
        nova.password
    )
}

// ---------------------------------------------------------------------------
// Floating IPs: records only at the names of bound hosts (the instance's
// own host, found by its binding), only the floating IP's value, and the
// notes in the base zone that let id-only deletes find them.

use ipa_double::DnsRecordView;
use support::notify::{
    neutron, neutron_floatingip, neutron_floatingip_deleted, neutron_floatingip_of,
    neutron_port_deleted,
};

const ZONE: &str = "example.test.";

/// The records at `name` in `zone` (empty when there are none).
fn records(ipa: &IpaDouble, zone: &str, name: &str) -> DnsRecordView {
    ipa.dns_records(zone)
        .and_then(|z| z.get(name).cloned())
        .unwrap_or_default()
}

fn a_records(ipa: &IpaDouble, name: &str) -> Vec<String> {
    records(ipa, ZONE, name).a
}

/// novajoin's notes in the base zone: name → TXT values.
fn notes(ipa: &IpaDouble) -> std::collections::BTreeMap<String, Vec<String>> {
    ipa.dns_records(ZONE)
        .unwrap_or_default()
        .into_iter()
        .filter(|(n, _)| n.starts_with("_novajoin-"))
        .map(|(n, r)| (n, r.txt))
        .collect()
}

/// An instance nova knows in `project`, with one port, whose host
/// `<name>.<domain>` novajoin created and bound.
struct Guest {
    id: String,
    port: String,
}

fn bound_guest(
    ipa: &IpaDouble,
    api: &NovaNeutron,
    name: &str,
    domain: &str,
    project: &str,
) -> Guest {
    let g = Guest {
        id: new_id(),
        port: new_id(),
    };
    api.add_server_with(&g.id, name, name, project);
    api.add_port(&g.port, &g.id);
    seed_bound_host(ipa, &format!("{name}.{domain}"), &g.id, project);
    g
}

async fn fip_listener(ipa: &IpaDouble, names: &RabbitNames, format: &str) -> NotifyProcess {
    let (ks, _) = cloud().await;
    NotifyProcess::start(&join_conf(ipa, names, format, &service_credentials(ks))).await
}

async fn publish_neutron(names: &RabbitNames, messages: Vec<OsloMessage>) {
    publish(names, &names.neutron_exchange, "", messages).await
}

#[tokio::test(flavor = "multi_thread")]
async fn nova_network_floating_ip_associate_and_disassociate() {
    let _broker = BROKER.read().await;
    let (_, api) = cloud().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("fipnn");
    let server = new_id();
    api.add_server(&server, "web-nn");
    seed_bound_host(&ipa, "web-nn.example.test", &server, TENANT);
    ipa.add_a_record(ZONE, "web-nn", "10.0.0.12");
    let _listener = fip_listener(&ipa, &names, "unversioned").await;
    let payload =
        json!({"floating_ip": "192.168.5.201", "instance_id": server, "project_id": TENANT});
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![OsloMessage::info(
            "network.net-1",
            "network.floating_ip.associate",
            payload.clone(),
        )],
    )
    .await;
    wait_until("A record added", Duration::from_secs(30), || {
        a_records(&ipa, "web-nn") == ["10.0.0.12", "192.168.5.201"]
    })
    .await;
    assert!(
        api.requests()
            .iter()
            .any(|r| r == &format!("GET /v2.1/servers/{server}")),
        "{:?}",
        api.requests()
    );
    // nova-network has no floating-IP ids: the address stands in.
    assert_eq!(
        notes(&ipa),
        [(
            "_novajoin-fip-nn-192-168-5-201".to_string(),
            vec!["ip=192.168.5.201 host=web-nn.example.test".to_string()]
        )]
        .into()
    );
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![OsloMessage::info(
            "network.net-1",
            "network.floating_ip.disassociate",
            payload,
        )],
    )
    .await;
    wait_until("A record removed", Duration::from_secs(30), || {
        a_records(&ipa, "web-nn") == ["10.0.0.12"]
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    assert!(notes(&ipa).is_empty(), "{:?}", notes(&ipa));
}

#[tokio::test(flavor = "multi_thread")]
async fn neutron_floatingip_update_associates_and_disassociates_in_both_formats() {
    let _broker = BROKER.read().await;
    let (_, api) = cloud().await;
    for format in ["unversioned", "versioned"] {
        let ipa = ipa_support::start().await;
        let names = RabbitNames::new("fipq");
        let a = bound_guest(&ipa, api, "web-a", "example.test", TENANT);
        let b = bound_guest(&ipa, api, "web-b", "example.test", TENANT);
        let (fa, fb) = (new_id(), new_id());
        let _listener = fip_listener(&ipa, &names, format).await;
        publish_neutron(
            &names,
            vec![
                // Current neutron: port_details names the instance.
                neutron(
                    "floatingip.update.end",
                    neutron_floatingip(&fa, "192.168.5.10", Some(&a.port), Some(&a.id)),
                ),
                // Older neutron (no port_details): the port is looked up.
                neutron(
                    "floatingip.update.end",
                    neutron_floatingip(&fb, "192.168.5.11", Some(&b.port), None),
                ),
            ],
        )
        .await;
        wait_until("both A records", Duration::from_secs(30), || {
            a_records(&ipa, "web-a") == ["192.168.5.10"]
                && a_records(&ipa, "web-b") == ["192.168.5.11"]
        })
        .await;
        assert!(
            api.requests()
                .iter()
                .any(|r| r.contains(&format!("ports?id={}", b.port))),
            "{format}: port looked up"
        );
        let n = notes(&ipa);
        assert_eq!(
            n[&format!("_novajoin-fip-{fa}")],
            [format!(
                "ip=192.168.5.10 host=web-a.example.test port={}",
                a.port
            )],
            "{format}"
        );
        assert_eq!(
            n[&format!("_novajoin-port-{}", b.port)],
            [format!("fip={fb}")]
        );
        publish_neutron(
            &names,
            vec![neutron(
                "floatingip.update.end",
                neutron_floatingip(&fa, "192.168.5.10", None, None),
            )],
        )
        .await;
        wait_until("A record of web-a removed", Duration::from_secs(30), || {
            a_records(&ipa, "web-a").is_empty()
        })
        .await;
        wait_queue_settled(&names, Duration::from_secs(30)).await;
        assert_eq!(
            a_records(&ipa, "web-b"),
            ["192.168.5.11"],
            "{format}: the other record stays"
        );
        let left: Vec<String> = notes(&ipa).into_keys().collect();
        assert_eq!(
            left,
            [
                format!("_novajoin-fip-{fb}"),
                format!("_novajoin-port-{}", b.port)
            ],
            "{format}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn floatingip_create_end_records_in_the_hosts_project_zone_and_delete_end_removes_only_it() {
    let _broker = BROKER.read().await;
    let (ks, api) = cloud().await;
    let demo = ks.user("demo");
    for format in ["unversioned", "versioned"] {
        let ipa = ipa_support::start().await;
        let names = RabbitNames::new("fipcreate");
        let domain = format!("{}.example.test", demo.project.to_lowercase());
        let zone = format!("{domain}.");
        ipa.add_zone(&zone);
        let g = bound_guest(&ipa, api, "vm1", &domain, &demo.project_id);
        ipa.add_a_record(&zone, "vm1", "10.0.0.12");
        ipa.add_record(&zone, "vm1", "aaaarecord", "fd00::12");
        ipa.add_record(&zone, "vm1", "txtrecord", "owner=ops");
        let before = records(&ipa, &zone, "vm1");
        let conf = join_conf(
            &ipa,
            &names,
            format,
            &format!(
                "{}\n[DEFAULT]\nproject_subdomain = true\n",
                service_credentials(ks)
            ),
        );
        let _listener = NotifyProcess::start(&conf).await;
        let fip = new_id();
        publish_neutron(
            &names,
            vec![neutron(
                "floatingip.create.end",
                neutron_floatingip_of(
                    &demo.project_id,
                    &fip,
                    "192.168.5.20",
                    Some(&g.port),
                    Some(&g.id),
                ),
            )],
        )
        .await;
        wait_until(
            "the record in the project zone",
            Duration::from_secs(30),
            || records(&ipa, &zone, "vm1").a == ["10.0.0.12", "192.168.5.20"],
        )
        .await;
        assert_eq!(a_records(&ipa, "vm1"), Vec::<String>::new(), "{format}");
        assert_eq!(
            notes(&ipa),
            [
                (
                    format!("_novajoin-fip-{fip}"),
                    vec![format!("ip=192.168.5.20 host=vm1.{domain} port={}", g.port)]
                ),
                (
                    format!("_novajoin-port-{}", g.port),
                    vec![format!("fip={fip}")]
                ),
            ]
            .into(),
            "{format}"
        );
        publish_neutron(
            &names,
            vec![neutron(
                "floatingip.delete.end",
                neutron_floatingip_deleted(&fip),
            )],
        )
        .await;
        wait_until("the record removed", Duration::from_secs(30), || {
            records(&ipa, &zone, "vm1").a == ["10.0.0.12"]
        })
        .await;
        wait_queue_settled(&names, Duration::from_secs(30)).await;
        assert_eq!(records(&ipa, &zone, "vm1"), before, "{format}");
        assert!(notes(&ipa).is_empty(), "{format}: {:?}", notes(&ipa));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn port_delete_end_removes_the_records_of_the_ports_floating_ips() {
    let _broker = BROKER.read().await;
    let (_, api) = cloud().await;
    for format in ["unversioned", "versioned"] {
        let ipa = ipa_support::start().await;
        let names = RabbitNames::new("fipport");
        let p = bound_guest(&ipa, api, "web-p", "example.test", TENANT);
        let q = bound_guest(&ipa, api, "web-q", "example.test", TENANT);
        ipa.add_a_record(ZONE, "web-p", "10.0.0.12");
        ipa.add_a_record(ZONE, "web-q", "10.0.0.13");
        let (f4, f6, fq) = (new_id(), new_id(), new_id());
        let _listener = fip_listener(&ipa, &names, format).await;
        publish_neutron(
            &names,
            vec![
                neutron(
                    "floatingip.create.end",
                    neutron_floatingip(&f4, "192.168.5.30", Some(&p.port), Some(&p.id)),
                ),
                neutron(
                    "floatingip.create.end",
                    neutron_floatingip(&f6, "2001:db8::30", Some(&p.port), Some(&p.id)),
                ),
                neutron(
                    "floatingip.create.end",
                    neutron_floatingip(&fq, "192.168.5.31", Some(&q.port), Some(&q.id)),
                ),
            ],
        )
        .await;
        wait_until("three records", Duration::from_secs(30), || {
            let p = records(&ipa, ZONE, "web-p");
            p.a == ["10.0.0.12", "192.168.5.30"]
                && p.aaaa == ["2001:db8::30"]
                && a_records(&ipa, "web-q") == ["10.0.0.13", "192.168.5.31"]
        })
        .await;
        wait_queue_settled(&names, Duration::from_secs(30)).await;
        let mut on_p = notes(&ipa)[&format!("_novajoin-port-{}", p.port)].clone();
        on_p.sort();
        let mut want = vec![format!("fip={f4}"), format!("fip={f6}")];
        want.sort();
        assert_eq!(on_p, want, "{format}");
        // neutron disassociates a deleted port's floating IPs silently.
        publish_neutron(
            &names,
            vec![neutron("port.delete.end", neutron_port_deleted(&p.port))],
        )
        .await;
        wait_until(
            "web-p's floating IPs removed",
            Duration::from_secs(30),
            || {
                let p = records(&ipa, ZONE, "web-p");
                p.a == ["10.0.0.12"] && p.aaaa.is_empty()
            },
        )
        .await;
        wait_queue_settled(&names, Duration::from_secs(30)).await;
        assert_eq!(
            a_records(&ipa, "web-q"),
            ["10.0.0.13", "192.168.5.31"],
            "{format}"
        );
        let left: Vec<String> = notes(&ipa).into_keys().collect();
        assert_eq!(
            left,
            [
                format!("_novajoin-fip-{fq}"),
                format!("_novajoin-port-{}", q.port)
            ],
            "{format}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_moved_floating_ip_leaves_the_old_hosts_record() {
    let _broker = BROKER.read().await;
    let (_, api) = cloud().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("fipmove");
    let a = bound_guest(&ipa, api, "web-a", "example.test", TENANT);
    let b = bound_guest(&ipa, api, "web-b", "example.test", TENANT);
    ipa.add_a_record(ZONE, "web-a", "10.0.0.12");
    ipa.add_a_record(ZONE, "web-b", "10.0.0.13");
    // A third instance of the tenant has no host novajoin made.
    let (c, c_port) = (new_id(), new_id());
    api.add_server_with(&c, "web-c", "web-c", TENANT);
    api.add_port(&c_port, &c);
    let fip = new_id();
    let _listener = fip_listener(&ipa, &names, "versioned").await;
    let to = |port: &str, device: &str| {
        vec![neutron(
            "floatingip.update.end",
            neutron_floatingip(&fip, "192.168.5.40", Some(port), Some(device)),
        )]
    };
    publish_neutron(&names, to(&a.port, &a.id)).await;
    wait_until("the record at web-a", Duration::from_secs(30), || {
        a_records(&ipa, "web-a") == ["10.0.0.12", "192.168.5.40"]
    })
    .await;
    publish_neutron(&names, to(&b.port, &b.id)).await;
    wait_until("the record at web-b", Duration::from_secs(30), || {
        a_records(&ipa, "web-b") == ["10.0.0.13", "192.168.5.40"]
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    assert_eq!(
        a_records(&ipa, "web-a"),
        ["10.0.0.12"],
        "web-a's record left"
    );
    assert_eq!(
        notes(&ipa),
        [
            (
                format!("_novajoin-fip-{fip}"),
                vec![format!(
                    "ip=192.168.5.40 host=web-b.example.test port={}",
                    b.port
                )]
            ),
            (
                format!("_novajoin-port-{}", b.port),
                vec![format!("fip={fip}")]
            ),
        ]
        .into()
    );
    // Moved to an instance without a bound host: no record anywhere.
    publish_neutron(&names, to(&c_port, &c)).await;
    wait_until("web-b's record left", Duration::from_secs(30), || {
        a_records(&ipa, "web-b") == ["10.0.0.13"]
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    assert_eq!(a_records(&ipa, "web-a"), ["10.0.0.12"]);
    assert!(records(&ipa, ZONE, "web-c") == DnsRecordView::default());
    assert!(notes(&ipa).is_empty(), "{:?}", notes(&ipa));
}

// The hostile tenant: instance names and ports are the tenant's to choose.

#[tokio::test(flavor = "multi_thread")]
async fn floating_ips_of_instances_without_a_bound_host_get_no_record() {
    let _broker = BROKER.read().await;
    let (_, api) = cloud().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("fipunbound");
    // An infrastructure host, a host of the Python novajoin and a host
    // bound to another instance, each with its DNS name.
    ipa.seed_host_with("ipa-ca.example.test", None, None, true, None);
    ipa.add_a_record(ZONE, "ipa-ca", "192.0.2.1");
    ipa.seed_host_with(
        "legacy.example.test",
        Some(novajoin::ownership::HOST_DESCRIPTION),
        None,
        true,
        None,
    );
    ipa.add_a_record(ZONE, "legacy", "10.0.0.20");
    seed_bound_host(&ipa, "web.example.test", &new_id(), TENANT);
    ipa.add_a_record(ZONE, "web", "10.0.0.21");
    // A bound instance of another project, named by the tenant's own port
    // (a port's owner may write any device_id).
    let victim = bound_guest(&ipa, api, "victim", "example.test", TENANT);
    ipa.add_a_record(ZONE, "victim", "10.0.0.22");
    let (attacker_port, attacker_project) = (new_id(), "0badc0de0badc0de0badc0de0badc0de");
    api.add_port(&attacker_port, &victim.id);
    // The tenant's instances, named like them.
    let mut servers = Vec::new();
    for name in ["ipa-ca", "legacy", "web"] {
        let (id, port) = (new_id(), new_id());
        api.add_server_with(&id, name, name, TENANT);
        api.add_port(&port, &id);
        servers.push((id, port));
    }
    let before = ipa.dns_records(ZONE).unwrap();
    let _listener = fip_listener(&ipa, &names, "unversioned").await;
    publish_neutron(
        &names,
        vec![
            neutron(
                "floatingip.create.end",
                neutron_floatingip(
                    &new_id(),
                    "192.168.5.50",
                    Some(&servers[0].1),
                    Some(&servers[0].0),
                ),
            ),
            // Looked up through the port.
            neutron(
                "floatingip.update.end",
                neutron_floatingip(&new_id(), "192.168.5.51", Some(&servers[1].1), None),
            ),
            neutron(
                "floatingip.update.end",
                neutron_floatingip(
                    &new_id(),
                    "2001:db8::52",
                    Some(&servers[2].1),
                    Some(&servers[2].0),
                ),
            ),
            // The other project's floating IPs on its port naming the
            // victim, in the payload and through the port lookup.
            neutron(
                "floatingip.create.end",
                neutron_floatingip_of(
                    attacker_project,
                    &new_id(),
                    "192.168.5.54",
                    Some(&attacker_port),
                    Some(&victim.id),
                ),
            ),
            neutron(
                "floatingip.update.end",
                neutron_floatingip_of(
                    attacker_project,
                    &new_id(),
                    "192.168.5.55",
                    Some(&attacker_port),
                    None,
                ),
            ),
        ],
    )
    .await;
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![OsloMessage::info(
            "network.net-1",
            "network.floating_ip.associate",
            json!({"floating_ip": "192.168.5.53", "instance_id": servers[0].0, "project_id": TENANT}),
        )],
    )
    .await;
    wait_until("every instance looked up", Duration::from_secs(30), || {
        let reqs = api.requests();
        servers
            .iter()
            .map(|(id, _)| id)
            .chain([&victim.id])
            .all(|id| reqs.contains(&format!("GET /v2.1/servers/{id}")))
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    assert_eq!(
        ipa.dns_records(ZONE).unwrap(),
        before,
        "the zone is unchanged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_floating_ip_touches_only_its_value_at_bound_hosts() {
    let _broker = BROKER.read().await;
    let (_, api) = cloud().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("fipremove");
    // The floating IPs' addresses also sit at names that are not bound
    // hosts: an infrastructure host and a host of the Python novajoin.
    ipa.seed_host_with("ipa-ca.example.test", None, None, true, None);
    for ip in ["192.0.2.1", "192.168.5.60", "192.168.5.61"] {
        ipa.add_a_record(ZONE, "ipa-ca", ip);
    }
    ipa.seed_host_with(
        "legacy.example.test",
        Some(novajoin::ownership::HOST_DESCRIPTION),
        None,
        true,
        None,
    );
    ipa.add_a_record(ZONE, "legacy", "192.168.5.60");
    // The guest: its fixed address, other records and a floating-IP record
    // an older version added without notes.
    let web = bound_guest(&ipa, api, "web", "example.test", TENANT);
    ipa.add_a_record(ZONE, "web", "10.0.0.12");
    ipa.add_a_record(ZONE, "web", "192.168.5.60");
    ipa.add_record(ZONE, "web", "aaaarecord", "fd00::12");
    ipa.add_record(ZONE, "web", "txtrecord", "owner=ops");
    let web2 = bound_guest(&ipa, api, "web2", "example.test", TENANT);
    ipa.add_a_record(ZONE, "web2", "10.0.0.14");
    let ipa_ca = records(&ipa, ZONE, "ipa-ca");
    let _listener = fip_listener(&ipa, &names, "versioned").await;

    // 1. No notes (an older version's record): the address goes from bound
    //    hosts' names only.
    publish_neutron(
        &names,
        vec![neutron(
            "floatingip.update.end",
            neutron_floatingip(&new_id(), "192.168.5.60", None, None),
        )],
    )
    .await;
    wait_until(
        "the old record at web removed",
        Duration::from_secs(30),
        || a_records(&ipa, "web") == ["10.0.0.12"],
    )
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    assert_eq!(records(&ipa, ZONE, "ipa-ca"), ipa_ca);
    assert_eq!(a_records(&ipa, "legacy"), ["192.168.5.60"]);

    // 2. With notes: only the noted value at the noted host.
    let f1 = new_id();
    publish_neutron(
        &names,
        vec![neutron(
            "floatingip.create.end",
            neutron_floatingip(&f1, "192.168.5.61", Some(&web.port), Some(&web.id)),
        )],
    )
    .await;
    wait_until("the record at web", Duration::from_secs(30), || {
        a_records(&ipa, "web") == ["10.0.0.12", "192.168.5.61"]
    })
    .await;
    publish_neutron(
        &names,
        vec![neutron(
            "floatingip.delete.end",
            neutron_floatingip_deleted(&f1),
        )],
    )
    .await;
    wait_until("the record at web removed", Duration::from_secs(30), || {
        a_records(&ipa, "web") == ["10.0.0.12"]
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    assert_eq!(records(&ipa, ZONE, "ipa-ca"), ipa_ca);

    // 3. The noted host is no longer a bound host (replaced by an
    //    administrator's host of the same name): its records stay.
    let f2 = new_id();
    publish_neutron(
        &names,
        vec![neutron(
            "floatingip.create.end",
            neutron_floatingip(&f2, "192.168.5.62", Some(&web2.port), Some(&web2.id)),
        )],
    )
    .await;
    wait_until("the record at web2", Duration::from_secs(30), || {
        a_records(&ipa, "web2") == ["10.0.0.14", "192.168.5.62"]
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    ipa_support::client(&ipa)
        .host_del("web2.example.test", false)
        .await
        .expect("host_del");
    ipa.seed_host_with("web2.example.test", None, None, true, None);
    publish_neutron(
        &names,
        vec![neutron(
            "floatingip.delete.end",
            neutron_floatingip_deleted(&f2),
        )],
    )
    .await;
    wait_until("f2's notes removed", Duration::from_secs(30), || {
        notes(&ipa).is_empty()
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    assert_eq!(a_records(&ipa, "web2"), ["10.0.0.14", "192.168.5.62"]);
    assert_eq!(
        records(&ipa, ZONE, "web"),
        DnsRecordView {
            a: vec!["10.0.0.12".into()],
            aaaa: vec!["fd00::12".into()],
            txt: vec!["owner=ops".into()],
            ..Default::default()
        }
    );
    assert_eq!(records(&ipa, ZONE, "ipa-ca"), ipa_ca);
    assert_eq!(a_records(&ipa, "legacy"), ["192.168.5.60"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn project_subdomain_deletes_the_host_named_with_the_real_project() {
    let _broker = BROKER.read().await;
    // The original used the placeholder 'foo' here and deleted nothing.
    let (ks, _api) = cloud().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("projsub");
    let demo = ks.user("demo");
    let fqdn = format!("vm1.{}.example.test", demo.project.to_lowercase());
    enroll_like_vendordata(&ipa, &fqdn, None).await;
    enroll_like_vendordata(&ipa, "vm1.foo.example.test", None).await;
    let conf = join_conf(
        &ipa,
        &names,
        "versioned",
        &format!(
            "{}\n[DEFAULT]\nproject_subdomain = true\n",
            service_credentials(ks)
        ),
    );
    let _listener = NotifyProcess::start(&conf).await;
    let mut payload = versioned_instance(
        "instance.delete.end",
        "1.9",
        &new_id(),
        "vm1",
        json!({"ipa_enroll": "True"}),
    );
    payload["nova_object.data"]["tenant_id"] = json!(demo.project_id);
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![OsloMessage::info(
            "nova-compute:cmp-1",
            "instance.delete.end",
            payload,
        )],
    )
    .await;
    wait_until("the project host is gone", Duration::from_secs(30), || {
        ipa.host(&fqdn).is_none()
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    assert!(
        ipa.host("vm1.foo.example.test").is_some(),
        "the placeholder name is not touched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn update_of_an_instance_nova_no_longer_has_adds_nothing() {
    let _broker = BROKER.read().await;
    let (ks, api) = cloud().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("updgone");
    let (gone, alive) = (new_id(), new_id());
    seed_bound_host(&ipa, "gone.example.test", &gone, TENANT);
    seed_bound_host(&ipa, "alive.example.test", &alive, TENANT);
    api.add_server(&alive, "alive");
    let _listener = NotifyProcess::start(&join_conf(
        &ipa,
        &names,
        "unversioned",
        &service_credentials(ks),
    ))
    .await;
    let md = json!({"ipa_enroll": "True", "compact_service_HTTP": "[\"ctlplane\"]"});
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![
            OsloMessage::info(
                "compute.cmp-1",
                "compute.instance.update",
                legacy_instance("compute.instance.update", &gone, "gone", md.clone()),
            ),
            OsloMessage::info(
                "compute.cmp-1",
                "compute.instance.update",
                legacy_instance("compute.instance.update", &alive, "alive", md),
            ),
        ],
    )
    .await;
    wait_until("alive's service", Duration::from_secs(30), || {
        ipa.service(&realm_principal(&ipa, "HTTP/alive.ctlplane.example.test"))
            .is_some()
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    assert!(
        ipa.host("gone.ctlplane.example.test").is_none(),
        "no sub-host for an instance nova does not have"
    );
    assert!(ipa
        .service(&realm_principal(&ipa, "HTTP/gone.ctlplane.example.test"))
        .is_none());
}

// ---------------------------------------------------------------------------
// Cache eviction: a delete removes the instance's answer from the shared
// (Redis) response cache, so a re-used instance id never gets a stale OTP.

#[tokio::test(flavor = "multi_thread")]
async fn delete_evicts_the_instance_from_the_shared_response_cache() {
    let _broker = BROKER.read().await;
    use novajoin::cache::{CacheSettings, Fingerprint, RequestKey, ResponseCache};

    let ns = support::redis::RedisNamespace::new("notify-evict");
    let secret = "0123456789abcdef0123456789abcdef0123456789";
    let cache_conf = format!("[cache]\nbackend = redis\nredis_url = {}\nsecret_key = {secret}\nkey_prefix = {}\nttl = 3600\n",
        ns.url, ns.prefix);
    // What the vendordata service stores for an instance, through the
    // cache's own API and the same settings.
    let mut files = novajoin::config::ConfigFiles::default();
    files
        .add_text(std::path::Path::new("join.conf"), &cache_conf)
        .unwrap();
    let settings: CacheSettings = CacheSettings::read(&mut &files).unwrap();
    let cache = ResponseCache::new(&settings).unwrap();
    let (kept, gone) = (new_id(), new_id());
    for id in [&kept, &gone] {
        let key = RequestKey {
            instance_id: id.clone(),
            fingerprint: Fingerprint([[7; 8]; 5]),
        };
        let (resp, _) = cache
            .get_or_compute(
                key,
                Box::new(|| {
                    Box::pin(async {
                        http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
                            b"{\"hostname\": \"vm\"}",
                        )))
                    })
                }),
            )
            .await;
        let resp = resp.expect("the handler's answer, not a refusal");
        assert_eq!(resp.status(), 200);
    }
    let entry = |id: &str| format!("{}entry:{id}", ns.prefix);
    assert!(
        ns.keys().contains(&entry(&gone)) && ns.keys().contains(&entry(&kept)),
        "{:?}",
        ns.keys()
    );

    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("evict");
    enroll_like_vendordata(&ipa, "evicted.example.test", None).await;
    let _listener =
        NotifyProcess::start(&join_conf(&ipa, &names, "unversioned", &cache_conf)).await;
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![legacy_delete_of(&gone, "evicted")],
    )
    .await;
    wait_until("host gone", Duration::from_secs(30), || {
        ipa.host("evicted.example.test").is_none()
    })
    .await;
    wait_until("entry evicted", Duration::from_secs(10), || {
        !ns.keys().contains(&entry(&gone))
    })
    .await;
    assert!(
        ns.keys().contains(&entry(&kept)),
        "other instances' entries stay"
    );
}

// ---------------------------------------------------------------------------
// Transient IPA failures: retried with backoff, given back to the broker
// after retry_max_attempts, never lost.

#[tokio::test(flavor = "multi_thread")]
async fn an_ipa_outage_delays_deletes_without_losing_them() {
    let _broker = BROKER.read().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("outage");
    enroll_like_vendordata(&ipa, "patient.example.test", None).await;
    let conf = join_conf(&ipa, &names, "unversioned", "retry_max_attempts = 2\n");
    let listener = NotifyProcess::start(&conf).await;
    ipa.go_down().await;
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![legacy_delete("patient")],
    )
    .await;
    listener
        .wait_log(
            "failed for a transient reason; retrying",
            Duration::from_secs(60),
        )
        .await;
    listener
        .wait_log(
            "given back to the broker for later",
            Duration::from_secs(60),
        )
        .await;
    // Redelivered by the broker and tried again while IPA is still down.
    wait_until("a redelivery", Duration::from_secs(60), || {
        listener.log_text().contains("\"redelivered\":true")
    })
    .await;
    ipa.go_up().await.unwrap();
    wait_until(
        "the host removed once IPA is back",
        Duration::from_secs(60),
        || ipa.host("patient.example.test").is_none(),
    )
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
}

// ---------------------------------------------------------------------------
// nova's `notification_format = both` (what `novajoin install` sets): nova
// sends every event in both formats. install routes only the versioned copy
// to novajoin's topic; when the legacy copy reaches it too (an operator who
// also added the topic to [oslo_messaging_notifications] topics), the
// versioned listener acknowledges it without acting, and a second copy of
// the versioned delete (a redelivery) finds nothing left to do.

#[tokio::test(flavor = "multi_thread")]
async fn both_formats_of_one_delete_remove_the_host_once_and_reject_nothing() {
    let _broker = BROKER.read().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("both");
    let vm = new_id();
    let other = new_id();
    seed_bound_host(&ipa, "vm1.example.test", &vm, TENANT);
    seed_bound_host(&ipa, "vm2.example.test", &other, TENANT);
    let listener = NotifyProcess::start(&join_conf(&ipa, &names, "versioned", "")).await;
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![
            support::notify::nova_delete("unversioned", &vm, "vm1", TENANT),
            support::notify::nova_delete("versioned", &vm, "vm1", TENANT),
            support::notify::nova_delete("versioned", &vm, "vm1", TENANT),
        ],
    )
    .await;
    wait_until("vm1 gone", Duration::from_secs(30), || {
        ipa.host("vm1.example.test").is_none()
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    assert_eq!(ipa.commands("host_del"), 1, "one removal for one instance");
    assert_eq!(listener.count_log("notification rejected"), 0);
    assert!(
        ipa.host("vm2.example.test").is_some(),
        "another instance's host is kept"
    );
}

// A quorum queue drops a message given back more often than its delivery
// limit; the listener dead-letters it on its last return instead.
#[tokio::test(flavor = "multi_thread")]
async fn at_the_quorum_delivery_limit_a_notification_is_dead_lettered_not_dropped() {
    let _broker = BROKER.read().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("limit");
    enroll_like_vendordata(&ipa, "limited.example.test", None).await;
    let conf = join_conf(
        &ipa,
        &names,
        "unversioned",
        "retry_max_attempts = 1\n[oslo_messaging_rabbit]\nrabbit_quorum_queue = true\n\
         rabbit_quorum_delivery_limit = 1\n",
    );
    let listener = NotifyProcess::start(&conf).await;
    ipa.go_down().await;
    publish(
        &names,
        &names.nova_exchange,
        "rabbit_quorum_queue=true&rabbit_quorum_delivery_limit=1",
        vec![legacy_delete("limited")],
    )
    .await;
    listener
        .wait_log("copied to the dead-letter queue", Duration::from_secs(90))
        .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    let dead = names
        .take_messages(&names.default_dead_letter_queue())
        .await;
    assert_eq!(dead.len(), 1, "kept in the dead-letter queue");
    let reason = rabbit::header_text(&dead[0].1, "x-novajoin-error").unwrap_or_default();
    assert!(reason.contains("delivery limit"), "{reason}");
    assert!(
        listener.log_text().contains("\"redelivered\":true"),
        "given back once before the limit"
    );
    ipa.go_up().await.unwrap();
}
