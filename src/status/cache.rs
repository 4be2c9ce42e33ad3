//! "Shared cache": the response cache's Redis or memcached servers answer
//! when one is configured; with the memory backend, whether join.conf says
//! there are several replicas that would each keep their own answers.

use std::sync::Arc;

use super::report::CheckResult;
use super::within;
use crate::cache::options::MemcachedSettings;
use crate::cache::redis::RedisStore;
use crate::cache::{CacheSettings, CacheStats};
use crate::config::ConfigFiles;
use crate::memcache::Memcache;

/// The check's name.
pub const NAME: &str = "Shared cache";

/// `PING` (Redis) or `version` (each memcached server) through the client
/// the service uses.
pub async fn check(cfg: &ConfigFiles) -> CheckResult {
    let settings = match CacheSettings::read(&mut &*cfg) {
        Ok(s) => s,
        Err(e) => return CheckResult::failure(NAME, e.to_string()),
    };
    if let Some(m) = settings.memcached {
        return check_memcached(m).await;
    }
    let Some(redis) = settings.redis else {
        let authtoken = cfg.list(&crate::keystone::options::KA_MEMCACHED_SERVERS);
        return match settings.multi_replica_warning(&authtoken) {
            Some(w) => CheckResult::warning(NAME, w),
            None => CheckResult::success(
                NAME,
                "[cache] backend is memory: each process caches its own answers (no shared cache \
                 to check)",
            ),
        };
    };
    let endpoint = crate::cache::redis::endpoint(&redis.url);
    let store = match RedisStore::new(redis, Arc::new(CacheStats::default())) {
        Ok(s) => s,
        Err(e) => return CheckResult::failure(NAME, e.to_string()),
    };
    match within(store.ping()).await {
        Ok(Ok(())) => CheckResult::success(NAME, format!("Redis at {endpoint} answered PING")),
        Ok(Err(e)) => CheckResult::failure(
            NAME,
            format!("Redis at {endpoint} did not answer: {e}; check [cache] redis_url and that Redis runs"),
        ),
        Err(t) => CheckResult::failure(
            NAME,
            format!("Redis at {endpoint} did not answer within {t:?}; check [cache] redis_url"),
        ),
    }
}

async fn check_memcached(m: MemcachedSettings) -> CheckResult {
    let mc = Memcache::new(m.servers.clone(), m.socket_timeout, m.dead_retry);
    let mut silent = Vec::new();
    for (idx, server) in m.servers.iter().enumerate() {
        match within(mc.ping(idx)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => silent.push(e.to_string()),
            Err(t) => silent.push(format!("memcached {server}: no answer within {t:?}")),
        }
    }
    if silent.is_empty() {
        return CheckResult::success(
            NAME,
            format!("memcached answered at {}", m.servers.join(", ")),
        );
    }
    CheckResult::failure(
        NAME,
        format!(
            "{} of {} memcached servers did not answer: {}; the instances they hold {}. Check [cache] \
             memcache_servers and that memcached runs there",
            silent.len(),
            m.servers.len(),
            silent.join("; "),
            match m.on_failure {
                crate::cache::RedisFailureMode::Local =>
                    "fall back to each replica's own cache (two OTPs possible)",
                crate::cache::RedisFailureMode::FailClosed => "are refused (503)",
            }
        ),
    )
}
