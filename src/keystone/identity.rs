//! Who a token names: the identity keystone vouched for, and the outcome of
//! validating a request's token.

use std::sync::Arc;

/// Outcome of token validation, inserted by `authtoken` (or `noauth`).
#[derive(Clone, Debug)]
pub enum IdentityStatus {
    /// A valid user token; the identity it names.
    Confirmed(Arc<Identity>),
    /// `delay_auth_decision` is on and the token was missing or invalid: the
    /// request goes on, and the context filter decides.
    Invalid,
}

/// The identity keystone vouched for (keystonemiddleware's `X-*` headers as a
/// typed value). Never holds the token itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Identity {
    /// `X-User-Id`.
    pub user_id: String,
    /// `X-User-Name`.
    pub user_name: String,
    /// `X-User-Domain-Id`.
    pub user_domain_id: Option<String>,
    /// `X-User-Domain-Name`.
    pub user_domain_name: Option<String>,
    /// `X-Project-Id` (absent for domain- or system-scoped tokens).
    pub project_id: Option<String>,
    /// `X-Project-Name`.
    pub project_name: Option<String>,
    /// `X-Project-Domain-Id`.
    pub project_domain_id: Option<String>,
    /// `X-Project-Domain-Name`.
    pub project_domain_name: Option<String>,
    /// `X-Domain-Id` for domain-scoped tokens.
    pub domain_id: Option<String>,
    /// `X-Domain-Name` for domain-scoped tokens.
    pub domain_name: Option<String>,
    /// `X-System-Scope` (`all`) for system-scoped tokens.
    pub system_scope: Option<String>,
    /// `X-Roles`, in keystone's order.
    pub roles: Vec<String>,
    /// `X-Is-Admin-Project`.
    pub is_admin_project: bool,
    /// `X-Service-Roles`, when a valid `X-Service-Token` came along.
    pub service_roles: Vec<String>,
    /// Whether a service token was presented and valid.
    pub service_token_valid: bool,
    /// Token expiry (RFC 3339), for logs and caching decisions.
    pub expires_at: Option<String>,
    /// Audit ids of the token: safe to log, unlike the token.
    pub audit_ids: Vec<String>,
}
