//! The `authtoken` filter: keystonemiddleware's `auth_token`, for the
//! callers nova sends (and any other keystone client).
//!
//! Per request: strip every identity header a client could forge; validate
//! `X-Service-Token` (if any) and then `X-Auth-Token` (or `X-Storage-Token`)
//! through [`TokenValidator`]; on success insert
//! [`IdentityStatus::Confirmed`] and the `X-*` headers keystonemiddleware
//! sets; otherwise answer 401 with `WWW-Authenticate: Keystone uri="..."`
//! (503 when keystone cannot be reached), or with `delay_auth_decision` pass
//! the request on marked [`IdentityStatus::Invalid`]. A 401 from an inner
//! filter gets the `WWW-Authenticate` header too.
//!
//! Options come from `[keystone_authtoken]` in join.conf (names and defaults
//! of keystonemiddleware, see [`crate::keystone::options`]), overridable in
//! `[filter.authtoken]` of pipeline.toml.

use std::convert::Infallible;
use std::task::{Context, Poll};

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tower::Service;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;

use super::registry::{BuildContext, FilterFactory, FilterOptions};
use super::response::UNAUTHORIZED_BODY;
use super::{boxed, take_ready, HttpFuture, HttpService, ReqBody, RespBody};
use crate::config::pipeline_file::PipelineFileError;
use crate::config::schema::OptionSpec;
use crate::keystone::auth::{PasswordAuth, PasswordAuthOptions};
use crate::keystone::cache::{SharedCache, ValidatedToken};
use crate::keystone::cache_crypt::{CacheSecret, Strategy};
use crate::keystone::jws::JwsVerifier;
use crate::keystone::options::*;
use crate::keystone::secret::short_hash;
use crate::keystone::session::HttpSettings;
use crate::keystone::validator::{InvalidToken, ValidatorConfig};
use crate::keystone::{Identity, IdentityStatus, ServiceSession, TokenValidator, ValidationError};

/// Default limit on one keystone call when `http_connect_timeout` is unset.
pub const DEFAULT_KEYSTONE_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers a client could use to pass itself off as someone: removed from
/// every request before validation (keystonemiddleware's list, plus
/// `OpenStack-System-Scope`, which it forgets). Built once.
pub fn spoofable_headers() -> &'static [HeaderName] {
    static NAMES: LazyLock<Vec<HeaderName>> = LazyLock::new(spoofable_header_names);
    &NAMES
}

/// Whether `name` is one of [`spoofable_headers`] (a set lookup: the
/// check runs on every header of every request).
pub fn is_spoofable(name: &HeaderName) -> bool {
    static SET: LazyLock<HashSet<HeaderName, foldhash::fast::RandomState>> =
        LazyLock::new(|| spoofable_headers().iter().cloned().collect());
    SET.contains(name)
}

fn spoofable_header_names() -> Vec<HeaderName> {
    let mut names: Vec<String> = [
        "X-Service-Catalog",
        "X-Identity-Status",
        "X-Service-Identity-Status",
        "X-Is-Admin-Project",
        "X-Role",
        "X-User",
        "X-Tenant-Id",
        "X-Tenant-Name",
        "X-Tenant",
        "X-Roles",
        "X-Service-Roles",
        "OpenStack-System-Scope",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for prefix in ["X-", "X-Service-"] {
        for suffix in [
            "Domain-Id",
            "Domain-Name",
            "Project-Id",
            "Project-Name",
            "Project-Domain-Id",
            "Project-Domain-Name",
            "User-Id",
            "User-Name",
            "User-Domain-Id",
            "User-Domain-Name",
        ] {
            names.push(format!("{prefix}{suffix}"));
        }
    }
    names
        .into_iter()
        .map(|n| {
            HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()).expect("static header name")
        })
        .collect()
}

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

/// Whether `path` matches an access-rule pattern: `{name}` and `*` match
/// one path segment, `**` any remainder; everything else literally.
pub fn access_rule_path_matches(path: &str, pattern: &str) -> bool {
    let mut re = String::from("^");
    let mut rest = pattern;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("**") {
            re.push_str(".*");
            rest = r;
        } else if let Some(r) = rest.strip_prefix('*') {
            re.push_str("[^/]+");
            rest = r;
        } else if rest.starts_with('{') && rest.contains('}') {
            re.push_str("[^/]+");
            rest = &rest[rest.find('}').map(|i| i + 1).unwrap_or(rest.len())..];
        } else {
            let c = rest.chars().next().expect("non-empty");
            re.push_str(&regex::escape(&c.to_string()));
            rest = &rest[c.len_utf8()..];
        }
    }
    re.push('$');
    regex::Regex::new(&re)
        .map(|r| r.is_match(path))
        .unwrap_or(false)
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

struct Shared {
    validator: Arc<TokenValidator>,
    settings: AuthTokenSettings,
    warned_roles: AtomicBool,
}

/// The filter as a tower service.
#[derive(Clone)]
pub struct AuthToken {
    inner: HttpService,
    shared: Arc<Shared>,
}

/// Wraps services with the filter.
#[derive(Clone)]
pub struct AuthTokenLayer {
    shared: Arc<Shared>,
}

impl AuthTokenLayer {
    /// A layer validating with `validator`.
    pub fn new(validator: Arc<TokenValidator>, settings: AuthTokenSettings) -> Self {
        AuthTokenLayer {
            shared: Arc::new(Shared {
                validator,
                settings,
                warned_roles: AtomicBool::new(false),
            }),
        }
    }

    /// The validator (for stats and tests).
    pub fn validator(&self) -> &Arc<TokenValidator> {
        &self.shared.validator
    }
}

impl tower::Layer<HttpService> for AuthTokenLayer {
    type Service = AuthToken;
    fn layer(&self, inner: HttpService) -> AuthToken {
        AuthToken {
            inner,
            shared: self.shared.clone(),
        }
    }
}

impl Service<Request<ReqBody>> for AuthToken {
    type Response = Response<RespBody>;
    type Error = Infallible;
    type Future = HttpFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> HttpFuture {
        let inner = take_ready(&mut self.inner);
        let shared = self.shared.clone();
        Box::pin(async move { Ok(handle(shared, inner, req).await) })
    }
}

/// The 401 answer.
pub fn unauthorized(www_authenticate: &HeaderValue) -> Response<RespBody> {
    let mut r = Response::new(Full::new(Bytes::from_static(UNAUTHORIZED_BODY.as_bytes())));
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, www_authenticate.clone());
    r
}

/// The 503 answer when keystone cannot be reached, in WebOb's shapes
/// (JSON when the client accepts it, as nova does; plain text otherwise).
pub fn keystone_unavailable(headers: &HeaderMap) -> Response<RespBody> {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    let (ctype, body) = if wants_json {
        ("application/json", serde_json::json!({
            "message": "The server is currently unavailable. Please try again at a later time.<br /><br />\nThe Keystone service is temporarily unavailable.\n\n",
            "code": "503 Service Unavailable",
            "title": "Service Unavailable"
        }).to_string())
    } else {
        ("text/plain; charset=UTF-8", "503 Service Unavailable\n\nThe server is currently unavailable. Please try again at a later time.\n\n The Keystone service is temporarily unavailable.  ".to_string())
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

const X_SERVICE_TOKEN: HeaderName = HeaderName::from_static("x-service-token");
const X_AUTH_TOKEN: HeaderName = HeaderName::from_static("x-auth-token");
const X_STORAGE_TOKEN: HeaderName = HeaderName::from_static("x-storage-token");

/// The first of `names` the request carries, trimmed. A value that is not
/// UTF-8 comes back as U+FFFD, which validation refuses as malformed, as it
/// refuses any byte outside printable ASCII. (`HeaderValue::to_str` would
/// check the same bytes again, one at a time: a long token made that a
/// visible cost.)
fn token_header<'a>(headers: &'a HeaderMap, names: &[HeaderName]) -> Option<&'a str> {
    names.iter().find_map(|n| headers.get(n)).map(|v| {
        std::str::from_utf8(v.as_bytes())
            .unwrap_or("\u{fffd}")
            .trim()
    })
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    // Names may be non-ASCII UTF-8: from_bytes keeps them (obs-text).
    if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

fn set_opt(headers: &mut HeaderMap, name: &'static str, value: &Option<String>) {
    if let Some(v) = value {
        set(headers, name, v);
    }
}

/// How many headers the cached identity map has room for: its twenty or so
/// plus what nova sends (about ten).
const IDENTITY_HEADER_ROOM: usize = 48;

/// Sets the identity headers of a validated user token. They are built once
/// per validated token (cached with it); the request's headers become a copy
/// of that map with the request's own added to it, which costs a third of
/// inserting some twenty headers one by one. None of the request's names can
/// clash: each identity header is in [`spoofable_headers`], removed before
/// validation.
fn decorate_user(headers: &mut HeaderMap, v: &ValidatedToken, include_catalog: bool) {
    let built = v.user_headers.get_or_init(|| {
        // Room for a request's own headers, so adding them does not grow it.
        let mut h = HeaderMap::with_capacity(IDENTITY_HEADER_ROOM);
        user_headers(&mut h, v);
        h
    });
    let own = std::mem::replace(headers, built.clone());
    headers.extend(own);
    if include_catalog {
        let catalog = v.catalog_header.get_or_init(|| {
            v.data
                .catalog
                .as_ref()
                .and_then(|c| HeaderValue::from_str(&c.to_v2_json().to_string()).ok())
        });
        if let Some(c) = catalog {
            headers.insert(HeaderName::from_static("x-service-catalog"), c.clone());
        }
    }
}

fn user_headers(headers: &mut HeaderMap, v: &ValidatedToken) {
    let id = &v.identity;
    set(headers, "x-identity-status", "Confirmed");
    set(headers, "x-user-id", &id.user_id);
    set(headers, "x-user-name", &id.user_name);
    set_opt(headers, "x-user-domain-id", &id.user_domain_id);
    set_opt(headers, "x-user-domain-name", &id.user_domain_name);
    set_opt(headers, "x-project-id", &id.project_id);
    set_opt(headers, "x-project-name", &id.project_name);
    set_opt(headers, "x-project-domain-id", &id.project_domain_id);
    set_opt(headers, "x-project-domain-name", &id.project_domain_name);
    set_opt(headers, "x-domain-id", &id.domain_id);
    set_opt(headers, "x-domain-name", &id.domain_name);
    set_opt(headers, "openstack-system-scope", &id.system_scope);
    let roles = id.roles.join(",");
    set(headers, "x-roles", &roles);
    set(
        headers,
        "x-is-admin-project",
        if id.is_admin_project { "True" } else { "False" },
    );
    // Deprecated copies some services still read.
    set(headers, "x-role", &roles);
    set(headers, "x-user", &id.user_name);
    set_opt(headers, "x-tenant-id", &id.project_id);
    set_opt(headers, "x-tenant-name", &id.project_name);
    set_opt(headers, "x-tenant", &id.project_name);
}

fn decorate_service(headers: &mut HeaderMap, v: &ValidatedToken) {
    let id = &v.identity;
    set(headers, "x-service-identity-status", "Confirmed");
    set(headers, "x-service-roles", &id.roles.join(","));
    set(headers, "x-service-user-id", &id.user_id);
    set(headers, "x-service-user-name", &id.user_name);
    set_opt(headers, "x-service-user-domain-id", &id.user_domain_id);
    set_opt(headers, "x-service-user-domain-name", &id.user_domain_name);
    set_opt(headers, "x-service-project-id", &id.project_id);
    set_opt(headers, "x-service-project-name", &id.project_name);
    set_opt(
        headers,
        "x-service-project-domain-id",
        &id.project_domain_id,
    );
    set_opt(
        headers,
        "x-service-project-domain-name",
        &id.project_domain_name,
    );
    set_opt(headers, "x-service-domain-id", &id.domain_id);
    set_opt(headers, "x-service-domain-name", &id.domain_name);
}

/// Outcome of one token's checks.
enum Checked {
    Valid(Arc<ValidatedToken>),
    Invalid(String),
    Unavailable(crate::keystone::KeystoneError),
}

async fn handle(
    shared: Arc<Shared>,
    mut inner: HttpService,
    mut req: Request<ReqBody>,
) -> Response<RespBody> {
    let s = &shared.settings;
    let v = &shared.validator;
    // Looking first is cheaper than 36 removals on the usual request,
    // which carries none of them.
    let spoofed = req.headers().keys().any(|k| {
        let n = k.as_str();
        (n.starts_with("x-") || n.starts_with("openstack-")) && is_spoofable(k)
    });
    if spoofed {
        for name in spoofable_headers() {
            req.headers_mut().remove(name);
        }
    }
    req.extensions_mut().remove::<IdentityStatus>();

    // The service token, when one came along.
    let service_token = token_header(req.headers(), &[X_SERVICE_TOKEN]).map(str::to_string);
    let mut allow_expired = false;
    let service = match &service_token {
        None => None,
        Some(t) => Some(match v.validate(t, false).await {
            Ok(vt) if !s.bind.accepts(vt.data.bind.as_ref()) => {
                Checked::Invalid("service token bind not verifiable".into())
            }
            Ok(vt) => {
                let role_ok = vt
                    .identity
                    .roles
                    .iter()
                    .any(|r| s.service_token_roles.contains(r));
                allow_expired = role_ok;
                if role_ok {
                    Checked::Valid(vt)
                } else if s.service_token_roles_required {
                    Checked::Invalid(format!(
                        "service token lacks all of service_token_roles {:?}",
                        s.service_token_roles
                    ))
                } else {
                    if !shared.warned_roles.swap(true, Ordering::Relaxed) {
                        tracing::warn!("a service token without any of service_token_roles {:?} was accepted because \
                                        service_token_roles_required is false; set it to true", s.service_token_roles);
                    }
                    Checked::Valid(vt)
                }
            }
            Err(ValidationError::Invalid(e)) => Checked::Invalid(format!("service token: {e}")),
            Err(ValidationError::Unavailable(e)) => Checked::Unavailable(e),
        }),
    };

    // The user token.
    let user = match token_header(req.headers(), &[X_AUTH_TOKEN, X_STORAGE_TOKEN]) {
        None => Checked::Invalid("no X-Auth-Token".into()),
        Some(t) => {
            // Hashed only to name a refused token in the log (not on the
            // accepted path, which every request takes).
            let hash = || short_hash(t);
            match v.validate(t, allow_expired).await {
                Ok(vt) => {
                    if let Err(why) = check_access_rules(s, &vt, &req, service.is_some()) {
                        Checked::Invalid(format!("token {}: {why}", hash()))
                    } else if service.is_none() && !s.bind.accepts(vt.data.bind.as_ref()) {
                        Checked::Invalid(format!(
                            "token {}: its bind cannot be verified here",
                            hash()
                        ))
                    } else {
                        Checked::Valid(vt)
                    }
                }
                Err(ValidationError::Invalid(InvalidToken::Malformed)) => {
                    Checked::Invalid("malformed token".into())
                }
                Err(ValidationError::Invalid(e)) => {
                    Checked::Invalid(format!("token {}: {e}", hash()))
                }
                Err(ValidationError::Unavailable(e)) => Checked::Unavailable(e),
            }
        }
    };

    let headers = req.headers_mut();
    let service_ok = match &service {
        None => true,
        Some(Checked::Valid(sv)) => {
            decorate_service(headers, sv);
            true
        }
        Some(Checked::Invalid(why)) => {
            tracing::info!("service token refused: {why}");
            set(headers, "x-service-identity-status", "Invalid");
            false
        }
        Some(Checked::Unavailable(e)) => {
            if !s.delay_auth_decision {
                tracing::error!("cannot validate the service token: {e}");
                return keystone_unavailable(req.headers());
            }
            tracing::warn!("cannot validate the service token, passing it on as Invalid: {e}");
            set(headers, "x-service-identity-status", "Invalid");
            false
        }
    };
    let confirmed = match user {
        Checked::Valid(uv) => {
            decorate_user(headers, &uv, s.include_service_catalog);
            Some(uv)
        }
        Checked::Invalid(why) => {
            tracing::info!("rejecting request: {why}");
            set(headers, "x-identity-status", "Invalid");
            None
        }
        Checked::Unavailable(e) => {
            if !s.delay_auth_decision {
                tracing::error!("cannot validate the token: {e}");
                return keystone_unavailable(req.headers());
            }
            tracing::warn!("cannot validate the token, passing it on as Invalid: {e}");
            set(headers, "x-identity-status", "Invalid");
            None
        }
    };
    match (confirmed, service_ok) {
        (Some(uv), true) => {
            let identity = match &service {
                Some(Checked::Valid(sv)) => {
                    let mut id: Identity = (*uv.identity).clone();
                    id.service_roles = sv.identity.roles.clone();
                    id.service_token_valid = true;
                    Arc::new(id)
                }
                _ => uv.identity.clone(),
            };
            req.extensions_mut()
                .insert(IdentityStatus::Confirmed(identity));
        }
        _ if s.delay_auth_decision => {
            req.extensions_mut().insert(IdentityStatus::Invalid);
        }
        _ => return unauthorized(&s.www_authenticate),
    }
    let mut resp = match inner.call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    if resp.status() == StatusCode::UNAUTHORIZED
        && !resp.headers().contains_key(header::WWW_AUTHENTICATE)
    {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, s.www_authenticate.clone());
    }
    resp
}

/// Application-credential access rules (keystonemiddleware's check).
fn check_access_rules(
    s: &AuthTokenSettings,
    v: &ValidatedToken,
    req: &Request<ReqBody>,
    has_service_token: bool,
) -> Result<(), String> {
    let Some(rules) = v
        .data
        .application_credential
        .as_ref()
        .and_then(|a| a.access_rules.as_ref())
    else {
        return Ok(());
    };
    let Some(my_type) = s.service_type.as_deref() else {
        return Err("application credential with access rules, and [keystone_authtoken] service_type is not set".into());
    };
    if !v.data.catalog.as_ref().is_some_and(|c| c.has_type(my_type)) {
        return Err(format!("application credential with access rules, and service_type {my_type:?} is not in the token's catalog"));
    }
    if has_service_token {
        return Ok(());
    }
    let method = req.method().as_str();
    let path = req.uri().path();
    if rules.iter().any(|r| {
        r.method == method && r.service == my_type && access_rule_path_matches(path, &r.path)
    }) {
        Ok(())
    } else {
        Err(format!(
            "no access rule of the application credential allows {method} {path}"
        ))
    }
}

// ---- building the filter from its options ----

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
pub async fn from_options(
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
            for n in crate::keystone::auth::PASSWORD_OPTION_NAMES {
                if let Some(spec) = ka_spec(n) {
                    let _ = opts.string(spec)?;
                }
            }
            PasswordAuthOptions::from_section(opts.config(), sec)
        }
        None => {
            let o = PasswordAuthOptions::from_lookup(|name| match ka_spec(name) {
                Some(spec) => opts.string(spec),
                None => Ok(None),
            })?;
            if let Some(t) = o
                .auth_type
                .as_deref()
                .filter(|t| *t != "password" && *t != "v3password")
            {
                return Err(located_err(
                    &opts,
                    &KA_AUTH_TYPE,
                    format!("{t:?} is not supported; use auth_type = password"),
                ));
            }
            o
        }
    };
    let auth = PasswordAuth::from_options(&auth_opts, &auth_group).map_err(|e| plain(format!(
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
    let retries = opts.int(&KA_HTTP_REQUEST_MAX_RETRIES)?.unwrap_or(3) as u32;
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
    let cache_time = match opts.int(&KA_TOKEN_CACHE_TIME)?.unwrap_or(300) {
        n if n < 0 => None,
        n => Some(Duration::from_secs(n as u64)),
    };
    let memory_capacity = opts.int(&KA_MEMORY_CACHE_SIZE)?.unwrap_or(100_000) as u64;
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
        Duration::from_secs(opts.int(&KA_MEMCACHE_POOL_SOCKET_TIMEOUT)?.unwrap_or(3) as u64);
    if !memcached.is_empty() && redis_url.is_none() {
        tracing::warn!("[keystone_authtoken] memcached_servers is ignored: novajoin shares its token cache through \
                        Redis (redis_url); tokens are cached in this process's memory only");
    }
    let shared = match (&redis_url, strategy, &secret) {
        (None, _, _) => None,
        (Some(_), None, _) | (Some(_), _, None) => {
            return Err(located_err(&opts, &KA_REDIS_URL,
                "a shared token cache needs memcache_security_strategy = MAC or ENCRYPT and memcache_secret_key, \
                 so that whoever can write to Redis cannot plant an identity".into()));
        }
        (Some(url), Some(st), Some(key)) => {
            let c = SharedCache::new(url, &prefix, CacheSecret::new(key, st), op_timeout)
                .map_err(|p| located_err(&opts, &KA_REDIS_URL, p))?;
            ctx.health.register(c.probe());
            Some(c)
        }
    };
    if cache_time.is_none() && shared.is_some() {
        tracing::warn!(
            "[keystone_authtoken] token_cache_time = -1 disables caching; redis_url is not used"
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
        &KA_MEMCACHE_POOL_DEAD_RETRY,
        &KA_MEMCACHE_POOL_MAXSIZE,
        &KA_MEMCACHE_POOL_UNUSED_TIMEOUT,
        &KA_MEMCACHE_POOL_CONN_GET_TIMEOUT,
        &KA_MEMCACHE_USE_ADVANCED_POOL,
        &KA_MEMCACHE_TLS_ENABLED,
        &KA_MEMCACHE_TLS_CAFILE,
        &KA_MEMCACHE_TLS_CERTFILE,
        &KA_MEMCACHE_TLS_KEYFILE,
        &KA_MEMCACHE_TLS_ALLOWED_CIPHERS,
        &KA_MEMCACHE_SASL_ENABLED,
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

/// Builds the filter from its options (registry entry).
pub fn build(
    opts: FilterOptions,
    ctx: BuildContext,
) -> BoxFuture<'static, Result<FilterFactory, PipelineFileError>> {
    Box::pin(async move {
        let (validator, settings) = from_options(opts, &ctx).await?;
        let layer = AuthTokenLayer::new(validator, settings);
        let factory: FilterFactory =
            Arc::new(move |inner| boxed(tower::Layer::layer(&layer, inner)));
        Ok(factory)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoofable_list_covers_both_prefixes() {
        let names: Vec<String> = spoofable_headers()
            .iter()
            .map(|h| h.as_str().to_string())
            .collect();
        for n in [
            "x-roles",
            "x-user-name",
            "x-service-user-name",
            "x-project-domain-id",
            "x-tenant",
            "openstack-system-scope",
            "x-identity-status",
            "x-service-catalog",
        ] {
            assert!(names.contains(&n.to_string()), "{n} missing");
        }
        assert!(!names.contains(&"x-auth-token".to_string()));
    }

    #[test]
    fn the_spoofable_set_is_the_list() {
        for name in spoofable_headers() {
            assert!(is_spoofable(name), "{name}");
        }
        for other in [
            "x-auth-token",
            "x-service-token",
            "content-type",
            "x-roles-extra",
        ] {
            assert!(!is_spoofable(&HeaderName::from_static(other)), "{other}");
        }
    }

    #[test]
    fn token_headers_are_trimmed_and_non_utf8_is_malformed() {
        let mut h = HeaderMap::new();
        h.insert(X_AUTH_TOKEN, HeaderValue::from_static(" \tgAAAAB-token\t "));
        assert_eq!(token_header(&h, &[X_AUTH_TOKEN]), Some("gAAAAB-token"));
        h.insert(X_AUTH_TOKEN, HeaderValue::from_bytes(b"gAAA\xff").unwrap());
        assert_eq!(token_header(&h, &[X_AUTH_TOKEN]), Some("\u{fffd}"));
        h.insert(X_STORAGE_TOKEN, HeaderValue::from_static("second"));
        h.remove(X_AUTH_TOKEN);
        assert_eq!(
            token_header(&h, &[X_AUTH_TOKEN, X_STORAGE_TOKEN]),
            Some("second")
        );
        assert_eq!(token_header(&h, &[X_SERVICE_TOKEN]), None);
    }

    fn validated_token() -> ValidatedToken {
        let data: crate::keystone::token::TokenData = serde_json::from_value(serde_json::json!({
            "user": {"domain": {"id": "default", "name": "Default"}, "id": "u1", "name": "nova"},
            "project": {"domain": {"id": "default", "name": "Default"}, "id": "p1", "name": "service"},
            "roles": [{"id": "r1", "name": "admin"}, {"id": "r2", "name": "service"}],
            "expires_at": "2099-01-01T00:00:00Z"
        }))
        .unwrap();
        ValidatedToken::new(data, Duration::from_secs(300), chrono::Utc::now())
    }

    #[test]
    fn every_identity_header_is_one_a_client_cannot_send() {
        let mut h = HeaderMap::new();
        user_headers(&mut h, &validated_token());
        decorate_service(&mut h, &validated_token());
        assert!(h.len() > 20, "{h:?}");
        for name in h.keys() {
            assert!(spoofable_headers().contains(name), "{name} is not stripped");
        }
    }

    #[test]
    fn identity_headers_join_the_requests_own_and_keep_them_all() {
        let v = validated_token();
        for _ in 0..2 {
            let mut h = HeaderMap::new();
            h.insert("content-type", HeaderValue::from_static("application/json"));
            h.append("accept", HeaderValue::from_static("text/plain"));
            h.append("accept", HeaderValue::from_static("application/json"));
            h.insert("x-service-roles", HeaderValue::from_static("service"));
            decorate_user(&mut h, &v, false);
            assert_eq!(h["content-type"], "application/json");
            let accept: Vec<_> = h.get_all("accept").iter().collect();
            assert_eq!(accept, ["text/plain", "application/json"]);
            assert_eq!(h["x-service-roles"], "service");
            assert_eq!(h["x-user-name"], "nova");
            assert_eq!(h["x-roles"], "admin,service");
            assert_eq!(h["x-project-id"], "p1");
            assert_eq!(h["x-identity-status"], "Confirmed");
            assert!(!h.contains_key("x-service-catalog"));
        }
    }

    #[test]
    fn access_rule_paths() {
        assert!(access_rule_path_matches("/v1/", "/v1/"));
        assert!(access_rule_path_matches(
            "/v2.1/servers/abc",
            "/v2.1/servers/{server_id}"
        ));
        assert!(access_rule_path_matches(
            "/v2.1/servers/abc",
            "/v2.1/servers/*"
        ));
        assert!(!access_rule_path_matches(
            "/v2.1/servers/abc/x",
            "/v2.1/servers/*"
        ));
        assert!(access_rule_path_matches("/v2.1/servers/abc/x", "/v2.1/**"));
        // Literals are literal (upstream builds an unescaped regex).
        assert!(!access_rule_path_matches("/v2x1/servers", "/v2.1/servers"));
    }

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

    #[test]
    fn unauthorized_is_byte_exact() {
        let r = unauthorized(&HeaderValue::from_static("Keystone uri=\"http://ks:5000\""));
        assert_eq!(UNAUTHORIZED_BODY.len(), 114);
        assert_eq!(
            r.headers()["www-authenticate"],
            "Keystone uri=\"http://ks:5000\""
        );
        assert_eq!(r.status(), 401);
    }
}
