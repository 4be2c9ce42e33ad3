//! `request_id`: gives every request an id, as oslo.middleware's filter does.
//!
//! A fresh `req-<uuid4>` for every request, stored as [`RequestId`] and
//! returned as `x-openstack-request-id` unless the response already has one.
//! An inbound `X-Openstack-Request-Id` of exactly oslo's format becomes the
//! global request id; anything else is ignored, and it is never echoed.

use std::convert::Infallible;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request, Response};
use tower::{Layer, Service};

use super::build::{BuildContext, FilterOptions};
use super::extensions::{new_request_id, AccessNotes, RequestId};
use super::{boxed_layer, HttpLayer};
use super::{HttpFuture, HttpService, ReqBody, RespBody};
use crate::config::pipeline_file::PipelineFileError;

/// The response header name, spelled as oslo adds it.
pub const HEADER: HeaderName = HeaderName::from_static(HEADER_STR);
const HEADER_STR: &str = "x-openstack-request-id";

/// Whether `s` is a well-formed oslo request id (lower-case hex only).
pub fn is_valid_request_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("req-") else {
        return false;
    };
    let groups: Vec<&str> = rest.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| {
            g.len() == n
                && g.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// The layer.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIdLayer;

impl Layer<HttpService> for RequestIdLayer {
    type Service = RequestIdService;
    fn layer(&self, inner: HttpService) -> Self::Service {
        RequestIdService { inner }
    }
}

/// The service.
#[derive(Clone)]
pub struct RequestIdService {
    inner: HttpService,
}

impl Service<Request<ReqBody>> for RequestIdService {
    type Response = Response<RespBody>;
    type Error = Infallible;
    type Future = HttpFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> HttpFuture {
        let local = new_request_id();
        let global = req
            .headers()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_valid_request_id(v))
            .map(str::to_string);
        let id = RequestId {
            local: local.clone(),
            global: global.clone(),
        };
        req.extensions_mut().insert(id);
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            AccessNotes::of(&mut resp).global_request_id = global;
            if !resp.headers().contains_key(HEADER) {
                if let Ok(v) = HeaderValue::from_str(&local) {
                    resp.headers_mut().insert(HEADER, v);
                }
            }
            Ok(resp)
        })
    }
}

/// Builds the filter; it has no options.
pub fn build(opts: FilterOptions, _: &BuildContext) -> Result<HttpLayer, PipelineFileError> {
    opts.finish()?;
    Ok(boxed_layer(RequestIdLayer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::boxed;
    use crate::pipeline::{body, response};
    use http_body_util::BodyExt;
    use std::convert::Infallible;
    use tower::ServiceExt;

    fn echo() -> HttpService {
        boxed(tower::service_fn(|req: Request<ReqBody>| async move {
            let id = req.extensions().get::<RequestId>().cloned().unwrap();
            Ok::<_, Infallible>(response::json(
                http::StatusCode::OK,
                &serde_json::json!({"local": id.local, "global": id.global}),
            ))
        }))
    }

    #[test]
    fn minted_ids_are_oslo_format_and_fresh() {
        let a = new_request_id();
        let b = new_request_id();
        assert!(is_valid_request_id(&a), "{a}");
        assert_eq!(a.len(), 40);
        assert_ne!(a, b);
    }

    #[test]
    fn validates_oslo_format() {
        assert!(is_valid_request_id(
            "req-12345678-1234-1234-1234-123456789abc"
        ));
        assert!(!is_valid_request_id(
            "req-12345678-1234-1234-1234-123456789ABC"
        ));
        assert!(!is_valid_request_id("bogus"));
        assert!(!is_valid_request_id(
            "req-1234567-1234-1234-1234-123456789abc"
        ));
    }

    #[tokio::test]
    async fn mints_a_new_id_and_keeps_a_valid_inbound_one_as_global() {
        let svc = RequestIdLayer.layer(echo());
        let inbound = "req-12345678-1234-1234-1234-123456789abc";
        let req = Request::builder()
            .header("X-OpenStack-Request-ID", inbound)
            .body(body::full(""))
            .unwrap();
        let resp = svc.oneshot(req).await.unwrap();
        let header = resp.headers()[&HEADER].to_str().unwrap().to_string();
        assert!(is_valid_request_id(&header));
        assert_ne!(header, inbound);
        let b = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["global"], inbound);
        assert_eq!(v["local"], header);
    }

    #[tokio::test]
    async fn ignores_a_malformed_inbound_id() {
        let svc = RequestIdLayer.layer(echo());
        let req = Request::builder()
            .header("X-OpenStack-Request-ID", "bogus")
            .body(body::full(""))
            .unwrap();
        let resp = svc.oneshot(req).await.unwrap();
        let b = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert!(v["global"].is_null());
    }
}
