//! Sending one request to a backend: the resilience loop around the wire.
//!
//! Owns: the backend slot (limits), endpoint choice (`resilience::Backend::pick`), tries with
//! per-try timeouts under the route timeout (to response headers only), body replay for
//! retries, outcome reports (EWMA, penalties, ejection), retry decisions with budget and
//! backoff, upstream URI/version/Host rewriting, error classification, WebSocket tunnels.
//! The wire itself is the worker's connection pool of the backend (`pool`).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Body;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::{debug, Instrument};

use super::body::{RespBody, UpstreamBody};
use super::error::{from_send_error, ProxyError};
use super::headers;
use super::pool::Lease;
use super::timer::ConnTimer;
use crate::config::model::{Protocol, RouteRetry};
use crate::mcp::session::SessionKey;
use crate::resilience::retry::is_idempotent_method;
use crate::resilience::{should_retry, Outcome, Permit, Pick, RetryBudget, Unavailable};
use crate::snapshot::BackendState;

/// How one request is sent: the backend, the worker's pool, the route's timeouts and retries.
pub struct Call<'a> {
    pub backend: &'a BackendState,
    pub worker: usize,
    /// Until response headers, all tries included; zero = none.
    pub timeout: Duration,
    /// The MCP classification says the request is a read (or an `idempotent_tools` call).
    pub mcp_idempotent: bool,
    pub retry: Option<&'a RouteRetry>,
    pub budget: Option<&'a RetryBudget>,
    /// Route label of `outrider_retries_total`, and its exhausted-budget counter.
    pub route: &'a str,
    pub budget_exhausted: Option<&'a prometheus::IntCounter>,
    pub retries: Option<&'a prometheus::IntCounterVec>,
    /// `session_affinity: mcp`: the key sealing session ids, and the live-sessions gauge.
    pub sessions: Option<(&'a SessionKey, &'a prometheus::IntGauge)>,
    /// The request belongs to an MCP session that lives in the (only) endpoint, the local app:
    /// when the app refuses connections its sessions are gone, so the answer is 404 and the
    /// client re-initializes (inbound side of `session_affinity`).
    pub session_bound: bool,
    /// A protocol upgrade (WebSocket) whose `Upgrade` field the caller kept: one try only,
    /// nothing buffered.
    pub upgrade: bool,
    /// The connection's timer for route and per-try timeouts (see `timer`).
    pub timer: &'a ConnTimer,
    /// `limits.body_read_timeout`: a body buffered for replay must arrive within it.
    pub body_timeout: Duration,
}

pub const MCP_SESSION_ID: http::HeaderName = http::HeaderName::from_static("mcp-session-id");

/// What the tries did, for the access log (filled on success and on failure).
#[derive(Debug, Default, Clone, Copy)]
pub struct TryInfo {
    pub attempts: u32,
    /// The endpoint of the last try.
    pub upstream: Option<std::net::SocketAddr>,
}

/// A response and the backend slot it holds until its body ends.
pub struct Forwarded {
    pub response: Response<RespBody>,
    pub permit: Permit,
    /// The pooled HTTP/1.1 connection, returned to its pool when the response body ends.
    pub lease: Option<Lease>,
}

/// Sends `req` to an endpoint of the backend: concurrency slot, endpoint choice, tries with
/// per-try timeouts, outcome reports (EWMA, penalties, ejection), and retries when the
/// route allows them, its budget has room, and the request can be replayed safely.
pub async fn forward(
    call: Call<'_>,
    req: Request<UpstreamBody>,
    authority: Option<HeaderValue>,
    info: &mut TryInfo,
) -> Result<Forwarded, ProxyError> {
    let backend = call.backend;
    let name = &backend.backend.name;
    let started = Instant::now();
    let deadline = (!call.timeout.is_zero()).then(|| started + call.timeout);
    let timeout_err = || ProxyError::Timeout {
        backend: name.clone(),
        timeout: call.timeout,
    };
    let permit = match backend.policy.try_acquire() {
        Some(p) => p,
        // Boxed, like every await off the common path: forward's future stays small.
        None => Box::pin(wait_for_slot(backend, deadline))
            .await
            .ok_or_else(timeout_err)??,
    };

    let (mut parts, incoming) = req.into_parts();
    let has_host = prepare(&mut parts, backend.backend.protocol, authority);
    let upgrade = call.upgrade;
    let settings = call.retry.map(|r| &r.settings);
    let mut attempts = settings.map_or(1, |s| s.attempts);
    // A request of an MCP session goes to the endpoint that issued the session, with the
    // server's own id; it is never retried elsewhere (the session lives there).
    let pinned = match call.sessions {
        Some((key, _)) => match parts.headers.get(&MCP_SESSION_ID) {
            Some(v) => {
                let gone = || ProxyError::SessionNotFound {
                    backend: name.clone(),
                };
                let (addr, server_id) = v
                    .to_str()
                    .ok()
                    .and_then(|v| key.open(name, v))
                    .ok_or_else(gone)?;
                let index = backend
                    .eps
                    .iter()
                    .position(|e| e.addr == addr)
                    .ok_or_else(gone)?;
                let id = HeaderValue::from_str(&server_id).map_err(|_| gone())?;
                parts.headers.insert(MCP_SESSION_ID, id);
                attempts = 1;
                Some(index)
            }
            None => None,
        },
        None => None,
    };
    // Replay needs the whole body in memory: only small bodies of known length are buffered
    // (an inspected MCP body already is).
    let mut body = Some(incoming);
    let replay: Option<Bytes> = match (settings, body.take().expect("the body is taken once")) {
        (Some(s), UpstreamBody::Bytes(b))
            if attempts > 1 && !upgrade && b.as_ref().map_or(0, Bytes::len) <= s.max_body =>
        {
            Some(b.unwrap_or_default())
        }
        (Some(s), UpstreamBody::Stream(b)) if attempts > 1 && !upgrade => {
            match b.size_hint().exact() {
                Some(0) if b.is_end_stream() => Some(Bytes::new()),
                Some(n) if n <= s.max_body as u64 => {
                    let timeout = call.body_timeout;
                    let collect = http_body_util::BodyExt::collect(b);
                    let collected = Box::pin(tokio::time::timeout(timeout, collect))
                        .await
                        .map_err(|_| ProxyError::BodyTimeout { timeout })?
                        .map_err(|e| ProxyError::ClientBody { source: e.into() })?;
                    Some(collected.to_bytes())
                }
                _ => {
                    body = Some(UpstreamBody::Stream(b));
                    None
                }
            }
        }
        (_, other) => {
            body = Some(other);
            None
        }
    };
    let mut stream_body = match body {
        Some(b) => {
            attempts = 1;
            Some(b)
        }
        None => None,
    };
    // Kept aside: the last try takes `parts`.
    let method = parts.method.clone();
    let idempotent = is_idempotent_method(&parts.method)
        || call.mcp_idempotent
        || call.retry.is_some_and(|r| r.non_idempotent);
    if let Some(b) = call.budget {
        b.deposit();
    }
    let mut avoid = None;
    let mut tries = 0;
    let mut lease: Option<Lease> = None;
    loop {
        tries += 1;
        let now = Instant::now();
        let pick = match pinned {
            Some(index) => Pick {
                index,
                probe: false,
            },
            None => backend
                .policy
                .pick(&backend.eps, avoid, now.into())
                .map_err(|u| match u {
                    Unavailable::NoEndpoints => ProxyError::NoEndpoints {
                        backend: name.clone(),
                    },
                    Unavailable::CircuitOpen => ProxyError::CircuitOpen {
                        backend: name.clone(),
                    },
                })?,
        };
        let ep = &backend.eps[pick.index];
        info.attempts = tries;
        info.upstream = Some(ep.addr);
        let authority = &backend.authorities[pick.index];
        let body = match (&replay, stream_body.take()) {
            (Some(bytes), _) => UpstreamBody::Bytes(Some(bytes.clone())),
            (None, Some(b)) => b,
            (None, None) => unreachable!("a streamed body allows one try"),
        };
        let req = if tries < attempts {
            build(&parts, authority, body, has_host)
        } else {
            // The last possible try takes the parts: no header copy on the common path.
            build_owned(
                std::mem::replace(&mut parts, placeholder_parts()),
                authority,
                body,
                has_host,
            )
        };
        let in_flight = ep.stats.start();
        let per_try = settings.and_then(|s| s.per_try_timeout).map(|t| now + t);
        let until = match (per_try, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // The worker's own connections to the endpoint.
        // Boxed: the send (connection, streams) is most of a try's state; forward's own future
        // stays small and is moved less.
        let call_fut = Box::pin(backend.pools[call.worker].send(ep.addr, req));
        let result = match until {
            Some(u) => {
                let mut call_fut = call_fut;
                let mut expiry = call.timer.sleep_until(u.into());
                // The response first, as `tokio::time::timeout` does.
                std::future::poll_fn(|cx| match call_fut.as_mut().poll(cx) {
                    Poll::Ready(r) => Poll::Ready(Ok(r)),
                    Poll::Pending => Pin::new(&mut expiry).poll(cx).map(Err),
                })
                .await
            }
            None => Ok(call_fut.await),
        };
        drop(in_flight);
        let done = Instant::now();
        let latency = done.saturating_duration_since(now);
        let (outcome, result) = match result {
            Ok(Ok((mut rsp, l))) => {
                lease = l;
                if let Some((key, live)) = call.sessions {
                    seal_session(
                        &mut rsp,
                        key,
                        live,
                        name,
                        ep.addr,
                        pinned.is_some(),
                        &method,
                    );
                }
                (Outcome::Status(rsp.status().as_u16()), Ok(rsp))
            }
            Ok(Err(e)) => {
                let outcome = if e.is_connect() {
                    Outcome::ConnectFailure
                } else if e.refused_stream() {
                    Outcome::RefusedStream
                } else {
                    Outcome::Reset {
                        request_sent: e.request_sent(),
                    }
                };
                (
                    outcome,
                    Err(from_send_error(
                        e.is_connect(),
                        e.into(),
                        name,
                        authority.as_str(),
                    )),
                )
            }
            Err(()) => {
                let limit = until.map_or(call.timeout, |u| u.saturating_duration_since(now));
                (
                    Outcome::Timeout,
                    Err(ProxyError::Timeout {
                        backend: name.clone(),
                        timeout: limit,
                    }),
                )
            }
        };
        // Only a 429 or 503 is penalized by its `Retry-After` (no lookup for the others).
        let retry_after = result
            .as_ref()
            .ok()
            .filter(|r| matches!(r.status().as_u16(), 429 | 503))
            .and_then(|r| r.headers().get(http::header::RETRY_AFTER));
        backend.policy.report(
            &backend.eps,
            pick,
            outcome,
            latency,
            retry_after,
            done.into(),
        );
        let retryable = tries < attempts
            && settings
                .is_some_and(|s| should_retry(&s.on, outcome, idempotent, replay.is_some(), false))
            && deadline.is_none_or(|d| done < d);
        if !retryable {
            // The endpoint of a session is gone (refuses connections, or dropped the pooled
            // one): the client must initialize a new session.
            // Behind an inbound sidecar only a refused connect says the app is gone (a reset
            // may be one broken connection of a live app).
            let gone = match outcome {
                Outcome::ConnectFailure => pinned.is_some() || call.session_bound,
                Outcome::Reset { .. } => pinned.is_some(),
                _ => false,
            };
            if gone {
                return Err(ProxyError::SessionNotFound {
                    backend: name.clone(),
                });
            }
            return match result {
                Ok(response) => Ok(Forwarded {
                    response,
                    permit,
                    lease,
                }),
                // The route deadline, not the per-try one, decides what the client is told.
                Err(ProxyError::Timeout { .. })
                    if deadline.is_some_and(|d| Instant::now() >= d) =>
                {
                    Err(timeout_err())
                }
                Err(e) => Err(e),
            };
        }
        if !call.budget.is_none_or(|b| b.withdraw()) {
            if let Some(c) = call.budget_exhausted {
                c.inc();
            }
            return result.map(|response| Forwarded {
                response,
                permit,
                lease,
            });
        }
        if let Some(c) = call.retries {
            c.with_label_values(&[call.route, name, outcome_reason(outcome).as_str()])
                .inc();
        }
        debug!(try_number = tries, outcome = %outcome_reason(outcome), "retrying on another endpoint");
        avoid = Some(pick.index);
        drop(result);
        lease = None;
        let pause = settings.map_or(Duration::ZERO, |s| s.backoff.delay(tries - 1));
        let wake = Instant::now() + pause;
        if deadline.is_some_and(|d| wake >= d) {
            return Err(timeout_err());
        }
        // Boxed, like every await off the common path: forward's future stays small.
        Box::pin(tokio::time::sleep_until(wake.into())).await;
    }
}

/// Waits for a slot of the backend (its `max_pending` queue), until the route's deadline:
/// `None` when the deadline passed first.
async fn wait_for_slot(
    backend: &BackendState,
    deadline: Option<Instant>,
) -> Option<Result<Permit, ProxyError>> {
    let acquired = match deadline {
        Some(d) => tokio::time::timeout_at(d.into(), backend.policy.acquire())
            .await
            .ok()?,
        None => backend.policy.acquire().await,
    };
    Some(acquired.map_err(|o| ProxyError::Overloaded {
        what: format!("backend {} ({o})", backend.backend.name),
    }))
}

/// A session id issued by the endpoint is sealed with the endpoint before the client sees it;
/// `outrider_mcp_sessions` counts sessions started and not deleted.
fn seal_session(
    rsp: &mut Response<RespBody>,
    key: &SessionKey,
    live: &prometheus::IntGauge,
    backend: &str,
    endpoint: std::net::SocketAddr,
    in_session: bool,
    method: &http::Method,
) {
    if let Some(id) = rsp
        .headers()
        .get(&MCP_SESSION_ID)
        .and_then(|v| v.to_str().ok())
    {
        let sealed = key.seal(backend, endpoint, id);
        if let Ok(v) = HeaderValue::from_str(&sealed) {
            rsp.headers_mut().insert(MCP_SESSION_ID, v);
            if !in_session {
                live.inc();
            }
        }
    }
    if in_session && method == http::Method::DELETE && rsp.status().is_success() {
        live.dec();
    }
}

/// Rewrites what does not change between tries: version and Host. Returns whether the
/// request now has a `Host` field (an HTTP/2 upstream needs none).
fn prepare(
    parts: &mut http::request::Parts,
    protocol: Protocol,
    authority: Option<HeaderValue>,
) -> bool {
    match protocol {
        Protocol::Http2 => {
            parts.version = Version::HTTP_2;
            true
        }
        Protocol::Http1 | Protocol::Auto => {
            parts.version = Version::HTTP_11;
            // HTTP/2 clients send :authority, not Host; an HTTP/1.1 upstream needs Host.
            // A pass over the names rather than a hashed lookup: `Host` usually comes first.
            if parts.headers.keys().any(|k| k == header::HOST) {
                return true;
            }
            match authority {
                Some(a) => {
                    parts.headers.insert(header::HOST, a);
                    true
                }
                None => false,
            }
        }
    }
}

/// The request of one try. With `more` tries possible the parts are cloned, else taken.
fn build(
    parts: &http::request::Parts,
    authority: &http::uri::Authority,
    body: UpstreamBody,
    has_host: bool,
) -> Request<UpstreamBody> {
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = endpoint_uri(&parts.uri, authority);
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    if !has_host {
        ensure_host(&mut req, authority);
    }
    req
}

fn build_owned(
    mut parts: http::request::Parts,
    authority: &http::uri::Authority,
    body: UpstreamBody,
    has_host: bool,
) -> Request<UpstreamBody> {
    parts.uri = endpoint_uri(&parts.uri, authority);
    let mut req = Request::from_parts(parts, body);
    if !has_host {
        ensure_host(&mut req, authority);
    }
    req
}

fn placeholder_parts() -> http::request::Parts {
    Request::new(()).into_parts().0
}

/// `http://ENDPOINT/path?query` (HTTP/2 sends scheme and authority as pseudo-headers; the
/// pool turns HTTP/1.1 requests into origin form).
fn endpoint_uri(original: &Uri, authority: &http::uri::Authority) -> Uri {
    let pq = original
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(authority.clone());
    uri.path_and_query = Some(pq);
    Uri::from_parts(uri).expect("scheme, authority and path make a valid URI")
}

/// A request [`prepare`] left without `Host` gets the endpoint's.
fn ensure_host(req: &mut Request<UpstreamBody>, authority: &http::uri::Authority) {
    if req.version() != Version::HTTP_2 {
        // HTTP/1.0 clients may send no Host at all; HTTP/1.1 upstreams require one.
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            req.headers_mut().insert(header::HOST, v);
        }
    }
}

/// Label of `outrider_retries_total{reason}`: the outcome of the try being repeated.
fn outcome_reason(o: Outcome) -> String {
    match o {
        Outcome::ConnectFailure => "connect-failure".into(),
        Outcome::RefusedStream => "refused-stream".into(),
        Outcome::Reset { .. } => "reset".into(),
        Outcome::Timeout => "timeout".into(),
        Outcome::Status(s) => s.to_string(),
    }
}

/// For an HTTP/1.1 `Upgrade` request: takes the client side of the upgrade.
pub fn take_upgrade<B>(req: &mut Request<B>) -> Option<OnUpgrade> {
    (req.version() == Version::HTTP_11 && headers::wants_upgrade(req.headers()))
        .then(|| hyper::upgrade::on(req))
}

/// After a `101 Switching Protocols`, splices client and upstream connections together.
pub fn spawn_tunnel<B>(client: OnUpgrade, rsp: &mut Response<B>, guard: impl Send + 'static) {
    if rsp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    let upstream = hyper::upgrade::on(rsp);
    let span = tracing::debug_span!("tunnel");
    tokio::spawn(
        async move {
            let _guard = guard;
            match tokio::try_join!(client, upstream) {
                Ok((c, u)) => {
                    let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
                    match tokio::io::copy_bidirectional(&mut c, &mut u).await {
                        Ok((up, down)) => debug!(up, down, "tunnel closed"),
                        Err(error) => debug!(%error, "tunnel ended with an error"),
                    }
                }
                Err(error) => debug!(%error, "upgrade failed"),
            }
        }
        .instrument(span),
    );
}
