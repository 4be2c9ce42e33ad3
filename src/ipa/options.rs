//! The options of the IPA client: `[ipa]` and the `[DEFAULT]` ones the
//! original novajoin read.

use crate::config::schema::{OptionGroup, OptionKind as K, OptionSpec as O};

/// `keytab`.
pub const KEYTAB: O = O::new(
    "DEFAULT",
    "keytab",
    K::Str,
    Some("/etc/novajoin/krb5.keytab"),
    "Kerberos keytab used to authenticate to IPA.",
);
/// `connect_retries`.
pub const CONNECT_RETRIES: O = O::new(
    "DEFAULT",
    "connect_retries",
    K::Int { min: 0, max: 100 },
    Some("2"),
    "How many times to retry connecting to IPA (attempts = retries + 1), with backoff.",
);
/// `url`.
pub const URL: O = O::new(
    "DEFAULT",
    "url",
    K::List,
    None,
    "IPA JSON-RPC URL, e.g. https://ipa.example.com/ipa/json, or several (one per IPA server, \
     tried in order; the Nth goes with the Nth [ipa] server). Defaults to the server named in \
     /etc/ipa/default.conf.",
);
/// `[ipa] auth_method`.
pub const IPA_AUTH_METHOD: O = O::new(
    "ipa",
    "auth_method",
    K::Choice(&["kerberos", "password"]),
    Some("kerberos"),
    "How to log in to IPA: kerberos (the keytab in [DEFAULT] keytab) or password.",
);
/// `[ipa] principal`.
pub const IPA_PRINCIPAL: O = O::new(
    "ipa",
    "principal",
    K::Str,
    None,
    "Kerberos principal; defaults to nova/<host>@<realm> from /etc/ipa/default.conf.",
);
/// `[ipa] username`.
pub const IPA_USERNAME: O = O::new(
    "ipa",
    "username",
    K::Str,
    None,
    "IPA user for auth_method = password.",
);
/// `[ipa] password`.
pub const IPA_PASSWORD: O = O::new(
    "ipa",
    "password",
    K::Secret,
    None,
    "IPA password for auth_method = password.",
);
/// `[ipa] ca_file`.
pub const IPA_CA_FILE: O = O::new(
    "ipa",
    "ca_file",
    K::Str,
    Some("/etc/ipa/ca.crt"),
    "CA bundle that signs the IPA server's certificate.",
);
/// `[ipa] realm`.
pub const IPA_REALM: O = O::new(
    "ipa",
    "realm",
    K::Str,
    None,
    "Kerberos realm; defaults to [global] realm in /etc/ipa/default.conf.",
);
/// `[ipa] server`.
pub const IPA_SERVER: O = O::new(
    "ipa",
    "server",
    K::List,
    None,
    "IPA server FQDN, or several (replicas, tried in order: calls stay on one server while it \
     answers and fail over to the next on a connection failure or an HTTP 5xx). A server \
     without a [DEFAULT] url at its position is called at https://<server>/ipa/json. Defaults \
     to [global] server in /etc/ipa/default.conf.",
);
/// `[ipa] discover_servers`.
pub const IPA_DISCOVER_SERVERS: O = O::new(
    "ipa",
    "discover_servers",
    K::Choice(&["auto", "true", "false"]),
    Some("auto"),
    "Add the IPA servers named by the _ldap._tcp (else _kerberos._tcp) SRV records of the IPA \
     domain after the configured ones, as ipa-client does. auto: only when neither join.conf \
     nor /etc/ipa/default.conf names a server (an IPA client installed without a fixed server).",
);
/// `[ipa] domain`.
pub const IPA_DOMAIN: O = O::new(
    "ipa",
    "domain",
    K::Str,
    None,
    "The IPA DNS domain whose SRV records name its servers; defaults to [global] domain in \
     /etc/ipa/default.conf.",
);
/// `[ipa] discovery_nameservers`.
pub const IPA_DISCOVERY_NAMESERVERS: O = O::new(
    "ipa",
    "discovery_nameservers",
    K::List,
    None,
    "Name servers (IP or IP:port) asked for the SRV records; defaults to those of \
     /etc/resolv.conf.",
);
/// `[ipa] breaker_failures`.
pub const IPA_BREAKER_FAILURES: O = O::new(
    "ipa",
    "breaker_failures",
    K::Int { min: 1, max: 1000 },
    Some("3"),
    "Connection failures or HTTP 5xx answers in a row after which an IPA server is tried only \
     after the other servers, for [ipa] breaker_open_time.",
);
/// `[ipa] breaker_open_time`.
pub const IPA_BREAKER_OPEN_TIME: O = O::new(
    "ipa",
    "breaker_open_time",
    K::Float,
    Some("30"),
    "Seconds a failing IPA server is tried only after the other servers; then one attempt \
     decides whether it is used in its turn again.",
);
/// `[ipa] ipa_conf`.
pub const IPA_DEFAULT_CONF: O = O::new(
    "ipa",
    "default_conf",
    K::Str,
    Some("/etc/ipa/default.conf"),
    "The IPA client configuration to read host, realm, domain and server from.",
);
/// `[ipa] api_version`.
pub const IPA_API_VERSION: O = O::new(
    "ipa",
    "api_version",
    K::Str,
    Some("2.146"),
    "The API version sent with every call (2.146 = IPA 4.2, what novajoin always sent).",
);
/// `[ipa] timeout`.
pub const IPA_TIMEOUT: O = O::new(
    "ipa",
    "timeout",
    K::Float,
    Some("20"),
    "Seconds one IPA call may take; keep below nova's vendordata_dynamic_read_timeout.",
);
/// `[ipa] detached_call_timeout`.
pub const IPA_DETACHED_CALL_TIMEOUT: O = O::new(
    "ipa",
    "detached_call_timeout",
    K::Float,
    Some("300"),
    "Seconds an enrollment call to IPA may go on after the request stopped waiting for it \
     ([ipa] timeout); later enrollments of the same host wait for it, so that its late \
     answer cannot replace the OTP they hand out. At least [ipa] timeout.",
);
/// `[ipa] max_concurrent_calls`.
pub const IPA_MAX_CONCURRENT: O = O::new(
    "ipa",
    "max_concurrent_calls",
    K::Int { min: 1, max: 10000 },
    Some("16"),
    "Cap on IPA calls in flight from this process, to protect IPA from a boot storm.",
);
/// `[ipa] batch_max`.
pub const IPA_BATCH_MAX: O = O::new(
    "ipa",
    "batch_max",
    K::Int { min: 1, max: 1000 },
    Some("50"),
    "Most IPA commands in one call that carries the enrollments of several instances waiting \
     for a call slot (one IPA batch; IPA pays its fixed cost per call once for all). An \
     enrollment is never split: one with more commands goes alone. 1 sends one call per \
     enrollment. IPA runs a batch's commands one after another in one worker, so a large \
     value makes each call, and the wait of the first instance in it, longer.",
);
/// `[ipa] batch_window_ms`.
pub const IPA_BATCH_WINDOW_MS: O = O::new(
    "ipa",
    "batch_window_ms",
    K::Int { min: 0, max: 1000 },
    Some("0"),
    "Milliseconds a freed IPA call slot waits for more enrollments before it sends the queued \
     ones as one call. 0 sends at once: enrollments are combined only when they already wait \
     for a slot, and a lone request has no added latency.",
);
/// `[ipa] queue_deadline`.
pub const IPA_QUEUE_DEADLINE: O = O::new(
    "ipa",
    "queue_deadline",
    K::Float,
    Some("4"),
    "Seconds within which an enrollment waiting for an IPA call slot must be able to finish. \
     When the queue is deeper than the slots can serve in that time (judged from the calls' \
     observed duration), the request is answered 503 with Retry-After at once, and one still \
     waiting when its time is up is taken out of the queue and answered the same way, instead \
     of being held until nova gives up. Keep it below nova's [api] \
     vendordata_dynamic_read_timeout (5 s by default). 0 never refuses.",
);

/// The `[DEFAULT]` options of the IPA client.
pub const DEFAULT_IPA_OPTIONS: OptionGroup = &[KEYTAB, CONNECT_RETRIES, URL];

/// The `[ipa]` group.
pub const IPA_OPTIONS: OptionGroup = &[
    IPA_AUTH_METHOD,
    IPA_PRINCIPAL,
    IPA_USERNAME,
    IPA_PASSWORD,
    IPA_CA_FILE,
    IPA_REALM,
    IPA_SERVER,
    IPA_DISCOVER_SERVERS,
    IPA_DOMAIN,
    IPA_DISCOVERY_NAMESERVERS,
    IPA_BREAKER_FAILURES,
    IPA_BREAKER_OPEN_TIME,
    IPA_DEFAULT_CONF,
    IPA_API_VERSION,
    IPA_TIMEOUT,
    IPA_DETACHED_CALL_TIMEOUT,
    IPA_MAX_CONCURRENT,
    IPA_BATCH_MAX,
    IPA_BATCH_WINDOW_MS,
    IPA_QUEUE_DEADLINE,
];
