//! Token validation as keystonemiddleware does it: `GET /v3/auth/tokens`
//! with the service's own token and `X-Subject-Token`, behind an in-memory
//! cache (one keystone call per new token, however many requests carry it
//! at once), an optional Redis cache shared by replicas, and an optional
//! local JWS check that refuses forged or expired JWS tokens before any
//! network call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::Utc;

use super::auth::JoinPath;
use super::cache::{memory_cache, MemoryCache, SharedCache, TokenKey, ValidatedToken};
use super::jws::{looks_like_jws, JwsRejection, JwsVerifier};
use super::secret::short_hash;
use super::session::ServiceSession;
use super::token::ValidationBody;
use super::KeystoneError;

/// Longest token accepted; keystone's own limit is far below (fernet 255,
/// JWS ~410). Longer input is refused without a call.
pub const MAX_TOKEN_LEN: usize = 8192;

/// Why a token is not accepted (→ 401).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToken {
    /// Empty, too long, or with characters no token has.
    #[error("token is malformed")]
    Malformed,
    /// keystone answered 404: unknown, revoked or expired.
    #[error("keystone does not know the token (unknown, revoked or expired)")]
    NotFound,
    /// The token's `expires_at` has passed.
    #[error("token has expired")]
    Expired,
    /// Local JWS check failed.
    #[error(transparent)]
    Jws(#[from] JwsRejection),
}

/// Why validation did not succeed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ValidationError {
    /// The token is not valid: 401.
    #[error(transparent)]
    Invalid(#[from] InvalidToken),
    /// keystone could not tell: 503 (never cached).
    #[error(transparent)]
    Unavailable(#[from] KeystoneError),
}

/// Counters for tests, metrics and logs.
#[derive(Debug, Default)]
pub struct ValidatorStats {
    /// `GET /v3/auth/tokens` calls made.
    pub online_calls: AtomicU64,
    /// Answers from the memory cache.
    pub memory_hits: AtomicU64,
    /// Answers from the shared cache.
    pub shared_hits: AtomicU64,
    /// Tokens refused by the local JWS check.
    pub jws_rejections: AtomicU64,
}

/// How the validator is set up.
pub struct ValidatorConfig {
    /// The service's own session (from `[keystone_authtoken]`).
    pub session: ServiceSession,
    /// Identity endpoint interface (`interface`, default internal).
    pub interface: String,
    /// Identity endpoint region (`region_name`).
    pub region: Option<String>,
    /// `include_service_catalog`.
    pub include_catalog: bool,
    /// `token_cache_time`; `None` disables caching (`-1`).
    pub cache_time: Option<Duration>,
    /// Most tokens kept in memory.
    pub memory_capacity: u64,
    /// The Redis cache, when configured.
    pub shared: Option<SharedCache>,
    /// The local JWS check, when configured.
    pub jws: Option<JwsVerifier>,
}

/// Validates tokens; cheap to share behind an `Arc`.
pub struct TokenValidator {
    session: ServiceSession,
    interface: String,
    region: Option<String>,
    include_catalog: bool,
    cache_time: Option<Duration>,
    memory: Option<MemoryCache>,
    shared: Option<SharedCache>,
    jws: Option<JwsVerifier>,
    stats: ValidatorStats,
    /// `novajoin_token_cache_hits_total{cache="memory"}`, resolved at the
    /// first hit (a labelled `counter!` looks its key up on every call).
    memory_hit_counter: OnceLock<metrics::Counter>,
    /// The last reason keystone could not answer, cleared by an answer.
    unavailable: Arc<std::sync::Mutex<Option<String>>>,
}

impl std::fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenValidator")
            .field("session", &self.session)
            .field("cache_time", &self.cache_time)
            .field("shared", &self.shared)
            .field("jws", &self.jws)
            .finish_non_exhaustive()
    }
}

/// Whether every byte of `token` is printable ASCII (`!` to `~`).
fn is_printable_ascii(token: &str) -> bool {
    token.bytes().all(|b| b.is_ascii_graphic())
}

fn cache_key(token: &str, allow_expired: bool) -> TokenKey {
    TokenKey {
        // BLAKE3: every request hashes its token, and without SHA-NI it
        // costs a tenth of SHA-256.
        digest: blake3::hash(token.as_bytes()).into(),
        allow_expired,
    }
}

impl TokenValidator {
    /// A validator as configured.
    pub fn new(c: ValidatorConfig) -> Self {
        let memory = c.cache_time.map(|_| memory_cache(c.memory_capacity));
        TokenValidator {
            session: c.session,
            interface: c.interface,
            region: c.region,
            include_catalog: c.include_catalog,
            cache_time: c.cache_time,
            memory,
            shared: if c.cache_time.is_some() {
                c.shared
            } else {
                None
            },
            jws: c.jws,
            stats: ValidatorStats::default(),
            memory_hit_counter: OnceLock::new(),
            unavailable: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> &ValidatorStats {
        &self.stats
    }

    /// The service session used for validation calls.
    pub fn session(&self) -> &ServiceSession {
        &self.session
    }

    /// A health probe: Degraded while keystone cannot answer validation
    /// calls (cached tokens still work, new ones get 503).
    pub fn probe(&self) -> Arc<dyn crate::health::HealthProbe> {
        Arc::new(KeystoneProbe {
            unavailable: self.unavailable.clone(),
        })
    }

    /// Validates `token`. With `allow_expired` (a valid service token with a
    /// service role came along), an expired token is still accepted.
    pub async fn validate(
        &self,
        token: &str,
        allow_expired: bool,
    ) -> Result<Arc<ValidatedToken>, ValidationError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN || !is_printable_ascii(token) {
            return Err(InvalidToken::Malformed.into());
        }
        // The loads are boxed: their futures (keystone and Redis calls) are
        // large and only a miss needs them; unboxed, every cache hit would
        // copy kilobytes into the request's boxed future.
        let v = match &self.memory {
            None => Box::pin(self.load(token, allow_expired)).await?,
            Some(mem) => {
                let key = cache_key(token, allow_expired);
                match mem.get(&key).await {
                    Some(v) => {
                        self.stats.memory_hits.fetch_add(1, Ordering::Relaxed);
                        self.memory_hit_counter
                            .get_or_init(|| {
                                metrics::counter!("novajoin_token_cache_hits_total", "cache" => "memory")
                            })
                            .increment(1);
                        v
                    }
                    // Concurrent callers with the same key wait for one load;
                    // an error is handed to all of them and not cached.
                    None => Box::pin(mem.try_get_with(key, self.load(token, allow_expired)))
                        .await
                        .map_err(|e: Arc<ValidationError>| (*e).clone())?,
                }
            }
        };
        if !allow_expired && v.data.is_expired(Utc::now()) {
            return Err(InvalidToken::Expired.into());
        }
        Ok(v)
    }

    /// Local JWS check, shared cache, then keystone.
    async fn load(
        &self,
        token: &str,
        allow_expired: bool,
    ) -> Result<Arc<ValidatedToken>, ValidationError> {
        if let Some(jws) = &self.jws {
            if looks_like_jws(token) {
                if let Err(rejection) = jws.check(token, !allow_expired) {
                    self.stats.jws_rejections.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("novajoin_token_validations_total", "outcome" => "jws_rejected").increment(1);
                    tracing::info!(token = %short_hash(token), "token refused without asking keystone: {rejection}");
                    return Err(InvalidToken::Jws(rejection).into());
                }
            }
        }
        let cache_time = self.cache_time.unwrap_or(Duration::ZERO);
        if let Some(shared) = &self.shared {
            if let Some(v) = shared.get(token, cache_time).await {
                self.stats.shared_hits.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("novajoin_token_cache_hits_total", "cache" => "redis")
                    .increment(1);
                return Ok(v);
            }
        }
        let fetched = self.fetch(token, allow_expired).await;
        *self.unavailable.lock().unwrap_or_else(|p| p.into_inner()) = match &fetched {
            Err(ValidationError::Unavailable(e)) => Some(e.to_string()),
            _ => None,
        };
        let data = fetched?;
        let v = Arc::new(ValidatedToken::new(data, cache_time, Utc::now()));
        if let Some(shared) = &self.shared {
            shared.put(token, &v).await;
        }
        Ok(v)
    }

    /// `GET /v3/auth/tokens` on the identity endpoint of the service token's
    /// catalog.
    async fn fetch(
        &self,
        token: &str,
        allow_expired: bool,
    ) -> Result<super::token::TokenData, ValidationError> {
        let base = self
            .session
            .identity_v3(Some(&self.interface), self.region.as_deref())
            .await?;
        let mut url = base.join_path(&["auth", "tokens"]);
        let query = match (self.include_catalog, allow_expired) {
            (true, false) => None,
            (true, true) => Some("allow_expired=1"),
            (false, false) => Some("nocatalog"),
            (false, true) => Some("nocatalog&allow_expired=1"),
        };
        url.set_query(query);
        self.stats.online_calls.fetch_add(1, Ordering::Relaxed);
        let what = "GET /v3/auth/tokens".to_string();
        let resp = self
            .session
            .send_authenticated(&url, |http, service_token| {
                http.get(url.clone())
                    .header("x-auth-token", service_token.expose())
                    .header("x-subject-token", token)
                    .header("openstack-identity-access-rules", "1")
                    .header("accept", "application/json")
            })
            .await?;
        let status = resp.status();
        let outcome = match status.as_u16() {
            200 => "valid",
            404 => "invalid",
            _ => "error",
        };
        metrics::counter!("novajoin_token_validations_total", "outcome" => outcome).increment(1);
        match status.as_u16() {
            200 => {
                let body: ValidationBody = resp
                    .json()
                    .await
                    .map_err(|e| KeystoneError::BadResponse { what, detail: e.to_string() })?;
                tracing::debug!(token = %short_hash(token), user = %body.token.user.name,
                                expires_at = %body.token.expires_at, "keystone validated a token");
                Ok(body.token)
            }
            404 => {
                tracing::info!(token = %short_hash(token), "keystone does not know the token (unknown, revoked or expired)");
                Err(InvalidToken::NotFound.into())
            }
            401 => Err(KeystoneError::CredentialsRefused {
                url: super::error::redact_url(self.session.auth_url()),
                group: "keystone_authtoken".into(),
                status: 401,
            }
            .into()),
            403 => Err(KeystoneError::Forbidden {
                what,
                fix: "the [keystone_authtoken] user needs the service (or admin) role to validate tokens".into(),
            }
            .into()),
            s => Err(KeystoneError::Status { what, status: s }.into()),
        }
    }
}

struct KeystoneProbe {
    unavailable: Arc<std::sync::Mutex<Option<String>>>,
}

impl crate::health::HealthProbe for KeystoneProbe {
    fn name(&self) -> &str {
        "keystone"
    }

    fn check(&self) -> futures::future::BoxFuture<'_, crate::health::HealthState> {
        Box::pin(async move {
            match self
                .unavailable
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
            {
                None => crate::health::HealthState::Ok,
                Some(e) => crate::health::HealthState::Degraded(format!(
                    "token validation failing, only cached tokens accepted: {e}"
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_is_exactly_bang_to_tilde_at_every_position() {
        let base = "gAAAAABk".repeat(24);
        assert!(is_printable_ascii(&base));
        for at in [0, 1, 15, 16, 17, 100, base.len() - 1] {
            for b in 0u8..=127 {
                let mut bytes = base.clone().into_bytes();
                bytes[at] = b;
                let token = String::from_utf8(bytes).unwrap();
                assert_eq!(
                    is_printable_ascii(&token),
                    (b'!'..=b'~').contains(&b),
                    "byte {b:#x} at {at}"
                );
            }
        }
        assert!(!is_printable_ascii("gAAAA\u{e9}"));
    }
}
