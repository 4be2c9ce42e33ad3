//! The RPM packaging (`packaging/rpm/novajoin.spec`) built with the real
//! rpmbuild around the binary under test, and the SELinux module
//! (`packaging/selinux/`) compiled with the real checkmodule and
//! semodule_package. The packages are read back with `rpm -qp`: the file
//! list with modes, owners and digests, the config files, the scriptlets and
//! the dependencies.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use support::packaging::{repo, shipped};

const SPEC: &str = "packaging/rpm/novajoin.spec";

/// Runs a command; its stdout, or a panic with everything it said.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/install-test-deps.sh installs it)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn cargo_version() -> String {
    let manifest: toml::Value = toml::from_str(&shipped("Cargo.toml")).unwrap();
    manifest["package"]["version"].as_str().unwrap().to_string()
}

fn spec_version() -> String {
    shipped(SPEC)
        .lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .expect("a Version: line")
        .trim()
        .to_string()
}

/// An rpmbuild top directory with Source0 made from the working tree (what
/// `make-sources.sh` makes with git archive, uncommitted changes included).
fn topdir(dir: &Path) -> PathBuf {
    let top = dir.join("rpmbuild");
    let sources = top.join("SOURCES");
    std::fs::create_dir_all(&sources).unwrap();
    let v = spec_version();
    run(Command::new("tar")
        .arg("-czf")
        .arg(sources.join(format!("novajoin-{v}.tar.gz")))
        .args([
            "--exclude=./target",
            "--exclude=./.git",
            "--exclude=./fuzz/target",
        ])
        .arg(format!("--transform=s,^\\.,novajoin-{v},"))
        .arg("-C")
        .arg(repo())
        .arg("."));
    top
}

fn rpmbuild(top: &Path) -> Command {
    let mut c = Command::new("rpmbuild");
    c.arg("--define")
        .arg(format!("_topdir {}", top.display()))
        // Stored, not compressed: the debug binary is large.
        .args(["--define", "_binary_payload w0.ufdio"]);
    c
}

/// One file of `rpm -qp --dump`.
#[derive(Debug)]
struct Entry {
    size: u64,
    digest: String,
    mode: u32,
    owner: String,
    group: String,
    config: bool,
    doc: bool,
    link: String,
}

fn dump(rpm: &Path) -> BTreeMap<String, Entry> {
    run(Command::new("rpm").args(["-qp", "--dump"]).arg(rpm))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 11, "{l}");
            (
                f[0].to_string(),
                Entry {
                    size: f[1].parse().unwrap(),
                    digest: f[3].to_string(),
                    mode: u32::from_str_radix(f[4], 8).unwrap(),
                    owner: f[5].into(),
                    group: f[6].into(),
                    config: f[7] == "1",
                    doc: f[8] == "1",
                    link: f[10].into(),
                },
            )
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every file in `packaging/`: where the RPM installs it, or why it does not.
const SHIPPED: &[(&str, &str)] = &[
    (
        "packaging/systemd/novajoin-server.service",
        "/usr/lib/systemd/system/novajoin-server.service",
    ),
    (
        "packaging/systemd/novajoin-notify.service",
        "/usr/lib/systemd/system/novajoin-notify.service",
    ),
    (
        "packaging/systemd/novajoin.sysusers.conf",
        "/usr/lib/sysusers.d/novajoin.conf",
    ),
    (
        "packaging/systemd/log-to-file.conf",
        "/usr/share/novajoin/systemd/log-to-file.conf",
    ),
    (
        "packaging/cloud-config-novajoin.json",
        "/etc/novajoin/cloud-config-novajoin.json",
    ),
    ("pipeline.toml", "/etc/novajoin/pipeline.toml"),
    ("packaging/logrotate/novajoin", "/etc/logrotate.d/novajoin"),
    (
        "packaging/glance/freeipa.json",
        "/usr/share/novajoin/freeipa.json",
    ),
    (
        "packaging/cloud-init/novajoin-enroll.sh",
        "/usr/share/novajoin/novajoin-enroll.sh",
    ),
    (
        "packaging/httpd/novajoin.conf",
        "/usr/share/novajoin/httpd/novajoin.conf",
    ),
    (
        "packaging/nova/nova.conf.snippet",
        "/usr/share/novajoin/nova.conf.snippet",
    ),
    (
        "policy/policy.yaml",
        "/usr/share/novajoin/policy.yaml.sample",
    ),
    (
        "packaging/prometheus/novajoin-alerts.yaml",
        "/usr/share/novajoin/prometheus/novajoin-alerts.yaml",
    ),
    (
        "packaging/grafana/novajoin.json",
        "/usr/share/novajoin/grafana/novajoin.json",
    ),
];
const NOT_INSTALLED: &[(&str, &str)] = &[
    ("packaging/rpm/", "the spec and its source script"),
    (
        "packaging/selinux/",
        "compiled into novajoin.pp of novajoin-selinux",
    ),
    (
        "packaging/prometheus/novajoin-alerts.test.yaml",
        "promtool's test of the rules",
    ),
    (
        "packaging/join.conf",
        "a documentation example (join.conf.example); /etc/novajoin/join.conf is the config sample",
    ),
];

fn files_under(dir: &Path, base: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, base, out);
        } else {
            out.push(p.strip_prefix(base).unwrap().display().to_string());
        }
    }
}

/// The man pages the binary under test generates.
fn man_pages() -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_novajoin"))
        .args(["manpages", "--out"])
        .arg(dir.path()));
    std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// The scriptlets of `rpm -qp --scripts`, by the name rpm prints.
fn scriptlets(rpm: &Path) -> BTreeMap<String, String> {
    let text = run(Command::new("rpm").args(["-qp", "--scripts"]).arg(rpm));
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        if let Some((name, _)) = line.split_once(" scriptlet (using /bin/sh):") {
            current = Some(name.to_string());
            out.insert(name.to_string(), String::new());
        } else if let Some(name) = &current {
            let s = out.get_mut(name).unwrap();
            s.push_str(line);
            s.push('\n');
        }
    }
    out
}

/// `sh -n`: the scriptlet is valid shell.
fn assert_valid_shell(name: &str, script: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, script).unwrap();
    run(Command::new("sh").arg("-n").arg(&p));
}

fn one_rpm(dir: &Path, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(found.len(), 1, "{suffix} in {}: {found:?}", dir.display());
    found.into_iter().next().unwrap()
}

#[test]
fn spec_version_is_the_crates() {
    assert_eq!(spec_version(), cargo_version());
}

#[test]
fn binary_rpms_install_every_shipped_file_with_owner_mode_and_scriptlets() {
    // Every file of packaging/ is either installed or named as not installed.
    let mut all = Vec::new();
    files_under(&repo().join("packaging"), &repo(), &mut all);
    for f in &all {
        assert!(
            SHIPPED.iter().any(|(src, _)| src == f)
                || NOT_INSTALLED.iter().any(|(src, _)| f.starts_with(src)),
            "{f} is new in packaging/: install it in {SPEC} and list it in this test"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let top = topdir(dir.path());
    run(rpmbuild(&top)
        // Debian's rpm database has none of the BuildRequires.
        .args(["-bb", "--nodeps", "--define"])
        .arg(format!(
            "_novajoin_prebuilt {}",
            env!("CARGO_BIN_EXE_novajoin")
        ))
        .arg(repo().join(SPEC)));
    let v = spec_version();
    let main = one_rpm(
        &top.join("RPMS/x86_64"),
        &format!("novajoin-{v}-1.x86_64.rpm"),
    );
    let selinux = one_rpm(
        &top.join("RPMS/noarch"),
        &format!("novajoin-selinux-{v}-1.noarch.rpm"),
    );

    let files = dump(&main);
    // The shipped files, byte for byte.
    for (src, dst) in SHIPPED {
        let e = files
            .get(*dst)
            .unwrap_or_else(|| panic!("{dst} (from {src}) not in the package"));
        let bytes = std::fs::read(repo().join(src)).unwrap();
        assert_eq!(e.digest, sha256(&bytes), "{dst} differs from {src}");
        assert_eq!(e.mode & 0o7777, 0o644, "{dst}");
    }
    // Mode, owner and group of what holds secrets or belongs to the service.
    for (path, mode, owner, group, config) in [
        ("/usr/bin/novajoin", 0o755, "root", "root", false),
        ("/etc/novajoin", 0o750, "root", "novajoin", false),
        ("/etc/novajoin/join.conf", 0o640, "root", "novajoin", true),
        (
            "/etc/novajoin/pipeline.toml",
            0o644,
            "root",
            "novajoin",
            true,
        ),
        (
            "/etc/novajoin/cloud-config-novajoin.json",
            0o644,
            "root",
            "novajoin",
            true,
        ),
        ("/etc/logrotate.d/novajoin", 0o644, "root", "root", true),
        ("/var/lib/novajoin", 0o750, "novajoin", "novajoin", false),
        ("/var/log/novajoin", 0o750, "novajoin", "novajoin", false),
    ] {
        let e = files
            .get(path)
            .unwrap_or_else(|| panic!("{path} not in the package"));
        assert_eq!(
            (
                e.mode & 0o7777,
                e.owner.as_str(),
                e.group.as_str(),
                e.config
            ),
            (mode, owner, group, config),
            "{path}"
        );
    }
    assert!(
        files["/usr/bin/novajoin"].size > 1_000_000,
        "the binary itself"
    );
    assert_eq!(files["/usr/bin/novajoin-status"].link, "novajoin");
    // join.conf: the binary's own config sample, every option commented, so
    // the package changes no behaviour and `novajoin install` fills it in.
    let sample = run(Command::new(env!("CARGO_BIN_EXE_novajoin")).arg("config-sample"));
    assert_eq!(
        files["/etc/novajoin/join.conf"].digest,
        sha256(sample.as_bytes())
    );
    // One man page per command, compressed or not.
    let man: BTreeSet<String> = files
        .keys()
        .filter_map(|p| p.strip_prefix("/usr/share/man/man1/"))
        .map(|n| n.trim_end_matches(".gz").to_string())
        .collect();
    assert_eq!(man, man_pages());
    // The documentation.
    let docs: BTreeSet<&str> = files
        .iter()
        .filter(|(p, e)| e.doc && p.starts_with("/usr/share/doc/"))
        .map(|(p, _)| p.rsplit('/').next().unwrap())
        .collect();
    for d in [
        "README.md",
        "DEPLOYMENT.md",
        "UPGRADING.md",
        "CONFIGURATION.md",
        "OPERATIONS.md",
        "TROUBLESHOOTING.md",
        "KERBEROS.md",
        "POLICY.md",
        "join.conf.example",
    ] {
        assert!(docs.contains(d), "{d} not among the docs {docs:?}");
    }
    // Nothing else: every path is accounted for above.
    let expected_dirs = [
        "/etc/novajoin",
        "/usr/share/novajoin",
        "/usr/share/novajoin/httpd",
        "/usr/share/novajoin/systemd",
        "/usr/share/novajoin/prometheus",
        "/usr/share/novajoin/grafana",
        "/var/lib/novajoin",
        "/var/log/novajoin",
    ];
    for p in files.keys() {
        let known = SHIPPED.iter().any(|(_, dst)| dst == p)
            || expected_dirs.contains(&p.as_str())
            || [
                "/usr/bin/novajoin",
                "/usr/bin/novajoin-status",
                "/etc/novajoin/join.conf",
            ]
            .contains(&p.as_str())
            || p.starts_with("/usr/share/man/man1/novajoin")
            || p.starts_with("/usr/share/doc/")
            // rpm's build-id links to the ELF binary, as on Fedora.
            || p.starts_with("/usr/lib/.build-id");
        assert!(known, "{p} is packaged but not expected");
    }
    let config = run(Command::new("rpm").args(["-qcp"]).arg(&main));
    assert_eq!(
        config.lines().collect::<BTreeSet<_>>(),
        BTreeSet::from([
            "/etc/logrotate.d/novajoin",
            "/etc/novajoin/cloud-config-novajoin.json",
            "/etc/novajoin/join.conf",
            "/etc/novajoin/pipeline.toml",
        ])
    );

    // The account before the files (the python novajoin's), the units
    // preset on install, stopped on erase and restarted on upgrade.
    let s = scriptlets(&main);
    assert_eq!(
        s.keys().map(String::as_str).collect::<Vec<_>>(),
        ["postinstall", "postuninstall", "preinstall", "preuninstall"]
    );
    for (name, script) in &s {
        assert_valid_shell(name, script);
    }
    assert!(s["preinstall"].contains("groupadd -r novajoin"));
    assert!(s["preinstall"].contains("useradd -r -g novajoin -d /var/lib/novajoin"));
    let sysusers = shipped("packaging/systemd/novajoin.sysusers.conf");
    assert!(
        sysusers.contains("u novajoin - ") && sysusers.contains(" /var/lib/novajoin "),
        "the sysusers file and %pre make the same account"
    );
    for name in ["postinstall", "preuninstall", "postuninstall"] {
        assert!(
            s[name].contains("novajoin-server.service novajoin-notify.service"),
            "{name}: {}",
            s[name]
        );
    }
    assert!(s["postinstall"].contains("preset"));
    assert!(s["preuninstall"].contains("disable --now"));
    assert!(s["postuninstall"].contains("try-restart"));

    let requires = run(Command::new("rpm").args(["-qp", "--requires"]).arg(&main));
    assert!(requires.lines().any(|l| l == "shadow-utils"), "{requires}");
    let obsoletes = run(Command::new("rpm").args(["-qp", "--obsoletes"]).arg(&main));
    for old in ["python3-novajoin", "python-novajoin"] {
        assert!(
            obsoletes.lines().any(|l| l == format!("{old} < {v}")),
            "replaces the Python novajoin's {old}: {obsoletes}"
        );
    }
    let recommends = run(Command::new("rpm").args(["-qp", "--recommends"]).arg(&main));
    assert!(
        recommends.contains("(novajoin-selinux if selinux-policy-targeted)"),
        "{recommends}"
    );

    // novajoin-selinux: the compiled module, loaded in %post.
    let se = dump(&selinux);
    assert_eq!(
        se.keys().collect::<Vec<_>>(),
        ["/usr/share/selinux/packages/targeted/novajoin.pp"]
    );
    run(Command::new("rpm2archive").arg(&selinux));
    let unpacked = dir.path().join("selinux-rpm");
    std::fs::create_dir_all(&unpacked).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(format!("{}.tgz", selinux.display()))
        .arg("-C")
        .arg(&unpacked));
    let cil = module_cil(
        &unpacked.join("usr/share/selinux/packages/targeted/novajoin.pp"),
        dir.path(),
    );
    assert_module_rules(&cil.0, &cil.1);
    let s = scriptlets(&selinux);
    for (name, script) in &s {
        assert_valid_shell(name, script);
    }
    let post = &s["postinstall"];
    assert!(post.contains(
        "semodule -n -s targeted -X 200 -i /usr/share/selinux/packages/targeted/novajoin.pp"
    ));
    assert!(post.contains("-t novajoin_port_t -p tcp 9090"));
    assert!(post.contains("selinuxenabled"));
    assert!(s["postuninstall"].contains("semodule -n -s targeted -X 200 -r novajoin"));
    // On a host without SELinux (this one) the scriptlets do nothing and succeed.
    for name in ["postinstall", "postuninstall"] {
        let out = Command::new("sh")
            .args(["-c", &s[name], "scriptlet", "0"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {out:?}");
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    }
}

#[test]
fn source_rpm_carries_the_spec_the_tree_and_the_vendored_crates() {
    let dir = tempfile::tempdir().unwrap();
    let top = topdir(dir.path());
    let v = spec_version();
    // The vendored crates' tarball (make-sources.sh runs cargo vendor); only
    // its presence matters to rpmbuild -bs.
    let vendor = dir.path().join("vendor-tree");
    std::fs::create_dir_all(vendor.join("vendor")).unwrap();
    run(Command::new("tar")
        .arg("-czf")
        .arg(top.join(format!("SOURCES/novajoin-{v}-vendor.tar.gz")))
        .arg("-C")
        .arg(&vendor)
        .arg("vendor"));
    run(rpmbuild(&top).arg("-bs").arg(repo().join(SPEC)));
    let srpm = one_rpm(&top.join("SRPMS"), &format!("novajoin-{v}-1.src.rpm"));
    let list = run(Command::new("rpm").args(["-qlp"]).arg(&srpm));
    assert_eq!(
        list.lines().collect::<BTreeSet<_>>(),
        BTreeSet::from([
            format!("novajoin-{v}-vendor.tar.gz").as_str(),
            format!("novajoin-{v}.tar.gz").as_str(),
            "novajoin.spec",
        ])
    );
    // A build from source compiles offline with the vendored crates and the
    // toolchain the crate needs.
    let build_requires = run(Command::new("rpm").args(["-qp", "--requires"]).arg(&srpm));
    for want in [
        "cargo >= 1.85",
        "rust >= 1.85",
        "krb5-devel",
        "checkpolicy",
        "policycoreutils",
    ] {
        assert!(
            build_requires.lines().any(|l| l == want),
            "{want} not in {build_requires}"
        );
    }
    let rust_version = {
        let manifest: toml::Value = toml::from_str(&shipped("Cargo.toml")).unwrap();
        manifest["package"]["rust-version"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        build_requires
            .lines()
            .any(|l| l == format!("rust >= {rust_version}")),
        "the spec's rust matches Cargo.toml's rust-version {rust_version}"
    );
    let spec = shipped(SPEC);
    assert!(spec.contains("cargo build --release --offline --frozen --bin novajoin"));
    assert!(spec.contains("directory = \"vendor\""));
}

/// The module of a .pp, decompiled to CIL, and its file contexts.
fn module_cil(pp: &Path, work: &Path) -> (String, String) {
    let out = work.join(format!(
        "unpacked-{}",
        pp.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&out).unwrap();
    run(Command::new("semodule_unpackage")
        .arg(pp)
        .arg(out.join("novajoin.mod"))
        .arg(out.join("novajoin.fc")));
    run(Command::new("checkmodule")
        .args(["-M", "-b", "-C", "-o"])
        .arg(out.join("novajoin.cil"))
        .arg(out.join("novajoin.mod")));
    (
        std::fs::read_to_string(out.join("novajoin.cil")).unwrap(),
        std::fs::read_to_string(out.join("novajoin.fc")).unwrap(),
    )
}

fn assert_module_rules(cil: &str, fc: &str) {
    for rule in [
        "(allow httpd_t novajoin_var_run_t (sock_file (getattr write)))",
        "(allow httpd_t novajoin_var_run_t (dir (getattr search open read)))",
        "(allow httpd_t unconfined_service_t (unix_stream_socket (connectto)))",
        "(allow httpd_t novajoin_port_t (tcp_socket (name_bind)))",
        "(typeattributeset port_type (novajoin_port_t ))",
        "(typeattributeset file_type (novajoin_var_run_t ))",
        "(typeattributeset pidfile (novajoin_var_run_t ))",
    ] {
        assert!(cil.contains(rule), "{rule} not in the module:\n{cil}");
    }
    // Nothing beyond what httpd needs.
    let allows: Vec<&str> = cil.lines().filter(|l| l.starts_with("(allow ")).collect();
    assert_eq!(allows.len(), 4, "{allows:#?}");
    assert!(
        fc.lines()
            .any(|l| l == "/run/novajoin(/.*)?\tsystem_u:object_r:novajoin_var_run_t:s0"),
        "{fc}"
    );
}

#[test]
fn selinux_module_compiles_and_lets_httpd_reach_the_socket_and_port() {
    // What the module labels is what the vhost and the unit use.
    let vhost = shipped("packaging/httpd/novajoin.conf");
    assert!(vhost.contains("\"unix:/run/novajoin/join.sock|"));
    assert!(vhost.lines().any(|l| l == "Listen 9090"));
    assert!(shipped("packaging/systemd/novajoin-server.service")
        .lines()
        .any(|l| l == "RuntimeDirectory=novajoin"));

    let dir = tempfile::tempdir().unwrap();
    let se = repo().join("packaging/selinux");
    let module = dir.path().join("novajoin.mod");
    let pp = dir.path().join("novajoin.pp");
    run(Command::new("checkmodule")
        .args(["-M", "-m", "-o"])
        .arg(&module)
        .arg(se.join("novajoin.te")));
    run(Command::new("semodule_package")
        .arg("-o")
        .arg(&pp)
        .arg("-m")
        .arg(&module)
        .arg("-f")
        .arg(se.join("novajoin.fc")));
    let (cil, fc) = module_cil(&pp, dir.path());
    assert_module_rules(&cil, &fc);
    let te = shipped("packaging/selinux/novajoin.te");
    assert!(te.contains("module novajoin 1.0.0;"));
}
