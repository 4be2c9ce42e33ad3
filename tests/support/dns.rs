//! A real DNS server for the tests: Debian's `dnsmasq` (package
//! `dnsmasq-base`, installed by scripts/install-test-deps.sh), unprivileged
//! on a free loopback port, answering only the records a test gives it.
//!
//! ```ignore
//! let dns = support::dns::Dnsmasq::start(&["example.test"], &[Srv::new("_ldap._tcp.example.test", "ipa1.example.test", 389, 0, 100)], &[]);
//! // ask 127.0.0.1:dns.port
//! ```

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One SRV record.
#[derive(Clone, Debug)]
pub struct Srv {
    /// `_ldap._tcp.example.test`.
    pub name: String,
    /// The target host.
    pub target: String,
    /// Port.
    pub port: u16,
    /// Priority.
    pub priority: u16,
    /// Weight.
    pub weight: u16,
}

impl Srv {
    /// A record.
    pub fn new(name: &str, target: &str, port: u16, priority: u16, weight: u16) -> Self {
        Self {
            name: name.into(),
            target: target.into(),
            port,
            priority,
            weight,
        }
    }
}

/// A running dnsmasq, killed (by its PID) on drop.
pub struct Dnsmasq {
    /// The UDP/TCP port it answers on (127.0.0.1).
    pub port: u16,
    child: Child,
}

impl Dnsmasq {
    /// Starts dnsmasq serving `srv` records and `hosts` (name, IPv4)
    /// records, nothing else (no upstream, no /etc/hosts), and waits until
    /// it reports that it started. It answers for `domains` as their only
    /// server: a name it has no record for gets NXDOMAIN; other names are
    /// refused (it has no upstream).
    pub fn start(domains: &[&str], srv: &[Srv], hosts: &[(&str, &str)]) -> Self {
        let port = super::server::free_port();
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--no-daemon",
            "--conf-file=/dev/null",
            &format!("--port={port}"),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--no-negcache",
            "--pid-file=",
            "--log-facility=-",
        ]);
        for d in domains {
            cmd.arg(format!("--local=/{d}/"));
        }
        for r in srv {
            cmd.arg(format!(
                "--srv-host={},{},{},{},{}",
                r.name, r.target, r.port, r.priority, r.weight
            ));
        }
        for (name, ip) in hosts {
            cmd.arg(format!("--host-record={name},{ip}"));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start dnsmasq (scripts/install-test-deps.sh installs dnsmasq-base)");
        let stderr = child.stderr.take().expect("dnsmasq stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut said = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                said.push_str(&line);
                said.push('\n');
                if line.contains("started, version") {
                    let _ = tx.send(Ok(()));
                }
            }
            let _ = tx.send(Err(said));
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(())) => {}
            Ok(Err(said)) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("dnsmasq did not start on port {port}: {said}");
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("dnsmasq did not report that it started on port {port} within 10 s");
            }
        }
        Self { port, child }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
