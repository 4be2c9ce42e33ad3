//! `transport_url` as oslo.messaging reads it.
//!
//! `rabbit://user:pass@host:port[,user2:pass2@host2:port2]/vhost?option=value`.
//! An empty path means vhost `/` (oslo hands kombu an empty vhost, which
//! kombu turns into `/`); lapin would read it as the empty vhost, which
//! RabbitMQ refuses, so the mapping is done here and the lapin URI is built
//! from parts, never from text.

use std::collections::BTreeMap;
use std::fmt;

use lapin::uri::{
    AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo, SASLMechanism,
};
use percent_encoding::percent_decode_str;

/// Why a transport URL cannot be used. Never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportUrlError {
    /// No `scheme://`.
    #[error("transport_url has no scheme; write it as rabbit://user:pass@host:5672/vhost")]
    NoScheme,
    /// A driver other than RabbitMQ.
    #[error("transport_url driver '{0}' is not supported; the listener consumes from RabbitMQ (rabbit://)")]
    UnsupportedDriver(String),
    /// No host in the URL.
    #[error("transport_url names no broker host; write rabbit://user:pass@host:5672/")]
    NoHost,
    /// A host part that does not parse.
    #[error("transport_url host '{0}' is not valid: {1}")]
    BadHost(String, String),
    /// Bad percent-encoding.
    #[error("transport_url has invalid percent-encoding in the {0}")]
    BadEncoding(&'static str),
}

/// One broker of a (possibly multi-host) transport URL.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerHost {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port (5672 unless given).
    pub port: u16,
    /// User name (percent-decoded); `guest` when the URL has none.
    pub username: String,
    /// Password (percent-decoded); `guest` when the URL has none.
    pub password: String,
}

impl fmt::Debug for BrokerHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerHost")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for BrokerHost {
    /// `user@host:port`, safe to log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.username, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.username, self.host, self.port)
        }
    }
}

/// A parsed oslo.messaging transport URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportUrl {
    /// The brokers, in the order written.
    pub hosts: Vec<BrokerHost>,
    /// The virtual host; `/` when the URL's path is empty.
    pub vhost: String,
    /// Query parameters: `[oslo_messaging_rabbit]` overrides for this URL.
    /// A repeated key keeps every value joined with `,`, as oslo does.
    pub query: BTreeMap<String, String>,
    /// Whether the scheme itself asks for TLS (`amqps://`).
    pub scheme_tls: bool,
}

impl TransportUrl {
    /// Parses a transport URL the way oslo.messaging's `TransportURL.parse`
    /// does, restricted to the RabbitMQ drivers.
    pub fn parse(text: &str) -> Result<Self, TransportUrlError> {
        let text = text.trim();
        let (scheme, rest) = text.split_once("://").ok_or(TransportUrlError::NoScheme)?;
        if scheme.is_empty() {
            return Err(TransportUrlError::NoScheme);
        }
        let scheme_tls = match scheme.to_ascii_lowercase().as_str() {
            // `rabbit` is oslo's driver name, `kombu` its alias; `amqp` is
            // accepted because older deployment tools wrote it.
            "rabbit" | "kombu" | "amqp" => false,
            "amqps" => true,
            other => return Err(TransportUrlError::UnsupportedDriver(other.to_string())),
        };
        // Split off the fragment, then the query, then the path, as
        // urllib.parse does: the netloc ends at the first '/', '?' or '#'.
        let rest = rest.split('#').next().unwrap_or_default();
        let netloc_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (netloc, after) = rest.split_at(netloc_end);
        let (path, query_text) = match after.split_once('?') {
            Some((p, q)) => (p, q),
            None => (after, ""),
        };
        let vhost = match path.strip_prefix('/') {
            Some(v) => decode(v, "virtual host")?,
            None => String::new(),
        };
        // oslo passes an empty vhost to kombu, which uses '/'.
        let vhost = if vhost.is_empty() {
            "/".to_string()
        } else {
            vhost
        };

        let mut query: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(query_text.as_bytes()) {
            if v.is_empty() {
                // parse_qs drops blank values.
                continue;
            }
            query
                .entry(k.into_owned())
                .and_modify(|old| {
                    old.push(',');
                    old.push_str(&v);
                })
                .or_insert_with(|| v.into_owned());
        }

        let mut hosts = Vec::new();
        for part in netloc.split(',').filter(|p| !p.is_empty()) {
            hosts.push(parse_host(part)?);
        }
        if hosts.is_empty() {
            return Err(TransportUrlError::NoHost);
        }
        Ok(Self {
            hosts,
            vhost,
            query,
            scheme_tls,
        })
    }

    /// The URL with passwords replaced, for logs and errors.
    pub fn redacted(&self) -> String {
        let hosts: Vec<String> = self.hosts.iter().map(|h| h.to_string()).collect();
        format!("rabbit://{}/{}", hosts.join(","), self.vhost)
    }
}

fn decode(s: &str, what: &'static str) -> Result<String, TransportUrlError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| TransportUrlError::BadEncoding(what))
}

fn parse_host(part: &str) -> Result<BrokerHost, TransportUrlError> {
    let (creds, hostport) = match part.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, part),
    };
    let (username, password) = match creds {
        Some(c) => match c.split_once(':') {
            Some((u, p)) => (decode(u, "user name")?, decode(p, "password")?),
            None => (decode(c, "user name")?, "guest".to_string()),
        },
        // kombu's defaults when the URL carries no credentials.
        None => ("guest".to_string(), "guest".to_string()),
    };
    let bad = |why: &str| TransportUrlError::BadHost(hostport.to_string(), why.to_string());
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, tail) = v6
            .split_once(']')
            .ok_or_else(|| bad("missing ']' after an IPv6 address"))?;
        let port = match tail {
            "" => None,
            t => Some(
                t.strip_prefix(':')
                    .ok_or_else(|| bad("expected ':port' after ']'"))?,
            ),
        };
        (h.to_string(), port)
    } else if hostport.matches(':').count() > 1 {
        // A bare IPv6 address, as oslo's netutils accepts it.
        (hostport.to_string(), None)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(bad("the host name is empty"));
    }
    let port = match port {
        None | Some("") => 5672,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| bad("the port is not a number between 1 and 65535"))?,
    };
    Ok(BrokerHost {
        host,
        port,
        username,
        password,
    })
}

/// How lapin should connect to one broker.
#[derive(Clone, Debug)]
pub struct ConnectTarget {
    /// The broker.
    pub host: BrokerHost,
    /// The vhost (already mapped: never empty).
    pub vhost: String,
    /// TLS or not.
    pub tls: bool,
    /// AMQP heartbeat in seconds (0 = off).
    pub heartbeat: u16,
    /// SASL mechanism.
    pub mechanism: SASLMechanism,
    /// TCP connect timeout in milliseconds.
    pub connect_timeout_ms: u64,
}

impl ConnectTarget {
    /// The lapin URI, built from parts so nothing is re-parsed.
    pub fn amqp_uri(&self) -> AMQPUri {
        AMQPUri {
            scheme: if self.tls {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            },
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: self.host.username.clone(),
                    password: self.host.password.clone(),
                },
                host: self.host.host.clone(),
                port: self.host.port,
            },
            vhost: self.vhost.clone(),
            query: AMQPQueryString {
                heartbeat: Some(self.heartbeat),
                connection_timeout: Some(self.connect_timeout_ms),
                auth_mechanism: Some(self.mechanism),
                ..Default::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_path_is_the_root_vhost() {
        for url in [
            "rabbit://guest:guest@127.0.0.1:5672/",
            "rabbit://guest:guest@127.0.0.1:5672",
            "rabbit://guest:guest@127.0.0.1:5672//",
        ] {
            assert_eq!(TransportUrl::parse(url).unwrap().vhost, "/", "{url}");
        }
        assert_eq!(
            TransportUrl::parse("rabbit://h/openstack").unwrap().vhost,
            "openstack"
        );
        assert_eq!(TransportUrl::parse("rabbit://h/%2Fx").unwrap().vhost, "/x");
    }

    #[test]
    fn several_hosts_with_credentials_and_defaults() {
        let u = TransportUrl::parse(
            "rabbit://nova:s%2F3cret@ctl-1:5673,nova:pw@ctl-2,[fd00::1]:5674/openstack",
        )
        .unwrap();
        assert_eq!(u.hosts.len(), 3);
        assert_eq!((u.hosts[0].host.as_str(), u.hosts[0].port), ("ctl-1", 5673));
        assert_eq!(u.hosts[0].password, "s/3cret");
        assert_eq!((u.hosts[1].host.as_str(), u.hosts[1].port), ("ctl-2", 5672));
        assert_eq!(
            (u.hosts[2].host.as_str(), u.hosts[2].port),
            ("fd00::1", 5674)
        );
        assert_eq!(u.vhost, "openstack");
        let anon = TransportUrl::parse("rabbit://h1").unwrap();
        assert_eq!(
            (
                anon.hosts[0].username.as_str(),
                anon.hosts[0].password.as_str()
            ),
            ("guest", "guest")
        );
    }

    #[test]
    fn query_keys_are_kept_as_overrides() {
        let u =
            TransportUrl::parse("rabbit://h:5672/?amqp_durable_queues=true&ssl=1&x=a&x=b").unwrap();
        assert_eq!(
            u.query.get("amqp_durable_queues").map(String::as_str),
            Some("true")
        );
        assert_eq!(u.query.get("ssl").map(String::as_str), Some("1"));
        assert_eq!(u.query.get("x").map(String::as_str), Some("a,b"));
        assert_eq!(u.vhost, "/");
    }

    #[test]
    fn bad_urls_are_explained_without_the_password() {
        assert_eq!(
            TransportUrl::parse("guest@h").unwrap_err(),
            TransportUrlError::NoScheme
        );
        assert!(matches!(
            TransportUrl::parse("kafka://h:9092").unwrap_err(),
            TransportUrlError::UnsupportedDriver(_)
        ));
        assert_eq!(
            TransportUrl::parse("rabbit:///").unwrap_err(),
            TransportUrlError::NoHost
        );
        let e = TransportUrl::parse("rabbit://u:topsecret@h:notaport/").unwrap_err();
        assert!(!e.to_string().contains("topsecret"), "{e}");
        assert!(e.to_string().contains("h:notaport"), "{e}");
    }

    #[test]
    fn lapin_uri_carries_the_mapped_vhost_and_never_logs_the_password() {
        let u = TransportUrl::parse("rabbit://nova:pw@ctl-1:5672/").unwrap();
        let t = ConnectTarget {
            host: u.hosts[0].clone(),
            vhost: u.vhost.clone(),
            tls: false,
            heartbeat: 60,
            mechanism: SASLMechanism::Plain,
            connect_timeout_ms: 5000,
        };
        let uri = t.amqp_uri();
        assert_eq!(uri.vhost, "/");
        assert_eq!(uri.authority.userinfo.password, "pw");
        assert!(!format!("{:?}", u.hosts[0]).contains("pw\""));
        assert_eq!(u.redacted(), "rabbit://nova@ctl-1:5672//");
    }
}
