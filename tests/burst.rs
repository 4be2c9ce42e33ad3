//! A boot storm: many distinct instances boot at once and each is polled 5
//! times, as nova's metadata service asks on every guest read, against an
//! IPA that takes 50 ms per call and a cap on IPA calls in flight
//! (`[ipa] max_concurrent_calls`).
//!
//! Asserted: exactly one enrollment (one `host_add`, one IPA round trip)
//! per instance, every answer a 200, the five answers of an instance
//! identical and their OTP the one IPA holds, and exactly the cap in
//! flight at IPA at its fullest (never more, and the slots filled). The
//! total time against the bound the cap implies
//! (`ceil(IPA round trips / cap) × 50 ms`) is printed, not asserted: it is
//! a benchmark figure (`bench/run.sh`).
//!
//! Cross-request batching and shedding are off here (`[ipa] batch_max = 1`,
//! `queue_deadline = 0`): this test holds the one-call-per-enrollment path
//! to its bound, every request waiting its turn; tests/storm.rs covers
//! batching and shedding.
//!
//! Size: `NOVAJOIN_BURST_INSTANCES` (default 500, the CI size) and
//! `NOVAJOIN_BURST_CAP` (default 2, so the CI run is about 13 s, yet
//! dominated by the cap). `bench/run.sh` runs it at full size (5,000
//! instances, cap 16) against release binaries.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::vendordata::{enroll, new_instance_id, nova_body, ServiceEnv};
use tokio::sync::Semaphore;

/// IPA's latency per call in this test.
const IPA_LATENCY: Duration = Duration::from_millis(50);
/// Requests per instance.
const POLLS: usize = 5;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        })
        .unwrap_or(default)
}

/// User + system CPU time a process has used so far (Linux /proc).
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_storm_enrolls_each_instance_once_within_the_cap_bound() {
    let n = env_usize("NOVAJOIN_BURST_INSTANCES", 500);
    let cap = env_usize("NOVAJOIN_BURST_CAP", 2);
    // nova's metadata API has a bounded number of workers in front of us;
    // this also keeps both processes within their file descriptor limit.
    let connections = env_usize("NOVAJOIN_BURST_CONNECTIONS", 1024);
    let env = Arc::new(
        ServiceEnv::builder()
            .ipa_cap(cap)
            .ipa_lines("batch_max = 1\nqueue_deadline = 0")
            .ipa_latency(IPA_LATENCY)
            .rust_log(&std::env::var("NOVAJOIN_BURST_RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .start()
            .await,
    );
    env.ipa.reset_counters();
    // The novajoin README recommends a 30 s vendordata read timeout for
    // nova: the first request of the last instances waits for the cap.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    let slots = Arc::new(Semaphore::new(connections));
    let instances: Vec<(String, String)> = (0..n)
        .map(|i| {
            let host = format!("burst{i}");
            let body = nova_body(&host, &new_instance_id(), enroll());
            (host, body)
        })
        .collect();

    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for (host, body) in instances {
        let (env, client, slots) = (env.clone(), client.clone(), slots.clone());
        tasks.push(tokio::spawn(async move {
            let poll = || async {
                let _slot = slots.acquire().await.unwrap();
                match env.try_post(&client, &body).await {
                    Ok(r) => r,
                    Err(e) => (0, e.to_string()),
                }
            };
            // Two metadata workers ask at once, then the guest reads again.
            let (a, b) = tokio::join!(poll(), poll());
            let mut answers = vec![a, b];
            for _ in 2..POLLS {
                tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 20)).await;
                answers.push(poll().await);
            }
            (host, answers)
        }));
    }
    let mut answers: HashMap<String, Vec<(u16, String)>> = HashMap::with_capacity(n);
    for t in tasks {
        let (host, a) = t.await.unwrap();
        answers.insert(host, a);
    }
    let elapsed = started.elapsed();
    let server_cpu = process_cpu(env.server.pid());
    let own_cpu = process_cpu(std::process::id());
    if let Ok(path) = std::env::var("NOVAJOIN_BURST_KEEP_LOG") {
        std::fs::write(path, env.server.logs()).unwrap();
    }

    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for a in answers.values().flatten() {
        *by_status.entry(a.0).or_default() += 1;
    }
    let sample = answers.values().flatten().find(|a| a.0 != 200);
    assert_eq!(
        by_status.get(&200).copied().unwrap_or(0),
        n * POLLS,
        "every answer is a 200 (status counts, 0 = no answer: {by_status:?}); after {elapsed:?}, e.g. {sample:?}"
    );
    for (host, a) in &answers {
        let first: Value = serde_json::from_str(&a[0].1).unwrap();
        assert!(
            a.iter().all(|x| x.1 == a[0].1),
            "{host}: the five answers differ"
        );
        assert_eq!(
            first["ipaotp"].as_str(),
            env.otp_in_ipa(host).as_deref(),
            "{host}: the OTP is IPA's"
        );
    }
    let host_adds = env.ipa.commands("host_add");
    let round_trips = env.ipa.round_trips();
    let logins = env.ipa.logins();
    assert_eq!(host_adds, n as u64, "exactly one enrollment per instance");
    assert_eq!(env.ipa.hosts().len(), n + 1, "N hosts and IPA's own");
    assert_eq!(
        round_trips,
        n as u64,
        "one IPA round trip per enrollment: {:?}",
        env.ipa.round_trips_by_method()
    );
    let max_in_flight = env.ipa.max_in_flight();
    assert_eq!(
        max_in_flight, cap as u64,
        "IPA saw at most {max_in_flight} calls at once; the cap is {cap}, and a storm fills it"
    );
    // Every IPA request (the round trips and the login) holds a slot for
    // at least the latency: that many waves of `cap` cannot take less.
    let ipa_requests = round_trips + logins;
    let waves = ipa_requests.div_ceil(cap as u64);
    let bound = IPA_LATENCY * waves as u32;
    let ratio = elapsed.as_secs_f64() / bound.as_secs_f64();
    eprintln!(
        "burst: {n} instances x {POLLS} polls, cap {cap}, IPA latency {IPA_LATENCY:?}: {ipa_requests} IPA requests, \
         most in flight {max_in_flight}; total {elapsed:.2?}, cap-implied bound {bound:.2?}, ratio {ratio:.3}; \
         CPU: server {server_cpu:.2?}, test process (clients and IPA double) {own_cpu:.2?}"
    );
}
