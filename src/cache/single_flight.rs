//! One computation per key at a time, shared by every caller that asks for
//! the same key while it runs.
//!
//! The computation runs in its own task, so a caller that goes away (nova
//! timed out and closed the connection) does not cancel an enrollment half
//! way: it finishes and is stored, and nova's next request gets that answer
//! instead of causing a second OTP.
//!
//! moka's `try_get_with` coalesces loads too, but only while no value is
//! stored under the key and only for the stored key. Here the flight is keyed
//! by instance *and* fingerprint, a failing replacement must leave the old
//! entry in place, and the shared backends need the same coalescing in
//! front of Redis or memcached; one small, explicit mechanism serves all
//! three.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt, Shared};

type Flight<V> = Shared<BoxFuture<'static, V>>;

/// Coalesces concurrent computations per key.
pub struct SingleFlight<K, V> {
    inflight: Arc<Mutex<HashMap<K, Flight<V>>>>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self {
            inflight: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

/// Whether the caller started the computation or joined one in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// This caller started it.
    Leader,
    /// Another caller had started it; this one waited for its result.
    Follower,
}

impl<K, V> SingleFlight<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Runs `make()` unless a computation for `key` is already running, in
    /// which case its result is awaited instead. `on_panic` turns a panicked
    /// computation into a value (every waiter gets it).
    pub async fn run<F>(&self, key: K, make: F, on_panic: fn() -> V) -> (V, Role)
    where
        F: FnOnce() -> BoxFuture<'static, V>,
    {
        let (flight, role) = {
            let mut map = self.inflight.lock().expect("single-flight map poisoned");
            match map.get(&key) {
                Some(f) => (f.clone(), Role::Follower),
                None => {
                    let work = make();
                    let map_ref = Arc::clone(&self.inflight);
                    let key_ref = key.clone();
                    let task = tokio::spawn(async move {
                        let v = work.await;
                        // Removed only after the result exists (and was stored
                        // by `work`), so a later caller finds it in the store.
                        map_ref
                            .lock()
                            .expect("single-flight map poisoned")
                            .remove(&key_ref);
                        v
                    });
                    let map_ref = Arc::clone(&self.inflight);
                    let key_ref = key.clone();
                    let flight: Flight<V> = async move {
                        match task.await {
                            Ok(v) => v,
                            Err(_) => {
                                map_ref
                                    .lock()
                                    .expect("single-flight map poisoned")
                                    .remove(&key_ref);
                                on_panic()
                            }
                        }
                    }
                    .boxed()
                    .shared();
                    map.insert(key, flight.clone());
                    (flight, Role::Leader)
                }
            }
        };
        (flight.await, role)
    }

    /// How many computations are running (for tests and diagnostics).
    pub fn in_flight(&self) -> usize {
        self.inflight
            .lock()
            .expect("single-flight map poisoned")
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_computation() {
        let sf: Arc<SingleFlight<&'static str, usize>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let sf = sf.clone();
            let runs = runs.clone();
            tasks.push(tokio::spawn(async move {
                sf.run(
                    "k",
                    move || {
                        async move {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            runs.fetch_add(1, Ordering::SeqCst) + 100
                        }
                        .boxed()
                    },
                    || 0,
                )
                .await
            }));
        }
        let mut leaders = 0;
        for t in tasks {
            let (v, role) = t.await.unwrap();
            assert_eq!(v, 100);
            leaders += usize::from(role == Role::Leader);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(leaders, 1);
        assert_eq!(sf.in_flight(), 0);
        // A later call computes again (the flight does not cache).
        let (v, role) = sf.run("k", || async { 7 }.boxed(), || 0).await;
        assert_eq!((v, role), (7, Role::Leader));
    }

    #[tokio::test]
    async fn a_cancelled_leader_does_not_cancel_the_computation() {
        let sf: Arc<SingleFlight<u8, u8>> = Arc::default();
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        let leader = {
            let sf = sf.clone();
            tokio::spawn(async move {
                sf.run(
                    1,
                    move || {
                        async move {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            d.fetch_add(1, Ordering::SeqCst);
                            5
                        }
                        .boxed()
                    },
                    || 0,
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        leader.abort();
        let (v, role) = sf.run(1, || async { 9 }.boxed(), || 0).await;
        assert_eq!((v, role), (5, Role::Follower));
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_panicking_computation_answers_every_waiter() {
        let sf: SingleFlight<u8, u8> = SingleFlight::default();
        let (v, _) = sf.run(1, || async { panic!("boom") }.boxed(), || 42).await;
        assert_eq!(v, 42);
        assert_eq!(sf.in_flight(), 0);
    }
}
