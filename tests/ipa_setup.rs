//! `novajoin ipa-setup` against the IPA double (password login as admin),
//! with a real MIT KDC for the keytab part.
//!
//! `ipa-getkeytab` needs IPA's LDAP server, which the double is not, so the
//! tests hand ipa-setup a stand-in through `--getkeytab`: a shell script
//! that checks it was given the administrator's ticket (as ipa-getkeytab
//! needs) and writes new keys for the principal with `kadmin.local` on the
//! test KDC, rotating them as ipa-getkeytab does. Whether the keytab works
//! is then checked against the real KDC.

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use support::ipa::{IpaDouble, ADMIN, ADMIN_PASSWORD};
use support::kdc::{Kdc, KdcOptions};

const HOST: &str = "undercloud.example.test";
const SERVICE: &str = "nova/undercloud.example.test";

/// The permissions ipa-setup documents: name, type, attribute.
const PERMISSIONS: &[(&str, &str, &str)] = &[
    ("Modify host password", "host", "userpassword"),
    ("Write host certificate", "host", "usercertificate"),
    ("Modify host userclass", "host", "userclass"),
    ("Modify service managedBy attribute", "service", "managedby"),
];
/// Names in the documented privilege list that current IPA (and the
/// double) does not have.
const OLD_PERMISSION_NAMES: &[&str] = &[
    "modify hosts",
    "System: revoke certificate",
    "System: write host certificate",
    "System: retrieve certificates from the ca",
];

struct SetupEnv {
    kdc: Kdc,
    ipa: IpaDouble,
    dir: tempfile::TempDir,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn setup_env() -> SetupEnv {
    let kdc = tokio::task::spawn_blocking(|| {
        let kdc = Kdc::start(KdcOptions::default());
        kdc.add_principal_with_password(ADMIN, ADMIN_PASSWORD);
        // In IPA, service_add creates the principal in the KDC; the double
        // has no KDC, so the realm gets it here.
        kdc.add_principal(SERVICE, None);
        kdc
    })
    .await
    .unwrap();
    let ipa = support::ipa::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("admin-password"),
        format!("{ADMIN_PASSWORD}\n"),
    )
    .unwrap();
    let krb_env: String = kdc
        .client_env()
        .iter()
        .chain(std::iter::once(&(
            "KRB5_KDC_PROFILE".to_string(),
            kdc.dir().join("kdc.conf").display().to_string(),
        )))
        .map(|(k, v)| format!("{k}={v} "))
        .collect();
    let script = format!(
        r#"#!/bin/sh
# Stand-in for ipa-getkeytab (see tests/ipa_setup.rs).
set -eu
server=; principal=; keytab=
while getopts s:p:k: opt; do
  case "$opt" in s) server=$OPTARG;; p) principal=$OPTARG;; k) keytab=$OPTARG;; *) exit 2;; esac
done
klist -c "${{KRB5CCNAME:-none}}" 2>/dev/null | grep -q "Default principal: admin@{realm}" || {{
  echo "ipa-getkeytab: no administrator ticket in KRB5CCNAME" >&2; exit 1; }}
echo "$server $principal $keytab" >> {calls}
{krb_env}kadmin.local -r {realm} -q "ktadd -k $keytab $principal" >/dev/null
test -s "$keytab"
"#,
        realm = kdc.realm,
        calls = dir.path().join("getkeytab-calls").display(),
    );
    let script_path = dir.path().join("ipa-getkeytab");
    std::fs::write(&script_path, script).unwrap();
    support::kdc::set_mode(&script_path, 0o755);
    SetupEnv { kdc, ipa, dir }
}

fn current_user() -> String {
    // SAFETY: getpwuid on our own uid; the name is copied at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

impl SetupEnv {
    fn keytab(&self) -> PathBuf {
        self.dir.path().join("nova.keytab")
    }

    fn getkeytab_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("getkeytab-calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Runs `novajoin ipa-setup` with the common arguments plus `extra`.
    async fn run(&self, extra: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_novajoin"));
        cmd.arg("ipa-setup")
            .args(["--url", &self.ipa.json_url()])
            .args(["--server", self.ipa.fqdn()])
            .args(["--realm", self.ipa.realm()])
            .args(["--hostname", HOST])
            .args(["--default-conf", "/nonexistent/default.conf"])
            .arg("--password-file")
            .arg(self.dir.path().join("admin-password"))
            .arg("--keytab")
            .arg(self.keytab())
            .args(["--keytab-owner", &current_user()])
            .arg("--getkeytab")
            .arg(self.dir.path().join("ipa-getkeytab"))
            .args(extra)
            .env_remove("IPA_ADMIN_PASSWORD")
            .envs(self.kdc.client_env())
            .stdin(Stdio::null());
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Everything ipa-setup may touch, for before/after comparisons.
    fn snapshot(&self) -> String {
        let perms: Vec<_> = PERMISSIONS
            .iter()
            .map(|(n, _, _)| self.ipa.permission(n))
            .collect();
        format!(
            "{perms:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            self.ipa.privilege("Nova Host Management"),
            self.ipa.role("Nova Host Manager"),
            self.ipa.services(),
            self.ipa.hosts()
        )
    }
}

fn assert_keytab_works(e: &SetupEnv) {
    let kt = e.keytab();
    let meta = std::fs::metadata(&kt).expect("keytab written");
    assert_eq!(meta.mode() & 0o777, 0o600, "keytab mode");
    assert_eq!(meta.uid(), unsafe { libc::getuid() });
    // kinit with it against the real KDC.
    let life = e.kdc.tgt_lifetime(SERVICE, &kt);
    assert!(life.as_secs() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_exactly_the_documented_objects_and_a_second_run_changes_nothing() {
    let e = setup_env().await;
    e.ipa.seed_host(HOST); // the undercloud is already an IPA client
    let hosts_before = e.ipa.hosts();
    assert!(e.ipa.services().is_empty());

    let r = e.run(&[]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    // The service and its role.
    let principal = format!("{SERVICE}@{}", e.ipa.realm());
    let services: Vec<String> = e.ipa.services().into_iter().map(|s| s.principal).collect();
    assert_eq!(services, vec![principal.clone()], "exactly one new service");
    assert_eq!(
        e.ipa.hosts(),
        hosts_before,
        "no host added without --precreate"
    );

    // Four permissions, as documented.
    for (name, kind, attr) in PERMISSIONS {
        let p = e
            .ipa
            .permission(name)
            .unwrap_or_else(|| panic!("permission {name}"));
        assert_eq!(p.rights, vec!["write".to_string()], "{name}");
        assert_eq!(p.object_type.as_deref(), Some(*kind), "{name}");
        assert_eq!(p.attrs, vec![attr.to_string()], "{name}");
    }
    assert_eq!(e.ipa.commands("permission_add"), 4);

    // The privilege holds every listed permission this IPA has.
    let privilege = e.ipa.privilege("Nova Host Management").expect("privilege");
    assert_eq!(
        privilege.description.as_deref(),
        Some("Nova Host Management")
    );
    let held: BTreeSet<String> = privilege
        .permissions
        .iter()
        .map(|p| p.to_lowercase())
        .collect();
    assert_eq!(held.len(), 20, "{held:?}");
    for (name, _, _) in PERMISSIONS {
        assert!(held.contains(&name.to_lowercase()), "{name} in {held:?}");
    }
    for name in [
        "system: add hosts",
        "system: modify hosts",
        "system: manage host keytab",
        "system: add dns entries",
        "system: remove dns entries",
        "system: manage host certificates",
    ] {
        assert!(held.contains(name), "{name} in {held:?}");
    }
    for old in OLD_PERMISSION_NAMES {
        assert!(!held.contains(&old.to_lowercase()));
        assert!(
            r.stderr.contains(old),
            "missing name {old:?} is reported: {}",
            r.stderr
        );
    }

    // The role: the privilege and the service as its only member.
    let role = e.ipa.role("Nova Host Manager").expect("role");
    assert_eq!(role.description.as_deref(), Some("Nova Host Manager"));
    assert_eq!(role.privileges, vec!["Nova Host Management".to_string()]);
    assert_eq!(role.services, vec![principal.clone()]);
    assert!(role.users.is_empty() && role.hosts.is_empty());

    // Only the documented commands changed anything.
    let methods: BTreeSet<String> = e.ipa.round_trips_by_method().into_keys().collect();
    let allowed: BTreeSet<String> = [
        "ping",
        "service_add",
        "permission_add",
        "privilege_add",
        "privilege_add_permission",
        "role_add",
        "role_add_privilege",
        "role_add_member",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert!(methods.is_subset(&allowed), "{methods:?}");

    // The keytab, fetched once with the administrator's ticket.
    assert_eq!(
        e.getkeytab_calls(),
        vec![format!(
            "{} {principal} {}",
            e.ipa.fqdn(),
            e.keytab().display()
        )]
    );
    assert_keytab_works(&e);
    assert!(
        r.stdout.contains("done: 11 change(s) made."),
        "{}",
        r.stdout
    );

    // Second run: everything is in place.
    let before = e.snapshot();
    let r2 = e.run(&[]).await;
    assert_eq!(r2.code, 0, "{}\n{}", r2.stdout, r2.stderr);
    assert!(
        r2.stdout
            .contains("IPA already has everything novajoin needs: nothing changed."),
        "{}",
        r2.stdout
    );
    assert!(!r2.stdout.contains("created") && !r2.stdout.contains("added"));
    assert_eq!(e.snapshot(), before, "a second run changes nothing in IPA");
    assert_eq!(
        e.getkeytab_calls().len(),
        1,
        "a working keytab is not fetched again (that would rotate its keys)"
    );
    assert_keytab_works(&e);

    // Someone rotated the keys elsewhere: the stale keytab is replaced.
    e.kdc.rotate_keys(SERVICE);
    let r3 = e.run(&[]).await;
    assert_eq!(r3.code, 0, "{}\n{}", r3.stdout, r3.stderr);
    assert!(
        r3.stdout.contains("done: 1 change(s) made."),
        "{}",
        r3.stdout
    );
    assert!(r3.stderr.contains("does not work"), "{}", r3.stderr);
    assert_eq!(e.getkeytab_calls().len(), 2);
    assert_keytab_works(&e);
    assert_eq!(e.snapshot(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_calls_and_contacts_nobody() {
    let e = setup_env().await;
    let r = e.run(&["--dry-run"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(e.ipa.http_requests(), 0, "IPA is not contacted");
    assert!(e.getkeytab_calls().is_empty() && !e.keytab().exists());
    let lines: Vec<&str> = r.stdout.lines().skip(1).map(str::trim).collect();
    assert_eq!(lines.len(), 11, "{}", r.stdout);
    assert!(lines[0].starts_with(&format!("service_add [\"{SERVICE}\"] {{\"force\":true}}")));
    assert_eq!(
        lines[1],
        "permission_add [\"Modify host password\"] {\"ipapermright\":[\"write\"],\"type\":\"host\",\"attrs\":[\"userpassword\"]}"
    );
    assert!(lines[6].starts_with("privilege_add_permission [\"Nova Host Management\"]"));
    assert!(lines[9].starts_with(&format!(
        "role_add_member [\"Nova Host Manager\"] {{\"service\":[\"{SERVICE}\"]}}"
    )));
    assert!(
        lines[10].contains(&format!(
            "ipa-getkeytab -s {} -p {SERVICE}@{} -k {}",
            e.ipa.fqdn(),
            e.ipa.realm(),
            e.keytab().display()
        )),
        "{}",
        lines[10]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precreate_makes_the_host_prints_its_otp_and_is_idempotent() {
    let e = setup_env().await;
    assert!(e.ipa.host(HOST).is_none());
    let r = e.run(&["--precreate"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let host = e.ipa.host(HOST).expect("host pre-created");
    assert_eq!(host.description.as_deref(), Some("Undercloud host"));
    assert!(host.has_password && !host.enrolled);
    let otp = host.otp.clone().expect("OTP set");
    assert_eq!(otp.len(), 32);
    assert!(
        r.stdout
            .contains(&format!("one-time password for {HOST}: {otp}")),
        "{}",
        r.stdout
    );
    assert!(e.ipa.service(SERVICE).is_some());
    assert!(e.ipa.role("Nova Host Manager").is_some());
    assert!(
        e.getkeytab_calls().is_empty() && !e.keytab().exists(),
        "no keytab for a host that is not enrolled yet"
    );

    let before = e.snapshot();
    let otp_file = e.dir.path().join("otp");
    let r2 = e
        .run(&["--precreate", "--otp-file", otp_file.to_str().unwrap()])
        .await;
    assert_eq!(r2.code, 0, "{}\n{}", r2.stdout, r2.stderr);
    assert!(r2.stdout.contains("nothing changed"), "{}", r2.stdout);
    assert!(r2
        .stdout
        .contains("already exists; it keeps its one-time password"));
    assert_eq!(e.ipa.host(HOST).unwrap().otp.as_deref(), Some(otp.as_str()));
    assert_eq!(e.snapshot(), before);
    assert!(!otp_file.exists(), "no new OTP, so none written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precreate_writes_the_otp_to_a_private_file() {
    let e = setup_env().await;
    let otp_file = e.dir.path().join("otp");
    let r = e
        .run(&["--precreate", "--otp-file", otp_file.to_str().unwrap()])
        .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let otp = e.ipa.host(HOST).unwrap().otp.unwrap();
    assert_eq!(std::fs::read_to_string(&otp_file).unwrap().trim(), otp);
    assert_eq!(std::fs::metadata(&otp_file).unwrap().mode() & 0o777, 0o600);
    assert!(!r.stdout.contains(&otp) && !r.stderr.contains(&otp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_admin_password_is_a_clear_error_and_changes_nothing() {
    let e = setup_env().await;
    std::fs::write(e.dir.path().join("admin-password"), "Wr0ngPassw0rd!\n").unwrap();
    let r = e.run(&[]).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("logging in to IPA")
            && r.stderr
                .contains("IPA rejected the login of \"admin\": invalid-password"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("Wr0ngPassw0rd") && !r.stdout.contains("Wr0ngPassw0rd"),
        "the password is not echoed"
    );
    assert!(e.ipa.services().is_empty());
    assert!(e.ipa.role("Nova Host Manager").is_none());
}

#[test]
fn a_missing_server_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_novajoin"))
        .args([
            "ipa-setup",
            "--default-conf",
            "/nonexistent/default.conf",
            "--hostname",
            HOST,
        ])
        .env_remove("IPA_ADMIN_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--server"), "{err}");
}

/// Off a terminal (the test's pipes), progress is plain lines on stderr,
/// one per step; stdout ends with the summary table, one row per step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_lines_and_a_summary_table() {
    let e = setup_env().await;
    e.ipa.seed_host(HOST);
    let r = e.run(&[]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("novajoin ipa-setup: [1/12] logging in to"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("[12/12] keytab of nova/"), "{}", r.stderr);
    assert!(
        !r.stderr.contains('\u{1b}'),
        "no terminal escapes off a TTY: {}",
        r.stderr
    );
    let table: Vec<&str> = r
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("+-"))
        .collect();
    assert!(
        table[1].starts_with("| Step ") && table[1].contains("| Result "),
        "{}",
        r.stdout
    );
    let rows: Vec<&str> = table
        .iter()
        .copied()
        .filter(|l| l.starts_with("| "))
        .skip(1)
        .collect();
    assert_eq!(rows.len(), 11, "{}", r.stdout);
    assert!(
        rows[0].contains("service nova/") && rows[0].contains("created"),
        "{}",
        r.stdout
    );
    assert!(
        rows[10].contains("keytab") && rows[10].contains("fetched"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.trim_end().ends_with("done: 11 change(s) made."),
        "{}",
        r.stdout
    );

    let r2 = e.run(&[]).await;
    assert!(
        r2.stdout.contains("already present") && r2.stdout.contains("already works, kept"),
        "{}",
        r2.stdout
    );
}
