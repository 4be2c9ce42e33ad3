//! A small boot storm against an IPA shaped like IPA (a fixed cost per call
//! and a cost per command), with cross-request batching on.
//!
//! * `storm_enrolls_each_instance_once_in_shared_calls`: every instance
//!   is asked for six times at once (nova's metadata workers building the
//!   config drive); asserted: every answer a 200, an instance's answers
//!   identical and their OTP the one IPA holds, exactly one `host_add`
//!   per instance, no OTP handed to two instances, fewer IPA calls than
//!   instances (enrollments shared calls), never more than the cap in
//!   flight.
//! * `twins_claiming_one_name_in_shared_calls_get_one_owner`: the hostile
//!   tenant boots a second instance under each name of a storm at the
//!   same moment; whichever IPA saw first owns the host, the other gets
//!   409 on every request and its OTP is never set, though their
//!   enrollments travel in the same calls as everyone else's.
//! * `a_queue_that_cannot_serve_in_time_answers_503_with_retry_after`: with
//!   a tiny `[ipa] queue_deadline`, requests beyond what the slots serve
//!   at once get 503 with `Retry-After` and leave nothing in IPA; those
//!   served are whole.
//!
//! Size: `NOVAJOIN_STORM_INSTANCES` (default 500). Figures at scale come
//! from bench/storm.sh.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::vendordata::{enroll, new_instance_id, nova_body, ServiceEnv};
use tokio::sync::Semaphore;

/// nova's config-drive build asks this many times per instance.
const POSTS: usize = 6;
/// IPA's cost model in these tests.
const PER_CALL: Duration = Duration::from_millis(30);
const PER_ITEM: Duration = Duration::from_millis(5);

fn instances() -> usize {
    std::env::var("NOVAJOIN_STORM_INSTANCES")
        .ok()
        .map(|v| v.parse().expect("NOVAJOIN_STORM_INSTANCES is a number"))
        .unwrap_or(500)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_enrolls_each_instance_once_in_shared_calls() {
    let n = instances();
    let cap = 4;
    let env = Arc::new(
        ServiceEnv::builder()
            .ipa_cap(cap)
            // Correctness only: every request waits its turn.
            .ipa_lines("batch_max = 50\nqueue_deadline = 0")
            .rust_log("warn")
            .start()
            .await,
    );
    env.ipa.set_cost_model(PER_CALL, PER_ITEM);
    env.ipa.reset_counters();
    let client = client();
    // nova's metadata API has a bounded number of workers in front of us.
    let connections = Arc::new(Semaphore::new(256));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let host = format!("storm{i}");
        let body = nova_body(&host, &new_instance_id(), enroll());
        let (env, client, connections) = (env.clone(), client.clone(), connections.clone());
        tasks.push(tokio::spawn(async move {
            let posts = (0..POSTS).map(|_| {
                let (env, client, connections, body) = (
                    env.clone(),
                    client.clone(),
                    connections.clone(),
                    body.clone(),
                );
                async move {
                    let _c = connections.acquire().await.unwrap();
                    env.try_post(&client, &body)
                        .await
                        .unwrap_or_else(|e| (0, e.to_string()))
                }
            });
            (host, futures::future::join_all(posts).await)
        }));
    }
    let mut answers: HashMap<String, Vec<(u16, String)>> = HashMap::with_capacity(n);
    for t in tasks {
        let (host, a) = t.await.unwrap();
        answers.insert(host, a);
    }

    let bad: Vec<_> = answers
        .iter()
        .flat_map(|(h, a)| a.iter().map(move |x| (h, x)))
        .filter(|(_, a)| a.0 != 200)
        .take(3)
        .collect();
    assert!(bad.is_empty(), "every answer is a 200, e.g. {bad:?}");
    let mut otps = HashSet::new();
    for (host, a) in &answers {
        assert!(
            a.iter().all(|x| x.1 == a[0].1),
            "{host}: the answers differ"
        );
        let first: Value = serde_json::from_str(&a[0].1).unwrap();
        let otp = first["ipaotp"].as_str().expect("an OTP").to_string();
        assert_eq!(
            Some(otp.as_str()),
            env.otp_in_ipa(host).as_deref(),
            "{host}: the OTP is IPA's"
        );
        assert!(otps.insert(otp), "{host}: its OTP was handed out before");
    }
    assert_eq!(
        env.ipa.commands("host_add"),
        n as u64,
        "exactly one enrollment per instance"
    );
    assert_eq!(env.ipa.hosts().len(), n + 1, "N hosts and IPA's own");
    let calls = env.ipa.round_trips();
    let carried = env.ipa.commands_carried();
    eprintln!(
        "storm: {n} instances x {POSTS} posts, cap {cap}: {calls} IPA calls carrying {carried} \
         commands ({:.3} calls per instance), most in flight {}",
        calls as f64 / n as f64,
        env.ipa.max_in_flight()
    );
    assert!(
        calls < n as u64,
        "enrollments shared calls: {calls} calls for {n} instances ({:?})",
        env.ipa.round_trips_by_method()
    );
    assert!(carried > calls, "calls carried several commands");
    assert!(env.ipa.max_in_flight() <= cap as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twins_claiming_one_name_in_shared_calls_get_one_owner() {
    let pairs = 100;
    let env = Arc::new(
        ServiceEnv::builder()
            .ipa_cap(2)
            .ipa_lines("queue_deadline = 0")
            .rust_log("warn")
            .start()
            .await,
    );
    env.ipa.set_cost_model(PER_CALL, PER_ITEM);
    env.ipa.reset_counters();
    let client = client();
    let mut tasks = Vec::new();
    for i in 0..pairs {
        let host = format!("twin{i}");
        for twin in 0..2 {
            let body = nova_body(&host, &new_instance_id(), enroll());
            let (env, client, host) = (env.clone(), client.clone(), host.clone());
            tasks.push(tokio::spawn(async move {
                let posts = (0..3).map(|_| env.try_post(&client, &body));
                let answers: Vec<(u16, String)> = futures::future::join_all(posts)
                    .await
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|e| (0, e.to_string())))
                    .collect();
                (host, twin, answers)
            }));
        }
    }
    let mut by_host: HashMap<String, Vec<Vec<(u16, String)>>> = HashMap::new();
    for t in tasks {
        let (host, _, answers) = t.await.unwrap();
        by_host.entry(host).or_default().push(answers);
    }
    for (host, twins) in &by_host {
        let winners: Vec<_> = twins
            .iter()
            .filter(|a| a.iter().all(|x| x.0 == 200))
            .collect();
        let losers = twins
            .iter()
            .filter(|a| a.iter().all(|x| x.0 == 409))
            .count();
        assert_eq!(
            (winners.len(), losers),
            (1, 1),
            "{host}: one owner, one refused: {twins:?}"
        );
        let v: Value = serde_json::from_str(&winners[0][0].1).unwrap();
        assert_eq!(
            v["ipaotp"].as_str(),
            env.otp_in_ipa(host).as_deref(),
            "{host}: IPA holds the owner's OTP"
        );
    }
    let requests = (pairs * 2 * 3) as u64;
    assert!(
        env.ipa.round_trips() < requests,
        "enrollments shared calls ({} calls)",
        env.ipa.round_trips()
    );
    assert!(env.ipa.commands_carried() > env.ipa.round_trips());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_cannot_serve_in_time_answers_503_with_retry_after() {
    let n = 40;
    let env = Arc::new(
        ServiceEnv::builder()
            .ipa_cap(1)
            .ipa_lines("batch_max = 1\nqueue_deadline = 0.001")
            .rust_log("warn")
            .start()
            .await,
    );
    // Slow enough that the other requests find the one slot taken.
    env.ipa
        .set_cost_model(Duration::from_millis(300), Duration::ZERO);
    let client = client();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let host = format!("shed{i}");
            let body = nova_body(&host, &new_instance_id(), enroll());
            let (env, client) = (env.clone(), client.clone());
            tokio::spawn(async move {
                let answer = env
                    .try_post_retry_after(&client, &body)
                    .await
                    .expect("an answer");
                (host, answer)
            })
        })
        .collect();
    let mut served = 0;
    let mut shed = 0;
    for t in tasks {
        let (host, (status, retry_after, body)) = t.await.unwrap();
        match status {
            200 => {
                served += 1;
                let v: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(
                    v["ipaotp"].as_str(),
                    env.otp_in_ipa(&host).as_deref(),
                    "{host}: the OTP is IPA's"
                );
            }
            503 => {
                shed += 1;
                let secs: u64 = retry_after
                    .as_deref()
                    .unwrap_or_else(|| panic!("{host}: 503 without Retry-After: {body}"))
                    .parse()
                    .expect("Retry-After in seconds");
                assert!(secs >= 1, "{host}: Retry-After {secs}");
                assert!(body.contains("queue_deadline"), "{host}: {body}");
                assert!(
                    env.otp_in_ipa(&host).is_none(),
                    "{host}: refused, yet sent to IPA"
                );
            }
            other => panic!("{host}: {other} {body}"),
        }
    }
    assert!(served >= 1, "the first request is served");
    assert!(shed >= 1, "requests beyond the slot are refused");
    assert_eq!(served + shed, n);
}
