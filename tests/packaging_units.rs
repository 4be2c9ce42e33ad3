//! The shipped systemd units (`systemd-analyze verify`, hardening), the
//! sysusers file and the logrotate configuration.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::packaging::{adjust, repo, shipped};

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
