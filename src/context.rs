//! The request context, as oslo.context's `RequestContext` would hold it:
//! who is asking (the validated identity), whether that is an admin, and
//! the request's ids.

use std::sync::Arc;

use crate::keystone::Identity;

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
