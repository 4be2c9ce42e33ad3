//! Starts the real `novajoin server` binary with a generated join.conf and
//! pipeline.toml in a temp dir, waits until it answers, and kills it when
//! dropped. Its stderr (the logs) is kept in a file for assertions.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The default pipeline of the repository, for tests that use it as is.
pub fn repo_pipeline() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline.toml")).unwrap()
}

/// The handler pipeline with `noauth` in place of the keystone filters
/// (authtoken has its own tests).
pub const NOAUTH_PIPELINE: &str = r#"
filters = ["http_proxy_to_wsgi", "request_id", "healthcheck", "sizelimit", "cors"]
[[route]]
path = "/v1"
filters = ["noauth"]
app = "join"
"#;

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running novajoin server process.
pub struct NovajoinServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The temp dir holding join.conf, pipeline.toml and the log.
    pub dir: tempfile::TempDir,
    log: PathBuf,
}

/// What to write into the temp dir.
pub struct ServerFiles {
    /// join.conf text; `{port}` and `{dir}` are replaced.
    pub join_conf: String,
    /// pipeline.toml text.
    pub pipeline: String,
    /// Extra environment (e.g. RUST_LOG).
    pub env: Vec<(String, String)>,
}

impl NovajoinServer {
    /// Writes the files, starts the binary and waits for `/healthcheck` (or
    /// any HTTP answer) for up to 30 s. Panics with the log if it exits.
    pub fn start(files: ServerFiles) -> Self {
        Self::start_inner(files, false)
    }

    /// Like [`NovajoinServer::start`] for a join.conf that listens on a
    /// Unix socket (`join_listen = unix:{socket}`): `{socket}` becomes
    /// `<dir>/join.sock`, readiness is a connect to it, and `base` is
    /// `unix:<path>`.
    pub fn start_unix(files: ServerFiles) -> Self {
        Self::start_inner(files, true)
    }

    /// The Unix socket path, for a server started with `start_unix`.
    pub fn socket(&self) -> Option<PathBuf> {
        self.base.strip_prefix("unix:").map(PathBuf::from)
    }

    fn start_inner(files: ServerFiles, unix: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let socket = dir.path().join("join.sock");
        let join_conf = files
            .join_conf
            .replace("{port}", &port.to_string())
            .replace("{socket}", socket.to_str().unwrap())
            .replace("{dir}", dir.path().to_str().unwrap());
        std::fs::write(dir.path().join("pipeline.toml"), &files.pipeline).unwrap();
        let conf = if join_conf.contains("api_paste_config") {
            join_conf
        } else {
            join_conf.replacen(
                "[DEFAULT]\n",
                &format!(
                    "[DEFAULT]\napi_paste_config = {}\n",
                    dir.path().join("pipeline.toml").display()
                ),
                1,
            )
        };
        std::fs::write(dir.path().join("join.conf"), conf).unwrap();
        let log = dir.path().join("server.log");
        let child = Command::new(env!("CARGO_BIN_EXE_novajoin"))
            .arg("server")
            .arg("--config-file")
            .arg(dir.path().join("join.conf"))
            .env(
                "RUST_LOG",
                "trace,hyper=info,h2=info,reqwest=info,rustls=info,tower=info",
            )
            .envs(files.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start novajoin");
        let mut server = NovajoinServer {
            child,
            base: if unix {
                format!("unix:{}", socket.display())
            } else {
                format!("http://127.0.0.1:{port}")
            },
            dir,
            log,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "novajoin exited with {status} before it was ready:\n{}",
                    self.logs()
                );
            }
            let up = match self.socket() {
                Some(path) => std::os::unix::net::UnixStream::connect(path).is_ok(),
                None => {
                    std::net::TcpStream::connect(self.base.trim_start_matches("http://")).is_ok()
                }
            };
            if up {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("novajoin not ready after 30 s:\n{}", self.logs());
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        super::settled_log(&self.log)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; returns the
    /// exit status, or None if it did not exit in time.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for NovajoinServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `novajoin server` expecting it to fail at start; returns (exit
/// code, stderr).
pub fn start_failure(join_conf: &str, pipeline: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pipeline.toml"), pipeline).unwrap();
    let conf = join_conf.replace("{dir}", dir.path().to_str().unwrap());
    std::fs::write(dir.path().join("join.conf"), conf).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_novajoin"))
        .arg("server")
        .arg("--config-file")
        .arg(dir.path().join("join.conf"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
