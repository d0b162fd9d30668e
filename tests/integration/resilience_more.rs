//! Resilience, continued (issue 4): every endpoint failing (fail fast with `circuit-open`, no
//! retry storm), recovery through the half-open probe, request bodies and retries (POST
//! safety, replay up to `max_body`), `overloaded`, and active health checks.

use std::time::{Duration, Instant};

use crate::resilience::route;
use crate::support::chaos;
use crate::support::client::Resp;
use crate::support::faults::closed_port;
use crate::support::{body, eventually, TestProxy, Upstream};

/// Endpoint states in `/backends` are refreshed by the proxy's own timers: poll (bounded).
async fn wait_state(proxy: &TestProxy, backend: &str, addr: std::net::SocketAddr, state: &str) {
    eventually(
        Duration::from_secs(5),
        &format!("{addr} of {backend} to be {state} in /backends"),
        || async {
            (chaos::endpoint_state(proxy, backend, addr).await.as_deref() == Some(state))
                .then_some(())
        },
    )
    .await;
}

async fn post(proxy: &TestProxy, host: &str, path: &str, data: Vec<u8>) -> Resp {
    let req = proxy
        .request(host, path)
        .method("POST")
        .body(body::full(data))
        .unwrap();
    proxy.client.request(req).await
}

#[tokio::test]
async fn all_endpoints_failing_fail_fast_with_circuit_open_and_no_retry_storm() {
    let (u1, _c1) = chaos::controlled("u1", 500).await;
    let (u2, _c2) = chaos::controlled("u2", 500).await;
    let proxy = chaos::start(
        &[route(
            "{ attempts: 3, per_try_timeout: 2s, on: [500, gateway-error, connect-failure, reset], backoff: { base: 1ms, max: 5ms }, budget: { ratio: 0.2, min_per_second: 10 } }",
        )],
        &[chaos::backend(
            "b1",
            &[u1.addr, u2.addr],
            "connect_timeout: 2s, circuit_breaker: { consecutive_failures: 3, ejection_time: 30s, max_ejected_percent: 100 }",
        )],
    );
    let attempts = || u1.requests().len() + u2.requests().len();
    let start = Instant::now();
    let mut sent = 0;
    loop {
        assert!(sent < 30, "the circuit did not open within 30 requests");
        let resp = proxy.get("svc", &format!("/{sent}")).await;
        sent += 1;
        if resp.error_reason() == Some("circuit-open") {
            assert_eq!(resp.status, 503);
            break;
        }
        assert!(
            resp.status == 500 || resp.status == 503,
            "before the circuit opens: {} {:?}",
            resp.status,
            resp.error_reason()
        );
    }
    let attempts_when_open = attempts();
    assert!(
        attempts_when_open >= 6,
        "both endpoints ejected after {attempts_when_open} attempts"
    );

    let mut took = Vec::new();
    for i in 0..50 {
        let t = Instant::now();
        let resp = proxy.get("svc", &format!("/open/{i}")).await;
        took.push(t.elapsed());
        assert_eq!(resp.status, 503, "request {i}: {}", resp.text());
        assert_eq!(resp.error_reason(), Some("circuit-open"), "request {i}");
    }
    sent += 50;
    assert_eq!(
        attempts(),
        attempts_when_open,
        "circuit-open must not reach an upstream"
    );
    took.sort();
    let (median, max) = (took[took.len() / 2], took[took.len() - 1]);
    assert!(
        median < Duration::from_millis(5),
        "median circuit-open answer took {median:?}"
    );
    // No answer waited for a try: one would cost the 2s connect/per-try timeout. (The bound
    // leaves room for a scheduler stall on a loaded box; the median is the real measure.)
    assert!(
        max < Duration::from_secs(1),
        "slowest circuit-open answer took {max:?}"
    );

    // docs/resilience.md: attempts <= requests × (1 + ratio) + min_per_second × (T + 10 s).
    let bound = sent as f64 * 1.2 + 10.0 * (start.elapsed().as_secs_f64() + 10.0);
    assert!(
        (attempts() as f64) <= bound,
        "{} upstream attempts for {sent} requests (bound {bound:.0})",
        attempts()
    );
    let b1 = [("backend", "b1")];
    proxy
        .wait_metric("outrider_circuit_breaker_open", &b1, 1.0)
        .await;
    proxy
        .wait_metric("outrider_outlier_ejections_total", &b1, 2.0)
        .await;
    let ejected = [("backend", "b1"), ("state", "ejected")];
    proxy
        .wait_metric("outrider_backend_endpoints", &ejected, 2.0)
        .await;
    chaos::metric_at_least(
        &proxy,
        "outrider_retries_total",
        &[("route", "r1"), ("reason", "500")],
        1.0,
    )
    .await;
}

/// Without ejection (the default 50% cap leaves failing endpoints in use), only the retry
/// budget stands between a failing backend and `attempts ×` its load.
#[tokio::test]
async fn a_failing_backend_that_cannot_be_ejected_is_protected_by_the_retry_budget() {
    let (up, _) = chaos::controlled("up", 503).await;
    let proxy = chaos::start(
        &[route(
            "{ attempts: 3, on: [503], backoff: { base: 1ms, max: 2ms }, budget: { ratio: 0.2, min_per_second: 1 } }",
        )],
        &[chaos::backend(
            "b1",
            &[up.addr],
            "circuit_breaker: { consecutive_failures: 1000 }",
        )],
    );
    const N: usize = 100;
    let start = Instant::now();
    for i in 0..N {
        let resp = proxy.get("svc", &format!("/{i}")).await;
        assert_eq!((resp.status.as_u16(), resp.error_reason()), (503, None));
    }
    let attempts = up.requests().len();
    // docs/resilience.md: requests × (1 + ratio) + min_per_second × (T + 10 s); 300 unbounded.
    let bound = N as f64 * 1.2 + 1.0 * (start.elapsed().as_secs_f64() + 10.0);
    assert!(
        attempts as f64 <= bound,
        "{attempts} upstream attempts for {N} requests (budget bound {bound:.0})"
    );
    assert!(
        attempts >= N + 10,
        "{attempts} attempts: the reserve of 10 retries (min_per_second 1 × 10s) was not used"
    );
    chaos::metric_at_least(
        &proxy,
        "outrider_retry_budget_exhausted_total",
        &[("route", "r1")],
        1.0,
    )
    .await;
    proxy
        .wait_metric(
            "outrider_retries_total",
            &[("route", "r1"), ("reason", "503")],
            (attempts - N) as f64,
        )
        .await;
}

#[tokio::test]
async fn a_returning_endpoint_gets_traffic_back_through_the_half_open_probe() {
    let port = chaos::revivable();
    let addr = port.addr;
    let proxy = chaos::start(
        &[route("{ attempts: 2, on: [connect-failure], backoff: { base: 1ms, max: 5ms } }")],
        &[chaos::backend(
            "b1",
            &[addr],
            "connect_timeout: 500ms, circuit_breaker: { consecutive_failures: 2, ejection_time: 300ms, max_ejected_percent: 100 }",
        )],
    );
    let mut sent = 0;
    loop {
        assert!(sent < 10, "the circuit did not open within 10 requests");
        let resp = proxy.get("svc", &format!("/{sent}")).await;
        sent += 1;
        match resp.error_reason() {
            Some("circuit-open") => break,
            Some("connect-failed") => assert_eq!(resp.status, 502),
            other => panic!("refused port: {} {other:?}", resp.status),
        }
    }
    proxy
        .wait_metric("outrider_circuit_breaker_open", &[("backend", "b1")], 1.0)
        .await;
    assert_eq!(
        chaos::endpoint_state(&proxy, "b1", addr).await.as_deref(),
        Some("ejected")
    );

    let server = port.revive(); // same address, now accepting
                                // The ejection timer gives no signal: poll with requests, each either circuit-open
                                // (no attempt) or the half-open probe.
    eventually(
        Duration::from_secs(10),
        "a 200 through the half-open probe",
        || async {
            let resp = proxy.get("svc", "/probe").await;
            match (resp.status.as_u16(), resp.error_reason()) {
                (200, _) => Some(()),
                (503, Some("circuit-open")) => None,
                other => panic!("while waiting for the probe: {other:?}"),
            }
        },
    )
    .await;
    assert_eq!(
        server.requests(),
        1,
        "exactly one probe reaches the endpoint"
    );
    for i in 0..10 {
        let resp = proxy.get("svc", &format!("/after/{i}")).await;
        assert_eq!(
            resp.status,
            200,
            "after recovery, request {i}: {:?}",
            resp.error_reason()
        );
        assert_eq!(resp.upstream(), "revived");
    }
    server.wait_requests(11).await;
    proxy
        .wait_metric("outrider_circuit_breaker_open", &[("backend", "b1")], 0.0)
        .await;
    assert_eq!(
        chaos::endpoint_state(&proxy, "b1", addr).await.as_deref(),
        Some("healthy")
    );
}

#[tokio::test]
async fn post_is_retried_on_503_only_when_the_route_allows_non_idempotent_retries() {
    let (strict, _) = chaos::controlled("strict", 503).await;
    let (lenient, _) = chaos::controlled("lenient", 503).await;
    let retry = "attempts: 2, on: [503], backoff: { base: 1ms, max: 5ms }";
    let proxy = chaos::start(
        &[
            format!("{{ name: strict, match: {{ host: strict }}, to: [{{ backend: strict }}], retry: {{ {retry} }} }}"),
            format!("{{ name: lenient, match: {{ host: lenient }}, to: [{{ backend: lenient }}], retry: {{ {retry}, non_idempotent: true }} }}"),
        ],
        &[
            chaos::backend("strict", &[strict.addr], "circuit_breaker: { consecutive_failures: 1000 }"),
            chaos::backend("lenient", &[lenient.addr], "circuit_breaker: { consecutive_failures: 1000 }"),
        ],
    );
    let resp = post(&proxy, "strict", "/submit", b"payload".to_vec()).await;
    assert_eq!(
        (resp.status.as_u16(), resp.error_reason()),
        (503, None),
        "the upstream's 503 is passed on"
    );
    assert_eq!(
        strict.requests().len(),
        1,
        "a POST must not be retried on 503 by default"
    );

    let resp = post(&proxy, "lenient", "/submit", b"payload".to_vec()).await;
    assert_eq!((resp.status.as_u16(), resp.error_reason()), (503, None));
    let got = lenient.wait_requests(2).await;
    assert_eq!(
        got.len(),
        2,
        "non_idempotent: true retries a POST on 503 (attempts: 2)"
    );
    assert!(got
        .iter()
        .all(|r| r.method == "POST" && &r.body[..] == b"payload"));

    // The same route does retry a GET: the POST was held back by idempotency alone.
    assert_eq!(proxy.get("strict", "/read").await.status, 503);
    assert_eq!(strict.wait_requests(3).await.len(), 3);
}

#[tokio::test]
async fn a_body_within_max_body_is_replayed_byte_for_byte_after_a_connect_failure() {
    let closed = closed_port();
    let echo = Upstream::named("echo").await;
    let proxy = chaos::start(
        &[route("{ attempts: 2, on: [connect-failure], max_body: 64KiB, backoff: { base: 1ms, max: 5ms } }")],
        &[chaos::backend(
            "b1",
            &[closed.addr, echo.addr],
            "balance: round-robin, connect_timeout: 500ms, circuit_breaker: { consecutive_failures: 1000 }",
        )],
    );
    let bodies: Vec<Vec<u8>> = (0..6usize)
        .map(|i| {
            (0..16 * 1024)
                .map(|j| ((i * 31 + j * 7) % 251) as u8)
                .collect()
        })
        .collect();
    for (i, data) in bodies.iter().enumerate() {
        let resp = post(&proxy, "svc", &format!("/upload/{i}"), data.clone()).await;
        assert_eq!(
            resp.status,
            200,
            "upload {i}: {:?} {}",
            resp.error_reason(),
            resp.text()
        );
        assert_eq!(resp.upstream(), "echo");
    }
    let got = echo.requests();
    assert_eq!(
        got.len(),
        bodies.len(),
        "each upload reaches the echo upstream exactly once"
    );
    for (i, data) in bodies.iter().enumerate() {
        let rec = got
            .iter()
            .find(|r| r.uri.path() == format!("/upload/{i}"))
            .expect("upload recorded");
        assert!(
            rec.body[..] == data[..],
            "upload {i}: {} bytes arrived, not the {} sent",
            rec.body.len(),
            data.len()
        );
    }
    chaos::metric_at_least(
        &proxy,
        "outrider_retries_total",
        &[("route", "r1"), ("reason", "connect-failure")],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn a_body_over_max_body_is_sent_once_and_not_retried() {
    let (up, _) = chaos::controlled("up", 503).await;
    let proxy = chaos::start(
        &[route("{ attempts: 3, on: [503], non_idempotent: true, max_body: 1KiB, backoff: { base: 1ms, max: 5ms } }")],
        &[chaos::backend("b1", &[up.addr], "circuit_breaker: { consecutive_failures: 1000 }")],
    );
    let resp = post(&proxy, "svc", "/small", vec![b's'; 100]).await;
    assert_eq!((resp.status.as_u16(), resp.error_reason()), (503, None));
    assert_eq!(
        up.wait_requests(3).await.len(),
        3,
        "a 100-byte body is replayed (attempts: 3)"
    );

    let big = vec![b'b'; 8 * 1024];
    let resp = post(&proxy, "svc", "/big", big.clone()).await;
    assert_eq!((resp.status.as_u16(), resp.error_reason()), (503, None));
    let got = up.requests();
    assert_eq!(
        got.len(),
        4,
        "an 8KiB body over max_body 1KiB must be sent once"
    );
    assert_eq!(got[3].uri.path(), "/big");
    assert!(got[3].body[..] == big[..], "the large body arrives intact");
}

#[tokio::test]
async fn beyond_max_concurrent_requests_a_request_fails_fast_with_overloaded() {
    let (up, gate) = Upstream::gated().await;
    let proxy = chaos::start(
        &[route("")],
        &[chaos::backend(
            "b1",
            &[up.addr],
            "circuit_breaker: { max_concurrent_requests: 1, max_pending: 0 }",
        )],
    );
    let held = {
        let client = proxy.client.clone();
        let req = proxy.request("svc", "/held").body(body::empty()).unwrap();
        tokio::spawn(async move { client.request(req).await })
    };
    up.wait_requests(1).await;
    proxy
        .wait_metric(
            "outrider_backend_active_requests",
            &[("backend", "b1")],
            1.0,
        )
        .await;

    let t = Instant::now();
    let second = proxy.get("svc", "/second").await;
    assert_eq!(second.status, 503, "{}", second.text());
    assert_eq!(second.error_reason(), Some("overloaded"));
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "overloaded took {:?}",
        t.elapsed()
    );
    assert_eq!(
        up.requests().len(),
        1,
        "the rejected request must not reach the upstream"
    );

    gate.open();
    let first = crate::support::bounded("the held request", held)
        .await
        .expect("held request");
    assert_eq!(
        (first.status.as_u16(), first.text()),
        (200, "released".to_string())
    );
    let third = proxy.get("svc", "/third").await;
    assert_eq!(
        third.status,
        200,
        "a free slot serves again: {:?}",
        third.error_reason()
    );
    proxy
        .wait_metric(
            "outrider_backend_active_requests",
            &[("backend", "b1")],
            0.0,
        )
        .await;
}

#[tokio::test]
async fn an_endpoint_failing_its_health_check_gets_no_traffic_until_it_passes_again() {
    let (a, ca) = chaos::controlled("a", 200).await;
    let (b, cb) = chaos::controlled("b", 200).await;
    let proxy = chaos::start(
        &[route("")],
        &[chaos::backend(
            "b1",
            &[a.addr, b.addr],
            "balance: round-robin, health_check: { path: /healthz, interval: 100ms, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 2 }",
        )],
    );
    for i in 0..4 {
        assert_eq!(proxy.get("svc", &format!("/warm/{i}")).await.status, 200);
    }
    assert!(
        !a.requests().is_empty(),
        "round-robin gave a no traffic while healthy"
    );

    ca.health(500);
    wait_state(&proxy, "b1", a.addr, "unhealthy").await;
    let unhealthy = [("backend", "b1"), ("state", "unhealthy")];
    proxy
        .wait_metric("outrider_backend_endpoints", &unhealthy, 1.0)
        .await;
    let a_before = a.requests().len();
    for i in 0..20 {
        let resp = proxy.get("svc", &format!("/sick/{i}")).await;
        assert_eq!(resp.status, 200, "request {i}: {:?}", resp.error_reason());
        assert_eq!(
            resp.upstream(),
            "b",
            "request {i} went to the unhealthy endpoint"
        );
    }
    assert_eq!(a.requests().len(), a_before);

    ca.health(200);
    wait_state(&proxy, "b1", a.addr, "healthy").await;
    let mut to_a = 0;
    for i in 0..10 {
        let resp = proxy.get("svc", &format!("/well/{i}")).await;
        assert_eq!(resp.status, 200);
        to_a += usize::from(resp.upstream() == "a");
    }
    assert!(
        to_a >= 3,
        "a healthy again took {to_a} of 10 round-robin requests"
    );
    assert!(
        ca.probes() >= 3,
        "only {} health probes reached a",
        ca.probes()
    );
    assert!(!b.requests().is_empty());

    // Every endpoint actively unhealthy: 503 no-endpoints, nothing reaches an upstream.
    let (a_before, b_before) = (a.requests().len(), b.requests().len());
    ca.health(500);
    cb.health(500);
    wait_state(&proxy, "b1", a.addr, "unhealthy").await;
    wait_state(&proxy, "b1", b.addr, "unhealthy").await;
    let resp = proxy.get("svc", "/none").await;
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_eq!(resp.error_reason(), Some("no-endpoints"));
    assert_eq!(
        (a.requests().len(), b.requests().len()),
        (a_before, b_before)
    );
}

#[tokio::test]
async fn a_streamed_body_is_not_retried_even_after_a_connect_failure() {
    let closed = closed_port();
    let echo = Upstream::named("echo").await;
    let proxy = chaos::start(
        &[route("{ attempts: 3, on: [connect-failure], max_body: 64KiB, backoff: { base: 1ms, max: 5ms } }")],
        &[chaos::backend(
            "b1",
            &[closed.addr, echo.addr],
            "balance: round-robin, connect_timeout: 500ms, circuit_breaker: { consecutive_failures: 1000 }",
        )],
    );
    let mut refused = 0;
    for i in 0..2 {
        // No content-length: the body is streamed (chunked), so it cannot be replayed.
        let (tx, streamed) = body::channel();
        tx.send(bytes::Bytes::from_static(b"chunk")).unwrap();
        drop(tx);
        let req = proxy
            .request("svc", &format!("/stream/{i}"))
            .method("POST")
            .body(streamed)
            .unwrap();
        let resp = proxy.client.request(req).await;
        match (resp.status.as_u16(), resp.error_reason()) {
            (200, None) => assert_eq!(resp.upstream(), "echo"),
            (502, Some("connect-failed")) => refused += 1,
            other => panic!("streamed upload {i}: {other:?} {}", resp.text()),
        }
    }
    // Round-robin sends exactly one of the two first tries to the refusing port.
    assert_eq!(
        refused, 1,
        "a streamed body must not be retried, even after a connect failure"
    );
    assert_eq!(echo.requests().len(), 1);
}
