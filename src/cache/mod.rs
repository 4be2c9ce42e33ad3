//! The response cache: one answer, one OTP, per instance.
//!
//! nova calls the vendordata service again and again for one instance
//! (every guest read of `vendor_data2.json`, six times per config-drive
//! build, from several metadata workers at once). Each call that reached
//! IPA would set a new OTP and invalidate the one handed out before, so the
//! answers are kept here, keyed on `instance-id`:
//!
//! - a stored answer whose request fields match is returned as is (a hit);
//! - concurrent requests for an instance with no stored answer share one
//!   handler call ([`single_flight`]); with Redis or memcached, across
//!   replicas too, by a claim with an expiry ([`shared`], [`redis`],
//!   [`memcached`]);
//! - only `200` answers are stored; errors are handed to the requests that
//!   shared that call and then forgotten;
//! - a request whose relevant fields ([`key::Fingerprint`]) differ from the
//!   stored answer's is a miss, logged, whose `200` replaces the entry; an
//!   error leaves the old entry in place.
//!
//! Backends: `memory` (default; bounded moka cache in this process),
//! `redis` and `memcached` (shared by replicas, entries sealed with the
//! configured secret, see [`sealing`]). While the shared store is
//! unreachable (Redis, or the memcached server an instance's keys live on)
//! the request falls back to the in-process store (`on_redis_failure =
//! local`, the default: enrollment keeps working, at the risk of two OTPs
//! for an instance asked of two replicas during the outage) or is answered
//! 503 (`fail_closed`: never two OTPs, but instances booted meanwhile are
//! not enrolled, since nova treats a failed vendordata call as "no
//! vendordata").
//!
//! The cache never decides who may see an answer: the `cache` filter sits
//! behind `authtoken` and `policy`, and refuses any request those did not
//! authorize.

pub mod answer;
pub mod key;
pub mod key_memo;
pub mod memcached;
pub mod memory;
pub mod options;
pub mod redis;
pub mod sealing;
pub mod shared;
pub mod single_flight;
pub mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use http::{Response, StatusCode};
use http_body_util::Full;

pub use answer::{ServeUntil, StoredAnswer};
pub use key::{Fingerprint, RequestKey};
pub use key_memo::KeyMemo;
pub use options::{CacheSettings, MemcachedSettings, RedisFailureMode, RedisSettings};
pub use stats::{CacheStats, CacheStatsSnapshot};

use self::memcached::MemcachedStore;
use self::memory::MemoryStore;
use self::redis::RedisStore;
use self::shared::{Claim, EntryOrClaim, Fetched, SharedStore};
use self::single_flight::{Role, SingleFlight};
use crate::health::HealthProbe;

/// Runs the handler for a request the cache could not answer.
pub type Compute = Box<dyn FnOnce() -> BoxFuture<'static, Response<Full<Bytes>>> + Send>;

/// An answer the cache gives itself, without the handler's: the caller
/// answers with a fault of this status and message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The status (503; 500 when the handler's computation panicked).
    pub status: StatusCode,
    /// What to tell the client; `None` for the status's usual message.
    pub message: Option<&'static str>,
}

/// The response cache's outcome for one request, which the access log and
/// the request metrics report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Served from the cache.
    Hit,
    /// Computed by the handler and stored.
    Miss,
    /// Waited for another request's computation of the same instance.
    Coalesced,
    /// Not cacheable (error answer or no instance id).
    Bypass,
}

/// Why a cache operation outside a request failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The shared store could not be reached (the message never holds a
    /// password).
    #[error("the response cache's {backend} is unreachable: {reason}")]
    Unavailable {
        /// `redis` or `memcached`.
        backend: &'static str,
        /// What failed.
        reason: String,
    },
    /// The settings cannot be used.
    #[error(transparent)]
    Settings(#[from] options::CacheSettingsError),
}

/// Where a flight's answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// An entry stored by someone else; `waited` when this flight waited for
    /// another replica's claim to get it.
    Found { waited: bool },
    /// The handler ran; `stored` when its answer was kept.
    Computed { stored: bool },
    /// The cache answered itself (503: the shared store down with fail_closed, or
    /// another replica held the claim too long).
    Refused,
}

#[derive(Clone, Debug)]
struct Served {
    answer: Result<Arc<StoredAnswer>, Refusal>,
    source: Source,
}

struct Inner {
    ttl: Duration,
    local: MemoryStore,
    shared: Option<Arc<dyn SharedStore>>,
    flights: SingleFlight<RequestKey, Served>,
    stats: Arc<CacheStats>,
}

/// The response cache (cheap to clone; clones share everything).
#[derive(Clone)]
pub struct ResponseCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("backend", &self.backend())
            .field("ttl", &self.inner.ttl)
            .finish()
    }
}

fn refused(status: StatusCode, message: Option<&'static str>) -> Served {
    Served {
        answer: Err(Refusal { status, message }),
        source: Source::Refused,
    }
}

fn panicked() -> Served {
    refused(StatusCode::INTERNAL_SERVER_ERROR, None)
}

impl ResponseCache {
    /// Builds the cache. The shared backends connect lazily, so this must
    /// run inside a tokio runtime and succeeds while their servers are down
    /// (the health probe and the log say so).
    pub fn new(settings: &CacheSettings) -> Result<Self, CacheError> {
        let stats = Arc::new(CacheStats::default());
        let local = MemoryStore::new(settings.capacity, settings.ttl, stats.clone());
        let shared: Option<Arc<dyn SharedStore>> = match (&settings.redis, &settings.memcached) {
            (Some(r), _) => Some(RedisStore::new(r.clone(), stats.clone()).map_err(|e| {
                CacheError::Unavailable {
                    backend: "redis",
                    reason: e.0,
                }
            })?),
            (None, Some(m)) => Some(MemcachedStore::new(m.clone(), stats.clone())),
            (None, None) => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                ttl: settings.ttl,
                local,
                shared,
                flights: SingleFlight::default(),
                stats,
            }),
        })
    }

    /// The health probe to register (only the shared backends have one).
    pub fn health_probe(&self) -> Option<Arc<dyn HealthProbe>> {
        self.inner.shared.as_ref().map(|r| r.health_probe())
    }

    /// The counters.
    pub fn stats(&self) -> CacheStatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// The backend's name (`memory`, `redis` or `memcached`).
    pub fn backend(&self) -> &'static str {
        self.inner.shared.as_ref().map_or("memory", |r| r.backend())
    }

    /// Forgets an instance's answer (the notification listener calls this
    /// when the instance is deleted). Returns whether an entry was removed.
    /// With a shared backend, the shared entry is removed; a failure to
    /// reach it is an error so the caller can retry or report it.
    pub async fn evict(&self, instance_id: &str) -> Result<bool, CacheError> {
        let mut removed = self.inner.local.remove(instance_id).await;
        if let Some(r) = &self.inner.shared {
            removed |= r
                .evict(instance_id)
                .await
                .map_err(|e| CacheError::Unavailable {
                    backend: r.backend(),
                    reason: e.0,
                })?;
        }
        if removed {
            self.inner.stats.eviction();
            tracing::info!(instance_id, "response cache: evicted the instance's answer");
        }
        Ok(removed)
    }

    /// Answers a request: from a stored answer, from a concurrent
    /// computation of the same request, or by running `compute` (at most
    /// once per key at a time, across replicas with Redis or memcached).
    pub async fn get_or_compute(
        &self,
        key: RequestKey,
        compute: Compute,
    ) -> (Result<Response<Full<Bytes>>, Refusal>, CacheOutcome) {
        let inner = &self.inner;
        let mut refused_seen = false;
        // Fast path: a stored, matching answer.
        let found = match &inner.shared {
            Some(r) if !r.circuit_open(&key.instance_id) => {
                match r.fetch(&key.instance_id, true).await {
                    Ok(Fetched::Valid(a)) => Some(a),
                    Ok(Fetched::Refused) => {
                        refused_seen = true;
                        None
                    }
                    Ok(Fetched::Absent) => None,
                    Err(_) if r.on_failure() == RedisFailureMode::Local => {
                        inner.local.get(&key.instance_id).await
                    }
                    Err(_) => None,
                }
            }
            Some(r) if r.on_failure() == RedisFailureMode::Local => {
                inner.local.get(&key.instance_id).await
            }
            Some(_) => None,
            None => inner.local.get(&key.instance_id).await,
        };
        if let Some(answer) = &found {
            if answer.fingerprint == key.fingerprint {
                inner.stats.hit();
                return (Ok(answer.to_response()), CacheOutcome::Hit);
            }
            inner.stats.replaced();
            tracing::info!(instance_id = %key.instance_id,
                changed = %answer.fingerprint.differing_fields(&key.fingerprint).join(", "),
                "response cache: request differs from the stored answer's; computing a new answer \
                 that replaces it if it succeeds");
        }

        let this = self.clone();
        let flight_key = key.clone();
        // Boxed: only a miss waits here, and the hit path's future stays
        // small (it is copied when the request's future is boxed).
        let (served, role) = Box::pin(inner.flights.run(
            flight_key,
            move || this.flight(key, compute, refused_seen).boxed(),
            panicked,
        ))
        .await;
        let outcome = match (role, served.source) {
            (Role::Follower, _) | (Role::Leader, Source::Found { waited: true }) => {
                inner.stats.coalesced();
                CacheOutcome::Coalesced
            }
            (Role::Leader, Source::Found { waited: false }) => {
                inner.stats.hit();
                CacheOutcome::Hit
            }
            (Role::Leader, Source::Computed { stored: true }) => CacheOutcome::Miss,
            (Role::Leader, Source::Computed { stored: false } | Source::Refused) => {
                CacheOutcome::Bypass
            }
        };
        (served.answer.map(|a| a.to_response()), outcome)
    }

    /// One computation of a key (runs in its own task, see [`single_flight`]).
    /// `refused_seen`: the caller's fast path already reported a refused
    /// shared entry for this instance.
    async fn flight(self, key: RequestKey, compute: Compute, refused_seen: bool) -> Served {
        match self.inner.shared.clone() {
            None => self.local_flight(&key, compute).await,
            Some(r) => self.shared_flight(&r, &key, compute, refused_seen).await,
        }
    }

    async fn run_handler(&self, key: &RequestKey, compute: Compute) -> Arc<StoredAnswer> {
        self.inner.stats.miss();
        let resp = compute().await;
        Arc::new(StoredAnswer::from_response(resp, key.fingerprint).await)
    }

    async fn local_flight(&self, key: &RequestKey, compute: Compute) -> Served {
        if let Some(a) = self.inner.local.get(&key.instance_id).await {
            if a.fingerprint == key.fingerprint {
                return Served {
                    answer: Ok(a),
                    source: Source::Found { waited: false },
                };
            }
        }
        let answer = self.run_handler(key, compute).await;
        let stored = answer.is_cacheable() && !self.inner.ttl.is_zero();
        if stored {
            self.inner.local.put(&key.instance_id, answer.clone()).await;
        }
        Served {
            answer: Ok(answer),
            source: Source::Computed { stored },
        }
    }

    /// What to do with a request once the shared store failed under it,
    /// before the handler ran.
    async fn shared_down(
        &self,
        r: &Arc<dyn SharedStore>,
        key: &RequestKey,
        compute: Compute,
    ) -> Served {
        match (r.on_failure(), r.backend()) {
            (RedisFailureMode::Local, _) => self.local_flight(key, compute).await,
            (RedisFailureMode::FailClosed, "redis") => refused(StatusCode::SERVICE_UNAVAILABLE,
                Some("The shared response cache (Redis) is unreachable and [cache] on_redis_failure = fail_closed; \
                 try again when Redis is back.")),
            (RedisFailureMode::FailClosed, _) => refused(StatusCode::SERVICE_UNAVAILABLE,
                Some("The shared response cache (the memcached server of this instance) is unreachable and \
                 [cache] on_redis_failure = fail_closed; try again when it is back.")),
        }
    }

    async fn shared_flight(
        &self,
        r: &Arc<dyn SharedStore>,
        key: &RequestKey,
        compute: Compute,
        mut reported: bool,
    ) -> Served {
        let id = key.instance_id.as_str();
        let started = Instant::now();
        let wait_limit = r.wait_timeout();
        let mut delay = Duration::from_millis(10);
        let mut waited = false;
        loop {
            if r.circuit_open(id) {
                return self.shared_down(r, key, compute).await;
            }
            let step = match r.entry_or_claim(id, !reported).await {
                Ok(EntryOrClaim::Entry(Fetched::Valid(a))) if a.fingerprint == key.fingerprint => {
                    return Served {
                        answer: Ok(a),
                        source: Source::Found { waited },
                    };
                }
                Ok(EntryOrClaim::Entry(found)) => {
                    // Refused, expired or for other request fields: it is to
                    // be replaced, so take the claim the plain way.
                    reported |= matches!(found, Fetched::Refused);
                    match r.try_claim(id).await {
                        Ok(Some(claim)) => Ok(EntryOrClaim::Claimed(claim)),
                        Ok(None) => Ok(EntryOrClaim::Busy),
                        Err(e) => Err(e),
                    }
                }
                other => other,
            };
            match step {
                Ok(EntryOrClaim::Claimed(claim)) => {
                    return self.compute_with_claim(r, key, claim, compute).await;
                }
                Ok(_) => {} // Another replica is computing it.
                // Unreachable (the breaker is now open): handled at the top
                // of the loop. Merely slow: keep waiting, since answering
                // from the local cache now could make a second OTP.
                Err(_) => {}
            }
            if started.elapsed() >= wait_limit {
                tracing::warn!(
                    instance_id = id,
                    waited_s = started.elapsed().as_secs_f64(),
                    "response cache: another replica is still computing this instance's answer \
                     (or the shared cache is too slow); answering 503"
                );
                return refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some("Another novajoin replica is still enrolling this instance; try again shortly."),
                );
            }
            waited = true;
            let jitter = Duration::from_millis(rand::random::<u64>() % 10);
            tokio::time::sleep(delay + jitter).await;
            delay = (delay * 3 / 2).min(Duration::from_millis(200));
        }
    }

    async fn compute_with_claim(
        &self,
        r: &Arc<dyn SharedStore>,
        key: &RequestKey,
        claim: Claim,
        compute: Compute,
    ) -> Served {
        let id = key.instance_id.as_str();
        let keeper = shared::keep_claim(r, claim.clone());
        let answer = self.run_handler(key, compute).await;
        drop(keeper);
        let mut stored = false;
        if answer.is_cacheable() && !self.inner.ttl.is_zero() {
            // A slow reply is retried: until the entry is there, the other
            // replicas wait, and after the claim is released they would
            // compute (and make another OTP) themselves.
            for attempt in 1..=3 {
                match r
                    .store(
                        id,
                        &answer,
                        answer.keep_for(self.inner.ttl, SystemTime::now()),
                    )
                    .await
                {
                    Ok(()) => {
                        stored = true;
                        break;
                    }
                    Err(_) if attempt < 3 && !r.circuit_open(id) => continue,
                    Err(_) => break,
                }
            }
            if !stored && r.on_failure() == RedisFailureMode::Local {
                // Keep it here at least, so this replica answers the same.
                self.inner.local.put(id, answer.clone()).await;
                stored = true;
            }
        }
        let _ = r.release(&claim).await;
        Served {
            answer: Ok(answer),
            source: Source::Computed { stored },
        }
    }
}
