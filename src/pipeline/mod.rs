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

/// A type-erased HTTP service: what every filter wraps and returns.
pub type HttpService =
    tower::util::BoxCloneSyncService<http::Request<ReqBody>, http::Response<RespBody>, Infallible>;

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
    tower::util::BoxCloneSyncService::new(svc)
}
