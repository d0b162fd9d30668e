//! One immutable runtime view of a config generation: route table, per-route metric handles
//! and retry budgets, per-backend state (endpoints with their load/outlier/health state, the
//! resilience policy, one upstream pool per worker, health-check task).
//!
//! Owns: building that view from a `config::Loaded`. Readers hold an `Arc<Snapshot>` for the
//! life of a request; a new config means a new snapshot swapped in whole.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Semaphore};
use tracing::Instrument;

use http::uri::Authority;

use crate::config::model::{Backend, Protocol, Route};
use crate::config::Loaded;
use crate::proxy::body::UpstreamBody;
use crate::proxy::connect::UpstreamTls;
use crate::proxy::pool::{Pool, Settings as PoolSettings};
use crate::resilience::{self, RetryBudget};
use crate::routing::Table;
use crate::telemetry::metrics::{Direction, Metrics, RouteBackendMetrics};
use crate::tls::{Alpn, TlsStore};

/// Name of the synthetic backend that stands for the local app on the inbound side.
pub const APP_BACKEND: &str = "app";

pub struct Snapshot {
    pub loaded: Loaded,
    pub generation: u64,
    pub table: Table,
    pub routes: Vec<RouteState>,
    pub backends: Vec<Arc<BackendState>>,
    /// The local app (inbound target), when an inbound listener is configured.
    pub app: Option<Arc<BackendState>>,
    pub app_metrics: Option<RouteBackendMetrics>,
    /// `inbound.max_concurrent_requests`, shared across workers; kept across reloads while
    /// the limit is unchanged.
    pub inbound_limit: Option<Arc<Semaphore>>,
    /// Some route, rule or retry policy looks at MCP methods/tools: a JSON body too large to
    /// inspect is refused (413) instead of passed through unclassified.
    pub needs_mcp_body: bool,
}

pub struct RouteState {
    pub route: Route,
    /// One entry per element of `route.to`, in the same order.
    pub metrics: Vec<RouteBackendMetrics>,
    /// The route's retry budget (shared by all workers), when it retries.
    pub budget: Option<Arc<RetryBudget>>,
    /// `outrider_retry_budget_exhausted_total{route}`.
    pub budget_exhausted: prometheus::IntCounter,
}

impl AsRef<Route> for RouteState {
    fn as_ref(&self) -> &Route {
        &self.route
    }
}

pub struct BackendState {
    pub backend: Backend,
    /// Addresses as URI authorities, indexed like `eps`.
    pub authorities: Vec<Authority>,
    /// Load, outlier and health state per endpoint (what the balancer picks from).
    pub eps: Vec<Arc<resilience::Endpoint>>,
    /// Balancer, outlier detector and concurrency limits of this backend.
    pub policy: resilience::Backend,
    /// One connection pool per worker thread: no cross-thread sharing.
    pub pools: Vec<Pool>,
    /// Ejections already added to `outrider_outlier_ejections_total`.
    pub ejections_reported: AtomicU64,
    /// Dropping the state (backend removed or changed by a reload) stops its health checks.
    _health_stop: Option<watch::Sender<bool>>,
}

impl Snapshot {
    /// Builds the view of `loaded`. With `prev`, backends whose definition is unchanged keep
    /// their state (connection pools, balancer position) by sharing the same `BackendState`.
    pub fn build(
        loaded: Loaded,
        generation: u64,
        deps: &Deps,
        prev: Option<&Snapshot>,
    ) -> Snapshot {
        let metrics = &deps.metrics;
        let config = loaded.config.clone();
        let reuse = |b: &Backend| -> Option<Arc<BackendState>> {
            prev?.backends.iter().find(|s| s.backend == *b).cloned()
        };
        let backends: Vec<Arc<BackendState>> = config
            .backends
            .iter()
            .map(|b| reuse(b).unwrap_or_else(|| Arc::new(BackendState::new(b.clone(), deps))))
            .collect();
        let routes = config
            .outbound
            .iter()
            .flat_map(|o| o.routes.iter())
            .map(|r| RouteState {
                budget: r.retry.as_ref().map(|rt| {
                    // Unchanged routes keep their budget (and its history) across reloads.
                    prev.and_then(|p| p.routes.iter().find(|o| o.route == *r))
                        .and_then(|o| o.budget.clone())
                        .unwrap_or_else(|| Arc::new(RetryBudget::new(&rt.settings.budget)))
                }),
                budget_exhausted: metrics.retry_budget_exhausted.with_label_values(&[&r.name]),
                metrics: r
                    .to
                    .iter()
                    .map(|(b, _)| {
                        metrics.route_backend(
                            Direction::Outbound,
                            &r.name,
                            &config.backends[*b].name,
                        )
                    })
                    .collect(),
                route: r.clone(),
            })
            .collect();
        let table = Table::new(config.outbound.as_ref().map_or(&[][..], |o| &o.routes));
        let prev_app = prev.and_then(|p| p.app.clone());
        let app = config.inbound.as_ref().map(|ib| match prev_app {
            Some(a) if a.backend.endpoints == [ib.app] => a,
            _ => Arc::new(BackendState::new(
                Backend {
                    name: APP_BACKEND.to_owned(),
                    endpoints: vec![ib.app],
                    tls: None,
                    session_affinity: false,
                    protocol: Protocol::Http1,
                    // The local app is never ejected: with one endpoint that would turn its
                    // own 5xx into `circuit-open` for everyone.
                    resilience: crate::resilience::Settings {
                        balance: crate::resilience::BalanceKind::RoundRobin,
                        outlier: crate::resilience::OutlierSettings {
                            max_ejected_percent: 0,
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                    connect_timeout: crate::config::validate::defaults::CONNECT_TIMEOUT,
                    // The local app is spoken to over HTTP/1.1.
                    h2_keepalive: None,
                },
                deps,
            )),
        });
        let app_metrics = app
            .as_ref()
            .map(|_| metrics.route_backend(Direction::Inbound, "", APP_BACKEND));
        for b in &backends {
            b.report_metrics(metrics);
            // The series exists from the start (0); sessions are counted by the request path and
            // survive reloads, so the value is never reset here.
            metrics.mcp_sessions.with_label_values(&[&b.backend.name]);
        }
        // A static endpoint list is one discovery update when its backend (re)appears.
        for b in &config.backends {
            let fresh = prev.is_none_or(|p| !p.backends.iter().any(|o| o.backend == *b));
            if fresh {
                metrics
                    .discovery_updates
                    .with_label_values(&[&b.name, "static", "success"])
                    .inc();
            }
        }
        for gone in prev.iter().flat_map(|p| p.backends.iter()) {
            if !config.backends.iter().any(|b| b.name == gone.backend.name) {
                let name = gone.backend.name.as_str();
                for state in ["healthy", "unhealthy", "ejected"] {
                    let _ = metrics
                        .backend_endpoints
                        .remove_label_values(&[name, state]);
                }
                let _ = metrics.backend_active_requests.remove_label_values(&[name]);
                let _ = metrics.circuit_breaker_open.remove_label_values(&[name]);
                let _ = metrics.mcp_sessions.remove_label_values(&[name]);
            }
        }
        let limit = config
            .inbound
            .as_ref()
            .and_then(|ib| ib.max_concurrent_requests);
        let prev_limit = prev.and_then(|p| {
            let n = p.loaded.config.inbound.as_ref()?.max_concurrent_requests?;
            Some((n, p.inbound_limit.clone()?))
        });
        let inbound_limit = limit.map(|n| match prev_limit {
            Some((old, sem)) if old == n => sem,
            _ => Arc::new(Semaphore::new(n as usize)),
        });
        let needs_mcp_body = config
            .outbound
            .iter()
            .flat_map(|o| o.routes.iter())
            .any(|r| {
                r.mcp.as_ref().is_some_and(|m| !m.is_unconstrained())
                    || r.retry
                        .as_ref()
                        .is_some_and(|rt| !rt.idempotent_tools.is_empty())
            })
            || config
                .inbound
                .iter()
                .flat_map(|i| i.authorize.iter().flatten())
                .any(|rule| rule.mcp.as_ref().is_some_and(|m| !m.is_unconstrained()));
        metrics.config_generation.set(generation as i64);
        Snapshot {
            needs_mcp_body,
            loaded,
            generation,
            table,
            routes,
            backends,
            app,
            app_metrics,
            inbound_limit,
        }
    }
}

impl BackendState {
    pub fn new(backend: Backend, deps: &Deps) -> BackendState {
        let now = tokio::time::Instant::now();
        let authorities = backend
            .endpoints
            .iter()
            .map(|a| {
                a.to_string()
                    .parse()
                    .expect("a socket address is a valid authority")
            })
            .collect();
        let eps: Vec<Arc<resilience::Endpoint>> = backend
            .endpoints
            .iter()
            .map(|a| Arc::new(resilience::Endpoint::new(*a, now)))
            .collect();
        let health_stop = backend
            .resilience
            .health
            .as_ref()
            .and_then(|h| spawn_health_checks(&backend, h, &eps, deps));
        let pools = (0..deps.workers.max(1))
            .map(|_| pool(&backend, deps))
            .collect();
        BackendState {
            pools,
            policy: resilience::Backend::new(&backend.resilience),
            backend,
            authorities,
            eps,
            ejections_reported: AtomicU64::new(0),
            _health_stop: health_stop,
        }
    }

    /// Refreshes the backend gauges of SPEC §8 (called when metrics are scraped).
    pub fn report_metrics(&self, metrics: &Metrics) {
        let s = self.policy.summary(&self.eps, tokio::time::Instant::now());
        let name = self.backend.name.as_str();
        for (state, n) in [
            ("healthy", s.healthy),
            ("unhealthy", s.unhealthy),
            ("ejected", s.ejected),
        ] {
            metrics
                .backend_endpoints
                .with_label_values(&[name, state])
                .set(n as i64);
        }
        metrics
            .backend_active_requests
            .with_label_values(&[name])
            .set(s.active_requests as i64);
        metrics
            .circuit_breaker_open
            .with_label_values(&[name])
            .set(i64::from(s.circuit_open));
        let before = self
            .ejections_reported
            .swap(s.ejections_total, Ordering::Relaxed);
        metrics
            .outlier_ejections
            .with_label_values(&[name])
            .inc_by(s.ejections_total.saturating_sub(before));
    }
}

/// Starts active health checks of one backend on the admin runtime; the returned sender
/// stops them when dropped.
fn spawn_health_checks(
    backend: &Backend,
    settings: &resilience::HealthSettings,
    eps: &[Arc<resilience::Endpoint>],
    deps: &Deps,
) -> Option<watch::Sender<bool>> {
    let Some(rt) = &deps.runtime else {
        tracing::warn!(backend = %backend.name, "no runtime for health checks; endpoints stay healthy");
        return None;
    };
    let (tx, rx) = watch::channel(false);
    let pool = Arc::new(pool(backend, deps));
    let eps = eps.to_vec();
    let settings = settings.clone();
    let path: Arc<str> = Arc::from(settings.path.as_str());
    let span = tracing::info_span!("health_check", backend = %backend.name);
    rt.spawn(
        async move {
            let probe = |addr: SocketAddr| {
                let (pool, path) = (pool.clone(), path.clone());
                async move {
                    let Ok(uri) = http::Uri::try_from(format!("http://{addr}{path}")) else {
                        return false;
                    };
                    let mut req = http::Request::new(UpstreamBody::empty());
                    *req.uri_mut() = uri;
                    req.headers_mut().insert(
                        http::header::HOST,
                        http::HeaderValue::from_static("outrider-health-check"),
                    );
                    matches!(pool.send(addr, req).await, Ok((r, _)) if r.status().is_success())
                }
            };
            resilience::run_checks(&eps, &settings, probe, rx).await;
        }
        .instrument(span),
    );
    Some(tx)
}

/// The connection pool of one backend for one worker (or the health checks).
fn pool(b: &Backend, deps: &Deps) -> Pool {
    let tls = match (&b.tls, &deps.tls) {
        (Some(expected), Some(store)) => Some(UpstreamTls {
            store: store.clone(),
            expected: Arc::from(expected.as_str()),
            alpn: match b.protocol {
                Protocol::Http1 => Alpn::Http1,
                Protocol::Http2 => Alpn::H2,
                Protocol::Auto => Alpn::Auto,
            },
            errors: deps.metrics.tls_handshake_errors.clone(),
            handshakes: deps.metrics.tls_handshakes.with_label_values(&["outbound"]),
        }),
        // Validation guarantees a store whenever a backend asks for TLS.
        _ => None,
    };
    let settings = PoolSettings {
        connect_timeout: b.connect_timeout,
        h2_prior_knowledge: b.protocol == Protocol::Http2,
        h2_keepalive: b.h2_keepalive,
        ..PoolSettings::default()
    };
    Pool::with_tls(settings, tls)
}

/// What building a snapshot needs besides the config.
#[derive(Clone)]
pub struct Deps {
    pub metrics: Metrics,
    pub workers: usize,
    /// Where background tasks (health checks) run: the admin runtime.
    pub runtime: Option<tokio::runtime::Handle>,
    /// The sidecar's TLS material, when `tls` is configured.
    pub tls: Option<Arc<TlsStore>>,
}
