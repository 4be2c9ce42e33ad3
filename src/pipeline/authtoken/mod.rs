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
//!
//! * `headers`: the identity headers it strips and sets;
//! * `service_token` and `user_token`: each token's checks;
//! * `response`: its 401 and 503 answers;
//! * [`settings`]: its settings and how they are read.

mod headers;
mod response;
mod service_token;
pub mod settings;
mod user_token;

use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Request, Response};
use tower::Service;

pub use settings::{from_options, AuthTokenSettings, BindMode, DEFAULT_KEYSTONE_TIMEOUT};

use super::build::{BuildContext, FilterOptions};
use super::{boxed_layer, HttpLayer};
use super::{take_ready, HttpFuture, HttpService, ReqBody, RespBody};
use crate::config::pipeline_file::PipelineFileError;
use crate::keystone::cache::ValidatedToken;
use crate::keystone::{Identity, IdentityStatus, KeystoneError, TokenValidator};
use headers::set;
use service_token::ServiceCheck;

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

/// Outcome of one token's checks.
enum Checked {
    Valid(Arc<ValidatedToken>),
    Invalid(String),
    Unavailable(KeystoneError),
}

/// One request: strip what a client could forge, check the tokens, mark
/// the request with what they proved (or answer for it), and call the inner
/// service.
async fn handle(
    shared: Arc<Shared>,
    inner: HttpService,
    mut req: Request<ReqBody>,
) -> Response<RespBody> {
    headers::strip_spoofed(&mut req);
    let service = service_token::check(&shared, req.headers()).await;
    let target = (req.method().as_str(), req.uri().path());
    let user = user_token::check(&shared, req.headers(), target, service.as_ref()).await;
    let s = &shared.settings;
    match settle(s, req.headers_mut(), service, user) {
        Ok(status) => {
            req.extensions_mut().insert(status);
        }
        Err(Refused::Unauthorized) => return response::unauthorized(&s.www_authenticate),
        Err(Refused::KeystoneUnavailable) => return response::keystone_unavailable(req.headers()),
    }
    call_inner(s, inner, req).await
}

/// Why a request goes no further than this filter.
enum Refused {
    /// No valid token (401).
    Unauthorized,
    /// Keystone cannot be reached and `delay_auth_decision` is off (503).
    KeystoneUnavailable,
}

/// Sets the headers the checks call for and decides what the request
/// carries on with, or why it goes no further.
fn settle(
    s: &AuthTokenSettings,
    headers: &mut HeaderMap,
    service: Option<ServiceCheck>,
    user: Checked,
) -> Result<IdentityStatus, Refused> {
    let service = service.map(|sc| sc.outcome);
    let service_ok = mark_service(s, headers, service.as_ref())?;
    let confirmed = mark_user(s, headers, user)?;
    match (confirmed, service_ok) {
        (Some(uv), true) => Ok(IdentityStatus::Confirmed(identity(&uv, service.as_ref()))),
        _ if s.delay_auth_decision => Ok(IdentityStatus::Invalid),
        _ => Err(Refused::Unauthorized),
    }
}

/// The service token's headers; whether it lets the request through.
fn mark_service(
    s: &AuthTokenSettings,
    headers: &mut HeaderMap,
    service: Option<&Checked>,
) -> Result<bool, Refused> {
    match service {
        None => Ok(true),
        Some(Checked::Valid(sv)) => {
            headers::decorate_service(headers, sv);
            Ok(true)
        }
        Some(Checked::Invalid(why)) => {
            tracing::info!("service token refused: {why}");
            set(headers, "x-service-identity-status", "Invalid");
            Ok(false)
        }
        Some(Checked::Unavailable(e)) => {
            if !s.delay_auth_decision {
                tracing::error!("cannot validate the service token: {e}");
                return Err(Refused::KeystoneUnavailable);
            }
            tracing::warn!("cannot validate the service token, passing it on as Invalid: {e}");
            set(headers, "x-service-identity-status", "Invalid");
            Ok(false)
        }
    }
}

/// The user token's headers; the token when it is confirmed.
fn mark_user(
    s: &AuthTokenSettings,
    headers: &mut HeaderMap,
    user: Checked,
) -> Result<Option<Arc<ValidatedToken>>, Refused> {
    match user {
        Checked::Valid(uv) => {
            headers::decorate_user(headers, &uv, s.include_service_catalog);
            Ok(Some(uv))
        }
        Checked::Invalid(why) => {
            tracing::info!("rejecting request: {why}");
            set(headers, "x-identity-status", "Invalid");
            Ok(None)
        }
        Checked::Unavailable(e) => {
            if !s.delay_auth_decision {
                tracing::error!("cannot validate the token: {e}");
                return Err(Refused::KeystoneUnavailable);
            }
            tracing::warn!("cannot validate the token, passing it on as Invalid: {e}");
            set(headers, "x-identity-status", "Invalid");
            Ok(None)
        }
    }
}

/// The confirmed user's identity, with the service token's roles when one
/// came along and was valid.
fn identity(user: &ValidatedToken, service: Option<&Checked>) -> Arc<Identity> {
    match service {
        Some(Checked::Valid(sv)) => {
            let mut id: Identity = (*user.identity).clone();
            id.service_roles = sv.identity.roles.clone();
            id.service_token_valid = true;
            Arc::new(id)
        }
        _ => user.identity.clone(),
    }
}

/// Calls the inner service; its 401 names keystone.
async fn call_inner(
    s: &AuthTokenSettings,
    mut inner: HttpService,
    req: Request<ReqBody>,
) -> Response<RespBody> {
    let mut resp = match inner.call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    response::name_keystone_on_401(&mut resp, &s.www_authenticate);
    resp
}

/// Builds the filter from its options (registry entry).
pub fn build(opts: FilterOptions, ctx: &BuildContext) -> Result<HttpLayer, PipelineFileError> {
    let (validator, settings) = from_options(opts, ctx)?;
    Ok(boxed_layer(AuthTokenLayer::new(validator, settings)))
}
