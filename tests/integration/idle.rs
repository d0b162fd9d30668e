//! Idle client connections (`limits.idle_timeout`, an extension): a connection with no request
//! in flight and no response body streaming for that long is closed (HTTP/2: GOAWAY), a
//! streaming response keeps its connection, and the sidecar-to-sidecar pool copes with a peer
//! that closed its idle connection.

use std::time::{Duration, Instant};

use http::Request;

use crate::support::client::{get, h2_client, h2_get};
use crate::support::pki::Pki;
use crate::support::upstream::Upstream;
use crate::support::{bounded, within, Cfg, TestProxy};

/// The idle timeout of these tests.
const IDLE: Duration = Duration::from_millis(300);
const IDLE_LIMITS: &str = "{ header_read_timeout: 5s, idle_timeout: 300ms }";

/// After a served request, an HTTP/2 connection left idle is ended with a GOAWAY (the client
/// sees a clean end, no error) no sooner than `idle_timeout`; a new connection is served.
#[tokio::test]
async fn an_idle_h2_connection_is_closed_at_idle_timeout() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).limits(IDLE_LIMITS).start();

    let (mut send, conn) = h2_client(proxy.outbound_addr()).await;
    // The proxy's idle clock starts when its response ends, after this instant and before the
    // client has read it: a lower bound that does not depend on delivery.
    let asked = Instant::now();
    let (status, _) = h2_get(&mut send, get("svc", "/once")).await.unwrap();
    assert_eq!(status, 200);
    let ended = within(Duration::from_secs(5), "the idle connection's end", conn)
        .await
        .expect("the connection task");
    let idle_for = asked.elapsed();
    assert!(ended.is_ok(), "not a graceful end: {ended:?}");
    assert!(idle_for >= IDLE, "closed after only {idle_for:?}");
    proxy.wait_connections_closed("outbound").await;

    let (mut send, _conn) = h2_client(proxy.outbound_addr()).await;
    let (status, _) = h2_get(&mut send, get("svc", "/again")).await.unwrap();
    assert_eq!(status, 200);
}

/// A connection that never sends a request is idle from the start.
#[tokio::test]
async fn an_h2_connection_without_requests_is_closed_at_idle_timeout() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).limits(IDLE_LIMITS).start();
    let opened = Instant::now();
    let (_send, conn) = h2_client(proxy.outbound_addr()).await;
    let ended = within(Duration::from_secs(5), "the unused connection's end", conn)
        .await
        .expect("the connection task");
    assert!(ended.is_ok(), "not a graceful end: {ended:?}");
    assert!(
        opened.elapsed() >= IDLE,
        "closed after {:?}",
        opened.elapsed()
    );
    assert_eq!(up.requests().len(), 0);
}

/// A response body still streaming keeps its connection busy, however long it is silent: the
/// SSE stream outlives three idle timeouts with its connection taking new streams, then ends,
/// and only then does the idle clock run.
#[tokio::test]
async fn a_streaming_response_keeps_its_h2_connection_past_idle_timeout() {
    let (up, step) = Upstream::sse_stepper().await;
    let echo = Upstream::echo().await;
    let proxy = Cfg::single(up.addr)
        .host_route("r2", "echo", "b2", "")
        .backend("b2", echo.addr)
        .limits(IDLE_LIMITS)
        .start();

    let (mut send, conn) = h2_client(proxy.outbound_addr()).await;
    let req = Request::get("http://svc/events")
        .header("accept", "text/event-stream")
        .body(())
        .unwrap();
    let (resp, _) = send.send_request(req, true).unwrap();
    let resp = bounded("the SSE head", resp).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = bounded("event one", body.data()).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("data: one"));

    // The scenario itself: a stream silent for three idle timeouts.
    tokio::time::sleep(IDLE * 3).await;
    assert!(!conn.is_finished(), "closed while a response streamed");
    // Not even a GOAWAY: the connection still takes new streams.
    let (status, _) = h2_get(&mut send, get("echo", "/meanwhile")).await.unwrap();
    assert_eq!(status, 200);

    // The stream cannot end before this instant (a lower bound for the idle clock's start).
    let ending = Instant::now();
    step.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = bounded("the rest of the stream", body.data()).await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert!(String::from_utf8_lossy(&rest).contains("data: two"));

    let ended = within(Duration::from_secs(5), "the idle connection's end", conn)
        .await
        .expect("the connection task");
    assert!(ended.is_ok(), "not a graceful end: {ended:?}");
    let idle_for = ending.elapsed();
    assert!(
        idle_for >= IDLE,
        "closed {idle_for:?} after the stream ended"
    );
}

/// `idle_timeout: 0s` turns it off: a connection idle for three times this file's timeout is
/// still open and serving.
#[tokio::test]
async fn idle_timeout_zero_keeps_idle_connections() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr)
        .limits("{ header_read_timeout: 5s, idle_timeout: 0s }")
        .start();
    let (mut send, conn) = h2_client(proxy.outbound_addr()).await;
    let (status, _) = h2_get(&mut send, get("svc", "/once")).await.unwrap();
    assert_eq!(status, 200);
    tokio::time::sleep(IDLE * 3).await;
    assert!(!conn.is_finished(), "closed although idle_timeout is 0s");
    let (status, _) = h2_get(&mut send, get("svc", "/later")).await.unwrap();
    assert_eq!(status, 200);
}

/// Sidecar to sidecar: the inbound closes the outbound's pooled HTTP/2 connection once it is
/// idle; the outbound's next request dials a new one and is served, nothing fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbound_pool_redials_after_the_inbound_closed_its_idle_connection() {
    let pki = Pki::new("idle-mesh");
    let app = Upstream::echo().await;
    let listeners = "admin: { listen: 127.0.0.1:0 }\nmetrics: { listen: 127.0.0.1:0 }\n";
    let inbound = TestProxy::start(format!(
        "version: 1\n{}{listeners}limits: {IDLE_LIMITS}\n\
         inbound: {{ listen: 127.0.0.1:0, app: \"{}\", mode: strict }}\n",
        pki.sidecar_yaml("writing-analysis"),
        app.addr
    ));
    let outbound = TestProxy::start(format!(
        "version: 1\n{}{listeners}outbound:\n  listen: 127.0.0.1:0\n  \
         routes: [{{ name: r1, match: {{ host: svc }}, to: [{{ backend: b }}] }}]\n\
         backends: [{{ name: b, discovery: {{ static: [\"{}\"] }}, tls: {{ identity: \"{}\" }}, connect_timeout: 2s }}]\n",
        pki.sidecar_yaml("gateway"),
        inbound.inbound_addr(),
        Pki::id("writing-analysis")
    ));

    assert_eq!(outbound.get("svc", "/first").await.status, 200);
    // The inbound ends the idle connection on its own; the next request can only come on a
    // new one.
    inbound.wait_connections_closed("inbound").await;
    assert_eq!(outbound.get("svc", "/second").await.status, 200);
    assert_eq!(app.paths(), ["/first", "/second"]);
    for (proxy, direction) in [(&inbound, "inbound"), (&outbound, "outbound")] {
        assert_eq!(
            proxy
                .metric("outrider_tls_handshakes_total", &[("direction", direction)])
                .await,
            Some(2.0),
            "{direction}: one handshake per connection"
        );
    }
    assert_eq!(
        outbound
            .metric("outrider_proxy_errors_total", &[("direction", "outbound")])
            .await
            .unwrap_or(0.0),
        0.0,
        "no request failed"
    );
}
