//! Resilience under injected faults (issue 4, SPEC §3 `retry`/`balance`/`circuit_breaker`, §6):
//! an endpoint killed under load, one that never answers, a slow one, bursts of 503, a reset
//! after response bytes reached the client, one failing endpoint of three. The rest (circuit
//! open, recovery, bodies, overload, health checks) is in `resilience_more.rs`.
//!
//! Every test has a fixed number of requests and bounded waits; state the proxy keeps is read
//! from `/backends` and `/metrics`, never waited for with a sleep.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::support::chaos::{self, MidBodyReset, MID_BODY_SENT};
use crate::support::client::{self, End};
use crate::support::faults::Fault;
use crate::support::{body, bounded, Upstream};

/// Route `r1` (host `svc`) to backend `b1` with this `retry` flow mapping (`""`: none).
pub fn route(retry: &str) -> String {
    let retry = if retry.is_empty() {
        String::new()
    } else {
        format!(", retry: {retry}")
    };
    format!("{{ name: r1, match: {{ host: svc }}, to: [{{ backend: b1 }}], timeout: 5s{retry} }}")
}

#[tokio::test]
async fn an_endpoint_killed_under_load_costs_no_request() {
    let a = Upstream::named("a").await;
    let b = Upstream::named("b").await;
    let proxy = chaos::start(
        &[route(
            "{ attempts: 3, per_try_timeout: 1s, on: [connect-failure, reset], backoff: { base: 5ms, max: 20ms } }",
        )],
        &[chaos::backend(
            "b1",
            &[a.addr, b.addr],
            "balance: round-robin, connect_timeout: 500ms",
        )],
    );
    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 50;
    const KILL_AFTER: usize = 60;

    let (done_tx, mut done_rx) = watch::channel(0usize);
    let done_tx = Arc::new(done_tx);
    let mut clients = JoinSet::new();
    for c in 0..CLIENTS {
        let (client, addr, done) = (proxy.client.clone(), proxy.outbound_addr(), done_tx.clone());
        clients.spawn(async move {
            let mut seen = Vec::new();
            for i in 0..PER_CLIENT {
                seen.push(chaos::try_get(&client, addr, "svc", &format!("/c{c}/{i}")).await);
                done.send_modify(|n| *n += 1);
            }
            seen
        });
    }
    bounded(
        "the clients to reach the kill point",
        done_rx.wait_for(|n| *n >= KILL_AFTER),
    )
    .await
    .unwrap();
    let a_served = a.requests().len();
    let done_at_kill = *done_rx.borrow();
    drop(a); // closes its listener and every open connection, in-flight requests included

    let (mut total, mut failures) = (0, Vec::new());
    while let Some(seen) = bounded("a client to finish", clients.join_next()).await {
        for r in seen.expect("client task panicked") {
            total += 1;
            match r {
                Ok(s) if s.status == 200 => {}
                other => failures.push(other),
            }
        }
    }
    assert_eq!(total, CLIENTS * PER_CLIENT);
    assert!(
        a_served > 0,
        "endpoint a got no traffic before it was killed"
    );
    assert!(
        failures.is_empty(),
        "{} of {total} idempotent GETs failed although attempts: 3 retries connect failures and resets: {failures:?}",
        failures.len()
    );
    assert!(b.requests().len() >= total - done_at_kill - CLIENTS);
}

#[tokio::test]
async fn an_endpoint_that_never_answers_costs_one_per_try_timeout() {
    let hole = Fault::black_hole().await;
    let ok = Upstream::named("ok").await;
    let proxy = chaos::start(
        &[route(
            "{ attempts: 3, per_try_timeout: 250ms, on: [connect-failure, reset, 504], backoff: { base: 1ms, max: 5ms } }",
        )],
        &[chaos::backend(
            "b1",
            &[hole.addr, ok.addr],
            "balance: round-robin, connect_timeout: 500ms, circuit_breaker: { consecutive_failures: 1000 }",
        )],
    );
    // A loaded CI box can stall a healthy try too: 250ms per try keeps that out of the
    // verdict while staying far below the 5s route timeout.
    for i in 0..10 {
        let start = Instant::now();
        let resp = proxy.get("svc", &format!("/{i}")).await;
        let took = start.elapsed();
        if resp.status != 200 {
            let scrape = proxy.metrics_text().await;
            let retries: Vec<_> = scrape.lines().filter(|l| l.contains("retr")).collect();
            panic!(
                "request {i} after {took:?}: {} {:?} {} (black hole accepts {}, ok served {}) {retries:#?}",
                resp.status, resp.error_reason(), resp.text(), hole.accepts(), ok.requests().len()
            );
        }
        assert_eq!(resp.upstream(), "ok");
        assert!(
            took < Duration::from_secs(2),
            "request {i} took {took:?}: the 250ms per-try timeout, not the 5s route timeout, should end a try at the black hole"
        );
    }
    assert!(
        hole.accepts() >= 1,
        "round-robin never tried the black hole"
    );
    chaos::metric_at_least(
        &proxy,
        "outrider_retries_total",
        &[("route", "r1"), ("backend", "b1"), ("reason", "timeout")],
        1.0,
    )
    .await;
}

/// Share of `n` GETs (two concurrent clients) for `host` that reached `slow`.
async fn slow_share(
    proxy: &crate::support::TestProxy,
    host: &str,
    slow: &Upstream,
    n: usize,
) -> f64 {
    let before = slow.requests().len();
    let mut clients = JoinSet::new();
    for c in 0..2 {
        let (client, addr, host) = (
            proxy.client.clone(),
            proxy.outbound_addr(),
            host.to_string(),
        );
        clients.spawn(async move {
            for i in 0..n / 2 {
                let seen = chaos::try_get(&client, addr, &host, &format!("/c{c}/{i}")).await;
                assert_eq!(seen.as_ref().map(|s| s.status).ok(), Some(200), "{seen:?}");
            }
        });
    }
    while let Some(r) = bounded("a client to finish", clients.join_next()).await {
        r.expect("client failed");
    }
    (slow.requests().len() - before) as f64 / n as f64
}

#[tokio::test]
async fn p2c_ewma_sends_less_traffic_to_a_slow_endpoint_than_round_robin() {
    let delay = Duration::from_millis(150);
    let (slow_rr, fast_rr) = (
        Upstream::delayed(delay).await,
        Upstream::named("fast").await,
    );
    let (slow_p2c, fast_p2c) = (
        Upstream::delayed(delay).await,
        Upstream::named("fast").await,
    );
    let proxy = chaos::start(
        &[
            "{ name: rr, match: { host: rr }, to: [{ backend: rr }] }".into(),
            "{ name: p2c, match: { host: p2c }, to: [{ backend: p2c }] }".into(),
        ],
        &[
            chaos::backend("rr", &[slow_rr.addr, fast_rr.addr], "balance: round-robin"),
            chaos::backend("p2c", &[slow_p2c.addr, fast_p2c.addr], "balance: p2c-ewma"),
        ],
    );
    const N: usize = 40;
    let rr = slow_share(&proxy, "rr", &slow_rr, N).await;
    let p2c = slow_share(&proxy, "p2c", &slow_p2c, N).await;
    assert!(
        (0.3..=0.7).contains(&rr),
        "round-robin gave the slow endpoint {rr:.2} of the traffic, expected about half"
    );
    assert!(
        p2c < rr / 2.0,
        "p2c-ewma gave the slow endpoint {p2c:.2} of {N} requests, round-robin {rr:.2}: expected less than half of round-robin's share"
    );
}

#[tokio::test]
async fn bursts_of_503_are_retried_onto_another_endpoint() {
    let (flaky, control) = chaos::controlled("flaky", 200).await;
    let good = Upstream::named("good").await;
    let proxy = chaos::start(
        &[route(
            "{ attempts: 3, on: [503], backoff: { base: 1ms, max: 5ms } }",
        )],
        &[chaos::backend(
            "b1",
            &[flaky.addr, good.addr],
            "balance: round-robin, circuit_breaker: { consecutive_failures: 1000 }",
        )],
    );
    for (phase, status) in [503, 200, 503, 200].into_iter().enumerate() {
        control.answer(status);
        let failed_before = control.failures_sent();
        for i in 0..16 {
            let resp = proxy.get("svc", &format!("/{phase}/{i}")).await;
            assert_eq!(
                resp.status,
                200,
                "phase {phase} request {i}: {}",
                resp.text()
            );
            if status == 503 {
                assert_eq!(resp.upstream(), "good");
            }
        }
        if status == 503 {
            let burst = control.failures_sent() - failed_before;
            assert!(
                burst >= 2,
                "phase {phase}: round-robin sent only {burst} requests into the 503 burst"
            );
        }
    }
    let failures = control.failures_sent();
    assert!(
        flaky.requests().len() > failures,
        "between bursts the flaky endpoint must take traffic again"
    );
    // Every 503 had a healthy endpoint to go to and budget left: exactly one retry each.
    proxy
        .wait_metric(
            "outrider_retries_total",
            &[("route", "r1"), ("backend", "b1"), ("reason", "503")],
            failures as f64,
        )
        .await;
}

#[tokio::test]
async fn a_reset_after_response_bytes_reached_the_client_is_never_retried() {
    let fault = MidBodyReset::start().await;
    let proxy = chaos::start(
        &[route(
            "{ attempts: 3, on: [connect-failure, refused-stream, reset, gateway-error], backoff: { base: 1ms, max: 5ms } }",
        )],
        &[chaos::backend("b1", &[fault.addr], "circuit_breaker: { consecutive_failures: 1000 }")],
    );
    for round in 1..=3 {
        let req = proxy
            .request("svc", &format!("/{round}"))
            .body(body::empty())
            .unwrap();
        let resp = proxy.client.send(req).await.expect("response head");
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        // The client holds response bytes before the upstream resets the connection.
        let seen =
            client::read_until(&mut body, "the partial body", |s| s.len() >= MID_BODY_SENT).await;
        fault.release_one();
        match client::read_to_end(&mut body, Duration::from_secs(10)).await {
            End::Error(..) => {}
            End::Eof(rest) => assert!(
                seen.len() + rest.len() < 1000,
                "round {round}: a body cut by a reset looked complete"
            ),
        }
        assert_eq!(
            fault.requests(),
            round,
            "round {round}: the upstream must see each request exactly once"
        );
    }
    let retries = proxy
        .metric("outrider_retries_total", &[("route", "r1")])
        .await;
    assert!(
        retries.unwrap_or(0.0) == 0.0,
        "retries counted: {retries:?}"
    );
}

#[tokio::test]
async fn one_failing_endpoint_of_three_is_ejected_and_traffic_shifts_away() {
    let (bad, _control) = chaos::controlled("bad", 500).await;
    let (g1, g2) = (Upstream::named("g1").await, Upstream::named("g2").await);
    let proxy = chaos::start(
        &[route("")],
        &[chaos::backend(
            "b1",
            &[g1.addr, bad.addr, g2.addr],
            "balance: round-robin, circuit_breaker: { consecutive_failures: 3, ejection_time: 30s, max_ejected_percent: 50 }",
        )],
    );
    let (mut sent, mut streak, mut failures) = (0, 0, 0);
    while streak < 30 {
        assert!(
            sent < 60,
            "no 30 successes in a row within 60 requests ({failures} failures)"
        );
        let resp = proxy.get("svc", &format!("/{sent}")).await;
        sent += 1;
        if resp.status == 200 {
            streak += 1;
        } else {
            assert_eq!(resp.status, 500, "{:?}", resp.error_reason());
            assert_eq!(resp.upstream(), "bad");
            failures += 1;
            streak = 0;
        }
    }
    // Round-robin: the bad endpoint gets every third request until 3 failures in a row.
    assert_eq!(
        failures, 3,
        "failures seen by the client before the ejection"
    );
    assert_eq!(
        bad.requests().len(),
        3,
        "requests that reached the bad endpoint"
    );
    assert!(
        sent <= 9 + 30,
        "success rate took {sent} requests to return to 100%"
    );
    assert_eq!(g1.requests().len() + g2.requests().len(), sent - 3);

    proxy
        .wait_metric(
            "outrider_outlier_ejections_total",
            &[("backend", "b1")],
            1.0,
        )
        .await;
    let ejected = [("backend", "b1"), ("state", "ejected")];
    proxy
        .wait_metric("outrider_backend_endpoints", &ejected, 1.0)
        .await;
    let healthy = [("backend", "b1"), ("state", "healthy")];
    proxy
        .wait_metric("outrider_backend_endpoints", &healthy, 2.0)
        .await;
    assert_eq!(
        chaos::endpoint_state(&proxy, "b1", bad.addr)
            .await
            .as_deref(),
        Some("ejected")
    );
    assert_eq!(
        chaos::endpoint_state(&proxy, "b1", g1.addr)
            .await
            .as_deref(),
        Some("healthy")
    );
    let (bad_ep, good_ep) = (
        chaos::endpoint_json(&proxy, "b1", bad.addr).await.unwrap(),
        chaos::endpoint_json(&proxy, "b1", g1.addr).await.unwrap(),
    );
    assert!(bad_ep["ejected_until"].is_string(), "{bad_ep}");
    assert!(good_ep["ejected_until"].is_null(), "{good_ep}");
    let ewma = |ep: &serde_json::Value| ep["ewma_latency_ms"].as_f64().unwrap_or(f64::NAN);
    assert!(
        ewma(&bad_ep) > ewma(&good_ep),
        "failures must raise the latency estimate: bad {bad_ep}, good {good_ep}"
    );
    assert_eq!(
        proxy
            .metric("outrider_circuit_breaker_open", &[("backend", "b1")])
            .await,
        Some(0.0)
    );
}

#[tokio::test]
async fn p2c_ewma_moves_traffic_off_a_failing_endpoint_after_its_first_failure() {
    let (bad, _control) = chaos::controlled("bad", 500).await;
    let (g1, g2) = (Upstream::named("g1").await, Upstream::named("g2").await);
    let proxy = chaos::start(
        &[route("")],
        &[chaos::backend(
            "b1",
            &[g1.addr, bad.addr, g2.addr],
            "balance: p2c-ewma, circuit_breaker: { consecutive_failures: 5, ejection_time: 30s }",
        )],
    );
    // Until the bad endpoint takes its first request (bounded: ties are broken at random).
    let mut sent = 0;
    while bad.requests().is_empty() {
        assert!(
            sent < 100,
            "p2c never picked the bad endpoint in 100 requests"
        );
        proxy.get("svc", &format!("/warm/{sent}")).await;
        sent += 1;
    }
    for i in 0..60 {
        let resp = proxy.get("svc", &format!("/{i}")).await;
        assert_eq!(
            resp.status,
            200,
            "request {i} after the first failure went to {}",
            resp.upstream()
        );
    }
    assert_eq!(
        bad.requests().len(),
        1,
        "after one failure (estimate >= 1s) the failing endpoint must lose every comparison"
    );
}

#[tokio::test]
async fn an_endpoint_shedding_load_with_429_is_used_only_as_a_last_resort() {
    let shedding = Upstream::start("shedding", |req, shared| async move {
        shared.record(crate::support::upstream::Recorded::of(
            &req,
            Default::default(),
        ));
        http::Response::builder()
            .status(429)
            .header("retry-after", "10")
            .header("x-upstream", "shedding")
            .body(body::full("slow down"))
            .unwrap()
    })
    .await;
    let ok = Upstream::named("ok").await;
    let proxy = chaos::start(
        &[route("")],
        &[chaos::backend(
            "b1",
            &[shedding.addr, ok.addr],
            "balance: round-robin, circuit_breaker: { consecutive_failures: 1 }",
        )],
    );
    let mut shed = 0;
    for i in 0..20 {
        let resp = proxy.get("svc", &format!("/{i}")).await;
        match resp.status.as_u16() {
            200 => assert_eq!(resp.upstream(), "ok"),
            429 => shed += 1,
            other => panic!("request {i}: {other} {:?}", resp.error_reason()),
        }
    }
    // Round-robin would give it every other request; penalized for Retry-After it gets one.
    assert_eq!(
        shedding.requests().len(),
        1,
        "requests to the shedding endpoint"
    );
    assert_eq!(shed, 1);
    // A 429 is not a failure: consecutive_failures: 1 would have ejected it.
    assert_eq!(
        chaos::endpoint_state(&proxy, "b1", shedding.addr)
            .await
            .as_deref(),
        Some("healthy")
    );
    let ep = chaos::endpoint_json(&proxy, "b1", shedding.addr)
        .await
        .unwrap();
    assert!(ep["penalized_until"].is_string(), "{ep}");
}
