//! Fault servers and config helpers for the resilience tests (issue 4), all on 127.0.0.1:0:
//! * [`controlled`]: an upstream whose answer status and `/healthz` status the test switches
//!   at run time (bursts of 503, failing endpoints, active health checks);
//! * [`MidBodyReset`]: sends response headers and part of the body, then resets the
//!   connection (RST) once the test, having seen those bytes at the client, allows it;
//! * [`Revivable`]: a port that refuses connections until the test makes it listen, on the
//!   same address (an endpoint that comes back);
//! * [`backend`] / [`start`]: backends with several static endpoints.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::body;
use super::upstream::{Recorded, Upstream};
use super::{bounded, Cfg, TestProxy};

/// A backend flow mapping with one static endpoint per address, plus `extra` keys.
pub fn backend(name: &str, addrs: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    };
    format!(
        "{{ name: {name}, protocol: http1, discovery: {{ static: [{}] }}{extra} }}",
        list.join(", ")
    )
}

/// Start a proxy with these route and backend flow mappings.
pub fn start(routes: &[String], backends: &[String]) -> TestProxy {
    TestProxy::start(start_yaml(routes, backends))
}

/// The config `start` would use (to extend it first).
pub fn start_yaml(routes: &[String], backends: &[String]) -> String {
    let cfg = routes.iter().fold(Cfg::new(), |cfg, r| cfg.route(r));
    let list: String = backends.iter().map(|b| format!("  - {b}\n")).collect();
    cfg.yaml()
        .replace("backends: []\n", &format!("backends:\n{list}"))
}

/// Run-time switches of a [`controlled`] upstream.
#[derive(Clone)]
pub struct Control {
    status: Arc<AtomicU16>,
    health: Arc<AtomicU16>,
    probes: Arc<AtomicUsize>,
    failures: Arc<AtomicUsize>,
}

impl Control {
    /// Status of every answer except `/healthz` from now on.
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Status of `GET /healthz` from now on.
    pub fn health(&self, status: u16) {
        self.health.store(status, Ordering::SeqCst);
    }

    /// `/healthz` probes received so far (they are not recorded as requests).
    pub fn probes(&self) -> usize {
        self.probes.load(Ordering::SeqCst)
    }

    /// Answers with a 5xx status sent so far.
    pub fn failures_sent(&self) -> usize {
        self.failures.load(Ordering::SeqCst)
    }
}

/// An upstream answering `status` (body and `x-upstream`: its name) to every request, which
/// it records with its body; `/healthz` answers the health status (200 at first) unrecorded.
pub async fn controlled(name: &str, status: u16) -> (Upstream, Control) {
    let control = Control {
        status: Arc::new(AtomicU16::new(status)),
        health: Arc::new(AtomicU16::new(200)),
        probes: Arc::default(),
        failures: Arc::default(),
    };
    let c = control.clone();
    let up = Upstream::start(name, move |req, shared| {
        let c = c.clone();
        async move {
            if req.uri().path() == "/healthz" {
                c.probes.fetch_add(1, Ordering::SeqCst);
                return Response::builder()
                    .status(c.health.load(Ordering::SeqCst))
                    .body(body::full("health"))
                    .unwrap();
            }
            let (parts, incoming) = req.into_parts();
            let bytes = incoming
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let status = c.status.load(Ordering::SeqCst);
            if status >= 500 {
                c.failures.fetch_add(1, Ordering::SeqCst);
            }
            shared.record(Recorded::of(&Request::from_parts(parts, ()), bytes));
            Response::builder()
                .status(status)
                .header("x-upstream", shared.name.as_str())
                .body(body::full(shared.name.clone()))
                .unwrap()
        }
    })
    .await;
    (up, control)
}

/// Answers each request with `200`, `content-length: 1000` and the first [`MID_BODY_SENT`]
/// bytes of body, then waits for [`MidBodyReset::release_one`] and resets the connection.
pub struct MidBodyReset {
    pub addr: SocketAddr,
    requests: watch::Receiver<usize>,
    release: Arc<Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

/// Body bytes a [`MidBodyReset`] sends before the reset (of 1000 announced).
pub const MID_BODY_SENT: usize = 100;

impl Drop for MidBodyReset {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MidBodyReset {
    pub async fn start() -> MidBodyReset {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (tx, requests) = watch::channel(0usize);
        let tx = Arc::new(tx);
        let release = Arc::new(Semaphore::new(0));
        let sem = release.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                while conns.try_join_next().is_some() {}
                conns.spawn(reset_mid_body(stream, tx.clone(), sem.clone()));
            }
        });
        MidBodyReset {
            addr,
            requests,
            release,
            task,
        }
    }

    /// Request heads received so far.
    pub fn requests(&self) -> usize {
        *self.requests.borrow()
    }

    /// Let one connection that sent its partial response reset.
    pub fn release_one(&self) {
        self.release.add_permits(1);
    }
}

async fn reset_mid_body(
    mut stream: TcpStream,
    requests: Arc<watch::Sender<usize>>,
    release: Arc<Semaphore>,
) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    requests.send_modify(|n| *n += 1);
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n";
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&[b'A'; MID_BODY_SENT]).await;
    let _ = stream.flush().await;
    if let Ok(permit) = release.acquire().await {
        permit.forget();
    }
    // SO_LINGER 0: close() sends RST instead of FIN.
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// A port that refuses connections (bound, not listening) until [`Revivable::revive`] makes
/// the same socket listen and serve.
pub struct Revivable {
    pub addr: SocketAddr,
    socket: TcpSocket,
}

pub fn revivable() -> Revivable {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    Revivable {
        addr: socket.local_addr().unwrap(),
        socket,
    }
}

impl Revivable {
    /// Start listening on the same address; every request is answered `200` with
    /// `x-upstream: revived` and counted.
    pub fn revive(self) -> Revived {
        let listener = self.socket.listen(128).expect("listen");
        let (tx, requests) = watch::channel(0usize);
        let tx = Arc::new(tx);
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                while conns.try_join_next().is_some() {}
                let tx = tx.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                        tx.send_modify(|n| *n += 1);
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header("x-upstream", "revived")
                                    .body(body::full(Bytes::from_static(b"revived")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Revived {
            addr: self.addr,
            requests,
            task,
        }
    }
}

pub struct Revived {
    pub addr: SocketAddr,
    requests: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Revived {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Revived {
    pub fn requests(&self) -> usize {
        *self.requests.borrow()
    }

    pub async fn wait_requests(&self, n: usize) {
        let mut rx = self.requests.clone();
        bounded("revived server requests", rx.wait_for(|c| *c >= n))
            .await
            .expect("revived server stopped");
    }
}

/// Endpoint `addr` of backend `backend` in admin `/backends` (`address`, `state`,
/// `active_requests`, `ewma_latency_ms`, `consecutive_failures`, `ejected_until`, ...).
pub async fn endpoint_json(
    proxy: &TestProxy,
    backend: &str,
    addr: SocketAddr,
) -> Option<serde_json::Value> {
    let resp = proxy.admin_get("/backends").await;
    assert_eq!(resp.status, 200, "GET /backends: {}", resp.text());
    let json = resp.json();
    let b = json["backends"]
        .as_array()?
        .iter()
        .find(|b| b["name"] == backend)?;
    b["endpoints"]
        .as_array()?
        .iter()
        .find(|e| e["address"] == addr.to_string().as_str())
        .cloned()
}

/// `state` of endpoint `addr` of backend `backend` in admin `/backends`.
pub async fn endpoint_state(proxy: &TestProxy, backend: &str, addr: SocketAddr) -> Option<String> {
    let ep = endpoint_json(proxy, backend, addr).await?;
    ep["state"].as_str().map(str::to_string)
}

/// What a client saw for one request; transport errors are returned, not panicked on (for
/// requests made from spawned tasks).
#[derive(Debug, Clone)]
pub struct Seen {
    pub status: u16,
    pub reason: Option<String>,
    pub upstream: String,
}

pub async fn try_get(
    client: &super::client::Client,
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> Result<Seen, String> {
    let req = super::client::request(addr, host, path)
        .body(body::empty())
        .unwrap();
    let resp = client.send(req).await.map_err(|e| format!("send: {e:?}"))?;
    let resp = super::client::read(resp)
        .await
        .map_err(|e| format!("body: {e:?}"))?;
    Ok(Seen {
        status: resp.status.as_u16(),
        reason: resp.error_reason().map(str::to_string),
        upstream: resp.upstream().to_string(),
    })
}

/// Wait until the series reaches at least `min` (metrics may be recorded after the response
/// went out; the proxy offers no signal for that). Returns the value seen.
pub async fn metric_at_least(
    proxy: &TestProxy,
    name: &str,
    labels: &[(&str, &str)],
    min: f64,
) -> f64 {
    super::eventually(
        Duration::from_secs(3),
        &format!("{name}{labels:?} >= {min}"),
        move || async move { proxy.metric(name, labels).await.filter(|v| *v >= min) },
    )
    .await
}
