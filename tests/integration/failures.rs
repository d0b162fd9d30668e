//! Proxy-generated failures (SPEC §6): status, `x-outrider-error`, the
//! `outrider_proxy_errors_total{direction="outbound",reason}` counter, the JSON-RPC error body,
//! and survival of an upstream dying mid-body.

use std::time::{Duration, Instant};

use crate::support::client::{self, End};
use crate::support::faults::{closed_port, Fault};
use crate::support::{body, Cfg, TestProxy, Upstream};

/// Assert a proxy-generated failure: status, reason header, plain-text body, error counter.
async fn assert_failure(proxy: &TestProxy, resp: &client::Resp, status: u16, reason: &str) {
    assert_eq!(resp.status, status, "body: {}", resp.text());
    assert_eq!(resp.error_reason(), Some(reason));
    assert!(
        !resp.body.is_empty(),
        "a one-line plain-text message is expected"
    );
    proxy
        .wait_metric(
            "outrider_proxy_errors_total",
            &[("direction", "outbound"), ("reason", reason)],
            1.0,
        )
        .await;
}

#[tokio::test]
async fn no_route_is_404() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();

    let resp = proxy.get("unknown-service", "/x").await;
    assert_failure(&proxy, &resp, 404, "no-route").await;
    assert_eq!(up.accepts(), 0);
}

#[tokio::test]
async fn connect_failure_is_502() {
    let closed = closed_port();
    let proxy = Cfg::single(closed.addr).start();

    let resp = proxy.get("svc", "/").await;
    assert_failure(&proxy, &resp, 502, "connect-failed").await;
}

#[tokio::test]
async fn upstream_closing_before_responding_is_502_reset() {
    let fault = Fault::reset().await;
    let proxy = Cfg::single(fault.addr).start();

    let resp = proxy.get("svc", "/").await;
    assert_failure(&proxy, &resp, 502, "upstream-reset").await;
    assert!(fault.accepts() >= 1);
}

#[tokio::test]
async fn route_timeout_is_504() {
    let fault = Fault::black_hole().await;
    let proxy = Cfg::new()
        .backend("b1", fault.addr)
        .host_route("r1", "svc", "b1", "timeout: 300ms")
        .start();

    let start = Instant::now();
    let resp = proxy.get("svc", "/").await;
    let took = start.elapsed();
    assert_failure(&proxy, &resp, 504, "timeout").await;
    assert!(
        took >= Duration::from_millis(250),
        "timed out after {took:?}, before the 300ms route timeout"
    );
    assert!(took < Duration::from_secs(5), "504 took {took:?}");
}

#[tokio::test]
async fn slow_upstream_is_judged_against_the_route_timeout() {
    let slow = Upstream::delayed(Duration::from_millis(600)).await;
    let proxy = Cfg::new()
        .backend("slow", slow.addr)
        .host_route("patient", "patient", "slow", "timeout: 5s")
        .host_route("hasty", "hasty", "slow", "timeout: 200ms")
        .start();

    let ok = proxy.get("patient", "/").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.text(), "slow");

    let late = proxy.get("hasty", "/").await;
    assert_failure(&proxy, &late, 504, "timeout").await;

    // The client's connection keeps one route timer (`proxy::timer`): moved earlier (5 s, then
    // 200 ms), it fired; moved later again, it must not fire at once.
    let again = proxy.get("patient", "/").await;
    assert_eq!(again.status, 200, "{}", again.text());
}

#[tokio::test]
async fn upstream_dying_mid_body_truncates_and_proxy_keeps_serving() {
    let fault = Fault::truncated().await;
    let ok = Upstream::named("ok").await;
    let proxy = Cfg::new()
        .backend("dying", fault.addr)
        .backend("ok", ok.addr)
        .host_route("dying", "dying", "dying", "")
        .host_route("ok", "ok", "ok", "")
        .start();

    for round in 0..2 {
        let resp = proxy
            .client
            .send(proxy.request("dying", "/").body(body::empty()).unwrap())
            .await;
        if let Ok(resp) = resp {
            // Headers were already forwarded: the client must see the body cut short.
            assert_eq!(resp.status(), 200);
            match client::read_to_end(&mut resp.into_body(), Duration::from_secs(10)).await {
                End::Error(..) => {}
                End::Eof(got) => assert!(
                    got.len() < 100,
                    "round {round}: a truncated body looked complete: {got:?}"
                ),
            }
        }
        let next = proxy.get("ok", "/after").await;
        assert_eq!(next.status, 200, "round {round}: proxy must keep serving");
        assert_eq!(next.upstream(), "ok");
    }
}

#[tokio::test]
async fn json_rpc_request_gets_a_json_rpc_error_body() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();

    let req = proxy
        .request("no-such-service", "/mcp")
        .method("POST")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body::full(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#,
        ))
        .unwrap();
    let resp = proxy.client.request(req).await;
    assert_eq!(resp.status, 404);
    assert_eq!(resp.error_reason(), Some("no-route"));
    let content_type = resp.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "content-type {content_type:?}"
    );

    let json = resp.json();
    assert_eq!(json["jsonrpc"], "2.0", "{json}");
    assert_eq!(json["id"], 7, "{json}");
    assert_eq!(json["error"]["code"], -32000, "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{json}"
    );
    assert_eq!(json["error"]["data"]["reason"], "no-route", "{json}");
}
