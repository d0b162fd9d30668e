//! Proxy failures and their one mapping to HTTP responses (SPEC §6).
//!
//! Owns: `ProxyError`, its bounded `reason` label, status code, and `rescue()` which builds the
//! response (`x-outrider-error`, plain-text body) and counts it.

use http::{header, HeaderValue, Response, StatusCode};

use super::body::{BoxError, ProxyBody};
use super::headers::X_OUTRIDER_ERROR;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no route matches host `{host}` path `{path}`")]
    NoRoute { host: String, path: String },
    #[error("caller {peer} is not allowed to {} by inbound.authorize", what.as_deref().map(|w| format!("call {w}")).unwrap_or_else(|| "make this request".to_owned()))]
    Forbidden { peer: String, what: Option<String> },
    #[error("every endpoint of backend {backend} is ejected or unhealthy (circuit open)")]
    CircuitOpen { backend: String },
    #[error("reading the request body failed: {source}")]
    ClientBody { source: BoxError },
    #[error("request body larger than mcp.max_inspect_body ({limit} bytes) and a policy needs it")]
    BodyTooLarge { limit: usize },
    #[error("request body not received within limits.body_read_timeout ({timeout:?})")]
    BodyTimeout { timeout: std::time::Duration },
    #[error("{why}")]
    McpMismatch {
        why: String,
        mcp: Option<crate::mcp::Classification>,
    },
    #[error("MCP session not found on backend {backend}: initialize a new session")]
    SessionNotFound { backend: String },
    #[error("backend {backend} has no endpoints")]
    NoEndpoints { backend: String },
    #[error("{what} is at its concurrency limit")]
    Overloaded { what: String },
    #[error("cannot connect to {endpoint} of backend {backend}: {source}")]
    ConnectFailed {
        backend: String,
        endpoint: String,
        source: BoxError,
    },
    #[error("{endpoint} of backend {backend} closed or reset the connection before responding: {source}")]
    UpstreamReset {
        backend: String,
        endpoint: String,
        source: BoxError,
    },
    #[error("no response headers from backend {backend} within {timeout:?}")]
    Timeout {
        backend: String,
        timeout: std::time::Duration,
    },
}

impl ProxyError {
    /// Bounded label value for `outrider_proxy_errors_total{reason}` and `x-outrider-error`.
    pub fn reason(&self) -> &'static str {
        match self {
            ProxyError::NoRoute { .. } => "no-route",
            ProxyError::Forbidden { .. } => "forbidden",
            ProxyError::NoEndpoints { .. } => "no-endpoints",
            ProxyError::SessionNotFound { .. } => "session-not-found",
            ProxyError::CircuitOpen { .. } => "circuit-open",
            ProxyError::ClientBody { .. } => "bad-request",
            ProxyError::BodyTooLarge { .. } => "body-too-large",
            ProxyError::BodyTimeout { .. } => "body-timeout",
            ProxyError::McpMismatch { .. } => crate::mcp::errors::HEADER_MISMATCH_REASON,
            ProxyError::Overloaded { .. } => "overloaded",
            ProxyError::ConnectFailed { .. } => "connect-failed",
            ProxyError::UpstreamReset { .. } => "upstream-reset",
            ProxyError::Timeout { .. } => "timeout",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute { .. } | ProxyError::SessionNotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            ProxyError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ProxyError::NoEndpoints { .. }
            | ProxyError::Overloaded { .. }
            | ProxyError::CircuitOpen { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::ClientBody { .. } | ProxyError::McpMismatch { .. } => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ProxyError::ConnectFailed { .. } | ProxyError::UpstreamReset { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

/// The single place where a proxy failure becomes a response: a JSON-RPC error body when the
/// request was JSON-RPC with an id (SPEC §6), else one line of plain text.
pub fn rescue(err: &ProxyError, mcp: Option<&crate::mcp::Classification>) -> Response<ProxyBody> {
    let reason = err.reason();
    let (code, mcp) = match err {
        ProxyError::McpMismatch { mcp: own, .. } => {
            (crate::mcp::HEADER_MISMATCH, own.as_ref().or(mcp))
        }
        _ => (crate::mcp::PROXY_ERROR, mcp),
    };
    let message = err.to_string();
    // `error_body_for` prefixes "outrider: " itself.
    let json = mcp.and_then(|c| crate::mcp::error_body_for(c, code, &message, reason));
    let (body, content_type) = match json {
        Some(b) => (b, "application/json"),
        None => (
            bytes::Bytes::from(format!("outrider: {message}\n")),
            "text/plain; charset=utf-8",
        ),
    };
    let mut rsp = Response::new(ProxyBody::full(body));
    *rsp.status_mut() = err.status();
    let h = rsp.headers_mut();
    h.insert(X_OUTRIDER_ERROR, HeaderValue::from_static(reason));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    rsp
}

/// Classifies an upstream send error: failed before the request was written (connect), or after.
pub fn from_send_error(
    connect: bool,
    source: BoxError,
    backend: &str,
    endpoint: &str,
) -> ProxyError {
    let (backend, endpoint) = (backend.to_owned(), endpoint.to_owned());
    if connect {
        ProxyError::ConnectFailed {
            backend,
            endpoint,
            source,
        }
    } else {
        ProxyError::UpstreamReset {
            backend,
            endpoint,
            source,
        }
    }
}
