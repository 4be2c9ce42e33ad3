//! Why handling an event failed, and how an IPA error is classified:
//! transient (retried, then given back to the broker), access denied
//! (retried, then rejected) or permanent (rejected).

use crate::ipa::IpaError;

/// Why handling an event failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying: IPA, nova, neutron or keystone unreachable, busy or
    /// answering 5xx; Kerberos ticket trouble.
    #[error("transient failure: {0}")]
    Transient(String),
    /// Retrying cannot help: the request is refused for what it is.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// IPA's access controls refused a call: retried like a transient
    /// failure (the operator may be fixing the privilege), then rejected
    /// (dead-lettered) rather than requeued for ever.
    #[error("IPA denied access: {0}")]
    AccessDenied(String),
}

impl From<crate::cloud::LookupError> for HandlerError {
    fn from(e: crate::cloud::LookupError) -> Self {
        HandlerError::Transient(e.to_string())
    }
}

/// Whether an IPA failure is worth retrying. IPA's own verdicts on the
/// request (validation, conflicts) are permanent; outages, time-outs,
/// server-side faults and login/configuration problems an operator can fix
/// are transient, so the notification is kept. A refusal by IPA's access
/// controls is never success: it is retried, then rejected.
pub fn ipa_failure(doing: &str, e: IpaError) -> HandlerError {
    if let IpaError::AccessDenied(_) = e {
        return HandlerError::AccessDenied(format!(
            "{doing}: {e} (grant the service's IPA role the missing permission)"
        ));
    }
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
        assert!(matches!(
            ipa_failure("x", remote(2100, "ACIError")),
            HandlerError::AccessDenied(_)
        ));
    }
}
