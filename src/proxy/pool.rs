//! Per-(backend, worker) upstream connections: HTTP/1.1 connections pooled per endpoint, and
//! one multiplexed HTTP/2 connection per endpoint (TLS with ALPN `h2`, or `protocol: http2`).
//!
//! Owns: idle HTTP/1.1 connections per endpoint address (LIFO, `idle_timeout`,
//! `max_idle_per_endpoint`), the shared HTTP/2 connection per endpoint, dialing through the
//! backend's `Dialer` (TCP, mTLS, ALPN) with hyper's `http1` handshake (driver task with
//! upgrades) or `h2`'s (driver task; streams opened, fed and read from the request's own task,
//! `open_h2`/`pump`, with no hyper dispatch task per request), the transparent resend of a
//! request that a stale pooled connection gave back unwritten, and putting an HTTP/1.1
//! connection back when its response is done (`Lease`). Requests that arrive while an endpoint's first connection that may turn
//! out HTTP/2 is being dialed wait for it instead of dialing their own (one connection per
//! endpoint from a cold start, not one per concurrent request).
//! Doesn't own: endpoint choice, per-try/route timeouts, retries of requests that may have been
//! written (`forward`), `Host` rewriting beyond filling it from an absolute URI.
//!
//! Key types: `Pool` (one per backend and worker; `Send + Sync`, its mutex is only ever taken
//! by that worker, so it is never contended), `Lease` (held with an HTTP/1.1 response body),
//! `SendError` (`Connect` vs `Closed { sent }`), `Settings`.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::{Method, Request, Response, Uri};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio::time::Instant;

use super::body::{BoxError, H2Body, RespBody, UpstreamBody};
use super::connect::{Dialer, UpstreamTls};
use super::driver::{self, Tick};
use super::headers;
use super::keepalive::Pings;
use crate::config::model::H2Keepalive;

type Sender = http1::SendRequest<UpstreamBody>;

/// An endpoint's HTTP/2 connection: `h2`'s handle, used directly from the request's task (no
/// dispatch task per request), whether its driver is still running, and the driver itself
/// (requests poll it early: [`driver`]).
#[derive(Clone)]
struct H2Sender {
    tx: h2::client::SendRequest<Bytes>,
    state: Arc<H2State>,
    driver: Arc<dyn Tick>,
}

/// What the requests on one HTTP/2 connection share besides `h2`'s handle.
struct H2State {
    /// False once its driver has ended, or a request found it closed or going away.
    alive: AtomicBool,
    /// Set by the first header block sent, which seeds HPACK's table
    /// ([`headers::seed_hpack_names`]).
    seeded: AtomicBool,
}

impl H2Sender {
    fn is_closed(&self) -> bool {
        !self.state.alive.load(Ordering::Acquire)
    }
}

/// Pooled connections found closed (request handed back unwritten) before dialing afresh.
const MAX_STALE: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// TCP connect (and TLS handshake); zero fails every connect.
    pub connect_timeout: Duration,
    /// An idle HTTP/1.1 connection older than this is closed on checkout instead of reused;
    /// zero = no reuse at all.
    pub idle_timeout: Duration,
    /// Idle HTTP/1.1 connections kept per endpoint; the oldest are closed beyond it.
    pub max_idle_per_endpoint: usize,
    /// Plaintext HTTP/2 with prior knowledge (`protocol: http2` without `tls`).
    pub h2_prior_knowledge: bool,
    /// PINGs on HTTP/2 connections ([`super::keepalive`]); `None`: none.
    pub h2_keepalive: Option<H2Keepalive>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            connect_timeout: crate::config::validate::defaults::CONNECT_TIMEOUT,
            idle_timeout: Duration::from_secs(90),
            max_idle_per_endpoint: 256,
            h2_prior_knowledge: false,
            h2_keepalive: None,
        }
    }
}

/// Why a request got no response. `Connect`: nothing was sent (retryable for any method).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect failed: {0}")]
    Connect(#[source] io::Error),
    #[error("connection closed {}: {source}", if *sent { "after the request may have been written" } else { "before the request was written" })]
    Closed { sent: bool, source: BoxError },
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }

    /// Whether the upstream may have seen (part of) the request.
    pub fn request_sent(&self) -> bool {
        matches!(self, SendError::Closed { sent: true, .. })
    }

    /// The upstream refused the HTTP/2 stream (`REFUSED_STREAM`): it never processed it.
    pub fn refused_stream(&self) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(err) = cur {
            if let Some(h2) = err.downcast_ref::<h2::Error>() {
                return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
            }
            cur = err.source();
        }
        false
    }
}

pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    dialer: Dialer,
    h1: http1::Builder,
    h2: h2::client::Builder,
    endpoints: Mutex<BTreeMap<SocketAddr, Endpoint>>,
    connects: AtomicU64,
    resends: AtomicU64,
}

#[derive(Default)]
struct Endpoint {
    /// HTTP/1.1, oldest first: checkout pops the back, overflow and sweeps drop the front.
    idle: VecDeque<Idle>,
    h2: H2,
}

/// The endpoint's HTTP/2 connection.
#[derive(Default)]
enum H2 {
    #[default]
    None,
    Ready(H2Sender),
    /// A connection that may turn out HTTP/2 is being dialed; its outcome is published here.
    Dialing(watch::Receiver<Option<Dialed>>),
}

#[derive(Clone)]
enum Dialed {
    H2(H2Sender),
    /// ALPN chose HTTP/1.1: every request needs its own connection.
    H1,
    /// The dial's error, for every waiter (kind kept: a timeout stays a timeout).
    Failed(io::ErrorKind, Arc<str>),
}

struct Idle {
    tx: Sender,
    since: Instant,
}

/// What a request goes out on.
enum Checkout {
    H1(Sender),
    H2(H2Sender),
    /// Another request is dialing the endpoint's first connection.
    Wait(watch::Receiver<Option<Dialed>>),
    /// Dial a connection; `Some`: this request dials for the waiters too.
    Dial(Option<DialGuard>),
}

/// The connection an HTTP/1.1 response came on. Hold it until the response body has ended or
/// been dropped (e.g. in the body's guards); dropping it returns the connection to the pool
/// if it is still open. A connection whose body was dropped mid-message is not ready and is
/// never handed out again (hyper drains or closes it).
pub struct Lease {
    pool: Arc<Inner>,
    addr: SocketAddr,
    tx: Option<Sender>,
}

impl Pool {
    /// A pool of plaintext connections.
    pub fn new(settings: Settings) -> Pool {
        Pool::with_tls(settings, None)
    }

    /// A pool whose connections are mTLS when `tls` is set (ALPN decides HTTP/2).
    pub fn with_tls(settings: Settings, tls: Option<UpstreamTls>) -> Pool {
        let dialer = Dialer {
            connect_timeout: settings.connect_timeout,
            tls,
        };
        let mut h1 = http1::Builder::new();
        h1.preserve_header_case(false).title_case_headers(false);
        let h2 = h2_client();
        Pool {
            inner: Arc::new(Inner {
                settings,
                dialer,
                h1,
                h2,
                endpoints: Mutex::new(BTreeMap::new()),
                connects: AtomicU64::new(0),
                resends: AtomicU64::new(0),
            }),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Sends `req` to `addr`: on the endpoint's HTTP/2 connection, an idle HTTP/1.1 one, or a
    /// new one. A request that a pooled connection gives back unwritten (it was closed
    /// meanwhile) is sent again on another; a request that may have been written is never
    /// resent. HTTP/1.1 requests go in origin form (filling `Host` from an absolute URI when
    /// missing); HTTP/2 requests keep the URI's scheme and authority as pseudo-headers.
    pub async fn send(
        &self,
        addr: SocketAddr,
        mut req: Request<UpstreamBody>,
    ) -> Result<(Response<RespBody>, Option<Lease>), SendError> {
        let mut stale = 0;
        loop {
            let (sender, reused) = match self.inner.checkout(addr, stale < MAX_STALE) {
                Checkout::H1(tx) => (Either::H1(tx), true),
                Checkout::H2(tx) => (Either::H2(tx), true),
                Checkout::Wait(mut rx) => {
                    // Resolves with the dial's outcome, or errs when that dial was dropped
                    // (its request timed out): look again either way.
                    let outcome = rx
                        .wait_for(Option::is_some)
                        .await
                        .ok()
                        .and_then(|o| o.clone());
                    match outcome {
                        Some(Dialed::Failed(kind, msg)) => {
                            return Err(SendError::Connect(io::Error::new(kind, msg.to_string())))
                        }
                        Some(Dialed::H2(tx)) => (Either::H2(tx), false),
                        // HTTP/1.1 endpoint: dial an own connection.
                        Some(Dialed::H1) => (Box::pin(self.dial(addr, None)).await?, false),
                        None => continue,
                    }
                }
                // Boxed: the dial (TCP, TLS, handshakes) is a large future that pooled
                // requests would otherwise carry (and move) too.
                Checkout::Dial(guard) => (Box::pin(self.dial(addr, guard)).await?, false),
            };
            let back = match sender {
                Either::H1(mut tx) => {
                    origin_form(&mut req);
                    match tx.try_send_request(req).await {
                        Ok(rsp) => {
                            let lease = Lease {
                                pool: self.inner.clone(),
                                addr,
                                tx: Some(tx),
                            };
                            return Ok((rsp.map(RespBody::Hyper), Some(lease)));
                        }
                        Err(e) => e,
                    }
                }
                Either::H2(H2Sender { tx, state, driver }) => {
                    let seed = headers::first_block(&state.seeded);
                    // The waits inline rather than in an `async fn`: that function's state
                    // (request, sender, both waits: ~880 bytes) was built and copied per request.
                    let result = match tx.ready().await {
                        Err(e) => Err(H2Failed::Unsent(e, Some(Box::new(req)))),
                        Ok(mut tx) => match open_h2(&mut tx, &*driver, req, seed) {
                            Ok(response) => response.await.map(h2_response).map_err(H2Failed::Sent),
                            Err(e) => Err(e),
                        },
                    };
                    match (result, &state.alive) {
                        (Ok(rsp), _) => return Ok((rsp, None)),
                        // The connection is gone and the request was not sent: another one.
                        (Err(H2Failed::Unsent(source, Some(back))), alive)
                            if reused && stale < MAX_STALE =>
                        {
                            tracing::trace!(error = %source, "pooled HTTP/2 connection closed, resending");
                            // It opens no more streams (closed or going away), even if its driver
                            // has not noticed yet: never hand it out again.
                            alive.store(false, Ordering::Release);
                            self.inner.forget_closed_h2(addr);
                            self.inner.resends.fetch_add(1, Ordering::Relaxed);
                            stale += 1;
                            req = *back;
                            continue;
                        }
                        (Err(H2Failed::Unsent(source, _)), alive) => {
                            // A request h2 refuses (a user error: no reason, no I/O) says
                            // nothing about the connection; anything else retires it.
                            if source.reason().is_some() || source.is_io() {
                                alive.store(false, Ordering::Release);
                                self.inner.forget_closed_h2(addr);
                            }
                            return Err(SendError::Closed {
                                sent: false,
                                source: source.into(),
                            });
                        }
                        (Err(H2Failed::Sent(source)), _) => {
                            return Err(SendError::Closed {
                                sent: true,
                                source: source.into(),
                            })
                        }
                    }
                }
            };
            let mut e = back;
            match e.take_message() {
                Some(back) if reused => {
                    tracing::trace!(error = %e.error(), "pooled connection closed, resending");
                    self.inner.resends.fetch_add(1, Ordering::Relaxed);
                    stale += 1;
                    req = back;
                }
                back => {
                    return Err(SendError::Closed {
                        sent: back.is_none(),
                        source: e.into_error().into(),
                    })
                }
            }
        }
    }

    /// A new connection to `addr`; with `guard`, its outcome is published to the requests
    /// waiting for it (and an HTTP/2 one becomes the endpoint's shared connection).
    async fn dial(&self, addr: SocketAddr, guard: Option<DialGuard>) -> Result<Either, SendError> {
        let result = self.handshake(addr).await;
        if let Some(g) = guard {
            g.publish(match &result {
                Ok(Either::H2(tx)) => Dialed::H2(tx.clone()),
                Ok(Either::H1(_)) => Dialed::H1,
                Err(SendError::Connect(e)) => Dialed::Failed(e.kind(), Arc::from(e.to_string())),
                Err(e) => Dialed::Failed(io::ErrorKind::Other, Arc::from(e.to_string())),
            });
        }
        result
    }

    async fn handshake(&self, addr: SocketAddr) -> Result<Either, SendError> {
        let inner = &self.inner;
        let conn = inner.dialer.dial(addr).await.map_err(SendError::Connect)?;
        // `protocol: http2` speaks HTTP/2 whatever ALPN said (prior knowledge).
        let h2 = conn.negotiated_h2() || inner.settings.h2_prior_knowledge;
        let sender = if h2 {
            let (tx, mut conn) = inner
                .h2
                .handshake::<_, Bytes>(TokioIo::new(conn))
                .await
                .map_err(|e| SendError::Connect(io::Error::other(e)))?;
            let pings = inner
                .settings
                .h2_keepalive
                .and_then(|k| Some(Pings::new(conn.ping_pong()?, k, addr)));
            let state = Arc::new(H2State {
                alive: AtomicBool::new(true),
                seeded: AtomicBool::new(false),
            });
            let ended = state.clone();
            let driver = driver::spawn_client(
                conn,
                move || ended.alive.store(false, Ordering::Release),
                pings,
            );
            Either::H2(H2Sender { tx, state, driver })
        } else {
            let (tx, conn) = inner
                .h1
                .handshake(conn)
                .await
                .map_err(|e| SendError::Connect(io::Error::other(e)))?;
            tokio::spawn(async move {
                if let Err(error) = conn.with_upgrades().await {
                    tracing::debug!(%error, "upstream connection ended with an error");
                }
            });
            Either::H1(tx)
        };
        inner.connects.fetch_add(1, Ordering::Relaxed);
        Ok(sender)
    }

    /// Idle HTTP/1.1 connections held for `addr` (closed or expired ones not yet swept
    /// included).
    pub fn idle_count(&self, addr: SocketAddr) -> usize {
        self.inner.lock().get(&addr).map_or(0, |e| e.idle.len())
    }

    /// Connections established (handshakes done) since the pool was made.
    pub fn connects_total(&self) -> u64 {
        self.inner.connects.load(Ordering::Relaxed)
    }

    /// Requests sent again because a pooled connection handed them back unwritten.
    pub fn resends_total(&self) -> u64 {
        self.inner.resends.load(Ordering::Relaxed)
    }
}

/// The upstream HTTP/2 client settings: hyper's client defaults (2 MiB stream / 5 MiB
/// connection windows, 16 KiB frames, 16 KiB header lists), no server push.
pub fn h2_client() -> h2::client::Builder {
    let mut h2 = h2::client::Builder::new();
    h2.initial_window_size(2 * 1024 * 1024)
        .initial_connection_window_size(5 * 1024 * 1024)
        .max_frame_size(16 * 1024)
        .max_header_list_size(16 * 1024)
        .max_send_buffer_size(400 * 1024)
        .enable_push(false);
    h2
}

enum Either {
    H1(Sender),
    H2(H2Sender),
}

/// Held by the request dialing an endpoint's first connection; dropping it unpublished (the
/// request was cancelled) clears the dialing state so that waiters look again.
struct DialGuard {
    pool: Arc<Inner>,
    addr: SocketAddr,
    tx: watch::Sender<Option<Dialed>>,
}

impl DialGuard {
    fn publish(self, outcome: Dialed) {
        {
            let mut eps = self.pool.lock();
            let ep = eps.entry(self.addr).or_default();
            if matches!(&ep.h2, H2::Dialing(rx) if rx.same_channel(&self.tx.subscribe())) {
                ep.h2 = match &outcome {
                    Dialed::H2(tx) => H2::Ready(tx.clone()),
                    Dialed::H1 | Dialed::Failed(..) => H2::None,
                };
            }
        }
        self.tx.send_replace(Some(outcome));
    }
}

impl Drop for DialGuard {
    fn drop(&mut self) {
        if self.tx.borrow().is_some() {
            return;
        }
        let mut eps = self.pool.lock();
        if let Some(ep) = eps.get_mut(&self.addr) {
            if matches!(&ep.h2, H2::Dialing(rx) if rx.same_channel(&self.tx.subscribe())) {
                ep.h2 = H2::None;
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<SocketAddr, Endpoint>> {
        // Nothing panics while holding it; a poisoned map is still consistent.
        self.endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The endpoint's open HTTP/2 connection, else (with `reuse`) its newest idle HTTP/1.1
    /// connection that is ready now (closed, busy and expired ones are dropped on the way,
    /// never waited for), else a dial: a shared one when the connection may turn out
    /// HTTP/2 (requests arriving meanwhile wait for it), an own one otherwise.
    fn checkout(self: &Arc<Self>, addr: SocketAddr, reuse: bool) -> Checkout {
        let may_h2 = self.dialer.offers_h2() || self.settings.h2_prior_knowledge;
        let mut eps = self.lock();
        let ep = eps.entry(addr).or_default();
        match &ep.h2 {
            H2::Ready(tx) if !tx.is_closed() => return Checkout::H2(tx.clone()),
            H2::Ready(_) => ep.h2 = H2::None,
            H2::Dialing(rx) => return Checkout::Wait(rx.clone()),
            H2::None => {}
        }
        if reuse {
            let now = Instant::now();
            while let Some(c) = ep.idle.pop_back() {
                if now.saturating_duration_since(c.since) >= self.settings.idle_timeout {
                    // Oldest first: everything below the newest expired one is older still.
                    ep.idle.clear();
                    break;
                }
                if c.tx.is_ready() {
                    return Checkout::H1(c.tx);
                }
            }
        }
        if !may_h2 {
            return Checkout::Dial(None);
        }
        let (tx, rx) = watch::channel(None);
        ep.h2 = H2::Dialing(rx);
        Checkout::Dial(Some(DialGuard {
            pool: self.clone(),
            addr,
            tx,
        }))
    }

    /// Drops the endpoint's HTTP/2 connection if it has closed.
    fn forget_closed_h2(&self, addr: SocketAddr) {
        let mut eps = self.lock();
        if let Some(ep) = eps.get_mut(&addr) {
            if matches!(&ep.h2, H2::Ready(cur) if cur.is_closed()) {
                ep.h2 = H2::None;
            }
        }
    }

    fn put(&self, addr: SocketAddr, tx: Sender) {
        let s = &self.settings;
        if tx.is_closed() || s.max_idle_per_endpoint == 0 || s.idle_timeout.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut eps = self.lock();
        let list = &mut eps.entry(addr).or_default().idle;
        // Sweep the oldest so an endpoint with traffic never hoards dead or expired sockets.
        while list.front().is_some_and(|c| {
            c.tx.is_closed() || now.saturating_duration_since(c.since) >= s.idle_timeout
        }) {
            list.pop_front();
        }
        if list.len() >= s.max_idle_per_endpoint {
            list.pop_front();
        }
        list.push_back(Idle { tx, since: now });
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            self.pool.put(self.addr, tx);
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("settings", &self.inner.settings)
            .field("connects", &self.connects_total())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("addr", &self.addr).finish()
    }
}

/// Why an HTTP/2 request got no response. `Unsent`: the stream was never opened (the
/// connection is closed or going away); the request comes back when it was not taken apart yet.
enum H2Failed {
    Unsent(h2::Error, Option<Box<Request<UpstreamBody>>>),
    Sent(h2::Error),
}

/// Connection-specific fields HTTP/2 forbids (RFC 9113 §8.2.2); `te` may only be `trailers`.
const H2_FORBIDDEN: [http::HeaderName; 5] = [
    http::header::CONNECTION,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
    http::HeaderName::from_static("keep-alive"),
    http::HeaderName::from_static("proxy-connection"),
];

/// One request on the endpoint's HTTP/2 connection, from this task, once the connection has a
/// stream slot under the server's limit: open the stream and send the body (in place when it is
/// already in memory, else from a pump task that follows flow control). The caller awaits the
/// response head. `seed`: this block lets HPACK index the names of its unique ids
/// ([`headers::seed_hpack_names`]).
fn open_h2(
    tx: &mut h2::client::SendRequest<Bytes>,
    driver: &dyn Tick,
    mut req: Request<UpstreamBody>,
    seed: bool,
) -> Result<h2::client::ResponseFuture, H2Failed> {
    if seed {
        headers::seed_hpack_names(req.headers_mut());
    }
    let headers = req.headers_mut();
    // One pass over the names (usually none of these is there, as the proxy already stripped
    // hop-by-hop fields) instead of a hash lookup per forbidden name.
    if headers
        .keys()
        .any(|k| H2_FORBIDDEN.contains(k) || k == http::header::TE)
    {
        for name in H2_FORBIDDEN {
            headers.remove(name);
        }
        if headers
            .get(http::header::TE)
            .is_some_and(|v| v.as_bytes() != b"trailers")
        {
            headers.remove(http::header::TE);
        }
    }
    *req.version_mut() = http::Version::HTTP_2;
    let (parts, body) = req.into_parts();
    let end = body.is_end_stream();
    let (response, mut stream) = tx
        .send_request(Request::from_parts(parts, ()), end)
        .map_err(|e| H2Failed::Unsent(e, None))?;
    if !end {
        match body {
            // In memory (small, inspected or kept for retries): queued at once.
            UpstreamBody::Bytes(Some(data)) => {
                let _ = stream.send_data(data, true);
            }
            streaming => {
                tokio::spawn(pump(streaming, stream));
            }
        }
    }
    driver.tick();
    Ok(response)
}

/// An HTTP/2 response head with its body as the proxy hands it on.
fn h2_response(rsp: Response<h2::RecvStream>) -> Response<RespBody> {
    let length = rsp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    rsp.map(|recv| RespBody::H2(H2Body::new(recv, length)))
}

/// Streams a request body into its HTTP/2 stream within the flow-control window; stops when
/// the server resets the stream, and resets it when the client's body fails.
async fn pump(mut body: UpstreamBody, mut stream: h2::SendStream<Bytes>) {
    loop {
        let frame = tokio::select! {
            f = body.frame() => f,
            _ = std::future::poll_fn(|cx| stream.poll_reset(cx)) => return,
        };
        let frame = match frame {
            None => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Some(Err(error)) => {
                tracing::debug!(%error, "request body failed; resetting the upstream stream");
                stream.send_reset(h2::Reason::CANCEL);
                return;
            }
            Some(Ok(frame)) => frame,
        };
        let mut data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    let _ = stream.send_trailers(trailers);
                }
                return;
            }
        };
        while !data.is_empty() {
            stream.reserve_capacity(data.len());
            let granted = match std::future::poll_fn(|cx| stream.poll_capacity(cx)).await {
                Some(Ok(n)) => n,
                _ => return,
            };
            if granted == 0 {
                continue;
            }
            let chunk = data.split_to(granted.min(data.len()));
            if stream.send_data(chunk, false).is_err() {
                return;
            }
        }
    }
}

/// `http://host/path?q` → `/path?q` (and `Host: host` if missing); CONNECT is left alone.
fn origin_form(req: &mut Request<UpstreamBody>) {
    if req.uri().scheme().is_none() || req.method() == Method::CONNECT {
        return;
    }
    if !req.headers().contains_key(HOST) {
        let host = req
            .uri()
            .authority()
            .map(|a| HeaderValue::from_str(a.as_str()));
        if let Some(Ok(v)) = host {
            req.headers_mut().insert(HOST, v);
        }
    }
    let uri = match req.uri().path_and_query() {
        Some(pq) => Uri::from(pq.clone()),
        None => Uri::from_static("/"),
    };
    *req.uri_mut() = uri;
}

#[cfg(test)]
mod tests;
