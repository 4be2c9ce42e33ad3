//! The user token (`X-Auth-Token`, or `X-Storage-Token`): validated, then
//! held against the application credential's access rules and the token's
//! bind.

use std::sync::Arc;

use http::HeaderMap;

use super::headers::{token_header, X_AUTH_TOKEN, X_STORAGE_TOKEN};
use super::service_token::ServiceCheck;
use super::settings::AuthTokenSettings;
use super::{Checked, Shared};
use crate::keystone::cache::ValidatedToken;
use crate::keystone::secret::short_hash;
use crate::keystone::validator::InvalidToken;
use crate::keystone::ValidationError;

/// Checks the request's user token. `target` is the request's method and
/// path (for access rules); `service` is the service token's check, if one
/// came along.
pub(super) async fn check(
    shared: &Shared,
    headers: &HeaderMap,
    target: (&str, &str),
    service: Option<&ServiceCheck>,
) -> Checked {
    let s = &shared.settings;
    let Some(t) = token_header(headers, &[X_AUTH_TOKEN, X_STORAGE_TOKEN]) else {
        return Checked::Invalid("no X-Auth-Token".into());
    };
    // Hashed only to name a refused token in the log (not on the
    // accepted path, which every request takes).
    let hash = || short_hash(t);
    let allow_expired = service.is_some_and(|sc| sc.allow_expired);
    match shared.validator.validate(t, allow_expired).await {
        Ok(vt) => vouch(s, vt, target, service.is_some())
            .unwrap_or_else(|why| Checked::Invalid(format!("token {}: {why}", hash()))),
        Err(ValidationError::Invalid(InvalidToken::Malformed)) => {
            Checked::Invalid("malformed token".into())
        }
        Err(ValidationError::Invalid(e)) => Checked::Invalid(format!("token {}: {e}", hash())),
        Err(ValidationError::Unavailable(e)) => Checked::Unavailable(e),
    }
}

/// Whether a token keystone found valid may be used here: its access rules
/// allow the request, and (without a service token) its bind verifies.
fn vouch(
    s: &AuthTokenSettings,
    vt: Arc<ValidatedToken>,
    target: (&str, &str),
    has_service_token: bool,
) -> Result<Checked, String> {
    check_access_rules(s, &vt, target, has_service_token)?;
    if !has_service_token && !s.bind.accepts(vt.data.bind.as_ref()) {
        return Err("its bind cannot be verified here".into());
    }
    Ok(Checked::Valid(vt))
}

/// Application-credential access rules (keystonemiddleware's check).
fn check_access_rules(
    s: &AuthTokenSettings,
    v: &ValidatedToken,
    (method, path): (&str, &str),
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

/// Whether `path` matches an access-rule pattern: `{name}` and `*` match
/// one path segment, `**` any remainder; everything else literally.
fn access_rule_path_matches(path: &str, pattern: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
