//! The filter's own answers: keystonemiddleware's 401 (with
//! `WWW-Authenticate: Keystone uri="..."`, also added to an inner filter's
//! 401) and WebOb's 503 when keystone cannot be reached.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::super::response::UNAUTHORIZED_BODY;
use super::super::RespBody;

/// The 401 answer.
pub(super) fn unauthorized(www_authenticate: &HeaderValue) -> Response<RespBody> {
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
pub(super) fn keystone_unavailable(headers: &HeaderMap) -> Response<RespBody> {
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

/// Names keystone on an inner filter's 401 that does not say where to
/// authenticate.
pub(super) fn name_keystone_on_401(resp: &mut Response<RespBody>, www_authenticate: &HeaderValue) {
    if resp.status() == StatusCode::UNAUTHORIZED
        && !resp.headers().contains_key(header::WWW_AUTHENTICATE)
    {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, www_authenticate.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
