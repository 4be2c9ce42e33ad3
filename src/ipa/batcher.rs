//! [`CallQueue`]: the writes waiting for an IPA call slot, sent together,
//! and the honest refusal of work the queue cannot serve in time.
//!
//! # Cross-request batching
//!
//! Each enrollment is one `batch` of a few commands (see the [module
//! documentation](super)). When all `[ipa] max_concurrent_calls` slots are
//! busy, enrollments of other instances queue here; whoever gets the next
//! slot takes the queue's head, up to `[ipa] batch_max` commands, and sends
//! it as one `batch`. IPA pays its fixed per-request cost (Apache, session,
//! API dispatch) once for all of them.
//!
//! Why this keeps every guarantee of a single enrollment:
//!
//! * IPA runs batch items one after another and reports each on its own,
//!   so each enrollment's items run in their order, and a failed item of
//!   one instance changes nothing for the items of another. The results
//!   are cut back into each enrollment's own list, in its order.
//! * An enrollment is never split across calls; one that holds more than
//!   `batch_max` commands goes alone.
//! * Each enrollment brings its host's lock ([`HostGuard`]) into the queue
//!   and it is released only when the call carrying it has ended
//!   (detached part included), so no later write to the host overtakes it.
//! * A caller that stops waiting while its enrollment is still queued takes
//!   it out again: nothing of it is sent, and its host is free at once.
//!   Once taken, it is a call in flight like any other (see `[ipa]
//!   detached_call_timeout`).
//! * A retried batch is safe for every enrollment in it, for the reasons
//!   the module documentation gives for one.
//! * A failure of the whole call (transport, login) reaches each caller
//!   in it, as it would have reached each in its own call.
//!
//! With a free slot and nothing queued an enrollment goes out at once, as
//! its own call: batching adds no latency when there is no contention
//! (`[ipa] batch_window_ms` may hold a slot a little to gather more).
//!
//! # Honest overload
//!
//! nova gives up on a vendordata target after its read timeout (5 s by
//! default) and stores nothing; a request that waits longer has used a
//! slot of the queue for nothing. When the queue is deeper than the slots
//! can serve within `[ipa] queue_deadline`, judged from the calls' observed
//! duration, a request is refused at once with [`IpaError::Overloaded`]
//! (503 with `Retry-After` for nova and the guest), and one that is still
//! queued when its deadline comes is taken out and refused the same way.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::command::{CommandOutput, IpaCommand};
use super::error::IpaError;
use super::host_lock::HostGuard;

/// One result per command, in order.
pub type ItemResults = Vec<Result<CommandOutput, IpaError>>;
/// The result of one `batch` call: `Err` when the call as a whole failed.
pub type CallResult = Result<ItemResults, IpaError>;

/// Sends one `batch` holding a slot: the IPA client, or a fake in tests.
pub trait BatchSender: Send + Sync + 'static {
    /// Sends `cmds` as one `batch`, holding `slot` until the call ends.
    fn send(
        &self,
        cmds: Vec<IpaCommand>,
        slot: OwnedSemaphorePermit,
    ) -> BoxFuture<'static, CallResult>;
}

/// How the queue batches and sheds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueSettings {
    /// Most commands in one call (`[ipa] batch_max`); 1 sends each
    /// enrollment alone.
    pub batch_max: usize,
    /// How long a slot's new holder waits for more enrollments before it
    /// sends (`[ipa] batch_window_ms`); zero sends at once.
    pub window: Duration,
    /// Within how long a queued enrollment must be able to finish
    /// (`[ipa] queue_deadline`); `None` never refuses.
    pub deadline: Option<Duration>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            batch_max: 50,
            window: Duration::ZERO,
            deadline: Some(Duration::from_secs(4)),
        }
    }
}

struct Job {
    id: u64,
    cmds: Vec<IpaCommand>,
    // Held until the call carrying the job has ended.
    guard: Option<HostGuard>,
    reply: oneshot::Sender<CallResult>,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    queued_items: usize,
    next_id: u64,
    /// Moving average of a call's duration, once one has ended.
    call_time: Option<Duration>,
}

struct Shared {
    slots: Arc<Semaphore>,
    slot_count: usize,
    settings: QueueSettings,
    state: Mutex<State>,
}

/// The queue in front of IPA's call slots. Cheap to clone.
#[derive(Clone)]
pub struct CallQueue {
    shared: Arc<Shared>,
}

/// Weight of the newest call in the moving average of call durations.
const CALL_TIME_WEIGHT: f64 = 0.2;

impl CallQueue {
    /// A queue in front of `slots` (of which there are `slot_count`).
    pub fn new(slots: Arc<Semaphore>, slot_count: usize, settings: QueueSettings) -> Self {
        Self {
            shared: Arc::new(Shared {
                slots,
                slot_count: slot_count.max(1),
                settings: QueueSettings {
                    batch_max: settings.batch_max.max(1),
                    ..settings
                },
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many enrollments are waiting for a slot.
    pub fn depth(&self) -> usize {
        self.state().jobs.len()
    }

    /// Runs `cmds` (holding `guard`, when given, until the call ends),
    /// alone or with other queued work. Waits for the answer until
    /// `deadline` (then [`IpaError::Timeout`] of `limit`; a call already
    /// sent goes on); refuses at once with [`IpaError::Overloaded`] when
    /// the queue cannot serve it within the queue deadline.
    pub async fn run<S: BatchSender + Clone>(
        &self,
        sender: &S,
        cmds: Vec<IpaCommand>,
        guard: Option<HostGuard>,
        deadline: Instant,
        limit: Duration,
    ) -> CallResult {
        let (tx, mut rx) = oneshot::channel();
        let id;
        let mut shed_at = None;
        {
            let mut st = self.state();
            if let Some(queue_deadline) = self.shared.settings.deadline {
                if let Some((wait, call)) = self.estimate(&st, cmds.len()) {
                    if wait + call > queue_deadline {
                        drop(st);
                        return Err(self.shed("estimate", wait + call));
                    }
                }
                let call = st.call_time.unwrap_or_default();
                shed_at = Some(Instant::now() + queue_deadline.saturating_sub(call));
            }
            id = st.next_id;
            st.next_id += 1;
            st.queued_items += cmds.len();
            st.jobs.push_back(Job {
                id,
                cmds,
                guard,
                reply: tx,
            });
            crate::metrics::ipa_queue_depth(st.jobs.len());
        }
        while self.is_queued(id) {
            let shed_wait = async {
                match shed_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                answer = &mut rx => return answer.unwrap_or_else(|_| Err(task_failed())),
                slot = self.shared.slots.clone().acquire_owned() => {
                    let slot = slot.map_err(|_| IpaError::Setup("client closed".into()))?;
                    self.lead(sender, slot).await;
                }
                () = shed_wait => {
                    shed_at = None;
                    if self.withdraw(id) {
                        let st = self.state();
                        let finish = self
                            .estimate(&st, 0)
                            .map(|(w, c)| w + c)
                            .unwrap_or_default();
                        drop(st);
                        return Err(self.shed("waited", finish));
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    self.withdraw(id);
                    return Err(IpaError::Timeout(limit));
                }
            }
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(answer) => answer.unwrap_or_else(|_| Err(task_failed())),
            Err(_) => Err(IpaError::Timeout(limit)),
        }
    }

    /// The wait for a slot and one call's duration for `own` more commands
    /// queued now; `None` before any call has ended (nothing to judge by)
    /// or when a slot is free and nothing queued.
    fn estimate(&self, st: &State, own: usize) -> Option<(Duration, Duration)> {
        let call = st.call_time?;
        if st.jobs.is_empty() && self.shared.slots.available_permits() > 0 {
            return None;
        }
        let per_call = self.shared.settings.batch_max.max(own).max(1);
        let calls = (st.queued_items + own).div_ceil(per_call).max(1);
        // The calls in flight end first; then the queue ahead, slot_count
        // calls at a time.
        let rounds = 1 + (calls - 1) / self.shared.slot_count;
        Some((call * rounds as u32, call))
    }

    fn shed(&self, reason: &'static str, finish: Duration) -> IpaError {
        crate::metrics::ipa_shed(reason);
        let retry_after = Duration::from_secs(finish.as_secs_f64().ceil().max(1.0) as u64);
        tracing::warn!(
            reason,
            queued = self.depth(),
            retry_after_s = retry_after.as_secs(),
            "refused an IPA write: the queue for IPA cannot serve it within [ipa] queue_deadline"
        );
        IpaError::Overloaded { retry_after }
    }

    fn is_queued(&self, id: u64) -> bool {
        self.state().jobs.iter().any(|j| j.id == id)
    }

    /// Takes job `id` out of the queue (its host lock is released); false
    /// when a call has taken it already.
    fn withdraw(&self, id: u64) -> bool {
        let mut st = self.state();
        let Some(pos) = st.jobs.iter().position(|j| j.id == id) else {
            return false;
        };
        if let Some(job) = st.jobs.remove(pos) {
            st.queued_items -= job.cmds.len();
        }
        crate::metrics::ipa_queue_depth(st.jobs.len());
        true
    }

    /// With a slot: takes the queue's head (up to `batch_max` commands) and
    /// sends it as one call in a task of its own; releases the slot when
    /// the queue is empty.
    async fn lead<S: BatchSender + Clone>(&self, sender: &S, slot: OwnedSemaphorePermit) {
        let settings = self.shared.settings;
        if !settings.window.is_zero() && self.state().queued_items < settings.batch_max {
            tokio::time::sleep(settings.window).await;
        }
        let jobs = {
            let mut st = self.state();
            let mut taken: Vec<Job> = Vec::new();
            let mut items = 0;
            while let Some(front) = st.jobs.front() {
                let n = front.cmds.len();
                if !front.reply.is_closed() && !taken.is_empty() && items + n > settings.batch_max {
                    break;
                }
                let job = st.jobs.pop_front().expect("front exists");
                st.queued_items -= n;
                // A caller that has gone without taking its job out: send
                // nothing for it.
                if job.reply.is_closed() {
                    continue;
                }
                items += n;
                taken.push(job);
            }
            crate::metrics::ipa_queue_depth(st.jobs.len());
            taken
        };
        if jobs.is_empty() {
            return;
        }
        let cmds: Vec<IpaCommand> = jobs.iter().flat_map(|j| j.cmds.iter().cloned()).collect();
        crate::metrics::ipa_batch(jobs.len(), cmds.len());
        let call = sender.send(cmds, slot);
        let queue = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let out = call.await;
            queue.record_call(started.elapsed());
            deliver(out, jobs);
        });
    }

    fn record_call(&self, took: Duration) {
        let mut st = self.state();
        st.call_time = Some(match st.call_time {
            None => took,
            Some(avg) => avg.mul_f64(1.0 - CALL_TIME_WEIGHT) + took.mul_f64(CALL_TIME_WEIGHT),
        });
    }
}

fn task_failed() -> IpaError {
    IpaError::Protocol("the IPA call task ended without an answer".into())
}

/// Hands each job its own part of the call's result, then releases its
/// host lock.
fn deliver(out: CallResult, jobs: Vec<Job>) {
    match out {
        Ok(items) => {
            let mut items = items.into_iter();
            for job in jobs {
                let mine: ItemResults = items.by_ref().take(job.cmds.len()).collect();
                let answer = if mine.len() == job.cmds.len() {
                    Ok(mine)
                } else {
                    Err(IpaError::Protocol(
                        "the batch returned fewer results than it carried commands".into(),
                    ))
                };
                let _ = job.reply.send(answer);
                drop(job.guard);
            }
        }
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(e.duplicate()));
                drop(job.guard);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipa::host_lock::HostLocks;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fake IPA: each call takes `cost`, records the commands it carried,
    /// and answers each `host_add` with success, except for hosts named
    /// `bad*`, which fail on their own.
    #[derive(Clone)]
    struct FakeIpa {
        cost: Duration,
        calls: Arc<Mutex<Vec<Vec<String>>>>,
        fail_call: Arc<AtomicUsize>,
    }

    impl FakeIpa {
        fn new(cost_ms: u64) -> Self {
            Self {
                cost: Duration::from_millis(cost_ms),
                calls: Arc::default(),
                fail_call: Arc::default(),
            }
        }
        fn calls(&self) -> Vec<Vec<String>> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl BatchSender for FakeIpa {
        fn send(
            &self,
            cmds: Vec<IpaCommand>,
            slot: OwnedSemaphorePermit,
        ) -> BoxFuture<'static, CallResult> {
            let me = self.clone();
            Box::pin(async move {
                let _slot = slot;
                me.calls
                    .lock()
                    .unwrap()
                    .push(cmds.iter().map(|c| c.describe()).collect());
                tokio::time::sleep(me.cost).await;
                if me.fail_call.load(Ordering::SeqCst) > 0 {
                    me.fail_call.fetch_sub(1, Ordering::SeqCst);
                    return Err(IpaError::Unreachable {
                        url: "https://ipa.example.test/ipa".into(),
                        attempts: 1,
                        last: "connection refused".into(),
                    });
                }
                Ok(cmds
                    .iter()
                    .map(|c| {
                        let name = c.args()[0].as_str().unwrap_or_default().to_string();
                        if name.starts_with("bad") {
                            Err(IpaError::from_remote(crate::ipa::RemoteError {
                                code: 3009,
                                name: "ValidationError".into(),
                                message: format!("invalid {name}"),
                                data: serde_json::Value::Null,
                            }))
                        } else {
                            Ok(CommandOutput(json!({"result": {"fqdn": [name]}})))
                        }
                    })
                    .collect())
            })
        }
    }

    fn cmd(host: &str) -> IpaCommand {
        IpaCommand::host_show(host)
    }

    fn queue(slots: usize, settings: QueueSettings) -> CallQueue {
        CallQueue::new(Arc::new(Semaphore::new(slots)), slots, settings)
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    fn off() -> QueueSettings {
        QueueSettings {
            deadline: None,
            ..QueueSettings::default()
        }
    }

    async fn run_many(
        q: &CallQueue,
        ipa: &FakeIpa,
        batches: Vec<Vec<IpaCommand>>,
    ) -> Vec<CallResult> {
        let tasks: Vec<_> = batches
            .into_iter()
            .map(|cmds| {
                let (q, ipa) = (q.clone(), ipa.clone());
                tokio::spawn(async move {
                    q.run(&ipa, cmds, None, far(), Duration::from_secs(30))
                        .await
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn alone_it_is_its_own_call_at_once() {
        let q = queue(4, QueueSettings::default());
        let ipa = FakeIpa::new(0);
        let started = std::time::Instant::now();
        let out = q
            .run(
                &ipa,
                vec![cmd("vm1.example.test")],
                None,
                far(),
                Duration::from_secs(1),
            )
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_millis(500));
        assert_eq!(out.len(), 1);
        assert_eq!(
            ipa.calls(),
            vec![vec!["host_show vm1.example.test".to_string()]]
        );
        assert_eq!(q.depth(), 0);
    }

    #[tokio::test]
    async fn waiting_enrollments_share_a_call_and_each_gets_its_own_results_in_order() {
        let q = queue(1, off());
        let ipa = FakeIpa::new(50);
        let batches: Vec<Vec<IpaCommand>> = (0..10)
            .map(|i| {
                vec![
                    cmd(&format!("vm{i}.example.test")),
                    cmd(&format!("sub{i}.example.test")),
                ]
            })
            .collect();
        let out = run_many(&q, &ipa, batches).await;
        for (i, r) in out.into_iter().enumerate() {
            let items = r.unwrap();
            let names: Vec<String> = items
                .iter()
                .map(|x| {
                    x.as_ref().unwrap().0["result"]["fqdn"][0]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            assert_eq!(
                names,
                vec![
                    format!("vm{i}.example.test"),
                    format!("sub{i}.example.test")
                ]
            );
        }
        let calls = ipa.calls();
        assert!(calls.len() < 10, "batched: {calls:?}");
        for call in &calls {
            // Each enrollment's two items stay together and in order.
            for pair in call.chunks(2) {
                assert!(
                    pair[0].starts_with("host_show vm") && pair[1].starts_with("host_show sub")
                );
                assert_eq!(
                    pair[0][12..]
                        .split('.')
                        .next()
                        .unwrap()
                        .trim_start_matches("vm"),
                    pair[1][13..].split('.').next().unwrap()
                );
            }
        }
    }

    #[tokio::test]
    async fn a_call_carries_at_most_batch_max_commands_and_never_splits_an_enrollment() {
        let q = queue(
            1,
            QueueSettings {
                batch_max: 5,
                ..off()
            },
        );
        let ipa = FakeIpa::new(30);
        let batches: Vec<Vec<IpaCommand>> = (0..12)
            .map(|i| {
                (0..2)
                    .map(|j| cmd(&format!("h{i}-{j}.example.test")))
                    .collect()
            })
            .chain(std::iter::once(
                (0..7)
                    .map(|j| cmd(&format!("big{j}.example.test")))
                    .collect(),
            ))
            .collect();
        let out = run_many(&q, &ipa, batches).await;
        assert!(out.iter().all(Result::is_ok));
        for call in ipa.calls() {
            assert!(
                call.len() <= 5 || call.iter().all(|c| c.contains("big")),
                "{call:?}"
            );
            let hosts: Vec<&str> = call
                .iter()
                .filter(|c| c.contains(" h"))
                .map(|c| c.split('-').next().unwrap())
                .collect();
            for pair in hosts.chunks(2) {
                assert_eq!(pair.len(), 2, "split enrollment in {call:?}");
                assert_eq!(pair[0], pair[1]);
            }
        }
    }

    #[tokio::test]
    async fn batch_max_one_sends_each_enrollment_alone() {
        let q = queue(
            1,
            QueueSettings {
                batch_max: 1,
                ..off()
            },
        );
        let ipa = FakeIpa::new(10);
        let batches = (0..6)
            .map(|i| vec![cmd(&format!("vm{i}.example.test"))])
            .collect();
        let out = run_many(&q, &ipa, batches).await;
        assert!(out.iter().all(Result::is_ok));
        assert_eq!(ipa.calls().len(), 6);
    }

    #[tokio::test]
    async fn one_instance_failure_does_not_fail_another() {
        let q = queue(1, off());
        let ipa = FakeIpa::new(30);
        let batches = vec![
            vec![cmd("first.example.test")],
            vec![cmd("bad.example.test")],
            vec![cmd("good.example.test")],
        ];
        let out = run_many(&q, &ipa, batches).await;
        assert!(out[0].as_ref().unwrap()[0].is_ok());
        assert!(matches!(
            out[1].as_ref().unwrap()[0],
            Err(IpaError::Validation(_))
        ));
        assert!(out[2].as_ref().unwrap()[0].is_ok());
        assert!(
            ipa.calls().iter().any(|c| c.len() == 2),
            "the last two shared a call"
        );
    }

    #[tokio::test]
    async fn a_failed_call_reaches_each_caller_in_it() {
        let q = queue(1, off());
        let ipa = FakeIpa::new(30);
        ipa.fail_call.store(2, Ordering::SeqCst);
        let batches = (0..4)
            .map(|i| vec![cmd(&format!("vm{i}.example.test"))])
            .collect();
        let out = run_many(&q, &ipa, batches).await;
        let failed = out
            .iter()
            .filter(|r| matches!(r, Err(IpaError::Unreachable { .. })))
            .count();
        assert_eq!(
            failed, 4,
            "the first call and the batch of the other three both failed: {out:?}"
        );
    }

    #[tokio::test]
    async fn the_host_lock_is_held_until_the_call_ends_even_after_the_caller_gave_up() {
        let locks = HostLocks::default();
        let q = queue(1, off());
        let ipa = FakeIpa::new(300);
        let guard = locks.lock("vm1.example.test").await;
        let gave_up = q
            .run(
                &ipa,
                vec![cmd("vm1.example.test")],
                Some(guard),
                Instant::now() + Duration::from_millis(50),
                Duration::from_millis(50),
            )
            .await;
        assert!(matches!(gave_up, Err(IpaError::Timeout(_))));
        assert_eq!(
            locks.busy_hosts(),
            1,
            "the detached call still holds the host"
        );
        tokio::time::timeout(Duration::from_secs(2), locks.lock("vm1.example.test"))
            .await
            .expect("released when the call ended");
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_while_queued_sends_nothing_and_frees_its_host() {
        let locks = HostLocks::default();
        let q = queue(1, off());
        let ipa = FakeIpa::new(300);
        let busy = {
            let (q, ipa) = (q.clone(), ipa.clone());
            tokio::spawn(async move {
                q.run(
                    &ipa,
                    vec![cmd("other.example.test")],
                    None,
                    far(),
                    Duration::from_secs(5),
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let guard = locks.lock("vm1.example.test").await;
        let gave_up = q
            .run(
                &ipa,
                vec![cmd("vm1.example.test")],
                Some(guard),
                Instant::now() + Duration::from_millis(50),
                Duration::from_millis(50),
            )
            .await;
        assert!(matches!(gave_up, Err(IpaError::Timeout(_))));
        assert_eq!(locks.busy_hosts(), 0, "the host is free at once");
        assert_eq!(q.depth(), 0);
        busy.await.unwrap().unwrap();
        assert!(
            ipa.calls().iter().flatten().all(|c| !c.contains("vm1")),
            "{:?}",
            ipa.calls()
        );
    }

    #[tokio::test]
    async fn a_queue_that_cannot_serve_in_time_refuses_at_once_with_a_retry_time() {
        let q = queue(
            1,
            QueueSettings {
                batch_max: 1,
                deadline: Some(Duration::from_millis(250)),
                ..QueueSettings::default()
            },
        );
        let ipa = FakeIpa::new(100);
        // A first call teaches the queue how long calls take.
        q.run(
            &ipa,
            vec![cmd("warm.example.test")],
            None,
            far(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let batches = (0..8)
            .map(|i| vec![cmd(&format!("vm{i}.example.test"))])
            .collect();
        let out = run_many(&q, &ipa, batches).await;
        let shed: Vec<_> = out
            .iter()
            .filter_map(|r| match r {
                Err(IpaError::Overloaded { retry_after }) => Some(*retry_after),
                _ => None,
            })
            .collect();
        assert!(!shed.is_empty(), "{out:?}");
        assert!(shed.iter().all(|d| *d >= Duration::from_secs(1)));
        let served = out.iter().filter(|r| r.is_ok()).count();
        assert!(served >= 1, "{out:?}");
        assert_eq!(served + shed.len(), 8, "{out:?}");
        assert_eq!(
            ipa.calls().len(),
            1 + served,
            "nothing sent for a refused request"
        );
    }

    #[tokio::test]
    async fn without_a_deadline_nothing_is_refused() {
        let q = queue(
            1,
            QueueSettings {
                batch_max: 1,
                ..off()
            },
        );
        let ipa = FakeIpa::new(20);
        let batches = (0..8)
            .map(|i| vec![cmd(&format!("vm{i}.example.test"))])
            .collect();
        assert!(run_many(&q, &ipa, batches).await.iter().all(Result::is_ok));
    }
}
