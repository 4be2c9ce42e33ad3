//! What each instance event does in IPA (spec novajoin-behaviour.md §8),
//! with ownership checked before every change ([`crate::ownership`]):
//!
//! * a delete finds the hosts bound to the instance by their binding
//!   (instance uuid, project, region), so renamed instances, projects or
//!   domains cannot orphan them, and removes its sub-hosts, its links to
//!   services on hosts it does not own, its DNS names, then its host;
//! * a host of the Python novajoin (its description, no binding) is removed
//!   by the original's rule: the payload says `ipa_enroll`;
//! * a host bound to another instance, or not made by novajoin, is never
//!   changed: the refusal is logged, counted and the message acknowledged;
//! * an update adds the services the metadata asks for, under the same
//!   rules as the vendordata service (a managed service on a host the
//!   instance does not own needs the policy rule there, so it is refused
//!   here);
//! * every IPA outcome that means "already done" is success; failures are
//!   classified transient (retry), access denied (retry, then reject) or
//!   permanent (reject). Floating-IP records: [`super::floating_ip`].

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::events::{Event, InstanceFacts};
use super::failure::{ipa_failure, HandlerError};
use super::floating_ip::{zone_of, FloatingIpRecords};
use super::listener::EventHandler;
use super::naming::{self, FqdnPolicy, ServiceRequest};
use crate::cloud::CloudLookups;
use crate::ipa::{EnrollmentBatch, IpaClient, IpaError, NewHost};
use crate::ownership::{bound_hosts, owner_of, BoundHosts, HostBinding, HostOwner};

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
    region: Option<String>,
    cloud: Option<CloudLookups>,
    eviction: Option<Arc<dyn InstanceEviction>>,
    floating_ips: FloatingIpRecords,
}

/// Logs and counts a change refused because the host is not the
/// instance's; the message is then acknowledged.
fn refuse(
    action: &'static str,
    message_id: &str,
    facts: &InstanceFacts,
    host: &str,
    owner: &HostOwner,
) {
    crate::metrics::ownership_refused(action);
    tracing::warn!(message_id, instance_id = %facts.instance_id, host, owner = ?owner,
        "refused to change an IPA host that is not this instance's: {}", owner.refusal());
}

impl IpaEventHandler {
    /// A handler. `cloud` is needed for `project_subdomain` and for
    /// floating-IP and update events; `eviction` for cache eviction;
    /// `region` is `[DEFAULT] region_name`, part of every binding.
    pub fn new(
        ipa: IpaClient,
        policy: FqdnPolicy,
        realm: String,
        region: Option<String>,
        cloud: Option<CloudLookups>,
        eviction: Option<Arc<dyn InstanceEviction>>,
    ) -> Self {
        let floating_ips =
            FloatingIpRecords::new(ipa.clone(), &policy.domain, region.clone(), cloud.clone());
        Self {
            ipa,
            policy,
            realm,
            region,
            cloud,
            eviction,
            floating_ips,
        }
    }

    fn owner(&self, facts: &InstanceFacts) -> Result<HostBinding, HandlerError> {
        HostBinding::for_instance(
            Some(&facts.instance_id),
            facts.project_id.as_deref(),
            self.region.as_deref(),
        )
        .map_err(|e| HandlerError::Permanent(format!("instance {}: {e}", facts.instance_id)))
    }

    async fn bound(&self, owner: &HostBinding) -> Result<BoundHosts, HandlerError> {
        bound_hosts(&self.ipa, owner)
            .await
            .map_err(|e| ipa_failure("host_find (hosts bound to the instance)", e))
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

    fn services(
        &self,
        facts: &InstanceFacts,
        fqdn: &str,
        project: Option<&str>,
    ) -> Result<Vec<ServiceRequest>, String> {
        naming::requested_services(&facts.metadata, fqdn, &self.policy, project, &self.realm)
            .map_err(|e| e.to_string())
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
        let has_services = facts
            .metadata
            .keys()
            .any(|k| k.starts_with("managed_service_") || k.starts_with("compact_service"));
        if !has_services {
            tracing::debug!(message_id, instance_id = %facts.instance_id, "update without services: nothing to do");
            return Ok(());
        }
        let owner = self.owner(facts)?;
        let Some(host) = self.bound(&owner).await?.instance else {
            tracing::debug!(message_id, instance_id = %facts.instance_id,
                "update of an instance without a host bound to it: ignored");
            return Ok(());
        };
        let project = self.project_name(facts).await?;
        let services = self
            .services(facts, &host.fqdn, project.as_deref())
            .map_err(|why| {
                HandlerError::Permanent(format!("instance {}: {why}", facts.instance_id))
            })?;
        // An update can arrive after the delete (another listener, a
        // requeue): do not re-create services for a vanished instance.
        if let Some(cloud) = &self.cloud {
            if cloud.server(&facts.instance_id).await?.is_none() {
                tracing::info!(message_id, instance_id = %facts.instance_id, "update of an instance nova no longer has: ignored");
                return Ok(());
            }
        }
        let hosts = self
            .ipa
            .host_show_many(services.iter().map(|s| s.principal_host.clone()))
            .await
            .map_err(|(host, e)| ipa_failure(&format!("host_show {host}"), e))?;
        let sub_binding = owner.sub_host().to_attribute();
        let mut batch = EnrollmentBatch::new();
        let mut created = BTreeSet::new();
        let mut linked = BTreeSet::new();
        for s in &services {
            let allowed = if s.principal_host.eq_ignore_ascii_case(&host.fqdn) {
                true
            } else {
                match hosts.get(&s.principal_host).cloned().flatten() {
                    // A compact service's sub-host is named after the
                    // instance; a managed service's host is the tenant's
                    // choice and needs the vendordata service's policy rule.
                    None => s.compact,
                    Some(e) => match owner_of(&e, &owner) {
                        HostOwner::This(_) => true,
                        other => {
                            refuse("update", message_id, facts, &s.principal_host, &other);
                            continue;
                        }
                    },
                }
            };
            if !allowed {
                refuse(
                    "update",
                    message_id,
                    facts,
                    &s.principal_host,
                    &HostOwner::Unmanaged,
                );
                continue;
            }
            if !s.principal_host.eq_ignore_ascii_case(&host.fqdn)
                && hosts.get(&s.principal_host).is_some_and(Option::is_none)
                && created.insert(s.principal_host.clone())
            {
                batch = batch.subhost(NewHost {
                    binding: Some(sub_binding.clone()),
                    ..NewHost::subhost(s.principal_host.clone())
                });
            }
            if linked.insert(s.principal.clone()) {
                batch = batch.service(s.principal.clone());
            }
            batch = batch.managed_by(s.principal.clone(), s.managed_by.clone());
        }
        if batch.is_empty() {
            return Ok(());
        }
        let outcome = self
            .ipa
            .enroll(&batch)
            .await
            .map_err(|e| ipa_failure("service batch", e))?;
        if let Some(f) = outcome.failures.into_iter().next() {
            return Err(ipa_failure(&f.command, f.error));
        }
        tracing::info!(message_id, fqdn = %host.fqdn, services = linked.len(), "instance services updated in IPA");
        Ok(())
    }

    async fn instance_deleted(
        &self,
        facts: &InstanceFacts,
        message_id: &str,
    ) -> Result<(), HandlerError> {
        let owner = self.owner(facts)?;
        let bound = self.bound(&owner).await?;
        if bound.is_empty() {
            self.delete_unbound(facts, &owner, message_id).await?;
        } else {
            self.delete_bound(facts, &bound, message_id).await?;
        }
        if let Some(ev) = &self.eviction {
            // Hygiene, not safety: the entry expires after [cache] ttl and an
            // instance id is never reused, so a Redis outage must not hold
            // the delete back.
            if let Err(e) = ev.evict(&facts.instance_id).await {
                tracing::warn!(message_id, instance_id = %facts.instance_id, error = %e,
                    "could not evict the instance's cached vendordata answer; it expires on its own");
            }
        }
        Ok(())
    }

    /// A rebuilt (or evacuated) guest is wiped and runs cloud-init again:
    /// its host's enrollment is revoked (`host_disable`: keys and
    /// certificates) and its cached answer dropped, so that its next
    /// vendordata request gets a fresh OTP that IPA holds. A host that is
    /// not enrolled, or not bound to this instance, is left alone.
    async fn instance_rebuilt(
        &self,
        facts: &InstanceFacts,
        message_id: &str,
    ) -> Result<(), HandlerError> {
        let owner = self.owner(facts)?;
        let Some(host) = self.bound(&owner).await?.instance else {
            tracing::debug!(message_id, instance_id = %facts.instance_id,
                "rebuild of an instance without a host bound to it: nothing to revoke");
            return Ok(());
        };
        // Revoked first, evicted second: a retry after a failed eviction
        // finds the host not enrolled and only evicts.
        let revoked = if host.has_keytab {
            self.ipa
                .host_disable(&host.fqdn)
                .await
                .map_err(|e| ipa_failure(&format!("host_disable {}", host.fqdn), e))?
        } else {
            tracing::info!(message_id, fqdn = %host.fqdn,
                "rebuild of an instance whose host is not enrolled: nothing to revoke in IPA");
            false
        };
        if let Some(ev) = &self.eviction {
            if let Err(e) = ev.evict(&facts.instance_id).await {
                return Err(HandlerError::Transient(format!(
                    "the enrollment of {} is revoked but its cached answer could not be \
                     dropped: {e}",
                    host.fqdn
                )));
            }
        }
        tracing::info!(message_id, instance_id = %facts.instance_id, fqdn = %host.fqdn, revoked,
            "instance rebuilt: its enrollment is revoked, its next request gets a new OTP");
        Ok(())
    }

    /// The instance's bound hosts go: links to services on hosts it does
    /// not own first, then sub-hosts, then its own host, each with its DNS
    /// name, so a retry after a partial failure still finds the rest.
    async fn delete_bound(
        &self,
        facts: &InstanceFacts,
        bound: &BoundHosts,
        message_id: &str,
    ) -> Result<(), HandlerError> {
        if let Some(host) = &bound.instance {
            let project = self.project_name(facts).await.ok().flatten();
            let owned: BTreeSet<String> = bound
                .sub_hosts
                .iter()
                .map(|h| h.fqdn.to_ascii_lowercase())
                .collect();
            let services = self
                .services(facts, &host.fqdn, project.as_deref())
                .unwrap_or_default();
            for s in services.iter().filter(|s| {
                !s.compact
                    && !owned.contains(&s.principal_host)
                    && !s.principal_host.eq_ignore_ascii_case(&host.fqdn)
            }) {
                self.unlink_service(&s.principal, &host.fqdn).await?;
            }
        }
        let hosts = self.remove_bound_hosts(bound).await?;
        tracing::info!(message_id, instance_id = %facts.instance_id, hosts = ?hosts, "instance removed from IPA");
        Ok(())
    }

    /// Sub-hosts first, then the instance host, each with its DNS name, so
    /// a retry after a partial failure still finds the rest. Returns the
    /// hosts removed.
    async fn remove_bound_hosts(&self, bound: &BoundHosts) -> Result<Vec<String>, HandlerError> {
        let hosts: Vec<String> = bound
            .sub_hosts
            .iter()
            .chain(bound.instance.as_ref())
            .map(|h| h.fqdn.clone())
            .collect();
        for h in &hosts {
            self.remove_host(h).await?;
        }
        Ok(hosts)
    }

    /// Removes every host bound to `owner`, as its delete notification
    /// would (without the metadata, which only a notification carries);
    /// used by `novajoin reconcile`. Returns the hosts removed.
    pub async fn remove_instance(&self, owner: &HostBinding) -> Result<Vec<String>, HandlerError> {
        let bound = self.bound(owner).await?;
        let hosts = self.remove_bound_hosts(&bound).await?;
        if let Some(ev) = &self.eviction {
            if let Err(e) = ev.evict(&owner.instance_id).await {
                tracing::warn!(instance_id = %owner.instance_id, error = %e,
                    "could not evict the instance's cached vendordata answer; it expires on its own");
            }
        }
        Ok(hosts)
    }

    /// No host is bound to the instance: a host of the Python novajoin
    /// under its name follows the original's rule; anything else is left.
    async fn delete_unbound(
        &self,
        facts: &InstanceFacts,
        owner: &HostBinding,
        message_id: &str,
    ) -> Result<(), HandlerError> {
        let project = self.project_name(facts).await?;
        let fqdn = self.fqdn(facts, project.as_deref())?;
        let entry = match self.ipa.host_show(&fqdn).await {
            Ok(h) => h,
            Err(IpaError::NotFound(_)) => {
                tracing::debug!(message_id, fqdn = %fqdn, "delete of an instance with no host in IPA: nothing to do");
                return Ok(());
            }
            Err(e) => return Err(ipa_failure(&format!("host_show {fqdn}"), e)),
        };
        match owner_of(&entry, owner) {
            HostOwner::Legacy if facts.payload_says_enrolled() => {
                self.delete_legacy(facts, &fqdn, project.as_deref(), message_id)
                    .await
            }
            HostOwner::Legacy => {
                tracing::debug!(message_id, fqdn = %fqdn,
                    "delete of an instance that did not ask for enrollment; the Python novajoin's host under its name is kept");
                Ok(())
            }
            other => {
                refuse("delete", message_id, facts, &fqdn, &other);
                Ok(())
            }
        }
    }

    /// The original's delete, for a host of the Python novajoin: sub-hosts
    /// and services named by the metadata, then the host.
    async fn delete_legacy(
        &self,
        facts: &InstanceFacts,
        fqdn: &str,
        project: Option<&str>,
        message_id: &str,
    ) -> Result<(), HandlerError> {
        // Malformed service metadata must not keep the host alive.
        let services = self.services(facts, fqdn, project).unwrap_or_else(|why| {
            tracing::warn!(message_id, fqdn = %fqdn, problem = %why,
                "the instance's service metadata cannot be read; removing only the host");
            Vec::new()
        });
        let subhosts: BTreeSet<&str> = services
            .iter()
            .filter(|s| s.compact)
            .map(|s| s.principal_host.as_str())
            .collect();
        for h in &subhosts {
            self.remove_host(h).await?;
        }
        for s in services.iter().filter(|s| !s.compact) {
            self.remove_managed_service(s, fqdn).await?;
        }
        self.remove_host(fqdn).await?;
        tracing::info!(message_id, instance_id = %facts.instance_id, fqdn = %fqdn, legacy = true,
            "instance removed from IPA");
        Ok(())
    }

    /// `host_del` (IPA deletes the host's own services) and its DNS name.
    async fn remove_host(&self, fqdn: &str) -> Result<(), HandlerError> {
        match self.ipa.host_del(fqdn, false).await {
            Ok(()) | Err(IpaError::NotFound(_)) => {}
            Err(e) => return Err(ipa_failure(&format!("host_del {fqdn}"), e)),
        }
        let (zone, label) = zone_of(fqdn);
        match self.ipa.dnsrecord_del_all(&zone, &label).await {
            Ok(()) | Err(IpaError::NotFound(_)) => Ok(()),
            Err(e) => Err(ipa_failure(&format!("dnsrecord_del {zone} {label}"), e)),
        }
    }

    /// The instance host no longer manages a service on a host it does
    /// not own; the service itself stays.
    async fn unlink_service(&self, principal: &str, fqdn: &str) -> Result<(), HandlerError> {
        match self
            .ipa
            .service_remove_host(principal, &[fqdn.to_string()])
            .await
        {
            Ok(_) | Err(IpaError::NotFound(_)) => Ok(()),
            Err(e) => Err(ipa_failure(
                &format!("service_remove_host {principal} {fqdn}"),
                e,
            )),
        }
    }

    /// The original's rule for a legacy host's managed service: it goes
    /// when no host other than its own (and the instance being deleted)
    /// manages it; its host goes when it then manages no service.
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

    async fn dispatch(&self, event: &Event, message_id: &str) -> Result<(), HandlerError> {
        match event {
            Event::InstanceCreated(f) => self.instance_created(f, message_id).await,
            Event::InstanceUpdated(f) => self.instance_updated(f, message_id).await,
            Event::InstanceDeleted(f) => self.instance_deleted(f, message_id).await,
            Event::InstanceRebuilt(f) => self.instance_rebuilt(f, message_id).await,
            other => self.floating_ips.handle(other, message_id).await,
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
