//! The IPA servers one client talks to: which one each attempt goes to,
//! and a circuit breaker per server.
//!
//! * The servers, in order: those configured (join.conf, or
//!   `/etc/ipa/default.conf`), then those found in DNS ([`super::discovery`])
//!   that are not already listed.
//! * One server is *current*: every call goes there while it answers, so
//!   that calls share its session (the `ipa_session` cookie is only valid
//!   on the server that issued it; each server keeps its own session here).
//! * A connection failure or an HTTP 5xx answer of a server counts against
//!   it; after `failures` of them in a row its breaker opens and the server
//!   is tried only after every other one, for `open_for`. Then it is tried
//!   again in its place (half-open): one more failure opens it again, one
//!   success closes it.
//! * When the current server fails, the attempt goes to the next server in
//!   [`ServerPool::attempt_order`]; a server that answers becomes current.
//!   The current server stays current after the others recover: moving back
//!   would only cost a login.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use url::Url;

use super::discovery::{self, DiscoveryConfig};
use super::error::IpaError;
use super::http::Endpoints;
use super::secret::Secret;

/// Where a server's address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerSource {
    /// join.conf (`[DEFAULT] url`, `[ipa] server`).
    Configured,
    /// `/etc/ipa/default.conf` (`xmlrpc_uri`, `server`).
    DefaultConf,
    /// A DNS SRV record of the IPA domain.
    Dns,
}

impl ServerSource {
    /// For logs and the status report.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Configured => "join.conf",
            Self::DefaultConf => "/etc/ipa/default.conf",
            Self::Dns => "DNS SRV",
        }
    }
}

/// One server's address: the URL to call and the FQDN for the Referer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAddr {
    /// Any URL on the server (`https://ipa1.example.com/ipa/json`).
    pub url: Url,
    /// The server's FQDN when it differs from the URL's host (a test double
    /// on loopback); `None` uses the URL's host.
    pub fqdn: Option<String>,
    /// Where it came from.
    pub source: ServerSource,
}

impl ServerAddr {
    /// The host calls are addressed to, lower case (to find duplicates).
    pub fn key(&self) -> String {
        let host = self.url.host_str().unwrap_or_default().to_ascii_lowercase();
        match self.url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }
}

/// When a server's breaker opens, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Connection failures or 5xx answers in a row that open it.
    pub failures: u32,
    /// How long an open server is tried only after the others.
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            failures: 3,
            open_for: Duration::from_secs(30),
        }
    }
}

/// A server's breaker as the status report shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go to it in its turn.
    Closed,
    /// Tried after every other server, for the time left.
    Open(Duration),
    /// The open time is over: the next attempt tests it.
    HalfOpen,
}

#[derive(Default)]
struct Breaker {
    consecutive: u32,
    opened_at: Option<Instant>,
    last_problem: Option<String>,
}

/// The session with one server.
#[derive(Default)]
pub(crate) struct SessionState {
    pub cookie: Option<Secret>,
    /// Bumped on every login, so that a 401 only drops the cookie it was
    /// answered for, not a newer one another caller just obtained.
    pub generation: u64,
}

/// One server: where it is, its session and its breaker.
pub struct Server {
    addr: ServerAddr,
    endpoints: Endpoints,
    pub(crate) session: Mutex<SessionState>,
    breaker: StdMutex<Breaker>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("url", &self.endpoints.session_json.as_str())
            .field("source", &self.addr.source)
            .finish()
    }
}

impl Server {
    fn new(addr: ServerAddr) -> Result<Self, IpaError> {
        let endpoints = Endpoints::new(&addr.url, addr.fqdn.as_deref())?;
        Ok(Self {
            addr,
            endpoints,
            session: Mutex::new(SessionState::default()),
            breaker: StdMutex::new(Breaker::default()),
        })
    }

    /// Its address.
    pub fn addr(&self) -> &ServerAddr {
        &self.addr
    }

    /// Its URLs and Referer.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Its breaker now, under `policy`.
    pub fn breaker(&self, policy: &BreakerPolicy) -> BreakerState {
        let b = self.breaker.lock().expect("breaker");
        match b.opened_at {
            None => BreakerState::Closed,
            Some(at) => match policy.open_for.checked_sub(at.elapsed()) {
                Some(left) if !left.is_zero() => BreakerState::Open(left),
                _ => BreakerState::HalfOpen,
            },
        }
    }

    /// Why its last attempt failed, while its breaker counts failures.
    pub fn last_problem(&self) -> Option<String> {
        self.breaker.lock().expect("breaker").last_problem.clone()
    }

    fn is_open(&self, policy: &BreakerPolicy) -> bool {
        matches!(self.breaker(policy), BreakerState::Open(_))
    }

    /// A connection failure or 5xx: counts against it; opens the breaker at
    /// the threshold (again at once when half-open).
    pub(crate) fn record_failure(&self, policy: &BreakerPolicy, problem: &str) {
        let mut b = self.breaker.lock().expect("breaker");
        b.consecutive = b.consecutive.saturating_add(1);
        b.last_problem = Some(problem.to_string());
        if b.consecutive >= policy.failures.max(1) {
            if b.opened_at.is_none() {
                tracing::warn!(
                    server = %self.endpoints.server_fqdn,
                    failures = b.consecutive,
                    open_for_s = policy.open_for.as_secs_f64(),
                    "IPA server failing: trying it after the other servers for a while ({problem})"
                );
            }
            b.opened_at = Some(Instant::now());
        }
    }

    /// An answer (any answer IPA's web server produced that is not a 5xx):
    /// the server works; closes its breaker.
    pub(crate) fn record_success(&self) {
        let mut b = self.breaker.lock().expect("breaker");
        if b.opened_at.is_some() {
            tracing::info!(server = %self.endpoints.server_fqdn, "IPA server answers again");
        }
        *b = Breaker::default();
    }
}

#[derive(Default)]
struct DnsServers {
    servers: Vec<Arc<Server>>,
    /// When the answer is due again; `None` before the first lookup.
    refresh_at: Option<Instant>,
    /// A background refresh is running.
    refreshing: bool,
}

/// The servers of one client.
pub struct ServerPool {
    fixed: Vec<Arc<Server>>,
    discovery: Option<DiscoveryConfig>,
    dns: Arc<Mutex<DnsServers>>,
    current: StdMutex<Option<Arc<Server>>>,
    policy: BreakerPolicy,
}

impl std::fmt::Debug for ServerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerPool")
            .field("configured", &self.fixed)
            .field("discovery", &self.discovery)
            .finish()
    }
}

impl ServerPool {
    /// The configured servers (at least one, unless `discovery` is set)
    /// and, when set, where to discover more.
    pub fn new(
        addrs: Vec<ServerAddr>,
        discovery: Option<DiscoveryConfig>,
        policy: BreakerPolicy,
    ) -> Result<Self, IpaError> {
        let mut fixed: Vec<Arc<Server>> = Vec::new();
        for a in addrs {
            if fixed.iter().any(|s| s.addr.key() == a.key()) {
                continue;
            }
            fixed.push(Arc::new(Server::new(a)?));
        }
        if fixed.is_empty() && discovery.is_none() {
            return Err(IpaError::Setup(
                "no IPA server is configured and DNS discovery is off".into(),
            ));
        }
        Ok(Self {
            fixed,
            discovery,
            dns: Arc::new(Mutex::new(DnsServers::default())),
            current: StdMutex::new(None),
            policy,
        })
    }

    /// The breaker policy.
    pub fn policy(&self) -> &BreakerPolicy {
        &self.policy
    }

    /// The first configured server (for the Referer of a client with one
    /// server, and the URL shown in messages).
    pub fn primary(&self) -> Option<&Arc<Server>> {
        self.fixed.first()
    }

    /// Where discovery looks, when it is on.
    pub fn discovery(&self) -> Option<&DiscoveryConfig> {
        self.discovery.as_ref()
    }

    /// Every server known now, in order (DNS asked first when its answer
    /// is due).
    pub async fn servers(&self) -> Vec<Arc<Server>> {
        let mut all = self.fixed.clone();
        all.extend(self.dns_servers().await);
        all
    }

    /// The server calls go to now, if one answered already.
    pub fn current(&self) -> Option<Arc<Server>> {
        self.current.lock().expect("current").clone()
    }

    /// The servers to try for one attempt, in order: the current one, then
    /// the others in their order, servers with an open breaker last.
    pub async fn attempt_order(&self) -> Vec<Arc<Server>> {
        let all = self.servers().await;
        let current = self.current();
        let mut order: Vec<Arc<Server>> = Vec::with_capacity(all.len());
        if let Some(c) = current.as_ref().filter(|c| !c.is_open(&self.policy)) {
            order.push(c.clone());
        }
        let not_current = |s: &&Arc<Server>| current.as_ref().is_none_or(|c| !Arc::ptr_eq(c, s));
        order.extend(
            all.iter()
                .filter(not_current)
                .filter(|s| !s.is_open(&self.policy))
                .cloned(),
        );
        order.extend(all.iter().filter(|s| s.is_open(&self.policy)).cloned());
        order
    }

    /// `server` answered: calls go there from now on.
    pub(crate) fn make_current(&self, server: &Arc<Server>) {
        let mut cur = self.current.lock().expect("current");
        let changed = cur.as_ref().is_none_or(|c| !Arc::ptr_eq(c, server));
        if changed {
            if let Some(old) = cur.as_ref() {
                tracing::warn!(
                    from = %old.endpoints.server_fqdn,
                    to = %server.endpoints.server_fqdn,
                    "IPA calls fail over to another server"
                );
                crate::metrics::ipa_failover(&server.endpoints.server_fqdn);
            }
            *cur = Some(server.clone());
        }
    }

    /// The servers found in DNS. The first time, the lookup is waited for
    /// (concurrent callers share it); later, a due refresh runs in the
    /// background and calls go on with the servers known meanwhile, so
    /// that a slow or failing DNS server never holds up IPA calls.
    async fn dns_servers(&self) -> Vec<Arc<Server>> {
        let Some(cfg) = &self.discovery else {
            return Vec::new();
        };
        let mut dns = self.dns.lock().await;
        match dns.refresh_at {
            Some(at) if Instant::now() < at || dns.refreshing => dns.servers.clone(),
            Some(_) => {
                dns.refreshing = true;
                let (cfg, fixed, state) = (cfg.clone(), self.fixed.clone(), self.dns.clone());
                let known = dns.servers.clone();
                tokio::spawn(async move {
                    let (servers, refresh_at) = lookup(&cfg, &fixed, &known).await;
                    let mut dns = state.lock().await;
                    if let Some(servers) = servers {
                        dns.servers = servers;
                    }
                    dns.refresh_at = Some(refresh_at);
                    dns.refreshing = false;
                });
                dns.servers.clone()
            }
            None => {
                let (servers, refresh_at) = lookup(cfg, &self.fixed, &dns.servers).await;
                if let Some(servers) = servers {
                    dns.servers = servers;
                }
                dns.refresh_at = Some(refresh_at);
                dns.servers.clone()
            }
        }
    }
}

/// Looks the servers up in DNS: the servers not already configured, in
/// DNS order (`None` when the lookup failed: keep the known ones), and
/// when to ask again. A server found again keeps its session and breaker.
async fn lookup(
    cfg: &DiscoveryConfig,
    fixed: &[Arc<Server>],
    known: &[Arc<Server>],
) -> (Option<Vec<Arc<Server>>>, Instant) {
    let found = match discovery::discover(cfg).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "IPA server discovery failed; using the servers known");
            return (None, Instant::now() + discovery::MIN_REFRESH);
        }
    };
    let path = fixed
        .first()
        .map(|s| s.addr.url.path().to_string())
        .filter(|p| p.len() > 1)
        .unwrap_or_else(|| "/ipa/json".into());
    let mut servers = Vec::new();
    for t in found.targets {
        let Ok(url) = Url::parse(&format!("https://{}{path}", t.host)) else {
            tracing::warn!(target = %t.host, "SRV target is not a host name; skipped");
            continue;
        };
        let addr = ServerAddr {
            url,
            fqdn: None,
            source: ServerSource::Dns,
        };
        let configured = fixed.iter().any(|s| {
            s.addr.key() == addr.key() || s.endpoints.server_fqdn.eq_ignore_ascii_case(&t.host)
        });
        if configured {
            continue;
        }
        let server = match known.iter().find(|s| s.addr.key() == addr.key()) {
            Some(s) => s.clone(),
            None => match Server::new(addr) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    tracing::warn!(target = %t.host, error = %e, "SRV target skipped");
                    continue;
                }
            },
        };
        servers.push(server);
    }
    let refresh_at = found
        .valid_until
        .max(Instant::now() + discovery::MIN_REFRESH);
    (Some(servers), refresh_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(host: &str) -> ServerAddr {
        ServerAddr {
            url: Url::parse(&format!("https://{host}/ipa/json")).unwrap(),
            fqdn: None,
            source: ServerSource::Configured,
        }
    }

    fn hosts(order: &[Arc<Server>]) -> Vec<String> {
        order
            .iter()
            .map(|s| s.endpoints().server_fqdn.clone())
            .collect()
    }

    #[tokio::test]
    async fn current_first_open_last_and_duplicates_once() {
        let policy = BreakerPolicy {
            failures: 2,
            open_for: Duration::from_secs(60),
        };
        let pool = ServerPool::new(
            vec![
                addr("a.test"),
                addr("b.test"),
                addr("c.test"),
                addr("A.test"),
            ],
            None,
            policy,
        )
        .unwrap();
        assert_eq!(
            hosts(&pool.attempt_order().await),
            ["a.test", "b.test", "c.test"]
        );
        let order = pool.attempt_order().await;
        pool.make_current(&order[1]);
        assert_eq!(
            hosts(&pool.attempt_order().await),
            ["b.test", "a.test", "c.test"]
        );
        // One failure is not enough to open it.
        order[1].record_failure(&policy, "connection refused");
        assert_eq!(order[1].breaker(&policy), BreakerState::Closed);
        assert_eq!(hosts(&pool.attempt_order().await)[0], "b.test");
        order[1].record_failure(&policy, "connection refused");
        assert!(matches!(order[1].breaker(&policy), BreakerState::Open(_)));
        assert_eq!(
            hosts(&pool.attempt_order().await),
            ["a.test", "c.test", "b.test"]
        );
        order[1].record_success();
        assert_eq!(order[1].breaker(&policy), BreakerState::Closed);
        assert_eq!(hosts(&pool.attempt_order().await)[0], "b.test");
    }

    #[tokio::test]
    async fn an_open_breaker_half_opens_after_its_time_and_one_failure_reopens_it() {
        let policy = BreakerPolicy {
            failures: 1,
            open_for: Duration::from_millis(1),
        };
        let pool = ServerPool::new(vec![addr("a.test"), addr("b.test")], None, policy).unwrap();
        let a = pool.attempt_order().await[0].clone();
        a.record_failure(&policy, "HTTP 503");
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(a.breaker(&policy), BreakerState::HalfOpen);
        assert_eq!(hosts(&pool.attempt_order().await)[0], "a.test");
        a.record_failure(&policy, "HTTP 503");
        assert_eq!(a.last_problem().as_deref(), Some("HTTP 503"));
        let long = BreakerPolicy {
            open_for: Duration::from_secs(60),
            ..policy
        };
        assert!(matches!(a.breaker(&long), BreakerState::Open(_)));
    }

    #[test]
    fn no_server_and_no_discovery_is_a_setup_error() {
        let e = ServerPool::new(vec![], None, BreakerPolicy::default()).unwrap_err();
        assert!(e.to_string().contains("no IPA server"), "{e}");
    }
}
