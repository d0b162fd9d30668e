//! Real loopback upstreams (hyper servers, and one raw TCP peer where the test must control
//! exactly when a connection closes).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Barrier;

use super::*;

type TestBody = BoxBody<Bytes, Infallible>;

#[derive(Default)]
struct Counts {
    accepts: AtomicUsize,
    requests: AtomicUsize,
}

/// A hyper upstream. Paths: `/barrier` answers once `barrier` requests are in, `/endless`
/// sends one chunk and then nothing, `/upgrade` switches to an echo protocol; anything else
/// answers `<uri> <host>`.
async fn upstream(keep_alive: bool, barrier: usize) -> (SocketAddr, Arc<Counts>) {
    serve(Proto::Http1 { keep_alive }, barrier).await
}

/// The same upstream speaking h2c (prior knowledge).
async fn h2c_upstream(barrier: usize) -> (SocketAddr, Arc<Counts>) {
    serve(Proto::H2c, barrier).await
}

#[derive(Clone, Copy)]
enum Proto {
    Http1 { keep_alive: bool },
    H2c,
}

async fn serve(proto: Proto, barrier: usize) -> (SocketAddr, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let barrier = Arc::new(Barrier::new(barrier.max(1)));
    let c = counts.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            c.accepts.fetch_add(1, Ordering::SeqCst);
            let (c, barrier) = (c.clone(), barrier.clone());
            let svc = service_fn(move |req| {
                c.requests.fetch_add(1, Ordering::SeqCst);
                handle(req, barrier.clone())
            });
            let io = TokioIo::new(stream);
            match proto {
                Proto::Http1 { keep_alive } => tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .keep_alive(keep_alive)
                        .serve_connection(io, svc)
                        .with_upgrades(),
                ),
                Proto::H2c => tokio::spawn(
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(io, svc),
                ),
            };
        }
    });
    (addr, counts)
}

async fn handle(
    mut req: Request<Incoming>,
    barrier: Arc<Barrier>,
) -> Result<Response<TestBody>, Infallible> {
    let full = |s: String| Response::new(Full::new(Bytes::from(s)).boxed());
    Ok(match req.uri().path() {
        "/barrier" => {
            barrier.wait().await;
            full("ok".into())
        }
        "/endless" => Response::new(Endless(false).boxed()),
        "/upgrade" => {
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let mut io = TokioIo::new(on.await.unwrap());
                let mut buf = [0u8; 4];
                io.read_exact(&mut buf).await.unwrap();
                io.write_all(&buf).await.unwrap();
            });
            let mut rsp = full(String::new());
            *rsp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            rsp.headers_mut()
                .insert(header::UPGRADE, "echo".parse().unwrap());
            rsp.headers_mut()
                .insert(header::CONNECTION, "upgrade".parse().unwrap());
            rsp
        }
        _ => {
            let host = req.headers().get(header::HOST);
            let host = host.and_then(|h| h.to_str().ok()).unwrap_or("-");
            full(format!("{} {host}", req.uri()))
        }
    })
}

/// One 16 KiB chunk, then a body that never ends.
struct Endless(bool);

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if std::mem::replace(&mut self.0, true) {
            return Poll::Pending;
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; 16 * 1024])))))
    }
}

fn get(addr: SocketAddr, path: &str) -> Request<UpstreamBody> {
    let mut req = Request::new(UpstreamBody::empty());
    *req.uri_mut() = format!("http://{addr}{path}").parse().unwrap();
    req
}

async fn text(pool: &Pool, addr: SocketAddr, path: &str) -> String {
    let (rsp, _lease) = pool.send(addr, get(addr, path)).await.unwrap();
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[test]
fn pool_and_lease_are_thread_safe() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Pool>();
    send_sync::<Lease>();
    let pool = Pool::new(Settings::default());
    let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    send(&pool.send(addr, get(addr, "/")));
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection_in_origin_form() {
    let (addr, counts) = upstream(true, 1).await;
    let pool = Pool::new(Settings::default());
    for i in 0..20 {
        let body = text(&pool, addr, &format!("/n?i={i}")).await;
        assert_eq!(body, format!("/n?i={i} {addr}"));
        assert_eq!(pool.idle_count(addr), 1);
    }
    assert_eq!(counts.accepts.load(Ordering::SeqCst), 1);
    assert_eq!(counts.requests.load(Ordering::SeqCst), 20);
    assert_eq!(pool.connects_total(), 1);
}

#[tokio::test]
async fn concurrent_requests_open_several_and_all_return_bounded() {
    let (addr, counts) = upstream(true, 8).await;
    let pool = Pool::new(Settings {
        max_idle_per_endpoint: 5,
        ..Settings::default()
    });
    let all = (0..8).map(|_| text(&pool, addr, "/barrier"));
    for body in futures_util::future::join_all(all).await {
        assert_eq!(body, "ok");
    }
    assert_eq!(pool.connects_total(), 8);
    assert_eq!(pool.idle_count(addr), 5);
    // The kept ones serve the next requests.
    let all = (0..5).map(|_| text(&pool, addr, "/"));
    futures_util::future::join_all(all).await;
    assert_eq!(pool.connects_total(), 8);
    assert_eq!(counts.accepts.load(Ordering::SeqCst), 8);
    assert_eq!(counts.requests.load(Ordering::SeqCst), 13);

    let (addr, _) = upstream(true, 8).await;
    let pool = Pool::new(Settings::default());
    let all = (0..8).map(|_| text(&pool, addr, "/barrier"));
    futures_util::future::join_all(all).await;
    assert_eq!(pool.idle_count(addr), 8);
}

#[tokio::test]
async fn connection_close_answers_get_fresh_connections() {
    let (addr, counts) = upstream(false, 1).await;
    let pool = Pool::new(Settings::default());
    for _ in 0..10 {
        assert_eq!(text(&pool, addr, "/x").await, format!("/x {addr}"));
    }
    assert_eq!(counts.accepts.load(Ordering::SeqCst), 10);
    assert_eq!(counts.requests.load(Ordering::SeqCst), 10);
    assert_eq!(pool.resends_total(), 0);
}

/// Reads one request head (no body) from a raw peer.
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        if s.read(&mut b).await.unwrap() == 0 {
            break;
        }
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

async fn answer(listener: &TcpListener) -> (TcpStream, String) {
    let (mut s, _) = listener.accept().await.unwrap();
    let head = read_head(&mut s).await;
    s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        .await
        .unwrap();
    (s, head)
}

/// The pooled connection is closed by the upstream after it was checked out as ready but
/// before hyper wrote the request: the request comes back unwritten and goes out once, on a
/// fresh connection.
#[tokio::test]
async fn stale_pooled_connection_resends_the_unwritten_request_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let pool = Pool::new(Settings::default());
    let (sent, (first, _)) = tokio::join!(pool.send(addr, get(addr, "/1")), answer(&listener));
    let (rsp, lease) = sent.unwrap();
    rsp.into_body().collect().await.unwrap();
    drop(lease);
    assert_eq!(pool.idle_count(addr), 1);
    // Let the driver take every pending event, so the two below arrive in this order:
    // first ours (wakes this task), then the FIN (wakes the pooled connection's task).
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    let (mut a, b) = tokio::net::UnixStream::pair().unwrap();
    a.write_all(b"x").await.unwrap();
    drop(first);
    b.readable().await.unwrap();

    let (sent, (_second, head)) = tokio::join!(pool.send(addr, get(addr, "/2")), answer(&listener));
    let (rsp, _lease) = sent.unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    assert!(head.starts_with("GET /2 HTTP/1.1\r\n"), "{head}");
    assert_eq!(pool.connects_total(), 2);
    assert_eq!(
        pool.resends_total(),
        1,
        "the stale connection was skipped, not retried"
    );
}

#[tokio::test]
async fn closed_port_is_a_connect_error() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let pool = Pool::new(Settings::default());
    let err = tokio::time::timeout(Duration::from_secs(5), pool.send(addr, get(addr, "/")))
        .await
        .expect("a refused connect fails at once")
        .unwrap_err();
    assert!(err.is_connect() && !err.request_sent(), "{err}");
    assert!(matches!(&err, SendError::Connect(e) if e.kind() == io::ErrorKind::ConnectionRefused));
    assert_eq!(pool.connects_total(), 0);
}

/// A listener whose accept queue is full drops SYNs: the connect hangs until the timeout.
#[tokio::test]
async fn full_backlog_times_out_as_a_connect_error() {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    sock.bind(&any.into()).unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut held = Vec::new();
    let filled = loop {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(s) => held.push(s.unwrap()),
            Err(_) => break true,
        }
        if held.len() > 16 {
            break false;
        }
    };
    assert!(filled, "the accept queue never filled");
    let pool = Pool::new(Settings {
        connect_timeout: Duration::from_millis(100),
        ..Settings::default()
    });
    let err = pool.send(addr, get(addr, "/")).await.unwrap_err();
    assert!(matches!(&err, SendError::Connect(e) if e.kind() == io::ErrorKind::TimedOut));
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn body_dropped_unread_is_not_reused_mid_message() {
    let (addr, counts) = upstream(true, 1).await;
    let pool = Pool::new(Settings::default());
    let (rsp, lease) = pool.send(addr, get(addr, "/endless")).await.unwrap();
    let mut body = rsp.into_body();
    let frame = body.frame().await.unwrap().unwrap();
    assert!(!frame.into_data().unwrap().is_empty());
    drop(body);
    drop(lease);
    assert_eq!(text(&pool, addr, "/after").await, format!("/after {addr}"));
    assert_eq!(counts.accepts.load(Ordering::SeqCst), 2);
    assert_eq!(counts.requests.load(Ordering::SeqCst), 2);
    assert_eq!(pool.connects_total(), 2);
}

#[tokio::test]
async fn zero_idle_timeout_never_reuses() {
    let (addr, counts) = upstream(true, 1).await;
    let pool = Pool::new(Settings {
        idle_timeout: Duration::ZERO,
        ..Settings::default()
    });
    for _ in 0..3 {
        text(&pool, addr, "/").await;
        assert_eq!(pool.idle_count(addr), 0);
    }
    assert_eq!(counts.accepts.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn expired_idle_connection_is_closed_on_checkout() {
    let (addr, counts) = upstream(true, 1).await;
    let pool = Pool::new(Settings {
        idle_timeout: Duration::from_secs(10),
        ..Settings::default()
    });
    text(&pool, addr, "/").await;
    tokio::time::advance(Duration::from_secs(9)).await;
    text(&pool, addr, "/").await;
    assert_eq!(
        pool.connects_total(),
        1,
        "younger than idle_timeout: reused"
    );
    tokio::time::advance(Duration::from_secs(11)).await;
    text(&pool, addr, "/").await;
    assert_eq!(pool.connects_total(), 2);
    assert_eq!(counts.accepts.load(Ordering::SeqCst), 2);
    assert_eq!(pool.idle_count(addr), 1, "the expired one was dropped");
}

#[tokio::test]
async fn upgrade_passes_through() {
    let (addr, _) = upstream(true, 1).await;
    let pool = Pool::new(Settings::default());
    let mut req = get(addr, "/upgrade");
    let h = req.headers_mut();
    h.insert(header::CONNECTION, "upgrade".parse().unwrap());
    h.insert(header::UPGRADE, "echo".parse().unwrap());
    let (mut rsp, lease) = pool.send(addr, req).await.unwrap();
    assert_eq!(rsp.status(), StatusCode::SWITCHING_PROTOCOLS);
    let mut io = TokioIo::new(hyper::upgrade::on(&mut rsp).await.unwrap());
    io.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    drop(lease);
    assert_eq!(
        pool.idle_count(addr),
        0,
        "an upgraded connection is not pooled"
    );
    assert_eq!(text(&pool, addr, "/").await, format!("/ {addr}"));
    assert_eq!(pool.connects_total(), 2);
}

#[test]
fn send_error_display_and_flags() {
    let e = SendError::Connect(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"));
    assert!(e.is_connect() && !e.request_sent());
    assert_eq!(e.to_string(), "connect failed: refused");
}

fn h2_settings() -> Settings {
    Settings {
        h2_prior_knowledge: true,
        ..Settings::default()
    }
}

/// Requests that arrive together on a cold pool share the one HTTP/2 connection the first
/// of them dials (they are all in flight at once: the upstream's barrier needs all of them).
#[tokio::test]
async fn cold_concurrent_requests_share_one_h2_connection() {
    let (addr, counts) = h2c_upstream(6).await;
    let pool = Arc::new(Pool::new(h2_settings()));
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.send(addr, get(addr, "/barrier")).await })
        })
        .collect();
    for c in calls {
        let (rsp, lease) = tokio::time::timeout(Duration::from_secs(5), c)
            .await
            .expect("all six in flight together")
            .unwrap()
            .unwrap();
        assert_eq!(rsp.version(), http::Version::HTTP_2);
        assert!(lease.is_none(), "HTTP/2 streams hold no lease");
    }
    assert_eq!(counts.accepts.load(Ordering::SeqCst), 1);
    assert_eq!(pool.connects_total(), 1);
    // The URI keeps its authority as :authority (no Host header is added).
    assert_eq!(text(&pool, addr, "/x").await, format!("http://{addr}/x -"));
    assert_eq!(counts.accepts.load(Ordering::SeqCst), 1);
}

/// Waiters of a dial that fails get the same connect error at once (no dial each).
#[tokio::test]
async fn a_failed_shared_dial_fails_its_waiters_too() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let pool = Arc::new(Pool::new(h2_settings()));
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.send(addr, get(addr, "/")).await })
        })
        .collect();
    for c in calls {
        let err = c.await.unwrap().unwrap_err();
        assert!(
            matches!(&err, SendError::Connect(e) if e.kind() == io::ErrorKind::ConnectionRefused),
            "every waiter gets the dial's error: {err}"
        );
        assert_eq!(
            err.to_string().matches("connect failed").count(),
            1,
            "{err}"
        );
    }
    // Nothing is left dialing: a later request dials again (and fails again).
    assert!(pool
        .send(addr, get(addr, "/"))
        .await
        .unwrap_err()
        .is_connect());
}

/// A closed HTTP/2 connection is replaced by a new one on the next request.
#[tokio::test]
async fn a_closed_h2_connection_is_replaced() {
    let (addr, counts) = h2c_upstream(1).await;
    let pool = Pool::new(h2_settings());
    assert_eq!(text(&pool, addr, "/a").await, format!("http://{addr}/a -"));
    // Close it from the pool's side: drop the shared sender and the driver ends.
    {
        let mut eps = pool.inner.lock();
        eps.get_mut(&addr).unwrap().h2 = H2::None;
    }
    assert_eq!(text(&pool, addr, "/b").await, format!("http://{addr}/b -"));
    assert_eq!(counts.accepts.load(Ordering::SeqCst), 2);
}

/// Connection-specific fields (which HTTP/2 forbids) are dropped from requests sent over it;
/// `te: trailers` is kept.
#[tokio::test]
async fn h2_requests_lose_connection_specific_fields() {
    let (addr, counts) = h2c_upstream(1).await;
    let pool = Pool::new(h2_settings());
    let mut req = get(addr, "/x");
    for (k, v) in [
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("te", "gzip"),
    ] {
        req.headers_mut().insert(k, v.parse().unwrap());
    }
    let (rsp, _) = pool.send(addr, req).await.expect("sent over h2");
    assert_eq!(rsp.status(), StatusCode::OK);
    let mut req = get(addr, "/y");
    req.headers_mut().insert("te", "trailers".parse().unwrap());
    assert_eq!(
        pool.send(addr, req).await.unwrap().0.status(),
        StatusCode::OK
    );
    assert_eq!(counts.requests.load(Ordering::SeqCst), 2);
    assert_eq!(
        pool.connects_total(),
        1,
        "refused requests never retire the connection"
    );
}
