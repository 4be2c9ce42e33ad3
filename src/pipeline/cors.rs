//! `cors`: oslo.middleware's CORS filter, with its exact behaviour.
//!
//! tower-http's CorsLayer answers preflights itself; oslo passes every
//! OPTIONS request downstream first and replaces a non-2xx answer with an
//! empty 200 (so for novajoin every OPTIONS gets 200). Operators' browsers
//! and tests depend on that, so this filter reproduces it.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use tower::{Layer, Service};

use super::build::{BuildContext, FilterOptions};
use super::{boxed_layer, HttpLayer};
use super::{response, HttpFuture, HttpService, ReqBody, RespBody};
use crate::config::pipeline_file::PipelineFileError;
use crate::config::{ConfigError, OptionSource};

use crate::config::schema::{OptionGroup, OptionKind as K, OptionSpec as O};

/// The simple headers a preflight may always request.
const SIMPLE_HEADERS: &[&str] = &[
    "accept",
    "accept-language",
    "content-type",
    "cache-control",
    "content-language",
    "expires",
    "last-modified",
    "pragma",
];

/// CORS policy (`[cors]`).
#[derive(Clone, Debug, Default)]
pub struct CorsPolicy {
    /// Allowed origins; `*` matches any.
    pub allowed_origin: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// `Access-Control-Expose-Headers`.
    pub expose_headers: Vec<String>,
    /// `Access-Control-Max-Age` (0 = not sent).
    pub max_age: i64,
    /// Methods a preflight may ask for (case-sensitive, as oslo).
    pub allow_methods: Vec<String>,
    /// Extra headers a preflight may ask for (case-insensitive).
    pub allow_headers: Vec<String>,
}

impl CorsPolicy {
    /// The `[cors]` options.
    pub fn read(opts: &mut impl OptionSource) -> Result<Self, ConfigError> {
        Ok(Self {
            allowed_origin: opts.list(&CORS_ALLOWED_ORIGIN)?,
            allow_credentials: opts.bool(&CORS_ALLOW_CREDENTIALS)?,
            expose_headers: opts.list(&CORS_EXPOSE_HEADERS)?,
            max_age: opts.int_or_default(&CORS_MAX_AGE)?,
            allow_methods: opts.list(&CORS_ALLOW_METHODS)?,
            allow_headers: opts.list(&CORS_ALLOW_HEADERS)?,
        })
    }

    /// The configured key matching `origin`: the origin itself or `*`.
    fn matched(&self, origin: &str) -> Option<String> {
        if self.allowed_origin.iter().any(|o| o == origin) {
            Some(origin.to_string())
        } else if self.allowed_origin.iter().any(|o| o == "*") {
            Some("*".to_string())
        } else {
            None
        }
    }
}

/// The layer.
#[derive(Clone, Debug)]
pub struct CorsLayer {
    policy: Arc<CorsPolicy>,
}

impl CorsLayer {
    /// A layer applying `policy`.
    pub fn new(policy: CorsPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }
}

impl Layer<HttpService> for CorsLayer {
    type Service = Cors;
    fn layer(&self, inner: HttpService) -> Cors {
        Cors {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service.
#[derive(Clone)]
pub struct Cors {
    inner: HttpService,
    policy: Arc<CorsPolicy>,
}

fn set(resp: &mut Response<RespBody>, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

fn preflight(
    policy: &CorsPolicy,
    req_headers: &http::HeaderMap,
    mut resp: Response<RespBody>,
) -> Response<RespBody> {
    if !resp.status().is_success() {
        resp = response::empty(StatusCode::OK);
    }
    let get = |n: &str| req_headers.get(n).and_then(|v| v.to_str().ok());
    let Some(key) = get("origin").and_then(|o| policy.matched(o)) else {
        return resp;
    };
    let Some(method) = get("access-control-request-method") else {
        return resp;
    };
    if !policy.allow_methods.iter().any(|m| m == method) {
        return resp;
    }
    let requested: Vec<&str> = get("access-control-request-headers")
        .map(|h| {
            h.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let allowed = |h: &str| {
        let h = h.to_ascii_lowercase();
        SIMPLE_HEADERS.contains(&h.as_str())
            || policy
                .allow_headers
                .iter()
                .any(|a| a.to_ascii_lowercase() == h)
    };
    if !requested.iter().all(|h| allowed(h)) {
        return resp;
    }
    set(&mut resp, "vary", "Origin");
    set(&mut resp, "access-control-allow-origin", &key);
    if policy.allow_credentials {
        set(&mut resp, "access-control-allow-credentials", "true");
    }
    if policy.max_age != 0 {
        set(
            &mut resp,
            "access-control-max-age",
            &policy.max_age.to_string(),
        );
    }
    set(&mut resp, "access-control-allow-methods", method);
    if !requested.is_empty() {
        set(
            &mut resp,
            "access-control-allow-headers",
            &requested.join(","),
        );
    }
    resp
}

fn actual(
    policy: &CorsPolicy,
    origin: Option<&str>,
    mut resp: Response<RespBody>,
) -> Response<RespBody> {
    if resp
        .headers()
        .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    {
        return resp;
    }
    let Some(key) = origin.and_then(|o| policy.matched(o)) else {
        return resp;
    };
    let vary = match resp
        .headers()
        .get(header::VARY)
        .and_then(|v| v.to_str().ok())
    {
        Some(v) => format!("{v},Origin"),
        None => "Origin".to_string(),
    };
    set(&mut resp, "vary", &vary);
    set(&mut resp, "access-control-allow-origin", &key);
    if policy.allow_credentials {
        set(&mut resp, "access-control-allow-credentials", "true");
    }
    if !policy.expose_headers.is_empty() {
        set(
            &mut resp,
            "access-control-expose-headers",
            &policy.expose_headers.join(","),
        );
    }
    resp
}

impl Service<Request<ReqBody>> for Cors {
    type Response = Response<RespBody>;
    type Error = Infallible;
    type Future = HttpFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> HttpFuture {
        if req.method() == Method::OPTIONS {
            let policy = self.policy.clone();
            let headers = req.headers().clone();
            let fut = self.inner.call(req);
            return Box::pin(async move { Ok(preflight(&policy, &headers, fut.await?)) });
        }
        // An actual request gets CORS headers only when it names an
        // origin; without one (nova never sends it) the answer is the
        // next filter's, untouched, so its future is handed on as it is.
        let Some(origin) = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        else {
            return self.inner.call(req);
        };
        let policy = self.policy.clone();
        let fut = self.inner.call(req);
        Box::pin(async move { Ok(actual(&policy, Some(&origin), fut.await?)) })
    }
}

/// Builds the filter from `[cors]` (or the pipeline table).
pub fn build(mut opts: FilterOptions, _: &BuildContext) -> Result<HttpLayer, PipelineFileError> {
    let policy = CorsPolicy::read(&mut opts)?;
    opts.finish()?;
    Ok(boxed_layer(CorsLayer::new(policy)))
}

/// `[cors] allowed_origin`.
pub const CORS_ALLOWED_ORIGIN: O = O::new(
    "cors",
    "allowed_origin",
    K::List,
    None,
    "Origins allowed to make cross-site requests (scheme://host[:port], or *).",
);
/// `[cors] allow_credentials`.
pub const CORS_ALLOW_CREDENTIALS: O = O::new(
    "cors",
    "allow_credentials",
    K::Bool,
    Some("true"),
    "Send Access-Control-Allow-Credentials.",
);
/// `[cors] expose_headers`.
pub const CORS_EXPOSE_HEADERS: O = O::new(
    "cors",
    "expose_headers",
    K::List,
    Some(""),
    "Headers exposed to the browser.",
);
/// `[cors] max_age`.
pub const CORS_MAX_AGE: O = O::new(
    "cors",
    "max_age",
    K::Int {
        min: 0,
        max: 1 << 31,
    },
    Some("3600"),
    "Preflight cache lifetime, seconds.",
);
/// `[cors] allow_methods`.
pub const CORS_ALLOW_METHODS: O = O::new(
    "cors",
    "allow_methods",
    K::List,
    Some("OPTIONS,GET,HEAD,POST,PUT,DELETE,TRACE,PATCH"),
    "Methods allowed in preflight.",
);
/// `[cors] allow_headers`.
pub const CORS_ALLOW_HEADERS: O = O::new(
    "cors",
    "allow_headers",
    K::List,
    Some(""),
    "Non-simple headers allowed in preflight.",
);

/// The `[cors]` group.
pub const CORS_OPTIONS: OptionGroup = &[
    CORS_ALLOWED_ORIGIN,
    CORS_ALLOW_CREDENTIALS,
    CORS_EXPOSE_HEADERS,
    CORS_MAX_AGE,
    CORS_ALLOW_METHODS,
    CORS_ALLOW_HEADERS,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::body;
    use crate::pipeline::boxed;
    use std::convert::Infallible;
    use tower::ServiceExt;

    fn policy() -> CorsPolicy {
        CorsPolicy {
            allowed_origin: vec!["https://horizon.example.com".into()],
            allow_credentials: true,
            expose_headers: vec!["X-OpenStack-Request-ID".into()],
            max_age: 3600,
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["X-Auth-Token".into(), "Content-Type".into()],
        }
    }

    fn app(status: StatusCode) -> HttpService {
        boxed(tower::service_fn(move |_r: Request<ReqBody>| async move {
            Ok::<_, Infallible>(response::default_fault(status))
        }))
    }

    #[tokio::test]
    async fn preflight_replaces_a_401_with_an_allowed_200() {
        let svc = CorsLayer::new(policy()).layer(app(StatusCode::UNAUTHORIZED));
        let req = Request::builder()
            .method("OPTIONS")
            .header("origin", "https://horizon.example.com")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "x-auth-token, content-type",
            )
            .body(body::full(""))
            .unwrap();
        let r = svc.oneshot(req).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["access-control-allow-methods"], "POST");
        assert_eq!(
            r.headers()["access-control-allow-headers"],
            "x-auth-token,content-type"
        );
        assert_eq!(r.headers()["access-control-max-age"], "3600");
    }

    #[tokio::test]
    async fn preflight_with_lowercase_method_gets_no_cors_headers() {
        let svc = CorsLayer::new(policy()).layer(app(StatusCode::UNAUTHORIZED));
        let req = Request::builder()
            .method("OPTIONS")
            .header("origin", "https://horizon.example.com")
            .header("access-control-request-method", "post")
            .body(body::full(""))
            .unwrap();
        let r = svc.oneshot(req).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(!r.headers().contains_key("access-control-allow-origin"));
    }

    #[tokio::test]
    async fn actual_request_gets_origin_and_expose_headers() {
        let svc = CorsLayer::new(policy()).layer(app(StatusCode::BAD_REQUEST));
        let req = Request::builder()
            .method("POST")
            .header("origin", "https://horizon.example.com")
            .body(body::full(""))
            .unwrap();
        let r = svc.oneshot(req).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()["vary"], "Origin");
        assert_eq!(
            r.headers()["access-control-expose-headers"],
            "X-OpenStack-Request-ID"
        );
    }

    #[tokio::test]
    async fn unknown_origin_gets_nothing_and_is_not_blocked() {
        let svc = CorsLayer::new(policy()).layer(app(StatusCode::OK));
        let req = Request::builder()
            .method("POST")
            .header("origin", "https://evil")
            .body(body::full(""))
            .unwrap();
        let r = svc.oneshot(req).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(!r.headers().contains_key("access-control-allow-origin"));
    }
}
