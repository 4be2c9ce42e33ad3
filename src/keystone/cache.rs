//! Token caches: validated tokens in this process's memory (with
//! single-flight loading), and optionally in Redis or memcached, shared by
//! replicas.
//!
//! An entry lives until the earlier of `token_cache_time` and the token's
//! expiry. Keys are hashes of the token, never the token. Only successful
//! validations are cached: keystonemiddleware stopped caching invalid tokens
//! in 10.2.0, so a token that becomes valid (or an allow-expired lookup) is
//! never hidden by a stale negative entry, and a repeated bad token costs a
//! keystone call each time, as upstream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use super::cache_crypt::CacheSecret;
use super::identity::Identity;
use super::token::TokenData;
use crate::health::{HealthProbe, HealthState};
use crate::memcache::Memcache;

/// A validated token: keystone's data and the identity it proves.
#[derive(Debug)]
pub struct ValidatedToken {
    /// What keystone said.
    pub data: TokenData,
    /// The identity, ready to hand to inner filters.
    pub identity: Arc<Identity>,
    /// Cache entries for this validation end here.
    pub cache_until: DateTime<Utc>,
    /// The keystonemiddleware `X-*` headers of this identity, built on
    /// first use by `authtoken` and reused by every request with the token.
    pub user_headers: OnceLock<HeaderMap>,
    /// `X-Service-Catalog` (the v2 form), likewise built once.
    pub catalog_header: OnceLock<Option<HeaderValue>>,
}

impl ValidatedToken {
    /// Wraps keystone's data; `cache_time` is `token_cache_time`.
    pub fn new(data: TokenData, cache_time: Duration, now: DateTime<Utc>) -> Self {
        let by_time = now + chrono::Duration::from_std(cache_time).unwrap_or_default();
        let cache_until = by_time.min(data.expires_at);
        let identity = Arc::new(data.identity());
        ValidatedToken {
            data,
            identity,
            cache_until,
            user_headers: OnceLock::new(),
            catalog_header: OnceLock::new(),
        }
    }

    /// How long a cache may still keep this.
    pub fn remaining(&self, now: DateTime<Utc>) -> Duration {
        (self.cache_until - now).to_std().unwrap_or(Duration::ZERO)
    }
}

/// What the in-process cache files a token under: its BLAKE3 hash (the
/// token itself is never kept; a cryptographic hash, so no forged token can
/// be made to land on another's entry), and whether the lookup allowed an expired token
/// (a separate entry: keystone answers that lookup differently).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenKey {
    /// BLAKE3 hash of the token.
    pub digest: [u8; 32],
    /// Whether the lookup allowed an expired token.
    pub allow_expired: bool,
}

/// The in-process cache, each entry expiring at its `cache_until`.
pub type MemoryCache = moka::future::Cache<TokenKey, Arc<ValidatedToken>>;

struct UntilExpiry;

impl moka::Expiry<TokenKey, Arc<ValidatedToken>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _k: &TokenKey,
        v: &Arc<ValidatedToken>,
        _at: std::time::Instant,
    ) -> Option<Duration> {
        Some(v.remaining(Utc::now()))
    }
}

/// A memory cache holding at most `capacity` tokens.
pub fn memory_cache(capacity: u64) -> MemoryCache {
    moka::future::Cache::builder()
        .max_capacity(capacity)
        .expire_after(UntilExpiry)
        .build()
}

/// What is stored in the shared cache (inside the MAC/encryption envelope).
#[derive(Serialize, Deserialize)]
struct SharedEntry {
    /// Format version.
    v: u32,
    /// End of the cache lifetime (epoch seconds), so every replica drops
    /// the entry at the same moment the writer would.
    cache_until: i64,
    token: TokenData,
}

/// Where the shared token cache lives.
enum Backend {
    Redis(redis::aio::ConnectionManager),
    /// Entries spread over the servers by consistent hashing; a server
    /// that fails is left alone for `memcache_pool_dead_retry`.
    Memcached(Arc<Memcache>),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Redis(_) => "Redis",
            Backend::Memcached(_) => "memcached",
        }
    }
}

/// The token cache shared by replicas (Redis or memcached).
pub struct SharedCache {
    backend: Backend,
    prefix: String,
    secret: CacheSecret,
    op_timeout: Duration,
    failing: Arc<AtomicBool>,
    last_error: Arc<std::sync::Mutex<String>>,
}

impl std::fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCache")
            .field("backend", &self.backend.name())
            .field("prefix", &self.prefix)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl SharedCache {
    /// Connects lazily to the Redis at `url` (must run inside a tokio
    /// runtime). Commands that take longer than `op_timeout` count as
    /// misses.
    pub fn new(
        url: &str,
        prefix: &str,
        secret: CacheSecret,
        op_timeout: Duration,
    ) -> Result<Self, String> {
        let client =
            redis::Client::open(url).map_err(|e| format!("redis_url is not a Redis URL: {e}"))?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(op_timeout))
            .set_response_timeout(Some(op_timeout))
            .set_number_of_retries(1);
        let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, cfg)
            .map_err(|e| format!("cannot set up the Redis connection: {e}"))?;
        Ok(Self::with_backend(
            Backend::Redis(conn),
            prefix,
            secret,
            op_timeout,
        ))
    }

    /// The cache on the memcached `servers` (normalized `host:port`), as
    /// keystonemiddleware's `memcached_servers`; connects lazily.
    pub fn memcached(
        servers: Vec<String>,
        prefix: &str,
        secret: CacheSecret,
        op_timeout: Duration,
        dead_retry: Duration,
    ) -> Self {
        let mc = Memcache::new(servers, op_timeout, dead_retry);
        Self::with_backend(Backend::Memcached(Arc::new(mc)), prefix, secret, op_timeout)
    }

    fn with_backend(
        backend: Backend,
        prefix: &str,
        secret: CacheSecret,
        op_timeout: Duration,
    ) -> Self {
        SharedCache {
            backend,
            prefix: prefix.to_string(),
            secret,
            op_timeout,
            failing: Arc::new(AtomicBool::new(false)),
            last_error: Arc::new(std::sync::Mutex::new(String::new())),
        }
    }

    /// The key an entry for `token` is stored under (names no token: it
    /// is derived with the secret, as keystonemiddleware's cache key).
    pub fn storage_key(&self, token: &str) -> String {
        format!("{}tokens/{}", self.prefix, self.secret.keys(token).name)
    }

    fn note(&self, result: Result<(), String>) {
        let name = self.backend.name();
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("the {name} token cache works again");
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!("the {name} token cache failed; validating without it until it recovers: {e}");
                } else {
                    tracing::debug!("{name} token cache: {e}");
                }
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = e;
            }
        }
    }

    async fn fetch(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        match &self.backend {
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                match tokio::time::timeout(
                    self.op_timeout,
                    redis::cmd("GET").arg(key).query_async(&mut conn),
                )
                .await
                {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("GET took longer than {:?}", self.op_timeout)),
                }
            }
            Backend::Memcached(mc) => mc
                .get(key, key)
                .await
                .map(|item| item.map(|i| i.value))
                .map_err(|e| e.to_string()),
        }
    }

    async fn write(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), String> {
        match &self.backend {
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let cmd = redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("PX")
                    .arg(ttl.as_millis() as u64)
                    .to_owned();
                match tokio::time::timeout(self.op_timeout, cmd.query_async::<()>(&mut conn)).await
                {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("SET took longer than {:?}", self.op_timeout)),
                }
            }
            Backend::Memcached(mc) => mc
                .set(key, key, value, ttl)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// The entry for `token`, if present and authentic; anything that fails
    /// its MAC, decryption or parsing is a miss (and logged).
    pub async fn get(&self, token: &str, cache_time: Duration) -> Option<Arc<ValidatedToken>> {
        let keys = self.secret.keys(token);
        let key = format!("{}tokens/{}", self.prefix, keys.name);
        let raw = match self.fetch(&key).await {
            Ok(v) => {
                self.note(Ok(()));
                v?
            }
            Err(e) => {
                self.note(Err(e));
                return None;
            }
        };
        let name = self.backend.name();
        let Some(plain) = keys.open(&raw) else {
            tracing::warn!(key = %key, "refused a {name} token-cache entry that fails its MAC or decryption \
                           (written without memcache_secret_key, or with another one)");
            return None;
        };
        let entry: SharedEntry = match serde_json::from_slice(&plain) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(key = %key, "ignoring an unreadable {name} token-cache entry: {e}");
                return None;
            }
        };
        let now = Utc::now();
        let until = DateTime::from_timestamp(entry.cache_until, 0)?;
        if entry.v != 1 || until <= now {
            return None;
        }
        let mut v = ValidatedToken::new(entry.token, cache_time, now);
        v.cache_until = v.cache_until.min(until);
        Some(Arc::new(v))
    }

    /// Stores `v` for `token` until its `cache_until`.
    pub async fn put(&self, token: &str, v: &ValidatedToken) {
        let ttl = v.remaining(Utc::now());
        if ttl < Duration::from_secs(1) {
            return;
        }
        let keys = self.secret.keys(token);
        let key = format!("{}tokens/{}", self.prefix, keys.name);
        let entry = SharedEntry {
            v: 1,
            cache_until: v.cache_until.timestamp(),
            token: v.data.clone(),
        };
        let Ok(plain) = serde_json::to_vec(&entry) else {
            return;
        };
        let sealed = keys.seal(&plain);
        let r = self.write(&key, &sealed, ttl).await;
        self.note(r);
    }

    /// A health probe reporting Degraded while the shared cache fails.
    pub fn probe(&self) -> Arc<dyn HealthProbe> {
        Arc::new(SharedCacheProbe {
            backend: self.backend.name(),
            failing: self.failing.clone(),
            last_error: self.last_error.clone(),
        })
    }
}

struct SharedCacheProbe {
    backend: &'static str,
    failing: Arc<AtomicBool>,
    last_error: Arc<std::sync::Mutex<String>>,
}

impl HealthProbe for SharedCacheProbe {
    fn name(&self) -> &str {
        if self.backend == "Redis" {
            "redis-token-cache"
        } else {
            "memcached-token-cache"
        }
    }

    fn check(&self) -> BoxFuture<'_, HealthState> {
        Box::pin(async move {
            if self.failing.load(Ordering::Relaxed) {
                let e = self
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                HealthState::Degraded(format!(
                    "{} token cache failing, using memory only: {e}",
                    self.backend
                ))
            } else {
                HealthState::Ok
            }
        })
    }
}
