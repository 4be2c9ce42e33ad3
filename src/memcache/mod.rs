//! memcached servers as one store: keys spread over the servers by
//! consistent hashing ([`ring`]), a few idle connections kept per server,
//! a timeout on every operation, and a server that failed left alone for
//! `dead_retry` (python-memcached's and oslo.cache's behaviour).
//!
//! A key's server is chosen from the configured list alone, never from
//! which servers answer: keys of a dead server are not moved to another
//! one, since replicas that disagree about who is dead would then keep an
//! instance's claim in two places. Callers treat an operation on a dead
//! server as the store being down for that key.
//!
//! The operations use memcached's meta protocol (memcached 1.6): `add`
//! ([`Memcache::add`]) is the atomic claim, and a delete or rewrite that
//! names the CAS value read before only succeeds when nobody changed the
//! item in between.

pub mod ring;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_memcached::{Client, Error as ClientError, MetaProtocol, Status};

use self::ring::Ring;

/// Idle connections kept per server.
const MAX_IDLE: usize = 16;

/// Why an operation failed. Messages name the server, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McError {
    /// The server failed shortly before and is not tried again yet.
    #[error(
        "memcached {server} failed {ago_s} s ago and is left alone until it is retried ({reason})"
    )]
    MarkedDown {
        /// `host:port`.
        server: String,
        /// Seconds since it was marked.
        ago_s: u64,
        /// The failure that marked it.
        reason: String,
    },
    /// No reply within the timeout; the server is not marked down for
    /// one slow reply (a loaded host).
    #[error("memcached {server}: no reply within {timeout:?}")]
    Slow {
        /// `host:port`.
        server: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The operation failed: connection refused or lost, no reply to the
    /// probe in time, or an error reply.
    #[error("memcached {server}: {reason}")]
    Failed {
        /// `host:port`.
        server: String,
        /// What went wrong.
        reason: String,
    },
}

/// Why a server list cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerListError {
    /// No server is listed.
    #[error("no memcached server is listed")]
    Empty,
    /// An entry is not `host:port`.
    #[error("{0:?} is not host:port (e.g. 192.0.2.10:11211 or mc1.example.com:11211)")]
    Malformed(String),
    /// An IPv6 address: the client connects over IPv4 only.
    #[error("{0:?} is an IPv6 address; the memcached client connects over IPv4: list an IPv4 address or a name with one")]
    Ipv6(String),
}

/// Normalizes one configured server: `host:port` or `inet:host:port`
/// (oslo.cache's spellings) to `host:port`; a missing port is 11211.
/// oslo.cache's `inet6:[addr]:port` is refused with its own message: the
/// client (async-memcached) opens IPv4 sockets only.
pub fn parse_server(entry: &str) -> Result<String, ServerListError> {
    let bad = || ServerListError::Malformed(entry.to_string());
    let s = entry.trim();
    let s = s.strip_prefix("inet:").unwrap_or(s);
    if entry.trim().starts_with("inet6:") || s.starts_with('[') || s.matches(':').count() > 1 {
        return Err(ServerListError::Ipv6(entry.trim().to_string()));
    }
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(bad());
    }
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h.to_string(), p),
        None => (s.to_string(), "11211"),
    };
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok(format!("{host}:{port}"))
}

/// Normalizes a configured list (see [`parse_server`]); duplicates are
/// listed once.
pub fn parse_servers(entries: &[String]) -> Result<Vec<String>, ServerListError> {
    let mut out: Vec<String> = Vec::new();
    for e in entries.iter().filter(|e| !e.trim().is_empty()) {
        let s = parse_server(e)?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    if out.is_empty() {
        return Err(ServerListError::Empty);
    }
    Ok(out)
}

struct Dead {
    since: Instant,
    reason: String,
}

struct Server {
    addr: String,
    idle: Mutex<Vec<Client>>,
    dead: Mutex<Option<Dead>>,
}

/// What an operation found, besides success.
enum Outcome<T> {
    Done(T),
    /// The server answered with a status that is not success (not stored,
    /// exists, not found): the connection stays usable.
    Refused(Status),
}

/// An item read with its CAS value.
#[derive(Debug, Clone)]
pub struct Item {
    /// The value.
    pub value: Vec<u8>,
    /// Its CAS value, for [`Memcache::delete_if_unchanged`] and
    /// [`Memcache::touch_if_unchanged`].
    pub cas: u64,
}

/// Several memcached servers as one store (cheap to share in an `Arc`).
pub struct Memcache {
    servers: Vec<Server>,
    ring: Ring,
    timeout: Duration,
    dead_retry: Duration,
}

impl std::fmt::Debug for Memcache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memcache")
            .field("servers", &self.addrs())
            .field("timeout", &self.timeout)
            .field("dead_retry", &self.dead_retry)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Memcached expiry of `ttl`: whole seconds rounded up, plus one, since
/// memcached's clock ticks in whole seconds and an item given `T` lives
/// between `T - 1` and `T` seconds; so an item lives at least `ttl` and
/// at most a second more (never 0, which would mean "never expires").
/// Entries carry their own exact end where it matters.
pub fn ttl_seconds(ttl: Duration) -> u64 {
    ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0) + 1
}

impl Memcache {
    /// A store over `servers` (already normalized by [`parse_servers`]).
    /// Connects lazily: nothing is contacted here.
    pub fn new(servers: Vec<String>, timeout: Duration, dead_retry: Duration) -> Self {
        let ring = Ring::new(&servers);
        Memcache {
            servers: servers
                .into_iter()
                .map(|addr| Server {
                    addr,
                    idle: Mutex::new(Vec::new()),
                    dead: Mutex::new(None),
                })
                .collect(),
            ring,
            timeout,
            dead_retry,
        }
    }

    /// The servers, as `host:port`.
    pub fn addrs(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.addr.clone()).collect()
    }

    /// The index of the server that holds keys routed by `route`.
    pub fn server_for(&self, route: &str) -> usize {
        self.ring.server_for(route.as_bytes()).unwrap_or(0)
    }

    /// The address of server `idx`.
    pub fn addr(&self, idx: usize) -> &str {
        &self.servers[idx].addr
    }

    /// Whether server `idx` is marked down (failed within `dead_retry`).
    pub fn is_marked_down(&self, idx: usize) -> bool {
        lock(&self.servers[idx].dead)
            .as_ref()
            .is_some_and(|d| d.since.elapsed() < self.dead_retry)
    }

    /// The servers marked down, with the failure that marked each.
    pub fn down_servers(&self) -> Vec<(String, String)> {
        (0..self.servers.len())
            .filter(|&i| self.is_marked_down(i))
            .map(|i| {
                let reason = lock(&self.servers[i].dead)
                    .as_ref()
                    .map(|d| d.reason.clone())
                    .unwrap_or_default();
                (self.servers[i].addr.clone(), reason)
            })
            .collect()
    }

    fn mark_down(&self, idx: usize, reason: &str) {
        let mut d = lock(&self.servers[idx].dead);
        if d.as_ref()
            .is_none_or(|d| d.since.elapsed() >= self.dead_retry)
        {
            *d = Some(Dead {
                since: Instant::now(),
                reason: reason.to_string(),
            });
        }
    }

    fn mark_up(&self, idx: usize) {
        *lock(&self.servers[idx].dead) = None;
    }

    async fn connect(&self, idx: usize) -> Result<Client, String> {
        if let Some(c) = lock(&self.servers[idx].idle).pop() {
            if !c.is_closed() {
                return Ok(c);
            }
        }
        let addr = self.servers[idx].addr.clone();
        match tokio::time::timeout(self.timeout, Client::new(format!("tcp://{addr}"))).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(format!("cannot connect: {}", describe(&e))),
            Err(_) => Err(format!("no connection within {:?}", self.timeout)),
        }
    }

    /// Runs `op` on a connection to server `idx` within the timeout.
    /// `force` (the health probe) tries a server marked down, and marks it
    /// down when it does not reply in time.
    async fn run<T>(
        &self,
        idx: usize,
        force: bool,
        op: impl for<'c> FnOnce(
            &'c mut Client,
        )
            -> futures::future::BoxFuture<'c, Result<Outcome<T>, ClientError>>,
    ) -> Result<Outcome<T>, McError> {
        let server = &self.servers[idx];
        if !force {
            if let Some(d) = lock(&server.dead).as_ref() {
                if d.since.elapsed() < self.dead_retry {
                    return Err(McError::MarkedDown {
                        server: server.addr.clone(),
                        ago_s: d.since.elapsed().as_secs(),
                        reason: d.reason.clone(),
                    });
                }
            }
        }
        let fail = |reason: String| {
            self.mark_down(idx, &reason);
            McError::Failed {
                server: server.addr.clone(),
                reason,
            }
        };
        let mut client = self.connect(idx).await.map_err(fail)?;
        // A timed-out operation leaves its connection closed (the client
        // discards a half-read reply), so it is never reused.
        match tokio::time::timeout(self.timeout, op(&mut client)).await {
            // One slow reply (a loaded host) does not make a server dead;
            // an unanswered probe does.
            Err(_) if !force => Err(McError::Slow {
                server: server.addr.clone(),
                timeout: self.timeout,
            }),
            Err(_) => Err(fail(format!("no reply within {:?}", self.timeout))),
            Ok(Err(ClientError::Protocol(Status::Error(e)))) => {
                if !client.is_closed() {
                    self.keep(idx, client);
                }
                self.mark_up(idx);
                Err(McError::Failed {
                    server: server.addr.clone(),
                    reason: format!("error reply: {e:?}"),
                })
            }
            Ok(Err(ClientError::Protocol(s))) => {
                self.keep(idx, client);
                self.mark_up(idx);
                Ok(Outcome::Refused(s))
            }
            Ok(Err(e)) => Err(fail(describe(&e))),
            Ok(Ok(v)) => {
                self.keep(idx, client);
                self.mark_up(idx);
                Ok(v)
            }
        }
    }

    fn keep(&self, idx: usize, client: Client) {
        if client.is_closed() {
            return;
        }
        let mut idle = lock(&self.servers[idx].idle);
        if idle.len() < MAX_IDLE {
            idle.push(client);
        }
    }

    fn unexpected(&self, idx: usize, s: Status) -> McError {
        McError::Failed {
            server: self.servers[idx].addr.clone(),
            reason: format!("unexpected reply {s:?}"),
        }
    }

    /// The item under `key` (on the server of `route`), with its CAS value.
    pub async fn get(&self, route: &str, key: &str) -> Result<Option<Item>, McError> {
        let idx = self.server_for(route);
        let key = key.to_string();
        let got = self
            .run(idx, false, move |c| {
                Box::pin(async move {
                    let v = c.meta_get(&key, false, None, Some(&["v", "c"])).await?;
                    Ok(Outcome::Done(v))
                })
            })
            .await?;
        match got {
            Outcome::Done(None) | Outcome::Refused(Status::NotFound) => Ok(None),
            Outcome::Done(Some(v)) => Ok(Some(Item {
                value: v.data.unwrap_or_default(),
                cas: v.cas.unwrap_or(0),
            })),
            Outcome::Refused(s) => Err(self.unexpected(idx, s)),
        }
    }

    /// Stores `value` under `key` for `ttl`, whatever was there.
    pub async fn set(
        &self,
        route: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), McError> {
        let idx = self.server_for(route);
        match self.store(idx, key, value, ttl, None).await? {
            Outcome::Done(()) => Ok(()),
            Outcome::Refused(s) => Err(self.unexpected(idx, s)),
        }
    }

    /// Stores `value` under `key` for `ttl` only if no item is there:
    /// whether it was stored. Atomic on the server, hence the claim.
    pub async fn add(
        &self,
        route: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, McError> {
        let idx = self.server_for(route);
        match self.store(idx, key, value, ttl, Some("ME".into())).await? {
            Outcome::Done(()) => Ok(true),
            Outcome::Refused(Status::NotStored | Status::Exists) => Ok(false),
            Outcome::Refused(s) => Err(self.unexpected(idx, s)),
        }
    }

    /// Rewrites `key` with `value` and a new `ttl` only if its CAS value is
    /// still `cas`: whether it was (false: changed, expired or deleted).
    pub async fn touch_if_unchanged(
        &self,
        route: &str,
        key: &str,
        value: &[u8],
        cas: u64,
        ttl: Duration,
    ) -> Result<bool, McError> {
        let idx = self.server_for(route);
        match self
            .store(idx, key, value, ttl, Some(format!("C{cas}")))
            .await?
        {
            Outcome::Done(()) => Ok(true),
            Outcome::Refused(Status::Exists | Status::NotFound | Status::NotStored) => Ok(false),
            Outcome::Refused(s) => Err(self.unexpected(idx, s)),
        }
    }

    async fn store(
        &self,
        idx: usize,
        key: &str,
        value: &[u8],
        ttl: Duration,
        extra: Option<String>,
    ) -> Result<Outcome<()>, McError> {
        let key = key.to_string();
        let value = value.to_vec();
        let ttl = format!("T{}", ttl_seconds(ttl));
        self.run(idx, false, move |c| {
            Box::pin(async move {
                let mut flags: Vec<&str> = vec![&ttl];
                if let Some(e) = &extra {
                    flags.push(e);
                }
                c.meta_set(&key, value.as_slice(), false, None, Some(&flags))
                    .await?;
                Ok(Outcome::Done(()))
            })
        })
        .await
    }

    /// Deletes `key`: whether it was there.
    pub async fn delete(&self, route: &str, key: &str) -> Result<bool, McError> {
        self.remove(route, key, None).await
    }

    /// Deletes `key` only if its CAS value is still `cas`: whether it did.
    pub async fn delete_if_unchanged(
        &self,
        route: &str,
        key: &str,
        cas: u64,
    ) -> Result<bool, McError> {
        self.remove(route, key, Some(format!("C{cas}"))).await
    }

    async fn remove(&self, route: &str, key: &str, cas: Option<String>) -> Result<bool, McError> {
        let idx = self.server_for(route);
        let key = key.to_string();
        let got = self
            .run(idx, false, move |c| {
                Box::pin(async move {
                    let flags: Vec<&str> = cas.iter().map(String::as_str).collect();
                    c.meta_delete(&key, false, None, Some(&flags)).await?;
                    Ok(Outcome::Done(()))
                })
            })
            .await?;
        match got {
            Outcome::Done(()) => Ok(true),
            Outcome::Refused(Status::NotFound | Status::Exists) => Ok(false),
            Outcome::Refused(s) => Err(self.unexpected(idx, s)),
        }
    }

    /// Asks server `idx` its version (one round trip), even when it is
    /// marked down; an answer clears the mark, a failure sets it.
    pub async fn ping(&self, idx: usize) -> Result<(), McError> {
        match self
            .run(idx, true, |c| {
                Box::pin(async move {
                    c.version().await?;
                    Ok(Outcome::Done(()))
                })
            })
            .await?
        {
            Outcome::Done(()) => Ok(()),
            Outcome::Refused(s) => Err(self.unexpected(idx, s)),
        }
    }
}

fn describe(e: &ClientError) -> String {
    match e {
        ClientError::Connect(e) | ClientError::Io(e) => e.to_string(),
        ClientError::ConnectionClosed => "connection closed".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_spellings_of_oslo_cache_are_accepted() {
        assert_eq!(parse_server("127.0.0.1:11211").unwrap(), "127.0.0.1:11211");
        assert_eq!(parse_server(" inet:mc1:11212 ").unwrap(), "mc1:11212");
        assert_eq!(parse_server("mc1").unwrap(), "mc1:11211");
        for v6 in ["inet6:[2001:db8::1]:11211", "[::1]", "2001:db8::1"] {
            assert_eq!(
                parse_server(v6),
                Err(ServerListError::Ipv6(v6.to_string())),
                "{v6}"
            );
        }
        for bad in ["", "mc1:0", "mc1:http", "unix:/run/mc.sock", "mc1:"] {
            assert_eq!(
                parse_server(bad),
                Err(ServerListError::Malformed(bad.to_string())),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_list_is_deduplicated_and_may_not_be_empty() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_servers(&l(&["a:1", "inet:a:1", "b:2"])).unwrap(),
            ["a:1", "b:2"]
        );
        assert_eq!(parse_servers(&l(&[" "])), Err(ServerListError::Empty));
    }

    #[test]
    fn ttls_round_up_to_whole_seconds_with_a_tick_to_spare() {
        assert_eq!(ttl_seconds(Duration::from_millis(1)), 2);
        assert_eq!(ttl_seconds(Duration::from_millis(2500)), 4);
        assert_eq!(ttl_seconds(Duration::from_secs(600)), 601);
        assert_eq!(ttl_seconds(Duration::ZERO), 1);
    }

    #[tokio::test]
    async fn a_server_that_refuses_is_marked_down_for_dead_retry() {
        // A port the OS just handed out and took back: nothing listens.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mc = Memcache::new(
            vec![format!("127.0.0.1:{port}")],
            Duration::from_secs(1),
            Duration::from_secs(60),
        );
        let e = mc.get("i", "k").await.unwrap_err();
        assert!(matches!(e, McError::Failed { .. }), "{e}");
        assert!(mc.is_marked_down(0));
        let e = mc.get("i", "k").await.unwrap_err();
        assert!(matches!(e, McError::MarkedDown { .. }), "{e}");
        assert_eq!(mc.down_servers().len(), 1);
        // The probe still tries it.
        assert!(matches!(mc.ping(0).await, Err(McError::Failed { .. })));
    }
}
