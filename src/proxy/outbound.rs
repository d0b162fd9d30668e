//! The outbound request path: local app -> route -> backend -> endpoint.
//!
//! Order: request id, route match (host index), weighted backend split, header rules,
//! forward (route timeout to headers), response header rules, metrics.

use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;

use super::body::{Guards, ProxyBody};
use super::error::{rescue, ProxyError};
use super::forward::{forward, spawn_tunnel, take_upgrade, Call};
use super::headers;
use super::{ConnGuard, Worker};
use crate::balance;
use crate::routing;
use crate::telemetry::metrics::Direction;

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
        self,
        mut req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, std::convert::Infallible> {
        let start = Instant::now();
        let request_id = headers::ensure_request_id(req.headers_mut());
        let mut rsp = match self.route(req, start).await {
            Ok(rsp) => rsp,
            Err(err) => {
                tracing::debug!(error = %err, "outbound request failed");
                self.worker
                    .shared
                    .metrics
                    .proxy_error(Direction::Outbound, err.reason())
                    .inc();
                rescue(&err)
            }
        };
        rsp.headers_mut().insert(headers::X_REQUEST_ID, request_id);
        Ok(rsp)
    }

    async fn route(
        &self,
        mut req: Request<Incoming>,
        start: Instant,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let snap = self.worker.shared.snapshot.load_full();
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

        let upgrade = take_upgrade(&mut req);
        headers::strip_hop_by_hop(req.headers_mut(), upgrade.is_some());
        headers::apply_edits(req.headers_mut(), &route.request_headers);

        let call = Call {
            backend,
            worker: self.worker.id,
            timeout: route.timeout,
            retry: route.retry.as_ref().filter(|_| upgrade.is_none()),
            budget: rs.budget.as_deref(),
            route: &route.name,
            budget_exhausted: Some(&rs.budget_exhausted),
            retries: Some(&self.worker.shared.metrics.retries),
        };
        let (mut rsp, permit) = match forward(call, req, authority).await {
            Ok(f) => (f.response, f.permit),
            Err(e) => {
                metrics.count(e.status().as_u16());
                metrics.duration.observe(start.elapsed().as_secs_f64());
                return Err(e);
            }
        };
        if let Some(up) = upgrade {
            spawn_tunnel(up, &mut rsp, self.conn.clone());
        }
        metrics.count(rsp.status().as_u16());
        metrics.duration.observe(start.elapsed().as_secs_f64());
        let is_switch = rsp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        headers::strip_hop_by_hop(rsp.headers_mut(), is_switch);
        headers::mark_event_stream(rsp.headers_mut());
        headers::apply_edits(rsp.headers_mut(), &route.response_headers);
        let guards = Guards {
            inbound: None,
            backend: Some(permit),
        };
        Ok(rsp.map(|b| ProxyBody::upstream(b, route.idle_timeout, guards)))
    }
}
