//! Typed request extensions: the only way filters talk to each other.
//!
//! Each filter reads what an outer filter inserted and inserts what it
//! provides. A filter never inspects another filter's configuration or
//! headers it did not define; it reads these types.

use std::sync::Arc;

/// The request id minted by the `request_id` filter (`req-<uuid4>`), plus the
/// caller's global request id when it sent a well-formed one. Also put on
/// the response, for the access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId {
    /// This service's id for the request, returned as `x-openstack-request-id`.
    pub local: String,
    /// `X-Openstack-Request-Id` from the caller, when it matched oslo's format.
    pub global: Option<String>,
}

/// Where the client thinks it is talking to, as reconstructed by
/// `http_proxy_to_wsgi` from `Forwarded` / `X-Forwarded-*` headers; in the
/// request as `Arc<ForwardedOrigin>`, shared with the response's
/// [`AccessNotes`] for the access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardedOrigin {
    /// URL scheme the client used (`http` or `https`).
    pub scheme: String,
    /// Host (with port when given) the client used.
    pub host: Option<String>,
    /// The client address as the proxy reported it (verbatim, not split).
    pub remote_addr: Option<String>,
    /// `X-Forwarded-Prefix`: the application root behind the proxy.
    pub prefix: Option<String>,
}

/// The peer of the TCP connection (none on a Unix socket), inserted by the
/// server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    /// The peer's address and port.
    pub addr: Option<std::net::SocketAddr>,
    /// The peer's IP address as text, formatted once per connection.
    pub ip: Option<std::sync::Arc<str>>,
}

impl PeerAddr {
    /// The peer of a connection from `addr`.
    pub fn new(addr: Option<std::net::SocketAddr>) -> Self {
        Self {
            addr,
            ip: addr.map(|a| a.ip().to_string().into()),
        }
    }
}

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

/// The request context built by `keystonecontext` (or `noauth`), as
/// oslo.context's `RequestContext` would hold it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The validated identity, if any (absent under `noauth`); shared with
    /// the token cache, not copied per request.
    pub identity: Arc<Identity>,
    /// Whether the `context_is_admin` rule holds for this context.
    pub is_admin: bool,
    /// This request's id (`req-...`).
    pub request_id: String,
    /// The caller's global request id, if any.
    pub global_request_id: Option<String>,
}

impl RequestContext {
    /// The credentials oslo.policy evaluates rules against, built exactly as
    /// oslo.context's `to_policy_values()` plus the legacy names novajoin's
    /// default policy uses (`user_name`, `project_name`, `tenant`).
    pub fn policy_credentials(&self) -> serde_json::Value {
        let id = &self.identity;
        let opt = |v: &Option<String>| match v {
            Some(s) => serde_json::Value::String(s.clone()),
            None => serde_json::Value::Null,
        };
        serde_json::json!({
            "user_id": id.user_id,
            "user": id.user_id,
            "user_name": id.user_name,
            "user_domain_id": opt(&id.user_domain_id),
            "user_domain_name": opt(&id.user_domain_name),
            "project_id": opt(&id.project_id),
            "tenant": opt(&id.project_id),
            "project_name": opt(&id.project_name),
            "project_domain_id": opt(&id.project_domain_id),
            "project_domain_name": opt(&id.project_domain_name),
            "domain_id": opt(&id.domain_id),
            "domain_name": opt(&id.domain_name),
            "system_scope": opt(&id.system_scope),
            "roles": id.roles,
            "is_admin": self.is_admin,
            "is_admin_project": id.is_admin_project,
            "service_roles": id.service_roles,
            "service_user_id": serde_json::Value::Null,
            "service_project_id": serde_json::Value::Null,
        })
    }
}

/// Inserted by the `policy` filter when the configured action was allowed:
/// proof for inner filters (the response cache) that authorization happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorized {
    /// The policy action that was checked, e.g. `join:create` (shared with
    /// the filter: no copy per request).
    pub action: std::sync::Arc<str>,
}

/// What the access log records from inside the pipeline, gathered in the
/// *response* as it passes back out through the filters that know it.
///
/// One extension rather than one per fact: every extension inserted is an
/// allocation, and a fourth one grows the map (docs/PERFORMANCE.md).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessNotes {
    /// The caller's global request id (`request_id`).
    pub global_request_id: Option<String>,
    /// Where the client was, as the proxy said (`http_proxy_to_wsgi`).
    pub origin: Option<std::sync::Arc<ForwardedOrigin>>,
    /// The instance the request was about (the join handler, `cache`).
    pub instance_id: Option<String>,
    /// Whether the answer came from the response cache (`cache`).
    pub cache: Option<CacheOutcome>,
}

impl AccessNotes {
    /// The notes of `resp`, added empty if it has none yet.
    pub fn of<B>(resp: &mut http::Response<B>) -> &mut AccessNotes {
        resp.extensions_mut().get_or_insert_default()
    }
}

/// Set on a response by the handler when its answer carries a secret that
/// expires (an enrollment OTP, see [`crate::otp_lifetime`]): the response
/// cache does not serve the answer at or after this instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeUntil(pub std::time::SystemTime);

/// The response cache's outcome, in the response's [`AccessNotes`], so
/// the access log can say whether the answer came from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Served from the cache.
    Hit,
    /// Computed by the handler and stored.
    Miss,
    /// Waited for another request's computation of the same instance.
    Coalesced,
    /// Not cacheable (error answer or no instance id).
    Bypass,
}
