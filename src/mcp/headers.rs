//! The 2026-07-28 routing headers `Mcp-Method` and `Mcp-Name`.
//!
//! Owns: reading them (including the `=?base64?…?=` form of `Mcp-Name` values that cannot be
//! plain header text), checking them against a body classification ([`check_headers`]), and a
//! header-only classification ([`from_headers`]) for requests whose body is not inspected.
//! Does not own: the 400 / -32020 response (`errors::HEADER_MISMATCH`, built by the caller).
//!
//! Rule (SPEC §7): a header that is present must agree with the body, for every message of the
//! body; an absent header is not an error (session-era clients send none). Policy is never
//! decided on a header that the body contradicts.

use std::borrow::Cow;

use http::HeaderMap;

use super::classify::{Classification, Kind, Message};
use super::method::{Method, NameField};

pub const MCP_METHOD: &str = "mcp-method";
pub const MCP_NAME: &str = "mcp-name";

const B64_PREFIX: &str = "=?base64?";
const B64_SUFFIX: &str = "?=";

/// The routing headers disagree with the body, or cannot be read. Answer 400 with JSON-RPC
/// error -32020 (HeaderMismatch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("{header} header does not match the request body")]
    Differs { header: &'static str },
    #[error("{header} header is malformed")]
    Malformed { header: &'static str },
    #[error("{header} header appears more than once")]
    Repeated { header: &'static str },
}

/// The decoded routing headers; `None` where absent.
#[derive(Debug, Default, PartialEq, Eq)]
struct Routing<'a> {
    method: Option<&'a str>,
    name: Option<Cow<'a, str>>,
}

fn read(headers: &HeaderMap) -> Result<Routing<'_>, Mismatch> {
    let method = one(headers, MCP_METHOD, "Mcp-Method")?;
    let name = match one(headers, MCP_NAME, "Mcp-Name")? {
        None => None,
        Some(v) => Some(decode_value(v).ok_or(Mismatch::Malformed { header: "Mcp-Name" })?),
    };
    Ok(Routing { method, name })
}

/// At most one value, as visible ASCII (RFC 9110 field value without obs-text).
fn one<'a>(
    headers: &'a HeaderMap,
    key: &'static str,
    header: &'static str,
) -> Result<Option<&'a str>, Mismatch> {
    let mut values = headers.get_all(key).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Mismatch::Repeated { header });
    }
    v.to_str()
        .map(Some)
        .map_err(|_| Mismatch::Malformed { header })
}

/// A header value per SEP-2243 "Value Encoding": `=?base64?{standard base64 of UTF-8}?=` or
/// the plain value. `None` when the base64 form does not decode to UTF-8.
pub fn decode_value(v: &str) -> Option<Cow<'_, str>> {
    match v
        .strip_prefix(B64_PREFIX)
        .and_then(|r| r.strip_suffix(B64_SUFFIX))
    {
        None => Some(Cow::Borrowed(v)),
        Some(b64) => String::from_utf8(base64_decode(b64.as_bytes())?)
            .ok()
            .map(Cow::Owned),
    }
}

/// Standard-alphabet base64, padding optional.
fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let s = s
        .strip_suffix(b"==")
        .or_else(|| s.strip_suffix(b"="))
        .unwrap_or(s);
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Check present `Mcp-Method` / `Mcp-Name` headers against a body classification.
///
/// Every message must agree (a 2026-07-28 client never batches; a session-era batch that
/// carries the headers must be uniform, or an intermediary routing by header would see a
/// different request than the server). `Mcp-Name` is compared with [`Message::mirrored_name`];
/// a header naming something the body does not name is a mismatch.
pub fn check_headers(headers: &HeaderMap, c: &Classification) -> Result<(), Mismatch> {
    let routing = read(headers)?;
    if routing == Routing::default() {
        return Ok(());
    }
    for m in c.messages() {
        if let Some(h) = routing.method {
            if m.method_str() != Some(h) {
                return Err(Mismatch::Differs {
                    header: "Mcp-Method",
                });
            }
        }
        if let Some(h) = &routing.name {
            if m.mirrored_name() != Some(h.as_ref()) {
                return Err(Mismatch::Differs { header: "Mcp-Name" });
            }
        }
    }
    Ok(())
}

/// Whether the request carries `Mcp-Method` or `Mcp-Name` (the 2026-07-28 routing headers).
pub fn has_routing_headers(headers: &HeaderMap) -> bool {
    headers.contains_key(MCP_METHOD) || headers.contains_key(MCP_NAME)
}

/// For a body that was read but is not JSON-RPC (`classify` gave `Ok(None)`): present routing
/// headers name a method the body does not carry, so they are a mismatch. Never fall back to
/// [`from_headers`] for a body that was read: a body outrider's parser rejects (`NaN`, a lone
/// surrogate, `1e400`) may still be accepted by a lenient server, and would then run a
/// different tool than the one the headers showed the policy.
pub fn check_unclassified(headers: &HeaderMap) -> Result<(), Mismatch> {
    let routing = read(headers)?;
    if routing.method.is_some() {
        return Err(Mismatch::Differs {
            header: "Mcp-Method",
        });
    }
    if routing.name.is_some() {
        return Err(Mismatch::Differs { header: "Mcp-Name" });
    }
    Ok(())
}

/// Classify from the routing headers alone (body not inspected). `Ok(None)` without
/// `Mcp-Method`. The message has no id (so no JSON-RPC error body can be built from it) and is a
/// `Notification` when the method starts with `notifications/`, else a `Request`.
pub fn from_headers(headers: &HeaderMap) -> Result<Option<Classification>, Mismatch> {
    let routing = read(headers)?;
    let Some(method_str) = routing.method else {
        return Ok(None);
    };
    let method = Method::from_wire(method_str);
    let name: Option<Box<str>> = routing.name.map(|n| n.into());
    let (params_name, params_uri) = match method.name_field() {
        Some(NameField::Uri) => (None, name),
        _ => (name, None),
    };
    let kind = if method_str.starts_with("notifications/") {
        Kind::Notification
    } else {
        Kind::Request
    };
    Ok(Some(Classification::header_only(Message {
        kind,
        id: None,
        method: Some(method),
        other_method: (method == Method::Other).then(|| method_str.into()),
        params_name,
        params_uri,
        meta_traceparent: None,
    })))
}

#[cfg(test)]
mod tests;
