//! Generated and sample files that are checked in (cloud-config,
//! `config-sample`, docs/CONFIGURATION.md, the nova.conf snippet) compared
//! with what the code produces, and the sample files an operator starts
//! from. `NOVAJOIN_UPDATE_PACKAGING=1 cargo test --test generated_files`
//! rewrites the generated ones.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use support::packaging::{assert_generated, repo, shipped};

#[test]
fn cloud_config_json_is_current() {
    assert_generated(
        "packaging/cloud-config-novajoin.json",
        &novajoin::cli::install::cloud_config_json(),
        "it embeds packaging/cloud-init/novajoin-enroll.sh",
    );
}

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
    for group in novajoin::option_catalog::CATALOG.groups() {
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
        notification_format: NotificationFormat::Both,
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
        "notification_format = both",
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
    let warnings = cfg.validate(&novajoin::option_catalog::CATALOG).unwrap();
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
