//! [`IpaClient`]: JSON-RPC over HTTPS to `/ipa/session/json` with the
//! `ipa_session` cookie.
//!
//! * Logs in on first use ([`IpaAuth`]) and keeps the cookie in memory. On
//!   401 it drops the cookie, logs in again once and repeats the call; a
//!   second 401 is an error. Concurrent callers share one login.
//! * Sends `Referer: https://<server fqdn>/ipa` and `version` on every call
//!   (batch sub-calls inherit the batch's version, as IPA defines).
//! * Several servers ([`ServerPool`]): a connection failure or a 5xx goes
//!   to the next server at once; when every server failed, the round starts
//!   again after a back-off, `connect_retries` times (bounded by
//!   `retry_backoff_max`); the whole call, including waiting for a slot,
//!   failovers, retries and back-off, is bounded by `timeout`. A timeout is
//!   not retried. Each server keeps its own session; see [`super::servers`].
//! * An enrollment ([`IpaClient::enroll`]) that exceeds `timeout` is not
//!   cut off: the caller gets [`IpaError::Timeout`], the call goes on for up
//!   to `detached_call_timeout`, and the next enrollment of the same host
//!   waits for it ([`HostLocks`]), so that a late answer can never replace
//!   an OTP handed out since.
//! * At most `max_concurrent_calls` round trips are in flight.
//! * Redirects are not followed: IPA redirects requests that do not use its
//!   FQDN, and a followed POST would be lost.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::header::{ACCEPT, COOKIE, REFERER};
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use super::auth::IpaAuth;
use super::batcher::{BatchSender, CallQueue, CallResult, QueueSettings};
use super::command::{
    CommandOutput, DnsRecordEntry, HostEntry, IpaCommand, MemberAddResult, NewHost, ServiceEntry,
};
use super::discovery::DiscoveryConfig;
use super::error::IpaError;
use super::health::IpaHealth;
use super::host_lock::HostLocks;
use super::http::{
    cookie_header, error_chain, http_error, is_transient_status, json_content_type,
    rejection_reason, AttemptError, Endpoints,
};
use super::secret::Secret;
use super::servers::{BreakerPolicy, Server, ServerAddr, ServerPool, ServerSource};
use super::wire;

/// The API version novajoin always sent (IPA 4.2); every IPA since accepts it.
pub const DEFAULT_API_VERSION: &str = "2.146";

/// Everything the client needs; see [`IpaClientConfig::from_conf_with`] for
/// join.conf.
#[derive(Clone, Debug)]
pub struct IpaClientConfig {
    /// The IPA URL (`https://ipa.example.com/ipa/json` or any URL on the server).
    pub url: Url,
    /// The server's FQDN for the Referer; `None` uses the URL's host.
    pub server_fqdn: Option<String>,
    /// The Kerberos realm (for service principals), when known.
    pub realm: Option<String>,
    /// How to log in.
    pub auth: IpaAuth,
    /// CA bundle (PEM) that signs IPA's certificate; `None` uses the
    /// built-in web roots (only sensible for tests over plain http).
    pub ca_file: Option<PathBuf>,
    /// The `version` option sent with every call.
    pub api_version: String,
    /// Bound on one call: waiting for a slot, login, retries and back-off.
    pub timeout: Duration,
    /// How long an enrollment call may go on after its caller stopped
    /// waiting (`timeout`). At least `timeout`.
    pub detached_call_timeout: Duration,
    /// Extra rounds over the servers after every server failed to connect
    /// or answered a 5xx.
    pub connect_retries: u32,
    /// First back-off pause; doubles on each retry.
    pub retry_backoff: Duration,
    /// Longest back-off pause.
    pub retry_backoff_max: Duration,
    /// Cap on round trips in flight from this client.
    pub max_concurrent_calls: usize,
    /// Where `url` came from.
    pub url_source: ServerSource,
    /// More servers after `url`, in order (replicas).
    pub replicas: Vec<ServerAddr>,
    /// Where to find more servers in DNS, when on.
    pub discovery: Option<DiscoveryConfig>,
    /// When a failing server is tried last.
    pub breaker: BreakerPolicy,
    /// How enrollments waiting for a slot are combined and when they are
    /// refused ([`CallQueue`]).
    pub queue: QueueSettings,
}

impl IpaClientConfig {
    /// A configuration with the documented defaults.
    pub fn new(url: Url, auth: IpaAuth) -> Self {
        Self {
            url,
            server_fqdn: None,
            realm: None,
            auth,
            ca_file: None,
            api_version: DEFAULT_API_VERSION.to_string(),
            timeout: Duration::from_secs(20),
            detached_call_timeout: Duration::from_secs(300),
            connect_retries: 2,
            retry_backoff: Duration::from_millis(500),
            retry_backoff_max: Duration::from_secs(8),
            max_concurrent_calls: 16,
            url_source: ServerSource::Configured,
            replicas: Vec::new(),
            discovery: None,
            breaker: BreakerPolicy::default(),
            queue: QueueSettings::default(),
        }
    }

    /// Every configured server, `url` first.
    pub fn server_addrs(&self) -> Vec<ServerAddr> {
        let first = ServerAddr {
            url: self.url.clone(),
            fqdn: self.server_fqdn.clone(),
            source: self.url_source,
        };
        std::iter::once(first)
            .chain(self.replicas.iter().cloned())
            .collect()
    }

    /// This configuration for one of its servers only (no replicas, no
    /// discovery): what the status report checks each server with.
    pub fn for_server(&self, addr: &ServerAddr) -> Self {
        let mut one = self.clone();
        one.url = addr.url.clone();
        one.server_fqdn = addr.fqdn.clone();
        one.url_source = addr.source;
        one.replicas.clear();
        one.discovery = None;
        one
    }
}

struct Inner {
    http: reqwest::Client,
    cfg: IpaClientConfig,
    endpoints: Endpoints,
    servers: ServerPool,
    slots: Arc<Semaphore>,
    queue: CallQueue,
    host_locks: HostLocks,
    health: IpaHealth,
}

/// A client for one IPA deployment (its servers). Cheap to clone; clones
/// share the sessions, the connection pool and the concurrency cap.
#[derive(Clone)]
pub struct IpaClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for IpaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpaClient")
            .field("url", &self.inner.endpoints.session_json.as_str())
            .field("auth", &self.inner.cfg.auth.describe())
            .finish()
    }
}

enum Reply {
    Json(bytes::Bytes),
    Unauthorized(String),
}

impl IpaClient {
    /// Builds the client (reads the CA bundle); does not contact IPA.
    pub fn new(cfg: IpaClientConfig) -> Result<Self, IpaError> {
        let endpoints = Endpoints::new(&cfg.url, cfg.server_fqdn.as_deref())?;
        let servers = ServerPool::new(cfg.server_addrs(), cfg.discovery.clone(), cfg.breaker)?;
        if cfg.url.scheme() == "http" {
            // Real IPA redirects plain http to https; only the test double
            // answers it, and the password would cross the network in clear.
            tracing::warn!(url = %cfg.url, "IPA URL uses plain http: acceptable only for the IPA test double");
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            // Apache closes idle keep-alive connections after 30 s; drop
            // ours first rather than reuse a socket that is being closed.
            .pool_idle_timeout(Duration::from_secs(25))
            .connect_timeout(connect_timeout(&cfg))
            // The per-call bound is applied around the call (`timeout` or,
            // for a detached enrollment, `detached_call_timeout`).
            .timeout(cfg.detached_call_timeout.max(cfg.timeout))
            .gzip(true)
            .user_agent(concat!("novajoin/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                IpaError::Setup(format!(
                    "cannot read the IPA CA bundle {}: {e} ([ipa] ca_file)",
                    path.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                IpaError::Setup(format!(
                    "{} is not a PEM certificate bundle: {e} ([ipa] ca_file)",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(IpaError::Setup(format!(
                    "{} holds no certificate ([ipa] ca_file)",
                    path.display()
                )));
            }
            builder = builder.tls_built_in_root_certs(false);
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder
            .build()
            .map_err(|e| IpaError::Setup(error_chain(&e)))?;
        let slots = Arc::new(Semaphore::new(cfg.max_concurrent_calls.max(1)));
        let queue = CallQueue::new(slots.clone(), cfg.max_concurrent_calls, cfg.queue);
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                cfg,
                endpoints,
                servers,
                slots,
                queue,
                host_locks: HostLocks::default(),
                health: IpaHealth::default(),
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &IpaClientConfig {
        &self.inner.cfg
    }

    /// The endpoints and Referer of the first configured server.
    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }

    /// The servers, their sessions and breakers.
    pub fn servers(&self) -> &ServerPool {
        &self.inner.servers
    }

    /// The realm, when configured.
    pub fn realm(&self) -> Option<&str> {
        self.inner.cfg.realm.as_deref()
    }

    /// The health probe to register with the `healthcheck` filter: it
    /// reports the outcome of the last round trip without calling IPA.
    pub fn health(&self) -> IpaHealth {
        self.inner.health.clone()
    }

    /// Logs in now (normally done on first use), e.g. to fail fast at start-up.
    pub async fn login(&self) -> Result<(), IpaError> {
        if let Some(server) = self.inner.servers.attempt_order().await.first() {
            let gen = server.session.lock().await.generation;
            self.invalidate(server, gen).await;
        }
        self.ping().await.map(|_| ())
    }

    /// Runs one command.
    pub async fn call(&self, cmd: IpaCommand) -> Result<CommandOutput, IpaError> {
        let mut options = cmd.options().clone();
        options
            .entry("version")
            .or_insert_with(|| json!(self.inner.cfg.api_version));
        let body = wire::request_body(cmd.method(), cmd.args(), &options);
        let started = Instant::now();
        let out = self.round_trip(&body).await;
        crate::metrics::ipa_call(cmd.method(), started.elapsed(), out.as_ref().err());
        log_outcome(&cmd.describe(), started, out.as_ref().map(|_| ()));
        out.map(CommandOutput)
    }

    /// Runs the commands in one `batch` round trip and returns one result
    /// per command, in order. IPA runs them one after another with no
    /// transaction: a failed item does not stop the others and earlier
    /// successes stay. `Err` only when the batch as a whole failed
    /// (transport, auth, version). An empty list costs no round trip.
    pub async fn batch(
        &self,
        cmds: &[IpaCommand],
    ) -> Result<Vec<Result<CommandOutput, IpaError>>, IpaError> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        let body = self.batch_body(cmds);
        let started = Instant::now();
        let out = self.round_trip(&body).await;
        Self::batch_results(cmds, started, out)
    }

    /// Like [`batch`](Self::batch) for the writes to one host: waits for any
    /// earlier write to `host` still running at IPA, then goes through the
    /// [`CallQueue`] (alone, or with other enrollments waiting for a slot).
    /// When IPA takes longer than `timeout` it answers
    /// [`IpaError::Timeout`] while the call goes on (up to
    /// `detached_call_timeout`) holding the host, so that no later write to
    /// it can be overtaken.
    pub(super) async fn batch_for_host(
        &self,
        host: &str,
        cmds: &[IpaCommand],
    ) -> Result<Vec<Result<CommandOutput, IpaError>>, IpaError> {
        let limit = self.inner.cfg.timeout;
        let deadline = tokio::time::Instant::now() + limit;
        let host_guard = tokio::time::timeout_at(deadline, self.inner.host_locks.lock(host))
            .await
            .map_err(|_| {
                tracing::warn!(
                    host,
                    "an earlier enrollment of this host is still running at IPA"
                );
                IpaError::Timeout(limit)
            })?;
        let out = self
            .inner
            .queue
            .run(self, cmds.to_vec(), Some(host_guard), deadline, limit)
            .await;
        if let Err(IpaError::Timeout(_)) = out {
            tracing::warn!(
                host,
                "IPA did not answer within [ipa] timeout; a call already sent goes on in the \
                 background and later enrollments of this host wait for it"
            );
        }
        out
    }

    fn batch_body(&self, cmds: &[IpaCommand]) -> Value {
        let methods: Vec<Value> = cmds
            .iter()
            .map(|c| json!({"method": c.method(), "params": [c.args(), c.options()]}))
            .collect();
        let mut options = Map::new();
        options.insert("version".into(), json!(self.inner.cfg.api_version));
        wire::request_body("batch", &methods, &options)
    }

    fn batch_results(
        cmds: &[IpaCommand],
        started: Instant,
        out: Result<Value, IpaError>,
    ) -> Result<Vec<Result<CommandOutput, IpaError>>, IpaError> {
        crate::metrics::ipa_call("batch", started.elapsed(), out.as_ref().err());
        log_outcome(
            &format!("batch of {}", cmds.len()),
            started,
            out.as_ref().map(|_| ()),
        );
        let mut out = out?;
        let Some(Value::Array(results)) = out.get_mut("results").map(Value::take) else {
            return Err(IpaError::Protocol(
                "batch result has no \"results\" list".into(),
            ));
        };
        if results.len() != cmds.len() {
            return Err(IpaError::Protocol(format!(
                "batch of {} commands returned {} results",
                cmds.len(),
                results.len()
            )));
        }
        let items: Vec<_> = results
            .into_iter()
            .map(|r| wire::parse_batch_item(r).map(CommandOutput))
            .collect();
        for (cmd, item) in cmds.iter().zip(&items) {
            if let Err(e) = item {
                tracing::debug!(command = %cmd.describe(), error = %e, "IPA batch item failed");
            }
        }
        Ok(items)
    }

    // ---- typed helpers ----

    /// `ping`: returns IPA's summary ("IPA server version X. API version 2.N").
    pub async fn ping(&self) -> Result<String, IpaError> {
        let out = self.call(IpaCommand::ping()).await?;
        Ok(out.summary().unwrap_or_default().to_string())
    }

    /// `host_mod userpassword=<otp>`: (re)sets the OTP of an existing host.
    /// `NotFound`: no such host. `Validation`: the host is enrolled.
    pub async fn host_mod_otp(&self, fqdn: &str, otp: &Secret) -> Result<HostEntry, IpaError> {
        let out = self.call(IpaCommand::host_mod_otp(fqdn, otp)).await?;
        host_entry(&out)
    }

    /// `host_add`. `DuplicateEntry` when it exists.
    pub async fn host_add(&self, host: &NewHost) -> Result<HostEntry, IpaError> {
        let out = self.call(IpaCommand::host_add(host)).await?;
        host_entry(&out)
    }

    /// `host_show`. `NotFound` when missing.
    pub async fn host_show(&self, fqdn: &str) -> Result<HostEntry, IpaError> {
        let out = self.call(IpaCommand::host_show(fqdn)).await?;
        host_entry(&out)
    }

    /// `host_show` of each name in one batch: name → entry, `None` when IPA
    /// has no such host. `Err` names the host whose read failed (or the
    /// batch, for a failed round trip).
    pub async fn host_show_many(
        &self,
        names: impl IntoIterator<Item = String>,
    ) -> Result<BTreeMap<String, Option<HostEntry>>, (String, IpaError)> {
        let names: Vec<String> = names
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let cmds: Vec<IpaCommand> = names.iter().map(|n| IpaCommand::host_show(n)).collect();
        let results = self
            .batch(&cmds)
            .await
            .map_err(|e| ("host_show batch".to_string(), e))?;
        let mut out = BTreeMap::new();
        for (name, r) in names.into_iter().zip(results) {
            let entry = match r {
                Ok(o) => match o.entry().and_then(HostEntry::from_entry) {
                    Some(e) => Some(e),
                    None => {
                        let e = IpaError::Protocol("host_show answer has no entry".into());
                        return Err((name, e));
                    }
                },
                Err(IpaError::NotFound(_)) => None,
                Err(e) => return Err((name, e)),
            };
            out.insert(name, entry);
        }
        Ok(out)
    }

    /// `host_find nshardwareplatform=<binding>`: the hosts bound to one
    /// owner in one role.
    pub async fn hosts_bound(&self, binding: &str) -> Result<Vec<HostEntry>, IpaError> {
        let out = self.call(IpaCommand::host_find_bound(binding)).await?;
        Ok(out
            .entries()
            .iter()
            .filter_map(|e| e.as_object().and_then(HostEntry::from_entry))
            .collect())
    }

    /// `host_find fqdn=<fqdn>`: whether the host exists.
    pub async fn host_exists(&self, fqdn: &str) -> Result<bool, IpaError> {
        Ok(self.call(IpaCommand::host_find_fqdn(fqdn)).await?.count() > 0)
    }

    /// `host_disable`: revokes the host's enrollment (keys, certificates).
    /// `Ok(false)` when it had none (IPA's `AlreadyInactive`, 4010).
    pub async fn host_disable(&self, fqdn: &str) -> Result<bool, IpaError> {
        match self.call(IpaCommand::host_disable(fqdn)).await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some(4010) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `host_del` (IPA also deletes the host's services). `NotFound` when missing.
    pub async fn host_del(&self, fqdn: &str, updatedns: bool) -> Result<(), IpaError> {
        self.call(IpaCommand::host_del(fqdn, updatedns))
            .await
            .map(|_| ())
    }

    /// `service_add force=true`. `DuplicateEntry` when it exists.
    pub async fn service_add(&self, principal: &str) -> Result<ServiceEntry, IpaError> {
        let out = self.call(IpaCommand::service_add(principal)).await?;
        service_entry(&out)
    }

    /// `service_add_host host=[hosts]`.
    pub async fn service_add_host(
        &self,
        principal: &str,
        hosts: &[String],
    ) -> Result<MemberAddResult, IpaError> {
        Ok(self
            .call(IpaCommand::service_add_host(principal, hosts))
            .await?
            .member_result())
    }

    /// `service_remove_host host=[hosts]`.
    pub async fn service_remove_host(
        &self,
        principal: &str,
        hosts: &[String],
    ) -> Result<MemberAddResult, IpaError> {
        Ok(self
            .call(IpaCommand::service_remove_host(principal, hosts))
            .await?
            .member_result())
    }

    /// `service_show`. `NotFound` when missing.
    pub async fn service_show(&self, principal: &str) -> Result<ServiceEntry, IpaError> {
        let out = self.call(IpaCommand::service_show(principal)).await?;
        service_entry(&out)
    }

    /// `service_find man_by_host=<host>`: the principals (with realm) the
    /// host manages.
    pub async fn service_find_managed_by(&self, host: &str) -> Result<Vec<String>, IpaError> {
        let out = self.call(IpaCommand::service_find_managed_by(host)).await?;
        Ok(out
            .entries()
            .iter()
            .filter_map(|e| e.as_object().and_then(ServiceEntry::from_entry))
            .map(|s| s.krbprincipalname.first().cloned().unwrap_or(s.principal))
            .collect())
    }

    /// `service_del`. `NotFound` when missing.
    pub async fn service_del(&self, principal: &str) -> Result<(), IpaError> {
        self.call(IpaCommand::service_del(principal))
            .await
            .map(|_| ())
    }

    /// `dnsrecord_add <zone> <name> a_part_ip_address=<ip>`. `EmptyModlist`
    /// when the value is already there.
    pub async fn dnsrecord_add_a(&self, zone: &str, name: &str, ip: &str) -> Result<(), IpaError> {
        self.call(IpaCommand::dnsrecord_add_a(zone, name, ip))
            .await
            .map(|_| ())
    }

    /// `dnsrecord_find <zone> arecord=<ip>`: the names holding that A value.
    pub async fn dnsrecord_find_a(
        &self,
        zone: &str,
        ip: &str,
    ) -> Result<Vec<DnsRecordEntry>, IpaError> {
        let out = self.call(IpaCommand::dnsrecord_find_a(zone, ip)).await?;
        Ok(out
            .entries()
            .iter()
            .filter_map(|e| e.as_object().and_then(DnsRecordEntry::from_entry))
            .collect())
    }

    /// `dnsrecord_show <zone> <name>`. `NotFound` when the name (or the
    /// zone) does not exist.
    pub async fn dnsrecord_show(&self, zone: &str, name: &str) -> Result<DnsRecordEntry, IpaError> {
        let out = self.call(IpaCommand::dnsrecord_show(zone, name)).await?;
        out.entry()
            .and_then(DnsRecordEntry::from_entry)
            .ok_or_else(|| IpaError::Protocol("dnsrecord_show returned no record entry".into()))
    }

    /// `dnsrecord_add <zone> <name> txtrecord=<text>`. `EmptyModlist` when
    /// the value is already there.
    pub async fn dnsrecord_add_txt(
        &self,
        zone: &str,
        name: &str,
        text: &str,
    ) -> Result<(), IpaError> {
        self.call(IpaCommand::dnsrecord_add_txt(zone, name, text))
            .await
            .map(|_| ())
    }

    /// `dnsrecord_del <zone> <name> txtrecord=<text>`. `AttrValueNotFound`
    /// when the value is not there, `NotFound` when the name is not.
    pub async fn dnsrecord_del_txt(
        &self,
        zone: &str,
        name: &str,
        text: &str,
    ) -> Result<(), IpaError> {
        self.call(IpaCommand::dnsrecord_del_txt(zone, name, text))
            .await
            .map(|_| ())
    }

    /// `dnsrecord_del <zone> <name> del_all=true`. `NotFound` when missing.
    pub async fn dnsrecord_del_all(&self, zone: &str, name: &str) -> Result<(), IpaError> {
        self.call(IpaCommand::dnsrecord_del_all(zone, name))
            .await
            .map(|_| ())
    }

    /// `dnsrecord_del <zone> <name> arecord=<ip>`. `AttrValueNotFound` when
    /// the value is not there.
    pub async fn dnsrecord_del_a(&self, zone: &str, name: &str, ip: &str) -> Result<(), IpaError> {
        self.call(IpaCommand::dnsrecord_del_a(zone, name, ip))
            .await
            .map(|_| ())
    }

    // ---- transport ----

    async fn round_trip(&self, body: &Value) -> Result<Value, IpaError> {
        self.bounded(
            self.inner.cfg.timeout,
            self.round_trip_within_deadline(body),
        )
        .await
    }

    /// Runs one round trip within `limit` (a timeout anywhere inside is
    /// reported as this limit) and records the outcome for the health check.
    async fn bounded(
        &self,
        limit: Duration,
        call: impl std::future::Future<Output = Result<Value, IpaError>>,
    ) -> Result<Value, IpaError> {
        let out = match tokio::time::timeout(limit, call).await {
            Ok(Err(IpaError::Timeout(_))) | Err(_) => Err(IpaError::Timeout(limit)),
            Ok(r) => r,
        };
        self.inner.health.record(&out);
        out
    }

    async fn round_trip_within_deadline(&self, body: &Value) -> Result<Value, IpaError> {
        let slot = self
            .inner
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| IpaError::Setup("client closed".into()))?;
        self.exchange(body, slot).await
    }

    /// Sends `body` with failover and retries, holding `_slot` (one of the
    /// `max_concurrent_calls`) throughout. A round tries each server once
    /// (a server whose breaker is open last); a connection failure or 5xx
    /// moves on to the next server; after a round in which every server
    /// failed, the next round starts after a back-off, `connect_retries`
    /// times.
    async fn exchange(&self, body: &Value, _slot: OwnedSemaphorePermit) -> Result<Value, IpaError> {
        let bytes = bytes::Bytes::from(
            serde_json::to_vec(body).map_err(|e| IpaError::Protocol(e.to_string()))?,
        );
        let pool = &self.inner.servers;
        let rounds = self.inner.cfg.connect_retries + 1;
        let mut round = 0u32;
        let mut last = String::new();
        let mut last_url = self.inner.endpoints.base.to_string();
        while round < rounds {
            if round > 0 {
                tokio::time::sleep(self.backoff(round)).await;
            }
            round += 1;
            for server in pool.attempt_order().await {
                let ep = server.endpoints();
                match self.attempt(&server, &bytes).await {
                    Ok(body) => {
                        server.record_success();
                        pool.make_current(&server);
                        return wire::parse_response(&body);
                    }
                    Err(AttemptError::Transient(why)) => {
                        server.record_failure(pool.policy(), &why);
                        tracing::debug!(
                            server = %ep.server_fqdn,
                            round,
                            of = rounds,
                            "IPA attempt failed: {why}"
                        );
                        last = format!("{}: {why}", ep.server_fqdn);
                        last_url = ep.base.to_string();
                    }
                    Err(AttemptError::Fatal(e)) => {
                        // The server answered (4xx, a bad body, a timeout):
                        // not a reason to try another one.
                        if !matches!(e, IpaError::Timeout(_)) {
                            server.record_success();
                            pool.make_current(&server);
                        }
                        return Err(e);
                    }
                }
            }
        }
        tracing::warn!(url = %last_url, attempts = rounds, "IPA unreachable: {last}");
        Err(IpaError::Unreachable {
            url: last_url,
            attempts: rounds,
            last,
        })
    }

    /// One request to `server`, logging in again once on 401.
    async fn attempt(
        &self,
        server: &Server,
        bytes: &bytes::Bytes,
    ) -> Result<bytes::Bytes, AttemptError> {
        let mut relogged = false;
        loop {
            let (cookie, generation) = self.session(server).await?;
            match self.post_json(server, bytes.clone(), &cookie).await? {
                Reply::Json(body) => return Ok(body),
                Reply::Unauthorized(detail) => {
                    if relogged {
                        return Err(AttemptError::Fatal(IpaError::Unauthorized { detail }));
                    }
                    tracing::debug!("IPA session rejected ({detail}); logging in again");
                    relogged = true;
                    self.invalidate(server, generation).await;
                }
            }
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let cfg = &self.inner.cfg;
        let exp = cfg
            .retry_backoff
            .saturating_mul(1u32 << (failures - 1).min(16));
        let capped = exp.min(cfg.retry_backoff_max);
        // Up to 25% jitter so that many replicas do not retry in lock step.
        let jitter = rand::thread_rng().gen_range(0.0..0.25);
        capped
            .mul_f64(1.0 + jitter)
            .min(cfg.retry_backoff_max.max(cfg.retry_backoff))
    }

    /// The current cookie of `server`, logging in first when there is
    /// none. The lock is held during the login so that concurrent callers
    /// share it.
    async fn session(&self, server: &Server) -> Result<(Secret, u64), AttemptError> {
        let mut st = server.session.lock().await;
        if let Some(c) = &st.cookie {
            return Ok((c.clone(), st.generation));
        }
        let started = Instant::now();
        let cookie = self
            .inner
            .cfg
            .auth
            .login(&self.inner.http, server.endpoints())
            .await?;
        st.generation += 1;
        st.cookie = Some(cookie.clone());
        tracing::info!(
            server = %server.endpoints().server_fqdn,
            auth = %self.inner.cfg.auth.describe(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "logged in to IPA"
        );
        Ok((cookie, st.generation))
    }

    async fn invalidate(&self, server: &Server, generation: u64) {
        let mut st = server.session.lock().await;
        if st.generation == generation {
            st.cookie = None;
        }
    }

    async fn post_json(
        &self,
        server: &Server,
        body: bytes::Bytes,
        cookie: &Secret,
    ) -> Result<Reply, AttemptError> {
        let ep = server.endpoints();
        let (ct, ctv) = json_content_type();
        let mut req = self
            .inner
            .http
            .post(ep.session_json.clone())
            .header(REFERER, &ep.referer)
            .header(ct, ctv)
            .header(ACCEPT, "application/json")
            .body(body);
        if let Some(h) = cookie_header(cookie) {
            req = req.header(COOKIE, h);
        }
        let resp = req.send().await.map_err(AttemptError::from_send)?;
        let status = resp.status().as_u16();
        match status {
            200 => resp.bytes().await.map(Reply::Json).map_err(|e| {
                AttemptError::Fatal(IpaError::Protocol(format!(
                    "reading the answer: {}",
                    error_chain(&e)
                )))
            }),
            401 => Ok(Reply::Unauthorized(
                rejection_reason(resp.headers())
                    .unwrap_or_else(|| "session missing or expired".into()),
            )),
            s if is_transient_status(s) => {
                Err(AttemptError::Transient(format!("IPA answered HTTP {s}")))
            }
            s => Err(AttemptError::Fatal(http_error(s, ep.session_json.path()))),
        }
    }
}

/// How long a connection to one server may take: the whole `timeout` with
/// one server; with several, a quarter of it (at least 1 s), so that a
/// server whose host is down (its packets dropped, no refusal) leaves time
/// to fail over to the next one.
fn connect_timeout(cfg: &IpaClientConfig) -> Duration {
    if cfg.replicas.is_empty() && cfg.discovery.is_none() {
        cfg.timeout
    } else {
        (cfg.timeout / 4)
            .max(Duration::from_secs(1))
            .min(cfg.timeout)
    }
}

/// The [`CallQueue`] sends its calls through the client's transport.
impl BatchSender for IpaClient {
    fn send(
        &self,
        cmds: Vec<IpaCommand>,
        slot: OwnedSemaphorePermit,
    ) -> futures::future::BoxFuture<'static, CallResult> {
        let client = self.clone();
        let limit = self
            .inner
            .cfg
            .detached_call_timeout
            .max(self.inner.cfg.timeout);
        Box::pin(async move {
            let body = client.batch_body(&cmds);
            let started = Instant::now();
            let out = client.bounded(limit, client.exchange(&body, slot)).await;
            Self::batch_results(&cmds, started, out)
        })
    }
}

fn log_outcome(what: &str, started: Instant, outcome: Result<(), &IpaError>) {
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(()) => tracing::debug!(command = %what, elapsed_ms, "IPA call succeeded"),
        Err(e) => tracing::debug!(command = %what, elapsed_ms, error = %e, "IPA call failed"),
    }
}

fn host_entry(out: &CommandOutput) -> Result<HostEntry, IpaError> {
    out.entry()
        .and_then(HostEntry::from_entry)
        .ok_or_else(|| IpaError::Protocol("host command returned no host entry".into()))
}

fn service_entry(out: &CommandOutput) -> Result<ServiceEntry, IpaError> {
    out.entry()
        .and_then(ServiceEntry::from_entry)
        .ok_or_else(|| IpaError::Protocol("service command returned no service entry".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_servers_leave_time_to_fail_over_when_a_connection_hangs() {
        let url = Url::parse("https://ipa1.example.test/ipa/json").unwrap();
        let mut cfg = IpaClientConfig::new(url, IpaAuth::password("a", Secret::new("b")));
        assert_eq!(connect_timeout(&cfg), Duration::from_secs(20));
        cfg.replicas.push(ServerAddr {
            url: Url::parse("https://ipa2.example.test/ipa/json").unwrap(),
            fqdn: None,
            source: ServerSource::Configured,
        });
        assert_eq!(connect_timeout(&cfg), Duration::from_secs(5));
        cfg.timeout = Duration::from_millis(400);
        assert_eq!(connect_timeout(&cfg), Duration::from_millis(400));
    }
}
