//! The response cache layer, in process: the `cache` filter in front of a
//! handler that counts its calls and mints a random OTP per call (standing
//! in for the join handler until it lands), with the in-memory backend and
//! with the real Redis (two cache instances = two replicas).

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use novajoin::cache::options::{MemcachedSettings, RedisFailureMode, RedisSettings};
use novajoin::cache::CacheOutcome;
use novajoin::cache::{CacheSettings, ResponseCache};
use novajoin::health::{HealthRegistry, HealthState};
use novajoin::pipeline::body::{self, ReqBody};
use novajoin::pipeline::cache::CacheService;
use novajoin::pipeline::extensions::{AccessNotes, Authorized};
use novajoin::pipeline::{boxed, response, HttpService, RespBody};
use serde_json::{json, Value};
use support::memcached::PrivateMemcached;
use support::redis::{closed_url, PrivateRedis, RedisNamespace};
use tower::{Layer, Service, ServiceExt};

// ---------- log capture (one global subscriber; tests search their own ids) ----------

#[derive(Clone)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_buf() -> &'static LogBuf {
    static LOGS: OnceLock<LogBuf> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = LogBuf(Arc::new(Mutex::new(Vec::new())));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        buf
    })
}

fn logs() -> String {
    String::from_utf8_lossy(&log_buf().0.lock().unwrap()).into_owned()
}

fn log_lines_with(needle: &str) -> Vec<String> {
    logs()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

// ---------- a handler double that counts calls and mints OTPs ----------

#[derive(Default)]
struct Handler {
    calls: AtomicUsize,
    per_instance: Mutex<HashMap<String, usize>>,
    otps: Mutex<Vec<String>>,
    delay: Duration,
    /// Redis key whose value the handler records when called.
    watch_key: Mutex<Option<(String, String)>>,
    watched: Mutex<Vec<Option<String>>>,
}

impl Handler {
    fn new(delay_ms: u64) -> Arc<Self> {
        Arc::new(Self {
            delay: Duration::from_millis(delay_ms),
            ..Default::default()
        })
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn calls_for(&self, id: &str) -> usize {
        self.per_instance
            .lock()
            .unwrap()
            .get(id)
            .copied()
            .unwrap_or(0)
    }
}

fn handler_service(h: Arc<Handler>) -> HttpService {
    boxed(tower::service_fn(move |req: Request<ReqBody>| {
        let h = h.clone();
        async move {
            assert!(
                req.extensions().get::<Authorized>().is_some(),
                "handler reached without authorization"
            );
            let bytes = body::read_all(req.into_body()).await.expect("body");
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let id = v["instance-id"].as_str().unwrap_or("").to_string();
            h.calls.fetch_add(1, Ordering::SeqCst);
            *h.per_instance
                .lock()
                .unwrap()
                .entry(id.clone())
                .or_default() += 1;
            let watch = h.watch_key.lock().unwrap().clone();
            if let Some((url, key)) = watch {
                let mut c = redis::Client::open(url)
                    .unwrap()
                    .get_multiplexed_async_connection()
                    .await
                    .unwrap();
                let val: Option<String> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut c)
                    .await
                    .unwrap();
                h.watched.lock().unwrap().push(val);
            }
            tokio::time::sleep(h.delay).await;
            if let Some(code) = v["metadata"]["test_status"].as_str() {
                let status = StatusCode::from_u16(code.parse().unwrap()).unwrap();
                return Ok::<_, Infallible>(response::default_fault(status));
            }
            let otp = uuid::Uuid::new_v4().simple().to_string();
            h.otps.lock().unwrap().push(otp.clone());
            let host = v["hostname"].as_str().unwrap_or("");
            let mut resp = response::json(
                StatusCode::OK,
                &json!({"hostname": format!("{host}.example.com"), "krb_realm": "EXAMPLE.COM", "ipaotp": otp}),
            );
            AccessNotes::of(&mut resp).instance_id = Some(id);
            Ok(resp)
        }
    }))
}

fn stack(cache: &ResponseCache, h: &Arc<Handler>) -> HttpService {
    boxed(CacheService::new(handler_service(h.clone()), cache.clone()))
}

fn nova_body(instance_id: &str, hostname: &str) -> Value {
    let text = support::vendordata::nova_body_with(
        hostname,
        instance_id,
        Some("155d900f-4e14-4e4c-a73d-069cbf4541e6"),
        Some("8c3d8a0f2b6e4d3c9a5e1f0b7c6d5e4f"),
        support::vendordata::enroll(),
    );
    serde_json::from_str(&text).unwrap()
}

fn request(body: &Value) -> Request<ReqBody> {
    let mut req = Request::builder()
        .method("POST")
        .uri("/v1/")
        .header("content-type", "application/json")
        .body(body::full(body.to_string()))
        .unwrap();
    req.extensions_mut().insert(Authorized {
        action: "join:create".into(),
    });
    req
}

struct Answer {
    status: StatusCode,
    body: Value,
    outcome: CacheOutcome,
    tag: Option<String>,
}

impl Answer {
    fn otp(&self) -> String {
        self.body["ipaotp"]
            .as_str()
            .unwrap_or_else(|| panic!("no ipaotp in {}", self.body))
            .to_string()
    }
}

async fn call(svc: &HttpService, req: Request<ReqBody>) -> Answer {
    let mut svc = svc.clone();
    let resp: Response<RespBody> = svc.ready().await.unwrap().call(req).await.unwrap();
    let notes = resp
        .extensions()
        .get::<AccessNotes>()
        .expect("AccessNotes in the response");
    let outcome = notes.cache.expect("a cache outcome in the notes");
    let tag = notes.instance_id.clone();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        outcome,
        tag,
    }
}

async fn post(svc: &HttpService, body: &Value) -> Answer {
    call(svc, request(body)).await
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn memory(ttl_s: u64, capacity: u64) -> ResponseCache {
    ResponseCache::new(&CacheSettings::memory(Duration::from_secs(ttl_s), capacity)).unwrap()
}

const SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

fn redis_settings(url: &str, prefix: &str) -> CacheSettings {
    CacheSettings {
        ttl: Duration::from_secs(60),
        capacity: 10_000,
        redis: Some(RedisSettings {
            url: url.to_string(),
            secret_key: SECRET.into(),
            key_prefix: prefix.to_string(),
            // The default: a debug build of 2,000 concurrent requests on a
            // shared 2-core machine can starve the renewal task for seconds.
            claim_timeout: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(20),
            on_failure: RedisFailureMode::Local,
            // Generous: these tests share 2 cores with parallel builds.
            timeout: Duration::from_secs(10),
        }),
        ..CacheSettings::memory(Duration::from_secs(60), 10_000)
    }
}

fn memcached_settings(servers: &[String], prefix: &str) -> CacheSettings {
    CacheSettings {
        memcached: Some(MemcachedSettings {
            servers: servers.to_vec(),
            // Generous, as redis_timeout above.
            socket_timeout: Duration::from_secs(10),
            dead_retry: Duration::from_secs(1),
            secret_key: SECRET.into(),
            key_prefix: prefix.to_string(),
            claim_timeout: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(20),
            on_failure: RedisFailureMode::Local,
        }),
        ..CacheSettings::memory(Duration::from_secs(60), 10_000)
    }
}

/// The memcached key of an instance's entry or claim: the instance id goes
/// in hashed (BLAKE3, hex).
fn mc_key(prefix: &str, kind: &str, instance_id: &str) -> String {
    format!(
        "{prefix}{kind}:{}",
        blake3::hash(instance_id.as_bytes()).to_hex()
    )
}

fn assert_no_otp_logged(h: &Handler) {
    let all = logs();
    for otp in h.otps.lock().unwrap().iter() {
        assert!(!all.contains(otp.as_str()), "an OTP appeared in the log");
    }
}

/// Sends `per_instance` concurrent requests for each id (interleaved) and
/// returns the answers by instance.
async fn burst(
    svcs: &[HttpService],
    ids: &[String],
    per_instance: usize,
) -> HashMap<String, Vec<Answer>> {
    let mut tasks = Vec::new();
    for round in 0..per_instance {
        for (i, id) in ids.iter().enumerate() {
            let svc = svcs[(i + round) % svcs.len()].clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                let a = post(&svc, &nova_body(&id, "vm")).await;
                (id, a)
            }));
        }
    }
    let mut out: HashMap<String, Vec<Answer>> = HashMap::new();
    for t in tasks {
        let (id, a) = t.await.unwrap();
        out.entry(id).or_default().push(a);
    }
    out
}

fn assert_one_otp_each(h: &Handler, answers: &HashMap<String, Vec<Answer>>) {
    for (id, list) in answers {
        assert_eq!(
            h.calls_for(id),
            1,
            "instance {id} reached the handler {} times",
            h.calls_for(id)
        );
        let first = list[0].otp();
        for a in list {
            assert_eq!(a.status, StatusCode::OK);
            assert_eq!(a.otp(), first, "two OTPs for instance {id}");
            assert_eq!(a.tag.as_deref(), Some(id.as_str()));
        }
        let misses = list
            .iter()
            .filter(|a| a.outcome == CacheOutcome::Miss)
            .count();
        assert!(misses <= 1, "instance {id}: {misses} misses");
    }
}

// ---------- in-memory backend ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_200_concurrent_requests_for_one_instance_make_one_call_and_one_otp() {
    log_buf();
    let h = Handler::new(50);
    let cache = memory(30, 1000);
    let svc = stack(&cache, &h);
    let id = new_id();
    let answers = burst(&[svc], std::slice::from_ref(&id), 200).await;
    assert_eq!(h.calls(), 1);
    assert_one_otp_each(&h, &answers);
    assert_eq!(answers[&id][0].otp(), h.otps.lock().unwrap()[0]);
    let outcomes: Vec<_> = answers[&id].iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == CacheOutcome::Miss)
            .count(),
        1
    );
    assert!(outcomes.iter().all(|o| matches!(
        o,
        CacheOutcome::Miss | CacheOutcome::Coalesced | CacheOutcome::Hit
    )));
    let s = cache.stats();
    assert_eq!(s.misses, 1);
    assert_eq!(s.hits + s.coalesced, 199, "{s:?}");
    assert_no_otp_logged(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_2000_concurrent_requests_over_500_instances_make_500_calls() {
    let h = Handler::new(20);
    let cache = memory(30, 10_000);
    let svc = stack(&cache, &h);
    let ids: Vec<String> = (0..500).map(|_| new_id()).collect();
    let answers = burst(&[svc], &ids, 4).await;
    assert_eq!(answers.len(), 500);
    assert_eq!(h.calls(), 500);
    assert_one_otp_each(&h, &answers);
    assert_eq!(cache.stats().misses, 500);
}

#[tokio::test]
async fn repeated_requests_are_hits_with_the_same_answer() {
    let h = Handler::new(0);
    let cache = memory(30, 100);
    let svc = stack(&cache, &h);
    let id = new_id();
    let first = post(&svc, &nova_body(&id, "vm1")).await;
    assert_eq!(
        (first.status, first.outcome),
        (StatusCode::OK, CacheOutcome::Miss)
    );
    for _ in 0..5 {
        let again = post(&svc, &nova_body(&id, "vm1")).await;
        assert_eq!(again.outcome, CacheOutcome::Hit);
        assert_eq!(again.body, first.body);
        assert_eq!(again.tag.as_deref(), Some(id.as_str()));
    }
    // Irrelevant fields (user-data, boot-roles, other metadata) do not matter.
    let mut body = nova_body(&id, "vm1");
    body["user-data"] = json!("I2Nsb3VkLWNvbmZpZw==");
    body["metadata"]["color"] = json!("blue");
    assert_eq!(post(&svc, &body).await.outcome, CacheOutcome::Hit);
    assert_eq!(h.calls(), 1);
    let s = cache.stats();
    assert_eq!((s.misses, s.hits), (1, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_never_stored_but_shared_by_concurrent_waiters() {
    let h = Handler::new(50);
    let cache = memory(30, 100);
    let svc = stack(&cache, &h);
    let id = new_id();
    let mut failing = nova_body(&id, "vm1");
    failing["metadata"]["test_status"] = json!("503");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (svc, body) = (svc.clone(), failing.clone());
        tasks.push(tokio::spawn(async move { post(&svc, &body).await }));
    }
    for t in tasks {
        let a = t.await.unwrap();
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(matches!(
            a.outcome,
            CacheOutcome::Bypass | CacheOutcome::Coalesced
        ));
        assert_eq!(a.body["serviceUnavailable"]["code"], 503);
    }
    assert_eq!(
        h.calls(),
        1,
        "concurrent failing requests share one handler call"
    );
    // Not stored: the next request runs the handler again.
    let again = post(&svc, &failing).await;
    assert_eq!(
        (again.status, again.outcome),
        (StatusCode::SERVICE_UNAVAILABLE, CacheOutcome::Bypass)
    );
    assert_eq!(h.calls(), 2);
    // 4xx are not stored either.
    let mut bad = nova_body(&id, "vm1");
    bad["metadata"]["test_status"] = json!("400");
    post(&svc, &bad).await;
    post(&svc, &bad).await;
    assert_eq!(h.calls(), 4);
}

#[tokio::test]
async fn changed_relevant_fields_are_a_logged_miss_that_replaces_the_entry() {
    log_buf();
    let h = Handler::new(0);
    let cache = memory(30, 100);
    let svc = stack(&cache, &h);
    let id = new_id();
    let old = post(&svc, &nova_body(&id, "vm1")).await;
    let renamed = post(&svc, &nova_body(&id, "vm2")).await;
    assert_eq!(renamed.outcome, CacheOutcome::Miss);
    assert_ne!(renamed.otp(), old.otp());
    assert_eq!(renamed.body["hostname"], "vm2.example.com");
    let lines = log_lines_with(&id);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("differs from the stored answer") && l.contains("hostname")),
        "{lines:?}"
    );
    // The new answer replaced the old one.
    let again = post(&svc, &nova_body(&id, "vm2")).await;
    assert_eq!(
        (again.outcome, again.otp()),
        (CacheOutcome::Hit, renamed.otp())
    );
    let back = post(&svc, &nova_body(&id, "vm1")).await;
    assert_eq!(back.outcome, CacheOutcome::Miss);
    // A changed enrollment field that fails leaves the stored answer alone.
    let mut failing = nova_body(&id, "vm1");
    failing["metadata"]["ipa_hostclass"] = json!("web");
    failing["metadata"]["test_status"] = json!("403");
    assert_eq!(post(&svc, &failing).await.status, StatusCode::FORBIDDEN);
    let kept = post(&svc, &nova_body(&id, "vm1")).await;
    assert_eq!((kept.outcome, kept.otp()), (CacheOutcome::Hit, back.otp()));
    assert_eq!(h.calls(), 4);
    assert!(cache.stats().replaced >= 3);
    assert_no_otp_logged(&h);
}

#[tokio::test]
async fn a_request_without_authorization_is_refused_even_for_a_cached_instance() {
    let h = Handler::new(0);
    let cache = memory(30, 100);
    let svc = stack(&cache, &h);
    let id = new_id();
    let cached = post(&svc, &nova_body(&id, "vm1")).await;
    assert_eq!(cached.status, StatusCode::OK);
    // The same request without the policy filter's Authorized extension.
    let mut req = request(&nova_body(&id, "vm1"));
    req.extensions_mut().remove::<Authorized>();
    let refused = call(&svc, req).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.body["forbidden"]["code"], 403);
    assert!(!refused.body.to_string().contains(&cached.otp()));
    assert_eq!(refused.outcome, CacheOutcome::Bypass);
    assert_eq!(h.calls(), 1);
    assert_eq!(cache.stats().hits, 0);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_never_reaches_the_handler() {
    let h = Handler::new(0);
    let cache = memory(30, 100);
    let svc = stack(&cache, &h);
    let text = nova_body(&new_id(), "vm1").to_string();
    let limited =
        http_body_util::Limited::new(http_body_util::Full::new(bytes::Bytes::from(text)), 64);
    let mut req = Request::builder()
        .method("POST")
        .uri("/v1/")
        .header("content-type", "application/json")
        .body(limited.map_err(body::BoxError::new).boxed_unsync())
        .unwrap();
    req.extensions_mut().insert(Authorized {
        action: "join:create".into(),
    });
    let a = call(&svc, req).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.body["overLimit"]["code"], 413);
    assert_eq!(h.calls(), 0);
}

#[tokio::test]
async fn requests_the_handler_would_not_read_bypass_the_cache() {
    let h = Handler::new(0);
    let cache = memory(30, 100);
    let svc = stack(&cache, &h);
    let id = new_id();
    post(&svc, &nova_body(&id, "vm1")).await;
    // Not application/json: the handler ignores such a body, so must the cache.
    let mut req = request(&nova_body(&id, "vm1"));
    req.headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    assert_eq!(call(&svc, req).await.outcome, CacheOutcome::Bypass);
    // No instance-id: nothing to key on; the body still reaches the handler.
    let mut body = nova_body(&id, "vm1");
    body.as_object_mut().unwrap().remove("instance-id");
    let a = post(&svc, &body).await;
    assert_eq!(
        (a.status, a.outcome),
        (StatusCode::OK, CacheOutcome::Bypass)
    );
    assert_eq!(h.calls(), 3);
    assert_eq!(h.calls_for(""), 1);
}

#[tokio::test]
async fn answers_expire_after_the_ttl() {
    let h = Handler::new(0);
    let cache = memory(1, 100);
    let svc = stack(&cache, &h);
    let id = new_id();
    let first = post(&svc, &nova_body(&id, "vm1")).await;
    assert_eq!(
        post(&svc, &nova_body(&id, "vm1")).await.outcome,
        CacheOutcome::Hit
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let later = post(&svc, &nova_body(&id, "vm1")).await;
    assert_eq!(later.outcome, CacheOutcome::Miss);
    assert_ne!(later.otp(), first.otp());
    assert_eq!(h.calls(), 2);
}

#[tokio::test]
async fn a_zero_ttl_stores_nothing() {
    let h = Handler::new(0);
    let cache = memory(0, 100);
    let svc = stack(&cache, &h);
    let id = new_id();
    assert_eq!(
        post(&svc, &nova_body(&id, "vm1")).await.outcome,
        CacheOutcome::Bypass
    );
    assert_eq!(
        post(&svc, &nova_body(&id, "vm1")).await.outcome,
        CacheOutcome::Bypass
    );
    assert_eq!(h.calls(), 2);
}

#[tokio::test]
async fn evict_forgets_an_instance() {
    log_buf();
    let h = Handler::new(0);
    let cache = memory(30, 100);
    let svc = stack(&cache, &h);
    let (a, b) = (new_id(), new_id());
    post(&svc, &nova_body(&a, "a")).await;
    post(&svc, &nova_body(&b, "b")).await;
    assert!(cache.evict(&a).await.unwrap());
    assert!(
        !cache.evict(&a).await.unwrap(),
        "a second eviction finds nothing"
    );
    assert_eq!(
        post(&svc, &nova_body(&a, "a")).await.outcome,
        CacheOutcome::Miss
    );
    assert_eq!(
        post(&svc, &nova_body(&b, "b")).await.outcome,
        CacheOutcome::Hit
    );
    assert_eq!(cache.stats().evictions, 1);
    assert!(log_lines_with(&a).iter().any(|l| l.contains("evicted")));
}

#[tokio::test]
async fn the_memory_cache_is_bounded() {
    let h = Handler::new(0);
    let cache = memory(30, 20);
    let svc = stack(&cache, &h);
    let ids: Vec<String> = (0..200).map(|_| new_id()).collect();
    for id in &ids {
        post(&svc, &nova_body(id, "vm")).await;
    }
    // moka evicts in its maintenance step; give it a round.
    let mut hits = 0;
    for id in &ids {
        if post(&svc, &nova_body(id, "vm")).await.outcome == CacheOutcome::Hit {
            hits += 1;
        }
    }
    assert!(
        hits <= 40,
        "{hits} of 200 instances still cached with capacity 20"
    );
    assert!(cache.stats().evictions >= 100, "{:?}", cache.stats());
}

// ---------- Redis backend: the real server, two cache instances as two replicas ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_200_concurrent_requests_across_two_replicas_make_one_call() {
    log_buf();
    let ns = RedisNamespace::new("burst1");
    let h = Handler::new(50);
    let (r1, r2) = (
        ResponseCache::new(&redis_settings(&ns.url, &ns.prefix)).unwrap(),
        ResponseCache::new(&redis_settings(&ns.url, &ns.prefix)).unwrap(),
    );
    let svcs = [stack(&r1, &h), stack(&r2, &h)];
    let id = new_id();
    let answers = burst(&svcs, std::slice::from_ref(&id), 200).await;
    assert_eq!(h.calls(), 1);
    assert_one_otp_each(&h, &answers);
    let (s1, s2) = (r1.stats(), r2.stats());
    assert_eq!(s1.misses + s2.misses, 1);
    assert_eq!(
        s1.hits + s1.coalesced + s2.hits + s2.coalesced,
        199,
        "{s1:?} {s2:?}"
    );
    assert_eq!(s1.redis_errors + s2.redis_errors, 0);
    // The claim is gone and the entry is there.
    let keys = ns.keys();
    assert!(
        keys.contains(&format!("{}entry:{id}", ns.prefix)),
        "{keys:?}"
    );
    assert!(
        !keys.contains(&format!("{}claim:{id}", ns.prefix)),
        "{keys:?}"
    );
    assert_no_otp_logged(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_2000_concurrent_requests_over_500_instances_across_two_replicas_make_500_calls() {
    log_buf();
    let ns = RedisNamespace::new("burst500");
    let h = Handler::new(20);
    let (r1, r2) = (
        ResponseCache::new(&redis_settings(&ns.url, &ns.prefix)).unwrap(),
        ResponseCache::new(&redis_settings(&ns.url, &ns.prefix)).unwrap(),
    );
    let svcs = [stack(&r1, &h), stack(&r2, &h)];
    let ids: Vec<String> = (0..500).map(|_| new_id()).collect();
    let answers = burst(&svcs, &ids, 4).await;
    assert_eq!(
        h.calls(),
        500,
        "{:?} {:?} {:?}",
        r1.stats(),
        r2.stats(),
        log_lines_with("unreachable").first()
    );
    assert_one_otp_each(&h, &answers);
    assert_eq!(r1.stats().redis_errors + r2.stats().redis_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_dead_replicas_claim_blocks_the_instance_only_until_it_expires() {
    let ns = RedisNamespace::new("deadclaim");
    let h = Handler::new(0);
    let cache = ResponseCache::new(&redis_settings(&ns.url, &ns.prefix)).unwrap();
    let svc = stack(&cache, &h);
    let id = new_id();
    let claim_key = format!("{}claim:{id}", ns.prefix);
    // A replica took the claim and died: nobody renews or releases it.
    let mut c = ns.conn();
    let _: () = redis::cmd("SET")
        .arg(&claim_key)
        .arg("dead-replica")
        .arg("PX")
        .arg(1500)
        .query(&mut c)
        .unwrap();
    *h.watch_key.lock().unwrap() = Some((ns.url.clone(), claim_key.clone()));
    let a = post(&svc, &nova_body(&id, "vm1")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(h.calls(), 1);
    // When the handler ran, the dead replica's claim was gone and this
    // replica held its own.
    let seen = h.watched.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let holder = seen[0]
        .clone()
        .expect("the computing replica holds a claim");
    assert_ne!(holder, "dead-replica");
    let pttl: i64 = redis::cmd("PTTL").arg(&claim_key).query(&mut c).unwrap();
    assert_eq!(pttl, -2, "the claim is released after the answer is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_live_replica_renews_its_claim_while_the_handler_is_slow() {
    let ns = RedisNamespace::new("renew");
    // The handler takes longer than two claim timeouts.
    let h = Handler::new(1500);
    let mut settings = redis_settings(&ns.url, &ns.prefix);
    settings.redis.as_mut().unwrap().claim_timeout = Duration::from_millis(600);
    let (r1, r2) = (
        ResponseCache::new(&settings).unwrap(),
        ResponseCache::new(&settings).unwrap(),
    );
    let (s1, s2) = (stack(&r1, &h), stack(&r2, &h));
    let id = new_id();
    let first = tokio::spawn({
        let id = id.clone();
        async move { post(&s1, &nova_body(&id, "vm1")).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = post(&s2, &nova_body(&id, "vm1")).await;
    let first = first.await.unwrap();
    assert_eq!(h.calls(), 1, "the claim expired under a live replica");
    assert_eq!(first.otp(), second.otp());
    assert_eq!(second.outcome, CacheOutcome::Coalesced);
}

#[tokio::test]
async fn redis_entries_are_sealed_and_expire_with_the_ttl() {
    let ns = RedisNamespace::new("sealed");
    let h = Handler::new(0);
    let cache = ResponseCache::new(&redis_settings(&ns.url, &ns.prefix)).unwrap();
    let svc = stack(&cache, &h);
    let id = new_id();
    let a = post(&svc, &nova_body(&id, "sealed-host")).await;
    let mut c = ns.conn();
    let raw: Vec<u8> = redis::cmd("GET")
        .arg(format!("{}entry:{id}", ns.prefix))
        .query(&mut c)
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains(&a.otp()) && !text.contains("sealed-host") && !text.contains("ipaotp"));
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{}entry:{id}", ns.prefix))
        .query(&mut c)
        .unwrap();
    assert!(ttl > 50_000 && ttl <= 60_000, "entry PTTL {ttl}");
    // Another replica with the same secret reads it.
    let other = ResponseCache::new(&redis_settings(&ns.url, &ns.prefix)).unwrap();
    let b = post(&stack(&other, &h), &nova_body(&id, "sealed-host")).await;
    assert_eq!((b.outcome, b.otp()), (CacheOutcome::Hit, a.otp()));
    assert_eq!(h.calls(), 1);
}

#[tokio::test]
async fn redis_entries_written_without_the_key_altered_or_moved_are_refused_and_logged() {
    log_buf();
    let ns = RedisNamespace::new("refuse");
    let h = Handler::new(0);
    let cache = ResponseCache::new(&redis_settings(&ns.url, &ns.prefix)).unwrap();
    let svc = stack(&cache, &h);
    let mut c = ns.conn();
    let entry = |id: &str| format!("{}entry:{id}", ns.prefix);

    // 1. Written by someone without the key (plain JSON, as a naive attacker would).
    let forged = new_id();
    let fake = json!({"hostname": "evil.example.com", "krb_realm": "EXAMPLE.COM", "ipaotp": "attacker-chosen-otp"});
    let _: () = redis::cmd("SET")
        .arg(entry(&forged))
        .arg(fake.to_string())
        .query(&mut c)
        .unwrap();
    let a = post(&svc, &nova_body(&forged, "vm1")).await;
    assert_eq!((a.status, a.outcome), (StatusCode::OK, CacheOutcome::Miss));
    assert_ne!(a.otp(), "attacker-chosen-otp");
    assert!(
        log_lines_with(&forged)
            .iter()
            .any(|l| l.contains("refusing a Redis entry")),
        "{:?}",
        log_lines_with(&forged)
    );

    // 2. Sealed with another secret.
    let mut other_settings = redis_settings(&ns.url, &ns.prefix);
    other_settings.redis.as_mut().unwrap().secret_key =
        "another-secret-0123456789abcdef0123456789".into();
    let other = ResponseCache::new(&other_settings).unwrap();
    let foreign = new_id();
    post(&stack(&other, &h), &nova_body(&foreign, "vm1")).await;
    let b = post(&svc, &nova_body(&foreign, "vm1")).await;
    assert_eq!(b.outcome, CacheOutcome::Miss);
    assert!(log_lines_with(&foreign)
        .iter()
        .any(|l| l.contains("refusing a Redis entry")));

    // 3. A genuine entry with one byte altered.
    let altered = new_id();
    let genuine = post(&svc, &nova_body(&altered, "vm1")).await;
    let mut raw: Vec<u8> = redis::cmd("GET")
        .arg(entry(&altered))
        .query(&mut c)
        .unwrap();
    let mid = raw.len() / 2;
    raw[mid] ^= 0x20;
    let _: () = redis::cmd("SET")
        .arg(entry(&altered))
        .arg(raw)
        .arg("KEEPTTL")
        .query(&mut c)
        .unwrap();
    let after = post(&svc, &nova_body(&altered, "vm1")).await;
    assert_eq!(after.outcome, CacheOutcome::Miss);
    assert_ne!(after.otp(), genuine.otp());
    assert!(log_lines_with(&altered)
        .iter()
        .any(|l| l.contains("refusing a Redis entry")));

    // 4. A genuine entry of one instance copied under another instance's key.
    let (src, dst) = (new_id(), new_id());
    let src_answer = post(&svc, &nova_body(&src, "vm1")).await;
    let raw: Vec<u8> = redis::cmd("GET").arg(entry(&src)).query(&mut c).unwrap();
    let _: () = redis::cmd("SET")
        .arg(entry(&dst))
        .arg(raw)
        .query(&mut c)
        .unwrap();
    let moved = post(&svc, &nova_body(&dst, "vm1")).await;
    assert_eq!(moved.outcome, CacheOutcome::Miss);
    assert_ne!(moved.otp(), src_answer.otp());
    assert!(log_lines_with(&dst)
        .iter()
        .any(|l| l.contains("refusing a Redis entry")));

    assert_eq!(cache.stats().refused, 4, "{:?}", cache.stats());
    assert_no_otp_logged(&h);
}

#[tokio::test]
async fn redis_evict_removes_the_shared_entry() {
    let ns = RedisNamespace::new("evict");
    let h = Handler::new(0);
    let (r1, r2) = (
        ResponseCache::new(&redis_settings(&ns.url, &ns.prefix)).unwrap(),
        ResponseCache::new(&redis_settings(&ns.url, &ns.prefix)).unwrap(),
    );
    let id = new_id();
    post(&stack(&r1, &h), &nova_body(&id, "vm1")).await;
    // The listener's process evicts through its own cache instance.
    assert!(r2.evict(&id).await.unwrap());
    assert!(ns.keys().is_empty(), "{:?}", ns.keys());
    assert_eq!(
        post(&stack(&r1, &h), &nova_body(&id, "vm1")).await.outcome,
        CacheOutcome::Miss
    );
    assert_eq!(h.calls(), 2);
}

async fn wait_for_health(reg: &HealthRegistry, pred: impl Fn(&HealthState) -> bool) -> HealthState {
    wait_for_probe(reg, "redis", pred).await
}

async fn wait_for_probe(
    reg: &HealthRegistry,
    probe: &str,
    pred: impl Fn(&HealthState) -> bool,
) -> HealthState {
    for _ in 0..100 {
        let all = reg.check_all().await;
        let (_, state) = all
            .iter()
            .find(|(n, _)| n == probe)
            .unwrap_or_else(|| panic!("{probe} probe registered"))
            .clone();
        if pred(&state) {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "health never reached the expected state: {:?}",
        reg.check_all().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unreachable_falls_back_to_the_local_cache_and_reports_degraded() {
    log_buf();
    let url = closed_url();
    let h = Handler::new(30);
    let cache = ResponseCache::new(&redis_settings(&url, "novajoin-test:down:")).unwrap();
    let reg = HealthRegistry::default();
    reg.register(cache.health_probe().unwrap());
    let svc = stack(&cache, &h);
    let id = new_id();
    let answers = burst(std::slice::from_ref(&svc), std::slice::from_ref(&id), 50).await;
    assert_eq!(
        h.calls(),
        1,
        "local single-flight still holds while Redis is down"
    );
    assert_one_otp_each(&h, &answers);
    assert_eq!(
        post(&svc, &nova_body(&id, "vm")).await.outcome,
        CacheOutcome::Hit
    );
    let state = wait_for_health(&reg, |s| matches!(s, HealthState::Degraded(_))).await;
    let HealthState::Degraded(msg) = state else {
        unreachable!()
    };
    assert!(
        msg.contains("unreachable") && msg.contains("local cache"),
        "{msg}"
    );
    assert!(cache.stats().redis_errors > 0);
    let port = url.rsplit(':').next().unwrap();
    assert!(logs()
        .lines()
        .any(|l| l.contains("Redis is unreachable") && l.contains(port)));
}

#[tokio::test]
async fn redis_unreachable_with_fail_closed_answers_503_and_reports_failed() {
    let url = closed_url();
    let h = Handler::new(0);
    let mut settings = redis_settings(&url, "novajoin-test:down:");
    settings.redis.as_mut().unwrap().on_failure = RedisFailureMode::FailClosed;
    let cache = ResponseCache::new(&settings).unwrap();
    let reg = HealthRegistry::default();
    reg.register(cache.health_probe().unwrap());
    let svc = stack(&cache, &h);
    for _ in 0..3 {
        let a = post(&svc, &nova_body(&new_id(), "vm")).await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(a.body["serviceUnavailable"]["message"]
            .as_str()
            .unwrap()
            .contains("Redis"));
    }
    assert_eq!(
        h.calls(),
        0,
        "fail_closed never runs the handler without Redis"
    );
    let state = wait_for_health(&reg, |s| matches!(s, HealthState::Failed(_))).await;
    assert!(matches!(state, HealthState::Failed(m) if m.contains("refused")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_and_recovery_are_seen_by_requests_and_health() {
    log_buf();
    let mut server = PrivateRedis::start();
    let h = Handler::new(0);
    let mut settings = redis_settings(&server.url(), "novajoin-test:outage:");
    settings.redis.as_mut().unwrap().on_failure = RedisFailureMode::FailClosed;
    let cache = ResponseCache::new(&settings).unwrap();
    let reg = HealthRegistry::default();
    reg.register(cache.health_probe().unwrap());
    let svc = stack(&cache, &h);
    let id = new_id();
    let before = post(&svc, &nova_body(&id, "vm1")).await;
    assert_eq!(before.outcome, CacheOutcome::Miss);
    assert_eq!(
        reg.check_all().await,
        vec![("redis".to_string(), HealthState::Ok)]
    );

    server.stop();
    let during = post(&svc, &nova_body(&new_id(), "vm1")).await;
    assert_eq!(during.status, StatusCode::SERVICE_UNAVAILABLE);
    wait_for_health(&reg, |s| matches!(s, HealthState::Failed(_))).await;

    server.restart(); // an empty Redis: the old entry is gone
    wait_for_health(&reg, |s| *s == HealthState::Ok).await;
    let after = post(&svc, &nova_body(&id, "vm1")).await;
    assert_eq!(
        (after.status, after.outcome),
        (StatusCode::OK, CacheOutcome::Miss)
    );
    assert_eq!(
        post(&svc, &nova_body(&id, "vm1")).await.outcome,
        CacheOutcome::Hit
    );
    assert!(logs()
        .lines()
        .any(|l| l.contains("Redis is reachable again") && l.contains(&server.port.to_string())));
}

// ---------- memcached backend: real memcached servers, two cache instances as two replicas ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_200_concurrent_requests_across_two_replicas_make_one_call() {
    log_buf();
    let mc = PrivateMemcached::start();
    let prefix = "novajoin-test:burst1:";
    let h = Handler::new(50);
    let settings = memcached_settings(&[mc.addr()], prefix);
    let (r1, r2) = (
        ResponseCache::new(&settings).unwrap(),
        ResponseCache::new(&settings).unwrap(),
    );
    assert_eq!(r1.backend(), "memcached");
    let svcs = [stack(&r1, &h), stack(&r2, &h)];
    let id = new_id();
    let answers = burst(&svcs, std::slice::from_ref(&id), 200).await;
    assert_eq!(h.calls(), 1);
    assert_one_otp_each(&h, &answers);
    let (s1, s2) = (r1.stats(), r2.stats());
    assert_eq!(s1.misses + s2.misses, 1);
    assert_eq!(
        s1.hits + s1.coalesced + s2.hits + s2.coalesced,
        199,
        "{s1:?} {s2:?}"
    );
    assert_eq!(s1.memcached_errors + s2.memcached_errors, 0);
    // The claim is released and the entry is there.
    assert_eq!(mc.keys(), vec![mc_key(prefix, "entry", &id)]);
    assert_no_otp_logged(&h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_2000_concurrent_requests_over_500_instances_on_two_servers_make_500_calls() {
    log_buf();
    let (a, b) = (PrivateMemcached::start(), PrivateMemcached::start());
    let prefix = "novajoin-test:burst500:";
    let h = Handler::new(20);
    // The replicas list the servers in different orders: the same ring.
    let (r1, r2) = (
        ResponseCache::new(&memcached_settings(&[a.addr(), b.addr()], prefix)).unwrap(),
        ResponseCache::new(&memcached_settings(&[b.addr(), a.addr()], prefix)).unwrap(),
    );
    let svcs = [stack(&r1, &h), stack(&r2, &h)];
    let ids: Vec<String> = (0..500).map(|_| new_id()).collect();
    let answers = burst(&svcs, &ids, 4).await;
    assert_eq!(
        h.calls(),
        500,
        "{:?} {:?} {:?}",
        r1.stats(),
        r2.stats(),
        log_lines_with("unreachable").first()
    );
    assert_one_otp_each(&h, &answers);
    assert_eq!(r1.stats().memcached_errors + r2.stats().memcached_errors, 0);
    // Consistent hashing spread the instances over both servers, each
    // instance's entry on exactly one of them.
    let (ka, kb) = (a.keys(), b.keys());
    assert_eq!(ka.len() + kb.len(), 500, "claims left behind?");
    assert!(
        ka.len() > 150 && kb.len() > 150,
        "{} / {}",
        ka.len(),
        kb.len()
    );
    for id in &ids {
        let key = mc_key(prefix, "entry", id);
        assert!(ka.contains(&key) != kb.contains(&key), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_a_dead_replicas_claim_blocks_the_instance_only_until_it_expires() {
    let mc = PrivateMemcached::start();
    let prefix = "novajoin-test:deadclaim:";
    let h = Handler::new(0);
    let cache = ResponseCache::new(&memcached_settings(&[mc.addr()], prefix)).unwrap();
    let svc = stack(&cache, &h);
    let id = new_id();
    let claim_key = mc_key(prefix, "claim", &id);
    // A replica took the claim and died: nobody renews or releases it.
    mc.set(&claim_key, b"dead-replica", 2);
    let t0 = std::time::Instant::now();
    let a = post(&svc, &nova_body(&id, "vm1")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(h.calls(), 1);
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "the handler ran while the dead replica's claim was still held"
    );
    assert_eq!(
        mc.get(&claim_key),
        None,
        "the claim is released after the answer is stored"
    );
    assert!(mc.get(&mc_key(prefix, "entry", &id)).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_a_live_replica_renews_its_claim_while_the_handler_is_slow() {
    let mc = PrivateMemcached::start();
    // The handler takes longer than two claim timeouts (memcached counts
    // whole seconds: 1 s).
    let h = Handler::new(2500);
    let mut settings = memcached_settings(&[mc.addr()], "novajoin-test:renew:");
    settings.memcached.as_mut().unwrap().claim_timeout = Duration::from_secs(1);
    let (r1, r2) = (
        ResponseCache::new(&settings).unwrap(),
        ResponseCache::new(&settings).unwrap(),
    );
    let (s1, s2) = (stack(&r1, &h), stack(&r2, &h));
    let id = new_id();
    let first = tokio::spawn({
        let id = id.clone();
        async move { post(&s1, &nova_body(&id, "vm1")).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = post(&s2, &nova_body(&id, "vm1")).await;
    let first = first.await.unwrap();
    assert_eq!(h.calls(), 1, "the claim expired under a live replica");
    assert_eq!(first.otp(), second.otp());
    assert_eq!(second.outcome, CacheOutcome::Coalesced);
}

#[tokio::test]
async fn memcached_entries_are_sealed_and_read_by_another_replica() {
    let mc = PrivateMemcached::start();
    let prefix = "novajoin-test:sealed:";
    let h = Handler::new(0);
    let cache = ResponseCache::new(&memcached_settings(&[mc.addr()], prefix)).unwrap();
    let id = new_id();
    let a = post(&stack(&cache, &h), &nova_body(&id, "sealed-host")).await;
    let raw = mc.get(&mc_key(prefix, "entry", &id)).expect("entry stored");
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains(&a.otp()) && !text.contains("sealed-host") && !text.contains("ipaotp"));
    let other = ResponseCache::new(&memcached_settings(&[mc.addr()], prefix)).unwrap();
    let b = post(&stack(&other, &h), &nova_body(&id, "sealed-host")).await;
    assert_eq!((b.outcome, b.otp()), (CacheOutcome::Hit, a.otp()));
    assert_eq!(h.calls(), 1);
    // A replica with another secret refuses the entry, and says so.
    log_buf();
    let mut settings = memcached_settings(&[mc.addr()], prefix);
    settings.memcached.as_mut().unwrap().secret_key = format!("{SECRET}-other");
    let stranger = ResponseCache::new(&settings).unwrap();
    let c = post(&stack(&stranger, &h), &nova_body(&id, "sealed-host")).await;
    assert_eq!(c.outcome, CacheOutcome::Miss);
    assert_ne!(c.otp(), a.otp());
    assert_eq!(stranger.stats().refused, 1);
    assert!(log_lines_with(&id)
        .iter()
        .any(|l| l.contains("refusing a memcached entry")));
}

/// The hostile tenant: instance ids are nova's, but a cache key must not
/// let one instance's id reach another's entry, whatever memcached's key
/// rules (250 printable ASCII bytes) would do to a long or unusual id;
/// and an entry copied to another instance's key does not verify.
#[tokio::test]
async fn memcached_keys_of_distinct_instances_never_collide() {
    log_buf();
    let mc = PrivateMemcached::start();
    let prefix = "novajoin-test:collide:";
    let h = Handler::new(0);
    let cache = ResponseCache::new(&memcached_settings(&[mc.addr()], prefix)).unwrap();
    let svc = stack(&cache, &h);
    // 255 characters that agree on their first 250 bytes; non-ASCII ones.
    let stem = "i".repeat(250);
    let ids = [
        format!("{stem}aaaaa"),
        format!("{stem}bbbbb"),
        "instance-é".to_string(),
        "instance-e".to_string(),
    ];
    let mut otps = Vec::new();
    for id in &ids {
        let a = post(&svc, &nova_body(id, "vm")).await;
        assert_eq!(
            (a.status, a.outcome),
            (StatusCode::OK, CacheOutcome::Miss),
            "{id}"
        );
        otps.push(a.otp());
    }
    assert_eq!(h.calls(), 4, "every instance was computed on its own");
    let mut keys = mc.keys();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(
        keys.iter().all(|k| k.len() <= 250 && k.is_ascii()),
        "{keys:?}"
    );
    // An entry moved to another instance's key is refused there.
    let victim = &ids[1];
    let forged = mc.get(&mc_key(prefix, "entry", &ids[0])).unwrap();
    mc.set(&mc_key(prefix, "entry", victim), &forged, 60);
    // A fresh replica (nothing in its own memory) reads the shared entry.
    let fresh = ResponseCache::new(&memcached_settings(&[mc.addr()], prefix)).unwrap();
    let got = post(&stack(&fresh, &h), &nova_body(victim, "vm")).await;
    assert_eq!(got.outcome, CacheOutcome::Miss);
    assert_ne!(got.otp(), otps[0], "another instance's OTP was served");
    assert_eq!(fresh.stats().refused, 1);
}

#[tokio::test]
async fn memcached_evict_removes_the_shared_entry() {
    let mc = PrivateMemcached::start();
    let prefix = "novajoin-test:evict:";
    let h = Handler::new(0);
    let (r1, r2) = (
        ResponseCache::new(&memcached_settings(&[mc.addr()], prefix)).unwrap(),
        ResponseCache::new(&memcached_settings(&[mc.addr()], prefix)).unwrap(),
    );
    let id = new_id();
    post(&stack(&r1, &h), &nova_body(&id, "vm1")).await;
    // The listener's process evicts through its own cache instance.
    assert!(r2.evict(&id).await.unwrap());
    assert!(mc.keys().is_empty(), "{:?}", mc.keys());
    assert!(!r2.evict(&id).await.unwrap());
    assert_eq!(
        post(&stack(&r1, &h), &nova_body(&id, "vm1")).await.outcome,
        CacheOutcome::Miss
    );
    assert_eq!(h.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_unreachable_falls_back_to_the_local_cache_and_reports_degraded() {
    log_buf();
    let port = support::server::free_port();
    let h = Handler::new(30);
    let cache = ResponseCache::new(&memcached_settings(
        &[format!("127.0.0.1:{port}")],
        "novajoin-test:down:",
    ))
    .unwrap();
    let reg = HealthRegistry::default();
    reg.register(cache.health_probe().unwrap());
    let svc = stack(&cache, &h);
    let id = new_id();
    let answers = burst(std::slice::from_ref(&svc), std::slice::from_ref(&id), 50).await;
    assert_eq!(
        h.calls(),
        1,
        "local single-flight still holds while memcached is down"
    );
    assert_one_otp_each(&h, &answers);
    assert_eq!(
        post(&svc, &nova_body(&id, "vm")).await.outcome,
        CacheOutcome::Hit
    );
    let state = wait_for_probe(&reg, "memcached", |s| matches!(s, HealthState::Degraded(_))).await;
    let HealthState::Degraded(msg) = state else {
        unreachable!()
    };
    assert!(
        msg.contains("unreachable")
            && msg.contains("local cache")
            && msg.contains(&port.to_string()),
        "{msg}"
    );
    assert!(cache.stats().memcached_errors > 0);
    assert!(logs()
        .lines()
        .any(|l| l.contains("memcached server is unreachable") && l.contains(&port.to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_outage_with_fail_closed_answers_503_until_it_is_back() {
    log_buf();
    let mut mc = PrivateMemcached::start();
    let h = Handler::new(0);
    let mut settings = memcached_settings(&[mc.addr()], "novajoin-test:outage:");
    settings.memcached.as_mut().unwrap().on_failure = RedisFailureMode::FailClosed;
    let cache = ResponseCache::new(&settings).unwrap();
    let reg = HealthRegistry::default();
    reg.register(cache.health_probe().unwrap());
    let svc = stack(&cache, &h);
    let id = new_id();
    let before = post(&svc, &nova_body(&id, "vm1")).await;
    assert_eq!(before.outcome, CacheOutcome::Miss);
    assert_eq!(
        reg.check_all().await,
        vec![("memcached".to_string(), HealthState::Ok)]
    );

    mc.stop();
    for _ in 0..3 {
        let during = post(&svc, &nova_body(&new_id(), "vm1")).await;
        assert_eq!(during.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(during.body["serviceUnavailable"]["message"]
            .as_str()
            .unwrap()
            .contains("memcached"));
    }
    assert_eq!(
        h.calls(),
        1,
        "fail_closed never runs the handler without memcached"
    );
    let state = wait_for_probe(&reg, "memcached", |s| matches!(s, HealthState::Failed(_))).await;
    assert!(matches!(state, HealthState::Failed(m) if m.contains("refused")));

    mc.restart(); // an empty memcached: the old entry is gone
    wait_for_probe(&reg, "memcached", |s| *s == HealthState::Ok).await;
    let after = post(&svc, &nova_body(&id, "vm1")).await;
    assert_eq!(
        (after.status, after.outcome),
        (StatusCode::OK, CacheOutcome::Miss)
    );
    assert_eq!(
        post(&svc, &nova_body(&id, "vm1")).await.outcome,
        CacheOutcome::Hit
    );
    assert!(logs()
        .lines()
        .any(|l| l.contains("memcached server is reachable again")
            && l.contains(&mc.port.to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memcached_that_stops_answering_is_declared_down_by_the_probe_and_back_when_it_answers() {
    log_buf();
    let mc = PrivateMemcached::start();
    let h = Handler::new(0);
    let mut settings = memcached_settings(&[mc.addr()], "novajoin-test:frozen:");
    let m = settings.memcached.as_mut().unwrap();
    m.on_failure = RedisFailureMode::FailClosed;
    m.socket_timeout = Duration::from_millis(300);
    let cache = ResponseCache::new(&settings).unwrap();
    let reg = HealthRegistry::default();
    reg.register(cache.health_probe().unwrap());
    let svc = stack(&cache, &h);
    assert_eq!(
        post(&svc, &nova_body(&new_id(), "vm1")).await.status,
        StatusCode::OK
    );

    mc.pause();
    // Slow replies alone do not make it down; the probe's unanswered
    // `version` does, and the waiting request is then refused.
    let during = post(&svc, &nova_body(&new_id(), "vm1")).await;
    assert_eq!(during.status, StatusCode::SERVICE_UNAVAILABLE);
    wait_for_probe(&reg, "memcached", |s| matches!(s, HealthState::Failed(_))).await;
    assert_eq!(h.calls(), 1, "no handler call while memcached is frozen");

    mc.resume();
    wait_for_probe(&reg, "memcached", |s| *s == HealthState::Ok).await;
    assert_eq!(
        post(&svc, &nova_body(&new_id(), "vm1")).await.status,
        StatusCode::OK
    );
    assert!(cache.stats().memcached_errors > 0);
}

// ---------- configuration through the pipeline ----------

/// Builds the `cache` filter from `join_conf` alone.
async fn build_cache_filter(
    join_conf: &str,
) -> Result<(novajoin::pipeline::HttpLayer, HealthRegistry), String> {
    use novajoin::config::ConfigFiles;
    use novajoin::pipeline::build::{BuildContext, FilterOptions};
    use novajoin::pipeline::registry::filters;
    let mut config = ConfigFiles::default();
    config
        .add_text(std::path::Path::new("join.conf"), join_conf)
        .unwrap();
    let config = Arc::new(config);
    let health = HealthRegistry::default();
    let entry = filters().into_iter().find(|f| f.name == "cache").unwrap();
    let build = entry.build.expect("cache filter is built");
    let opts = FilterOptions::new(
        "cache",
        "pipeline.toml".into(),
        Default::default(),
        config.clone(),
    );
    let layer = build(
        opts,
        &BuildContext {
            config,
            health: health.clone(),
        },
    )
    .map_err(|e| e.to_string())?;
    Ok((layer, health))
}

#[tokio::test]
async fn the_filter_builds_the_memcached_backend_from_oslo_cache_options() {
    let mc = PrivateMemcached::start();
    let prefix = format!("novajoin-test:{}:", uuid::Uuid::new_v4().simple());
    let (factory, health) = build_cache_filter(&format!(
        "[cache]\nbackend = memcached\nmemcache_servers = inet:{}\nsecret_key = {SECRET}\nkey_prefix = {prefix}\n",
        mc.addr()
    ))
    .await
    .unwrap();
    let h = Handler::new(0);
    let svc = factory.layer(handler_service(h.clone()));
    let id = new_id();
    post(&svc, &nova_body(&id, "vm1")).await;
    assert_eq!(
        post(&svc, &nova_body(&id, "vm1")).await.outcome,
        CacheOutcome::Hit
    );
    assert_eq!(mc.keys(), vec![mc_key(&prefix, "entry", &id)]);
    assert_eq!(
        health.check_all().await,
        vec![("memcached".to_string(), HealthState::Ok)]
    );
    // Without a secret the backend is refused, naming the option.
    let err = build_cache_filter(&format!(
        "[cache]\nbackend = memcached\nmemcache_servers = {}\n",
        mc.addr()
    ))
    .await
    .err()
    .expect("no secret_key");
    assert!(err.contains("secret_key"), "{err}");
}

#[tokio::test]
async fn a_memory_cache_on_a_cloud_with_several_replicas_is_warned_about_at_start() {
    log_buf();
    // join.conf carries keystonemiddleware's memcached_servers, as on every
    // multi-controller cloud, and the answer cache is left in memory.
    let marker = format!("mc-{}.example:11211", uuid::Uuid::new_v4().simple());
    build_cache_filter(&format!(
        "[keystone_authtoken]\nmemcached_servers = {marker}\n[cache]\nttl = 60\n"
    ))
    .await
    .unwrap();
    let warned = logs()
        .lines()
        .filter(|l| {
            l.contains("WARN") && l.contains("[keystone_authtoken] memcached_servers is set")
        })
        .count();
    assert!(warned >= 1, "no multi-replica warning");
}

#[tokio::test]
async fn the_filter_builds_from_pipeline_options_and_registers_its_probe() {
    use novajoin::config::pipeline_file::OptionAt;
    use novajoin::config::ConfigFiles;
    use novajoin::pipeline::build::{BuildContext, FilterOptions};
    use novajoin::pipeline::registry::filters;
    let ns = RedisNamespace::new("build");
    let mut config = ConfigFiles::default();
    config
        .add_text(
            std::path::Path::new("join.conf"),
            &format!(
                "[cache]\nbackend = redis\nredis_url = {}\nsecret_key = {SECRET}\n",
                ns.url
            ),
        )
        .unwrap();
    let config = Arc::new(config);
    let health = HealthRegistry::default();
    let entry = filters().into_iter().find(|f| f.name == "cache").unwrap();
    let build = entry.build.expect("cache filter is built");
    let mut table = std::collections::BTreeMap::new();
    table.insert(
        "key_prefix".to_string(),
        OptionAt {
            value: toml::Value::String(ns.prefix.clone()),
            line: 3,
        },
    );
    table.insert(
        "claim_timeout".to_string(),
        OptionAt {
            value: toml::Value::Float(2.5),
            line: 4,
        },
    );
    let opts = FilterOptions::new("cache", "pipeline.toml".into(), table, config.clone());
    let factory = build(
        opts,
        &BuildContext {
            config: config.clone(),
            health: health.clone(),
        },
    )
    .unwrap();
    let h = Handler::new(0);
    let svc = factory.layer(handler_service(h.clone()));
    let id = new_id();
    post(&svc, &nova_body(&id, "vm1")).await;
    assert_eq!(
        post(&svc, &nova_body(&id, "vm1")).await.outcome,
        CacheOutcome::Hit
    );
    assert!(
        ns.keys().contains(&format!("{}entry:{id}", ns.prefix)),
        "pipeline key_prefix used"
    );
    assert_eq!(
        health.check_all().await,
        vec![("redis".to_string(), HealthState::Ok)]
    );

    // A typo in the filter's options is a start-up error naming it.
    let mut table = std::collections::BTreeMap::new();
    table.insert(
        "ttl_seconds".to_string(),
        OptionAt {
            value: toml::Value::Integer(5),
            line: 7,
        },
    );
    let opts = FilterOptions::new("cache", "pipeline.toml".into(), table, config.clone());
    let err = build(
        opts,
        &BuildContext {
            config: config.clone(),
            health: HealthRegistry::default(),
        },
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("pipeline.toml:7") && err.to_string().contains("ttl_seconds"),
        "{err}"
    );

    // Redis without a secret is refused at start-up, without echoing values.
    let mut bad = ConfigFiles::default();
    bad.add_text(
        std::path::Path::new("join.conf"),
        "[cache]\nbackend = redis\nredis_url = redis://:hunter2@127.0.0.1:6379\n",
    )
    .unwrap();
    let bad = Arc::new(bad);
    let opts = FilterOptions::new(
        "cache",
        "pipeline.toml".into(),
        Default::default(),
        bad.clone(),
    );
    let err = build(
        opts,
        &BuildContext {
            config: bad,
            health: HealthRegistry::default(),
        },
    )
    .err()
    .unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("secret_key") && !msg.contains("hunter2"),
        "{msg}"
    );
}

#[tokio::test]
async fn the_pipeline_refuses_cache_without_the_filters_it_needs_in_front() {
    use novajoin::config::pipeline_file::PipelineFile;
    use novajoin::config::ConfigFiles;
    use novajoin::pipeline::build::BuildContext;
    let file = PipelineFile::parse(
        std::path::Path::new("pipeline.toml"),
        "filters = []\n\n[[route]]\npath = \"/v1\"\nfilters = [\"cache\"]\napp = \"join\"\n",
    )
    .unwrap();
    let ctx = BuildContext {
        config: Arc::new(ConfigFiles::default()),
        health: HealthRegistry::default(),
    };
    let Err(err) = novajoin::pipeline::builder::build(&file, &ctx) else {
        panic!("a pipeline with cache but no sizelimit/policy in front was accepted");
    };
    let msg = err.to_string();
    assert!(
        msg.contains("pipeline.toml:5") && msg.contains("'cache' needs"),
        "{msg}"
    );
}

// ---------- the real thing: `novajoin server` processes with the repository's
// pipeline (authtoken, keystonecontext, policy, cache, join), the real
// keystone, the IPA double counting enrollments, and the real Redis ----------

mod servers {
    use super::*;
    use support::glance::GlanceDouble;
    use support::ipa::IpaDouble;
    use support::keystone::{Keystone, Provider};
    use support::server::{repo_pipeline, NovajoinServer, ServerFiles};

    pub(crate) struct Cluster {
        pub ipa: IpaDouble,
        _glance: GlanceDouble,
        pub keystone: &'static Keystone,
        pub servers: Vec<NovajoinServer>,
        pub token: String,
        pub http: reqwest::Client,
    }

    /// `n` servers with the repository's pipeline.toml and `cache_conf` as
    /// their `[cache]` section; `log` is their RUST_LOG.
    pub(crate) async fn cluster(n: usize, cache_conf: &str, log: &str) -> Cluster {
        let keystone = tokio::task::spawn_blocking(|| Keystone::shared(Provider::Fernet))
            .await
            .unwrap();
        let ipa = support::ipa::start().await;
        let glance = GlanceDouble::start().await;
        let nova = keystone.user("nova");
        let novajoin = keystone.user("novajoin");
        // A boot storm queues enrollments behind [ipa] max_concurrent_calls;
        // on a loaded 2-core machine in a debug build the default 20 s per
        // call (queue included) is not enough for 500 of them.
        let ipa_conf =
            support::ipa::join_conf(&ipa).replacen("[ipa]\n", "[ipa]\ntimeout = 300\n", 1);
        let conf = ipa_conf.replacen(
            "[DEFAULT]\n",
            &format!(
                "[DEFAULT]\njoin_listen = 127.0.0.1\njoin_listen_port = {{port}}\nglance_api_servers = {}\n",
                glance.url
            ),
            1,
        ) + &format!(
            "\n[service_credentials]\nauth_type = password\nauth_url = {ks}\nusername = nova\npassword = {np}\n\
             project_name = service\nuser_domain_name = Default\nproject_domain_name = Default\n\n\
             [keystone_authtoken]\nauth_type = password\nauth_url = {ks}\nusername = novajoin\npassword = {jp}\n\
             user_domain_name = Default\nproject_name = service\nproject_domain_name = Default\n\
             www_authenticate_uri = {public}\n\n[cache]\n{cache_conf}\n",
            ks = keystone.auth_url(),
            np = nova.password,
            jp = novajoin.password,
            public = keystone.public_url(),
        );
        let mut servers = Vec::new();
        for _ in 0..n {
            let (conf, log) = (conf.clone(), log.to_string());
            servers.push(
                tokio::task::spawn_blocking(move || {
                    NovajoinServer::start(ServerFiles {
                        join_conf: conf,
                        pipeline: repo_pipeline(),
                        env: vec![("RUST_LOG".into(), log)],
                    })
                })
                .await
                .unwrap(),
            );
        }
        let token = keystone.issue_token("nova").await;
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        let c = Cluster {
            ipa,
            _glance: glance,
            keystone,
            servers,
            token,
            http,
        };
        c.warm_up().await;
        c
    }

    /// What a server answered.
    pub(crate) struct Reply {
        pub status: u16,
        pub body: Value,
    }

    impl Reply {
        pub(crate) fn otp(&self) -> String {
            self.body["ipaotp"]
                .as_str()
                .unwrap_or_else(|| panic!("no ipaotp: {} {}", self.status, self.body))
                .to_string()
        }
    }

    impl Cluster {
        pub(crate) fn fqdn(&self, host: &str) -> String {
            format!("{host}.{}", self.ipa.domain())
        }

        /// POSTs nova's body for `id` / `host` to server `i` with `token`.
        pub(crate) async fn post_as(&self, i: usize, token: &str, id: &str, host: &str) -> Reply {
            self.try_post_as(i, token, id, host)
                .await
                .expect("server answers")
        }

        /// The same, for a server that may be dead.
        pub(crate) async fn try_post_as(
            &self,
            i: usize,
            token: &str,
            id: &str,
            host: &str,
        ) -> Result<Reply, reqwest::Error> {
            let body = json!({"project-id": null, "instance-id": id, "image-id": "155d900f-4e14-4e4c-a73d-069cbf4541e6",
                              "user-data": null, "hostname": host, "metadata": {"ipa_enroll": "True"},
                              "boot-roles": "member,reader"});
            let r = self
                .http
                .post(format!("{}/v1/", self.servers[i].base))
                .header("content-type", "application/json")
                .header("x-auth-token", token)
                .body(body.to_string())
                .send()
                .await?;
            let status = r.status().as_u16();
            let text = r.text().await?;
            Ok(Reply {
                status,
                body: serde_json::from_str(&text).unwrap_or(Value::Null),
            })
        }

        pub(crate) async fn post(&self, i: usize, id: &str, host: &str) -> Reply {
            self.post_as(i, &self.token.clone(), id, host).await
        }

        /// Has every server validate nova's token once (keystone, shared by
        /// every test on a loaded machine, can be slow to answer the first
        /// time; authtoken answers 503 then), then zeroes IPA's counters.
        pub(crate) async fn warm_up(&self) {
            for i in 0..self.servers.len() {
                let id = new_id();
                let mut last = None;
                for _ in 0..20 {
                    let r = self.post(i, &id, &format!("warm-{}", &id[..8])).await;
                    if r.status == 200 {
                        last = None;
                        break;
                    }
                    last = Some((r.status, r.body));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                assert!(
                    last.is_none(),
                    "server {i} never answered the warm-up request: {last:?}"
                );
            }
            self.ipa.reset_counters();
        }

        /// Enrollments IPA saw: one OTP set (`host_add` or `host_mod`) per
        /// enrollment.
        pub(crate) fn enrollments(&self) -> u64 {
            self.ipa.otps_set()
        }
    }

    /// `per_instance` concurrent requests for each of `n` new instances,
    /// spread over the servers; returns (instance, host, replies).
    pub(crate) async fn server_burst(
        c: &Arc<Cluster>,
        n: usize,
        per_instance: usize,
    ) -> Vec<(String, String, Vec<Reply>)> {
        let instances: Vec<(String, String)> = (0..n)
            .map(|_| {
                let id = new_id();
                let host = format!("vm-{}", &id[..8]);
                (id, host)
            })
            .collect();
        let mut tasks = Vec::new();
        for round in 0..per_instance {
            for (k, (id, host)) in instances.iter().enumerate() {
                let (c, id, host) = (c.clone(), id.clone(), host.clone());
                let server = (k + round) % c.servers.len();
                tasks.push(tokio::spawn(async move {
                    (k, c.post(server, &id, &host).await)
                }));
            }
        }
        let mut replies: Vec<Vec<Reply>> = (0..n).map(|_| Vec::new()).collect();
        for t in tasks {
            let (k, r) = t.await.unwrap();
            replies[k].push(r);
        }
        instances
            .into_iter()
            .zip(replies)
            .map(|((id, host), r)| (id, host, r))
            .collect()
    }

    /// Statuses seen and one body per status, for failure messages.
    pub(crate) fn summary(results: &[(String, String, Vec<Reply>)]) -> String {
        let mut by: std::collections::BTreeMap<u16, (usize, String)> = Default::default();
        for r in results.iter().flat_map(|(_, _, r)| r) {
            let e = by
                .entry(r.status)
                .or_insert((0, r.body.to_string().chars().take(300).collect()));
            e.0 += 1;
        }
        format!("{by:?}")
    }

    /// Every instance got one OTP, the one IPA holds for its host.
    pub(crate) fn assert_one_valid_otp_each(c: &Cluster, results: &[(String, String, Vec<Reply>)]) {
        for (id, host, replies) in results {
            let otp = replies[0].otp();
            for r in replies {
                assert_eq!(r.status, 200, "{id}: {}", r.body);
                assert_eq!(r.otp(), otp, "two OTPs for instance {id}");
                assert_eq!(r.body["hostname"], c.fqdn(host));
            }
            c.ipa
                .ipa_join(&c.fqdn(host), &otp)
                .unwrap_or_else(|e| panic!("IPA does not hold the OTP of {id}: {e}"));
        }
    }

    pub(crate) fn redis_cache_conf(ns: &RedisNamespace, extra: &str) -> String {
        format!(
            "backend = redis\nttl = 600\nwait_timeout = 300\nredis_url = {}\nsecret_key = {SECRET}\nkey_prefix = {}\nredis_timeout = 10\n{extra}",
            ns.url, ns.prefix
        )
    }
}

use servers::{assert_one_valid_otp_each, cluster, redis_cache_conf, server_burst, summary};

const QUIET: &str = "info,hyper=warn,reqwest=warn";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_200_concurrent_requests_for_one_new_instance_make_one_enrollment() {
    let c = Arc::new(cluster(1, "backend = memory\nttl = 600\n", QUIET).await);
    let results = server_burst(&c, 1, 200).await;
    assert_eq!(
        c.enrollments(),
        1,
        "IPA commands: {:?}",
        c.ipa.round_trips_by_method()
    );
    assert_eq!(c.ipa.commands("host_add"), 1);
    assert_one_valid_otp_each(&c, &results);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_2000_concurrent_requests_over_500_instances_make_500_enrollments() {
    let c = Arc::new(cluster(1, "backend = memory\nttl = 600\n", QUIET).await);
    let t0 = std::time::Instant::now();
    let results = server_burst(&c, 500, 4).await;
    eprintln!("BURST 2000/500 took {:?}", t0.elapsed());
    assert_eq!(
        c.enrollments(),
        500,
        "{}; IPA {:?}",
        summary(&results),
        c.ipa.round_trips_by_method()
    );
    assert_one_valid_otp_each(&c, &results);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_sharing_redis_200_concurrent_requests_for_one_instance_make_one_enrollment() {
    let ns = RedisNamespace::new("srv200");
    let c = Arc::new(cluster(2, &redis_cache_conf(&ns, ""), QUIET).await);
    let results = server_burst(&c, 1, 200).await;
    let statuses: Vec<u16> = results[0].2.iter().map(|r| r.status).collect();
    assert_eq!(
        c.enrollments(),
        1,
        "IPA commands: {:?}; statuses {statuses:?}; first body {}; logs {}",
        c.ipa.round_trips_by_method(),
        results[0].2[0].body,
        c.servers[0].logs()
    );
    assert_one_valid_otp_each(&c, &results);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_sharing_redis_2000_concurrent_requests_over_500_instances_make_500_enrollments(
) {
    let ns = RedisNamespace::new("srv500");
    let c = Arc::new(cluster(2, &redis_cache_conf(&ns, ""), QUIET).await);
    let t0 = std::time::Instant::now();
    let results = server_burst(&c, 500, 4).await;
    eprintln!("BURST 2000/500 took {:?}", t0.elapsed());
    let complaints: Vec<String> = c
        .servers
        .iter()
        .flat_map(|s| {
            s.logs()
                .lines()
                .filter(|l| {
                    l.contains("response cache") && (l.contains("WARN") || l.contains("ERROR"))
                })
                .take(5)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        c.enrollments(),
        500,
        "{}; IPA {:?}; {complaints:#?}",
        summary(&results),
        c.ipa.round_trips_by_method()
    );
    assert_one_valid_otp_each(&c, &results);
    for s in &c.servers {
        assert!(
            !s.logs().contains("Redis is unreachable"),
            "a replica fell back to its local cache"
        );
    }
}

fn memcached_cache_conf(servers: &[&PrivateMemcached]) -> String {
    let list: Vec<String> = servers.iter().map(|m| m.addr()).collect();
    format!(
        "backend = memcached\nttl = 600\nwait_timeout = 300\nmemcache_servers = {}\nsecret_key = {SECRET}\n\
         key_prefix = novajoin-test:{}:\nmemcache_socket_timeout = 10\n",
        list.join(", "),
        uuid::Uuid::new_v4().simple()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_sharing_memcached_200_concurrent_requests_for_one_instance_make_one_enrollment(
) {
    let mc = PrivateMemcached::start();
    let c = Arc::new(cluster(2, &memcached_cache_conf(&[&mc]), QUIET).await);
    let results = server_burst(&c, 1, 200).await;
    let statuses: Vec<u16> = results[0].2.iter().map(|r| r.status).collect();
    assert_eq!(
        c.enrollments(),
        1,
        "IPA commands: {:?}; statuses {statuses:?}; first body {}; logs {}",
        c.ipa.round_trips_by_method(),
        results[0].2[0].body,
        c.servers[0].logs()
    );
    assert_one_valid_otp_each(&c, &results);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_sharing_two_memcached_400_concurrent_requests_over_100_instances_make_100_enrollments(
) {
    let (a, b) = (PrivateMemcached::start(), PrivateMemcached::start());
    let c = Arc::new(cluster(2, &memcached_cache_conf(&[&a, &b]), QUIET).await);
    let results = server_burst(&c, 100, 4).await;
    assert_eq!(
        c.enrollments(),
        100,
        "{}; IPA {:?}",
        summary(&results),
        c.ipa.round_trips_by_method()
    );
    assert_one_valid_otp_each(&c, &results);
    for s in &c.servers {
        assert!(
            !s.logs().contains("memcached server is unreachable"),
            "a replica fell back to its local cache"
        );
    }
    // Both servers hold answers (instances are spread by consistent hashing).
    assert!(!a.keys().is_empty() && !b.keys().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_that_holds_a_claim_blocks_the_instance_only_until_the_claim_expires() {
    let ns = RedisNamespace::new("kill");
    let c = Arc::new(cluster(2, &redis_cache_conf(&ns, "claim_timeout = 2\n"), QUIET).await);
    // IPA is slow, so replica 0 is still enrolling when it is killed.
    c.ipa.set_latency(Duration::from_millis(3000));
    let id = new_id();
    let host = format!("vm-{}", &id[..8]);
    let claim_key = format!("{}claim:{id}", ns.prefix);
    let first = tokio::spawn({
        let (c, id, host) = (c.clone(), id.clone(), host.clone());
        async move { c.try_post_as(0, &c.token, &id, &host).await }
    });
    // Wait until replica 0 holds the claim, then start replica 1's request.
    let mut conn = ns.conn();
    let mut held = None;
    for _ in 0..3000 {
        held = redis::cmd("GET")
            .arg(&claim_key)
            .query::<Option<String>>(&mut conn)
            .unwrap();
        if held.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dead_token = held.expect("replica 0 took the claim");
    let second = tokio::spawn({
        let (c, id, host) = (c.clone(), id.clone(), host.clone());
        async move { c.post(1, &id, &host).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !second.is_finished(),
        "replica 1 answered while replica 0 held the claim"
    );
    // SIGKILL: no release, no renewal.
    unsafe { libc::kill(c.servers[0].pid() as i32, libc::SIGKILL) };
    assert!(
        first.await.unwrap().is_err(),
        "the killed replica cannot have answered"
    );
    let reply = second.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let otp = reply.otp();
    // Replica 1 computed it itself once the dead claim expired; the dead
    // replica's enrollment may have reached IPA too, but the OTP IPA holds is
    // the one replica 1 handed out.
    let now: Option<String> = redis::cmd("GET").arg(&claim_key).query(&mut conn).unwrap();
    assert_ne!(now.as_deref(), Some(dead_token.as_str()));
    c.ipa.set_latency(Duration::ZERO);
    // The dead replica's batch may still be in the double; let it land first.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    c.ipa
        .ipa_join(&c.fqdn(&host), &otp)
        .expect("IPA holds the OTP the surviving replica handed out");
    // And replica 1 keeps answering it from the shared entry.
    assert_eq!(c.post(1, &id, &host).await.otp(), otp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refuses_and_logs_redis_entries_written_without_the_key_or_altered() {
    let ns = RedisNamespace::new("srvrefuse");
    let c = cluster(
        1,
        &redis_cache_conf(&ns, ""),
        "trace,hyper=info,h2=info,reqwest=info,rustls=info,tower=info",
    )
    .await;
    let mut conn = ns.conn();
    // Forged without the key.
    let forged = new_id();
    let host = format!("vm-{}", &forged[..8]);
    let fake = json!({"hostname": c.fqdn(&host), "krb_realm": c.ipa.realm(), "ipaotp": "0123456789abcdef0123456789abcdef"});
    let _: () = redis::cmd("SET")
        .arg(format!("{}entry:{forged}", ns.prefix))
        .arg(fake.to_string())
        .query(&mut conn)
        .unwrap();
    let r = c.post(0, &forged, &host).await;
    assert_eq!(r.status, 200);
    assert_ne!(r.otp(), "0123456789abcdef0123456789abcdef");
    c.ipa
        .ipa_join(&c.fqdn(&host), &r.otp())
        .expect("the fresh OTP is IPA's");
    // A genuine entry, altered.
    let altered = new_id();
    let host2 = format!("vm-{}", &altered[..8]);
    let genuine = c.post(0, &altered, &host2).await.otp();
    let key = format!("{}entry:{altered}", ns.prefix);
    let mut raw: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(raw)
        .arg("KEEPTTL")
        .query(&mut conn)
        .unwrap();
    let again = c.post(0, &altered, &host2).await;
    assert_ne!(again.otp(), genuine);
    assert_eq!(c.enrollments(), 3);
    let logs = c.servers[0].logs();
    for id in [&forged, &altered] {
        assert!(
            logs.lines()
                .any(|l| l.contains("refusing a Redis entry") && l.contains(id.as_str())),
            "no refusal logged for {id}"
        );
    }
    for otp in [r.otp(), genuine, again.otp()] {
        assert!(!logs.contains(&otp), "an OTP appeared in the server log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_instance_is_never_served_without_a_valid_token_and_policy() {
    // A long TTL: keystone may be slow to refuse the bogus tokens below.
    let c = cluster(1, "backend = memory\nttl = 600\n", QUIET).await;
    let id = new_id();
    let host = format!("vm-{}", &id[..8]);
    let cached = c.post(0, &id, &host).await;
    assert_eq!(cached.status, 200);
    let otp = cached.otp();
    // No token, a bogus token: 401 from authtoken, the cache never reached.
    for token in ["", "gAAAAABnot-a-real-token"] {
        let r = c.post_as(0, token, &id, &host).await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert!(!r.body.to_string().contains(&otp));
    }
    // A valid token of a user the policy does not allow (demo): 403.
    let demo = c.keystone.issue_token("demo").await;
    let r = c.post_as(0, &demo, &id, &host).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(!r.body.to_string().contains(&otp));
    // nova still gets its cached answer.
    assert_eq!(c.post(0, &id, &host).await.otp(), otp);
    assert_eq!(c.enrollments(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_stops_answering_is_declared_down_after_two_unanswered_pings() {
    log_buf();
    let server = PrivateRedis::start();
    let h = Handler::new(0);
    let mut settings = redis_settings(&server.url(), "novajoin-test:hung:");
    settings.redis.as_mut().unwrap().timeout = Duration::from_millis(300);
    let cache = ResponseCache::new(&settings).unwrap();
    let reg = HealthRegistry::default();
    reg.register(cache.health_probe().unwrap());
    let svc = stack(&cache, &h);
    assert_eq!(
        post(&svc, &nova_body(&new_id(), "vm0")).await.outcome,
        CacheOutcome::Miss
    );
    // Connected, then Redis hangs: replies stop, the connection stays up.
    server.pause();
    let id = new_id();
    // The request waits (one slow reply does not make Redis down) until the
    // prober's second unanswered PING opens the breaker, then falls back.
    let a = post(&svc, &nova_body(&id, "vm1")).await;
    assert_eq!((a.status, a.outcome), (StatusCode::OK, CacheOutcome::Miss));
    assert_eq!(
        post(&svc, &nova_body(&id, "vm1")).await.outcome,
        CacheOutcome::Hit
    );
    assert_eq!(h.calls(), 2);
    let state = wait_for_health(&reg, |s| matches!(s, HealthState::Degraded(_))).await;
    let HealthState::Degraded(msg) = state else {
        unreachable!()
    };
    assert!(msg.contains("no reply within"), "{msg}");
    server.resume();
    wait_for_health(&reg, |s| *s == HealthState::Ok).await;
}
