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
    hop_bit(name) != 0
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
    strip_present(headers, present, upgrade);
}

/// A response on its way back to the client, from one scan over its fields: hop-by-hop fields
/// stripped ([`strip_hop_by_hop`]; `switching`: a `101` keeps its upgrade fields), and an SSE
/// response (`text/event-stream`) marked `x-accel-buffering: no` so that buffering proxies
/// (nginx and friends) downstream pass its events on at once. Returns whether it is SSE.
pub fn finish_response(headers: &mut HeaderMap, switching: bool) -> bool {
    let (mut present, mut content_type) = (0u16, None);
    for (name, value) in headers.iter() {
        present |= hop_bit(name);
        if content_type.is_none() && name == header::CONTENT_TYPE {
            content_type = Some(value);
        }
    }
    let sse = content_type.is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    strip_present(headers, present, switching);
    if sse {
        headers.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    }
    sse
}

/// Removes the hop-by-hop fields whose bits are in `present` (see [`strip_hop_by_hop`]).
fn strip_present(headers: &mut HeaderMap, present: u16, upgrade: bool) {
    if present == 0 {
        return;
    }
    if present & bit::CONNECTION != 0 {
        // Headers named by Connection (other than the standard tokens) go too. No allocation
        // unless a token names a non-standard header.
        // Bytes, not `str` patterns: this runs for most HTTP/1.1 responses.
        let mut named: Vec<HeaderName> = Vec::new();
        for v in headers.get_all(header::CONNECTION) {
            for t in v.as_bytes().split(|&b| b == b',') {
                let t = t.trim_ascii();
                if t.is_empty()
                    || t.eq_ignore_ascii_case(b"keep-alive")
                    || t.eq_ignore_ascii_case(b"close")
                    || t.eq_ignore_ascii_case(b"upgrade")
                {
                    continue;
                }
                if let Ok(n) = HeaderName::from_bytes(t) {
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
    for (b, name) in &HOP_NAMES {
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

/// The hop-by-hop names removed by their bit (`Upgrade` is handled apart). A static table:
/// building the names per call and dropping the ones not removed cost more than the scan.
static HOP_NAMES: [(u16, HeaderName); 8] = [
    (bit::CONNECTION, header::CONNECTION),
    (bit::KEEP_ALIVE, KEEP_ALIVE),
    (bit::PROXY_CONNECTION, PROXY_CONNECTION),
    (bit::TE, header::TE),
    (bit::TRAILER, header::TRAILER),
    (bit::TRANSFER_ENCODING, header::TRANSFER_ENCODING),
    (bit::PROXY_AUTHORIZATION, header::PROXY_AUTHORIZATION),
    (bit::PROXY_AUTHENTICATE, header::PROXY_AUTHENTICATE),
];

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

/// By length first: most names are rejected by one comparison of lengths, instead of nine
/// comparisons of names (this runs for every field of every request and response).
fn hop_bit(name: &HeaderName) -> u16 {
    let s = name.as_str();
    match s.len() {
        2 if s == "te" => bit::TE,
        7 if s == "trailer" => bit::TRAILER,
        7 if s == "upgrade" => bit::UPGRADE,
        10 if s == "connection" => bit::CONNECTION,
        10 if s == "keep-alive" => bit::KEEP_ALIVE,
        16 if s == "proxy-connection" => bit::PROXY_CONNECTION,
        17 if s == "transfer-encoding" => bit::TRANSFER_ENCODING,
        18 if s == "proxy-authenticate" => bit::PROXY_AUTHENTICATE,
        19 if s == "proxy-authorization" => bit::PROXY_AUTHORIZATION,
        _ => 0,
    }
}

/// True when an HTTP/1.1 request asks for a protocol upgrade (e.g. WebSocket).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    // A pass over the names (standard ones compare as one tag) rather than a hashed lookup:
    // nearly every request has none.
    headers.keys().any(|k| k == header::UPGRADE)
        && headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// Keeps a valid client `x-request-id`, else generates one; returns the value to echo.
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    // A pass over the fields rather than a hashed lookup: a request has a few fields.
    let mut present = false;
    for (k, v) in headers.iter_mut() {
        if k == X_REQUEST_ID {
            if !v.is_empty() && v.len() <= 256 {
                // Unique per request: never indexed by HPACK (see `propagation::unique`).
                v.set_sensitive(true);
                return v.clone();
            }
            present = true;
            break;
        }
    }
    let v = new_request_id();
    if present {
        headers.insert(X_REQUEST_ID, v.clone());
    } else {
        headers.append(X_REQUEST_ID, v.clone());
    }
    v
}

/// Puts the request id on a response, alone. A response that already carries exactly this id
/// (an upstream sidecar echoed it) is left as it is, found without a hashed lookup.
pub fn echo_request_id(headers: &mut HeaderMap, id: HeaderValue) {
    let (mut count, mut same) = (0, true);
    for (k, v) in headers.iter_mut() {
        if k == X_REQUEST_ID {
            count += 1;
            same &= *v == id;
            // Unique per request: never indexed by HPACK, whichever value stays (`h2` does
            // not mark the values it decodes).
            v.set_sensitive(true);
        }
    }
    if count != 1 || !same {
        crate::telemetry::propagation::set_counted(headers, X_REQUEST_ID, id, count.min(2));
    }
}

/// Whether this header block is the first of its HTTP/2 connection (`seeded`: one flag per
/// connection), the one that seeds HPACK's table ([`seed_hpack_names`]).
pub fn first_block(seeded: &std::sync::atomic::AtomicBool) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    !seeded.load(Relaxed) && !seeded.swap(true, Relaxed)
}

/// Lets the unique ids of this header block (`x-request-id`, `traceparent`) be indexed by
/// HPACK, so that their *names* enter the connection's dynamic table.
///
/// The ids are sent never-indexed (a unique value would only churn the table), and HPACK has
/// no way to index a name alone: until a value of the name has been indexed, every block
/// carries the name as a literal, Huffman-coded by the sender and decoded, parsed and
/// allocated by the receiver. Once one value is in the table, `h2` sends the never-indexed
/// values with the table's name (one byte).
///
/// Once per connection: `h2` compares a value with every table entry of its name, so entries
/// seeded again and again would make each lookup longer. A name evicted later by other
/// entries goes back to literals, as without the seed.
pub fn seed_hpack_names(headers: &mut HeaderMap) {
    for (k, v) in headers.iter_mut() {
        if k == X_REQUEST_ID || k == crate::telemetry::propagation::TRACEPARENT {
            v.set_sensitive(false);
        }
    }
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
    // One pass over the fields finds the first value and counts them (no hashed lookup).
    let (mut first, mut count) = (None, 0);
    for (k, v) in headers.iter() {
        if k == X_FORWARDED_FOR {
            first = first.or(Some(v));
            count += 1;
        }
    }
    let value = match first.and_then(|v| v.to_str().ok()) {
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
    crate::telemetry::propagation::set_counted(headers, X_FORWARDED_FOR, value, count.min(2));
}

/// A client address as a header value.
pub fn peer_value(peer: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.to_string()).expect("an IP address is a valid header value")
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
    fn a_response_is_stripped_and_marked_in_one_pass() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        assert!(finish_response(&mut h, false));
        assert!(h.get(header::CONNECTION).is_none());
        assert_eq!(h[X_ACCEL_BUFFERING], "no");

        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!finish_response(&mut h, false));
        assert!(h.get(X_ACCEL_BUFFERING).is_none() && h.get(header::UPGRADE).is_none());

        // A 101 keeps what the upgrade needs.
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        assert!(!finish_response(&mut h, true));
        assert_eq!(h[header::UPGRADE], "websocket");
        assert_eq!(h[header::CONNECTION], "upgrade");
    }

    #[test]
    fn only_the_first_block_seeds_and_only_the_ids_become_indexable() {
        let seeded = std::sync::atomic::AtomicBool::new(false);
        assert!(first_block(&seeded));
        assert!(!first_block(&seeded) && !first_block(&seeded));

        let mut h = HeaderMap::new();
        let mut secret = HeaderValue::from_static("Bearer x");
        secret.set_sensitive(true);
        h.insert(header::AUTHORIZATION, secret);
        h.insert(X_REQUEST_ID, new_request_id());
        h.insert(crate::telemetry::propagation::TRACEPARENT, {
            crate::telemetry::propagation::unique(
                b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
        });
        seed_hpack_names(&mut h);
        assert!(!h[X_REQUEST_ID].is_sensitive());
        assert!(!h[crate::telemetry::propagation::TRACEPARENT].is_sensitive());
        assert!(
            h[header::AUTHORIZATION].is_sensitive(),
            "other fields keep their flag"
        );
    }

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
    fn every_hop_by_hop_name_has_its_own_bit() {
        let names = [
            header::CONNECTION,
            KEEP_ALIVE,
            PROXY_CONNECTION,
            header::TE,
            header::TRAILER,
            header::TRANSFER_ENCODING,
            header::UPGRADE,
            header::PROXY_AUTHORIZATION,
            header::PROXY_AUTHENTICATE,
        ];
        let bits: Vec<u16> = names.iter().map(hop_bit).collect();
        assert!(bits.iter().all(|b| b.count_ones() == 1), "{bits:?}");
        assert_eq!(bits.iter().fold(0, |a, b| a | b).count_ones(), 9);
        for other in [
            header::HOST,
            header::USER_AGENT,
            header::CONTENT_TYPE,
            HeaderName::from_static("keep-alivx"),
            HeaderName::from_static("tf"),
            X_REQUEST_ID,
        ] {
            assert_eq!(hop_bit(&other), 0, "{other}");
        }
    }

    #[test]
    fn request_ids_are_kept_or_generated() {
        let mut h = HeaderMap::new();
        let a = ensure_request_id(&mut h);
        assert_eq!(a.len(), 32);
        assert_eq!(ensure_request_id(&mut h), a);
        assert_ne!(new_request_id(), a);
        // A client's id is kept (and sent never-indexed); an empty one is replaced, alone.
        let mut h = HeaderMap::new();
        h.append(X_REQUEST_ID, HeaderValue::from_static("client-id"));
        let kept = ensure_request_id(&mut h);
        assert_eq!(kept, "client-id");
        assert!(h.get(X_REQUEST_ID).unwrap().is_sensitive());
        let mut h = HeaderMap::new();
        h.append(X_REQUEST_ID, HeaderValue::from_static(""));
        h.append(X_REQUEST_ID, HeaderValue::from_static("second"));
        let made = ensure_request_id(&mut h);
        assert_eq!(made.len(), 32);
        assert_eq!(h.get_all(X_REQUEST_ID).iter().collect::<Vec<_>>(), [&made]);
    }

    #[test]
    fn the_echoed_request_id_stands_alone_on_the_response() {
        let id = new_request_id();
        let ids = |h: &HeaderMap| h.get_all(X_REQUEST_ID).iter().cloned().collect::<Vec<_>>();
        // Absent: added.
        let mut h = HeaderMap::new();
        h.append(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        echo_request_id(&mut h, id.clone());
        assert_eq!(ids(&h), std::slice::from_ref(&id));
        // The same id, as an upstream sidecar echoes it: kept.
        echo_request_id(&mut h, id.clone());
        assert_eq!(ids(&h), std::slice::from_ref(&id));
        // Another id, the same id as decoded (not marked never-indexed), or several values:
        // one value, this id, never indexed.
        for upstream in [
            vec![HeaderValue::from_static("other")],
            vec![HeaderValue::from_bytes(id.as_bytes()).unwrap()],
            vec![id.clone(), HeaderValue::from_static("other")],
        ] {
            let mut h = HeaderMap::new();
            for v in upstream {
                h.append(X_REQUEST_ID, v);
            }
            echo_request_id(&mut h, id.clone());
            assert_eq!(ids(&h), std::slice::from_ref(&id));
            assert!(h.get(X_REQUEST_ID).unwrap().is_sensitive());
        }
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, &peer_value("10.0.0.1".parse().unwrap()));
        append_forwarded_for(&mut h, &peer_value("127.0.0.1".parse().unwrap()));
        assert_eq!(h.get(&X_FORWARDED_FOR).unwrap(), "10.0.0.1, 127.0.0.1");
        // Repeated fields: the first one is extended, and it stands alone.
        let mut h = HeaderMap::new();
        h.append(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        h.append(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2"));
        append_forwarded_for(&mut h, &peer_value("127.0.0.1".parse().unwrap()));
        let all: Vec<_> = h.get_all(&X_FORWARDED_FOR).iter().collect();
        assert_eq!(all, ["10.0.0.1, 127.0.0.1"]);
    }
}
