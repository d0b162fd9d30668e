//! Header handling (SPEC §6 "Headers", §3 `request_headers`/`response_headers`): per-route
//! set/remove, RFC 9110 hop-by-hop removal, and `x-request-id` kept or generated.

use std::collections::HashSet;

use crate::support::{Cfg, Upstream};

#[tokio::test]
async fn route_sets_and_removes_request_and_response_headers() {
    let up = Upstream::named("b1").await;
    let proxy = Cfg::new()
        .backend("b1", up.addr)
        .route(
            "{ name: r1, match: { host: svc }, to: [{ backend: b1 }], \
             request_headers: { set: { x-a: \"1\" }, remove: [x-debug] }, \
             response_headers: { set: { x-b: \"2\" }, remove: [server] } }",
        )
        .start();

    let resp = proxy
        .send(
            proxy
                .request("svc", "/h")
                .header("x-a", "0")
                .header("x-debug", "on")
                .header("x-keep", "yes"),
        )
        .await;
    assert_eq!(resp.status, 200);

    let seen = up.last_request().await;
    assert_eq!(
        seen.header_all("x-a"),
        vec!["1"],
        "`set` replaces the client's value"
    );
    assert_eq!(seen.header("x-debug"), None, "`remove` drops the header");
    assert_eq!(
        seen.header("x-keep"),
        Some("yes"),
        "other headers pass through"
    );

    assert_eq!(resp.header("x-b"), Some("2"));
    assert_eq!(resp.header("server"), None, "response `remove: [server]`");
    assert_eq!(
        resp.header("x-internal"),
        Some("secret"),
        "other response headers pass through"
    );
    assert_eq!(resp.upstream(), "b1");
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded() {
    let up = Upstream::named("b1").await;
    let proxy = Cfg::single(up.addr).start();

    let resp = proxy
        .send(
            proxy
                .request("svc", "/hop")
                .header("connection", "x-foo, keep-alive")
                .header("x-foo", "bar")
                .header("keep-alive", "timeout=5")
                .header("te", "gzip")
                .header("proxy-connection", "keep-alive")
                .header("x-end-to-end", "kept"),
        )
        .await;
    assert_eq!(resp.status, 200);

    let seen = up.last_request().await;
    for name in ["x-foo", "keep-alive", "te", "proxy-connection"] {
        assert_eq!(
            seen.header(name),
            None,
            "hop-by-hop header {name} reached the upstream: {:?}",
            seen.headers
        );
    }
    let connection = seen.header_joined("connection").to_ascii_lowercase();
    assert!(
        !connection.contains("x-foo"),
        "client's Connection header forwarded: {connection:?}"
    );
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));
}

#[tokio::test]
async fn request_id_is_kept_when_sent() {
    let up = Upstream::named("b1").await;
    let proxy = Cfg::single(up.addr).start();

    let resp = proxy
        .send(proxy.request("svc", "/").header("x-request-id", "abc-123"))
        .await;
    assert_eq!(
        resp.header("x-request-id"),
        Some("abc-123"),
        "echoed on the response"
    );
    assert_eq!(
        up.last_request().await.header_all("x-request-id"),
        vec!["abc-123"]
    );
}

#[tokio::test]
async fn request_id_is_generated_unique_and_echoed() {
    let up = Upstream::named("b1").await;
    let proxy = Cfg::single(up.addr).start();

    let mut ids = HashSet::new();
    for i in 0..5 {
        let resp = proxy.get("svc", "/").await;
        let sent = up.wait_requests(i + 1).await[i]
            .header("x-request-id")
            .map(str::to_owned);
        let sent = sent.expect("upstream must receive a generated x-request-id");
        assert!(!sent.trim().is_empty());
        assert_eq!(
            resp.header("x-request-id"),
            Some(sent.as_str()),
            "response carries the same id"
        );
        ids.insert(sent);
    }
    assert_eq!(ids.len(), 5, "generated ids must be unique: {ids:?}");
}

#[tokio::test]
async fn an_http10_request_without_host_reaches_the_upstream_with_one() {
    let up = Upstream::echo().await;
    // A host-less route: HTTP/1.0 clients may send no Host header at all.
    let proxy = Cfg::new()
        .backend("b1", up.addr)
        .route("{ name: any, to: [{ backend: b1 }] }")
        .start();
    let head =
        crate::support::raw::exchange(proxy.outbound_addr(), b"GET /old HTTP/1.0\r\n\r\n").await;
    assert_eq!(crate::support::raw::status(&head), Some(200), "{head}");
    let seen = up.last_request().await;
    assert_eq!(seen.header("host"), Some(up.addr.to_string().as_str()));
}
