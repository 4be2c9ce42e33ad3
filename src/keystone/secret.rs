//! Tokens as values that cannot leak through `Debug` or `Display`.

use std::fmt;

use sha2::{Digest, Sha256};

/// A keystone token (the service's own, or one being validated).
///
/// `Debug` prints only a short hash, so a token inside a struct that is
/// logged with `{:?}` stays secret. Use [`Token::expose`] only to put it in
/// an HTTP header.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Token(token.into())
    }

    /// The token text, for an `X-Auth-Token`/`X-Subject-Token` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// First 8 hex digits of the token's SHA-256: safe to log, enough to
    /// correlate log lines about one token.
    pub fn short_hash(&self) -> String {
        short_hash(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(sha256:{})", self.short_hash())
    }
}

/// First 8 hex digits of SHA-256 of `text`.
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..4])
}

/// A password from join.conf: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(p: impl Into<String>) -> Self {
        Password(p.into())
    }

    /// The password, for the authentication request body only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let t = Token::new("gAAAAABsecret-token-value");
        let p = Password::new("hunter2-password");
        let shown = format!("{t:?} {p:?}");
        assert!(!shown.contains("secret-token-value"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains(&t.short_hash()));
        assert_eq!(t.short_hash().len(), 8);
    }
}
