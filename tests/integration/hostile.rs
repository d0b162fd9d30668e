//! Hostile clients (SPEC §3 `limits`, `inbound.max_concurrent_requests`): oversized headers,
//! slowloris (also before an HTTP/2 preface), garbage bytes, and concurrency overload. After
//! each, the proxy keeps serving.

use std::time::{Duration, Instant};

use outrider::certs::Validity;
use tokio::io::AsyncReadExt;

use crate::support::pki::{send, Pki, TlsClient};
use crate::support::raw;
use crate::support::upstream::Upstream;
use crate::support::{body, bounded, client, within, Cfg, TestProxy};

/// A new client on a fresh connection is served (a pooled connection could have been closed
/// by the proxy's own idle/header timer, which is not what is asserted here).
async fn assert_still_serving(proxy: &TestProxy) {
    let req = http::Request::get("/still-there")
        .header("host", "svc")
        .body(body::empty())
        .unwrap();
    let resp = client::h1_send(proxy.outbound_addr(), req)
        .await
        .expect("proxy stopped accepting");
    let resp = client::read(resp).await.unwrap();
    assert_eq!(resp.status, 200, "proxy stopped serving: {}", resp.text());
}

/// The limits of the timeout tests: the header read timeout at 500ms.
const IMPATIENT: &str =
    "{ max_header_bytes: 16KiB, header_read_timeout: 500ms, max_concurrent_streams: 100 }";

/// An echo upstream behind a proxy with [`IMPATIENT`] limits.
async fn impatient() -> (Upstream, TestProxy) {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).limits(IMPATIENT).start();
    (up, proxy)
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();

    // 16KiB limit; a 20KiB header line.
    let big = "a".repeat(20 * 1024);
    let request = format!("GET / HTTP/1.1\r\nhost: svc\r\nx-big: {big}\r\n\r\n");
    let head = raw::exchange(proxy.outbound_addr(), request.as_bytes()).await;
    assert_eq!(raw::status(&head), Some(431), "response head: {head:?}");
    assert_eq!(
        up.requests().len(),
        0,
        "the oversized request must not reach the upstream"
    );

    assert_still_serving(&proxy).await;
}

#[tokio::test]
async fn slowloris_is_disconnected_after_header_read_timeout() {
    let (up, proxy) = impatient().await;

    let mut slow = raw::connect(proxy.outbound_addr()).await;
    raw::write(&mut slow, b"GET / HTTP/1.1\r\nhost: svc\r\nx-half: ").await;

    // Others are served while the slow client holds its connection.
    assert_still_serving(&proxy).await;

    let closed_after = raw::wait_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(closed_after < Duration::from_secs(5));
    assert_eq!(
        up.requests().len(),
        1,
        "the half request must never reach the upstream"
    );
    assert_still_serving(&proxy).await;
}

/// The header-read timer is the connection's own, reused request after request
/// (`proxy::timer`): after a served request the next head is still timed, on a connection
/// served as HTTP/1.1 from its first byte (GET) and on one sniffed for h2c first (POST).
#[tokio::test]
async fn slowloris_after_a_served_request_is_disconnected_too() {
    let (up, proxy) = impatient().await;

    for first in [
        &b"GET /first HTTP/1.1\r\nhost: svc\r\n\r\n"[..],
        &b"POST /first HTTP/1.1\r\nhost: svc\r\ncontent-length: 2\r\n\r\nhi"[..],
    ] {
        let mut slow = raw::connect(proxy.outbound_addr()).await;
        raw::write(&mut slow, first).await;
        let head = raw::read_head(&mut slow).await;
        assert_eq!(raw::status(&head), Some(200), "{head}");
        raw::write(&mut slow, b"GET /second HTTP/1.1\r\nhost: svc\r\nx-half: ").await;
        let closed_after = raw::wait_closed(&mut slow, Duration::from_secs(5)).await;
        assert!(closed_after < Duration::from_secs(5));
    }
    let paths = up.paths();
    assert_eq!(
        paths,
        ["/first", "/first"],
        "half requests never reach the upstream"
    );
    assert_still_serving(&proxy).await;
}

#[tokio::test]
async fn garbage_bytes_get_400() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();

    let head = raw::exchange(
        proxy.outbound_addr(),
        b"\x01\x02\x03 garbage \xff\xfe\r\n\r\n",
    )
    .await;
    assert_eq!(raw::status(&head), Some(400), "response head: {head:?}");
    let head = raw::exchange(
        proxy.outbound_addr(),
        b"GET / HTTP/1.1\r\nhost: svc\r\nbad header line\r\n\r\n",
    )
    .await;
    assert_eq!(raw::status(&head), Some(400), "response head: {head:?}");

    assert_still_serving(&proxy).await;
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn inbound_concurrency_limit_answers_503_overloaded() {
    let (app, gate) = Upstream::gated().await;
    let proxy = Cfg::new().inbound(app.addr, 1).start();

    let client = proxy.client.clone();
    let held = client::request(proxy.inbound_addr(), "app", "/held")
        .body(body::empty())
        .unwrap();
    let held = tokio::spawn(async move { client.request(held).await });
    app.wait_requests(1).await;

    let second = proxy
        .client
        .get_host(proxy.inbound_addr(), "app", "/second")
        .await;
    assert_eq!(second.status, 503, "{}", second.text());
    assert_eq!(second.error_reason(), Some("overloaded"));
    assert_eq!(
        app.requests().len(),
        1,
        "the rejected request must not reach the app"
    );

    gate.open();
    let first = bounded("held request", held).await.unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.text(), "released");

    // The slot is free again.
    let third = proxy
        .client
        .get_host(proxy.inbound_addr(), "app", "/third")
        .await;
    assert_eq!(third.status, 200);
    proxy
        .wait_metric(
            "outrider_proxy_errors_total",
            &[("direction", "inbound"), ("reason", "overloaded")],
            1.0,
        )
        .await;
}

/// hyper-util's protocol detection waits for the HTTP/2 preface without a deadline; a client
/// that sends the start of it and stops is cut at `header_read_timeout` (`proxy::preface`).
#[tokio::test]
async fn a_stalled_h2c_preface_is_disconnected() {
    let (_up, proxy) = impatient().await;

    for start in [&b"P"[..], &b"PRI * HTTP/2.0\r\n"[..]] {
        let mut slow = raw::connect(proxy.outbound_addr()).await;
        raw::write(&mut slow, start).await;
        assert_still_serving(&proxy).await;
        let closed_after = raw::wait_closed(&mut slow, Duration::from_secs(5)).await;
        assert!(closed_after < Duration::from_secs(5));
    }
    // A complete h2c connection is served as before.
    let req = http::Request::get("/h2c")
        .header("host", "svc")
        .body(body::empty())
        .unwrap();
    let resp = client::h2c_send(proxy.outbound_addr(), req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_still_serving(&proxy).await;
}

/// An mTLS client that negotiates `h2` and then sends nothing holds no connection beyond
/// `header_read_timeout`: hyper's HTTP/2 server waits for the preface unbounded.
#[tokio::test]
async fn an_mtls_h2_connection_without_a_preface_is_disconnected() {
    let pki = Pki::new("silent-h2");
    let app = Upstream::echo().await;
    let proxy = TestProxy::start(format!(
        "version: 1\n{}admin: {{ listen: 127.0.0.1:0 }}\nmetrics: {{ listen: 127.0.0.1:0 }}\n\
         limits: {IMPATIENT}\n\
         inbound: {{ listen: 127.0.0.1:0, app: \"{}\", mode: strict }}\n",
        pki.sidecar_yaml("writing-analysis"),
        app.addr
    ));
    let me = pki
        .ca
        .issue(&[Pki::id("gateway")], Validity::days(1))
        .unwrap();
    let server = Pki::id("writing-analysis");
    let h2 = TlsClient::new(&pki.ca.cert_pem, &server, Some(&me), true);
    let mut silent = h2.connect(proxy.inbound_addr()).await.unwrap();
    assert_eq!(silent.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    let start = Instant::now();
    let mut buf = [0u8; 1024];
    within(
        Duration::from_secs(5),
        "the silent h2 connection to close",
        async { while matches!(silent.read(&mut buf).await, Ok(n) if n > 0) {} },
    )
    .await;
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "closed before the deadline: {:?}",
        start.elapsed()
    );

    // A well-behaved peer on the same listener is served.
    let h1 = TlsClient::new(&pki.ca.cert_pem, &server, Some(&me), false);
    let (mut sender, _) = h1.http1(proxy.inbound_addr()).await.unwrap();
    assert_eq!(send(&mut sender, "/").await.unwrap().status(), 200);
    assert!(
        app.requests().iter().all(|r| r.uri.path() == "/"),
        "only the good request reached the app"
    );
}

/// `limits.max_connections` (extension): at the limit a new connection is reset at accept and
/// counted; one slot freed, the next is served.
#[tokio::test]
async fn connections_beyond_max_connections_are_reset_and_counted() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr)
        .limits("{ max_header_bytes: 16KiB, header_read_timeout: 5s, max_connections: 2 }")
        .start();
    let open = [("direction", "outbound")];

    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = raw::connect(proxy.outbound_addr()).await;
        raw::write(&mut c, b"GET /held HTTP/1.1\r\nhost: svc\r\n\r\n").await;
        assert_eq!(raw::status(&raw::read_head(&mut c).await), Some(200));
        held.push(c);
    }
    proxy
        .wait_metric("outrider_connections_open", &open, 2.0)
        .await;

    // The reset may come before the client's connect has even returned.
    match bounded(
        "connect",
        tokio::net::TcpStream::connect(proxy.outbound_addr()),
    )
    .await
    {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(mut third) => {
            raw::write(&mut third, b"GET /third HTTP/1.1\r\nhost: svc\r\n\r\n").await;
            let closed_after = raw::wait_closed(&mut third, Duration::from_secs(4)).await;
            assert!(closed_after < Duration::from_secs(4));
        }
    }
    proxy
        .wait_metric("outrider_connections_over_limit_total", &open, 1.0)
        .await;
    assert!(
        up.requests().iter().all(|r| r.uri.path() == "/held"),
        "the refused connection's request never reached the upstream"
    );

    drop(held.pop());
    proxy
        .wait_metric("outrider_connections_open", &open, 1.0)
        .await;
    assert_still_serving(&proxy).await;
    assert_eq!(
        proxy
            .metric("outrider_connections_over_limit_total", &open)
            .await,
        Some(1.0)
    );
}

/// An HTTP/1.1 keep-alive connection left idle after a served request is closed at
/// `header_read_timeout` (hyper starts the next head's timer as soon as it waits for it), so
/// idle clients do not hold `max_connections` slots for ever.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_header_read_timeout() {
    let (_up, proxy) = impatient().await;
    let mut idle = raw::connect(proxy.outbound_addr()).await;
    raw::write(&mut idle, b"GET /once HTTP/1.1\r\nhost: svc\r\n\r\n").await;
    assert_eq!(raw::status(&raw::read_head(&mut idle).await), Some(200));
    let closed_after = raw::wait_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(
        closed_after >= Duration::from_millis(400),
        "closed before the timeout: {closed_after:?}"
    );
    proxy.wait_connections_closed("outbound").await;
}

/// `body_read_timeout` at 300ms, everything else as usual.
const SLOW_BODY_LIMITS: &str = "{ header_read_timeout: 5s, body_read_timeout: 300ms }";

/// Sends a head announcing 100 body bytes, then only `part` of them, and reads the answer: a
/// body that stops arriving is answered `408 body-timeout` once `body_read_timeout` has passed
/// (it never reaches the upstream, and the proxy counts it).
async fn stalled_body(proxy: &TestProxy, addr: std::net::SocketAddr, head: &str, direction: &str) {
    let mut conn = raw::connect(addr).await;
    let started = Instant::now();
    raw::write(&mut conn, head.as_bytes()).await;
    raw::write(&mut conn, b"{\"jsonrpc\":").await;
    let answer = raw::read_head(&mut conn).await;
    let waited = started.elapsed();
    assert_eq!(raw::status(&answer), Some(408), "{answer}");
    assert!(
        answer.contains("x-outrider-error: body-timeout"),
        "{answer}"
    );
    assert!(
        waited >= Duration::from_millis(300),
        "answered after {waited:?}"
    );
    proxy
        .wait_metric(
            "outrider_proxy_errors_total",
            &[("direction", direction), ("reason", "body-timeout")],
            1.0,
        )
        .await;
}

/// An MCP/JSON body is read whole for classification before anything is forwarded: a client
/// that stops sending it mid-way holds its request only until `body_read_timeout`, on either
/// listener.
#[tokio::test]
async fn a_json_body_that_stops_arriving_gets_408_body_timeout() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr)
        .inbound(up.addr, 100)
        .limits(SLOW_BODY_LIMITS)
        .start();
    let head = "POST /mcp HTTP/1.1\r\nhost: svc\r\ncontent-type: application/json\r\n\
                content-length: 100\r\n\r\n";
    stalled_body(&proxy, proxy.outbound_addr(), head, "outbound").await;
    stalled_body(&proxy, proxy.inbound_addr(), head, "inbound").await;
    assert_eq!(up.requests().len(), 0, "a partial body was forwarded");
    assert_still_serving(&proxy).await;
}

/// A route with retries buffers a small body to replay it: that read is bounded the same way.
#[tokio::test]
async fn a_body_buffered_for_retries_that_stops_arriving_gets_408_body_timeout() {
    let up = Upstream::echo().await;
    let proxy = Cfg::new()
        .backend("b1", up.addr)
        .host_route("r1", "svc", "b1", "retry: { attempts: 2, on: [reset] }")
        .limits(SLOW_BODY_LIMITS)
        .start();
    let head = "PUT /doc HTTP/1.1\r\nhost: svc\r\ncontent-type: text/plain\r\n\
                content-length: 100\r\n\r\n";
    stalled_body(&proxy, proxy.outbound_addr(), head, "outbound").await;
    assert_eq!(up.requests().len(), 0, "a partial body was forwarded");
    assert_still_serving(&proxy).await;
}
