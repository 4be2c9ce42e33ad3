//! Protection of token-cache entries in the shared (Redis or memcached)
//! cache, keyed with `memcache_secret_key`, so that whoever can write to the
//! cache but lacks the key cannot plant an identity, and (with ENCRYPT)
//! cannot read one.
//!
//! Key derivation follows keystonemiddleware's memcache scheme:
//! `HMAC-SHA384(secret, token || strategy)` split into three 16-byte parts:
//! part 1 names the entry, part 2 keys its MAC. The stored value is
//! `base64(HMAC-SHA384(part2, B)) || B`, with `B = base64(json)` for MAC.
//! For ENCRYPT, `B = base64(nonce || ChaCha20-Poly1305(part2 || part3, json))`
//! instead of keystonemiddleware's AES-CBC: an AEAD from a maintained crate,
//! and these entries are only ever read by novajoin (they live under
//! novajoin's key prefix, so the keystonemiddleware of other services
//! sharing one memcached neither reads them nor writes where novajoin
//! reads). Because the keys derive from the token, an entry copied under
//! another token's name fails its MAC.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha384;

type HmacSha384 = Hmac<Sha384>;

/// `memcache_security_strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Entries are authenticated.
    Mac,
    /// Entries are authenticated and encrypted.
    Encrypt,
}

impl Strategy {
    /// Parses the option value, case-insensitively; `None` means no protection.
    pub fn parse(s: &str) -> Result<Option<Strategy>, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "" | "NONE" => Ok(None),
            "MAC" => Ok(Some(Strategy::Mac)),
            "ENCRYPT" => Ok(Some(Strategy::Encrypt)),
            _ => Err(format!("{s:?} is not one of None, MAC, ENCRYPT")),
        }
    }

    fn label(self) -> &'static [u8] {
        match self {
            Strategy::Mac => b"MAC",
            Strategy::Encrypt => b"ENCRYPT",
        }
    }
}

/// The secret and strategy; derives per-token keys.
#[derive(Clone)]
pub struct CacheSecret {
    secret: Vec<u8>,
    strategy: Strategy,
}

impl std::fmt::Debug for CacheSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheSecret")
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

/// The keys of one token's entry.
pub struct EntryKeys {
    /// The entry's name (goes into the Redis key).
    pub name: String,
    mac_key: [u8; 16],
    enc_key: [u8; 32],
    strategy: Strategy,
}

impl CacheSecret {
    /// A secret for `strategy`.
    pub fn new(secret: &str, strategy: Strategy) -> Self {
        CacheSecret {
            secret: secret.as_bytes().to_vec(),
            strategy,
        }
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Derives the keys of `token`'s entry.
    pub fn keys(&self, token: &str) -> EntryKeys {
        let mut mac =
            <HmacSha384 as Mac>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(token.as_bytes());
        mac.update(self.strategy.label());
        let m = mac.finalize().into_bytes();
        let mut mac_key = [0u8; 16];
        mac_key.copy_from_slice(&m[16..32]);
        let mut enc_key = [0u8; 32];
        enc_key.copy_from_slice(&m[16..48]);
        EntryKeys {
            name: URL_SAFE_NO_PAD.encode(&m[..16]),
            mac_key,
            enc_key,
            strategy: self.strategy,
        }
    }
}

impl EntryKeys {
    fn sign(&self, b: &[u8]) -> Vec<u8> {
        let mut mac =
            <HmacSha384 as Mac>::new_from_slice(&self.mac_key).expect("HMAC takes any key length");
        mac.update(b);
        STANDARD.encode(mac.finalize().into_bytes()).into_bytes()
    }

    /// The value to store for `plaintext`.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let b = match self.strategy {
            Strategy::Mac => STANDARD.encode(plaintext),
            Strategy::Encrypt => {
                let mut nonce = [0u8; 12];
                rand::thread_rng().fill_bytes(&mut nonce);
                let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.enc_key));
                let ct = cipher
                    .encrypt(Nonce::from_slice(&nonce), plaintext)
                    .expect("in-memory encryption");
                let mut raw = nonce.to_vec();
                raw.extend_from_slice(&ct);
                STANDARD.encode(raw)
            }
        };
        let mut out = self.sign(b.as_bytes());
        out.extend_from_slice(b.as_bytes());
        out
    }

    /// The plaintext of a stored value, or `None` when its MAC does not
    /// verify or it does not decrypt (treated as a cache miss).
    pub fn open(&self, stored: &[u8]) -> Option<Vec<u8>> {
        // base64 of a 48-byte MAC is 64 characters.
        if stored.len() < 64 {
            return None;
        }
        let (sig, b) = stored.split_at(64);
        let sig = STANDARD.decode(sig).ok()?;
        let mut mac =
            <HmacSha384 as Mac>::new_from_slice(&self.mac_key).expect("HMAC takes any key length");
        mac.update(b);
        mac.verify_slice(&sig).ok()?;
        let raw = STANDARD.decode(b).ok()?;
        match self.strategy {
            Strategy::Mac => Some(raw),
            Strategy::Encrypt => {
                if raw.len() < 12 {
                    return None;
                }
                let (nonce, ct) = raw.split_at(12);
                let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.enc_key));
                cipher.decrypt(Nonce::from_slice(nonce), ct).ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        for strategy in [Strategy::Mac, Strategy::Encrypt] {
            let s = CacheSecret::new("s3cret", strategy);
            let k = s.keys("tokenA");
            let sealed = k.seal(br#"{"user":"nova"}"#);
            assert_eq!(k.open(&sealed).as_deref(), Some(&br#"{"user":"nova"}"#[..]));
            let mut bad = sealed.clone();
            let last = bad.len() - 2;
            bad[last] ^= 1;
            assert_eq!(k.open(&bad), None, "{strategy:?}: tampered value accepted");
            // Same value under another token's keys: refused.
            assert_eq!(s.keys("tokenB").open(&sealed), None);
            // Written by someone with another secret: refused.
            let forged = CacheSecret::new("guess", strategy)
                .keys("tokenA")
                .seal(br#"{"user":"admin"}"#);
            assert_eq!(k.open(&forged), None);
            // Plain JSON with no MAC: refused.
            assert_eq!(k.open(br#"{"user":"admin","padding":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#), None);
        }
    }

    #[test]
    fn encrypt_hides_the_content_and_names_differ_by_strategy() {
        let e = CacheSecret::new("k", Strategy::Encrypt).keys("t");
        let sealed = e.seal(b"nova-service-identity");
        assert!(!String::from_utf8_lossy(&sealed).contains("nova"));
        let decoded = STANDARD.decode(&sealed[64..]).unwrap();
        assert!(!String::from_utf8_lossy(&decoded).contains("nova"));
        assert_ne!(CacheSecret::new("k", Strategy::Mac).keys("t").name, e.name);
    }

    #[test]
    fn strategy_parsing_is_case_insensitive() {
        assert_eq!(Strategy::parse("mac").unwrap(), Some(Strategy::Mac));
        assert_eq!(Strategy::parse("None").unwrap(), None);
        assert!(Strategy::parse("AES").is_err());
    }
}
