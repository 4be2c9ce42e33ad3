//! "Shared cache": the response cache's Redis answers when one is configured.

use std::sync::Arc;

use super::report::CheckResult;
use super::within;
use crate::cache::redis::RedisStore;
use crate::cache::{CacheSettings, CacheStats};
use crate::config::ConfigFiles;

/// The check's name.
pub const NAME: &str = "Shared cache";

/// `PING` through the client the service uses.
pub async fn check(cfg: &ConfigFiles) -> CheckResult {
    let settings = match CacheSettings::read(&mut &*cfg) {
        Ok(s) => s,
        Err(e) => return CheckResult::failure(NAME, e.to_string()),
    };
    let Some(redis) = settings.redis else {
        return CheckResult::success(
            NAME,
            "[cache] backend is memory: each process caches its own answers (no shared cache \
             to check)",
        );
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
