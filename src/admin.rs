//! The admin listener (loopback) and the public metrics listener of SPEC §5.
//!
//! Owns: endpoint routing and JSON shapes of `/live`, `/ready`, `/metrics`, `/config`,
//! `/config/history`, `/backends`, `/reload`, `/drain`. The metrics listener serves only
//! `/metrics`, `/ready` and `/live`. Runs on its own small runtime (see `app`), never on a
//! data-path worker.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, Instrument};

use crate::proxy::{Lifecycle, Shared};
use crate::reload::{Outcome, Reloader, Trigger};

/// What the admin endpoints act on.
pub struct AdminState {
    pub shared: Arc<Shared>,
    pub lifecycle_tx: Arc<watch::Sender<Lifecycle>>,
    pub reloader: Arc<Reloader>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Admin,
    Metrics,
}

pub async fn serve(listener: TcpListener, kind: Kind, state: Arc<AdminState>) {
    let mut lifecycle = state.shared.lifecycle.clone();
    loop {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(%error, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::proxy::reached(&mut lifecycle, Lifecycle::Stopped) => return,
        };
        let state = state.clone();
        let svc = hyper::service::service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handle(kind, &state, req).await) }
        });
        tokio::spawn(
            async move {
                let builder = auto::Builder::new(TokioExecutor::new());
                if let Err(error) = builder.serve_connection(TokioIo::new(stream), svc).await {
                    debug!(%error, "admin connection error");
                }
            }
            .instrument(tracing::debug_span!("admin_conn", %peer)),
        );
    }
}

async fn handle(kind: Kind, state: &AdminState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let method = req.method();
    let get = method == Method::GET || method == Method::HEAD;
    match (kind, path) {
        (_, "/live") if get => text(StatusCode::OK, "live\n"),
        (_, "/ready") if get => ready(state).await,
        (_, "/metrics") if get => {
            // Backend gauges are computed from live state at scrape time.
            let snap = state.shared.snapshot.load();
            for b in &snap.backends {
                b.report_metrics(&state.shared.metrics);
            }
            drop(snap);
            let mut rsp = Response::new(Full::new(Bytes::from(state.shared.metrics.render())));
            rsp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            rsp
        }
        (Kind::Admin, "/config") if get => json_rsp(StatusCode::OK, &config_json(state)),
        (Kind::Admin, "/config/history") if get => {
            json_rsp(StatusCode::OK, &json!(state.reloader.history()))
        }
        (Kind::Admin, "/backends") if get => json_rsp(StatusCode::OK, &backends_json(state)),
        (Kind::Admin, "/drain") if method == Method::POST => {
            let started = state.lifecycle_tx.send_if_modified(|l| {
                let was_running = *l == Lifecycle::Running;
                if was_running {
                    *l = Lifecycle::Draining;
                }
                was_running
            });
            if started {
                tracing::info!("drain requested through the admin API");
            }
            json_rsp(
                StatusCode::ACCEPTED,
                &json!({"draining": true, "started_now": started}),
            )
        }
        (Kind::Admin, "/reload") if method == Method::POST => {
            let reloader = state.reloader.clone();
            match tokio::task::spawn_blocking(move || reloader.reload(Trigger::Api)).await {
                Ok(a) => {
                    let status = if a.result == Outcome::Failure {
                        StatusCode::UNPROCESSABLE_ENTITY
                    } else {
                        StatusCode::OK
                    };
                    json_rsp(status, &json!(a))
                }
                Err(e) => json_rsp(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"result": "failure", "error": e.to_string()}),
                ),
            }
        }
        (
            Kind::Admin,
            "/live" | "/ready" | "/metrics" | "/config" | "/config/history" | "/backends",
        )
        | (Kind::Metrics, "/live" | "/ready" | "/metrics") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        (Kind::Admin, "/drain" | "/reload") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

async fn ready(state: &AdminState) -> Response<Full<Bytes>> {
    let running = *state.shared.lifecycle.borrow() == Lifecycle::Running;
    if !running {
        return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n");
    }
    let snap = state.shared.snapshot.load_full();
    if let Some(ib) = snap.loaded.config.inbound.as_ref() {
        if ib.ready_requires_app {
            let probe = tokio::time::timeout(
                Duration::from_secs(1),
                tokio::net::TcpStream::connect(ib.app),
            );
            if !matches!(probe.await, Ok(Ok(_))) {
                return text(StatusCode::SERVICE_UNAVAILABLE, "app not reachable\n");
            }
        }
        for name in &ib.ready_requires_backends {
            if snap
                .backends
                .iter()
                .any(|b| &b.backend.name == name && b.eps.is_empty())
            {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "required backend has no endpoints\n",
                );
            }
        }
    }
    text(StatusCode::OK, "ready\n")
}

fn config_json(state: &AdminState) -> serde_json::Value {
    let snap = state.shared.snapshot.load();
    let l = &snap.loaded;
    json!({
        "generation": snap.generation,
        "sha256": l.sha256,
        "loaded_at": humantime::format_rfc3339_millis(l.loaded_at).to_string(),
        "path": l.source,
        "config": l.effective.to_json(),
    })
}

fn backends_json(state: &AdminState) -> serde_json::Value {
    let snap = state.shared.snapshot.load();
    let now = tokio::time::Instant::now();
    let wall = std::time::SystemTime::now();
    let list: Vec<_> = snap
        .backends
        .iter()
        .chain(snap.app.iter())
        .map(|b| {
            let endpoints: Vec<_> = b
                .eps
                .iter()
                .map(|e| {
                    let r = e.report(now);
                    json!({
                        "address": r.addr.to_string(),
                        "state": r.state.as_str(),
                        "active_requests": r.in_flight,
                        "ewma_latency_ms": r.ewma.as_secs_f64() * 1e3,
                        "consecutive_failures": r.consecutive_failures,
                        "ejected_until": r.ejected_for.map(|d| humantime::format_rfc3339_millis(wall + d).to_string()),
                        "penalized_until": r.penalized_for.map(|d| humantime::format_rfc3339_millis(wall + d).to_string()),
                        "sessions": 0,
                    })
                })
                .collect();
            let summary = b.policy.summary(&b.eps, now);
            json!({
                "name": b.backend.name,
                "balance": b.backend.resilience.balance.as_str(),
                "protocol": b.backend.protocol.to_string(),
                "tls_identity": b.backend.tls,
                "active_requests": summary.active_requests,
                "circuit_open": summary.circuit_open,
                "endpoints": endpoints,
            })
        })
        .collect();
    json!({ "backends": list })
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut rsp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    rsp
}

fn json_rsp(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut body = serde_json::to_vec_pretty(v).expect("JSON values serialize");
    body.push(b'\n');
    let mut rsp = Response::new(Full::new(Bytes::from(body)));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    rsp
}
