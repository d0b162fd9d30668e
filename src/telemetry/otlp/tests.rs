use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::*;

/// How the test collector answers.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Ok,
    Status500,
    /// Never answers (the exporter's timeout must end the request).
    Hang,
}

/// What the test collector saw of one export request.
struct Received {
    path: String,
    content_type: String,
    request: ExportTraceServiceRequest,
}

/// A loopback OTLP/HTTP receiver on its own thread and runtime.
struct Collector {
    addr: SocketAddr,
    rx: std_mpsc::Receiver<Received>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    fn start(answer: Answer) -> Collector {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std_mpsc::channel();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let conn = tokio::select! {
                        c = listener.accept() => c,
                        _ = &mut stopped => return,
                    };
                    let Ok((stream, _)) = conn else { continue };
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                            let tx = tx.clone();
                            async move {
                                let path = req.uri().path().to_owned();
                                let content_type = req
                                    .headers()
                                    .get(http::header::CONTENT_TYPE)
                                    .map(|v| v.to_str().unwrap().to_owned())
                                    .unwrap_or_default();
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let request = ExportTraceServiceRequest::decode(body).unwrap();
                                let _ = tx.send(Received {
                                    path,
                                    content_type,
                                    request,
                                });
                                let status: u16 = match answer {
                                    Answer::Ok => 200,
                                    Answer::Status500 => 500,
                                    Answer::Hang => std::future::pending().await,
                                };
                                Ok::<_, Infallible>(
                                    http::Response::builder()
                                        .status(status)
                                        .header("content-type", "application/x-protobuf")
                                        .body(Full::new(Bytes::new()))
                                        .unwrap(),
                                )
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        });
        Collector {
            addr,
            rx,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn endpoint(&self) -> Uri {
        format!("http://{}/v1/traces", self.addr).parse().unwrap()
    }

    /// The next export request (bounded wait).
    fn next(&self) -> Received {
        self.rx
            .recv_timeout(Duration::from_secs(10))
            .expect("an export request within 10s")
    }

    /// Spans of export requests until `n` were received, and how many requests that took.
    fn spans(&self, n: usize) -> (Vec<proto::Span>, u64) {
        let mut out = Vec::new();
        let mut requests = 0;
        while out.len() < n {
            let r = self.next();
            requests += 1;
            assert_eq!(r.path, "/v1/traces");
            assert_eq!(r.content_type, "application/x-protobuf");
            for rs in r.request.resource_spans {
                for ss in rs.scope_spans {
                    out.extend(ss.spans);
                }
            }
        }
        (out, requests)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn counters() -> (IntCounter, IntCounter) {
    (
        IntCounter::new("dropped", "d").unwrap(),
        IntCounter::new("failures", "f").unwrap(),
    )
}

fn quick() -> Timings {
    Timings {
        flush_every: Duration::from_millis(100),
        export_timeout: Duration::from_millis(300),
        shutdown: Duration::from_millis(500),
    }
}

fn attributes() -> Attributes<'static> {
    Attributes {
        direction: "inbound",
        http_method: "POST",
        route: "mcp",
        backend: "app",
        status: 200,
        peer_identity: None,
        upstream: None,
        retries: 0,
        mcp_method: "",
        mcp_tool: "",
        error: None,
    }
}

fn record(span_id: u64, sampled: bool, attributes: Attributes<'static>) -> SpanRecord<'static> {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    SpanRecord {
        span: Span {
            trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
            span_id,
            parent_id: None,
            sampled,
        },
        name: "POST",
        start,
        end: start + Duration::from_millis(12),
        attributes,
    }
}

fn attr_str<'a>(span: &'a proto::Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

fn attr_int(span: &proto::Span, key: &str) -> Option<i64> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::IntValue(i) => Some(*i),
            _ => None,
        })
}

/// Bounded polling of a counter (the export thread updates it asynchronously).
fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn exporter_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Exporter>();
}

#[test]
fn refuses_endpoints_that_are_not_plain_http() {
    for e in ["https://collector:4318/v1/traces", "/v1/traces"] {
        let (d, f) = counters();
        let err = Exporter::start(e.parse().unwrap(), "svc", d, f)
            .err()
            .expect("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
}

#[test]
fn exports_sampled_spans_with_ids_kind_attributes_and_status() {
    let collector = Collector::start(Answer::Ok);
    let (dropped, failures) = counters();
    let exporter = Exporter::start_with(
        collector.endpoint(),
        "orders",
        dropped.clone(),
        failures.clone(),
        quick(),
    )
    .unwrap();

    // A continued trace through a retried MCP tool call from a verified peer.
    let mut tool = record(
        0x00f067aa0ba902b7,
        true,
        Attributes {
            peer_identity: Some("spiffe://school.example/ns/lms/sa/tutor"),
            upstream: Some("127.0.0.1:8080".to_owned()),
            retries: 2,
            mcp_method: "tools/call",
            mcp_tool: "grade_essay",
            ..attributes()
        },
    );
    tool.span.parent_id = Some(0x1122334455667788);
    tool.name = "tools/call grade_essay";
    exporter.record(tool);
    // Not sampled: never exported.
    exporter.record(record(0xdead, false, attributes()));
    // The proxy answered itself.
    exporter.record(record(
        0x0b,
        true,
        Attributes {
            direction: "outbound",
            http_method: "GET",
            status: 503,
            error: Some("no_healthy_endpoints"),
            ..attributes()
        },
    ));
    // The app answered 500 (no proxy error): still an error span.
    exporter.record(record(
        0x0c,
        true,
        Attributes {
            status: 500,
            upstream: Some("127.0.0.1:8081".to_owned()),
            ..attributes()
        },
    ));

    // Normally one request (the three spans are queued within `flush_every`), but a slow test
    // thread may split them: gather until three arrived (a fourth would fail the count below).
    let mut requests = vec![collector.next()];
    let count = |rs: &[Received]| -> usize {
        rs.iter()
            .flat_map(|r| &r.request.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum()
    };
    while count(&requests) < 3 {
        requests.push(collector.next());
    }
    let mut spans = Vec::new();
    for r in &requests {
        assert_eq!(r.path, "/v1/traces");
        assert_eq!(r.content_type, "application/x-protobuf");
        assert_eq!(r.request.resource_spans.len(), 1);
        let rs = &r.request.resource_spans[0];
        let resource = rs.resource.as_ref().unwrap();
        assert_eq!(resource.attributes.len(), 1);
        assert_eq!(resource.attributes[0].key, "service.name");
        assert_eq!(
            resource.attributes[0].value.as_ref().unwrap().value,
            Some(any_value::Value::StringValue("orders".into()))
        );
        assert_eq!(rs.scope_spans.len(), 1);
        let ss = &rs.scope_spans[0];
        assert_eq!(ss.scope.as_ref().unwrap().name, "outrider");
        spans.extend(ss.spans.iter().cloned());
    }
    // The fourth record (the exporter was dropped with nothing else queued) would show here.
    drop(exporter);
    while let Ok(r) = collector.rx.try_recv() {
        requests.push(r);
    }
    assert_eq!(count(&requests), 3, "the unsampled span is not exported");
    assert_eq!(spans.len(), 3);

    let s = &spans[0];
    assert_eq!(
        s.trace_id,
        0x4bf92f3577b34da6a3ce929d0e0e4736u128.to_be_bytes()
    );
    assert_eq!(hex(&s.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&s.span_id), "00f067aa0ba902b7");
    assert_eq!(hex(&s.parent_span_id), "1122334455667788");
    assert_eq!(s.name, "tools/call grade_essay");
    assert_eq!(s.kind, proto::span::SpanKind::Server as i32);
    assert_eq!(s.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(s.end_time_unix_nano, 1_700_000_000_012_000_000);
    assert_eq!(s.flags & 0xff, 0x01, "sampled");
    assert_eq!(s.flags & 0x300, 0x300, "remote parent");
    assert_eq!(s.status, None, "unset on success");
    assert_eq!(attr_str(s, "outrider.direction"), Some("inbound"));
    assert_eq!(attr_str(s, "http.request.method"), Some("POST"));
    assert_eq!(attr_int(s, "http.response.status_code"), Some(200));
    assert_eq!(attr_str(s, "outrider.route"), Some("mcp"));
    assert_eq!(attr_str(s, "outrider.backend"), Some("app"));
    assert_eq!(
        attr_str(s, "outrider.peer_identity"),
        Some("spiffe://school.example/ns/lms/sa/tutor")
    );
    assert_eq!(attr_str(s, "outrider.upstream"), Some("127.0.0.1:8080"));
    assert_eq!(attr_int(s, "outrider.retries"), Some(2));
    assert_eq!(attr_str(s, "mcp.method.name"), Some("tools/call"));
    assert_eq!(attr_str(s, "gen_ai.tool.name"), Some("grade_essay"));
    assert_eq!(attr_str(s, "gen_ai.operation.name"), Some("execute_tool"));
    assert_eq!(attr_str(s, "error.type"), None);

    let s = &spans[1];
    assert_eq!(hex(&s.span_id), "000000000000000b");
    assert!(s.parent_span_id.is_empty(), "a trace started here");
    assert_eq!(s.flags & 0x300, 0x100, "no remote parent");
    assert_eq!(attr_str(s, "outrider.direction"), Some("outbound"));
    assert_eq!(attr_str(s, "http.request.method"), Some("GET"));
    assert_eq!(attr_int(s, "http.response.status_code"), Some(503));
    assert_eq!(attr_str(s, "error.type"), Some("no_healthy_endpoints"));
    assert_eq!(attr_str(s, "outrider.peer_identity"), None);
    assert_eq!(attr_str(s, "outrider.upstream"), None);
    assert_eq!(attr_str(s, "mcp.method.name"), None);
    let status = s.status.as_ref().unwrap();
    assert_eq!(status.code, proto::status::StatusCode::Error as i32);
    assert_eq!(status.message, "no_healthy_endpoints");

    let s = &spans[2];
    assert_eq!(attr_str(s, "error.type"), Some("500"));
    assert_eq!(
        s.status.as_ref().unwrap().code,
        proto::status::StatusCode::Error as i32
    );
    assert_eq!(failures.get(), 0);
    assert_eq!(dropped.get(), 0);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn mcp_names_map_to_the_semantic_conventions() {
    let cases = [
        ("prompts/get", "essay_feedback", "gen_ai.prompt.name"),
        ("resources/read", "file:///syllabus.md", "mcp.resource.uri"),
        ("completion/complete", "x", "outrider.mcp.name"),
    ];
    for (method, name, key) in cases {
        let item = Item::new(record(
            1,
            true,
            Attributes {
                mcp_method: method,
                mcp_tool: name,
                ..attributes()
            },
        ));
        let s = item.into_proto();
        assert_eq!(attr_str(&s, "mcp.method.name"), Some(method));
        assert_eq!(attr_str(&s, key), Some(name), "{method}");
        assert_eq!(attr_str(&s, "gen_ai.tool.name"), None);
        assert_eq!(attr_str(&s, "gen_ai.operation.name"), None);
    }
    // A 4xx is not an error of a server span; an error reason always is.
    let s = Item::new(record(
        1,
        true,
        Attributes {
            status: 404,
            ..attributes()
        },
    ))
    .into_proto();
    assert_eq!(s.status, None);
    let s = Item::new(record(
        1,
        true,
        Attributes {
            status: 403,
            error: Some("mcp_tool_denied"),
            ..attributes()
        },
    ))
    .into_proto();
    assert_eq!(attr_str(&s, "error.type"), Some("mcp_tool_denied"));
    assert!(s.status.is_some());
}

#[test]
fn full_batches_go_at_once_and_drop_flushes_the_rest() {
    let collector = Collector::start(Answer::Ok);
    let (dropped, failures) = counters();
    let exporter = Exporter::start_with(
        collector.endpoint(),
        "svc",
        dropped.clone(),
        failures.clone(),
        Timings {
            // Long enough that only a full batch or the drop can send anything.
            flush_every: Duration::from_secs(60),
            ..quick()
        },
    )
    .unwrap();
    for i in 1..=(BATCH as u64 + 88) {
        exporter.record(record(i, true, attributes()));
    }
    let first = collector.next();
    assert_eq!(
        first.request.resource_spans[0].scope_spans[0].spans.len(),
        BATCH
    );
    let t = Instant::now();
    drop(exporter);
    assert!(t.elapsed() < Duration::from_secs(5), "bounded flush");
    let (rest, _) = collector.spans(88);
    assert_eq!(rest.len(), 88);
    let mut ids: Vec<u64> = rest
        .iter()
        .map(|s| u64::from_be_bytes(s.span_id.as_slice().try_into().unwrap()))
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (BATCH as u64 + 1..=BATCH as u64 + 88).collect::<Vec<_>>()
    );
    assert_eq!(failures.get(), 0);
    assert_eq!(dropped.get(), 0);
}

#[test]
fn a_collector_answering_500_counts_one_failure_per_batch() {
    let collector = Collector::start(Answer::Status500);
    let (dropped, failures) = counters();
    let exporter = Exporter::start_with(
        collector.endpoint(),
        "svc",
        dropped.clone(),
        failures.clone(),
        quick(),
    )
    .unwrap();
    for i in 1..=3 {
        exporter.record(record(i, true, attributes()));
    }
    // One request (unless a slow test thread let the batch timer split them).
    let (spans, requests) = collector.spans(3);
    assert_eq!(spans.len(), 3);
    wait_for("a failure per request", || failures.get() == requests);
    // The next batch fails on its own.
    exporter.record(record(4, true, attributes()));
    collector.next();
    wait_for("one more failure", || failures.get() == requests + 1);
    drop(exporter);
    assert_eq!(failures.get(), requests + 1);
    assert_eq!(dropped.get(), 0);
}

#[test]
fn a_closed_port_counts_failures() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (dropped, failures) = counters();
    let exporter = Exporter::start_with(
        format!("http://{addr}/v1/traces").parse().unwrap(),
        "svc",
        dropped.clone(),
        failures.clone(),
        quick(),
    )
    .unwrap();
    exporter.record(record(1, true, attributes()));
    wait_for("a failure", || failures.get() == 1);
    exporter.record(record(2, true, attributes()));
    wait_for("a second failure", || failures.get() == 2);
    drop(exporter);
    assert_eq!(dropped.get(), 0);
}

#[test]
fn a_hanging_collector_never_blocks_record_and_overflow_is_counted() {
    let collector = Collector::start(Answer::Hang);
    let (dropped, failures) = counters();
    let exporter = Exporter::start_with(
        collector.endpoint(),
        "svc",
        dropped.clone(),
        failures.clone(),
        Timings {
            export_timeout: Duration::from_secs(2),
            ..quick()
        },
    )
    .unwrap();
    // Wait until the exporter is stuck in a request the collector never answers.
    exporter.record(record(1, true, attributes()));
    collector.next();

    const N: u64 = 10_000;
    let t = Instant::now();
    for i in 2..=N + 1 {
        exporter.record(record(i, true, attributes()));
    }
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "10,000 records took {took:?}"
    );
    // The queue holds QUEUE spans; the rest were dropped at once.
    assert_eq!(dropped.get(), N - QUEUE as u64);
    assert_eq!(failures.get(), 0);

    // Drop: the stuck export times out, the flush (bounded) cannot deliver to a collector that
    // never answers, and whatever is left is counted as dropped.
    let t = Instant::now();
    drop(exporter);
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(2 + 1) + Duration::from_millis(500),
        "drop took {took:?}"
    );
    assert!(failures.get() >= 1);
    let exported_or_lost = dropped.get() + failures.get() * BATCH as u64;
    assert!(
        exported_or_lost >= N,
        "every span is accounted for: {exported_or_lost}"
    );
}

#[test]
fn span_names_stay_low_cardinality() {
    let a = |mcp_method, mcp_tool| Attributes {
        mcp_method,
        mcp_tool,
        ..attributes()
    };
    assert_eq!(span_name(&a("", "")), "POST");
    assert_eq!(
        span_name(&a("tools/call", "grade_essay")),
        "tools/call grade_essay"
    );
    assert_eq!(
        span_name(&a("prompts/get", "feedback")),
        "prompts/get feedback"
    );
    assert_eq!(
        span_name(&a("resources/read", "file:///a.md")),
        "resources/read"
    );
    assert_eq!(span_name(&a("tools/call", "")), "tools/call");
    assert_eq!(span_name(&a("_batch", "")), "_batch");
}
