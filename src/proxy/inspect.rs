//! Reads a JSON request body (bounded by `mcp.max_inspect_body`) and classifies it as MCP /
//! JSON-RPC, so that routes, authorization, retries, metrics, logs and error bodies can use the
//! method and tool. The bytes forwarded upstream are exactly the bytes received.
//!
//! Owns: when a body is read (POST with a JSON content type or MCP routing headers), the size
//! limit and its two outcomes (413 `body-too-large` when a policy needs the body, else
//! pass-through unread), header/body agreement (`Mcp-Method`/`Mcp-Name`, 400 with -32020).
//! Does not own: what the classification means (`crate::mcp`).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, Method, Request};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::body::UpstreamBody;
use super::error::ProxyError;
use super::timer::{ConnTimer, Recycled};
use crate::mcp::{self, Classification};

/// What [`inspect`] does with a request, decided from its head alone.
pub enum Inspection {
    /// Nothing to read: the request goes on as it came, unclassified.
    Pass(Request<UpstreamBody>),
    /// The body (or the headers) must be classified: await [`Pending::classify`].
    Read(Pending),
}

/// A request whose body is read and classified (boxed: the common path stays small).
pub struct Pending(Request<Incoming>);

/// Decides from the request head whether its body must be read and classified. Most requests
/// (anything but a JSON or MCP POST) pass here, without a future; the others go through
/// [`Pending::classify`].
pub fn inspect(req: Request<Incoming>) -> Inspection {
    if req.method() != Method::POST {
        // Only a POST carries JSON-RPC: routing headers on anything else classify nothing
        // (a policy must never admit, say, a DELETE because its headers name a tool).
        return Inspection::Pass(req.map(UpstreamBody::Stream));
    }
    // A POST with MCP routing headers is read whatever its content type claims: an upstream
    // parser may take the body as JSON anyway, so the headers must be checked against it.
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(mcp::is_json_content_type)
        || mcp::headers::has_routing_headers(req.headers());
    if !json {
        return Inspection::Pass(req.map(UpstreamBody::Stream));
    }
    Inspection::Read(Pending(req))
}

impl Inspection {
    /// The request to forward and its classification, in one step (tests).
    #[cfg(test)]
    pub async fn finish(self, limit: usize, needs_body: bool) -> Classified {
        match self {
            Inspection::Pass(req) => Ok((req, None)),
            Inspection::Read(p) => {
                let deadline = Deadline::after(Duration::from_secs(30), &ConnTimer::new());
                p.classify(limit, needs_body, deadline).await
            }
        }
    }
}

/// What reading and classifying a body yields: the request to forward and the classification.
type Classified = Result<(Request<UpstreamBody>, Option<Classification>), ProxyError>;

impl Pending {
    /// Reads (up to `limit`) and classifies the body. `needs_body`: some route or rule of the
    /// snapshot has MCP conditions, so an uninspectable body (too large) must be refused rather
    /// than passed through. The body must arrive within `deadline` (`limits.body_read_timeout`,
    /// on the connection's timer for it). Boxed: the caller's future keeps a pointer, not the
    /// reading state, across the await (requests that skip it move less).
    pub fn classify(
        self,
        limit: usize,
        needs_body: bool,
        deadline: Deadline,
    ) -> Pin<Box<impl Future<Output = Classified> + Send>> {
        Box::pin(async move {
            let req = self.0;
            if req
                .body()
                .size_hint()
                .exact()
                .is_some_and(|n| n > limit as u64)
            {
                if needs_body {
                    return Err(ProxyError::BodyTooLarge { limit });
                }
                let c = headers_only(&req)?;
                return Ok((req.map(UpstreamBody::Stream), c));
            }
            let read = read_body(req, limit, needs_body);
            let Deadline { mut timer, timeout } = deadline;
            tokio::pin!(read);
            std::future::poll_fn(|cx| match read.as_mut().poll(cx) {
                Poll::Ready(r) => Poll::Ready(r),
                Poll::Pending => Pin::new(&mut timer)
                    .poll(cx)
                    .map(|()| Err(ProxyError::BodyTimeout { timeout })),
            })
            .await
        })
    }
}

/// When a body being read for classification must have arrived: a sleep on the connection's
/// timer for it, and the timeout it stands for (for the error).
pub struct Deadline {
    pub timer: Recycled,
    pub timeout: Duration,
}

impl Deadline {
    pub fn after(timeout: Duration, timer: &ConnTimer) -> Deadline {
        Deadline {
            timer: timer.sleep_until(Instant::now() + timeout),
            timeout,
        }
    }
}

async fn read_body(req: Request<Incoming>, limit: usize, needs_body: bool) -> Classified {
    let (parts, mut body) = req.into_parts();
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ProxyError::ClientBody { source: e.into() })?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > limit {
                if needs_body {
                    return Err(ProxyError::BodyTooLarge { limit });
                }
                // Too large to inspect and nobody needs it: forward what was read, then the rest.
                let req = Request::from_parts(
                    parts,
                    UpstreamBody::Prefixed {
                        head: Some(buf.freeze()),
                        rest: body,
                    },
                );
                let c = headers_only(&req)?;
                return Ok((req, c));
            }
        }
        // Trailers on a JSON-RPC POST carry nothing MCP uses; they are not forwarded.
    }
    let bytes: Bytes = buf.freeze();
    let ct = parts.headers.get(header::CONTENT_TYPE);
    let c = match mcp::classify(ct, &bytes) {
        Ok(Some(c)) => {
            mcp::check_headers(&parts.headers, &c).map_err(|m| ProxyError::McpMismatch {
                why: m.to_string(),
                mcp: Some(c.clone()),
            })?;
            Some(c)
        }
        // The body was read but is not JSON-RPC to us: routing headers cannot stand in for it
        // (a lenient upstream parser might see a different tool than the header claims).
        Ok(None) => {
            mcp::headers::check_unclassified(&parts.headers).map_err(|m| {
                ProxyError::McpMismatch {
                    why: m.to_string(),
                    mcp: None,
                }
            })?;
            None
        }
        // Duplicate keys make a message mean different things to different parsers.
        Err(e) => return Err(ProxyError::ClientBody { source: e.into() }),
    };
    Ok((
        Request::from_parts(parts, UpstreamBody::Bytes(Some(bytes))),
        c,
    ))
}

fn headers_only<B>(req: &Request<B>) -> Result<Option<Classification>, ProxyError> {
    mcp::from_headers(req.headers()).map_err(|m| ProxyError::McpMismatch {
        why: m.to_string(),
        mcp: None,
    })
}

#[cfg(test)]
mod props;
