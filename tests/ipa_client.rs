//! The IPA client against the stateful IPA double, over HTTP.

mod support;

use std::time::Duration;

use novajoin::ipa::{
    EnrollmentBatch, HostOutcome, HostWrite, IpaAuth, IpaClient, IpaCommand, IpaError, NewHost,
    Secret,
};
use serde_json::Value;
use support::ipa::{self as ipa_support, DoubleOptions, Fault, UserState};

fn otp(s: &str) -> Secret {
    Secret::new(s)
}

fn instance(fqdn: &str, otp_text: &str) -> NewHost {
    NewHost {
        fqdn: fqdn.into(),
        description: Some("IPA host for OpenStack".into()),
        otp: Some(otp(otp_text)),
        userclass: Some("web".into()),
        nsosversion: Some("fedora 39".into()),
        nshostlocation: None,
        force: true,
        binding: Some(format!(
            "novajoin/1 instance=i-{}",
            fqdn.split('.').next().unwrap()
        )),
    }
}

// ---- login and session ----

#[tokio::test]
async fn one_login_serves_many_calls() {
    let ipa = ipa_support::start().await;
    let client = ipa_support::client(&ipa);
    let summary = client.ping().await.unwrap();
    assert!(summary.contains("API version 2.254"), "{summary}");
    client.ping().await.unwrap();
    assert_eq!(ipa.logins(), 1);
    assert_eq!(ipa.round_trips_for("ping"), 2);
}

#[tokio::test]
async fn expired_session_is_renewed_once_and_the_call_repeated() {
    let ipa = ipa_support::start().await;
    let client = ipa_support::client(&ipa);
    client.ping().await.unwrap();
    ipa.expire_sessions();
    client
        .host_add(&NewHost::subhost("a.example.test"))
        .await
        .unwrap();
    assert_eq!(ipa.logins(), 2, "a fresh login after the 401");
    assert!(
        ipa.host("a.example.test").is_some(),
        "the call was repeated after the login"
    );
    assert_eq!(ipa.commands("host_add"), 1, "and ran once");
}

#[tokio::test]
async fn concurrent_callers_share_one_login() {
    let ipa = ipa_support::start().await;
    let client = ipa_support::client(&ipa);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.ping().await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(ipa.logins(), 1);
}

#[tokio::test]
async fn wrong_password_is_rejected_with_ipas_reason_and_not_retried() {
    let ipa = ipa_support::start().await;
    let mut cfg = ipa_support::client_config(&ipa);
    cfg.auth = IpaAuth::password("admin", Secret::new("not-the-password"));
    let client = IpaClient::new(cfg).unwrap();
    let err = client.ping().await.unwrap_err();
    match &err {
        IpaError::LoginRejected { user, reason } => {
            assert_eq!(user, "admin");
            assert_eq!(reason, "invalid-password");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.to_string().contains("not-the-password"), "{err}");
    assert!(!format!("{err:?}").contains("not-the-password"));
    assert_eq!(ipa.failed_logins(), 1, "a rejected login is not retried");
}

#[tokio::test]
async fn locked_user_reason_is_reported() {
    let ipa = ipa_support::start().await;
    ipa.set_user_state("admin", UserState::Locked);
    let err = ipa_support::client(&ipa).ping().await.unwrap_err();
    assert!(
        matches!(&err, IpaError::LoginRejected { reason, .. } if reason == "user-locked"),
        "{err:?}"
    );
}

// ---- IPA errors, typed ----

#[tokio::test]
async fn ipa_errors_map_to_typed_variants() {
    let ipa = ipa_support::start().await;
    let c = ipa_support::client(&ipa);

    let e = c
        .host_mod_otp("nope.example.test", &otp("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, IpaError::NotFound(r) if r.code == 4001 && r.data["reason"] == "nope.example.test: host not found"),
        "{e:?}"
    );

    c.host_add(&instance("vm1.example.test", "o1"))
        .await
        .unwrap();
    let e = c
        .host_add(&instance("vm1.example.test", "o2"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, IpaError::DuplicateEntry(r) if r.code == 4002),
        "{e:?}"
    );

    assert!(ipa.mark_enrolled("vm1.example.test"));
    let e = c
        .host_mod_otp("vm1.example.test", &otp("o3"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, IpaError::Validation(r) if r.code == 3009 && r.data["name"] == "password"),
        "{e:?}"
    );

    c.dnsrecord_add_a("example.test.", "vm1", "192.0.2.10")
        .await
        .unwrap();
    let e = c
        .dnsrecord_add_a("example.test.", "vm1", "192.0.2.10")
        .await
        .unwrap_err();
    assert!(matches!(e, IpaError::EmptyModlist(_)), "{e:?}");
    let e = c
        .dnsrecord_del_a("example.test.", "vm1", "192.0.2.99")
        .await
        .unwrap_err();
    assert!(
        matches!(e, IpaError::AttrValueNotFound(ref r) if r.code == 4026),
        "{e:?}"
    );
    let e = c
        .dnsrecord_find_a("other.test.", "192.0.2.10")
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e:?}");

    let e = c
        .service_add("HTTP/vm1.example.test@OTHER.REALM")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, IpaError::Remote(r) if r.code == 4005 && r.name == "RealmMismatch"),
        "{e:?}"
    );

    let e = c
        .host_add(&NewHost {
            force: false,
            ..NewHost::subhost("nodns.example.test")
        })
        .await
        .unwrap_err();
    assert!(matches!(e, IpaError::DnsNotARecord(_)), "{e:?}");

    let e = c
        .host_add(&NewHost::subhost("shortname"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, IpaError::Validation(r) if r.data["name"] == "hostname"),
        "{e:?}"
    );
}

#[tokio::test]
async fn typed_helpers_read_ipa_answers() {
    let ipa = ipa_support::start().await;
    let c = ipa_support::client(&ipa);
    let h = c
        .host_add(&instance("vm2.example.test", "otp-vm2"))
        .await
        .unwrap();
    assert!(h.has_password && !h.has_keytab && h.krbprincipalname.is_empty());
    assert_eq!(h.nsosversion.as_deref(), Some("fedora 39"));
    assert!(c.host_exists("vm2.example.test").await.unwrap());
    assert!(!c.host_exists("vm3.example.test").await.unwrap());

    c.host_add(&NewHost::subhost("vm2.internalapi.example.test"))
        .await
        .unwrap();
    let s = c
        .service_add("HTTP/vm2.internalapi.example.test")
        .await
        .unwrap();
    assert_eq!(
        s.principal,
        "HTTP/vm2.internalapi.example.test@EXAMPLE.TEST"
    );
    let m = c
        .service_add_host(&s.principal, &["vm2.example.test".into()])
        .await
        .unwrap();
    assert_eq!((m.completed, m.failed.len()), (1, 0));
    let m = c
        .service_add_host(&s.principal, &["vm2.example.test".into()])
        .await
        .unwrap();
    assert_eq!(m.completed, 0);
    assert!(
        m.real_failures().is_empty(),
        "already a member is not a failure: {m:?}"
    );
    let shown = c
        .service_show("HTTP/vm2.internalapi.example.test")
        .await
        .unwrap();
    assert_eq!(
        shown.managedby_host,
        ["vm2.example.test", "vm2.internalapi.example.test"]
    );
    assert_eq!(
        c.service_find_managed_by("vm2.example.test").await.unwrap(),
        std::slice::from_ref(&s.principal)
    );

    c.dnsrecord_add_a("example.test", "vm2", "192.0.2.20")
        .await
        .unwrap();
    let found = c
        .dnsrecord_find_a("example.test.", "192.0.2.20")
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, "vm2", "__dns_name__ unwrapped");
    c.dnsrecord_del_all("example.test.", "vm2").await.unwrap();
    assert!(!ipa.dns_records("example.test").unwrap().contains_key("vm2"));

    c.host_del("vm2.internalapi.example.test", false)
        .await
        .unwrap();
    assert!(
        ipa.service("HTTP/vm2.internalapi.example.test").is_none(),
        "IPA deletes the host's services"
    );
    assert!(c
        .host_del("vm2.internalapi.example.test", false)
        .await
        .unwrap_err()
        .is_not_found());
}

// ---- batch and enrollment ----

#[tokio::test]
async fn batch_is_one_round_trip_with_per_item_results() {
    let ipa = ipa_support::start().await;
    let c = ipa_support::client(&ipa);
    c.ping().await.unwrap();
    ipa.reset_counters();
    let results = c
        .batch(&[
            IpaCommand::host_add(&NewHost::subhost("b1.example.test")),
            IpaCommand::host_add(&NewHost::subhost("b1.example.test")),
            IpaCommand::service_add("HTTP/b1.example.test@ELSEWHERE"),
            IpaCommand::host_show("b1.example.test").with_option("bogus", Value::Bool(true)),
            IpaCommand::host_show("b1.example.test"),
        ])
        .await
        .unwrap();
    assert_eq!(ipa.round_trips(), 1);
    assert_eq!(ipa.round_trips_for("batch"), 1);
    assert_eq!(results.len(), 5);
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(IpaError::DuplicateEntry(_))));
    assert!(matches!(results[2], Err(IpaError::Remote(ref r)) if r.code == 4005));
    assert!(
        matches!(results[3], Err(IpaError::UnknownOption(ref r)) if r.data["option"] == "bogus")
    );
    let shown = results[4].as_ref().unwrap();
    assert_eq!(shown.entry().unwrap()["fqdn"][0], "b1.example.test");
}

fn two_compact_services(fqdn: &str, otp_text: &str) -> EnrollmentBatch {
    let short = fqdn.split('.').next().unwrap();
    let mut b = EnrollmentBatch::new().host(HostWrite::Create(instance(fqdn, otp_text)));
    for (svc, net) in [("HTTP", "internalapi"), ("rabbitmq", "storage")] {
        let sub = format!("{short}.{net}.example.test");
        let principal = format!("{svc}/{sub}");
        b = b
            .subhost(NewHost::subhost(sub))
            .service(principal.clone())
            .managed_by(principal, fqdn);
    }
    b
}

#[tokio::test]
async fn new_host_with_two_compact_services_costs_one_round_trip() {
    let ipa = ipa_support::start().await;
    let c = ipa_support::client(&ipa);
    c.ping().await.unwrap();
    ipa.reset_counters();

    let out = c
        .enroll(&two_compact_services(
            "vm1.example.test",
            "6f1c0e2a9d7b4c1fa0f3b2d1e4c5a697",
        ))
        .await
        .unwrap();
    assert!(matches!(out.host, HostOutcome::Created), "{:?}", out.host);
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    assert_eq!(out.round_trips, 1);
    assert_eq!(ipa.round_trips(), 1, "{:?}", ipa.round_trips_by_method());

    let host = ipa.host("vm1.example.test").unwrap();
    assert_eq!(
        host.otp.as_deref(),
        Some("6f1c0e2a9d7b4c1fa0f3b2d1e4c5a697")
    );
    assert_eq!(host.userclass, ["web"]);
    for p in [
        "HTTP/vm1.internalapi.example.test",
        "rabbitmq/vm1.storage.example.test",
    ] {
        let s = ipa.service(p).unwrap_or_else(|| panic!("{p} missing"));
        assert!(
            s.managed_by.contains(&"vm1.example.test".to_string()),
            "{s:?}"
        );
    }
    ipa.ipa_join("vm1.example.test", "6f1c0e2a9d7b4c1fa0f3b2d1e4c5a697")
        .expect("the OTP enrols the host");
}

fn update(fqdn: &str, otp_text: &str) -> EnrollmentBatch {
    EnrollmentBatch::new().host(HostWrite::Update {
        fqdn: fqdn.into(),
        otp: Some(otp(otp_text)),
        binding: None,
    })
}

#[tokio::test]
async fn host_add_never_changes_an_existing_host_and_host_mod_reports_enrolled() {
    let ipa = ipa_support::start().await;
    let c = ipa_support::client(&ipa);
    c.enroll(&two_compact_services("vm1.example.test", "first"))
        .await
        .unwrap();

    let out = c
        .enroll(&two_compact_services("vm1.example.test", "second"))
        .await
        .unwrap();
    assert!(matches!(out.host, HostOutcome::Exists), "{:?}", out.host);
    assert!(
        out.failures.is_empty(),
        "duplicates of sub-hosts/services are not failures: {:?}",
        out.failures
    );
    assert_eq!(
        ipa.host("vm1.example.test").unwrap().otp.as_deref(),
        Some("first"),
        "host_add left the existing host alone"
    );

    let out = c
        .enroll(&update("vm1.example.test", "second"))
        .await
        .unwrap();
    let HostOutcome::Updated(entry) = &out.host else {
        panic!("{:?}", out.host)
    };
    let entry = entry.as_ref().as_ref().expect("host_mod returns the entry");
    assert_eq!(
        entry.binding.as_deref(),
        Some("novajoin/1 instance=i-vm1"),
        "the entry carries the binding it was created with"
    );
    assert_eq!(
        ipa.host("vm1.example.test").unwrap().otp.as_deref(),
        Some("second")
    );

    ipa.ipa_join("vm1.example.test", "second").unwrap();
    let out = c
        .enroll(&update("vm1.example.test", "third"))
        .await
        .unwrap();
    assert!(
        matches!(out.host, HostOutcome::AlreadyEnrolled),
        "{:?}",
        out.host
    );
    let h = ipa.host("vm1.example.test").unwrap();
    assert!(h.enrolled && h.otp.is_none(), "{h:?}");
}

#[tokio::test]
async fn enrollment_sent_again_after_a_lost_answer_keeps_the_otp_it_set() {
    let ipa = ipa_support::start().await;
    let c = ipa_support::client(&ipa);
    c.ping().await.unwrap();
    ipa.fail_next(1, Fault::LoseAnswer);
    let out = c
        .enroll(&two_compact_services("vm7.example.test", "otp-vm7"))
        .await
        .unwrap();
    assert_eq!(
        ipa.round_trips_for("batch"),
        2,
        "the batch ran, its answer was lost, the client sent it again"
    );
    assert!(matches!(out.host, HostOutcome::Exists), "{:?}", out.host);
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    ipa.ipa_join("vm7.example.test", "otp-vm7")
        .expect("the OTP of the first run is the host's");
}

#[tokio::test]
async fn enrollment_outcome_never_shows_the_otp() {
    let ipa = ipa_support::start().await;
    let c = ipa_support::client(&ipa);
    let batch = two_compact_services("vm8.example.test", "d41d8cd98f00b204e9800998ecf8427e");
    let out = c.enroll(&batch).await.unwrap();
    let shown = format!("{batch:?} {out:?}");
    assert!(
        !shown.contains("d41d8cd98f00b204e9800998ecf8427e"),
        "{shown}"
    );
}

// ---- transport: retries, outages, timeout, concurrency ----

#[tokio::test]
async fn transient_failures_are_retried_within_connect_retries() {
    let ipa = ipa_support::start().await;
    let c = ipa_support::client(&ipa); // connect_retries = 2
    c.ping().await.unwrap();
    ipa.fail_next(2, Fault::Http503);
    c.ping().await.expect("third attempt succeeds");
    assert_eq!(ipa.injected_failures(), 2);

    ipa.fail_next(2, Fault::Drop);
    c.ping().await.expect("dropped connections are retried too");

    ipa.fail_next(3, Fault::Http503);
    let e = c.ping().await.unwrap_err();
    assert!(
        matches!(&e, IpaError::Unreachable { attempts: 3, .. }),
        "{e:?}"
    );
    assert!(e.is_unavailable());
}

#[tokio::test]
async fn server_down_then_up() {
    use novajoin::health::{HealthProbe, HealthState};
    let ipa = ipa_support::start().await;
    let c = ipa_support::client(&ipa);
    let probe = c.health();
    assert_eq!(probe.name(), "ipa");
    c.ping().await.unwrap();
    assert_eq!(probe.check().await, HealthState::Ok);
    ipa.go_down().await;
    let e = c.ping().await.unwrap_err();
    assert!(matches!(&e, IpaError::Unreachable { .. }), "{e:?}");
    assert!(
        matches!(probe.check().await, HealthState::Failed(m) if m.contains("cannot reach IPA"))
    );
    ipa.go_up().await.unwrap();
    c.ping().await.expect("works again once IPA is back");
    assert_eq!(probe.check().await, HealthState::Ok);
    // An error IPA reports means IPA is working.
    assert!(c
        .host_show("absent.example.test")
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(probe.check().await, HealthState::Ok);
}

#[tokio::test]
async fn the_call_timeout_bounds_a_slow_server() {
    let ipa = ipa_support::start().await;
    let mut cfg = ipa_support::client_config(&ipa);
    cfg.timeout = Duration::from_millis(300);
    let c = IpaClient::new(cfg).unwrap();
    c.ping().await.unwrap();
    ipa.set_latency(Duration::from_secs(3));
    let e = c.ping().await.unwrap_err();
    assert!(
        matches!(e, IpaError::Timeout(d) if d == Duration::from_millis(300)),
        "{e:?}"
    );
}

#[tokio::test]
async fn in_flight_calls_are_capped() {
    let ipa = ipa_support::start().await;
    let mut cfg = ipa_support::client_config(&ipa);
    cfg.max_concurrent_calls = 2;
    let c = IpaClient::new(cfg).unwrap();
    c.ping().await.unwrap();
    ipa.set_latency(Duration::from_millis(100));
    ipa.reset_counters();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.ping().await })
        })
        .collect();
    for t in calls {
        t.await.unwrap().unwrap();
    }
    assert_eq!(ipa.round_trips_for("ping"), 8);
    assert_eq!(
        ipa.max_in_flight(),
        2,
        "never more than max_concurrent_calls at IPA"
    );
}

// ---- what the double rejects, as real IPA does ----

#[tokio::test]
async fn unknown_option_is_rejected() {
    let ipa = ipa_support::start().await;
    let c = ipa_support::client(&ipa);
    let e = c
        .call(IpaCommand::host_find_fqdn("x.example.test").with_option("os", Value::from("fedora")))
        .await
        .unwrap_err();
    match e {
        IpaError::UnknownOption(r) => {
            assert_eq!(
                (r.code, r.name.as_str(), r.message.as_str()),
                (3005, "OptionError", "Unknown option: os")
            );
            assert_eq!(r.data["option"], "os");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn wrong_api_version_is_rejected() {
    let ipa = ipa_support::start().await;
    let mut cfg = ipa_support::client_config(&ipa);
    cfg.api_version = "3.0".into();
    let e = IpaClient::new(cfg).unwrap().ping().await.unwrap_err();
    assert!(
        matches!(&e, IpaError::Version(r) if r.code == 901 && r.data["cver"] == "3.0"),
        "{e:?}"
    );

    // An IPA <= 4.3 server refuses a newer minor version; the default 2.146 works there.
    let old = ipa_support::start_with(DoubleOptions {
        api_version: "2.164".into(),
        strict_minor_version: true,
        ..Default::default()
    })
    .await;
    let mut cfg = ipa_support::client_config(&old);
    cfg.api_version = "2.254".into();
    let e = IpaClient::new(cfg).unwrap().ping().await.unwrap_err();
    assert!(matches!(e, IpaError::Version(_)), "{e:?}");
    ipa_support::client(&old)
        .ping()
        .await
        .expect("2.146 is accepted by old servers");
}

#[tokio::test]
async fn missing_or_foreign_referer_is_refused() {
    let ipa = ipa_support::start().await;
    let cookie = ipa_support::raw_login(&ipa).await;
    let body = r#"{"method":"ping","params":[[],{"version":"2.146"}],"id":0}"#;
    let (status, text) = ipa_support::raw_rpc(&ipa, &cookie, None, body).await;
    assert_eq!(
        status, 400,
        "check_referer refuses a missing Referer: {text}"
    );
    let (status, _) =
        ipa_support::raw_rpc(&ipa, &cookie, Some("https://evil.example.test/ipa"), body).await;
    assert_eq!(status, 400);
    let (status, text) = ipa_support::raw_rpc(&ipa, &cookie, Some(&ipa.referer()), body).await;
    assert_eq!(status, 200, "{text}");

    // The client names the server it was configured with; a wrong FQDN is
    // refused at login, and not retried.
    let mut cfg = ipa_support::client_config(&ipa);
    cfg.server_fqdn = Some("127.0.0.1".into());
    let e = IpaClient::new(cfg).unwrap().ping().await.unwrap_err();
    assert!(matches!(e, IpaError::Http { status: 400, .. }), "{e:?}");
}

#[tokio::test]
async fn missing_version_gets_ipas_warning_and_bad_envelopes_json_errors() {
    let ipa = ipa_support::start().await;
    let cookie = ipa_support::raw_login(&ipa).await;
    let r = Some(ipa.referer());
    let (_, text) = ipa_support::raw_rpc(
        &ipa,
        &cookie,
        r.as_deref(),
        r#"{"method":"ping","params":[[],{}],"id":7}"#,
    )
    .await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["id"], 7);
    assert_eq!(v["result"]["messages"][0]["name"], "VersionMissing");
    assert_eq!(v["result"]["messages"][0]["code"], 13001);

    let (_, text) = ipa_support::raw_rpc(
        &ipa,
        &cookie,
        r.as_deref(),
        r#"{"method":"ping","params":[[]],"id":0}"#,
    )
    .await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (v["error"]["code"].as_i64(), v["error"]["name"].as_str()),
        (Some(909), Some("JSONError"))
    );

    let (_, text) = ipa_support::raw_rpc(
        &ipa,
        &cookie,
        r.as_deref(),
        r#"{"method":"host_frob","params":[[],{}],"id":0}"#,
    )
    .await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], 905);

    // A batch whose own version is bad fails as a whole.
    let (_, text) = ipa_support::raw_rpc(&ipa, &cookie, r.as_deref(),
        r#"{"method":"batch","params":[[{"method":"ping","params":[[],{}]}],{"version":"3.0"}],"id":0}"#).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["name"], "VersionError");
}

#[tokio::test]
async fn no_cookie_gets_apaches_negotiate_challenge() {
    let ipa = ipa_support::start().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/ipa/session/json", ipa.url()))
        .header("Referer", ipa.referer())
        .header("Content-Type", "application/json")
        .body(r#"{"method":"ping","params":[[],{}],"id":0}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Negotiate");
    assert_eq!(ipa.round_trips(), 0);
}

// ---- TLS with the configured CA bundle ----

#[tokio::test]
async fn tls_is_verified_against_the_configured_ca_only() {
    let ipa = ipa_support::start_with(DoubleOptions {
        tls: true,
        ..Default::default()
    })
    .await;
    let other = ipa_support::start_with(DoubleOptions {
        tls: true,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("ca.crt");
    std::fs::write(&good, ipa.ca_pem().unwrap()).unwrap();
    let wrong = dir.path().join("other-ca.crt");
    std::fs::write(&wrong, other.ca_pem().unwrap()).unwrap();

    let mut cfg = ipa_support::client_config(&ipa);
    assert!(cfg.url.as_str().starts_with("https://"));
    cfg.ca_file = Some(good);
    IpaClient::new(cfg)
        .unwrap()
        .ping()
        .await
        .expect("trusted through [ipa] ca_file");

    let mut cfg = ipa_support::client_config(&ipa);
    cfg.ca_file = Some(wrong);
    let e = IpaClient::new(cfg).unwrap().ping().await.unwrap_err();
    assert!(
        matches!(&e, IpaError::Unreachable { last, .. } if last.to_lowercase().contains("certificate")),
        "{e:?}"
    );
    assert_eq!(
        ipa.logins(),
        1,
        "only the client that trusts the right CA got in"
    );

    let mut cfg = ipa_support::client_config(&ipa);
    cfg.ca_file = Some(dir.path().join("absent.crt"));
    let e = IpaClient::new(cfg).unwrap_err();
    assert!(e.to_string().contains("[ipa] ca_file"), "{e}");
}

// ---- the Kerberos hook for a fronting Apache ----

#[tokio::test]
async fn login_kerberos_trusts_only_the_configured_proxy_header() {
    let ipa = ipa_support::start_with(DoubleOptions {
        trusted_user_header: Some("X-Remote-User".into()),
        ..Default::default()
    })
    .await;
    let http = reqwest::Client::new();
    let url = format!("{}/ipa/session/login_kerberos", ipa.url());
    let resp = http
        .post(&url)
        .header("Referer", ipa.referer())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Negotiate");

    let resp = http
        .post(&url)
        .header("Referer", ipa.referer())
        .header("X-Remote-User", "nova/undercloud.example.test@EXAMPLE.TEST")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("ipa_session=")
        .unwrap()
        .to_string();
    let (status, text) = ipa_support::raw_rpc(
        &ipa,
        &cookie,
        Some(&ipa.referer()),
        r#"{"method":"ping","params":[[],{"version":"2.146"}],"id":0}"#,
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["principal"], "nova/undercloud.example.test@EXAMPLE.TEST");

    let plain = ipa_support::start().await;
    let resp = http
        .post(format!("{}/ipa/session/login_kerberos", plain.url()))
        .header("Referer", plain.referer())
        .header("X-Remote-User", "admin@EXAMPLE.TEST")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        401,
        "without the option the header means nothing"
    );
}

// ---- setup commands (novajoin ipa-setup) ----

#[tokio::test]
async fn setup_commands_build_the_role_and_report_unknown_permissions() {
    let ipa = ipa_support::start().await;
    let c = ipa_support::client(&ipa);
    let cmd = |m: &str, arg: &str, opts: Value| {
        IpaCommand::new(
            m,
            vec![Value::from(arg)],
            opts.as_object().cloned().unwrap_or_default(),
        )
    };
    c.call(cmd(
        "permission_add",
        "Modify host password",
        serde_json::json!({"ipapermright": ["write"], "type": "host", "attrs": ["userpassword"]}),
    ))
    .await
    .unwrap();
    let e = c
        .call(cmd(
            "permission_add",
            "Modify host password",
            serde_json::json!({}),
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, IpaError::DuplicateEntry(_)));
    c.call(cmd(
        "privilege_add",
        "Nova Host Management",
        serde_json::json!({"description": "Nova Host Management"}),
    ))
    .await
    .unwrap();
    let out = c.call(cmd("privilege_add_permission", "Nova Host Management",
        serde_json::json!({"permission": ["System: add hosts", "modify host password", "modify hosts"]}))).await.unwrap();
    let m = out.member_result();
    assert_eq!(m.completed, 2);
    assert_eq!(
        m.failed,
        [("modify hosts".to_string(), "no such entry".to_string())]
    );
    c.call(cmd(
        "role_add",
        "Nova Host Manager",
        serde_json::json!({"description": "Nova Host Manager"}),
    ))
    .await
    .unwrap();
    c.call(cmd(
        "role_add_privilege",
        "Nova Host Manager",
        serde_json::json!({"privilege": ["Nova Host Management"]}),
    ))
    .await
    .unwrap();
    ipa.seed_host("undercloud.example.test");
    c.service_add("nova/undercloud.example.test").await.unwrap();
    let out = c
        .call(cmd(
            "role_add_member",
            "Nova Host Manager",
            serde_json::json!({"service": ["nova/undercloud.example.test"]}),
        ))
        .await
        .unwrap();
    assert_eq!(out.member_result().completed, 1);
    let role = ipa.role("Nova Host Manager").unwrap();
    assert_eq!(role.privileges, ["Nova Host Management"]);
    assert_eq!(role.services, ["nova/undercloud.example.test@EXAMPLE.TEST"]);
    assert_eq!(
        ipa.privilege("nova host management").unwrap().permissions,
        ["System: Add Hosts", "Modify host password"]
    );
}

// ---- what the notification listener does on delete ----

#[tokio::test]
async fn delete_flow_removes_host_services_and_dns() {
    let ipa = ipa_support::start().await;
    let c = ipa_support::client(&ipa);
    c.enroll(&two_compact_services("vm9.example.test", "otp-vm9"))
        .await
        .unwrap();
    c.dnsrecord_add_a("example.test.", "vm9", "192.0.2.9")
        .await
        .unwrap();

    // Floating IP disassociate: find the name by IP, remove that value.
    let found = c
        .dnsrecord_find_a("example.test.", "192.0.2.9")
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["vm9"]
    );
    c.dnsrecord_del_a("example.test.", &found[0].name, "192.0.2.9")
        .await
        .unwrap();
    assert!(c
        .dnsrecord_find_a("example.test.", "192.0.2.9")
        .await
        .unwrap()
        .is_empty());
    assert!(
        !ipa.dns_records("example.test").unwrap().contains_key("vm9"),
        "last value removes the name"
    );

    // A managed service is kept while another host manages it.
    let p = "HTTP/vm9.internalapi.example.test";
    let s = c.service_show(p).await.unwrap();
    assert!(s
        .managedby_host
        .iter()
        .any(|h| h != "vm9.internalapi.example.test"));

    // Instance delete: the host goes, IPA drops it from managedby; the
    // sub-hosts and their services go in one batch with their DNS names.
    c.host_del("vm9.example.test", false).await.unwrap();
    assert_eq!(
        c.service_show(p).await.unwrap().managedby_host,
        ["vm9.internalapi.example.test"]
    );
    let e = c
        .dnsrecord_del_all("example.test.", "vm9")
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    let results = c
        .batch(&[
            IpaCommand::host_del("vm9.internalapi.example.test", false),
            IpaCommand::dnsrecord_del_all("example.test.", "vm9.internalapi"),
            IpaCommand::host_del("vm9.storage.example.test", false),
            IpaCommand::dnsrecord_del_all("example.test.", "vm9.storage"),
        ])
        .await
        .unwrap();
    assert!(results[0].is_ok() && results[2].is_ok());
    assert!(matches!(&results[1], Err(e) if e.is_not_found()));
    assert!(ipa.services().is_empty(), "{:?}", ipa.services());
    assert!(c
        .service_find_managed_by("vm9.internalapi.example.test")
        .await
        .unwrap()
        .is_empty());
    assert!(ipa.host("vm9.storage.example.test").is_none());
}

#[tokio::test]
async fn kerberos_flavour_json_runs_calls_for_the_proxy_principal() {
    let ipa = ipa_support::start_with(DoubleOptions {
        trusted_user_header: Some("X-Remote-User".into()),
        ..Default::default()
    })
    .await;
    let http = reqwest::Client::new();
    let body = r#"{"method":"host_add","params":[["k1.example.test"],{"force":true,"version":"2.146"}],"id":0}"#;
    let resp = http
        .post(format!("{}/ipa/json", ipa.url()))
        .header("Referer", ipa.referer())
        .header("Content-Type", "application/json")
        .header("X-Remote-User", "nova/undercloud.example.test@EXAMPLE.TEST")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().contains_key("set-cookie"),
        "mod_auth_gssapi sessions hand out a cookie"
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"], Value::Null);
    let h = ipa.host("k1.example.test").unwrap();
    assert_eq!(
        h.krbprincipalname.as_deref(),
        Some("host/k1.example.test@EXAMPLE.TEST"),
        "no OTP: principal now"
    );

    // /ipa/json checks the Referer inside IPA: HTTP 200 with RefererError.
    let resp = http
        .post(format!("{}/ipa/json", ipa.url()))
        .header("Content-Type", "application/json")
        .header("X-Remote-User", "nova/undercloud.example.test@EXAMPLE.TEST")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        (v["error"]["code"].as_i64(), v["error"]["message"].as_str()),
        (Some(911), Some("Missing or invalid HTTP Referer, missing"))
    );
}
