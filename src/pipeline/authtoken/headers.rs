//! The identity headers: those a client could forge (stripped from every
//! request), the token headers, and the `X-*` headers keystonemiddleware
//! sets for a validated user and service token.

use std::collections::HashSet;
use std::sync::LazyLock;

use http::{HeaderMap, HeaderName, HeaderValue, Request};

use super::super::ReqBody;
use crate::keystone::cache::ValidatedToken;
use crate::keystone::IdentityStatus;

/// Headers a client could use to pass itself off as someone: removed from
/// every request before validation (keystonemiddleware's list, plus
/// `OpenStack-System-Scope`, which it forgets). Built once.
fn spoofable_headers() -> &'static [HeaderName] {
    static NAMES: LazyLock<Vec<HeaderName>> = LazyLock::new(spoofable_header_names);
    &NAMES
}

/// Whether `name` is one of [`spoofable_headers`] (a set lookup: the
/// check runs on every header of every request).
fn is_spoofable(name: &HeaderName) -> bool {
    static SET: LazyLock<HashSet<HeaderName>> =
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

/// Removes every identity header and any identity an outer layer put in
/// the request: only this filter's checks may vouch for the caller.
pub(super) fn strip_spoofed(req: &mut Request<ReqBody>) {
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
}

/// The service token's header.
pub(super) const X_SERVICE_TOKEN: HeaderName = HeaderName::from_static("x-service-token");
/// The user token's header.
pub(super) const X_AUTH_TOKEN: HeaderName = HeaderName::from_static("x-auth-token");
/// The user token's header under Swift's older name.
pub(super) const X_STORAGE_TOKEN: HeaderName = HeaderName::from_static("x-storage-token");

/// The first of `names` the request carries, trimmed. A value that is not
/// UTF-8 comes back as U+FFFD, which validation refuses as malformed, as it
/// refuses any byte outside printable ASCII (so `HeaderValue::to_str`
/// would only check the same bytes twice).
pub(super) fn token_header<'a>(headers: &'a HeaderMap, names: &[HeaderName]) -> Option<&'a str> {
    names.iter().find_map(|n| headers.get(n)).map(|v| {
        std::str::from_utf8(v.as_bytes())
            .unwrap_or("\u{fffd}")
            .trim()
    })
}

/// Sets `name`; a value a header cannot carry is left out.
pub(super) fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
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

/// Sets the identity headers of a validated user token, and
/// `X-Service-Catalog` (the v2 form) when asked to. Both are built once per
/// validated token and copied into each request (per request they cost
/// 24,000 of 75,000 instructions of a cache hit: docs/PERFORMANCE.md). None
/// of the request's own names can clash: each identity header is in
/// [`spoofable_headers`], removed before validation.
pub(super) fn decorate_user(headers: &mut HeaderMap, v: &ValidatedToken, include_catalog: bool) {
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

/// Sets the `X-Service-*` headers of a validated service token.
pub(super) fn decorate_service(headers: &mut HeaderMap, v: &ValidatedToken) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
