//! A real MIT KDC (Debian `krb5-kdc`) for one test: a throwaway realm in a
//! temp dir, listening on a free loopback port (UDP and TCP), with its own
//! `krb5.conf`/`kdc.conf`. Principals and keytabs are made with
//! `kadmin.local`. The KDC process is killed when the value is dropped.
//!
//! ```ignore
//! let kdc = Kdc::start(KdcOptions::default());
//! kdc.add_principal("HTTP/ipa.example.test", None);
//! kdc.add_principal("nova/compute.example.test", Some("1 minute"));
//! let kt = kdc.keytab("nova/compute.example.test");
//! // child processes that use Kerberos get kdc.client_env()
//! ```
//!
//! Nothing here changes the test process's environment: every command gets
//! `KRB5_CONFIG`/`KRB5_KDC_PROFILE` explicitly.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How to set up the realm.
#[derive(Clone, Debug)]
pub struct KdcOptions {
    /// The realm name.
    pub realm: String,
    /// Longest ticket life (kdc.conf `max_life` and krb5.conf
    /// `ticket_lifetime`), in krb5 duration syntax (`10h`, `1m`).
    pub max_life: String,
}

impl Default for KdcOptions {
    fn default() -> Self {
        Self {
            realm: "EXAMPLE.TEST".into(),
            max_life: "10h".into(),
        }
    }
}

/// A running KDC.
pub struct Kdc {
    child: Child,
    dir: tempfile::TempDir,
    /// The realm.
    pub realm: String,
    /// The loopback port (UDP and TCP).
    pub port: u16,
}

/// A port free for both TCP and UDP on 127.0.0.1 right now.
fn free_tcp_udp_port() -> u16 {
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP+UDP port on 127.0.0.1");
}

impl Kdc {
    /// Creates the realm database and starts `krb5kdc -n` (foreground) on
    /// a free port; waits until it accepts TCP connections.
    pub fn start(opts: KdcOptions) -> Kdc {
        let dir = tempfile::Builder::new().prefix("kdc-").tempdir().unwrap();
        // Apache (running as www-data) must reach the HTTP keytab in here.
        set_mode(dir.path(), 0o755);
        let d = dir.path().display().to_string();
        for attempt in 0..5 {
            let port = free_tcp_udp_port();
            std::fs::write(
                dir.path().join("krb5.conf"),
                format!(
                    "[libdefaults]\n  default_realm = {realm}\n  dns_lookup_kdc = false\n  \
                     dns_lookup_realm = false\n  dns_canonicalize_hostname = false\n  rdns = false\n  \
                     ticket_lifetime = {life}\n  udp_preference_limit = 1\n\n[realms]\n  {realm} = {{\n    \
                     kdc = 127.0.0.1:{port}\n  }}\n",
                    realm = opts.realm,
                    life = opts.max_life,
                ),
            )
            .unwrap();
            std::fs::write(
                dir.path().join("kdc.conf"),
                format!(
                    "[kdcdefaults]\n  kdc_listen = 127.0.0.1:{port}\n  kdc_tcp_listen = 127.0.0.1:{port}\n\n\
                     [realms]\n  {realm} = {{\n    database_name = {d}/principal\n    \
                     key_stash_file = {d}/stash\n    acl_file = {d}/kadm5.acl\n    max_life = {life}\n    \
                     max_renewable_life = 0\n  }}\n\n[logging]\n  kdc = FILE:{d}/kdc.log\n",
                    realm = opts.realm,
                    life = opts.max_life,
                ),
            )
            .unwrap();
            if attempt == 0 {
                let out = Command::new("kdb5_util")
                    .args(["create", "-s", "-r", &opts.realm, "-P", "kdc-master-pw"])
                    .envs(Self::env_of(dir.path()))
                    .stdin(Stdio::null())
                    .output()
                    .expect("kdb5_util (install krb5-kdc and krb5-admin-server: scripts/install-test-deps.sh)");
                assert!(out.status.success(), "kdb5_util create: {}", text(&out));
            }
            let mut child = Command::new("krb5kdc")
                .arg("-n")
                .envs(Self::env_of(dir.path()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("krb5kdc");
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut up = false;
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(30));
            }
            if up {
                return Kdc {
                    child,
                    dir,
                    realm: opts.realm,
                    port,
                };
            }
            // Lost the port to someone else: try another.
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "krb5kdc did not start; its log:\n{}",
            std::fs::read_to_string(dir.path().join("kdc.log")).unwrap_or_default()
        );
    }

    fn env_of(dir: &Path) -> Vec<(String, String)> {
        vec![
            (
                "KRB5_CONFIG".into(),
                dir.join("krb5.conf").display().to_string(),
            ),
            (
                "KRB5_KDC_PROFILE".into(),
                dir.join("kdc.conf").display().to_string(),
            ),
        ]
    }

    /// The environment a Kerberos client process needs to use this realm
    /// (`KRB5_CONFIG`), with the replay cache off (nothing written to /var/tmp).
    pub fn client_env(&self) -> Vec<(String, String)> {
        vec![
            ("KRB5_CONFIG".into(), self.krb5_conf().display().to_string()),
            ("KRB5RCACHETYPE".into(), "none".into()),
        ]
    }

    /// The realm's `krb5.conf`.
    pub fn krb5_conf(&self) -> PathBuf {
        self.dir.path().join("krb5.conf")
    }

    /// The temp dir (keytabs are written here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs one `kadmin.local -q` query; panics with its output on failure.
    pub fn kadmin(&self, query: &str) -> String {
        let out = Command::new("kadmin.local")
            .args(["-r", &self.realm, "-q", query])
            .envs(Self::env_of(self.dir.path()))
            .stdin(Stdio::null())
            .output()
            .expect("kadmin.local");
        let t = text(&out);
        // kadmin.local exits 0 even when the query fails; its errors read
        // "<command>: <what> while <doing>".
        assert!(
            out.status.success() && !t.contains(" while "),
            "kadmin.local -q {query:?}: {t}"
        );
        t
    }

    /// `principal@REALM` unless it already names a realm.
    pub fn full(&self, principal: &str) -> String {
        if principal.contains('@') {
            principal.to_string()
        } else {
            format!("{principal}@{}", self.realm)
        }
    }

    /// Adds a principal with random keys; `max_life` like `"1 minute"`.
    pub fn add_principal(&self, principal: &str, max_life: Option<&str>) {
        let life = max_life
            .map(|l| format!("-maxlife \"{l}\" "))
            .unwrap_or_default();
        self.kadmin(&format!("addprinc -randkey {life}{}", self.full(principal)));
    }

    /// Adds a principal with a password (for `kinit`-style logins).
    pub fn add_principal_with_password(&self, principal: &str, password: &str) {
        self.kadmin(&format!("addprinc -pw {password} {}", self.full(principal)));
    }

    /// Writes a keytab with the principal's *current* keys (no rotation)
    /// to `<dir>/<file name>`; world-readable (test keys only) so that
    /// Apache's unprivileged workers can read it.
    pub fn keytab_at(&self, principal: &str, path: &Path) {
        self.kadmin(&format!(
            "ktadd -norandkey -k {} {}",
            path.display(),
            self.full(principal)
        ));
        set_mode(path, 0o644);
    }

    /// As [`keytab_at`](Self::keytab_at), in the KDC's dir; returns the path.
    pub fn keytab(&self, principal: &str) -> PathBuf {
        let name = principal.replace(['/', '@'], "_") + ".keytab";
        let path = self.dir.path().join(name);
        self.keytab_at(principal, &path);
        path
    }

    /// Gives the principal new random keys, as `ipa-getkeytab` does:
    /// every keytab written before holds stale keys afterwards.
    pub fn rotate_keys(&self, principal: &str) {
        self.kadmin(&format!("cpw -randkey {}", self.full(principal)));
    }

    /// The KDC's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kdc.log")).unwrap_or_default()
    }

    /// Initial tickets (AS requests answered with a ticket) issued to `principal`.
    pub fn tgts_issued_to(&self, principal: &str) -> usize {
        let who = format!(" {} for krbtgt/", self.full(principal));
        self.log()
            .lines()
            .filter(|l| l.contains("AS_REQ") && l.contains("ISSUE") && l.contains(&who))
            .count()
    }

    /// Service tickets issued for `service` (e.g. `HTTP/ipa.example.test`).
    pub fn service_tickets_for(&self, service: &str) -> usize {
        let what = format!(" for {}", self.full(service));
        self.log()
            .lines()
            .filter(|l| l.contains("TGS_REQ") && l.contains("ISSUE") && l.contains(&what))
            .count()
    }

    /// The lifetime of a TGT obtained now with `keytab` (`kinit` + `klist`
    /// into a throwaway file cache), to check the realm's ticket policy.
    pub fn tgt_lifetime(&self, principal: &str, keytab: &Path) -> Duration {
        let cc = format!("FILE:{}/lifetime-probe.cc", self.dir.path().display());
        let kinit = Command::new("kinit")
            .args(["-k", "-t"])
            .arg(keytab)
            .args(["-c", &cc, &self.full(principal)])
            .envs(self.client_env())
            .output()
            .expect("kinit (install krb5-user)");
        assert!(kinit.status.success(), "kinit: {}", text(&kinit));
        let klist = Command::new("klist")
            .args(["-c", &cc])
            .envs(self.client_env())
            .output()
            .expect("klist");
        let out = text(&klist);
        let line = out
            .lines()
            .find(|l| l.contains("krbtgt/"))
            .unwrap_or_else(|| panic!("no TGT in klist output: {out}"));
        let times: Vec<u64> = line
            .split_whitespace()
            .filter(|w| w.len() == 8 && w.as_bytes()[2] == b':' && w.as_bytes()[5] == b':')
            .map(|w| {
                let p: Vec<u64> = w.split(':').map(|x| x.parse().unwrap()).collect();
                p[0] * 3600 + p[1] * 60 + p[2]
            })
            .collect();
        assert_eq!(times.len(), 2, "cannot read the times in {line:?}");
        Duration::from_secs((times[1] + 86_400 - times[0]) % 86_400)
    }
}

impl Drop for Kdc {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// chmod.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
