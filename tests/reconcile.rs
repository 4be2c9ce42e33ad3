//! `novajoin reconcile` end to end: the real binary, the real keystone (its
//! catalog names nova's double), a nova double that pages (nova's
//! `max_limit` of 1000, `marker`, `changes-since` listing deleted servers)
//! and the IPA double. One test, because it makes the shared nova double
//! fail on purpose.

mod support;

use std::process::{Command, Stdio};

use novajoin::ownership::HostBinding;
use serde_json::Value;
use support::ipa::IpaDouble;
use support::keystone::{Keystone, Provider};
use support::nova_neutron::NovaNeutron;

const PROJECT: &str = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";

fn join_conf(ipa: &IpaDouble, keystone: &Keystone) -> String {
    format!(
        "{ipa}\n[service_credentials]\nauth_type = password\nauth_url = {auth}\nusername = nova\n\
         password = {pw}\nproject_name = service\nuser_domain_name = Default\n\
         project_domain_name = Default\n",
        ipa = support::ipa::join_conf(ipa),
        auth = keystone.auth_url(),
        pw = keystone.user("nova").password,
    )
}

/// Runs `novajoin reconcile [--apply] --format json`; (exit code, report).
fn reconcile(conf: &std::path::Path, apply: bool) -> (i32, Option<Value>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_novajoin"));
    cmd.arg("reconcile")
        .arg("--config-file")
        .arg(conf)
        .args(["--format", "json"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    if apply {
        cmd.arg("--apply");
    }
    let out = cmd.output().expect("run novajoin reconcile");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(&stdout).ok(),
        format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

fn bound(ipa: &IpaDouble, fqdn: &str, binding: &HostBinding, enrolled: bool) {
    ipa.seed_host_with(
        fqdn,
        Some(novajoin::ownership::HOST_DESCRIPTION),
        Some(&binding.to_attribute()),
        enrolled,
        None,
    );
}

fn binding(instance: &str, region: Option<&str>) -> HostBinding {
    HostBinding::for_instance(Some(instance), Some(PROJECT), region).unwrap()
}

fn verdicts(report: &Value) -> Vec<(String, String)> {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap().to_string(),
                h["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_repairs_lost_deletes_and_touches_nothing_else() {
    let keystone = tokio::task::spawn_blocking(|| Keystone::shared(Provider::Fernet))
        .await
        .unwrap();
    let nova = NovaNeutron::shared(keystone).await;
    let ipa = support::ipa::start().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("join.conf");
    std::fs::write(&conf, join_conf(&ipa, keystone)).unwrap();
    let zone = format!("{}.", ipa.domain());

    // A live instance created first, so that nova lists it last: on the
    // second page, behind 1,100 newer servers.
    let live = id();
    nova.add_server_with(&live, "keep", "keep", PROJECT);
    for i in 0..1100 {
        nova.add_server_with(&id(), &format!("s{i}"), &format!("s{i}"), PROJECT);
    }
    bound(&ipa, "keep.example.test", &binding(&live, None), true);
    // A delete that was lost: nova lists the server as DELETED.
    let deleted = id();
    nova.add_server_with(&deleted, "gone", "gone", PROJECT);
    assert!(nova.remove_server(&deleted));
    bound(&ipa, "gone.example.test", &binding(&deleted, None), true);
    bound(
        &ipa,
        "gone.ctlplane.example.test",
        &binding(&deleted, None).sub_host(),
        false,
    );
    ipa.add_a_record(&zone, "gone", "192.0.2.30");
    // An instance nova no longer knows at all (archived and purged).
    let purged = id();
    bound(&ipa, "purged.example.test", &binding(&purged, None), false);
    // What reconcile never removes: a host it did not create, a host
    // bound in another region, a host of the Python novajoin.
    ipa.seed_host_with("infra.example.test", Some("database"), None, true, None);
    bound(
        &ipa,
        "elsewhere.example.test",
        &binding(&id(), Some("RegionTwo")),
        true,
    );
    ipa.seed_host_with(
        "old.example.test",
        Some(novajoin::ownership::HOST_DESCRIPTION),
        None,
        true,
        None,
    );

    // A dry run reports and changes nothing.
    let before = ipa.hosts();
    let (code, report, text) = tokio::task::spawn_blocking({
        let conf = conf.clone();
        move || reconcile(&conf, false)
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{text}");
    let report = report.unwrap_or_else(|| panic!("not JSON: {text}"));
    assert_eq!(
        verdicts(&report),
        [
            ("elsewhere.example.test", "other_region"),
            ("gone.ctlplane.example.test", "orphan"),
            ("gone.example.test", "orphan"),
            ("keep.example.test", "live"),
            ("old.example.test", "legacy"),
            ("purged.example.test", "orphan"),
        ]
        .map(|(h, v)| (h.to_string(), v.to_string()))
    );
    assert_eq!(ipa.hosts(), before, "a dry run changes nothing");

    // nova fails in the middle of its listing: nothing is removed and the
    // command says so.
    nova.fail_after_pages(1);
    let (code, _, text) = tokio::task::spawn_blocking({
        let conf = conf.clone();
        move || reconcile(&conf, true)
    })
    .await
    .unwrap();
    nova.heal();
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("nova's server list is not complete"),
        "{text}"
    );
    assert_eq!(
        ipa.hosts(),
        before,
        "a partial answer from nova removes nothing"
    );

    // --apply removes the orphans as their delete notifications would.
    let (code, report, text) = tokio::task::spawn_blocking({
        let conf = conf.clone();
        move || reconcile(&conf, true)
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{text}");
    let removed: Vec<&str> = report.as_ref().unwrap()["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(removed.len(), 3, "{removed:?}");
    // Not a terminal: plain progress lines on stderr, one per orphan.
    assert!(
        text.contains("reconcile --apply: [2/2] removing the hosts of instance"),
        "{text}"
    );
    for gone in [
        "gone.example.test",
        "gone.ctlplane.example.test",
        "purged.example.test",
    ] {
        assert!(ipa.host(gone).is_none(), "{gone} removed");
    }
    assert!(!ipa.dns_records(&zone).unwrap().contains_key("gone"));
    for kept in [
        "keep.example.test",
        "infra.example.test",
        "elsewhere.example.test",
        "old.example.test",
    ] {
        assert!(ipa.host(kept).is_some(), "{kept} kept");
    }
}
