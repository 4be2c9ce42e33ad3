//! One instance's enrollment with ownership checked first: nothing in IPA
//! is changed for an instance unless it belongs to that instance (see
//! [`crate::ownership`]).
//!
//! 1. A request without services sends `host_add` alone: it only ever
//!    creates, so for a new instance (the common case) the enrollment is
//!    that one round trip.
//! 2. Otherwise, or when the name is taken, every host the enrollment would
//!    touch is read in one `batch` of `host_show`, and each is judged:
//!    * the instance host: absent → create it; bound to this instance →
//!      new OTP (none when enrolled); made by the Python novajoin → bind it
//!      when nova shows that no other server has the name; anything else →
//!      409;
//!    * compact-service sub-hosts: absent → create them bound to this
//!      instance; bound to it → keep; anything else → 409;
//!    * managed-service hosts: the instance's own host or a sub-host bound
//!      to it → allowed; any other host → the policy rule
//!      [`SERVICE_ON_OTHER_HOST`] decides (default: nobody, 403).
//! 3. The writes go out in one `batch`; IPA's answer to `host_mod` carries
//!    the entry, whose binding is checked once more.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::services::ServiceRequest;
use super::JoinError;
use crate::cloud::CloudLookups;
use crate::ipa::{
    EnrollmentBatch, HostEntry, HostOutcome, HostWrite, IpaClient, IpaCommand, IpaError, NewHost,
    Secret,
};
use crate::ownership::{owner_of, HostBinding, HostOwner, HostRole};
use crate::policy::{Decision, Enforcer, SERVICE_ON_OTHER_HOST};

/// Everything one enrollment needs, borrowed from the handler and request.
pub(super) struct Enrollment<'a> {
    /// The IPA client.
    pub ipa: &'a IpaClient,
    /// The instance's binding (uuid, project, region), from nova's request.
    pub owner: HostBinding,
    /// The instance host as it is created: FQDN, OTP, binding (with the
    /// OTP's issue time), attributes.
    pub host: NewHost,
    /// The OTP carried by `host`.
    pub otp: Secret,
    /// nova's short host name, to ask nova who else has it.
    pub hostname: &'a str,
    /// Requested services.
    pub services: Vec<ServiceRequest>,
    /// The compact services' sub-hosts (named after the instance).
    pub compact_hosts: BTreeSet<String>,
    /// nova, for hosts of the Python novajoin; `None` without
    /// `[service_credentials]`.
    pub cloud: Option<&'a CloudLookups>,
    /// The policy, for managed services on hosts the instance does not own.
    pub enforcer: &'a Enforcer,
    /// nova's credentials (the request context), for that policy check.
    pub credentials: Map<String, Value>,
}

/// What the enrollment hands back.
pub(super) enum Issued {
    /// IPA holds this OTP for the host.
    Otp(Secret),
    /// The host is enrolled: no OTP can be set (the original answered
    /// without `ipaotp`).
    AlreadyEnrolled,
}

/// A 409 for `host`, logged and counted; the body names the host and the
/// reason but never the other owner.
fn conflict(what: &str, host: &str, owner: &HostOwner, request_owner: &HostBinding) -> JoinError {
    crate::metrics::ownership_refused("join");
    tracing::warn!(
        host,
        instance_id = %request_owner.instance_id,
        project_id = request_owner.project_id.as_deref().unwrap_or("-"),
        owner = ?owner,
        "refused to change an IPA host that is not this instance's"
    );
    JoinError::Conflict(format!("IPA {what} {host} {}", owner.refusal()))
}

fn unavailable(fqdn: &str, e: IpaError) -> JoinError {
    // The queue has logged and counted the refusal; under a boot storm
    // there are many, and they are not faults.
    if let IpaError::Overloaded { retry_after } = e {
        return JoinError::Overloaded {
            message: format!("IPA is busy with other enrollments; {fqdn} was not sent to it: {e}"),
            retry_after_secs: retry_after.as_secs().max(1),
        };
    }
    tracing::error!(host = %fqdn, error = %e, "IPA enrollment failed");
    JoinError::Unavailable(format!("IPA could not be reached to enroll {fqdn}: {e}"))
}

fn refused(fqdn: &str, e: IpaError) -> JoinError {
    match e {
        IpaError::AccessDenied(_) => {
            JoinError::Internal(format!("IPA refused to create {fqdn}: {e}"))
        }
        e if e.is_unavailable() => unavailable(fqdn, e),
        _ => JoinError::BadRequest(format!("IPA refused host {fqdn}: {e}")),
    }
}

impl Enrollment<'_> {
    fn fqdn(&self) -> &str {
        &self.host.fqdn
    }

    /// Runs the enrollment; see the module documentation.
    pub(super) async fn run(self) -> Result<Issued, JoinError> {
        if self.services.is_empty() {
            let batch = EnrollmentBatch::new().host(HostWrite::Create(self.host.clone()));
            let out = self
                .ipa
                .enroll(&batch)
                .await
                .map_err(|e| unavailable(self.fqdn(), e))?;
            match out.host {
                HostOutcome::Created => return Ok(Issued::Otp(self.otp)),
                HostOutcome::Exists => {}
                HostOutcome::Failed(e) => return Err(refused(self.fqdn(), e)),
                other => {
                    return Err(JoinError::Internal(format!(
                        "unexpected outcome of host_add {}: {other:?}",
                        self.fqdn()
                    )))
                }
            }
        }
        let hosts = self.read_hosts().await?;
        let (batch, sends_otp) = self.plan(&hosts).await?;
        let out = self
            .ipa
            .enroll(&batch)
            .await
            .map_err(|e| unavailable(self.fqdn(), e))?;
        for f in &out.failures {
            tracing::warn!(host = %self.fqdn(), command = %f.command, error = %f.error, "IPA refused part of the enrollment");
        }
        match out.host {
            HostOutcome::Created => Ok(Issued::Otp(self.otp)),
            HostOutcome::Updated(entry) => {
                self.check_written(entry.as_ref().as_ref(), sends_otp).await
            }
            HostOutcome::AlreadyEnrolled | HostOutcome::NotRequested => Ok(Issued::AlreadyEnrolled),
            HostOutcome::Exists | HostOutcome::Vanished => Err(JoinError::Unavailable(format!(
                "{} was created or deleted by someone else at the same moment; retry",
                self.fqdn()
            ))),
            HostOutcome::Failed(e) => Err(refused(self.fqdn(), e)),
        }
    }

    /// `host_show` of the instance host and of every host a service names,
    /// in one batch: host name → entry (`None` when absent).
    async fn read_hosts(&self) -> Result<BTreeMap<String, Option<HostEntry>>, JoinError> {
        let names = std::iter::once(self.fqdn().to_string())
            .chain(self.services.iter().map(|s| s.principal_host.clone()));
        self.ipa
            .host_show_many(names)
            .await
            .map_err(|(host, e)| unavailable(&host, e))
    }

    /// The writes this instance may make (and whether they set an OTP), or
    /// the refusal.
    async fn plan(
        &self,
        hosts: &BTreeMap<String, Option<HostEntry>>,
    ) -> Result<(EnrollmentBatch, bool), JoinError> {
        let mut batch = EnrollmentBatch::new();
        let write = self
            .instance_host_write(hosts.get(self.fqdn()).cloned().flatten())
            .await?;
        let sends_otp = matches!(
            write,
            Some(HostWrite::Create(_) | HostWrite::Update { otp: Some(_), .. })
        );
        if let Some(write) = write {
            batch = batch.host(write);
        }
        let sub_binding = self.owner.sub_host().to_attribute();
        let mut created = BTreeSet::new();
        for name in &self.compact_hosts {
            match hosts.get(name).cloned().flatten() {
                None => created.insert(name.clone()),
                Some(e) => match owner_of(&e, &self.owner) {
                    HostOwner::This(_) => false,
                    other => return Err(conflict("sub-host", name, &other, &self.owner)),
                },
            };
        }
        let mut allowed_hosts: BTreeSet<&str> = BTreeSet::from([self.fqdn()]);
        allowed_hosts.extend(self.compact_hosts.iter().map(String::as_str));
        for s in &self.services {
            let host = s.principal_host.as_str();
            if allowed_hosts.contains(host) {
                continue;
            }
            let entry = hosts.get(host).cloned().flatten();
            if let Some(e) = &entry {
                if matches!(owner_of(e, &self.owner), HostOwner::This(_)) {
                    continue;
                }
            }
            self.authorize_other_host(s)?;
            // The policy lets this instance use the name: a host that does
            // not exist yet is made the instance's, so its delete removes it.
            if entry.is_none() {
                created.insert(host.to_string());
            }
        }
        for name in &created {
            batch = batch.subhost(NewHost {
                binding: Some(sub_binding.clone()),
                ..NewHost::subhost(name.clone())
            });
        }
        let mut seen = BTreeSet::new();
        for s in &self.services {
            if seen.insert(s.principal.clone()) {
                batch = batch.service(s.principal.clone());
            }
            batch = batch.managed_by(s.principal.clone(), s.managed_by.clone());
        }
        Ok((batch, sends_otp))
    }

    /// The write to the instance host, from what IPA holds.
    async fn instance_host_write(
        &self,
        entry: Option<HostEntry>,
    ) -> Result<Option<HostWrite>, JoinError> {
        let Some(entry) = entry else {
            return Ok(Some(HostWrite::Create(self.host.clone())));
        };
        let enrolled = entry.has_keytab;
        let otp = (!enrolled).then(|| self.otp.clone());
        // The binding records the new OTP's issue time (see
        // `crate::otp_lifetime`); without an OTP, the owner alone.
        let binding = match &otp {
            Some(_) => self.host.binding.clone(),
            None => Some(self.owner.instance_host().to_attribute()),
        };
        match owner_of(&entry, &self.owner) {
            HostOwner::This(HostRole::Instance) => Ok(otp.map(|otp| HostWrite::Update {
                fqdn: entry.fqdn,
                otp: Some(otp),
                binding,
            })),
            HostOwner::Legacy if self.proves_legacy_owner().await? => {
                tracing::info!(host = %entry.fqdn, instance_id = %self.owner.instance_id,
                    "binding a host of the Python novajoin to its instance");
                Ok(Some(HostWrite::Update {
                    fqdn: entry.fqdn,
                    otp,
                    binding,
                }))
            }
            other => Err(conflict("host", self.fqdn(), &other, &self.owner)),
        }
    }

    /// Whether nova shows that this instance alone has the host name, so a
    /// host the Python novajoin made under that name can only be its own.
    async fn proves_legacy_owner(&self) -> Result<bool, JoinError> {
        let Some(cloud) = self.cloud else {
            tracing::warn!(host = %self.fqdn(),
                "a host of the Python novajoin cannot be bound without [service_credentials] to ask nova");
            return Ok(false);
        };
        let servers = cloud
            .servers_with_hostname(self.hostname)
            .await
            .map_err(|e| {
                JoinError::Unavailable(format!(
                    "nova could not be asked who owns {}: {e}",
                    self.fqdn()
                ))
            })?;
        let sole = servers.len() == 1 && servers[0].id == self.owner.instance_id;
        if !sole {
            tracing::warn!(host = %self.fqdn(), servers = servers.len(),
                "nova does not show this instance as the only server with the name");
        }
        Ok(sole)
    }

    /// Asks the policy whether this instance may manage `s`, whose host is
    /// not its own.
    fn authorize_other_host(&self, s: &ServiceRequest) -> Result<(), JoinError> {
        let target: Map<String, Value> = json!({
            "project_id": self.owner.project_id,
            "instance_id": self.owner.instance_id,
            "principal": s.principal,
            "principal_host": s.principal_host,
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        match self
            .enforcer
            .enforce(SERVICE_ON_OTHER_HOST, &target, &self.credentials)
        {
            Decision::Allow => Ok(()),
            decision => {
                crate::metrics::ownership_refused("join");
                tracing::warn!(principal = %s.principal, instance_id = %self.owner.instance_id,
                    decision = ?decision, rule = SERVICE_ON_OTHER_HOST,
                    "refused a managed service on a host the instance does not own");
                Err(JoinError::Forbidden(format!(
                    "managed service {} is on {}, which is neither this instance's host nor \
                     one of its sub-hosts; policy rule {SERVICE_ON_OTHER_HOST} does not allow it",
                    s.principal, s.principal_host
                )))
            }
        }
    }

    /// After `host_mod`: the entry IPA changed must still be this
    /// instance's. If it is not (deleted and re-created by someone else
    /// between the read and the write), the OTP just set is replaced by one
    /// nobody knows and the request is refused.
    async fn check_written(
        &self,
        entry: Option<&HostEntry>,
        sent_otp: bool,
    ) -> Result<Issued, JoinError> {
        if let Some(e) = entry {
            let owner = owner_of(e, &self.owner);
            if !matches!(owner, HostOwner::This(HostRole::Instance)) {
                let scrub = Secret::new(super::new_otp());
                if let Err(err) = self
                    .ipa
                    .call(IpaCommand::host_update(self.fqdn(), Some(&scrub), None))
                    .await
                {
                    tracing::error!(host = %self.fqdn(), error = %err,
                        "could not replace an OTP set on a host that changed owner; reset it by hand");
                }
                return Err(conflict("host", self.fqdn(), &owner, &self.owner));
            }
        }
        if sent_otp {
            Ok(Issued::Otp(self.otp.clone()))
        } else {
            Ok(Issued::AlreadyEnrolled)
        }
    }
}
