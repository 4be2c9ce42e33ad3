//! The service token (`X-Service-Token`): validated, its bind verified, and
//! its roles held against `service_token_roles`. A service token with one
//! of those roles lets the user token be expired (keystonemiddleware's
//! `allow_expired`).

use std::sync::atomic::Ordering;

use http::HeaderMap;

use super::headers::{token_header, X_SERVICE_TOKEN};
use super::{Checked, Shared};
use crate::keystone::cache::ValidatedToken;
use crate::keystone::ValidationError;

/// The outcome of the service token's checks.
pub(super) struct ServiceCheck {
    /// Valid, invalid (and why) or not checkable.
    pub(super) outcome: Checked,
    /// Whether the user token may be expired: the service token is valid
    /// and has one of `service_token_roles`.
    pub(super) allow_expired: bool,
}

/// Checks the request's service token; `None` when it has none.
pub(super) async fn check(shared: &Shared, headers: &HeaderMap) -> Option<ServiceCheck> {
    let token = token_header(headers, &[X_SERVICE_TOKEN])?;
    let s = &shared.settings;
    let (outcome, allow_expired) = match shared.validator.validate(token, false).await {
        Ok(vt) if !s.bind.accepts(vt.data.bind.as_ref()) => (
            Checked::Invalid("service token bind not verifiable".into()),
            false,
        ),
        Ok(vt) => {
            let role_ok = has_a_service_role(shared, &vt);
            (roles_decide(shared, vt, role_ok), role_ok)
        }
        Err(ValidationError::Invalid(e)) => {
            (Checked::Invalid(format!("service token: {e}")), false)
        }
        Err(ValidationError::Unavailable(e)) => (Checked::Unavailable(e), false),
    };
    Some(ServiceCheck {
        outcome,
        allow_expired,
    })
}

fn has_a_service_role(shared: &Shared, vt: &ValidatedToken) -> bool {
    vt.identity
        .roles
        .iter()
        .any(|r| shared.settings.service_token_roles.contains(r))
}

/// A valid service token without any of `service_token_roles` is refused
/// when `service_token_roles_required`, else accepted with a warning (once).
fn roles_decide(shared: &Shared, vt: std::sync::Arc<ValidatedToken>, role_ok: bool) -> Checked {
    let s = &shared.settings;
    if role_ok {
        Checked::Valid(vt)
    } else if s.service_token_roles_required {
        Checked::Invalid(format!(
            "service token lacks all of service_token_roles {:?}",
            s.service_token_roles
        ))
    } else {
        if !shared.warned_roles.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "a service token without any of service_token_roles {:?} was accepted because \
                            service_token_roles_required is false; set it to true",
                s.service_token_roles
            );
        }
        Checked::Valid(vt)
    }
}
