//! JSON-RPC error bodies for proxy-generated failures (SPEC §6).
//!
//! Owns: the exact bytes of `{"jsonrpc":"2.0","id":ID,"error":{"code":C,"message":"outrider: …",
//! "data":{"reason":"…"}}}` and the codes outrider uses. Does not own: choosing the status,
//! reason or message (`proxy::rescue`), or the `x-outrider-error` header.
//!
//! Batches: a refused or failed batch gets a JSON array with one such error per element that has
//! an id, in body order, all with the same code and reason (the batch fails as a whole).
//! Notifications get no entry (JSON-RPC never answers them); when no element has an id,
//! [`error_body_for`] returns `None` and the caller answers with the plain-text body.

use bytes::Bytes;

use super::classify::{Classification, RawId};

/// Implementation-defined server error used for every proxy failure (SPEC §6).
pub const PROXY_ERROR: i32 = -32000;
/// MCP 2026-07-28 HeaderMismatch: routing headers disagree with the body (HTTP 400).
pub const HEADER_MISMATCH: i32 = -32020;
/// `data.reason` for [`HEADER_MISMATCH`] (not one of SPEC §6's proxy failure reasons).
pub const HEADER_MISMATCH_REASON: &str = "header-mismatch";

/// The prefix of every message, so clients can tell proxy errors from server errors.
const PREFIX: &str = "outrider: ";

/// One error object for `id`. `message` is the text after `outrider: ` and is JSON-escaped,
/// as is `reason`; the id is echoed exactly as the client wrote it.
pub fn error_body(id: &RawId, code: i32, message: &str, reason: &str) -> Bytes {
    let mut out = Vec::with_capacity(96 + id.as_str().len() + message.len() + reason.len());
    write_error(&mut out, id, code, message, reason);
    Bytes::from(out)
}

/// The body for a classified request: one error object for a non-batch request with an id,
/// an array for a batch with at least one id, else `None` (answer in plain text).
pub fn error_body_for(c: &Classification, code: i32, message: &str, reason: &str) -> Option<Bytes> {
    if !c.is_batch() {
        return c
            .single()
            .and_then(|m| m.id())
            .map(|id| error_body(id, code, message, reason));
    }
    let mut ids = c.ids().peekable();
    ids.peek()?;
    let mut out = Vec::with_capacity(128);
    out.push(b'[');
    for (i, id) in ids.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_error(&mut out, id, code, message, reason);
    }
    out.push(b']');
    Some(Bytes::from(out))
}

fn write_error(out: &mut Vec<u8>, id: &RawId, code: i32, message: &str, reason: &str) {
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id.as_str().as_bytes());
    out.extend_from_slice(br#","error":{"code":"#);
    out.extend_from_slice(code.to_string().as_bytes());
    out.extend_from_slice(br#","message":""#);
    out.extend_from_slice(PREFIX.as_bytes());
    // The quoted, escaped message without its opening quote.
    let quoted = json_string(message);
    out.extend_from_slice(&quoted.as_bytes()[1..]);
    out.extend_from_slice(br#","data":{"reason":"#);
    out.extend_from_slice(json_string(reason).as_bytes());
    out.extend_from_slice(b"}}}");
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("serialising a str to JSON cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::classify;
    use http::HeaderValue;

    fn classified(body: &str) -> Classification {
        let ct = HeaderValue::from_static("application/json");
        classify(Some(&ct), body.as_bytes()).unwrap().unwrap()
    }

    fn id_of(body: &str) -> RawId {
        classified(body).messages()[0].id().unwrap().clone()
    }

    #[test]
    fn exact_bytes_of_spec_example() {
        let id = id_of(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#);
        let body = error_body(
            &id,
            PROXY_ERROR,
            "circuit open for backend student-profiling",
            "circuit-open",
        );
        assert_eq!(
            &body[..],
            br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32000,"message":"outrider: circuit open for backend student-profiling","data":{"reason":"circuit-open"}}}"#
        );
    }

    #[test]
    fn ids_are_echoed_verbatim_and_text_is_escaped() {
        for (raw, echoed) in [
            (r#""abc""#, r#""abc""#),
            (r#""a\u0041\"b""#, r#""a\u0041\"b""#),
            ("null", "null"),
            ("-12", "-12"),
            ("1.50", "1.50"),
            ("1E3", "1E3"),
            ("18446744073709551616", "18446744073709551616"),
        ] {
            let id = id_of(&format!(
                r#"{{"jsonrpc":"2.0","id":{raw},"method":"ping"}}"#
            ));
            assert_eq!(id.as_str(), echoed);
            let body = error_body(&id, HEADER_MISMATCH, "tool \"x\"\n refused", "forbidden");
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"]["message"], "outrider: tool \"x\"\n refused");
            assert_eq!(v["error"]["code"], -32020);
            assert_eq!(v["error"]["data"]["reason"], "forbidden");
            let text = std::str::from_utf8(&body).unwrap();
            assert!(text.contains(&format!(r#""id":{echoed},"#)), "{text}");
        }
        let null = error_body(&RawId::null(), PROXY_ERROR, "m", "timeout");
        assert!(null.starts_with(br#"{"jsonrpc":"2.0","id":null,"#));
    }

    #[test]
    fn batches_answer_each_id_and_notifications_get_nothing() {
        let c = classified(
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},
                {"jsonrpc":"2.0","method":"notifications/initialized"},
                {"jsonrpc":"2.0","id":"b","method":"tools/list"}]"#,
        );
        let body = error_body_for(&c, PROXY_ERROR, "timed out", "timeout").unwrap();
        let one = |id: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32000,"message":"outrider: timed out","data":{{"reason":"timeout"}}}}}}"#
            )
        };
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            format!("[{},{}]", one("1"), one(r#""b""#))
        );

        let notes = classified(r#"[{"jsonrpc":"2.0","method":"notifications/initialized"}]"#);
        assert_eq!(error_body_for(&notes, PROXY_ERROR, "x", "timeout"), None);
        let note = classified(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(error_body_for(&note, PROXY_ERROR, "x", "timeout"), None);
        let single = classified(r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#);
        assert_eq!(
            error_body_for(&single, PROXY_ERROR, "timed out", "timeout").unwrap(),
            Bytes::from(one("3"))
        );
    }
}
