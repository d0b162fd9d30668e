//! Self-tests of the test support, without the proxy: each fake upstream and fault server does
//! what the proxy tests rely on, when a client talks to it directly. If one of these fails,
//! the proxy tests that use the helper prove nothing.

use std::time::Duration;

use bytes::Bytes;
use http::Request;

use crate::support::client::{self, h1_send, h2c_send, read_to_end, read_until, Client, End};
use crate::support::faults::{closed_port, Fault};
use crate::support::upstream::Upstream;
use crate::support::websocket::{self, WsEcho};
use crate::support::{body, bounded, raw};

#[tokio::test]
async fn echo_records_requests_and_counts_connections() {
    let up = Upstream::named("e").await;
    let client = Client::new();
    for _ in 0..3 {
        let resp = client
            .post(&format!("http://{}/p?q=1", up.addr), "hi")
            .await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.upstream(), "e");
        assert_eq!(resp.json()["uri"], "/p?q=1");
    }
    let seen = up.wait_requests(3).await;
    assert_eq!(&seen[2].body[..], b"hi");
    assert_eq!(up.accepts(), 1, "the pooled client reuses its connection");

    let req = Request::get(format!("http://{}/h2", up.addr))
        .body(body::empty())
        .unwrap();
    let resp = client::read(h2c_send(up.addr, req).await.unwrap())
        .await
        .unwrap();
    assert_eq!(resp.version, http::Version::HTTP_2);
}

#[tokio::test]
async fn sse_stepper_holds_event_two_until_notified() {
    let (up, step) = Upstream::sse_stepper().await;
    let req = Request::get("/")
        .header("host", "x")
        .body(body::empty())
        .unwrap();
    let mut resp_body = h1_send(up.addr, req).await.unwrap().into_body();
    let first = read_until(&mut resp_body, "event one", |s| s.contains("data: one")).await;
    assert!(!first.contains("two"));
    // Without the notification, nothing more arrives.
    let more = tokio::time::timeout(
        Duration::from_millis(100),
        read_to_end(&mut resp_body, Duration::from_secs(1)),
    )
    .await;
    assert!(
        more.is_err(),
        "event two was sent before the step: {more:?}"
    );
    step.notify_one();
    let (End::Eof(rest) | End::Error(rest, _)) =
        read_to_end(&mut resp_body, Duration::from_secs(5)).await;
    assert!(rest.contains("data: two"));
}

#[tokio::test]
async fn body_reporter_reports_each_chunk_as_it_arrives() {
    let (up, mut reports) = Upstream::body_reporter().await;
    let (tx, req_body) = body::channel();
    let req = Request::post("/")
        .header("host", "x")
        .body(req_body)
        .unwrap();
    let pending = tokio::spawn(async move { h1_send(up.addr, req).await });
    tx.send(Bytes::from_static(b"one")).unwrap();
    assert_eq!(
        &bounded("chunk one", reports.recv()).await.unwrap()[..],
        b"one"
    );
    tx.send(Bytes::from_static(b"two")).unwrap();
    assert_eq!(
        &bounded("chunk two", reports.recv()).await.unwrap()[..],
        b"two"
    );
    drop(tx);
    let resp = client::read(bounded("response", pending).await.unwrap().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.text(), "got 6 bytes");
}

#[tokio::test]
async fn websocket_echo_answers_directly() {
    let ws = WsEcho::start().await;
    assert_eq!(
        websocket::roundtrip(ws.addr, "x", "/", "ping").await,
        "ping"
    );
}

#[tokio::test]
async fn fault_servers_misbehave_as_advertised() {
    let client = Client::new();

    let hole = Fault::black_hole().await;
    let req = Request::get(format!("http://{}/", hole.addr))
        .body(body::empty())
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(200), client.send(req)).await;
    assert!(waited.is_err(), "black hole answered");
    hole.wait_accepts(1).await;

    let reset = Fault::reset().await;
    let req = Request::get(format!("http://{}/", reset.addr))
        .body(body::empty())
        .unwrap();
    assert!(client.send(req).await.is_err(), "reset server answered");

    let trunc = Fault::truncated().await;
    let req = Request::get(format!("http://{}/", trunc.addr))
        .body(body::empty())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert!(matches!(
        read_to_end(&mut resp.into_body(), Duration::from_secs(5)).await,
        End::Error(..)
    ));

    let closed = closed_port();
    assert!(tokio::net::TcpStream::connect(closed.addr).await.is_err());
}

#[tokio::test]
async fn gated_upstream_waits_for_the_gate() {
    let (up, gate) = Upstream::gated().await;
    let client = Client::new();
    let url = format!("http://{}/", up.addr);
    let pending = tokio::spawn(async move { client.get(&url).await });
    up.wait_requests(1).await;
    assert!(!pending.is_finished());
    gate.open();
    assert_eq!(
        bounded("gated response", pending).await.unwrap().text(),
        "released"
    );
}

#[test]
fn raw_status_line_parsing() {
    assert_eq!(
        raw::status("HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n"),
        Some(431)
    );
    assert_eq!(raw::status(""), None);
    assert_eq!(raw::status("garbage"), None);
}
