//! The `writing-analysis` MCP server, built with the official Rust SDK (rmcp) and served over
//! Streamable HTTP at `/mcp`. Shared by `examples/writing_analysis.rs` and the end-to-end test
//! `tests/integration/rmcp_e2e.rs` (included with `#[path]`).
//!
//! Tools:
//! * `analyze_text { text }`: the word count of `text`, as `words: N`;
//! * `long_analysis { steps, interval_ms }`: sends `steps` `notifications/progress` (progress
//!   1..=steps, one every `interval_ms`) on the call's SSE stream, then returns `done: N steps`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty};
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

#[derive(Clone)]
pub struct WritingAnalysis {
    tool_router: ToolRouter<Self>,
    pace: Pace,
}

impl WritingAnalysis {
    /// A server pacing `long_analysis` with `pace`, or by sleeping when `None`.
    pub fn new(pace: Option<Pace>) -> Self {
        let pace = pace
            .unwrap_or_else(|| Arc::new(|_step, interval| Box::pin(tokio::time::sleep(interval))));
        Self {
            tool_router: Self::tool_router(),
            pace,
        }
    }
}

#[tool_router]
impl WritingAnalysis {
    #[tool(description = "Count the words of a text")]
    fn analyze_text(&self, Parameters(args): Parameters<AnalyzeText>) -> String {
        format!("words: {}", args.text.split_whitespace().count())
    }

    #[tool(description = "A long analysis that reports progress as it goes")]
    async fn long_analysis(
        &self,
        Parameters(args): Parameters<LongAnalysis>,
        meta: RequestMetaObject,
        client: Peer<RoleServer>,
    ) -> Result<String, ErrorData> {
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

/// Serves `server` (one instance per MCP session) at `/mcp` on `listener`, forever.
pub async fn serve(listener: TcpListener, server: WritingAnalysis) -> std::io::Result<()> {
    // The server sits behind an outrider sidecar, which authorizes callers: the Host it sees
    // is the mesh name of the service, so rmcp's DNS-rebinding host check is turned off.
    let config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    let service: StreamableHttpService<WritingAnalysis, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(server.clone()), Default::default(), config);
    loop {
        let (stream, _) = listener.accept().await?;
        let service = service.clone();
        tokio::spawn(async move {
            let handler =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let service = service.clone();
                    async move {
                        if req.uri().path() != "/mcp" {
                            let mut not_found = http::Response::new(
                                Empty::<Bytes>::new().map_err(|e| match e {}).boxed(),
                            );
                            *not_found.status_mut() = http::StatusCode::NOT_FOUND;
                            return Ok::<_, Infallible>(not_found);
                        }
                        let resp: http::Response<BoxBody<Bytes, Infallible>> =
                            service.handle(req).await;
                        Ok(resp)
                    }
                });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), handler)
                .await;
        });
    }
}
