//! What the response cache needs of a store shared by replicas (Redis,
//! memcached): entries, and claims that let one replica at a time compute
//! an instance's answer.
//!
//! A claim lives `claim_timeout` unless renewed; its holder renews it while
//! the handler runs ([`keep_claim`]) and releases it once the entry is
//! stored, so a replica that dies holding one blocks the instance at most
//! that long.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::answer::StoredAnswer;
use super::options::RedisFailureMode;
use crate::health::HealthProbe;

/// Why a shared-store operation failed; never holds a password or a value.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// What reading an entry found.
#[derive(Debug)]
pub enum Fetched {
    /// No entry (or an expired one).
    Absent,
    /// A verified entry.
    Valid(Arc<StoredAnswer>),
    /// An entry that does not verify: refused, already logged and counted.
    Refused,
}

/// What [`SharedStore::entry_or_claim`] found.
#[derive(Debug)]
pub enum EntryOrClaim {
    /// An entry exists (valid or refused).
    Entry(Fetched),
    /// No entry; this replica now holds the claim.
    Claimed(Claim),
    /// No entry; another replica holds the claim.
    Busy,
}

/// A claim this replica holds: the store's key and this holder's random
/// token (only the holder's token renews or releases it).
#[derive(Debug, Clone)]
pub struct Claim {
    /// The claim's key in the store.
    pub key: String,
    /// The holder's token.
    pub token: String,
    /// The instance, for stores that place keys by instance.
    pub instance_id: String,
}

/// A store shared by replicas.
pub trait SharedStore: Send + Sync {
    /// `redis` or `memcached`, for logs and messages.
    fn backend(&self) -> &'static str;

    /// What to do while the store cannot be reached.
    fn on_failure(&self) -> RedisFailureMode;

    /// Longest wait for another replica's claim.
    fn wait_timeout(&self) -> Duration;

    /// Lifetime of an unrenewed claim.
    fn claim_timeout(&self) -> Duration;

    /// Whether requests for `instance_id` should skip the store for now
    /// (its server is known to be down; a probe finds it back).
    fn circuit_open(&self, instance_id: &str) -> bool;

    /// Reads and verifies an instance's entry. A refused entry is logged
    /// and counted when `report` is set (once per request, not per poll).
    fn fetch<'a>(
        &'a self,
        instance_id: &'a str,
        report: bool,
    ) -> BoxFuture<'a, Result<Fetched, Unavailable>>;

    /// The instance's entry if there is one, else the claim if no other
    /// replica holds it. A claim is only granted while no entry exists.
    fn entry_or_claim<'a>(
        &'a self,
        instance_id: &'a str,
        report: bool,
    ) -> BoxFuture<'a, Result<EntryOrClaim, Unavailable>>;

    /// Tries to take the instance's claim.
    fn try_claim<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Claim>, Unavailable>>;

    /// Stores an instance's answer for `ttl`.
    fn store<'a>(
        &'a self,
        instance_id: &'a str,
        answer: &'a StoredAnswer,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), Unavailable>>;

    /// Extends a held claim; false when it was lost (expired and taken).
    fn renew<'a>(&'a self, claim: &'a Claim) -> BoxFuture<'a, Result<bool, Unavailable>>;

    /// Gives a claim up (only if still held).
    fn release<'a>(&'a self, claim: &'a Claim) -> BoxFuture<'a, Result<(), Unavailable>>;

    /// Deletes an instance's entry; whether there was one.
    fn evict<'a>(&'a self, instance_id: &'a str) -> BoxFuture<'a, Result<bool, Unavailable>>;

    /// The health probe to register.
    fn health_probe(&self) -> Arc<dyn HealthProbe>;
}

/// Renews `claim` every third of the claim timeout until dropped.
pub fn keep_claim(store: &Arc<dyn SharedStore>, claim: Claim) -> ClaimKeeper {
    let weak = Arc::downgrade(store);
    let period = store.claim_timeout() / 3;
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let Some(store) = weak.upgrade() else { return };
            match store.renew(&claim).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(instance_id = %claim.instance_id, backend = store.backend(),
                        "response cache: lost the claim on this instance while computing its answer \
                         (it expired, e.g. during an outage of the shared cache); another replica may \
                         compute it too");
                    return;
                }
                Err(_) => {} // Logged by the health state; try again next period.
            }
        }
    });
    ClaimKeeper(task)
}

/// Stops renewing a claim when dropped.
pub struct ClaimKeeper(tokio::task::JoinHandle<()>);

impl Drop for ClaimKeeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Verifies a sealed entry read from `key` of a shared store named
/// `store` ("Redis", "memcached"): an expired entry is absent; one that
/// does not verify is refused, and reported (counted and logged as an
/// error) only when `report` is set.
pub fn open_entry(
    store: &str,
    sealer: &super::sealing::EntrySealer,
    stats: &super::stats::CacheStats,
    (instance_id, key, raw): (&str, &str, &[u8]),
    report: bool,
) -> Fetched {
    match sealer.open(key, raw, super::redis::now_ms()) {
        Ok(answer) => Fetched::Valid(std::sync::Arc::new(answer)),
        Err(super::sealing::UnsealError::Expired(ms)) => {
            tracing::debug!(
                instance_id,
                expired_ms_ago = ms,
                "response cache: ignoring an expired {store} entry"
            );
            Fetched::Absent
        }
        Err(e) if !report => {
            tracing::debug!(instance_id, reason = %e, "response cache: {store} entry still refused");
            Fetched::Refused
        }
        Err(e) => {
            stats.refused();
            tracing::error!(instance_id, store_key = %key, reason = %e,
                "response cache: refusing a {store} entry that is not ours (it does not verify with \
                 [cache] secret_key); answering as if there were none. Check that every replica has \
                 the same secret_key and that nothing else writes under key_prefix");
            Fetched::Refused
        }
    }
}
