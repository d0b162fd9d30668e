//! Header rules shared by both directions: hop-by-hop stripping (RFC 9110 §7.6.1),
//! `x-request-id`, `x-forwarded-for`, and the route's set/remove edits.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::model::HeaderEdits;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_OUTRIDER_ERROR: HeaderName = HeaderName::from_static("x-outrider-error");
pub const X_OUTRIDER_PEER_IDENTITY: HeaderName =
    HeaderName::from_static("x-outrider-peer-identity");
pub const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one connection and never cross a proxy.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::PROXY_AUTHORIZATION
        || name == header::PROXY_AUTHENTICATE
}

/// Removes hop-by-hop headers and those named by `Connection`. With `upgrade` set, keeps
/// `Connection: upgrade` + `Upgrade` so a WebSocket handshake can pass through.
/// `TE: trailers` is kept (gRPC and HTTP/2 need it).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // One scan records which hop-by-hop names are present; only those are removed (a
    // remove of an absent name still hashes and probes). Typical HTTP/1.1 upstream
    // responses carry just `Connection: keep-alive`.
    let mut present = 0u16;
    for name in headers.keys() {
        present |= hop_bit(name);
    }
    if present == 0 {
        return;
    }
    if present & bit::CONNECTION != 0 {
        // Headers named by Connection (other than the standard tokens) go too. No allocation
        // unless a token names a non-standard header.
        let mut named: Vec<HeaderName> = Vec::new();
        for v in headers.get_all(header::CONNECTION) {
            for t in v.to_str().unwrap_or("").split(',') {
                let t = t.trim();
                if t.is_empty()
                    || t.eq_ignore_ascii_case("keep-alive")
                    || t.eq_ignore_ascii_case("close")
                    || t.eq_ignore_ascii_case("upgrade")
                {
                    continue;
                }
                if let Ok(n) = HeaderName::from_bytes(t.as_bytes()) {
                    named.push(n);
                }
            }
        }
        for n in named {
            headers.remove(n);
        }
    }
    let te_trailers = present & bit::TE != 0
        && headers.get(header::TE).is_some_and(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            })
        });
    for (b, name) in [
        (bit::CONNECTION, header::CONNECTION),
        (bit::KEEP_ALIVE, KEEP_ALIVE),
        (bit::PROXY_CONNECTION, PROXY_CONNECTION),
        (bit::TE, header::TE),
        (bit::TRAILER, header::TRAILER),
        (bit::TRANSFER_ENCODING, header::TRANSFER_ENCODING),
        (bit::PROXY_AUTHORIZATION, header::PROXY_AUTHORIZATION),
        (bit::PROXY_AUTHENTICATE, header::PROXY_AUTHENTICATE),
    ] {
        if present & b != 0 {
            headers.remove(name);
        }
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if present & bit::UPGRADE != 0 {
        headers.remove(header::UPGRADE);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

mod bit {
    pub const CONNECTION: u16 = 1;
    pub const KEEP_ALIVE: u16 = 2;
    pub const PROXY_CONNECTION: u16 = 4;
    pub const TE: u16 = 8;
    pub const TRAILER: u16 = 16;
    pub const TRANSFER_ENCODING: u16 = 32;
    pub const UPGRADE: u16 = 64;
    pub const PROXY_AUTHORIZATION: u16 = 128;
    pub const PROXY_AUTHENTICATE: u16 = 256;
}

fn hop_bit(name: &HeaderName) -> u16 {
    if name == header::CONNECTION {
        bit::CONNECTION
    } else if name == KEEP_ALIVE {
        bit::KEEP_ALIVE
    } else if name == PROXY_CONNECTION {
        bit::PROXY_CONNECTION
    } else if name == header::TE {
        bit::TE
    } else if name == header::TRAILER {
        bit::TRAILER
    } else if name == header::TRANSFER_ENCODING {
        bit::TRANSFER_ENCODING
    } else if name == header::UPGRADE {
        bit::UPGRADE
    } else if name == header::PROXY_AUTHORIZATION {
        bit::PROXY_AUTHORIZATION
    } else if name == header::PROXY_AUTHENTICATE {
        bit::PROXY_AUTHENTICATE
    } else {
        0
    }
}

/// True when an HTTP/1.1 request asks for a protocol upgrade (e.g. WebSocket).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// Keeps a valid client `x-request-id`, else generates one; returns the value to echo.
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get_mut(&X_REQUEST_ID) {
        if !v.is_empty() && v.len() <= 256 {
            // Unique per request: never indexed by HPACK (see `propagation::unique`).
            v.set_sensitive(true);
            return v.clone();
        }
    }
    let v = new_request_id();
    headers.insert(X_REQUEST_ID, v.clone());
    v
}

/// 128 random bits as 32 lower-case hex digits.
pub fn new_request_id() -> HeaderValue {
    let mut buf = [0u8; 32];
    crate::telemetry::propagation::hex_into(&mut buf, fastrand::u128(..));
    crate::telemetry::propagation::unique(&buf)
}

/// Appends the client's address to `x-forwarded-for` (RFC 7239's predecessor, as Envoy does).
/// `peer` is the client's address as a header value ([`peer_value`], made once per
/// connection).
pub fn append_forwarded_for(headers: &mut HeaderMap, peer: &HeaderValue) {
    let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => {
            let mut joined = Vec::with_capacity(prev.len() + 2 + peer.len());
            joined.extend_from_slice(prev.as_bytes());
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(peer.as_bytes());
            match HeaderValue::from_bytes(&joined) {
                Ok(v) => v,
                Err(_) => return,
            }
        }
        _ => peer.clone(),
    };
    headers.insert(X_FORWARDED_FOR, value);
}

/// A client address as a header value.
pub fn peer_value(peer: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.to_string()).expect("an IP address is a valid header value")
}

pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// SSE responses tell downstream buffering proxies (nginx and friends) not to buffer them.
pub fn mark_event_stream(headers: &mut HeaderMap) {
    let sse = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if sse {
        headers.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    }
}

pub fn apply_edits(headers: &mut HeaderMap, edits: &HeaderEdits) {
    for n in &edits.remove {
        headers.remove(n);
    }
    for (n, v) in &edits.set {
        headers.insert(n.clone(), v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_connection_named_and_standard_hop_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, x-foo"));
        h.insert("x-foo", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers, deflate"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.get("x-foo").is_none() && h.get("keep-alive").is_none());
        assert!(h.get(header::CONNECTION).is_none());
        assert_eq!(h.get(header::TE).unwrap(), "trailers");
        assert_eq!(h.get("x-keep").unwrap(), "1");
    }

    #[test]
    fn keeps_upgrade_for_websocket() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(wants_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get(header::UPGRADE).unwrap(), "websocket");
        assert_eq!(h.get(header::CONNECTION).unwrap(), "upgrade");
    }

    #[test]
    fn request_ids_are_kept_or_generated() {
        let mut h = HeaderMap::new();
        let a = ensure_request_id(&mut h);
        assert_eq!(a.len(), 32);
        assert_eq!(ensure_request_id(&mut h), a);
        assert_ne!(new_request_id(), a);
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, &peer_value("10.0.0.1".parse().unwrap()));
        append_forwarded_for(&mut h, &peer_value("127.0.0.1".parse().unwrap()));
        assert_eq!(h.get(&X_FORWARDED_FOR).unwrap(), "10.0.0.1, 127.0.0.1");
    }
}
