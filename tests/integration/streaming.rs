//! Streaming (SPEC §1 "Bodies stream end to end", §7 "Streams"): SSE forwarded event by event,
//! request bodies streamed chunk by chunk, WebSocket upgrades passed through, `idle_timeout`
//! cutting a silent stream while the route `timeout` never cuts an active one.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::support::client::{self, h1_send, read_to_end, read_until, End};
use crate::support::upstream::Upstream;
use crate::support::websocket::{self, WsEcho};
use crate::support::{body, bounded, Cfg};

#[tokio::test]
async fn sse_events_are_forwarded_without_buffering() {
    let (up, step) = Upstream::sse_stepper().await;
    let proxy = Cfg::single(up.addr).start();

    let resp = proxy
        .client
        .send(proxy.request("svc", "/events").body(body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(content_type.as_deref(), Some("text/event-stream"));
    let mut body = resp.into_body();

    // The upstream holds event two until the client has event one: a buffering proxy hangs here.
    let first = read_until(
        &mut body,
        "event one before the upstream sends event two",
        |s| s.contains("data: one"),
    )
    .await;
    assert!(!first.contains("data: two"));
    step.notify_one();
    match read_to_end(&mut body, Duration::from_secs(10)).await {
        End::Eof(rest) => assert!(rest.contains("data: two"), "second event missing: {rest:?}"),
        End::Error(rest, e) => panic!("stream failed after {rest:?}: {e}"),
    }
}

#[tokio::test]
async fn sse_over_an_h2c_client_connection_is_not_buffered() {
    let (up, step) = Upstream::sse_stepper().await;
    let proxy = Cfg::single(up.addr).start();

    let req = http::Request::get("http://svc/events")
        .body(body::empty())
        .unwrap();
    let resp = client::h2c_send(proxy.outbound_addr(), req)
        .await
        .expect("h2c request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let mut body = resp.into_body();
    read_until(
        &mut body,
        "event one over h2 before the upstream sends event two",
        |s| s.contains("data: one"),
    )
    .await;
    step.notify_one();
    let (End::Eof(rest) | End::Error(rest, _)) =
        read_to_end(&mut body, Duration::from_secs(10)).await;
    assert!(rest.contains("data: two"), "second event missing: {rest:?}");
}

/// SPEC §7: SSE responses get `X-Accel-Buffering: no` (for nginx-like hops further on).
#[tokio::test]
async fn sse_responses_carry_x_accel_buffering_no() {
    let (up, step) = Upstream::sse_stepper().await;
    step.notify_one();
    let proxy = Cfg::single(up.addr).start();

    let resp = proxy.get("svc", "/events").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-accel-buffering"), Some("no"));
    assert!(resp.text().contains("data: two"));
}

/// Push `chunk` into the request body and wait until the upstream reports exactly it.
async fn push_and_confirm(
    tx: &mpsc::UnboundedSender<Bytes>,
    reports: &mut mpsc::UnboundedReceiver<Bytes>,
    chunk: &str,
) {
    tx.send(Bytes::from(chunk.to_string()))
        .expect("request body closed early");
    let mut got = Vec::new();
    bounded(
        &format!("upstream to receive {chunk:?} before the next chunk is sent"),
        async {
            while got.len() < chunk.len() {
                got.extend_from_slice(&reports.recv().await.expect("upstream gone"));
            }
        },
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&got), chunk);
}

#[tokio::test]
async fn request_body_streams_chunk_by_chunk() {
    let (up, mut reports) = Upstream::body_reporter().await;
    let proxy = Cfg::single(up.addr).start();

    let (tx, req_body) = body::channel();
    // Origin-form on a fresh connection; the response only comes once the body has ended.
    let req = http::Request::post("/upload")
        .header("host", "svc")
        .header("content-type", "application/octet-stream")
        .body(req_body)
        .unwrap();
    let addr = proxy.outbound_addr();
    let pending = tokio::spawn(async move { h1_send(addr, req).await });

    push_and_confirm(&tx, &mut reports, "chunk-1;").await;
    push_and_confirm(&tx, &mut reports, "chunk-2;").await;
    drop(tx);
    let resp = bounded("response after the body ended", pending)
        .await
        .unwrap()
        .expect("request failed");
    let resp = client::read(resp).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "got 16 bytes");
}

#[tokio::test]
async fn websocket_upgrade_passes_through() {
    let ws = WsEcho::start().await;
    let proxy = Cfg::new()
        .backend("ws", ws.addr)
        .host_route("ws", "ws-svc", "ws", "")
        .start();

    let reply =
        websocket::roundtrip(proxy.outbound_addr(), "ws-svc", "/socket", "hello outrider").await;
    assert_eq!(reply, "hello outrider");
    // And a second connection, so the first upgrade did not wedge anything.
    let reply = websocket::roundtrip(proxy.outbound_addr(), "ws-svc", "/socket", "again").await;
    assert_eq!(reply, "again");
}

#[tokio::test]
async fn idle_timeout_cuts_a_silent_stream_but_route_timeout_spares_an_active_one() {
    let (silent, _never_fired) = Upstream::sse_stepper().await;
    let ticker = Upstream::sse_ticker(10, Duration::from_millis(100)).await;
    let proxy = Cfg::new()
        .backend("silent", silent.addr)
        .backend("ticker", ticker.addr)
        .host_route(
            "silent",
            "silent",
            "silent",
            "timeout: 200ms, idle_timeout: 600ms",
        )
        .host_route(
            "ticker",
            "ticker",
            "ticker",
            "timeout: 200ms, idle_timeout: 600ms",
        )
        .start();

    // ~1s of events every 100ms: longer than `timeout`, never idle for `idle_timeout`.
    let resp = proxy
        .client
        .send(proxy.request("ticker", "/").body(body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    match read_to_end(&mut resp.into_body(), Duration::from_secs(10)).await {
        End::Eof(all) => assert!(all.contains("data: tick 10"), "stream ended early: {all:?}"),
        End::Error(all, e) => panic!("an active stream was cut ({e}) after {all:?}"),
    }

    // One event, then silence: cut after about idle_timeout.
    let resp = proxy
        .client
        .send(proxy.request("silent", "/").body(body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    read_until(&mut body, "first event of the silent stream", |s| {
        s.contains("data: one")
    })
    .await;
    let since = Instant::now();
    let end = read_to_end(&mut body, Duration::from_secs(5)).await;
    let silent_for = since.elapsed();
    let (End::Eof(rest) | End::Error(rest, _)) = &end;
    assert!(!rest.contains("data: two"), "{end:?}");
    assert!(
        silent_for >= Duration::from_millis(400),
        "cut after {silent_for:?}, before idle_timeout (600ms)"
    );
}
