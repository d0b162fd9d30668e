use http::HeaderValue;

use super::*;

fn json() -> HeaderValue {
    HeaderValue::from_static("application/json")
}

fn one(body: &str) -> Message {
    let c = classify(Some(&json()), body.as_bytes()).unwrap().unwrap();
    assert!(!c.is_batch());
    assert_eq!(c.origin(), Origin::Body);
    c.single().unwrap().clone()
}

fn none(ct: Option<&HeaderValue>, body: &[u8]) {
    assert_eq!(
        classify(ct, body),
        Ok(None),
        "{:?}",
        String::from_utf8_lossy(body)
    );
}

#[test]
fn method_and_name_of_every_method() {
    for m in Method::all() {
        let wire = m.wire_name().unwrap();
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"{wire}","params":{{"name":"n","uri":"u://x"}}}}"#
        );
        let msg = one(&body);
        assert_eq!(msg.method(), Some(m));
        assert_eq!(msg.method_str(), Some(wire));
        let expected = match wire {
            "tools/call" | "prompts/get" => Some("n"),
            "resources/read" => Some("u://x"),
            _ => None,
        };
        assert_eq!(msg.name(), expected, "{wire}");
        assert_eq!(msg.names_something(), expected.is_some(), "{wire}");
        assert_eq!(msg.mirrored_name(), expected.or(Some("n")), "{wire}");
    }
}

#[test]
fn names_need_the_right_field_and_a_string() {
    let call = |params: &str| {
        one(&format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#
        ))
    };
    assert_eq!(call(r#"{"uri":"x"}"#).name(), None);
    assert_eq!(call(r#"{"name":3}"#).name(), None);
    assert_eq!(call(r#"["get_x"]"#).name(), None);
    assert_eq!(call(r#"{"name":"a\u00e9\n"}"#).name(), Some("a\u{e9}\n"));
    let read = one(r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"x"}}"#);
    assert_eq!(read.name(), None);
    assert_eq!(read.mirrored_name(), None);
    let sub =
        one(r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"f://a"}}"#);
    assert_eq!(sub.name(), None);
    assert_eq!(sub.mirrored_name(), Some("f://a"));
}

#[test]
fn other_methods_keep_their_name_but_label_other() {
    let m = one(r#"{"jsonrpc":"2.0","id":1,"method":"vendor/thing","params":{"name":"t"}}"#);
    assert_eq!(m.method(), Some(Method::Other));
    assert_eq!(m.method_str(), Some("vendor/thing"));
    assert_eq!(m.name(), None);
    let c = classify(
        Some(&json()),
        br#"{"jsonrpc":"2.0","id":1,"method":"vendor/thing"}"#,
    )
    .unwrap()
    .unwrap();
    assert_eq!(c.method_label(), "_other");
}

#[test]
fn kinds_and_ids() {
    let n = one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    assert_eq!((n.kind(), n.id()), (Kind::Notification, None));
    let r = one(r#"{"jsonrpc":"2.0","id":"s-1","result":{"content":[]}}"#);
    assert_eq!(r.kind(), Kind::Response);
    assert_eq!(r.method(), None);
    assert_eq!(r.method_str(), None);
    assert_eq!(r.id().unwrap().as_str(), r#""s-1""#);
    let e = one(r#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"m"}}"#);
    assert_eq!(
        (e.kind(), e.id().unwrap().as_str()),
        (Kind::Response, "null")
    );
    for (raw, kind) in [
        ("0", Kind::Request),
        ("-7", Kind::Request),
        ("9007199254740993", Kind::Request),
        ("1.0", Kind::Request),
        ("-0", Kind::Request),
        (r#""""#, Kind::Request),
        (r#""\u00e9\ud83d\ude00""#, Kind::Request),
        ("null", Kind::Request),
    ] {
        let m = one(&format!(
            r#"{{"id" : {raw} ,"jsonrpc":"2.0","method":"ping"}}"#
        ));
        assert_eq!((m.kind(), m.id().unwrap().as_str()), (kind, raw));
    }
}

#[test]
fn not_json_rpc_passes_untouched() {
    let ct = json();
    let ct = Some(&ct);
    for body in [
        "",
        "not json",
        "{",
        r#"{"jsonrpc":"2.0","method":"ping"} trailing"#,
        "[]",
        "3",
        "{}",
        r#"{"method":"ping","id":1}"#,
        r#"{"jsonrpc":"1.0","method":"ping","id":1}"#,
        r#"{"jsonrpc":2.0,"method":"ping","id":1}"#,
        r#"{"jsonrpc":"2.0","method":7,"id":1}"#,
        r#"{"jsonrpc":"2.0","method":"ping","id":{"a":1}}"#,
        r#"{"jsonrpc":"2.0","method":"ping","id":true}"#,
        r#"{"jsonrpc":"2.0","id":1}"#,
        r#"{"jsonrpc":"2.0","result":1}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{}}"#,
        r#"[{"jsonrpc":"2.0","method":"ping","id":1},{"method":"tools/call","id":2}]"#,
        r#"[{"jsonrpc":"2.0","method":"ping","id":1},5]"#,
        r#"{"jsonrpc":"2.0","method":"tools/call","id":1,"params":{"name":"\ud800"}}"#,
        r#"{"jsonrpc":"2.0","method":"ping","id":1e400}"#,
    ] {
        none(ct, body.as_bytes());
    }
    none(ct, b"\xff\xfe{}");
}

#[test]
fn content_types() {
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    for ct in [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        " application/json ;x=y",
    ] {
        let v = HeaderValue::from_str(ct).unwrap();
        assert!(classify(Some(&v), body).unwrap().is_some(), "{ct}");
    }
    for ct in [
        "text/plain",
        "application/json-seq",
        "application/jsonx",
        "text/event-stream",
        "",
    ] {
        none(Some(&HeaderValue::from_str(ct).unwrap()), body);
    }
    none(None, body);
}

#[test]
fn duplicate_keys_are_refused() {
    let body =
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe","name":"evil"}}"#;
    assert_eq!(
        classify(Some(&json()), body),
        Err(ClassifyError::DuplicateKey("params.name"))
    );
}

#[test]
fn batches() {
    let body = br#"[
        {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","_meta":{"traceparent":"00-1-2-01"}}},
        {"jsonrpc":"2.0","method":"notifications/progress"},
        {"jsonrpc":"2.0","id":"r","result":{}}
    ]"#;
    let c = classify(Some(&json()), body).unwrap().unwrap();
    assert!(c.is_batch());
    assert_eq!(c.single(), None);
    let kinds: Vec<_> = c.messages().iter().map(Message::kind).collect();
    assert_eq!(kinds, [Kind::Request, Kind::Notification, Kind::Response]);
    let ids: Vec<_> = c.ids().map(RawId::as_str).collect();
    assert_eq!(ids, ["1", r#""r""#]);
    assert_eq!(c.method_label(), "_batch");
    assert_eq!(c.tool_label(), None);
    assert_eq!(c.meta_traceparent(), Some("00-1-2-01"));

    let c = classify(
        Some(&json()),
        br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
    )
    .unwrap()
    .unwrap();
    assert!(c.is_batch());
    assert_eq!(c.messages().len(), 1);
}

#[test]
fn labels_of_single_messages() {
    let c = |b: &str| classify(Some(&json()), b.as_bytes()).unwrap().unwrap();
    let call = c(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_x"}}"#);
    assert_eq!(
        (call.method_label(), call.tool_label()),
        ("tools/call", Some("get_x"))
    );
    let resp = c(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
    assert_eq!(
        (resp.method_label(), resp.tool_label()),
        ("_response", None)
    );
    assert_eq!(resp.meta_traceparent(), None);
}

/// A random message and what its classification must say.
struct Generated {
    json: String,
    kind: Kind,
    method: Option<String>,
    name: Option<String>,
    id: Option<String>,
}

const METHODS: &[&str] = &[
    "initialize",
    "tools/call",
    "tools/list",
    "resources/read",
    "prompts/get",
    "notifications/initialized",
    "vendor/x",
    "ping",
];

fn random_string(rng: &mut fastrand::Rng) -> String {
    let pool = ['a', 'Z', '_', '/', '"', '\\', '\n', 'é', '😀', ' ', '\u{1}'];
    (0..rng.usize(0..8))
        .map(|_| pool[rng.usize(..pool.len())])
        .collect()
}

fn generate(rng: &mut fastrand::Rng) -> Generated {
    let id = match rng.u8(0..5) {
        0 => None,
        1 => Some(rng.i64(..).to_string()),
        2 => Some(serde_json::to_string(&random_string(rng)).unwrap()),
        3 => Some("null".to_string()),
        _ => Some(format!("{}.5", rng.u16(..))),
    };
    let response = id.is_some() && rng.u8(0..6) == 0;
    let mut fields = vec![r#""jsonrpc":"2.0""#.to_string()];
    if let Some(id) = &id {
        fields.push(format!(r#""id":{id}"#));
    }
    let (kind, method, name) = if response {
        fields.push(r#""result":{"content":[{"type":"text","text":"x"}]}"#.into());
        (Kind::Response, None, None)
    } else {
        let method = METHODS[rng.usize(..METHODS.len())];
        fields.push(format!(r#""method":"{method}""#));
        let name = random_string(rng);
        let key = if rng.bool() { "name" } else { "uri" };
        let noise = "x".repeat(rng.usize(0..64));
        fields.push(format!(
            r#""params":{{"arguments":{{"name":"{noise}","n":[1,{{}}]}},"{key}":{}}}"#,
            serde_json::to_string(&name).unwrap()
        ));
        let expected = match (method, key) {
            ("tools/call" | "prompts/get", "name") | ("resources/read", "uri") => Some(name),
            _ => None,
        };
        let kind = if id.is_some() {
            Kind::Request
        } else {
            Kind::Notification
        };
        (kind, Some(method.to_string()), expected)
    };
    rng.shuffle(&mut fields);
    Generated {
        json: format!("{{{}}}", fields.join(",")),
        kind,
        method,
        name,
        id,
    }
}

fn check(g: &Generated, m: &Message) {
    assert_eq!(m.kind(), g.kind, "{}", g.json);
    assert_eq!(m.method_str().map(str::to_owned), g.method, "{}", g.json);
    assert_eq!(m.name().map(str::to_owned), g.name, "{}", g.json);
    assert_eq!(m.id().map(|i| i.as_str().to_owned()), g.id, "{}", g.json);
}

#[test]
fn random_messages_classify_as_generated() {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let ct = json();
    for _ in 0..2000 {
        let batch: Vec<Generated> = (0..rng.usize(1..4)).map(|_| generate(&mut rng)).collect();
        let as_batch = batch.len() > 1 || rng.bool();
        let body = if as_batch {
            format!(
                "[{}]",
                batch
                    .iter()
                    .map(|g| g.json.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        } else {
            batch[0].json.clone()
        };
        let before = body.clone().into_bytes();
        let c = classify(Some(&ct), body.as_bytes()).unwrap().unwrap();
        assert_eq!(body.as_bytes(), &before[..], "input is never altered");
        assert_eq!(c.is_batch(), as_batch);
        assert_eq!(c.messages().len(), batch.len());
        for (g, m) in batch.iter().zip(c.messages()) {
            check(g, m);
        }
        assert_eq!(
            classify(Some(&ct), body.as_bytes()),
            Ok(Some(c)),
            "pure function of bytes"
        );
    }
}

#[test]
fn random_mutations_never_panic_and_are_deterministic() {
    let mut rng = fastrand::Rng::with_seed(42);
    let ct = json();
    let interesting = b"{}[]\",:\\0123456789.eE-+ntrufals\x00\xff\xc3";
    for _ in 0..5000 {
        let mut body = generate(&mut rng).json.into_bytes();
        if rng.bool() {
            body = format!("[{}]", String::from_utf8_lossy(&body)).into_bytes();
        }
        for _ in 0..rng.usize(1..4) {
            match rng.u8(0..4) {
                0 if !body.is_empty() => {
                    let i = rng.usize(..body.len());
                    body[i] = interesting[rng.usize(..interesting.len())];
                }
                1 if !body.is_empty() => {
                    body.remove(rng.usize(..body.len()));
                }
                2 => {
                    let i = rng.usize(..=body.len());
                    body.insert(i, interesting[rng.usize(..interesting.len())]);
                }
                _ => body.truncate(rng.usize(..=body.len())),
            }
        }
        let before = body.clone();
        let first = classify(Some(&ct), &body);
        assert_eq!(body, before);
        assert_eq!(classify(Some(&ct), &body), first);
        if let Ok(Some(c)) = &first {
            // Every echoed id is valid JSON.
            for id in c.ids() {
                serde_json::from_str::<serde_json::Value>(id.as_str()).unwrap();
            }
        }
    }
}

pub(crate) mod props;
