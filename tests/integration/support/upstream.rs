//! Programmable fake upstreams: real hyper 1 servers (hyper-util auto builder, so HTTP/1.1 and
//! h2c prior knowledge) on 127.0.0.1:0. Each one counts accepted TCP connections and records
//! the requests it receives; the constructors pick the behaviour (echo, SSE stepper, body
//! reporter, gated, delayed).
//!
//! Signals instead of sleeps: the test awaits `wait_accepts`/`wait_requests`, fires the SSE
//! stepper's `Notify`, opens a [`Gate`], or reads chunk reports from a channel.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;

use super::body::{self, Body};
use super::bounded;

/// One request as the upstream saw it. `body` is empty for handlers that stream the body.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn of<B>(req: &Request<B>, body: Bytes) -> Self {
        Recorded {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
            body,
        }
    }

    /// First value of header `name`, if any and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of header `name` (one entry per header line).
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    /// All values of `name` joined with ", " (the list form of RFC 9110 §5.3).
    pub fn header_joined(&self, name: &str) -> String {
        self.header_all(name).join(", ")
    }
}

/// State shared by the accept loop, every connection and the test.
#[derive(Clone)]
pub struct Shared {
    pub name: String,
    log: Arc<Mutex<Vec<Recorded>>>,
    requests: watch::Sender<usize>,
}

impl Shared {
    pub fn record(&self, r: Recorded) {
        self.log.lock().unwrap().push(r);
        self.requests.send_modify(|n| *n += 1);
    }
}

type HandlerFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;
type Handler = Arc<dyn Fn(Request<Incoming>, Shared) -> HandlerFuture + Send + Sync>;

/// A running fake upstream. Dropping it stops the listener and every open connection.
pub struct Upstream {
    pub addr: SocketAddr,
    shared: Shared,
    accepts: watch::Receiver<usize>,
    requests: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// Start a server whose requests are answered by `handler`.
    pub async fn start<F, Fut>(name: &str, handler: F) -> Upstream
    where
        F: Fn(Request<Incoming>, Shared) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req, shared| Box::pin(handler(req, shared)));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().unwrap();
        let (accepts_tx, accepts) = watch::channel(0usize);
        let (requests_tx, requests) = watch::channel(0usize);
        let shared = Shared {
            name: name.to_string(),
            log: Arc::default(),
            requests: requests_tx,
        };
        let task = tokio::spawn(accept_loop(listener, shared.clone(), handler, accepts_tx));
        Upstream {
            addr,
            shared,
            accepts,
            requests,
            task,
        }
    }

    /// `host:port` for a `discovery.static` entry.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// TCP connections accepted so far.
    pub fn accepts(&self) -> usize {
        *self.accepts.borrow()
    }

    /// Wait (bounded) until at least `n` connections were accepted.
    pub async fn wait_accepts(&self, n: usize) {
        let mut rx = self.accepts.clone();
        bounded(
            &format!("{} to accept {n} connection(s)", self.shared.name),
            rx.wait_for(|c| *c >= n),
        )
        .await
        .expect("upstream stopped");
    }

    /// Every request recorded so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.log.lock().unwrap().clone()
    }

    /// The paths of the requests recorded so far, in order.
    pub fn paths(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r.uri.path().to_owned())
            .collect()
    }

    /// Wait (bounded) until at least `n` requests were recorded, then return them all.
    pub async fn wait_requests(&self, n: usize) -> Vec<Recorded> {
        let mut rx = self.requests.clone();
        bounded(
            &format!("{} to receive {n} request(s)", self.shared.name),
            rx.wait_for(|c| *c >= n),
        )
        .await
        .expect("upstream stopped");
        self.requests()
    }

    /// The most recent request (waits for the first one).
    pub async fn last_request(&self) -> Recorded {
        self.wait_requests(1).await.pop().unwrap()
    }

    /// Echo/recorder named "echo".
    pub async fn echo() -> Upstream {
        Upstream::named("echo").await
    }

    /// Echo/recorder: reads the whole body, records the request and answers 200 with a JSON
    /// description of it. Response headers: `x-upstream: NAME`, `server: fake-upstream`,
    /// `x-internal: secret` (for response header rules).
    pub async fn named(name: &str) -> Upstream {
        Upstream::start(name, |req, shared| async move {
            let (parts, incoming) = req.into_parts();
            let body = incoming
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let req = Request::from_parts(parts, ());
            let rec = Recorded::of(&req, body.clone());
            let description = describe(&shared.name, &rec);
            shared.record(rec);
            Response::builder()
                .header("content-type", "application/json")
                .header("x-upstream", shared.name.as_str())
                .header("server", "fake-upstream")
                .header("x-internal", "secret")
                .body(body::full(description))
                .unwrap()
        })
        .await
    }

    /// SSE stepper: sends event `one`, waits until the test fires the returned `Notify`
    /// (after the *client* saw event one), then sends event `two` and ends the stream.
    /// Never firing it gives a stream that goes silent after the first event.
    pub async fn sse_stepper() -> (Upstream, Arc<Notify>) {
        let step = Arc::new(Notify::new());
        let step2 = step.clone();
        let up = Upstream::start("sse", move |req, shared| {
            let step = step2.clone();
            async move {
                shared.record(Recorded::of(&req, Bytes::new()));
                let (tx, body) = body::channel();
                tokio::spawn(async move {
                    let _ = tx.send(Bytes::from_static(b"id: 1\ndata: one\n\n"));
                    step.notified().await;
                    let _ = tx.send(Bytes::from_static(b"id: 2\ndata: two\n\n"));
                });
                sse_response(body)
            }
        })
        .await;
        (up, step)
    }

    /// SSE ticker: `count` events, one every `every`, then the end of the stream.
    pub async fn sse_ticker(count: usize, every: Duration) -> Upstream {
        Upstream::start("ticker", move |req, shared| async move {
            shared.record(Recorded::of(&req, Bytes::new()));
            let (tx, body) = body::channel();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                for i in 1..=count {
                    tick.tick().await;
                    if tx
                        .send(Bytes::from(format!("id: {i}\ndata: tick {i}\n\n")))
                        .is_err()
                    {
                        return;
                    }
                }
            });
            sse_response(body)
        })
        .await
    }

    /// Request-body reporter: forwards each data frame of the request body to the returned
    /// channel as soon as it arrives, then answers 200 `got N bytes`.
    pub async fn body_reporter() -> (Upstream, mpsc::UnboundedReceiver<Bytes>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let up = Upstream::start("reporter", move |req, shared| {
            let tx = tx.clone();
            async move {
                shared.record(Recorded::of(&req, Bytes::new()));
                let mut body = req.into_body();
                let mut total = 0;
                while let Some(frame) = body.frame().await {
                    let Ok(frame) = frame else { break };
                    if let Ok(data) = frame.into_data() {
                        total += data.len();
                        let _ = tx.send(data);
                    }
                }
                Response::new(body::full(format!("got {total} bytes")))
            }
        })
        .await;
        (up, rx)
    }

    /// Gated: records the request on arrival, then answers 200 `released` only once the
    /// test opens the returned [`Gate`].
    pub async fn gated() -> (Upstream, Gate) {
        let (tx, rx) = watch::channel(false);
        let up = Upstream::start("gated", move |req, shared| {
            let mut rx = rx.clone();
            async move {
                shared.record(Recorded::of(&req, Bytes::new()));
                let _ = rx.wait_for(|open| *open).await;
                Response::new(body::full("released"))
            }
        })
        .await;
        (up, Gate(tx))
    }

    /// Slow: answers 200 `slow` after `delay` (server-side behaviour, not a test wait).
    pub async fn delayed(delay: Duration) -> Upstream {
        Upstream::start("slow", move |req, shared| async move {
            shared.record(Recorded::of(&req, Bytes::new()));
            tokio::time::sleep(delay).await;
            Response::new(body::full("slow"))
        })
        .await
    }
}

/// Releases every request held by a [`Upstream::gated`] server.
pub struct Gate(watch::Sender<bool>);

impl Gate {
    pub fn open(&self) {
        let _ = self.0.send(true);
    }
}

fn sse_response(body: Body) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(body)
        .unwrap()
}

/// JSON description of a request, as returned by the echo upstream.
fn describe(name: &str, rec: &Recorded) -> String {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &rec.headers {
        headers
            .entry(k.to_string())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into());
    }
    serde_json::json!({
        "upstream": name,
        "method": rec.method.as_str(),
        "uri": rec.uri.to_string(),
        "version": format!("{:?}", rec.version),
        "headers": headers,
        "body_len": rec.body.len(),
    })
    .to_string()
}

async fn accept_loop(
    listener: TcpListener,
    shared: Shared,
    handler: Handler,
    accepts: watch::Sender<usize>,
) {
    // Connections live in the JoinSet so that aborting this task closes them all.
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        while conns.try_join_next().is_some() {}
        accepts.send_modify(|n| *n += 1);
        let (shared, handler) = (shared.clone(), handler.clone());
        conns.spawn(async move {
            let svc = service_fn(move |req| {
                let fut = handler(req, shared.clone());
                async move { Ok::<_, Infallible>(fut.await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await;
        });
    }
}
