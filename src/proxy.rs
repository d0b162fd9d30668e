//! The data path: inputs shared by every listener (`Shared`), per-worker handles (`Worker`),
//! and the accept/serve loop common to the inbound and outbound listeners.
//!
//! Owns: connection serving (HTTP/1.1 + h2c auto-detected on one port, limits, graceful
//! shutdown on drain) and connection accounting. The per-direction request handling lives in
//! `outbound` and `inbound`, the only places where a direction's request path is put together.

pub mod activity;
pub mod audit;
pub mod body;
pub mod connect;
pub mod driver;
pub mod error;
pub mod forward;
pub mod headers;
pub mod inbound;
pub mod inspect;
pub mod keepalive;
pub mod outbound;
pub mod pool;
pub mod preface;
pub mod reply;
pub mod resets;
pub mod timer;
pub mod wake;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use activity::Activity;
use arc_swap::ArcSwap;
use driver::{Driver, Owner, StreamExec, Tick, FLUSH_AFTER};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use preface::PrefaceDeadline;
use prometheus::IntCounter;
use resets::Resets;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tracing::{debug, Instrument};

use crate::config::model::{Limits, Mode};
use crate::snapshot::Snapshot;
use crate::telemetry::metrics::{Direction, Metrics};
use crate::tls;

/// Lifecycle of the process, published on a watch channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lifecycle {
    Running,
    /// Not ready, not accepting; open connections are finishing their requests.
    Draining,
    /// Stop now: drop whatever is still open.
    Stopped,
}

/// Resolves once the lifecycle is at `at_least` or later (drops the watch guard before
/// returning, so callers' futures stay `Send`).
pub async fn reached(rx: &mut watch::Receiver<Lifecycle>, at_least: Lifecycle) {
    let _ = rx.wait_for(|l| *l >= at_least).await;
}

/// Everything the request path reads, shared by all workers (ProxyInputs in ztunnel terms).
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    pub metrics: Metrics,
    pub lifecycle: watch::Receiver<Lifecycle>,
    /// The sidecar's TLS material (inbound mTLS server side), when configured.
    pub tls: Option<Arc<crate::tls::TlsStore>>,
    /// The access log writer, when `access_log` is configured.
    pub access_log: Option<Arc<crate::telemetry::access_log::AccessLog>>,
    /// The span exporter, when `tracing.otlp` is configured.
    pub otlp: Option<Arc<crate::telemetry::otlp::Exporter>>,
    /// Seals MCP session ids (`session_affinity: mcp`).
    pub sessions: Arc<crate::mcp::session::SessionKey>,
}

/// One worker thread's view: the shared inputs plus its index (selects its connection pools).
pub struct Worker {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub conns: Arc<ConnTracker>,
}

/// Counts open connections (and tunnels) of one worker so drain can wait for zero.
#[derive(Default)]
pub struct ConnTracker {
    open: AtomicUsize,
    idle: Notify,
}

pub struct ConnGuard {
    tracker: Arc<ConnTracker>,
    gauge: prometheus::IntGauge,
}

impl ConnTracker {
    pub fn enter(self: &Arc<Self>, gauge: prometheus::IntGauge) -> ConnGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        gauge.inc();
        ConnGuard {
            tracker: self.clone(),
            gauge,
        }
    }

    /// Resolves once no connection is open.
    pub async fn wait_idle(&self) {
        wake::until(&self.idle, || self.open.load(Ordering::Acquire) == 0).await;
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.gauge.dec();
        if self.tracker.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.tracker.idle.notify_waiters();
        }
    }
}

/// Server settings built once per worker and listener: HTTP/1.1 and HTTP/2 on their own
/// (the protocol known from ALPN or the first byte), and both auto-detected otherwise.
pub struct Builders {
    auto: auto::Builder<TokioExecutor>,
    h1: http1::Builder,
    /// HTTP/2 known from ALPN (the mesh's path): a builder per connection, whose executor
    /// polls that connection early ([`driver`]).
    h2_streams: u32,
    h2_header_list: u32,
    /// Also bounds the wait for the HTTP/2 preface ([`preface`]).
    header_read_timeout: Duration,
    /// `limits.idle_timeout` ([`activity`]); zero = never.
    idle_timeout: Duration,
}

impl Builders {
    fn h2(&self, exec: StreamExec) -> http2::Builder<StreamExec> {
        let mut h2 = http2::Builder::new(exec);
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(self.h2_streams)
            .max_header_list_size(self.h2_header_list)
            .keep_alive_interval(Some(Duration::from_secs(30)));
        h2
    }
}

/// The protocol of a connection, when known before serving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Http1,
    Http2,
    /// Sniffed by hyper-util (h2c prior knowledge vs HTTP/1.1).
    Detect,
}

/// The auto-detecting builder carries the same HTTP/1.1 and HTTP/2 settings as the direct ones.
pub fn server_builder(limits: &Limits) -> Arc<Builders> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    let max_header_list = u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(max_header_list)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    Arc::new(Builders {
        auto: b,
        h1,
        h2_streams: limits.max_concurrent_streams,
        h2_header_list: max_header_list,
        header_read_timeout: limits.header_read_timeout,
        idle_timeout: limits.idle_timeout,
    })
}

/// Accepts connections until drain starts; each connection is served on its own task.
pub async fn accept_loop(
    listener: TcpListener,
    dir: Direction,
    worker: Arc<Worker>,
    limits: Limits,
) {
    let metrics = &worker.shared.metrics;
    let per_listener = Arc::new(Listener {
        builders: server_builder(&limits),
        plaintext: metrics
            .plaintext_connections
            .with_label_values(&[dir.as_str()]),
        handshakes: metrics.tls_handshakes.with_label_values(&[dir.as_str()]),
    });
    let gauge = metrics.connections_open.with_label_values(&[dir.as_str()]);
    let over_limit = metrics
        .connections_over_limit
        .with_label_values(&[dir.as_str()]);
    let max_connections = i64::from(limits.max_connections);
    let mut lifecycle = worker.shared.lifecycle.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = reached(&mut lifecycle, Lifecycle::Draining) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // The gauge counts this listener's connections on every worker (a race between workers
        // can let one or two more in; the limit protects memory and descriptors, not a count).
        if gauge.get() >= max_connections {
            over_limit.inc();
            // Reset rather than FIN: nothing of it lingers here.
            let _ = stream.set_zero_linger();
            debug!(%peer, "connection refused: listener at limits.max_connections");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let guard = worker.conns.enter(gauge.clone());
        let span = tracing::debug_span!("conn", %peer);
        tokio::spawn(
            serve_conn(
                stream,
                peer,
                dir,
                worker.clone(),
                per_listener.clone(),
                guard,
            )
            .instrument(span),
        );
    }
    debug!(direction = dir.as_str(), "listener closed");
}

/// What the connections of one listener share: its server settings, and its counters of
/// plaintext connections and TLS handshakes (resolved once, not per connection).
struct Listener {
    builders: Arc<Builders>,
    plaintext: IntCounter,
    handshakes: IntCounter,
}

async fn serve_conn(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    dir: Direction,
    worker: Arc<Worker>,
    listener: Arc<Listener>,
    guard: ConnGuard,
) {
    let builder = &*listener.builders;
    let header_read_timeout = builder.header_read_timeout;
    // A client that connects and sends nothing is dropped after the header read timeout
    // (hyper's own timer only starts once the HTTP/1 parser runs).
    let mut probe = [0u8; 1];
    match tokio::time::timeout(header_read_timeout, stream.peek(&mut probe)).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => return,
    }
    let mode = match dir {
        Direction::Outbound => Mode::Plaintext,
        Direction::Inbound => {
            let snap = worker.shared.snapshot.load();
            snap.loaded
                .config
                .inbound
                .as_ref()
                .map_or(Mode::Plaintext, |i| i.mode)
        }
    };
    // A TLS record starts with 0x16 (handshake); HTTP/1 starts with a method, h2c with "PRI"
    // (only a `P` needs a closer look: POST or PRI).
    let hello = probe[0] == 0x16;
    let plain_proto = if probe[0] == b'P' {
        Proto::Detect
    } else {
        Proto::Http1
    };
    let errors = &worker.shared.metrics.tls_handshake_errors;
    match (mode, hello, &worker.shared.tls) {
        (Mode::Plaintext, ..) | (Mode::Permissive, false, _) => {
            listener.plaintext.inc();
            let svc = service(dir, &worker, peer, None, guard);
            serve_http(stream, svc, builder, plain_proto, &worker).await
        }
        (Mode::Strict | Mode::Permissive, true, Some(store)) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(store.current().server.clone());
            let tls = match tokio::time::timeout(header_read_timeout, acceptor.accept(stream)).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    let reason = tls::verify::handshake_reason(&error);
                    errors.with_label_values(&["inbound", reason]).inc();
                    debug!(%error, reason, "inbound TLS handshake failed");
                    return;
                }
                Err(_) => {
                    errors.with_label_values(&["inbound", "timeout"]).inc();
                    return;
                }
            };
            listener.handshakes.inc();
            let identity = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| tls::identity::cert_info(c).ok())
                .and_then(|i| i.spiffe_id)
                .map(Arc::<str>::from);
            let proto = match tls.get_ref().1.alpn_protocol() {
                Some(b"h2") => Proto::Http2,
                Some(b"http/1.1") => Proto::Http1,
                _ => Proto::Detect,
            };
            let svc = service(dir, &worker, peer, identity, guard);
            serve_http(tls, svc, builder, proto, &worker).await
        }
        (Mode::Strict, false, _) => {
            errors.with_label_values(&["inbound", "not-tls"]).inc();
            debug!("plaintext connection to a strict mTLS listener refused");
        }
        (_, true, None) => {
            // Validation forbids strict/permissive without `tls`; nothing to answer with.
            errors.with_label_values(&["inbound", "other"]).inc();
        }
    }
}

fn service(
    dir: Direction,
    worker: &Arc<Worker>,
    peer: SocketAddr,
    identity: Option<Arc<str>>,
    guard: ConnGuard,
) -> Service {
    let activity = Activity::new();
    let handler = match dir {
        Direction::Outbound => Handler::Outbound(Arc::new(outbound::Outbound::new(
            worker.clone(),
            guard,
            activity.clone(),
        ))),
        Direction::Inbound => Handler::Inbound(Arc::new(inbound::Inbound::new(
            worker.clone(),
            peer,
            identity,
            guard,
            activity.clone(),
        ))),
    };
    Service {
        handler,
        resets: Resets::new(),
        activity,
    }
}

/// Serves HTTP/1.1 or HTTP/2 on `io` until it closes or the drain ends it.
async fn serve_http<I>(io: I, svc: Service, b: &Builders, proto: Proto, worker: &Worker)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let ends = Ends {
        worker,
        resets: svc.resets.clone(),
        activity: svc.activity.clone(),
        idle_timeout: b.idle_timeout,
        dir: match svc.handler {
            Handler::Outbound(_) => Direction::Outbound,
            Handler::Inbound(_) => Direction::Inbound,
        },
    };
    let result: Result<(), body::BoxError> = match proto {
        Proto::Http1 => {
            let io = TokioIo::new(io);
            // The connection's own header-read timer, reused request after request.
            let mut h1 = b.h1.clone();
            h1.timer(timer::ConnTimer::new());
            let conn = h1.serve_connection(io, svc).with_upgrades();
            ends.until(conn, |c| c.graceful_shutdown())
                .await
                .map_err(Into::into)
        }
        Proto::Http2 => {
            let io = TokioIo::new(PrefaceDeadline::new(io, b.header_read_timeout));
            let driver = Driver::new(FLUSH_AFTER);
            let exec = StreamExec(Arc::downgrade(&driver) as Weak<dyn Tick>);
            driver.install(b.h2(exec).serve_connection(io, svc));
            // Closes the connection however this ends (it holds the executor, which only
            // holds the driver weakly).
            let owner = Owner {
                driver: driver.clone(),
                on_end: None::<fn()>,
            };
            let conn =
                std::future::poll_fn(|cx| driver.poll_owner(cx).map(|r| r.unwrap_or(Ok(()))));
            let result = ends
                .until(conn, |_| driver.with_conn(|c| c.graceful_shutdown()))
                .await;
            drop(owner);
            result.map_err(Into::into)
        }
        Proto::Detect => {
            // "P" could still become the HTTP/2 preface: hyper-util waits for it unbounded.
            let io = TokioIo::new(PrefaceDeadline::new(io, b.header_read_timeout));
            let mut auto = b.auto.clone();
            auto.http1().timer(timer::ConnTimer::new());
            let conn = auto.serve_connection_with_upgrades(io, svc);
            ends.until(conn, |c| c.graceful_shutdown()).await
        }
    };
    if let Err(error) = result {
        debug!(%error, "connection ended with an error");
    }
}

/// What ends a served connection besides itself: the drain, too many early-cancelled
/// requests, and `limits.idle_timeout` with nothing in flight.
struct Ends<'a> {
    worker: &'a Worker,
    resets: Arc<Resets>,
    activity: Arc<Activity>,
    idle_timeout: Duration,
    dir: Direction,
}

impl Ends<'_> {
    /// Drives a connection; on drain, when most of its requests were cancelled early
    /// ([`resets`]), or when it has been idle for `idle_timeout` ([`activity`]), asks it to
    /// finish gracefully; drops it when the process stops.
    async fn until<C, E>(
        &self,
        conn: C,
        graceful: impl FnOnce(std::pin::Pin<&mut C>),
    ) -> Result<(), E>
    where
        C: std::future::Future<Output = Result<(), E>>,
    {
        enum End {
            Drain,
            Resets,
            Idle,
        }
        let mut draining = self.worker.shared.lifecycle.clone();
        let mut stopped = self.worker.shared.lifecycle.clone();
        let end = async {
            let idle = self.idle_timeout;
            tokio::select! {
                _ = reached(&mut draining, Lifecycle::Draining) => End::Drain,
                _ = self.resets.tripped() => End::Resets,
                _ = self.activity.idle_for(idle), if !idle.is_zero() => End::Idle,
            }
        };
        tokio::pin!(conn);
        // The connection first; the other ends are polled only when one of them changed
        // (`OnWake`), not on every read and write of the connection.
        tokio::select! {
            biased;
            r = conn.as_mut() => r,
            end = wake::OnWake::new(end) => {
                // Drain or idle: the requests in flight may finish until the process stops. Too
                // many early cancellations: a short grace.
                let mut grace = None;
                match end {
                    End::Drain => {}
                    End::Idle => {
                        debug!(idle_timeout = ?self.idle_timeout, "closing an idle connection");
                    }
                    End::Resets => {
                        let (requests, cancelled) = self.resets.counts();
                        self.worker
                            .shared
                            .metrics
                            .rapid_reset_closes
                            .with_label_values(&[self.dir.as_str()])
                            .inc();
                        debug!(
                            requests,
                            cancelled,
                            "ending the connection: most of its requests were cancelled early"
                        );
                        grace = Some(tokio::time::sleep(resets::GRACE));
                    }
                }
                // GOAWAY (or `Connection: close`): no new requests; those in flight finish.
                graceful(conn.as_mut());
                let grace = async {
                    match grace {
                        Some(sleep) => sleep.await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = conn.as_mut() => r,
                    _ = reached(&mut stopped, Lifecycle::Stopped) => Ok(()),
                    _ = grace => Ok(()),
                }
            }
        }
    }
}

/// The per-connection service: the direction's handler, the connection's count of cancelled
/// requests ([`resets`]) and its activity ([`activity`], which the handler keeps up to date).
#[derive(Clone)]
struct Service {
    handler: Handler,
    resets: Arc<Resets>,
    activity: Arc<Activity>,
}

/// One variant per direction. Shared, so a request takes one reference (one atomic increment)
/// instead of cloning each of the connection's handles.
#[derive(Clone)]
enum Handler {
    Outbound(Arc<outbound::Outbound>),
    Inbound(Arc<inbound::Inbound>),
}

/// hyper's own `Service` (`&self`): no per-request clone and readiness dance of a tower adapter.
impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Service {
    type Response = http::Response<body::ProxyBody>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        match &self.handler {
            Handler::Outbound(s) => Box::pin(self.resets.track(s.clone().handle(req))),
            Handler::Inbound(s) => Box::pin(self.resets.track(s.clone().handle(req))),
        }
    }
}
