//! The one response body type of both listeners: proxied upstream bodies (with the route's
//! idle timeout, and an optional permit held until the body ends) or small proxy-made bodies.
//! An enum rather than a boxed trait object: no allocation per response.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
#[error("stream idle for longer than idle_timeout ({0:?})")]
pub struct IdleTimeout(pub Duration);

/// The request body sent upstream: the client's stream as is, or bytes buffered for replay.
pub enum UpstreamBody {
    Stream(Incoming),
    Bytes(Option<Bytes>),
    /// The bytes already read (an inspection that hit its limit), then the rest of the stream.
    Prefixed {
        head: Option<Bytes>,
        rest: Incoming,
    },
}

impl UpstreamBody {
    pub fn empty() -> UpstreamBody {
        UpstreamBody::Bytes(None)
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Stream(b) => Pin::new(b).poll_frame(cx).map_err(BoxError::from),
            UpstreamBody::Bytes(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            UpstreamBody::Prefixed { head, rest } => match head.take() {
                Some(h) => Poll::Ready(Some(Ok(Frame::data(h)))),
                None => Pin::new(rest).poll_frame(cx).map_err(BoxError::from),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Stream(b) => b.is_end_stream(),
            UpstreamBody::Bytes(b) => b.as_ref().is_none_or(Bytes::is_empty),
            UpstreamBody::Prefixed { head, rest } => head.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Stream(b) => b.size_hint(),
            UpstreamBody::Bytes(b) => {
                SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            UpstreamBody::Prefixed { head, rest } => {
                let extra = head.as_ref().map_or(0, |h| h.len() as u64);
                let mut hint = SizeHint::new();
                hint.set_lower(rest.size_hint().lower() + extra);
                if let Some(u) = rest.size_hint().upper() {
                    hint.set_upper(u + extra);
                }
                hint
            }
        }
    }
}

/// A response body from upstream: hyper's (HTTP/1.1), or an HTTP/2 stream that outrider's pool
/// drives with `h2` directly.
pub enum RespBody {
    Hyper(Incoming),
    H2(H2Body),
}

/// The receiving half of an upstream HTTP/2 stream: data frames (their flow-control capacity
/// released as they are handed on), then trailers.
pub struct H2Body {
    recv: h2::RecvStream,
    data_done: bool,
    /// From `content-length`, as hyper reports it.
    length: Option<u64>,
}

impl H2Body {
    pub fn new(recv: h2::RecvStream, length: Option<u64>) -> H2Body {
        H2Body {
            recv,
            data_done: false,
            length,
        }
    }
}

impl std::fmt::Debug for RespBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RespBody::Hyper(b) => b.fmt(f),
            RespBody::H2(_) => f.write_str("RespBody::H2"),
        }
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let b = match self.get_mut() {
            RespBody::Hyper(b) => return Pin::new(b).poll_frame(cx).map_err(BoxError::from),
            RespBody::H2(b) => b,
        };
        if !b.data_done {
            match ready!(b.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = b.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                None => b.data_done = true,
            }
        }
        Poll::Ready(match ready!(b.recv.poll_trailers(cx)) {
            Ok(Some(t)) => Some(Ok(Frame::trailers(t))),
            Ok(None) => None,
            Err(e) => Some(Err(e.into())),
        })
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Hyper(b) => b.is_end_stream(),
            RespBody::H2(b) => b.recv.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Hyper(b) => b.size_hint(),
            RespBody::H2(b) => match b.length {
                Some(n) => SizeHint::with_exact(n),
                None if b.recv.is_end_stream() => SizeHint::with_exact(0),
                None => SizeHint::default(),
            },
        }
    }
}

/// Held while a response body streams: concurrency slots released when it ends.
#[derive(Default)]
pub struct Guards {
    pub inbound: Option<OwnedSemaphorePermit>,
    pub backend: Option<crate::resilience::Permit>,
    /// Returns the upstream HTTP/1.1 connection to its pool once the body is done.
    pub lease: Option<super::pool::Lease>,
    /// Keeps the client connection busy (`limits.idle_timeout`) until the body is done.
    pub busy: Option<super::activity::Busy>,
}

pub enum ProxyBody {
    Full(Option<Bytes>),
    Upstream(Streaming),
}

pub struct Streaming {
    inner: RespBody,
    idle: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    progressed: bool,
    /// SSE keep-alive comments (`mcp.sse_keepalive`), injected only between events.
    keepalive: Option<Box<Keepalive>>,
    _guards: Guards,
}

struct Keepalive {
    every: Duration,
    sleep: Pin<Box<Sleep>>,
    boundary: crate::mcp::EventBoundary,
}

impl ProxyBody {
    pub fn full(b: impl Into<Bytes>) -> ProxyBody {
        ProxyBody::Full(Some(b.into()))
    }

    pub fn empty() -> ProxyBody {
        ProxyBody::Full(None)
    }

    /// Wraps an upstream body; `idle` zero disables the idle timeout.
    pub fn upstream(inner: RespBody, idle: Duration, guards: Guards) -> ProxyBody {
        ProxyBody::Upstream(Streaming {
            inner,
            idle,
            sleep: None,
            progressed: false,
            keepalive: None,
            _guards: guards,
        })
    }

    /// Injects `: keepalive` comments into a silent SSE stream every `every`, between events.
    pub fn with_sse_keepalive(mut self, every: Duration) -> ProxyBody {
        if let ProxyBody::Upstream(s) = &mut self {
            s.keepalive = Some(Box::new(Keepalive {
                every,
                sleep: Box::pin(tokio::time::sleep(every)),
                boundary: crate::mcp::EventBoundary::new(),
            }));
        }
        self
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Full(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            ProxyBody::Upstream(s) => s.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(b) => b.as_ref().is_none_or(Bytes::is_empty),
            ProxyBody::Upstream(s) => s.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Upstream(s) => s.inner.size_hint(),
        }
    }
}

impl Streaming {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(f) => {
                self.progressed = true;
                if let (Some(k), Some(Ok(frame))) = (&mut self.keepalive, &f) {
                    if let Some(data) = frame.data_ref() {
                        k.boundary.feed(data);
                    }
                    k.sleep.as_mut().reset(Instant::now() + k.every);
                }
                Poll::Ready(f)
            }
            Poll::Pending
                if self
                    .keepalive
                    .as_mut()
                    .is_some_and(|k| k.sleep.as_mut().poll(cx).is_ready()) =>
            {
                let k = self.keepalive.as_mut().expect("checked above");
                k.sleep.as_mut().reset(Instant::now() + k.every);
                if k.boundary.at_boundary() {
                    k.boundary.injected();
                    // Re-arm the wake-up for the next interval before returning.
                    let _ = k.sleep.as_mut().poll(cx);
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                        crate::mcp::KEEPALIVE,
                    )))));
                }
                let _ = k.sleep.as_mut().poll(cx);
                self.poll_idle(cx)
            }
            Poll::Pending => self.poll_idle(cx),
        }
    }

    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match () {
            () if self.idle.is_zero() => Poll::Pending,
            () => {
                // The timer is created lazily and only re-armed after progress: bodies that
                // complete in one poll (most responses) never touch the timer wheel.
                let deadline = Instant::now() + self.idle;
                match &mut self.sleep {
                    None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    Some(s) if self.progressed => s.as_mut().reset(deadline),
                    Some(_) => {}
                }
                self.progressed = false;
                let sleep = self.sleep.as_mut().expect("set above");
                ready!(sleep.as_mut().poll(cx));
                Poll::Ready(Some(Err(IdleTimeout(self.idle).into())))
            }
        }
    }
}
