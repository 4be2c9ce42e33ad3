//! `healthcheck`: answers `GET`/`HEAD` on its path (default `/healthcheck`)
//! and passes every other request on, as oslo.middleware's filter did
//! before 7.0.
//!
//! Besides oslo's file backends (`disable_by_file`, `enable_by_files`) it
//! asks the [`HealthRegistry`] probes that components registered (Redis,
//! IPA, ...): a failed probe gives 503, a degraded one is reported with 200.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use tower::{Layer, Service};

use super::build::{BuildContext, FilterOptions};
use super::{boxed_layer, HttpLayer};
use super::{response, HttpFuture, HttpService, ReqBody, RespBody};
use crate::config::pipeline_file::PipelineFileError;
use crate::config::OptionSource;

use crate::config::schema::{OptionGroup, OptionKind as K, OptionSpec as O};
use crate::health::{HealthRegistry, HealthState};

/// Health check settings.
#[derive(Clone, Debug, Default)]
pub struct HealthcheckSettings {
    /// The path answered.
    pub path: String,
    /// Include each probe's state in the body.
    pub detailed: bool,
    /// `disable_by_file`: 503 while this file exists.
    pub disable_by_file: Option<PathBuf>,
    /// `enable_by_files`: 503 unless all these exist.
    pub enable_by_files: Vec<PathBuf>,
}

/// The layer.
#[derive(Clone)]
pub struct HealthcheckLayer {
    settings: Arc<HealthcheckSettings>,
    registry: HealthRegistry,
}

impl HealthcheckLayer {
    /// A layer answering on `settings.path` with the given probes.
    pub fn new(settings: HealthcheckSettings, registry: HealthRegistry) -> Self {
        Self {
            settings: Arc::new(settings),
            registry,
        }
    }
}

impl Layer<HttpService> for HealthcheckLayer {
    type Service = Healthcheck;
    fn layer(&self, inner: HttpService) -> Healthcheck {
        Healthcheck {
            inner,
            settings: self.settings.clone(),
            registry: self.registry.clone(),
        }
    }
}

/// The service.
#[derive(Clone)]
pub struct Healthcheck {
    inner: HttpService,
    settings: Arc<HealthcheckSettings>,
    registry: HealthRegistry,
}

/// One line of the report: (available, reason).
async fn evaluate(
    settings: &HealthcheckSettings,
    registry: &HealthRegistry,
) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    if let Some(p) = &settings.disable_by_file {
        if p.exists() {
            out.push((false, "DISABLED BY FILE".to_string()));
        } else {
            out.push((true, "OK".to_string()));
        }
    }
    if !settings.enable_by_files.is_empty() {
        if settings.enable_by_files.iter().all(|p| p.exists()) {
            out.push((true, "OK".to_string()));
        } else {
            out.push((false, "FILE PATH MISSING".to_string()));
        }
    }
    for (name, state) in registry.check_all().await {
        match state {
            HealthState::Ok if settings.detailed => out.push((true, format!("{name}: OK"))),
            HealthState::Ok => {}
            HealthState::Degraded(why) => out.push((true, format!("{name}: DEGRADED: {why}"))),
            HealthState::Failed(why) => out.push((false, format!("{name}: FAILED: {why}"))),
        }
    }
    out
}

impl Service<Request<ReqBody>> for Healthcheck {
    type Response = Response<RespBody>;
    type Error = Infallible;
    type Future = HttpFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> HttpFuture {
        let ours = req.uri().path() == self.settings.path
            && (req.method() == Method::GET || req.method() == Method::HEAD);
        if !ours {
            return self.inner.call(req);
        }
        let settings = self.settings.clone();
        let registry = self.registry.clone();
        let head = req.method() == Method::HEAD;
        let wants_json = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json") && !a.contains("text/plain"));
        Box::pin(async move {
            let lines = evaluate(&settings, &registry).await;
            let healthy = lines.iter().all(|(ok, _)| *ok);
            let status = match (healthy, head) {
                (false, _) => StatusCode::SERVICE_UNAVAILABLE,
                (true, true) => StatusCode::NO_CONTENT,
                (true, false) => StatusCode::OK,
            };
            if head {
                return Ok(response::empty(status));
            }
            let reasons: Vec<&str> = lines.iter().map(|(_, r)| r.as_str()).collect();
            if wants_json {
                let v = serde_json::json!({"detailed": settings.detailed, "reasons": reasons});
                let mut r = response::json(status, &v);
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                return Ok(r);
            }
            Ok(response::text(status, reasons.join("\n")))
        })
    }
}

impl HealthcheckSettings {
    /// `path` (pipeline table only) and the `[healthcheck]` options.
    pub fn read(opts: &mut FilterOptions) -> Result<Self, PipelineFileError> {
        let path =
            match opts.raw("path") {
                Some(at) => match at.value.as_str() {
                    Some(p) if p.starts_with('/') => p.to_string(),
                    _ => return Err(PipelineFileError {
                        file: "pipeline.toml".into(),
                        line: at.line,
                        problem:
                            "filter 'healthcheck' option 'path' must be a string starting with '/'"
                                .into(),
                    }),
                },
                None => "/healthcheck".to_string(),
            };
        let backends = opts.list(&HC_BACKENDS)?;
        for b in &backends {
            if !matches!(b.as_str(), "disable_by_file" | "enable_by_files") {
                return Err(PipelineFileError {
                file: "pipeline.toml".into(),
                line: 0,
                problem: format!("[healthcheck] backends: unknown backend '{b}'; use disable_by_file or enable_by_files"),
            });
            }
        }
        if backends.iter().any(|b| b == "disable_by_file")
            && backends.iter().any(|b| b == "enable_by_files")
        {
            return Err(PipelineFileError {
            file: "pipeline.toml".into(),
            line: 0,
            problem: "[healthcheck] backends: disable_by_file and enable_by_files cannot be used together".into(),
        });
        }
        Ok(HealthcheckSettings {
            path,
            detailed: opts.bool(&HC_DETAILED)?,
            disable_by_file: if backends.iter().any(|b| b == "disable_by_file") {
                opts.string(&HC_DISABLE_BY_FILE_PATH)?.map(PathBuf::from)
            } else {
                opts.string(&HC_DISABLE_BY_FILE_PATH)?;
                None
            },
            enable_by_files: {
                let files = opts.list(&HC_ENABLE_BY_FILE_PATHS)?;
                if backends.iter().any(|b| b == "enable_by_files") {
                    files.into_iter().map(PathBuf::from).collect()
                } else {
                    Vec::new()
                }
            },
        })
    }
}

/// Builds the filter.
pub fn build(mut opts: FilterOptions, ctx: &BuildContext) -> Result<HttpLayer, PipelineFileError> {
    let settings = HealthcheckSettings::read(&mut opts)?;
    opts.finish()?;
    Ok(boxed_layer(HealthcheckLayer::new(
        settings,
        ctx.health.clone(),
    )))
}

/// `[healthcheck] backends`.
pub const HC_BACKENDS: O = O::new(
    "healthcheck",
    "backends",
    K::List,
    Some(""),
    "Health check backends: disable_by_file, enable_by_files.",
);
/// `[healthcheck] detailed`.
pub const HC_DETAILED: O = O::new(
    "healthcheck",
    "detailed",
    K::Bool,
    Some("false"),
    "Show details (dependencies' state) in the health check.",
);
/// `[healthcheck] disable_by_file_path`.
pub const HC_DISABLE_BY_FILE_PATH: O = O::new(
    "healthcheck",
    "disable_by_file_path",
    K::Str,
    None,
    "When this file exists the service reports 503.",
);
/// `[healthcheck] enable_by_file_paths`.
pub const HC_ENABLE_BY_FILE_PATHS: O = O::new(
    "healthcheck",
    "enable_by_file_paths",
    K::List,
    Some(""),
    "The service reports 503 unless all these files exist.",
);

/// The `[healthcheck]` group.
pub const HEALTHCHECK_OPTIONS: OptionGroup = &[
    HC_BACKENDS,
    HC_DETAILED,
    HC_DISABLE_BY_FILE_PATH,
    HC_ENABLE_BY_FILE_PATHS,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthProbe;
    use crate::pipeline::body;
    use crate::pipeline::boxed;
    use std::convert::Infallible;
    use tower::ServiceExt;

    struct Down;
    impl HealthProbe for Down {
        fn name(&self) -> &str {
            "redis"
        }
        fn check(&self) -> futures::future::BoxFuture<'_, HealthState> {
            Box::pin(async { HealthState::Failed("connection refused".into()) })
        }
    }

    fn inner() -> HttpService {
        boxed(tower::service_fn(|_r: Request<ReqBody>| async {
            Ok::<_, Infallible>(response::empty(StatusCode::IM_A_TEAPOT))
        }))
    }

    fn settings(dir: &std::path::Path) -> HealthcheckSettings {
        HealthcheckSettings {
            path: "/healthcheck".into(),
            detailed: false,
            disable_by_file: Some(dir.join("off")),
            enable_by_files: vec![],
        }
    }

    #[tokio::test]
    async fn answers_its_path_and_passes_others() {
        let dir = tempfile::tempdir().unwrap();
        let svc =
            HealthcheckLayer::new(settings(dir.path()), HealthRegistry::default()).layer(inner());
        let r = svc
            .clone()
            .oneshot(Request::get("/healthcheck").body(body::full("")).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = svc
            .clone()
            .oneshot(Request::head("/healthcheck").body(body::full("")).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let r = svc
            .oneshot(Request::get("/v1/").body(body::full("")).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::IM_A_TEAPOT);
    }

    #[tokio::test]
    async fn disable_file_and_failed_probe_give_503() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("off"), "").unwrap();
        let svc =
            HealthcheckLayer::new(settings(dir.path()), HealthRegistry::default()).layer(inner());
        let r = svc
            .oneshot(Request::get("/healthcheck").body(body::full("")).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);

        let reg = HealthRegistry::default();
        reg.register(Arc::new(Down));
        let dir = tempfile::tempdir().unwrap();
        let svc = HealthcheckLayer::new(settings(dir.path()), reg).layer(inner());
        let r = svc
            .oneshot(Request::get("/healthcheck").body(body::full("")).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let b = http_body_util::BodyExt::collect(r.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert!(String::from_utf8_lossy(&b).contains("redis: FAILED: connection refused"));
    }
}
