//! The `writing-analysis` MCP server, built with the official Rust SDK (rmcp) and served over
//! Streamable HTTP at `/mcp`. Shared by `examples/writing_analysis.rs` and the end-to-end tests
//! (`rmcp_e2e.rs`, `rmcp_more.rs`), included with `#[path]` (by the tests once, in
//! `tests/integration/support/rmcp_mesh.rs`).
//!
//! Tools:
//! * `analyze_text { text }`: the word count of `text`, as `words: N`;
//! * `long_analysis { steps, interval_ms }`: sends `steps` `notifications/progress` (progress
//!   1..=steps, one every `interval_ms`) on the call's SSE stream, then returns `done: N steps`.
//!
//! For tests, every server counts the tools it ran in its [`Stats`], and [`serve_with`] can
//! also record there each HTTP request (the JSON-RPC method and name of its body, the
//! 2026-07-28 routing headers), so a test can tell which replica served what and that a refused
//! request never arrived; it also runs the server stateless (rmcp's `legacy_session_mode:
//! false`).

// Included with `#[path]` by the example and by tests, each using a different part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{ProgressNotificationParam, RequestMetaObject, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::{
    session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
};
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, Peer, RoleServer, ServerHandler};
use tokio::net::TcpListener;

/// How `long_analysis` waits after sending progress `step` (of an `interval_ms` pace). The
/// default sleeps for the interval; a test can hold a step until it has seen it arrive.
pub type Pace =
    Arc<dyn Fn(u32, Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct AnalyzeText {
    /// The text to analyse.
    pub text: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct LongAnalysis {
    /// How many progress notifications to send.
    pub steps: u32,
    /// Milliseconds between two notifications.
    pub interval_ms: u64,
}

/// One HTTP request as the server received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub http_method: http::Method,
    /// `method` of the JSON-RPC body (none for GET/DELETE or a body that is not JSON-RPC).
    pub rpc_method: Option<String>,
    /// `params.name` of the body (the tool of a `tools/call`).
    pub name: Option<String>,
    /// The 2026-07-28 routing headers `Mcp-Method` and `Mcp-Name`, as received.
    pub mcp_method: Option<String>,
    pub mcp_name: Option<String>,
    pub session: Option<String>,
}

/// What one server saw (shared by every per-session instance of it).
#[derive(Debug, Default)]
pub struct Stats {
    seen: Mutex<Vec<Seen>>,
    calls: Mutex<HashMap<String, usize>>,
}

impl Stats {
    /// Every HTTP request received at `/mcp`, in order (when [`Options::record`] is set).
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// HTTP requests whose JSON-RPC body has method `rpc_method`.
    pub fn requests(&self, rpc_method: &str) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|s| s.rpc_method.as_deref() == Some(rpc_method))
            .count()
    }

    /// How many times the tool `tool` ran.
    pub fn calls(&self, tool: &str) -> usize {
        self.calls.lock().unwrap().get(tool).copied().unwrap_or(0)
    }

    fn ran(&self, tool: &str) {
        *self
            .calls
            .lock()
            .unwrap()
            .entry(tool.to_owned())
            .or_default() += 1;
    }
}

#[derive(Clone)]
pub struct WritingAnalysis {
    tool_router: ToolRouter<Self>,
    pace: Pace,
    stats: Arc<Stats>,
}

impl WritingAnalysis {
    /// A server pacing `long_analysis` with `pace`, or by sleeping when `None`.
    pub fn new(pace: Option<Pace>) -> Self {
        let pace = pace
            .unwrap_or_else(|| Arc::new(|_step, interval| Box::pin(tokio::time::sleep(interval))));
        Self {
            tool_router: Self::tool_router(),
            pace,
            stats: Arc::default(),
        }
    }

    /// What this server (every session of it) has seen so far.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }
}

#[tool_router]
impl WritingAnalysis {
    #[tool(description = "Count the words of a text")]
    fn analyze_text(&self, Parameters(args): Parameters<AnalyzeText>) -> String {
        self.stats.ran("analyze_text");
        format!("words: {}", args.text.split_whitespace().count())
    }

    #[tool(description = "A long analysis that reports progress as it goes")]
    async fn long_analysis(
        &self,
        Parameters(args): Parameters<LongAnalysis>,
        meta: RequestMetaObject,
        client: Peer<RoleServer>,
    ) -> Result<String, ErrorData> {
        self.stats.ran("long_analysis");
        let token = meta.get_progress_token().ok_or_else(|| {
            ErrorData::invalid_params("long_analysis needs a progress token", None)
        })?;
        let interval = Duration::from_millis(args.interval_ms);
        for step in 1..=args.steps {
            client
                .notify_progress(
                    ProgressNotificationParam::new(token.clone(), f64::from(step))
                        .with_total(f64::from(args.steps)),
                )
                .await
                .map_err(|e| ErrorData::internal_error(format!("progress: {e}"), None))?;
            if step < args.steps {
                (self.pace)(step, interval).await;
            }
        }
        Ok(format!("done: {} steps", args.steps))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for WritingAnalysis {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// How [`serve_with`] runs the server.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Session era: `initialize` opens a session (`Mcp-Session-Id`) kept in this process.
    /// `false`: every request is served on its own (rmcp's `legacy_session_mode: false`), so
    /// requests of one client may reach different replicas. 2026-07-28 requests are always
    /// served statelessly.
    pub stateful: bool,
    /// Record every HTTP request in [`Stats::seen`] (bodies are then buffered; tests only).
    pub record: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            stateful: true,
            record: false,
        }
    }
}

/// Serves `server` (one instance per MCP session) at `/mcp` on `listener`, forever.
pub async fn serve(listener: TcpListener, server: WritingAnalysis) -> std::io::Result<()> {
    serve_with(listener, server, Options::default()).await
}

/// [`serve`] with [`Options`].
pub async fn serve_with(
    listener: TcpListener,
    server: WritingAnalysis,
    options: Options,
) -> std::io::Result<()> {
    // The server sits behind an outrider sidecar, which authorizes callers: the Host it sees
    // is the mesh name of the service, so rmcp's DNS-rebinding host check is turned off.
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_legacy_session_mode(options.stateful);
    let stats = server.stats();
    let service: StreamableHttpService<WritingAnalysis, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(server.clone()), Default::default(), config);
    loop {
        let (stream, _) = listener.accept().await?;
        let service = service.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let handler =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let service = service.clone();
                    let stats = stats.clone();
                    let record = options.record;
                    async move {
                        if req.uri().path() != "/mcp" {
                            let mut not_found = http::Response::new(
                                Empty::<Bytes>::new().map_err(|e| match e {}).boxed(),
                            );
                            *not_found.status_mut() = http::StatusCode::NOT_FOUND;
                            return Ok::<_, Infallible>(not_found);
                        }
                        let resp: http::Response<BoxBody<Bytes, Infallible>> = if record {
                            service.handle(recorded(&stats, req).await).await
                        } else {
                            service.handle(req).await
                        };
                        Ok(resp)
                    }
                });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), handler)
                .await;
        });
    }
}

/// Reads the (small) request body, notes what the request is in `stats`, and hands rmcp the
/// same request with the body buffered.
async fn recorded(
    stats: &Stats,
    req: http::Request<hyper::body::Incoming>,
) -> http::Request<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    stats.seen.lock().unwrap().push(Seen {
        http_method: parts.method.clone(),
        rpc_method: text(&json["method"]),
        name: text(&json["params"]["name"]),
        mcp_method: header("mcp-method"),
        mcp_name: header("mcp-name"),
        session: header("mcp-session-id"),
    });
    http::Request::from_parts(parts, Full::new(body))
}
