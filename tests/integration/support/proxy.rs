//! Boot outrider in-process ([`TestProxy`]) from YAML built by [`Cfg`] (or a config file, for
//! hot reload), with every listener on 127.0.0.1:0, and talk to its listeners.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use outrider::config::Loaded;
use outrider::{App, AppHandle, AppOptions};

use super::client::{self, Client, Resp};
use super::{body, metrics};

/// Builds a complete config YAML so tests only state what they care about.
/// Routes and backends are given as YAML flow mappings (`{ name: r1, ... }`).
#[derive(Clone, Debug)]
pub struct Cfg {
    drain_timeout: String,
    limits: String,
    inbound: Option<String>,
    routes: Vec<String>,
    backends: Vec<String>,
    extra: Vec<String>,
}

impl Default for Cfg {
    fn default() -> Self {
        Cfg::new()
    }
}

impl Cfg {
    pub fn new() -> Cfg {
        Cfg {
            drain_timeout: "5s".into(),
            limits:
                "{ max_header_bytes: 16KiB, header_read_timeout: 5s, max_concurrent_streams: 100 }"
                    .into(),
            inbound: None,
            routes: Vec::new(),
            backends: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// One backend `b1` at `addr` and one route `r1` for host `svc` to it.
    pub fn single(addr: SocketAddr) -> Cfg {
        Cfg::new()
            .backend("b1", addr)
            .route("{ name: r1, match: { host: svc }, to: [{ backend: b1 }] }")
    }

    /// Add an outbound route, a YAML flow mapping.
    pub fn route(mut self, flow: &str) -> Cfg {
        self.routes.push(flow.to_string());
        self
    }

    /// Route `name` for host `host` to backend `backend`, plus `extra` keys (`timeout: 1s`).
    pub fn host_route(self, name: &str, host: &str, backend: &str, extra: &str) -> Cfg {
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(", {extra}")
        };
        self.route(&format!("{{ name: {name}, match: {{ host: \"{host}\" }}, to: [{{ backend: {backend} }}]{extra} }}"))
    }

    /// Add a plain HTTP/1.1 backend with one static endpoint.
    pub fn backend(self, name: &str, addr: SocketAddr) -> Cfg {
        self.backend_with(name, addr, "protocol: http1")
    }

    /// Add a backend with one static endpoint and extra keys (`protocol: http2`).
    pub fn backend_with(mut self, name: &str, addr: SocketAddr, extra: &str) -> Cfg {
        self.backends.push(format!(
            "{{ name: {name}, discovery: {{ static: [\"{addr}\"] }}, connect_timeout: 1s, {extra} }}"
        ));
        self
    }

    /// Enable the inbound listener (plaintext) forwarding to `app`.
    pub fn inbound(mut self, app: SocketAddr, max_concurrent_requests: usize) -> Cfg {
        self.inbound = Some(format!(
            "{{ listen: 127.0.0.1:0, app: \"{app}\", mode: plaintext, max_concurrent_requests: {max_concurrent_requests} }}"
        ));
        self
    }

    pub fn drain_timeout(mut self, d: &str) -> Cfg {
        self.drain_timeout = d.to_string();
        self
    }

    /// Replace the `limits:` flow mapping.
    pub fn limits(mut self, flow: &str) -> Cfg {
        self.limits = flow.to_string();
        self
    }

    /// Append a raw top-level YAML line.
    pub fn raw(mut self, line: &str) -> Cfg {
        self.extra.push(line.to_string());
        self
    }

    pub fn yaml(&self) -> String {
        let mut y = String::new();
        let _ = writeln!(
            y,
            "version: 1\nservice: test\ndrain_timeout: {}",
            self.drain_timeout
        );
        let _ = writeln!(y, "limits: {}", self.limits);
        y.push_str("admin: { listen: 127.0.0.1:0 }\nmetrics: { listen: 127.0.0.1:0 }\n");
        if let Some(inbound) = &self.inbound {
            let _ = writeln!(y, "inbound: {inbound}");
        }
        y.push_str("outbound:\n  listen: 127.0.0.1:0\n");
        if self.routes.is_empty() {
            y.push_str("  routes: []\n");
        } else {
            y.push_str("  routes:\n");
            for r in &self.routes {
                let _ = writeln!(y, "    - {r}");
            }
        }
        if self.backends.is_empty() {
            y.push_str("backends: []\n");
        } else {
            y.push_str("backends:\n");
            for b in &self.backends {
                let _ = writeln!(y, "  - {b}");
            }
        }
        for line in &self.extra {
            let _ = writeln!(y, "{line}");
        }
        y
    }

    pub fn start(&self) -> TestProxy {
        TestProxy::start(self.yaml())
    }
}

/// A running outrider (1 worker). Dropping it shuts the proxy down.
pub struct TestProxy {
    handle: Option<AppHandle>,
    pub client: Client,
    outbound: Option<SocketAddr>,
    inbound: Option<SocketAddr>,
    admin: SocketAddr,
    metrics: SocketAddr,
    yaml: String,
}

impl TestProxy {
    /// Validate `yaml` and start the app. Panics with the rendered errors if invalid.
    pub fn start(yaml: String) -> TestProxy {
        let loaded = match outrider::config::load_str(&yaml, "test.yaml") {
            Ok(loaded) => loaded,
            Err(errors) => panic!("test config rejected:\n{errors}\n--- config ---\n{yaml}"),
        };
        TestProxy::start_loaded(loaded, yaml)
    }

    /// Start from a config file, which the proxy then watches for hot reload (SPEC §4).
    pub fn start_file(path: &Path) -> TestProxy {
        let yaml =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let loaded = match outrider::config::load_file(path) {
            Ok(loaded) => loaded,
            Err(errors) => panic!("test config rejected:\n{errors}\n--- config ---\n{yaml}"),
        };
        TestProxy::start_loaded(loaded, yaml)
    }

    /// Like [`TestProxy::start`], but a failing `App::start` (a port still in use, say) is
    /// returned as its message instead of panicking. The config must be valid.
    pub fn try_start(yaml: String) -> Result<TestProxy, String> {
        let loaded = match outrider::config::load_str(&yaml, "test.yaml") {
            Ok(loaded) => loaded,
            Err(errors) => panic!("test config rejected:\n{errors}\n--- config ---\n{yaml}"),
        };
        TestProxy::try_start_loaded(loaded, yaml)
    }

    fn start_loaded(loaded: Loaded, yaml: String) -> TestProxy {
        TestProxy::try_start_loaded(loaded, yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start_loaded(loaded: Loaded, yaml: String) -> Result<TestProxy, String> {
        // App::start may build and block on its own runtime: keep it off the test's runtime.
        #[allow(clippy::needless_update)] // AppOptions may grow fields; keep their defaults
        let started = std::thread::spawn(move || {
            App::start(
                loaded,
                AppOptions {
                    workers: 1,
                    ..Default::default()
                },
            )
        })
        .join()
        .expect("App::start panicked");
        let handle =
            started.map_err(|e| format!("App::start failed: {e}\n--- config ---\n{yaml}"))?;
        Ok(TestProxy {
            outbound: handle.outbound_addr(),
            inbound: handle.inbound_addr(),
            admin: handle.admin_addr(),
            metrics: handle.metrics_addr(),
            handle: Some(handle),
            client: Client::new(),
            yaml,
        })
    }

    pub fn yaml(&self) -> &str {
        &self.yaml
    }

    pub fn outbound_addr(&self) -> SocketAddr {
        self.outbound.expect("outbound listener not configured")
    }

    pub fn inbound_addr(&self) -> SocketAddr {
        self.inbound.expect("inbound listener not configured")
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
    }

    pub fn outbound_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.outbound_addr())
    }

    pub fn inbound_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.inbound_addr())
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn metrics_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.metrics)
    }

    /// GET `path` through the outbound listener with `Host: host`.
    pub async fn get(&self, host: &str, path: &str) -> Resp {
        self.client.get_host(self.outbound_addr(), host, path).await
    }

    /// A request builder aimed at the outbound listener with `Host: host`.
    pub fn request(&self, host: &str, path: &str) -> http::request::Builder {
        client::request(self.outbound_addr(), host, path)
    }

    /// Send a request built with [`TestProxy::request`] and an empty body.
    pub async fn send(&self, builder: http::request::Builder) -> Resp {
        self.client
            .request(builder.body(body::empty()).unwrap())
            .await
    }

    /// Scrape `/metrics` on the metrics listener (must answer 200).
    pub async fn metrics_text(&self) -> String {
        let resp = self.client.get(&self.metrics_url("/metrics")).await;
        assert_eq!(resp.status, 200, "GET /metrics: {}", resp.text());
        resp.text()
    }

    /// Current value of a metric series (sum over series matching `labels`).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        metrics::value(&self.metrics_text().await, name, labels)
    }

    /// Wait until the series reaches `expected`. Metrics may be recorded after the response
    /// reached the client and the proxy offers no signal for that, so this is a bounded poll
    /// (the `eventually` of this helper); on failure it prints the last scrape.
    pub async fn wait_metric(&self, name: &str, labels: &[(&str, &str)], expected: f64) {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let text = self.metrics_text().await;
            let value = metrics::value(&text, name, labels);
            if value == Some(expected) {
                return;
            }
            if Instant::now() > deadline {
                panic!("{name}{labels:?}: expected {expected}, last value {value:?}\n--- scrape ---\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until no connection of `direction` is open: the connection and every stream task
    /// it spawned (each holds the connection's guard) are gone, so nothing more can reach the
    /// upstream on its behalf.
    pub async fn wait_connections_closed(&self, direction: &str) {
        self.wait_metric(
            "outrider_connections_open",
            &[("direction", direction)],
            0.0,
        )
        .await;
    }

    /// Start a graceful drain (same as `POST /drain`).
    pub fn drain(&self) {
        self.handle.as_ref().expect("proxy already stopped").drain();
    }

    /// Wait (bounded by `limit`) until the proxy has fully stopped.
    pub async fn wait(mut self, limit: Duration) {
        let handle = self.handle.take().expect("proxy already stopped");
        super::within(limit, "the proxy to stop", handle.wait()).await;
    }

    /// Stop at once, dropping open connections (what a killed process does to its peers), and
    /// wait, bounded by `limit`, until the proxy has fully stopped and closed its listeners.
    pub async fn stop(mut self, limit: Duration) {
        let handle = self.handle.take().expect("proxy already stopped");
        handle.stop();
        super::within(limit, "the proxy to stop", handle.wait()).await;
    }

    /// GET on the admin listener.
    pub async fn admin_get(&self, path: &str) -> Resp {
        self.client.get(&self.admin_url(path)).await
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            // The handle may shut down its own runtime: never do that on the test's runtime.
            std::thread::spawn(move || drop(handle));
        }
    }
}
