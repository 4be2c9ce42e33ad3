//! Floating-IP DNS records: an A (IPv4) or AAAA (IPv6) record at the name
//! of the instance's bound host while a floating IP points at the instance.
//!
//! # Which names, which values
//!
//! * Only instances whose host this service created and bound get records
//!   ([`crate::ownership`]): the port's device (the instance uuid, from
//!   `port_details` or neutron's port) and nova's project for it give the
//!   binding, and the host is found by that binding, never by a name a
//!   tenant chose. A port's owner may write any `device_id`, so the
//!   instance must also be in the floating IP's project (neutron's
//!   `project_id`/`tenant_id` against nova's `tenant_id`). No bound host,
//!   or another project's instance: no record (logged, counted as an
//!   ownership refusal, acknowledged).
//! * The record's name is that host's own name in its own zone: the zone is
//!   everything after the first label of its FQDN, so project sub-domains
//!   get the record in their zone.
//! * A record value is removed only from a name that is still a
//!   novajoin-bound host (its `nshardwareplatform` reads as a
//!   [`HostBinding`]), and only the address of the floating IP in question
//!   (`dnsrecord_del <zone> <name> arecord=<ip>`): the host's other records
//!   stay.
//!
//! # Bookkeeping records
//!
//! neutron's `floatingip.delete.end` carries only `{"floatingip_id"}` and
//! `port.delete.end` only `{"port_id"}`, and a deleted port's floating IPs
//! are disassociated without any floating-IP notification. So every record
//! added is noted, in IPA's DNS itself (every replica and listener sees the
//! same notes, and no database of ours is needed), as TXT records in the
//! base zone (`[DEFAULT] domain`):
//!
//! | name | TXT value(s) |
//! |---|---|
//! | `_novajoin-fip-<floating-IP id>` | `ip=<address> host=<bound host FQDN> port=<port id>` |
//! | `_novajoin-port-<port id>` | one `fip=<floating-IP id>` per floating IP on the port |
//!
//! nova-network has no floating-IP ids: its address stands in
//! (`_novajoin-fip-nn-192-168-5-201`, no `port=`). Names are lower case;
//! ids are checked to fit one DNS label ([`super::events::is_neutron_id`]).
//!
//! * Associate (`floatingip.create.end` / `floatingip.update.end` with a
//!   port, `network.floating_ip.associate`): when the notes say the
//!   floating IP was recorded for another host or port (it moved), that
//!   record value and those notes go first; then the notes are written,
//!   then the A/AAAA value (so a record never exists without its notes).
//!   Every step is idempotent (value adds, `EmptyModlist` is success), so a
//!   redelivered message does it again harmlessly.
//! * Disassociate (`floatingip.update.end` with no port,
//!   `network.floating_ip.disassociate`) and `floatingip.delete.end`: the
//!   notes name host and address; the value is removed if the host is still
//!   bound, then the notes. A disassociate with no notes (a record made by
//!   an older version) searches the base zone for the address and removes
//!   it only from names that are bound hosts.
//! * `port.delete.end`: each `fip=` of the port's notes whose floating-IP
//!   notes still name this port is handled as a disassociate.
//!
//! Notes are changed by adding and deleting single values, which IPA (LDAP)
//! applies atomically, so two listeners cannot lose each other's notes.
//! IPA refusals go through [`ipa_failure`] (access denied: retried, then
//! rejected). The service's IPA role needs the DNS read, add, update and
//! remove permissions `novajoin ipa-setup` grants.

use std::net::IpAddr;

use super::events::{is_neutron_id, Event};
use super::failure::ipa_failure;
use super::failure::HandlerError;
use crate::cloud::CloudLookups;
use crate::ipa::{IpaClient, IpaError};
use crate::ownership::{bound_hosts, HostBinding};

/// What `_novajoin-fip-<id>` says about one recorded floating IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FipNote {
    /// The floating IP (the A/AAAA value).
    pub ip: IpAddr,
    /// The bound host whose name holds the value.
    pub host: String,
    /// The port it was associated with (neutron); `None` for nova-network.
    pub port: Option<String>,
}

impl FipNote {
    /// The TXT value: `ip=<address> host=<fqdn> port=<port id>`.
    pub fn to_txt(&self) -> String {
        let mut out = format!("ip={} host={}", self.ip, self.host);
        if let Some(p) = &self.port {
            out.push_str(" port=");
            out.push_str(p);
        }
        out
    }

    /// Reads a TXT value; `None` when it is not one of ours.
    pub fn parse(text: &str) -> Option<Self> {
        let (mut ip, mut host, mut port) = (None, None, None);
        for word in text.split(' ') {
            let (key, value) = word.split_once('=')?;
            let slot = match key {
                "ip" => &mut ip,
                "host" => &mut host,
                "port" => &mut port,
                _ => return None,
            };
            if slot.replace(value).is_some() {
                return None;
            }
        }
        let host = host?;
        let host_ok = host.contains('.')
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !host_ok || port.is_some_and(|p| !is_neutron_id(p)) {
            return None;
        }
        Some(Self {
            ip: ip?.parse().ok()?,
            host: host.to_ascii_lowercase(),
            port: port.map(str::to_string),
        })
    }
}

/// `_novajoin-fip-<id>`.
pub fn fip_note_name(floatingip_id: &str) -> String {
    format!("_novajoin-fip-{}", floatingip_id.to_ascii_lowercase())
}

/// `_novajoin-port-<id>`.
pub fn port_note_name(port_id: &str) -> String {
    format!("_novajoin-port-{}", port_id.to_ascii_lowercase())
}

/// A port note's value: `fip=<id>`.
pub fn port_note_value(floatingip_id: &str) -> String {
    format!("fip={floatingip_id}")
}

/// The floating-IP id a port note's value names.
pub fn parse_port_note(text: &str) -> Option<&str> {
    text.strip_prefix("fip=").filter(|id| is_neutron_id(id))
}

/// The id nova-network's floating IPs are noted under: `nn-` and the
/// address with `.` and `:` as `-`.
pub fn nova_network_id(ip: IpAddr) -> String {
    format!("nn-{}", ip.to_string().replace(['.', ':'], "-"))
}

/// Where a floating IP's instance leads.
enum Target {
    /// The instance's bound host.
    Host(String),
    /// nova does not have the instance (deleted meanwhile).
    NoServer,
    /// The instance has no host bound to it, or is not in the floating
    /// IP's project.
    Refused(&'static str),
}

/// The instance an association names, and the project it must be in
/// (`None`: nova named it, no check needed).
struct Instance<'a> {
    id: &'a str,
    project: Option<&'a str>,
}

/// The floating-IP part of the listener.
pub struct FloatingIpRecords {
    ipa: IpaClient,
    base_zone: String,
    region: Option<String>,
    cloud: Option<CloudLookups>,
}

impl FloatingIpRecords {
    /// Records in IPA's zones, notes in `domain`'s zone; `cloud` resolves
    /// ports and servers.
    pub fn new(
        ipa: IpaClient,
        domain: &str,
        region: Option<String>,
        cloud: Option<CloudLookups>,
    ) -> Self {
        Self {
            ipa,
            base_zone: format!("{}.", domain.trim_end_matches('.')),
            region,
            cloud,
        }
    }

    fn cloud(&self, what: &str) -> Result<&CloudLookups, HandlerError> {
        self.cloud.as_ref().ok_or_else(|| {
            HandlerError::Transient(format!(
                "{what} needs nova/neutron lookups: configure [service_credentials]"
            ))
        })
    }

    /// Handles one floating-IP or port event.
    pub async fn handle(&self, event: &Event, message_id: &str) -> Result<(), HandlerError> {
        match event {
            Event::FloatingIpAssociated { ip, instance_id } => {
                // nova itself names the instance.
                let id = nova_network_id(*ip);
                let instance = Instance {
                    id: instance_id,
                    project: None,
                };
                self.associate(&id, *ip, None, Some(instance), message_id)
                    .await
            }
            Event::FloatingIpDisassociated { ip, floatingip_id } => {
                let id = floatingip_id
                    .clone()
                    .unwrap_or_else(|| nova_network_id(*ip));
                self.disassociate(&id, Some(*ip), message_id).await
            }
            Event::FloatingIpPortAssociated {
                ip,
                floatingip_id,
                port_id,
                device_id,
                project_id,
            } => {
                let device = match device_id {
                    Some(d) => Some(d.clone()),
                    None => {
                        self.cloud("a floating-IP association")?
                            .port_device(port_id)
                            .await?
                    }
                };
                if device.is_none() {
                    tracing::warn!(message_id, %ip, port_id,
                        "floating IP's port has no single device: no record");
                }
                // A port's owner may write any device_id: the instance
                // counts only in the floating IP's own project ("" matches
                // no project when neutron sent none).
                let instance = device.as_deref().map(|id| Instance {
                    id,
                    project: Some(project_id.as_deref().unwrap_or("")),
                });
                self.associate(floatingip_id, *ip, Some(port_id), instance, message_id)
                    .await
            }
            Event::FloatingIpDeleted { floatingip_id } => {
                self.disassociate(floatingip_id, None, message_id).await
            }
            Event::PortDeleted { port_id } => self.port_deleted(port_id, message_id).await,
            other => Err(HandlerError::Permanent(format!(
                "{} is not a floating-IP event",
                other.kind()
            ))),
        }
    }

    /// Where the instance's records go.
    async fn target(&self, instance: &Instance<'_>) -> Result<Target, HandlerError> {
        let instance_id = instance.id;
        let Some(server) = self
            .cloud("a floating-IP association")?
            .server(instance_id)
            .await?
        else {
            return Ok(Target::NoServer);
        };
        if let Some(project) = instance.project {
            if server.tenant_id.as_deref() != Some(project) {
                return Ok(Target::Refused(
                    "the port names an instance outside the floating IP's project",
                ));
            }
        }
        let owner = HostBinding::for_instance(
            Some(&server.id),
            server.tenant_id.as_deref(),
            self.region.as_deref(),
        )
        .map_err(|e| HandlerError::Permanent(format!("instance {instance_id}: {e}")))?;
        let hosts = bound_hosts(&self.ipa, &owner)
            .await
            .map_err(|e| ipa_failure("host_find (bound hosts)", e))?;
        Ok(match hosts.instance {
            Some(h) => Target::Host(h.fqdn.to_ascii_lowercase()),
            None => Target::Refused("the instance has no host novajoin created"),
        })
    }

    async fn associate(
        &self,
        fip_id: &str,
        ip: IpAddr,
        port: Option<&str>,
        instance: Option<Instance<'_>>,
        message_id: &str,
    ) -> Result<(), HandlerError> {
        let target = match &instance {
            Some(i) => self.target(i).await?,
            None => Target::NoServer,
        };
        let instance_id = instance.as_ref().map(|i| i.id);
        let wanted = match &target {
            Target::Host(host) => Some(FipNote {
                ip,
                host: host.clone(),
                port: port.map(str::to_string),
            }),
            Target::NoServer => {
                if instance_id.is_some() {
                    tracing::info!(message_id, %ip, instance_id,
                        "floating IP associated with an instance nova does not have: no record");
                }
                None
            }
            Target::Refused(why) => {
                crate::metrics::ownership_refused("floating_ip");
                tracing::info!(message_id, %ip, instance_id,
                    "floating IP association refused: {why}; no record");
                None
            }
        };
        // A floating IP that moved leaves its old record first (kept when
        // only the port changed, not the host).
        for (raw, note) in self.fip_notes(fip_id).await? {
            if note.as_ref() != wanted.as_ref() {
                let same_record = note
                    .as_ref()
                    .zip(wanted.as_ref())
                    .is_some_and(|(old, new)| old.ip == new.ip && old.host == new.host);
                self.drop_note(fip_id, &raw, note.as_ref(), same_record, message_id)
                    .await?;
            }
        }
        let Some(note) = wanted else {
            return Ok(());
        };
        let txt = note.to_txt();
        if let Some(port) = port {
            self.add_txt(&port_note_name(port), &port_note_value(fip_id))
                .await?;
        }
        self.add_txt(&fip_note_name(fip_id), &txt).await?;
        let (zone, label) = zone_of(&note.host);
        match self
            .ipa
            .dnsrecord_add_a(&zone, &label, &ip.to_string())
            .await
        {
            Ok(()) | Err(IpaError::EmptyModlist(_)) | Err(IpaError::DuplicateEntry(_)) => {
                tracing::info!(message_id, %ip, name = %label, zone = %zone, "floating IP record added");
                Ok(())
            }
            Err(IpaError::NotFound(why)) => {
                tracing::warn!(message_id, %ip, host = %note.host, zone = %zone, reason = %why,
                    "the bound host's DNS zone is not in IPA: no floating IP record");
                self.drop_note(fip_id, &txt, Some(&note), true, message_id)
                    .await
            }
            Err(e) => Err(ipa_failure(&format!("dnsrecord_add {zone} {label}"), e)),
        }
    }

    /// The floating IP no longer points where its notes say (`ip` is the
    /// event's address, when it has one).
    async fn disassociate(
        &self,
        fip_id: &str,
        ip: Option<IpAddr>,
        message_id: &str,
    ) -> Result<(), HandlerError> {
        let notes = self.fip_notes(fip_id).await?;
        if notes.is_empty() {
            return match ip {
                Some(ip) => self.remove_unnoted(ip, message_id).await,
                None => {
                    tracing::debug!(
                        message_id,
                        floatingip_id = fip_id,
                        "no record was noted for this floating IP: nothing to remove"
                    );
                    Ok(())
                }
            };
        }
        for (raw, note) in notes {
            self.drop_note(fip_id, &raw, note.as_ref(), false, message_id)
                .await?;
        }
        Ok(())
    }

    /// A port went, and with it its floating IPs' associations.
    async fn port_deleted(&self, port_id: &str, message_id: &str) -> Result<(), HandlerError> {
        let name = port_note_name(port_id);
        for value in self.txt_values(&name).await? {
            if let Some(fip_id) = parse_port_note(&value) {
                for (raw, note) in self.fip_notes(fip_id).await? {
                    if note.as_ref().and_then(|n| n.port.as_deref()) == Some(port_id) {
                        self.drop_note(fip_id, &raw, note.as_ref(), false, message_id)
                            .await?;
                    }
                }
            }
            self.del_txt(&name, &value).await?;
        }
        Ok(())
    }

    /// Removes what one note of `fip_id` records: its address from its host
    /// (when that is still a bound host, and unless `keep_record`), its port
    /// note, then the note.
    async fn drop_note(
        &self,
        fip_id: &str,
        raw: &str,
        note: Option<&FipNote>,
        keep_record: bool,
        message_id: &str,
    ) -> Result<(), HandlerError> {
        if let Some(n) = note.filter(|_| !keep_record) {
            if self.is_bound_host(&n.host).await? {
                let (zone, label) = zone_of(&n.host);
                self.remove_value(&zone, &label, n.ip).await?;
                tracing::info!(message_id, ip = %n.ip, name = %label, zone = %zone, "floating IP record removed");
            } else {
                tracing::info!(message_id, ip = %n.ip, host = %n.host,
                    "the noted host is no longer a novajoin-bound host: its records are left alone");
            }
        }
        if let Some(n) = note {
            if let Some(port) = &n.port {
                self.del_txt(&port_note_name(port), &port_note_value(fip_id))
                    .await?;
            }
        }
        self.del_txt(&fip_note_name(fip_id), raw).await
    }

    /// A record from before the notes: the address is searched in the base
    /// zone and removed from the names that are bound hosts only.
    async fn remove_unnoted(&self, ip: IpAddr, message_id: &str) -> Result<(), HandlerError> {
        let zone = self.base_zone.clone();
        let ip_text = ip.to_string();
        let records = match self.ipa.dnsrecord_find_a(&zone, &ip_text).await {
            Ok(r) => r,
            Err(IpaError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(ipa_failure(&format!("dnsrecord_find {zone} {ip_text}"), e)),
        };
        let domain = zone.trim_end_matches('.');
        for r in &records {
            if r.name == "@" {
                continue;
            }
            let fqdn = format!("{}.{domain}", r.name.trim_end_matches('.')).to_ascii_lowercase();
            if self.is_bound_host(&fqdn).await? {
                self.remove_value(&zone, &r.name, ip).await?;
                tracing::info!(message_id, %ip, name = %r.name, zone = %zone, "floating IP record removed");
            } else {
                tracing::info!(message_id, %ip, name = %r.name, zone = %zone,
                    "not a novajoin-bound host's name: the address is left there");
            }
        }
        Ok(())
    }

    /// Whether `fqdn` is a host this service created (its binding reads).
    async fn is_bound_host(&self, fqdn: &str) -> Result<bool, HandlerError> {
        match self.ipa.host_show(fqdn).await {
            Ok(h) => Ok(h.binding.as_deref().and_then(HostBinding::parse).is_some()),
            Err(IpaError::NotFound(_)) => Ok(false),
            Err(e) => Err(ipa_failure(&format!("host_show {fqdn}"), e)),
        }
    }

    /// `dnsrecord_del <zone> <name> arecord=<ip>` (or `aaaarecord`).
    async fn remove_value(&self, zone: &str, name: &str, ip: IpAddr) -> Result<(), HandlerError> {
        match self.ipa.dnsrecord_del_a(zone, name, &ip.to_string()).await {
            Ok(()) | Err(IpaError::NotFound(_)) | Err(IpaError::AttrValueNotFound(_)) => Ok(()),
            Err(e) => Err(ipa_failure(&format!("dnsrecord_del {zone} {name}"), e)),
        }
    }

    /// The notes of one floating IP: each raw value, parsed when it reads.
    async fn fip_notes(
        &self,
        fip_id: &str,
    ) -> Result<Vec<(String, Option<FipNote>)>, HandlerError> {
        Ok(self
            .txt_values(&fip_note_name(fip_id))
            .await?
            .into_iter()
            .map(|raw| {
                let note = FipNote::parse(&raw);
                (raw, note)
            })
            .collect())
    }

    /// The TXT values at `name` in the base zone (none when it is absent).
    async fn txt_values(&self, name: &str) -> Result<Vec<String>, HandlerError> {
        match self.ipa.dnsrecord_show(&self.base_zone, name).await {
            Ok(r) => Ok(r.txtrecord),
            Err(IpaError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(ipa_failure(
                &format!("dnsrecord_show {} {name}", self.base_zone),
                e,
            )),
        }
    }

    async fn add_txt(&self, name: &str, value: &str) -> Result<(), HandlerError> {
        match self
            .ipa
            .dnsrecord_add_txt(&self.base_zone, name, value)
            .await
        {
            Ok(()) | Err(IpaError::EmptyModlist(_)) | Err(IpaError::DuplicateEntry(_)) => Ok(()),
            Err(e) => Err(ipa_failure(
                &format!("dnsrecord_add {} {name}", self.base_zone),
                e,
            )),
        }
    }

    async fn del_txt(&self, name: &str, value: &str) -> Result<(), HandlerError> {
        match self
            .ipa
            .dnsrecord_del_txt(&self.base_zone, name, value)
            .await
        {
            Ok(()) | Err(IpaError::NotFound(_)) | Err(IpaError::AttrValueNotFound(_)) => Ok(()),
            Err(e) => Err(ipa_failure(
                &format!("dnsrecord_del {} {name}", self.base_zone),
                e,
            )),
        }
    }
}

/// `vm1.proj.example.com` → (`proj.example.com.`, `vm1`).
pub fn zone_of(fqdn: &str) -> (String, String) {
    let (label, rest) = fqdn.split_once('.').unwrap_or((fqdn, ""));
    (format!("{rest}."), label.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_split_at_the_first_dot() {
        assert_eq!(
            zone_of("vm1.example.com"),
            ("example.com.".to_string(), "vm1".to_string())
        );
        assert_eq!(
            zone_of("vm1.proj.example.com"),
            ("proj.example.com.".to_string(), "vm1".to_string())
        );
    }

    #[test]
    fn fip_notes_read_back_as_written() {
        let n = FipNote {
            ip: "192.168.5.201".parse().unwrap(),
            host: "vm1.demo.example.test".into(),
            port: Some("289ed46b-274c-444d-9fd4-bddf8acc7d7c".into()),
        };
        let text = n.to_txt();
        assert_eq!(
            text,
            "ip=192.168.5.201 host=vm1.demo.example.test port=289ed46b-274c-444d-9fd4-bddf8acc7d7c"
        );
        assert_eq!(FipNote::parse(&text), Some(n));
        let v6 = FipNote {
            ip: "2001:db8::5".parse().unwrap(),
            host: "vm2.example.test".into(),
            port: None,
        };
        assert_eq!(v6.to_txt(), "ip=2001:db8::5 host=vm2.example.test");
        assert_eq!(FipNote::parse(&v6.to_txt()), Some(v6));
    }

    #[test]
    fn values_that_are_not_our_notes_are_refused() {
        for bad in [
            "",
            "v=spf1 -all",
            "ip=192.168.5.201",
            "host=vm1.example.test",
            "ip=300.1.1.1 host=vm1.example.test",
            "ip=192.168.5.201 host=vm1.example.test host=ipa-ca.example.test",
            "ip=192.168.5.201 host=vm1.example.test extra=1",
            "ip=192.168.5.201 host=vm1",
            "ip=192.168.5.201 host=vm1.example.test port=a.b",
            "ip=192.168.5.201  host=vm1.example.test",
        ] {
            assert_eq!(FipNote::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bookkeeping_names_are_single_labels() {
        let fip = "f38ff2b6-cd4d-433e-8a9c-9e00dfc05b1e";
        assert_eq!(
            fip_note_name(fip),
            "_novajoin-fip-f38ff2b6-cd4d-433e-8a9c-9e00dfc05b1e"
        );
        assert_eq!(
            port_note_name("289ED46B-274c"),
            "_novajoin-port-289ed46b-274c"
        );
        assert_eq!(port_note_value(fip), format!("fip={fip}"));
        assert_eq!(parse_port_note(&port_note_value(fip)), Some(fip));
        assert_eq!(parse_port_note("fip=a.b"), None);
        assert_eq!(parse_port_note("ip=1.2.3.4"), None);
        let v4 = nova_network_id("192.168.5.201".parse().unwrap());
        assert_eq!(v4, "nn-192-168-5-201");
        let v6 = nova_network_id("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap());
        assert!(is_neutron_id(&v6), "{v6}");
        for id in [fip, &v4, &v6, &"x".repeat(48)] {
            assert!(fip_note_name(id).len() <= 63 && port_note_name(id).len() <= 63);
        }
    }
}
