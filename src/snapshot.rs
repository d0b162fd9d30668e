//! One immutable runtime view of a config generation: route table, per-route metric handles,
//! per-backend state (endpoints, balancer, one upstream client per worker).
//!
//! Owns: building that view from a `config::Loaded`. Readers hold an `Arc<Snapshot>` for the
//! life of a request; a new config means a new snapshot swapped in whole.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use tokio::sync::Semaphore;

use http::uri::Authority;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::balance::RoundRobin;
use crate::config::model::{Backend, Protocol, Route};
use crate::config::Loaded;
use crate::proxy::connect::{Connector, UpstreamTls};
use crate::routing::Table;
use crate::telemetry::metrics::{Direction, Metrics, RouteBackendMetrics};
use crate::tls::{Alpn, TlsStore};

pub type UpstreamClient = Client<Connector, Incoming>;

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
}

pub struct RouteState {
    pub route: Route,
    /// One entry per element of `route.to`, in the same order.
    pub metrics: Vec<RouteBackendMetrics>,
}

impl AsRef<Route> for RouteState {
    fn as_ref(&self) -> &Route {
        &self.route
    }
}

pub struct BackendState {
    pub backend: Backend,
    pub endpoints: Vec<EndpointState>,
    pub rr: RoundRobin,
    /// One client (and so one connection pool) per worker thread: no cross-thread sharing.
    pub clients: Vec<UpstreamClient>,
}

pub struct EndpointState {
    pub addr: SocketAddr,
    pub authority: Authority,
    /// Requests sent and not yet answered with headers.
    pub active: AtomicUsize,
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
                },
                deps,
            )),
        });
        let app_metrics = app
            .as_ref()
            .map(|_| metrics.route_backend(Direction::Inbound, "", APP_BACKEND));
        for b in &backends {
            metrics
                .backend_endpoints
                .with_label_values(&[&b.backend.name, "healthy"])
                .set(b.endpoints.len() as i64);
            for state in ["unhealthy", "ejected"] {
                metrics
                    .backend_endpoints
                    .with_label_values(&[&b.backend.name, state])
                    .set(0);
            }
        }
        for gone in prev.iter().flat_map(|p| p.backends.iter()) {
            if !config.backends.iter().any(|b| b.name == gone.backend.name) {
                for state in ["healthy", "unhealthy", "ejected"] {
                    let _ = metrics
                        .backend_endpoints
                        .remove_label_values(&[&gone.backend.name, state]);
                }
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
        metrics.config_generation.set(generation as i64);
        Snapshot {
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
        let endpoints = backend
            .endpoints
            .iter()
            .map(|a| EndpointState {
                addr: *a,
                authority: a
                    .to_string()
                    .parse()
                    .expect("a socket address is a valid authority"),
                active: AtomicUsize::new(0),
            })
            .collect();
        let clients = (0..deps.workers.max(1))
            .map(|_| client(&backend, deps))
            .collect();
        BackendState {
            backend,
            endpoints,
            rr: RoundRobin::default(),
            clients,
        }
    }
}

fn client(b: &Backend, deps: &Deps) -> UpstreamClient {
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
        }),
        // Validation guarantees a store whenever a backend asks for TLS.
        _ => None,
    };
    let conn = Connector {
        connect_timeout: b.connect_timeout,
        tls,
    };
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .set_host(false);
    if b.protocol == Protocol::Http2 {
        builder.http2_only(true);
    }
    builder.build(conn)
}

/// What building a snapshot needs besides the config.
#[derive(Clone)]
pub struct Deps {
    pub metrics: Metrics,
    pub workers: usize,
    /// The sidecar's TLS material, when `tls` is configured.
    pub tls: Option<Arc<TlsStore>>,
}
