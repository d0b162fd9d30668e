//! MCP awareness over real JSON-RPC POSTs (SPEC §6, §7): routing by tool, per-tool
//! authorization with JSON-RPC denials, header/body agreement, JSON-RPC error bodies,
//! idempotency-aware retries, per-tool metric labels.

use http::Request;

use crate::support::{body, chaos, Cfg, Upstream};

fn call(tool: &str, id: u32) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{"text":"essay"}}}}}}"#
    )
}

fn post(proxy: &crate::support::TestProxy, _json: &str) -> http::request::Builder {
    proxy
        .request("svc", "/mcp")
        .method("POST")
        .header("content-type", "application/json")
}

async fn send_json(
    proxy: &crate::support::TestProxy,
    b: http::request::Builder,
    json: &str,
) -> crate::support::client::Resp {
    proxy
        .client
        .request(b.body(body::full(json.to_owned())).unwrap())
        .await
}

#[tokio::test]
async fn two_tools_of_one_host_route_to_two_backends_and_bodies_arrive_unchanged() {
    let (profiles, rest) = (
        Upstream::named("profiles").await,
        Upstream::named("rest").await,
    );
    let proxy = Cfg::new()
        .backend("profiles", profiles.addr)
        .backend("rest", rest.addr)
        .route("{ name: profile-tools, match: { host: svc, mcp: { methods: [tools/call], tools: [\"profile_*\"] } }, to: [{ backend: profiles }] }")
        .route("{ name: other, match: { host: svc }, to: [{ backend: rest }] }")
        .start();
    let a = call("profile_get", 1);
    let r = send_json(&proxy, post(&proxy, &a), &a).await;
    assert_eq!(r.upstream(), "profiles");
    let b = call("analyze_text", 2);
    assert_eq!(
        send_json(&proxy, post(&proxy, &b), &b).await.upstream(),
        "rest"
    );
    let list = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#;
    assert_eq!(
        send_json(&proxy, post(&proxy, list), list).await.upstream(),
        "rest"
    );
    assert_eq!(
        profiles.last_request().await.body,
        a.as_bytes(),
        "forwarded byte-for-byte"
    );

    let text = proxy.metrics_text().await;
    let v = crate::support::metrics::value(
        &text,
        "outrider_requests_total",
        &[
            ("route", "profile-tools"),
            ("mcp_method", "tools/call"),
            ("mcp_tool", "profile_get"),
        ],
    );
    assert_eq!(v, Some(1.0), "{text}");
    let v = crate::support::metrics::value(
        &text,
        "outrider_requests_total",
        &[
            ("route", "other"),
            ("mcp_method", "tools/list"),
            ("mcp_tool", ""),
        ],
    );
    assert_eq!(v, Some(1.0));
}

#[tokio::test]
async fn a_header_that_contradicts_the_body_is_refused_with_32020() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();
    let json = call("analyze_text", 9);
    let b = post(&proxy, &json)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "delete_everything");
    let r = send_json(&proxy, b, &json).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["id"], 9);
    assert_eq!(v["error"]["code"], -32020);
    assert!(
        up.requests().is_empty(),
        "policy never decided on a contradicted header"
    );
    // Agreeing headers pass.
    let b = post(&proxy, &json)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "analyze_text");
    assert_eq!(send_json(&proxy, b, &json).await.status, 200);
}

#[tokio::test]
async fn proxy_failures_of_json_rpc_requests_are_json_rpc_errors() {
    let closed = crate::support::faults::closed_port();
    let proxy = Cfg::single(closed.addr).start();
    let json = r#"{"jsonrpc":"2.0","id":"abc-1","method":"tools/list"}"#;
    let r = send_json(&proxy, post(&proxy, json), json).await;
    assert_eq!(r.status, 502);
    let v = r.json();
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["id"], "abc-1");
    assert_eq!(v["error"]["code"], -32000);
    assert_eq!(v["error"]["data"]["reason"], "connect-failed");
    // A notification (no id) gets the plain-text error.
    let n = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let r = send_json(&proxy, post(&proxy, n), n).await;
    assert_eq!(r.status, 502);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
}

/// A plaintext inbound sidecar in front of `app` with these `inbound.authorize` rules.
fn inbound_with_rules(app: std::net::SocketAddr, rules: &str) -> crate::support::TestProxy {
    crate::support::TestProxy::start(format!(
        "version: 1\nadmin: {{ listen: 127.0.0.1:0 }}\nmetrics: {{ listen: 127.0.0.1:0 }}\n\
         inbound: {{ listen: 127.0.0.1:0, app: \"{app}\", authorize: {rules} }}\n"
    ))
}

#[tokio::test]
async fn per_tool_authorization_allows_and_denies_with_a_json_rpc_error() {
    let app = Upstream::echo().await;
    let rules = r#"[{ name: readonly, mcp: { methods: [initialize, tools/list, tools/call], tools: ["get_*", analyze_text] } }]"#;
    let inbound = inbound_with_rules(app.addr, rules);
    let send = |json: String| {
        let inbound = &inbound;
        async move {
            let req = Request::post(inbound.inbound_url("/mcp"))
                .header("content-type", "application/json")
                .body(body::full(json))
                .unwrap();
            inbound.client.request(req).await
        }
    };
    assert_eq!(send(call("get_profile", 1)).await.status, 200);
    assert_eq!(
        send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#.to_owned())
            .await
            .status,
        200
    );
    let denied = send(call("delete_student", 3)).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.error_reason(), Some("forbidden"));
    let v = denied.json();
    assert_eq!(v["id"], 3);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("delete_student"),
        "{v}"
    );
    // A batch passes only if every element does.
    let batch = format!("[{},{}]", call("get_profile", 4), call("delete_student", 5));
    assert_eq!(send(batch).await.status, 403);
    assert_eq!(
        app.requests().len(),
        2,
        "denied requests never reach the app"
    );
}

/// Rules with `mcp` conditions admit MCP traffic only: no detour through other methods,
/// content types or routing headers reaches the app, and a batch passes when every element
/// is allowed by some rule.
#[tokio::test]
async fn mcp_rules_admit_nothing_but_the_allowed_mcp_messages() {
    let app = Upstream::echo().await;
    let rules = r#"[{ name: list, mcp: { methods: [tools/list] } }, { name: get, mcp: { methods: [tools/call], tools: ["get_*"] } }]"#;
    let inbound = inbound_with_rules(app.addr, rules);
    let send = |method: &str, path: &str, headers: &[(&str, &str)], body: &str| {
        let mut b = Request::builder()
            .method(method)
            .uri(inbound.inbound_url(path));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        inbound
            .client
            .request(b.body(body::full(body.to_owned())).unwrap())
    };
    let json = [("content-type", "application/json")];
    // Elements allowed by different rules: the batch passes.
    let batch = format!(
        r#"[{},{{"jsonrpc":"2.0","id":9,"method":"tools/list"}}]"#,
        call("get_x", 8)
    );
    assert_eq!(send("POST", "/mcp", &json, &batch).await.status, 200);
    // Not MCP at all: an admin GET or DELETE, even naming an allowed tool in headers.
    for (method, headers) in [
        ("GET", vec![]),
        (
            "DELETE",
            vec![("mcp-method", "tools/call"), ("mcp-name", "get_x")],
        ),
        ("GET", vec![("accept", "text/event-stream")]),
    ] {
        let r = send(method, "/admin/export", &headers, "").await;
        assert_eq!((method, r.status.as_u16()), (method, 403), "{}", r.text());
        assert!(r.text().contains("make this request"), "{}", r.text());
    }
    // A body the sidecar would not read as JSON, under headers that name an allowed tool:
    // read anyway and refused, since the app may parse it as JSON regardless.
    let evil = call("delete_all", 10);
    let r = send(
        "POST",
        "/mcp",
        &[
            ("content-type", "text/plain"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "get_x"),
        ],
        &evil,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    // A session's own stream and its end carry its id and no body: peer conditions only.
    let session = [("mcp-session-id", "s-1"), ("accept", "text/event-stream")];
    assert_eq!(send("GET", "/mcp", &session, "").await.status, 200);
    assert_eq!(
        send("DELETE", "/mcp", &[("mcp-session-id", "s-1")], "")
            .await
            .status,
        200
    );
    assert_eq!(
        app.requests().len(),
        3,
        "only the batch and the session's GET and DELETE reached the app"
    );
}

/// A caller that no rule admits is refused before its body is read.
#[tokio::test]
async fn a_caller_no_rule_admits_is_refused_before_its_body_is_read() {
    let app = Upstream::echo().await;
    let rules = r#"[{ name: gateway, peers: ["spiffe://x/sa/gateway"] }]"#;
    let inbound = inbound_with_rules(app.addr, rules);
    // A body that never ends: were it read first, the answer would never come.
    let (tx, b) = body::channel();
    let _ = tx.send(bytes::Bytes::from_static(b"{\"jsonrpc\":"));
    let req = Request::post(inbound.inbound_url("/mcp"))
        .header("content-type", "application/json")
        .body(b)
        .unwrap();
    let r = crate::support::bounded("the refusal", inbound.client.request(req)).await;
    assert_eq!(r.status, 403);
    assert!(app.requests().is_empty());
    drop(tx);
}

#[tokio::test]
async fn tools_call_is_not_retried_after_a_reset_but_tools_list_is() {
    let flaky = crate::support::faults::Fault::reset().await;
    let good = Upstream::named("good").await;
    let proxy = chaos::start(
        &["{ name: r, match: { host: svc }, to: [{ backend: b }], retry: { attempts: 2, on: [reset], backoff: { base: 1ms, max: 2ms } } }".to_owned()],
        &[chaos::backend("b", &[flaky.addr, good.addr], "balance: round-robin, circuit_breaker: { consecutive_failures: 0 }")],
    );
    let mut call_failures = 0;
    let mut list_failures = 0;
    for i in 0..6 {
        let c = call("analyze_text", i);
        if send_json(&proxy, post(&proxy, &c), &c).await.status != 200 {
            call_failures += 1;
        }
        let l = format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/list"}}"#);
        if send_json(&proxy, post(&proxy, &l), &l).await.status != 200 {
            list_failures += 1;
        }
    }
    assert!(
        call_failures > 0,
        "a tools/call that hit a reset after sending must not be retried"
    );
    assert_eq!(
        list_failures, 0,
        "tools/list is a read: retried onto the good endpoint"
    );
}

#[tokio::test]
async fn routing_headers_cannot_stand_in_for_a_body_outrider_cannot_read() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();
    // serde_json rejects NaN; a lenient upstream parser might not, and run another tool.
    let json = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all","arguments":{"x":NaN}}}"#;
    let b = post(&proxy, json)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "get_x");
    let r = send_json(&proxy, b, json).await;
    assert_eq!(r.status, 400);
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn a_silent_sse_stream_gets_keepalive_comments_between_events_only() {
    let (up, step) = Upstream::sse_stepper().await;
    let partial = Upstream::start("partial", |_req, _shared| async move {
        let (tx, b) = body::channel();
        tokio::spawn(async move {
            // Half an event, then silence: a keep-alive must not split it.
            let _ = tx.send(bytes::Bytes::from_static(b"data: par"));
            std::future::pending::<()>().await;
            drop(tx);
        });
        http::Response::builder()
            .header("content-type", "text/event-stream")
            .body(b)
            .unwrap()
    })
    .await;
    let proxy = Cfg::new()
        .backend("b1", up.addr)
        .backend("b2", partial.addr)
        .host_route("r1", "svc", "b1", "timeout: 100ms")
        .host_route("r2", "half", "b2", "")
        .raw("mcp: { sse_keepalive: 100ms }")
        .start();

    let req = proxy.request("svc", "/events").body(body::empty()).unwrap();
    let rsp = proxy.client.send(req).await.unwrap();
    assert_eq!(rsp.status(), 200);
    let mut b = rsp.into_body();
    let seen = crate::support::client::read_until(&mut b, "event one then a keep-alive", |s| {
        s.contains(": keepalive")
    })
    .await;
    assert!(
        seen.starts_with("id: 1\ndata: one\n\n: keepalive\n\n"),
        "{seen:?}"
    );
    step.notify_one();
    let seen =
        crate::support::client::read_until(&mut b, "event two", |s| s.contains("data: two")).await;
    assert!(!seen.contains("data: t: keepalive"), "{seen:?}");

    // The half event stays whole: no comment is injected inside it.
    let req = proxy
        .request("half", "/events")
        .body(body::empty())
        .unwrap();
    let mut b = proxy.client.send(req).await.unwrap().into_body();
    let first =
        crate::support::client::read_until(&mut b, "the half event", |s| s.contains("data: par"))
            .await;
    let more = tokio::time::timeout(
        std::time::Duration::from_millis(400),
        http_body_util::BodyExt::frame(&mut b),
    )
    .await;
    assert!(
        more.is_err(),
        "nothing may be injected into an unfinished event: {first:?} then {more:?}"
    );
}

#[tokio::test]
async fn stateless_era_requests_are_routed_by_their_tool() {
    let (profiles, rest) = (
        Upstream::named("profiles").await,
        Upstream::named("rest").await,
    );
    let proxy = Cfg::new()
        .backend("profiles", profiles.addr)
        .backend("rest", rest.addr)
        .route("{ name: p, match: { host: svc, mcp: { tools: [\"profile_*\"] } }, to: [{ backend: profiles }] }")
        .route("{ name: other, match: { host: svc }, to: [{ backend: rest }] }")
        .start();
    // 2026-07-28: no session; every POST names its method and tool in headers and `_meta`.
    let json = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"profile_get","_meta":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}}"#;
    let b = post(&proxy, json)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "profile_get");
    let r = send_json(&proxy, b, json).await;
    assert_eq!(r.upstream(), "profiles");
    let seen = profiles.last_request().await;
    assert!(
        seen.header("traceparent")
            .unwrap()
            .contains("0af7651916cd43dd8448eb211c80319c"),
        "_meta.traceparent continued when the header is absent"
    );
    assert!(rest.requests().is_empty());
}
