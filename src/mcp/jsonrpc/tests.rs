use std::borrow::Cow;

use super::*;

fn single(body: &str) -> Fields<'_> {
    match parse(body.as_bytes()).unwrap() {
        Parsed::Single(f) => f,
        other => panic!("{other:?}"),
    }
}

#[test]
fn reads_only_the_envelope() {
    let f = single(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_x","arguments":{"big":[1,2,{"name":"inner"}]},"uri":"file:///a","_meta":{"traceparent":"00-ab-cd-01","other":1}},"extra":true}"#,
    );
    assert!(f.object);
    assert_eq!(f.jsonrpc, Some(Str::Str("2.0".into())));
    assert_eq!(f.id, Some(Id::U64(1)));
    assert_eq!(f.method, Some(Str::Str("tools/call".into())));
    let p = f.params.unwrap();
    assert_eq!(p.name, Some(Str::Str("get_x".into())));
    assert_eq!(p.uri, Some(Str::Str("file:///a".into())));
    assert_eq!(p.traceparent, Some(Str::Str("00-ab-cd-01".into())));
}

#[test]
fn strings_borrow_unless_escaped() {
    let f = single(r#"{"method":"a\/b","params":{"name":"plain"}}"#);
    assert!(matches!(f.method, Some(Str::Str(Cow::Owned(ref s))) if s == "a/b"));
    assert!(matches!(
        f.params.unwrap().name,
        Some(Str::Str(Cow::Borrowed("plain")))
    ));
}

#[test]
fn shapes_are_recorded_not_rejected() {
    let f = single(r#"{"method":5,"id":{"a":1},"params":[1,2],"result":null}"#);
    assert_eq!(f.method, Some(Str::NotStr));
    assert_eq!(f.id, Some(Id::Invalid));
    assert!(f.params.is_some());
    assert!(f.has_result && !f.has_error);
    let f = single(r#"{"params":{"name":7,"_meta":"x"}}"#);
    let p = f.params.unwrap();
    assert_eq!(p.name, Some(Str::NotStr));
    assert_eq!(p.traceparent, None);
    for (body, id) in [
        ("-3", Id::I64(-3)),
        ("2.5", Id::F64(2.5)),
        ("null", Id::Null),
        ("true", Id::Invalid),
        ("[1]", Id::Invalid),
    ] {
        assert_eq!(single(&format!(r#"{{"id":{body}}}"#)).id, Some(id));
    }
}

#[test]
fn batches_and_non_objects() {
    match parse(br#"[{"method":"ping"}, 3, "x", [], {"id":2}]"#).unwrap() {
        Parsed::Batch(v) => {
            assert_eq!(v.len(), 5);
            assert_eq!(
                v.iter().map(|f| f.object).collect::<Vec<_>>(),
                [true, false, false, false, true]
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(parse(b"[]").unwrap(), Parsed::Batch(v) if v.is_empty()));
    for body in [
        &b""[..],
        b"3",
        b"\"s\"",
        b"null",
        b"{",
        b"{} x",
        b"{\"a\":}",
        b"\xff",
    ] {
        assert!(matches!(parse(body).unwrap(), Parsed::NotJson), "{body:?}");
    }
}

#[test]
fn duplicate_read_keys_are_errors() {
    for (body, key) in [
        (r#"{"method":"tools/list","method":"tools/call"}"#, "method"),
        (r#"{"id":1,"id":2}"#, "id"),
        (r#"{"jsonrpc":"2.0","jsonrpc":"2.0"}"#, "jsonrpc"),
        (r#"{"params":{},"params":{}}"#, "params"),
        (r#"{"result":1,"result":2}"#, "result"),
        (r#"{"params":{"name":"a","name":"b"}}"#, "params.name"),
        (r#"{"params":{"uri":"a","uri":"b"}}"#, "params.uri"),
        (r#"{"params":{"_meta":{},"_meta":{}}}"#, "params._meta"),
        (
            r#"{"params":{"_meta":{"traceparent":"a","traceparent":"b"}}}"#,
            "params._meta.traceparent",
        ),
        (r#"[{"id":1},{"method":"a","meth\u006fd":"b"}]"#, "method"),
    ] {
        assert_eq!(
            parse(body.as_bytes()).unwrap_err(),
            Duplicate(key),
            "{body}"
        );
    }
    // Keys outrider does not read may repeat; nested objects are separate scopes.
    assert!(parse(br#"{"x":1,"x":2,"params":{"arguments":{"name":1},"name":"n"}}"#).is_ok());
}
