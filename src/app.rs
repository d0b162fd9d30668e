//! Wiring: binds listeners, builds the first snapshot, starts worker threads (one
//! current-thread runtime each, with its own `SO_REUSEPORT` listener and connection pools)
//! and a separate admin thread, and runs the drain sequence.
//!
//! Owns: `App::start`, `AppHandle` (addresses, drain, stop, wait) and process lifecycle.
//! Does not own: what happens to a request (see `proxy`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;
use tracing::{info, warn, Instrument};

use crate::admin::{self, AdminState};
use crate::config::model::Limits;
use crate::config::watch::DirWatch;
use crate::config::Loaded;
use crate::proxy::{self, ConnTracker, Lifecycle, Shared, Worker};
use crate::reload::{Attempt, Reloader, Trigger};
use crate::snapshot::{Deps, Snapshot};
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::metrics::{Direction, Metrics};
use crate::telemetry::otlp::Exporter;
use crate::tls::TlsStore;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::Error),
    #[error("cannot listen on {addr} ({listener}): {source}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start {what}: {source}")]
    Start {
        what: &'static str,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Data-path worker threads (each a current-thread runtime). Default: available cores.
    pub workers: usize,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            workers: thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

pub struct App;

/// A running proxy. Dropping it stops everything without waiting for in-flight requests.
pub struct AppHandle {
    pub outbound: Option<SocketAddr>,
    pub inbound: Option<SocketAddr>,
    pub admin: SocketAddr,
    pub metrics: SocketAddr,
    lifecycle_tx: Arc<watch::Sender<Lifecycle>>,
    done: watch::Receiver<bool>,
    reloader: Arc<Reloader>,
    access_log: Option<Arc<AccessLog>>,
}

type ListenerSet = Vec<(std::net::TcpListener, Direction)>;

impl App {
    pub fn start(loaded: Loaded, opts: AppOptions) -> Result<AppHandle, Error> {
        let workers = opts.workers.max(1);
        let config = loaded.config.clone();
        for warning in exposure_warnings(config.admin, config.outbound.as_ref().map(|o| o.listen)) {
            tracing::warn!("{warning}");
        }
        let admin_l = bind(config.admin, "admin", 1)?.remove(0);
        let metrics_l = bind(config.metrics, "metrics", 1)?.remove(0);
        let mut per_worker: Vec<ListenerSet> = (0..workers).map(|_| Vec::new()).collect();
        let mut outbound = None;
        if let Some(o) = &config.outbound {
            let group = bind(o.listen, "outbound", workers)?;
            outbound = Some(group[0].local_addr().expect("bound socket has an address"));
            for (i, l) in group.into_iter().enumerate() {
                per_worker[i].push((l, Direction::Outbound));
            }
        }
        let mut inbound = None;
        if let Some(ib) = &config.inbound {
            let group = bind(ib.listen, "inbound", workers)?;
            inbound = Some(group[0].local_addr().expect("bound socket has an address"));
            for (i, l) in group.into_iter().enumerate() {
                per_worker[i].push((l, Direction::Inbound));
            }
        }
        let admin_addr = admin_l.local_addr().expect("bound socket has an address");
        let metrics_addr = metrics_l.local_addr().expect("bound socket has an address");

        let metrics = Metrics::new();
        let tls = match (&config.tls, &config.identity) {
            (Some(files), Some(identity)) => {
                Some(Arc::new(TlsStore::new(files.clone(), identity)?))
            }
            _ => None,
        };
        let mut tls_watch = None;
        if let Some(store) = &tls {
            let m = store.current();
            metrics
                .tls_cert_expiry
                .with_label_values(&[&m.identity])
                .set(unix_seconds(m.expires_at()));
            let f = &store.files;
            let watch = DirWatch::new(&[&f.ca, &f.cert, &f.key]).map_err(|e| Error::Start {
                what: "certificate file watcher",
                source: std::io::Error::other(e.to_string()),
            })?;
            tls_watch = Some(watch);
        }
        // The admin runtime exists before the first snapshot: health checks run on it.
        let admin_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Start {
                what: "admin runtime",
                source,
            })?;
        let deps = Deps {
            runtime: Some(admin_rt.handle().clone()),
            metrics: metrics.clone(),
            workers,
            tls: tls.clone(),
        };
        let path = loaded.path.clone();
        let snapshot = Snapshot::build(loaded, 1, &deps, None);
        let access_log = match &config.access_log {
            Some(target) => Some(Arc::new(
                AccessLog::start(target.clone(), metrics.access_log_dropped.clone()).map_err(
                    |source| Error::Start {
                        what: "access log",
                        source,
                    },
                )?,
            )),
            None => None,
        };
        let otlp = match &config.otlp_endpoint {
            Some(endpoint) => Some(Arc::new(
                Exporter::start(
                    endpoint.clone(),
                    if config.service.is_empty() {
                        "outrider"
                    } else {
                        &config.service
                    },
                    metrics.otlp_dropped.clone(),
                    metrics.otlp_failures.clone(),
                )
                .map_err(|source| Error::Start {
                    what: "otlp exporter",
                    source,
                })?,
            )),
            None => None,
        };
        let sessions = Arc::new(match &config.mcp_session_key_file {
            Some(path) => {
                crate::mcp::session::SessionKey::from_file(path).map_err(|e| Error::Start {
                    what: "MCP session key",
                    source: std::io::Error::other(e.to_string()),
                })?
            }
            None => crate::mcp::session::SessionKey::random(),
        });
        let (lifecycle_tx, lifecycle_rx) = watch::channel(Lifecycle::Running);
        let lifecycle_tx = Arc::new(lifecycle_tx);
        let shared = Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics,
            lifecycle: lifecycle_rx,
            tls: tls.clone(),
            access_log,
            otlp,
            sessions,
        });
        let shared_access_log = shared.access_log.clone();
        let reloader = Arc::new(Reloader::new(shared.clone(), path, deps));
        // Watch before serving so no edit made after `start` returns can be missed.
        let watch = match reloader.path() {
            Some(p) => Some(DirWatch::new(&[p]).map_err(|e| Error::Start {
                what: "config file watcher",
                source: std::io::Error::other(e.to_string()),
            })?),
            None => None,
        };

        let mut joins = Vec::new();
        for (id, listeners) in per_worker.into_iter().enumerate() {
            let worker = Arc::new(Worker {
                id,
                shared: shared.clone(),
                conns: Arc::new(ConnTracker::default()),
            });
            let limits = config.limits.clone();
            let j = thread::Builder::new()
                .name(format!("outrider-w{id}"))
                .spawn(move || run_worker(worker, listeners, limits))
                .map_err(|source| Error::Start {
                    what: "worker thread",
                    source,
                })?;
            joins.push(j);
        }

        let (done_tx, done) = watch::channel(false);
        let admin_state = Arc::new(AdminState {
            shared: shared.clone(),
            lifecycle_tx: lifecycle_tx.clone(),
            reloader: reloader.clone(),
        });
        let watch_reloader = reloader.clone();
        let lifecycle_for_admin = lifecycle_tx.clone();
        thread::Builder::new()
            .name("outrider-admin".into())
            .spawn(move || {
                let rt = admin_rt;
                rt.block_on(async move {
                    let a = tokio::net::TcpListener::from_std(admin_l).expect("listener registers");
                    let m =
                        tokio::net::TcpListener::from_std(metrics_l).expect("listener registers");
                    let t1 = tokio::spawn(
                        admin::serve(a, admin::Kind::Admin, admin_state.clone()).instrument(
                            tracing::info_span!(
                                "listener",
                                name = "admin",
                                port = admin_addr.port()
                            ),
                        ),
                    );
                    let t2 = tokio::spawn(
                        admin::serve(m, admin::Kind::Metrics, admin_state.clone()).instrument(
                            tracing::info_span!(
                                "listener",
                                name = "metrics",
                                port = metrics_addr.port()
                            ),
                        ),
                    );
                    if let Some(mut watch) = watch {
                        tokio::spawn(async move {
                            while watch.changed().await.is_some() {
                                let r = watch_reloader.clone();
                                let _ =
                                    tokio::task::spawn_blocking(move || r.reload(Trigger::Watch))
                                        .await;
                            }
                        });
                    }
                    if let Some(watch) = tls_watch {
                        let store = tls.clone().expect("watches exist only with a TLS store");
                        let metrics = admin_state.shared.metrics.clone();
                        tokio::spawn(watch_certificates(watch, store, metrics));
                    }
                    // Workers finish their drain on their own threads; then admin stops too.
                    let _ = tokio::task::spawn_blocking(move || {
                        for j in joins {
                            let _ = j.join();
                        }
                    })
                    .await;
                    lifecycle_for_admin.send_replace(Lifecycle::Stopped);
                    let _ = tokio::join!(t1, t2);
                });
                rt.shutdown_background();
                let _ = done_tx.send(true);
            })
            .map_err(|source| Error::Start {
                what: "admin thread",
                source,
            })?;

        info!(
            outbound = ?outbound, inbound = ?inbound, admin = %admin_addr, metrics = %metrics_addr,
            workers, "outrider started"
        );
        Ok(AppHandle {
            outbound,
            inbound,
            admin: admin_addr,
            metrics: metrics_addr,
            lifecycle_tx,
            done,
            reloader,
            access_log: shared_access_log,
        })
    }
}

/// Applies certificate rotations: new connections use the new material; open ones keep theirs.
async fn watch_certificates(mut watch: DirWatch, store: Arc<TlsStore>, metrics: Metrics) {
    while watch.changed().await.is_some() {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.reload()).await {
            Ok(Ok(true)) => {
                metrics.tls_rotations.with_label_values(&["applied"]).inc();
                let m = store.current();
                metrics
                    .tls_cert_expiry
                    .with_label_values(&[&m.identity])
                    .set(unix_seconds(m.expires_at()));
                info!(serial = %m.info.serial, identity = %m.identity, "certificate rotated");
            }
            Ok(Ok(false)) => {}
            Ok(Err(error)) => {
                metrics.tls_rotations.with_label_values(&["rejected"]).inc();
                warn!(%error, "certificate files changed but cannot be used; keeping the current ones")
            }
            Err(error) => warn!(%error, "certificate reload task failed"),
        }
    }
}

fn unix_seconds(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn run_worker(worker: Arc<Worker>, listeners: ListenerSet, limits: Limits) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    let id = worker.id;
    rt.block_on(
        async move {
            for (l, dir) in listeners {
                let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
                let l = tokio::net::TcpListener::from_std(l).expect("listener registers with the runtime");
                let span = tracing::info_span!("listener", name = dir.as_str(), port);
                tokio::spawn(proxy::accept_loop(l, dir, worker.clone(), limits.clone()).instrument(span));
            }
            tokio::spawn(timer_anchor());
            let mut lifecycle = worker.shared.lifecycle.clone();
            let _ = crate::proxy::reached(&mut lifecycle, Lifecycle::Draining).await;
            let drain_timeout = worker.shared.snapshot.load().loaded.config.drain_timeout;
            tokio::select! {
                _ = worker.conns.wait_idle() => {}
                _ = tokio::time::sleep(drain_timeout) => {
                    warn!(?drain_timeout, "drain timeout reached; closing the remaining connections");
                }
                _ = crate::proxy::reached(&mut lifecycle, Lifecycle::Stopped) => {}
            }
        }
        .instrument(tracing::info_span!("worker", id)),
    );
    rt.shutdown_background();
}

/// Keeps one timer in the worker's wheel at all times. When tokio parks with an empty wheel,
/// every timer registered before the next park wakes the runtime through its eventfd: a
/// `write` syscall and a spurious `epoll_wait` return per request on every HTTP/1.1
/// connection, since hyper arms a header-read timer for each request. With this timer due
/// within a second, later deadlines (header reads, route timeouts of a second or more) are
/// registered silently. Measured on the mesh benchmark's outbound sidecar: write-type
/// syscalls per request 1.71 → 1.06.
async fn timer_anchor() {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Binds `n` sockets to one address (`SO_REUSEPORT` when n > 1: the kernel spreads
/// connections across the workers' listeners). Port 0 resolves once, then is shared.
fn bind(
    addr: SocketAddr,
    listener: &'static str,
    n: usize,
) -> Result<Vec<std::net::TcpListener>, Error> {
    let mut out = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n {
        let err = |source| Error::Bind {
            listener,
            addr,
            source,
        };
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(err)?;
        s.set_reuse_address(true).map_err(err)?;
        if n > 1 {
            s.set_reuse_port(true).map_err(err)?;
        }
        s.set_nonblocking(true).map_err(err)?;
        s.bind(&addr.into()).map_err(err)?;
        s.listen(1024).map_err(err)?;
        let l: std::net::TcpListener = s.into();
        addr = l.local_addr().map_err(err)?;
        out.push(l);
    }
    Ok(out)
}

impl AppHandle {
    /// Starts a graceful drain: `/ready` turns 503, listeners close, open requests finish
    /// (up to `drain_timeout`).
    pub fn drain(&self) {
        self.lifecycle_tx.send_if_modified(|l| {
            let running = *l == Lifecycle::Running;
            if running {
                *l = Lifecycle::Draining;
            }
            running
        });
    }

    /// Reopens the access log file (what SIGUSR1 does, for logrotate).
    pub fn reopen_logs(&self) {
        if let Some(log) = &self.access_log {
            log.reopen();
        }
    }

    /// Re-reads the config file and applies it (what SIGHUP does).
    pub fn reload(&self) -> Attempt {
        self.reloader.reload(Trigger::Signal)
    }

    /// Stops at once, dropping open connections.
    pub fn stop(&self) {
        self.lifecycle_tx.send_replace(Lifecycle::Stopped);
    }

    pub fn outbound_addr(&self) -> Option<SocketAddr> {
        self.outbound
    }

    pub fn inbound_addr(&self) -> Option<SocketAddr> {
        self.inbound
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
    }

    /// A receiver that turns `true` when everything has stopped.
    pub fn done(&self) -> watch::Receiver<bool> {
        self.done.clone()
    }

    /// Resolves when the proxy has fully stopped (after a drain or `stop`).
    pub async fn wait(self) {
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }
}

impl Drop for AppHandle {
    fn drop(&mut self) {
        if !*self.done.borrow() {
            self.lifecycle_tx.send_replace(Lifecycle::Stopped);
        }
    }
}

/// The outbound listener acts as this sidecar's identity and the admin API has no
/// authentication: both belong on loopback (the pod's network namespace). One warning per
/// listener that is not.
fn exposure_warnings(admin: SocketAddr, outbound: Option<SocketAddr>) -> Vec<String> {
    let mut out = Vec::new();
    if !admin.ip().is_loopback() {
        out.push(format!(
            "admin.listen {admin} is not a loopback address: anyone who can reach it can \
             reload, drain and read the config"
        ));
    }
    if let Some(o) = outbound.filter(|o| !o.ip().is_loopback()) {
        out.push(format!(
            "outbound.listen {o} is not a loopback address: anyone who can reach it can call \
             other services with this sidecar's identity"
        ));
    }
    out
}

#[cfg(test)]
mod exposure_tests {
    #[test]
    fn only_non_loopback_admin_and_outbound_listeners_warn() {
        let lo = "127.0.0.1:15000".parse().unwrap();
        let any = "0.0.0.0:15001".parse().unwrap();
        assert!(super::exposure_warnings(lo, Some(lo)).is_empty());
        let w = super::exposure_warnings(any, Some(any));
        assert_eq!(w.len(), 2);
        assert!(w[0].starts_with("admin.listen 0.0.0.0:15001"), "{w:?}");
        assert!(w[1].starts_with("outbound.listen 0.0.0.0:15001"), "{w:?}");
        assert!(super::exposure_warnings(lo, None).is_empty());
    }
}
