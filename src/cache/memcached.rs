//! The memcached store: entries shared by every replica on the memcached
//! servers of `[cache] memcache_servers`, claims that make one replica at a
//! time compute an instance's answer, and a health probe.
//!
//! Keys (all under the configured prefix), with `<id>` the BLAKE3 hash of
//! the instance id in hex: memcached keys are at most 250 bytes of
//! printable ASCII, and an instance id is up to 255 characters of any kind,
//! so the id goes in hashed (collision-resistant: no instance id can name
//! another's keys):
//! - `<prefix>entry:<id>`: the sealed answer (see [`super::sealing`],
//!   bound to this key), with a memcached expiry of the TTL in whole
//!   seconds (see [`crate::memcache::ttl_seconds`]); the sealed entry
//!   carries its exact end;
//! - `<prefix>claim:<id>`: a random token of the replica computing the
//!   answer, taken with `add` (atomic: only one replica gets it) and an
//!   expiry of `claim_timeout` in whole seconds (at most a second more).
//!   The holder
//!   renews and releases it by CAS, only while it still holds its token.
//!
//! Both keys of an instance live on one server (placed by the hashed id),
//! so a claim granted after a check for the entry is checked against the
//! same server. A claim is only kept after a second look finds no entry,
//! so the holder never recomputes an answer another replica just stored.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::future::BoxFuture;

use super::answer::StoredAnswer;
use super::options::{MemcachedSettings, RedisFailureMode};
use super::redis::now_ms;
use super::sealing::EntrySealer;
use super::shared::{Claim, EntryOrClaim, Fetched, SharedStore, Unavailable};
use super::stats::CacheStats;
use crate::health::{HealthProbe, HealthState};
use crate::memcache::{McError, Memcache};

/// How often the prober pings while a server is down.
const PROBE_WHILE_DOWN: Duration = Duration::from_secs(1);
/// How often the prober pings while every server is up.
const PROBE_WHILE_UP: Duration = Duration::from_secs(5);

/// Which servers are down, as last seen, shared with the health check.
pub struct MemcachedHealth {
    mc: Arc<Memcache>,
    /// Per server: reported down (logged once, cleared when it answers).
    down: Vec<AtomicBool>,
    last_error: Vec<Mutex<String>>,
    mode: RedisFailureMode,
    /// Wakes the prober when a request finds a server down.
    went_down: tokio::sync::Notify,
    last_slow_log_ms: AtomicU64,
}

impl MemcachedHealth {
    fn record_failure(&self, idx: usize, what: &str, err: &McError) {
        match err {
            McError::MarkedDown { .. } => return,
            McError::Slow { .. } => return self.record_slow(idx, what, err),
            McError::Failed { .. } => {}
        }
        *self.last_error[idx]
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = err.to_string();
        if !self.down[idx].swap(true, Ordering::Relaxed) {
            let consequence = match self.mode {
                RedisFailureMode::Local => {
                    "requests for the instances it holds fall back to this process's own cache \
                     (on_redis_failure = local): replicas no longer share those answers, so such an \
                     instance asked of two replicas may get two OTPs until it is back"
                }
                RedisFailureMode::FailClosed => {
                    "answering 503 to enrollment requests for the instances it holds until it is \
                     back (on_redis_failure = fail_closed)"
                }
            };
            tracing::error!(server = %self.mc.addr(idx), operation = what, error = %err,
                "response cache: a memcached server is unreachable; {consequence}");
            self.went_down.notify_one();
        }
    }

    /// A slow reply: that request used the `on_redis_failure` behaviour,
    /// but the server is not reported down. Logged at most every 10 s.
    fn record_slow(&self, idx: usize, what: &str, err: &McError) {
        let now = now_ms();
        let last = self.last_slow_log_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 10_000
            && self
                .last_slow_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(server = %self.mc.addr(idx), operation = what, error = %err,
                "response cache: a memcached reply was too slow ([cache] memcache_socket_timeout); that \
                 request used the on_redis_failure behaviour (further slow replies in the next 10 s are not logged)");
        }
    }

    fn record_success(&self, idx: usize) {
        if self.down[idx].swap(false, Ordering::Relaxed) {
            tracing::warn!(server = %self.mc.addr(idx),
                "response cache: the memcached server is reachable again; replicas share its answers again");
        }
    }

    /// The servers reported down, with their last error.
    pub fn down_servers(&self) -> Vec<(String, String)> {
        (0..self.down.len())
            .filter(|&i| self.down[i].load(Ordering::Relaxed))
            .map(|i| {
                (
                    self.mc.addr(i).to_string(),
                    self.last_error[i]
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone(),
                )
            })
            .collect()
    }
}

/// The health probe registered for the memcached backend.
pub struct MemcachedProbe(pub Arc<MemcachedHealth>);

impl HealthProbe for MemcachedProbe {
    fn name(&self) -> &str {
        "memcached"
    }

    fn check(&self) -> BoxFuture<'_, HealthState> {
        Box::pin(async move {
            let down = self.0.down_servers();
            if down.is_empty() {
                return HealthState::Ok;
            }
            let list: Vec<String> = down.iter().map(|(s, e)| format!("{s} ({e})")).collect();
            let msg = format!(
                "memcached unreachable: {} of {} servers: {}",
                down.len(),
                self.0.down.len(),
                list.join("; ")
            );
            match self.0.mode {
                RedisFailureMode::Local => HealthState::Degraded(format!(
                    "{msg}; the instances they hold use the local cache"
                )),
                RedisFailureMode::FailClosed => HealthState::Failed(format!(
                    "{msg}; enrollment requests for the instances they hold are refused"
                )),
            }
        })
    }
}

/// The memcached side of the cache.
pub struct MemcachedStore {
    mc: Arc<Memcache>,
    sealer: EntrySealer,
    settings: MemcachedSettings,
    health: Arc<MemcachedHealth>,
    stats: Arc<CacheStats>,
}

impl MemcachedStore {
    /// Connects lazily: the service starts while memcached is down, and
    /// says so in its log and health check. Needs a tokio runtime for the
    /// prober (without one, none runs).
    pub fn new(settings: MemcachedSettings, stats: Arc<CacheStats>) -> Arc<Self> {
        let mc = Arc::new(Memcache::new(
            settings.servers.clone(),
            settings.socket_timeout,
            settings.dead_retry,
        ));
        let n = settings.servers.len();
        let health = Arc::new(MemcachedHealth {
            mc: mc.clone(),
            down: (0..n).map(|_| AtomicBool::new(false)).collect(),
            last_error: (0..n).map(|_| Mutex::new(String::new())).collect(),
            mode: settings.on_failure,
            went_down: tokio::sync::Notify::new(),
            last_slow_log_ms: AtomicU64::new(0),
        });
        let store = Arc::new(Self {
            mc,
            sealer: EntrySealer::new(settings.secret_key.as_bytes()),
            settings,
            health,
            stats,
        });
        spawn_prober(Arc::downgrade(&store));
        store
    }

    /// The shared health state.
    pub fn health(&self) -> Arc<MemcachedHealth> {
        self.health.clone()
    }

    /// The servers as one store (the status check pings them).
    pub fn servers(&self) -> &Arc<Memcache> {
        &self.mc
    }

    /// What places an instance's keys on a server, and names them.
    fn route(instance_id: &str) -> String {
        blake3::hash(instance_id.as_bytes()).to_hex().to_string()
    }

    /// The memcached key of an instance's entry.
    pub fn entry_key(&self, instance_id: &str) -> String {
        format!(
            "{}entry:{}",
            self.settings.key_prefix,
            Self::route(instance_id)
        )
    }

    /// The memcached key of an instance's claim.
    pub fn claim_key(&self, instance_id: &str) -> String {
        format!(
            "{}claim:{}",
            self.settings.key_prefix,
            Self::route(instance_id)
        )
    }

    /// Records the outcome of one operation for `instance_id`'s server.
    fn note<T>(
        &self,
        instance_id: &str,
        what: &str,
        r: Result<T, McError>,
    ) -> Result<T, Unavailable> {
        let idx = self.mc.server_for(&Self::route(instance_id));
        match r {
            Ok(v) => {
                self.health.record_success(idx);
                Ok(v)
            }
            Err(e) => {
                if !matches!(e, McError::MarkedDown { .. }) {
                    self.stats.memcached_error();
                }
                self.health.record_failure(idx, what, &e);
                Err(Unavailable(e.to_string()))
            }
        }
    }

    /// Verifies a raw entry read from `key`.
    fn open(&self, instance_id: &str, key: &str, raw: &[u8], report: bool) -> Fetched {
        super::shared::open_entry(
            "memcached",
            &self.sealer,
            &self.stats,
            (instance_id, key, raw),
            report,
        )
    }

    async fn fetch_entry(&self, instance_id: &str, report: bool) -> Result<Fetched, Unavailable> {
        let key = self.entry_key(instance_id);
        let got = self.mc.get(&Self::route(instance_id), &key).await;
        Ok(match self.note(instance_id, "get entry", got)? {
            None => Fetched::Absent,
            Some(item) => self.open(instance_id, &key, &item.value, report),
        })
    }

    async fn add_claim(&self, instance_id: &str) -> Result<Option<Claim>, Unavailable> {
        let key = self.claim_key(instance_id);
        let token = uuid::Uuid::new_v4().simple().to_string();
        let added = self
            .mc
            .add(
                &Self::route(instance_id),
                &key,
                token.as_bytes(),
                self.settings.claim_timeout,
            )
            .await;
        Ok(self.note(instance_id, "add claim", added)?.then(|| Claim {
            key,
            token,
            instance_id: instance_id.to_string(),
        }))
    }

    async fn entry_or_claim_inner(
        &self,
        instance_id: &str,
        report: bool,
    ) -> Result<EntryOrClaim, Unavailable> {
        match self.fetch_entry(instance_id, report).await? {
            Fetched::Absent => {}
            found => return Ok(EntryOrClaim::Entry(found)),
        }
        let Some(claim) = self.add_claim(instance_id).await? else {
            return Ok(EntryOrClaim::Busy);
        };
        // The previous holder may have stored the entry and released its
        // claim between the two steps: look again, so as not to recompute.
        match self.fetch_entry(instance_id, false).await {
            Ok(Fetched::Absent) => Ok(EntryOrClaim::Claimed(claim)),
            Ok(found) => {
                let _ = self.release_inner(&claim).await;
                Ok(EntryOrClaim::Entry(found))
            }
            Err(e) => {
                let _ = self.release_inner(&claim).await;
                Err(e)
            }
        }
    }

    async fn store_inner(
        &self,
        instance_id: &str,
        answer: &StoredAnswer,
        ttl: Duration,
    ) -> Result<(), Unavailable> {
        if ttl.is_zero() {
            return Ok(());
        }
        let key = self.entry_key(instance_id);
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let sealed = self.sealer.seal(&key, answer, now_ms() + ttl_ms);
        let r = self
            .mc
            .set(&Self::route(instance_id), &key, &sealed, ttl)
            .await;
        self.note(instance_id, "set entry", r)
    }

    async fn renew_inner(&self, claim: &Claim) -> Result<bool, Unavailable> {
        let route = Self::route(&claim.instance_id);
        let got = self.mc.get(&route, &claim.key).await;
        let Some(item) = self.note(&claim.instance_id, "get claim", got)? else {
            return Ok(false);
        };
        if item.value != claim.token.as_bytes() {
            return Ok(false);
        }
        let r = self
            .mc
            .touch_if_unchanged(
                &route,
                &claim.key,
                &item.value,
                item.cas,
                self.settings.claim_timeout,
            )
            .await;
        self.note(&claim.instance_id, "renew claim", r)
    }

    async fn release_inner(&self, claim: &Claim) -> Result<(), Unavailable> {
        let route = Self::route(&claim.instance_id);
        let got = self.mc.get(&route, &claim.key).await;
        let held = match self.note(&claim.instance_id, "get claim", got)? {
            Some(item) if item.value == claim.token.as_bytes() => {
                let r = self
                    .mc
                    .delete_if_unchanged(&route, &claim.key, item.cas)
                    .await;
                self.note(&claim.instance_id, "release claim", r)?
            }
            _ => false,
        };
        if !held {
            tracing::warn!(memcached_key = %claim.key,
                "response cache: this replica's claim had expired before it finished computing the answer, \
                 so another replica may have computed it too; raise [cache] claim_timeout if this repeats");
        }
        Ok(())
    }

    /// Pings every server not left alone (see `memcache_dead_retry`);
    /// whether one is reported down afterwards.
    async fn probe_all(&self) -> bool {
        for idx in 0..self.health.down.len() {
            if self.mc.is_marked_down(idx) {
                continue;
            }
            match self.mc.ping(idx).await {
                Ok(()) => self.health.record_success(idx),
                Err(e) => {
                    self.stats.memcached_error();
                    self.health.record_failure(idx, "version", &e);
                }
            }
        }
        self.health.down.iter().any(|d| d.load(Ordering::Relaxed))
    }
}

impl SharedStore for MemcachedStore {
    fn backend(&self) -> &'static str {
        "memcached"
    }

    fn on_failure(&self) -> RedisFailureMode {
        self.settings.on_failure
    }

    fn wait_timeout(&self) -> Duration {
        self.settings.wait_timeout
    }

    fn claim_timeout(&self) -> Duration {
        self.settings.claim_timeout
    }

    fn circuit_open(&self, instance_id: &str) -> bool {
        let idx = self.mc.server_for(&Self::route(instance_id));
        self.mc.is_marked_down(idx)
    }

    fn fetch<'a>(
        &'a self,
        instance_id: &'a str,
        report: bool,
    ) -> BoxFuture<'a, Result<Fetched, Unavailable>> {
        Box::pin(self.fetch_entry(instance_id, report))
    }

    fn entry_or_claim<'a>(
        &'a self,
        instance_id: &'a str,
        report: bool,
    ) -> BoxFuture<'a, Result<EntryOrClaim, Unavailable>> {
        Box::pin(self.entry_or_claim_inner(instance_id, report))
    }

    fn try_claim<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Claim>, Unavailable>> {
        Box::pin(self.add_claim(instance_id))
    }

    fn store<'a>(
        &'a self,
        instance_id: &'a str,
        answer: &'a StoredAnswer,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Unavailable>> {
        Box::pin(self.store_inner(instance_id, answer, ttl))
    }

    fn renew<'a>(&'a self, claim: &'a Claim) -> BoxFuture<'a, Result<bool, Unavailable>> {
        Box::pin(self.renew_inner(claim))
    }

    fn release<'a>(&'a self, claim: &'a Claim) -> BoxFuture<'a, Result<(), Unavailable>> {
        Box::pin(self.release_inner(claim))
    }

    fn evict<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<bool, Unavailable>> {
        Box::pin(async move {
            let r = self
                .mc
                .delete(&Self::route(instance_id), &self.entry_key(instance_id))
                .await;
            self.note(instance_id, "delete entry", r)
        })
    }

    fn health_probe(&self) -> Arc<dyn HealthProbe> {
        Arc::new(MemcachedProbe(self.health()))
    }
}

/// Pings the servers in the background: every second while one is down,
/// every 5 s while all are up, and at once when a request finds one down.
/// Ends when the store is dropped.
fn spawn_prober(store: Weak<MemcachedStore>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        loop {
            let (down, health) = match store.upgrade() {
                Some(s) => (s.probe_all().await, s.health.clone()),
                None => return,
            };
            if down {
                tokio::time::sleep(PROBE_WHILE_DOWN).await;
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(PROBE_WHILE_UP) => {}
                    _ = health.went_down.notified() => {}
                }
            }
        }
    });
}
