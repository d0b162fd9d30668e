//! OTLP/HTTP span export: one SERVER span per proxied request, sent as protobuf
//! (`application/x-protobuf` `ExportTraceServiceRequest`) to `tracing.otlp.endpoint`.
//!
//! Owns: the span's wire form (attribute names below), a dedicated export thread with its own
//! current-thread tokio runtime fed by a bounded queue, batching (up to `BATCH` spans or every
//! `FLUSH_EVERY`), the per-export timeout, and the bounded flush when the exporter is dropped.
//! The request path never waits: `record` copies the span into one small owned value and
//! `try_send`s it; a full queue drops the span and counts it (`dropped`). A failed export
//! (connect error, timeout, non-2xx) counts `failures` once, drops the batch and is logged at
//! debug (warn at most once a minute). Does not own: the sampling decision (`propagation`) or
//! the counters' registration (`metrics`).
//!
//! Attribute names follow the OpenTelemetry semantic conventions where one fits a proxy's
//! server span (HTTP: `http.request.method`, `http.response.status_code`, `error.type`; MCP,
//! development status: `mcp.method.name`, `gen_ai.tool.name`, `gen_ai.prompt.name`,
//! `mcp.resource.uri`, `gen_ai.operation.name`) and are `outrider.*` otherwise. The config
//! route name and the upstream endpoint are `outrider.route` / `outrider.upstream`, not
//! `http.route` / `server.address`: on a server span those two mean the URL path template and
//! the *local* server's name, which a route name and the backend's address are not.

use std::sync::mpsc as std_mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as proto;
use prometheus::IntCounter;
use prost::Message;
use tokio::sync::mpsc;

use crate::telemetry::propagation::Span;

/// Spans buffered between the workers and the export thread.
pub const QUEUE: usize = 8192;
/// Most spans in one export request.
pub const BATCH: usize = 512;
/// A batch that is not full is sent this long after its first span was queued.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Bound on one export (connect, send, response).
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on the flush of what is still queued when the exporter is dropped.
pub const SHUTDOWN: Duration = Duration::from_secs(3);
/// At most one warning per this period about failing exports (each failure is logged at debug).
const WARN_EVERY: Duration = Duration::from_secs(60);
/// The collector's response body is read (so the connection can be reused) up to this size.
const RESPONSE_LIMIT: usize = 64 * 1024;

/// Attribute keys (see the module docs for the choice of names).
pub mod attr {
    pub const SERVICE_NAME: &str = "service.name";
    pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
    pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
    pub const ERROR_TYPE: &str = "error.type";
    pub const DIRECTION: &str = "outrider.direction";
    pub const ROUTE: &str = "outrider.route";
    pub const BACKEND: &str = "outrider.backend";
    pub const PEER_IDENTITY: &str = "outrider.peer_identity";
    pub const UPSTREAM: &str = "outrider.upstream";
    pub const RETRIES: &str = "outrider.retries";
    pub const MCP_METHOD_NAME: &str = "mcp.method.name";
    pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
    pub const GEN_AI_PROMPT_NAME: &str = "gen_ai.prompt.name";
    pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
    pub const MCP_RESOURCE_URI: &str = "mcp.resource.uri";
    /// The MCP name of a method outside tools/call, prompts/get and resources/read.
    pub const MCP_NAME: &str = "outrider.mcp.name";
}

/// What one request's span records, borrowed from the request path.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    /// `outbound` or `inbound`.
    pub direction: &'a str,
    pub http_method: &'a str,
    /// The config route name.
    pub route: &'a str,
    pub backend: &'a str,
    /// Status sent to the client (proxy-made ones included).
    pub status: u16,
    /// The caller's verified SPIFFE ID.
    pub peer_identity: Option<&'a str>,
    /// Endpoint of the last try.
    pub upstream: Option<String>,
    /// Tries beyond the first.
    pub retries: u32,
    /// MCP method label (`""` when not JSON-RPC).
    pub mcp_method: &'a str,
    /// Tool/prompt name or resource URI of a naming MCP method (`""` otherwise).
    pub mcp_tool: &'a str,
    /// The `x-outrider-error` reason when the proxy answered itself.
    pub error: Option<&'a str>,
}

/// One finished request.
#[derive(Debug, Clone)]
pub struct SpanRecord<'a> {
    pub span: Span,
    pub name: &'a str,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Attributes<'a>,
}

/// The span name the semantic conventions suggest: `{mcp.method.name} {tool or prompt}` for
/// `tools/call` and `prompts/get` (a resource URI is too varied for a name), the MCP method
/// label for other JSON-RPC requests, and the HTTP method otherwise (the config route is a
/// name, not the path template `http.route` stands for).
pub fn span_name<'a>(a: &Attributes<'a>) -> std::borrow::Cow<'a, str> {
    match a.mcp_method {
        "" => a.http_method.into(),
        m @ ("tools/call" | "prompts/get") if !a.mcp_tool.is_empty() => {
            format!("{m} {}", a.mcp_tool).into()
        }
        m => m.into(),
    }
}

/// The OTLP exporter: cheap to call from any worker (`Send + Sync`).
pub struct Exporter {
    tx: Option<mpsc::Sender<Item>>,
    dropped: IntCounter,
    /// Signalled (by dropping its sender) when the export thread ends.
    done: Mutex<std_mpsc::Receiver<()>>,
    shutdown_wait: Duration,
}

/// Timings; `Default` is the production set, tests shorten them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timings {
    pub flush_every: Duration,
    pub export_timeout: Duration,
    pub shutdown: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            flush_every: FLUSH_EVERY,
            export_timeout: EXPORT_TIMEOUT,
            shutdown: SHUTDOWN,
        }
    }
}

impl Exporter {
    /// Starts the export thread (its own current-thread tokio runtime). `endpoint`: the full
    /// URL of the collector's traces path, e.g. `http://127.0.0.1:4318/v1/traces` (plain HTTP
    /// only). `dropped` counts spans lost to a full queue (or still queued when the shutdown
    /// flush ran out of time); `failures` counts failed export requests.
    pub fn start(
        endpoint: Uri,
        service_name: &str,
        dropped: IntCounter,
        failures: IntCounter,
    ) -> std::io::Result<Exporter> {
        Self::start_with(
            endpoint,
            service_name,
            dropped,
            failures,
            Timings::default(),
        )
    }

    pub(crate) fn start_with(
        endpoint: Uri,
        service_name: &str,
        dropped: IntCounter,
        failures: IntCounter,
        timings: Timings,
    ) -> std::io::Result<Exporter> {
        if endpoint.scheme() != Some(&http::uri::Scheme::HTTP) || endpoint.authority().is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("OTLP endpoint must be an http:// URL, got `{endpoint}`"),
            ));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let (done_tx, done_rx) = std_mpsc::channel::<()>();
        let sink = Sink::new(endpoint, service_name, failures, timings.export_timeout);
        let lost = dropped.clone();
        std::thread::Builder::new()
            .name("outrider-otlp".into())
            .spawn(move || {
                let _done = done_tx;
                rt.block_on(run(rx, sink, lost, timings));
            })?;
        Ok(Exporter {
            tx: Some(tx),
            dropped,
            done: Mutex::new(done_rx),
            shutdown_wait: timings.export_timeout + timings.shutdown + Duration::from_secs(1),
        })
    }

    /// Queues a sampled span for export; never blocks. Unsampled spans are ignored; when the
    /// queue is full the span is dropped and counted.
    pub fn record(&self, span: SpanRecord<'_>) {
        if !span.span.sampled {
            return;
        }
        let Some(tx) = &self.tx else { return };
        if tx.capacity() == 0 {
            self.dropped.inc();
            return;
        }
        if tx.try_send(Item::new(span)).is_err() {
            self.dropped.inc();
        }
    }
}

impl Drop for Exporter {
    /// Closes the queue and waits (bounded: the export in flight, then `SHUTDOWN`) while the
    /// export thread sends what is still queued. Blocks the calling thread: drop it off the
    /// async workers (e.g. in `spawn_blocking`) when it is replaced at runtime.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Ok(done) = self.done.lock() {
            let _ = done.recv_timeout(self.shutdown_wait);
        }
    }
}

/// A span as queued: every string packed into one allocation.
#[derive(Debug)]
struct Item {
    trace_id: u128,
    span_id: u64,
    parent_id: Option<u64>,
    start_ns: u64,
    end_ns: u64,
    status: u16,
    retries: u32,
    has_peer: bool,
    has_error: bool,
    upstream: Option<String>,
    text: String,
    /// End offsets in `text` of the fields, in `Field` order.
    ends: [u32; FIELDS],
}

#[derive(Clone, Copy)]
enum Field {
    Name,
    Direction,
    Method,
    Route,
    Backend,
    Peer,
    McpMethod,
    McpTool,
    Error,
}
const FIELDS: usize = 9;

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Item {
    fn new(r: SpanRecord<'_>) -> Item {
        let a = r.attributes;
        let fields: [&str; FIELDS] = [
            r.name,
            a.direction,
            a.http_method,
            a.route,
            a.backend,
            a.peer_identity.unwrap_or(""),
            a.mcp_method,
            a.mcp_tool,
            a.error.unwrap_or(""),
        ];
        let mut text = String::with_capacity(fields.iter().map(|f| f.len()).sum());
        let mut ends = [0u32; FIELDS];
        for (end, f) in ends.iter_mut().zip(fields) {
            text.push_str(f);
            *end = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        Item {
            trace_id: r.span.trace_id,
            span_id: r.span.span_id,
            parent_id: r.span.parent_id,
            start_ns: unix_nanos(r.start),
            end_ns: unix_nanos(r.end),
            status: a.status,
            retries: a.retries,
            has_peer: a.peer_identity.is_some(),
            has_error: a.error.is_some(),
            upstream: a.upstream,
            text,
            ends,
        }
    }

    fn get(&self, f: Field) -> &str {
        let i = f as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text.get(start..self.ends[i] as usize).unwrap_or("")
    }

    fn into_proto(self) -> proto::Span {
        let mut attributes = Vec::with_capacity(12);
        let mut kv = |key: &str, value: any_value::Value| {
            attributes.push(KeyValue {
                key: key.to_owned(),
                value: Some(AnyValue { value: Some(value) }),
                ..Default::default()
            })
        };
        let s = |v: &str| any_value::Value::StringValue(v.to_owned());
        kv(attr::DIRECTION, s(self.get(Field::Direction)));
        kv(attr::HTTP_REQUEST_METHOD, s(self.get(Field::Method)));
        kv(
            attr::HTTP_RESPONSE_STATUS_CODE,
            any_value::Value::IntValue(i64::from(self.status)),
        );
        kv(attr::ROUTE, s(self.get(Field::Route)));
        kv(attr::BACKEND, s(self.get(Field::Backend)));
        if self.has_peer {
            kv(attr::PEER_IDENTITY, s(self.get(Field::Peer)));
        }
        if let Some(u) = &self.upstream {
            kv(attr::UPSTREAM, s(u));
        }
        kv(
            attr::RETRIES,
            any_value::Value::IntValue(i64::from(self.retries)),
        );
        let mcp_method = self.get(Field::McpMethod);
        if !mcp_method.is_empty() {
            kv(attr::MCP_METHOD_NAME, s(mcp_method));
            let name = self.get(Field::McpTool);
            if !name.is_empty() {
                match mcp_method {
                    "tools/call" => {
                        kv(attr::GEN_AI_TOOL_NAME, s(name));
                        kv(attr::GEN_AI_OPERATION_NAME, s("execute_tool"));
                    }
                    "prompts/get" => kv(attr::GEN_AI_PROMPT_NAME, s(name)),
                    "resources/read" => kv(attr::MCP_RESOURCE_URI, s(name)),
                    _ => kv(attr::MCP_NAME, s(name)),
                }
            }
        }
        let failed = self.has_error || self.status >= 500;
        let error = self.get(Field::Error);
        if failed {
            // Semantic conventions: the error class, else the status code as a string.
            let error_type = if self.has_error && !error.is_empty() {
                error.to_owned()
            } else {
                self.status.to_string()
            };
            kv(attr::ERROR_TYPE, any_value::Value::StringValue(error_type));
        }
        let status = failed.then(|| proto::Status {
            code: proto::status::StatusCode::Error as i32,
            message: error.to_owned(),
        });
        let remote = if self.parent_id.is_some() {
            proto::SpanFlags::ContextIsRemoteMask as u32
        } else {
            0
        };
        proto::Span {
            trace_id: self.trace_id.to_be_bytes().to_vec(),
            span_id: self.span_id.to_be_bytes().to_vec(),
            parent_span_id: self
                .parent_id
                .map(|p| p.to_be_bytes().to_vec())
                .unwrap_or_default(),
            // Sampled (W3C trace flags) and whether the parent came from another process.
            flags: 0x01 | proto::SpanFlags::ContextHasIsRemoteMask as u32 | remote,
            name: self.get(Field::Name).to_owned(),
            kind: proto::span::SpanKind::Server as i32,
            start_time_unix_nano: self.start_ns,
            end_time_unix_nano: self.end_ns,
            attributes,
            status,
            ..Default::default()
        }
    }
}

/// The export loop: batch, send, repeat; after the queue closed, flush within `shutdown`.
/// How often a busy exporter looks at its queue.
const POLL: Duration = Duration::from_millis(50);

async fn run(mut rx: mpsc::Receiver<Item>, mut sink: Sink, dropped: IntCounter, t: Timings) {
    let mut batch: Vec<Item> = Vec::with_capacity(BATCH);
    let mut deadline: Option<Instant> = None;
    loop {
        if batch.is_empty() && rx.recv_many(&mut batch, BATCH).await == 0 {
            return; // closed and drained
        }
        let flush_at = tokio::time::Instant::now() + t.flush_every;
        // Under load, poll instead of awaiting each span: a receiver parked on the channel
        // would be woken (a cross-thread wake-up and a syscall) by every single `record`.
        loop {
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            let now = tokio::time::Instant::now();
            if batch.len() >= BATCH || now >= flush_at || rx.is_closed() {
                break;
            }
            tokio::time::sleep_until((now + POLL).min(flush_at)).await;
        }
        if deadline.is_none() && rx.is_closed() {
            deadline = Some(Instant::now() + t.shutdown);
        }
        let timeout = match deadline {
            None => t.export_timeout,
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .min(t.export_timeout),
        };
        if timeout.is_zero() {
            // Shutdown flush out of time: what is left is lost.
            let mut lost = batch.len() as u64;
            batch.clear();
            while rx.try_recv().is_ok() {
                lost += 1;
            }
            dropped.inc_by(lost);
            return;
        }
        sink.export(&mut batch, timeout).await;
    }
}

struct Sink {
    client: Client<HttpConnector, Full<Bytes>>,
    endpoint: Uri,
    resource: Resource,
    scope: InstrumentationScope,
    failures: IntCounter,
    last_warn: Option<Instant>,
}

impl Sink {
    fn new(endpoint: Uri, service_name: &str, failures: IntCounter, timeout: Duration) -> Sink {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(2)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Sink {
            client,
            endpoint,
            resource: Resource {
                attributes: vec![KeyValue {
                    key: attr::SERVICE_NAME.to_owned(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service_name.to_owned())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            },
            scope: InstrumentationScope {
                name: "outrider".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                ..Default::default()
            },
            failures,
            last_warn: None,
        }
    }

    /// Sends (and empties) `batch`; a failure is counted and logged, never retried.
    async fn export(&mut self, batch: &mut Vec<Item>, timeout: Duration) {
        let spans = batch.len();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![proto::ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![proto::ScopeSpans {
                    scope: Some(self.scope.clone()),
                    spans: batch.drain(..).map(Item::into_proto).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let body = Bytes::from(request.encode_to_vec());
        let req = match http::Request::post(self.endpoint.clone())
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .header(
                http::header::USER_AGENT,
                concat!("outrider/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(body))
        {
            Ok(r) => r,
            Err(e) => return self.failed(spans, &e),
        };
        let client = &self.client;
        let sent = tokio::time::timeout(timeout, async move {
            let resp = client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            // Read the (small) answer so the connection can be reused.
            let _ = Limited::new(resp.into_body(), RESPONSE_LIMIT)
                .collect()
                .await;
            Ok::<_, String>(status)
        })
        .await;
        match sent {
            Ok(Ok(status)) if status.is_success() => {}
            Ok(Ok(status)) => self.failed(spans, &format_args!("collector answered {status}")),
            Ok(Err(e)) => self.failed(spans, &e),
            Err(_) => self.failed(spans, &format_args!("timed out after {timeout:?}")),
        }
    }

    fn failed(&mut self, spans: usize, error: &dyn std::fmt::Display) {
        self.failures.inc();
        let now = Instant::now();
        if self
            .last_warn
            .is_none_or(|at| now.duration_since(at) >= WARN_EVERY)
        {
            self.last_warn = Some(now);
            tracing::warn!(endpoint = %self.endpoint, spans, %error, "OTLP span export failed; the batch is dropped (further failures logged at debug for a minute)");
        } else {
            tracing::debug!(endpoint = %self.endpoint, spans, %error, "OTLP span export failed; the batch is dropped");
        }
    }
}

#[cfg(test)]
mod tests;
