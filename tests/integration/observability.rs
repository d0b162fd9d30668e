//! Trace propagation across two sidecars and the JSON access log (SPEC §3 `tracing`,
//! `access_log`, §6 headers).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::{eventually, TestProxy, Upstream};

const LISTENERS: &str = "admin: { listen: 127.0.0.1:0 }\nmetrics: { listen: 127.0.0.1:0 }\n";

fn log_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("outrider-it-obs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("{name}.log"));
    let _ = std::fs::remove_file(&p);
    p
}

/// App <- inbound sidecar B <- outbound sidecar A, both logging to files.
fn chain(app: &Upstream, extra: &str) -> (TestProxy, TestProxy, PathBuf, PathBuf) {
    let (la, lb) = (
        log_path(&format!("a-{}", app.addr.port())),
        log_path(&format!("b-{}", app.addr.port())),
    );
    let b = TestProxy::start(format!(
        "version: 1\n{LISTENERS}{extra}access_log: {{ path: \"{}\" }}\ninbound: {{ listen: 127.0.0.1:0, app: \"{}\" }}\n",
        lb.display(),
        app.addr
    ));
    let a = TestProxy::start(format!(
        "version: 1\n{LISTENERS}{extra}access_log: {{ path: \"{}\" }}\noutbound:\n  listen: 127.0.0.1:0\n  \
         routes: [{{ name: r1, match: {{ host: svc }}, to: [{{ backend: b }}] }}]\n\
         backends: [{{ name: b, discovery: {{ static: [\"{}\"] }} }}]\n",
        la.display(),
        b.inbound_addr()
    ));
    (a, b, la, lb)
}

async fn lines(path: &Path, n: usize) -> Vec<Value> {
    eventually(
        Duration::from_secs(5),
        &format!("{n} access log line(s) in {}", path.display()),
        || async {
            let text = std::fs::read_to_string(path).ok()?;
            let lines: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("each line is JSON"))
                .collect();
            (lines.len() >= n).then_some(lines)
        },
    )
    .await
}

fn traceparent(v: &str) -> (String, String, String) {
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "{v}");
    (
        parts[1].to_owned(),
        parts[2].to_owned(),
        parts[3].to_owned(),
    )
}

#[tokio::test]
async fn trace_continues_across_two_sidecars_with_parent_child_spans() {
    let app = Upstream::echo().await;
    let (a, _b, la, lb) = chain(&app, "");
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let req = a
        .request("svc", "/mcp?student=alice")
        .header("traceparent", format!("00-{client_trace}-{client_span}-01"))
        .header("tracestate", "vendor=opaque")
        .header("authorization", "Bearer very-secret-token")
        .header("x-request-id", "req-42");
    assert_eq!(a.send(req).await.status, 200);

    let seen = app.last_request().await;
    let (trace, parent, flags) = traceparent(seen.header("traceparent").unwrap());
    assert_eq!(trace, client_trace, "the app sees the client's trace");
    assert_eq!(flags, "01");
    assert_eq!(seen.header("tracestate"), Some("vendor=opaque"));
    assert_eq!(seen.header("x-request-id"), Some("req-42"));

    let a_line = lines(&la, 1).await.remove(0);
    let b_line = lines(&lb, 1).await.remove(0);
    // A's span is a child of the client's; B's span is a child of A's; the app's parent is B's span.
    assert_eq!(a_line["trace_id"], client_trace);
    assert_eq!(a_line["parent_span_id"], client_span);
    assert_eq!(b_line["trace_id"], client_trace);
    assert_eq!(b_line["parent_span_id"], a_line["span_id"]);
    assert_eq!(b_line["span_id"].as_str().unwrap(), parent);
    assert_ne!(a_line["span_id"], b_line["span_id"]);
    // Each side names where it sent the request: A its route's backend, B its local app.
    assert_eq!(a_line["backend"], "b");
    assert_eq!(b_line["backend"], "app");

    // Every field, and nothing secret.
    for line in [&a_line, &b_line] {
        for field in [
            "timestamp",
            "trace_id",
            "span_id",
            "request_id",
            "direction",
            "peer_identity",
            "method",
            "authority",
            "path",
            "status",
            "duration_ms",
            "upstream",
            "attempts",
            "error",
            "mcp_method",
            "mcp_tool",
        ] {
            assert!(line.get(field).is_some(), "missing {field} in {line}");
        }
        assert_eq!(line["request_id"], "req-42");
        assert_eq!(line["path"], "/mcp");
        assert_eq!(line["status"], 200);
        let text = line.to_string();
        for secret in ["alice", "student=", "very-secret-token", "Bearer"] {
            assert!(
                !text.contains(secret),
                "{secret} leaked into the access log: {text}"
            );
        }
    }
    assert_eq!(a_line["direction"], "outbound");
    assert_eq!(a_line["route"], "r1");
    assert_eq!(a_line["attempts"], 1);
    assert_eq!(b_line["direction"], "inbound");
    assert_eq!(b_line["upstream"], app.addr.to_string());
}

#[tokio::test]
async fn b3_is_continued_and_the_callers_sampling_decision_is_kept() {
    let app = Upstream::echo().await;
    let (a, _b, _, _) = chain(&app, "");
    let req = a
        .request("svc", "/")
        .header("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124")
        .header("x-b3-spanid", "a2fb4a1d1a96d312")
        .header("x-b3-sampled", "0");
    assert_eq!(a.send(req).await.status, 200);
    let seen = app.last_request().await;
    assert_eq!(
        seen.header("x-b3-traceid"),
        Some("463ac35c9f6413ad48485a3953bb6124")
    );
    assert_eq!(seen.header("x-b3-sampled"), Some("0"));
    assert_ne!(seen.header("x-b3-spanid"), Some("a2fb4a1d1a96d312"));
    assert_ne!(
        seen.header("x-b3-parentspanid"),
        Some("a2fb4a1d1a96d312"),
        "two hops: the parent is A's span"
    );
    let (trace, _, flags) = traceparent(seen.header("traceparent").unwrap());
    assert_eq!(
        trace, "463ac35c9f6413ad48485a3953bb6124",
        "W3C carries the B3 trace"
    );
    assert_eq!(flags, "00", "unsampled stays unsampled");
}

#[tokio::test]
async fn new_traces_follow_sample_ratio() {
    let app = Upstream::echo().await;
    let (a, _b, _, _) = chain(&app, "tracing: { propagation: [w3c], sample_ratio: 0.0 }\n");
    assert_eq!(a.get("svc", "/").await.status, 200);
    let seen = app.last_request().await;
    let (_, _, flags) = traceparent(seen.header("traceparent").unwrap());
    assert_eq!(flags, "00");
    assert_eq!(
        seen.header("b3"),
        None,
        "b3 disabled and absent: not invented"
    );
}

#[tokio::test]
async fn sampled_requests_are_exported_as_otlp_spans() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    // A local OTLP/HTTP receiver that decodes what it gets.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ExportTraceServiceRequest>();
    let receiver = Upstream::start("otlp", move |req, _shared| {
        let tx = tx.clone();
        async move {
            let bytes = http_body_util::BodyExt::collect(req.into_body())
                .await
                .unwrap()
                .to_bytes();
            let _ = tx.send(ExportTraceServiceRequest::decode(bytes).expect("valid OTLP protobuf"));
            http::Response::new(crate::support::body::empty())
        }
    })
    .await;
    let app = Upstream::echo().await;
    let tracing = format!(
        "tracing: {{ otlp: {{ endpoint: \"http://{}/v1/traces\" }} }}\n",
        receiver.addr
    );
    let (a, _b, _, _) = chain(&app, &tracing);
    let json = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"analyze_text"}}"#;
    let req = a
        .request("svc", "/mcp")
        .method("POST")
        .header("content-type", "application/json")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
    let r = a
        .client
        .request(req.body(crate::support::body::full(json)).unwrap())
        .await;
    assert_eq!(r.status, 200);

    // Both sidecars export their span (batches flush within a second).
    let mut spans = Vec::new();
    crate::support::bounded("two exported spans", async {
        while spans.len() < 2 {
            let export = rx.recv().await.unwrap();
            for rs in export.resource_spans {
                for ss in rs.scope_spans {
                    spans.extend(ss.spans);
                }
            }
        }
    })
    .await;
    let trace = hex(&spans[0].trace_id);
    assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(spans.iter().all(|s| hex(&s.trace_id) == trace));
    let attr = |s: &opentelemetry_proto::tonic::trace::v1::Span, k: &str| {
        s.attributes
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.clone())
            .map(|v| format!("{v:?}"))
    };
    let outbound = spans
        .iter()
        .find(|s| attr(s, "outrider.direction").is_some_and(|v| v.contains("outbound")))
        .unwrap();
    let inbound = spans
        .iter()
        .find(|s| attr(s, "outrider.direction").is_some_and(|v| v.contains("inbound")))
        .unwrap();
    assert_eq!(hex(&outbound.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(
        inbound.parent_span_id, outbound.span_id,
        "the inbound span is the child of the outbound one"
    );
    assert!(attr(outbound, "mcp.method.name")
        .unwrap()
        .contains("tools/call"));
    assert!(attr(outbound, "gen_ai.tool.name")
        .unwrap()
        .contains("analyze_text"));
    assert!(attr(outbound, "http.response.status_code")
        .unwrap()
        .contains("200"));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn request_bodies_never_reach_the_access_log() {
    let app = Upstream::echo().await;
    let (a, _b, la, lb) = chain(&app, "");
    let json = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"analyze_text","arguments":{"essay":"Alice wrote about her dyslexia diagnosis"}}}"#;
    let req = a
        .request("svc", "/mcp?student_id=123")
        .method("POST")
        .header("content-type", "application/json")
        .header("cookie", "session=topsecret");
    assert_eq!(
        a.client
            .request(req.body(crate::support::body::full(json)).unwrap())
            .await
            .status,
        200
    );
    for path in [&la, &lb] {
        let line = lines(path, 1).await.remove(0);
        assert_eq!(line["mcp_method"], "tools/call");
        assert_eq!(line["mcp_tool"], "analyze_text");
        let text = line.to_string();
        for secret in ["dyslexia", "Alice", "essay", "student_id", "topsecret"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
}
