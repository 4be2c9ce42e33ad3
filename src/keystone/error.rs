//! Why a call to keystone failed, in words an operator can act on.

use http::StatusCode;

/// A failed call to keystone. Never carries a token or a password.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeystoneError {
    /// No answer: connection refused, DNS failure, TLS failure or timeout,
    /// after the configured retries.
    #[error("keystone at {url} cannot be reached: {detail}")]
    Unreachable {
        /// The URL that was called (no query, no credentials).
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// Keystone refused the service's own credentials.
    #[error(
        "keystone at {url} refused the service credentials of [{group}] (HTTP {status}); \
             check username, password, domains and project there"
    )]
    CredentialsRefused {
        /// The auth URL.
        url: String,
        /// The config section the credentials came from.
        group: String,
        /// Keystone's status.
        status: u16,
    },
    /// Keystone answered 403: the service user lacks a role.
    #[error("keystone refused {what} (HTTP 403): {fix}")]
    Forbidden {
        /// The operation, e.g. `GET /v3/projects/{id}`.
        what: String,
        /// What role the service user needs.
        fix: String,
    },
    /// The service token's catalog has no such endpoint.
    #[error("no {interface} endpoint for service type '{service_type}'{} in the service token's catalog; \
             set the interface/region_name options to ones the catalog has",
            region.as_deref().map(|r| format!(" in region '{r}'")).unwrap_or_default())]
    EndpointNotFound {
        /// Catalog service type (`identity`, `image`).
        service_type: String,
        /// `public`, `internal` or `admin`.
        interface: String,
        /// Region filter, if any.
        region: Option<String>,
    },
    /// Keystone answered with a status the caller does not expect.
    #[error("keystone answered HTTP {status} to {what}")]
    Status {
        /// The operation.
        what: String,
        /// The status.
        status: u16,
    },
    /// Keystone's answer could not be understood.
    #[error("keystone's answer to {what} is malformed: {detail}")]
    BadResponse {
        /// The operation.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Local setup failed (unreadable CA file, bad URL).
    #[error("keystone client setup: {0}")]
    Setup(String),
}

impl KeystoneError {
    /// The HTTP status a request that depends on this call should get:
    /// 503 when keystone is (temporarily) unusable.
    pub fn status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    /// Maps a reqwest transport error (no HTTP answer) to `Unreachable`.
    pub(crate) fn transport(url: &url::Url, err: &reqwest::Error) -> Self {
        let kind = if err.is_timeout() {
            "timed out"
        } else if err.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        // reqwest's Display includes the URL; we print our own, query-free.
        let mut detail = kind.to_string();
        let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
        while let Some(e) = src {
            detail.push_str(": ");
            detail.push_str(&e.to_string());
            src = e.source();
        }
        KeystoneError::Unreachable {
            url: redact_url(url),
            detail,
        }
    }
}

/// A URL fit for a log line: no user info, no query.
pub(crate) fn redact_url(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}
