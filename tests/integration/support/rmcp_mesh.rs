//! Real MCP on both ends for end-to-end tests: the rmcp example server
//! (`examples/common/writing_analysis_server.rs`) as killable [`Replica`]s, the mTLS mesh around
//! them ([`Mesh`]: inbound sidecars, outbound configs), and rmcp clients of both MCP eras.
//!
//! A [`Replica`] runs on its own tokio runtime on its own thread: [`Replica::kill`] drops that
//! runtime, so its listener and every connection it accepted close at once, as when a process
//! dies (aborting only the accept task would leave accepted connections and rmcp sessions up).

/// The example server; the tests' only inclusion of it.
#[path = "../../../examples/common/writing_analysis_server.rs"]
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;

use rmcp::model::{CallToolRequestParams, CallToolResult, ProtocolVersion};
use rmcp::service::{
    ClientInitializeError, ClientLifecycleMode, ClientServiceExt, RunningService, ServiceError,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use tokio::sync::oneshot;

use super::pki::Pki;
use super::{bounded, TestProxy};

pub use server::{Options, Seen, Stats};

/// Admin and metrics listeners of every sidecar here.
pub const LISTENERS: &str = "admin: { listen: 127.0.0.1:0 }\nmetrics: { listen: 127.0.0.1:0 }\n";

/// The identity of every app sidecar (`writing-analysis`) and of the calling one (`gateway`).
pub const APP: &str = "writing-analysis";
pub const CALLER: &str = "gateway";

/// One rmcp server process: its own runtime on its own thread.
pub struct Replica {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    kill: Option<oneshot::Sender<()>>,
    dead: Option<oneshot::Receiver<()>>,
}

impl Replica {
    /// A replica served with `options`, recording every request in its [`Stats`].
    pub fn start(options: Options) -> Replica {
        let options = Options {
            record: true,
            ..options
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind replica");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = server::WritingAnalysis::new(None);
        let stats = app.stats();
        let (kill, killed) = oneshot::channel::<()>();
        let (gone, dead) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("replica-{addr}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("replica runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    tokio::select! {
                        _ = server::serve_with(listener, app, options) => {}
                        // A kill, or the `Replica` dropped.
                        _ = killed => {}
                    }
                });
                // Dropping the runtime drops every task it spawned: connections, rmcp sessions.
                drop(rt);
                let _ = gone.send(());
            })
            .expect("spawn replica thread");
        Replica {
            addr,
            stats,
            kill: Some(kill),
            dead: Some(dead),
        }
    }

    /// Kill the replica and wait until its runtime is gone (every socket of it closed).
    pub async fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(dead) = self.dead.take() {
            let _ = bounded("the replica's runtime to shut down", dead).await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

/// The PKI of one test's mesh and the sidecar configs built on it.
pub struct Mesh {
    pub pki: Pki,
    app_tls: String,
    caller_tls: String,
}

impl Mesh {
    /// `name` must be unique per test (it names the PKI directory).
    pub fn new(name: &str) -> Mesh {
        let pki = Pki::new(name);
        let app_tls = pki.sidecar_yaml(APP);
        let caller_tls = pki.sidecar_yaml(CALLER);
        Mesh {
            pki,
            app_tls,
            caller_tls,
        }
    }

    /// An inbound sidecar (strict mTLS, any authenticated peer) in front of the app at `app`.
    pub fn inbound(&self, app: SocketAddr) -> TestProxy {
        TestProxy::start(format!(
            "version: 1\n{}{LISTENERS}drain_timeout: 1s\n\
             inbound: {{ listen: 127.0.0.1:0, app: \"{app}\", mode: strict }}\n",
            self.app_tls
        ))
    }

    /// A backend flow mapping reaching inbound sidecars at `addrs` over mTLS, plus `extra` keys.
    pub fn backend(&self, name: &str, addrs: &[SocketAddr], extra: &str) -> String {
        let list: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
        format!(
            "{{ name: {name}, discovery: {{ static: [{}] }}, tls: {{ identity: \"{}\" }}, connect_timeout: 2s{}{extra} }}",
            list.join(", "),
            Pki::id(APP),
            if extra.is_empty() { "" } else { ", " },
        )
    }

    /// The calling app's outbound sidecar config, listening on `listen` (`127.0.0.1:0` for any
    /// port), with these route and backend flow mappings and `extra` top-level YAML.
    pub fn outbound_yaml(
        &self,
        listen: &str,
        routes: &[String],
        backends: &[String],
        extra: &str,
    ) -> String {
        let list =
            |items: &[String]| -> String { items.iter().map(|i| format!("    - {i}\n")).collect() };
        format!(
            "version: 1\n{}{LISTENERS}outbound:\n  listen: {listen}\n  routes:\n{}backends:\n{}{extra}",
            self.caller_tls,
            list(routes),
            list(backends).replace("    - ", "  - "),
        )
    }
}

/// A session-era rmcp client (`initialize`, `Mcp-Session-Id`).
pub type Client = RunningService<RoleClient, ()>;

/// A session-era client of `url`. `reinit`: rmcp's `reinit_on_expired_session` (on by default
/// in rmcp); off, a 404 for the session reaches the caller as `SessionExpired`.
pub async fn session(url: &str, reinit: bool) -> Result<Client, ClientInitializeError> {
    let config =
        StreamableHttpClientTransportConfig::with_uri(url).reinit_on_expired_session(reinit);
    bounded(
        "rmcp initialize",
        ().serve(StreamableHttpClientTransport::from_config(config)),
    )
    .await
}

/// A stateless-era client of `url` (MCP 2026-07-28: `server/discover`, no session, the
/// `Mcp-Method` / `Mcp-Name` headers on every POST).
pub async fn stateless(url: &str) -> Result<Client, ClientInitializeError> {
    bounded(
        "rmcp server/discover",
        ().serve_with_lifecycle(
            StreamableHttpClientTransport::from_uri(url),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        ),
    )
    .await
}

/// `tools/call` of `tool` with `args` (a JSON object), bounded.
pub async fn call(
    client: &Client,
    tool: &'static str,
    args: serde_json::Value,
) -> Result<CallToolResult, ServiceError> {
    let serde_json::Value::Object(args) = args else {
        panic!("tool arguments must be a JSON object")
    };
    bounded(
        &format!("tools/call {tool}"),
        client.call_tool(CallToolRequestParams::new(tool).with_arguments(args)),
    )
    .await
}

/// `analyze_text` of `text`; panics unless it answers `words: N`.
pub async fn analyze(client: &Client, text: &str) -> usize {
    let result = call(client, "analyze_text", serde_json::json!({ "text": text }))
        .await
        .unwrap_or_else(|e| panic!("analyze_text failed: {e:?}"));
    let out = text_of(&result);
    out.strip_prefix("words: ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected analyze_text result {out:?}"))
}

/// The first text content of a tool result.
pub fn text_of(result: &CallToolResult) -> String {
    let v = serde_json::to_value(result).unwrap();
    v["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The JSON-RPC error of a failed call (`code`, `data`), or a panic naming what it was instead.
pub fn rpc_error(err: &ServiceError) -> (i32, serde_json::Value) {
    match err {
        ServiceError::McpError(e) => (e.code.0, e.data.clone().unwrap_or_default()),
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}
