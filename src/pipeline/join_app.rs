//! The `join` app: the tower service at the end of the `/v1` pipeline,
//! answering nova's vendordata requests with [`crate::join`]'s handler.

use std::convert::Infallible;
use std::task::{Context, Poll};

use std::sync::Arc;
use tower::Service;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use super::body::{read_all, BodyReadError};
use super::build::{BuildContext, FilterOptions};
use super::extensions::AccessNotes;
use super::{boxed, response, HttpFuture, HttpService, ReqBody, RespBody};
use crate::cache::ServeUntil;
use crate::config::pipeline_file::PipelineFileError;
use crate::context::RequestContext;
use crate::join::decision::{JoinHandler, JoinResponse};
use crate::join::request::VendordataRequest;
use crate::join::JoinError;

/// The service.
#[derive(Clone)]
pub struct JoinService {
    handler: Arc<JoinHandler>,
}

impl JoinService {
    /// A service answering with `handler`.
    pub fn new(handler: Arc<JoinHandler>) -> Self {
        Self { handler }
    }
}

fn error_response(e: &JoinError) -> Response<RespBody> {
    let mut resp = response::fault(e.status(), &e.to_string());
    if let Some(secs) = e.retry_after_secs() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

async fn answer(handler: Arc<JoinHandler>, req: Request<ReqBody>) -> Response<RespBody> {
    let path = req.uri().path();
    if path != "/v1" && path != "/v1/" {
        return response::default_fault(StatusCode::NOT_FOUND);
    }
    // The original ran `create` for any method; only POST (what nova sends)
    // and PUT (which worked the same) are accepted now.
    if req.method() != Method::POST && req.method() != Method::PUT {
        let mut r = response::fault(
            StatusCode::METHOD_NOT_ALLOWED,
            "Use POST: this is nova's dynamic vendordata endpoint.",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST, PUT"));
        return r;
    }
    let Some(ctx) = req.extensions().get::<RequestContext>().cloned() else {
        return response::default_fault(StatusCode::UNAUTHORIZED);
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match read_all(req.into_body()).await {
        Ok(b) => b,
        Err(BodyReadError::TooLarge) => {
            return response::fault(StatusCode::PAYLOAD_TOO_LARGE, "Request is too large.")
        }
        Err(BodyReadError::Broken(e)) => return response::fault(StatusCode::BAD_REQUEST, &e),
    };
    let request = match VendordataRequest::parse(content_type.as_deref(), &body) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(request_id = %ctx.request_id, error = %e, "join request refused");
            return error_response(&e);
        }
    };
    let instance = request.instance_id.clone().unwrap_or_default();
    let mut resp = match handler.handle(&request, &ctx).await {
        Ok(answer) => {
            let mut resp = response::json(StatusCode::OK, &answer.to_json());
            if let JoinResponse::Enrolled {
                otp_expires_at: Some(end),
                ..
            } = answer
            {
                resp.extensions_mut().insert(ServeUntil(end));
            }
            resp
        }
        Err(e) => {
            tracing::info!(request_id = %ctx.request_id, instance_id = %instance, status = e.status().as_u16(), error = %e, "join request failed");
            error_response(&e)
        }
    };
    AccessNotes::of(&mut resp).instance_id = Some(instance);
    resp
}

impl Service<Request<ReqBody>> for JoinService {
    type Response = Response<RespBody>;
    type Error = Infallible;
    type Future = HttpFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> HttpFuture {
        let handler = self.handler.clone();
        Box::pin(async move { Ok(answer(handler, req).await) })
    }
}

/// Builds the `join` app from join.conf: IPA client, keystone and glance
/// access, FQDN rules and realm.
pub fn build_app(
    opts: FilterOptions,
    ctx: &BuildContext,
) -> Result<HttpService, PipelineFileError> {
    let config = opts.config().clone();
    opts.finish()?;
    let handler =
        crate::join::setup::join_handler(&config).map_err(PipelineFileError::component)?;
    ctx.health.register(Arc::new(handler.ipa.health()));
    Ok(boxed(JoinService::new(Arc::new(handler))))
}
