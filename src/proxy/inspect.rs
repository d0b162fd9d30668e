//! Reads a JSON request body (bounded by `mcp.max_inspect_body`) and classifies it as MCP /
//! JSON-RPC, so that routes, authorization, retries, metrics, logs and error bodies can use the
//! method and tool. The bytes forwarded upstream are exactly the bytes received.
//!
//! Owns: when a body is read (POST with a JSON content type or MCP routing headers), the size
//! limit and its two outcomes (413 `body-too-large` when a policy needs the body, else
//! pass-through unread), header/body agreement (`Mcp-Method`/`Mcp-Name`, 400 with -32020).
//! Does not own: what the classification means (`crate::mcp`).

use bytes::{Bytes, BytesMut};
use http::{header, Method, Request};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::body::UpstreamBody;
use super::error::ProxyError;
use crate::mcp::{self, Classification};

/// Classifies `req`. `needs_body`: some route or rule of the snapshot has MCP conditions, so an
/// uninspectable body (too large) must be refused rather than passed through.
pub async fn inspect(
    req: Request<Incoming>,
    limit: usize,
    needs_body: bool,
) -> Result<(Request<UpstreamBody>, Option<Classification>), ProxyError> {
    if req.method() != Method::POST {
        // Only a POST carries JSON-RPC: routing headers on anything else classify nothing
        // (a policy must never admit, say, a DELETE because its headers name a tool).
        return Ok((req.map(UpstreamBody::Stream), None));
    }
    // A POST with MCP routing headers is read whatever its content type claims: an upstream
    // parser may take the body as JSON anyway, so the headers must be checked against it.
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(mcp::is_json_content_type)
        || mcp::headers::has_routing_headers(req.headers());
    if !json {
        return Ok((req.map(UpstreamBody::Stream), None));
    }
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
