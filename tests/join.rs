//! The vendordata service end to end: the real `novajoin server` binary,
//! driven over HTTP with the exact body nova sends, against the IPA double,
//! the real keystone (project lookups, the service token glance sees) and
//! the glance double. IPA's state is asserted after each request.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::glance::GlanceDouble;
use support::ipa::IpaDouble;
use support::keystone::{Keystone, Provider};
use support::server::{NovajoinServer, ServerFiles, NOAUTH_PIPELINE};
use support::vendordata::{new_instance_id, nova_body_with};

struct Env {
    ipa: IpaDouble,
    glance: GlanceDouble,
    server: NovajoinServer,
    keystone: &'static Keystone,
    http: reqwest::Client,
}

fn keystone() -> &'static Keystone {
    Keystone::shared(Provider::Fernet)
}

async fn env_with(extra_conf: &str, pipeline: &str) -> Env {
    let keystone = tokio::task::spawn_blocking(keystone).await.unwrap();
    let ipa = support::ipa::start().await;
    let glance = GlanceDouble::start().await;
    let nova = keystone.user("nova");
    let conf = format!(
        "{}join_listen = 127.0.0.1\njoin_listen_port = {{port}}\nglance_api_servers = {}\n{extra_conf}\n\
         [service_credentials]\nauth_type = password\nauth_url = {}\nusername = nova\npassword = {}\n\
         project_name = service\nuser_domain_name = Default\nproject_domain_name = Default\n\n\
         [demo]\nallowed_classes = web,db\n\n[service]\nallowed_classes = *\n",
        support::ipa::join_conf(&ipa),
        glance.url,
        keystone.auth_url(),
        nova.password,
    );
    // join_conf() ends with the [ipa] section: move our DEFAULT lines up.
    let conf = reorder_default(&conf);
    let server = tokio::task::spawn_blocking({
        let pipeline = pipeline.to_string();
        move || {
            NovajoinServer::start(ServerFiles {
                join_conf: conf,
                pipeline,
                env: vec![],
            })
        }
    })
    .await
    .unwrap();
    Env {
        ipa,
        glance,
        server,
        keystone,
        http: reqwest::Client::new(),
    }
}

/// Moves every `key = value` line that follows the `[ipa]` section but
/// belongs to DEFAULT (the lines we appended) back under `[DEFAULT]`.
fn reorder_default(conf: &str) -> String {
    let mut default = Vec::new();
    let mut rest = Vec::new();
    let mut section = String::new();
    let mut after_ipa = false;
    for line in conf.lines() {
        if line.starts_with('[') {
            section = line.to_string();
            if section == "[ipa]" {
                after_ipa = true;
            } else if after_ipa {
                after_ipa = false;
            }
        }
        let ours = after_ipa
            && [
                "join_listen",
                "glance_api_servers",
                "project_subdomain",
                "normalize_project",
            ]
            .iter()
            .any(|k| line.starts_with(k));
        if section == "[DEFAULT]" || ours {
            if line != "[DEFAULT]" {
                default.push(line.to_string());
            }
        } else {
            rest.push(line.to_string());
        }
    }
    format!("[DEFAULT]\n{}\n{}\n", default.join("\n"), rest.join("\n"))
}

async fn env() -> Env {
    env_with("", NOAUTH_PIPELINE).await
}

/// The body nova sends (spec/nova-vendordata.md §4) for a new instance.
fn nova_body(
    hostname: &str,
    image: Option<&str>,
    project: Option<&str>,
    metadata: Value,
) -> String {
    nova_body_with(hostname, &new_instance_id(), image, project, metadata)
}

impl Env {
    async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: String,
    ) -> (u16, String) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.server.base))
            .header("Accept", "application/json")
            .header("User-Agent", "openstack-nova-vendordata")
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    async fn post(&self, body: String) -> (u16, Value) {
        let (s, text) = self.post_raw("/v1/", Some("application/json"), body).await;
        (
            s,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}")),
        )
    }

    fn project_id(&self, name: &str) -> String {
        self.keystone.credentials().projects[name].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolls_from_instance_metadata_with_one_round_trip() {
    let e = env().await;
    e.ipa.reset_counters();
    let (status, body) = e
        .post(nova_body(
            "vm1",
            Some("img-1"),
            None,
            json!({"ipa_enroll": "True"}),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hostname"], "vm1.example.test");
    assert_eq!(body["krb_realm"], "EXAMPLE.TEST");
    let otp = body["ipaotp"].as_str().unwrap();
    assert_eq!(otp.len(), 32);
    let host = e.ipa.host("vm1.example.test").expect("host created in IPA");
    assert_eq!(
        host.otp.as_deref(),
        Some(otp),
        "the OTP handed out is the one IPA holds"
    );
    assert!(host.has_password && !host.enrolled);
    assert_eq!(host.description.as_deref(), Some("IPA host for OpenStack"));
    assert_eq!(
        e.ipa.round_trips(),
        1,
        "{:?}",
        e.ipa.round_trips_by_method()
    );
    // The instance asked itself: glance was never consulted.
    assert_eq!(
        e.glance
            .state
            .calls
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_keys_come_in_the_original_order() {
    let e = env().await;
    let (status, text) = e
        .post_raw(
            "/v1/",
            Some("application/json"),
            nova_body("ordered", None, None, json!({"ipa_enroll": "true"})),
        )
        .await;
    assert_eq!(status, 200);
    let h = text.find("\"hostname\"").unwrap();
    let r = text.find("\"krb_realm\"").unwrap();
    let o = text.find("\"ipaotp\"").unwrap();
    assert!(h < r && r < o, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_compact_services_cost_two_round_trips_for_a_new_host() {
    let e = env().await;
    e.ipa.reset_counters();
    let md = json!({"ipa_enroll": "True", "compact_service_HTTP": "[\"ctlplane\", \"internalapi\"]", "compact_service_nfs": "[\"storage\"]"});
    let (status, body) = e.post(nova_body("ctl0", None, None, md)).await;
    assert_eq!(status, 200, "{body}");
    // One batch reads the host and the sub-hosts (their owners decide what
    // may be written), one batch writes everything.
    assert_eq!(
        e.ipa.round_trips(),
        2,
        "{:?}",
        e.ipa.round_trips_by_method()
    );
    assert_eq!(e.ipa.round_trips_for("batch"), 2);
    for (svc, host) in [
        ("HTTP", "ctl0.ctlplane.example.test"),
        ("HTTP", "ctl0.internalapi.example.test"),
        ("nfs", "ctl0.storage.example.test"),
    ] {
        assert!(e.ipa.host(host).is_some(), "sub-host {host}");
        let s = e
            .ipa
            .service(&format!("{svc}/{host}@EXAMPLE.TEST"))
            .unwrap_or_else(|| panic!("service {svc}/{host}"));
        assert!(
            s.managed_by.iter().any(|h| h == "ctl0.example.test"),
            "{s:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_and_legacy_compact_services() {
    // A managed service on a host the instance does not own (a shared VIP
    // name) needs the policy rule; this deployment allows that one name.
    let policy = tempfile::tempdir().unwrap();
    let policy_file = policy.path().join("policy.yaml");
    std::fs::write(
        &policy_file,
        "\"join:create:service_on_other_host\": \"'overcloud.internalapi.example.test':%(principal_host)s\"\n",
    )
    .unwrap();
    let e = env_with(
        &format!("\n[oslo_policy]\npolicy_file = {}\n", policy_file.display()),
        NOAUTH_PIPELINE,
    )
    .await;
    let md = json!({"ipa_enroll": "True", "managed_service_a": "HTTP/overcloud.internalapi.example.test",
                    "compact_services": "{\"rabbitmq\": [\"internalapi\"]}"});
    let (status, body) = e.post(nova_body("ctl1", None, None, md)).await;
    assert_eq!(status, 200, "{body}");
    let s = e
        .ipa
        .service("HTTP/overcloud.internalapi.example.test@EXAMPLE.TEST")
        .expect("managed service");
    assert!(s.managed_by.iter().any(|h| h == "ctl1.example.test"));
    assert!(e.ipa.host("overcloud.internalapi.example.test").is_some());
    assert!(e
        .ipa
        .service("rabbitmq/ctl1.internalapi.example.test@EXAMPLE.TEST")
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_service_on_a_host_the_instance_does_not_own_is_refused_by_default() {
    let e = env().await;
    let md = json!({"ipa_enroll": "True", "managed_service_a": "HTTP/overcloud.internalapi.example.test"});
    let (status, body) = e.post(nova_body("ctl2", None, None, md)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["forbidden"]["message"]
            .as_str()
            .unwrap()
            .contains("join:create:service_on_other_host"),
        "{body}"
    );
    assert!(e.ipa.host("overcloud.internalapi.example.test").is_none());
    assert!(e
        .ipa
        .service("HTTP/overcloud.internalapi.example.test@EXAMPLE.TEST")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_property_decides_when_the_instance_does_not_ask() {
    let e = env().await;
    e.glance.add_image(
        "img-yes",
        json!({"ipa_enroll": "True", "os_distro": "rhel", "os_version": "9.4"}),
    );
    e.glance.add_image("img-no", json!({"os_distro": "fedora"}));
    let (status, body) = e
        .post(nova_body("img1", Some("img-yes"), None, json!({})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        e.ipa
            .host("img1.example.test")
            .unwrap()
            .nsosversion
            .as_deref(),
        Some("rhel 9.4")
    );
    // glance got the service token from the real keystone.
    let tokens = e.glance.state.tokens.lock().unwrap().clone();
    assert!(
        !tokens.is_empty() && tokens.iter().all(|t| t.len() > 100),
        "{tokens:?}"
    );

    let (status, body) = e
        .post(nova_body("img2", Some("img-no"), None, json!({})))
        .await;
    assert_eq!((status, body), (200, json!({})));
    assert!(e.ipa.host("img2.example.test").is_none());

    let (status, body) = e
        .post(nova_body("img3", Some("missing"), None, json!({})))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["badRequest"]["message"],
        "Failed to get image: Image missing could not be found."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_from_volume_and_missing_image_id() {
    let e = env().await;
    let (status, body) = e.post(nova_body("bfv", Some(""), None, json!({}))).await;
    assert_eq!(
        (status, body),
        (200, json!({})),
        "boot from volume without ipa_enroll is {{}}"
    );
    let (status, body) = e
        .post(nova_body(
            "bfv2",
            Some(""),
            None,
            json!({"ipa_enroll": "True"}),
        ))
        .await;
    assert_eq!(status, 200);
    assert!(body["ipaotp"].is_string());
    let (status, body) = e.post(nova_body("noimg", None, None, json!({}))).await;
    assert_eq!(status, 400);
    assert!(body["badRequest"]["message"]
        .as_str()
        .unwrap()
        .starts_with("The server could not comply"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostclass_is_checked_against_the_project_section() {
    let e = env().await;
    let demo = e.project_id("demo");
    let (status, body) = e
        .post(nova_body(
            "hc1",
            None,
            Some(&demo),
            json!({"ipa_enroll": "True", "ipa_hostclass": "mail"}),
        ))
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"forbidden": {"code": 403, "message": "Not allowed to add to hostclass 'mail'"}})
    );
    assert!(
        e.ipa.host("hc1.example.test").is_none(),
        "nothing reaches IPA on a refusal"
    );

    let (status, body) = e
        .post(nova_body(
            "hc2",
            None,
            Some(&demo),
            json!({"ipa_enroll": "True", "ipa_hostclass": "web", "ipa_host_location": "rack 4"}),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let h = e.ipa.host("hc2.example.test").unwrap();
    assert_eq!(h.userclass, vec!["web".to_string()]);
    assert_eq!(h.nshostlocation.as_deref(), Some("rack 4"));

    let service = e.project_id("service");
    let (status, _) = e
        .post(nova_body(
            "hc3",
            None,
            Some(&service),
            json!({"ipa_enroll": "True", "ipa_hostclass": "anything"}),
        ))
        .await;
    assert_eq!(status, 200, "'*' allows any class");

    let (status, body) = e
        .post(nova_body(
            "hc4",
            None,
            Some("nope"),
            json!({"ipa_enroll": "True", "ipa_hostclass": "web"}),
        ))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["badRequest"]["message"], "No such project-id, nope");

    let (status, _) = e
        .post(nova_body(
            "hc5",
            None,
            None,
            json!({"ipa_enroll": "True", "ipa_hostclass": "web"}),
        ))
        .await;
    assert_eq!(status, 400, "hostclass without project-id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_subdomain_uses_the_real_normalized_project_name() {
    let e = env_with("project_subdomain = true\n", NOAUTH_PIPELINE).await;
    let demo = e.project_id("demo");
    let (status, body) = e
        .post(nova_body(
            "ps1",
            None,
            Some(&demo),
            json!({"ipa_enroll": "True"}),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hostname"], "ps1.demo.example.test", "never .None.");
    assert!(e.ipa.host("ps1.demo.example.test").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_400_and_reach_nothing() {
    let e = env().await;
    e.ipa.reset_counters();
    let cases: Vec<(Option<&str>, String, Option<&str>)> = vec![
        (Some("application/json"), String::new(), None),
        (Some("application/json"), "{}".into(), None),
        (
            Some("application/json"),
            "{not json".into(),
            Some("Malformed request body"),
        ),
        (
            Some("application/json"),
            "[1, 2]".into(),
            Some("The request body must be a JSON object, not a list"),
        ),
        (
            Some("text/plain"),
            nova_body("vm", None, None, json!({"ipa_enroll": "True"})),
            None,
        ),
        (
            None,
            nova_body("vm", None, None, json!({"ipa_enroll": "True"})),
            None,
        ),
        (
            Some("application/json"),
            nova_body("", None, None, json!({"ipa_enroll": "True"})),
            None,
        ),
        (
            Some("application/json"),
            r#"{"hostname": "vm", "metadata": null}"#.into(),
            Some("'metadata' must be an object, not null"),
        ),
        (
            Some("application/json"),
            r#"{"hostname": "vm", "metadata": {"ipa_enroll": true}}"#.into(),
            Some("metadata 'ipa_enroll' must be a string, not a boolean"),
        ),
        (
            Some("application/json"),
            nova_body("bad_name", None, None, json!({"ipa_enroll": "True"})),
            None,
        ),
        (
            Some("application/json"),
            nova_body("vm;reboot", None, None, json!({"ipa_enroll": "True"})),
            None,
        ),
        (
            Some("application/json"),
            nova_body(&"a".repeat(64), None, None, json!({"ipa_enroll": "True"})),
            None,
        ),
        (
            Some("application/json"),
            nova_body("vm.other.org", None, None, json!({"ipa_enroll": "True"})),
            None,
        ),
        (
            Some("application/json"),
            nova_body(
                "vm",
                None,
                None,
                json!({"ipa_enroll": "True", "compact_service_HTTP": "[oops"}),
            ),
            None,
        ),
        (
            Some("application/json"),
            nova_body(
                "vm",
                None,
                None,
                json!({"ipa_enroll": "True", "managed_service_x": "noslash"}),
            ),
            None,
        ),
    ];
    for (ct, body, message) in cases {
        let (status, text) = e.post_raw("/v1/", ct, body.clone()).await;
        assert_eq!(status, 400, "{ct:?} {body} -> {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["badRequest"]["code"], 400, "{text}");
        if let Some(m) = message {
            assert_eq!(v["badRequest"]["message"], m, "{body}");
        }
    }
    assert_eq!(e.ipa.round_trips(), 0, "no bad request reaches IPA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolled_host_gets_no_otp_and_a_repeat_gets_a_fresh_valid_one() {
    let e = env().await;
    // nova asks again for the same instance (its uuid) after the answer's
    // cache entry has gone: a new OTP replaces the first.
    let id = uuid::Uuid::new_v4().to_string();
    let body = || nova_body_with("re1", &id, None, None, json!({"ipa_enroll": "True"}));
    let (_, first) = e.post(body()).await;
    let (_, second) = e.post(body()).await;
    let otp2 = second["ipaotp"].as_str().unwrap();
    assert_ne!(first["ipaotp"], second["ipaotp"]);
    assert_eq!(
        e.ipa.host("re1.example.test").unwrap().otp.as_deref(),
        Some(otp2),
        "only the latest OTP is valid"
    );
    e.ipa
        .ipa_join("re1.example.test", otp2)
        .expect("the OTP enrolls the host");
    let (status, third) = e.post(body()).await;
    assert_eq!(status, 200);
    assert_eq!(third["hostname"], "re1.example.test");
    assert!(third.get("ipaotp").is_none(), "{third}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_methods_and_the_slashless_path() {
    let e = env().await;
    let (status, body) = e
        .post_raw(
            "/v1",
            Some("application/json"),
            nova_body("slash", None, None, json!({"ipa_enroll": "True"})),
        )
        .await;
    assert_eq!(status, 200, "/v1 is answered directly, no 302: {body}");
    let r = e
        .http
        .get(format!("{}/v1/", e.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST, PUT");
    let (status, _) = e
        .post_raw("/v1/other", Some("application/json"), "{}".into())
        .await;
    assert_eq!(status, 404);
    let (status, text) = e
        .post_raw("/v2/", Some("application/json"), "{}".into())
        .await;
    assert_eq!(status, 404);
    assert!(text.starts_with("404 Not Found\r\n"), "{text:?}");
    let r = e
        .http
        .get(format!("{}/healthcheck", e.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = e
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/v1/", e.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "OPTIONS is always 200, as with oslo's cors"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_get_413() {
    let e = env().await;
    let big = nova_body(
        "big",
        None,
        None,
        json!({"ipa_enroll": "True", "x": "a".repeat(200_000)}),
    );
    let (status, text) = e.post_raw("/v1/", Some("application/json"), big).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("overLimit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipa_down_is_a_timely_503_and_recovers_without_restart() {
    let e = env().await;
    e.ipa.go_down().await;
    let started = std::time::Instant::now();
    let (status, body) = e
        .post(nova_body(
            "down1",
            None,
            None,
            json!({"ipa_enroll": "True"}),
        ))
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(body["serviceUnavailable"]["message"]
        .as_str()
        .unwrap()
        .contains("IPA"));
    assert!(started.elapsed() < Duration::from_secs(25));
    e.ipa.go_up().await.unwrap();
    let (status, body) = e
        .post(nova_body(
            "down1",
            None,
            None,
            json!({"ipa_enroll": "True"}),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        e.ipa.host("down1.example.test").unwrap().otp.as_deref(),
        body["ipaotp"].as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_even_at_trace_level() {
    let e = env().await;
    let demo = e.project_id("demo");
    let mut otps = Vec::new();
    for (host, md) in [
        ("sec1", json!({"ipa_enroll": "True"})),
        (
            "sec2",
            json!({"ipa_enroll": "True", "ipa_hostclass": "web", "compact_service_HTTP": "[\"ctlplane\"]"}),
        ),
    ] {
        let (status, body) = e.post(nova_body(host, None, Some(&demo), md)).await;
        assert_eq!(status, 200, "{body}");
        otps.push(body["ipaotp"].as_str().unwrap().to_string());
    }
    e.glance.add_image("img-s", json!({"ipa_enroll": "True"}));
    let (status, body) = e
        .post(nova_body("sec3", Some("img-s"), None, json!({})))
        .await;
    assert_eq!(status, 200);
    otps.push(body["ipaotp"].as_str().unwrap().to_string());
    let glance_tokens = e.glance.state.tokens.lock().unwrap().clone();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = e.server.logs();
    assert!(
        logs.contains("TRACE") || logs.contains("\"level\":\"TRACE\"") || logs.lines().count() > 10,
        "trace logs captured"
    );
    for otp in &otps {
        assert!(!logs.contains(otp.as_str()), "OTP in logs");
    }
    for secret in [
        support::ipa::ADMIN_PASSWORD,
        e.keystone.user("nova").password.as_str(),
    ] {
        assert!(!logs.contains(secret), "password {secret} in logs");
    }
    for t in glance_tokens {
        assert!(!logs.contains(&t), "service token in logs");
        assert!(!logs.contains(&t[..40]), "token prefix in logs");
    }
}

/// The repository's own pipeline (authtoken, keystonecontext, policy,
/// cache) in front of the handler, with nova's real service token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_pipeline_serves_nova_and_refuses_others() {
    let ks = tokio::task::spawn_blocking(keystone).await.unwrap();
    let authtoken = format!(
        "[keystone_authtoken]\nauth_type = password\nauth_url = {}\nusername = novajoin\npassword = {}\n\
         user_domain_name = Default\nproject_name = service\nproject_domain_name = Default\n\
         www_authenticate_uri = {}\n",
        ks.auth_url(),
        ks.user("novajoin").password,
        ks.public_url()
    );
    let e = env_with(&authtoken, &support::server::repo_pipeline()).await;
    let nova = ks.issue_token("nova").await;
    let demo = ks.issue_token("demo").await;
    let body = nova_body("full1", None, None, json!({"ipa_enroll": "True"}));
    let post = |token: Option<String>, body: String| {
        let mut r = e
            .http
            .post(format!("{}/v1/", e.server.base))
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(t) = token {
            r = r.header("X-Auth-Token", t);
        }
        r.send()
    };
    let r = post(None, body.clone()).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Keystone uri="));
    let r = post(Some(demo), body.clone()).await.unwrap();
    assert_eq!(
        r.status(),
        403,
        "join:create is for the nova service user only"
    );
    assert!(e.ipa.host("full1.example.test").is_none());
    let r = post(Some(nova.clone()), body.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-openstack-request-id"));
    let first: Value = r.json().await.unwrap();
    // nova repeats the same request (config drive, cloud-init polling):
    // the cache answers with the same OTP, without a new IPA call.
    e.ipa.reset_counters();
    let again: Value = post(Some(nova), body).await.unwrap().json().await.unwrap();
    assert_eq!(first, again);
    assert_eq!(e.ipa.round_trips(), 0);
    assert_eq!(
        e.ipa.host("full1.example.test").unwrap().otp.as_deref(),
        first["ipaotp"].as_str()
    );
}
