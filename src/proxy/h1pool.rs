//! Per-(backend, worker) pool of plaintext HTTP/1.1 upstream connections: the cheap path that
//! replaces hyper-util's legacy client for plaintext `http1`/`auto` backends (no `tls`).
//!
//! Owns: idle connections per endpoint address (LIFO, `idle_timeout`, `max_idle_per_endpoint`),
//! dialing (`connect_timeout`, `TCP_NODELAY`, hyper `http1` handshake, driver task with
//! upgrades), the transparent resend of a request that a stale pooled connection gave back
//! unwritten, and putting a connection back when its response is done (`Lease`).
//! Doesn't own: endpoint choice, per-try/route timeouts, retries of requests that may have been
//! written (`forward`), TLS and HTTP/2 (the legacy client), `Host` rewriting beyond filling it
//! from an absolute URI.
//!
//! Key types: `H1Pool` (one per backend and worker; `Send + Sync`, its mutex is only ever
//! taken by that worker, so it is never contended), `Lease` (held with the response body),
//! `SendError` (`Connect` vs `Closed { sent }`), `Settings`.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::header::{HeaderValue, HOST};
use http::{Method, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::body::UpstreamBody;

type Sender = SendRequest<UpstreamBody>;

/// Pooled connections found closed (request handed back unwritten) before dialing afresh.
const MAX_STALE: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// TCP connect; zero fails every connect (as the legacy connector does).
    pub connect_timeout: Duration,
    /// An idle connection older than this is closed on checkout instead of reused; zero = no
    /// reuse at all.
    pub idle_timeout: Duration,
    /// Idle connections kept per endpoint; the oldest are closed beyond it.
    pub max_idle_per_endpoint: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            connect_timeout: crate::config::validate::defaults::CONNECT_TIMEOUT,
            idle_timeout: Duration::from_secs(90),
            max_idle_per_endpoint: 256,
        }
    }
}

/// Why a request got no response. `Connect`: nothing was sent (retryable for any method).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect failed: {0}")]
    Connect(#[source] io::Error),
    #[error("connection closed {}: {source}", if *sent { "after the request may have been written" } else { "before the request was written" })]
    Closed { sent: bool, source: hyper::Error },
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }

    /// Whether the upstream may have seen (part of) the request.
    pub fn request_sent(&self) -> bool {
        matches!(self, SendError::Closed { sent: true, .. })
    }
}

pub struct H1Pool {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    builder: Builder,
    /// Per endpoint, oldest first: checkout pops the back, overflow and sweeps drop the front.
    idle: Mutex<BTreeMap<SocketAddr, VecDeque<Idle>>>,
    connects: AtomicU64,
    resends: AtomicU64,
}

struct Idle {
    tx: Sender,
    since: Instant,
}

/// The connection a response came on. Hold it until the response body has ended or been
/// dropped (e.g. in the body's guards); dropping it returns the connection to the pool if it
/// is still open. A connection whose body was dropped mid-message is not ready and is never
/// handed out again (hyper drains or closes it).
pub struct Lease {
    pool: Arc<Inner>,
    addr: SocketAddr,
    tx: Option<Sender>,
}

impl H1Pool {
    pub fn new(settings: Settings) -> H1Pool {
        let mut builder = Builder::new();
        builder
            .preserve_header_case(false)
            .title_case_headers(false);
        H1Pool {
            inner: Arc::new(Inner {
                settings,
                builder,
                idle: Mutex::new(BTreeMap::new()),
                connects: AtomicU64::new(0),
                resends: AtomicU64::new(0),
            }),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Sends `req` to `addr` on an idle connection, or a new one. A request that a pooled
    /// connection gives back unwritten (it was closed meanwhile) is sent again on another;
    /// a request that may have been written is never resent. An absolute URI is sent in
    /// origin form (filling `Host` from it when missing).
    pub async fn send(
        &self,
        addr: SocketAddr,
        mut req: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        origin_form(&mut req);
        let mut stale = 0;
        loop {
            let pooled = if stale < MAX_STALE {
                self.inner.checkout(addr)
            } else {
                None
            };
            let reused = pooled.is_some();
            let mut tx = match pooled {
                Some(tx) => tx,
                None => self.connect(addr).await?,
            };
            match tx.try_send_request(req).await {
                Ok(rsp) => {
                    let lease = Lease {
                        pool: self.inner.clone(),
                        addr,
                        tx: Some(tx),
                    };
                    return Ok((rsp, lease));
                }
                Err(mut e) => match e.take_message() {
                    Some(back) if reused => {
                        tracing::trace!(error = %e.error(), "pooled connection closed, resending");
                        self.inner.resends.fetch_add(1, Ordering::Relaxed);
                        stale += 1;
                        req = back;
                    }
                    back => {
                        return Err(SendError::Closed {
                            sent: back.is_none(),
                            source: e.into_error(),
                        })
                    }
                },
            }
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Result<Sender, SendError> {
        let limit = self.inner.settings.connect_timeout;
        let tcp = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
            Ok(r) => r.map_err(SendError::Connect)?,
            Err(_) => {
                return Err(SendError::Connect(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect to {addr} timed out after {limit:?}"),
                )))
            }
        };
        tcp.set_nodelay(true).map_err(SendError::Connect)?;
        let (tx, conn) = self
            .inner
            .builder
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| SendError::Connect(io::Error::other(e)))?;
        self.inner.connects.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(%error, "upstream connection ended with an error");
            }
        });
        Ok(tx)
    }

    /// Idle connections held for `addr` (closed or expired ones not yet swept included).
    pub fn idle_count(&self, addr: SocketAddr) -> usize {
        self.inner.lock().get(&addr).map_or(0, VecDeque::len)
    }

    /// Connections established (handshake done) since the pool was made.
    pub fn connects_total(&self) -> u64 {
        self.inner.connects.load(Ordering::Relaxed)
    }

    /// Requests sent again because a pooled connection handed them back unwritten.
    pub fn resends_total(&self) -> u64 {
        self.inner.resends.load(Ordering::Relaxed)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<SocketAddr, VecDeque<Idle>>> {
        // Nothing panics while holding it; a poisoned map is still consistent.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Newest idle connection of `addr` that is ready now; closed, busy (mid-message) and
    /// expired ones are dropped on the way, never waited for.
    fn checkout(&self, addr: SocketAddr) -> Option<Sender> {
        let mut idle = self.lock();
        let list = idle.get_mut(&addr).filter(|l| !l.is_empty())?;
        let now = Instant::now();
        while let Some(c) = list.pop_back() {
            if now.saturating_duration_since(c.since) >= self.settings.idle_timeout {
                // Oldest first: everything below the newest expired one is older still.
                list.clear();
                return None;
            }
            if c.tx.is_ready() {
                return Some(c.tx);
            }
        }
        None
    }

    fn put(&self, addr: SocketAddr, tx: Sender) {
        let s = &self.settings;
        if tx.is_closed() || s.max_idle_per_endpoint == 0 || s.idle_timeout.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.lock();
        let list = idle.entry(addr).or_default();
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

impl std::fmt::Debug for H1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Pool")
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
