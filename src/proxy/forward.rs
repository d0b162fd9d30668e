//! Sending one request to one endpoint of a backend, and shaping the response on the way back.
//!
//! Owns: endpoint choice call, upstream URI/version/Host rewriting, the route timeout (to
//! response headers only), upstream error classification, WebSocket/Upgrade tunnels.
//! This is the slot where the resilience layers (retries, breakers, P2C) go.

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::{debug, Instrument};

use super::error::{from_client_error, ProxyError};
use super::headers;
use crate::config::model::Protocol;
use crate::snapshot::BackendState;

/// Sends `req` to an endpoint of `backend` using the client of worker `worker`.
pub async fn forward(
    backend: &BackendState,
    worker: usize,
    mut req: Request<Incoming>,
    authority: Option<HeaderValue>,
    timeout: Duration,
) -> Result<Response<Incoming>, ProxyError> {
    if backend.endpoints.is_empty() {
        return Err(ProxyError::NoEndpoints {
            backend: backend.backend.name.clone(),
        });
    }
    let ep = &backend.endpoints[backend.rr.pick(backend.endpoints.len())];
    let pq = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(ep.authority.clone());
    parts.path_and_query = Some(pq);
    *req.uri_mut() = Uri::from_parts(parts).expect("scheme, authority and path make a valid URI");
    match backend.backend.protocol {
        Protocol::Http2 => *req.version_mut() = Version::HTTP_2,
        Protocol::Http1 | Protocol::Auto => {
            *req.version_mut() = Version::HTTP_11;
            // HTTP/2 clients send :authority, not Host; an HTTP/1.1 upstream needs Host.
            if !req.headers().contains_key(header::HOST) {
                if let Some(a) = authority {
                    req.headers_mut().insert(header::HOST, a);
                }
            }
        }
    }
    ep.active.fetch_add(1, Ordering::Relaxed);
    let _active = ActiveGuard(&ep.active);
    let call = backend.clients[worker].request(req);
    let result = if timeout.is_zero() {
        call.await
    } else {
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => {
                return Err(ProxyError::Timeout {
                    backend: backend.backend.name.clone(),
                    timeout,
                })
            }
        }
    };
    let mut rsp =
        result.map_err(|e| from_client_error(e, &backend.backend.name, ep.authority.as_str()))?;
    // The client connection has its own version; an HTTP/1.0 upstream must not downgrade it.
    *rsp.version_mut() = Version::HTTP_11;
    Ok(rsp)
}

struct ActiveGuard<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// For an HTTP/1.1 `Upgrade` request: takes the client side of the upgrade.
pub fn take_upgrade(req: &mut Request<Incoming>) -> Option<OnUpgrade> {
    (req.version() == Version::HTTP_11 && headers::wants_upgrade(req.headers()))
        .then(|| hyper::upgrade::on(req))
}

/// After a `101 Switching Protocols`, splices client and upstream connections together.
pub fn spawn_tunnel(client: OnUpgrade, rsp: &mut Response<Incoming>, guard: impl Send + 'static) {
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
