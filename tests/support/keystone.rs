//! The real keystone for integration tests: PyPI keystone 30 on sqlite,
//! served by gunicorn on a free loopback port, prepared by
//! `scripts/keystone_env.py` (the same script the demo uses).
//!
//! * The template (keys, database, users) is made once per machine under
//!   `target/keystone-template-v1` and copied for each instance.
//! * [`Keystone::shared`] starts one instance per provider per test binary;
//!   a test that stops keystone starts its own with [`Keystone::start`].
//! * Every instance sits behind a counting HTTP proxy: the URLs handed to
//!   the code under test (auth URL and catalog endpoints) are the proxy's,
//!   so tests count the calls the service makes ([`Keystone::validations_of`]).
//!   The test's own calls (issuing, revoking tokens) go straight to keystone
//!   and are not counted.
//! * Children get SIGTERM when the test process exits (PR_SET_PDEATHSIG),
//!   and an instance started by a test is stopped when it is dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Which token provider the instance runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Fernet tokens (keystone's default).
    Fernet,
    /// JWS (ES256) tokens.
    Jws,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::Fernet => "fernet",
            Provider::Jws => "jws",
        }
    }
}

/// A user the template created.
#[derive(Clone, Debug, Deserialize)]
pub struct User {
    /// User id.
    pub id: String,
    /// Test password.
    pub password: String,
    /// Project name the user has roles in.
    pub project: String,
    /// That project's id.
    pub project_id: String,
    /// Role names granted there.
    pub roles: Vec<String>,
}

/// An application credential made by a test.
#[derive(Clone, Debug)]
pub struct ApplicationCredential {
    /// Its id.
    pub id: String,
    /// Its name (unique for its user).
    pub name: String,
    /// The secret keystone showed once, at creation.
    pub secret: String,
}

/// What the template made.
#[derive(Clone, Debug, Deserialize)]
pub struct Credentials {
    /// Users by name: admin, nova, novajoin, demo.
    pub users: HashMap<String, User>,
    /// Project ids by name.
    pub projects: HashMap<String, String>,
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python venv with keystone (`NOVAJOIN_TEST_VENV`, default `target/test-venv`).
pub fn venv() -> PathBuf {
    std::env::var_os("NOVAJOIN_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/test-venv"))
}

fn python() -> PathBuf {
    let p = venv().join("bin/python");
    assert!(
        p.exists(),
        "no Python venv at {}: run scripts/install-test-deps.sh or set NOVAJOIN_TEST_VENV",
        venv().display()
    );
    p
}

fn helper_script() -> PathBuf {
    repo_root().join("scripts/keystone_env.py")
}

struct Template {
    dir: PathBuf,
    creds: Credentials,
}

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let dir = std::env::var_os("NOVAJOIN_KEYSTONE_TEMPLATE")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/keystone-template-v1"));
        if !dir.join("ready").exists() {
            let out = Command::new(python())
                .arg(helper_script())
                .arg("prepare")
                .arg(&dir)
                .output()
                .expect("run keystone_env.py prepare");
            assert!(
                out.status.success(),
                "preparing the keystone template failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = std::fs::read_to_string(dir.join("credentials.json"))
            .expect("template credentials.json");
        Template {
            creds: serde_json::from_str(&text).expect("credentials.json"),
            dir,
        }
    })
}

// ---- children die with the test process ----

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns from one long-lived thread: PR_SET_PDEATHSIG fires when the
/// *thread* that forked exits, so test threads must not fork.
fn spawn_child(mut cmd: Command) -> std::io::Result<Child> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let tx = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("keystone-keeper".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
                    unsafe {
                        cmd.pre_exec(|| {
                            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                            // Own process group, so stop() reaches the workers too.
                            libc::setpgid(0, 0);
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("keeper thread");
        Mutex::new(tx)
    });
    let (rtx, rrx) = mpsc::channel();
    cmd.stdin(Stdio::null());
    tx.lock().unwrap().send((cmd, rtx)).expect("keeper alive");
    rrx.recv().expect("keeper reply")
}

static CLEANUP: OnceLock<Mutex<Vec<PathBuf>>> = OnceLock::new();

/// Directories removed when the test process exits (shared instances are
/// never dropped).
fn remove_at_exit(dir: PathBuf) {
    extern "C" fn at_exit() {
        if let Some(m) = CLEANUP.get() {
            if let Ok(paths) = m.try_lock() {
                for p in paths.iter() {
                    let _ = std::fs::remove_dir_all(p);
                }
            }
        }
    }
    let m = CLEANUP.get_or_init(|| {
        // SAFETY: registering a plain extern "C" fn.
        unsafe {
            libc::atexit(at_exit);
        }
        Mutex::new(Vec::new())
    });
    m.lock().unwrap().push(dir);
}

// ---- the counting proxy ----

/// One request the proxy forwarded.
#[derive(Clone, Debug)]
pub struct Call {
    /// HTTP method.
    pub method: String,
    /// Path (no query).
    pub path: String,
    /// sha256 hex of `X-Subject-Token`, when present.
    pub subject: Option<String>,
}

fn proxy_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("keystone-proxy")
            .enable_all()
            .build()
            .expect("proxy runtime")
    })
}

struct Proxy {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<Call>>>,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    fn start(upstream: Arc<Mutex<String>>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::new(Mutex::new(Vec::new()));
        let (c2, t2) = (calls.clone(), tasks.clone());
        let accept = proxy_runtime().spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let client = reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("proxy client");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (calls, client, upstream) = (c2.clone(), client.clone(), upstream.clone());
                let conn = tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let (calls, client, upstream) =
                                (calls.clone(), client.clone(), upstream.clone());
                            async move {
                                Ok::<_, Infallible>(forward(req, &client, &upstream, &calls).await)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
                let mut t = t2.lock().unwrap();
                t.retain(|h| !h.is_finished());
                t.push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Proxy { addr, calls, tasks }
    }

    /// Closes the listener and every open connection: clients then get
    /// "connection refused", as with keystone down.
    fn stop(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

async fn forward(
    req: http::Request<hyper::body::Incoming>,
    client: &reqwest::Client,
    upstream: &Mutex<String>,
    calls: &Mutex<Vec<Call>>,
) -> http::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let subject = parts
        .headers
        .get("x-subject-token")
        .map(|v| hex::encode(Sha256::digest(v.as_bytes())));
    calls.lock().unwrap().push(Call {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        subject,
    });
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let base = upstream.lock().unwrap().clone();
    let url = format!(
        "{base}{}",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut out = client.request(parts.method.clone(), url).body(body);
    for (k, v) in parts.headers.iter() {
        if k != http::header::HOST && k != http::header::CONTENT_LENGTH {
            out = out.header(k, v);
        }
    }
    match out.send().await {
        Ok(r) => {
            let mut resp = http::Response::builder().status(r.status());
            for (k, v) in r.headers() {
                if k != http::header::TRANSFER_ENCODING && k != http::header::CONTENT_LENGTH {
                    resp = resp.header(k, v);
                }
            }
            let b = r.bytes().await.unwrap_or_default();
            resp.body(Full::new(b)).unwrap()
        }
        Err(e) => http::Response::builder()
            .status(502)
            .body(Full::new(Bytes::from(format!("proxy: {e}"))))
            .unwrap(),
    }
}

// ---- keystone instances ----

/// A running keystone behind its counting proxy.
pub struct Keystone {
    /// Token provider.
    pub provider: Provider,
    dir: PathBuf,
    direct: String,
    child: Mutex<Option<Child>>,
    proxy: Proxy,
    _tmp: Option<tempfile::TempDir>,
}

fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(1),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /v3 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") && &buf[9..12] == b"200"
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

impl Keystone {
    /// Starts a private instance (blocking, ~5-10 s); stopped when dropped.
    pub fn start(provider: Provider) -> Keystone {
        let tmp = tempfile::Builder::new()
            .prefix("novajoin-keystone-")
            .tempdir()
            .expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut ks = Self::start_in(provider, dir);
        ks._tmp = Some(tmp);
        ks
    }

    /// The instance of `provider` shared by every test of this binary.
    pub fn shared(provider: Provider) -> &'static Keystone {
        static SHARED: OnceLock<Mutex<HashMap<Provider, &'static Keystone>>> = OnceLock::new();
        let map = SHARED.get_or_init(|| Mutex::new(HashMap::new()));
        // Holding the lock while starting makes concurrent tests wait for one start.
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(provider).or_insert_with(|| {
            let dir = std::env::temp_dir().join(format!(
                "novajoin-keystone-shared-{}-{}",
                std::process::id(),
                provider.name()
            ));
            remove_at_exit(dir.clone());
            Box::leak(Box::new(Self::start_in(provider, dir)))
        })
    }

    fn start_in(provider: Provider, dir: PathBuf) -> Keystone {
        let t = template();
        let upstream = Arc::new(Mutex::new(String::new()));
        let proxy = Proxy::start(upstream.clone());
        let public = format!("http://{}", proxy.addr);
        let out = Command::new(python())
            .arg(helper_script())
            .args(["instance"])
            .arg(&t.dir)
            .arg(&dir)
            .args(["--provider", provider.name(), "--public-endpoint", &public])
            .output()
            .expect("keystone_env.py instance");
        assert!(
            out.status.success(),
            "keystone instance setup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = dir.join("keystone.log");
        for _attempt in 0..3 {
            let port = super::server::free_port();
            let logf = std::fs::File::create(&log).expect("log file");
            let mut cmd = Command::new(python());
            cmd.arg(helper_script())
                .arg("serve")
                .arg(&dir)
                .arg(port.to_string())
                .stdout(logf.try_clone().unwrap())
                .stderr(logf);
            let mut child = spawn_child(cmd).expect("start gunicorn");
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                if answers(port) {
                    let direct = format!("http://127.0.0.1:{port}");
                    *upstream.lock().unwrap() = direct.clone();
                    return Keystone {
                        provider,
                        dir,
                        direct,
                        child: Mutex::new(Some(child)),
                        proxy,
                        _tmp: None,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // e.g. the port was taken meanwhile: try another
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("keystone did not answer within 120 s:\n{}", tail(&log));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        panic!("keystone failed to start:\n{}", tail(&log));
    }

    /// Stops keystone and closes the proxy: later calls are refused.
    pub fn stop(&self) {
        self.proxy.stop();
        if let Some(mut c) = self.child.lock().unwrap().take() {
            // SIGINT is gunicorn's quick shutdown; SIGKILL to the group if it hangs.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGINT);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            unsafe {
                libc::kill(-(c.id() as i32), libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }

    /// The auth URL the service under test should use (through the proxy).
    pub fn auth_url(&self) -> String {
        format!("http://{}/v3", self.proxy.addr)
    }

    /// The public URL without version (for `www_authenticate_uri`).
    pub fn public_url(&self) -> String {
        format!("http://{}", self.proxy.addr)
    }

    /// keystone's JWS public key repository (the template's).
    pub fn jws_public_key_dir(&self) -> PathBuf {
        template().dir.join("jws-pub")
    }

    /// The instance directory (keystone.conf, keystone.log, access.log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the template made.
    pub fn credentials(&self) -> &'static Credentials {
        &template().creds
    }

    /// A template user by name (admin, nova, novajoin, demo).
    pub fn user(&self, name: &str) -> &'static User {
        template()
            .creds
            .users
            .get(name)
            .unwrap_or_else(|| panic!("no test user {name}"))
    }

    /// Every call the service under test made, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.proxy.calls.lock().unwrap().clone()
    }

    /// How many `GET /v3/auth/tokens` validated `token`.
    pub fn validations_of(&self, token: &str) -> usize {
        let h = hex::encode(Sha256::digest(token.as_bytes()));
        self.calls()
            .iter()
            .filter(|c| c.subject.as_deref() == Some(h.as_str()))
            .count()
    }

    /// How many calls of any kind reached keystone through the proxy.
    pub fn total_calls(&self) -> usize {
        self.proxy.calls.lock().unwrap().len()
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    /// Issues a project-scoped token for template user `name` (not counted).
    pub async fn issue_token(&self, name: &str) -> String {
        let u = self.user(name);
        self.issue_with(serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": name, "domain": {"id": "default"}, "password": u.password}}},
            "scope": {"project": {"id": u.project_id}}}}))
            .await
            .0
    }

    /// POSTs an auth body; returns the token and the token body.
    pub async fn issue_with(&self, body: serde_json::Value) -> (String, serde_json::Value) {
        let r = Self::client()
            .post(format!("{}/v3/auth/tokens", self.direct))
            .json(&body)
            .send()
            .await
            .expect("keystone reachable");
        assert_eq!(
            r.status(),
            201,
            "token issue failed: {}",
            r.text().await.unwrap_or_default()
        );
        let tok = r.headers()["x-subject-token"].to_str().unwrap().to_string();
        (tok, r.json().await.unwrap())
    }

    /// Revokes `token` through keystone's API (`DELETE /v3/auth/tokens`).
    pub async fn revoke(&self, token: &str) {
        let admin = self.issue_token("admin").await;
        let r = Self::client()
            .delete(format!("{}/v3/auth/tokens", self.direct))
            .header("x-auth-token", admin)
            .header("x-subject-token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            204,
            "revoke failed: {}",
            r.text().await.unwrap_or_default()
        );
    }

    /// Creates an application credential of template user `name` through
    /// keystone's API (`POST /v3/users/{id}/application_credentials`, with
    /// the user's project-scoped token), expiring at `expires` if given.
    pub async fn create_application_credential(
        &self,
        name: &str,
        expires: Option<chrono::DateTime<chrono::Utc>>,
    ) -> ApplicationCredential {
        let u = self.user(name);
        let tok = self.issue_token(name).await;
        let cred_name = format!("nj-{}", uuid::Uuid::new_v4().simple());
        let mut body = serde_json::json!({"application_credential": {"name": cred_name}});
        if let Some(e) = expires {
            body["application_credential"]["expires_at"] =
                serde_json::json!(e.format("%Y-%m-%dT%H:%M:%S").to_string());
        }
        let r = Self::client()
            .post(format!(
                "{}/v3/users/{}/application_credentials",
                self.direct, u.id
            ))
            .header("x-auth-token", &tok)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "app cred: {}",
            r.text().await.unwrap_or_default()
        );
        let v: serde_json::Value = r.json().await.unwrap();
        let field = |k: &str| {
            v["application_credential"][k]
                .as_str()
                .unwrap_or_else(|| panic!("application_credential.{k}"))
                .to_string()
        };
        ApplicationCredential {
            id: field("id"),
            name: field("name"),
            secret: field("secret"),
        }
    }

    /// A token for `name` that expires in about `seconds` (made from an
    /// application credential that expires then: keystone caps the token),
    /// and its expiry as keystone states it.
    pub async fn issue_short_lived_token(
        &self,
        name: &str,
        seconds: i64,
    ) -> (String, chrono::DateTime<chrono::Utc>) {
        let expires = chrono::Utc::now() + chrono::Duration::seconds(seconds);
        let cred = self
            .create_application_credential(name, Some(expires))
            .await;
        let (token, body) = self
            .issue_with(serde_json::json!({"auth": {"identity": {
                "methods": ["application_credential"],
                "application_credential": {"id": cred.id, "secret": cred.secret}}}}))
            .await;
        let expires = body["token"]["expires_at"]
            .as_str()
            .expect("expires_at")
            .parse()
            .expect("RFC 3339");
        (token, expires)
    }

    /// Whether keystone itself (not the proxy) still answers.
    pub fn is_running(&self) -> bool {
        self.child.lock().unwrap().is_some()
    }

    /// How many calls keystone's own access log shows (a cross-check of
    /// the proxy's count).
    pub fn access_log_lines(&self) -> usize {
        std::fs::read_to_string(self.dir.join("access.log"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

impl Drop for Keystone {
    fn drop(&mut self) {
        self.stop();
    }
}
