//! Gathers what the access log records about one request and writes its line.
//!
//! Owns: `Meta` (filled along the request path) and `Start` (captured before the request is
//! moved). Nothing here runs unless an access log is configured.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use http::{HeaderValue, Method, Request};

use crate::telemetry::access_log::{timestamp, AccessLog, Entry};
use crate::telemetry::metrics::Direction;
use crate::telemetry::propagation::Span;

/// Facts learnt while routing and forwarding.
#[derive(Debug, Default)]
pub struct Meta {
    pub route: String,
    pub backend: String,
    pub upstream: Option<SocketAddr>,
    pub attempts: u32,
    pub span: Option<Span>,
    /// The MCP classification (JSON-RPC requests): labels, policies, error bodies.
    pub mcp: Option<crate::mcp::Classification>,
}

/// The request line, captured before the request is consumed.
pub struct Start {
    method: Method,
    authority: String,
    /// Path only: the query is dropped here, so it can never reach the log.
    path: String,
    at: Instant,
    wall: SystemTime,
}

impl Start {
    pub fn capture<B>(req: &Request<B>, at: Instant) -> Start {
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                req.headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        Start {
            method: req.method().clone(),
            authority,
            path: req.uri().path().to_owned(),
            at,
            wall: SystemTime::now(),
        }
    }
}

pub struct Outcome<'a> {
    pub status: u16,
    pub error: Option<&'static str>,
    pub request_id: &'a HeaderValue,
    pub peer_identity: Option<&'a str>,
}

pub fn record(log: &AccessLog, dir: Direction, start: &Start, meta: &Meta, out: Outcome<'_>) {
    let span = meta.span;
    log.log(&Entry {
        timestamp: timestamp(start.wall),
        trace_id: span.map(|s| s.trace_hex()).unwrap_or_default(),
        span_id: span.map(|s| s.span_hex()).unwrap_or_default(),
        parent_span_id: span.and_then(|s| s.parent_hex()),
        request_id: out.request_id.to_str().unwrap_or(""),
        direction: dir.as_str(),
        peer_identity: out.peer_identity,
        method: start.method.as_str(),
        authority: &start.authority,
        path: &start.path,
        status: out.status,
        duration_ms: start.at.elapsed().as_secs_f64() * 1e3,
        route: &meta.route,
        backend: &meta.backend,
        upstream: meta.upstream.map(|a| a.to_string()),
        attempts: meta.attempts,
        error: out.error,
        mcp_method: meta.mcp.as_ref().map_or("", |c| c.method_label()),
        mcp_tool: meta.mcp.as_ref().and_then(|c| c.tool_label()).unwrap_or(""),
    });
}
