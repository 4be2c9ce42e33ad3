//! Real Apache httpd (Debian `apache2`) for integration tests: a private
//! server root in a temp dir, on a free loopback port, run in the
//! foreground and killed (by PID) when dropped.
//!
//! ```ignore
//! let httpd = ApacheServer::start(ApacheConfig {
//!     modules: vec!["proxy", "proxy_http", "headers"],
//!     site: "Listen 127.0.0.1:{port}\n<VirtualHost 127.0.0.1:{port}>\n...".into(),
//! });
//! ```
//! In `site`, `{port}` is replaced by the chosen port and `{dir}` by the
//! server's temp dir. The generated main config loads `mpm_event`,
//! `authz_core` and the listed modules, logs errors to `{dir}/error.log`,
//! and, when the test runs as root, serves as `www-data`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian keeps the module files.
pub const MODULE_DIR: &str = "/usr/lib/apache2/modules";

/// What to run.
pub struct ApacheConfig {
    /// Module names without `mod_` and `.so` (`proxy`, `ssl`, `auth_gssapi`).
    pub modules: Vec<&'static str>,
    /// The site configuration (Listen, VirtualHost, ...).
    pub site: String,
}

/// A running httpd.
pub struct ApacheServer {
    child: Child,
    /// The loopback port it listens on.
    pub port: u16,
    /// Its server root: config, logs, pid file.
    pub dir: tempfile::TempDir,
}

/// The user the workers run as when the test runs as root.
pub const RUN_USER: &str = "www-data";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn module_symbol(name: &str) -> String {
    format!("{name}_module")
}

impl ApacheServer {
    /// Writes the configuration, checks it with `apache2 -t`, starts httpd
    /// and waits until the port accepts connections (up to 20 s). Panics
    /// with the error log when it does not come up.
    pub fn start(cfg: ApacheConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = super::server::free_port();
        let d = dir.path().display().to_string();
        let mut conf = format!(
            "ServerRoot \"{d}\"\nServerName localhost\nPidFile \"{d}/httpd.pid\"\n\
             DefaultRuntimeDir \"{d}\"\nMutex file:{d} default\nErrorLog \"{d}/error.log\"\n\
             LogLevel warn\nTimeout 30\n"
        );
        if is_root() {
            conf.push_str(&format!("User {RUN_USER}\nGroup {RUN_USER}\n"));
        }
        let mut modules = vec!["mpm_event", "authz_core"];
        for m in &cfg.modules {
            if !modules.contains(m) {
                modules.push(m);
            }
        }
        for m in &modules {
            conf.push_str(&format!(
                "LoadModule {} {MODULE_DIR}/mod_{m}.so\n",
                module_symbol(m)
            ));
        }
        conf.push_str(
            &cfg.site
                .replace("{port}", &port.to_string())
                .replace("{dir}", &d),
        );
        conf.push('\n');
        let conf_path = dir.path().join("httpd.conf");
        std::fs::write(&conf_path, &conf).unwrap();
        if is_root() {
            // The workers (www-data) must reach files the test puts here.
            allow_traverse(dir.path());
        }
        let check = Command::new("apache2")
            .arg("-t")
            .arg("-f")
            .arg(&conf_path)
            .output()
            .expect("run apache2 (Debian package apache2)");
        assert!(
            check.status.success(),
            "apache2 -t rejected the configuration:\n{}\n--- config ---\n{conf}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new("apache2")
            .arg("-f")
            .arg(&conf_path)
            .arg("-DFOREGROUND")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("start apache2");
        let mut server = ApacheServer { child, port, dir };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("apache2 exited with {status}:\n{}", self.error_log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("apache2 not listening after 20 s:\n{}", self.error_log());
    }

    /// The error log and stderr so far.
    pub fn error_log(&self) -> String {
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "{}{}",
            read(self.dir.path().join("error.log")),
            read(self.dir.path().join("stderr.log"))
        )
    }

    /// A file under the server root, read as text ("" when missing).
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

impl Drop for ApacheServer {
    fn drop(&mut self) {
        // SIGTERM to the parent stops its workers; then make sure.
        // SAFETY: signalling our own child by its PID.
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

/// Lets other users traverse (not list) `dir`, so that httpd's workers can
/// open files below it.
pub fn allow_traverse(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).unwrap().permissions().mode();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o711)).unwrap();
}

/// Gives `path` to group `group` with mode `mode` (the test runs as root),
/// as a deployment puts httpd's user in the service's group.
pub fn share_with_group(path: &Path, group: &str, mode: u32) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let name = std::ffi::CString::new(group).unwrap();
    // SAFETY: getgrnam returns NULL or static storage read at once; chown
    // with uid -1 keeps the owner.
    unsafe {
        let gr = libc::getgrnam(name.as_ptr());
        assert!(!gr.is_null(), "no group {group}");
        let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        assert_eq!(libc::chown(p.as_ptr(), u32::MAX, (*gr).gr_gid), 0);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A throwaway CA and a server certificate it signed for `localhost` /
/// 127.0.0.1, made with the `openssl` command. Returns (CA certificate,
/// server certificate, server key) paths in `dir`.
pub fn test_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = dir.join("ca.key");
    let ca = dir.join("ca.crt");
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let cert = dir.join("server.crt");
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "basicConstraints = CA:FALSE\nkeyUsage = digitalSignature, keyEncipherment\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost, IP:127.0.0.1\n",
    )
    .unwrap();
    let openssl = |args: &[&std::ffi::OsStr]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let s = |x: &str| std::ffi::OsString::from(x);
    let p = |x: &PathBuf| x.as_os_str().to_os_string();
    openssl(&[
        &s("req"),
        &s("-x509"),
        &s("-newkey"),
        &s("rsa:2048"),
        &s("-nodes"),
        &s("-days"),
        &s("2"),
        &s("-subj"),
        &s("/CN=novajoin test CA"),
        &s("-keyout"),
        &p(&ca_key),
        &s("-out"),
        &p(&ca),
    ]);
    openssl(&[
        &s("req"),
        &s("-newkey"),
        &s("rsa:2048"),
        &s("-nodes"),
        &s("-subj"),
        &s("/CN=localhost"),
        &s("-keyout"),
        &p(&key),
        &s("-out"),
        &p(&csr),
    ]);
    openssl(&[
        &s("x509"),
        &s("-req"),
        &s("-in"),
        &p(&csr),
        &s("-CA"),
        &p(&ca),
        &s("-CAkey"),
        &p(&ca_key),
        &s("-CAcreateserial"),
        &s("-days"),
        &s("2"),
        &s("-extfile"),
        &p(&ext),
        &s("-out"),
        &p(&cert),
    ]);
    (ca, cert, key)
}
