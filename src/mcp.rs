//! MCP awareness: what a Streamable-HTTP POST means, in MCP terms, and what may be done with it.
//!
//! Owns (all pure, no IO):
//! - `jsonrpc`: a bounded JSON-RPC 2.0 envelope parser over `&[u8]` (single or batch) that
//!   reads only `jsonrpc`, `id`, `method`, `params.name`, `params.uri`,
//!   `params._meta.traceparent` and skips the rest without allocating for it.
//! - `classify`: body -> [`Classification`] (messages with [`Kind`], exact [`RawId`],
//!   [`Method`], named target); `Ok(None)` means "pass untouched".
//! - `headers`: the 2026-07-28 `Mcp-Method`/`Mcp-Name` headers: agreement with the body
//!   ([`check_headers`], -32020 on [`Mismatch`]) and header-only classification.
//! - `policy`: [`McpMatch`] for routes and authorization rules, [`is_idempotent`] for retries.
//! - `errors`: exact JSON-RPC error bodies for proxy failures.
//! - `sse`: [`EventBoundary`], where a keep-alive comment may be injected into an SSE stream.
//!
//! Does not own: buffering the body up to `mcp.max_inspect_body`, forwarding, sessions,
//! retries, metrics registration or the HTTP responses; the proxy wires these functions in.
//! Classification only ever borrows the body: the bytes forwarded upstream are the original
//! buffer, unchanged.

pub mod classify;
pub mod errors;
pub mod headers;
pub mod jsonrpc;
pub mod method;
pub mod policy;
pub mod session;
pub mod sse;

pub use classify::{
    classify, is_json_content_type, Classification, ClassifyError, Kind, Message, Origin, RawId,
};
pub use errors::{error_body, error_body_for, HEADER_MISMATCH, PROXY_ERROR};
pub use headers::{check_headers, check_unclassified, from_headers, Mismatch};
pub use method::{Method, OTHER_LABEL};
pub use policy::{is_idempotent, McpMatch};
pub use sse::{EventBoundary, KEEPALIVE};
