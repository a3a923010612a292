//! A stream that fails once a deadline passes, unless disarmed first.
//!
//! russh runs each session in a task of its own that a handle cannot abort while a key
//! exchange is stalled; failing the transport is what reliably ends a client that never
//! finishes logging in.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `inner`, readable until `deadline` unless `disarmed` is set before then.
pub struct Deadline<S> {
    inner: S,
    sleep: Pin<Box<Sleep>>,
    disarmed: Arc<AtomicBool>,
}

impl<S> Deadline<S> {
    /// Wraps `inner`; set the returned flag to keep the stream past the deadline.
    pub fn new(inner: S, deadline: Instant) -> (Self, Arc<AtomicBool>) {
        let disarmed = Arc::new(AtomicBool::new(false));
        let stream =
            Deadline { inner, sleep: Box::pin(tokio::time::sleep_until(deadline)), disarmed: disarmed.clone() };
        (stream, disarmed)
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        !self.disarmed.load(Ordering::Relaxed) && self.sleep.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "not authenticated within the handshake timeout")
}

impl<S: AsyncRead + Unpin> AsyncRead for Deadline<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deadline<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn fails_a_stalled_read_at_the_deadline_unless_disarmed() {
        let (_peer, near) = tokio::io::duplex(64);
        let (mut stream, _flag) = Deadline::new(near, Instant::now() + Duration::from_millis(30));
        let mut buf = [0u8; 4];
        let err = stream.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        let (mut peer, near) = tokio::io::duplex(64);
        let (mut stream, flag) = Deadline::new(near, Instant::now() + Duration::from_millis(30));
        flag.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
        peer.write_all(b"ok").await.unwrap();
        let n = stream.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"ok");
    }
}
