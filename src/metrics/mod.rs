//! Prometheus metrics: what the service counts, and the endpoint that
//! serves them.
//!
//! The endpoint is a listener of its own (`[metrics] listen`, loopback by
//! convention), never a route of the public request pipeline: scrapers do
//! not need a keystone token, and nova's callers cannot read it.
//!
//! The server's parts record through the small functions below, so metric
//! names and labels live in one place; the notification listener records
//! its own (`novajoin_notify_*`, described here). Without a configured listener
//! no recorder is installed and the functions cost next to nothing.
//!
//! Labels are bounded on purpose: `route` is one of a few words, `status`
//! an HTTP code, `method` an IPA command name from this code, `kind` an
//! error class name. Nothing a caller sends becomes a label verbatim.
//!
//! `novajoin server` serves them on `[metrics] listen`, `novajoin notify`
//! on `[metrics] notify_listen`: each process has its own counters.

mod request_handles;
pub use request_handles::RequestMetrics;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::cache::CacheOutcome;
use crate::config::schema::{OptionGroup, OptionKind as K, OptionSpec as O};
use crate::config::{ConfigError, ConfigFiles};
use crate::ipa::IpaError;

// ---- names ----

/// Requests answered, by route, method and status.
pub const HTTP_REQUESTS: &str = "novajoin_http_requests_total";
/// Request latency histogram (seconds), by route and status.
pub const HTTP_DURATION: &str = "novajoin_http_request_duration_seconds";
/// Response cache outcomes of the `/v1` route, by outcome.
pub const CACHE_LOOKUPS: &str = "novajoin_cache_lookups_total";
/// IPA JSON-RPC calls (a batch counts once), by command.
pub const IPA_CALLS: &str = "novajoin_ipa_calls_total";
/// IPA calls that failed, by command and error kind.
pub const IPA_ERRORS: &str = "novajoin_ipa_call_errors_total";
/// Failovers from one IPA server to another, by the server calls moved to.
pub const IPA_FAILOVERS: &str = "novajoin_ipa_failovers_total";
/// IPA call latency histogram (seconds), by command.
pub const IPA_DURATION: &str = "novajoin_ipa_call_duration_seconds";
/// Gauge: IPA enrollments waiting for a call slot (`ipa::batcher`).
pub const IPA_QUEUE_DEPTH: &str = "novajoin_ipa_queue_depth";
/// Histogram: enrollments (requests) carried by one IPA call from the queue.
pub const IPA_BATCH_REQUESTS: &str = "novajoin_ipa_batch_requests";
/// Histogram: IPA commands carried by one call from the queue.
pub const IPA_BATCH_COMMANDS: &str = "novajoin_ipa_batch_commands";
/// Counter: IPA writes refused at once because the queue could not serve
/// them within `[ipa] queue_deadline`, by reason.
pub const IPA_SHED: &str = "novajoin_ipa_shed_total";
/// HTTP requests sent to keystone, by status (`error` when none came back).
pub const KEYSTONE_CALLS: &str = "novajoin_keystone_calls_total";
/// Notifications the listener took off the queue, by outcome (recorded by
/// `notify::listener`).
pub const NOTIFY_MESSAGES: &str = "novajoin_notify_messages_total";
/// Transient failures retried in place (recorded by `notify::listener`).
pub const NOTIFY_RETRIES: &str = "novajoin_notify_retries_total";
/// 1 while the listener holds a broker connection (`notify::listener`).
pub const NOTIFY_CONNECTED: &str = "novajoin_notify_connected";
/// Always 1; labels carry the version and the process role.
pub const BUILD_INFO: &str = "novajoin_build_info";
/// Counter: changes refused because the IPA object belongs to another
/// instance or was not created by novajoin.
pub const OWNERSHIP_REFUSALS: &str = "novajoin_ownership_refusals_total";
/// Counter: IPA calls of the listener refused by IPA's access controls.
pub const NOTIFY_ACCESS_DENIED: &str = "novajoin_notify_ipa_access_denied_total";

/// Counter: token validations, by outcome (`valid`, `invalid`, `error`,
/// `jws_rejected`; recorded by `keystone::validator`).
pub const TOKEN_VALIDATIONS: &str = "novajoin_token_validations_total";
/// Counter: token cache hits, by cache (`memory`, `shared`; recorded by
/// `keystone::validator`).
pub const TOKEN_CACHE_HITS: &str = "novajoin_token_cache_hits_total";

/// What kind of series a metric is on the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A counter (`_total`).
    Counter,
    /// A gauge.
    Gauge,
    /// A histogram (`_bucket`, `_sum`, `_count` series).
    Histogram,
}

/// Every metric either process can export, for alerting rules and
/// dashboards (tests/alerts.rs checks them against this list, and a unit
/// test below checks that the source records no other `novajoin_` name).
pub const EXPORTED: &[(&str, MetricKind)] = &[
    (HTTP_REQUESTS, MetricKind::Counter),
    (HTTP_DURATION, MetricKind::Histogram),
    (CACHE_LOOKUPS, MetricKind::Counter),
    (IPA_CALLS, MetricKind::Counter),
    (IPA_ERRORS, MetricKind::Counter),
    (IPA_FAILOVERS, MetricKind::Counter),
    (IPA_DURATION, MetricKind::Histogram),
    (IPA_QUEUE_DEPTH, MetricKind::Gauge),
    (IPA_BATCH_REQUESTS, MetricKind::Histogram),
    (IPA_BATCH_COMMANDS, MetricKind::Histogram),
    (IPA_SHED, MetricKind::Counter),
    (KEYSTONE_CALLS, MetricKind::Counter),
    (NOTIFY_MESSAGES, MetricKind::Counter),
    (NOTIFY_RETRIES, MetricKind::Counter),
    (NOTIFY_CONNECTED, MetricKind::Gauge),
    (BUILD_INFO, MetricKind::Gauge),
    (OWNERSHIP_REFUSALS, MetricKind::Counter),
    (NOTIFY_ACCESS_DENIED, MetricKind::Counter),
    (TOKEN_VALIDATIONS, MetricKind::Counter),
    (TOKEN_CACHE_HITS, MetricKind::Counter),
    (crate::cache::stats::names::HITS, MetricKind::Counter),
    (crate::cache::stats::names::MISSES, MetricKind::Counter),
    (crate::cache::stats::names::COALESCED, MetricKind::Counter),
    (crate::cache::stats::names::EVICTIONS, MetricKind::Counter),
    (crate::cache::stats::names::REPLACED, MetricKind::Counter),
    (crate::cache::stats::names::REFUSED, MetricKind::Counter),
    (
        crate::cache::stats::names::REDIS_ERRORS,
        MetricKind::Counter,
    ),
    (
        crate::cache::stats::names::MEMCACHED_ERRORS,
        MetricKind::Counter,
    ), // Recorded by `novajoin reconcile` (src/cli/reconcile.rs).
    ("novajoin_reconcile_hosts", MetricKind::Gauge),
    ("novajoin_reconcile_removed_total", MetricKind::Counter),
    ("novajoin_reconcile_runs_total", MetricKind::Counter),
    (crate::otp_lifetime::OTPS_ISSUED, MetricKind::Counter),
    (crate::otp_lifetime::OTPS_USED, MetricKind::Counter),
    (crate::otp_lifetime::OTPS_EXPIRED, MetricKind::Counter),
    (
        crate::otp_lifetime::OTP_TO_ENROLLMENT,
        MetricKind::Histogram,
    ),
];

/// Every series name Prometheus can store for the exported metrics
/// (a histogram's `_bucket`, `_sum` and `_count`).
pub fn exported_series() -> Vec<String> {
    EXPORTED
        .iter()
        .flat_map(|(name, kind)| match kind {
            MetricKind::Histogram => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{name}{s}"))
                .collect::<Vec<_>>(),
            _ => vec![name.to_string()],
        })
        .collect()
}

/// Latency buckets (seconds): from a cached answer (a millisecond) to a
/// slow IPA batch near nova's 30 s read timeout.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

// ---- join.conf options ----

/// `[metrics] listen`: the vendordata server's metrics listener.
pub const METRICS_LISTEN: O = O::new(
    "metrics",
    "listen",
    K::Str,
    None,
    "host:port on which `novajoin server` serves Prometheus metrics, e.g. 127.0.0.1:9191. \
     Unset: no metrics endpoint. It is a separate listener, not part of the request pipeline: \
     keep it on loopback or a management network.",
);
/// `[metrics] notify_listen`: the notification listener's metrics listener.
pub const METRICS_NOTIFY_LISTEN: O = O::new(
    "metrics",
    "notify_listen",
    K::Str,
    None,
    "host:port on which `novajoin notify` serves Prometheus metrics, e.g. 127.0.0.1:9192. \
     Unset: no metrics endpoint for the listener.",
);
/// `[metrics] path`.
pub const METRICS_PATH: O = O::new(
    "metrics",
    "path",
    K::Str,
    Some("/metrics"),
    "URL path of the metrics endpoint; any other path answers 404.",
);

/// The `[metrics]` group.
pub const METRICS_OPTIONS: OptionGroup = &[METRICS_LISTEN, METRICS_NOTIFY_LISTEN, METRICS_PATH];

/// Which process serves the endpoint (each has its own counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsRole {
    /// `novajoin server`: `[metrics] listen`.
    Server,
    /// `novajoin notify`: `[metrics] notify_listen`.
    Notify,
}

impl MetricsRole {
    fn option(self) -> &'static O {
        match self {
            MetricsRole::Server => &METRICS_LISTEN,
            MetricsRole::Notify => &METRICS_NOTIFY_LISTEN,
        }
    }

    fn label(self) -> &'static str {
        match self {
            MetricsRole::Server => "server",
            MetricsRole::Notify => "notify",
        }
    }
}

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// join.conf is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The socket could not be opened.
    #[error("cannot listen for metrics on {addr}: {source}; check [metrics] {option}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// `listen` or `notify_listen`.
        option: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Where and how the endpoint is served, from join.conf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsSettings {
    /// The listening address.
    pub listen: SocketAddr,
    /// The URL path (starts with `/`).
    pub path: String,
}

impl MetricsSettings {
    /// Reads `[metrics]` for `role`; `None` when the endpoint is off.
    pub fn from_config(cfg: &ConfigFiles, role: MetricsRole) -> Result<Option<Self>, ConfigError> {
        let opt = role.option();
        let Some(raw) = cfg.string(opt).filter(|s| !s.trim().is_empty()) else {
            return Ok(None);
        };
        let bad = |problem: String| {
            let at = cfg.raw(opt);
            ConfigError::BadValue {
                file: at.map(|a| a.file.clone()).unwrap_or_default(),
                line: at.map(|a| a.line).unwrap_or(0),
                group: opt.group.into(),
                option: opt.name.into(),
                problem,
            }
        };
        let listen: SocketAddr = raw.trim().parse().map_err(|_| {
            bad(format!(
                "{raw:?} is not host:port with an IP address (e.g. 127.0.0.1:9191 or [::1]:9191)"
            ))
        })?;
        let path = cfg
            .string(&METRICS_PATH)
            .unwrap_or_else(|| "/metrics".into());
        if !path.starts_with('/') {
            let at = cfg.raw(&METRICS_PATH);
            return Err(ConfigError::BadValue {
                file: at.map(|a| a.file.clone()).unwrap_or_default(),
                line: at.map(|a| a.line).unwrap_or(0),
                group: "metrics".into(),
                option: "path".into(),
                problem: format!("{path:?} must start with '/'"),
            });
        }
        Ok(Some(Self { listen, path }))
    }
}

// ---- the recorder ----

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The exporter as this service configures it: histograms with fixed
/// buckets (constant memory, aggregatable across replicas).
pub fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .expect("bucket list is not empty")
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(
                crate::otp_lifetime::OTP_TO_ENROLLMENT.into(),
            ),
            crate::otp_lifetime::ENROLLMENT_BUCKETS,
        )
        .expect("bucket list is not empty")
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(IPA_BATCH_REQUESTS.into()),
            BATCH_BUCKETS,
        )
        .expect("bucket list is not empty")
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(IPA_BATCH_COMMANDS.into()),
            BATCH_BUCKETS,
        )
        .expect("bucket list is not empty")
}

/// Batch size buckets (requests or commands per IPA call).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0];

/// Installs the process-wide recorder (once) and returns its handle.
pub fn install(role: MetricsRole) -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = builder()
                .install_recorder()
                .expect("no other metrics recorder is installed");
            describe();
            gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "role" => role.label())
                .set(1.0);
            handle
        })
        .clone()
}

/// Registers HELP texts for every metric this service records.
pub fn describe() {
    describe_counter!(
        crate::otp_lifetime::OTPS_ISSUED,
        "Enrollment OTPs set in IPA by the join handler."
    );
    describe_counter!(
        crate::otp_lifetime::OTPS_USED,
        "Enrollment OTPs a guest enrolled with (counted by the listener's OTP sweep)."
    );
    describe_counter!(
        crate::otp_lifetime::OTPS_EXPIRED,
        "Enrollment OTPs nobody used within [DEFAULT] otp_lifetime, replaced in IPA by the \
         listener's OTP sweep."
    );
    describe_histogram!(
        crate::otp_lifetime::OTP_TO_ENROLLMENT,
        metrics::Unit::Seconds,
        "Time from an OTP's issue to the host's enrollment with it."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route (join, healthcheck, other), method and status code."
    );
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "Time from request received to response ready, by route and status code."
    );
    describe_counter!(
        CACHE_LOOKUPS,
        "Response cache outcomes for join requests: hit, miss, coalesced, bypass."
    );
    describe_counter!(
        IPA_CALLS,
        "IPA JSON-RPC calls made (a batch counts once), by command."
    );
    describe_counter!(
        IPA_ERRORS,
        "IPA calls that failed, by command and error kind (not_found is part of the normal \
         host_mod-then-host_add sequence)."
    );
    describe_counter!(
        IPA_FAILOVERS,
        "Times IPA calls moved to another IPA server (replica) after the current one failed, \
         by the server they moved to."
    );
    describe_histogram!(
        IPA_DURATION,
        metrics::Unit::Seconds,
        "IPA call latency including retries, by command."
    );
    describe_gauge!(
        IPA_QUEUE_DEPTH,
        "Enrollments waiting for an IPA call slot ([ipa] max_concurrent_calls)."
    );
    describe_histogram!(
        IPA_BATCH_REQUESTS,
        "Enrollments (requests) carried by one IPA call from the queue ([ipa] batch_max)."
    );
    describe_histogram!(
        IPA_BATCH_COMMANDS,
        "IPA commands carried by one call from the queue ([ipa] batch_max)."
    );
    describe_counter!(
        IPA_SHED,
        "Enrollments answered 503 with Retry-After at once because the queue for IPA could not \
         serve them within [ipa] queue_deadline, by reason: estimate (refused on arrival), \
         waited (taken out of the queue at its deadline)."
    );
    describe_counter!(
        KEYSTONE_CALLS,
        "HTTP requests sent to keystone (service token, token validation, project lookup), \
         by response status; 'error' when no response came back."
    );
    describe_counter!(
        NOTIFY_MESSAGES,
        "Notifications taken off the queue, by outcome: handled, ignored (not for novajoin), \
         requeued (given back to the broker), rejected (can never be handled)."
    );
    describe_counter!(
        NOTIFY_RETRIES,
        "Notification handling attempts that failed for a transient reason and were retried."
    );
    describe_gauge!(
        NOTIFY_CONNECTED,
        "1 while the notification listener is connected to the broker, else 0."
    );
    describe_counter!(
        OWNERSHIP_REFUSALS,
        "Changes to IPA refused because the host belongs to another instance or was not created \
         by novajoin, by where the change was asked (join, delete, update, floating_ip)."
    );
    describe_counter!(
        NOTIFY_ACCESS_DENIED,
        "IPA calls of the notification listener refused by IPA's access controls (ACIError): \
         the service's privilege is missing something."
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; labels name the version and process role."
    );
}

// ---- recording ----

/// The `route` label for a request path: a fixed word, never the path.
pub fn route_label(path: &str) -> &'static str {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "v1" => "join",
        "healthcheck" => "healthcheck",
        _ => "other",
    }
}

/// The `method` label's values; [`method_index`] says which one a method gets.
const METHOD_LABELS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "other",
];

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::OPTIONS => 5,
        Method::PATCH => 6,
        _ => 7,
    }
}

fn method_label(method: &Method) -> &'static str {
    METHOD_LABELS[method_index(method)]
}

/// Records one answered request: count and latency by status, and the
/// cache outcome when the response cache took part.
pub fn record_request(
    path: &str,
    method: &Method,
    status: StatusCode,
    latency: Duration,
    cache: Option<CacheOutcome>,
) {
    let route = route_label(path);
    let status = status_label(status);
    counter!(HTTP_REQUESTS, "route" => route, "method" => method_label(method), "status" => status.clone())
        .increment(1);
    histogram!(HTTP_DURATION, "route" => route, "status" => status).record(latency.as_secs_f64());
    if let Some(outcome) = cache {
        counter!(CACHE_LOOKUPS, "outcome" => cache_label(outcome)).increment(1);
    }
}

/// The statuses this service answers with.
const KNOWN_STATUSES: [&str; 12] = [
    "200", "204", "400", "401", "403", "404", "405", "413", "415", "500", "502", "503",
];

/// The `status` label: the statuses this service answers with are static
/// strings (no allocation per request); any other is formatted.
fn status_label(status: StatusCode) -> metrics::SharedString {
    match KNOWN_STATUSES.iter().find(|k| **k == status.as_str()) {
        Some(k) => metrics::SharedString::const_str(k),
        None => status.as_str().to_string().into(),
    }
}

/// The word the access log and the `outcome` label use for a cache outcome.
pub fn cache_label(outcome: CacheOutcome) -> &'static str {
    match outcome {
        CacheOutcome::Hit => "hit",
        CacheOutcome::Miss => "miss",
        CacheOutcome::Coalesced => "coalesced",
        CacheOutcome::Bypass => "bypass",
    }
}

/// Records one IPA call (`method` is the JSON-RPC command, or `batch`).
pub fn ipa_call(method: &str, elapsed: Duration, error: Option<&IpaError>) {
    let method = method.to_string();
    counter!(IPA_CALLS, "method" => method.clone()).increment(1);
    histogram!(IPA_DURATION, "method" => method.clone()).record(elapsed.as_secs_f64());
    if let Some(e) = error {
        counter!(IPA_ERRORS, "method" => method, "kind" => ipa_error_kind(e)).increment(1);
    }
}

/// IPA calls moved to `server` (its FQDN) from a failing one.
pub fn ipa_failover(server: &str) {
    counter!(IPA_FAILOVERS, "server" => server.to_string()).increment(1);
}

/// The number of enrollments waiting for an IPA call slot.
pub fn ipa_queue_depth(depth: usize) {
    gauge!(IPA_QUEUE_DEPTH).set(depth as f64);
}

/// One IPA call from the queue carrying `requests` enrollments of
/// `commands` commands in all.
pub fn ipa_batch(requests: usize, commands: usize) {
    histogram!(IPA_BATCH_REQUESTS).record(requests as f64);
    histogram!(IPA_BATCH_COMMANDS).record(commands as f64);
}

/// An enrollment refused because the queue for IPA could not serve it in
/// time; `reason` is `estimate` or `waited`.
pub fn ipa_shed(reason: &'static str) {
    counter!(IPA_SHED, "reason" => reason).increment(1);
}

/// A short, fixed name for an IPA error's class.
pub fn ipa_error_kind(e: &IpaError) -> &'static str {
    match e {
        IpaError::NotFound(_) => "not_found",
        IpaError::DuplicateEntry(_) => "duplicate_entry",
        IpaError::Validation(_) => "validation",
        IpaError::EmptyModlist(_) => "empty_modlist",
        IpaError::AttrValueNotFound(_) => "attr_value_not_found",
        IpaError::AccessDenied(_) => "access_denied",
        IpaError::DnsNotARecord(_) => "dns_not_a_record",
        IpaError::Version(_) => "version",
        IpaError::UnknownOption(_) => "unknown_option",
        IpaError::Referer(_) => "referer",
        IpaError::Remote(_) => "remote",
        IpaError::LoginRejected { .. } => "login_rejected",
        IpaError::Unauthorized { .. } => "unauthorized",
        IpaError::Http { .. } => "http",
        IpaError::Unreachable { .. } => "unreachable",
        IpaError::Timeout(_) => "timeout",
        IpaError::Protocol(_) => "protocol",
        IpaError::Kerberos(_) => "kerberos",
        IpaError::Setup(_) => "setup",
        IpaError::Overloaded { .. } => "overloaded",
    }
}

/// A change refused because the IPA object is not the instance's;
/// `action` is a fixed word (join, delete, update, floating_ip).
pub fn ownership_refused(action: &'static str) {
    counter!(OWNERSHIP_REFUSALS, "action" => action).increment(1);
}

/// Records one HTTP request sent to keystone: `Some(status)` for an
/// answer, `None` when it failed before one came back.
pub fn keystone_call(status: Option<u16>) {
    let status = match status {
        Some(s) => s.to_string(),
        None => "error".to_string(),
    };
    counter!(KEYSTONE_CALLS, "status" => status).increment(1);
}

// ---- the endpoint ----

/// The content type of the Prometheus text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often recorded histogram samples are folded into their buckets.
/// The exporter queues every sample until then; without this, a server
/// nobody scrapes would grow by 8 bytes per request forever.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// A running metrics endpoint; stops when dropped.
pub struct MetricsEndpoint {
    /// The bound address (useful when the port was 0).
    pub local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Installs the recorder and starts the endpoint when join.conf asks for
/// one; `Ok(None)` when `[metrics]` leaves it off.
pub async fn start_from_config(
    cfg: &ConfigFiles,
    role: MetricsRole,
) -> Result<Option<MetricsEndpoint>, MetricsError> {
    let Some(settings) = MetricsSettings::from_config(cfg, role)? else {
        return Ok(None);
    };
    let handle = install(role);
    let listener =
        TcpListener::bind(settings.listen)
            .await
            .map_err(|source| MetricsError::Listen {
                addr: settings.listen,
                option: role.option().name,
                source,
            })?;
    let endpoint = serve(listener, settings.path.clone(), handle)?;
    tracing::info!(listen = %endpoint.local_addr, path = %settings.path, "metrics endpoint ready");
    Ok(Some(endpoint))
}

/// Serves `handle`'s metrics on `listener` at `path` until dropped.
pub fn serve(
    listener: TcpListener,
    path: String,
    handle: PrometheusHandle,
) -> Result<MetricsEndpoint, MetricsError> {
    let local_addr = listener
        .local_addr()
        .map_err(|source| MetricsError::Listen {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            option: "listen",
            source,
        })?;
    let path = std::sync::Arc::new(path);
    let task = tokio::spawn(async move {
        let builder = auto::Builder::new(TokioExecutor::new());
        let mut upkeep = tokio::time::interval(UPKEEP_INTERVAL);
        upkeep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let accepted = tokio::select! {
                _ = upkeep.tick() => {
                    handle.run_upkeep();
                    continue;
                }
                accepted = listener.accept() => accepted,
            };
            let (io, _) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let handle = handle.clone();
            let path = path.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let resp = answer(&req, &path, &handle);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = builder.serve_connection(TokioIo::new(io), svc).into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    Ok(MetricsEndpoint { local_addr, task })
}

/// The endpoint's answer to one request.
pub fn answer<B>(req: &Request<B>, path: &str, handle: &PrometheusHandle) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if req.uri().path() != path {
        return plain(
            StatusCode::NOT_FOUND,
            "not found; metrics are at the configured [metrics] path\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    handle.run_upkeep();
    let body = if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(handle.render())
    };
    let mut r = Response::new(Full::new(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `"novajoin_..."` name written in the source is in [`EXPORTED`]
    /// (so rules and dashboards checked against it cannot miss one).
    #[test]
    fn the_exported_list_is_complete() {
        let re = regex::Regex::new(r#""(novajoin_[a-z0-9_]+)""#).unwrap();
        let mut known = exported_series();
        known.extend(EXPORTED.iter().map(|(n, _)| n.to_string()));
        let mut stack = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for c in re.captures_iter(&text) {
                        let name = &c[1];
                        // The notification topic, not a metric.
                        if name == "novajoin_notifications" {
                            continue;
                        }
                        assert!(
                            known.iter().any(|k| k == name),
                            "{name} ({}) is not in EXPORTED: add it there (alerting rules and the \
                             dashboard are checked against that list)",
                            path.display()
                        );
                    }
                }
            }
        }
        assert!(
            exported_series().contains(&"novajoin_ipa_call_duration_seconds_bucket".to_string())
        );
    }

    #[test]
    fn status_labels_are_the_status_codes() {
        for code in [200u16, 413, 503, 418, 599] {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(&*status_label(status), code.to_string());
        }
    }

    /// What a fresh recorder renders after `f` ran under it.
    pub(super) fn render_with(f: impl FnOnce()) -> String {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            f();
        });
        handle.render()
    }

    fn sample(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn routes_are_fixed_words() {
        assert_eq!(route_label("/v1"), "join");
        assert_eq!(route_label("/v1/"), "join");
        assert_eq!(route_label("/healthcheck"), "healthcheck");
        assert_eq!(route_label("/etc/passwd"), "other");
        assert_eq!(route_label("/v1x"), "other");
    }

    #[test]
    fn requests_are_counted_by_status_with_a_histogram() {
        let text = render_with(|| {
            for _ in 0..3 {
                record_request(
                    "/v1/",
                    &Method::POST,
                    StatusCode::OK,
                    Duration::from_millis(20),
                    Some(CacheOutcome::Miss),
                );
            }
            record_request(
                "/v1/",
                &Method::POST,
                StatusCode::OK,
                Duration::from_micros(500),
                Some(CacheOutcome::Hit),
            );
            record_request(
                "/nowhere",
                &Method::GET,
                StatusCode::NOT_FOUND,
                Duration::from_millis(1),
                None,
            );
        });
        assert_eq!(
            sample(
                &text,
                "novajoin_http_requests_total{route=\"join\",method=\"POST\",status=\"200\"}"
            ),
            Some(4.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "novajoin_http_requests_total{route=\"other\",method=\"GET\",status=\"404\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "novajoin_http_request_duration_seconds_bucket{route=\"join\",status=\"200\",le=\"0.001\"}"
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "novajoin_http_request_duration_seconds_count{route=\"join\",status=\"200\"}"
            ),
            Some(4.0)
        );
        assert_eq!(
            sample(&text, "novajoin_cache_lookups_total{outcome=\"miss\"}"),
            Some(3.0)
        );
        assert_eq!(
            sample(&text, "novajoin_cache_lookups_total{outcome=\"hit\"}"),
            Some(1.0)
        );
        assert!(text.contains("# TYPE novajoin_http_request_duration_seconds histogram"));
        assert!(text.contains("# HELP novajoin_http_requests_total"));
    }

    #[test]
    fn ipa_and_keystone_calls() {
        let text = render_with(|| {
            ipa_call("host_mod", Duration::from_millis(3), None);
            ipa_call(
                "host_mod",
                Duration::from_millis(3),
                Some(&IpaError::Timeout(Duration::from_secs(1))),
            );
            keystone_call(Some(201));
            keystone_call(None);
        });
        assert_eq!(
            sample(&text, "novajoin_ipa_calls_total{method=\"host_mod\"}"),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                "novajoin_ipa_call_errors_total{method=\"host_mod\",kind=\"timeout\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "novajoin_keystone_calls_total{status=\"201\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "novajoin_keystone_calls_total{status=\"error\"}"),
            Some(1.0)
        );
    }

    #[test]
    fn endpoint_answers_only_its_path_and_get() {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || keystone_call(Some(200)));
        let get = |m: Method, p: &str| {
            answer(
                &Request::builder().method(m).uri(p).body(()).unwrap(),
                "/metrics",
                &handle,
            )
        };
        let ok = get(Method::GET, "/metrics");
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(get(Method::GET, "/v1/").status(), 404);
        assert_eq!(get(Method::POST, "/metrics").status(), 405);
    }

    #[test]
    fn settings_from_join_conf() {
        let mut cfg = ConfigFiles::default();
        cfg.add_text(
            std::path::Path::new("join.conf"),
            "[metrics]\nlisten = 127.0.0.1:9191\npath = /prom\n",
        )
        .unwrap();
        let s = MetricsSettings::from_config(&cfg, MetricsRole::Server)
            .unwrap()
            .unwrap();
        assert_eq!(s.listen, "127.0.0.1:9191".parse().unwrap());
        assert_eq!(s.path, "/prom");
        assert!(MetricsSettings::from_config(&cfg, MetricsRole::Notify)
            .unwrap()
            .is_none());

        let mut bad = ConfigFiles::default();
        bad.add_text(
            std::path::Path::new("join.conf"),
            "[metrics]\nlisten = localhost\n",
        )
        .unwrap();
        let e = MetricsSettings::from_config(&bad, MetricsRole::Server).unwrap_err();
        assert!(
            e.to_string().contains("join.conf:2: [metrics] listen"),
            "{e}"
        );
    }
}
