//! The `cache` filter: answers repeated requests for one instance from the
//! response cache (see [`crate::cache`]), so the instance keeps one OTP.
//!
//! It must sit behind `authtoken` and `policy` (the registry requires
//! `Authorized`), so a cached answer only ever goes to a caller those
//! filters let through; a request that reaches it without `Authorized`
//! anyway is refused with 403 and never served from the cache.
//!
//! Options (`[filter.cache]` in pipeline.toml, else `[cache]` in join.conf):
//! see [`crate::cache::options`].

use std::convert::Infallible;
use std::task::{Context, Poll};

use std::sync::Arc;
use tower::{Layer, Service};

use http::{Request, Response, StatusCode};

use super::body::{self, BodyReadError};
use super::build::{BuildContext, FilterOptions};
use super::extensions::{AccessNotes, Authorized};
use super::{boxed_layer, HttpLayer};
use super::{response, take_ready, HttpFuture, HttpService, ReqBody, RespBody};
use crate::cache::options::CacheSettingsError;
use crate::cache::{CacheOutcome, CacheSettings, KeyMemo, Refusal, ResponseCache};
use crate::config::pipeline_file::PipelineFileError;

/// The filter's service: reads the body, looks the instance up, and calls
/// the inner service only when the cache cannot answer.
#[derive(Clone)]
pub struct CacheService {
    inner: HttpService,
    cache: ResponseCache,
    keys: Arc<KeyMemo>,
}

impl CacheService {
    /// Wraps `inner` with `cache`.
    pub fn new(inner: HttpService, cache: ResponseCache) -> Self {
        Self {
            inner,
            cache,
            keys: Arc::default(),
        }
    }
}

impl Service<Request<ReqBody>> for CacheService {
    type Response = Response<RespBody>;
    type Error = Infallible;
    type Future = HttpFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> HttpFuture {
        let inner = take_ready(&mut self.inner);
        let cache = self.cache.clone();
        let keys = self.keys.clone();
        Box::pin(async move {
            if req.extensions().get::<Authorized>().is_none() {
                tracing::error!(
                    "cache filter reached by a request that policy did not authorize; refusing it \
                     (check that authtoken, keystonecontext and policy come before cache in pipeline.toml)"
                );
                return Ok(with_outcome(
                    response::default_fault(StatusCode::FORBIDDEN),
                    CacheOutcome::Bypass,
                ));
            }
            let (parts, body) = req.into_parts();
            let bytes = match body::read_all(body).await {
                Ok(b) => b,
                Err(BodyReadError::TooLarge) => {
                    return Ok(with_outcome(
                        response::default_fault(StatusCode::PAYLOAD_TOO_LARGE),
                        CacheOutcome::Bypass,
                    ));
                }
                Err(BodyReadError::Broken(e)) => {
                    tracing::info!(error = %e, "cache: the request body could not be read");
                    return Ok(with_outcome(
                        response::fault(
                            StatusCode::BAD_REQUEST,
                            "The request body could not be read.",
                        ),
                        CacheOutcome::Bypass,
                    ));
                }
            };
            let key = keys.key(&parts, &bytes);
            let req = Request::from_parts(parts, body::full(bytes));
            let Some(key) = key else {
                // Not an instance request the handler would read (no JSON
                // object with an instance-id): let the handler answer it.
                let resp = call_inner(inner, req).await;
                return Ok(with_outcome(resp, CacheOutcome::Bypass));
            };
            let instance_id = key.instance_id.clone();
            let compute: crate::cache::Compute = Box::new(move || Box::pin(call_inner(inner, req)));
            let (answer, outcome) = cache.get_or_compute(key, compute).await;
            let mut resp = answer.unwrap_or_else(refusal_fault);
            let notes = AccessNotes::of(&mut resp);
            notes.instance_id.get_or_insert(instance_id);
            notes.cache = Some(outcome);
            Ok(resp)
        })
    }
}

async fn call_inner(mut inner: HttpService, req: Request<ReqBody>) -> Response<RespBody> {
    match inner.call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// The fault a refusal of the cache answers with.
fn refusal_fault(refusal: Refusal) -> Response<RespBody> {
    let message = refusal
        .message
        .unwrap_or_else(|| response::default_message(refusal.status));
    response::fault(refusal.status, message)
}

fn with_outcome(mut resp: Response<RespBody>, outcome: CacheOutcome) -> Response<RespBody> {
    AccessNotes::of(&mut resp).cache = Some(outcome);
    resp
}

/// Builds the filter from its options.
pub fn build(mut opts: FilterOptions, ctx: &BuildContext) -> Result<HttpLayer, PipelineFileError> {
    let plain = |problem: String| PipelineFileError {
        file: "pipeline.toml".into(),
        line: 0,
        problem,
    };
    let settings = CacheSettings::read(&mut opts).map_err(|e| match e {
        CacheSettingsError::Config(e) => PipelineFileError::from(e),
        e => plain(e.to_string()),
    })?;
    opts.finish()?;
    let cache = ResponseCache::new(&settings).map_err(|e| plain(e.to_string()))?;
    if let Some(probe) = cache.health_probe() {
        ctx.health.register(probe);
    }
    let authtoken_memcached = ctx
        .config
        .list(&crate::keystone::options::KA_MEMCACHED_SERVERS);
    if let Some(warning) = settings.multi_replica_warning(&authtoken_memcached) {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        backend = cache.backend(),
        ttl_s = settings.ttl.as_secs(),
        capacity = settings.capacity,
        "response cache ready"
    );
    Ok(boxed_layer(CacheLayer { cache }))
}

/// The layer: answers from `cache`, or asks the inner service and keeps its
/// answer.
#[derive(Clone)]
pub struct CacheLayer {
    cache: ResponseCache,
}

impl Layer<HttpService> for CacheLayer {
    type Service = CacheService;
    fn layer(&self, inner: HttpService) -> CacheService {
        CacheService::new(inner, self.cache.clone())
    }
}
