//! Schema types -> runtime `model::Config`, collecting every problem with its YAML path.
//!
//! Owns: all semantic checks of SPEC §3 for the implemented sections, defaults, and the
//! `not supported yet: <section>` refusals. Does not own: YAML syntax (serde_yaml) or
//! positions (`locate`).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use serde::de::DeserializeOwned;

use super::locate::{Index, Pos};

use super::model::{self, HostMatch, PathMatch, Protocol};
use super::schema;
use super::units;
use crate::proxy::headers::is_hop_by_hop;

/// Defaults, in one place so docs/configuration.md can point at them.
mod resilience;
mod sections;

use resilience::{backend_resilience, route_retry};
use sections::{
    access_log_section, mcp_condition, mcp_section, otlp_endpoint, tls_section, tracing_section,
};

/// Defaults, in one place so docs/configuration.md can point at them.
pub mod defaults {
    use std::time::Duration;
    pub const ADMIN: &str = "127.0.0.1:15000";
    pub const METRICS: &str = "0.0.0.0:15090";
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
    pub const MAX_HEADER_BYTES: usize = 64 * 1024;
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    pub const MAX_CONCURRENT_STREAMS: u32 = 256;
    pub const MAX_CONNECTIONS: u32 = 10_000;
    pub const CONN_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
    pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
    pub const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
    pub const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
    pub const ROUTE_TIMEOUT: Duration = Duration::from_secs(15);
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
}

/// A problem found by validation, located by YAML path. Positions are resolved only when
/// there are problems (indexing a large file costs as much as parsing it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Point at the key (unknown field, unsupported section) rather than at the value.
    pub at_key: bool,
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn pos(&self, index: &Index) -> Pos {
        if self.at_key {
            index.key(&self.path)
        } else {
            index.value(&self.path)
        }
    }
}

/// Typed routes and backends as parsed (for `/config`), alongside the runtime model.
pub struct Validated {
    pub config: model::Config,
    /// The file with typed routes and backends (defaults filled in), for `GET /config`.
    pub file: schema::File<schema::Route, schema::Backend>,
}

pub struct Ctx {
    problems: Vec<Problem>,
}

impl Ctx {
    fn err(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            at_key: false,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn err_key(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            at_key: true,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn unsupported(&mut self, path: &str, present: bool) {
        if present {
            self.err_key(path, format!("not supported yet: {path}"));
        }
    }

    /// Deserializes one element on its own so that one bad element does not hide the others.
    fn typed<T: DeserializeOwned>(&mut self, path: &str, value: &serde_yaml::Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let inner = e.path().to_string();
                let full = if inner == "." {
                    path.to_owned()
                } else {
                    format!("{path}.{inner}")
                };
                let msg = e.into_inner().to_string();
                if msg.starts_with("unknown field") {
                    self.err_key(&full, msg);
                } else {
                    self.err(&full, msg);
                }
                None
            }
        }
    }

    fn duration(&mut self, path: &str, v: Option<&String>, default: Duration) -> Duration {
        match v.map(|s| units::duration(s)) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(m)) => {
                self.err(path, m);
                default
            }
        }
    }

    fn addr(&mut self, path: &str, s: &str) -> SocketAddr {
        parse_addr(s).unwrap_or_else(|m| {
            self.err(path, m);
            SocketAddr::from(([0, 0, 0, 0], 0))
        })
    }
}

pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
        }
    }
    Err(format!(
        "invalid address `{s}`: expected IP:PORT (e.g. 127.0.0.1:8080, [::1]:8080, localhost:8080)"
    ))
}

/// A route or backend element: already typed (fast path) or a raw value parsed here.
pub trait Element<T> {
    fn typed(&self, cx: &mut Ctx, path: &str) -> Option<T>;
}

impl<T: DeserializeOwned> Element<T> for serde_yaml::Value {
    fn typed(&self, cx: &mut Ctx, path: &str) -> Option<T> {
        cx.typed(path, self)
    }
}

impl Element<schema::Route> for schema::Route {
    fn typed(&self, _: &mut Ctx, _: &str) -> Option<schema::Route> {
        Some(self.clone())
    }
}

impl Element<schema::Backend> for schema::Backend {
    fn typed(&self, _: &mut Ctx, _: &str) -> Option<schema::Backend> {
        Some(self.clone())
    }
}

pub fn validate<R, B>(file: &schema::File<R, B>) -> Result<Validated, Vec<Problem>>
where
    R: Element<schema::Route>,
    B: Element<schema::Backend>,
{
    let mut cx = Ctx {
        problems: Vec::new(),
    };
    if file.version != 1 {
        cx.err(
            "version",
            format!("unsupported config version {} (expected 1)", file.version),
        );
    }
    let (identity, tls) = tls_section(&mut cx, file.identity.as_deref(), file.tls.as_ref());
    let tracing = tracing_section(&mut cx, file.tracing.as_ref());
    let otlp_endpoint = otlp_endpoint(&mut cx, file.tracing.as_ref());
    let access_log = file
        .access_log
        .as_ref()
        .and_then(|a| access_log_section(&mut cx, a));
    let mcp_max_inspect_body = mcp_section(&mut cx, file.mcp.as_ref());
    let mcp_sse_keepalive = file
        .mcp
        .as_ref()
        .and_then(|m| m.sse_keepalive.as_ref())
        .and_then(|v| {
            let d = cx.duration("mcp.sse_keepalive", Some(v), Duration::ZERO);
            if d.is_zero() || d < Duration::from_millis(100) {
                cx.err("mcp.sse_keepalive", "sse_keepalive must be at least 100ms");
                return None;
            }
            Some(d)
        });
    for (path, present) in [
        ("registration", file.registration.is_some()),
        ("gateway", file.gateway.is_some()),
    ] {
        cx.unsupported(path, present);
    }

    let admin = listen(
        &mut cx,
        "admin.listen",
        file.admin.as_ref(),
        defaults::ADMIN,
    );
    let metrics = listen(
        &mut cx,
        "metrics.listen",
        file.metrics.as_ref(),
        defaults::METRICS,
    );
    let drain_timeout = cx.duration(
        "drain_timeout",
        file.drain_timeout.as_ref(),
        defaults::DRAIN_TIMEOUT,
    );
    let limits = limits(&mut cx, file.limits.as_ref());

    let mut backends = Vec::new();
    let mut typed_backends = Vec::new();
    let mut backend_ids: HashMap<String, usize> = HashMap::new();
    for (i, raw) in file.backends.iter().enumerate() {
        let path = format!("backends[{i}]");
        let Some(b) = raw.typed(&mut cx, &path) else {
            continue;
        };
        if backend_ids.insert(b.name.clone(), backends.len()).is_some() {
            cx.err(
                &format!("{path}.name"),
                format!("duplicate backend name `{}`", b.name),
            );
        }
        backends.push(backend(&mut cx, &path, &b, tls.is_some()));
        typed_backends.push(b);
    }

    let inbound = file
        .inbound
        .as_ref()
        .map(|ib| inbound(&mut cx, ib, &backend_ids, tls.is_some()));

    let mut routes = Vec::new();
    let mut typed_routes = Vec::new();
    let outbound = file.outbound.as_ref().map(|ob| {
        let listen = cx.addr("outbound.listen", &ob.listen);
        let mut names = HashSet::new();
        for (i, raw) in ob.routes.iter().enumerate() {
            let path = format!("outbound.routes[{i}]");
            let Some(r) = raw.typed(&mut cx, &path) else {
                continue;
            };
            if !names.insert(r.name.clone()) {
                cx.err(
                    &format!("{path}.name"),
                    format!("duplicate route name `{}`", r.name),
                );
            }
            routes.push(route(&mut cx, &path, &r, &backend_ids));
            typed_routes.push(r);
        }
        model::Outbound {
            listen,
            routes: std::mem::take(&mut routes),
        }
    });

    check_listener_clash(&mut cx, admin, metrics, inbound.as_ref(), outbound.as_ref());

    if !cx.problems.is_empty() {
        return Err(cx.problems);
    }
    let mcp_session_key_file = file
        .mcp
        .as_ref()
        .and_then(|m| m.session_key_file.as_ref())
        .and_then(|p| {
            let path = std::path::PathBuf::from(p);
            match crate::mcp::session::SessionKey::from_file(&path) {
                Ok(_) => Some(path),
                Err(e) => {
                    cx.err("mcp.session_key_file", e.to_string());
                    None
                }
            }
        });
    if !cx.problems.is_empty() {
        return Err(cx.problems);
    }
    let config = model::Config {
        mcp_session_key_file,
        mcp_max_inspect_body,
        mcp_sse_keepalive,
        service: file.service.clone().unwrap_or_default(),
        identity,
        tls,
        admin,
        metrics,
        drain_timeout,
        limits,
        inbound,
        outbound,
        backends,
        tracing,
        otlp_endpoint,
        access_log,
    };
    let typed = schema::File {
        version: file.version,
        service: file.service.clone(),
        identity: file.identity.clone(),
        admin: file.admin.clone(),
        metrics: file.metrics.clone(),
        drain_timeout: file.drain_timeout.clone(),
        limits: file.limits.clone(),
        tls: file.tls.clone(),
        inbound: file.inbound.clone(),
        outbound: file.outbound.as_ref().map(|o| schema::Outbound {
            listen: o.listen.clone(),
            routes: typed_routes,
        }),
        backends: typed_backends,
        tracing: file.tracing.clone(),
        access_log: file.access_log.clone(),
        registration: file.registration.clone(),
        gateway: file.gateway.clone(),
        mcp: file.mcp.clone(),
    };
    Ok(Validated {
        config,
        file: typed,
    })
}

fn listen(cx: &mut Ctx, path: &str, l: Option<&schema::Listen>, default: &str) -> SocketAddr {
    cx.addr(path, l.map_or(default, |l| l.listen.as_str()))
}

fn limits(cx: &mut Ctx, l: Option<&schema::Limits>) -> model::Limits {
    let l = l.cloned().unwrap_or_default();
    let max_header_bytes = match l.max_header_bytes.as_deref().map(units::size) {
        None => defaults::MAX_HEADER_BYTES,
        Some(Ok(n)) if (8192..=16 << 20).contains(&n) => n as usize,
        Some(Ok(_)) => {
            cx.err(
                "limits.max_header_bytes",
                "max_header_bytes must be between 8KiB and 16MiB",
            );
            defaults::MAX_HEADER_BYTES
        }
        Some(Err(m)) => {
            cx.err("limits.max_header_bytes", m);
            defaults::MAX_HEADER_BYTES
        }
    };
    let header_read_timeout = cx.duration(
        "limits.header_read_timeout",
        l.header_read_timeout.as_ref(),
        defaults::HEADER_READ_TIMEOUT,
    );
    if header_read_timeout.is_zero() {
        cx.err(
            "limits.header_read_timeout",
            "header_read_timeout must be greater than 0",
        );
    }
    let max_concurrent_streams = l
        .max_concurrent_streams
        .unwrap_or(defaults::MAX_CONCURRENT_STREAMS);
    if max_concurrent_streams == 0 {
        cx.err(
            "limits.max_concurrent_streams",
            "max_concurrent_streams must be at least 1",
        );
    }
    let max_connections = l.max_connections.unwrap_or(defaults::MAX_CONNECTIONS);
    if max_connections == 0 {
        cx.err(
            "limits.max_connections",
            "max_connections must be at least 1",
        );
    }
    let idle_timeout = cx.duration(
        "limits.idle_timeout",
        l.idle_timeout.as_ref(),
        defaults::CONN_IDLE_TIMEOUT,
    );
    let body_read_timeout = cx.duration(
        "limits.body_read_timeout",
        l.body_read_timeout.as_ref(),
        defaults::BODY_READ_TIMEOUT,
    );
    if body_read_timeout.is_zero() {
        cx.err(
            "limits.body_read_timeout",
            "body_read_timeout must be greater than 0",
        );
    }
    model::Limits {
        max_header_bytes,
        header_read_timeout,
        max_concurrent_streams,
        max_connections,
        idle_timeout,
        body_read_timeout,
    }
}

fn inbound(
    cx: &mut Ctx,
    ib: &schema::Inbound,
    backend_ids: &HashMap<String, usize>,
    has_tls: bool,
) -> model::Inbound {
    let listen = cx.addr("inbound.listen", &ib.listen);
    let app = cx.addr("inbound.app", &ib.app);
    let mode = match ib.mode.as_deref() {
        None if has_tls => model::Mode::Strict,
        None | Some("plaintext") => model::Mode::Plaintext,
        Some(m @ ("strict" | "permissive")) => {
            if !has_tls {
                cx.err(
                    "inbound.mode",
                    format!("inbound.mode `{m}` needs the `tls` section (mTLS)"),
                );
            }
            if m == "strict" {
                model::Mode::Strict
            } else {
                model::Mode::Permissive
            }
        }
        Some(m) => {
            cx.err(
                "inbound.mode",
                format!("invalid inbound.mode `{m}`: expected strict, permissive or plaintext"),
            );
            model::Mode::Plaintext
        }
    };
    let authorize = ib.authorize.as_ref().map(|rules| {
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let path = format!("inbound.authorize[{i}]");
            if !names.insert(r.name.clone()) {
                cx.err(
                    &format!("{path}.name"),
                    format!("duplicate rule name `{}`", r.name),
                );
            }
            let mcp = r
                .mcp
                .as_ref()
                .map(|m| mcp_condition(cx, &format!("{path}.mcp"), m));
            let peers = r.peers.as_ref().map(|ps| {
                let mut globs = Vec::new();
                for (j, p) in ps.iter().enumerate() {
                    match model::PeerGlob::new(p) {
                        Ok(g) => globs.push(g),
                        Err(m) => cx.err(&format!("{path}.peers[{j}]"), m),
                    }
                }
                globs
            });
            out.push(model::AuthzRule {
                name: r.name.clone(),
                peers,
                mcp,
            });
        }
        out
    });
    if ib.max_concurrent_requests == Some(0) {
        cx.err(
            "inbound.max_concurrent_requests",
            "max_concurrent_requests must be at least 1",
        );
    }
    let ready = ib.ready_requires.clone().unwrap_or_default();
    for (i, b) in ready.backends.iter().enumerate() {
        if !backend_ids.contains_key(b) {
            cx.err(
                &format!("inbound.ready_requires.backends[{i}]"),
                format!("unknown backend `{b}`"),
            );
        }
    }
    model::Inbound {
        listen,
        app,
        mode,
        authorize,
        max_concurrent_requests: ib.max_concurrent_requests,
        ready_requires_app: ready.app,
        ready_requires_backends: ready.backends,
    }
}

fn backend(cx: &mut Ctx, path: &str, b: &schema::Backend, has_tls: bool) -> model::Backend {
    let tls = b.tls.as_ref().map(|t| {
        if let Err(m) = crate::tls::identity::check_spiffe_id(&t.identity) {
            cx.err(&format!("{path}.tls.identity"), m);
        }
        if !has_tls {
            cx.err_key(
                &format!("{path}.tls"),
                "mTLS to a backend needs the top-level `tls` section (our client certificate)",
            );
        }
        t.identity.clone()
    });
    if b.name.is_empty() {
        cx.err(&format!("{path}.name"), "backend name must not be empty");
    }
    let d = &b.discovery;
    let kinds = [
        d.static_.is_some(),
        d.dns.is_some(),
        d.file.is_some(),
        d.etcd.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        cx.err(
            &format!("{path}.discovery"),
            "discovery needs exactly one of: static, dns, file, etcd",
        );
    }
    for (kind, present) in [
        ("dns", d.dns.is_some()),
        ("file", d.file.is_some()),
        ("etcd", d.etcd.is_some()),
    ] {
        cx.unsupported(&format!("{path}.discovery.{kind}"), present);
    }
    let session_affinity = match b.session_affinity.as_deref() {
        None | Some("none") => false,
        Some("mcp") => true,
        Some(other) => {
            cx.err(
                &format!("{path}.session_affinity"),
                format!("invalid session_affinity `{other}`: expected mcp or none"),
            );
            false
        }
    };
    let mut endpoints = Vec::new();
    if let Some(list) = &d.static_ {
        if list.is_empty() {
            cx.err(
                &format!("{path}.discovery.static"),
                "static discovery needs at least one address",
            );
        }
        for (i, a) in list.iter().enumerate() {
            let ep = cx.addr(&format!("{path}.discovery.static[{i}]"), a);
            if endpoints.contains(&ep) {
                cx.err(
                    &format!("{path}.discovery.static[{i}]"),
                    format!("duplicate endpoint `{a}`"),
                );
            }
            endpoints.push(ep);
        }
    }
    let protocol = match b.protocol.as_deref() {
        None | Some("auto") => Protocol::Auto,
        Some("http1") => Protocol::Http1,
        Some("http2") => Protocol::Http2,
        Some(p) => {
            cx.err(
                &format!("{path}.protocol"),
                format!("invalid protocol `{p}`: expected http1, http2 or auto"),
            );
            Protocol::Auto
        }
    };
    let resilience = backend_resilience(cx, path, b);
    let ct_path = format!("{path}.connect_timeout");
    let connect_timeout = cx.duration(
        &ct_path,
        b.connect_timeout.as_ref(),
        defaults::CONNECT_TIMEOUT,
    );
    if connect_timeout.is_zero() {
        cx.err(&ct_path, "connect_timeout must be greater than 0");
    }
    let h2_keepalive = h2_keepalive(cx, path, b.h2_keepalive.as_ref());
    model::Backend {
        name: b.name.clone(),
        endpoints,
        tls,
        session_affinity,
        protocol,
        connect_timeout,
        resilience,
        h2_keepalive,
    }
}

/// `h2_keepalive`: on by default; `interval: 0s` turns it off.
fn h2_keepalive(
    cx: &mut Ctx,
    path: &str,
    k: Option<&schema::H2Keepalive>,
) -> Option<model::H2Keepalive> {
    let interval = cx.duration(
        &format!("{path}.h2_keepalive.interval"),
        k.and_then(|k| k.interval.as_ref()),
        defaults::H2_KEEPALIVE_INTERVAL,
    );
    let timeout_path = format!("{path}.h2_keepalive.timeout");
    let timeout = cx.duration(
        &timeout_path,
        k.and_then(|k| k.timeout.as_ref()),
        defaults::H2_KEEPALIVE_TIMEOUT,
    );
    if timeout.is_zero() {
        cx.err(&timeout_path, "h2_keepalive.timeout must be greater than 0");
    }
    (!interval.is_zero()).then_some(model::H2Keepalive { interval, timeout })
}

fn route(
    cx: &mut Ctx,
    path: &str,
    r: &schema::Route,
    backend_ids: &HashMap<String, usize>,
) -> model::Route {
    if r.name.is_empty() {
        cx.err(&format!("{path}.name"), "route name must not be empty");
    }
    let m = &r.match_;
    let mcp = m
        .mcp
        .as_ref()
        .map(|c| mcp_condition(cx, &format!("{path}.match.mcp"), c));
    let retry = r
        .retry
        .as_ref()
        .map(|rt| route_retry(cx, &format!("{path}.retry"), rt));
    let host = match m.host.as_deref().map(str::to_ascii_lowercase) {
        None => HostMatch::Any,
        Some(h) if h == "*" => HostMatch::Any,
        Some(h) => {
            match h.strip_prefix("*.") {
                Some(s) if valid_host(s) => HostMatch::Suffix(s.to_owned()),
                None if valid_host(&h) => HostMatch::Exact(h),
                _ => {
                    cx.err(
                    &format!("{path}.match.host"),
                    format!("invalid host `{h}`: expected a host name, host:port, `*.suffix` or `*`"),
                );
                    HostMatch::Any
                }
            }
        }
    };
    let pm = match (&m.path, &m.path_prefix) {
        (Some(_), Some(_)) => {
            cx.err(
                &format!("{path}.match"),
                "use either `path` or `path_prefix`, not both",
            );
            PathMatch::Any
        }
        (Some(p), None) => PathMatch::Exact(p.clone()),
        (None, Some(p)) if p == "/" => PathMatch::Any,
        (None, Some(p)) => PathMatch::Prefix(p.clone()),
        (None, None) => PathMatch::Any,
    };
    for (key, v) in [("path", &m.path), ("path_prefix", &m.path_prefix)] {
        if v.as_deref().is_some_and(|p| !p.starts_with('/')) {
            cx.err(&format!("{path}.match.{key}"), "paths must start with `/`");
        }
    }
    let method = m
        .method
        .as_deref()
        .and_then(|s| match Method::from_bytes(s.as_bytes()) {
            Ok(mm) if s.bytes().all(|b| !b.is_ascii_lowercase()) => Some(mm),
            _ => {
                cx.err(
                    &format!("{path}.match.method"),
                    format!("invalid method `{s}`: use an upper-case HTTP method such as POST"),
                );
                None
            }
        });
    let mut headers = Vec::new();
    for (k, v) in &m.headers {
        if let Some(pair) = header_pair(cx, &format!("{path}.match.headers.{k}"), k, v) {
            headers.push(pair);
        }
    }
    let mut to = Vec::new();
    let mut total: u64 = 0;
    if r.to.is_empty() {
        cx.err(
            &format!("{path}.to"),
            "a route needs at least one backend in `to`",
        );
    }
    for (i, w) in r.to.iter().enumerate() {
        match backend_ids.get(&w.backend) {
            Some(id) => to.push((*id, w.weight)),
            None => cx.err(
                &format!("{path}.to[{i}].backend"),
                format!("unknown backend `{}`", w.backend),
            ),
        }
        total += u64::from(w.weight);
    }
    if !r.to.is_empty() && total == 0 {
        cx.err(
            &format!("{path}.to"),
            "total weight of `to` must be greater than 0",
        );
    }
    let total_weight = u32::try_from(total).unwrap_or_else(|_| {
        cx.err(
            &format!("{path}.to"),
            "total weight of `to` is too large (max 4294967295)",
        );
        1
    });
    let timeout = cx.duration(
        &format!("{path}.timeout"),
        r.timeout.as_ref(),
        defaults::ROUTE_TIMEOUT,
    );
    let idle_path = format!("{path}.idle_timeout");
    let idle_timeout = cx.duration(&idle_path, r.idle_timeout.as_ref(), defaults::IDLE_TIMEOUT);
    let request_headers = edits(
        cx,
        &format!("{path}.request_headers"),
        r.request_headers.as_ref(),
    );
    let response_headers = edits(
        cx,
        &format!("{path}.response_headers"),
        r.response_headers.as_ref(),
    );
    model::Route {
        mcp,
        name: r.name.clone(),
        host,
        path: pm,
        method,
        headers,
        to,
        total_weight,
        timeout,
        idle_timeout,
        request_headers,
        response_headers,
        retry,
    }
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'[' | b']')
        })
}

fn header_pair(cx: &mut Ctx, path: &str, k: &str, v: &str) -> Option<(HeaderName, HeaderValue)> {
    let name = HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes());
    let value = HeaderValue::from_str(v);
    match (name, value) {
        (Ok(n), Ok(v)) => Some((n, v)),
        (Err(_), _) => {
            cx.err_key(path, format!("invalid header name `{k}`"));
            None
        }
        (_, Err(_)) => {
            cx.err(path, format!("invalid header value for `{k}`"));
            None
        }
    }
}

fn edits(cx: &mut Ctx, path: &str, e: Option<&schema::HeaderEdits>) -> model::HeaderEdits {
    let mut out = model::HeaderEdits::default();
    let Some(e) = e else { return out };
    for (k, v) in &e.set {
        let p = format!("{path}.set.{k}");
        if let Some((n, v)) = header_pair(cx, &p, k, v) {
            if is_hop_by_hop(&n) {
                cx.err_key(
                    &p,
                    format!("`{k}` is a hop-by-hop header and cannot be set"),
                );
            }
            out.set.push((n, v));
        }
    }
    for (i, k) in e.remove.iter().enumerate() {
        match HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()) {
            Ok(n) => out.remove.push(n),
            Err(_) => cx.err(
                &format!("{path}.remove[{i}]"),
                format!("invalid header name `{k}`"),
            ),
        }
    }
    out
}

fn check_listener_clash(
    cx: &mut Ctx,
    admin: SocketAddr,
    metrics: SocketAddr,
    inbound: Option<&model::Inbound>,
    outbound: Option<&model::Outbound>,
) {
    let mut seen: Vec<(&str, SocketAddr)> = vec![("admin.listen", admin)];
    let mut rest = vec![("metrics.listen", metrics)];
    if let Some(i) = inbound {
        rest.push(("inbound.listen", i.listen));
    }
    if let Some(o) = outbound {
        rest.push(("outbound.listen", o.listen));
    }
    for (path, addr) in rest {
        if addr.port() != 0 {
            if let Some((other, _)) = seen.iter().find(|(_, a)| *a == addr) {
                cx.err(path, format!("address {addr} is already used by {other}"));
            }
        }
        seen.push((path, addr));
    }
}
