//! A handler answer held by the cache, and its conversion from and to an
//! HTTP response.

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::key::Fingerprint;
use crate::pipeline::RespBody;

/// One answer: status, headers and body, cloned out to every caller that
/// gets it. Its body holds an OTP, so `Debug` shows only a short hash.
#[derive(Clone)]
pub struct StoredAnswer {
    /// HTTP status (only 200 answers are ever stored).
    pub status: StatusCode,
    /// Response headers the handler set.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// The request fields this answer was computed for.
    pub fingerprint: Fingerprint,
}

impl std::fmt::Debug for StoredAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredAnswer")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .field("body_sha256", &short_digest(&self.body))
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// First 8 hex digits of the sha256 of some bytes: enough to correlate log
/// lines, useless for recovering a secret.
pub fn short_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(bytes)[..4])
}

impl StoredAnswer {
    /// Takes a handler's response apart (its body is a single buffer).
    pub async fn from_response(resp: Response<RespBody>, fingerprint: Fingerprint) -> Self {
        let (parts, body) = resp.into_parts();
        let body = match body.collect().await {
            Ok(c) => c.to_bytes(),
            Err(never) => match never {},
        };
        Self {
            status: parts.status,
            headers: parts.headers,
            body,
            fingerprint,
        }
    }

    /// A fresh response with the same status, headers and body.
    pub fn to_response(&self) -> Response<RespBody> {
        let mut resp = Response::new(Full::new(self.body.clone()));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers.clone();
        resp
    }

    /// Whether this answer may be stored: only a plain 200 success is.
    pub fn is_cacheable(&self) -> bool {
        self.status == StatusCode::OK
    }
}
