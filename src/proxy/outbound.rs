//! The outbound request path: local app -> route -> backend -> endpoint.
//!
//! Order: request id, route match (host index), weighted backend split, header rules,
//! forward (route timeout to headers), response header rules, metrics.

use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;

use super::audit;
use super::body::{Guards, ProxyBody};
use super::error::ProxyError;
use super::forward::{forward, spawn_tunnel, take_upgrade, Call, TryInfo};
use super::headers;
use super::inspect::{inspect, Inspection};
use super::{ConnGuard, Worker};
use crate::balance;
use crate::routing;
use crate::telemetry::metrics::Direction;
use crate::telemetry::propagation;
use crate::telemetry::propagation::adopt_meta_traceparent;

#[derive(Clone)]
pub struct Outbound {
    worker: Arc<Worker>,
    conn: Arc<ConnGuard>,
}

impl Outbound {
    pub fn new(worker: Arc<Worker>, conn: ConnGuard) -> Outbound {
        Outbound {
            worker,
            conn: Arc::new(conn),
        }
    }

    pub async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, std::convert::Infallible> {
        let shared = &self.worker.shared;
        let observe = shared.access_log.is_some() || shared.otlp.is_some();
        let mut env = audit::Envelope::open(&mut req, observe);
        let result = self.route(req, env.start, &mut env.meta).await;
        Ok(env.close(result, Direction::Outbound, shared, None))
    }

    async fn route(
        &self,
        req: Request<Incoming>,
        start: Instant,
        meta: &mut audit::Meta,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let snap = self.worker.shared.snapshot.load_full();
        let config = &snap.loaded.config;
        let mut req = req;
        let upgrade = take_upgrade(&mut req);
        let (mut req, mcp) = match inspect(req) {
            Inspection::Pass(req) => (req, None),
            Inspection::Read(p) => {
                p.classify(config.mcp_max_inspect_body, snap.needs_mcp_body)
                    .await?
            }
        };
        meta.mcp = mcp;
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
        let rs = &snap.routes[idx];
        let route = &rs.route;
        let pick = balance::weighted(&route.to, route.total_weight);
        let backend = &snap.backends[route.to[pick].0];
        let metrics = &rs.metrics[pick];

        headers::strip_hop_by_hop(req.headers_mut(), upgrade.is_some());
        headers::apply_edits(req.headers_mut(), &route.request_headers);
        if self.worker.shared.access_log.is_some() || self.worker.shared.otlp.is_some() {
            meta.route.clone_from(&route.name);
            meta.backend.clone_from(&backend.backend.name);
        }

        let sessions = backend.backend.session_affinity.then(|| {
            let shared = &self.worker.shared;
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
        let call = Call {
            backend,
            worker: self.worker.id,
            timeout: route.timeout,
            mcp_idempotent,
            retry: route.retry.as_ref().filter(|_| upgrade.is_none()),
            budget: rs.budget.as_deref(),
            route: &route.name,
            budget_exhausted: Some(&rs.budget_exhausted),
            retries: Some(&self.worker.shared.metrics.retries),
            sessions: sessions.as_ref().map(|(k, g)| (&**k, g)),
            session_bound: false,
        };
        let mut info = TryInfo::default();
        // Boxed: the request future stays small, so hyper and tokio move less per request.
        let result = Box::pin(forward(call, req, authority, &mut info)).await;
        meta.attempts = info.attempts;
        meta.upstream = info.upstream;
        let (mut rsp, (permit, lease)) = match result {
            Ok(f) => (f.response, (f.permit, f.lease)),
            Err(e) => {
                metrics.record(e.status().as_u16(), start.elapsed(), meta.mcp.as_ref());
                return Err(e);
            }
        };
        if let Some(up) = upgrade {
            spawn_tunnel(up, &mut rsp, self.conn.clone());
        }
        metrics.record(rsp.status().as_u16(), start.elapsed(), meta.mcp.as_ref());
        let is_switch = rsp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        headers::strip_hop_by_hop(rsp.headers_mut(), is_switch);
        headers::mark_event_stream(rsp.headers_mut());
        headers::apply_edits(rsp.headers_mut(), &route.response_headers);
        let guards = Guards {
            inbound: None,
            backend: Some(permit),
            lease,
        };
        let keepalive = snap
            .loaded
            .config
            .mcp_sse_keepalive
            .filter(|_| headers::is_event_stream(rsp.headers()));
        Ok(rsp.map(|b| {
            let body = ProxyBody::upstream(b, route.idle_timeout, guards);
            match keepalive {
                Some(every) => body.with_sse_keepalive(every),
                None => body,
            }
        }))
    }
}
