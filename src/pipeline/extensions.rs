//! Typed request extensions: the only way filters talk to each other.
//!
//! Each filter reads what an outer filter inserted and inserts what it
//! provides. A filter never inspects another filter's configuration or
//! headers it did not define; it reads these types.

/// The request id minted by the `request_id` filter (`req-<uuid4>`), plus the
/// caller's global request id when it sent a well-formed one. Also put on
/// the response, for the access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId {
    /// This service's id for the request, returned as `x-openstack-request-id`.
    pub local: String,
    /// `X-Openstack-Request-Id` from the caller, when it matched oslo's format.
    pub global: Option<String>,
}

/// Mints a new request id.
pub fn new_request_id() -> String {
    // Encoded straight into the string: `format!` went through the
    // formatting machinery for every request.
    let mut id = String::with_capacity(40);
    id.push_str("req-");
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.push_str(uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text));
    id
}

/// Where the client thinks it is talking to, as reconstructed by
/// `http_proxy_to_wsgi` from `Forwarded` / `X-Forwarded-*` headers; in the
/// request as `Arc<ForwardedOrigin>`, shared with the response's
/// [`AccessNotes`] for the access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardedOrigin {
    /// URL scheme the client used (`http` or `https`).
    pub scheme: String,
    /// Host (with port when given) the client used.
    pub host: Option<String>,
    /// The client address as the proxy reported it (verbatim, not split).
    pub remote_addr: Option<String>,
    /// `X-Forwarded-Prefix`: the application root behind the proxy.
    pub prefix: Option<String>,
}

/// The peer of the TCP connection (none on a Unix socket), inserted by the
/// server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    /// The peer's address and port.
    pub addr: Option<std::net::SocketAddr>,
    /// The peer's IP address as text, formatted once per connection.
    pub ip: Option<std::sync::Arc<str>>,
}

impl PeerAddr {
    /// The peer of a connection from `addr`.
    pub fn new(addr: Option<std::net::SocketAddr>) -> Self {
        Self {
            addr,
            ip: addr.map(|a| a.ip().to_string().into()),
        }
    }
}

/// Inserted by the `policy` filter when the configured action was allowed:
/// proof for inner filters (the response cache) that authorization happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorized {
    /// The policy action that was checked, e.g. `join:create` (shared with
    /// the filter: no copy per request).
    pub action: std::sync::Arc<str>,
}

/// What the access log records from inside the pipeline, gathered in the
/// *response* as it passes back out through the filters that know it.
///
/// One extension rather than one per fact: every extension inserted is an
/// allocation, and a fourth one grows the map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessNotes {
    /// The caller's global request id (`request_id`).
    pub global_request_id: Option<String>,
    /// Where the client was, as the proxy said (`http_proxy_to_wsgi`).
    pub origin: Option<std::sync::Arc<ForwardedOrigin>>,
    /// The instance the request was about (the join handler, `cache`).
    pub instance_id: Option<String>,
    /// Whether the answer came from the response cache (`cache`).
    pub cache: Option<crate::cache::CacheOutcome>,
}

impl AccessNotes {
    /// The notes of `resp`, added empty if it has none yet.
    pub fn of<B>(resp: &mut http::Response<B>) -> &mut AccessNotes {
        resp.extensions_mut().get_or_insert_default()
    }
}
