//! A deadline for the HTTP/2 connection preface.
//!
//! hyper's HTTP/1.1 server bounds each request head with `header_read_timeout`, but neither its
//! HTTP/2 server nor hyper-util's protocol detection bounds the wait for a client's first bytes:
//! an HTTP/2 connection (ALPN `h2`) that never sends its preface, or a plaintext client that
//! sends `P` and stops, would hold the connection (and its task and buffers) for ever. Once the
//! preface is in, hyper's keep-alive pings bound a silent HTTP/2 connection.
//!
//! Owns: [`PrefaceDeadline`], an I/O wrapper that fails the read with `TimedOut` when the
//! deadline passes while everything the client sent so far is still a proper prefix of the
//! preface. The first byte that is not (an HTTP/1.1 request on a detecting listener) or the
//! preface's last byte disarms it; from then on it only forwards.
//! Doesn't own: the HTTP/1.1 header-read timer (hyper's, [`super::timer`]), TLS handshake and
//! first-byte deadlines (`serve_conn`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// RFC 9113 §3.4: the client connection preface, before its SETTINGS frame.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub struct PrefaceDeadline<I> {
    io: I,
    /// Preface bytes matched so far.
    matched: usize,
    /// `None` once disarmed.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<I> PrefaceDeadline<I> {
    /// `io` fails its reads if the whole preface has not arrived within `limit` (and nothing
    /// that rules it out did).
    pub fn new(io: I, limit: Duration) -> PrefaceDeadline<I> {
        PrefaceDeadline {
            io,
            matched: 0,
            deadline: Some(Box::pin(tokio::time::sleep(limit))),
        }
    }

    /// Whether the deadline still applies.
    pub fn armed(&self) -> bool {
        self.deadline.is_some()
    }

    /// Follows the client's bytes through the preface; disarms at its end or at a mismatch.
    fn observe(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b != PREFACE[self.matched] {
                self.deadline = None;
                return;
            }
            self.matched += 1;
            if self.matched == PREFACE.len() {
                self.deadline = None;
                return;
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for PrefaceDeadline<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.deadline.is_none() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.observe(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no HTTP/2 connection preface within header_read_timeout",
                ))),
                _ => Poll::Pending,
            },
            other => other,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for PrefaceDeadline<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
