//! The filter's settings, read from `[keystone_authtoken]` in join.conf
//! (names and defaults of keystonemiddleware, see
//! [`crate::keystone::options`]) and `[filter.authtoken]` of pipeline.toml,
//! and the token validator built from them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use super::super::build::{BuildContext, FilterOptions};
use crate::config::pipeline_file::PipelineFileError;
use crate::config::schema::OptionSpec;
use crate::config::OptionSource;
use crate::keystone::auth::{AuthPlugin, AuthPluginOptions};
use crate::keystone::cache::SharedCache;
use crate::keystone::cache_crypt::{CacheSecret, Strategy};
use crate::keystone::jws::JwsVerifier;
use crate::keystone::options::*;
use crate::keystone::session::HttpSettings;
use crate::keystone::validator::ValidatorConfig;
use crate::keystone::{ServiceSession, TokenValidator};

/// Default limit on one keystone call when `http_connect_timeout` is unset.
pub const DEFAULT_KEYSTONE_TIMEOUT: Duration = Duration::from_secs(30);

/// `enforce_token_bind`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindMode {
    /// Ignore binds.
    Disabled,
    /// Verify known bind types, ignore unknown ones.
    Permissive,
    /// Verify known bind types, refuse unknown ones.
    Strict,
    /// Refuse tokens without a bind.
    Required,
    /// Require this bind type.
    Named(String),
}

impl BindMode {
    fn parse(s: &str) -> BindMode {
        match s.trim().to_ascii_lowercase().as_str() {
            "disabled" => BindMode::Disabled,
            "permissive" => BindMode::Permissive,
            "strict" => BindMode::Strict,
            "required" => BindMode::Required,
            _ => BindMode::Named(s.trim().to_string()),
        }
    }

    /// Whether a token with `bind` passes. The only bind type keystone
    /// issues is `kerberos`, which needs a Negotiate-authenticated request;
    /// novajoin has none, so a kerberos-bound token never verifies here.
    pub fn accepts(
        &self,
        bind: Option<&std::collections::BTreeMap<String, serde_json::Value>>,
    ) -> bool {
        if *self == BindMode::Disabled {
            return true;
        }
        let bind = bind.filter(|b| !b.is_empty());
        let Some(bind) = bind else {
            return !matches!(self, BindMode::Required | BindMode::Named(_));
        };
        if let BindMode::Named(n) = self {
            if !bind.contains_key(n) {
                return false;
            }
        }
        bind.keys().all(|kind| match kind.as_str() {
            "kerberos" => false,
            _ => *self == BindMode::Permissive,
        })
    }
}

/// The filter's settings (besides the validator).
#[derive(Clone, Debug)]
pub struct AuthTokenSettings {
    /// Value of `WWW-Authenticate` on 401s: `Keystone uri="..."`.
    pub www_authenticate: HeaderValue,
    /// `delay_auth_decision`.
    pub delay_auth_decision: bool,
    /// `service_token_roles`.
    pub service_token_roles: Vec<String>,
    /// `service_token_roles_required`.
    pub service_token_roles_required: bool,
    /// `include_service_catalog`.
    pub include_service_catalog: bool,
    /// `enforce_token_bind`.
    pub bind: BindMode,
    /// `service_type`.
    pub service_type: Option<String>,
}

fn located_err(opts: &FilterOptions, spec: &OptionSpec, problem: String) -> PipelineFileError {
    match opts.config().raw(spec) {
        Some(at) => PipelineFileError {
            file: at.file.clone(),
            line: at.line,
            problem: format!("[{}] {}: {problem}", spec.group, spec.name),
        },
        None => PipelineFileError {
            file: PathBuf::from("join.conf"),
            line: 0,
            problem: format!("[{}] {}: {problem}", spec.group, spec.name),
        },
    }
}

fn ka_spec(name: &str) -> Option<&'static OptionSpec> {
    KEYSTONE_AUTHTOKEN_OPTIONS.iter().find(|o| o.name == name)
}

/// Reads the options and builds the validator and settings.
pub fn from_options(
    mut opts: FilterOptions,
    ctx: &BuildContext,
) -> Result<(Arc<TokenValidator>, AuthTokenSettings), PipelineFileError> {
    let plain = |problem: String| PipelineFileError {
        file: PathBuf::from("join.conf"),
        line: 0,
        problem,
    };
    // The auth plugin: here, or in the section auth_section names.
    let section = opts.string(&KA_AUTH_SECTION)?.filter(|s| !s.is_empty());
    let auth_group = section
        .clone()
        .unwrap_or_else(|| "keystone_authtoken".to_string());
    let auth_opts = match &section {
        Some(sec) => {
            // Take (and so accept) the plugin options even if unused here.
            for n in crate::keystone::auth::AUTH_OPTION_NAMES {
                if let Some(spec) = ka_spec(n) {
                    let _ = opts.string(spec)?;
                }
            }
            AuthPluginOptions::from_section(opts.config(), sec)
        }
        None => {
            let o = AuthPluginOptions::from_lookup(|name| match ka_spec(name) {
                Some(spec) => opts.string(spec),
                None => Ok(None),
            })?;
            if let Some(t) = o.auth_type.as_deref().filter(|t| {
                !crate::keystone::auth::PASSWORD_PLUGINS.contains(t)
                    && !crate::keystone::auth::APPLICATION_CREDENTIAL_PLUGINS.contains(t)
            }) {
                return Err(located_err(
                    &opts,
                    &KA_AUTH_TYPE,
                    format!("{t:?} is not supported; use auth_type = password or v3applicationcredential"),
                ));
            }
            o
        }
    };
    let auth = AuthPlugin::from_options(&auth_opts, &auth_group).map_err(|e| plain(format!(
        "{e}. The authtoken filter needs the service's own credentials in [{auth_group}] to validate tokens")))?;
    let _ = opts.string(&KA_AUTH_VERSION)?;

    let interface = opts
        .string(&KA_INTERFACE)?
        .unwrap_or_else(|| "internal".into());
    if !["public", "internal", "admin"].contains(&interface.as_str()) {
        return Err(located_err(
            &opts,
            &KA_INTERFACE,
            format!("{interface:?} is not one of public, internal, admin"),
        ));
    }
    let region = opts.string(&KA_REGION_NAME)?.filter(|s| !s.is_empty());
    let timeout = opts
        .int(&KA_HTTP_CONNECT_TIMEOUT)?
        .map(|s| Duration::from_secs(s as u64))
        .unwrap_or(DEFAULT_KEYSTONE_TIMEOUT);
    let retries = opts.int_or_default(&KA_HTTP_REQUEST_MAX_RETRIES)? as u32;
    let path = |v: Option<String>| v.filter(|s| !s.is_empty()).map(PathBuf::from);
    let http = HttpSettings {
        cafile: path(opts.string(&KA_CAFILE)?),
        certfile: path(opts.string(&KA_CERTFILE)?),
        keyfile: path(opts.string(&KA_KEYFILE)?),
        insecure: opts.bool(&KA_INSECURE)?,
        timeout: Some(timeout),
        connect_retries: retries,
    };
    let session = ServiceSession::new(auth, &http, &auth_group, &interface, region.clone())
        .map_err(|e| plain(format!("[keystone_authtoken] {e}")))?;

    let www = match opts
        .string(&KA_WWW_AUTHENTICATE_URI)?
        .filter(|s| !s.is_empty())
    {
        Some(u) => u,
        None => {
            let u = session.auth_url().to_string();
            tracing::warn!("[keystone_authtoken] www_authenticate_uri is not set; 401 answers name auth_url {u} instead");
            u
        }
    };
    let www_authenticate =
        HeaderValue::from_str(&format!("Keystone uri=\"{www}\"")).map_err(|_| {
            located_err(
                &opts,
                &KA_WWW_AUTHENTICATE_URI,
                "contains characters not allowed in a header".into(),
            )
        })?;

    // Caches.
    let cache_time = match opts.int_or_default(&KA_TOKEN_CACHE_TIME)? {
        n if n < 0 => None,
        n => Some(Duration::from_secs(n as u64)),
    };
    let memory_capacity = opts.int_or_default(&KA_MEMORY_CACHE_SIZE)? as u64;
    let strategy_text = opts
        .string(&KA_MEMCACHE_SECURITY_STRATEGY)?
        .unwrap_or_default();
    let strategy = Strategy::parse(&strategy_text)
        .map_err(|p| located_err(&opts, &KA_MEMCACHE_SECURITY_STRATEGY, p))?;
    let secret = opts
        .string(&KA_MEMCACHE_SECRET_KEY)?
        .filter(|s| !s.is_empty());
    if strategy.is_some() && secret.is_none() {
        return Err(located_err(
            &opts,
            &KA_MEMCACHE_SECURITY_STRATEGY,
            "needs memcache_secret_key; set it (the same on every replica)".into(),
        ));
    }
    let memcached = opts.list(&KA_MEMCACHED_SERVERS)?;
    let redis_url = opts.string(&KA_REDIS_URL)?.filter(|s| !s.is_empty());
    let prefix = opts
        .string(&KA_REDIS_KEY_PREFIX)?
        .unwrap_or_else(|| "novajoin:".into());
    let op_timeout =
        Duration::from_secs(opts.int_or_default(&KA_MEMCACHE_POOL_SOCKET_TIMEOUT)? as u64);
    let dead_retry = Duration::from_secs(opts.int_or_default(&KA_MEMCACHE_POOL_DEAD_RETRY)? as u64);
    // The memcached client speaks neither TLS nor SASL: a join.conf that
    // asks for them never gets a plain connection instead.
    let memcache_tls = opts.bool(&KA_MEMCACHE_TLS_ENABLED)?;
    let memcache_sasl = opts.bool(&KA_MEMCACHE_SASL_ENABLED)?;
    let shared = match (&redis_url, memcached.is_empty(), strategy, &secret) {
        (None, true, _, _) => None,
        (Some(_), _, None, _) | (Some(_), _, _, None) => {
            return Err(located_err(&opts, &KA_REDIS_URL,
                "a shared token cache needs memcache_security_strategy = MAC or ENCRYPT and memcache_secret_key, \
                 so that whoever can write to Redis cannot plant an identity".into()));
        }
        (Some(url), _, Some(st), Some(key)) => {
            if !memcached.is_empty() {
                tracing::warn!("[keystone_authtoken] memcached_servers is not used: redis_url is set, and the \
                                token cache is shared through Redis");
            }
            let c = SharedCache::new(url, &prefix, CacheSecret::new(key, st), op_timeout)
                .map_err(|p| located_err(&opts, &KA_REDIS_URL, p))?;
            ctx.health.register(c.probe());
            Some(c)
        }
        // keystonemiddleware shares unprotected entries with strategy
        // None; here an unprotected shared entry would let whoever can
        // write to memcached plant an identity, so the cache stays in
        // memory (a join.conf without a strategy keeps working).
        (None, false, None, _) | (None, false, _, None) => {
            tracing::warn!("[keystone_authtoken] memcached_servers is not used: sharing tokens through memcached \
                            needs memcache_security_strategy = MAC or ENCRYPT and memcache_secret_key (the same on \
                            every replica), so that whoever can write to memcached cannot plant an identity; tokens \
                            are cached in this process's memory only");
            None
        }
        (None, false, Some(_), Some(_)) if memcache_tls || memcache_sasl => {
            tracing::warn!("[keystone_authtoken] memcached_servers is not used: memcache_tls_enabled or \
                            memcache_sasl_enabled is set, and novajoin's memcached client speaks neither (use a \
                            rediss:// redis_url for an encrypted, authenticated shared cache); tokens are cached in \
                            this process's memory only");
            None
        }
        (None, false, Some(st), Some(key)) => {
            let servers = match crate::memcache::parse_servers(&memcached) {
                Ok(s) => Some(s),
                // keystonemiddleware reaches IPv6 memcached; a join.conf
                // written for it keeps working here, with tokens in memory.
                Err(e @ crate::memcache::ServerListError::Ipv6(_)) => {
                    tracing::warn!("[keystone_authtoken] memcached_servers is not used: {e}; tokens are cached \
                                    in this process's memory only");
                    None
                }
                Err(e) => return Err(located_err(&opts, &KA_MEMCACHED_SERVERS, e.to_string())),
            };
            if prefix.len() > 150 || prefix.bytes().any(|b| b <= b' ' || b == 0x7f) {
                return Err(located_err(&opts, &KA_REDIS_KEY_PREFIX,
                    "is not usable in memcached keys; use at most 150 characters without spaces or control \
                     characters".into()));
            }
            servers.map(|servers| {
                let c = SharedCache::memcached(
                    servers,
                    &prefix,
                    CacheSecret::new(key, st),
                    op_timeout,
                    dead_retry,
                );
                ctx.health.register(c.probe());
                c
            })
        }
    };
    if cache_time.is_none() && shared.is_some() {
        tracing::warn!(
            "[keystone_authtoken] token_cache_time = -1 disables caching; the shared token cache is not used"
        );
    }

    // Local JWS check.
    let jws_dir = opts
        .string(&KA_JWS_PUBLIC_KEY_REPOSITORY)?
        .filter(|s| !s.is_empty());
    let algorithms = opts.list(&KA_JWS_ACCEPTED_ALGORITHMS)?;
    let jws = match jws_dir {
        None => None,
        Some(dir) => Some(
            JwsVerifier::load(std::path::Path::new(&dir), &algorithms)
                .map_err(|e| located_err(&opts, &KA_JWS_PUBLIC_KEY_REPOSITORY, e.to_string()))?,
        ),
    };

    let include_service_catalog = opts.bool(&KA_INCLUDE_SERVICE_CATALOG)?;
    let settings = AuthTokenSettings {
        www_authenticate,
        delay_auth_decision: opts.bool(&KA_DELAY_AUTH_DECISION)?,
        service_token_roles: opts.list(&KA_SERVICE_TOKEN_ROLES)?,
        service_token_roles_required: opts.bool(&KA_SERVICE_TOKEN_ROLES_REQUIRED)?,
        include_service_catalog,
        bind: BindMode::parse(
            &opts
                .string(&KA_ENFORCE_TOKEN_BIND)?
                .unwrap_or_else(|| "permissive".into()),
        ),
        service_type: opts.string(&KA_SERVICE_TYPE)?.filter(|s| !s.is_empty()),
    };
    // Accepted for compatibility, not used.
    for spec in [
        &KA_MEMCACHE_POOL_MAXSIZE,
        &KA_MEMCACHE_POOL_UNUSED_TIMEOUT,
        &KA_MEMCACHE_POOL_CONN_GET_TIMEOUT,
        &KA_MEMCACHE_USE_ADVANCED_POOL,
        &KA_MEMCACHE_TLS_CAFILE,
        &KA_MEMCACHE_TLS_CERTFILE,
        &KA_MEMCACHE_TLS_KEYFILE,
        &KA_MEMCACHE_TLS_ALLOWED_CIPHERS,
        &KA_MEMCACHE_USERNAME,
        &KA_MEMCACHE_PASSWORD,
        &KA_CACHE,
    ] {
        let _ = opts.raw(spec.name);
    }
    opts.finish()?;
    let validator = TokenValidator::new(ValidatorConfig {
        session,
        interface,
        region,
        include_catalog: include_service_catalog,
        cache_time,
        memory_capacity,
        shared,
        jws,
    });
    ctx.health.register(validator.probe());
    Ok((Arc::new(validator), settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_modes() {
        let kerb: std::collections::BTreeMap<String, serde_json::Value> =
            [("kerberos".to_string(), serde_json::json!("nova@EXAMPLE"))]
                .into_iter()
                .collect();
        let other: std::collections::BTreeMap<String, serde_json::Value> =
            [("x509".to_string(), serde_json::json!("cn"))]
                .into_iter()
                .collect();
        assert!(BindMode::Disabled.accepts(Some(&kerb)));
        assert!(BindMode::Permissive.accepts(None));
        assert!(!BindMode::Permissive.accepts(Some(&kerb)));
        assert!(BindMode::Permissive.accepts(Some(&other)));
        assert!(!BindMode::Strict.accepts(Some(&other)));
        assert!(!BindMode::Required.accepts(None));
        assert!(!BindMode::Named("x509".into()).accepts(None));
    }
}
