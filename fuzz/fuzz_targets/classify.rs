//! Fuzz the MCP classifier: arbitrary content types and bodies must never panic, must classify
//! the same way twice (a pure function of the bytes), and everything derived from a
//! classification (exact ids, error bodies, header checks, policy) must stay well-formed.
//!
//! Input layout: byte 0 picks a content type, byte 1 picks routing headers, the rest is the body.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use outrider::mcp::{self, McpMatch};

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "text/plain",
    "application/json-seq",
];

const METHODS: &[&str] = &["tools/call", "tools/list", "resources/read", "ping"];
const NAMES: &[&str] = &["get_x", "=?base64?Z2V0X3g=?=", "=?base64?***?=", "file:///a"];

fuzz_target!(|data: &[u8]| {
    let [ct, hdr, body @ ..] = data else { return };
    let ct = CONTENT_TYPES
        .get(usize::from(*ct))
        .map(|s| HeaderValue::from_static(s));
    let before = body.to_vec();
    let first = mcp::classify(ct.as_ref(), body);
    assert_eq!(body, &before[..], "classification never alters the body");
    assert_eq!(first, mcp::classify(ct.as_ref(), body), "pure function of bytes");

    let Ok(Some(c)) = first else { return };
    assert!(!c.messages().is_empty());
    for id in c.ids() {
        let body = mcp::error_body(id, mcp::PROXY_ERROR, "x", "timeout");
        serde_json_valid(&body);
    }
    if let Some(b) = mcp::error_body_for(&c, mcp::HEADER_MISMATCH, "m", "header-mismatch") {
        serde_json_valid(&b);
    }

    let mut headers = HeaderMap::new();
    headers.insert("mcp-method", HeaderValue::from_static(METHODS[usize::from(hdr & 3)]));
    if hdr & 4 != 0 {
        let name = NAMES[usize::from((hdr >> 3) & 3)];
        headers.insert("mcp-name", HeaderValue::from_static(name));
    }
    let _ = mcp::check_headers(&headers, &c);

    let rule = McpMatch::new(&["tools/*", "initialize"], &["get_*"]).expect("valid globs");
    let all = rule.matches(&c);
    assert_eq!(all, rule.first_refused(&c).is_none());
    let _ = mcp::is_idempotent(&c, &rule.tools);
    let _ = (c.method_label(), c.tool_label(), c.meta_traceparent());
});

fn serde_json_valid(b: &[u8]) {
    serde_json::from_slice::<serde_json::Value>(b).expect("error bodies are valid JSON");
}
