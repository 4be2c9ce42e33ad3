//! HTTP with IPA's web server, shared by every login method and the
//! client: the URLs derived from the configured one, the `ipa_session`
//! cookie, and how a failed attempt is classified (retry or report).

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, SET_COOKIE};
use url::Url;

use super::error::IpaError;
use super::secret::Secret;

/// The URLs and the Referer derived from the configured IPA URL.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// `https://<fqdn>` (scheme, host and port of the configured URL).
    pub base: Url,
    /// `<base>/ipa/session/login_password`.
    pub login_password: Url,
    /// `<base>/ipa/session/login_kerberos`.
    pub login_kerberos: Url,
    /// `<base>/ipa/session/json`.
    pub session_json: Url,
    /// `https://<server fqdn>/ipa`: what IPA's CSRF checks demand.
    pub referer: String,
    /// The server's FQDN (Referer host; Kerberos target `HTTP@<fqdn>`).
    pub server_fqdn: String,
}

impl Endpoints {
    /// From the configured URL (`https://ipa.example.com/ipa/json`, `.../ipa/session/json`,
    /// `.../ipa` or just `https://ipa.example.com`) and the server's FQDN
    /// for the Referer (defaults to the URL's host).
    pub fn new(url: &Url, server_fqdn: Option<&str>) -> Result<Self, IpaError> {
        if !matches!(url.scheme(), "https" | "http") {
            return Err(IpaError::Setup(format!("IPA URL {url} must be https://")));
        }
        let host = url
            .host_str()
            .ok_or_else(|| IpaError::Setup(format!("IPA URL {url} has no host")))?;
        let mut base = url.clone();
        base.set_path("/");
        base.set_query(None);
        base.set_fragment(None);
        let join = |p: &str| {
            base.join(p)
                .map_err(|e| IpaError::Setup(format!("IPA URL {url}: {e}")))
        };
        let referer_host = server_fqdn.unwrap_or(host);
        Ok(Self {
            login_password: join("ipa/session/login_password")?,
            login_kerberos: join("ipa/session/login_kerberos")?,
            session_json: join("ipa/session/json")?,
            referer: format!("https://{referer_host}/ipa"),
            server_fqdn: referer_host.to_string(),
            base,
        })
    }
}

/// One failed attempt: worth retrying or not.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// Connection failure or a 5xx: IPA's web server could not run the
    /// command (or lost its answer); another attempt, on this server or
    /// another one, is worth it (see the resend argument in [`super`]).
    Transient(String),
    /// Anything else: report it.
    Fatal(IpaError),
}

impl AttemptError {
    /// Classifies a reqwest send error. A failed connection (its timeout
    /// included: nothing was sent) is worth another attempt; any other
    /// timeout is not retried: the request may have run, and the call's
    /// deadline is what bounds it.
    pub(crate) fn from_send(e: reqwest::Error) -> Self {
        if e.is_connect() {
            Self::Transient(error_chain(&e))
        } else if e.is_timeout() {
            Self::Fatal(IpaError::Timeout(std::time::Duration::ZERO))
        } else if e.is_request() {
            Self::Transient(error_chain(&e))
        } else {
            Self::Fatal(IpaError::Protocol(error_chain(&e)))
        }
    }
}

/// The error and its causes on one line (reqwest hides the useful part in
/// `source()`).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A 5xx is worth another attempt: 503 when IPA's LDAP is down, 500 when
/// the IPA framework behind Apache fails, 502/504 from a proxy in front.
pub(crate) fn is_transient_status(status: u16) -> bool {
    matches!(status, 500..=599)
}

/// An HTTP status that is not an IPA answer, with what it usually means.
pub(crate) fn http_error(status: u16, path: &str) -> IpaError {
    let hint = match status {
        400 => "IPA refused the request (Referer check or malformed request); the URL host must be the IPA server's FQDN",
        301 | 302 | 307 | 308 => "IPA redirects requests that do not use its FQDN over https; fix the IPA URL",
        404 => "no such IPA endpoint; check the IPA URL",
        _ => "unexpected status",
    };
    IpaError::Http {
        status,
        path: path.to_string(),
        hint: hint.to_string(),
    }
}

/// `ipa_session=<value>` from `Set-Cookie`, value up to the first `;`.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<Secret> {
    headers.get_all(SET_COOKIE).iter().find_map(|v| {
        let text = v.to_str().ok()?;
        let pair = text.split(';').next()?.trim();
        let value = pair.strip_prefix("ipa_session=")?;
        (!value.is_empty()).then(|| Secret::new(value))
    })
}

/// `X-IPA-Rejection-Reason`.
pub(crate) fn rejection_reason(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-ipa-rejection-reason")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `Cookie: ipa_session=<value>`, marked sensitive so it is never logged.
pub(crate) fn cookie_header(cookie: &Secret) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("ipa_session={}", cookie.expose())).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// `Content-Type: application/json`.
pub(crate) fn json_content_type() -> (reqwest::header::HeaderName, HeaderValue) {
    (CONTENT_TYPE, HeaderValue::from_static("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_from_any_ipa_url() {
        for u in [
            "https://ipa.example.com/ipa/json",
            "https://ipa.example.com/ipa/session/json",
            "https://ipa.example.com/ipa",
            "https://ipa.example.com",
        ] {
            let ep = Endpoints::new(&Url::parse(u).unwrap(), None).unwrap();
            assert_eq!(
                ep.session_json.as_str(),
                "https://ipa.example.com/ipa/session/json"
            );
            assert_eq!(
                ep.login_password.as_str(),
                "https://ipa.example.com/ipa/session/login_password"
            );
            assert_eq!(ep.referer, "https://ipa.example.com/ipa");
        }
        let ep = Endpoints::new(
            &Url::parse("http://127.0.0.1:8080/ipa/json").unwrap(),
            Some("ipa.example.test"),
        )
        .unwrap();
        assert_eq!(
            ep.session_json.as_str(),
            "http://127.0.0.1:8080/ipa/session/json"
        );
        assert_eq!(ep.referer, "https://ipa.example.test/ipa");
    }

    #[test]
    fn cookie_value_is_read_up_to_the_attributes() {
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, HeaderValue::from_static("other=1; path=/"));
        h.append(SET_COOKIE, HeaderValue::from_static(
            "ipa_session=MagBearerToken=abc%2Bdef; path=/ipa; httponly; secure; SameSite=strict"));
        assert_eq!(
            session_cookie(&h).unwrap().expose(),
            "MagBearerToken=abc%2Bdef"
        );
    }
}
