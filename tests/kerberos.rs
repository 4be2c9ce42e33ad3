//! Kerberos login to IPA end to end, with real parts: a real MIT KDC
//! (tests/support/kdc.rs), real Apache httpd with mod_auth_gssapi in front
//! of the IPA double exactly where IPA puts it (tests/support/apache.rs),
//! and the real `novajoin server` binary configured with
//! `auth_method = kerberos` and a keytab. Instances are enrolled over HTTP
//! with the body nova sends; IPA's state, the KDC's log and Apache's access
//! log are asserted.
//!
//! The vendordata pipeline here uses `noauth` in place of keystone's
//! filters: keystone is not what these tests are about.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::apache::{ipa_gssapi_front, Apache};
use support::ipa::{DoubleOptions, IpaDouble};
use support::kdc::{Kdc, KdcOptions};
use support::server::{NovajoinServer, ServerFiles, NOAUTH_PIPELINE};

const HTTP: &str = "HTTP/ipa.example.test";
const NOVA_HOST: &str = "compute.example.test";
const NOVA: &str = "nova/compute.example.test";
const TRUSTED_HEADER: &str = "X-Remote-User";

/// KDC + IPA double + Apache in front of it.
struct KrbEnv {
    kdc: Kdc,
    ipa: IpaDouble,
    apache: Apache,
    /// The keytab of nova/compute.example.test with its current keys.
    nova_keytab: PathBuf,
    /// Holds default.conf.
    conf_dir: tempfile::TempDir,
    http: reqwest::Client,
}

/// `one_minute_tickets`: the realm (and the nova principal) issue tickets
/// that live one minute, else ten hours; `session`: how long the double
/// keeps a session cookie.
async fn krb_env(one_minute_tickets: bool, session: Duration) -> KrbEnv {
    let (kdc, http_keytab, nova_keytab) = tokio::task::spawn_blocking(move || {
        let kdc = Kdc::start(KdcOptions {
            max_life: if one_minute_tickets { "1m" } else { "10h" }.into(),
            ..KdcOptions::default()
        });
        kdc.add_principal(HTTP, None);
        kdc.add_principal(NOVA, one_minute_tickets.then_some("1 minute"));
        let http_keytab = kdc.keytab(HTTP);
        let nova_keytab = kdc.keytab(NOVA);
        (kdc, http_keytab, nova_keytab)
    })
    .await
    .unwrap();
    let ipa = support::ipa::start_with(DoubleOptions {
        trusted_user_header: Some(TRUSTED_HEADER.into()),
        session_lifetime: session,
        ..DoubleOptions::default()
    })
    .await;
    let config = ipa_gssapi_front(&http_keytab, &ipa.url(), TRUSTED_HEADER);
    let env = kdc.client_env();
    let apache = tokio::task::spawn_blocking(move || Apache::start(&config, &env))
        .await
        .unwrap();
    let conf_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        conf_dir.path().join("default.conf"),
        support::ipa::default_conf(&ipa, NOVA_HOST),
    )
    .unwrap();
    KrbEnv {
        kdc,
        ipa,
        apache,
        nova_keytab,
        conf_dir,
        http: reqwest::Client::new(),
    }
}

impl KrbEnv {
    /// join.conf: IPA through Apache, Kerberos with `keytab`, principal
    /// derived from default.conf (`host = compute.example.test`).
    fn join_conf(&self, keytab: &Path) -> String {
        format!(
            "[DEFAULT]\njoin_listen = 127.0.0.1\njoin_listen_port = {{port}}\nurl = {}/ipa/json\n\
             domain = example.test\nkeytab = {}\n\n[ipa]\nauth_method = kerberos\nserver = {}\n\
             default_conf = {}\ntimeout = 15\n",
            self.apache.base,
            keytab.display(),
            self.ipa.fqdn(),
            self.conf_dir.path().join("default.conf").display()
        )
    }

    async fn server(&self, keytab: &Path) -> NovajoinServer {
        let files = ServerFiles {
            join_conf: self.join_conf(keytab),
            pipeline: NOAUTH_PIPELINE.into(),
            env: self.kdc.client_env(),
        };
        tokio::task::spawn_blocking(move || NovajoinServer::start(files))
            .await
            .unwrap()
    }

    async fn join(&self, server: &NovajoinServer, hostname: &str) -> (u16, Value) {
        let body = json!({
            "project-id": null, "instance-id": uuid::Uuid::new_v4().to_string(),
            "image-id": "img-1", "user-data": null, "hostname": hostname,
            "metadata": {"ipa_enroll": "True"}, "boot-roles": "member,reader"
        });
        let resp = self
            .http
            .post(format!("{}/v1/", server.base))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}")),
        )
    }

    /// Asserts a 200 with an OTP that the double holds for the host.
    async fn assert_enrolls(&self, server: &NovajoinServer, hostname: &str) {
        let (status, body) = self.join(server, hostname).await;
        assert_eq!(
            status,
            200,
            "{body}\n--- novajoin log:\n{}\n--- apache error log:\n{}",
            server.logs(),
            self.apache.error_log()
        );
        let fqdn = format!("{hostname}.example.test");
        assert_eq!(body["hostname"], fqdn.as_str());
        assert_eq!(body["krb_realm"], "EXAMPLE.TEST");
        let host = self.ipa.host(&fqdn).expect("host created in IPA");
        assert_eq!(host.otp.as_deref(), body["ipaotp"].as_str(), "{body}");
    }

    /// Access-log lines of Kerberos logins Apache authenticated as `principal`.
    fn kerberos_logins_by(&self, principal: &str) -> usize {
        self.apache
            .access_log()
            .lines()
            .filter(|l| {
                l.contains(&format!(" {principal} "))
                    && l.contains("/ipa/session/login_kerberos")
                    && l.ends_with(" 200")
            })
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolls_an_instance_authenticating_with_a_keytab() {
    let e = krb_env(false, Duration::from_secs(1200)).await;
    let server = e.server(&e.nova_keytab).await;

    e.assert_enrolls(&server, "krb1").await;
    let nova = e.kdc.full(NOVA);
    assert_eq!(e.ipa.logins(), 1, "one Kerberos login");
    assert_eq!(
        e.kerberos_logins_by(&nova),
        1,
        "Apache (mod_auth_gssapi) authenticated {nova}:\n{}",
        e.apache.access_log()
    );
    assert_eq!(
        e.kdc.tgts_issued_to(NOVA),
        1,
        "TGT from the keytab:\n{}",
        e.kdc.log()
    );
    assert_eq!(e.kdc.service_tickets_for(HTTP), 1, "{}", e.kdc.log());

    // The session cookie is reused: no new login, no KDC traffic.
    e.assert_enrolls(&server, "krb2").await;
    assert_eq!(e.ipa.logins(), 1);

    // IPA drops the session: the client logs in again with the ticket it
    // keeps in its private memory cache (no new TGT from the KDC).
    e.ipa.expire_sessions();
    e.assert_enrolls(&server, "krb3").await;
    assert_eq!(e.ipa.logins(), 2);
    assert_eq!(e.kerberos_logins_by(&nova), 2);
    assert_eq!(e.kdc.tgts_issued_to(NOVA), 1, "{}", e.kdc.log());

    let logs = server.logs();
    assert!(
        logs.contains("logged in to IPA") && logs.contains(&format!("Kerberos login as {nova}")),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keytab_with_stale_keys_is_a_clear_error_and_changes_nothing() {
    let e = krb_env(false, Duration::from_secs(1200)).await;
    // What happens when someone runs ipa-getkeytab elsewhere: new keys in
    // the KDC, the keytab novajoin holds is stale.
    e.kdc.rotate_keys(NOVA);
    let server = e.server(&e.nova_keytab).await;

    let (status, body) = e.join(&server, "stale1").await;
    assert_eq!(status, 503, "{body}");
    let msg = body["serviceUnavailable"]["message"]
        .as_str()
        .unwrap_or_default();
    let nova = e.kdc.full(NOVA);
    let keytab = e.nova_keytab.display().to_string();
    for needle in [
        "Kerberos login to IPA failed",
        "cannot obtain a Kerberos ticket",
        nova.as_str(),
        keytab.as_str(),
        "[DEFAULT] keytab",
    ] {
        assert!(msg.contains(needle), "{needle:?} missing from {msg:?}");
    }
    assert!(
        server.logs().contains("cannot obtain a Kerberos ticket"),
        "the log names the problem:\n{}",
        server.logs()
    );
    assert!(e.ipa.host("stale1.example.test").is_none());
    assert_eq!(e.ipa.logins(), 0);
    assert_eq!(
        e.kerberos_logins_by(&nova),
        0,
        "nothing was authenticated by Apache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keytab_of_another_principal_is_a_clear_error() {
    let e = krb_env(false, Duration::from_secs(1200)).await;
    e.kdc.add_principal("nova/other.example.test", None);
    let other = e.kdc.keytab("nova/other.example.test");
    let server = e.server(&other).await;

    let (status, body) = e.join(&server, "other1").await;
    assert_eq!(status, 503, "{body}");
    let msg = body["serviceUnavailable"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        msg.contains(&format!("the keytab holds no key for {}", e.kdc.full(NOVA)))
            && msg.contains(&other.display().to_string())
            && msg.contains("[ipa] principal"),
        "{msg}"
    );
    assert!(e.ipa.host("other1.example.test").is_none());
    assert_eq!(e.ipa.logins(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_keytab_that_no_longer_matches_is_reported_as_a_rejected_login() {
    let e = krb_env(false, Duration::from_secs(1200)).await;
    // The IPA server's HTTP keys change after Apache loaded its keytab:
    // the KDC issues tickets Apache cannot read, and it answers 401.
    e.kdc.rotate_keys(HTTP);
    let server = e.server(&e.nova_keytab).await;

    let (status, body) = e.join(&server, "rej1").await;
    assert_eq!(status, 503, "{body}");
    let msg = body["serviceUnavailable"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        msg.contains("IPA rejected the Kerberos login")
            && msg.contains(&e.kdc.full(NOVA))
            && msg.contains("HTTP@ipa.example.test"),
        "{msg}"
    );
    // One retry with a fresh credential cache (new TGT), then it gives up.
    assert_eq!(e.kdc.tgts_issued_to(NOVA), 2, "{}", e.kdc.log());
    let rejected = e
        .apache
        .access_log()
        .lines()
        .filter(|l| l.contains("/ipa/session/login_kerberos") && l.ends_with(" 401"))
        .count();
    assert_eq!(rejected, 2, "{}", e.apache.access_log());
    assert_eq!(e.ipa.logins(), 0);
    assert!(e.ipa.host("rej1.example.test").is_none());
}

#[test]
fn an_unreadable_keytab_stops_the_server_at_start() {
    let conf = "[DEFAULT]\njoin_listen = 127.0.0.1\njoin_listen_port = 0\n\
                url = http://127.0.0.1:9/ipa/json\ndomain = example.test\n\
                keytab = /nonexistent/novajoin/krb5.keytab\napi_paste_config = {dir}/pipeline.toml\n\n[ipa]\nauth_method = kerberos\n\
                server = ipa.example.test\nrealm = EXAMPLE.TEST\nprincipal = nova/h.example.test\n\
                default_conf = /nonexistent/default.conf\n";
    let (code, stderr) = support::server::start_failure(conf, NOAUTH_PIPELINE);
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("keytab")
            && stderr.contains("/nonexistent/novajoin/krb5.keytab")
            && stderr.contains("join.conf:6"),
        "{stderr}"
    );
}

/// The acceptance test for renewal: the nova principal's tickets live one
/// minute; the double keeps a session 25 s. Over ~80 s the service keeps
/// enrolling every 10 s without one failure, which takes re-logins with the
/// cached ticket and, after the first minute, a new TGT from the keytab.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_minute_tickets_are_renewed_transparently() {
    let e = krb_env(true, Duration::from_secs(25)).await;
    let lifetime = e.kdc.tgt_lifetime(NOVA, &e.nova_keytab);
    assert!(
        lifetime <= Duration::from_secs(60) && lifetime >= Duration::from_secs(50),
        "the realm issues one-minute tickets: {lifetime:?}"
    );
    let probe_tgts = e.kdc.tgts_issued_to(NOVA);
    let server = e.server(&e.nova_keytab).await;

    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(75) {
        n += 1;
        e.assert_enrolls(&server, &format!("renew{n}")).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    assert!(n >= 7, "{n} enrollments");
    let tgts = e.kdc.tgts_issued_to(NOVA) - probe_tgts;
    assert!(
        tgts >= 2,
        "the expired TGT was replaced from the keytab ({tgts} TGTs):\n{}",
        e.kdc.log()
    );
    assert!(
        e.ipa.logins() >= 3,
        "sessions expired and were renewed: {} logins",
        e.ipa.logins()
    );
    assert_eq!(
        e.ipa.logins() as usize,
        e.kerberos_logins_by(&e.kdc.full(NOVA))
    );
    // Nothing went wrong once serving (start-up warnings about the test
    // set-up, like plain http to the double, are not the point here).
    let logs = server.logs();
    let trouble: Vec<&str> = logs
        .lines()
        .skip_while(|l| !l.contains("novajoin server ready"))
        .filter(|l| {
            l.contains("\"level\":\"ERROR\"")
                || (l.contains("\"level\":\"WARN\"") && l.contains("novajoin::ipa"))
        })
        .collect();
    assert!(trouble.is_empty(), "{trouble:#?}");
    eprintln!(
        "{n} enrollments over {:?}: {tgts} TGTs from the keytab, {} IPA logins",
        started.elapsed(),
        e.ipa.logins()
    );
}
