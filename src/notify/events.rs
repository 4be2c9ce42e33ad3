//! From a decoded notification to the event novajoin acts on.
//!
//! The filters are the original listener's (prefix matches on publisher and
//! event type), with one fix: versioned deletes published by nova-api
//! (instance never scheduled, compute down) pass, because every `nova-*`
//! publisher is accepted. Messages outside the filter are ordinary traffic
//! on the topic and are acknowledged and ignored; a message inside the
//! filter that cannot be understood is an error the listener rejects.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::envelope::Notification;
use super::settings::NotificationFormat;

/// Why a notification inside the filter cannot be handled. Permanent: the
/// listener rejects the message (dead-letters it when configured).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Passes the event filter but is not one of the handled events (the
    /// original's fallback handler).
    #[error("unknown event type '{0}' from '{1}'")]
    UnknownEvent(String, String),
    /// A versioned payload with a major version this listener does not know.
    #[error("{event}: payload {name} version {version} is not supported (supported majors: {supported})")]
    UnsupportedVersion {
        /// Event type.
        event: String,
        /// `nova_object.name`.
        name: String,
        /// `nova_object.version`.
        version: String,
        /// Majors accepted.
        supported: &'static str,
    },
    /// A required payload field is missing or has the wrong type.
    #[error("{event}: payload field '{field}' is missing or not {expected}")]
    BadField {
        /// Event type.
        event: String,
        /// Field path.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
}

/// The facts about an instance that the handlers need.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceFacts {
    /// Instance UUID.
    pub instance_id: String,
    /// The instance's host name as nova reports it (`hostname` /
    /// `host_name`), before the domain is added.
    pub hostname: String,
    /// Owning project id (`tenant_id`), for project_subdomain.
    pub project_id: Option<String>,
    /// Instance metadata, in payload order (managed services keep it).
    pub metadata: Map<String, Value>,
    /// Image properties the legacy payload carries (`image_meta`); empty
    /// for versioned payloads, which carry none.
    pub image_meta: Map<String, Value>,
}

impl InstanceFacts {
    /// Whether the payload itself says the instance is enrolled:
    /// `ipa_enroll`, lower-cased, equals `true` in the instance metadata or
    /// the image properties (the original's rule).
    pub fn payload_says_enrolled(&self) -> bool {
        let flag = |m: &Map<String, Value>| {
            m.get("ipa_enroll")
                .and_then(Value::as_str)
                .is_some_and(|v| v.to_lowercase() == "true")
        };
        flag(&self.metadata) || flag(&self.image_meta)
    }
}

/// An event the listener acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `compute.instance.create.end` / `instance.create.end`: logged only.
    InstanceCreated(Box<InstanceFacts>),
    /// `compute.instance.update` / `instance.update`: managed and compact
    /// services follow the metadata.
    InstanceUpdated(Box<InstanceFacts>),
    /// `compute.instance.delete.end` / `instance.delete.end`: the host and
    /// everything novajoin made for it go.
    InstanceDeleted(Box<InstanceFacts>),
    /// `compute.instance.rebuild.start` / `instance.rebuild.start` (a
    /// rebuild, or an evacuation, which nova runs as a rebuild on another
    /// host) and `instance.evacuate`: the guest is wiped, so its enrollment
    /// is revoked and it can enroll again.
    InstanceRebuilt(Box<InstanceFacts>),
    /// nova-network `network.floating_ip.associate`.
    FloatingIpAssociated {
        /// The floating IP.
        ip: IpAddr,
        /// The instance it now points at.
        instance_id: String,
    },
    /// nova-network `network.floating_ip.disassociate` (no floating-IP
    /// id), or neutron `floatingip.update.end` with no port.
    FloatingIpDisassociated {
        /// The floating IP.
        ip: IpAddr,
        /// neutron's floating-IP id; `None` from nova-network.
        floatingip_id: Option<String>,
    },
    /// neutron `floatingip.update.end` or `floatingip.create.end` with a
    /// port.
    FloatingIpPortAssociated {
        /// The floating IP.
        ip: IpAddr,
        /// neutron's floating-IP id.
        floatingip_id: String,
        /// The port it is associated with.
        port_id: String,
        /// The port's device (instance) when the payload has `port_details`.
        /// A port's owner may write any `device_id`, so it names an
        /// instance only together with [`project_id`](Self::FloatingIpPortAssociated::project_id).
        device_id: Option<String>,
        /// The floating IP's project (`project_id`, else `tenant_id`): the
        /// instance must be in it.
        project_id: Option<String>,
    },
    /// neutron `floatingip.delete.end`: only the id is sent.
    FloatingIpDeleted {
        /// neutron's floating-IP id.
        floatingip_id: String,
    },
    /// neutron `port.delete.end`: only the id is sent; neutron
    /// disassociates the port's floating IPs without a notification.
    PortDeleted {
        /// neutron's port id.
        port_id: String,
    },
}

impl Event {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::InstanceCreated(_) => "instance_create",
            Event::InstanceUpdated(_) => "instance_update",
            Event::InstanceDeleted(_) => "instance_delete",
            Event::InstanceRebuilt(_) => "instance_rebuild",
            Event::FloatingIpAssociated { .. } => "floating_ip_associate",
            Event::FloatingIpDisassociated { .. } => "floating_ip_disassociate",
            Event::FloatingIpPortAssociated { .. } => "floatingip_associate",
            Event::FloatingIpDeleted { .. } => "floatingip_delete",
            Event::PortDeleted { .. } => "port_delete",
        }
    }

    /// Key of the resource the event touches: events with the same key are
    /// handled one after another, in arrival order.
    pub fn ordering_key(&self) -> String {
        match self {
            Event::InstanceCreated(i)
            | Event::InstanceUpdated(i)
            | Event::InstanceDeleted(i)
            | Event::InstanceRebuilt(i) => {
                format!("instance:{}", i.instance_id)
            }
            // neutron's events about one floating IP share its id (a
            // delete carries nothing else); nova-network's have only the
            // address.
            Event::FloatingIpPortAssociated { floatingip_id, .. }
            | Event::FloatingIpDeleted { floatingip_id }
            | Event::FloatingIpDisassociated {
                floatingip_id: Some(floatingip_id),
                ..
            } => format!("floatingip:{floatingip_id}"),
            Event::FloatingIpAssociated { ip, .. }
            | Event::FloatingIpDisassociated {
                ip,
                floatingip_id: None,
            } => format!("ip:{ip}"),
            Event::PortDeleted { port_id } => format!("port:{port_id}"),
        }
    }
}

/// What to do with a notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Classified {
    /// Act on it.
    Handle(Event),
    /// Not for novajoin (other priority, publisher or event): acknowledge.
    Ignore(&'static str),
}

const LEGACY_EVENTS: &[&str] = &[
    "compute.instance.create.end",
    "compute.instance.delete.end",
    "compute.instance.update",
    "compute.instance.rebuild.start",
    "network.floating_ip.associate",
    "network.floating_ip.disassociate",
    "floatingip.create.end",
    "floatingip.update.end",
    "floatingip.delete.end",
    "port.delete.end",
];
/// neutron has no versioned notifications: its unversioned ones are handled
/// in both formats.
const VERSIONED_EVENTS: &[&str] = &[
    "instance.create.end",
    "instance.delete.end",
    "instance.update",
    "instance.rebuild.start",
    "instance.evacuate",
    "floatingip.create.end",
    "floatingip.update.end",
    "floatingip.delete.end",
    "port.delete.end",
];

/// Decides what a notification means for novajoin.
pub fn classify(n: &Notification, format: NotificationFormat) -> Result<Classified, EventError> {
    if n.priority != "info" {
        return Ok(Classified::Ignore("not an INFO notification"));
    }
    let (publishers, events): (&[&str], &[&str]) = match format {
        NotificationFormat::Unversioned => (&["compute", "network"], LEGACY_EVENTS),
        NotificationFormat::Versioned => (&["nova-", "network"], VERSIONED_EVENTS),
    };
    if !publishers.iter().any(|p| n.publisher_id.starts_with(p)) {
        return Ok(Classified::Ignore("publisher is not nova or neutron"));
    }
    // The original's filter: a prefix match on the event type.
    if !events.iter().any(|e| n.event_type.starts_with(e)) {
        return Ok(Classified::Ignore("event type not handled by novajoin"));
    }
    let ev = n.event_type.as_str();
    let p = Payload {
        event: ev,
        value: &n.payload,
    };
    let event = match (format, ev) {
        (NotificationFormat::Unversioned, "compute.instance.create.end") => {
            Event::InstanceCreated(p.legacy_instance()?)
        }
        (NotificationFormat::Unversioned, "compute.instance.update") => {
            Event::InstanceUpdated(p.legacy_instance()?)
        }
        (NotificationFormat::Unversioned, "compute.instance.delete.end") => {
            Event::InstanceDeleted(p.legacy_instance()?)
        }
        (NotificationFormat::Unversioned, "compute.instance.rebuild.start") => {
            Event::InstanceRebuilt(p.legacy_instance()?)
        }
        (NotificationFormat::Unversioned, "network.floating_ip.associate") => {
            Event::FloatingIpAssociated {
                ip: p.ip("floating_ip", p.root()?)?,
                instance_id: p.string("instance_id", p.root()?)?,
            }
        }
        (NotificationFormat::Unversioned, "network.floating_ip.disassociate") => {
            Event::FloatingIpDisassociated {
                ip: p.ip("floating_ip", p.root()?)?,
                floatingip_id: None,
            }
        }
        (_, "floatingip.update.end") => p.neutron_floatingip()?,
        (_, "floatingip.create.end") => match p.neutron_floatingip()? {
            Event::FloatingIpDisassociated { .. } => {
                return Ok(Classified::Ignore("floating IP created without a port"))
            }
            associated => associated,
        },
        (_, "floatingip.delete.end") => Event::FloatingIpDeleted {
            floatingip_id: p.neutron_id("floatingip_id", p.root()?)?,
        },
        (_, "port.delete.end") => Event::PortDeleted {
            port_id: p.neutron_id("port_id", p.root()?)?,
        },
        (NotificationFormat::Versioned, "instance.create.end") => {
            Event::InstanceCreated(p.versioned_instance("InstanceCreatePayload", &[1])?)
        }
        (NotificationFormat::Versioned, "instance.update") => {
            // 2.0 only removed `bandwidth`; the fields used here are unchanged.
            Event::InstanceUpdated(p.versioned_instance("InstanceUpdatePayload", &[1, 2])?)
        }
        (NotificationFormat::Versioned, "instance.delete.end") => {
            Event::InstanceDeleted(p.versioned_instance("InstanceActionPayload", &[1])?)
        }
        (NotificationFormat::Versioned, "instance.rebuild.start") => {
            Event::InstanceRebuilt(p.versioned_instance("InstanceActionRebuildPayload", &[1])?)
        }
        (NotificationFormat::Versioned, "instance.evacuate") => {
            Event::InstanceRebuilt(p.versioned_instance("InstanceActionPayload", &[1])?)
        }
        _ => {
            return Err(EventError::UnknownEvent(
                n.event_type.clone(),
                n.publisher_id.clone(),
            ))
        }
    };
    Ok(Classified::Handle(event))
}

struct Payload<'a> {
    event: &'a str,
    value: &'a Value,
}

impl<'a> Payload<'a> {
    fn bad(&self, field: &'static str, expected: &'static str) -> EventError {
        EventError::BadField {
            event: self.event.to_string(),
            field,
            expected,
        }
    }

    fn root(&self) -> Result<&'a Map<String, Value>, EventError> {
        self.value
            .as_object()
            .ok_or_else(|| self.bad("payload", "an object"))
    }

    fn string(&self, field: &'static str, m: &Map<String, Value>) -> Result<String, EventError> {
        match m.get(field) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(self.bad(field, "a non-empty string")),
        }
    }

    fn opt_string(m: &Map<String, Value>, field: &str) -> Option<String> {
        m.get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    fn object(
        &self,
        field: &'static str,
        m: &Map<String, Value>,
    ) -> Result<Map<String, Value>, EventError> {
        match m.get(field) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(o)) => Ok(o.clone()),
            Some(_) => Err(self.bad(field, "an object")),
        }
    }

    fn ip(&self, field: &'static str, m: &Map<String, Value>) -> Result<IpAddr, EventError> {
        self.string(field, m)?
            .parse()
            .map_err(|_| self.bad(field, "an IP address"))
    }

    fn legacy_instance(&self) -> Result<Box<InstanceFacts>, EventError> {
        let m = self.root()?;
        Ok(Box::new(InstanceFacts {
            instance_id: self.string("instance_id", m)?,
            hostname: self.string("hostname", m)?,
            project_id: Self::opt_string(m, "tenant_id"),
            metadata: self.object("metadata", m)?,
            image_meta: self.object("image_meta", m)?,
        }))
    }

    fn versioned_instance(
        &self,
        expected_name: &str,
        majors: &[u32],
    ) -> Result<Box<InstanceFacts>, EventError> {
        let m = self.root()?;
        let version = self.string("nova_object.version", m)?;
        let name = Self::opt_string(m, "nova_object.name").unwrap_or_default();
        let major = version
            .split('.')
            .next()
            .and_then(|v| v.parse::<u32>().ok());
        if !major.is_some_and(|v| majors.contains(&v)) {
            return Err(EventError::UnsupportedVersion {
                event: self.event.to_string(),
                name,
                version,
                supported: if majors.len() > 1 { "1, 2" } else { "1" },
            });
        }
        if name != expected_name {
            tracing::debug!(event = self.event, payload = %name, expected = expected_name, "unexpected payload class; reading its data anyway");
        }
        let data = match m.get("nova_object.data") {
            Some(Value::Object(d)) => d,
            _ => return Err(self.bad("nova_object.data", "an object")),
        };
        Ok(Box::new(InstanceFacts {
            instance_id: self.string("uuid", data)?,
            hostname: self.string("host_name", data)?,
            project_id: Self::opt_string(data, "tenant_id"),
            metadata: self.object("metadata", data)?,
            image_meta: Map::new(),
        }))
    }

    /// A neutron resource id: it names a bookkeeping record in DNS
    /// ([`super::floating_ip`]), so only what fits a DNS label is accepted.
    fn neutron_id(
        &self,
        field: &'static str,
        m: &Map<String, Value>,
    ) -> Result<String, EventError> {
        let id = self.string(field, m)?;
        if is_neutron_id(&id) {
            Ok(id)
        } else {
            Err(self.bad(field, "a neutron id (letters, digits and '-', at most 48)"))
        }
    }

    /// `floatingip.update.end` / `floatingip.create.end`: the API's
    /// floating-IP object. No port means disassociated.
    fn neutron_floatingip(&self) -> Result<Event, EventError> {
        let root = self.root()?;
        let fip = match root.get("floatingip") {
            Some(Value::Object(f)) => f,
            _ => return Err(self.bad("floatingip", "an object")),
        };
        let ip = self.ip("floating_ip_address", fip)?;
        let floatingip_id = self.neutron_id("id", fip)?;
        match fip.get("port_id") {
            None | Some(Value::Null) => Ok(Event::FloatingIpDisassociated {
                ip,
                floatingip_id: Some(floatingip_id),
            }),
            Some(Value::String(port)) if is_neutron_id(port) => {
                let device_id = fip
                    .get("port_details")
                    .and_then(Value::as_object)
                    .and_then(|d| Self::opt_string(d, "device_id"));
                let project_id = Self::opt_string(fip, "project_id")
                    .or_else(|| Self::opt_string(fip, "tenant_id"));
                Ok(Event::FloatingIpPortAssociated {
                    ip,
                    floatingip_id,
                    port_id: port.clone(),
                    device_id,
                    project_id,
                })
            }
            Some(_) => Err(self.bad("floatingip.port_id", "a port id or null")),
        }
    }
}

/// Whether `id` can be a neutron id here: 1-48 letters, digits or `-`
/// (neutron's are UUIDs), so that a bookkeeping name built from it is one
/// DNS label.
pub fn is_neutron_id(id: &str) -> bool {
    (1..=48).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn note(publisher: &str, event: &str, payload: Value) -> Notification {
        Notification {
            message_id: "m".into(),
            publisher_id: publisher.into(),
            event_type: event.into(),
            priority: "info".into(),
            payload,
            timestamp: None,
            unique_id: None,
        }
    }

    fn legacy_payload() -> Value {
        json!({"instance_id": "i-1", "hostname": "vm1", "tenant_id": "p1",
               "metadata": {"ipa_enroll": "True", "managed_service_a": "HTTP/x.example.test"},
               "image_meta": {"base_image_ref": "img"}})
    }

    fn versioned(name: &str, version: &str) -> Value {
        json!({"nova_object.name": name, "nova_object.namespace": "nova", "nova_object.version": version,
               "nova_object.data": {"uuid": "i-1", "host_name": "vm1", "tenant_id": "p1",
                                    "metadata": {"ipa_enroll": "true"}, "image_uuid": ""}})
    }

    #[test]
    fn legacy_delete_and_update() {
        let c = classify(
            &note(
                "compute.cmp-1",
                "compute.instance.delete.end",
                legacy_payload(),
            ),
            NotificationFormat::Unversioned,
        )
        .unwrap();
        let Classified::Handle(Event::InstanceDeleted(i)) = c else {
            panic!("{c:?}")
        };
        assert_eq!(
            (
                i.instance_id.as_str(),
                i.hostname.as_str(),
                i.project_id.as_deref()
            ),
            ("i-1", "vm1", Some("p1"))
        );
        assert!(i.payload_says_enrolled());
        let keys: Vec<&String> = i.metadata.keys().collect();
        assert_eq!(keys, ["ipa_enroll", "managed_service_a"]);
        let c = classify(
            &note("compute.api-1", "compute.instance.update", legacy_payload()),
            NotificationFormat::Unversioned,
        )
        .unwrap();
        assert!(matches!(c, Classified::Handle(Event::InstanceUpdated(_))));
    }

    #[test]
    fn rebuilds_and_evacuations_in_both_formats() {
        let c = classify(
            &note(
                "compute.cmp-1",
                "compute.instance.rebuild.start",
                legacy_payload(),
            ),
            NotificationFormat::Unversioned,
        )
        .unwrap();
        assert!(
            matches!(c, Classified::Handle(Event::InstanceRebuilt(ref i)) if i.instance_id == "i-1")
        );
        for (ev, name) in [
            ("instance.rebuild.start", "InstanceActionRebuildPayload"),
            ("instance.evacuate", "InstanceActionPayload"),
        ] {
            let c = classify(
                &note("nova-compute:cmp-1", ev, versioned(name, "1.9")),
                NotificationFormat::Versioned,
            )
            .unwrap();
            assert!(
                matches!(c, Classified::Handle(Event::InstanceRebuilt(ref i)) if i.project_id.as_deref() == Some("p1")),
                "{ev}: {c:?}"
            );
        }
        // The end of a rebuild is not acted on: the start already revoked.
        let c = classify(
            &note(
                "nova-compute:cmp-1",
                "instance.rebuild.end",
                versioned("InstanceActionRebuildPayload", "1.9"),
            ),
            NotificationFormat::Versioned,
        )
        .unwrap();
        assert!(matches!(c, Classified::Ignore(_)), "{c:?}");
    }

    #[test]
    fn versioned_accepts_current_nova_and_api_side_deletes() {
        for (ev, name, v) in [
            ("instance.update", "InstanceUpdatePayload", "2.1"),
            ("instance.update", "InstanceUpdatePayload", "1.8"),
            ("instance.delete.end", "InstanceActionPayload", "1.9"),
            ("instance.create.end", "InstanceCreatePayload", "1.13"),
        ] {
            let c = classify(
                &note("nova-compute:cmp-1", ev, versioned(name, v)),
                NotificationFormat::Versioned,
            )
            .unwrap();
            assert!(matches!(c, Classified::Handle(_)), "{ev} {v}: {c:?}");
        }
        let c = classify(
            &note(
                "nova-api:ctl-1",
                "instance.delete.end",
                versioned("InstanceActionPayload", "1.9"),
            ),
            NotificationFormat::Versioned,
        )
        .unwrap();
        let Classified::Handle(Event::InstanceDeleted(i)) = c else {
            panic!()
        };
        assert!(i.payload_says_enrolled());
    }

    #[test]
    fn unknown_major_is_an_error() {
        let e = classify(
            &note(
                "nova-compute:c",
                "instance.delete.end",
                versioned("InstanceActionPayload", "2.0"),
            ),
            NotificationFormat::Versioned,
        )
        .unwrap_err();
        assert!(matches!(e, EventError::UnsupportedVersion { .. }), "{e}");
        let e = classify(
            &note(
                "nova-compute:c",
                "instance.update",
                versioned("InstanceUpdatePayload", "3.0"),
            ),
            NotificationFormat::Versioned,
        )
        .unwrap_err();
        assert!(e.to_string().contains("3.0"), "{e}");
    }

    #[test]
    fn other_traffic_is_ignored_and_unknown_events_in_the_filter_are_errors() {
        let f = NotificationFormat::Unversioned;
        assert!(matches!(
            classify(
                &note("compute.c", "compute.instance.power_off.end", json!({})),
                f
            ),
            Ok(Classified::Ignore(_))
        ));
        assert!(matches!(
            classify(
                &note("scheduler.s", "compute.instance.delete.end", json!({})),
                f
            ),
            Ok(Classified::Ignore(_))
        ));
        assert!(matches!(
            classify(&note("compute.c", "instance.delete.end", json!({})), f),
            Ok(Classified::Ignore(_))
        ));
        let mut n = note("compute.c", "compute.instance.delete.end", legacy_payload());
        n.priority = "error".into();
        assert!(matches!(classify(&n, f), Ok(Classified::Ignore(_))));
        let e = classify(
            &note(
                "compute.c",
                "compute.instance.update.bogus",
                legacy_payload(),
            ),
            f,
        )
        .unwrap_err();
        assert!(matches!(e, EventError::UnknownEvent(..)), "{e}");
    }

    #[test]
    fn missing_fields_are_named() {
        let mut p = legacy_payload();
        p.as_object_mut().unwrap().remove("hostname");
        let e = classify(
            &note("compute.c", "compute.instance.delete.end", p),
            NotificationFormat::Unversioned,
        )
        .unwrap_err();
        assert_eq!(
            e,
            EventError::BadField {
                event: "compute.instance.delete.end".into(),
                field: "hostname",
                expected: "a non-empty string"
            }
        );
        let e = classify(
            &note(
                "compute.c",
                "compute.instance.delete.end",
                json!({"instance_id": "i", "hostname": "h", "metadata": "x"}),
            ),
            NotificationFormat::Unversioned,
        )
        .unwrap_err();
        assert!(e.to_string().contains("'metadata'"), "{e}");
        let e = classify(
            &note(
                "network.n",
                "network.floating_ip.associate",
                json!({"floating_ip": "300.1.1.1", "instance_id": "i"}),
            ),
            NotificationFormat::Unversioned,
        )
        .unwrap_err();
        assert!(e.to_string().contains("floating_ip"), "{e}");
    }

    #[test]
    fn floating_ips() {
        let f = NotificationFormat::Unversioned;
        let c = classify(
            &note(
                "network.n",
                "network.floating_ip.associate",
                json!({"floating_ip": "192.168.5.201", "instance_id": "i-1", "project_id": "p"}),
            ),
            f,
        )
        .unwrap();
        assert_eq!(
            c,
            Classified::Handle(Event::FloatingIpAssociated {
                ip: "192.168.5.201".parse().unwrap(),
                instance_id: "i-1".into()
            })
        );
        let c = classify(
            &note(
                "network.n",
                "network.floating_ip.disassociate",
                json!({"floating_ip": "192.168.5.201", "instance_id": "i-1", "project_id": "p"}),
            ),
            f,
        )
        .unwrap();
        let Classified::Handle(e) = c else {
            panic!("{c:?}")
        };
        assert_eq!(
            e,
            Event::FloatingIpDisassociated {
                ip: "192.168.5.201".parse().unwrap(),
                floatingip_id: None
            }
        );
        assert_eq!(e.ordering_key(), "ip:192.168.5.201");
        // nova-network is gone from nova; its events are legacy only.
        assert!(matches!(
            classify(
                &note("network.n", "network.floating_ip.associate", json!({})),
                NotificationFormat::Versioned
            ),
            Ok(Classified::Ignore(_))
        ));
    }

    fn fip(port: Value, details: Value) -> Value {
        json!({"floatingip": {"id": "f38ff2b6-cd4d-433e-8a9c-9e00dfc05b1e",
            "floating_ip_address": "192.168.5.201", "port_id": port, "port_details": details,
            "tenant_id": "p", "project_id": "p"}})
    }

    const BOTH: [NotificationFormat; 2] = [
        NotificationFormat::Unversioned,
        NotificationFormat::Versioned,
    ];

    #[test]
    fn neutron_floatingip_create_and_update_in_both_formats() {
        let associated = Event::FloatingIpPortAssociated {
            ip: "192.168.5.201".parse().unwrap(),
            floatingip_id: "f38ff2b6-cd4d-433e-8a9c-9e00dfc05b1e".into(),
            port_id: "port-1".into(),
            device_id: Some("i-1".into()),
            project_id: Some("p".into()),
        };
        for f in BOTH {
            for ev in ["floatingip.update.end", "floatingip.create.end"] {
                let c = classify(
                    &note(
                        "network.ctl",
                        ev,
                        fip(json!("port-1"), json!({"device_id": "i-1"})),
                    ),
                    f,
                )
                .unwrap();
                assert_eq!(c, Classified::Handle(associated.clone()), "{ev} {f:?}");
            }
            // Older neutron: no port_details; the port is looked up.
            let mut p = fip(json!("port-1"), Value::Null);
            p["floatingip"]
                .as_object_mut()
                .unwrap()
                .remove("port_details");
            // Older payloads name the project only as tenant_id.
            p["floatingip"]
                .as_object_mut()
                .unwrap()
                .remove("project_id");
            let c = classify(&note("network.ctl", "floatingip.create.end", p), f).unwrap();
            assert!(
                matches!(
                    c,
                    Classified::Handle(Event::FloatingIpPortAssociated {
                        device_id: None,
                        project_id: Some(ref p),
                        ..
                    }) if p == "p"
                ),
                "{c:?}"
            );
            let c = classify(
                &note(
                    "network.ctl",
                    "floatingip.update.end",
                    fip(Value::Null, Value::Null),
                ),
                f,
            )
            .unwrap();
            let Classified::Handle(e) = c else {
                panic!("{c:?}")
            };
            assert_eq!(
                e,
                Event::FloatingIpDisassociated {
                    ip: "192.168.5.201".parse().unwrap(),
                    floatingip_id: Some("f38ff2b6-cd4d-433e-8a9c-9e00dfc05b1e".into())
                }
            );
            assert_eq!(e.ordering_key(), associated.ordering_key());
            // Created without a port: nothing to record.
            let c = classify(
                &note(
                    "network.ctl",
                    "floatingip.create.end",
                    fip(Value::Null, Value::Null),
                ),
                f,
            )
            .unwrap();
            assert!(matches!(c, Classified::Ignore(_)), "{c:?}");
        }
    }

    #[test]
    fn neutron_deletes_carry_only_ids_in_both_formats() {
        for f in BOTH {
            let c = classify(
                &note(
                    "network.ctl",
                    "floatingip.delete.end",
                    json!({"floatingip_id": "f38ff2b6-cd4d-433e-8a9c-9e00dfc05b1e"}),
                ),
                f,
            )
            .unwrap();
            let Classified::Handle(e) = c else {
                panic!("{c:?}")
            };
            assert_eq!(
                e,
                Event::FloatingIpDeleted {
                    floatingip_id: "f38ff2b6-cd4d-433e-8a9c-9e00dfc05b1e".into()
                }
            );
            assert_eq!(
                e.ordering_key(),
                "floatingip:f38ff2b6-cd4d-433e-8a9c-9e00dfc05b1e"
            );
            let c = classify(
                &note(
                    "network.ctl",
                    "port.delete.end",
                    json!({"port_id": "289ed46b-274c-444d-9fd4-bddf8acc7d7c"}),
                ),
                f,
            )
            .unwrap();
            let Classified::Handle(e) = c else {
                panic!("{c:?}")
            };
            assert_eq!(
                e,
                Event::PortDeleted {
                    port_id: "289ed46b-274c-444d-9fd4-bddf8acc7d7c".into()
                }
            );
            assert_eq!(e.kind(), "port_delete");
            // Other neutron traffic on the topic is not ours.
            assert!(matches!(
                classify(&note("network.ctl", "port.create.end", json!({})), f),
                Ok(Classified::Ignore(_))
            ));
        }
    }

    #[test]
    fn neutron_ids_must_fit_a_dns_label() {
        for (ev, payload) in [
            ("floatingip.delete.end", json!({"floatingip_id": "a.b"})),
            ("floatingip.delete.end", json!({})),
            ("port.delete.end", json!({"port_id": "x".repeat(49)})),
            ("port.delete.end", json!({"port_id": "_novajoin"})),
            ("floatingip.update.end", fip(json!("p 1"), Value::Null)),
        ] {
            let e = classify(
                &note("network.ctl", ev, payload.clone()),
                NotificationFormat::Versioned,
            )
            .unwrap_err();
            assert!(
                matches!(e, EventError::BadField { .. }),
                "{ev} {payload}: {e}"
            );
        }
        let mut p = fip(json!("port-1"), Value::Null);
        p["floatingip"].as_object_mut().unwrap().remove("id");
        let e = classify(
            &note("network.ctl", "floatingip.update.end", p),
            NotificationFormat::Unversioned,
        )
        .unwrap_err();
        assert!(e.to_string().contains("'id'"), "{e}");
    }
}
