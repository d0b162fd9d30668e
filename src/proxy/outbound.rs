//! The outbound request path: local app -> route -> backend -> endpoint.
//!
//! Order: request id, route match (host index), weighted backend split, header rules,
//! forward (route timeout to headers), response header rules, metrics.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;

use super::activity::Activity;
use super::audit;
use super::body::{ProxyBody, UpstreamBody};
use super::error::ProxyError;
use super::forward::{forward, take_upgrade, Call, TryInfo};
use super::headers;
use super::inspect::{inspect, Deadline, Inspection};
use super::reply::Reply;
use super::timer::ConnTimer;
use super::{ConnGuard, Worker};
use crate::balance;
use crate::config::model::Route;
use crate::mcp::session::SessionKey;
use crate::routing;
use crate::snapshot::{BackendState, RouteState, Snapshot};
use crate::telemetry::metrics::{Direction, RouteBackendMetrics};
use crate::telemetry::propagation;
use crate::telemetry::propagation::adopt_meta_traceparent;

#[derive(Clone)]
pub struct Outbound {
    worker: Arc<Worker>,
    conn: Arc<ConnGuard>,
    /// The connection's timer for route timeouts, reused request after request.
    route_timer: ConnTimer,
    /// The connection's timer for `limits.body_read_timeout` (bodies read for classification).
    body_timer: ConnTimer,
    /// What `limits.idle_timeout` watches: each request is busy until its body ends.
    activity: Arc<Activity>,
}

impl Outbound {
    pub fn new(worker: Arc<Worker>, conn: ConnGuard, activity: Arc<Activity>) -> Outbound {
        Outbound {
            worker,
            conn: Arc::new(conn),
            route_timer: ConnTimer::new(),
            body_timer: ConnTimer::new(),
            activity,
        }
    }

    /// The whole request, in one future: routing and finishing are plain functions over the
    /// request (no nested futures built and moved per request).
    pub async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, std::convert::Infallible> {
        let busy = self.activity.begin();
        let shared = &self.worker.shared;
        let observe = shared.access_log.is_some() || shared.otlp.is_some();
        let mut env = audit::Envelope::open(&mut req, observe);
        let snap = shared.snapshot.load_full();
        let upgrade = take_upgrade(&mut req);
        let mut req = match inspect(req) {
            Inspection::Pass(req) => req,
            Inspection::Read(p) => {
                let config = &snap.loaded.config;
                let deadline = Deadline::after(config.limits.body_read_timeout, &self.body_timer);
                match p
                    .classify(config.mcp_max_inspect_body, snap.needs_mcp_body, deadline)
                    .await
                {
                    Ok((req, mcp)) => {
                        env.meta.mcp = mcp;
                        req
                    }
                    Err(e) => return Ok(env.close(Err(e), Direction::Outbound, shared, None)),
                }
            }
        };
        let result = match self.route(&snap, &mut req, upgrade.is_some(), &mut env.meta) {
            Err(e) => Err(e),
            Ok(routed) => {
                let call = Call {
                    backend: routed.backend,
                    worker: self.worker.id,
                    timeout: routed.route.timeout,
                    mcp_idempotent: routed.mcp_idempotent,
                    retry: routed.route.retry.as_ref().filter(|_| upgrade.is_none()),
                    budget: routed.state.budget.as_deref(),
                    route: &routed.route.name,
                    budget_exhausted: Some(&routed.state.budget_exhausted),
                    retries: Some(&shared.metrics.retries),
                    sessions: routed.sessions.as_ref().map(|(k, g)| (&**k, g)),
                    session_bound: false,
                    upgrade: upgrade.is_some(),
                    timer: &self.route_timer,
                    body_timeout: snap.loaded.config.limits.body_read_timeout,
                };
                let mut info = TryInfo::default();
                // Boxed: the request future stays small, so hyper and tokio move less per request.
                let sent = Box::pin(forward(call, req, routed.authority, &mut info)).await;
                env.meta.attempts = info.attempts;
                env.meta.upstream = info.upstream;
                let reply = Reply {
                    metrics: routed.metrics,
                    edits: Some(&routed.route.response_headers),
                    idle: routed.route.idle_timeout,
                    sse_keepalive: snap.loaded.config.mcp_sse_keepalive,
                    inbound: None,
                    busy,
                };
                reply.finish(sent, upgrade, &self.conn, &env)
            }
        };
        Ok(env.close(result, Direction::Outbound, shared, None))
    }

    /// Trace context, the route and backend, and the request's header rules.
    fn route<'s>(
        &self,
        snap: &'s Snapshot,
        req: &mut Request<UpstreamBody>,
        upgrade: bool,
        meta: &mut audit::Meta,
    ) -> Result<Routed<'s>, ProxyError> {
        adopt_meta_traceparent(req.headers_mut(), meta.mcp.as_ref());
        // Every request gets its hop's span, routed or not (the access log shows it).
        meta.span = Some(propagation::propagate(
            req.headers_mut(),
            &snap.loaded.config.tracing,
        ));
        // Absolute-form (proxy style) and HTTP/2 requests carry the authority in the URI.
        let authority: Option<HeaderValue> = match req.uri().authority() {
            Some(a) => HeaderValue::from_str(a.as_str()).ok(),
            None => req.headers().get(header::HOST).cloned(),
        };
        let host = authority
            .as_ref()
            .and_then(|a| a.to_str().ok())
            .unwrap_or("");
        let found = snap.table.find(
            &snap.routes,
            &routing::Request {
                host,
                path: req.uri().path(),
                method: req.method(),
                headers: req.headers(),
                mcp: meta.mcp.as_ref(),
            },
        );
        let Some(idx) = found else {
            return Err(ProxyError::NoRoute {
                host: host.to_owned(),
                path: req.uri().path().to_owned(),
            });
        };
        let state = &snap.routes[idx];
        let route = &state.route;
        let pick = balance::weighted(&route.to, route.total_weight);
        let backend = &snap.backends[route.to[pick].0];

        headers::strip_hop_by_hop(req.headers_mut(), upgrade);
        headers::apply_edits(req.headers_mut(), &route.request_headers);
        let shared = &self.worker.shared;
        if shared.access_log.is_some() || shared.otlp.is_some() {
            meta.route.clone_from(&route.name);
            meta.backend.clone_from(&backend.backend.name);
        }
        let sessions = backend.backend.session_affinity.then(|| {
            (
                shared.sessions.clone(),
                shared
                    .metrics
                    .mcp_sessions
                    .with_label_values(&[&backend.backend.name]),
            )
        });
        let mcp_idempotent = match (&meta.mcp, &route.retry) {
            (Some(c), Some(r)) => crate::mcp::is_idempotent(c, &r.idempotent_tools),
            _ => false,
        };
        Ok(Routed {
            state,
            route,
            backend,
            metrics: &state.metrics[pick],
            authority,
            sessions,
            mcp_idempotent,
        })
    }
}

/// Where [`Outbound::route`] sends a request.
struct Routed<'s> {
    state: &'s RouteState,
    route: &'s Route,
    backend: &'s BackendState,
    metrics: &'s RouteBackendMetrics,
    authority: Option<HeaderValue>,
    /// `session_affinity: mcp`: the key sealing session ids, and the live-sessions gauge.
    sessions: Option<(Arc<SessionKey>, prometheus::IntGauge)>,
    mcp_idempotent: bool,
}
