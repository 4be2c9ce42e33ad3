//! memcached for tests: a private `memcached` process (the Debian package)
//! on a free loopback port, stopped by PID on drop, that a test can stop
//! and start to play an outage; plus a raw text-protocol connection to
//! look at what the service stored.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private memcached, stopped on drop.
pub struct PrivateMemcached {
    /// Its port.
    pub port: u16,
    child: Option<Child>,
}

impl PrivateMemcached {
    /// Starts one and waits until it answers.
    pub fn start() -> Self {
        let mut m = Self {
            port: super::server::free_port(),
            child: None,
        };
        m.restart();
        m
    }

    /// `127.0.0.1:PORT`, as join.conf lists it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops it (an outage); `restart` brings it back, empty, on the same port.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: as in `signal`; a paused server must be thawed to die cleanly.
            unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes it (SIGSTOP): connections are accepted, nothing is answered.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Thaws it (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().expect("memcached running").id();
        // SAFETY: kill(2) on the pid of a child this guard owns.
        assert_eq!(
            unsafe { libc::kill(pid as i32, sig) },
            0,
            "signal memcached"
        );
    }

    /// (Re)starts it on its port and waits until it answers `version`.
    pub fn restart(&mut self) {
        self.stop();
        let mut cmd = Command::new("memcached");
        // memcached refuses to run as root unless told which user to be.
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            cmd.args(["-u", "root"]);
        }
        let child = cmd
            .args([
                "-l",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "0",
                "-m",
                "64",
                "-c",
                "4096",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run memcached (Debian package memcached; scripts/install-test-deps.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = self.conn() {
                if c.command("version\r\n").starts_with("VERSION") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "private memcached on port {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A raw text-protocol connection.
    pub fn conn(&self) -> std::io::Result<RawConn> {
        let s = TcpStream::connect_timeout(
            &([127, 0, 0, 1], self.port).into(),
            Duration::from_millis(500),
        )?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(RawConn {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    /// Every key it holds (`lru_crawler metadump all`).
    pub fn keys(&self) -> Vec<String> {
        let mut c = self.conn().expect("memcached connection");
        c.writer
            .write_all(b"lru_crawler metadump all\r\n")
            .expect("write");
        let mut keys = Vec::new();
        loop {
            let mut line = String::new();
            if c.reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let line = line.trim_end();
            if line == "END" || line.starts_with("ERROR") || line.starts_with("BUSY") {
                break;
            }
            if let Some(k) = line.strip_prefix("key=") {
                let k = k.split(' ').next().unwrap_or_default();
                keys.push(percent_decode(k));
            }
        }
        keys
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.conn().expect("memcached connection").get(key)
    }

    /// Stores `value` under `key` for `ttl_s` seconds.
    pub fn set(&self, key: &str, value: &[u8], ttl_s: u32) {
        let mut c = self.conn().expect("memcached connection");
        c.writer
            .write_all(format!("set {key} 0 {ttl_s} {}\r\n", value.len()).as_bytes())
            .unwrap();
        c.writer.write_all(value).unwrap();
        c.writer.write_all(b"\r\n").unwrap();
        let mut line = String::new();
        c.reader.read_line(&mut line).unwrap();
        assert_eq!(line.trim_end(), "STORED", "set {key}");
    }
}

impl Drop for PrivateMemcached {
    fn drop(&mut self) {
        self.stop();
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A raw text-protocol connection.
pub struct RawConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RawConn {
    /// Sends `cmd` and returns the first reply line.
    pub fn command(&mut self, cmd: &str) -> String {
        self.writer.write_all(cmd.as_bytes()).expect("write");
        let mut line = String::new();
        let _ = self.reader.read_line(&mut line);
        line
    }

    /// `get key`: its value, if any.
    pub fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        let head = self.command(&format!("get {key}\r\n"));
        let head = head.trim_end();
        if head == "END" {
            return None;
        }
        let len: usize = head
            .split(' ')
            .nth(3)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected memcached reply {head:?}"));
        let mut data = vec![0u8; len + 2];
        self.reader.read_exact(&mut data).expect("value");
        data.truncate(len);
        let mut end = String::new();
        self.reader.read_line(&mut end).expect("END");
        Some(data)
    }
}
