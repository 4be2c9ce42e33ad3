//! The per-request metrics with their handles looked up once.
//!
//! A labelled `counter!` builds its key (a vector of labels) and looks it
//! up in the recorder's registry on every call: three of those per request
//! cost about 6 % of a cache hit's instructions (docs/PERFORMANCE.md). The labels of a
//! request are bounded (route x method x status, cache outcome), so each
//! combination's handle is resolved the first time it is seen and kept.
//!
//! Handles belong to the recorder that was current when they were
//! resolved: the server makes its [`RequestMetrics`] after installing the
//! recorder, and tests make one inside `metrics::with_local_recorder`.

use std::sync::OnceLock;
use std::time::Duration;

use http::{Method, StatusCode};
use metrics::{counter, histogram, Counter, Histogram};

use super::{
    cache_label, method_index, record_request, route_label, CACHE_LOOKUPS, HTTP_DURATION,
    HTTP_REQUESTS, KNOWN_STATUSES, METHOD_LABELS,
};
use crate::cache::CacheOutcome;

/// The `route` label's values.
const ROUTES: [&str; 3] = ["join", "healthcheck", "other"];
/// Cache outcomes in [`CacheOutcome`] order.
const OUTCOMES: [CacheOutcome; 4] = [
    CacheOutcome::Hit,
    CacheOutcome::Miss,
    CacheOutcome::Coalesced,
    CacheOutcome::Bypass,
];

/// Records answered requests as [`record_request`] does, through handles
/// resolved once per label combination.
pub struct RequestMetrics {
    /// `novajoin_http_requests_total` by route, method and status.
    requests: Box<[OnceLock<Counter>]>,
    /// `novajoin_http_request_duration_seconds` by route and status.
    durations: Box<[OnceLock<Histogram>]>,
    /// `novajoin_cache_lookups_total` by outcome.
    cache: [OnceLock<Counter>; 4],
}

impl std::fmt::Debug for RequestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestMetrics").finish_non_exhaustive()
    }
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `n` empty handle slots.
fn slots<T>(n: usize) -> Box<[OnceLock<T>]> {
    (0..n).map(|_| OnceLock::new()).collect()
}

impl RequestMetrics {
    /// No handle resolved yet; each is taken from the recorder current when
    /// its label combination first comes by.
    pub fn new() -> Self {
        RequestMetrics {
            requests: slots(ROUTES.len() * METHOD_LABELS.len() * KNOWN_STATUSES.len()),
            durations: slots(ROUTES.len() * KNOWN_STATUSES.len()),
            cache: Default::default(),
        }
    }

    /// Records one answered request: count and latency by status, and the
    /// cache outcome when the response cache took part.
    pub fn record(
        &self,
        path: &str,
        method: &Method,
        status: StatusCode,
        latency: Duration,
        cache: Option<CacheOutcome>,
    ) {
        let Some(status_at) = KNOWN_STATUSES.iter().position(|k| *k == status.as_str()) else {
            // A status this service does not answer with: rare, so not kept.
            return record_request(path, method, status, latency, cache);
        };
        let route = route_label(path);
        let route_at = ROUTES.iter().position(|r| *r == route).unwrap_or(2);
        let method_at = method_index(method);
        let status = KNOWN_STATUSES[status_at];
        let requests_at =
            (route_at * METHOD_LABELS.len() + method_at) * KNOWN_STATUSES.len() + status_at;
        self.requests[requests_at]
            .get_or_init(|| {
                counter!(HTTP_REQUESTS, "route" => route, "method" => METHOD_LABELS[method_at], "status" => status)
            })
            .increment(1);
        self.durations[route_at * KNOWN_STATUSES.len() + status_at]
            .get_or_init(|| histogram!(HTTP_DURATION, "route" => route, "status" => status))
            .record(latency.as_secs_f64());
        if let Some(outcome) = cache {
            let at = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0);
            self.cache[at]
                .get_or_init(|| counter!(CACHE_LOOKUPS, "outcome" => cache_label(outcome)))
                .increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::render_with;

    /// A mix of routes, methods, statuses (one not kept) and outcomes.
    fn requests() -> Vec<(&'static str, Method, u16, u64, Option<CacheOutcome>)> {
        vec![
            ("/v1/", Method::POST, 200, 20, Some(CacheOutcome::Miss)),
            ("/v1/", Method::POST, 200, 1, Some(CacheOutcome::Hit)),
            ("/v1/", Method::POST, 200, 1, Some(CacheOutcome::Hit)),
            ("/v1", Method::POST, 403, 2, None),
            ("/healthcheck", Method::GET, 200, 1, None),
            ("/healthcheck", Method::HEAD, 503, 1, None),
            ("/nowhere", Method::GET, 404, 1, None),
            (
                "/nowhere",
                Method::from_bytes(b"PROPFIND").unwrap(),
                405,
                1,
                None,
            ),
            ("/v1/", Method::POST, 418, 3, Some(CacheOutcome::Bypass)),
            ("/v1/", Method::POST, 200, 7, Some(CacheOutcome::Coalesced)),
        ]
    }

    #[test]
    fn renders_exactly_what_the_unkept_path_renders() {
        let kept = render_with(|| {
            let m = RequestMetrics::new();
            for (path, method, status, ms, cache) in requests() {
                let status = StatusCode::from_u16(status).unwrap();
                m.record(path, &method, status, Duration::from_millis(ms), cache);
            }
        });
        let direct = render_with(|| {
            for (path, method, status, ms, cache) in requests() {
                let status = StatusCode::from_u16(status).unwrap();
                record_request(path, &method, status, Duration::from_millis(ms), cache);
            }
        });
        // The exporter renders series in hash order: compare them as sets.
        let sorted = |text: &str| {
            let mut lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
            lines.sort_unstable();
            lines.join("\n")
        };
        assert_eq!(sorted(&kept), sorted(&direct));
        assert!(
            kept.contains(
                "novajoin_http_requests_total{route=\"join\",method=\"POST\",status=\"200\"} 4"
            ),
            "{kept}"
        );
        assert!(
            kept.contains("novajoin_cache_lookups_total{outcome=\"hit\"} 2"),
            "{kept}"
        );
        assert!(kept.contains("status=\"418\""), "{kept}");
    }

    #[test]
    fn handles_stay_with_the_recorder_they_came_from() {
        let m = RequestMetrics::new();
        let one_request = || {
            let ms = Duration::from_millis(1);
            render_with(|| m.record("/v1/", &Method::POST, StatusCode::OK, ms, None))
        };
        let first = one_request();
        // Same label set, resolved already: counted by the first recorder.
        let second = one_request();
        assert!(first.contains("status=\"200\"} 1"), "{first}");
        assert!(
            !second.contains("novajoin_http_requests_total{"),
            "{second}"
        );
    }
}
