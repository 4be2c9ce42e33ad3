//! [`Secret`]: a string that must never be printed (passwords, OTPs, the
//! session cookie).

use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// A secret string. `Debug` shows only a short fingerprint, there is no
/// `Display` and no `Serialize`: the only way to the text is
/// [`Secret::expose`], which callers use exactly where the value goes on the
/// wire. The memory is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret text, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// First 8 hex digits of the SHA-256 of the value: enough to correlate
    /// two log lines, useless to an attacker for a 128-bit OTP.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        hex::encode(&digest[..4])
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(redacted, sha256:{})", self.fingerprint())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("6f1c0e2a9d7b4c1fa0f3b2d1e4c5a697");
        let shown = format!("{s:?} {:#?}", s);
        assert!(!shown.contains("6f1c0e2a"), "{shown}");
        assert!(shown.contains("redacted"));
        assert_eq!(s.expose(), "6f1c0e2a9d7b4c1fa0f3b2d1e4c5a697");
    }

    #[test]
    fn fingerprint_is_eight_hex_digits_of_sha256() {
        // sha256("abc") = ba7816bf...
        assert_eq!(Secret::new("abc").fingerprint(), "ba7816bf");
    }
}
