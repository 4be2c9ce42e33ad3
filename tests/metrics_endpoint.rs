//! The metrics endpoints of `novajoin server` and `novajoin notify`, parsed
//! by the Prometheus Python client's parser.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::server::{NovajoinServer, ServerFiles, NOAUTH_PIPELINE};
use support::vendordata::{new_instance_id, nova_body_with};

/// The body nova sends for a new instance.
fn nova_body(hostname: &str, image: Option<&str>, metadata: Value) -> String {
    nova_body_with(hostname, &new_instance_id(), image, None, metadata)
}

/// Parses Prometheus text with the official Python client's parser (in the
/// test venv); returns {sample name + sorted labels: value} and the
/// families' (type, help).
fn parse_prometheus(text: &str) -> (BTreeMap<String, f64>, BTreeMap<String, (String, String)>) {
    let python = support::keystone::venv().join("bin/python");
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(
            "import json, sys\n\
             from prometheus_client.parser import text_string_to_metric_families\n\
             out = {'samples': {}, 'families': {}}\n\
             for fam in text_string_to_metric_families(sys.stdin.read()):\n\
             \x20   out['families'][fam.name] = [fam.type, fam.documentation]\n\
             \x20   for s in fam.samples:\n\
             \x20       labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()))\n\
             \x20       out['samples'][s.name + '{' + labels + '}'] = s.value\n\
             print(json.dumps(out))\n",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not valid Prometheus text format: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let samples = v["samples"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect();
    let families = v["families"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (
                    v[0].as_str().unwrap().to_string(),
                    v[1].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    (samples, families)
}

fn get(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

fn sum_prefix(samples: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_counts_enrollments() {
    use support::keystone::{Keystone, Provider};
    // Its own keystone (the httpd test shares the Fernet one), so that every
    // call keystone sees here comes from this server.
    let keystone: &'static Keystone =
        tokio::task::spawn_blocking(|| Keystone::shared(Provider::Jws))
            .await
            .unwrap();
    let ipa = support::ipa::start().await;
    let glance = support::glance::GlanceDouble::start().await;
    glance.add_image("img-enroll", json!({"ipa_enroll": "True"}));
    let metrics_port = support::server::free_port();
    let nova = keystone.user("nova");
    let conf = support::ipa::join_conf(&ipa).replacen(
        "[DEFAULT]\n",
        &format!(
            "[DEFAULT]\njoin_listen = 127.0.0.1\njoin_listen_port = {{port}}\nglance_api_servers = {}\n",
            glance.url
        ),
        1,
    ) + &format!(
        "\n[service_credentials]\nauth_type = password\nauth_url = {}\nusername = nova\npassword = {}\n\
         project_name = service\nuser_domain_name = Default\nproject_domain_name = Default\n\n\
         [metrics]\nlisten = 127.0.0.1:{metrics_port}\npath = /prometheus\n",
        keystone.auth_url(),
        nova.password
    );
    let server = tokio::task::spawn_blocking(move || {
        NovajoinServer::start(ServerFiles {
            join_conf: conf,
            pipeline: NOAUTH_PIPELINE.replace(
                "filters = [\"noauth\"]",
                "filters = [\"noauth\", \"policy\", \"cache\"]",
            ),
            env: vec![],
        })
    })
    .await
    .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/prometheus");
    let scrape = || async {
        let r = http.get(&metrics_url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        r.text().await.unwrap()
    };

    let (before, _) = parse_prometheus(&scrape().await);
    ipa.reset_counters();
    let keystone_before = keystone.total_calls();

    let post = |body: String| {
        let http = http.clone();
        let url = format!("{}/v1/", server.base);
        async move {
            http.post(url)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let m1 = nova_body("m1", Some("i"), json!({"ipa_enroll": "True"}));
    assert_eq!(post(m1.clone()).await, 200);
    // nova asks again for the same instance: answered from the cache.
    assert_eq!(post(m1).await, 200);
    assert_eq!(
        post(nova_body("m2", Some("i"), json!({"ipa_enroll": "True"}))).await,
        200
    );
    // Enrolled because of the image: keystone (service token) and glance.
    assert_eq!(
        post(nova_body("m3", Some("img-enroll"), json!({}))).await,
        200
    );
    assert_eq!(post("{}".into()).await, 400);
    assert!(ipa.host("m3.example.test").is_some());

    let text = scrape().await;
    let (after, families) = parse_prometheus(&text);
    let delta = |k: &str| get(&after, k) - get(&before, k);

    assert_eq!(
        delta("novajoin_http_requests_total{method=POST,route=join,status=200}"),
        4.0,
        "{text}"
    );
    assert_eq!(
        delta("novajoin_cache_lookups_total{outcome=miss}"),
        3.0,
        "{text}"
    );
    assert_eq!(
        delta("novajoin_cache_lookups_total{outcome=hit}"),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta("novajoin_http_requests_total{method=POST,route=join,status=400}"),
        1.0
    );
    assert_eq!(
        delta("novajoin_http_request_duration_seconds_count{route=join,status=200}"),
        4.0
    );
    assert_eq!(
        get(
            &after,
            "novajoin_http_request_duration_seconds_bucket{le=+Inf,route=join,status=200}"
        ),
        get(
            &after,
            "novajoin_http_request_duration_seconds_count{route=join,status=200}"
        )
    );
    assert!(
        get(
            &after,
            "novajoin_http_request_duration_seconds_sum{route=join,status=200}"
        ) > 0.0
    );

    // Every IPA round trip the double answered was counted, per command.
    let by_method = ipa.round_trips_by_method();
    assert!(!by_method.is_empty());
    for (method, n) in &by_method {
        assert_eq!(
            delta(&format!("novajoin_ipa_calls_total{{method={method}}}")),
            *n as f64,
            "IPA {method}: {text}"
        );
    }
    assert_eq!(
        sum_prefix(&after, "novajoin_ipa_calls_total")
            - sum_prefix(&before, "novajoin_ipa_calls_total"),
        ipa.round_trips() as f64
    );
    // Every request keystone received from the service was counted.
    let keystone_calls = keystone.total_calls() - keystone_before;
    assert!(keystone_calls >= 1, "the image path authenticated");
    assert_eq!(
        sum_prefix(&after, "novajoin_keystone_calls_total")
            - sum_prefix(&before, "novajoin_keystone_calls_total"),
        keystone_calls as f64,
        "{text}"
    );
    assert_eq!(
        get(
            &after,
            &format!(
                "novajoin_build_info{{role=server,version={}}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    for (family, kind) in [
        ("novajoin_http_requests", "counter"),
        ("novajoin_http_request_duration_seconds", "histogram"),
        ("novajoin_ipa_calls", "counter"),
        ("novajoin_keystone_calls", "counter"),
        ("novajoin_cache_lookups", "counter"),
        ("novajoin_build_info", "gauge"),
    ] {
        let (t, help) = families
            .get(family)
            .unwrap_or_else(|| panic!("{family} in {families:?}"));
        assert_eq!(t, kind, "{family}");
        assert!(!help.is_empty(), "{family} has HELP");
    }

    // The endpoint is not on the public listener, and answers only its path.
    let public = http
        .get(format!("{}/prometheus", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    let wrong = http
        .get(format!("http://127.0.0.1:{metrics_port}/v1/"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_metrics_endpoint_counts_handled_notifications() {
    use support::rabbit::{OsloMessage, RabbitNames};
    let ipa = support::ipa::start().await;
    let instance = uuid::Uuid::new_v4().to_string();
    let tenant = "c97027dd880d4c129ae7a4ba7edade05";
    let binding =
        novajoin::ownership::HostBinding::for_instance(Some(&instance), Some(tenant), None)
            .unwrap()
            .to_attribute();
    ipa.seed_host_with(
        "gone1.example.test",
        Some(novajoin::ownership::HOST_DESCRIPTION),
        Some(&binding),
        false,
        None,
    );
    let names = RabbitNames::new("pkgmetrics");
    let metrics_port = support::server::free_port();
    let conf = format!(
        "{ipa}\n[DEFAULT]\ntransport_url = {url}\nnotifications_topic = {topic}\n\
         control_exchange = {exchange}\nnotification_format = unversioned\nlog_format_style = json\n\
         [notify]\npublisher_exchanges = {nova},{neutron}\n\
         [metrics]\nnotify_listen = 127.0.0.1:{metrics_port}\n",
        ipa = support::ipa::join_conf(&ipa),
        url = support::rabbit::TRANSPORT_URL,
        topic = names.topic,
        exchange = names.control_exchange,
        nova = names.nova_exchange,
        neutron = names.neutron_exchange,
    );
    // Returns once the listener consumes.
    let notify = support::notify::NotifyProcess::start(&conf).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let (before, _) = parse_prometheus(&http.get(&url).send().await.unwrap().text().await.unwrap());
    ipa.reset_counters();

    let payload = json!({
        "instance_id": instance, "hostname": "gone1",
        "display_name": "gone1", "tenant_id": tenant,
        "metadata": {"ipa_enroll": "True"}, "image_meta": {}, "state": "deleted",
        "host": "cmp-1", "deleted_at": "2024-05-14T11:02:46.000000",
    });
    let publisher = names.publisher();
    let exchange = names.nova_exchange.clone();
    tokio::task::spawn_blocking(move || {
        publisher.publish(
            &exchange,
            "",
            &[OsloMessage::info(
                "compute.cmp-1",
                "compute.instance.delete.end",
                payload,
            )],
        )
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ipa.host("gone1.example.test").is_some() {
        assert!(
            Instant::now() < deadline,
            "the host was not deleted:\n{}",
            notify.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The ack (and its count) follows the IPA calls.
    let text = loop {
        let text = http.get(&url).send().await.unwrap().text().await.unwrap();
        if text.contains("outcome=\"handled\"") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (after, families) = parse_prometheus(&text);
    let delta = |k: &str| get(&after, k) - get(&before, k);
    assert_eq!(
        delta("novajoin_notify_messages_total{outcome=handled}"),
        1.0,
        "{text}"
    );
    assert_eq!(get(&after, "novajoin_notify_connected{}"), 1.0, "{text}");
    assert_eq!(
        get(
            &after,
            &format!(
                "novajoin_build_info{{role=notify,version={}}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    // The listener's IPA calls are counted like the server's.
    assert!(ipa.round_trips() >= 1);
    assert_eq!(
        sum_prefix(&after, "novajoin_ipa_calls_total")
            - sum_prefix(&before, "novajoin_ipa_calls_total"),
        ipa.round_trips() as f64,
        "{text}"
    );
    let (kind, help) = &families["novajoin_notify_messages"];
    assert_eq!(kind, "counter");
    assert!(!help.is_empty());
}
