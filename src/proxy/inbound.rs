//! The inbound request path: peer -> local app.
//!
//! Order: concurrency limit, request id, strip client-sent identity header, append
//! `x-forwarded-for`, forward to the app (no route timeout: the caller's sidecar owns it),
//! metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;

use super::activity::{Activity, Busy};
use super::audit;
use super::body::{ProxyBody, UpstreamBody};
use super::error::ProxyError;
use super::forward::{forward, take_upgrade, Call, TryInfo};
use super::headers;
use super::inspect::{inspect, Deadline, Inspection};
use super::reply::Reply;
use super::timer::ConnTimer;
use super::{ConnGuard, Worker};
use crate::config::model::{authorize, AuthzRule, Mode};
use crate::config::validate::defaults;
use crate::mcp::Classification;
use crate::snapshot::{BackendState, Snapshot};
use crate::telemetry::metrics::{Direction, RouteBackendMetrics};
use crate::telemetry::propagation;
use crate::telemetry::propagation::adopt_meta_traceparent;

pub struct Inbound {
    worker: Arc<Worker>,
    /// The caller's address as an `x-forwarded-for` value (formatted once per connection).
    peer_ip: http::HeaderValue,
    /// The caller's verified SPIFFE ID (mTLS connections only).
    identity: Option<Arc<str>>,
    /// `identity` as the `x-outrider-peer-identity` value (made once per connection).
    identity_value: Option<http::HeaderValue>,
    conn: Arc<ConnGuard>,
    /// Set by the first response, which seeds HPACK's table when the connection is HTTP/2
    /// ([`headers::seed_hpack_names`]).
    seeded: std::sync::atomic::AtomicBool,
    /// The connection's timer for per-try timeouts (the app's calls have no route timeout).
    timer: ConnTimer,
    /// The connection's timer for `limits.body_read_timeout` (bodies read for classification).
    body_timer: ConnTimer,
    /// What `limits.idle_timeout` watches: each request is busy until its body ends.
    activity: Arc<Activity>,
}

impl Inbound {
    pub fn new(
        worker: Arc<Worker>,
        peer: SocketAddr,
        identity: Option<Arc<str>>,
        conn: ConnGuard,
        activity: Arc<Activity>,
    ) -> Inbound {
        Inbound {
            worker,
            peer_ip: headers::peer_value(peer.ip()),
            identity_value: identity
                .as_deref()
                .and_then(|i| http::HeaderValue::from_str(i).ok()),
            identity,
            conn: Arc::new(conn),
            seeded: std::sync::atomic::AtomicBool::new(false),
            timer: ConnTimer::new(),
            body_timer: ConnTimer::new(),
            activity,
        }
    }

    /// The whole request, in one future: admission, header rules and finishing are plain
    /// functions over the request (no nested futures built and moved per request).
    pub async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, std::convert::Infallible> {
        let busy = self.activity.begin();
        let shared = &self.worker.shared;
        let observe = shared.access_log.is_some() || shared.otlp.is_some();
        let mut env = audit::Envelope::open(&mut req, observe);
        let snap = shared.snapshot.load_full();
        let result = self.serve(&snap, req, &mut env, busy).await;
        let peer = self.identity.as_deref();
        let mut rsp = env.close(result, Direction::Inbound, shared, peer);
        if headers::first_block(&self.seeded) {
            headers::seed_hpack_names(rsp.headers_mut());
        }
        Ok(rsp)
    }

    /// Admission, body inspection, the app's call (awaited in place by [`Inbound::handle`], not
    /// boxed).
    async fn serve(
        &self,
        snap: &Snapshot,
        mut req: Request<Incoming>,
        env: &mut audit::Envelope,
        busy: Busy,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let rules = self.admit(snap)?;
        let upgrade = take_upgrade(&mut req);
        let mut req = match inspect(req) {
            Inspection::Pass(req) => req,
            Inspection::Read(p) => {
                let config = &snap.loaded.config;
                let deadline = Deadline::after(config.limits.body_read_timeout, &self.body_timer);
                let (req, mcp) = p
                    .classify(config.mcp_max_inspect_body, snap.needs_mcp_body, deadline)
                    .await?;
                env.meta.mcp = mcp;
                req
            }
        };
        let to = self.prepare(snap, rules, &mut req, upgrade.is_some(), env)?;
        let call = Call {
            backend: to.app,
            worker: self.worker.id,
            timeout: Duration::ZERO,
            mcp_idempotent: false,
            retry: None,
            budget: None,
            route: "",
            budget_exhausted: None,
            retries: None,
            sessions: None,
            // By comparing names: cheaper than hashing this one on a request's few fields.
            session_bound: req
                .headers()
                .keys()
                .any(|k| k == super::forward::MCP_SESSION_ID),
            upgrade: upgrade.is_some(),
            timer: &self.timer,
            body_timeout: snap.loaded.config.limits.body_read_timeout,
        };
        let mut info = TryInfo::default();
        // Boxed: the request future stays small, so hyper and tokio move less per request.
        let sent = Box::pin(forward(call, req, to.authority, &mut info)).await;
        env.meta.attempts = info.attempts;
        env.meta.upstream = info.upstream;
        let reply = Reply {
            metrics: to.metrics,
            edits: None,
            idle: defaults::IDLE_TIMEOUT,
            sse_keepalive: snap.loaded.config.mcp_sse_keepalive,
            inbound: to.permit,
            busy,
        };
        reply.finish(sent, upgrade, &self.conn, env)
    }

    /// The caller's admission before its body is read: a plaintext connection opened before a
    /// reload made the listener strict, and callers no rule admits, are refused. Returns the
    /// rules to check the request against once classified.
    fn admit<'s>(&self, snap: &'s Snapshot) -> Result<Option<&'s [AuthzRule]>, ProxyError> {
        let inbound = snap.loaded.config.inbound.as_ref();
        let peer = self.identity.as_deref();
        if inbound.is_some_and(|i| i.mode == Mode::Strict) && peer.is_none() {
            return Err(self.deny(None));
        }
        let rules = inbound.and_then(|i| i.authorize.as_deref());
        if rules.is_some_and(|rules| !rules.iter().any(|r| r.allows(peer))) {
            return Err(self.deny(None));
        }
        Ok(rules)
    }

    /// A denial, counted.
    fn deny(&self, what: Option<String>) -> ProxyError {
        let peer = self.identity.as_deref();
        self.worker
            .shared
            .metrics
            .authz_denied
            .with_label_values(&["inbound", peer.unwrap_or("")])
            .inc();
        ProxyError::Forbidden {
            peer: peer.unwrap_or("(unauthenticated)").to_owned(),
            what,
        }
    }

    /// The classified request's authorization, the listener's concurrency slot, and the header
    /// rules (hop-by-hop, the caller's identity, `x-forwarded-for`, trace context).
    fn prepare<'s>(
        &self,
        snap: &'s Snapshot,
        rules: Option<&[AuthzRule]>,
        req: &mut Request<UpstreamBody>,
        upgrade: bool,
        env: &mut audit::Envelope,
    ) -> Result<ToApp<'s>, ProxyError> {
        let meta = &mut env.meta;
        adopt_meta_traceparent(req.headers_mut(), meta.mcp.as_ref());
        if let Some(rules) = rules {
            let peer = self.identity.as_deref();
            let c = meta.mcp.as_ref();
            // A session's SSE stream (GET) or its end (DELETE): no JSON-RPC body to check.
            let session_io = matches!(*req.method(), http::Method::GET | http::Method::DELETE)
                && req.headers().contains_key(&super::forward::MCP_SESSION_ID);
            if !authorize(rules, peer, c, session_io) {
                return Err(self.deny(c.and_then(|c| refused(rules, peer, c))));
            }
        }
        let permit = match &snap.inbound_limit {
            Some(sem) => match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    return Err(ProxyError::Overloaded {
                        what: "inbound listener".into(),
                    })
                }
            },
            None => None,
        };
        let (Some(app), Some(metrics)) = (&snap.app, &snap.app_metrics) else {
            return Err(ProxyError::NoRoute {
                host: String::new(),
                path: req.uri().path().to_owned(),
            });
        };
        let authority = req
            .uri()
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok());
        let h = req.headers_mut();
        headers::strip_hop_by_hop(h, upgrade);
        // Only a verified mTLS peer may carry an identity; never trust one a client sent
        // (`insert` replaces every value a client sent).
        match &self.identity_value {
            Some(id) => {
                h.insert(headers::X_OUTRIDER_PEER_IDENTITY, id.clone());
            }
            None => {
                h.remove(headers::X_OUTRIDER_PEER_IDENTITY);
            }
        }
        headers::append_forwarded_for(h, &self.peer_ip);
        meta.span = Some(propagation::propagate(h, &snap.loaded.config.tracing));
        let shared = &self.worker.shared;
        if shared.access_log.is_some() || shared.otlp.is_some() {
            // Only the access log and spans read it (no allocation per request otherwise).
            meta.backend.push_str(crate::snapshot::APP_BACKEND);
        }
        Ok(ToApp {
            app,
            metrics,
            permit,
            authority,
        })
    }
}

/// Where [`Inbound::prepare`] sends a request: the app, with the listener's slot.
struct ToApp<'s> {
    app: &'s BackendState,
    metrics: &'s RouteBackendMetrics,
    permit: Option<OwnedSemaphorePermit>,
    authority: Option<http::HeaderValue>,
}

/// What a denial names: the first message no rule allows (`tool x`, `method y`).
fn refused(rules: &[AuthzRule], peer: Option<&str>, c: &Classification) -> Option<String> {
    let m = c.messages().iter().find(|m| {
        !rules
            .iter()
            .any(|r| r.allows(peer) && r.mcp.as_ref().is_none_or(|mm| mm.matches_message(m)))
    })?;
    Some(match (m.method_str(), m.name()) {
        (Some(method), Some(name)) => format!("{method} of `{name}`"),
        (Some(method), None) => format!("method `{method}`"),
        _ => "this message".to_owned(),
    })
}
