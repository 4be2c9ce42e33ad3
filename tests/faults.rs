//! Fault injection against the whole service (the real `novajoin server`
//! binary, the repository's pipeline, nova's real keystone token): IPA down,
//! slower than nova's read timeout and flapping during enrollment; keystone
//! down; Redis down mid-run; SIGTERM during load.
//!
//! The invariants, whatever fails:
//! * nova gets an answer before its read timeout (5 s by default), and a
//!   failure is a 5xx, never a 200 without `ipaotp`;
//! * every OTP handed out is the one IPA holds for the host, once IPA has
//!   finished everything it was asked (abandoned calls included);
//! * the service recovers without a restart.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use novajoin::ownership::{HostBinding, HOST_DESCRIPTION};
use serde_json::Value;
use support::ipa::Fault;
use support::redis::PrivateRedis;
use support::vendordata::{
    enroll, new_instance_id, nova_body, nova_client, ServiceEnv, NOVA_READ_TIMEOUT,
};

/// `[ipa] timeout` for these tests: below nova's read timeout, as the
/// option's documentation asks.
const IPA_TIMEOUT_S: f64 = 3.0;

/// One instance nova asks about.
#[derive(Clone)]
struct Instance {
    id: String,
    host: String,
    body: String,
}

impl Instance {
    fn new(prefix: &str, i: usize) -> Self {
        let host = format!("{prefix}{i}");
        let id = new_instance_id();
        let body = nova_body(&host, &id, enroll());
        Self { id, host, body }
    }
}

/// What one request got.
#[derive(Debug)]
struct Outcome {
    status: Option<u16>,
    body: String,
    elapsed: Duration,
}

async fn ask(env: &ServiceEnv, client: &reqwest::Client, inst: &Instance) -> Outcome {
    let started = Instant::now();
    let r = env.try_post(client, &inst.body).await;
    let elapsed = started.elapsed();
    match r {
        Ok((s, body)) => Outcome {
            status: Some(s),
            body,
            elapsed,
        },
        Err(e) => Outcome {
            status: None,
            body: e.to_string(),
            elapsed,
        },
    }
}

/// Asserts the outcome is a 200 with an OTP or a 503 fault, answered before
/// nova's read timeout; returns the OTP of a 200.
fn check_answer(inst: &Instance, o: &Outcome) -> Option<String> {
    let status = o.status.unwrap_or_else(|| {
        panic!(
            "{}: no answer within nova's read timeout ({:?}): {}",
            inst.host, o.elapsed, o.body
        )
    });
    assert!(
        o.elapsed < NOVA_READ_TIMEOUT,
        "{}: answered after {:?}",
        inst.host,
        o.elapsed
    );
    let v: Value = serde_json::from_str(&o.body)
        .unwrap_or_else(|_| panic!("{}: not JSON ({status}): {}", inst.host, o.body));
    match status {
        200 => {
            let otp = v["ipaotp"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: 200 without ipaotp: {v}", inst.host));
            assert_eq!(v["hostname"], format!("{}.example.test", inst.host));
            Some(otp.to_string())
        }
        503 => {
            assert_eq!(v["serviceUnavailable"]["code"], 503, "{}: {v}", inst.host);
            None
        }
        s => panic!("{}: unexpected status {s}: {v}", inst.host),
    }
}

/// Asks until a 200 (or `attempts` run out), checking every answer on the
/// way; returns every OTP handed out.
async fn poll_until_enrolled(
    env: &ServiceEnv,
    client: &reqwest::Client,
    inst: &Instance,
    attempts: usize,
) -> Vec<String> {
    let mut otps = Vec::new();
    for _ in 0..attempts {
        let o = ask(env, client, inst).await;
        if let Some(otp) = check_answer(inst, &o) {
            otps.push(otp);
            return otps;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} not enrolled after {attempts} attempts", inst.host);
}

/// After IPA finished everything: each instance's OTPs are all the same
/// one, and IPA holds it.
async fn assert_ipa_holds(env: &ServiceEnv, otps: &HashMap<String, Vec<String>>) {
    env.wait_ipa_idle(Duration::from_secs(30)).await;
    for (host, given) in otps {
        let Some(first) = given.first() else { continue };
        assert!(
            given.iter().all(|o| o == first),
            "{host}: two different OTPs handed out"
        );
        assert_eq!(
            env.otp_in_ipa(host).as_deref(),
            Some(first.as_str()),
            "{host}: the OTP handed out is not the one IPA holds"
        );
    }
}

async fn ipa_env() -> ServiceEnv {
    ServiceEnv::builder()
        .ipa_timeout(IPA_TIMEOUT_S)
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipa_down_during_enrollment_is_a_timely_503_and_recovers_without_restart() {
    let env = Arc::new(ipa_env().await);
    let client = nova_client();
    env.ipa.set_latency(Duration::from_millis(300));
    let instances: Vec<Instance> = (0..20).map(|i| Instance::new("down", i)).collect();
    let mut tasks = Vec::new();
    for inst in instances.clone() {
        let (env, client) = (env.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let o = ask(&env, &client, &inst).await;
            (inst, o)
        }));
    }
    // IPA goes away while those are in flight.
    tokio::time::sleep(Duration::from_millis(150)).await;
    env.ipa.go_down().await;
    let mut otps: HashMap<String, Vec<String>> = HashMap::new();
    let mut failed = 0;
    for t in tasks {
        let (inst, o) = t.await.unwrap();
        match check_answer(&inst, &o) {
            Some(otp) => otps.entry(inst.host.clone()).or_default().push(otp),
            None => failed += 1,
        }
    }
    assert!(
        failed > 0,
        "IPA went down under the requests, some must have failed"
    );
    // While it is down, every answer is a timely 503.
    for inst in instances.iter().take(5) {
        let o = ask(&env, &client, inst).await;
        if check_answer(inst, &o).is_some() {
            assert!(
                otps.contains_key(&inst.host),
                "{}: enrolled while IPA was down",
                inst.host
            );
        }
    }
    env.ipa.set_latency(Duration::ZERO);
    env.ipa.go_up().await.unwrap();
    for inst in &instances {
        let got = poll_until_enrolled(&env, &client, inst, 10).await;
        otps.entry(inst.host.clone()).or_default().extend(got);
    }
    assert_eq!(otps.len(), instances.len());
    assert_ipa_holds(&env, &otps).await;
}

/// IPA takes 8 s per call, longer than `[ipa] timeout` (3 s) and nova's
/// read timeout (5 s), for a new host and one that exists already (a
/// rebuilt instance: its OTP is reset with host_mod); then it is fast
/// again. `finish_abandoned`: whether IPA still runs the calls novajoin gave
/// up on (real IPA behind Apache does; the double by default drops them
/// with the connection).
async fn slow_ipa(finish_abandoned: bool) {
    let env = ipa_env().await;
    let client = nova_client();
    let new = Instance::new("slow", 0);
    let existing = Instance::new("slow", 1);
    // The existing instance's host, bound to it, not enrolled yet.
    let bound = HostBinding::for_instance(Some(&existing.id), None, None).unwrap();
    env.ipa.seed_host_with(
        "slow1.example.test",
        Some(HOST_DESCRIPTION),
        Some(&bound.to_attribute()),
        false,
        None,
    );
    // novajoin is logged in to IPA already: what is slow is the enrollment
    // call itself, not the login.
    poll_until_enrolled(&env, &client, &Instance::new("slowwarm", 0), 1).await;
    env.ipa.finish_abandoned_calls(finish_abandoned);
    env.ipa.set_latency(Duration::from_secs(8));
    for inst in [&new, &existing] {
        let o = ask(&env, &client, inst).await;
        assert_eq!(o.status, Some(503), "{}: {o:?}", inst.host);
        check_answer(inst, &o);
        assert!(
            o.elapsed >= Duration::from_secs_f64(IPA_TIMEOUT_S - 0.5),
            "{}: gave up before [ipa] timeout: {:?}",
            inst.host,
            o.elapsed
        );
    }
    // IPA is fast again (the abandoned calls, if IPA runs them, land later).
    env.ipa.set_latency(Duration::ZERO);
    let mut otps = HashMap::new();
    for inst in [&new, &existing] {
        otps.insert(
            inst.host.clone(),
            poll_until_enrolled(&env, &client, inst, 5).await,
        );
    }
    assert_ipa_holds(&env, &otps).await;
    // nova asks again (cloud-init polling): same OTP, still IPA's.
    for inst in [&new, &existing] {
        let o = ask(&env, &client, inst).await;
        let otp = check_answer(inst, &o).expect("200");
        otps.get_mut(&inst.host).unwrap().push(otp);
    }
    assert_ipa_holds(&env, &otps).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipa_slower_than_novas_read_timeout_is_a_503_before_nova_gives_up() {
    slow_ipa(false).await;
}

/// The same, with IPA finishing the calls novajoin stopped waiting for, as
/// real IPA behind Apache does: the late `host_mod` of the first attempt
/// must not replace the OTP a later attempt handed out (novajoin keeps the
/// call open and makes the next enrollment of the host wait for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipa_call_landing_after_the_timeout_does_not_replace_the_otp_handed_out() {
    slow_ipa(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipa_flapping_during_enrollment_never_hands_out_an_otp_ipa_does_not_hold() {
    let env = Arc::new(ipa_env().await);
    let client = nova_client();
    env.ipa.finish_abandoned_calls(true);
    env.ipa.set_latency(Duration::from_millis(20));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Every 150 ms IPA changes mood: half its answers are 503s, dropped
    // connections, or run-then-lost answers; or it is well.
    let flapper = {
        let (env, stop) = (env.clone(), stop.clone());
        tokio::spawn(async move {
            let moods = [
                Some(Fault::Http503),
                Some(Fault::Drop),
                Some(Fault::LoseAnswer),
                None,
            ];
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match moods[i % moods.len()] {
                    Some(f) => env.ipa.set_failure_rate(0.5, f),
                    None => env.ipa.set_failure_rate(0.0, Fault::Http503),
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            env.ipa.set_failure_rate(0.0, Fault::Http503);
        })
    };
    let instances: Vec<Instance> = (0..40).map(|i| Instance::new("flap", i)).collect();
    let mut tasks = Vec::new();
    for inst in instances.clone() {
        let (env, client) = (env.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            // nova asks, and asks again (each guest read is a request).
            let mut outcomes = Vec::new();
            for _ in 0..6 {
                outcomes.push(ask(&env, &client, &inst).await);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (inst, outcomes)
        }));
    }
    let mut otps: HashMap<String, Vec<String>> = HashMap::new();
    let mut failures = 0;
    for t in tasks {
        let (inst, outcomes) = t.await.unwrap();
        for o in &outcomes {
            match check_answer(&inst, o) {
                Some(otp) => otps.entry(inst.host.clone()).or_default().push(otp),
                None => failures += 1,
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    flapper.await.unwrap();
    assert!(env.ipa.injected_failures() > 0, "no fault was injected");
    eprintln!(
        "flapping: {} injected IPA failures, {failures} answers were 503, {} of 40 instances enrolled during the flapping",
        env.ipa.injected_failures(),
        otps.len()
    );
    // Recovery: every instance enrolls once IPA is well, without a restart.
    env.ipa.clear_faults();
    for inst in &instances {
        let got = poll_until_enrolled(&env, &client, inst, 5).await;
        otps.entry(inst.host.clone()).or_default().extend(got);
    }
    assert_eq!(otps.len(), instances.len());
    assert_ipa_holds(&env, &otps).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_down_cached_tokens_keep_working_new_tokens_get_503() {
    let env = ServiceEnv::builder().private_keystone().start().await;
    let client = nova_client();
    // A second nova token, issued but never shown to novajoin.
    let unseen = env.keystone.issue_token("nova").await;
    let first = Instance::new("ks", 0);
    let o = ask(&env, &client, &first).await;
    assert_eq!(o.status, Some(200), "{o:?}");
    env.keystone.stop();
    // The validated token is cached: new instances still enroll.
    let mut otps = HashMap::new();
    for i in 1..4 {
        let inst = Instance::new("ks", i);
        let o = ask(&env, &client, &inst).await;
        let otp = check_answer(&inst, &o).expect("cached token works with keystone down");
        otps.insert(inst.host.clone(), vec![otp]);
    }
    assert_ipa_holds(&env, &otps).await;
    // A token keystone must validate: 503, quickly, nothing reaches IPA.
    env.ipa.reset_counters();
    let started = Instant::now();
    let r = client
        .post(env.join_url())
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .header("X-Auth-Token", &unseen)
        .body(Instance::new("ks", 9).body)
        .send()
        .await
        .expect("an answer before nova's read timeout");
    assert_eq!(r.status(), 503);
    assert!(started.elapsed() < NOVA_READ_TIMEOUT);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "503 Service Unavailable", "{v}");
    assert!(!v.to_string().contains(&unseen), "the token is not echoed");
    // No token at all is still a 401 (no keystone needed to say so).
    let (s, _) = env.post_as(None, &Instance::new("ks", 10).body).await;
    assert_eq!(s, 401);
    assert_eq!(env.ipa.http_requests(), 0);
    assert!(env.ipa.host("ks9.example.test").is_none());
}

fn redis_sections(url: &str, prefix: &str, mode: &str) -> String {
    format!(
        "[cache]\nbackend = redis\nredis_url = {url}\nsecret_key = {}\nkey_prefix = {prefix}\n\
         on_redis_failure = {mode}\nredis_timeout = 0.5\n",
        "k".repeat(40)
    )
}

async fn health(env: &ServiceEnv) -> (u16, String) {
    let r = env
        .http
        .get(format!("{}/healthcheck", env.server.base))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.text().await.unwrap())
}

fn redis_keys(url: &str, prefix: &str) -> usize {
    let client = redis::Client::open(url).unwrap();
    let mut c = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut c)
        .unwrap();
    keys.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_mid_run_keeps_enrolling_from_the_local_cache_and_recovers() {
    let mut redis = tokio::task::spawn_blocking(PrivateRedis::start)
        .await
        .unwrap();
    let prefix = format!("novajoin-faults:{}:", uuid::Uuid::new_v4().simple());
    let env = ServiceEnv::builder()
        .ipa_timeout(IPA_TIMEOUT_S)
        .sections(&redis_sections(&redis.url(), &prefix, "local"))
        .start()
        .await;
    let client = nova_client();
    let mut otps: HashMap<String, Vec<String>> = HashMap::new();
    let before: Vec<Instance> = (0..10).map(|i| Instance::new("rb", i)).collect();
    for inst in &before {
        let got = poll_until_enrolled(&env, &client, inst, 1).await;
        otps.insert(inst.host.clone(), got);
    }
    assert!(
        redis_keys(&redis.url(), &prefix) >= 10,
        "answers are shared in Redis"
    );
    redis.stop();
    // Mid-run: new instances and repeated requests keep getting 200s, and
    // every OTP is IPA's.
    let during: Vec<Instance> = (0..10).map(|i| Instance::new("rd", i)).collect();
    for inst in &during {
        for _ in 0..2 {
            let o = ask(&env, &client, inst).await;
            let otp = check_answer(inst, &o).expect("local fallback answers 200");
            otps.entry(inst.host.clone()).or_default().push(otp);
        }
    }
    for inst in &before {
        let o = ask(&env, &client, inst).await;
        let otp = check_answer(inst, &o).expect("local fallback answers 200");
        // An instance answered before the outage may get a fresh OTP from
        // the local cache: it is then the one IPA holds.
        let held = otps.get_mut(&inst.host).unwrap();
        if held[0] != otp {
            *held = vec![otp];
        }
    }
    assert_ipa_holds(&env, &otps).await;
    let (hs, hbody) = health(&env).await;
    assert!(
        hbody.to_lowercase().contains("redis"),
        "the health check names the Redis outage ({hs}): {hbody}"
    );
    // Redis comes back on the same port: the service uses it again without
    // a restart.
    let redis = tokio::task::spawn_blocking(move || {
        redis.restart();
        redis
    })
    .await
    .unwrap();
    let after: Vec<Instance> = (0..5).map(|i| Instance::new("ra", i)).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let keys_before = redis_keys(&redis.url(), &prefix);
    loop {
        for inst in &after {
            let o = ask(&env, &client, inst).await;
            check_answer(inst, &o).expect("200 after Redis is back");
        }
        if redis_keys(&redis.url(), &prefix) >= keys_before + after.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "answers never reached Redis again"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (hs, hbody) = health(&env).await;
    assert_eq!(hs, 200, "healthy again: {hbody}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_mid_run_with_fail_closed_answers_503_then_recovers() {
    let mut redis = tokio::task::spawn_blocking(PrivateRedis::start)
        .await
        .unwrap();
    let prefix = format!("novajoin-faults:{}:", uuid::Uuid::new_v4().simple());
    let env = ServiceEnv::builder()
        .ipa_timeout(IPA_TIMEOUT_S)
        .sections(&redis_sections(&redis.url(), &prefix, "fail_closed"))
        .start()
        .await;
    let client = nova_client();
    let first = Instance::new("fc", 0);
    let mut otps = HashMap::new();
    otps.insert(
        first.host.clone(),
        poll_until_enrolled(&env, &client, &first, 1).await,
    );
    redis.stop();
    env.ipa.reset_counters();
    let during = Instance::new("fc", 1);
    for _ in 0..3 {
        let o = ask(&env, &client, &during).await;
        assert_eq!(o.status, Some(503), "{o:?}");
        check_answer(&during, &o);
    }
    assert_eq!(
        env.ipa.round_trips(),
        0,
        "fail_closed: nothing reaches IPA while Redis is down"
    );
    let mut redis = tokio::task::spawn_blocking(move || {
        redis.restart();
        redis
    })
    .await
    .unwrap();
    let got = poll_until_enrolled(&env, &client, &during, 40).await;
    otps.insert(during.host.clone(), got);
    assert_ipa_holds(&env, &otps).await;
    assert!(
        redis_keys(&redis.url(), &prefix) >= 1,
        "the answer made after the restart is in Redis"
    );
    redis.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_load_lets_in_flight_requests_finish() {
    let mut env = ServiceEnv::builder().ipa_cap(64).start().await;
    env.ipa.set_latency(Duration::from_millis(1500));
    let base = env.join_url();
    let token = env.nova_token.clone();
    let client = support::vendordata::client();
    let instances: Vec<Instance> = (0..30).map(|i| Instance::new("term", i)).collect();
    let mut tasks = Vec::new();
    for inst in instances.clone() {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(base)
                .header("Content-Type", "application/json")
                .header("X-Auth-Token", token)
                .body(inst.body.clone())
                .send()
                .await;
            let r = match r {
                Ok(r) => r,
                Err(e) => panic!("{}: in-flight request cut: {e}", inst.host),
            };
            let s = r.status().as_u16();
            (inst, s, r.text().await.unwrap_or_default())
        }));
    }
    // Wait until IPA holds the requests (they are in flight in novajoin).
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.ipa.in_flight() < 20 {
        assert!(Instant::now() < deadline, "requests never reached IPA");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = env.server.pid() as i32;
    let status = tokio::task::block_in_place(|| {
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        // New connections are refused once the signal is handled.
        let addr = env.server.base.trim_start_matches("http://").to_string();
        let refused_by = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(&addr).is_ok() {
            assert!(Instant::now() < refused_by, "still accepting after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        env.server.terminate(Duration::from_secs(30))
    });
    let status = status.expect("exits after draining");
    assert!(status.success(), "clean exit: {status}");
    let mut otps = HashMap::new();
    for t in tasks {
        let (inst, s, body) = t.await.unwrap();
        assert_eq!(s, 200, "{}: {body}", inst.host);
        let v: Value = serde_json::from_str(&body).unwrap();
        otps.insert(
            inst.host.clone(),
            vec![v["ipaotp"].as_str().unwrap().to_string()],
        );
    }
    assert_ipa_holds(&env, &otps).await;
    assert!(env.server.logs().contains("SIGTERM received"));
}
