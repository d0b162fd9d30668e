use http::{HeaderMap, HeaderValue};

use super::*;
use crate::mcp::classify;

fn body(b: &str) -> Classification {
    let ct = HeaderValue::from_static("application/json");
    classify(Some(&ct), b.as_bytes()).unwrap().unwrap()
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_bytes(v.as_bytes()).unwrap());
    }
    h
}

const CALL: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather"}}"#;

#[test]
fn absent_headers_always_agree() {
    assert_eq!(check_headers(&HeaderMap::new(), &body(CALL)), Ok(()));
    assert_eq!(from_headers(&HeaderMap::new()), Ok(None));
}

#[test]
fn agreeing_headers_pass() {
    let c = body(CALL);
    for h in [
        headers(&[("mcp-method", "tools/call"), ("mcp-name", "get_weather")]),
        headers(&[("Mcp-Method", "tools/call")]),
        headers(&[("MCP-NAME", "get_weather")]),
        headers(&[
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?Z2V0X3dlYXRoZXI=?="),
        ]),
        headers(&[("mcp-name", "=?base64?Z2V0X3dlYXRoZXI?=")]),
    ] {
        assert_eq!(check_headers(&h, &c), Ok(()), "{h:?}");
    }
    let read = body(
        r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a b"}}"#,
    );
    let h = headers(&[
        ("mcp-method", "resources/read"),
        ("mcp-name", "file:///a b"),
    ]);
    assert_eq!(check_headers(&h, &read), Ok(()));
    let note = body(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    assert_eq!(
        check_headers(
            &headers(&[("mcp-method", "notifications/initialized")]),
            &note
        ),
        Ok(())
    );
    // Clients mirror params.uri for resources/subscribe too.
    let sub =
        body(r#"{"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri":"f://x"}}"#);
    let h = headers(&[("mcp-method", "resources/subscribe"), ("mcp-name", "f://x")]);
    assert_eq!(check_headers(&h, &sub), Ok(()));
}

#[test]
fn non_ascii_names_arrive_base64_encoded() {
    let c =
        body(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"Hello, 世界"}}"#);
    let h = headers(&[("mcp-name", "=?base64?SGVsbG8sIOS4lueVjA==?=")]);
    assert_eq!(check_headers(&h, &c), Ok(()));
    // A literal that looks like the sentinel is itself encoded by clients.
    let c = body(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"=?base64?literal?="}}"#,
    );
    let h = headers(&[("mcp-name", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=")]);
    assert_eq!(check_headers(&h, &c), Ok(()));
}

#[test]
fn header_disagreeing_with_body_is_a_mismatch() {
    let differs_method = Err(Mismatch::Differs {
        header: "Mcp-Method",
    });
    let differs_name = Err(Mismatch::Differs { header: "Mcp-Name" });
    let c = body(CALL);
    // Header says something else than the body...
    assert_eq!(
        check_headers(&headers(&[("mcp-method", "tools/list")]), &c),
        differs_method
    );
    assert_eq!(
        check_headers(&headers(&[("mcp-method", "Tools/Call")]), &c),
        differs_method
    );
    assert_eq!(
        check_headers(&headers(&[("mcp-name", "delete_all")]), &c),
        differs_name
    );
    assert_eq!(
        check_headers(&headers(&[("mcp-name", "=?base64?ZGVsZXRl?=")]), &c),
        differs_name
    );
    // ...or names something the body does not (and the other way round).
    let list = body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    assert_eq!(
        check_headers(&headers(&[("mcp-name", "get_weather")]), &list),
        differs_name
    );
    let nameless = body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#);
    assert_eq!(
        check_headers(&headers(&[("mcp-name", "get_weather")]), &nameless),
        differs_name
    );
    // Body says tools/call, header says tools/list: policy on the header would be fooled.
    let h = headers(&[("mcp-method", "tools/list")]);
    assert_eq!(check_headers(&h, &c), differs_method);
    // A response has no method.
    let resp = body(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
    assert_eq!(
        check_headers(&headers(&[("mcp-method", "tools/call")]), &resp),
        differs_method
    );
}

#[test]
fn batches_must_agree_element_by_element() {
    let uniform = body(
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#,
    );
    assert_eq!(
        check_headers(&headers(&[("mcp-method", "ping")]), &uniform),
        Ok(())
    );
    let mixed = body(&format!(
        r#"[{CALL},{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"evil"}}}}]"#
    ));
    let h = headers(&[("mcp-method", "tools/call"), ("mcp-name", "get_weather")]);
    assert_eq!(
        check_headers(&h, &mixed),
        Err(Mismatch::Differs { header: "Mcp-Name" })
    );
}

#[test]
fn malformed_and_repeated_headers() {
    let c = body(CALL);
    let h = headers(&[("mcp-name", "=?base64?***?=")]);
    assert_eq!(
        check_headers(&h, &c),
        Err(Mismatch::Malformed { header: "Mcp-Name" })
    );
    let h = headers(&[("mcp-name", "=?base64?/w==?=")]); // 0xff: not UTF-8
    assert_eq!(
        check_headers(&h, &c),
        Err(Mismatch::Malformed { header: "Mcp-Name" })
    );
    let h = headers(&[("mcp-name", "get_w\u{e9}ather")]); // obs-text
    assert_eq!(
        check_headers(&h, &c),
        Err(Mismatch::Malformed { header: "Mcp-Name" })
    );
    let h = headers(&[("mcp-method", "tools/call"), ("mcp-method", "tools/call")]);
    assert_eq!(
        check_headers(&h, &c),
        Err(Mismatch::Repeated {
            header: "Mcp-Method"
        })
    );
    assert_eq!(
        from_headers(&h),
        Err(Mismatch::Repeated {
            header: "Mcp-Method"
        })
    );
}

#[test]
fn header_only_classification() {
    let h = headers(&[("mcp-method", "tools/call"), ("mcp-name", "get_weather")]);
    let c = from_headers(&h).unwrap().unwrap();
    assert_eq!(c.origin(), crate::mcp::Origin::Headers);
    let m = c.single().unwrap();
    assert_eq!((m.kind(), m.id()), (Kind::Request, None));
    assert_eq!(m.method(), Some(Method::ToolsCall));
    assert_eq!(m.name(), Some("get_weather"));
    assert_eq!(c.method_label(), "tools/call");
    assert_eq!(check_headers(&h, &c), Ok(()));

    let h = headers(&[
        ("mcp-method", "resources/read"),
        ("mcp-name", "=?base64?ZmlsZTovLy/DqQ==?="),
    ]);
    let c = from_headers(&h).unwrap().unwrap();
    assert_eq!(c.single().unwrap().name(), Some("file:///é"));

    let h = headers(&[("mcp-method", "notifications/initialized")]);
    let c = from_headers(&h).unwrap().unwrap();
    assert_eq!(c.single().unwrap().kind(), Kind::Notification);

    let h = headers(&[("mcp-method", "vendor/x")]);
    let c = from_headers(&h).unwrap().unwrap();
    assert_eq!(c.single().unwrap().method_str(), Some("vendor/x"));
    assert_eq!(c.method_label(), "_other");

    assert_eq!(from_headers(&headers(&[("mcp-name", "x")])), Ok(None));
}

#[test]
fn base64_decoding() {
    for (enc, dec) in [
        ("", ""),
        ("YQ", "a"),
        ("YQ==", "a"),
        ("YWI=", "ab"),
        ("YWJj", "abc"),
        ("PT9iYXNlNjQ/bGl0ZXJhbD89", "=?base64?literal?="),
    ] {
        assert_eq!(
            base64_decode(enc.as_bytes()).unwrap(),
            dec.as_bytes(),
            "{enc}"
        );
    }
    for bad in ["Y", "YWJjZ", "Y-==", "YQ=a"] {
        assert_eq!(base64_decode(bad.as_bytes()), None, "{bad}");
    }
    assert_eq!(decode_value("plain").unwrap(), "plain");
    assert_eq!(decode_value("=?base64?").unwrap(), "=?base64?");
}

#[test]
fn headers_on_an_unclassifiable_body_are_a_mismatch() {
    assert_eq!(check_unclassified(&HeaderMap::new()), Ok(()));
    let h = headers(&[("mcp-method", "tools/call"), ("mcp-name", "get_x")]);
    assert_eq!(
        check_unclassified(&h),
        Err(Mismatch::Differs {
            header: "Mcp-Method"
        })
    );
    let h = headers(&[("mcp-name", "get_x")]);
    assert_eq!(
        check_unclassified(&h),
        Err(Mismatch::Differs { header: "Mcp-Name" })
    );
    let h = headers(&[("mcp-name", "=?base64?***?=")]);
    assert_eq!(
        check_unclassified(&h),
        Err(Mismatch::Malformed { header: "Mcp-Name" })
    );
}
