//! The `[cache]` options of join.conf (also accepted in pipeline.toml's
//! `[filter.cache]` table) and the settings they resolve to.

use std::time::Duration;

use crate::config::schema::{OptionGroup, OptionKind as K, OptionSpec as O};
use crate::config::{ConfigError, OptionSource};

/// `[cache] backend`.
pub const BACKEND: O = O::new(
    "cache",
    "backend",
    K::Choice(&["memory", "redis", "memcached"]),
    Some("memory"),
    "Where answers are kept: memory (this process only; right for a single server process), \
     redis (shared by every replica behind one load balancer; needs redis_url and secret_key) \
     or memcached (likewise, on the memcached servers of memcache_servers; needs secret_key).",
);
/// `[cache] ttl`.
pub const TTL: O = O::new(
    "cache",
    "ttl",
    K::Int { min: 0, max: 86400 },
    None,
    "Seconds a successful answer is reused for the same instance (same OTP, no IPA call). \
     Unset: [DEFAULT] otp_reuse_seconds (30, the original's window). 0 stores nothing but \
     still makes concurrent requests for one instance share one handler call.",
);
/// `[cache] capacity`.
pub const CAPACITY: O = O::new(
    "cache",
    "capacity",
    K::Int {
        min: 1,
        max: 10_000_000,
    },
    Some("100000"),
    "Most answers kept in memory (memory backend, and the local fallback of the redis \
     backend); the least useful are evicted first. An answer takes well under 1 KiB.",
);
/// `[cache] redis_url`.
pub const REDIS_URL: O = O::new(
    "cache",
    "redis_url",
    K::Secret,
    None,
    "Redis server for backend = redis: redis://[:password@]host:port[/db].",
);
/// `[cache] secret_key`.
pub const SECRET_KEY: O = O::new(
    "cache",
    "secret_key",
    K::Secret,
    None,
    "Secret (at least 32 characters, e.g. `openssl rand -hex 32`) from which the key that \
     encrypts and authenticates Redis and memcached entries is derived. Every replica needs the \
     same value. Entries hold OTPs: an entry that does not verify with this key is refused.",
);
/// `[cache] key_prefix`.
pub const KEY_PREFIX: O = O::new(
    "cache",
    "key_prefix",
    K::Str,
    Some("novajoin:cache:"),
    "Prefix of every Redis or memcached key this service writes; give each deployment sharing \
     one Redis or memcached its own.",
);
/// `[cache] claim_timeout`.
pub const CLAIM_TIMEOUT: O = O::new(
    "cache",
    "claim_timeout",
    K::Float,
    Some("10"),
    "Seconds a replica's claim on an instance lives without renewal. A live replica renews it \
     while it works; a replica that dies holding it blocks that instance at most this long \
     (memcached counts whole seconds: up to a second more).",
);
/// `[cache] wait_timeout`.
pub const WAIT_TIMEOUT: O = O::new(
    "cache",
    "wait_timeout",
    K::Float,
    Some("25"),
    "Seconds a request waits for another replica to finish the same instance before it is \
     answered 503.",
);
/// `[cache] on_redis_failure`.
pub const ON_REDIS_FAILURE: O = O::new(
    "cache",
    "on_redis_failure",
    K::Choice(&["local", "fail_closed"]),
    Some("local"),
    "When the shared cache cannot be reached (Redis, or with backend = memcached the server \
     that holds the instance): local (default) keeps enrolling with this process's own \
     cache, so two replicas may each make an OTP for one instance while it is down; \
     fail_closed answers 503 instead, so no instance boots enrolled until it is back. \
     Both are logged and shown by the health check.",
);
/// `[cache] redis_timeout`.
pub const REDIS_TIMEOUT: O = O::new(
    "cache",
    "redis_timeout",
    K::Float,
    Some("2"),
    "Seconds to connect to Redis or wait for one reply before it counts as unreachable.",
);
/// `[cache] memcache_servers`.
pub const MEMCACHE_SERVERS: O = O::new(
    "cache",
    "memcache_servers",
    K::List,
    Some("localhost:11211"),
    "memcached servers for backend = memcached, as host:port or inet:host:port \
     (oslo.cache's option; IPv4 only). Instances are spread over them by consistent \
     hashing; every replica must list the same servers (in any order).",
);
/// `[cache] memcache_socket_timeout`.
pub const MEMCACHE_SOCKET_TIMEOUT: O = O::new(
    "cache",
    "memcache_socket_timeout",
    K::Float,
    Some("1.0"),
    "Seconds to connect to a memcached server or wait for one reply before it counts as \
     unreachable (oslo.cache's option and default).",
);
/// `[cache] memcache_dead_retry`.
pub const MEMCACHE_DEAD_RETRY: O = O::new(
    "cache",
    "memcache_dead_retry",
    K::Int { min: 1, max: 3600 },
    Some("1"),
    "Seconds a memcached server that failed is left alone before it is tried again \
     (oslo.cache's option). Meanwhile the instances it holds get the on_redis_failure \
     behaviour; their keys never move to another server, so that replicas agree on where an \
     instance's claim is. oslo.cache's default of 300 would keep them there five minutes \
     after a blip, hence a short default.",
);
/// `[cache] replicas`.
pub const REPLICAS: O = O::new(
    "cache",
    "replicas",
    K::Int { min: 1, max: 1000 },
    None,
    "How many novajoin server processes answer nova for this cloud (behind one load \
     balancer). With backend = memory and more than 1, a warning is logged at start: each \
     replica would make its own OTP for an instance. Unset, the warning is given when \
     join.conf names memcached or Redis servers ([keystone_authtoken] memcached_servers, \
     [cache] memcache_servers or redis_url) that the memory backend does not use; set 1 to \
     state that this is the only replica.",
);

/// `[DEFAULT] otp_reuse_seconds`: the original's name for the answer
/// cache's lifetime, read when `[cache] ttl` is not set.
pub const OTP_REUSE_SECONDS: O = O::new(
    "DEFAULT",
    "otp_reuse_seconds",
    K::Int { min: 0, max: 86400 },
    Some("30"),
    "Within this many seconds, a repeated request for the same host gets the same OTP \
     without a new IPA call (the original's 30 s window).",
);

/// The `[DEFAULT]` option of the cache.
pub const DEFAULT_CACHE_OPTIONS: OptionGroup = &[OTP_REUSE_SECONDS];

/// The `[cache]` group.
pub const CACHE_OPTIONS: OptionGroup = &[
    BACKEND,
    TTL,
    CAPACITY,
    REDIS_URL,
    SECRET_KEY,
    KEY_PREFIX,
    CLAIM_TIMEOUT,
    WAIT_TIMEOUT,
    ON_REDIS_FAILURE,
    REDIS_TIMEOUT,
    MEMCACHE_SERVERS,
    MEMCACHE_SOCKET_TIMEOUT,
    MEMCACHE_DEAD_RETRY,
    REPLICAS,
];

/// Shortest accepted `secret_key`, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// What to do while the shared store (Redis, memcached) is unreachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedisFailureMode {
    /// Keep answering from this process's own cache (availability first).
    Local,
    /// Answer 503 (one OTP per instance across replicas first).
    FailClosed,
}

/// The Redis part of the settings.
#[derive(Clone)]
pub struct RedisSettings {
    /// Connection URL (may hold a password: never logged).
    pub url: String,
    /// The configured secret the entry key is derived from.
    pub secret_key: String,
    /// Prefix of every key.
    pub key_prefix: String,
    /// Lifetime of an unrenewed claim.
    pub claim_timeout: Duration,
    /// Longest wait for another replica's claim.
    pub wait_timeout: Duration,
    /// Behaviour while Redis is unreachable.
    pub on_failure: RedisFailureMode,
    /// Connect and reply timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &"<redacted>")
            .field("secret_key", &"<redacted>")
            .field("key_prefix", &self.key_prefix)
            .field("claim_timeout", &self.claim_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("on_failure", &self.on_failure)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The memcached part of the settings.
#[derive(Clone)]
pub struct MemcachedSettings {
    /// The servers, normalized to `host:port`.
    pub servers: Vec<String>,
    /// Connect and reply timeout.
    pub socket_timeout: Duration,
    /// How long a failed server is left alone.
    pub dead_retry: Duration,
    /// The configured secret the entry key is derived from.
    pub secret_key: String,
    /// Prefix of every key.
    pub key_prefix: String,
    /// Lifetime of an unrenewed claim.
    pub claim_timeout: Duration,
    /// Longest wait for another replica's claim.
    pub wait_timeout: Duration,
    /// Behaviour while an instance's server is unreachable.
    pub on_failure: RedisFailureMode,
}

impl std::fmt::Debug for MemcachedSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemcachedSettings")
            .field("servers", &self.servers)
            .field("socket_timeout", &self.socket_timeout)
            .field("dead_retry", &self.dead_retry)
            .field("secret_key", &"<redacted>")
            .field("key_prefix", &self.key_prefix)
            .field("claim_timeout", &self.claim_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("on_failure", &self.on_failure)
            .finish()
    }
}

/// The cache's settings after defaults and checks.
#[derive(Clone, Debug)]
pub struct CacheSettings {
    /// How long a successful answer is reused.
    pub ttl: Duration,
    /// Most entries held in memory.
    pub capacity: u64,
    /// `Some` for the Redis backend.
    pub redis: Option<RedisSettings>,
    /// `Some` for the memcached backend.
    pub memcached: Option<MemcachedSettings>,
    /// `[cache] replicas`, when set.
    pub replicas: Option<u32>,
    /// Shared-cache options set in `[cache]` that the memory backend does
    /// not use (a sign of several replicas).
    pub unused_shared_options: Vec<&'static str>,
}

impl CacheSettings {
    /// In-memory settings (tests, and the default).
    pub fn memory(ttl: Duration, capacity: u64) -> Self {
        Self {
            ttl,
            capacity,
            redis: None,
            memcached: None,
            replicas: None,
            unused_shared_options: Vec::new(),
        }
    }

    /// Whether the answers are shared by replicas.
    pub fn is_shared(&self) -> bool {
        self.redis.is_some() || self.memcached.is_some()
    }

    /// The start-up warning for an in-memory cache that several replicas
    /// would each keep: `authtoken_memcached` is `[keystone_authtoken]
    /// memcached_servers`. `None` when shared, or when nothing says there
    /// are several replicas (or `replicas = 1` says there are not).
    pub fn multi_replica_warning(&self, authtoken_memcached: &[String]) -> Option<String> {
        if self.is_shared() {
            return None;
        }
        let why = match self.replicas {
            Some(1) => return None,
            Some(n) => format!("[cache] replicas = {n}"),
            None => {
                let mut signs: Vec<String> = self
                    .unused_shared_options
                    .iter()
                    .map(|o| format!("[cache] {o}"))
                    .collect();
                if !authtoken_memcached.is_empty() {
                    signs.push("[keystone_authtoken] memcached_servers".into());
                }
                if signs.is_empty() {
                    return None;
                }
                format!(
                    "{} {} set, as on a cloud with several controllers",
                    signs.join(" and "),
                    if signs.len() == 1 { "is" } else { "are" }
                )
            }
        };
        Some(format!(
            "[cache] backend = memory keeps answers in this process only, but {why}: requests for \
             one instance that reach two replicas get two different OTPs (the second invalidates the \
             first, and the enrollment fails). Set [cache] backend = memcached (memcache_servers, \
             secret_key) or redis, shared by every replica, or [cache] replicas = 1 if this process \
             is the only one"
        ))
    }
}

/// Why the cache settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheSettingsError {
    /// A value is not acceptable; the message names the option and the fix.
    #[error("[cache] {option}: {problem}")]
    Invalid {
        /// The option.
        option: &'static str,
        /// What is wrong (never echoes a secret).
        problem: String,
    },
    /// join.conf could not be read for a cache option.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

fn invalid(option: &'static str, problem: impl Into<String>) -> CacheSettingsError {
    CacheSettingsError::Invalid {
        option,
        problem: problem.into(),
    }
}

impl CacheSettings {
    /// Reads and checks the `[cache]` options from `source`: join.conf
    /// (the listener, the status check) or the `cache` filter's table in
    /// front of it (the server). `ttl` falls back to `[DEFAULT]
    /// otp_reuse_seconds`, the original's window.
    pub fn read(source: &mut impl OptionSource) -> Result<Self, CacheSettingsError> {
        let ttl = match source.int(&TTL)? {
            Some(n) => n,
            None => source.int_or_default(&OTP_REUSE_SECONDS)?,
        };
        let capacity = source.int_or_default(&CAPACITY)?;
        let replicas = source.int(&REPLICAS)?.map(|n| n as u32);
        let backend = source.choice_or_default(&BACKEND)?;
        let (mut redis, mut memcached) = (None, None);
        match backend.as_str() {
            "redis" => redis = Some(RedisSettings::read(source)?),
            "memcached" => memcached = Some(MemcachedSettings::read(source)?),
            _ => {}
        }
        // Each option of the pipeline table must be taken, whatever the
        // backend, so that a misspelt one is reported and a valid one is not.
        let mut unused_shared_options = Vec::new();
        if redis.is_none() {
            if source
                .string(&REDIS_URL)?
                .is_some_and(|u| !u.trim().is_empty())
            {
                unused_shared_options.push("redis_url");
            }
            source.float(&REDIS_TIMEOUT)?;
        }
        if memcached.is_none() {
            // Only a list other than the default counts as configured.
            let default: Vec<String> = MEMCACHE_SERVERS
                .default
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .collect();
            if source.list(&MEMCACHE_SERVERS)? != default {
                unused_shared_options.push("memcache_servers");
            }
            source.float(&MEMCACHE_SOCKET_TIMEOUT)?;
            source.int(&MEMCACHE_DEAD_RETRY)?;
        }
        if redis.is_none() && memcached.is_none() {
            for spec in [&SECRET_KEY, &KEY_PREFIX] {
                source.string(spec)?;
            }
            for spec in [&CLAIM_TIMEOUT, &WAIT_TIMEOUT] {
                source.float(spec)?;
            }
            source.choice(&ON_REDIS_FAILURE)?;
        }
        Ok(CacheSettings {
            ttl: Duration::from_secs(ttl as u64),
            capacity: capacity as u64,
            redis,
            memcached,
            replicas,
            unused_shared_options,
        })
    }
}

fn seconds(option: &'static str, v: f64, min: f64) -> Result<Duration, CacheSettingsError> {
    if v < min || v > 86400.0 {
        return Err(invalid(
            option,
            format!("{v} is out of range; use {min} to 86400 seconds"),
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The options every shared backend reads.
struct SharedCommon {
    secret_key: String,
    key_prefix: String,
    claim_timeout: Duration,
    wait_timeout: Duration,
    on_failure: RedisFailureMode,
}

impl SharedCommon {
    fn read(
        source: &mut impl OptionSource,
        backend: &'static str,
    ) -> Result<Self, CacheSettingsError> {
        let secret_key = source.string(&SECRET_KEY)?.unwrap_or_default();
        if secret_key.len() < MIN_SECRET_LEN {
            return Err(invalid(
                "secret_key",
                format!(
                    "{} for backend = {backend}; set at least {MIN_SECRET_LEN} random characters \
                     (e.g. the output of `openssl rand -hex 32`), the same on every replica",
                    if secret_key.is_empty() {
                        "is not set"
                    } else {
                        "is too short"
                    }
                ),
            ));
        }
        let on_failure = match source.choice_or_default(&ON_REDIS_FAILURE)?.as_str() {
            "fail_closed" => RedisFailureMode::FailClosed,
            _ => RedisFailureMode::Local,
        };
        Ok(SharedCommon {
            secret_key,
            key_prefix: source.string(&KEY_PREFIX)?.unwrap_or_default(),
            claim_timeout: seconds(
                "claim_timeout",
                source.float_or_default(&CLAIM_TIMEOUT)?,
                0.1,
            )?,
            wait_timeout: seconds("wait_timeout", source.float_or_default(&WAIT_TIMEOUT)?, 0.0)?,
            on_failure,
        })
    }
}

/// Longest `key_prefix` with memcached: its keys are at most 250 bytes,
/// and the rest of a key takes 70.
pub const MAX_MEMCACHED_PREFIX_LEN: usize = 150;

impl MemcachedSettings {
    fn read(source: &mut impl OptionSource) -> Result<Self, CacheSettingsError> {
        let listed = source.list(&MEMCACHE_SERVERS)?;
        let servers = crate::memcache::parse_servers(&listed).map_err(|e| {
            invalid(
                "memcache_servers",
                format!("{e}; backend = memcached needs the servers"),
            )
        })?;
        let common = SharedCommon::read(source, "memcached")?;
        if common.key_prefix.len() > MAX_MEMCACHED_PREFIX_LEN
            || common.key_prefix.bytes().any(|b| b <= b' ' || b == 0x7f)
        {
            return Err(invalid(
                "key_prefix",
                format!(
                    "is not usable in memcached keys; use at most {MAX_MEMCACHED_PREFIX_LEN} \
                     characters without spaces or control characters"
                ),
            ));
        }
        Ok(MemcachedSettings {
            servers,
            socket_timeout: seconds(
                "memcache_socket_timeout",
                source.float_or_default(&MEMCACHE_SOCKET_TIMEOUT)?,
                0.01,
            )?,
            dead_retry: Duration::from_secs(source.int_or_default(&MEMCACHE_DEAD_RETRY)? as u64),
            secret_key: common.secret_key,
            key_prefix: common.key_prefix,
            claim_timeout: common.claim_timeout,
            wait_timeout: common.wait_timeout,
            on_failure: common.on_failure,
        })
    }
}

impl RedisSettings {
    fn read(source: &mut impl OptionSource) -> Result<Self, CacheSettingsError> {
        let url = source
            .string(&REDIS_URL)?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                invalid(
                    "redis_url",
                    "is not set; backend = redis needs the Redis server, e.g. redis://127.0.0.1:6379",
                )
            })?;
        // The parse error may quote the URL (and its password): not echoed.
        if ::redis::Client::open(url.as_str()).is_err() {
            return Err(invalid(
                "redis_url",
                "is not a valid Redis URL; use redis://[:password@]host:port[/db]",
            ));
        }
        let common = SharedCommon::read(source, "redis")?;
        Ok(RedisSettings {
            url,
            secret_key: common.secret_key,
            key_prefix: common.key_prefix,
            claim_timeout: common.claim_timeout,
            wait_timeout: common.wait_timeout,
            on_failure: common.on_failure,
            timeout: seconds(
                "redis_timeout",
                source.float_or_default(&REDIS_TIMEOUT)?,
                0.01,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFiles;

    fn conf(text: &str) -> ConfigFiles {
        let mut c = ConfigFiles::default();
        c.add_text(std::path::Path::new("join.conf"), text).unwrap();
        c
    }

    #[test]
    fn defaults_are_memory_with_the_original_window() {
        let s = CacheSettings::read(&mut &conf("[DEFAULT]\n")).unwrap();
        assert!(s.redis.is_none());
        assert_eq!(s.ttl, Duration::from_secs(30));
        assert_eq!(s.capacity, 100_000);
    }

    #[test]
    fn ttl_falls_back_to_otp_reuse_seconds() {
        let s = CacheSettings::read(&mut &conf("[DEFAULT]\notp_reuse_seconds = 45\n")).unwrap();
        assert_eq!(s.ttl, Duration::from_secs(45));
        let s = CacheSettings::read(&mut &conf(
            "[DEFAULT]\notp_reuse_seconds = 45\n[cache]\nttl = 7\n",
        ))
        .unwrap();
        assert_eq!(s.ttl, Duration::from_secs(7));
    }

    #[test]
    fn redis_needs_url_and_a_long_secret() {
        let e = CacheSettings::read(&mut &conf("[cache]\nbackend = redis\n")).unwrap_err();
        assert!(e.to_string().contains("redis_url"), "{e}");
        let e = CacheSettings::read(&mut &conf(
            "[cache]\nbackend = redis\nredis_url = redis://127.0.0.1:6379\n",
        ))
        .unwrap_err();
        assert!(
            e.to_string().contains("secret_key") && e.to_string().contains("not set"),
            "{e}"
        );
        let e = CacheSettings::read(&mut &conf(
            "[cache]\nbackend = redis\nredis_url = redis://127.0.0.1:6379\nsecret_key = tooshort-s3cr3t\n"))
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("too short") && !msg.contains("tooshort-s3cr3t"),
            "{msg}"
        );
        let e = CacheSettings::read(&mut &conf(&format!(
            "[cache]\nbackend = redis\nredis_url = http://nope\nsecret_key = {}\n",
            "k".repeat(40)
        )))
        .unwrap_err();
        assert!(e.to_string().contains("redis_url"), "{e}");
    }

    #[test]
    fn redis_settings_resolve_and_hide_secrets_in_debug() {
        let s =
            CacheSettings::read(&mut &conf(&format!(
            "[cache]\nbackend = redis\nredis_url = redis://:pw@127.0.0.1:6379\nsecret_key = {}\n\
             on_redis_failure = fail_closed\nclaim_timeout = 2.5\n", "k".repeat(40))))
            .unwrap();
        let r = s.redis.unwrap();
        assert_eq!(r.on_failure, RedisFailureMode::FailClosed);
        assert_eq!(r.claim_timeout, Duration::from_millis(2500));
        assert_eq!(r.key_prefix, "novajoin:cache:");
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("kkkk") && !dbg.contains(":pw@"), "{dbg}");
    }

    #[test]
    fn bad_choice_is_an_error_naming_file_and_line() {
        let e = CacheSettings::read(&mut &conf("[cache]\nbackend = couchbase\n")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("join.conf:2") && msg.contains("backend"),
            "{msg}"
        );
    }

    #[test]
    fn memcached_needs_a_long_secret_and_reads_oslo_cache_names() {
        let e = CacheSettings::read(&mut &conf("[cache]\nbackend = memcached\n")).unwrap_err();
        assert!(e.to_string().contains("secret_key"), "{e}");
        let s = CacheSettings::read(&mut &conf(&format!(
            "[cache]\nbackend = memcached\nsecret_key = {}\n",
            "k".repeat(40)
        )))
        .unwrap();
        let m = s.memcached.unwrap();
        assert_eq!(m.servers, ["localhost:11211"]);
        assert_eq!(m.socket_timeout, Duration::from_secs(1));
        assert_eq!(m.dead_retry, Duration::from_secs(1));
        assert!(!format!("{m:?}").contains("kkkk"));
        let s = CacheSettings::read(&mut &conf(&format!(
            "[cache]\nbackend = memcached\nsecret_key = {}\nmemcache_servers = inet:mc1:11211, mc2\n\
             memcache_socket_timeout = 0.5\nmemcache_dead_retry = 30\non_redis_failure = fail_closed\n",
            "k".repeat(40)
        )))
        .unwrap();
        let m = s.memcached.unwrap();
        assert_eq!(m.servers, ["mc1:11211", "mc2:11211"]);
        assert_eq!(m.socket_timeout, Duration::from_millis(500));
        assert_eq!(m.dead_retry, Duration::from_secs(30));
        assert_eq!(m.on_failure, RedisFailureMode::FailClosed);
        let e = CacheSettings::read(&mut &conf(&format!(
            "[cache]\nbackend = memcached\nsecret_key = {}\nmemcache_servers = unix:/run/mc\n",
            "k".repeat(40)
        )))
        .unwrap_err();
        assert!(e.to_string().contains("memcache_servers"), "{e}");
        let e = CacheSettings::read(&mut &conf(&format!(
            "[cache]\nbackend = memcached\nsecret_key = {}\nkey_prefix = my prefix\n",
            "k".repeat(40)
        )))
        .unwrap_err();
        assert!(e.to_string().contains("key_prefix"), "{e}");
    }

    #[test]
    fn a_memory_cache_that_several_replicas_would_keep_is_warned_about() {
        let read = |t: &str| CacheSettings::read(&mut &conf(t)).unwrap();
        let none: Vec<String> = Vec::new();
        let authtoken = vec!["mc1:11211".to_string()];
        assert_eq!(read("[cache]\n").multi_replica_warning(&none), None);
        let w = read("[cache]\n").multi_replica_warning(&authtoken).unwrap();
        assert!(w.contains("[keystone_authtoken] memcached_servers"), "{w}");
        let w = read("[cache]\nmemcache_servers = mc1:11211\n")
            .multi_replica_warning(&none)
            .unwrap();
        assert!(w.contains("[cache] memcache_servers is set"), "{w}");
        let w = read("[cache]\nreplicas = 3\n")
            .multi_replica_warning(&none)
            .unwrap();
        assert!(
            w.contains("replicas = 3") && w.contains("backend = memcached"),
            "{w}"
        );
        // An operator who states there is one replica is not warned.
        assert_eq!(
            read("[cache]\nreplicas = 1\nredis_url = redis://r:6379\n")
                .multi_replica_warning(&authtoken),
            None
        );
        let shared = read(&format!(
            "[cache]\nbackend = memcached\nreplicas = 3\nsecret_key = {}\n",
            "k".repeat(40)
        ));
        assert_eq!(shared.multi_replica_warning(&authtoken), None);
    }
}
