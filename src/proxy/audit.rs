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

/// What every request shares before its direction-specific handling: the arrival time, the
/// request id (kept or generated), and the access log's view of the request line.
pub struct Envelope {
    pub start: Instant,
    request_id: HeaderValue,
    line: Option<Start>,
    pub meta: Meta,
}

impl Envelope {
    /// `observe`: an access log or a span exporter wants the request line.
    pub fn open<B>(req: &mut Request<B>, observe: bool) -> Envelope {
        let start = Instant::now();
        let request_id = crate::proxy::headers::ensure_request_id(req.headers_mut());
        let line = observe.then(|| Start::capture(req, start));
        Envelope {
            start,
            request_id,
            line,
            meta: Meta::default(),
        }
    }

    /// Turns the outcome into the response: a proxy error is counted and rescued (JSON-RPC
    /// body for JSON-RPC requests), the access log line written, `x-request-id` echoed.
    pub fn close(
        self,
        result: Result<
            http::Response<crate::proxy::body::ProxyBody>,
            crate::proxy::error::ProxyError,
        >,
        dir: Direction,
        shared: &crate::proxy::Shared,
        peer_identity: Option<&str>,
    ) -> http::Response<crate::proxy::body::ProxyBody> {
        let metrics = &shared.metrics;
        let (mut rsp, error) = match result {
            Ok(rsp) => (rsp, None),
            Err(err) => {
                tracing::debug!(error = %err, direction = dir.as_str(), "request failed");
                metrics.proxy_error(dir, err.reason()).inc();
                (
                    crate::proxy::error::rescue(&err, self.meta.mcp.as_ref()),
                    Some(err.reason()),
                )
            }
        };
        if let Some(line) = &self.line {
            let status = rsp.status().as_u16();
            if let Some(log) = shared.access_log.as_deref() {
                let out = Outcome {
                    status,
                    error,
                    request_id: &self.request_id,
                    peer_identity,
                };
                record(log, dir, line, &self.meta, out);
            }
            if let (Some(exp), Some(span)) =
                (shared.otlp.as_deref(), self.meta.span.filter(|s| s.sampled))
            {
                export_span(
                    exp,
                    span,
                    dir,
                    line,
                    &self.meta,
                    status,
                    error,
                    peer_identity,
                );
            }
        }
        crate::proxy::headers::echo_request_id(rsp.headers_mut(), self.request_id);
        rsp
    }
}

/// One SERVER span per proxied request (sampled traces only).
#[allow(clippy::too_many_arguments)]
fn export_span(
    exp: &crate::telemetry::otlp::Exporter,
    span: Span,
    dir: Direction,
    start: &Start,
    meta: &Meta,
    status: u16,
    error: Option<&'static str>,
    peer_identity: Option<&str>,
) {
    use crate::telemetry::otlp::{span_name, Attributes, SpanRecord};
    let attributes = Attributes {
        direction: dir.as_str(),
        http_method: start.method.as_str(),
        route: &meta.route,
        backend: &meta.backend,
        status,
        peer_identity,
        upstream: meta.upstream.map(|a| a.to_string()),
        retries: meta.attempts.saturating_sub(1),
        mcp_method: meta.mcp.as_ref().map_or("", |c| c.method_label()),
        mcp_tool: meta.mcp.as_ref().and_then(|c| c.tool_label()).unwrap_or(""),
        error,
    };
    let name = span_name(&attributes);
    exp.record(SpanRecord {
        span,
        name: &name,
        start: start.wall,
        end: start.wall + start.at.elapsed(),
        attributes,
    });
}
