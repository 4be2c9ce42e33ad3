//! The request pipeline: a tower stack assembled from pipeline.toml.
//!
//! Each filter is a tower [`Layer`](tower::Layer) in its own file and knows
//! nothing about the others: it reads and writes only the typed request
//! extensions in [`extensions`]. [`registry`] knows every filter by name,
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
        Box::pin(async move {
            std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
            svc.call(req).await
        })
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
