//! The dictionary the original novajoin evaluated `join:create` with:
//! `context.to_dict()` of oslo.context plus `user_id`, `user_name`,
//! `project_id` and `project_name`, passed as both target and credentials.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::Enforcer;
use crate::context::RequestContext;

/// The `context_is_admin` question as the keystonecontext filter's admin
/// check (`KeystoneContextLayer::with_admin_check(Arc::new(admin_check(e)))`):
/// evaluates the rule with the credentials the original's `check_is_admin`
/// built (`roles`, `user_id`) and target `{"project_id": ""}`.
///
/// Note the original never reached this code (oslo.context's `is_admin`
/// defaults to False, so novajoin's "compute it" branch was dead): wiring it
/// in makes `is_admin:True` rules hold for `role:admin` callers.
pub fn admin_check(enforcer: Arc<Enforcer>) -> impl Fn(&RequestContext) -> bool + Send + Sync {
    move |ctx: &RequestContext| {
        let mut creds = Map::new();
        creds.insert(
            "roles".into(),
            Value::Array(
                ctx.identity
                    .roles
                    .iter()
                    .cloned()
                    .map(Value::String)
                    .collect(),
            ),
        );
        creds.insert(
            "user_id".into(),
            Value::String(ctx.identity.user_id.clone()),
        );
        enforcer.check_rule_name("context_is_admin", &creds)
    }
}

fn opt(v: &Option<String>) -> Value {
    v.as_ref()
        .map(|s| Value::String(s.clone()))
        .unwrap_or(Value::Null)
}

/// The keys of [`context_dict`] whose values differ between two requests
/// of one caller (same identity, same `is_admin`): everything else in the
/// dictionary comes from the identity.
pub const PER_REQUEST_KEYS: [&str; 2] = ["request_id", "global_request_id"];

/// The context as a policy dictionary (target = credentials).
///
/// `auth_token` is always `null`: the service never holds the caller's
/// token past authentication, and a rule has no business reading it.
pub fn context_dict(ctx: &RequestContext) -> Map<String, Value> {
    let id = &ctx.identity;
    let dash = |v: Option<&str>| v.filter(|s| !s.is_empty()).unwrap_or("-").to_string();
    let user_identity = format!(
        "{} {} {} {} {}",
        dash(Some(id.user_id.as_str())),
        dash(id.project_id.as_deref()),
        dash(id.domain_id.as_deref()),
        dash(id.user_domain_id.as_deref()),
        dash(id.project_domain_id.as_deref()),
    );
    let user_id = if id.user_id.is_empty() {
        Value::Null
    } else {
        Value::String(id.user_id.clone())
    };
    let user_name = if id.user_name.is_empty() {
        Value::Null
    } else {
        Value::String(id.user_name.clone())
    };
    let mut m = Map::new();
    m.insert("user".into(), user_id.clone());
    m.insert("project_id".into(), opt(&id.project_id));
    m.insert("system_scope".into(), opt(&id.system_scope));
    m.insert("project".into(), opt(&id.project_id));
    m.insert("domain".into(), opt(&id.domain_id));
    m.insert("user_domain".into(), opt(&id.user_domain_id));
    m.insert("project_domain".into(), opt(&id.project_domain_id));
    m.insert("is_admin".into(), Value::Bool(ctx.is_admin));
    m.insert("read_only".into(), Value::Bool(false));
    m.insert("show_deleted".into(), Value::Bool(false));
    m.insert("auth_token".into(), Value::Null);
    m.insert("request_id".into(), Value::String(ctx.request_id.clone()));
    m.insert("global_request_id".into(), opt(&ctx.global_request_id));
    m.insert("resource_uuid".into(), Value::Null);
    m.insert(
        "roles".into(),
        Value::Array(id.roles.iter().cloned().map(Value::String).collect()),
    );
    m.insert("user_identity".into(), Value::String(user_identity));
    m.insert("is_admin_project".into(), Value::Bool(id.is_admin_project));
    m.insert("user_id".into(), user_id);
    m.insert("user_name".into(), user_name);
    m.insert("project_name".into(), opt(&id.project_name));
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystone::Identity;

    #[test]
    fn has_the_original_keys() {
        let ctx = RequestContext {
            identity: std::sync::Arc::new(Identity {
                user_id: "u1".into(),
                user_name: "nova".into(),
                project_id: Some("p1".into()),
                project_name: Some("service".into()),
                roles: vec!["admin".into()],
                ..Default::default()
            }),
            is_admin: false,
            request_id: "req-1".into(),
            global_request_id: None,
        };
        let d = context_dict(&ctx);
        assert_eq!(d["user"], "u1");
        assert_eq!(d["user_name"], "nova");
        assert_eq!(d["project_name"], "service");
        assert_eq!(d["project"], "p1");
        assert_eq!(d["is_admin"], false);
        assert_eq!(d["auth_token"], Value::Null);
        assert_eq!(d["user_identity"], "u1 p1 - - -");
        assert_eq!(d["roles"], serde_json::json!(["admin"]));
    }

    #[test]
    fn admin_check_asks_context_is_admin() {
        let dir = tempfile::tempdir().unwrap();
        let e = Enforcer::new(
            crate::policy::NOVAJOIN_DEFAULTS,
            crate::policy::PolicyOptions::file_only(&dir.path().join("none.json")),
        )
        .unwrap();
        let check = admin_check(Arc::new(e));
        let mut ctx = RequestContext::default();
        std::sync::Arc::make_mut(&mut ctx.identity).roles = vec!["Admin".into()];
        assert!(check(&ctx));
        std::sync::Arc::make_mut(&mut ctx.identity).roles = vec!["member".into()];
        assert!(!check(&ctx));
    }

    #[test]
    fn only_the_per_request_keys_differ_between_requests_of_one_caller() {
        let identity = std::sync::Arc::new(Identity {
            user_id: "u1".into(),
            user_name: "nova".into(),
            project_id: Some("p1".into()),
            domain_id: Some("d1".into()),
            system_scope: Some("all".into()),
            roles: vec!["admin".into()],
            ..Default::default()
        });
        let ctx = |rid: &str, global: Option<&str>| RequestContext {
            identity: identity.clone(),
            is_admin: true,
            request_id: rid.into(),
            global_request_id: global.map(String::from),
        };
        let a = context_dict(&ctx("req-1", None));
        let b = context_dict(&ctx("req-2", Some("req-9")));
        let mut differing: Vec<&str> = a
            .keys()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(String::as_str)
            .collect();
        differing.sort_unstable();
        let mut expected = PER_REQUEST_KEYS.to_vec();
        expected.sort_unstable();
        assert_eq!(differing, expected);
        assert_eq!(a.len(), b.len());
    }
}
