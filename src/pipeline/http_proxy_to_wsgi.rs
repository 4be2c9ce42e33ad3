//! `http_proxy_to_wsgi`: trusts a reverse proxy's `Forwarded` or
//! `X-Forwarded-*` headers, as oslo.middleware's filter does, when
//! `enable_proxy_headers_parsing` is on (off by default: any client could
//! set them).
//!
//! The result is an `Arc<ForwardedOrigin>` extension; it is always inserted
//! (from the request itself when parsing is off), so inner code never has to
//! look at proxy headers. The same `Arc` goes into the response's
//! [`AccessNotes`] for the access log (shared, not copied).

use std::convert::Infallible;
use std::task::{Context, Poll};

use std::sync::Arc;
use tower::Service;

use http::{header, HeaderMap, HeaderName, Request, Response};
use tower::Layer;

use super::build::{BuildContext, FilterOptions};
use super::extensions::{AccessNotes, ForwardedOrigin, PeerAddr};
use super::{boxed_layer, HttpLayer};
use super::{HttpFuture, HttpService, ReqBody, RespBody};
use crate::config::pipeline_file::PipelineFileError;
use crate::config::OptionSource;

use crate::config::schema::{OptionGroup, OptionKind as K, OptionSpec as O};

/// The layer.
#[derive(Clone, Copy, Debug)]
pub struct ProxyHeadersLayer {
    enabled: bool,
}

impl ProxyHeadersLayer {
    /// `enabled` = `enable_proxy_headers_parsing`.
    pub fn new(enabled: bool) -> Self {
        Self { enabled }
    }
}

impl Layer<HttpService> for ProxyHeadersLayer {
    type Service = ProxyHeaders;
    fn layer(&self, inner: HttpService) -> ProxyHeaders {
        ProxyHeaders {
            inner,
            enabled: self.enabled,
        }
    }
}

/// The service.
#[derive(Clone)]
pub struct ProxyHeaders {
    inner: HttpService,
    enabled: bool,
}

// Looked up by name on every request: built once rather than parsed from
// text each time.
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

fn header_str<'a>(h: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Computes the client's view of the request from the headers.
pub fn origin_from(headers: &HeaderMap, peer: Option<String>, enabled: bool) -> ForwardedOrigin {
    let mut o = ForwardedOrigin {
        scheme: "http".into(),
        host: header_str(headers, &header::HOST).map(str::to_string),
        remote_addr: peer,
        prefix: None,
    };
    if !enabled {
        return o;
    }
    if let Some(fwd) = header_str(headers, &header::FORWARDED) {
        // Only the first element; keys lower-cased; values trimmed, quotes kept.
        let first = fwd.split(',').next().unwrap_or("");
        for pair in first.split(';') {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            let v = v.trim().to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "proto" => o.scheme = v,
                "host" => o.host = Some(v),
                "for" => o.remote_addr = Some(v),
                _ => {}
            }
        }
    } else {
        if let Some(p) = header_str(headers, &X_FORWARDED_PROTO) {
            o.scheme = p.to_string();
        }
        if let Some(h) = header_str(headers, &X_FORWARDED_HOST) {
            o.host = Some(h.to_string());
        }
        if let Some(f) = header_str(headers, &X_FORWARDED_FOR) {
            o.remote_addr = Some(f.to_string());
        }
    }
    o.prefix = header_str(headers, &X_FORWARDED_PREFIX).map(str::to_string);
    o
}

impl Service<Request<ReqBody>> for ProxyHeaders {
    type Response = Response<RespBody>;
    type Error = Infallible;
    type Future = HttpFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> HttpFuture {
        let peer = req
            .extensions()
            .get::<PeerAddr>()
            .and_then(|p| p.ip.as_deref())
            .map(str::to_string);
        let origin = Arc::new(origin_from(req.headers(), peer, self.enabled));
        req.extensions_mut().insert(origin.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            AccessNotes::of(&mut resp).origin = Some(origin);
            Ok(resp)
        })
    }
}

/// Builds the filter: option `enable_proxy_headers_parsing` (pipeline table
/// or `[oslo_middleware]`).
pub fn build(mut opts: FilterOptions, _: &BuildContext) -> Result<HttpLayer, PipelineFileError> {
    let enabled = opts.bool(&ENABLE_PROXY_HEADERS_PARSING)?;
    opts.finish()?;
    Ok(boxed_layer(ProxyHeadersLayer::new(enabled)))
}

/// `[oslo_middleware] enable_proxy_headers_parsing`.
pub const ENABLE_PROXY_HEADERS_PARSING: O = O::new(
    "oslo_middleware",
    "enable_proxy_headers_parsing",
    K::Bool,
    Some("false"),
    "Trust Forwarded / X-Forwarded-* headers (only behind a proxy that sets them).",
);

/// This filter's `[oslo_middleware]` option.
pub const PROXY_HEADERS_OPTIONS: OptionGroup = &[ENABLE_PROXY_HEADERS_PARSING];

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn disabled_ignores_forwarded_headers() {
        let h = headers(&[("host", "a:9090"), ("x-forwarded-proto", "https")]);
        let o = origin_from(&h, None, false);
        assert_eq!(
            (o.scheme.as_str(), o.host.as_deref()),
            ("http", Some("a:9090"))
        );
    }

    #[test]
    fn x_forwarded_headers_as_oslo_reads_them() {
        let h = headers(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "api.example.com:13090"),
            ("x-forwarded-for", "1.2.3.4, 5.6.7.8"),
            ("x-forwarded-prefix", "/join"),
        ]);
        let o = origin_from(&h, None, true);
        assert_eq!(o.scheme, "https");
        assert_eq!(o.host.as_deref(), Some("api.example.com:13090"));
        assert_eq!(o.remote_addr.as_deref(), Some("1.2.3.4, 5.6.7.8"));
        assert_eq!(o.prefix.as_deref(), Some("/join"));
    }

    #[test]
    fn forwarded_wins_and_only_its_first_element_counts() {
        let h = headers(&[
            (
                "forwarded",
                "for=192.0.2.60;proto=https;host=a.example.com, for=10.0.0.1",
            ),
            ("x-forwarded-proto", "http"),
        ]);
        let o = origin_from(&h, None, true);
        assert_eq!(o.scheme, "https");
        assert_eq!(o.host.as_deref(), Some("a.example.com"));
        assert_eq!(o.remote_addr.as_deref(), Some("192.0.2.60"));
    }
}
