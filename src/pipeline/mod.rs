//! The request pipeline: a tower stack assembled from pipeline.toml.
//!
//! Each filter is a tower [`Layer`](tower::Layer) and
//! [`Service`](tower::Service) in its own file and knows nothing about the
//! others: it reads and writes only the typed request extensions in
//! [`extensions`]. [`registry`] knows every filter by name, what it needs
//! from outer filters and what it provides; [`builder`] checks the order
//! and assembles the stack, whose links are [`HttpService`]s (tower's
//! `BoxCloneSyncService`): pipeline.toml chooses the filters at start-up,
//! so the stack's type is erased at each link.
//!
//! `request_id`, `sizelimit` and `cors` are ours rather than tower-http's
//! layers because, configured alike, those answer differently from
//! oslo.middleware (tests/oslo_middleware_parity.rs shows each difference).

pub mod body;
pub mod build;
pub mod builder;
pub mod extensions;
pub mod registry;
pub mod response;

pub mod authtoken;
pub mod cache;
pub mod cors;
pub mod healthcheck;
pub mod http_proxy_to_wsgi;
pub mod join_app;
pub mod keystonecontext;
pub mod noauth;
pub mod policy;
pub mod request_id;
pub mod sizelimit;

use std::convert::Infallible;

pub use body::ReqBody;
pub use response::RespBody;

/// The future every [`HttpService`] returns.
pub type HttpFuture =
    futures::future::BoxFuture<'static, Result<http::Response<RespBody>, Infallible>>;

/// A type-erased HTTP service: what every filter wraps and the stack is.
pub type HttpService =
    tower::util::BoxCloneSyncService<http::Request<ReqBody>, http::Response<RespBody>, Infallible>;

/// A type-erased filter: what every filter's build returns, and what the
/// builder stacks in pipeline order.
pub type HttpLayer = tower::util::BoxCloneSyncServiceLayer<
    HttpService,
    http::Request<ReqBody>,
    http::Response<RespBody>,
    Infallible,
>;

/// Boxes a filter's layer into an [`HttpLayer`].
pub fn boxed_layer<L>(layer: L) -> HttpLayer
where
    L: tower::Layer<HttpService> + Send + Sync + 'static,
    L::Service: tower::Service<
            http::Request<ReqBody>,
            Response = http::Response<RespBody>,
            Error = Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as tower::Service<http::Request<ReqBody>>>::Future: Send + 'static,
{
    HttpLayer::new(layer)
}

/// Boxes a filter, an app or any suitable service into an [`HttpService`].
pub fn boxed<S>(svc: S) -> HttpService
where
    S: tower::Service<
            http::Request<ReqBody>,
            Response = http::Response<RespBody>,
            Error = Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    HttpService::new(svc)
}

/// The inner service a filter's `poll_ready` made ready, with a clone left
/// in its place, for a filter that calls it later from its future (after
/// an await): tower's way, since a clone may not be ready and the one
/// polled is. A filter that decides in `call` calls its inner service
/// there, which clones nothing.
pub fn take_ready(inner: &mut HttpService) -> HttpService {
    let fresh = inner.clone();
    std::mem::replace(inner, fresh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Context, Poll};

    fn ok_response() -> HttpFuture {
        Box::pin(async { Ok(response::text(http::StatusCode::OK, "ok")) })
    }

    /// Pending on its first poll_ready, then ready (as a service behind a
    /// concurrency limit would be).
    #[derive(Clone)]
    struct SlowToReady(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl tower::Service<http::Request<ReqBody>> for SlowToReady {
        type Response = http::Response<RespBody>;
        type Error = Infallible;
        type Future = HttpFuture;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            if self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        }

        fn call(&mut self, _: http::Request<ReqBody>) -> HttpFuture {
            ok_response()
        }
    }

    #[tokio::test]
    async fn a_service_not_ready_at_once_is_waited_for() {
        let polls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let svc = boxed(SlowToReady(polls.clone()));
        let req = http::Request::new(body::full(bytes::Bytes::new()));
        let resp = tower::ServiceExt::oneshot(svc, req).await.unwrap();
        assert_eq!(resp.status(), http::StatusCode::OK);
        assert_eq!(polls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
