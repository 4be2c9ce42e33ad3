//! The boot-storm load generator of bench/storm.sh.
//!
//! Starts the IPA double in this process (so it can count calls and read
//! every host's OTP), `--replicas` novajoin servers (`--novajoin`, release
//! build) on loopback with the `noauth` pipeline (keystone is not what a
//! storm measures; its token is cached anyway) and, with two or more, a
//! Redis cache they share; then boots `--instances` instances spread evenly
//! over `--over` seconds. Each instance gets nova's config-drive requests
//! (`--posts` POSTs at once, spread over the replicas) and, one and two
//! seconds after its first answer, two guest reads of vendor_data2.json
//! (each one POST to novajoin). An instance with no 200 among its
//! config-drive answers retries as its guest does: one POST after the
//! answer's `Retry-After` (2 s without one), until a 200 or 60 s. Every
//! POST gives up after 5 s, as nova does with its default
//! `vendordata_dynamic_read_timeout`.
//!
//! Checked per instance: every 200 of an instance carries the same OTP,
//! that OTP is the one IPA holds, and no OTP went to two instances.
//! Prints one result line of `key=value` pairs (bench/storm.sh tabulates
//! them).
//!
//! Options (`--name value`): novajoin, work, label, instances, over,
//! posts, replicas, cap, batch-max, batch-window-ms, queue-deadline,
//! call-cost-ms, item-cost-ms, redis-url, connections.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipa_double::{DoubleOptions, IpaDouble};
use tokio::sync::Semaphore;

/// nova's default `vendordata_dynamic_read_timeout`.
const NOVA_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a guest keeps asking when its config drive had no answer.
const GUEST_PATIENCE: Duration = Duration::from_secs(60);
const IPA_PASSWORD: &str = "bench-secret";

struct Args(HashMap<String, String>);

impl Args {
    fn parse() -> Self {
        let mut map = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(k) = it.next() {
            let key = k.trim_start_matches("--").to_string();
            let value = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
            map.insert(key, value);
        }
        Self(map)
    }
    fn get(&self, k: &str, default: &str) -> String {
        self.0
            .get(k)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }
    fn num<T: std::str::FromStr>(&self, k: &str, default: &str) -> T {
        self.get(k, default)
            .parse()
            .unwrap_or_else(|_| panic!("--{k} is not a number"))
    }
}

/// One POST's outcome.
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    latency: Duration,
    retry_after: Option<u64>,
    otp: Option<String>,
}

struct Instance {
    host: String,
    answers: Vec<Answer>,
    /// From the storm's start to the first 200.
    enrolled_at: Option<Duration>,
}

fn body(host: &str, instance_id: &str) -> String {
    format!(
        r#"{{"project-id": null, "instance-id": "{instance_id}", "image-id": null, "user-data": null, "hostname": "{host}", "metadata": {{"ipa_enroll": "True"}}, "boot-roles": "member,reader"}}"#
    )
}

async fn post(client: &reqwest::Client, url: &str, body: &str) -> Answer {
    let started = Instant::now();
    let resp = client
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(body.to_string())
        .send()
        .await;
    let (status, retry_after, otp) = match resp {
        Ok(r) => {
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let text = r.text().await.unwrap_or_default();
            let otp = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["ipaotp"].as_str().map(str::to_string));
            (status, retry_after, otp)
        }
        // Transport failure or nova's 5 s read timeout.
        Err(_) => (0, None, None),
    };
    Answer {
        status,
        latency: started.elapsed(),
        retry_after,
        otp,
    }
}

fn start_server(novajoin: &str, dir: &PathBuf, conf: &str) -> (Child, u16) {
    std::fs::create_dir_all(dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pipeline = std::fs::read_to_string("pipeline.toml")
        .expect("run from the repository")
        .replace(
            r#"filters = ["authtoken", "keystonecontext", "policy", "cache"]"#,
            r#"filters = ["noauth", "policy", "cache"]"#,
        );
    std::fs::write(dir.join("pipeline.toml"), pipeline).unwrap();
    let conf = conf
        .replace("{port}", &port.to_string())
        .replace("{dir}", &dir.display().to_string());
    std::fs::write(dir.join("join.conf"), conf).unwrap();
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let child = Command::new(novajoin)
        .args(["server", "--config-file"])
        .arg(dir.join("join.conf"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start novajoin");
    (child, port)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let a = Args::parse();
    let novajoin = a.get("novajoin", "target/release/novajoin");
    let work = PathBuf::from(a.get("work", "target/bench/storm"));
    let label = a.get("label", "storm");
    let n: usize = a.num("instances", "1000");
    let over: f64 = a.num("over", "10");
    let posts: usize = a.num("posts", "6");
    let replicas: usize = a.num("replicas", "1");
    let cap: usize = a.num("cap", "16");
    let batch_max: usize = a.num("batch-max", "50");
    let window: u64 = a.num("batch-window-ms", "0");
    let deadline: f64 = a.num("queue-deadline", "4");
    let call_ms: u64 = a.num("call-cost-ms", "30");
    let item_ms: u64 = a.num("item-cost-ms", "5");
    let redis_url = a.get("redis-url", "redis://127.0.0.1:6379");
    let connections: usize = a.num("connections", "2048");

    let ipa = IpaDouble::start(DoubleOptions {
        users: vec![("admin".into(), IPA_PASSWORD.into())],
        ..DoubleOptions::default()
    })
    .await
    .expect("IPA double");
    ipa.set_cost_model(
        Duration::from_millis(call_ms),
        Duration::from_millis(item_ms),
    );

    let cache = if replicas > 1 {
        format!(
            "[cache]\nbackend = redis\nredis_url = {redis_url}\nsecret_key = {}\nkey_prefix = novajoin-storm:{}:{label}:\n",
            "ab".repeat(32),
            std::process::id()
        )
    } else {
        String::new()
    };
    let conf = format!(
        "[DEFAULT]\njoin_listen = 127.0.0.1\njoin_listen_port = {{port}}\napi_paste_config = {{dir}}/pipeline.toml\n\
         url = {url}\ndomain = example.test\n\n\
         [ipa]\nauth_method = password\nusername = admin\npassword = {IPA_PASSWORD}\nserver = ipa.example.test\n\
         realm = EXAMPLE.TEST\nmax_concurrent_calls = {cap}\nbatch_max = {batch_max}\n\
         batch_window_ms = {window}\nqueue_deadline = {deadline}\n\n{cache}",
        url = ipa.json_url(),
    );
    let mut children = Vec::new();
    let mut urls = Vec::new();
    for r in 0..replicas {
        let (child, port) = start_server(&novajoin, &work.join(format!("{label}-{r}")), &conf);
        children.push(child);
        urls.push(format!("http://127.0.0.1:{port}/v1/"));
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(NOVA_TIMEOUT)
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    // Ready, logged in to IPA, and the queue has seen a call.
    for (r, url) in urls.iter().enumerate() {
        let health = url.replace("/v1/", "/healthcheck");
        let mut ready = false;
        for _ in 0..1000 {
            if client
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            ready,
            "novajoin replica {r} did not start; see {}",
            work.display()
        );
        let warm = post(
            &client,
            url,
            &body(
                &format!("warm{r}-{label}"),
                &uuid::Uuid::new_v4().to_string(),
            ),
        )
        .await;
        assert_eq!(warm.status, 200, "warm-up of replica {r}");
    }
    ipa.reset_counters();
    let hosts_before = ipa.hosts().len();

    let urls = Arc::new(urls);
    let connections = Arc::new(Semaphore::new(connections));
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (client, urls, connections) = (client.clone(), urls.clone(), connections.clone());
        let start_at = t0 + Duration::from_secs_f64(over * i as f64 / n as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start_at.into()).await;
            let host = format!("s{i}");
            let body = body(&host, &uuid::Uuid::new_v4().to_string());
            let one = |k: usize| {
                let (client, urls, connections, body) = (
                    client.clone(),
                    urls.clone(),
                    connections.clone(),
                    body.clone(),
                );
                async move {
                    let _c = connections.acquire().await.unwrap();
                    post(&client, &urls[k % urls.len()], &body).await
                }
            };
            let mut answers = futures::future::join_all((0..posts).map(|k| one(i + k))).await;
            let mut enrolled_at = answers
                .iter()
                .any(|x| x.status == 200)
                .then(|| t0.elapsed());
            // The guest: asks again while there is no answer.
            let mut k = posts;
            while enrolled_at.is_none() && t0.elapsed() < start_at - t0 + GUEST_PATIENCE {
                let wait = answers.last().and_then(|x| x.retry_after).unwrap_or(2);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                let x = one(i + k).await;
                k += 1;
                if x.status == 200 {
                    enrolled_at = Some(t0.elapsed());
                }
                answers.push(x);
            }
            // Two guest reads of vendor_data2.json.
            for _ in 0..2 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                answers.push(one(i + k).await);
                k += 1;
            }
            Instance {
                host,
                answers,
                enrolled_at,
            }
        }));
    }
    let mut instances = Vec::with_capacity(n);
    for t in tasks {
        instances.push(t.await.unwrap());
    }

    // ---- checks and figures ----
    let mut latencies: Vec<Duration> = Vec::new();
    let mut boot_latencies: Vec<Duration> = Vec::new();
    let (mut shed, mut timeouts, mut other, mut mismatched, mut inconsistent) = (0, 0, 0, 0, 0);
    let mut otps: HashMap<String, usize> = HashMap::new();
    let mut enrolled_times = Vec::new();
    let mut first_boot_enrolled = 0;
    for inst in &instances {
        let fqdn = format!("{}.example.test", inst.host);
        let in_ipa = ipa.host(&fqdn).and_then(|h| h.otp);
        let mut seen: HashSet<&str> = HashSet::new();
        for (j, x) in inst.answers.iter().enumerate() {
            latencies.push(x.latency);
            if j < posts {
                boot_latencies.push(x.latency);
            }
            match x.status {
                200 => {
                    if let Some(o) = &x.otp {
                        seen.insert(o);
                    }
                }
                503 if x.retry_after.is_some() => shed += 1,
                0 => timeouts += 1,
                _ => other += 1,
            }
        }
        if inst.answers[..posts].iter().any(|x| x.status == 200) {
            first_boot_enrolled += 1;
        }
        if seen.len() > 1 {
            inconsistent += 1;
        }
        if let Some(o) = seen.iter().next() {
            if in_ipa.as_deref() != Some(*o) {
                mismatched += 1;
            }
            *otps.entry(o.to_string()).or_default() += 1;
        }
        if let Some(t) = inst.enrolled_at {
            enrolled_times.push(t);
        }
    }
    let duplicate_otps: usize = otps.values().filter(|c| **c > 1).map(|c| c - 1).sum();
    latencies.sort();
    boot_latencies.sort();
    enrolled_times.sort();
    let enrolled = enrolled_times.len();
    let span = enrolled_times.last().copied().unwrap_or_default();
    let calls = ipa.round_trips();
    let carried = ipa.commands_carried();
    let host_adds = ipa.commands("host_add");
    let hosts_made = ipa.hosts().len() - hosts_before;
    let per_call = Duration::from_millis(call_ms);
    let per_item = Duration::from_millis(item_ms);
    // What the double allows with `cap` calls in flight per replica: one
    // instance per call, or batch_max per call.
    let in_flight = (cap * replicas) as f64;
    let bound_single = in_flight / (per_call + per_item).as_secs_f64();
    let b = batch_max as u32;
    let bound_batched = in_flight * b as f64 / (per_call + per_item * b).as_secs_f64();
    let answered_after_5s = latencies.iter().filter(|l| **l >= NOVA_TIMEOUT).count();
    println!(
        "RESULT label={label} instances={n} over_s={over} replicas={replicas} batch_max={batch_max} \
         queue_deadline={deadline} enrolled={enrolled} enrolled_first_boot={first_boot_enrolled} \
         host_adds={host_adds} hosts_made={hosts_made} ipa_calls={calls} commands={carried} \
         calls_per_instance={:.3} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} boot_p50_ms={:.1} \
         boot_p99_ms={:.1} requests={} shed={shed} timeouts={timeouts} other={other} \
         answered_after_5s={answered_after_5s} duplicate_otps={duplicate_otps} \
         otp_not_ipas={mismatched} inconsistent={inconsistent} last_enrolled_s={:.2} \
         enroll_rate={:.0} bound_single={:.0} bound_batched={:.0} enrolled_p99_since_start_s={:.2}",
        calls as f64 / enrolled.max(1) as f64,
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        percentile(&boot_latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&boot_latencies, 0.99).as_secs_f64() * 1e3,
        latencies.len(),
        span.as_secs_f64(),
        enrolled as f64 / span.as_secs_f64().max(0.001),
        bound_single,
        bound_batched,
        percentile(&enrolled_times, 0.99).as_secs_f64(),
    );
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    let ok = duplicate_otps == 0
        && mismatched == 0
        && inconsistent == 0
        && host_adds as usize >= enrolled;
    if !ok {
        eprintln!("storm: CORRECTNESS FAILURE (see the RESULT line)");
        std::process::exit(1);
    }
}
