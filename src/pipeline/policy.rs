//! The `policy` filter: checks the configured action (`join:create` for the
//! vendordata route) against the request context, as the original novajoin
//! did with target = credentials = the context dictionary.
//!
//! Allowed: inserts [`Authorized`] and passes the request on. Denied (or a
//! rule that cannot be evaluated): `403 {"forbidden": {"code": 403,
//! "message": "Access was denied to this resource."}}`. The decision is
//! logged at debug with the rule name and the caller's ids, never a token.
//!
//! Options (`[filter.policy]` in pipeline.toml): `action`, the rule to
//! check (default `join:create`). The policy files come from join.conf's
//! `[oslo_policy]` group and are reloaded when they change.

use std::convert::Infallible;
use std::task::{Context, Poll};

use std::sync::Arc;
use tower::{Layer, Service};

use http::{Request, Response, StatusCode};

use super::build::{BuildContext, FilterOptions};
use super::extensions::Authorized;
use super::{boxed_layer, HttpLayer};
use super::{response, HttpFuture, HttpService, ReqBody, RespBody};
use crate::config::pipeline_file::{OptionAt, PipelineFileError};
use crate::context::RequestContext;
use crate::keystone::Identity;
use crate::policy::context::{context_dict, PER_REQUEST_KEYS};
use crate::policy::eval::{may_read_any, RuleLookup};
use crate::policy::memo::{DecisionMemo, SharedKey};
use crate::policy::{Decision, Enforcer, PolicyError};

/// The action checked when pipeline.toml names none.
pub const DEFAULT_ACTION: &str = "join:create";

fn policy_error(e: PolicyError) -> PipelineFileError {
    let (file, line) = match &e {
        PolicyError::Io { path, .. } | PolicyError::Cycle { path, .. } => (path.clone(), 0),
        PolicyError::Syntax { path, line, .. }
        | PolicyError::Shape { path, line, .. }
        | PolicyError::Rule { path, line, .. } => (path.clone(), *line),
        PolicyError::Default { .. } => ("policy".into(), 0),
    };
    PipelineFileError {
        file,
        line,
        problem: format!("policy cannot be loaded: {e}"),
    }
}

/// Builds the filter from its options: `action` (pipeline table only,
/// default [`DEFAULT_ACTION`]) and the shared policy.
pub fn build(mut opts: FilterOptions, ctx: &BuildContext) -> Result<HttpLayer, PipelineFileError> {
    let (action, action_line) = match opts.raw("action") {
        None => (DEFAULT_ACTION.to_string(), 0),
        Some(OptionAt {
            value: toml::Value::String(s),
            line,
        }) => (s, line),
        Some(OptionAt { line, .. }) => {
            return Err(PipelineFileError {
                file: "pipeline.toml".into(),
                line,
                problem: "filter 'policy' option 'action' must be a string such as \"join:create\""
                    .into(),
            })
        }
    };
    opts.finish()?;
    let enforcer = Enforcer::shared(&ctx.config).map_err(policy_error)?;
    if !enforcer.is_defined(&action) {
        return Err(PipelineFileError {
            file: "pipeline.toml".into(),
            line: action_line,
            problem: format!(
                "filter 'policy' action {action:?} is neither a registered default nor defined in the policy file; \
                 use \"{DEFAULT_ACTION}\" or define the rule"
            ),
        });
    }
    Ok(boxed_layer(PolicyLayer {
        enforcer,
        action: Arc::from(action),
    }))
}

/// The layer: checks `action` with `enforcer`.
#[derive(Clone)]
pub struct PolicyLayer {
    enforcer: Arc<Enforcer>,
    action: Arc<str>,
}

impl Layer<HttpService> for PolicyLayer {
    type Service = PolicyService;
    fn layer(&self, inner: HttpService) -> PolicyService {
        PolicyService::new(inner, self.enforcer.clone(), &self.action)
    }
}

/// Decisions per caller identity and `is_admin`, reused while the rule does
/// not read the per-request values of the context dictionary.
type ActionMemo = DecisionMemo<(SharedKey<Identity>, bool)>;

/// The filter's service.
#[derive(Clone)]
pub struct PolicyService {
    inner: HttpService,
    enforcer: Arc<Enforcer>,
    action: Arc<str>,
    memo: Arc<ActionMemo>,
}

impl PolicyService {
    /// The filter in front of `inner`, checking `action` with `enforcer`.
    pub fn new(inner: HttpService, enforcer: Arc<Enforcer>, action: &str) -> Self {
        let action: Arc<str> = Arc::from(action);
        let rule = action.clone();
        // The context dictionary differs between requests of one caller
        // only in PER_REQUEST_KEYS: a rule that cannot read them decides
        // the same way for every request of that caller.
        let memo = ActionMemo::reusable_when(move |set| match set.lookup(&rule) {
            Some((_, check)) => !may_read_any(check, set, &PER_REQUEST_KEYS),
            None => true,
        });
        Self {
            inner,
            enforcer,
            action,
            memo: Arc::new(memo),
        }
    }

    fn decide(&self, ctx: Option<&RequestContext>) -> bool {
        let Some(ctx) = ctx else {
            tracing::error!(rule = %self.action, "no request context on the request; denying (keystonecontext or noauth must run before policy)");
            return false;
        };
        let rules = self.enforcer.current();
        let key = (SharedKey(ctx.identity.clone()), ctx.is_admin);
        let decision = self.memo.decide(&rules, key, || {
            let dict = context_dict(ctx);
            self.enforcer.enforce_in(&rules, &self.action, &dict, &dict)
        });
        let id = &ctx.identity;
        match &decision {
            Decision::Error(e) => tracing::error!(
                rule = %self.action, error = %e, user_id = %id.user_id, request_id = %ctx.request_id,
                "policy rule could not be evaluated; denying"),
            d => tracing::debug!(
                rule = %self.action, allowed = d.allowed(), user_id = %id.user_id, user_name = %id.user_name,
                project_id = id.project_id.as_deref().unwrap_or("-"), roles = ?id.roles, request_id = %ctx.request_id,
                "policy decision"),
        }
        decision.allowed()
    }
}

impl Service<Request<ReqBody>> for PolicyService {
    type Response = Response<RespBody>;
    type Error = Infallible;
    type Future = HttpFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> HttpFuture {
        if !self.decide(req.extensions().get::<RequestContext>()) {
            return Box::pin(async { Ok(response::default_fault(StatusCode::FORBIDDEN)) });
        }
        req.extensions_mut().insert(Authorized {
            action: self.action.clone(),
        });
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFiles;
    use crate::health::HealthRegistry;
    use crate::keystone::Identity;
    use crate::pipeline::boxed;
    use http_body_util::BodyExt;
    use std::collections::BTreeMap;
    use std::convert::Infallible;
    use std::path::Path;
    use tower::ServiceExt;

    fn echo() -> HttpService {
        boxed(tower::service_fn(|req: Request<ReqBody>| async move {
            let who = req
                .extensions()
                .get::<Authorized>()
                .map(|a| a.action.to_string())
                .unwrap_or_default();
            Ok::<_, Infallible>(response::text(StatusCode::OK, who))
        }))
    }

    fn config(policy: Option<&str>) -> (tempfile::TempDir, Arc<ConfigFiles>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        if let Some(p) = policy {
            std::fs::write(&path, p).unwrap();
        }
        let mut c = ConfigFiles::default();
        c.add_text(
            Path::new("join.conf"),
            &format!("[oslo_policy]\npolicy_file = {}\n", path.display()),
        )
        .unwrap();
        (dir, Arc::new(c))
    }

    async fn stack(
        config: Arc<ConfigFiles>,
        table: BTreeMap<String, OptionAt>,
    ) -> Result<HttpService, PipelineFileError> {
        let opts = FilterOptions::new("policy", "pipeline.toml".into(), table, config.clone());
        let layer = build(
            opts,
            &BuildContext {
                config,
                health: HealthRegistry::default(),
            },
        )?;
        Ok(layer.layer(echo()))
    }

    fn request(user: &str, project: &str) -> Request<ReqBody> {
        let mut req = Request::new(crate::pipeline::body::full(""));
        req.extensions_mut().insert(RequestContext {
            identity: std::sync::Arc::new(Identity {
                user_id: "u1".into(),
                user_name: user.into(),
                project_id: Some("p1".into()),
                project_name: Some(project.into()),
                roles: vec!["admin".into()],
                ..Default::default()
            }),
            is_admin: false,
            request_id: "req-1".into(),
            global_request_id: None,
        });
        req
    }

    #[tokio::test]
    async fn nova_in_the_service_project_passes_with_authorized() {
        let (_d, c) = config(None);
        let svc = stack(c, BTreeMap::new()).await.unwrap();
        let resp = svc.oneshot(request("nova", "service")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.into_body().collect().await.unwrap().to_bytes(),
            "join:create"
        );
    }

    #[tokio::test]
    async fn others_get_the_original_403() {
        let (_d, c) = config(None);
        for (user, project) in [
            ("admin", "service"),
            ("nova", "services"),
            ("Nova", "service"),
        ] {
            let svc = stack(c.clone(), BTreeMap::new()).await.unwrap();
            let resp = svc.oneshot(request(user, project)).await.unwrap();
            assert_eq!(resp.status(), StatusCode::FORBIDDEN);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(
                body,
                r#"{"forbidden":{"code":403,"message":"Access was denied to this resource."}}"#
            );
        }
        let svc = stack(c, BTreeMap::new()).await.unwrap();
        let resp = svc
            .oneshot(Request::new(crate::pipeline::body::full("")))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "no context: deny");
    }

    #[tokio::test]
    async fn the_file_overrides_and_the_action_is_configurable() {
        let (_d, c) = config(Some(
            "\"service_project\": \"project_name:services\"\n\"join:other\": \"user_name:admin\"\n",
        ));
        let svc = stack(c.clone(), BTreeMap::new()).await.unwrap();
        assert_eq!(
            svc.oneshot(request("nova", "services"))
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        let mut t = BTreeMap::new();
        t.insert(
            "action".into(),
            OptionAt {
                value: toml::Value::String("join:other".into()),
                line: 7,
            },
        );
        let svc = stack(c.clone(), t).await.unwrap();
        assert_eq!(
            svc.oneshot(request("admin", "x")).await.unwrap().status(),
            StatusCode::OK
        );
        let mut t = BTreeMap::new();
        t.insert(
            "action".into(),
            OptionAt {
                value: toml::Value::String("join:nope".into()),
                line: 7,
            },
        );
        let e = stack(c, t).await.err().unwrap();
        assert_eq!(e.line, 7);
        assert!(e.problem.contains("join:nope"), "{e}");
    }

    #[tokio::test]
    async fn a_malformed_policy_stops_start_up_with_rule_and_position() {
        let (_d, c) = config(Some(
            "\"context_is_admin\": \"role:admin\"\n\"join:create\": \"(user_name:nova or\"\n",
        ));
        let e = stack(c, BTreeMap::new()).await.err().unwrap();
        assert_eq!(e.line, 2);
        assert!(e.file.ends_with("policy.yaml"), "{e}");
        assert!(
            e.problem.contains("\"join:create\"") && e.problem.contains("column"),
            "{e}"
        );
    }

    fn with_request_id(mut req: Request<ReqBody>, id: &str) -> Request<ReqBody> {
        if let Some(ctx) = req.extensions_mut().get_mut::<RequestContext>() {
            ctx.request_id = id.into();
        }
        req
    }

    #[tokio::test]
    async fn a_rule_reading_the_request_id_is_decided_per_request() {
        let (_d, c) = config(Some("\"join:create\": \"request_id:req-1\"\n"));
        let svc = stack(c, BTreeMap::new()).await.unwrap();
        for (id, status) in [
            ("req-1", StatusCode::OK),
            ("req-2", StatusCode::FORBIDDEN),
            ("req-1", StatusCode::OK),
        ] {
            let req = with_request_id(request("nova", "service"), id);
            let resp = svc.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), status, "{id}");
        }
    }

    #[tokio::test]
    async fn remembered_decisions_end_with_a_policy_reload() {
        let (d, c) = config(Some("\"join:create\": \"user_name:nova\"\n"));
        let svc = stack(c.clone(), BTreeMap::new()).await.unwrap();
        let status = |svc: HttpService| async move {
            svc.oneshot(request("nova", "service"))
                .await
                .unwrap()
                .status()
        };
        assert_eq!(status(svc.clone()).await, StatusCode::OK);
        assert_eq!(status(svc.clone()).await, StatusCode::OK);
        std::fs::write(
            d.path().join("policy.yaml"),
            "\"join:create\": \"user_name:glance-service\"\n",
        )
        .unwrap();
        let enforcer = Enforcer::shared(&c).unwrap();
        assert!(matches!(
            enforcer.reload_if_changed(),
            crate::policy::ReloadOutcome::Reloaded
        ));
        assert_eq!(status(svc).await, StatusCode::FORBIDDEN);
    }
}
