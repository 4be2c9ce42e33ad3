//! One enrollment in one IPA round trip: the instance host's OTP, its
//! sub-hosts, its services and their managed-by links, as one `batch`.
//! The order and why it is safe are explained in the [module
//! documentation](super).

use super::client::IpaClient;
use super::command::{CommandOutput, IpaCommand, NewHost};
use super::error::IpaError;
use super::secret::Secret;

/// What to do in IPA for one instance. Build it, then [`IpaClient::enroll`].
#[derive(Clone, Debug, Default)]
pub struct EnrollmentBatch {
    host: Option<NewHost>,
    subhosts: Vec<String>,
    services: Vec<String>,
    managers: Vec<(String, String)>,
}

/// What happened to the instance host's OTP.
#[derive(Debug)]
pub enum HostOutcome {
    /// The host did not exist and was created with the OTP.
    Created,
    /// The host existed, was not enrolled, and its OTP was replaced.
    OtpReset,
    /// The host is enrolled (has a keytab): no OTP can be set. The original
    /// answered without `ipaotp`; so do we.
    AlreadyEnrolled,
    /// The host did not exist at `host_mod` but someone else created it
    /// before our `host_add` (another replica, same instance): our OTP was
    /// not set. The original answered without `ipaotp`.
    LostRace,
    /// IPA refused the host; the OTP is not valid.
    Failed(IpaError),
    /// The batch had no instance host (update of services only).
    NotRequested,
}

impl HostOutcome {
    /// Whether the OTP that was sent is now the host's enrolment password.
    pub fn otp_is_valid(&self) -> bool {
        matches!(self, Self::Created | Self::OtpReset)
    }
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
    HostMod,
    HostAdd,
    Subhost,
    Service,
    Manager,
}

impl EnrollmentBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// The instance host with its OTP (`userpassword`) and the attributes a
    /// new host gets (`description`, `userclass`, `nsosversion`,
    /// `nshostlocation`, `force`). Must carry an OTP.
    pub fn host(mut self, host: NewHost) -> Self {
        self.host = Some(host);
        self
    }

    /// A sub-host to create (`host_add <fqdn> force=true`), e.g. the
    /// `<short>.<network>.<domain>` host of a compact service.
    pub fn subhost(mut self, fqdn: impl Into<String>) -> Self {
        self.subhosts.push(fqdn.into());
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
        if let Some(h) = &self.host {
            let otp = h.otp.clone().unwrap_or_else(|| Secret::new(""));
            out.push((Item::HostMod, IpaCommand::host_mod_otp(&h.fqdn, &otp)));
            out.push((Item::HostAdd, IpaCommand::host_add(h)));
        }
        for s in &self.subhosts {
            out.push((
                Item::Subhost,
                IpaCommand::host_add(&NewHost::subhost(s.clone())),
            ));
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
        if batch
            .host
            .as_ref()
            .is_some_and(|h| h.otp.as_ref().is_none_or(Secret::is_empty))
        {
            return Err(IpaError::Setup(
                "an enrollment batch's host must carry an OTP".into(),
            ));
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
            Some(h) => self.batch_for_host(&h.fqdn, &cmds).await?,
            None => self.batch(&cmds).await?,
        };
        Ok(interpret(&planned, results))
    }
}

fn interpret(
    planned: &[(Item, IpaCommand)],
    results: Vec<Result<CommandOutput, IpaError>>,
) -> EnrollmentOutcome {
    let mut host_mod: Option<Result<CommandOutput, IpaError>> = None;
    let mut host = HostOutcome::NotRequested;
    let mut failures = Vec::new();
    for ((item, cmd), result) in planned.iter().zip(results) {
        match item {
            Item::HostMod => host_mod = Some(result),
            Item::HostAdd => {
                host = match (host_mod.take(), result) {
                    (Some(Ok(_)), _) => HostOutcome::OtpReset,
                    (Some(Err(IpaError::NotFound(_))), Ok(_)) => HostOutcome::Created,
                    (Some(Err(IpaError::NotFound(_))), Err(IpaError::DuplicateEntry(_))) => {
                        HostOutcome::LostRace
                    }
                    (Some(Err(IpaError::NotFound(_))), Err(e)) => HostOutcome::Failed(e),
                    (Some(Err(IpaError::Validation(_))), _) => HostOutcome::AlreadyEnrolled,
                    (Some(Err(e)), _) => HostOutcome::Failed(e),
                    (None, _) => {
                        HostOutcome::Failed(IpaError::Protocol("host_mod result missing".into()))
                    }
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
            ..NewHost::subhost("vm1.example.com")
        };
        EnrollmentBatch::new()
            .host(h)
            .service("HTTP/vm1.example.com")
            .commands()
    }

    #[test]
    fn host_mod_runs_before_host_add() {
        let p = planned();
        let methods: Vec<_> = p.iter().map(|(_, c)| c.method().to_string()).collect();
        assert_eq!(methods, ["host_mod", "host_add", "service_add"]);
    }

    #[test]
    fn outcomes_for_new_existing_enrolled_and_race() {
        type Item = Result<CommandOutput, IpaError>;
        let cases: Vec<(Item, Item, &str)> = vec![
            (Err(err(4001, "NotFound")), ok(), "Created"),
            (ok(), Err(err(4002, "DuplicateEntry")), "OtpReset"),
            (
                Err(err(3009, "ValidationError")),
                Err(err(4002, "DuplicateEntry")),
                "AlreadyEnrolled",
            ),
            (
                Err(err(4001, "NotFound")),
                Err(err(4002, "DuplicateEntry")),
                "LostRace",
            ),
            (
                Err(err(4001, "NotFound")),
                Err(err(3009, "ValidationError")),
                "Failed",
            ),
            (
                Err(err(2100, "ACIError")),
                Err(err(2100, "ACIError")),
                "Failed",
            ),
        ];
        for (m, a, want) in cases {
            let out = interpret(&planned(), vec![m, a, ok()]);
            assert!(
                format!("{:?}", out.host).starts_with(want),
                "{:?} != {want}",
                out.host
            );
            assert_eq!(
                out.host.otp_is_valid(),
                want == "Created" || want == "OtpReset"
            );
        }
    }

    #[test]
    fn duplicate_service_is_not_a_failure_but_realm_mismatch_is() {
        let out = interpret(
            &planned(),
            vec![
                ok(),
                Err(err(4002, "DuplicateEntry")),
                Err(err(4002, "DuplicateEntry")),
            ],
        );
        assert!(out.failures.is_empty());
        let out = interpret(
            &planned(),
            vec![
                ok(),
                Err(err(4002, "DuplicateEntry")),
                Err(err(4005, "RealmMismatch")),
            ],
        );
        assert_eq!(out.failures.len(), 1);
        assert_eq!(out.failures[0].command, "service_add HTTP/vm1.example.com");
    }
}
