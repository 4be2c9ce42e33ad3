//! The request pipeline: a tower stack assembled from pipeline.toml.
//!
//! Each filter is a tower [`Layer`](tower::Layer) in its own file and knows
//! nothing about the others: it reads and writes only the typed request
//! extensions in [`extensions`]. A filter answers through `&self`
//! ([`Filter`]), so a request passes through the stack without copying any
//! of it. [`registry`] knows every filter by name,
//! what it needs from outer filters and what it provides; [`builder`] checks
//! the order and assembles the stack.

pub mod body;
pub mod builder;
pub mod extensions;
pub mod registry;
pub mod response;

pub mod authtoken;
pub mod cache;
pub mod cors;
pub mod healthcheck;
pub mod http_proxy_to_wsgi;
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

/// A type-erased HTTP service: what every filter wraps and returns.
///
/// Cloning it is one reference count. (tower's `BoxCloneSyncService` clones
/// the boxed service itself, and a filter holds the next one, so every
/// per-request clone copied the whole rest of the stack: one allocation
/// per remaining layer, for every layer.) It is always ready: the wrapped
/// service is cloned per call and made ready inside the returned future,
/// as `tower::ServiceExt::oneshot` would.
#[derive(Clone)]
pub struct HttpService(std::sync::Arc<dyn ErasedService>);

/// The object-safe part of a service [`boxed`] wraps.
trait ErasedService: Send + Sync {
    fn call(&self, req: http::Request<ReqBody>) -> HttpFuture;
}

struct Erased<S>(S);

impl<S> ErasedService for Erased<S>
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
    fn call(&self, req: http::Request<ReqBody>) -> HttpFuture {
        let mut svc = self.0.clone();
        // Filters are ready at once: ask without a task to wake, and hand
        // their future on as it is. Only a service that is not ready yet
        // gets a future that waits for it.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match svc.poll_ready(&mut cx) {
            std::task::Poll::Ready(Ok(())) => into_http_future(svc.call(req)),
            std::task::Poll::Ready(Err(never)) => match never {},
            std::task::Poll::Pending => Box::pin(async move {
                std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
                svc.call(req).await
            }),
        }
    }
}

/// `fut` as an [`HttpFuture`]: unchanged when it already is one (what every
/// filter returns), boxed otherwise.
fn into_http_future<F>(fut: F) -> HttpFuture
where
    F: std::future::Future<Output = Result<http::Response<RespBody>, Infallible>> + Send + 'static,
{
    let mut slot = Some(fut);
    let any: &mut dyn std::any::Any = &mut slot;
    match any.downcast_mut::<Option<HttpFuture>>() {
        Some(already) => already.take().expect("filled above"),
        None => Box::pin(slot.take().expect("filled above")),
    }
}

impl tower::Service<http::Request<ReqBody>> for HttpService {
    type Response = http::Response<RespBody>;
    type Error = Infallible;
    type Future = HttpFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> HttpFuture {
        self.0.call(req)
    }
}

impl HttpService {
    /// Hands `req` to the service (what filters call on the next one).
    pub fn call_ref(&self, req: http::Request<ReqBody>) -> HttpFuture {
        self.0.call(req)
    }
}

/// A filter or app of the pipeline: it answers through `&self`, so handing
/// a request through it copies nothing of it. (A tower `Service` answers
/// through `&mut self`, so a shared one is cloned per request: a reference
/// count up and down for each of its fields, in every layer; +2.4 %
/// requests/s on the cache-hit path without them.) [`filter_service!`]
/// gives each filter a tower `Service` as well.
pub trait Filter: Send + Sync + 'static {
    /// Handles one request.
    fn call(&self, req: http::Request<ReqBody>) -> HttpFuture;
}

struct ErasedFilter<F>(F);

impl<F: Filter> ErasedService for ErasedFilter<F> {
    fn call(&self, req: http::Request<ReqBody>) -> HttpFuture {
        self.0.call(req)
    }
}

/// Boxes a [`Filter`] into an [`HttpService`].
pub fn boxed_filter<F: Filter>(filter: F) -> HttpService {
    HttpService(std::sync::Arc::new(ErasedFilter(filter)))
}

/// Implements tower's `Service` for a [`Filter`] type (always ready), for
/// tower's utilities and for tests.
#[macro_export]
macro_rules! filter_service {
    ($filter:ty) => {
        impl tower::Service<http::Request<$crate::pipeline::ReqBody>> for $filter {
            type Response = http::Response<$crate::pipeline::RespBody>;
            type Error = std::convert::Infallible;
            type Future = $crate::pipeline::HttpFuture;

            fn poll_ready(
                &mut self,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), std::convert::Infallible>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn call(&mut self, req: http::Request<$crate::pipeline::ReqBody>) -> Self::Future {
                $crate::pipeline::Filter::call(self, req)
            }
        }
    };
}
pub use filter_service;

/// Boxes any suitable service into an [`HttpService`].
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
    HttpService(std::sync::Arc::new(Erased(svc)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Context, Poll};

    fn ok_response() -> HttpFuture {
        Box::pin(async { Ok(response::text(http::StatusCode::OK, "ok")) })
    }

    #[test]
    fn a_filters_future_is_handed_on_without_another_box() {
        let fut = ok_response();
        let before = std::ptr::addr_of!(*fut).cast::<u8>();
        let after = into_http_future(fut);
        assert_eq!(std::ptr::addr_of!(*after).cast::<u8>(), before);
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
