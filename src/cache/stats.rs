//! Cache counters: atomics readable in-process (tests, the health check) and
//! the same events recorded through the `metrics` facade, so they appear on
//! the metrics endpoint once one is installed.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counter names on the metrics endpoint.
pub mod names {
    /// Answers served from a stored entry.
    pub const HITS: &str = "novajoin_cache_hits_total";
    /// Requests that ran the handler.
    pub const MISSES: &str = "novajoin_cache_misses_total";
    /// Requests that waited for a concurrent computation of the same instance.
    pub const COALESCED: &str = "novajoin_cache_coalesced_total";
    /// Entries removed by `evict` or for lack of room.
    pub const EVICTIONS: &str = "novajoin_cache_evictions_total";
    /// Entries replaced because the request's relevant fields changed.
    pub const REPLACED: &str = "novajoin_cache_replaced_total";
    /// Redis entries refused (did not verify).
    pub const REFUSED: &str = "novajoin_cache_refused_entries_total";
    /// Redis operations that failed for lack of a connection.
    pub const REDIS_ERRORS: &str = "novajoin_cache_redis_errors_total";
    /// memcached operations that failed (unreachable, timed out).
    pub const MEMCACHED_ERRORS: &str = "novajoin_cache_memcached_errors_total";
}

/// The counters of one cache.
#[derive(Debug, Default)]
pub struct CacheStats {
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    evictions: AtomicU64,
    replaced: AtomicU64,
    refused: AtomicU64,
    redis_errors: AtomicU64,
    memcached_errors: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStatsSnapshot {
    /// Answers served from a stored entry.
    pub hits: u64,
    /// Requests that ran the handler themselves.
    pub misses: u64,
    /// Requests that got the result of a concurrent computation.
    pub coalesced: u64,
    /// Entries removed by `evict` or for lack of room.
    pub evictions: u64,
    /// Entries replaced because the request's relevant fields changed.
    pub replaced: u64,
    /// Redis entries refused because they did not verify.
    pub refused: u64,
    /// Redis operations that failed (unreachable, timed out).
    pub redis_errors: u64,
    /// memcached operations that failed (unreachable, timed out).
    pub memcached_errors: u64,
}

macro_rules! bump {
    ($(#[$doc:meta] $fn:ident => $field:ident, $name:expr;)*) => {
        impl CacheStats {
            $(
                #[$doc]
                pub fn $fn(&self) {
                    self.$field.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!($name).increment(1);
                }
            )*
        }
    };
}

bump! {
    /// Counts a hit.
    hit => hits, names::HITS;
    /// Counts a miss.
    miss => misses, names::MISSES;
    /// Counts a coalesced wait.
    coalesced => coalesced, names::COALESCED;
    /// Counts an eviction.
    eviction => evictions, names::EVICTIONS;
    /// Counts a replaced entry.
    replaced => replaced, names::REPLACED;
    /// Counts a refused Redis entry.
    refused => refused, names::REFUSED;
    /// Counts a failed Redis operation.
    redis_error => redis_errors, names::REDIS_ERRORS;
    /// Counts a failed memcached operation.
    memcached_error => memcached_errors, names::MEMCACHED_ERRORS;
}

impl CacheStats {
    /// The counters now.
    pub fn snapshot(&self) -> CacheStatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStatsSnapshot {
            hits: g(&self.hits),
            misses: g(&self.misses),
            coalesced: g(&self.coalesced),
            evictions: g(&self.evictions),
            replaced: g(&self.replaced),
            refused: g(&self.refused),
            redis_errors: g(&self.redis_errors),
            memcached_errors: g(&self.memcached_errors),
        }
    }
}
