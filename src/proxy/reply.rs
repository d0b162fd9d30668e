//! What both directions do with a forwarded response before it goes back to the client.
//!
//! Owns: recording the response (or the error) in the route's metrics, the tunnel of a `101`,
//! the response's hop-by-hop and SSE rules, the route's response header edits, and the body the
//! client reads (idle timeout, SSE keep-alive comments, the slots and the pooled connection it
//! holds until it ends).

use std::sync::Arc;
use std::time::Duration;

use http::Response;
use hyper::upgrade::OnUpgrade;
use tokio::sync::OwnedSemaphorePermit;

use super::activity::Busy;
use super::audit::Envelope;
use super::body::{Guards, ProxyBody};
use super::error::ProxyError;
use super::forward::{spawn_tunnel, Forwarded};
use super::{headers, ConnGuard};
use crate::config::model::HeaderEdits;
use crate::telemetry::metrics::RouteBackendMetrics;

/// How a direction finishes its responses.
pub struct Reply<'a> {
    pub metrics: &'a RouteBackendMetrics,
    /// The route's response header rules (outbound).
    pub edits: Option<&'a HeaderEdits>,
    /// The body's idle timeout; zero disables it.
    pub idle: Duration,
    /// `mcp.sse_keepalive`: comments between the events of an SSE response.
    pub sse_keepalive: Option<Duration>,
    /// The inbound listener's slot, held until the body ends.
    pub inbound: Option<OwnedSemaphorePermit>,
    /// The request's share of its connection's activity, held until the body ends.
    pub busy: Busy,
}

impl Reply<'_> {
    /// The response for the client (or the error, counted), with `upgrade` (the client's side
    /// of a WebSocket handshake) spliced to the upstream's on a `101`.
    pub fn finish(
        self,
        sent: Result<Forwarded, ProxyError>,
        upgrade: Option<OnUpgrade>,
        conn: &Arc<ConnGuard>,
        env: &Envelope,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let mcp = env.meta.mcp.as_ref();
        let Forwarded {
            response: mut rsp,
            permit,
            lease,
        } = match sent {
            Ok(f) => f,
            Err(e) => {
                self.metrics
                    .record(e.status().as_u16(), env.start.elapsed(), mcp);
                return Err(e);
            }
        };
        if let Some(up) = upgrade {
            spawn_tunnel(up, &mut rsp, conn.clone());
        }
        self.metrics
            .record(rsp.status().as_u16(), env.start.elapsed(), mcp);
        let is_switch = rsp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        let sse = headers::finish_response(rsp.headers_mut(), is_switch);
        if let Some(edits) = self.edits {
            headers::apply_edits(rsp.headers_mut(), edits);
        }
        let guards = Guards {
            inbound: self.inbound,
            backend: Some(permit),
            lease,
            busy: Some(self.busy),
        };
        let keepalive = self.sse_keepalive.filter(|_| sse);
        Ok(rsp.map(|b| {
            let body = ProxyBody::upstream(b, self.idle, guards);
            match keepalive {
                Some(every) => body.with_sse_keepalive(every),
                None => body,
            }
        }))
    }
}
