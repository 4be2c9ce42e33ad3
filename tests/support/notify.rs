//! The notification listener as tests drive it: the real `novajoin
//! notify` binary ([`NotifyProcess`]) with a join.conf for one test's
//! broker names, publishing through the real oslo.messaging Notifier, and
//! nova's and neutron's notification payloads field for field (spec
//! notifications.md §8-§9).

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::ipa::{self as ipa_support, IpaDouble};
use super::rabbit::{self, OsloMessage, RabbitNames};

/// The project of the instances in the payloads unless a test names one.
pub const TENANT: &str = "c97027dd880d4c129ae7a4ba7edade05";

/// A running `novajoin notify`, killed when dropped.
pub struct NotifyProcess {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl NotifyProcess {
    /// Writes `conf` to a join.conf and starts the listener; returns once it
    /// logged that it consumes (or panics with its log after 30 s).
    pub async fn start(conf: &str) -> Self {
        let p = Self::spawn(conf);
        p.wait_log("listening for notifications", Duration::from_secs(30))
            .await;
        p
    }

    pub fn spawn(conf: &str) -> Self {
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

    pub fn log_text(&self) -> String {
        super::settled_log(&self.log)
    }

    pub async fn wait_log(&self, needle: &str, timeout: Duration) {
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

    pub fn count_log(&self, needle: &str) -> usize {
        self.log_text().matches(needle).count()
    }

    pub fn sigterm(&self) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill SIGTERM");
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub fn is_running(&mut self) -> bool {
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
pub fn join_conf(ipa: &IpaDouble, names: &RabbitNames, format: &str, extra: &str) -> String {
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

/// Waits until the notification queue holds nothing, ready or unacked.
pub async fn wait_queue_settled(names: &RabbitNames, timeout: Duration) {
    if let Err(last) = queue_settles(names, timeout).await {
        panic!(
            "queue {} still holds (ready, unacked) = {last:?} after {timeout:?}",
            names.queue()
        );
    }
}

/// Whether the notification queue comes to hold nothing within `timeout`;
/// else the last (ready, unacked) counts seen.
pub async fn queue_settles(
    names: &RabbitNames,
    timeout: Duration,
) -> Result<(), Option<(u64, u64)>> {
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
pub async fn publish(names: &RabbitNames, exchange: &str, query: &str, messages: Vec<OsloMessage>) {
    let (publisher, exchange, query) = (names.publisher(), exchange.to_string(), query.to_string());
    tokio::task::spawn_blocking(move || publisher.publish(&exchange, &query, &messages))
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------
// Payloads, field for field as nova sends them.

/// nova-compute's unversioned instance payload of `event` for an instance
/// of project [`TENANT`].
pub fn legacy_instance(event: &str, instance_id: &str, hostname: &str, metadata: Value) -> Value {
    legacy_instance_of(event, instance_id, hostname, TENANT, metadata)
}

/// [`legacy_instance`] for an instance of project `tenant`.
pub fn legacy_instance_of(
    event: &str,
    instance_id: &str,
    hostname: &str,
    tenant: &str,
    metadata: Value,
) -> Value {
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
        "tenant_id": tenant,
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

/// nova's versioned instance payload of `event` at `version` for an
/// instance of project [`TENANT`].
pub fn versioned_instance(
    event: &str,
    version: &str,
    instance_id: &str,
    host_name: &str,
    metadata: Value,
) -> Value {
    versioned_instance_of(event, version, instance_id, host_name, TENANT, metadata)
}

/// [`versioned_instance`] for an instance of project `tenant`.
pub fn versioned_instance_of(
    event: &str,
    version: &str,
    instance_id: &str,
    host_name: &str,
    tenant: &str,
    metadata: Value,
) -> Value {
    let (class, deleted) = match event {
        "instance.create.end" => ("InstanceCreatePayload", false),
        "instance.update" => ("InstanceUpdatePayload", false),
        "instance.rebuild.start" => ("InstanceActionRebuildPayload", false),
        "instance.evacuate" => ("InstanceActionPayload", false),
        _ => ("InstanceActionPayload", true),
    };
    let mut data = json!({
        "action_initiator_project": tenant, "action_initiator_user": "8a0e7b5f1c2d4e3f9a6b7c8d9e0f1a2b",
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
        "task_state": null, "tenant_id": tenant,
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
        "instance.rebuild.start" => {
            d.insert("fault".into(), Value::Null);
            d.insert("trusted_image_certificates".into(), Value::Null);
        }
        _ => {
            d.insert("fault".into(), Value::Null);
        }
    }
    json!({"nova_object.data": data, "nova_object.name": class, "nova_object.namespace": "nova",
           "nova_object.version": version})
}

// ---------------------------------------------------------------------------
// neutron's payloads (its API layer's notifier: the API response body for
// create and update, only the id for deletes).

/// The `{"floatingip": {...}}` of `floatingip.create.end` and
/// `floatingip.update.end` for floating IP `id` with address `ip` in
/// project [`TENANT`]: associated with `port` (or not, `None`), with
/// `port_details` naming `device` when given (current neutron), absent when
/// `device` is `None` and a port is set (older neutron), null when there is
/// no port.
pub fn neutron_floatingip(id: &str, ip: &str, port: Option<&str>, device: Option<&str>) -> Value {
    neutron_floatingip_of(TENANT, id, ip, port, device)
}

/// [`neutron_floatingip`] for a floating IP of project `project`.
pub fn neutron_floatingip_of(
    project: &str,
    id: &str,
    ip: &str,
    port: Option<&str>,
    device: Option<&str>,
) -> Value {
    let mut p = json!({"floatingip": {
        "created_at": "2024-05-14T10:25:03Z", "description": "", "dns_domain": "", "dns_name": "",
        "fixed_ip_address": port.map(|_| "10.0.0.12"),
        "floating_ip_address": ip, "floating_network_id": "d9edfcd5-f245-4f45-be26-4383942fd74c",
        "id": id, "port_details": Value::Null, "port_forwardings": [], "port_id": port,
        "project_id": project, "qos_policy_id": null, "revision_number": 2,
        "router_id": port.map(|_| "62c1fd2b-8149-4222-8d6b-e581c55e5264"),
        "status": if port.is_some() { "ACTIVE" } else { "DOWN" }, "tags": [], "tenant_id": project,
        "updated_at": "2024-05-14T10:25:41Z"}});
    let f = p["floatingip"].as_object_mut().unwrap();
    match (port, device) {
        (Some(_), Some(device)) => {
            f.insert(
                "port_details".into(),
                json!({"admin_state_up": true, "device_id": device, "device_owner": "compute:nova",
                       "mac_address": "fa:16:3e:4c:2c:30", "name": "",
                       "network_id": "0ee5b3a1-2c4d-4e5f-8a9b-1c2d3e4f5a6b", "status": "ACTIVE"}),
            );
        }
        (Some(_), None) => {
            f.remove("port_details");
        }
        (None, _) => {}
    }
    p
}

/// `floatingip.delete.end`: the id only.
pub fn neutron_floatingip_deleted(id: &str) -> Value {
    json!({"floatingip_id": id})
}

/// `port.delete.end`: the id only.
pub fn neutron_port_deleted(port: &str) -> Value {
    json!({"port_id": port})
}

/// A neutron notification as neutron-server `ctl-1` publishes it.
pub fn neutron(event: &str, payload: Value) -> OsloMessage {
    OsloMessage::info("network.ctl-1", event, payload)
}

/// nova's delete of `instance` (named `hostname`, project `project`,
/// metadata asking for enrollment) in `format` (`versioned` or not), as
/// nova-compute publishes it.
pub fn nova_delete(format: &str, instance: &str, hostname: &str, project: &str) -> OsloMessage {
    let metadata = json!({"ipa_enroll": "True"});
    if format == "versioned" {
        OsloMessage::info(
            "nova-compute:cmp-1",
            "instance.delete.end",
            versioned_instance_of(
                "instance.delete.end",
                "1.9",
                instance,
                hostname,
                project,
                metadata,
            ),
        )
    } else {
        OsloMessage::info(
            "compute.cmp-1",
            "compute.instance.delete.end",
            legacy_instance_of(
                "compute.instance.delete.end",
                instance,
                hostname,
                project,
                metadata,
            ),
        )
    }
}
