//! The shipped httpd vhost (packaging/httpd/novajoin.conf) in front of
//! `novajoin server`, exercised for real: Apache, TLS, the Unix socket.

mod support;

use serde_json::{json, Value};
use support::apache::Apache;
use support::packaging::{adjust, shipped};
use support::server::{NovajoinServer, ServerFiles};
use support::vendordata::{new_instance_id, nova_body_with};
use support::wait_for;

/// The body nova sends for a new instance.
fn nova_body(hostname: &str, image: Option<&str>, metadata: Value) -> String {
    nova_body_with(hostname, &new_instance_id(), image, None, metadata)
}

/// The JSON log lines of `target` the server wrote so far.
fn log_lines(server: &NovajoinServer, target: &str) -> Vec<Value> {
    server
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == target)
        .collect()
}

/// The repository's pipeline.toml, less filters this build does not have
/// yet (they are merged from other branches; an unbuilt filter is a
/// start-up error).
fn repo_pipeline_as_built() -> String {
    let mut text = support::server::repo_pipeline();
    for f in novajoin::pipeline::registry::filters() {
        if f.build.is_none() {
            text = text.replace(&format!(", \"{}\"", f.name), "");
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httpd_vhost_fronts_a_full_enrollment() {
    use support::keystone::{Keystone, Provider};
    let keystone: &'static Keystone =
        tokio::task::spawn_blocking(|| Keystone::shared(Provider::Fernet))
            .await
            .unwrap();
    let ipa = support::ipa::start().await;
    // The shipped pipeline: authtoken validates nova's token with keystone,
    // policy checks join:create.
    let conf = support::ipa::join_conf(&ipa).replacen(
        "[DEFAULT]\n",
        "[DEFAULT]\njoin_listen = unix:{socket}\n",
        1,
    ) + &format!(
        "\n[oslo_middleware]\nenable_proxy_headers_parsing = true\n\n\
         [keystone_authtoken]\nauth_type = password\nauth_url = {auth}\nusername = novajoin\n\
         password = {pw}\nuser_domain_name = Default\nproject_name = service\n\
         project_domain_name = Default\nwww_authenticate_uri = {public}\n",
        auth = keystone.auth_url(),
        pw = keystone.user("novajoin").password,
        public = keystone.public_url(),
    );
    let pipeline = repo_pipeline_as_built();
    let server = tokio::task::spawn_blocking(move || {
        NovajoinServer::start_unix(ServerFiles {
            join_conf: conf,
            pipeline,
            env: vec![],
        })
    })
    .await
    .unwrap();
    let nova_token = keystone.issue_token("nova").await;
    let socket = server.socket().unwrap();
    // As deployed: httpd's user is in the socket's group.
    support::apache::allow_traverse(server.dir.path());
    support::apache::share_with_group(&socket, support::apache::RUN_USER, 0o660);

    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = support::apache::test_certificates(certs.path());
    let site = adjust(
        &shipped("packaging/httpd/novajoin.conf"),
        &[
            // minimal_config() has the loopback Listen.
            ("Listen 9090\n", ""),
            ("<VirtualHost *:9090>", "<VirtualHost 127.0.0.1:{port}>"),
            ("/etc/pki/tls/certs/novajoin.crt", cert.to_str().unwrap()),
            ("/etc/pki/tls/private/novajoin.key", key.to_str().unwrap()),
            ("/run/novajoin/join.sock", socket.to_str().unwrap()),
            ("/var/log/httpd/", "{dir}/"),
        ],
    );
    let mut config = support::apache::minimal_config();
    for module in [
        "authz_core",
        "ssl",
        "socache_shmcb",
        "proxy",
        "proxy_http",
        "headers",
    ] {
        config.push_str(&format!(
            "LoadModule {module}_module {{modules}}/mod_{module}.so\n"
        ));
    }
    config.push_str(&site);
    let httpd = tokio::task::spawn_blocking(move || Apache::start(&config, &[]))
        .await
        .unwrap();
    let read_log = |name: &str| std::fs::read_to_string(httpd.dir().join(name)).unwrap_or_default();
    let port = httpd.port;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .no_proxy()
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");

    // nova's POST, with a global request id, plus proxy headers a client
    // might try to forge (the vhost must replace them).
    let global = format!("req-{}", uuid::Uuid::new_v4());
    let resp = client
        .post(format!("{base}/v1/"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .header("User-Agent", "openstack-nova-vendordata")
        .header("X-Auth-Token", &nova_token)
        .header("X-OpenStack-Request-ID", &global)
        .header("Forwarded", "for=203.0.113.9;proto=http;host=evil.example")
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Proto", "http")
        .body(nova_body(
            "web1",
            Some("img"),
            json!({"ipa_enroll": "True"}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", httpd.error_log());
    let local = resp
        .headers()
        .get("x-openstack-request-id")
        .expect("the service's request id comes back through httpd")
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["hostname"], "web1.example.test");
    assert_eq!(body["krb_realm"], "EXAMPLE.TEST");
    let otp = body["ipaotp"].as_str().unwrap().to_string();
    let host = ipa.host("web1.example.test").expect("host created in IPA");
    assert_eq!(host.otp.as_deref(), Some(otp.as_str()));
    assert!(local.starts_with("req-") && local != global);

    // The service saw the request as the client made it: https, the host
    // the client named, the client's address, and the global request id.
    let line = wait_for("the access log line", || {
        log_lines(&server, "novajoin::access")
            .into_iter()
            .find(|l| l["request_id"] == local.as_str())
    });
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["global_request_id"], global.as_str(), "{line}");
    assert_eq!(line["scheme"], "https", "{line}");
    assert_eq!(line["host"], format!("localhost:{port}"), "{line}");
    assert_eq!(line["client"], "127.0.0.1", "{line}");
    assert_eq!(line["path"], "/v1/", "{line}");

    // httpd's access log names the same request ids, for correlation.
    let access = wait_for("httpd's access log", || {
        let log = read_log("novajoin_access.log");
        log.contains(&format!("request_id={local}")).then_some(log)
    });
    assert!(
        access.contains(&format!("global_request_id={global}")),
        "{access}"
    );

    // Without nova's token the service refuses, and says where to get one.
    let anon = client
        .post(format!("{base}/v1/"))
        .header("Content-Type", "application/json")
        .body(nova_body(
            "web2",
            Some("img"),
            json!({"ipa_enroll": "True"}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    assert!(anon.headers().contains_key("www-authenticate"));
    assert!(ipa.host("web2.example.test").is_none());

    // The health check is proxied; anything else stops at httpd.
    let hc = client
        .get(format!("{base}/healthcheck"))
        .send()
        .await
        .unwrap();
    assert_eq!(hc.status(), 200);
    let other = client
        .get(format!("{base}/server-status"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
    // Plain HTTP on the TLS port is refused.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthcheck"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 400);

    let lines = log_lines(&server, "novajoin::access");
    assert!(lines.iter().any(|l| l["path"] == "/healthcheck"));
    assert!(
        !lines.iter().any(|l| l["path"] == "/server-status"),
        "{lines:?}"
    );
    // Neither the one-time password nor the token is in any log.
    for (name, text) in [
        ("novajoin", server.logs()),
        ("httpd access", read_log("novajoin_access.log")),
        (
            "httpd error",
            httpd.error_log() + &read_log("novajoin_error.log"),
        ),
        ("httpd main access", read_log("access.log")),
    ] {
        assert!(!text.contains(&otp), "the OTP leaked into the {name} log");
        assert!(
            !text.contains(&nova_token),
            "nova's token leaked into the {name} log"
        );
    }
}
