//! The request body type and the one way to read it whole.

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, LengthLimitError};

/// The error of a request body stream. A named type rather than a bare
/// `Box<dyn Error>`: the trait object's lifetime in a type alias trips
/// rustc's "not general enough" checks in async code.
#[derive(Debug)]
pub struct BoxError(pub Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for BoxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BoxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl BoxError {
    /// Wraps any error.
    pub fn new(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(e.into())
    }
}

/// The request body type of the whole stack.
pub type ReqBody = UnsyncBoxBody<Bytes, BoxError>;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyReadError {
    /// The body went past the `sizelimit` filter's limit while streaming.
    #[error("request body is larger than the configured limit")]
    TooLarge,
    /// The client went away or sent a broken stream.
    #[error("request body could not be read: {0}")]
    Broken(String),
}

/// Wraps bytes as a request body.
pub fn full(bytes: impl Into<Bytes>) -> ReqBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Reads the whole body. A body the `sizelimit` filter cut off comes back as
/// [`BodyReadError::TooLarge`] so the caller can answer 413.
pub async fn read_all(body: ReqBody) -> Result<Bytes, BodyReadError> {
    match body.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if is_length_limit(&e) => Err(BodyReadError::TooLarge),
        Err(e) => Err(BodyReadError::Broken(e.to_string())),
    }
}

fn is_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}
