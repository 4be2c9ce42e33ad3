//! `noauth`: trusts every caller (development only).
//!
//! For `auth_strategy = noauth`. It inserts an identity and a request
//! context for a fixed user (`X-User-Id`/`X-Project-Id` headers may name
//! another), exactly where authtoken and keystonecontext would. The server
//! logs a loud warning at start when this filter is in the pipeline.

use std::sync::Arc;

use futures::future::BoxFuture;
use http::Request;
use tower::Layer;

use super::extensions::{Identity, IdentityStatus, RequestContext, RequestId};
use super::registry::{BuildContext, FilterFactory, FilterOptions};
use super::{boxed_filter, Filter, HttpFuture, HttpService, ReqBody};
use crate::config::pipeline_file::PipelineFileError;

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

impl Filter for NoAuth {
    fn call(&self, mut req: Request<ReqBody>) -> HttpFuture {
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
                .unwrap_or_else(crate::pipeline::request_id::new_request_id),
            global_request_id: rid.and_then(|r| r.global),
        };
        req.extensions_mut()
            .insert(IdentityStatus::Confirmed(identity));
        req.extensions_mut().insert(ctx);
        self.inner.call_ref(req)
    }
}

super::filter_service!(NoAuth);

/// Builds the filter; it has no options. Warns loudly: every caller is trusted.
pub fn build(
    opts: FilterOptions,
    _ctx: BuildContext,
) -> BoxFuture<'static, Result<FilterFactory, PipelineFileError>> {
    Box::pin(async move {
        opts.finish()?;
        tracing::warn!("the noauth filter is in the pipeline: EVERY CALLER IS TRUSTED and can obtain OTPs; development only, never in production");
        let f: FilterFactory = Arc::new(|inner| boxed_filter(NoAuthLayer.layer(inner)));
        Ok(f)
    })
}
