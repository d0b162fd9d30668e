//! Plain serde types that mirror the YAML file of SPEC §3, key for key.
//!
//! Owns: the shape of the file, unknown-key rejection and the defaults a user sees.
//! Does not own: meaning. `validate` turns these into runtime types; runtime code never
//! imports this module. Sections whose feature is not built yet are parsed loosely (as
//! `serde_yaml::Value`) so that `validate` can reject them with `not supported yet: <section>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A section accepted by the parser but refused by validation until its feature lands.
pub type Unsupported = Option<serde_yaml::Value>;

/// The whole file. Routes and backends are generic: typed (`File<Route, Backend>`) for the
/// fast one-pass parse of a valid file, or raw YAML values (the default) so that each element
/// can be parsed on its own and every bad element reported.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct File<R = serde_yaml::Value, B = serde_yaml::Value> {
    pub version: u32,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub identity: Option<String>,
    #[serde(default)]
    pub admin: Option<Listen>,
    #[serde(default)]
    pub metrics: Option<Listen>,
    #[serde(default)]
    pub drain_timeout: Option<String>,
    #[serde(default)]
    pub limits: Option<Limits>,
    #[serde(default)]
    pub tls: Option<Tls>,
    #[serde(default)]
    pub inbound: Option<Inbound>,
    #[serde(default = "none")]
    pub outbound: Option<Outbound<R>>,
    #[serde(default = "Vec::new")]
    pub backends: Vec<B>,
    #[serde(default)]
    pub tracing: Option<Tracing>,
    #[serde(default)]
    pub access_log: Option<AccessLog>,
    #[serde(default)]
    pub registration: Unsupported,
    #[serde(default)]
    pub gateway: Unsupported,
    #[serde(default)]
    pub mcp: Option<Mcp>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub listen: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tracing {
    #[serde(default)]
    pub propagation: Option<Vec<String>>,
    #[serde(default)]
    pub sample_ratio: Option<f64>,
    #[serde(default)]
    pub otlp: Option<Otlp>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Otlp {
    /// OTLP/HTTP traces endpoint, e.g. `http://127.0.0.1:4318/v1/traces`.
    pub endpoint: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default)]
    pub max_header_bytes: Option<String>,
    #[serde(default)]
    pub header_read_timeout: Option<String>,
    #[serde(default)]
    pub max_concurrent_streams: Option<u32>,
    /// Extension: open client connections per listener; beyond, new ones are closed at once.
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// Extension: a client connection with nothing in flight this long is closed.
    #[serde(default)]
    pub idle_timeout: Option<String>,
    /// Extension: a request body outrider buffers must arrive whole within this.
    #[serde(default)]
    pub body_read_timeout: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Inbound {
    pub listen: String,
    pub app: String,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub max_concurrent_requests: Option<u32>,
    #[serde(default)]
    pub ready_requires: Option<ReadyRequires>,
    #[serde(default)]
    pub authorize: Option<Vec<AuthzRule>>,
}

/// One inbound authorization rule; a request is allowed when any rule matches.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthzRule {
    pub name: String,
    /// Globs over the caller's SPIFFE ID; absent = any caller, authenticated or not.
    #[serde(default)]
    pub peers: Option<Vec<String>>,
    #[serde(default)]
    pub mcp: Option<McpCondition>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReadyRequires {
    #[serde(default)]
    pub app: bool,
    #[serde(default)]
    pub backends: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Outbound<R = serde_yaml::Value> {
    pub listen: String,
    #[serde(default = "Vec::new")]
    pub routes: Vec<R>,
}

fn none<T>() -> Option<T> {
    None
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub name: String,
    #[serde(default, rename = "match")]
    pub match_: Match,
    pub to: Vec<WeightedBackend>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub idle_timeout: Option<String>,
    #[serde(default)]
    pub retry: Option<Retry>,
    #[serde(default)]
    pub request_headers: Option<HeaderEdits>,
    #[serde(default)]
    pub response_headers: Option<HeaderEdits>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub mcp: Option<McpCondition>,
}

/// `mcp: { methods: [...], tools: [...] }` on routes and authorization rules (globs).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct McpCondition {
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub tools: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mcp {
    #[serde(default)]
    pub max_inspect_body: Option<String>,
    #[serde(default)]
    pub session_key_file: Option<String>,
    #[serde(default)]
    pub sse_keepalive: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedBackend {
    pub backend: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderEdits {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    pub name: String,
    pub discovery: Discovery,
    #[serde(default)]
    pub tls: Option<BackendTls>,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub balance: Option<String>,
    #[serde(default)]
    pub session_affinity: Option<String>,
    #[serde(default)]
    pub connect_timeout: Option<String>,
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    #[serde(default)]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Extension: PINGs on the backend's HTTP/2 connections.
    #[serde(default)]
    pub h2_keepalive: Option<H2Keepalive>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct H2Keepalive {
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    #[serde(default)]
    pub attempts: Option<u32>,
    #[serde(default)]
    pub per_try_timeout: Option<String>,
    #[serde(default)]
    pub on: Option<Vec<StringOrInt>>,
    #[serde(default)]
    pub backoff: Option<Backoff>,
    #[serde(default)]
    pub budget: Option<Budget>,
    #[serde(default)]
    pub max_body: Option<String>,
    #[serde(default)]
    pub non_idempotent: Option<bool>,
    #[serde(default)]
    pub idempotent_tools: Option<Vec<String>>,
}

/// `on: [connect-failure, 503]`: names and status codes in one list.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum StringOrInt {
    Int(u32),
    Str(String),
}

impl std::fmt::Display for StringOrInt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StringOrInt::Int(n) => write!(f, "{n}"),
            StringOrInt::Str(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    #[serde(default)]
    pub base: Option<String>,
    #[serde(default)]
    pub max: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    #[serde(default)]
    pub ratio: Option<f64>,
    #[serde(default)]
    pub min_per_second: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub healthy_threshold: Option<u32>,
    #[serde(default)]
    pub unhealthy_threshold: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    #[serde(default)]
    pub max_concurrent_requests: Option<u32>,
    #[serde(default)]
    pub max_pending: Option<u32>,
    #[serde(default)]
    pub consecutive_failures: Option<u32>,
    #[serde(default)]
    pub ejection_time: Option<String>,
    #[serde(default)]
    pub max_ejected_percent: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendTls {
    /// The SPIFFE ID the upstream must present.
    pub identity: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    #[serde(default, rename = "static")]
    pub static_: Option<Vec<String>>,
    #[serde(default)]
    pub dns: Unsupported,
    #[serde(default)]
    pub file: Unsupported,
    #[serde(default)]
    pub etcd: Unsupported,
}
