//! Local pre-screening of keystone JWS tokens: signature (against every key
//! in a copy of keystone's `jws_public_key_repository`, as keystone does)
//! and expiry, so forged or expired JWS tokens are refused without a call to
//! keystone. A token that passes is still validated online: a JWS carries no
//! names or roles, and revocation is only known to keystone.

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::KeystoneError;

/// Why a JWS token was refused locally.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwsRejection {
    /// No key in the repository verifies the signature.
    #[error("JWS signature does not verify with any key in the public key repository")]
    BadSignature,
    /// The signature is good but `exp` has passed.
    #[error("JWS token has expired")]
    Expired,
    /// Not a well-formed JWS, or an algorithm not accepted.
    #[error("malformed JWS token: {0}")]
    Malformed(String),
}

struct KeySet {
    keys: Vec<(String, DecodingKey)>,
    dir_mtime: Option<SystemTime>,
}

/// Verifies JWS tokens with keystone's public keys.
pub struct JwsVerifier {
    dir: PathBuf,
    algorithms: Vec<Algorithm>,
    keys: RwLock<KeySet>,
}

impl std::fmt::Debug for JwsVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwsVerifier")
            .field("dir", &self.dir)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

/// Whether `token` has the compact JWS shape (three dot-separated parts).
/// Fernet tokens are URL-safe base64 and never contain a dot.
pub fn looks_like_jws(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    match name.trim() {
        "ES256" => Ok(Algorithm::ES256),
        "ES384" => Ok(Algorithm::ES384),
        "EdDSA" => Ok(Algorithm::EdDSA),
        other => Err(format!(
            "JWS algorithm {other:?} is not supported; use ES256, ES384 or EdDSA"
        )),
    }
}

fn load_keys(dir: &Path) -> Result<KeySet, KeystoneError> {
    let setup = |m: String| KeystoneError::Setup(m);
    let dir_mtime = std::fs::metadata(dir).and_then(|m| m.modified()).ok();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        setup(format!(
            "cannot read jws_public_key_repository {}: {e}",
            dir.display()
        ))
    })?;
    let mut keys = Vec::new();
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    for p in paths {
        let pem = std::fs::read(&p)
            .map_err(|e| setup(format!("cannot read JWS key {}: {e}", p.display())))?;
        let key = DecodingKey::from_ec_pem(&pem)
            .or_else(|_| DecodingKey::from_ed_pem(&pem))
            .map_err(|e| {
                setup(format!(
                    "{} is not an EC or Ed25519 public key in PEM form: {e}",
                    p.display()
                ))
            })?;
        keys.push((p.display().to_string(), key));
    }
    if keys.is_empty() {
        return Err(setup(format!(
            "jws_public_key_repository {} holds no keys",
            dir.display()
        )));
    }
    Ok(KeySet { keys, dir_mtime })
}

impl JwsVerifier {
    /// Loads every file of `dir` as a public key; `algorithms` are the
    /// accepted `alg` values (keystone's `jws_accepted_algorithms`).
    pub fn load(dir: &Path, algorithms: &[String]) -> Result<Self, KeystoneError> {
        let algorithms = algorithms
            .iter()
            .map(|a| parse_algorithm(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(KeystoneError::Setup)?;
        if algorithms.is_empty() {
            return Err(KeystoneError::Setup(
                "jws_accepted_algorithms is empty".into(),
            ));
        }
        Ok(JwsVerifier {
            dir: dir.to_path_buf(),
            algorithms,
            keys: RwLock::new(load_keys(dir)?),
        })
    }

    /// Checks the signature and, when `check_expiry`, the `exp` claim.
    pub fn check(&self, token: &str, check_expiry: bool) -> Result<(), JwsRejection> {
        let header_b64 = token.split('.').next().unwrap_or("");
        let header: serde_json::Value = URL_SAFE_NO_PAD
            .decode(header_b64)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or_else(|| JwsRejection::Malformed("header is not base64url JSON".into()))?;
        let alg_name = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
        let alg = parse_algorithm(alg_name)
            .ok()
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| {
                JwsRejection::Malformed(format!("algorithm {alg_name:?} is not accepted"))
            })?;
        let mut v = Validation::new(alg);
        v.leeway = 0;
        v.validate_aud = false;
        v.validate_exp = check_expiry;
        v.required_spec_claims = ["exp".to_string()].into_iter().collect();
        match self.try_keys(token, &v) {
            Err(JwsRejection::BadSignature) if self.reload_if_changed() => self.try_keys(token, &v),
            other => other,
        }
    }

    fn try_keys(&self, token: &str, v: &Validation) -> Result<(), JwsRejection> {
        use jsonwebtoken::errors::ErrorKind;
        let set = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let mut expired = false;
        for (_, key) in &set.keys {
            match jsonwebtoken::decode::<serde_json::Value>(token, key, v) {
                Ok(_) => return Ok(()),
                Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => expired = true,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Base64(_)
                            | ErrorKind::Json(_)
                            | ErrorKind::Utf8(_)
                            | ErrorKind::InvalidToken
                    ) =>
                {
                    return Err(JwsRejection::Malformed(e.to_string()))
                }
                Err(_) => {}
            }
        }
        if expired {
            Err(JwsRejection::Expired)
        } else {
            Err(JwsRejection::BadSignature)
        }
    }

    /// keystone adds keys by dropping files in the repository: re-read it when
    /// it changed since we loaded it. Returns whether it was reloaded.
    fn reload_if_changed(&self) -> bool {
        let now = std::fs::metadata(&self.dir).and_then(|m| m.modified()).ok();
        let stale = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .dir_mtime
            != now;
        if !stale {
            return false;
        }
        match load_keys(&self.dir) {
            Ok(set) => {
                tracing::info!(dir = %self.dir.display(), keys = set.keys.len(), "reloaded the JWS public keys");
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = set;
                true
            }
            Err(e) => {
                tracing::warn!("keeping the loaded JWS public keys: {e}");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fernet_tokens_are_not_jws() {
        assert!(!looks_like_jws("gAAAAABnZ3x-abc_DEF"));
        assert!(looks_like_jws("a.b.c"));
        assert!(!looks_like_jws("a.b"));
    }

    #[test]
    fn unsupported_algorithms_are_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let e = JwsVerifier::load(dir.path(), &["HS256".to_string()]).unwrap_err();
        assert!(e.to_string().contains("HS256"), "{e}");
        let e = JwsVerifier::load(dir.path(), &["ES256".to_string()]).unwrap_err();
        assert!(e.to_string().contains("holds no keys"), "{e}");
    }
}
