//! The validated, runtime configuration: what the proxy actually runs with.
//!
//! Owns: plain runtime types (socket addresses, durations, compiled matchers, header names).
//! Built only by `validate`; immutable once built and shared behind `Arc`.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};

pub use crate::tls::identity::PeerGlob;
pub use crate::tls::TlsFiles;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub service: String,
    /// This sidecar's SPIFFE ID (required with `tls`).
    pub identity: Option<String>,
    pub tls: Option<TlsFiles>,
    pub admin: SocketAddr,
    pub metrics: SocketAddr,
    pub drain_timeout: Duration,
    pub limits: Limits,
    pub inbound: Option<Inbound>,
    pub outbound: Option<Outbound>,
    pub backends: Vec<Backend>,
    /// Trace propagation (always on; `tracing` tunes it).
    pub tracing: crate::telemetry::propagation::Settings,
    /// `tracing.otlp.endpoint`: where sampled spans are exported (OTLP/HTTP protobuf).
    pub otlp_endpoint: Option<http::Uri>,
    /// `None`: no access log.
    pub access_log: Option<crate::telemetry::access_log::Target>,
    /// `mcp.max_inspect_body`: JSON request bodies up to this size are classified.
    pub mcp_max_inspect_body: usize,
    /// `mcp.sse_keepalive`: comment lines injected into SSE streams silent this long.
    pub mcp_sse_keepalive: Option<Duration>,
    /// `mcp.session_key_file`: the key sealing MCP session ids (random per process when unset).
    pub mcp_session_key_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub max_concurrent_streams: u32,
    /// Open client connections per listener (all workers together).
    pub max_connections: u32,
    /// A client connection with no request in flight and no response body streaming this long
    /// is closed (HTTP/2: GOAWAY); zero = never.
    pub idle_timeout: Duration,
    /// A request body outrider buffers (MCP inspection, a retry's replay copy) must arrive whole
    /// within this after the head.
    pub body_read_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub listen: SocketAddr,
    pub app: SocketAddr,
    pub mode: Mode,
    /// `None`: any authenticated peer. `Some`: default deny, allowed when a rule matches.
    pub authorize: Option<Vec<AuthzRule>>,
    pub max_concurrent_requests: Option<u32>,
    pub ready_requires_app: bool,
    pub ready_requires_backends: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// mTLS only.
    Strict,
    /// mTLS or plaintext, detected per connection (migrations).
    Permissive,
    Plaintext,
}

/// Peer conditions today; MCP method/tool conditions join here (same rule, more fields).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthzRule {
    pub name: String,
    /// `None`: any caller.
    pub peers: Option<Vec<PeerGlob>>,
    /// MCP method/tool conditions; `None`: any request.
    pub mcp: Option<crate::mcp::McpMatch>,
}

impl AuthzRule {
    pub fn allows(&self, peer: Option<&str>) -> bool {
        match (&self.peers, peer) {
            (None, _) => true,
            (Some(globs), Some(id)) => globs.iter().any(|g| g.matches(id)),
            (Some(_), None) => false,
        }
    }
}

/// `inbound.authorize` for one request: some rule allows the peer, and every MCP message of
/// the request (each element of a batch) is allowed by some rule that allows the peer. An
/// unclassified request passes only a rule without `mcp` conditions, except `session_io`: a
/// GET (the session's SSE stream) or DELETE (ending it) carrying `Mcp-Session-Id` and no
/// JSON-RPC body names no method or tool, so it passes a rule with `mcp` conditions too (the
/// session was authorized at `initialize`; the peer condition still applies).
pub fn authorize(
    rules: &[AuthzRule],
    peer: Option<&str>,
    mcp: Option<&crate::mcp::Classification>,
    session_io: bool,
) -> bool {
    let mut allowed = rules.iter().filter(|r| r.allows(peer)).peekable();
    if allowed.peek().is_none() {
        return false;
    }
    match mcp {
        None => allowed.any(|r| r.mcp.is_none() || session_io),
        Some(c) => c.messages().iter().all(|m| {
            rules
                .iter()
                .any(|r| r.allows(peer) && r.mcp.as_ref().is_none_or(|mm| mm.matches_message(m)))
        }),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    pub listen: SocketAddr,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub host: HostMatch,
    pub path: PathMatch,
    pub method: Option<Method>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `match.mcp`: MCP method/tool conditions.
    pub mcp: Option<crate::mcp::McpMatch>,
    /// (index into `Config::backends`, weight); weights sum to `total_weight` > 0.
    pub to: Vec<(usize, u32)>,
    pub total_weight: u32,
    pub timeout: Duration,
    pub idle_timeout: Duration,
    pub request_headers: HeaderEdits,
    pub response_headers: HeaderEdits,
    /// `None`: one try (connect failures are still never retried without a config).
    pub retry: Option<RouteRetry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteRetry {
    pub settings: crate::resilience::RetrySettings,
    /// `retry.non_idempotent: true`: POST/PATCH may be retried on status/reset/timeout too.
    pub non_idempotent: bool,
    /// `retry.idempotent_tools`: `tools/call` of these tools is retried like a read.
    pub idempotent_tools: Vec<glob::Pattern>,
}

impl AsRef<Route> for Route {
    fn as_ref(&self) -> &Route {
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Any,
    /// Lower-cased host, without port unless the user wrote one.
    Exact(String),
    /// `*.example.com` stored as `example.com`: matches `a.example.com`, `a.b.example.com`.
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Any,
    Prefix(String),
    Exact(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderEdits {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderEdits {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    pub endpoints: Vec<SocketAddr>,
    /// mTLS to the endpoints, expecting this SPIFFE ID; `None` = plaintext.
    pub tls: Option<String>,
    /// `session_affinity: mcp`: requests of an MCP session go to the endpoint that issued it.
    pub session_affinity: bool,
    pub protocol: Protocol,
    pub connect_timeout: Duration,
    /// Balancing, circuit breaker, outlier ejection, health check.
    pub resilience: crate::resilience::Settings,
    /// PINGs on the backend's HTTP/2 connections; `None`: none sent.
    pub h2_keepalive: Option<H2Keepalive>,
}

/// An HTTP/2 connection to a backend sends a PING every `interval`; one without an answer
/// within `timeout` is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Keepalive {
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    /// HTTP/2 when negotiated by ALPN (TLS); HTTP/1.1 on plaintext upstreams.
    Auto,
}

impl fmt::Display for HostMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostMatch::Any => f.write_str("any host"),
            HostMatch::Exact(h) => write!(f, "host `{h}`"),
            HostMatch::Suffix(s) => write!(f, "host `*.{s}`"),
        }
    }
}

impl fmt::Display for PathMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathMatch::Any => f.write_str("any path"),
            PathMatch::Prefix(p) => write!(f, "path prefix `{p}`"),
            PathMatch::Exact(p) => write!(f, "path `{p}`"),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
            Protocol::Auto => "auto",
        })
    }
}
