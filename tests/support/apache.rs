//! A real Apache httpd (Debian `apache2`) for one test, started in the
//! foreground with a configuration text of the test's choosing, on a free
//! loopback port; stopped (SIGTERM, then SIGKILL) when dropped.
//!
//! The configuration text may use these placeholders:
//!
//! * `{port}`: the loopback port to `Listen` on;
//! * `{dir}`: the server's private temp dir (logs, pid file, runtime files);
//! * `{modules}`: the directory of the module `.so` files.
//!
//! [`minimal_config`] gives the common head (listen, logs, MPM, user), and
//! [`ipa_gssapi_front`] the IPA-like mod_auth_gssapi front for the IPA
//! double.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs the modules.
pub const MODULES: &str = "/usr/lib/apache2/modules";

/// A running httpd.
pub struct Apache {
    child: Child,
    dir: tempfile::TempDir,
    /// The loopback port it listens on.
    pub port: u16,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Apache {
    /// Writes `config` (placeholders replaced) and runs
    /// `apache2 -f CONF -DFOREGROUND` with `env` added; waits until the port
    /// accepts connections (up to 20 s). Panics with the error log when it
    /// does not start.
    pub fn start(config: &str, env: &[(String, String)]) -> Apache {
        let dir = tempfile::Builder::new()
            .prefix("apache-")
            .tempdir()
            .unwrap();
        // Workers run as www-data when started as root.
        super::kdc::set_mode(dir.path(), 0o755);
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = super::server::free_port();
            let text = config
                .replace("{port}", &port.to_string())
                .replace("{dir}", &dir.path().display().to_string())
                .replace("{modules}", MODULES);
            let conf = dir.path().join("httpd.conf");
            std::fs::write(&conf, text).unwrap();
            let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
            let mut child = Command::new("apache2")
                .arg("-f")
                .arg(&conf)
                .arg("-DFOREGROUND")
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("apache2 (install apache2: scripts/install-test-deps.sh)");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Apache {
                        child,
                        dir,
                        port,
                        base: format!("http://127.0.0.1:{port}"),
                    };
                }
                std::thread::sleep(Duration::from_millis(30));
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = read(&dir.path().join("stderr.log")) + &read(&dir.path().join("error.log"));
            if !last_log.contains("could not bind") && !last_log.contains("Address already in use")
            {
                break;
            }
        }
        panic!("apache2 did not start:\n{last_log}");
    }

    /// The server's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `{dir}/error.log` (when the configuration logs there).
    pub fn error_log(&self) -> String {
        read(&self.dir.path().join("error.log"))
    }

    /// `{dir}/access.log` (when the configuration logs there).
    pub fn access_log(&self) -> String {
        read(&self.dir.path().join("access.log"))
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
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

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The head every configuration needs: loopback `Listen`, private pid and
/// runtime files, `error.log` and `access.log` (`%u` is the authenticated
/// user) in `{dir}`, the event MPM kept small, workers as www-data.
pub fn minimal_config() -> String {
    r#"ServerRoot "{dir}"
ServerName localhost
Listen 127.0.0.1:{port}
PidFile {dir}/httpd.pid
DefaultRuntimeDir {dir}
ErrorLog {dir}/error.log
LogLevel info
LogFormat "%h %u \"%r\" %>s" novajoin_test
CustomLog {dir}/access.log novajoin_test
User www-data
Group www-data
LoadModule mpm_event_module {modules}/mod_mpm_event.so
StartServers 1
ServerLimit 1
ThreadsPerChild 16
MaxRequestWorkers 16
MinSpareThreads 1
MaxSpareThreads 16
"#
    .to_string()
}

/// IPA's front for the IPA double: mod_auth_gssapi guards
/// `/ipa/session/login_kerberos` and `/ipa/json` as IPA configures it
/// (`GssapiAllowedMech krb5`, `GssapiNegotiateOnce On`, `Require
/// valid-user`, keytab of `HTTP/<fqdn>` in `GssapiCredStore`), passes the
/// authenticated principal to the double in `trusted_header` (cleared on
/// every incoming request first), and proxies `/ipa/` to `backend`
/// (`http://127.0.0.1:PORT`). `/ipa/session/json` is passed through: the
/// double checks its own session cookie there, as mod_session does in IPA.
pub fn ipa_gssapi_front(http_keytab: &Path, backend: &str, trusted_header: &str) -> String {
    format!(
        r#"{head}
LoadModule authn_core_module {{modules}}/mod_authn_core.so
LoadModule authz_core_module {{modules}}/mod_authz_core.so
LoadModule authz_user_module {{modules}}/mod_authz_user.so
LoadModule auth_gssapi_module {{modules}}/mod_auth_gssapi.so
LoadModule headers_module {{modules}}/mod_headers.so
LoadModule proxy_module {{modules}}/mod_proxy.so
LoadModule proxy_http_module {{modules}}/mod_proxy_http.so
LogLevel info auth_gssapi:debug
RequestHeader unset {trusted_header} early
<LocationMatch "^/ipa/(json|session/login_kerberos)$">
  AuthType GSSAPI
  AuthName "Kerberos Login"
  GssapiCredStore keytab:{keytab}
  GssapiAllowedMech krb5
  GssapiNegotiateOnce On
  Require valid-user
  RequestHeader set {trusted_header} "expr=%{{REMOTE_USER}}"
</LocationMatch>
ProxyPass "/ipa/" "{backend}/ipa/"
ProxyPassReverse "/ipa/" "{backend}/ipa/"
"#,
        head = minimal_config(),
        keytab = http_keytab.display(),
    )
}

// ---- helpers for fronts with TLS and Unix sockets (tests/packaging_httpd.rs) ----

/// The user httpd's workers run as ([`minimal_config`]).
pub const RUN_USER: &str = "www-data";

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
