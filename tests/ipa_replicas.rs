//! IPA replicas: failover between two IPA doubles that share one directory
//! (as replicas share one replicated LDAP tree), the per-server circuit
//! breaker and sessions, and server discovery from DNS SRV records served
//! by a real DNS server (dnsmasq) on loopback.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use novajoin::config::ConfigFiles;
use novajoin::ipa::discovery::{discover, DiscoveryConfig};
use novajoin::ipa::{
    BreakerPolicy, BreakerState, IpaClient, IpaClientConfig, IpaDefaultConf, IpaError, ServerSource,
};
use serde_json::Value;
use support::dns::{Dnsmasq, Srv};
use support::ipa::{self as ipa_support, Fault};
use support::vendordata::{enroll, new_instance_id, nova_body, ServiceEnv};

fn hosts_of(servers: &[Arc<novajoin::ipa::servers::Server>]) -> Vec<String> {
    servers
        .iter()
        .map(|s| s.endpoints().server_fqdn.clone())
        .collect()
}

// ---- failover through the real `novajoin server` ----

/// A burst of enrollments; the first IPA server stops in the middle of it
/// (connections refused, calls in flight cut). Every enrollment is
/// answered 200, and the OTP each instance received is the one the
/// directory holds for its host and the one `ipa-join` accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_one_replica_mid_burst_loses_no_enrollment() {
    const N: usize = 90;
    let metrics_port = support::server::free_port();
    let env = Arc::new(
        ServiceEnv::builder()
            .ipa_replica()
            .sections(&format!("[metrics]\nlisten = 127.0.0.1:{metrics_port}\n"))
            .ipa_cap(4)
            .ipa_latency(Duration::from_millis(40))
            // One enrollment per call, so that the burst is still running
            // when the first server stops (batching would carry it in a
            // few calls); tests/storm.rs covers batching.
            .ipa_lines("batch_max = 1\nqueue_deadline = 0")
            .rust_log("warn")
            .start()
            .await,
    );
    let replica = env.ipa_replica.as_ref().expect("replica");
    env.ipa.reset_counters();
    replica.reset_counters();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..N {
        let (env, client) = (env.clone(), client.clone());
        let host = format!("rep{i}");
        let body = nova_body(&host, &new_instance_id(), enroll());
        tasks.push(tokio::spawn(async move {
            let answer = env
                .try_post(&client, &body)
                .await
                .unwrap_or_else(|e| (0, e.to_string()));
            (host, answer)
        }));
    }
    // Stop the first server once a part of the burst went through it.
    support::wait_until(
        "a quarter of the burst enrolled",
        Duration::from_secs(60),
        || env.ipa.round_trips() >= (N / 4) as u64,
    )
    .await;
    env.ipa.go_down().await;
    let before_stop = env.ipa.round_trips();

    let mut answers: HashMap<String, (u16, String)> = HashMap::new();
    for t in tasks {
        let (host, a) = t.await.unwrap();
        answers.insert(host, a);
    }
    for (host, (status, body)) in &answers {
        assert_eq!(*status, 200, "{host}: {body}");
        let v: Value = serde_json::from_str(body).unwrap();
        let otp = v["ipaotp"]
            .as_str()
            .unwrap_or_else(|| panic!("{host}: no OTP in {body}"));
        let fqdn = format!("{host}.{}", replica.domain());
        let held = replica.host(&fqdn).and_then(|h| h.otp);
        assert_eq!(
            held.as_deref(),
            Some(otp),
            "{host}: the OTP handed out is the directory's"
        );
        replica
            .ipa_join(&fqdn, otp)
            .unwrap_or_else(|e| panic!("{host}: ipa-join with the OTP handed out: {e}"));
    }
    // N instance hosts and the two servers' own hosts, nothing else.
    assert_eq!(replica.hosts().len(), N + 2);
    assert!(before_stop >= (N / 4) as u64);
    assert!(
        replica.round_trips() > 0 && replica.logins() == 1,
        "the replica took over with one login: {} round trips, {} logins",
        replica.round_trips(),
        replica.logins()
    );
    let logs = env.server.logs();
    assert!(
        logs.contains("IPA calls fail over to another server"),
        "the failover is logged"
    );
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        support::prometheus_sample(
            &text,
            &format!(
                "novajoin_ipa_failovers_total{{server=\"{}\"}}",
                replica.fqdn()
            )
        ),
        Some(1.0),
        "one move, to the replica:\n{text}"
    );
}

// ---- the client: failover, sessions, breaker ----

/// A 503 from the first server sends the call to the second, which
/// stays current (and keeps its session) after the first recovers; the
/// breaker opens after `failures` failures in a row.
#[tokio::test]
async fn a_5xx_fails_over_and_calls_stay_on_the_server_that_answered() {
    let ipa1 = ipa_support::start().await;
    let ipa2 = ipa_support::start_replica(&ipa1).await;
    let mut cfg = ipa_support::replicated_client_config(&ipa1, &[&ipa2]);
    cfg.connect_retries = 0;
    cfg.breaker = BreakerPolicy {
        failures: 1,
        open_for: Duration::from_secs(600),
    };
    let client = IpaClient::new(cfg).unwrap();
    client.ping().await.unwrap();
    assert_eq!((ipa1.logins(), ipa2.logins()), (1, 0));

    ipa1.fail_next(1, Fault::Http503);
    client.ping().await.expect("the replica answers");
    assert_eq!(ipa2.logins(), 1, "one login on the new server");
    let first = &client.servers().servers().await[0];
    assert!(matches!(
        first.breaker(client.servers().policy()),
        BreakerState::Open(_)
    ));
    // ipa1 works again, but calls stay with ipa2 and its session.
    let before = ipa1.http_requests();
    for _ in 0..3 {
        client.ping().await.unwrap();
    }
    assert_eq!(ipa1.http_requests(), before, "nothing goes back to ipa1");
    assert_eq!((ipa1.logins(), ipa2.logins()), (1, 1));
    assert_eq!(
        client.servers().current().unwrap().endpoints().server_fqdn,
        ipa2.fqdn()
    );
}

/// A connection refused by the current server goes to the next one within
/// the same call; when every server is down the error names the last
/// failure and the number of rounds.
#[tokio::test]
async fn a_refused_connection_fails_over_and_all_down_is_a_clear_error() {
    let ipa1 = ipa_support::start().await;
    let ipa2 = ipa_support::start_replica(&ipa1).await;
    let mut cfg = ipa_support::replicated_client_config(&ipa1, &[&ipa2]);
    cfg.connect_retries = 1;
    let client = IpaClient::new(cfg).unwrap();
    ipa1.go_down().await;
    let summary = client.ping().await.expect("ipa2 answers");
    assert!(summary.contains("IPA server version"), "{summary}");
    ipa2.go_down().await;
    let e = client.ping().await.unwrap_err();
    assert!(
        matches!(e, IpaError::Unreachable { attempts: 2, .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("ipa.example.test") || text.contains("ipa2.example.test"),
        "{text}"
    );
}

/// A 4xx is an answer: no failover (it would only repeat the refusal).
#[tokio::test]
async fn an_ipa_error_is_not_failed_over() {
    let ipa1 = ipa_support::start().await;
    let ipa2 = ipa_support::start_replica(&ipa1).await;
    let client = IpaClient::new(ipa_support::replicated_client_config(&ipa1, &[&ipa2])).unwrap();
    let e = client.host_show("absent.example.test").await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert_eq!(ipa2.http_requests(), 0, "the replica was not asked");
}

// ---- configuration ----

fn conf(text: &str) -> ConfigFiles {
    let mut c = ConfigFiles::default();
    c.add_text(std::path::Path::new("/etc/novajoin/join.conf"), text)
        .unwrap();
    c
}

const LOGIN: &str = "auth_method = password\nusername = admin\npassword = Secret123\n";

/// Several `[ipa] server`s (the single-server spelling keeps working) and
/// several `[DEFAULT] url`s pair by position.
#[test]
fn servers_and_urls_from_join_conf() {
    let c = conf(&format!(
        "[DEFAULT]\nurl = http://127.0.0.1:1/ipa/json, http://127.0.0.1:2/ipa/json\n\
         [ipa]\nserver = ipa1.example.test, ipa2.example.test, ipa3.example.test\n{LOGIN}"
    ));
    let cfg = IpaClientConfig::from_conf_with(&c, None).unwrap();
    let addrs = cfg.server_addrs();
    let shown: Vec<(String, Option<String>)> = addrs
        .iter()
        .map(|a| (a.url.to_string(), a.fqdn.clone()))
        .collect();
    assert_eq!(
        shown,
        [
            (
                "http://127.0.0.1:1/ipa/json".into(),
                Some("ipa1.example.test".into())
            ),
            (
                "http://127.0.0.1:2/ipa/json".into(),
                Some("ipa2.example.test".into())
            ),
            (
                "https://ipa3.example.test/ipa/json".into(),
                Some("ipa3.example.test".into())
            ),
        ]
    );
    assert!(
        cfg.discovery.is_none(),
        "servers are configured: no discovery"
    );
    let one = conf(&format!("[ipa]\nserver = ipa.example.test\n{LOGIN}"));
    let cfg = IpaClientConfig::from_conf_with(&one, None).unwrap();
    assert_eq!(cfg.url.as_str(), "https://ipa.example.test/ipa/json");
    assert!(cfg.replicas.is_empty());
    let bad = conf(&format!(
        "[DEFAULT]\nurl = ipa1, http://x/ipa/json\n[ipa]\n{LOGIN}"
    ));
    let e = IpaClientConfig::from_conf_with(&bad, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("join.conf:2") && e.contains("\"ipa1\""), "{e}");
}

/// default.conf without `server` (ipa-client-install without a fixed
/// server): its `xmlrpc_uri` first, then DNS discovery of its domain, as
/// ipa-client does; with `server`, no discovery unless asked for.
#[test]
fn default_conf_without_server_turns_discovery_on() {
    let dc = IpaDefaultConf::parse(
        std::path::Path::new("/etc/ipa/default.conf"),
        "[global]\nrealm = EXAMPLE.TEST\ndomain = example.test\n\
         xmlrpc_uri = https://ipa1.example.test/ipa/xml\n",
    )
    .unwrap();
    let c = conf(&format!(
        "[ipa]\n{LOGIN}discovery_nameservers = 127.0.0.1:5353\n"
    ));
    let cfg = IpaClientConfig::from_conf_with(&c, Some(&dc)).unwrap();
    assert_eq!(cfg.url.as_str(), "https://ipa1.example.test/ipa/json");
    assert_eq!(cfg.url_source, ServerSource::DefaultConf);
    let d = cfg.discovery.expect("discovery on");
    assert_eq!(d.domain, "example.test");
    assert_eq!(d.nameservers, ["127.0.0.1:5353".parse().unwrap()]);

    let fixed = IpaDefaultConf::parse(
        std::path::Path::new("/etc/ipa/default.conf"),
        "[global]\ndomain = example.test\nserver = ipa1.example.test\n",
    )
    .unwrap();
    let cfg =
        IpaClientConfig::from_conf_with(&conf(&format!("[ipa]\n{LOGIN}")), Some(&fixed)).unwrap();
    assert!(cfg.discovery.is_none());
    let on = conf(&format!("[ipa]\n{LOGIN}discover_servers = true\n"));
    assert!(IpaClientConfig::from_conf_with(&on, Some(&fixed))
        .unwrap()
        .discovery
        .is_some());
    let no_domain = conf(&format!(
        "[ipa]\n{LOGIN}server = ipa1.example.test\ndiscover_servers = true\n"
    ));
    let e = IpaClientConfig::from_conf_with(&no_domain, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[ipa] domain"), "{e}");
    let bad_ns = conf(&format!(
        "[ipa]\n{LOGIN}server = a.example.test\ndomain = example.test\ndiscover_servers = true\n\
         discovery_nameservers = dns.example.test\n"
    ));
    let e = IpaClientConfig::from_conf_with(&bad_ns, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("discovery_nameservers") && e.contains("dns.example.test"),
        "{e}"
    );
}

// ---- DNS SRV discovery against a real DNS server ----

fn dns_config(dns: &Dnsmasq, domain: &str) -> DiscoveryConfig {
    DiscoveryConfig {
        domain: domain.into(),
        nameservers: vec![dns.addr()],
        timeout: Duration::from_secs(2),
    }
}

/// `_ldap._tcp` records in priority order (weights only order within a
/// priority); `_kerberos._tcp` when the domain has no `_ldap._tcp`; a
/// domain with neither finds nothing; a DNS server that does not answer is
/// an error naming the record.
#[tokio::test]
async fn srv_discovery_orders_by_priority_and_falls_back_to_kerberos() {
    let dns = Dnsmasq::start(
        &["example.test", "krb.test", "none.test"],
        &[
            Srv::new("_ldap._tcp.example.test", "ipa2.example.test", 389, 10, 100),
            Srv::new("_ldap._tcp.example.test", "ipa1.example.test", 389, 0, 5),
            Srv::new("_ldap._tcp.example.test", "ipa3.example.test", 636, 20, 0),
            Srv::new(
                "_kerberos._tcp.example.test",
                "kdc-only.example.test",
                88,
                0,
                100,
            ),
            Srv::new("_kerberos._tcp.krb.test", "ipa1.krb.test", 88, 0, 100),
        ],
        &[("ipa1.example.test", "127.0.0.1")],
    );
    let found = discover(&dns_config(&dns, "example.test")).await.unwrap();
    assert_eq!(found.name.as_deref(), Some("_ldap._tcp.example.test"));
    let hosts: Vec<&str> = found.targets.iter().map(|t| t.host.as_str()).collect();
    assert_eq!(
        hosts,
        [
            "ipa1.example.test",
            "ipa2.example.test",
            "ipa3.example.test"
        ]
    );
    assert_eq!(found.targets[2].port, 636);

    let krb = discover(&dns_config(&dns, "krb.test")).await.unwrap();
    assert_eq!(krb.name.as_deref(), Some("_kerberos._tcp.krb.test"));
    assert_eq!(krb.targets[0].host, "ipa1.krb.test");

    let none = discover(&dns_config(&dns, "none.test")).await.unwrap();
    assert!(none.name.is_none() && none.targets.is_empty(), "{none:?}");

    let closed = DiscoveryConfig {
        nameservers: vec![format!("127.0.0.1:{}", support::server::free_port())
            .parse()
            .unwrap()],
        timeout: Duration::from_millis(300),
        ..dns_config(&dns, "example.test")
    };
    let e = discover(&closed).await.unwrap_err().to_string();
    assert!(e.contains("_ldap._tcp.example.test"), "{e}");
}

/// The client adds the discovered servers after the configured ones
/// (a configured server named again by DNS once), and fails over to them.
#[tokio::test]
async fn discovered_servers_follow_the_configured_ones() {
    let ipa1 = ipa_support::start().await;
    let dns = Dnsmasq::start(
        &["example.test"],
        &[
            Srv::new("_ldap._tcp.example.test", "ipa.example.test", 389, 0, 100),
            Srv::new("_ldap._tcp.example.test", "ipa9.example.test", 389, 10, 100),
        ],
        &[],
    );
    let c = conf(&format!(
        "[DEFAULT]\nurl = {}\n[ipa]\n{LOGIN}server = {}\ndomain = example.test\n\
         discover_servers = true\ndiscovery_nameservers = {}\ntimeout = 5\n",
        ipa1.json_url(),
        ipa1.fqdn(),
        dns.addr()
    ));
    let cfg = IpaClientConfig::from_conf_with(&c, None).unwrap();
    let client = IpaClient::new(cfg).unwrap();
    let servers = client.servers().servers().await;
    assert_eq!(
        hosts_of(&servers),
        ["ipa.example.test", "ipa9.example.test"]
    );
    assert_eq!(servers[1].addr().source, ServerSource::Dns);
    assert_eq!(
        servers[1].endpoints().session_json.as_str(),
        "https://ipa9.example.test/ipa/session/json"
    );
    client.ping().await.expect("the configured server answers");
    // With the configured server down, the call goes on to the discovered
    // one (which does not resolve here): the error names it.
    ipa1.go_down().await;
    let e = client.ping().await.unwrap_err().to_string();
    assert!(
        e.contains("ipa9.example.test") || e.contains("ipa.example.test"),
        "{e}"
    );
    let first = &client.servers().servers().await[0];
    assert!(first.last_problem().is_some());
}
