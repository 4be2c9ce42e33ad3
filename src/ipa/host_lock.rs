//! [`HostLocks`]: one writer per IPA host at a time.
//!
//! An enrollment sets the host's OTP. When a request stops waiting for IPA
//! (`[ipa] timeout`) the call goes on in the background, because IPA behind
//! Apache finishes a command whether or not anyone still listens. If a retry
//! for the same host ran meanwhile, the older call's `host_mod` could land
//! after it and replace the OTP the retry handed out. Holding the host's
//! lock for the whole life of the call, detached part included, orders
//! every write to a host after the previous one has finished.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

type LockMap = HashMap<String, Arc<AsyncMutex<()>>>;

/// Per-host locks, created on demand and forgotten when nobody holds or
/// waits for them, so the map stays as small as the set of busy hosts.
#[derive(Clone, Default)]
pub struct HostLocks {
    map: Arc<Mutex<LockMap>>,
}

/// Holds one host's lock; released (and the entry forgotten when unused)
/// on drop.
pub struct HostGuard {
    map: Arc<Mutex<LockMap>>,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl HostLocks {
    /// Waits until no other writer holds `host` (compared case-insensitively,
    /// as IPA compares host names) and takes it.
    pub async fn lock(&self, host: &str) -> HostGuard {
        let key = host.to_ascii_lowercase();
        let lock = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        HostGuard {
            map: self.map.clone(),
            key,
            guard: Some(guard),
        }
    }

    /// How many hosts have a writer or waiters now.
    pub fn busy_hosts(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map's own reference left: no holder, no waiter.
        if map
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_second_writer_waits_for_the_first() {
        let locks = HostLocks::default();
        let first = locks.lock("vm1.example.test").await;
        let waiting = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.lock("VM1.example.test").await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the same host (any case) must wait");
        let other = tokio::time::timeout(Duration::from_secs(1), locks.lock("vm2.example.test"))
            .await
            .expect("another host does not wait");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("released")
            .unwrap();
        drop((second, other));
        assert_eq!(locks.busy_hosts(), 0, "unused locks are forgotten");
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_no_entry_behind() {
        let locks = HostLocks::default();
        let held = locks.lock("vm1.example.test").await;
        let gave_up =
            tokio::time::timeout(Duration::from_millis(20), locks.lock("vm1.example.test")).await;
        assert!(gave_up.is_err());
        assert_eq!(locks.busy_hosts(), 1);
        drop(held);
        assert_eq!(locks.busy_hosts(), 0);
    }
}
