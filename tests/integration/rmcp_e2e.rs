//! End-to-end MCP through two sidecars (issue 7, "Must show"): a real rmcp client and a real
//! rmcp server (`examples/common/writing_analysis_server.rs`) over Streamable HTTP, with an
//! outbound sidecar and an inbound sidecar between them, joined by mTLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use tokio::sync::{mpsc, watch};

use crate::support::pki::Pki;
use crate::support::rmcp_mesh::server;
use crate::support::{bounded, TestProxy};

const LISTENERS: &str = "admin: { listen: 127.0.0.1:0 }\nmetrics: { listen: 127.0.0.1:0 }\n";

/// The rmcp client: forwards every progress notification to the test.
struct Client {
    progress: mpsc::UnboundedSender<ProgressNotificationParam>,
}

impl ClientHandler for Client {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.progress.send(params);
    }
}

/// app ← inbound sidecar (mTLS, strict) ← outbound sidecar (route `mcp`, `timeout: 200ms`).
struct Mesh {
    _pki: Pki,
    _inbound: TestProxy,
    outbound: TestProxy,
    app: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Mesh {
    fn drop(&mut self) {
        self.app.abort();
    }
}

async fn mesh(pace: Option<server::Pace>) -> Mesh {
    mesh_with(pace, "").await
}

/// `authorize`: extra inbound keys, e.g. `, authorize: [...]`.
async fn mesh_with(pace: Option<server::Pace>, authorize: &str) -> Mesh {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr: SocketAddr = listener.local_addr().unwrap();
    let app = tokio::spawn(server::serve(listener, server::WritingAnalysis::new(pace)));
    let pki = Pki::new("rmcp");
    let inbound = TestProxy::start(format!(
        "version: 1\n{}{LISTENERS}inbound: {{ listen: 127.0.0.1:0, app: \"{app_addr}\", mode: strict{authorize} }}\n",
        pki.sidecar_yaml("writing-analysis")
    ));
    let outbound = TestProxy::start(format!(
        "version: 1\n{}{LISTENERS}outbound:\n  listen: 127.0.0.1:0\n  \
         routes: [{{ name: mcp, match: {{ path_prefix: /mcp }}, timeout: 200ms, to: [{{ backend: wa }}] }}]\n\
         backends: [{{ name: wa, discovery: {{ static: [\"{}\"] }}, tls: {{ identity: \"{}\" }}, connect_timeout: 2s }}]\n",
        pki.sidecar_yaml("gateway"),
        inbound.inbound_addr(),
        Pki::id("writing-analysis")
    ));
    Mesh {
        _pki: pki,
        _inbound: inbound,
        outbound,
        app,
    }
}

async fn connect(
    mesh: &Mesh,
) -> (
    RunningService<RoleClient, Client>,
    mpsc::UnboundedReceiver<ProgressNotificationParam>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let transport = StreamableHttpClientTransport::from_uri(mesh.outbound.outbound_url("/mcp"));
    // `serve` performs initialize + notifications/initialized through both sidecars.
    let client = bounded("initialize", Client { progress: tx }.serve(transport))
        .await
        .expect("initialize through the sidecars");
    (client, rx)
}

fn args(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn text_of(result: &rmcp::model::CallToolResult) -> String {
    let v = serde_json::to_value(result).unwrap();
    v["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_and_server_talk_through_two_sidecars() {
    let mesh = mesh(None).await;
    let (client, _progress) = connect(&mesh).await;
    assert!(
        client.peer_info().is_some(),
        "initialize result reached the client"
    );

    let tools = bounded("tools/list", client.list_all_tools())
        .await
        .unwrap();
    let mut names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["analyze_text", "long_analysis"]);

    let result = bounded(
        "tools/call analyze_text",
        client.call_tool(
            CallToolRequestParams::new("analyze_text")
                .with_arguments(args(serde_json::json!({"text": "the quick brown fox"}))),
        ),
    )
    .await
    .unwrap();
    assert_eq!(text_of(&result), "words: 4");

    // The calls went through both sidecars, classified as MCP.
    mesh.outbound
        .wait_metric(
            "outrider_requests_total",
            &[("mcp_method", "tools/call"), ("mcp_tool", "analyze_text")],
            1.0,
        )
        .await;
    bounded("client shutdown", client.cancel()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_streams_through_both_sidecars_and_outlives_the_route_timeout() {
    // The server holds progress 2 until the test has seen progress 1 arrive at the client.
    let (gate, opened) = watch::channel(false);
    let pace: server::Pace = Arc::new(move |step, interval| {
        let mut opened = opened.clone();
        Box::pin(async move {
            if step == 1 {
                let _ = bounded("the test's gate", opened.wait_for(|o| *o)).await;
            } else {
                tokio::time::sleep(interval).await;
            }
        })
    });
    let mesh = mesh(Some(pace)).await;
    let (client, mut progress) = connect(&mesh).await;

    let peer = client.peer().clone();
    let call = tokio::spawn(async move {
        peer.call_tool(
            CallToolRequestParams::new("long_analysis")
                .with_arguments(args(serde_json::json!({"steps": 4, "interval_ms": 150}))),
        )
        .await
    });

    let first = bounded("progress 1 at the client", progress.recv())
        .await
        .expect("progress channel open");
    assert_eq!(first.progress, 1.0);
    assert_eq!(first.total, Some(4.0));
    // Only now may the server send progress 2: the first notification crossed both sidecars
    // while the call's SSE response was still open.
    let released = Instant::now();
    gate.send_replace(true);

    for step in [2.0, 3.0, 4.0] {
        let p = bounded("later progress", progress.recv()).await.unwrap();
        assert_eq!(p.progress, step);
    }
    let result = bounded("long_analysis result", call)
        .await
        .unwrap()
        .expect("the SSE response survived the 200ms route timeout");
    assert_eq!(text_of(&result), "done: 4 steps");
    // Two 150ms intervals after the gate (after progress 2 and 3): the stream outlived the
    // route's `timeout: 200ms`.
    assert!(released.elapsed() >= Duration::from_millis(300));
    bounded("client shutdown", client.cancel()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_tool_authorization_allows_and_denies_an_rmcp_client() {
    let rules = r#", authorize: [{ name: gateway-readonly, peers: ["spiffe://classroom.local/sa/gateway"], mcp: { methods: [initialize, "notifications/*", tools/list, tools/call], tools: [analyze_text] } }]"#;
    let mesh = mesh_with(None, rules).await;
    let (client, _progress) = connect(&mesh).await;
    let ok = bounded(
        "allowed tools/call",
        client.call_tool(
            CallToolRequestParams::new("analyze_text")
                .with_arguments(args(serde_json::json!({"text": "a b"}))),
        ),
    )
    .await
    .unwrap();
    assert_eq!(text_of(&ok), "words: 2");
    let denied = bounded(
        "denied tools/call",
        client.call_tool(
            CallToolRequestParams::new("long_analysis")
                .with_arguments(args(serde_json::json!({"steps": 1, "interval_ms": 1}))),
        ),
    )
    .await;
    let err = format!("{:?}", denied.expect_err("long_analysis is not allowed"));
    assert!(
        err.contains("long_analysis"),
        "the JSON-RPC error names the refused tool: {err}"
    );
    mesh._inbound
        .wait_metric(
            "outrider_authz_denied_total",
            &[
                ("direction", "inbound"),
                ("peer", Pki::id("gateway").as_str()),
            ],
            1.0,
        )
        .await;
}

/// Two stateful rmcp replicas behind one outbound sidecar with `session_affinity: mcp` and
/// round-robin: without affinity every other request would reach the replica that does not
/// know the session (rmcp answers 404 there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_affinity_keeps_an_rmcp_session_on_its_replica() {
    let mut replicas: Vec<tokio::task::JoinHandle<std::io::Result<()>>> = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..2 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap());
        replicas.push(tokio::spawn(server::serve(
            listener,
            server::WritingAnalysis::new(None),
        )));
    }
    let outbound = TestProxy::start(format!(
        "version: 1\n{LISTENERS}outbound:\n  listen: 127.0.0.1:0\n  \
         routes: [{{ name: mcp, match: {{ path_prefix: /mcp }}, to: [{{ backend: wa }}], retry: {{ attempts: 2, on: [connect-failure] }} }}]\n\
         backends: [{{ name: wa, discovery: {{ static: [\"{}\", \"{}\"] }}, balance: round-robin, session_affinity: mcp, circuit_breaker: {{ consecutive_failures: 0 }} }}]\n",
        addrs[0], addrs[1]
    ));
    let connect = |url: String| async move {
        let (tx, _rx) = mpsc::unbounded_channel();
        let transport = StreamableHttpClientTransport::from_uri(url);
        bounded("initialize", Client { progress: tx }.serve(transport)).await
    };
    let client = connect(outbound.outbound_url("/mcp"))
        .await
        .expect("initialize");
    for i in 0..8 {
        let r = bounded(
            "tools/call in the session",
            client.call_tool(
                CallToolRequestParams::new("analyze_text")
                    .with_arguments(args(serde_json::json!({"text": "one two"}))),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("call {i} left its replica: {e:?}"));
        assert_eq!(text_of(&r), "words: 2");
    }
    assert_eq!(
        outbound
            .metric("outrider_mcp_sessions", &[("backend", "wa")])
            .await,
        Some(1.0)
    );

    // A second session is pinned too (to whichever replica issued it).
    let fresh = connect(outbound.outbound_url("/mcp"))
        .await
        .expect("a second initialize");
    let r = bounded(
        "tools/call in the new session",
        fresh.call_tool(
            CallToolRequestParams::new("analyze_text")
                .with_arguments(args(serde_json::json!({"text": "a b c"}))),
        ),
    )
    .await
    .unwrap();
    assert_eq!(text_of(&r), "words: 3");
    assert_eq!(
        outbound
            .metric("outrider_mcp_sessions", &[("backend", "wa")])
            .await,
        Some(2.0)
    );
    drop(replicas);
}
