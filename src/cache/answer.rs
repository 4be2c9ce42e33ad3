//! A handler answer held by the cache, and its conversion from and to an
//! HTTP response.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::key::Fingerprint;

/// Set on a response by the handler when its answer carries a secret that
/// expires (an enrollment OTP, see [`crate::otp_lifetime`]): the response
/// cache does not serve the answer at or after this instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeUntil(pub std::time::SystemTime);

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
    /// The handler's [`ServeUntil`]: the answer is not served after it.
    pub serve_until: Option<SystemTime>,
}

impl std::fmt::Debug for StoredAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredAnswer")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .field("body_sha256", &short_digest(&self.body))
            .field("fingerprint", &self.fingerprint)
            .field("serve_until", &self.serve_until)
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
    pub async fn from_response(resp: Response<Full<Bytes>>, fingerprint: Fingerprint) -> Self {
        let (parts, body) = resp.into_parts();
        let body = match body.collect().await {
            Ok(c) => c.to_bytes(),
            Err(never) => match never {},
        };
        Self {
            status: parts.status,
            serve_until: parts.extensions.get::<ServeUntil>().map(|s| s.0),
            headers: parts.headers,
            body,
            fingerprint,
        }
    }

    /// A fresh response with the same status, headers and body.
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(self.body.clone()));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers.clone();
        resp
    }

    /// Whether this answer may be stored: only a plain 200 success is.
    pub fn is_cacheable(&self) -> bool {
        self.status == StatusCode::OK
    }

    /// Whether the answer may still be served at `now`.
    pub fn is_servable_at(&self, now: SystemTime) -> bool {
        self.serve_until.is_none_or(|end| now < end)
    }

    /// How long to keep the answer: `ttl`, cut short at its
    /// [`ServeUntil`] (zero when that has passed).
    pub fn keep_for(&self, ttl: Duration, now: SystemTime) -> Duration {
        match self.serve_until {
            Some(end) => ttl.min(end.duration_since(now).unwrap_or_default()),
            None => ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn answer(serve_until: Option<SystemTime>) -> StoredAnswer {
        StoredAnswer {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"{}"),
            fingerprint: Fingerprint([[0; 8]; 5]),
            serve_until,
        }
    }

    #[test]
    fn an_answer_is_kept_no_longer_than_it_may_be_served() {
        let now = SystemTime::now();
        let ttl = Duration::from_secs(30);
        assert_eq!(answer(None).keep_for(ttl, now), ttl);
        let soon = answer(Some(now + Duration::from_secs(5)));
        assert_eq!(soon.keep_for(ttl, now), Duration::from_secs(5));
        assert!(soon.is_servable_at(now));
        assert!(!soon.is_servable_at(now + Duration::from_secs(5)));
        let past = answer(Some(now - Duration::from_secs(1)));
        assert_eq!(past.keep_for(ttl, now), Duration::ZERO);
        assert!(!past.is_servable_at(now));
        assert!(answer(None).is_servable_at(now + Duration::from_secs(86_400 * 365)));
    }

    #[tokio::test]
    async fn the_memory_store_does_not_serve_an_answer_past_its_end() {
        let stats = std::sync::Arc::new(super::super::CacheStats::default());
        let store = super::super::memory::MemoryStore::new(10, Duration::from_secs(60), stats);
        let end = SystemTime::now() + Duration::from_millis(300);
        store
            .put("i-1", std::sync::Arc::new(answer(Some(end))))
            .await;
        store.put("i-2", std::sync::Arc::new(answer(None))).await;
        assert!(store.get("i-1").await.is_some());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(store.get("i-1").await.is_none(), "served past its end");
        assert!(store.get("i-2").await.is_some());
    }
}
