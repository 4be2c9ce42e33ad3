//! The request body type and the one way to read it whole.

use bytes::{Bytes, BytesMut};
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
///
/// A body that arrives in one piece (nova's, nearly always) is returned as
/// that piece, not copied; pieces are joined only when there are several.
/// Trailers are ignored.
pub async fn read_all(mut body: ReqBody) -> Result<Bytes, BodyReadError> {
    let mut whole = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if is_length_limit(&e) {
                BodyReadError::TooLarge
            } else {
                BodyReadError::Broken(e.to_string())
            }
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if let Some(joined) = joined.as_mut() {
            joined.extend_from_slice(&data);
        } else if whole.is_empty() {
            whole = data;
        } else {
            let mut both = BytesMut::with_capacity(whole.len() + data.len());
            both.extend_from_slice(&whole);
            both.extend_from_slice(&data);
            joined = Some(both);
        }
    }
    Ok(joined.map_or(whole, BytesMut::freeze))
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Limited, StreamBody};

    fn chunked(chunks: &[&'static str]) -> ReqBody {
        let frames = chunks
            .iter()
            .map(|c| Ok::<_, BoxError>(hyper::body::Frame::data(Bytes::from_static(c.as_bytes()))));
        StreamBody::new(futures::stream::iter(frames.collect::<Vec<_>>())).boxed_unsync()
    }

    #[tokio::test]
    async fn one_piece_comes_back_as_it_is() {
        let piece = Bytes::from_static(b"{\"instance-id\": \"x\"}");
        let read = read_all(full(piece.clone())).await.unwrap();
        assert_eq!(read, piece);
        assert_eq!(read.as_ptr(), piece.as_ptr(), "not copied");
    }

    #[tokio::test]
    async fn pieces_are_joined_in_order() {
        for chunks in [
            vec![],
            vec!["", "a"],
            vec!["ab", "", "cd"],
            vec!["a", "b", "c", "d", "e"],
        ] {
            let read = read_all(chunked(&chunks)).await.unwrap();
            assert_eq!(read, chunks.concat().as_bytes(), "{chunks:?}");
        }
    }

    #[tokio::test]
    async fn a_cut_off_body_is_too_large_and_a_broken_one_says_why() {
        let limited = Limited::new(chunked(&["12345", "67890"]), 7)
            .map_err(BoxError::new)
            .boxed_unsync();
        assert!(matches!(
            read_all(limited).await,
            Err(BodyReadError::TooLarge)
        ));

        let broken = StreamBody::new(futures::stream::iter(vec![
            Ok(hyper::body::Frame::data(Bytes::from_static(b"ab"))),
            Err(BoxError::new("connection reset by peer")),
        ]))
        .boxed_unsync();
        match read_all(broken).await {
            Err(BodyReadError::Broken(why)) => assert!(why.contains("connection reset"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
