//! The in-process store: a bounded moka cache with a time-to-live.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use moka::notification::RemovalCause;

use super::answer::StoredAnswer;
use super::stats::CacheStats;

/// Answers by instance id, in this process's memory.
#[derive(Clone)]
pub struct MemoryStore {
    cache: moka::future::Cache<String, Arc<StoredAnswer>>,
    ttl: Duration,
}

impl MemoryStore {
    /// A store of at most `capacity` answers, each kept `ttl`.
    pub fn new(capacity: u64, ttl: Duration, stats: Arc<CacheStats>) -> Self {
        let cache = moka::future::Cache::builder()
            .name("novajoin-response-cache")
            .max_capacity(capacity)
            .time_to_live(ttl.max(Duration::from_millis(1)))
            .eviction_listener(move |_id, _answer, cause| {
                // Explicit removals are counted by `remove`; replacements and
                // expiries are not evictions.
                if cause == RemovalCause::Size {
                    stats.eviction();
                }
            })
            .build();
        Self { cache, ttl }
    }

    /// The stored answer for an instance, if any and not expired (by the
    /// store's TTL or by the answer's own [`StoredAnswer::serve_until`]).
    pub async fn get(&self, instance_id: &str) -> Option<Arc<StoredAnswer>> {
        let answer = self.cache.get(instance_id).await?;
        // The clock is read only for an answer that has an end (an OTP
        // with a lifetime): most hits have none.
        if answer.serve_until.is_none() || answer.is_servable_at(SystemTime::now()) {
            Some(answer)
        } else {
            self.cache.invalidate(instance_id).await;
            None
        }
    }

    /// Stores (or replaces) an instance's answer. With a zero TTL nothing is
    /// stored.
    pub async fn put(&self, instance_id: &str, answer: Arc<StoredAnswer>) {
        if !self.ttl.is_zero() {
            self.cache.insert(instance_id.to_string(), answer).await;
        }
    }

    /// Removes an instance's answer; whether there was one.
    pub async fn remove(&self, instance_id: &str) -> bool {
        self.cache.remove(instance_id).await.is_some()
    }

    /// Entries held (approximate until pending maintenance has run).
    pub async fn len(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count()
    }

    /// Whether no entry is held.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}
