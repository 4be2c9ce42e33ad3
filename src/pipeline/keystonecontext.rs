//! The `keystonecontext` filter: turns the identity `authtoken` confirmed
//! into a [`RequestContext`] for the policy filter and the handler.
//!
//! A request without a confirmed identity (no `authtoken` outcome, or
//! `Invalid` under `delay_auth_decision`) gets 401; `authtoken`, outside,
//! adds `WWW-Authenticate`. (The original's context filter never checked
//! `X-Identity-Status` and let such requests reach policy with empty
//! credentials.)
//!
//! `is_admin`: the policy rule `context_is_admin` (default `role:admin`) of
//! the shared policy [`Enforcer`], evaluated with the context's policy
//! credentials and the target `{"project_id": ""}`. (The original meant to
//! do this but its branch never ran, so it always said false.) The check is
//! an [`AdminCheck`], so tests and other setups can supply their own.

use std::convert::Infallible;
use std::task::{Context, Poll};

use std::sync::Arc;
use tower::Service;

use bytes::Bytes;

use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;

use super::build::{BuildContext, FilterOptions};
use super::extensions::RequestId;
use super::response::UNAUTHORIZED_BODY;
use super::{boxed_layer, HttpLayer};
use super::{HttpFuture, HttpService, ReqBody, RespBody};
use crate::config::pipeline_file::PipelineFileError;
use crate::context::RequestContext;
use crate::keystone::{Identity, IdentityStatus};
use crate::policy::enforcer::{Decision, Enforcer};
use crate::policy::memo::{DecisionMemo, SharedKey};

/// Decides `is_admin` for a context (the policy rule `context_is_admin`).
///
/// This is the seam for the policy engine: it receives the context with
/// `is_admin = false` and answers whether the rule holds.
pub trait AdminCheck: Send + Sync {
    /// Whether the caller counts as admin.
    fn is_admin(&self, ctx: &RequestContext) -> bool;
}

impl<F> AdminCheck for F
where
    F: Fn(&RequestContext) -> bool + Send + Sync,
{
    fn is_admin(&self, ctx: &RequestContext) -> bool {
        self(ctx)
    }
}

/// Wraps services with the filter.
#[derive(Clone, Default)]
pub struct KeystoneContextLayer {
    admin: Option<Arc<dyn AdminCheck>>,
}

impl KeystoneContextLayer {
    /// Without an admin check: `is_admin` is always false.
    pub fn new() -> Self {
        Self::default()
    }

    /// With `check` deciding `is_admin`.
    pub fn with_admin_check(check: Arc<dyn AdminCheck>) -> Self {
        KeystoneContextLayer { admin: Some(check) }
    }
}

impl tower::Layer<HttpService> for KeystoneContextLayer {
    type Service = KeystoneContext;
    fn layer(&self, inner: HttpService) -> KeystoneContext {
        KeystoneContext {
            inner,
            admin: self.admin.clone(),
        }
    }
}

/// The filter as a tower service.
#[derive(Clone)]
pub struct KeystoneContext {
    inner: HttpService,
    admin: Option<Arc<dyn AdminCheck>>,
}

fn unauthenticated() -> Response<RespBody> {
    let mut r = Response::new(Full::new(Bytes::from_static(UNAUTHORIZED_BODY.as_bytes())));
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The context for a confirmed identity.
pub fn context_for(
    req: &Request<ReqBody>,
    admin: Option<&dyn AdminCheck>,
) -> Option<RequestContext> {
    let Some(IdentityStatus::Confirmed(identity)) = req.extensions().get::<IdentityStatus>() else {
        return None;
    };
    let (request_id, global_request_id) = match req.extensions().get::<RequestId>() {
        Some(id) => (id.local.clone(), id.global.clone()),
        // Without the request_id filter, mint one as oslo.context does.
        None => (format!("req-{}", uuid::Uuid::new_v4()), None),
    };
    let mut ctx = RequestContext {
        identity: identity.clone(),
        is_admin: false,
        request_id,
        global_request_id,
    };
    if let Some(check) = admin {
        ctx.is_admin = check.is_admin(&ctx);
    }
    Some(ctx)
}

impl Service<Request<ReqBody>> for KeystoneContext {
    type Response = Response<RespBody>;
    type Error = Infallible;
    type Future = HttpFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> HttpFuture {
        let Some(ctx) = context_for(&req, self.admin.as_deref()) else {
            tracing::info!("rejecting request: no confirmed identity reached keystonecontext");
            return Box::pin(async { Ok(unauthenticated()) });
        };
        req.extensions_mut().insert(ctx);
        self.inner.call(req)
    }
}

/// `context_is_admin` through the policy enforcer.
///
/// The credentials are built from the identity alone and the target is
/// fixed, so the answer is remembered per identity and rule set
/// ([`DecisionMemo`]) instead of being evaluated for every request.
pub struct PolicyAdminCheck {
    enforcer: Arc<Enforcer>,
    memo: DecisionMemo<(SharedKey<Identity>, bool)>,
}

impl PolicyAdminCheck {
    /// Asks `enforcer`.
    pub fn new(enforcer: Arc<Enforcer>) -> Self {
        PolicyAdminCheck {
            enforcer,
            memo: DecisionMemo::new(),
        }
    }
}

impl AdminCheck for PolicyAdminCheck {
    fn is_admin(&self, ctx: &RequestContext) -> bool {
        let rules = self.enforcer.current();
        let key = (SharedKey(ctx.identity.clone()), ctx.is_admin);
        let decision = self.memo.decide(&rules, key, || {
            let creds = match ctx.policy_credentials() {
                serde_json::Value::Object(m) => m,
                _ => serde_json::Map::new(),
            };
            self.enforcer.check_rule_name_in(&rules, ADMIN_RULE, &creds)
        });
        match decision {
            Decision::Allow => true,
            Decision::Deny => false,
            Decision::Error(e) => {
                tracing::error!(rule = ADMIN_RULE, error = %e, "policy rule could not be evaluated; treating it as not holding");
                false
            }
        }
    }
}

/// The rule that decides `is_admin`.
const ADMIN_RULE: &str = "context_is_admin";

/// Builds the filter (registry entry). It has no options; the policy file
/// comes from join.conf's `[oslo_policy]`, shared with the `policy` filter.
pub fn build(opts: FilterOptions, ctx: &BuildContext) -> Result<HttpLayer, PipelineFileError> {
    opts.finish()?;
    let enforcer = Enforcer::shared(&ctx.config).map_err(|e| PipelineFileError {
        file: "join.conf".into(),
        line: 0,
        problem: format!("keystonecontext needs the policy (rule context_is_admin): {e}"),
    })?;
    Ok(boxed_layer(KeystoneContextLayer::with_admin_check(
        Arc::new(PolicyAdminCheck::new(enforcer)),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::boxed;
    use std::convert::Infallible;
    use tower::ServiceExt;

    fn echo() -> HttpService {
        boxed(tower::service_fn(|req: Request<ReqBody>| async move {
            let ctx = req
                .extensions()
                .get::<RequestContext>()
                .cloned()
                .expect("context");
            let body = serde_json::json!({"user": ctx.identity.user_name, "admin": ctx.is_admin, "rid": ctx.request_id});
            Ok::<_, Infallible>(crate::pipeline::response::json(StatusCode::OK, &body))
        }))
    }

    fn request(status: Option<IdentityStatus>) -> Request<ReqBody> {
        let mut r = Request::new(crate::pipeline::body::full(Bytes::new()));
        if let Some(s) = status {
            r.extensions_mut().insert(s);
        }
        r.extensions_mut().insert(RequestId {
            local: "req-1".into(),
            global: None,
        });
        r
    }

    async fn body(r: Response<RespBody>) -> serde_json::Value {
        use http_body_util::BodyExt;
        serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap()
    }

    #[tokio::test]
    async fn builds_the_context_and_asks_the_admin_check() {
        let id = Identity {
            user_name: "nova".into(),
            roles: vec!["admin".into()],
            ..Default::default()
        };
        let svc = tower::Layer::layer(&KeystoneContextLayer::new(), echo());
        let r = svc
            .oneshot(request(Some(IdentityStatus::Confirmed(Arc::new(
                id.clone(),
            )))))
            .await
            .unwrap();
        assert_eq!(
            body(r).await,
            serde_json::json!({"user": "nova", "admin": false, "rid": "req-1"})
        );
        let check: Arc<dyn AdminCheck> =
            Arc::new(|c: &RequestContext| c.identity.roles.iter().any(|r| r == "admin"));
        let svc = tower::Layer::layer(&KeystoneContextLayer::with_admin_check(check), echo());
        let r = svc
            .oneshot(request(Some(IdentityStatus::Confirmed(Arc::new(id)))))
            .await
            .unwrap();
        assert_eq!(body(r).await["admin"], true);
    }

    #[tokio::test]
    async fn no_identity_is_401() {
        for status in [None, Some(IdentityStatus::Invalid)] {
            let svc = tower::Layer::layer(&KeystoneContextLayer::new(), echo());
            let r = svc.oneshot(request(status)).await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
    }
}
