//! Floating-IP DNS records: an A (or AAAA) record at the name of the
//! instance's bound host while a floating IP points at the instance.
//!
//! Only instances whose host this service created and bound get records
//! ([`crate::ownership`]); the record's name is that host's own name, in
//! its own zone (project sub-domains included); a record is removed only
//! from a bound host's name and only for the address that went away.

use std::net::IpAddr;

use super::events::Event;
use super::handlers::ipa_failure;
use super::listener::HandlerError;
use crate::cloud::CloudLookups;
use crate::ipa::{IpaClient, IpaError};
use crate::ownership::{bound_hosts, HostBinding};

/// The floating-IP part of the listener.
pub struct FloatingIpRecords {
    ipa: IpaClient,
    base_zone: String,
    region: Option<String>,
    cloud: Option<CloudLookups>,
}

impl FloatingIpRecords {
    /// Records in IPA's zones; `cloud` resolves ports and servers.
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

    /// Handles one floating-IP event.
    pub async fn handle(&self, event: &Event, message_id: &str) -> Result<(), HandlerError> {
        match event {
            Event::FloatingIpAssociated { ip, instance_id } => {
                self.associate(*ip, instance_id, message_id).await
            }
            Event::FloatingIpDisassociated { ip } => self.disassociate(*ip, message_id).await,
            Event::FloatingIpPortAssociated {
                ip,
                port_id,
                device_id,
            } => {
                let device = match device_id {
                    Some(d) => Some(d.clone()),
                    None => {
                        self.cloud("a floating-IP association")?
                            .port_device(port_id)
                            .await?
                    }
                };
                match device {
                    Some(instance_id) => self.associate(*ip, &instance_id, message_id).await,
                    None => {
                        tracing::warn!(message_id, %ip, port_id, "floating IP's port has no single device: no record added");
                        Ok(())
                    }
                }
            }
            other => Err(HandlerError::Permanent(format!(
                "{} is not a floating-IP event",
                other.kind()
            ))),
        }
    }

    /// The instance's own bound host, if it has one.
    async fn bound_host(&self, instance_id: &str) -> Result<Option<String>, HandlerError> {
        let Some(server) = self
            .cloud("a floating-IP association")?
            .server(instance_id)
            .await?
        else {
            return Ok(None);
        };
        let owner = match HostBinding::for_instance(
            Some(&server.id),
            server.tenant_id.as_deref(),
            self.region.as_deref(),
        ) {
            Ok(b) => b,
            Err(e) => return Err(HandlerError::Permanent(e.to_string())),
        };
        let hosts = bound_hosts(&self.ipa, &owner)
            .await
            .map_err(|e| ipa_failure("host_find (bound hosts)", e))?;
        Ok(hosts.instance.map(|h| h.fqdn))
    }

    async fn associate(
        &self,
        ip: IpAddr,
        instance_id: &str,
        message_id: &str,
    ) -> Result<(), HandlerError> {
        let Some(fqdn) = self.bound_host(instance_id).await? else {
            crate::metrics::ownership_refused("floating_ip");
            tracing::info!(message_id, instance_id, %ip,
                "floating IP associated with an instance whose host novajoin did not create: no record");
            return Ok(());
        };
        let (zone, label) = zone_of(&fqdn);
        match self
            .ipa
            .dnsrecord_add_a(&zone, &label, &ip.to_string())
            .await
        {
            Ok(()) | Err(IpaError::EmptyModlist(_)) | Err(IpaError::DuplicateEntry(_)) => {
                tracing::info!(message_id, %ip, name = %label, zone = %zone, "floating IP record added");
                Ok(())
            }
            Err(e) => Err(ipa_failure(&format!("dnsrecord_add {zone} {label}"), e)),
        }
    }

    async fn disassociate(&self, ip: IpAddr, message_id: &str) -> Result<(), HandlerError> {
        let zone = self.base_zone.clone();
        let ip_text = ip.to_string();
        let records = match self.ipa.dnsrecord_find_a(&zone, &ip_text).await {
            Ok(r) => r,
            Err(IpaError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(ipa_failure(&format!("dnsrecord_find {zone} {ip_text}"), e)),
        };
        for r in &records {
            match self.ipa.dnsrecord_del_a(&zone, &r.name, &ip_text).await {
                Ok(()) | Err(IpaError::NotFound(_)) | Err(IpaError::AttrValueNotFound(_)) => {}
                Err(e) => return Err(ipa_failure(&format!("dnsrecord_del {zone} {}", r.name), e)),
            }
        }
        tracing::info!(message_id, %ip, removed = records.len(), "floating IP record removed");
        Ok(())
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
}
