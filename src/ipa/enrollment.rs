//! One enrollment in one IPA round trip: the instance host's OTP, its
//! sub-hosts, its services and their managed-by links, as one `batch`.
//! The order and why it is safe are explained in the [module
//! documentation](super).

use super::client::IpaClient;
use super::command::{CommandOutput, HostEntry, IpaCommand, NewHost};
use super::error::IpaError;
use super::secret::Secret;

/// What to do in IPA for one instance. Build it, then [`IpaClient::enroll`].
#[derive(Clone, Debug, Default)]
pub struct EnrollmentBatch {
    host: Option<HostWrite>,
    subhosts: Vec<NewHost>,
    services: Vec<String>,
    managers: Vec<(String, String)>,
}

/// The write to the instance host. Which one to send is the caller's
/// decision, taken from what IPA holds (see [`crate::ownership`]).
#[derive(Clone, Debug)]
pub enum HostWrite {
    /// `host_add` with the OTP and the binding: only ever creates, so it is
    /// safe to send before anything is known about the name.
    Create(NewHost),
    /// `host_mod` of a host the instance owns (or has just proven to own):
    /// a new OTP, the binding, or both.
    Update {
        /// The host.
        fqdn: String,
        /// The new OTP, unless the host is enrolled.
        otp: Option<Secret>,
        /// The binding to record (a host of the Python novajoin).
        binding: Option<String>,
    },
}

impl HostWrite {
    fn fqdn(&self) -> &str {
        match self {
            HostWrite::Create(h) => &h.fqdn,
            HostWrite::Update { fqdn, .. } => fqdn,
        }
    }
}

/// What happened to the instance host.
#[derive(Debug)]
pub enum HostOutcome {
    /// `host_add` created it with the OTP and the binding.
    Created,
    /// `host_add` found the name taken and changed nothing: the caller
    /// reads the host and decides whether it may be changed.
    Exists,
    /// `host_mod` changed it; the entry as IPA now holds it, so the caller
    /// can check that the host it changed is still the one it meant.
    Updated(Box<Option<HostEntry>>),
    /// `host_mod` refused the OTP: the host is enrolled (has a keytab).
    AlreadyEnrolled,
    /// `host_mod` found no such host: it was deleted since it was read.
    Vanished,
    /// IPA refused the write; no OTP is valid.
    Failed(IpaError),
    /// The batch had no instance host (services only).
    NotRequested,
}

/// A batch item that failed for a reason that is not the expected
/// idempotent outcome (`DuplicateEntry` for a sub-host or service, "already
/// a member" for a managed-by link).
#[derive(Debug)]
pub struct ItemFailure {
    /// `method first-arg`, e.g. `service_add HTTP/vm1.internalapi.example.com`.
    pub command: String,
    /// The error.
    pub error: IpaError,
}

/// The result of [`IpaClient::enroll`].
#[derive(Debug)]
pub struct EnrollmentOutcome {
    /// The instance host.
    pub host: HostOutcome,
    /// Sub-host, service and managed-by items that really failed.
    pub failures: Vec<ItemFailure>,
    /// JSON-RPC round trips used (0 or 1).
    pub round_trips: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    HostCreate,
    HostUpdate,
    Subhost,
    Service,
    Manager,
}

impl EnrollmentBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// The write to the instance host.
    pub fn host(mut self, write: HostWrite) -> Self {
        self.host = Some(write);
        self
    }

    /// A sub-host to create (`host_add <fqdn> force=true`, with its
    /// binding), e.g. the `<short>.<network>.<domain>` host of a compact
    /// service.
    pub fn subhost(mut self, host: NewHost) -> Self {
        self.subhosts.push(host);
        self
    }

    /// A service to create (`service_add <principal> force=true`).
    pub fn service(mut self, principal: impl Into<String>) -> Self {
        self.services.push(principal.into());
        self
    }

    /// A managed-by link (`service_add_host <principal> host=[<host>]`).
    pub fn managed_by(mut self, principal: impl Into<String>, host: impl Into<String>) -> Self {
        self.managers.push((principal.into(), host.into()));
        self
    }

    /// Whether nothing would be sent.
    pub fn is_empty(&self) -> bool {
        self.host.is_none()
            && self.subhosts.is_empty()
            && self.services.is_empty()
            && self.managers.is_empty()
    }

    /// The commands in the order they must run, each with its role.
    fn commands(&self) -> Vec<(Item, IpaCommand)> {
        let mut out = Vec::new();
        match &self.host {
            Some(HostWrite::Create(h)) => out.push((Item::HostCreate, IpaCommand::host_add(h))),
            Some(HostWrite::Update { fqdn, otp, binding }) => out.push((
                Item::HostUpdate,
                IpaCommand::host_update(fqdn, otp.as_ref(), binding.as_deref()),
            )),
            None => {}
        }
        for s in &self.subhosts {
            out.push((Item::Subhost, IpaCommand::host_add(s)));
        }
        for p in &self.services {
            out.push((Item::Service, IpaCommand::service_add(p)));
        }
        for (p, h) in &self.managers {
            out.push((
                Item::Manager,
                IpaCommand::service_add_host(p, std::slice::from_ref(h)),
            ));
        }
        out
    }
}

impl IpaClient {
    /// Sends the whole enrollment as one `batch` (nothing when the batch is
    /// empty) and interprets every item. `Err` only when the round trip
    /// itself failed; then nothing is known about what IPA did, and sending
    /// the same batch again is safe (see the module documentation).
    pub async fn enroll(&self, batch: &EnrollmentBatch) -> Result<EnrollmentOutcome, IpaError> {
        match &batch.host {
            Some(HostWrite::Create(h)) if h.otp.as_ref().is_none_or(Secret::is_empty) => {
                return Err(IpaError::Setup(
                    "a new instance host must carry an OTP".into(),
                ))
            }
            Some(HostWrite::Update { otp, binding, .. }) if otp.is_none() && binding.is_none() => {
                return Err(IpaError::Setup(
                    "a host update must set an OTP or a binding".into(),
                ))
            }
            _ => {}
        }
        let planned = batch.commands();
        if planned.is_empty() {
            return Ok(EnrollmentOutcome {
                host: HostOutcome::NotRequested,
                failures: Vec::new(),
                round_trips: 0,
            });
        }
        let cmds: Vec<IpaCommand> = planned.iter().map(|(_, c)| c.clone()).collect();
        let results = match &batch.host {
            Some(h) => self.batch_for_host(h.fqdn(), &cmds).await?,
            None => self.batch(&cmds).await?,
        };
        Ok(interpret(&planned, results))
    }
}

fn interpret(
    planned: &[(Item, IpaCommand)],
    results: Vec<Result<CommandOutput, IpaError>>,
) -> EnrollmentOutcome {
    let mut host = HostOutcome::NotRequested;
    let mut failures = Vec::new();
    for ((item, cmd), result) in planned.iter().zip(results) {
        match item {
            Item::HostCreate => {
                host = match result {
                    Ok(_) => HostOutcome::Created,
                    Err(IpaError::DuplicateEntry(_)) => HostOutcome::Exists,
                    Err(e) => HostOutcome::Failed(e),
                }
            }
            Item::HostUpdate => {
                host = match result {
                    Ok(out) => {
                        HostOutcome::Updated(Box::new(out.entry().and_then(HostEntry::from_entry)))
                    }
                    Err(IpaError::Validation(_)) => HostOutcome::AlreadyEnrolled,
                    Err(IpaError::NotFound(_)) => HostOutcome::Vanished,
                    Err(e) => HostOutcome::Failed(e),
                }
            }
            Item::Subhost | Item::Service => match result {
                Ok(_) | Err(IpaError::DuplicateEntry(_)) => {}
                Err(error) => failures.push(ItemFailure {
                    command: cmd.describe(),
                    error,
                }),
            },
            Item::Manager => match result {
                Ok(out) => {
                    for (member, reason) in out.member_result().real_failures() {
                        failures.push(ItemFailure {
                            command: cmd.describe(),
                            error: IpaError::Remote(Box::new(super::error::RemoteError {
                                code: 0,
                                name: "MemberFailed".into(),
                                message: format!("{member}: {reason}"),
                                data: serde_json::Value::Null,
                            })),
                        });
                    }
                }
                Err(error) => failures.push(ItemFailure {
                    command: cmd.describe(),
                    error,
                }),
            },
        }
    }
    for f in &failures {
        tracing::warn!(command = %f.command, error = %f.error, "IPA enrollment item failed");
    }
    EnrollmentOutcome {
        host,
        failures,
        round_trips: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipa::error::RemoteError;
    use serde_json::json;

    fn err(code: i64, name: &str) -> IpaError {
        IpaError::from_remote(RemoteError {
            code,
            name: name.into(),
            message: String::new(),
            data: json!({}),
        })
    }
    fn ok() -> Result<CommandOutput, IpaError> {
        Ok(CommandOutput(json!({"result": {}})))
    }

    fn planned() -> Vec<(Item, IpaCommand)> {
        let h = NewHost {
            otp: Some(Secret::new("otp")),
            binding: Some("novajoin/1 instance=i-1".into()),
            ..NewHost::subhost("vm1.example.com")
        };
        EnrollmentBatch::new()
            .host(HostWrite::Create(h))
            .service("HTTP/vm1.example.com")
            .commands()
    }

    fn update() -> Vec<(Item, IpaCommand)> {
        EnrollmentBatch::new()
            .host(HostWrite::Update {
                fqdn: "vm1.example.com".into(),
                otp: Some(Secret::new("otp")),
                binding: None,
            })
            .commands()
    }

    #[test]
    fn a_new_host_is_only_ever_added() {
        let p = planned();
        let methods: Vec<_> = p.iter().map(|(_, c)| c.method().to_string()).collect();
        assert_eq!(methods, ["host_add", "service_add"]);
        assert_eq!(update()[0].1.method(), "host_mod");
    }

    #[test]
    fn outcomes_for_new_taken_enrolled_and_vanished_hosts() {
        let name = |p: &[(Item, IpaCommand)], r| format!("{:?}", interpret(p, vec![r, ok()]).host);
        assert!(name(&planned(), ok()).starts_with("Created"));
        assert!(name(&planned(), Err(err(4002, "DuplicateEntry"))).starts_with("Exists"));
        assert!(name(&planned(), Err(err(3009, "ValidationError"))).starts_with("Failed"));
        assert!(name(&planned(), Err(err(2100, "ACIError"))).starts_with("Failed"));
        let one = |r| format!("{:?}", interpret(&update(), vec![r]).host);
        assert!(one(ok()).starts_with("Updated"));
        assert!(one(Err(err(3009, "ValidationError"))).starts_with("AlreadyEnrolled"));
        assert!(one(Err(err(4001, "NotFound"))).starts_with("Vanished"));
        assert!(one(Err(err(2100, "ACIError"))).starts_with("Failed"));
    }

    #[test]
    fn duplicate_service_is_not_a_failure_but_realm_mismatch_is() {
        let out = interpret(&planned(), vec![ok(), Err(err(4002, "DuplicateEntry"))]);
        assert!(out.failures.is_empty());
        let out = interpret(&planned(), vec![ok(), Err(err(4005, "RealmMismatch"))]);
        assert_eq!(out.failures.len(), 1);
        assert_eq!(out.failures[0].command, "service_add HTTP/vm1.example.com");
    }
}
