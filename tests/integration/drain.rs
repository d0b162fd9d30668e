//! Graceful drain (SPEC §3 `drain_timeout`, §5 `POST /drain`): readiness flips, in-flight
//! requests finish, new connections are refused, the app stops, and `drain_timeout` bounds a
//! request that never finishes.

use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::support::faults::Fault;
use crate::support::upstream::Upstream;
use crate::support::{body, bounded, client, eventually, Cfg};

/// Poll (bounded) until connecting to `addr` is refused: the listener has no signal to await.
async fn wait_refused(addr: std::net::SocketAddr) {
    eventually(
        Duration::from_secs(5),
        &format!("{addr} to refuse new connections"),
        || async move {
            match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await {
                Ok(Err(_)) => Some(()),
                _ => None,
            }
        },
    )
    .await
}

#[tokio::test]
async fn drain_lets_in_flight_requests_finish_and_refuses_new_ones() {
    let (up, gate) = Upstream::gated().await;
    let proxy = Cfg::single(up.addr).drain_timeout("10s").start();
    assert_eq!(
        proxy.client.get(&proxy.admin_url("/ready")).await.status,
        200
    );

    // A request in flight at the upstream when the drain starts.
    let client = proxy.client.clone();
    let req = proxy.request("svc", "/slow").body(body::empty()).unwrap();
    let in_flight = tokio::spawn(async move { client.request(req).await });
    up.wait_requests(1).await;

    let drain = proxy.client.post(&proxy.admin_url("/drain"), "").await;
    assert!(
        drain.status.is_success(),
        "POST /drain: {} {}",
        drain.status,
        drain.text()
    );

    let ready = proxy.client.get(&proxy.admin_url("/ready")).await;
    assert_eq!(ready.status, 503, "/ready must report draining");
    let ready = proxy.client.get(&proxy.metrics_url("/ready")).await;
    assert_eq!(ready.status, 503, "/ready on the metrics listener too");
    wait_refused(proxy.outbound_addr()).await;

    assert!(
        !in_flight.is_finished(),
        "the in-flight request was cut by the drain"
    );
    gate.open();
    let resp = bounded("in-flight request to finish", in_flight)
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "released");

    proxy.wait(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn drain_timeout_bounds_a_request_that_never_finishes() {
    let fault = Fault::black_hole().await;
    let proxy = Cfg::new()
        .backend("b1", fault.addr)
        .host_route("r1", "svc", "b1", "timeout: 60s")
        .drain_timeout("500ms")
        .start();

    let addr = proxy.outbound_addr();
    let req = http::Request::get("/stuck")
        .header("host", "svc")
        .body(body::empty())
        .unwrap();
    let stuck = tokio::spawn(async move { client::h1_send(addr, req).await.map(|r| r.status()) });
    fault.wait_accepts(1).await;

    let start = Instant::now();
    proxy.drain();
    proxy.wait(Duration::from_secs(5)).await;
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "stopped after {took:?}, before drain_timeout (500ms)"
    );

    // The stuck client is released one way or another (error, or a 5xx from the proxy).
    let outcome = bounded("the stuck request to be released", stuck)
        .await
        .unwrap();
    if let Ok(status) = outcome {
        assert!(status.is_server_error(), "unexpected status {status}");
    }
}
