//! Lingering close: after the server shuts its side of a connection, it
//! keeps reading (and discarding) what the client still sends, for a
//! moment, before the socket is closed.
//!
//! When the server answers before it has read the whole request (a 413
//! for a chunked body over `max_request_body_size`) and closes, the rest of
//! the upload arrives at a closed socket and the kernel answers it with a
//! reset, which can make the client drop the answer it already received.
//! Draining after the FIN lets the client finish sending and read the
//! answer, as Apache httpd's lingering close does. hyper calls
//! `poll_shutdown` when it ends a connection; a client that already closed
//! costs one read that returns end-of-file.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest the server keeps draining a connection it closed.
pub const LINGER: Duration = Duration::from_secs(2);

/// Most bytes drained from a connection it closed.
pub const LINGER_BYTES: usize = 1024 * 1024;

/// A connection that drains its input after it is shut down.
pub struct LingeringClose<T> {
    inner: T,
    closing: Closing,
    linger: Duration,
    linger_bytes: usize,
}

enum Closing {
    Open,
    Draining {
        deadline: Pin<Box<tokio::time::Sleep>>,
        drained: usize,
    },
    Closed,
}

impl<T> LingeringClose<T> {
    /// Wraps a connection.
    pub fn new(inner: T) -> Self {
        Self::with_limits(inner, LINGER, LINGER_BYTES)
    }

    fn with_limits(inner: T, linger: Duration, linger_bytes: usize) -> Self {
        Self {
            inner,
            closing: Closing::Open,
            linger,
            linger_bytes,
        }
    }
}

impl<T: AsyncRead + Unpin> LingeringClose<T> {
    /// Reads and discards until end-of-file, an error, the byte limit or
    /// the deadline.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Closing::Draining { deadline, drained } = &mut self.closing else {
            return Poll::Ready(());
        };
        let mut scratch = [0u8; 8192];
        loop {
            if deadline.as_mut().poll(cx).is_ready() || *drained >= self.linger_bytes {
                break;
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) if buf.filled().is_empty() => break,
                Poll::Ready(Ok(())) => *drained += buf.filled().len(),
                Poll::Ready(Err(_)) => break,
            }
        }
        self.closing = Closing::Closed;
        Poll::Ready(())
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for LingeringClose<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LingeringClose<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Closing::Open = this.closing {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.closing = Closing::Draining {
                deadline: Box::pin(tokio::time::sleep(this.linger)),
                drained: 0,
            };
        }
        this.poll_drain(cx).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn shutdown_waits_for_the_peer_to_finish_sending() {
        let (server, mut client) = tokio::io::duplex(64 * 1024);
        let mut server = LingeringClose::new(server);
        server.write_all(b"HTTP/1.1 413\r\n\r\n").await.unwrap();
        let closing = tokio::spawn(async move {
            server.shutdown().await.unwrap();
            server
        });
        // The client is still sending when the server closes.
        client.write_all(&[b'x'; 100_000]).await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"HTTP/1.1 413\r\n\r\n");
        assert!(
            !closing.is_finished(),
            "still draining until the client closes"
        );
        drop(client);
        let server = closing.await.unwrap();
        assert!(matches!(server.closing, Closing::Closed));
    }

    #[tokio::test]
    async fn draining_stops_at_the_deadline() {
        let (server, _client) = tokio::io::duplex(1024);
        let mut server =
            LingeringClose::with_limits(server, Duration::from_millis(50), LINGER_BYTES);
        // The peer never closes: the deadline ends the drain.
        server.shutdown().await.unwrap();
        assert!(matches!(server.closing, Closing::Closed));
    }

    #[tokio::test]
    async fn draining_stops_at_the_byte_limit() {
        let (server, mut client) = tokio::io::duplex(64 * 1024);
        let mut server = LingeringClose::new(server);
        let sender = tokio::spawn(async move {
            let chunk = [b'x'; 8192];
            // More than the limit, and the client never closes.
            while client.write_all(&chunk).await.is_ok() {}
        });
        // A deadline the test would notice: the byte limit must end it.
        server.linger = Duration::from_secs(600);
        server.shutdown().await.unwrap();
        match &server.closing {
            Closing::Closed => {}
            _ => panic!("not closed"),
        }
        drop(server);
        sender.await.unwrap();
    }
}
