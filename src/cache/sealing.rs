//! Encryption and authentication of entries stored in Redis or memcached.
//!
//! Entries hold OTPs, and Redis and memcached are shared infrastructure, so an entry is
//! sealed with XChaCha20-Poly1305 (random 192-bit nonce per write, so random
//! nonces never collide in practice) under a key derived with HKDF-SHA256
//! from the configured secret. The key the entry is stored under is
//! the associated data: an entry copied to another instance's key does not
//! verify. The plaintext also carries its own expiry, so an old sealed entry
//! written back later is refused once its time is over.

use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::answer::StoredAnswer;
use super::key::Fingerprint;

/// Format version, the first byte of every sealed entry.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
/// HKDF salt and info: fixed, public, naming what the key is for.
const HKDF_SALT: &[u8] = b"novajoin response cache";
const HKDF_INFO: &[u8] = b"novajoin cache entry v1 xchacha20poly1305";

/// Why a stored entry was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnsealError {
    /// Not even the envelope is right (wrong version or too short).
    #[error("entry is not in novajoin's sealed format (version {0:#04x} or truncated)")]
    Format(u8),
    /// The tag does not verify: written without the secret key, altered, or
    /// moved from another instance's key.
    #[error("entry does not verify with the configured secret_key: written without it, altered, or copied from another key")]
    Authentication,
    /// Verified but the contents do not parse (a bug or a future format).
    #[error("entry verified but its contents are unreadable: {0}")]
    Contents(String),
    /// Verified, but its lifetime is over (an old entry written back).
    #[error("entry expired {0} ms ago")]
    Expired(u64),
}

/// Seals and opens entries with the key derived from `secret_key`.
pub struct EntrySealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for EntrySealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EntrySealer(<key redacted>)")
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Plain {
    fp: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    expires_ms: u64,
}

impl EntrySealer {
    /// Derives the entry key from the configured secret.
    pub fn new(secret_key: &[u8]) -> Self {
        let hk = Hkdf::<sha2::Sha256>::new(Some(HKDF_SALT), secret_key);
        let mut key = [0u8; 32];
        hk.expand(HKDF_INFO, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let cipher = XChaCha20Poly1305::new(&key.into());
        key.fill(0);
        Self { cipher }
    }

    /// Seals `answer` for storage under `redis_key`, valid until
    /// `expires_ms` (Unix milliseconds).
    pub fn seal(&self, redis_key: &str, answer: &StoredAnswer, expires_ms: u64) -> Vec<u8> {
        let plain = Plain {
            fp: answer.fingerprint.to_hex(),
            status: answer.status.as_u16(),
            headers: answer
                .headers
                .iter()
                .filter_map(|(k, v)| {
                    v.to_str()
                        .ok()
                        .map(|v| (k.as_str().to_string(), v.to_string()))
                })
                .collect(),
            body: base64::engine::general_purpose::STANDARD.encode(&answer.body),
            expires_ms,
        };
        let msg = serde_json::to_vec(&plain).expect("plain entry serializes");
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &msg,
                    aad: &aad(redis_key),
                },
            )
            .expect("XChaCha20-Poly1305 encryption of a small buffer cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens an entry read from `redis_key`, refusing anything that does not
    /// verify or has expired at `now_ms`.
    pub fn open(
        &self,
        redis_key: &str,
        sealed: &[u8],
        now_ms: u64,
    ) -> Result<StoredAnswer, UnsealError> {
        let version = sealed.first().copied().unwrap_or(0);
        if version != VERSION || sealed.len() < 1 + NONCE_LEN + 16 {
            return Err(UnsealError::Format(version));
        }
        let nonce = XNonce::from_slice(&sealed[1..1 + NONCE_LEN]);
        let msg = self
            .cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad: &aad(redis_key),
                },
            )
            .map_err(|_| UnsealError::Authentication)?;
        let plain: Plain =
            serde_json::from_slice(&msg).map_err(|e| UnsealError::Contents(e.to_string()))?;
        if plain.expires_ms <= now_ms {
            return Err(UnsealError::Expired(now_ms - plain.expires_ms));
        }
        let fingerprint = Fingerprint::from_hex(&plain.fp)
            .ok_or_else(|| UnsealError::Contents("bad fingerprint".into()))?;
        let status =
            StatusCode::from_u16(plain.status).map_err(|e| UnsealError::Contents(e.to_string()))?;
        let mut headers = HeaderMap::new();
        for (k, v) in plain.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| UnsealError::Contents(e.to_string()))?;
            let value =
                HeaderValue::from_str(&v).map_err(|e| UnsealError::Contents(e.to_string()))?;
            headers.append(name, value);
        }
        let body = base64::engine::general_purpose::STANDARD
            .decode(plain.body)
            .map_err(|e| UnsealError::Contents(e.to_string()))?;
        Ok(StoredAnswer {
            status,
            headers,
            body: body.into(),
            fingerprint,
            serve_until: Some(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(plain.expires_ms),
            ),
        })
    }
}

fn aad(redis_key: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(redis_key.len() + 16);
    a.extend_from_slice(b"novajoin-entry\x00");
    a.push(VERSION);
    a.extend_from_slice(redis_key.as_bytes());
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> StoredAnswer {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        StoredAnswer {
            status: StatusCode::OK,
            headers,
            body: bytes::Bytes::from_static(
                br#"{"hostname": "vm1.example.com", "ipaotp": "0123456789abcdef0123456789abcdef"}"#,
            ),
            fingerprint: Fingerprint([[1; 8], [2; 8], [3; 8], [4; 8], [5; 8]]),
            serve_until: None,
        }
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

    #[test]
    fn round_trips_and_hides_the_plaintext() {
        let s = EntrySealer::new(SECRET);
        let sealed = s.seal("p:entry:a", &answer(), 2_000);
        assert!(!sealed.windows(8).any(|w| w == &b"01234567"[..]));
        assert!(!sealed.windows(8).any(|w| w == &b"hostname"[..]));
        let back = s.open("p:entry:a", &sealed, 1_000).unwrap();
        assert_eq!(back.body, answer().body);
        assert_eq!(back.fingerprint, answer().fingerprint);
        assert_eq!(back.headers["content-type"], "application/json");
        // Two seals of the same answer differ (random nonce).
        assert_ne!(sealed, s.seal("p:entry:a", &answer(), 2_000));
    }

    #[test]
    fn refuses_other_keys_alterations_moves_and_expired_entries() {
        let s = EntrySealer::new(SECRET);
        let sealed = s.seal("p:entry:a", &answer(), 2_000);
        let other = EntrySealer::new(b"another secret of at least 32 bytes....");
        assert_eq!(
            other.open("p:entry:a", &sealed, 0).unwrap_err(),
            UnsealError::Authentication
        );
        assert_eq!(
            s.open("p:entry:b", &sealed, 0).unwrap_err(),
            UnsealError::Authentication
        );
        for i in [1, 30, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                s.open("p:entry:a", &bad, 0).unwrap_err(),
                UnsealError::Authentication,
                "byte {i}"
            );
        }
        assert!(matches!(
            s.open("p:entry:a", b"{\"ipaotp\":\"x\"}", 0),
            Err(UnsealError::Format(_))
        ));
        assert_eq!(
            s.open("p:entry:a", &sealed, 2_500).unwrap_err(),
            UnsealError::Expired(500)
        );
    }

    #[test]
    fn debug_does_not_show_the_key() {
        assert_eq!(
            format!("{:?}", EntrySealer::new(SECRET)),
            "EntrySealer(<key redacted>)"
        );
    }
}
