//! `novajoin notify` end to end: the real oslo.messaging Notifier publishes
//! nova's and neutron's notifications to the real RabbitMQ, the real
//! `novajoin notify` binary consumes them, and the IPA double's state is
//! checked afterwards.
//!
//! Every test has its own topic, exchanges and IPA double, so tests run in
//! parallel with each other and with other engineers' tests.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use novajoin::ipa::{EnrollmentBatch, HostOutcome, HostWrite, NewHost, Secret};
use serde_json::{json, Value};
use support::ipa::{self as ipa_support, IpaDouble};
use support::rabbit::{self, OsloMessage, RabbitNames};

// ---------------------------------------------------------------------------
// The broker restart test must not run while other tests of this binary
// depend on the broker: a restart drops their (transient) queues. Every test
// holds this lock shared; the restart test holds it exclusively.

static BROKER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

// ---------------------------------------------------------------------------
// The listener process.

/// A running `novajoin notify`, killed when dropped.
struct NotifyProcess {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl NotifyProcess {
    /// Writes `conf` to a join.conf and starts the listener; returns once it
    /// logged that it consumes (or panics with its log after 30 s).
    async fn start(conf: &str) -> Self {
        let p = Self::spawn(conf);
        p.wait_log("listening for notifications", Duration::from_secs(30))
            .await;
        p
    }

    fn spawn(conf: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("novajoin-notify-")
            .tempdir()
            .expect("tempdir");
        let conf_path = dir.path().join("join.conf");
        std::fs::write(&conf_path, conf).expect("write join.conf");
        let log = dir.path().join("notify.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_novajoin"))
            .arg("notify")
            .arg("--config-file")
            .arg(&conf_path)
            .env(
                "RUST_LOG",
                "debug,lapin=warn,hyper=info,reqwest=info,h2=info",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start novajoin notify");
        Self {
            child,
            log,
            _dir: dir,
        }
    }

    fn log_text(&self) -> String {
        support::settled_log(&self.log)
    }

    async fn wait_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the listener did not log {needle:?} within {timeout:?}; its log:\n{}",
            self.log_text()
        );
    }

    fn count_log(&self, needle: &str) -> usize {
        self.log_text().matches(needle).count()
    }

    fn sigterm(&self) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill SIGTERM");
    }

    async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for NotifyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- novajoin notify log ----\n{}", self.log_text());
        }
    }
}

/// join.conf for a listener on `names` against `ipa`, plus `extra` lines.
fn join_conf(ipa: &IpaDouble, names: &RabbitNames, format: &str, extra: &str) -> String {
    format!(
        "{ipa}\n[DEFAULT]\ntransport_url = {url}\nnotifications_topic = {topic}\ncontrol_exchange = {exchange}\n\
         notification_format = {format}\nlog_format_style = json\n\
         [oslo_messaging_rabbit]\nkombu_reconnect_delay = 0.5\nrabbit_retry_interval = 0.5\n\
         rabbit_retry_backoff = 0.5\nrabbit_interval_max = 2\n\
         [notify]\npublisher_exchanges = {nova},{neutron}\nretry_initial_delay = 0.2\nretry_max_delay = 1\n\
         {extra}\n",
        ipa = ipa_support::join_conf(ipa),
        url = rabbit::TRANSPORT_URL,
        topic = names.topic,
        exchange = names.control_exchange,
        nova = names.nova_exchange,
        neutron = names.neutron_exchange,
    )
}

// ---------------------------------------------------------------------------
// Waiting and publishing.

async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Waits until the notification queue holds nothing, ready or unacked.
async fn wait_queue_settled(names: &RabbitNames, timeout: Duration) {
    if let Err(last) = queue_settles(names, timeout).await {
        panic!(
            "queue {} still holds (ready, unacked) = {last:?} after {timeout:?}",
            names.queue()
        );
    }
}

/// Whether the notification queue comes to hold nothing within `timeout`;
/// else the last (ready, unacked) counts seen.
async fn queue_settles(names: &RabbitNames, timeout: Duration) -> Result<(), Option<(u64, u64)>> {
    let q = names.queue();
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        let counts = tokio::task::spawn_blocking({
            let q = q.clone();
            move || rabbit::queue_counts(&q)
        })
        .await
        .unwrap();
        if counts == Some((0, 0)) {
            return Ok(());
        }
        last = counts;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(last)
}

/// Publishes with oslo.messaging from a blocking thread.
async fn publish(names: &RabbitNames, exchange: &str, query: &str, messages: Vec<OsloMessage>) {
    let (publisher, exchange, query) = (names.publisher(), exchange.to_string(), query.to_string());
    tokio::task::spawn_blocking(move || publisher.publish(&exchange, &query, &messages))
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------
// Payloads, field for field as nova and neutron send them (spec
// notifications.md §8-§9).

const TENANT: &str = "c97027dd880d4c129ae7a4ba7edade05";

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

fn legacy_instance(event: &str, instance_id: &str, hostname: &str, metadata: Value) -> Value {
    let deleted = event.contains("delete");
    let mut p = json!({
        "access_ip_v4": null, "access_ip_v6": null, "architecture": null,
        "availability_zone": "nova", "cell_name": "",
        "created_at": "2024-05-14 10:21:07+00:00",
        "deleted_at": if deleted { "2024-05-14T11:02:46.000000" } else { "" },
        "disk_gb": 20, "display_name": hostname, "ephemeral_gb": 0,
        "host": "cmp-1", "hostname": hostname,
        "image_meta": {"base_image_ref": "155d900f-4e14-4e4c-a73d-069cbf4541e6", "container_format": "bare",
                       "disk_format": "qcow2", "min_disk": "20", "min_ram": "0"},
        "image_ref_url": "http://ctl-1.example.test:9292/images/155d900f-4e14-4e4c-a73d-069cbf4541e6",
        "instance_flavor_id": "2", "instance_id": instance_id, "instance_type": "m1.small",
        "instance_type_id": 2, "kernel_id": "", "launched_at": "2024-05-14T10:21:19.000000",
        "memory_mb": 2048, "metadata": metadata, "node": "cmp-1.example.test", "os_type": null,
        "progress": "", "ramdisk_id": "", "reservation_id": "r-3b4x5n7q", "root_gb": 20,
        "state": if deleted { "deleted" } else { "active" }, "state_description": "",
        "tenant_id": TENANT,
        "terminated_at": if deleted { "2024-05-14T11:02:45.000000" } else { "" },
        "user_id": "8a0e7b5f1c2d4e3f9a6b7c8d9e0f1a2b", "vcpus": 1,
    });
    let m = p.as_object_mut().unwrap();
    match event {
        "compute.instance.create.end" => {
            m.insert(
                "fixed_ips".into(),
                json!([{"address": "10.0.0.12", "floating_ips": [], "label": "private",
                "meta": {}, "type": "fixed", "version": 4, "vif_mac": "fa:16:3e:4c:2c:30"}]),
            );
            m.insert("message".into(), json!("Success"));
        }
        "compute.instance.update" => {
            for (k, v) in [
                (
                    "audit_period_beginning",
                    json!("2024-05-01T00:00:00.000000"),
                ),
                ("audit_period_ending", json!("2024-05-14T10:21:19.000000")),
                ("new_task_state", Value::Null),
                ("old_state", json!("building")),
                ("old_task_state", json!("spawning")),
            ] {
                m.insert(k.into(), v);
            }
        }
        _ => {}
    }
    p
}

fn versioned_instance(
    event: &str,
    version: &str,
    instance_id: &str,
    host_name: &str,
    metadata: Value,
) -> Value {
    let (class, deleted) = match event {
        "instance.create.end" => ("InstanceCreatePayload", false),
        "instance.update" => ("InstanceUpdatePayload", false),
        _ => ("InstanceActionPayload", true),
    };
    let mut data = json!({
        "action_initiator_project": TENANT, "action_initiator_user": "8a0e7b5f1c2d4e3f9a6b7c8d9e0f1a2b",
        "architecture": null, "auto_disk_config": "MANUAL", "availability_zone": "nova",
        "block_devices": null, "created_at": "2024-05-14T10:21:07Z",
        "deleted_at": if deleted { json!("2024-05-14T11:02:46Z") } else { Value::Null },
        "display_description": null, "display_name": host_name,
        "flavor": {"nova_object.data": {"description": null, "disabled": false, "ephemeral_gb": 0, "extra_specs": {},
                   "flavorid": "2", "is_public": true, "memory_mb": 2048, "name": "m1.small", "projects": null,
                   "root_gb": 20, "rxtx_factor": 1.0, "swap": 0, "vcpu_weight": 0, "vcpus": 1},
                   "nova_object.name": "FlavorPayload", "nova_object.namespace": "nova", "nova_object.version": "1.4"},
        "host": "cmp-1", "host_name": host_name, "image_uuid": "155d900f-4e14-4e4c-a73d-069cbf4541e6",
        "ip_addresses": [], "kernel_id": "", "key_name": "mykey", "launched_at": "2024-05-14T10:21:19Z",
        "locked": false, "locked_reason": null, "metadata": metadata, "node": "cmp-1.example.test",
        "os_type": null, "power_state": if deleted { "pending" } else { "running" }, "progress": 0,
        "ramdisk_id": "", "request_id": "req-5b6c791d-5709-4f36-8fbe-c3e02869e35d",
        "reservation_id": "r-3b4x5n7q", "shares": null, "state": if deleted { "deleted" } else { "active" },
        "task_state": null, "tenant_id": TENANT,
        "terminated_at": if deleted { json!("2024-05-14T11:02:45Z") } else { Value::Null },
        "updated_at": "2024-05-14T11:02:45Z", "user_id": "8a0e7b5f1c2d4e3f9a6b7c8d9e0f1a2b", "uuid": instance_id,
    });
    let d = data.as_object_mut().unwrap();
    match event {
        "instance.update" => {
            d.insert("old_display_name".into(), Value::Null);
            d.insert("tags".into(), json!([]));
            d.insert("state_update".into(), json!({"nova_object.data": {"new_task_state": null, "old_state": "building",
                "old_task_state": "spawning", "state": "active"}, "nova_object.name": "InstanceStateUpdatePayload",
                "nova_object.namespace": "nova", "nova_object.version": "1.0"}));
            d.insert("audit_period".into(), json!({"nova_object.data": {"audit_period_beginning": "2024-05-01T00:00:00Z",
                "audit_period_ending": "2024-05-14T10:21:19Z"}, "nova_object.name": "AuditPeriodPayload",
                "nova_object.namespace": "nova", "nova_object.version": "1.0"}));
        }
        "instance.create.end" => {
            d.insert("fault".into(), Value::Null);
            d.insert("keypairs".into(), json!([]));
            d.insert("tags".into(), json!([]));
            d.insert("trusted_image_certificates".into(), Value::Null);
            d.insert("instance_name".into(), json!("instance-00000001"));
        }
        _ => {
            d.insert("fault".into(), Value::Null);
        }
    }
    json!({"nova_object.data": data, "nova_object.name": class, "nova_object.namespace": "nova",
           "nova_object.version": version})
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
    // Glance configured here at all and must still clean up novajoin's host,
    // while leaving alone a host novajoin did not create.
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("noflag");
    enroll_like_vendordata(&ipa, "img1.example.test", None).await;
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
                versioned_instance("instance.delete.end", "1.9", &new_id(), "img1", json!({})),
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
    assert!(listener.log_text().contains("novajoin did not enroll"));
}

async fn check_update_adds_services(format: &str, messages: impl Fn(&str, Value) -> OsloMessage) {
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new(&format!("upd{}", &format[..1]));
    enroll_like_vendordata(&ipa, "vm1.example.test", None).await;
    let _listener = NotifyProcess::start(&join_conf(&ipa, &names, format, "")).await;
    let vip = format!("overcloud.storage.{}", ipa.domain());
    publish(
        &names,
        &names.nova_exchange,
        "",
        vec![messages(&new_id(), service_metadata(&vip))],
    )
    .await;
    let sub_svc = realm_principal(&ipa, "HTTP/vm1.ctlplane.example.test");
    wait_until("compact service created", Duration::from_secs(30), || {
        ipa.service(&sub_svc).is_some()
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
    let vip_svc = ipa
        .service(&realm_principal(&ipa, &format!("HTTP/{vip}")))
        .expect("managed service created");
    assert!(
        vip_svc.managed_by.iter().any(|h| h == "vm1.example.test"),
        "{vip_svc:?}"
    );
    let sub = ipa.service(&sub_svc).unwrap();
    assert!(
        sub.managed_by.iter().any(|h| h == "vm1.example.test"),
        "{sub:?}"
    );
    assert!(ipa.host(&vip).is_some() && ipa.host("vm1.ctlplane.example.test").is_some());
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
async fn without_a_dead_letter_queue_malformed_messages_are_rejected_not_requeued() {
    let _broker = BROKER.read().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("rej");
    let listener = NotifyProcess::start(&join_conf(&ipa, &names, "versioned", "")).await;
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
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
    for i in 0..N {
        ipa.seed_host(&format!("storm{i}.example.test"));
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
                    &new_id(),
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
    // Failed once in about ten full runs with one delivery left unacked
    // (session 4): the listener's warnings and errors say why.
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

fn a_records(ipa: &IpaDouble, name: &str) -> Vec<String> {
    ipa.dns_records("example.test.")
        .and_then(|z| z.get(name).map(|r| r.a.clone()))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn nova_network_floating_ip_associate_and_disassociate() {
    let _broker = BROKER.read().await;
    let (ks, api) = cloud().await;
    let ipa = ipa_support::start().await;
    let names = RabbitNames::new("fipnn");
    let server = new_id();
    api.add_server(&server, "web-nn");
    let _listener = NotifyProcess::start(&join_conf(
        &ipa,
        &names,
        "unversioned",
        &service_credentials(ks),
    ))
    .await;
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
        a_records(&ipa, "web-nn") == ["192.168.5.201"]
    })
    .await;
    assert!(
        api.requests()
            .iter()
            .any(|r| r == &format!("GET /v2.1/servers/{server}")),
        "{:?}",
        api.requests()
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
        a_records(&ipa, "web-nn").is_empty()
    })
    .await;
    wait_queue_settled(&names, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn neutron_floatingip_update_associates_and_disassociates_in_both_formats() {
    let _broker = BROKER.read().await;
    let (ks, api) = cloud().await;
    for format in ["unversioned", "versioned"] {
        let ipa = ipa_support::start().await;
        let names = RabbitNames::new("fipq");
        let (server_a, server_b, port_b) = (new_id(), new_id(), new_id());
        api.add_server(&server_a, "web-a");
        api.add_server(&server_b, "web-b");
        api.add_port(&port_b, &server_b);
        let _listener =
            NotifyProcess::start(&join_conf(&ipa, &names, format, &service_credentials(ks))).await;
        let fip = |ip: &str, port: Value, details: Value| {
            json!({"floatingip": {
            "created_at": "2024-05-14T10:25:03Z", "description": "", "dns_domain": "", "dns_name": "",
            "fixed_ip_address": if port.is_null() { Value::Null } else { json!("10.0.0.12") },
            "floating_ip_address": ip, "floating_network_id": "d9edfcd5-f245-4f45-be26-4383942fd74c",
            "id": new_id(), "port_details": details, "port_forwardings": [], "port_id": port,
            "project_id": TENANT, "qos_policy_id": null, "revision_number": 2,
            "router_id": if port.is_null() { Value::Null } else { json!("62c1fd2b-8149-4222-8d6b-e581c55e5264") },
            "status": "DOWN", "tags": [], "tenant_id": TENANT, "updated_at": "2024-05-14T10:25:41Z"}})
        };
        // Current neutron: port_details names the instance.
        let with_details = fip(
            "192.168.5.10",
            json!(new_id()),
            json!({"admin_state_up": true, "device_id": server_a,
            "device_owner": "compute:nova", "mac_address": "fa:16:3e:4c:2c:30", "name": "",
            "network_id": "0ee5b3a1-2c4d-4e5f-8a9b-1c2d3e4f5a6b", "status": "ACTIVE"}),
        );
        // Older neutron (no port_details): the port is looked up.
        let mut without_details = fip("192.168.5.11", json!(port_b), Value::Null);
        without_details["floatingip"]
            .as_object_mut()
            .unwrap()
            .remove("port_details");
        publish(
            &names,
            &names.neutron_exchange,
            "",
            vec![
                OsloMessage::info("network.ctl-1", "floatingip.update.end", with_details),
                OsloMessage::info("network.ctl-1", "floatingip.update.end", without_details),
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
                .any(|r| r.contains(&format!("ports?id={port_b}"))),
            "{format}: port looked up"
        );
        publish(
            &names,
            &names.neutron_exchange,
            "",
            vec![OsloMessage::info(
                "network.ctl-1",
                "floatingip.update.end",
                fip("192.168.5.10", Value::Null, Value::Null),
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
    }
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
    enroll_like_vendordata(&ipa, "gone.example.test", None).await;
    enroll_like_vendordata(&ipa, "alive.example.test", None).await;
    let alive = new_id();
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
                legacy_instance("compute.instance.update", &new_id(), "gone", md.clone()),
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
    use novajoin::cache::{CacheSettings, Fingerprint, RawCacheOptions, RequestKey, ResponseCache};

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
    let settings: CacheSettings = RawCacheOptions::from_config(&files)
        .unwrap()
        .resolve()
        .unwrap();
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
