//! The Redis store: entries shared by every replica, claims that make one
//! replica at a time compute an instance's answer, and a health probe.
//!
//! Keys (all under the configured prefix):
//! - `<prefix>entry:<instance-id>`: the sealed answer (see [`super::sealing`]),
//!   with a Redis expiry equal to the TTL;
//! - `<prefix>claim:<instance-id>`: a random token of the replica computing
//!   the answer, taken with `SET NX PX claim_timeout`. The holder renews it
//!   while it works and deletes it (only if it still holds it) when done, so
//!   a replica that dies with a claim blocks the instance at most
//!   `claim_timeout`. Other replicas poll for the entry meanwhile.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisError};

use super::answer::StoredAnswer;
use super::options::{RedisFailureMode, RedisSettings};
use super::sealing::EntrySealer;
pub use super::shared::{Claim, EntryOrClaim, Fetched};
use super::shared::{SharedStore, Unavailable};
use super::stats::CacheStats;
use crate::health::{HealthProbe, HealthState};

/// Renews a claim only if this replica still holds it.
const RENEW_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0"#;

/// Deletes a claim only if this replica still holds it.
const RELEASE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0"#;

/// Returns the entry if there is one; otherwise takes the claim if free.
/// One round trip, and atomic: a claim is only ever granted while no entry
/// exists, so the holder never recomputes an answer someone just stored.
const ENTRY_OR_CLAIM_SCRIPT: &str = r#"
local e = redis.call('GET', KEYS[1])
if e then return {e, 0} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {false, 1} end
return {false, 0}"#;

/// Whether Redis answers, as last seen, shared with the health check.
pub struct RedisHealth {
    down: AtomicBool,
    last_error: Mutex<String>,
    last_slow_log_ms: AtomicU64,
    /// PINGs in a row that got no reply in time.
    slow_pings: AtomicU64,
    mode: RedisFailureMode,
    endpoint: String,
    /// Wakes the prober when a request finds Redis down, so it starts
    /// trying every second at once rather than after its 5 s pause (with
    /// `fail_closed`, only the prober can find Redis back).
    went_down: tokio::sync::Notify,
}

impl RedisHealth {
    fn new(mode: RedisFailureMode, endpoint: String) -> Self {
        Self {
            down: AtomicBool::new(false),
            last_error: Mutex::new(String::new()),
            last_slow_log_ms: AtomicU64::new(0),
            slow_pings: AtomicU64::new(0),
            mode,
            endpoint,
            went_down: tokio::sync::Notify::new(),
        }
    }

    /// Whether Redis was unreachable at the last attempt.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    fn record_failure(&self, what: &str, err: &str) {
        *self.last_error.lock().expect("redis health poisoned") = err.to_string();
        if !self.down.swap(true, Ordering::Relaxed) {
            let consequence = match self.mode {
                RedisFailureMode::Local => "falling back to this process's own cache (on_redis_failure = local): \
                                            replicas no longer share answers, so an instance asked of two replicas \
                                            may get two OTPs until Redis is back",
                RedisFailureMode::FailClosed => "answering 503 to enrollment requests until it is back \
                                                 (on_redis_failure = fail_closed)",
            };
            tracing::error!(endpoint = %self.endpoint, operation = what, error = %err,
                "response cache: Redis is unreachable; {consequence}");
            self.went_down.notify_one();
        }
    }

    fn record_slow(&self, what: &str, err: &str) {
        let now = now_ms();
        let last = self.last_slow_log_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 10_000
            && self
                .last_slow_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(endpoint = %self.endpoint, operation = what, error = %err,
                "response cache: a Redis reply was too slow ([cache] redis_timeout); that request used the \
                 on_redis_failure behaviour (further slow replies in the next 10 s are not logged)");
        }
    }

    fn record_success(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::warn!(endpoint = %self.endpoint, "response cache: Redis is reachable again; replicas share answers again");
        }
    }

    /// Whether requests should skip Redis for now: it is down. The probe
    /// task keeps trying every second and clears this, so a Redis that hangs
    /// does not add its timeout to every request.
    fn circuit_open(&self) -> bool {
        self.is_down()
    }
}

/// The health probe registered for the Redis backend.
pub struct RedisProbe(pub Arc<RedisHealth>);

impl HealthProbe for RedisProbe {
    fn name(&self) -> &str {
        "redis"
    }

    fn check(&self) -> BoxFuture<'_, HealthState> {
        Box::pin(async move {
            let h = &self.0;
            if !h.is_down() {
                return HealthState::Ok;
            }
            let err = h.last_error.lock().expect("redis health poisoned").clone();
            let msg = format!("Redis at {} unreachable: {err}", h.endpoint);
            match h.mode {
                RedisFailureMode::Local => {
                    HealthState::Degraded(format!("{msg}; using the local cache"))
                }
                RedisFailureMode::FailClosed => {
                    HealthState::Failed(format!("{msg}; enrollment requests are refused"))
                }
            }
        })
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The Redis side of the cache.
pub struct RedisStore {
    conn: ConnectionManager,
    sealer: EntrySealer,
    settings: RedisSettings,
    health: Arc<RedisHealth>,
    stats: Arc<CacheStats>,
    password: Option<String>,
    renew_script: redis::Script,
    release_script: redis::Script,
    entry_or_claim_script: redis::Script,
}

/// Why a Redis operation failed; the message never holds the password.
pub use super::shared::Unavailable as RedisUnavailable;

/// `host:port` of a Redis URL, for logs and messages (never the password).
pub fn endpoint(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .map(|u| {
            format!(
                "{}:{}",
                u.host_str().unwrap_or("?"),
                u.port().unwrap_or(6379)
            )
        })
        .unwrap_or_else(|| "<redis_url>".into())
}

impl RedisStore {
    /// Connects lazily: the service starts even while Redis is down, and
    /// says so in its log and health check. Needs a tokio runtime.
    pub fn new(
        settings: RedisSettings,
        stats: Arc<CacheStats>,
    ) -> Result<Arc<Self>, RedisUnavailable> {
        let parsed = url::Url::parse(&settings.url).ok();
        let endpoint = endpoint(&settings.url);
        let password = parsed
            .and_then(|u| u.password().map(str::to_string))
            .filter(|p| !p.is_empty());
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|_| RedisUnavailable("[cache] redis_url is not a valid Redis URL".into()))?;
        // No response timeout on the connection: redis treats its expiry as
        // an I/O error and reconnects, failing every other command in flight
        // (a cascade under load). Each operation is timed out on its own in
        // `op` instead; only real I/O errors replace the connection.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(None)
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| {
            RedisUnavailable(format!(
                "cannot set up the Redis connection: {}",
                e.kind_label()
            ))
        })?;
        let health = Arc::new(RedisHealth::new(settings.on_failure, endpoint));
        let store = Arc::new(Self {
            conn,
            sealer: EntrySealer::new(settings.secret_key.as_bytes()),
            settings,
            health,
            stats,
            password,
            renew_script: redis::Script::new(RENEW_SCRIPT),
            release_script: redis::Script::new(RELEASE_SCRIPT),
            entry_or_claim_script: redis::Script::new(ENTRY_OR_CLAIM_SCRIPT),
        });
        spawn_prober(Arc::downgrade(&store));
        Ok(store)
    }

    /// The shared health state.
    pub fn health(&self) -> Arc<RedisHealth> {
        self.health.clone()
    }

    /// The configured settings.
    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// Whether requests should go straight to the fallback.
    pub fn circuit_open(&self) -> bool {
        self.health.circuit_open()
    }

    /// The Redis key of an instance's entry.
    pub fn entry_key(&self, instance_id: &str) -> String {
        format!("{}entry:{instance_id}", self.settings.key_prefix)
    }

    /// The Redis key of an instance's claim.
    pub fn claim_key(&self, instance_id: &str) -> String {
        format!("{}claim:{instance_id}", self.settings.key_prefix)
    }

    fn fail(&self, what: &str, e: RedisError) -> RedisUnavailable {
        let mut msg = e.to_string();
        if let Some(p) = &self.password {
            msg = msg.replace(p.as_str(), "<password>");
        }
        self.stats.redis_error();
        self.health.record_failure(what, &msg);
        RedisUnavailable(msg)
    }

    /// Runs one Redis operation with the configured timeout, recording
    /// the outcome in the health state.
    async fn op<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisUnavailable> {
        match tokio::time::timeout(self.settings.timeout, fut).await {
            Ok(Ok(v)) => {
                self.health.slow_pings.store(0, Ordering::Relaxed);
                self.health.record_success();
                Ok(v)
            }
            Ok(Err(e)) => Err(self.fail(what, e)),
            Err(_) => {
                let msg = format!("no reply within {:?}", self.settings.timeout);
                self.stats.redis_error();
                // One slow reply (a loaded host) does not make Redis "down"
                // for every request; two PINGs in a row without a reply do.
                if what == "PING" && self.health.slow_pings.fetch_add(1, Ordering::Relaxed) >= 1 {
                    self.health.record_failure(what, &msg);
                } else {
                    self.health.record_slow(what, &msg);
                }
                Err(RedisUnavailable(msg))
            }
        }
    }

    /// Reads and verifies an instance's entry. A refused entry is logged and
    /// counted when `report` is set (once per request, not per poll).
    pub async fn fetch(
        &self,
        instance_id: &str,
        report: bool,
    ) -> Result<Fetched, RedisUnavailable> {
        let key = self.entry_key(instance_id);
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = self.op("GET entry", conn.get(&key)).await?;
        Ok(match raw {
            None => Fetched::Absent,
            Some(raw) => self.open(instance_id, &key, &raw, report),
        })
    }

    /// Verifies a raw entry read from `key`.
    fn open(&self, instance_id: &str, key: &str, raw: &[u8], report: bool) -> Fetched {
        super::shared::open_entry(
            "Redis",
            &self.sealer,
            &self.stats,
            (instance_id, key, raw),
            report,
        )
    }

    /// In one atomic round trip: the instance's entry if there is one,
    /// else the claim if no other replica holds it.
    pub async fn entry_or_claim(
        &self,
        instance_id: &str,
        report: bool,
    ) -> Result<EntryOrClaim, RedisUnavailable> {
        let key = self.entry_key(instance_id);
        let claim_key = self.claim_key(instance_id);
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut conn = self.conn.clone();
        let mut inv = self.entry_or_claim_script.key(&key);
        inv.key(&claim_key)
            .arg(&token)
            .arg(self.settings.claim_timeout.as_millis().max(1) as u64);
        let (raw, claimed): (Option<Vec<u8>>, i64) = self
            .op("GET entry or SET NX claim", inv.invoke_async(&mut conn))
            .await?;
        Ok(match raw {
            Some(raw) => EntryOrClaim::Entry(self.open(instance_id, &key, &raw, report)),
            None if claimed == 1 => EntryOrClaim::Claimed(Claim {
                key: claim_key,
                token,
                instance_id: instance_id.to_string(),
            }),
            None => EntryOrClaim::Busy,
        })
    }

    /// Stores an instance's answer for `ttl`.
    pub async fn store(
        &self,
        instance_id: &str,
        answer: &StoredAnswer,
        ttl: Duration,
    ) -> Result<(), RedisUnavailable> {
        if ttl.is_zero() {
            return Ok(());
        }
        let key = self.entry_key(instance_id);
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let sealed = self.sealer.seal(&key, answer, now_ms() + ttl_ms);
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("SET")
            .arg(&key)
            .arg(sealed)
            .arg("PX")
            .arg(ttl_ms)
            .clone();
        self.op("SET entry", cmd.query_async::<()>(&mut conn)).await
    }

    /// Tries to take the instance's claim.
    pub async fn try_claim(&self, instance_id: &str) -> Result<Option<Claim>, RedisUnavailable> {
        let key = self.claim_key(instance_id);
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(self.settings.claim_timeout.as_millis().max(1) as u64)
            .clone();
        let set: Option<String> = self.op("SET NX claim", cmd.query_async(&mut conn)).await?;
        Ok(set.map(|_| Claim {
            key,
            token,
            instance_id: instance_id.to_string(),
        }))
    }

    /// Extends a held claim; false when it was lost (expired and taken).
    pub async fn renew(&self, claim: &Claim) -> Result<bool, RedisUnavailable> {
        let mut conn = self.conn.clone();
        let mut inv = self.renew_script.key(&claim.key);
        inv.arg(&claim.token)
            .arg(self.settings.claim_timeout.as_millis().max(1) as u64);
        let n: i64 = self.op("renew claim", inv.invoke_async(&mut conn)).await?;
        Ok(n == 1)
    }

    /// Gives a claim up (only if still held).
    pub async fn release(&self, claim: &Claim) -> Result<(), RedisUnavailable> {
        let mut conn = self.conn.clone();
        let mut inv = self.release_script.key(&claim.key);
        inv.arg(&claim.token);
        let n: i64 = self
            .op("release claim", inv.invoke_async(&mut conn))
            .await?;
        if n == 0 {
            tracing::warn!(redis_key = %claim.key,
                "response cache: this replica's claim had expired before it finished computing the answer, \
                 so another replica may have computed it too; raise [cache] claim_timeout if this repeats");
        }
        Ok(())
    }

    /// Deletes an instance's entry; whether there was one.
    pub async fn evict(&self, instance_id: &str) -> Result<bool, RedisUnavailable> {
        let mut conn = self.conn.clone();
        let n: i64 = self
            .op("DEL entry", conn.del(self.entry_key(instance_id)))
            .await?;
        Ok(n > 0)
    }

    /// One round trip, for the probe.
    pub async fn ping(&self) -> Result<(), RedisUnavailable> {
        let mut conn = self.conn.clone();
        let _: String = self
            .op("PING", redis::cmd("PING").query_async(&mut conn))
            .await?;
        Ok(())
    }
}

trait KindLabel {
    fn kind_label(&self) -> String;
}

impl KindLabel for RedisError {
    fn kind_label(&self) -> String {
        format!("{:?}", self.kind())
    }
}

/// Pings Redis in the background: every second while it is down or its
/// last PING went unanswered (so the health check and the circuit breaker
/// notice failure and recovery quickly), every 5 s while it is up, and at
/// once when a request finds it down. Ends when the store is dropped.
fn spawn_prober(store: Weak<RedisStore>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        loop {
            let (down, health) = match store.upgrade() {
                Some(s) => {
                    let _ = s.ping().await;
                    let down =
                        s.health.is_down() || s.health.slow_pings.load(Ordering::Relaxed) > 0;
                    (down, s.health.clone())
                }
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

/// How often the prober pings while Redis is down.
const PROBE_WHILE_DOWN: Duration = Duration::from_secs(1);
/// How often the prober pings while Redis is up.
const PROBE_WHILE_UP: Duration = Duration::from_secs(5);

impl SharedStore for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
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

    fn circuit_open(&self, _instance_id: &str) -> bool {
        self.health.circuit_open()
    }

    fn fetch<'a>(
        &'a self,
        instance_id: &'a str,
        report: bool,
    ) -> BoxFuture<'a, Result<Fetched, Unavailable>> {
        Box::pin(RedisStore::fetch(self, instance_id, report))
    }

    fn entry_or_claim<'a>(
        &'a self,
        instance_id: &'a str,
        report: bool,
    ) -> BoxFuture<'a, Result<EntryOrClaim, Unavailable>> {
        Box::pin(RedisStore::entry_or_claim(self, instance_id, report))
    }

    fn try_claim<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Claim>, Unavailable>> {
        Box::pin(RedisStore::try_claim(self, instance_id))
    }

    fn store<'a>(
        &'a self,
        instance_id: &'a str,
        answer: &'a StoredAnswer,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Unavailable>> {
        Box::pin(RedisStore::store(self, instance_id, answer, ttl))
    }

    fn renew<'a>(&'a self, claim: &'a Claim) -> BoxFuture<'a, Result<bool, Unavailable>> {
        Box::pin(RedisStore::renew(self, claim))
    }

    fn release<'a>(&'a self, claim: &'a Claim) -> BoxFuture<'a, Result<(), Unavailable>> {
        Box::pin(RedisStore::release(self, claim))
    }

    fn evict<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<bool, Unavailable>> {
        Box::pin(RedisStore::evict(self, instance_id))
    }

    fn health_probe(&self) -> Arc<dyn HealthProbe> {
        Arc::new(RedisProbe(self.health()))
    }
}
