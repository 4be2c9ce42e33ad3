//! The service's own keystone session: a v3 password token obtained lazily,
//! reused, refreshed before it expires and re-obtained when keystone answers
//! 401; endpoint lookup in its catalog; and project lookup by id.
//!
//! One [`ServiceSession`] is shared (it is cheap to clone) by everything that
//! talks to keystone or to catalog endpoints with the service's identity.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::auth::{v3_base, AuthPlugin, AuthPluginOptions, JoinPath};
use super::catalog::Catalog;
use super::error::{redact_url, KeystoneError};
use super::secret::Token;
use crate::config::{ConfigError, ConfigFiles};

/// keystoneauth re-authenticates when the token is this close to expiry.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(120);

/// First back-off between connection retries; doubles each time.
const RETRY_BACKOFF_START: Duration = Duration::from_millis(500);

/// The `User-Agent` keystone sees in its logs.
const USER_AGENT: &str = concat!("novajoin/", env!("CARGO_PKG_VERSION"));

/// TLS and timeout settings for calls to keystone (keystoneauth's session options).
#[derive(Clone, Debug, Default)]
pub struct HttpSettings {
    /// CA bundle (PEM) that signs keystone's certificate.
    pub cafile: Option<PathBuf>,
    /// Client certificate (PEM).
    pub certfile: Option<PathBuf>,
    /// Client key (PEM).
    pub keyfile: Option<PathBuf>,
    /// Skip certificate verification.
    pub insecure: bool,
    /// Limit on one call, connect to last byte.
    pub timeout: Option<Duration>,
    /// Retries of a call that could not connect (back-off from 0.5 s).
    pub connect_retries: u32,
}

impl HttpSettings {
    /// Builds the HTTP client. Fails when a certificate file cannot be read.
    pub fn client(&self) -> Result<reqwest::Client, KeystoneError> {
        let mut b = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(t) = self.timeout {
            b = b.timeout(t);
        }
        if let Some(ca) = &self.cafile {
            let pem = std::fs::read(ca).map_err(|e| {
                KeystoneError::Setup(format!("cannot read cafile {}: {e}", ca.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                KeystoneError::Setup(format!("cafile {} is not a PEM bundle: {e}", ca.display()))
            })?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        match (&self.certfile, &self.keyfile) {
            (Some(cert), key) => {
                let mut pem = std::fs::read(cert).map_err(|e| {
                    KeystoneError::Setup(format!("cannot read certfile {}: {e}", cert.display()))
                })?;
                if let Some(key) = key {
                    pem.push(b'\n');
                    pem.extend(std::fs::read(key).map_err(|e| {
                        KeystoneError::Setup(format!("cannot read keyfile {}: {e}", key.display()))
                    })?);
                }
                let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    KeystoneError::Setup(format!(
                        "certfile/keyfile {} is not a PEM certificate and key: {e}",
                        cert.display()
                    ))
                })?;
                b = b.identity(id);
            }
            (None, Some(key)) => {
                return Err(KeystoneError::Setup(format!(
                    "keyfile {} is set without certfile; set both or neither",
                    key.display()
                )))
            }
            (None, None) => {}
        }
        if self.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        b.build().map_err(|e| KeystoneError::Setup(e.to_string()))
    }
}

/// A service token and what came with it.
#[derive(Debug)]
pub struct AuthState {
    /// The token (redacted in `Debug`).
    pub token: Token,
    /// When keystone said it expires.
    pub expires_at: DateTime<Utc>,
    /// Its catalog (empty for an unscoped token).
    pub catalog: Catalog,
    /// The service user's id.
    pub user_id: String,
    /// The scoped project's id, if project-scoped.
    pub project_id: Option<String>,
}

impl AuthState {
    fn fresh_at(&self, now: DateTime<Utc>) -> bool {
        let margin = chrono::Duration::from_std(REFRESH_BEFORE_EXPIRY).unwrap_or_default();
        now + margin < self.expires_at
    }
}

#[derive(Deserialize)]
struct AuthBody {
    token: AuthBodyToken,
}

#[derive(Deserialize)]
struct AuthBodyToken {
    expires_at: DateTime<Utc>,
    user: AuthBodyId,
    #[serde(default)]
    project: Option<AuthBodyId>,
    #[serde(default)]
    catalog: Option<Catalog>,
}

#[derive(Deserialize)]
struct AuthBodyId {
    id: String,
}

/// The service's own keystone session. Cheap to clone; clones share the token.
#[derive(Clone)]
pub struct ServiceSession {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    auth: AuthPlugin,
    group: String,
    interface: String,
    region: Option<String>,
    connect_retries: u32,
    state: RwLock<Option<Arc<AuthState>>>,
    /// Held while authenticating, so concurrent callers wait for one POST.
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ServiceSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceSession")
            .field("group", &self.inner.group)
            .field("auth_url", &redact_url(&self.inner.auth.auth_url))
            .field("user", &self.inner.auth.label())
            .field("interface", &self.inner.interface)
            .field("region", &self.inner.region)
            .finish_non_exhaustive()
    }
}

impl ServiceSession {
    /// A session for `auth`; `group` names the config section in errors.
    /// `interface`/`region` are the defaults for endpoint lookups.
    pub fn new(
        auth: AuthPlugin,
        http: &HttpSettings,
        group: &str,
        interface: &str,
        region: Option<String>,
    ) -> Result<Self, KeystoneError> {
        Ok(ServiceSession {
            inner: Arc::new(Inner {
                http: http.client()?,
                auth,
                group: group.to_string(),
                interface: interface.to_string(),
                region,
                connect_retries: http.connect_retries,
                state: RwLock::new(None),
                refresh: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The session described by join.conf's `[service_credentials]`, or
    /// `None` when no `auth_type` is set there (as keystoneauth loads no
    /// plugin). Every problem names the option.
    pub fn from_config(cfg: &ConfigFiles) -> Result<Option<Self>, ConfigError> {
        const G: &str = "service_credentials";
        let opts = AuthPluginOptions::from_service_credentials(cfg)?;
        if !opts.is_configured() {
            return Ok(None);
        }
        let auth = AuthPlugin::from_options(&opts, G)?;
        let http = HttpSettings {
            cafile: cfg
                .string(&crate::keystone::options::SC_CAFILE)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            certfile: cfg
                .string(&crate::keystone::options::SC_CERTFILE)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            keyfile: cfg
                .string(&crate::keystone::options::SC_KEYFILE)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            insecure: cfg.bool(&crate::keystone::options::SC_INSECURE)?,
            timeout: cfg
                .float(&crate::keystone::options::SC_TIMEOUT)?
                .filter(|t| *t > 0.0)
                .map(Duration::from_secs_f64),
            connect_retries: 0,
        };
        let interface = cfg
            .choice(&crate::keystone::options::SC_INTERFACE)?
            .unwrap_or_else(|| "public".into());
        let region = cfg
            .string(&crate::keystone::options::SC_REGION_NAME)
            .filter(|s| !s.is_empty());
        Self::new(auth, &http, G, &interface, region)
            .map(Some)
            .map_err(|e| ConfigError::Missing {
                group: G.into(),
                option: "cafile/certfile/keyfile".into(),
                why: e.to_string(),
            })
    }

    /// The HTTP client (shared connection pool and TLS settings).
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The configured default interface for endpoint lookups.
    pub fn interface(&self) -> &str {
        &self.inner.interface
    }

    /// The configured default region for endpoint lookups.
    pub fn region(&self) -> Option<&str> {
        self.inner.region.as_deref()
    }

    /// The auth URL (for `WWW-Authenticate` when nothing better is configured).
    pub fn auth_url(&self) -> &url::Url {
        &self.inner.auth.auth_url
    }

    fn current(&self) -> Option<Arc<AuthState>> {
        self.inner
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A service token valid for at least two more minutes: the cached one,
    /// or a new one (one `POST /v3/auth/tokens` however many callers wait).
    pub async fn auth_state(&self) -> Result<Arc<AuthState>, KeystoneError> {
        if let Some(s) = self.current().filter(|s| s.fresh_at(Utc::now())) {
            return Ok(s);
        }
        let _guard = self.inner.refresh.lock().await;
        if let Some(s) = self.current().filter(|s| s.fresh_at(Utc::now())) {
            return Ok(s);
        }
        let s = Arc::new(self.authenticate().await?);
        *self.inner.state.write().unwrap_or_else(|p| p.into_inner()) = Some(s.clone());
        Ok(s)
    }

    /// Forgets `stale` (keystone refused it), so the next call authenticates
    /// again. A token that was already replaced is left alone.
    pub fn invalidate(&self, stale: &Arc<AuthState>) {
        let mut st = self.inner.state.write().unwrap_or_else(|p| p.into_inner());
        if st.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, stale)) {
            *st = None;
        }
    }

    async fn authenticate(&self) -> Result<AuthState, KeystoneError> {
        let url = self.inner.auth.tokens_url();
        let what = format!("POST {}", redact_url(&url));
        let body = self.inner.auth.request_body();
        let resp = self
            .send_with_retries(&url, || self.inner.http.post(url.clone()).json(&body))
            .await?;
        let status = resp.status();
        if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::NOT_FOUND {
            return Err(KeystoneError::CredentialsRefused {
                url: redact_url(&self.inner.auth.auth_url),
                group: self.inner.group.clone(),
                status: status.as_u16(),
            });
        }
        if status != http::StatusCode::CREATED && status != http::StatusCode::OK {
            return Err(KeystoneError::Status {
                what,
                status: status.as_u16(),
            });
        }
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(Token::new)
            .ok_or_else(|| KeystoneError::BadResponse {
                what: what.clone(),
                detail: "no X-Subject-Token header".into(),
            })?;
        let parsed: AuthBody = resp.json().await.map_err(|e| KeystoneError::BadResponse {
            what: what.clone(),
            detail: e.to_string(),
        })?;
        tracing::debug!(
            user = self.inner.auth.label(),
            group = %self.inner.group,
            token = %token.short_hash(),
            expires_at = %parsed.token.expires_at,
            "obtained a service token"
        );
        Ok(AuthState {
            token,
            expires_at: parsed.token.expires_at,
            catalog: parsed.token.catalog.unwrap_or_default(),
            user_id: parsed.token.user.id,
            project_id: parsed.token.project.map(|p| p.id),
        })
    }

    /// Sends the request `build` makes, retrying `connect_retries` times
    /// (back-off from 0.5 s) when it cannot connect.
    async fn send_with_retries(
        &self,
        url: &url::Url,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, KeystoneError> {
        let mut delay = RETRY_BACKOFF_START;
        let mut attempt = 0;
        loop {
            let sent = build().send().await;
            crate::metrics::keystone_call(sent.as_ref().ok().map(|r| r.status().as_u16()));
            match sent {
                Ok(r) => return Ok(r),
                Err(e) if e.is_connect() && attempt < self.inner.connect_retries => {
                    attempt += 1;
                    tracing::debug!(url = %redact_url(url), attempt, "keystone not reachable; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => return Err(KeystoneError::transport(url, &e)),
            }
        }
    }

    /// Sends a request made with the service token; when keystone (or the
    /// service behind the URL) answers 401, authenticates again and repeats
    /// it once. The response may still be 401; the caller maps statuses.
    pub async fn send_authenticated(
        &self,
        url: &url::Url,
        build: impl Fn(&reqwest::Client, &Token) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, KeystoneError> {
        let state = self.auth_state().await?;
        let resp = self
            .send_with_retries(url, || build(&self.inner.http, &state.token))
            .await?;
        if resp.status() != http::StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        tracing::info!(
            url = %redact_url(url),
            token = %state.token.short_hash(),
            "the service token was refused (401); authenticating again"
        );
        self.invalidate(&state);
        let state = self.auth_state().await?;
        self.send_with_retries(url, || build(&self.inner.http, &state.token))
            .await
    }

    /// The URL of `service_type`'s endpoint in the service token's catalog,
    /// for `interface` and `region` (the session's defaults when `None`).
    pub async fn endpoint(
        &self,
        service_type: &str,
        interface: Option<&str>,
        region: Option<&str>,
    ) -> Result<url::Url, KeystoneError> {
        let interface = interface.unwrap_or(&self.inner.interface);
        let region = region.or(self.inner.region.as_deref());
        let state = self.auth_state().await?;
        let not_found = || KeystoneError::EndpointNotFound {
            service_type: service_type.to_string(),
            interface: interface.to_string(),
            region: region.map(str::to_string),
        };
        let raw = state
            .catalog
            .find(service_type, interface, region)
            .ok_or_else(not_found)?;
        url::Url::parse(raw).map_err(|e| KeystoneError::BadResponse {
            what: format!("the catalog's {service_type} endpoint"),
            detail: format!("{raw:?} is not a URL: {e}"),
        })
    }

    /// The v3 root of the identity endpoint for `interface`/`region`
    /// (defaults when `None`).
    pub async fn identity_v3(
        &self,
        interface: Option<&str>,
        region: Option<&str>,
    ) -> Result<url::Url, KeystoneError> {
        Ok(v3_base(
            &self.endpoint("identity", interface, region).await?,
        ))
    }

    /// The name of project `project_id` (`GET /v3/projects/{id}` on the
    /// catalog's identity endpoint); `None` when keystone does not know it.
    pub async fn project_name(&self, project_id: &str) -> Result<Option<String>, KeystoneError> {
        if project_id.is_empty() {
            return Ok(None);
        }
        let url = self
            .identity_v3(None, None)
            .await?
            .join_path(&["projects", project_id]);
        let what = "GET /v3/projects/{id}".to_string();
        let resp = self
            .send_authenticated(&url, |http, token| {
                http.get(url.clone())
                    .header("x-auth-token", token.expose())
                    .header("accept", "application/json")
            })
            .await?;
        match resp.status() {
            s if s.is_success() => {
                #[derive(Deserialize)]
                struct Body {
                    project: ProjectBody,
                }
                #[derive(Deserialize)]
                struct ProjectBody {
                    name: String,
                }
                let b: Body = resp
                    .json()
                    .await
                    .map_err(|e| KeystoneError::BadResponse { what, detail: e.to_string() })?;
                Ok(Some(b.project.name))
            }
            http::StatusCode::NOT_FOUND => Ok(None),
            http::StatusCode::FORBIDDEN => Err(KeystoneError::Forbidden {
                what,
                fix: format!(
                    "the [{}] user needs the admin role (or reader with system scope) to read other projects",
                    self.inner.group
                ),
            }),
            http::StatusCode::UNAUTHORIZED => Err(KeystoneError::CredentialsRefused {
                url: redact_url(&url),
                group: self.inner.group.clone(),
                status: 401,
            }),
            s => Err(KeystoneError::Status { what, status: s.as_u16() }),
        }
    }
}
