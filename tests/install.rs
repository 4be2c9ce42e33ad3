//! `novajoin install` run for real against a temporary directory.

mod support;

use std::process::Command;

use support::packaging::shipped;

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
    assert!(cfg
        .validate(&novajoin::option_catalog::CATALOG)
        .unwrap()
        .is_empty());
    assert_eq!(
        cfg.string(&novajoin::keystone::options::SC_PASSWORD)
            .as_deref(),
        Some("S3rvice-Pa55")
    );
    assert_eq!(
        cfg.string(&novajoin::notify::options::TRANSPORT_URL)
            .as_deref(),
        Some("rabbit://nova:R4bbit@rabbit.example.test:5672/")
    );
    assert_eq!(
        cfg.string(&novajoin::join::options::DOMAIN).as_deref(),
        Some("example.test")
    );
    assert!(cfg
        .bool(&novajoin::pipeline::http_proxy_to_wsgi::ENABLE_PROXY_HEADERS_PARSING)
        .unwrap());
    // nova sends both formats; the listener reads the versioned ones.
    assert_eq!(
        cfg.string(&novajoin::notify::options::NOTIFICATION_FORMAT)
            .as_deref(),
        Some("versioned")
    );
    let nova = nova_part(&first);
    assert!(nova.contains("\nnotification_format = both\n"), "{nova}");
    assert!(
        nova.contains(
            "\nversioned_notifications_topics = versioned_notifications,novajoin_notifications\n"
        ),
        "{nova}"
    );
    // The legacy notifications stay on nova's default topic only, so one
    // event never reaches the listener twice and ceilometer keeps its own.
    assert!(
        !nova.contains("topics = notifications,novajoin_notifications"),
        "{nova}"
    );
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

    // Unversioned on request: the legacy topic carries novajoin's copy.
    let unversioned = install(&["--dry-run", "--notification-format", "unversioned"]);
    assert!(
        unversioned.contains("[DEFAULT] notification_format = unversioned"),
        "{unversioned}"
    );
    let nova = nova_part(&unversioned);
    assert!(
        nova.contains("\nnotification_format = unversioned\n"),
        "{nova}"
    );
    assert!(
        nova.contains("\ntopics = notifications,novajoin_notifications\n"),
        "{nova}"
    );
    assert!(!nova.contains("versioned_notifications_topics"), "{nova}");

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

/// The nova.conf part of the printed changes (before neutron's).
fn nova_part(report: &str) -> &str {
    let start = report
        .find("# nova.conf on every host")
        .expect("the nova.conf changes");
    let end = report
        .find("# neutron.conf")
        .expect("the neutron.conf changes");
    &report[start..end]
}
