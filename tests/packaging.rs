//! What an operator installs, exercised for real: the shipped httpd vhost in
//! front of `novajoin server` (real Apache, TLS, Unix socket), the systemd
//! units (`systemd-analyze`), sysusers and logrotate files, the cloud-init
//! enroll script (shellcheck, and run against a fake config drive and a
//! fake metadata service with a stub `ipa-client-install`), the metrics
//! endpoint (parsed by the Prometheus Python client's parser) and the
//! generated files (`config-sample`, nova.conf snippet, cloud-config).
//!
//! Generated files that are checked in are compared with what the code
//! produces; `NOVAJOIN_UPDATE_PACKAGING=1 cargo test --test packaging`
//! rewrites them.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::apache::Apache;
use support::server::{NovajoinServer, ServerFiles};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shipped(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Compares a checked-in generated file with what the code makes now.
fn assert_generated(rel: &str, expected: &str, how: &str) {
    let path = repo().join(rel);
    if std::env::var_os("NOVAJOIN_UPDATE_PACKAGING").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{rel} is stale ({how}); regenerate with NOVAJOIN_UPDATE_PACKAGING=1 cargo test --test packaging"
    );
}

/// Replaces each `from` (which must occur) with `to`.
fn adjust(text: &str, edits: &[(&str, &str)]) -> String {
    let mut t = text.to_string();
    for (from, to) in edits {
        assert!(
            t.contains(from),
            "the shipped file no longer contains {from:?}; update the test"
        );
        t = t.replace(from, to);
    }
    t
}

/// The handler pipeline with `noauth` in place of the keystone filters
/// (authtoken has its own tests), as tests/join.rs uses.
const NOAUTH_PIPELINE: &str = r#"
filters = ["http_proxy_to_wsgi", "request_id", "healthcheck", "sizelimit", "cors"]
[[route]]
path = "/v1"
filters = ["noauth"]
app = "join"
"#;

/// The body nova sends (spec/nova-vendordata.md §4), Python separators.
fn nova_body(hostname: &str, image: Option<&str>, metadata: Value) -> String {
    let mut m = serde_json::Map::new();
    m.insert("project-id".into(), Value::Null);
    m.insert(
        "instance-id".into(),
        json!(uuid::Uuid::new_v4().to_string()),
    );
    m.insert(
        "image-id".into(),
        image.map(Value::from).unwrap_or(Value::Null),
    );
    m.insert("user-data".into(), Value::Null);
    m.insert("hostname".into(), json!(hostname));
    m.insert("metadata".into(), metadata);
    m.insert("boot-roles".into(), json!("member,reader"));
    serde_json::to_string(&Value::Object(m))
        .unwrap()
        .replace("\":", "\": ")
        .replace(",\"", ", \"")
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

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// httpd in front of the service
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// systemd, sysusers, logrotate
// ---------------------------------------------------------------------------

/// The unit files with ExecStart pointing at the binary under test.
fn units_for_test(dir: &Path) -> Vec<PathBuf> {
    let bin = env!("CARGO_BIN_EXE_novajoin");
    ["novajoin-server.service", "novajoin-notify.service"]
        .iter()
        .map(|name| {
            let text = adjust(
                &shipped(&format!("packaging/systemd/{name}")),
                &[("ExecStart=/usr/bin/novajoin ", &format!("ExecStart={bin} "))],
            );
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        })
        .collect()
}

fn subcommands() -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_novajoin"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn systemd_units_pass_verify_and_are_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let units = units_for_test(dir.path());
    // The man pages the units name, generated from this binary.
    let man = dir.path().join("man");
    let out = Command::new(env!("CARGO_BIN_EXE_novajoin"))
        .arg("manpages")
        .arg("--out")
        .arg(man.join("man1"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let commands = subcommands();
    for unit in &units {
        let text = std::fs::read_to_string(unit).unwrap();
        let sub = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .to_string();
        for want in [
            "Type=notify",
            "User=novajoin",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "Restart=on-failure",
        ] {
            assert!(text.contains(want), "{} lacks {want}", unit.display());
        }
        assert!(
            commands.contains(&sub),
            "{} runs `novajoin {sub}`, which this binary does not have",
            unit.display()
        );
        // Documentation=man:novajoin-*(1) must resolve to a generated page.
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .env("MANPATH", &man)
            .arg(unit)
            .output()
            .expect("systemd-analyze (package systemd)");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify {}:\n{}{}",
            unit.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Exposure 2.0 or better ("OK" in systemd's words); a unit stripped
        // of its hardening scores 9+.
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
            .arg(unit)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{} is exposed above 2.0:\n{report}",
            unit.display()
        );
    }
}

#[test]
fn sysusers_file_creates_the_service_account() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    let out = Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(repo().join("packaging/systemd/novajoin.sysusers.conf"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let entry = passwd
        .lines()
        .find(|l| l.starts_with("novajoin:"))
        .expect("novajoin user");
    assert!(entry.ends_with(":/usr/sbin/nologin"), "{entry}");
    let uid: u32 = entry.split(':').nth(2).unwrap().parse().unwrap();
    assert!((1..1000).contains(&uid), "a system account: {entry}");
    let group = std::fs::read_to_string(root.path().join("etc/group")).unwrap();
    assert!(group.lines().any(|l| l.starts_with("novajoin:")));
}

#[test]
fn logrotate_config_rotates_appended_logs_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("log");
    std::fs::create_dir(&logs).unwrap();
    let conf = adjust(
        &shipped("packaging/logrotate/novajoin"),
        &[
            ("/var/log/novajoin/", &format!("{}/", logs.display())),
            ("su novajoin novajoin", "su root root"),
        ],
    );
    let conf_path = dir.path().join("novajoin");
    std::fs::write(&conf_path, conf).unwrap();
    let log = logs.join("novajoin-server.log");
    // A writer that keeps its descriptor, as systemd's append: does.
    let mut writer = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    writer.write_all(b"line before rotation\n").unwrap();
    let out = Command::new("logrotate")
        .arg("--force")
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg(&conf_path)
        .output()
        .expect("logrotate");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated: Vec<_> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("novajoin-server.log-"))
        .collect();
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    assert_eq!(
        std::fs::read_to_string(logs.join(&rotated[0])).unwrap(),
        "line before rotation\n"
    );
    // Truncated in place: the open descriptor keeps writing to the live file.
    writer.write_all(b"after\n").unwrap();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "after\n");
}

// ---------------------------------------------------------------------------
// the cloud-config and its enroll script
// ---------------------------------------------------------------------------

/// The script as shipped inside cloud-config-novajoin.json.
fn shipped_enroll_script() -> (String, String) {
    let v: Value = serde_json::from_str(&shipped("packaging/cloud-config-novajoin.json")).unwrap();
    let cc = v["cloud-init"]
        .as_str()
        .expect("key cloud-init")
        .to_string();
    assert!(cc.starts_with("#cloud-config\n"));
    let y: serde_yaml::Value = serde_yaml::from_str(&cc).unwrap();
    let file = &y["write_files"][0];
    let path = file["path"].as_str().unwrap().to_string();
    assert_eq!(file["permissions"].as_str(), Some("0700"));
    let runcmd = y["runcmd"][0][0].as_str().unwrap();
    assert_eq!(runcmd, path, "runcmd runs the script it writes");
    (file["content"].as_str().unwrap().to_string(), path)
}

#[test]
fn cloud_config_json_is_current() {
    assert_generated(
        "packaging/cloud-config-novajoin.json",
        &novajoin::cli::install::cloud_config_json(),
        "it embeds packaging/cloud-init/novajoin-enroll.sh",
    );
}

#[test]
fn enroll_script_passes_shellcheck() {
    let (script, _) = shipped_enroll_script();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("novajoin-enroll");
    std::fs::write(&path, script).unwrap();
    let out = Command::new("shellcheck")
        .arg("--severity=style")
        .arg(&path)
        .output()
        .expect("shellcheck (Debian package shellcheck)");
    assert!(
        out.status.success(),
        "shellcheck:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A throwaway instance: the script, stub commands first on PATH, a
/// recording stub `ipa-client-install`, and fake `blkid`/`mount`/`umount`
/// that present `drive/` as the config drive when `device` is set.
struct Instance {
    dir: tempfile::TempDir,
    script: PathBuf,
}

const VENDOR_DATA: &str = r##"{"static": {"cloud-init": "#cloud-config\n"}, "join": {"hostname": "vm7.example.test", "krb_realm": "EXAMPLE.TEST", "ipaotp": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}}"##;
const OTP: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

struct Run {
    status: i32,
    output: String,
    ipa_args: Option<Vec<String>>,
    calls: String,
}

impl Instance {
    fn new() -> Self {
        let (script_text, _) = shipped_enroll_script();
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let stub = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        stub(
            "ipa-client-install",
            "printf '%s\\n' \"$@\" > \"$STUB_DIR/ipa-client-install.args\"\nexit \"${STUB_IPA_EXIT:-0}\"",
        );
        stub(
            "blkid",
            "echo \"blkid $*\" >> \"$STUB_DIR/calls\"\n\
             if [ -n \"${STUB_DEVICE:-}\" ] && [[ \" $* \" == *' LABEL=config-2 '* ]]; then echo \"$STUB_DEVICE\"; exit 0; fi\nexit 2",
        );
        stub(
            "mount",
            "echo \"mount $*\" >> \"$STUB_DIR/calls\"\n\
             [ \"$1\" = -o ] && [ \"$2\" = ro ] && [ \"$3\" = \"$STUB_DEVICE\" ] || exit 32\n\
             cp -r \"$STUB_DIR/drive/.\" \"$4\"",
        );
        stub("umount", "echo \"umount $*\" >> \"$STUB_DIR/calls\"");
        let script = dir.path().join("novajoin-enroll");
        std::fs::write(&script, script_text).unwrap();
        Instance { dir, script }
    }

    fn put_drive(&self, vendor_data: &str) {
        let d = self.dir.path().join("drive/openstack/latest");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("vendor_data2.json"), vendor_data).unwrap();
    }

    fn run(&self, env: &[(&str, String)], args: &[&str]) -> Run {
        let d = self.dir.path();
        let out = Command::new("bash")
            .arg(&self.script)
            .args(args)
            .env_clear()
            .env(
                "PATH",
                format!(
                    "{}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                    d.join("bin").display()
                ),
            )
            .env("STUB_DIR", d)
            .env("HOME", d)
            .env("NOVAJOIN_IPA_DEFAULT_CONF", d.join("ipa-default.conf"))
            .env("NOVAJOIN_METADATA_URL", "http://127.0.0.1:9/nothing-here")
            .env("NOVAJOIN_METADATA_TIMEOUT", "1")
            .env("NOVAJOIN_RETRY_BASE", "1")
            .env("NOVAJOIN_RETRY_MAX", "1")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let ipa_args = std::fs::read_to_string(d.join("ipa-client-install.args"))
            .ok()
            .map(|t| t.lines().map(str::to_string).collect());
        Run {
            status: out.status.code().unwrap_or(-1),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            ipa_args,
            calls: std::fs::read_to_string(d.join("calls")).unwrap_or_default(),
        }
    }
}

/// A metadata service: `vendor_data2.json` gets the listed (status, body)
/// pairs in order, then the last one forever; `meta_data.json` gets `meta`
/// (404 when `None`). Counts the vendor_data2.json requests.
struct FakeMetadata {
    url: String,
    hits: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl FakeMetadata {
    fn start(answers: Vec<(u16, String)>) -> Self {
        Self::with_meta(answers, None)
    }

    fn with_meta(answers: Vec<(u16, String)>, meta: Option<&str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (h, p) = (hits.clone(), paths.clone());
        let meta = meta.map(str::to_string);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { break };
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                p.lock().unwrap().push(path.clone());
                let (status, body) = if path.ends_with("/meta_data.json") {
                    match &meta {
                        Some(m) => (200, m.clone()),
                        None => (404, "not found".to_string()),
                    }
                } else {
                    let i = h.fetch_add(1, Ordering::SeqCst);
                    answers[i.min(answers.len() - 1)].clone()
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeMetadata {
            url: format!("http://127.0.0.1:{port}/openstack/latest/vendor_data2.json"),
            hits,
            paths,
        }
    }
}

fn expected_ipa_args(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "-U",
        "-w",
        OTP,
        "--hostname",
        "vm7.example.test",
        "--realm",
        "EXAMPLE.TEST",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[test]
fn enroll_reads_the_config_drive_and_runs_ipa_client_install() {
    let inst = Instance::new();
    inst.put_drive(VENDOR_DATA);
    let metadata = FakeMetadata::start(vec![(200, VENDOR_DATA.into())]);
    let run = inst.run(
        &[
            ("STUB_DEVICE", "/dev/sr0".into()),
            ("NOVAJOIN_METADATA_URL", metadata.url.clone()),
        ],
        &["--mkhomedir"],
    );
    assert_eq!(run.status, 0, "{}", run.output);
    assert_eq!(
        run.ipa_args,
        Some(expected_ipa_args(&["--mkhomedir"])),
        "{}",
        run.output
    );
    assert!(run.calls.contains("mount -o ro /dev/sr0 "), "{}", run.calls);
    assert!(run.calls.contains("umount "), "unmounted: {}", run.calls);
    assert_eq!(
        metadata.hits.load(Ordering::SeqCst),
        0,
        "the config drive wins"
    );
    assert!(!run.output.contains(OTP), "OTP printed: {}", run.output);
    assert!(run.output.contains("config drive"), "{}", run.output);
}

#[test]
fn enroll_reads_a_mounted_config_drive_directory() {
    let inst = Instance::new();
    inst.put_drive(VENDOR_DATA);
    let drive = inst.dir.path().join("drive").display().to_string();
    let run = inst.run(&[("NOVAJOIN_CONFIG_DRIVE_DIR", drive)], &[]);
    assert_eq!(run.status, 0, "{}", run.output);
    assert_eq!(run.ipa_args, Some(expected_ipa_args(&[])));
    assert!(
        !run.calls.contains("mount"),
        "nothing to mount: {}",
        run.calls
    );
}

#[test]
fn enroll_falls_back_to_the_metadata_service_and_retries() {
    let inst = Instance::new();
    // Not ready, then a server error, then the answer.
    let metadata = FakeMetadata::start(vec![
        (404, "not yet".into()),
        (500, "{}".into()),
        (200, VENDOR_DATA.into()),
    ]);
    let run = inst.run(
        &[
            ("NOVAJOIN_METADATA_URL", metadata.url.clone()),
            ("NOVAJOIN_METADATA_TIMEOUT", "60".into()),
        ],
        &[],
    );
    assert_eq!(run.status, 0, "{}", run.output);
    assert_eq!(run.ipa_args, Some(expected_ipa_args(&[])), "{}", run.output);
    assert_eq!(metadata.hits.load(Ordering::SeqCst), 3);
    assert!(metadata
        .paths
        .lock()
        .unwrap()
        .iter()
        .all(|p| p == "/openstack/latest/vendor_data2.json"));
    assert!(run.calls.contains("blkid"), "looked for a config drive");
    assert!(!run.output.contains(OTP), "OTP printed: {}", run.output);
    assert!(run.output.contains("attempt 3"), "{}", run.output);
}

#[test]
fn enroll_does_nothing_when_enrollment_was_not_requested() {
    let inst = Instance::new();
    let metadata = FakeMetadata::with_meta(
        vec![(200, r#"{"static": {}, "join": {}}"#.into())],
        Some(r#"{"uuid": "u", "meta": {"role": "web"}}"#),
    );
    let run = inst.run(
        &[
            ("NOVAJOIN_METADATA_URL", metadata.url.clone()),
            ("NOVAJOIN_METADATA_TIMEOUT", "60".into()),
        ],
        &[],
    );
    assert_eq!(run.status, 0, "{}", run.output);
    assert_eq!(run.ipa_args, None);
    assert!(run.output.contains("no IPA enrollment was requested"));
    assert_eq!(metadata.hits.load(Ordering::SeqCst), 1, "asked once");
}

#[test]
fn enroll_asks_again_while_novajoin_fails_for_a_requested_instance() {
    let inst = Instance::new();
    // nova stores {} for the target while novajoin answers with an error.
    let failed = r#"{"static": {}, "join": {}}"#.to_string();
    let metadata = FakeMetadata::with_meta(
        vec![
            (200, failed.clone()),
            (200, failed),
            (200, VENDOR_DATA.into()),
        ],
        Some(r#"{"uuid": "u", "meta": {"ipa_enroll": "True"}}"#),
    );
    let run = inst.run(
        &[
            ("NOVAJOIN_METADATA_URL", metadata.url.clone()),
            ("NOVAJOIN_METADATA_TIMEOUT", "60".into()),
        ],
        &[],
    );
    assert_eq!(run.status, 0, "{}", run.output);
    assert_eq!(run.ipa_args, Some(expected_ipa_args(&[])), "{}", run.output);
    assert_eq!(metadata.hits.load(Ordering::SeqCst), 3);
    assert!(metadata
        .paths
        .lock()
        .unwrap()
        .iter()
        .any(|p| p == "/openstack/latest/meta_data.json"));
    assert!(run.output.contains("asking again"), "{}", run.output);
}

#[test]
fn enroll_uses_the_metadata_service_when_the_drive_was_built_while_novajoin_failed() {
    let inst = Instance::new();
    inst.put_drive(r#"{"static": {}, "join": {}}"#);
    std::fs::write(
        inst.dir
            .path()
            .join("drive/openstack/latest/meta_data.json"),
        r#"{"uuid": "u", "meta": {"ipa_enroll": "true"}}"#,
    )
    .unwrap();
    let metadata = FakeMetadata::start(vec![(200, VENDOR_DATA.into())]);
    let run = inst.run(
        &[
            ("STUB_DEVICE", "/dev/sr0".into()),
            ("NOVAJOIN_METADATA_URL", metadata.url.clone()),
            ("NOVAJOIN_METADATA_TIMEOUT", "60".into()),
        ],
        &[],
    );
    assert_eq!(run.status, 0, "{}", run.output);
    assert_eq!(run.ipa_args, Some(expected_ipa_args(&[])), "{}", run.output);
    assert_eq!(metadata.hits.load(Ordering::SeqCst), 1);
    assert!(run.calls.contains("umount "), "{}", run.calls);
}

#[test]
fn enroll_skips_a_host_that_is_already_enrolled() {
    let inst = Instance::new();
    std::fs::write(inst.dir.path().join("ipa-default.conf"), "[global]\n").unwrap();
    let metadata = FakeMetadata::start(vec![(200, VENDOR_DATA.into())]);
    let run = inst.run(&[("NOVAJOIN_METADATA_URL", metadata.url.clone())], &[]);
    assert_eq!(run.status, 0, "{}", run.output);
    assert_eq!(run.ipa_args, None);
    assert_eq!(metadata.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn enroll_fails_clearly_without_metadata_or_with_a_bad_answer() {
    let inst = Instance::new();
    let down = FakeMetadata::start(vec![(503, "".into())]);
    let run = inst.run(
        &[
            ("NOVAJOIN_METADATA_URL", down.url.clone()),
            // Pauses are 0-1 s here: at least two attempts fit in 5 s.
            ("NOVAJOIN_METADATA_TIMEOUT", "5".into()),
        ],
        &[],
    );
    assert_eq!(run.status, 1, "{}", run.output);
    assert_eq!(run.ipa_args, None);
    assert!(
        run.output.contains("FATAL: no vendor_data2.json"),
        "{}",
        run.output
    );
    assert!(down.hits.load(Ordering::SeqCst) >= 2, "retried");

    // A hostname that would be an option, and no OTP: refused, not run.
    let inst = Instance::new();
    let bad = FakeMetadata::start(vec![(
        200,
        r#"{"join": {"hostname": "--server=evil", "krb_realm": "X", "ipaotp": "abc"}}"#.into(),
    )]);
    let run = inst.run(&[("NOVAJOIN_METADATA_URL", bad.url.clone())], &[]);
    assert_eq!(run.status, 1, "{}", run.output);
    assert_eq!(run.ipa_args, None);
    assert!(
        run.output.contains("not a fully qualified domain name"),
        "{}",
        run.output
    );

    let inst = Instance::new();
    let no_otp = FakeMetadata::start(vec![(
        200,
        r#"{"join": {"hostname": "vm7.example.test", "krb_realm": "EXAMPLE.TEST"}}"#.into(),
    )]);
    let run = inst.run(&[("NOVAJOIN_METADATA_URL", no_otp.url.clone())], &[]);
    assert_eq!(run.status, 1, "{}", run.output);
    assert_eq!(run.ipa_args, None);
    assert!(
        run.output.contains("no usable one-time password"),
        "{}",
        run.output
    );

    // ipa-client-install failing is reported as a failure.
    let inst = Instance::new();
    let ok = FakeMetadata::start(vec![(200, VENDOR_DATA.into())]);
    let run = inst.run(
        &[
            ("NOVAJOIN_METADATA_URL", ok.url.clone()),
            ("STUB_IPA_EXIT", "1".into()),
        ],
        &[],
    );
    assert_eq!(run.status, 1, "{}", run.output);
    assert!(
        run.output.contains("ipa-client-install failed"),
        "{}",
        run.output
    );
    assert!(!run.output.contains(OTP));
}

// ---------------------------------------------------------------------------
// metrics
// ---------------------------------------------------------------------------

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

/// `novajoin notify` as a child process, killed when dropped.
struct NotifyChild {
    child: std::process::Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl NotifyChild {
    fn start(conf: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conf_path = dir.path().join("join.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = dir.path().join("notify.log");
        let child = Command::new(env!("CARGO_BIN_EXE_novajoin"))
            .arg("notify")
            .arg("--config-file")
            .arg(&conf_path)
            .env("RUST_LOG", "info,lapin=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        NotifyChild {
            child,
            log,
            _dir: dir,
        }
    }

    fn logs(&self) -> String {
        support::settled_log(&self.log)
    }
}

impl Drop for NotifyChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let notify = NotifyChild::start(&conf);
    wait_for("the listener to consume", || {
        notify
            .logs()
            .contains("listening for notifications")
            .then_some(())
    });
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
            notify.logs()
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

// ---------------------------------------------------------------------------
// generated and sample files
// ---------------------------------------------------------------------------

#[test]
fn configuration_reference_is_current() {
    let out = Command::new(env!("CARGO_BIN_EXE_novajoin"))
        .args(["config-sample", "--format", "markdown"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_generated(
        "docs/CONFIGURATION.md",
        &String::from_utf8(out.stdout).unwrap(),
        "novajoin config-sample --format markdown",
    );
}

#[test]
fn config_sample_lists_every_section() {
    let out = Command::new(env!("CARGO_BIN_EXE_novajoin"))
        .arg("config-sample")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for group in novajoin::config::schema::all_groups() {
        for opt in group.iter() {
            assert!(text.contains(&format!("[{}]", opt.group)));
            assert!(
                text.contains(&format!("\n#{} = ", opt.name)),
                "{}",
                opt.name
            );
        }
    }
}

#[test]
fn nova_conf_snippet_is_what_install_prints() {
    use novajoin::cli::install::{nova_conf_changes, NotificationFormat, NovaConfInputs};
    let text = nova_conf_changes(&NovaConfInputs {
        public_url: "https://novajoin.example.com:9090/v1/".into(),
        cloud_config: PathBuf::from("/etc/novajoin/cloud-config-novajoin.json"),
        keystone_auth_url: "https://keystone.example.com:5000/v3".into(),
        user: "nova".into(),
        project: "service".into(),
        user_domain_name: "Default".into(),
        project_domain_name: "Default".into(),
        domain: "example.com".into(),
        notification_format: NotificationFormat::Versioned,
    });
    assert_generated(
        "packaging/nova/nova.conf.snippet",
        &text,
        "novajoin install prints it",
    );
    for want in [
        "vendordata_providers = StaticJSON,DynamicJSON",
        "vendordata_dynamic_targets = join@https://novajoin.example.com:9090/v1/",
        "vendordata_dynamic_read_timeout = 30",
        "[vendordata_dynamic_auth]",
        "notify_on_state_change = vm_state",
        "versioned_notifications_topics = versioned_notifications,novajoin_notifications",
        "driver = messagingv2",
    ] {
        assert!(text.contains(want), "{want}");
    }
}

#[test]
fn sample_join_conf_loads_without_warnings() {
    let path = repo().join("packaging/join.conf");
    let cfg = novajoin::config::ConfigFiles::load(&[path], &[]).unwrap();
    let warnings = cfg.validate().unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let listen = novajoin::server::listen_addr(&cfg).unwrap();
    assert_eq!(
        listen,
        novajoin::server::ListenAddr::Unix("/run/novajoin/join.sock".into()),
        "matches the vhost and the unit's RuntimeDirectory"
    );
    assert!(shipped("packaging/httpd/novajoin.conf").contains("unix:/run/novajoin/join.sock|"));
    assert!(shipped("packaging/systemd/novajoin-server.service")
        .contains("RuntimeDirectory=novajoin\n"));
    let metrics = novajoin::metrics::MetricsSettings::from_config(
        &cfg,
        novajoin::metrics::MetricsRole::Server,
    )
    .unwrap()
    .unwrap();
    assert!(metrics.listen.ip().is_loopback());
}

#[test]
fn glance_metadef_names_the_properties_the_service_reads() {
    let v: Value = serde_json::from_str(&shipped("packaging/glance/freeipa.json")).unwrap();
    assert_eq!(v["namespace"], "OS::Identity::IPA", "same namespace as 1.x");
    let types: Vec<&str> = v["resource_type_associations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["OS::Glance::Image", "OS::Nova::Server"]);
    let mut props: BTreeMap<String, Value> = v["properties"]
        .as_object()
        .unwrap()
        .clone()
        .into_iter()
        .collect();
    for obj in v["objects"].as_array().unwrap() {
        props.extend(obj["properties"].as_object().unwrap().clone());
    }
    for (name, p) in &props {
        let t = p["type"].as_str().unwrap();
        assert!(
            ["string", "boolean", "integer", "number", "array", "object"].contains(&t),
            "{name}: {t}"
        );
        assert!(
            p["title"].is_string() && p["description"].is_string(),
            "{name}"
        );
    }
    assert_eq!(props["ipa_enroll"]["type"], "boolean");
    // The names the join handler reads from metadata and image properties.
    let handler = shipped("src/join/decision.rs");
    for name in props.keys() {
        assert!(
            handler.contains(&format!("\"{name}\"")),
            "{name} is not read by src/join/decision.rs"
        );
    }
}

#[test]
fn install_writes_join_conf_once_and_dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc-novajoin");
    let ipa_conf = dir.path().join("default.conf");
    std::fs::write(
        &ipa_conf,
        "[global]\nrealm = EXAMPLE.TEST\ndomain = example.test\nserver = ipa.example.test\nhost = ctl.example.test\n",
    )
    .unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "S3rvice-Pa55\n").unwrap();
    let nova_conf = dir.path().join("nova.conf");
    std::fs::write(
        &nova_conf,
        "[DEFAULT]\ntransport_url = rabbit://nova:R4bbit@rabbit.example.test:5672/\n",
    )
    .unwrap();
    let install = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_novajoin"))
            .arg("install")
            .arg("--config-dir")
            .arg(&etc)
            .args([
                "--keystone-auth-url",
                "https://keystone.example.test:5000/v3",
            ])
            .arg("--nova-password-file")
            .arg(&pw)
            .arg("--ipa-conf")
            .arg(&ipa_conf)
            .arg("--nova-conf")
            .arg(&nova_conf)
            .args(["--metrics-listen", "127.0.0.1:9191"])
            .args(extra)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert!(!text.contains("S3rvice-Pa55"), "password printed:\n{text}");
        assert!(
            !text.contains("R4bbit"),
            "transport password printed:\n{text}"
        );
        text
    };

    let dry = install(&["--dry-run"]);
    assert!(dry.contains("join.conf: would create"), "{dry}");
    assert!(dry.contains("vendordata_dynamic_targets = join@https://ctl.example.test:9090/v1/"));
    assert!(!etc.exists(), "--dry-run wrote nothing");

    let first = install(&[]);
    assert!(first.contains("join.conf: created"), "{first}");
    let join_conf = etc.join("join.conf");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&join_conf).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let cfg = novajoin::config::ConfigFiles::load(std::slice::from_ref(&join_conf), &[]).unwrap();
    assert!(cfg.validate().unwrap().is_empty());
    assert_eq!(
        cfg.string(&novajoin::config::SC_PASSWORD).as_deref(),
        Some("S3rvice-Pa55")
    );
    assert_eq!(
        cfg.string(&novajoin::config::TRANSPORT_URL).as_deref(),
        Some("rabbit://nova:R4bbit@rabbit.example.test:5672/")
    );
    assert_eq!(
        cfg.string(&novajoin::config::DOMAIN).as_deref(),
        Some("example.test")
    );
    assert!(cfg
        .bool(&novajoin::config::ENABLE_PROXY_HEADERS_PARSING)
        .unwrap());
    assert_eq!(
        std::fs::read_to_string(etc.join("cloud-config-novajoin.json")).unwrap(),
        shipped("packaging/cloud-config-novajoin.json")
    );
    assert_eq!(
        std::fs::read_to_string(etc.join("pipeline.toml")).unwrap(),
        shipped("pipeline.toml")
    );

    // Operator edits survive; a second run changes nothing.
    let edited = std::fs::read_to_string(&join_conf).unwrap()
        + "\n# local note\n[demo]\nallowed_classes = web\n";
    std::fs::write(&join_conf, &edited).unwrap();
    std::fs::write(etc.join("pipeline.toml"), "# my own pipeline\n").unwrap();
    let second = install(&[]);
    for f in ["join.conf", "pipeline.toml", "cloud-config-novajoin.json"] {
        let line = second
            .lines()
            .find(|l| l.contains(f))
            .unwrap_or_else(|| panic!("{f} in {second}"));
        assert!(
            line.ends_with("unchanged") || line.contains("kept"),
            "{line}"
        );
    }
    assert_eq!(std::fs::read_to_string(&join_conf).unwrap(), edited);
    assert_eq!(
        std::fs::read_to_string(etc.join("pipeline.toml")).unwrap(),
        "# my own pipeline\n"
    );

    // Without a password anywhere, it says what to give.
    let out = Command::new(env!("CARGO_BIN_EXE_novajoin"))
        .args(["install", "--dry-run", "--config-dir"])
        .arg(dir.path().join("elsewhere"))
        .args(["--keystone-auth-url", "https://k:5000/v3", "--ipa-conf"])
        .arg(&ipa_conf)
        .env_remove("NOVAJOIN_NOVA_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--nova-password-file"));
}
