//! "Keystone service credentials" and "Keystone token validation": the
//! `[service_credentials]` user authenticates, and the user the `authtoken`
//! filter is configured with obtains a token and validates another
//! user's token at keystone (the `[service_credentials]` user's, as nova's
//! tokens are someone else's; its own when that section is not set): the
//! same `GET /v3/auth/tokens` every request needs, harmless.

use std::sync::Arc;

use super::report::CheckResult;
use super::within;
use crate::config::pipeline_file::PipelineFile;
use crate::config::ConfigFiles;
use crate::health::HealthRegistry;
use crate::keystone::{ServiceSession, ValidationError};
use crate::pipeline::build::{BuildContext, FilterOptions};

/// Name of the service-credentials check.
pub const SERVICE_CREDENTIALS: &str = "Keystone service credentials";
/// Name of the token-validation check.
pub const TOKEN_VALIDATION: &str = "Keystone token validation";

/// `[service_credentials]` authenticates.
pub async fn service_credentials(cfg: &ConfigFiles) -> CheckResult {
    const N: &str = SERVICE_CREDENTIALS;
    let session = match ServiceSession::from_config(cfg) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return CheckResult::warning(
                N,
                "[service_credentials] is not configured: project names cannot be looked up \
                 (project_subdomain), and the listener cannot check instances with nova or handle \
                 floating-IP events; set auth_type = password, auth_url, username, password, \
                 project_name and the domain options",
            )
        }
        Err(e) => return CheckResult::failure(N, e.to_string()),
    };
    match within(session.auth_state()).await {
        Ok(Ok(state)) => CheckResult::success(
            N,
            format!(
                "authenticated at {} as user {}{}",
                session.auth_url(),
                state.user_id,
                state
                    .project_id
                    .as_deref()
                    .map(|p| format!(" in project {p}"))
                    .unwrap_or_default()
            ),
        ),
        Ok(Err(e)) => CheckResult::failure(N, format!("[service_credentials]: {e}")),
        Err(t) => CheckResult::failure(
            N,
            format!(
                "keystone at {} did not answer within {t:?}",
                session.auth_url()
            ),
        ),
    }
}

/// The authtoken filter's user obtains and validates a token.
pub async fn token_validation(cfg: &Arc<ConfigFiles>) -> CheckResult {
    const N: &str = TOKEN_VALIDATION;
    let path = crate::server::pipeline_path(cfg);
    let file = match PipelineFile::load(&path) {
        Ok(f) => f,
        Err(e) => return CheckResult::failure(N, e.to_string()),
    };
    let uses_authtoken = file
        .filters
        .iter()
        .chain(file.routes.iter().flat_map(|r| r.filters.iter()))
        .any(|f| f.name == "authtoken");
    let noauth = cfg
        .choice(&crate::server::options::AUTH_STRATEGY)
        .ok()
        .flatten()
        .as_deref()
        == Some("noauth");
    if !uses_authtoken || noauth {
        return CheckResult::warning(
            N,
            format!(
                "{} has no authtoken filter in force (or auth_strategy = noauth): tokens are NOT \
                 validated and anyone who reaches the service can enroll hosts; use the shipped \
                 pipeline.toml",
                path.display()
            ),
        );
    }
    let opts = FilterOptions::new(
        "authtoken",
        file.path.clone(),
        file.options.get("authtoken").cloned().unwrap_or_default(),
        cfg.clone(),
    );
    let ctx = BuildContext {
        config: cfg.clone(),
        health: HealthRegistry::default(),
    };
    let validator = match crate::pipeline::authtoken::from_options(opts, &ctx) {
        Ok((v, _)) => v,
        Err(e) => return CheckResult::failure(N, e.to_string()),
    };
    let session = validator.session().clone();
    let own = match within(session.auth_state()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return CheckResult::failure(
                N,
                format!("the [keystone_authtoken] user cannot authenticate: {e}"),
            )
        }
        Err(t) => {
            return CheckResult::failure(
                N,
                format!(
                    "keystone at {} did not answer within {t:?}",
                    session.auth_url()
                ),
            )
        }
    };
    // Another user's token, as nova's are: validating it needs the rights
    // keystone's `identity:validate_token` policy gives services. The
    // [service_credentials] user's token serves; without it, the
    // authtoken user's own token (which any user may validate).
    let (subject, whose) = match ServiceSession::from_config(cfg) {
        Ok(Some(s)) => match within(s.auth_state()).await {
            Ok(Ok(st)) => (st.token.clone(), "the [service_credentials] user's token"),
            _ => (own.token.clone(), "its own token"),
        },
        _ => (own.token.clone(), "its own token"),
    };
    match within(validator.validate(subject.expose(), false)).await {
        Ok(Ok(_)) => CheckResult::success(
            N,
            format!(
                "the [keystone_authtoken] user {} authenticated at {} and validated {whose}",
                own.user_id,
                session.auth_url()
            ),
        ),
        Ok(Err(ValidationError::Invalid(e))) => CheckResult::failure(
            N,
            format!(
                "keystone did not accept {whose}, which it had just issued: {e}; check that \
                 [keystone_authtoken] auth_url names the keystone nova uses"
            ),
        ),
        Ok(Err(ValidationError::Unavailable(e))) => CheckResult::failure(
            N,
            format!("the [keystone_authtoken] user could not validate {whose}: {e}"),
        ),
        Err(t) => CheckResult::failure(N, format!("keystone did not validate within {t:?}")),
    }
}
