//! Response bodies and the OpenStack fault format every filter answers with.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// The response body type of the whole stack: answers here are small JSON
/// documents, so a single buffer is enough.
pub type RespBody = Full<Bytes>;

/// keystonemiddleware's 401 body, byte for byte (`authtoken` and
/// `keystonecontext` answer with it).
pub const UNAUTHORIZED_BODY: &str = r#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#;

/// A JSON response with the given status.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<RespBody> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The fault name nova's API (and the original novajoin) used per status.
pub fn fault_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 => "overLimit",
        415 => "badMediaType",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

/// WebOb's default explanation for a status, used when a fault has no
/// specific message (as the original's faults did).
pub fn default_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "The server could not comply with the request since it is either malformed or otherwise incorrect.",
        401 => "The request you have made requires authentication.",
        403 => "Access was denied to this resource.",
        404 => "The resource could not be found.",
        413 => "Request is too large.",
        503 => "The server is currently unavailable. Please try again at a later time.",
        _ => "The server has either erred or is incapable of performing the requested operation.",
    }
}

/// `{"<faultName>": {"code": N, "message": "..."}}` with `application/json`.
pub fn fault(status: StatusCode, message: &str) -> Response<RespBody> {
    json(
        status,
        &serde_json::json!({
            fault_name(status): { "code": status.as_u16(), "message": message }
        }),
    )
}

/// A fault with WebOb's default message for the status.
pub fn default_fault(status: StatusCode) -> Response<RespBody> {
    fault(status, default_message(status))
}

/// An empty response with the given status.
pub fn empty(status: StatusCode) -> Response<RespBody> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// A plain-text response (urlmap's 404, health check text).
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<RespBody> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn fault_has_the_original_shape() {
        let r = fault(
            StatusCode::FORBIDDEN,
            "Not allowed to add to hostclass 'mail'",
        );
        assert_eq!(r.headers()["content-type"], "application/json");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["forbidden"]["code"], 403);
        assert_eq!(
            v["forbidden"]["message"],
            "Not allowed to add to hostclass 'mail'"
        );
    }
}
