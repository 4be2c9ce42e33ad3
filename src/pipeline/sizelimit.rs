//! `sizelimit`: refuses request bodies over `max_request_body_size`, as
//! oslo.middleware's `RequestBodySizeLimiter` does.
//!
//! A declared `Content-Length` over the limit is answered 413 at once; a
//! body without one (chunked) is wrapped so that reading past the limit
//! fails, and the reader ([`super::body::read_all`]) answers 413. A body of
//! exactly the limit is accepted.

use std::convert::Infallible;
use std::task::{Context, Poll};

use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use tower::{Layer, Service};

use super::body::BoxError;
use super::build::{BuildContext, FilterOptions};
use super::{boxed_layer, HttpLayer};
use super::{response, HttpFuture, HttpService, ReqBody, RespBody};
use crate::config::pipeline_file::PipelineFileError;
use crate::config::OptionSource;

use crate::config::schema::{OptionGroup, OptionKind as K, OptionSpec as O};

/// The layer, with the limit in bytes.
#[derive(Clone, Copy, Debug)]
pub struct SizeLimitLayer {
    limit: usize,
}

impl SizeLimitLayer {
    /// A layer refusing bodies larger than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl Layer<HttpService> for SizeLimitLayer {
    type Service = SizeLimit;
    fn layer(&self, inner: HttpService) -> SizeLimit {
        SizeLimit {
            inner,
            limit: self.limit,
        }
    }
}

/// The service.
#[derive(Clone)]
pub struct SizeLimit {
    inner: HttpService,
    limit: usize,
}

/// The 413 answer, in the fault format, with the number filled in (the
/// original left a literal `%s` there).
pub fn too_large(limit: usize) -> Response<RespBody> {
    response::fault(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("Request is too large. Larger than max_request_body_size ({limit})."),
    )
}

impl Service<Request<ReqBody>> for SizeLimit {
    type Response = Response<RespBody>;
    type Error = Infallible;
    type Future = HttpFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> HttpFuture {
        let limit = self.limit;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            tracing::info!(
                declared = declared.unwrap_or(0),
                limit,
                "request body over max_request_body_size refused"
            );
            return Box::pin(async move { Ok(too_large(limit)) });
        }
        let req = req.map(|b| Limited::new(b, limit).map_err(BoxError::new).boxed_unsync());
        self.inner.call(req)
    }
}

/// Builds the filter: option `max_request_body_size` (pipeline table or
/// `[oslo_middleware]`).
pub fn build(mut opts: FilterOptions, _: &BuildContext) -> Result<HttpLayer, PipelineFileError> {
    let limit = opts.int_or_default(&MAX_REQUEST_BODY_SIZE)? as usize;
    opts.finish()?;
    Ok(boxed_layer(SizeLimitLayer::new(limit)))
}

/// `[oslo_middleware] max_request_body_size`.
pub const MAX_REQUEST_BODY_SIZE: O = O::new(
    "oslo_middleware",
    "max_request_body_size",
    K::Int {
        min: 1,
        max: 1 << 30,
    },
    Some("114688"),
    "Largest request body accepted, in bytes (413 above).",
)
.with_deprecated(&["osapi_max_request_body_size"]);

/// This filter's `[oslo_middleware]` option.
pub const SIZELIMIT_OPTIONS: OptionGroup = &[MAX_REQUEST_BODY_SIZE];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::body;
    use crate::pipeline::boxed;
    use bytes::Bytes;
    use std::convert::Infallible;
    use tower::ServiceExt;

    fn reader() -> HttpService {
        boxed(tower::service_fn(|req: Request<ReqBody>| async move {
            Ok::<_, Infallible>(match body::read_all(req.into_body()).await {
                Ok(b) => response::text(StatusCode::OK, b),
                Err(body::BodyReadError::TooLarge) => too_large(10),
                Err(e) => response::text(StatusCode::BAD_REQUEST, e.to_string()),
            })
        }))
    }

    #[tokio::test]
    async fn declared_length_over_the_limit_is_413_without_calling_the_app() {
        let called = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let c = called.clone();
        let app = boxed(tower::service_fn(move |_req: Request<ReqBody>| {
            c.store(true, std::sync::atomic::Ordering::SeqCst);
            async { Ok::<_, Infallible>(response::empty(StatusCode::OK)) }
        }));
        let svc = SizeLimitLayer::new(10).layer(app);
        let req = Request::builder()
            .header("content-length", "11")
            .body(body::full("01234567890"))
            .unwrap();
        let resp = svc.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn exactly_the_limit_is_accepted() {
        let svc = SizeLimitLayer::new(10).layer(reader());
        let req = Request::builder()
            .header("content-length", "10")
            .body(body::full("0123456789"))
            .unwrap();
        assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn undeclared_stream_over_the_limit_is_413() {
        let svc = SizeLimitLayer::new(10).layer(reader());
        let stream = futures::stream::iter(vec![
            Ok::<_, body::BoxError>(http_body::Frame::data(Bytes::from_static(b"012345"))),
            Ok(http_body::Frame::data(Bytes::from_static(b"6789ab"))),
        ]);
        let b = http_body_util::StreamBody::new(stream).boxed_unsync();
        let resp = svc.oneshot(Request::new(b)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
