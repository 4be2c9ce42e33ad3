//! Redis for tests: the real shared server (127.0.0.1:6379, or
//! `NOVAJOIN_TEST_REDIS_URL`) with a unique key prefix per test that is
//! deleted afterwards, and private `redis-server` processes a test can stop
//! and start to play an outage.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared Redis the tests use.
pub fn shared_url() -> String {
    std::env::var("NOVAJOIN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A URL where nothing listens: a port the OS just handed out and took back.
pub fn closed_url() -> String {
    let port = super::server::free_port();
    format!("redis://127.0.0.1:{port}")
}

/// A unique key prefix on the shared Redis; its keys are deleted on drop.
pub struct RedisNamespace {
    /// The prefix (ends with ':').
    pub prefix: String,
    /// The server URL.
    pub url: String,
    client: redis::Client,
}

impl RedisNamespace {
    /// A fresh prefix on the shared Redis. Panics with a clear message when
    /// that Redis does not answer: these tests need the real server.
    pub fn new(label: &str) -> Self {
        let url = shared_url();
        let client = redis::Client::open(url.as_str()).expect("valid redis url");
        let mut c = client.get_connection_with_timeout(Duration::from_secs(2)).unwrap_or_else(|e| {
            panic!("the shared Redis at {url} does not answer ({e}); start it (the machine's redis-server) \
                    or set NOVAJOIN_TEST_REDIS_URL")
        });
        let _: String = redis::cmd("PING").query(&mut c).expect("redis PING");
        let prefix = format!("novajoin-test:{label}:{}:", uuid::Uuid::new_v4().simple());
        Self {
            prefix,
            url,
            client,
        }
    }

    /// A blocking connection for test set-up and inspection.
    pub fn conn(&self) -> redis::Connection {
        self.client
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("redis connection")
    }

    /// Every key under the prefix.
    pub fn keys(&self) -> Vec<String> {
        let mut c = self.conn();
        let iter: redis::Iter<String> = redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(format!("{}*", self.prefix))
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter(&mut c)
            .expect("SCAN");
        iter.filter_map(Result::ok).collect()
    }
}

impl Drop for RedisNamespace {
    fn drop(&mut self) {
        let keys = self.keys();
        if !keys.is_empty() {
            let mut c = self.conn();
            let _: Result<i64, _> = redis::cmd("DEL").arg(&keys).query(&mut c);
        }
    }
}

/// A private `redis-server` on a free loopback port, stopped on drop.
pub struct PrivateRedis {
    /// Its port.
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    /// Starts one and waits until it answers.
    pub fn start() -> Self {
        let port = super::server::free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = Self {
            port,
            child: None,
            dir,
        };
        r.restart();
        r
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it (an outage); `restart` brings it back on the same port.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: as in `signal`; a paused server must be thawed to die cleanly.
            unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes it (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Thaws it (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().expect("redis-server running").id();
        // SAFETY: kill(2) on the pid of a child this guard owns.
        assert_eq!(
            unsafe { libc::kill(pid as i32, sig) },
            0,
            "signal redis-server"
        );
    }

    /// (Re)starts it on its port and waits until it answers PING.
    pub fn restart(&mut self) {
        self.stop();
        let child = spawn_server(self.port, self.dir.path());
        self.child = Some(child);
        let client = redis::Client::open(self.url()).expect("url");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(200)) {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "private redis-server on port {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn spawn_server(port: u16, dir: &Path) -> Child {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run redis-server (Debian package redis-server)")
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
