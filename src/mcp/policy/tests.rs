use glob::Pattern;
use http::HeaderValue;

use super::*;
use crate::mcp::classify;

fn body(b: &str) -> Classification {
    let ct = HeaderValue::from_static("application/json");
    classify(Some(&ct), b.as_bytes()).unwrap().unwrap()
}

fn req(method: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#)
}

fn call(tool: &str) -> String {
    req("tools/call", &format!(r#"{{"name":"{tool}"}}"#))
}

fn m(methods: &[&str], tools: &[&str]) -> McpMatch {
    McpMatch::new(methods, tools).unwrap()
}

/// SPEC §3 example rule: alerts-readonly.
fn alerts() -> McpMatch {
    m(
        &[
            "initialize",
            "notifications/initialized",
            "tools/list",
            "tools/call",
        ],
        &["get_*", "analyze_text"],
    )
}

#[test]
fn spec_truth_table() {
    let rule = alerts();
    let rows: &[(String, bool)] = &[
        (call("get_profile"), true),
        (call("analyze_text"), true),
        (call("analyze_text_v2"), false),
        (call("delete_student"), false),
        (call("Get_profile"), false),
        (req("tools/call", "{}"), false), // naming method without a name
        (req("tools/call", r#"{"name":4}"#), false),
        (req("tools/list", "{}"), true), // not naming: methods alone
        (req("initialize", r#"{"name":"delete_x"}"#), true), // params.name ignored for others
        (
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.into(),
            true,
        ),
        (req("prompts/get", r#"{"name":"get_p"}"#), false), // method not listed
        (req("resources/read", r#"{"uri":"get_x"}"#), false),
        (req("ping", "{}"), false),
        (r#"{"jsonrpc":"2.0","id":1,"result":{}}"#.into(), false), // response: no method
    ];
    for (b, expected) in rows {
        assert_eq!(rule.matches(&body(b)), *expected, "{b}");
    }
}

#[test]
fn tools_apply_to_tools_resources_and_prompts_alike() {
    let rule = m(&[], &["get_*", "file:///public/*"]);
    for (b, expected) in [
        (call("get_x"), true),
        (call("set_x"), false),
        (req("prompts/get", r#"{"name":"get_summary"}"#), true),
        (req("prompts/get", r#"{"name":"summary"}"#), false),
        (
            req("resources/read", r#"{"uri":"file:///public/a/b.txt"}"#),
            true,
        ),
        (
            req("resources/read", r#"{"uri":"file:///secret/a"}"#),
            false,
        ),
        (req("resources/read", r#"{"name":"get_x"}"#), false), // uri, not name
        (
            req("resources/subscribe", r#"{"uri":"file:///secret/a"}"#),
            true,
        ), // not naming
        (req("tools/list", "{}"), true),
        (r#"{"jsonrpc":"2.0","id":1,"result":{}}"#.into(), true),
    ] {
        assert_eq!(rule.matches(&body(&b)), expected, "{b}");
    }
}

#[test]
fn method_globs_and_empty_lists() {
    let any = McpMatch::default();
    assert!(any.is_unconstrained());
    assert!(any.matches(&body(&call("anything"))));
    assert!(any.matches_opt(None));

    let notes = m(&["notifications/*"], &[]);
    assert!(notes.matches(&body(
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled"}"#
    )));
    assert!(!notes.matches(&body(&call("x"))));
    assert!(!notes.matches_opt(None));

    let star = m(&["*"], &[]);
    assert!(star.matches(&body(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#)));
    assert!(star.matches(&body(&req("vendor/x", "{}"))));

    let tools_only = m(&[], &["get_*"]);
    assert!(
        !tools_only.matches_opt(None),
        "unclassified never satisfies a condition"
    );
    assert!(McpMatch::new(&["["], &[] as &[&str]).is_err());
}

#[test]
fn batches_need_every_element() {
    let rule = alerts();
    let ok = format!("[{},{}]", call("get_a"), req("tools/list", "{}"));
    assert!(rule.matches(&body(&ok)));
    let smuggled = format!("[{},{}]", call("get_a"), call("delete_all"));
    let c = body(&smuggled);
    assert!(!rule.matches(&c));
    assert_eq!(rule.first_refused(&c).unwrap().name(), Some("delete_all"));
    assert!(rule.first_refused(&body(&ok)).is_none());
}

#[test]
fn header_only_classifications_match_the_same_way() {
    let mut h = http::HeaderMap::new();
    h.insert("mcp-method", HeaderValue::from_static("tools/call"));
    h.insert("mcp-name", HeaderValue::from_static("get_x"));
    let c = crate::mcp::from_headers(&h).unwrap().unwrap();
    assert!(alerts().matches(&c));
    h.insert("mcp-name", HeaderValue::from_static("drop_x"));
    let c = crate::mcp::from_headers(&h).unwrap().unwrap();
    assert!(!alerts().matches(&c));
}

#[test]
fn idempotency_table() {
    let listed = [Pattern::new("analyze_*").unwrap()];
    let rows: &[(String, bool)] = &[
        (req("tools/list", "{}"), true),
        (req("resources/list", "{}"), true),
        (req("resources/read", r#"{"uri":"x"}"#), true),
        (req("prompts/list", "{}"), true),
        (req("prompts/get", r#"{"name":"p"}"#), true),
        (req("server/discover", "{}"), true),
        (req("ping", "{}"), true),
        (call("analyze_text"), true),
        (call("delete_student"), false),
        (req("tools/call", "{}"), false),
        (req("initialize", "{}"), false),
        (req("resources/subscribe", r#"{"uri":"x"}"#), false),
        (req("completion/complete", "{}"), false),
        (req("logging/setLevel", "{}"), false),
        (req("subscriptions/listen", "{}"), false),
        (req("vendor/x", "{}"), false),
        (
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.into(),
            false,
        ),
        (r#"{"jsonrpc":"2.0","id":1,"result":{}}"#.into(), false),
        (
            format!("[{},{}]", req("tools/list", "{}"), call("analyze_x")),
            true,
        ),
        (
            format!("[{},{}]", req("tools/list", "{}"), call("write_x")),
            false,
        ),
    ];
    for (b, expected) in rows {
        assert_eq!(is_idempotent(&body(b), &listed), *expected, "{b}");
    }
    assert!(
        !is_idempotent(&body(&call("analyze_text")), &[]),
        "annotations never count"
    );
}
