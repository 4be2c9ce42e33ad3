//! IPA servers found in DNS, as ipa-client and ipalib find them.
//!
//! * The servers of an IPA domain are the targets of its `_ldap._tcp.<domain>`
//!   SRV records (ipa-client's discovery, and ipalib's list of servers to
//!   fall back to). Every IPA server also runs a KDC and publishes
//!   `_kerberos._tcp.<domain>`; those targets are used when the domain has
//!   no `_ldap._tcp` record.
//! * Order (RFC 2782, as ipapython's `sort_prio_weight` does): lowest
//!   priority first; within one priority, a weighted random order (a record
//!   of weight 0 keeps a small chance); duplicate targets once.
//! * Only the target is used: the JSON-RPC API is `https://<target>/ipa/json`
//!   whatever port the LDAP or KDC record names (ipalib builds the URL the
//!   same way, with the path of the configured URL).
//! * The answer is kept for its TTL, and at least [`MIN_REFRESH`].

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use rand::Rng;

/// The shortest time a discovery answer (or failure) is kept.
pub const MIN_REFRESH: Duration = Duration::from_secs(30);

/// The SRV names queried, in order: the first that has records wins.
pub const SRV_SERVICES: [&str; 2] = ["_ldap._tcp", "_kerberos._tcp"];

/// Where to look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// The IPA DNS domain (`example.com`).
    pub domain: String,
    /// The name servers to ask; empty uses the system's (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// Bound on one lookup.
    pub timeout: Duration,
}

/// One SRV answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvTarget {
    /// The target host, without the final dot, lower case.
    pub host: String,
    /// The record's port (not used for the JSON-RPC URL).
    pub port: u16,
    /// Priority: lower first.
    pub priority: u16,
    /// Weight within a priority.
    pub weight: u16,
}

/// What a discovery found: the servers in the order to try them.
#[derive(Clone, Debug)]
pub struct Discovered {
    /// The SRV name that answered (`_ldap._tcp.example.com`), `None` when
    /// neither had records.
    pub name: Option<String>,
    /// The targets, ordered.
    pub targets: Vec<SrvTarget>,
    /// When to ask again.
    pub valid_until: Instant,
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The resolver could not be set up (unreadable resolv.conf).
    #[error("cannot set up the DNS resolver for IPA server discovery: {0} (set [ipa] discovery_nameservers)")]
    Resolver(String),
    /// The domain is not a DNS name.
    #[error("{domain:?} is not a DNS domain for IPA server discovery: {problem}")]
    BadDomain {
        /// The domain.
        domain: String,
        /// Why.
        problem: String,
    },
    /// DNS did not answer.
    #[error("looking up {name} SRV records: {problem}")]
    Lookup {
        /// The SRV name.
        name: String,
        /// The resolver's message.
        problem: String,
    },
}

fn resolver(cfg: &DiscoveryConfig) -> Result<TokioResolver, DiscoveryError> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = if cfg.nameservers.is_empty() {
        TokioResolver::builder(provider).map_err(|e| DiscoveryError::Resolver(e.to_string()))?
    } else {
        let servers = cfg
            .nameservers
            .iter()
            .map(|a| {
                let conn = |mut c: ConnectionConfig| {
                    c.port = a.port();
                    c
                };
                NameServerConfig::new(
                    a.ip(),
                    true,
                    vec![conn(ConnectionConfig::udp()), conn(ConnectionConfig::tcp())],
                )
            })
            .collect();
        TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
    };
    let opts = builder.options_mut();
    opts.timeout = cfg.timeout;
    opts.attempts = 1;
    builder
        .build()
        .map_err(|e| DiscoveryError::Resolver(e.to_string()))
}

/// Looks the servers up: `_ldap._tcp.<domain>`, else `_kerberos._tcp.<domain>`.
/// No record at all is not an error (`targets` is empty).
pub async fn discover(cfg: &DiscoveryConfig) -> Result<Discovered, DiscoveryError> {
    let domain = cfg.domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() || !domain.contains('.') {
        return Err(DiscoveryError::BadDomain {
            domain: cfg.domain.clone(),
            problem: "a single-label name cannot hold IPA's SRV records".into(),
        });
    }
    let resolver = resolver(cfg)?;
    let mut valid_until = Instant::now() + MIN_REFRESH;
    for service in SRV_SERVICES {
        let name = format!("{service}.{domain}.");
        match resolver.srv_lookup(name.as_str()).await {
            Ok(lookup) => {
                let mut records = Vec::new();
                for r in lookup.answers() {
                    if let RData::SRV(srv) = &r.data {
                        let host = srv
                            .target
                            .to_ascii()
                            .trim_end_matches('.')
                            .to_ascii_lowercase();
                        // "." as target: the service is decidedly not available.
                        if host.is_empty() {
                            continue;
                        }
                        records.push(SrvTarget {
                            host,
                            port: srv.port,
                            priority: srv.priority,
                            weight: srv.weight,
                        });
                    }
                }
                if records.is_empty() {
                    continue;
                }
                valid_until = valid_until.max(lookup.valid_until());
                let targets = order(records, &mut rand::thread_rng());
                tracing::info!(
                    srv = %name,
                    servers = %targets.iter().map(|t| t.host.as_str()).collect::<Vec<_>>().join(", "),
                    "discovered IPA servers in DNS"
                );
                return Ok(Discovered {
                    name: Some(name.trim_end_matches('.').to_string()),
                    targets,
                    valid_until,
                });
            }
            Err(e) if e.is_no_records_found() => continue,
            Err(e) => {
                return Err(DiscoveryError::Lookup {
                    name: name.trim_end_matches('.').to_string(),
                    problem: e.to_string(),
                })
            }
        }
    }
    tracing::warn!(
        domain,
        "no _ldap._tcp or _kerberos._tcp SRV record names an IPA server"
    );
    Ok(Discovered {
        name: None,
        targets: Vec::new(),
        valid_until,
    })
}

/// RFC 2782 order: by priority, then a weighted random order within each
/// priority; a target named twice is kept once (its first place).
pub fn order(mut records: Vec<SrvTarget>, rng: &mut impl Rng) -> Vec<SrvTarget> {
    records.sort_by_key(|r| r.priority);
    let mut seen = std::collections::HashSet::new();
    records.retain(|r| seen.insert(r.host.clone()));
    let mut out = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let n = rest
            .iter()
            .take_while(|r| r.priority == first.priority)
            .count();
        let (group, tail) = rest.split_at(n);
        out.extend(weighted_shuffle(group.to_vec(), rng));
        rest = tail;
    }
    out
}

/// Picks records one by one with a probability proportional to their
/// weight; a weight of 0 counts as 1/100 so that such a record still has a
/// small chance to come first (as ipapython does).
fn weighted_shuffle(mut group: Vec<SrvTarget>, rng: &mut impl Rng) -> Vec<SrvTarget> {
    let weight = |r: &SrvTarget| {
        if r.weight == 0 {
            0.01
        } else {
            f64::from(r.weight)
        }
    };
    let mut out = Vec::with_capacity(group.len());
    while group.len() > 1 {
        let total: f64 = group.iter().map(weight).sum();
        let pick = rng.gen_range(0.0..total);
        let mut acc = 0.0;
        let mut chosen = group.len() - 1;
        for (i, r) in group.iter().enumerate() {
            acc += weight(r);
            if pick < acc {
                chosen = i;
                break;
            }
        }
        out.push(group.remove(chosen));
    }
    out.extend(group);
    out
}

/// Parses a name server: `IP` (port 53) or `IP:PORT` (`[v6]:PORT`).
pub fn parse_nameserver(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    t.parse::<SocketAddr>()
        .map_err(|_| format!("{t:?} is not an IP address or IP:port"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn t(host: &str, priority: u16, weight: u16) -> SrvTarget {
        SrvTarget {
            host: host.into(),
            port: 389,
            priority,
            weight,
        }
    }

    #[test]
    fn lower_priority_always_first_and_duplicates_once() {
        for seed in 0..50 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let out = order(
                vec![
                    t("c", 20, 100),
                    t("a", 0, 0),
                    t("b", 10, 50),
                    t("b2", 10, 50),
                    t("a", 30, 10),
                ],
                &mut rng,
            );
            let hosts: Vec<_> = out.iter().map(|r| r.host.as_str()).collect();
            assert_eq!(hosts.len(), 4, "{hosts:?}");
            assert_eq!(hosts[0], "a");
            assert!(hosts[1..3].contains(&"b") && hosts[1..3].contains(&"b2"));
            assert_eq!(hosts[3], "c");
        }
    }

    #[test]
    fn weight_decides_who_comes_first_within_a_priority() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut heavy_first = 0;
        for _ in 0..1000 {
            let out = order(vec![t("light", 0, 1), t("heavy", 0, 99)], &mut rng);
            if out[0].host == "heavy" {
                heavy_first += 1;
            }
        }
        // Expected 990 of 1000; the bounds fail only for a broken order.
        assert!(heavy_first > 950, "{heavy_first}");
        let zero_first = (0..2000)
            .filter(|_| order(vec![t("zero", 0, 0), t("one", 0, 1)], &mut rng)[0].host == "zero")
            .count();
        assert!(zero_first > 0 && zero_first < 200, "{zero_first}");
    }

    #[test]
    fn name_servers_with_and_without_port() {
        assert_eq!(
            parse_nameserver("127.0.0.1").unwrap(),
            "127.0.0.1:53".parse().unwrap()
        );
        assert_eq!(
            parse_nameserver(" 127.0.0.1:5353 ").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_nameserver("[::1]:5353").unwrap(),
            "[::1]:5353".parse().unwrap()
        );
        assert!(parse_nameserver("dns.example.com").is_err());
    }
}
