//! [`IpaError`]: every way an IPA call can fail, typed.
//!
//! Errors IPA reports inside a JSON-RPC response (HTTP 200 with a non-null
//! `error`, or a failed batch item) are classified by their numeric `code`,
//! falling back to the class `name`; the human `message` is kept for the
//! operator but never used to decide anything (it is translated by IPA
//! according to `Accept-Language`).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

/// An error as IPA reported it: `{"code", "name", "message", "data"}`, or a
/// failed batch item's `error_code`, `error_name`, `error`, `error_kw`.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteError {
    /// IPA's errno, e.g. 4001.
    pub code: i64,
    /// IPA's error class, e.g. `NotFound`.
    pub name: String,
    /// IPA's message text (for humans only).
    pub message: String,
    /// The keyword arguments the error was built with (`error.data`).
    pub data: Value,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.name, self.code, self.message)
    }
}

/// A failed IPA call.
#[derive(Debug, thiserror::Error)]
pub enum IpaError {
    /// `NotFound` 4001 (or its subclass `EmptyResult` 4031): the host,
    /// service, zone or record does not exist.
    #[error("IPA: {0}")]
    NotFound(Box<RemoteError>),
    /// `DuplicateEntry` 4002: the entry already exists.
    #[error("IPA: {0}")]
    DuplicateEntry(Box<RemoteError>),
    /// `ValidationError` 3009: a value was refused. For `host_mod` with a
    /// password this means the host is enrolled (it has a keytab).
    #[error("IPA: {0}")]
    Validation(Box<RemoteError>),
    /// `EmptyModlist` 4202: nothing to change (also: DNS value already there).
    #[error("IPA: {0}")]
    EmptyModlist(Box<RemoteError>),
    /// `AttrValueNotFound` 4026: removing a value that is not present.
    #[error("IPA: {0}")]
    AttrValueNotFound(Box<RemoteError>),
    /// `ACIError` 2100: IPA's access controls deny the operation; check the
    /// role of the principal novajoin logs in as (`novajoin ipa-setup`).
    #[error("IPA denied access: {0}; check the privileges of novajoin's IPA principal")]
    AccessDenied(Box<RemoteError>),
    /// `DNSNotARecordError` 4019: the name does not resolve (sent without `force`).
    #[error("IPA: {0}")]
    DnsNotARecord(Box<RemoteError>),
    /// `VersionError` 901: the server refuses the `version` sent; set
    /// `[ipa] api_version` to a version the server accepts (2.146 works on
    /// every IPA since 4.2).
    #[error("IPA refused the API version: {0}; check [ipa] api_version")]
    Version(Box<RemoteError>),
    /// `OptionError` 3005: an option this IPA does not know.
    #[error("IPA: {0}")]
    UnknownOption(Box<RemoteError>),
    /// `RefererError` 911: the Referer header was refused.
    #[error("IPA refused the Referer header: {0}; the URL must use the server's FQDN")]
    Referer(Box<RemoteError>),
    /// Any other error IPA reported.
    #[error("IPA: {0}")]
    Remote(Box<RemoteError>),

    /// The login endpoint answered 401. `reason` is IPA's
    /// `X-IPA-Rejection-Reason` (`invalid-password`, `password-expired`,
    /// `krbprincipal-expired`, `user-locked`, `denied`) when it sent one.
    #[error("IPA rejected the login of {user:?}: {reason}; check [ipa] username and password")]
    LoginRejected {
        /// The user name (never the password).
        user: String,
        /// IPA's rejection reason, or a description when none was sent.
        reason: String,
    },
    /// A JSON-RPC call still got 401 right after a successful fresh login.
    #[error("IPA answered 401 to a call made with a fresh session; the principal may be disabled ({detail})")]
    Unauthorized {
        /// `X-IPA-Rejection-Reason` or a description.
        detail: String,
    },
    /// An HTTP status that is not an IPA answer and is not retried.
    #[error("IPA answered HTTP {status} to {path}: {hint}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The request path.
        path: String,
        /// What it usually means.
        hint: String,
    },
    /// Every attempt on every server failed to connect or got a 5xx.
    #[error("cannot reach IPA at {url} after {attempts} attempt(s): {last}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// Attempts made (`connect_retries + 1`).
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The call (including retries and waiting for a slot) exceeded `[ipa] timeout`.
    #[error("IPA did not answer within {0:?} ([ipa] timeout)")]
    Timeout(Duration),
    /// The response was not the JSON-RPC IPA sends.
    #[error("IPA sent a response that is not valid JSON-RPC: {0}")]
    Protocol(String),
    /// Kerberos login failed (keytab, KDC, service ticket, or IPA refused
    /// the token); the message names what to check.
    #[error("Kerberos login to IPA failed: {0}")]
    Kerberos(Box<KerberosError>),
    /// The client could not be built (CA bundle, URL, auth settings).
    #[error("IPA client setup: {0}")]
    Setup(String),
    /// The queue of work for IPA is deeper than its call slots can serve
    /// within `[ipa] queue_deadline`; nothing was sent. Ask again after
    /// `retry_after`.
    #[error(
        "IPA is busy: the queued enrollments cannot be served within [ipa] queue_deadline; \
         retry in {} s", retry_after.as_secs()
    )]
    Overloaded {
        /// About how long the queue needs to drain.
        retry_after: Duration,
    },
}

impl From<KerberosError> for IpaError {
    fn from(e: KerberosError) -> Self {
        Self::Kerberos(Box::new(e))
    }
}

impl IpaError {
    /// Classifies an error IPA reported, by code first, then by class name.
    pub fn from_remote(e: RemoteError) -> Self {
        let e = Box::new(e);
        match (e.code, e.name.as_str()) {
            (4001 | 4031, _) | (_, "NotFound" | "EmptyResult") => Self::NotFound(e),
            (4002, _) | (_, "DuplicateEntry") => Self::DuplicateEntry(e),
            (3009, _) | (_, "ValidationError") => Self::Validation(e),
            (4202, _) | (_, "EmptyModlist") => Self::EmptyModlist(e),
            (4026, _) | (_, "AttrValueNotFound") => Self::AttrValueNotFound(e),
            (2100, _) | (_, "ACIError") => Self::AccessDenied(e),
            (4019, _) | (_, "DNSNotARecordError") => Self::DnsNotARecord(e),
            (901, _) | (_, "VersionError") => Self::Version(e),
            (3005, _) | (_, "OptionError") => Self::UnknownOption(e),
            (911, _) | (_, "RefererError") => Self::Referer(e),
            _ => Self::Remote(e),
        }
    }

    /// The error as IPA reported it, when it came from IPA.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            Self::NotFound(e)
            | Self::DuplicateEntry(e)
            | Self::Validation(e)
            | Self::EmptyModlist(e)
            | Self::AttrValueNotFound(e)
            | Self::AccessDenied(e)
            | Self::DnsNotARecord(e)
            | Self::Version(e)
            | Self::UnknownOption(e)
            | Self::Referer(e)
            | Self::Remote(e) => Some(e),
            _ => None,
        }
    }

    /// IPA's errno, when IPA reported the error.
    pub fn code(&self) -> Option<i64> {
        self.remote().map(|e| e.code)
    }

    /// True for `NotFound`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound(_))
    }

    /// True when IPA could not be reached or did not answer in time: the
    /// command may or may not have run, and IPA itself said nothing. Also
    /// for a refusal of ours to queue more work ([`IpaError::Overloaded`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::Timeout(_) | Self::Overloaded { .. }
        )
    }

    /// The same error for another caller of one failed call (a batch that
    /// carried several enrollments). A Kerberos failure keeps its message
    /// and whether another attempt may succeed, as [`IpaError::Unreachable`]
    /// or [`IpaError::Setup`].
    pub fn duplicate(&self) -> Self {
        match self {
            Self::NotFound(e) => Self::NotFound(e.clone()),
            Self::DuplicateEntry(e) => Self::DuplicateEntry(e.clone()),
            Self::Validation(e) => Self::Validation(e.clone()),
            Self::EmptyModlist(e) => Self::EmptyModlist(e.clone()),
            Self::AttrValueNotFound(e) => Self::AttrValueNotFound(e.clone()),
            Self::AccessDenied(e) => Self::AccessDenied(e.clone()),
            Self::DnsNotARecord(e) => Self::DnsNotARecord(e.clone()),
            Self::Version(e) => Self::Version(e.clone()),
            Self::UnknownOption(e) => Self::UnknownOption(e.clone()),
            Self::Referer(e) => Self::Referer(e.clone()),
            Self::Remote(e) => Self::Remote(e.clone()),
            Self::LoginRejected { user, reason } => Self::LoginRejected {
                user: user.clone(),
                reason: reason.clone(),
            },
            Self::Unauthorized { detail } => Self::Unauthorized {
                detail: detail.clone(),
            },
            Self::Http { status, path, hint } => Self::Http {
                status: *status,
                path: path.clone(),
                hint: hint.clone(),
            },
            Self::Unreachable {
                url,
                attempts,
                last,
            } => Self::Unreachable {
                url: url.clone(),
                attempts: *attempts,
                last: last.clone(),
            },
            Self::Timeout(d) => Self::Timeout(*d),
            Self::Protocol(m) => Self::Protocol(m.clone()),
            Self::Kerberos(e) if e.is_transient() => Self::Unreachable {
                url: "the KDC".into(),
                attempts: 1,
                last: e.to_string(),
            },
            Self::Kerberos(e) => Self::Setup(format!("Kerberos login to IPA failed: {e}")),
            Self::Setup(m) => Self::Setup(m.clone()),
            Self::Overloaded { retry_after } => Self::Overloaded {
                retry_after: *retry_after,
            },
        }
    }
}

/// Why a Kerberos login failed. Each message names what to check.
#[derive(Debug, thiserror::Error)]
pub enum KerberosError {
    /// The keytab file cannot be opened.
    #[error(
        "cannot read the keytab {}: {source}; check [DEFAULT] keytab (the file must be readable by the \
         user novajoin runs as; `novajoin ipa-setup` fetches it)", path.display()
    )]
    KeytabUnreadable {
        /// The keytab.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// No initial ticket could be obtained from the keytab.
    #[error(
        "cannot obtain a Kerberos ticket for {principal} from the keytab {}: {detail}; check that \
         [DEFAULT] keytab holds the current keys of {principal} (`klist -k -t {}`; fetching a keytab \
         again with ipa-getkeytab rotates the keys and makes older copies useless) and [ipa] principal",
         keytab.display(), keytab.display()
    )]
    Credentials {
        /// The principal asked for.
        principal: String,
        /// The keytab used.
        keytab: PathBuf,
        /// What GSSAPI/krb5 said.
        detail: String,
        /// The KDC could not be reached (worth retrying).
        kdc_unreachable: bool,
    },
    /// No usable credentials in the default credential cache (when no
    /// keytab is configured, e.g. `ipa-setup` after `kinit admin`).
    #[error(
        "no usable Kerberos credentials in the default credential cache: {detail}; run kinit first"
    )]
    DefaultCredentials {
        /// What GSSAPI/krb5 said.
        detail: String,
        /// The KDC could not be reached.
        kdc_unreachable: bool,
    },
    /// A password login to the KDC failed (`ipa-setup` as an administrator).
    #[error("cannot obtain a Kerberos ticket for {principal} with its password: {detail}")]
    PasswordLogin {
        /// The administrator's principal.
        principal: String,
        /// What GSSAPI/krb5 said.
        detail: String,
        /// The KDC could not be reached.
        kdc_unreachable: bool,
    },
    /// A ticket for IPA's HTTP service could not be obtained.
    #[error(
        "cannot get a Kerberos service ticket for {target} as {principal}: {detail}; the IPA \
         server's principal HTTP/<server fqdn> must exist in the realm and the IPA URL (or \
         [ipa] server) must name the server by that FQDN"
    )]
    ServiceTicket {
        /// Who asked.
        principal: String,
        /// `HTTP@<fqdn>`.
        target: String,
        /// What GSSAPI/krb5 said.
        detail: String,
        /// The KDC could not be reached.
        kdc_unreachable: bool,
    },
    /// IPA's web server answered 401 to a fresh Negotiate token, twice.
    #[error(
        "IPA rejected the Kerberos login of {principal} to {target} (HTTP 401{reason}); check that \
         the principal is enabled in IPA, that the server's HTTP keytab is current and that the \
         clocks agree"
    )]
    Rejected {
        /// Who logged in.
        principal: String,
        /// `HTTP@<fqdn>`.
        target: String,
        /// `: <X-IPA-Rejection-Reason>` when IPA sent one, else empty.
        reason: String,
    },
    /// The server's mutual-authentication token did not verify.
    #[error("IPA's Kerberos answer failed mutual authentication: {0}")]
    MutualAuth(String),
    /// The blocking GSSAPI task could not run.
    #[error("internal error running GSSAPI: {0}")]
    Internal(String),
}

impl KerberosError {
    /// Whether another attempt later may succeed (the KDC was unreachable).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Credentials {
                kdc_unreachable: true,
                ..
            } | Self::DefaultCredentials {
                kdc_unreachable: true,
                ..
            } | Self::ServiceTicket {
                kdc_unreachable: true,
                ..
            } | Self::PasswordLogin {
                kdc_unreachable: true,
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn remote(code: i64, name: &str) -> RemoteError {
        RemoteError {
            code,
            name: name.into(),
            message: "whatever text".into(),
            data: json!({}),
        }
    }

    #[test]
    fn classified_by_code_then_name() {
        assert!(matches!(
            IpaError::from_remote(remote(4001, "NotFound")),
            IpaError::NotFound(_)
        ));
        assert!(matches!(
            IpaError::from_remote(remote(4031, "EmptyResult")),
            IpaError::NotFound(_)
        ));
        assert!(matches!(
            IpaError::from_remote(remote(4002, "X")),
            IpaError::DuplicateEntry(_)
        ));
        assert!(matches!(
            IpaError::from_remote(remote(0, "ValidationError")),
            IpaError::Validation(_)
        ));
        assert!(matches!(
            IpaError::from_remote(remote(2100, "ACIError")),
            IpaError::AccessDenied(_)
        ));
        assert!(matches!(
            IpaError::from_remote(remote(4202, "EmptyModlist")),
            IpaError::EmptyModlist(_)
        ));
        assert!(matches!(
            IpaError::from_remote(remote(901, "VersionError")),
            IpaError::Version(_)
        ));
        assert!(matches!(
            IpaError::from_remote(remote(3005, "OptionError")),
            IpaError::UnknownOption(_)
        ));
        assert!(matches!(
            IpaError::from_remote(remote(911, "RefererError")),
            IpaError::Referer(_)
        ));
        assert!(matches!(
            IpaError::from_remote(remote(4005, "RealmMismatch")),
            IpaError::Remote(_)
        ));
    }

    #[test]
    fn message_text_does_not_decide() {
        let mut e = remote(4002, "DuplicateEntry");
        e.message = "host not found".into();
        assert!(matches!(
            IpaError::from_remote(e),
            IpaError::DuplicateEntry(_)
        ));
    }
}
