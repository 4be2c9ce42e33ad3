//! `noauth`: trusts every caller (development only).
//!
//! For `auth_strategy = noauth`. It inserts an identity and a request
//! context for a fixed user (`X-User-Id`/`X-Project-Id` headers may name
//! another), exactly where authtoken and keystonecontext would. The server
//! logs a loud warning at start when this filter is in the pipeline.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use super::build::{BuildContext, FilterOptions};
use super::extensions::RequestId;
use super::{boxed_layer, HttpLayer};
use super::{HttpFuture, HttpService, ReqBody, RespBody};
use crate::config::pipeline_file::PipelineFileError;
use crate::context::RequestContext;
use crate::keystone::{Identity, IdentityStatus};

/// The layer.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAuthLayer;

impl Layer<HttpService> for NoAuthLayer {
    type Service = NoAuth;
    fn layer(&self, inner: HttpService) -> NoAuth {
        NoAuth { inner }
    }
}

/// The service.
#[derive(Clone)]
pub struct NoAuth {
    inner: HttpService,
}

fn header(req: &Request<ReqBody>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl Service<Request<ReqBody>> for NoAuth {
    type Response = Response<RespBody>;
    type Error = Infallible;
    type Future = HttpFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> HttpFuture {
        let identity = Identity {
            user_id: header(&req, "x-user-id").unwrap_or_else(|| "noauth".into()),
            user_name: header(&req, "x-user-name").unwrap_or_else(|| "nova".into()),
            project_id: Some(header(&req, "x-project-id").unwrap_or_else(|| "noauth".into())),
            project_name: Some(header(&req, "x-project-name").unwrap_or_else(|| "service".into())),
            roles: vec!["admin".into(), "service".into()],
            ..Identity::default()
        };
        let identity = Arc::new(identity);
        let rid = req.extensions().get::<RequestId>().cloned();
        let ctx = RequestContext {
            identity: identity.clone(),
            is_admin: true,
            request_id: rid
                .as_ref()
                .map(|r| r.local.clone())
                .unwrap_or_else(super::extensions::new_request_id),
            global_request_id: rid.and_then(|r| r.global),
        };
        req.extensions_mut()
            .insert(IdentityStatus::Confirmed(identity));
        req.extensions_mut().insert(ctx);
        self.inner.call(req)
    }
}

/// Builds the filter; it has no options. Warns loudly: every caller is trusted.
pub fn build(opts: FilterOptions, _: &BuildContext) -> Result<HttpLayer, PipelineFileError> {
    opts.finish()?;
    tracing::warn!("the noauth filter is in the pipeline: EVERY CALLER IS TRUSTED and can obtain OTPs; development only, never in production");
    Ok(boxed_layer(NoAuthLayer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{body, boxed, response};
    use std::convert::Infallible;
    use std::sync::Mutex;
    use tower::ServiceExt;

    /// The filter in front of a handler that keeps each request's identity.
    fn filter() -> (NoAuth, Arc<Mutex<Vec<Arc<Identity>>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let keep = seen.clone();
        let inner = boxed(tower::service_fn(move |req: Request<ReqBody>| {
            let ctx = req.extensions().get::<RequestContext>().cloned().unwrap();
            keep.lock().unwrap().push(ctx.identity);
            async { Ok::<_, Infallible>(response::text(http::StatusCode::OK, "ok")) }
        }));
        (NoAuthLayer.layer(inner), seen)
    }

    fn request(user: Option<&str>) -> Request<ReqBody> {
        let mut b = Request::builder();
        if let Some(u) = user {
            b = b.header("x-user-id", u);
        }
        b.body(body::full("")).unwrap()
    }

    #[tokio::test]
    async fn the_caller_is_who_the_headers_name_or_the_fixed_user() {
        let (svc, seen) = filter();
        for user in [None, Some("alice"), None] {
            svc.clone().oneshot(request(user)).await.unwrap();
        }
        let seen = seen.lock().unwrap();
        let users: Vec<_> = seen.iter().map(|i| i.user_id.as_str()).collect();
        assert_eq!(users, ["noauth", "alice", "noauth"]);
        assert!(seen.iter().all(|i| i.roles == ["admin", "service"]));
    }
}
