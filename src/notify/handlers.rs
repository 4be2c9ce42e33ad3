//! What each event does in IPA (spec novajoin-behaviour.md §8), with the
//! original's weak spots fixed:
//!
//! * the FQDN is the vendordata service's, including the real project name
//!   under `project_subdomain` (the original used the placeholder `foo`);
//! * whether an instance is novajoin's is decided from the payload
//!   (`ipa_enroll` in its metadata or, legacy format, image properties) or,
//!   when the payload does not say, from IPA itself: a host that novajoin
//!   created carries its description. No Glance lookup, so an image deleted
//!   before the instance, a boot-from-volume instance, or a Glance outage
//!   no longer leaks the host;
//! * a delete removes sub-hosts and orphaned managed services *before* the
//!   instance host, so a retry after a partial failure still finds the host
//!   and finishes the job;
//! * every IPA outcome that means "already done" is success; failures are
//!   classified transient (retry) or permanent (reject).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::cloud::CloudLookups;
use super::events::{Event, InstanceFacts};
use super::listener::{EventHandler, HandlerError};
use super::naming::{self, FqdnPolicy, ServiceRequest};
use crate::ipa::{EnrollmentBatch, IpaClient, IpaCommand, IpaError};

/// Removes an instance's answer from the vendordata response cache when
/// the instance is deleted (the shared Redis cache; a per-process memory
/// cache lives in the server process and expires on its own).
pub trait InstanceEviction: Send + Sync + 'static {
    /// Evicts the instance's entry; `Err` when the cache cannot be reached.
    fn evict<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<(), String>>;
}

impl InstanceEviction for crate::cache::ResponseCache {
    fn evict<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            crate::cache::ResponseCache::evict(self, instance_id)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

/// The IPA work for every event.
pub struct IpaEventHandler {
    ipa: IpaClient,
    policy: FqdnPolicy,
    realm: String,
    cloud: Option<CloudLookups>,
    eviction: Option<Arc<dyn InstanceEviction>>,
}

impl IpaEventHandler {
    /// A handler. `cloud` is needed for `project_subdomain` and for
    /// floating-IP and update events; `eviction` for cache eviction.
    pub fn new(
        ipa: IpaClient,
        policy: FqdnPolicy,
        realm: String,
        cloud: Option<CloudLookups>,
        eviction: Option<Arc<dyn InstanceEviction>>,
    ) -> Self {
        Self {
            ipa,
            policy,
            realm,
            cloud,
            eviction,
        }
    }

    fn zone_of(fqdn: &str) -> (String, String) {
        let (label, rest) = fqdn.split_once('.').unwrap_or((fqdn, ""));
        (format!("{rest}."), label.to_string())
    }

    fn base_zone(&self) -> String {
        format!("{}.", self.policy.domain)
    }

    async fn project_name(&self, facts: &InstanceFacts) -> Result<Option<String>, HandlerError> {
        if !self.policy.project_subdomain {
            return Ok(None);
        }
        let pid = facts.project_id.as_deref().ok_or_else(|| {
            HandlerError::Permanent(
                "project_subdomain is on but the payload has no tenant_id".into(),
            )
        })?;
        let cloud = self.cloud.as_ref().ok_or_else(|| {
            HandlerError::Transient(
                "project_subdomain needs [service_credentials] to look the project up".into(),
            )
        })?;
        match cloud.project_name(pid).await? {
            Some(name) => Ok(Some(name)),
            None => Err(HandlerError::Permanent(format!(
                "project {pid} is not known to keystone, so the instance's FQDN cannot be computed"
            ))),
        }
    }

    fn fqdn(&self, facts: &InstanceFacts, project: Option<&str>) -> Result<String, HandlerError> {
        self.policy
            .instance_fqdn(&facts.hostname, project)
            .map_err(|why| {
                HandlerError::Permanent(format!("instance {}: {why}", facts.instance_id))
            })
    }

    /// Whether the instance is novajoin's: the payload says so, or IPA has
    /// a host of that name that novajoin created.
    async fn is_ours(&self, facts: &InstanceFacts, fqdn: &str) -> Result<bool, HandlerError> {
        if facts.payload_says_enrolled() {
            return Ok(true);
        }
        match self.ipa.host_show(fqdn).await {
            Ok(h) => Ok(h.description.as_deref() == Some(naming::HOST_DESCRIPTION)),
            Err(IpaError::NotFound(_)) => Ok(false),
            Err(e) => Err(ipa_failure(&format!("host_show {fqdn}"), e)),
        }
    }

    async fn instance_created(
        &self,
        facts: &InstanceFacts,
        message_id: &str,
    ) -> Result<(), HandlerError> {
        // Enrollment happens through the vendordata service; this is a log
        // line only, so a failed project lookup must not hold it up.
        let project = self.project_name(facts).await.ok().flatten();
        let fqdn = self
            .policy
            .instance_fqdn(&facts.hostname, project.as_deref())
            .unwrap_or_else(|e| e.to_string());
        tracing::info!(message_id, instance_id = %facts.instance_id, fqdn = %fqdn, "instance created");
        Ok(())
    }

    async fn instance_updated(
        &self,
        facts: &InstanceFacts,
        message_id: &str,
    ) -> Result<(), HandlerError> {
        let project = self.project_name(facts).await?;
        let fqdn = self.fqdn(facts, project.as_deref())?;
        let services = naming::requested_services(
            &facts.metadata,
            &fqdn,
            &self.policy,
            project.as_deref(),
            &self.realm,
        )
        .map_err(|why| HandlerError::Permanent(format!("instance {}: {why}", facts.instance_id)))?;
        if services.is_empty() {
            tracing::debug!(message_id, instance_id = %facts.instance_id, "update without services: nothing to do");
            return Ok(());
        }
        if !self.is_ours(facts, &fqdn).await? {
            tracing::debug!(message_id, fqdn = %fqdn, "update of an instance novajoin did not enroll: ignored");
            return Ok(());
        }
        // An update can arrive after the delete (another listener, a
        // requeue): do not re-create services for a vanished instance.
        if let Some(cloud) = &self.cloud {
            if cloud.server(&facts.instance_id).await?.is_none() {
                tracing::info!(message_id, instance_id = %facts.instance_id, "update of an instance nova no longer has: ignored");
                return Ok(());
            }
        }
        let mut batch = EnrollmentBatch::new();
        let mut hosts = BTreeSet::new();
        for s in &services {
            if s.principal_host != fqdn && hosts.insert(s.principal_host.clone()) {
                batch = batch.subhost(s.principal_host.clone());
            }
        }
        for s in &services {
            batch = batch
                .service(s.principal.clone())
                .managed_by(s.principal.clone(), s.managed_by.clone());
        }
        let outcome = self
            .ipa
            .enroll(&batch)
            .await
            .map_err(|e| ipa_failure("service batch", e))?;
        if let Some(f) = outcome.failures.into_iter().next() {
            return Err(ipa_failure(&f.command, f.error));
        }
        tracing::info!(message_id, fqdn = %fqdn, services = services.len(), "instance services updated in IPA");
        Ok(())
    }

    async fn instance_deleted(
        &self,
        facts: &InstanceFacts,
        message_id: &str,
    ) -> Result<(), HandlerError> {
        let project = self.project_name(facts).await?;
        let fqdn = self.fqdn(facts, project.as_deref())?;
        if !self.is_ours(facts, &fqdn).await? {
            tracing::debug!(message_id, fqdn = %fqdn, "delete of an instance novajoin did not enroll: ignored");
            return Ok(());
        }
        // Malformed service metadata must not keep the host alive.
        let (managed, compact) = match naming::requested_services(
            &facts.metadata,
            &fqdn,
            &self.policy,
            project.as_deref(),
            &self.realm,
        ) {
            Ok(all) => {
                let n = naming::managed_services(&facts.metadata)
                    .map(|m| m.len())
                    .unwrap_or(0);
                let (m, c) = all.split_at(n.min(all.len()));
                (m.to_vec(), c.to_vec())
            }
            Err(why) => {
                tracing::warn!(message_id, fqdn = %fqdn, problem = %why,
                    "the instance's service metadata cannot be read; removing only the host");
                (Vec::new(), Vec::new())
            }
        };
        self.remove_compact_subhosts(&compact).await?;
        for s in &managed {
            self.remove_managed_service(s, &fqdn).await?;
        }
        self.remove_host(&fqdn).await?;
        if let Some(ev) = &self.eviction {
            // Hygiene, not safety: the entry expires after [cache] ttl and an
            // instance id is never reused, so a Redis outage must not hold
            // the delete back.
            if let Err(e) = ev.evict(&facts.instance_id).await {
                tracing::warn!(message_id, instance_id = %facts.instance_id, error = %e,
                    "could not evict the instance's cached vendordata answer; it expires on its own");
            }
        }
        tracing::info!(message_id, instance_id = %facts.instance_id, fqdn = %fqdn,
            subhosts = compact.len(), managed_services = managed.len(), "instance removed from IPA");
        Ok(())
    }

    /// `host_del` (IPA deletes the host's own services) and its DNS name.
    async fn remove_host(&self, fqdn: &str) -> Result<(), HandlerError> {
        match self.ipa.host_del(fqdn, false).await {
            Ok(()) | Err(IpaError::NotFound(_)) | Err(IpaError::AccessDenied(_)) => {}
            Err(e) => return Err(ipa_failure(&format!("host_del {fqdn}"), e)),
        }
        let (zone, label) = Self::zone_of(fqdn);
        match self.ipa.dnsrecord_del_all(&zone, &label).await {
            Ok(()) | Err(IpaError::NotFound(_)) | Err(IpaError::AccessDenied(_)) => Ok(()),
            Err(e) => Err(ipa_failure(&format!("dnsrecord_del {zone} {label}"), e)),
        }
    }

    /// The compact services' sub-hosts and their DNS names, in one batch.
    async fn remove_compact_subhosts(
        &self,
        compact: &[ServiceRequest],
    ) -> Result<(), HandlerError> {
        let hosts: BTreeSet<&str> = compact.iter().map(|s| s.principal_host.as_str()).collect();
        if hosts.is_empty() {
            return Ok(());
        }
        let mut cmds = Vec::new();
        for h in &hosts {
            let (zone, label) = Self::zone_of(h);
            cmds.push(IpaCommand::host_del(h, false));
            cmds.push(IpaCommand::dnsrecord_del_all(&zone, &label));
        }
        let results = self
            .ipa
            .batch(&cmds)
            .await
            .map_err(|e| ipa_failure("sub-host batch", e))?;
        for (cmd, r) in cmds.iter().zip(results) {
            match r {
                Ok(_) | Err(IpaError::NotFound(_)) | Err(IpaError::AccessDenied(_)) => {}
                Err(e) => return Err(ipa_failure(&cmd.describe(), e)),
            }
        }
        Ok(())
    }

    /// A managed service goes when no host other than its own (and the
    /// instance being deleted) manages it; its host goes when it then
    /// manages no service.
    async fn remove_managed_service(
        &self,
        s: &ServiceRequest,
        instance_fqdn: &str,
    ) -> Result<(), HandlerError> {
        let entry = match self.ipa.service_show(&s.principal).await {
            Ok(e) => e,
            Err(IpaError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(ipa_failure(&format!("service_show {}", s.principal), e)),
        };
        let other_managers = entry.managedby_host.iter().any(|h| {
            !h.eq_ignore_ascii_case(&s.principal_host) && !h.eq_ignore_ascii_case(instance_fqdn)
        });
        if other_managers {
            tracing::debug!(principal = %s.principal, "service still managed by other hosts: kept");
            return Ok(());
        }
        match self.ipa.service_del(&s.principal).await {
            Ok(()) | Err(IpaError::NotFound(_)) => {}
            Err(e) => return Err(ipa_failure(&format!("service_del {}", s.principal), e)),
        }
        let remaining = self
            .ipa
            .service_find_managed_by(&s.principal_host)
            .await
            .map_err(|e| {
                ipa_failure(&format!("service_find man_by_host={}", s.principal_host), e)
            })?;
        if remaining.is_empty() {
            self.remove_host(&s.principal_host).await?;
        }
        Ok(())
    }

    fn cloud(&self, what: &str) -> Result<&CloudLookups, HandlerError> {
        self.cloud.as_ref().ok_or_else(|| {
            HandlerError::Transient(format!(
                "{what} needs nova/neutron lookups: configure [service_credentials]"
            ))
        })
    }

    async fn add_floating_ip(
        &self,
        ip: IpAddr,
        instance_id: &str,
        message_id: &str,
    ) -> Result<(), HandlerError> {
        if !ip.is_ipv4() {
            tracing::warn!(message_id, %ip, "floating IP is not IPv4; no A record added");
            return Ok(());
        }
        let Some(server) = self
            .cloud("a floating-IP association")?
            .server(instance_id)
            .await?
        else {
            tracing::info!(message_id, instance_id, %ip, "floating IP associated with an instance nova does not know: ignored");
            return Ok(());
        };
        let zone = self.base_zone();
        match self
            .ipa
            .dnsrecord_add_a(&zone, &server.name, &ip.to_string())
            .await
        {
            Ok(()) | Err(IpaError::EmptyModlist(_)) | Err(IpaError::DuplicateEntry(_)) => {
                tracing::info!(message_id, %ip, name = %server.name, zone = %zone, "floating IP A record added");
                Ok(())
            }
            Err(e) => Err(ipa_failure(
                &format!("dnsrecord_add {zone} {}", server.name),
                e,
            )),
        }
    }

    async fn remove_floating_ip(&self, ip: IpAddr, message_id: &str) -> Result<(), HandlerError> {
        let zone = self.base_zone();
        let ip_text = ip.to_string();
        let records = match self.ipa.dnsrecord_find_a(&zone, &ip_text).await {
            Ok(r) => r,
            Err(IpaError::NotFound(_)) => Vec::new(),
            Err(e) => {
                return Err(ipa_failure(
                    &format!("dnsrecord_find {zone} arecord={ip_text}"),
                    e,
                ))
            }
        };
        for r in &records {
            match self.ipa.dnsrecord_del_a(&zone, &r.name, &ip_text).await {
                Ok(()) | Err(IpaError::NotFound(_)) | Err(IpaError::AttrValueNotFound(_)) => {}
                Err(e) => return Err(ipa_failure(&format!("dnsrecord_del {zone} {}", r.name), e)),
            }
        }
        tracing::info!(message_id, %ip, removed = records.len(), "floating IP A record removed");
        Ok(())
    }

    async fn dispatch(&self, event: &Event, message_id: &str) -> Result<(), HandlerError> {
        match event {
            Event::InstanceCreated(f) => self.instance_created(f, message_id).await,
            Event::InstanceUpdated(f) => self.instance_updated(f, message_id).await,
            Event::InstanceDeleted(f) => self.instance_deleted(f, message_id).await,
            Event::FloatingIpAssociated { ip, instance_id } => {
                self.add_floating_ip(*ip, instance_id, message_id).await
            }
            Event::FloatingIpDisassociated { ip } => self.remove_floating_ip(*ip, message_id).await,
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
                    Some(instance_id) => self.add_floating_ip(*ip, &instance_id, message_id).await,
                    None => {
                        tracing::warn!(message_id, %ip, port_id, "floating IP's port has no single device: no A record added");
                        Ok(())
                    }
                }
            }
        }
    }
}

impl EventHandler for IpaEventHandler {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        message_id: &'a str,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(self.dispatch(event, message_id))
    }
}

/// Whether an IPA failure is worth retrying. IPA's own verdicts on the
/// request (validation, conflicts) are permanent; outages, time-outs,
/// server-side faults and login/configuration problems an operator can fix
/// are transient, so the notification is kept.
pub fn ipa_failure(doing: &str, e: IpaError) -> HandlerError {
    let transient = match &e {
        IpaError::NotFound(_)
        | IpaError::DuplicateEntry(_)
        | IpaError::Validation(_)
        | IpaError::EmptyModlist(_)
        | IpaError::AttrValueNotFound(_)
        | IpaError::DnsNotARecord(_)
        | IpaError::UnknownOption(_) => false,
        IpaError::Remote(r) => {
            !(3000..5000).contains(&r.code) || r.code == 4201 || (4203..=4216).contains(&r.code)
        }
        IpaError::Http { status, .. } => *status >= 500 || *status == 401 || *status == 429,
        _ => true,
    };
    let text = format!("{doing}: {e}");
    if transient {
        HandlerError::Transient(text)
    } else {
        HandlerError::Permanent(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipa::RemoteError;
    use serde_json::json;

    fn remote(code: i64, name: &str) -> IpaError {
        IpaError::from_remote(RemoteError {
            code,
            name: name.into(),
            message: "m".into(),
            data: json!({}),
        })
    }

    #[test]
    fn ipa_failures_are_classified() {
        assert!(matches!(
            ipa_failure("x", remote(3009, "ValidationError")),
            HandlerError::Permanent(_)
        ));
        assert!(matches!(
            ipa_failure("x", remote(4005, "RealmMismatch")),
            HandlerError::Permanent(_)
        ));
        assert!(matches!(
            ipa_failure("x", remote(4203, "DatabaseError")),
            HandlerError::Transient(_)
        ));
        assert!(matches!(
            ipa_failure("x", remote(903, "InternalError")),
            HandlerError::Transient(_)
        ));
        assert!(matches!(
            ipa_failure("x", IpaError::Timeout(std::time::Duration::from_secs(1))),
            HandlerError::Transient(_)
        ));
        let e = IpaError::Http {
            status: 500,
            path: "/ipa/session/json".into(),
            hint: "h".into(),
        };
        assert!(matches!(ipa_failure("x", e), HandlerError::Transient(_)));
        let e = IpaError::Http {
            status: 404,
            path: "/ipa/x".into(),
            hint: "h".into(),
        };
        assert!(matches!(ipa_failure("x", e), HandlerError::Permanent(_)));
    }

    #[test]
    fn zones_split_at_the_first_dot() {
        assert_eq!(
            IpaEventHandler::zone_of("vm1.example.com"),
            ("example.com.".to_string(), "vm1".to_string())
        );
        assert_eq!(
            IpaEventHandler::zone_of("vm1.proj.example.com"),
            ("proj.example.com.".to_string(), "vm1".to_string())
        );
    }
}
