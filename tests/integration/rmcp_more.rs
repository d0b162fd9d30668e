//! More end-to-end MCP with a real rmcp client and real rmcp servers
//! (`examples/common/writing_analysis_server.rs`), over Streamable HTTP through the sidecars,
//! for what `mcp.rs` / `sessions.rs` check with hand-written JSON-RPC and fake replicas:
//! routing two tools of one host to two servers, routing headers that contradict the body
//! (-32020), no retry of a `tools/call` after a reset but a retry of `tools/list`, 2026-07-28
//! (stateless era) clients and their routing headers, session affinity when the pinned replica
//! dies, and sessions kept across a restart of the outbound sidecar with a key file.
//!
//! The topology is the mesh of `rmcp_e2e.rs` unless a test says otherwise: rmcp client →
//! outbound sidecar → mTLS → inbound sidecar (one per replica) → rmcp server. Servers count
//! what reached them ([`Stats`]), so each test shows where a request went, or that it never
//! arrived.

use std::time::Duration;

use rmcp::model::ProtocolVersion;
use rmcp::service::ClientInitializeError;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::json;

use crate::support::lying_client::LyingClient;
use crate::support::relay::Relay;
use crate::support::rmcp_mesh::{
    analyze, call, rpc_error, session, stateless, text_of, Mesh, Options, Replica, Seen, Stats,
};
use crate::support::{bounded, eventually, TestProxy};

/// A route for every `/mcp` request to backend `backend`, plus `extra` keys.
fn route(name: &str, backend: &str, extra: &str) -> String {
    format!(
        "{{ name: {name}, match: {{ path_prefix: /mcp }}, to: [{{ backend: {backend} }}]{extra} }}"
    )
}

/// One replica behind its own inbound sidecar, and an outbound sidecar with one route to it.
struct OnePod {
    replica: Replica,
    _inbound: TestProxy,
    outbound: TestProxy,
    _mesh: Mesh,
}

fn one_pod(name: &str, outbound_extra: &str) -> OnePod {
    let mesh = Mesh::new(name);
    let replica = Replica::start(Options::default());
    let inbound = mesh.inbound(replica.addr);
    let outbound = TestProxy::start(mesh.outbound_yaml(
        "127.0.0.1:0",
        &[route("mcp", "wa", "")],
        &[mesh.backend("wa", &[inbound.inbound_addr()], "")],
        outbound_extra,
    ));
    OnePod {
        replica,
        _inbound: inbound,
        outbound,
        _mesh: mesh,
    }
}

fn sorted_tool_names(tools: &[rmcp::model::Tool]) -> Vec<String> {
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    names
}

/// Which of `replicas` an rmcp session was opened on (the one that saw its `initialize`).
fn home_of(replicas: &[&Stats]) -> usize {
    let homes: Vec<usize> = (0..replicas.len())
        .filter(|&i| replicas[i].requests("initialize") == 1)
        .collect();
    assert_eq!(homes.len(), 1, "exactly one replica saw the initialize");
    homes[0]
}

/// One host, two tools, two backends. Two *stateless* rmcp servers (no session
/// ids: requests of one client may reach different servers), each behind its own inbound
/// sidecar; the outbound sends `tools/call long_analysis` to one and everything else to the
/// other. One session-era rmcp client calls both tools; each server ran only its own tool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tools_of_one_host_reach_two_rmcp_servers() {
    let mesh = Mesh::new("rmcp-two-tools");
    let stateless_server = Options {
        stateful: false,
        ..Options::default()
    };
    let (long, rest) = (
        Replica::start(stateless_server),
        Replica::start(stateless_server),
    );
    let (long_in, rest_in) = (mesh.inbound(long.addr), mesh.inbound(rest.addr));
    let outbound = TestProxy::start(mesh.outbound_yaml(
        "127.0.0.1:0",
        &[
            "{ name: long, match: { path_prefix: /mcp, mcp: { methods: [tools/call], tools: [long_analysis] } }, to: [{ backend: long }] }".to_owned(),
            route("rest", "rest", ""),
        ],
        &[
            mesh.backend("long", &[long_in.inbound_addr()], ""),
            mesh.backend("rest", &[rest_in.inbound_addr()], ""),
        ],
        "",
    ));
    let client = session(&outbound.outbound_url("/mcp"), false)
        .await
        .expect("initialize through the sidecars");

    assert_eq!(analyze(&client, "one two three").await, 3);
    let done = call(
        &client,
        "long_analysis",
        json!({"steps": 2, "interval_ms": 1}),
    )
    .await
    .expect("long_analysis through the `long` route");
    assert_eq!(text_of(&done), "done: 2 steps");

    assert_eq!(
        (
            rest.stats.calls("analyze_text"),
            long.stats.calls("analyze_text")
        ),
        (1, 0),
        "analyze_text ran on the `rest` server only"
    );
    assert_eq!(
        (
            long.stats.calls("long_analysis"),
            rest.stats.calls("long_analysis")
        ),
        (1, 0),
        "long_analysis ran on the `long` server only"
    );
    let at_long: Vec<_> = long
        .stats
        .seen()
        .into_iter()
        .map(|s| (s.rpc_method, s.name))
        .collect();
    assert_eq!(
        at_long,
        [(Some("tools/call".into()), Some("long_analysis".into()))],
        "initialize, notifications and the other tool never reached the `long` server"
    );
    outbound
        .wait_metric(
            "outrider_requests_total",
            &[
                ("route", "long"),
                ("mcp_method", "tools/call"),
                ("mcp_tool", "long_analysis"),
            ],
            1.0,
        )
        .await;
}

/// `Mcp-Method` / `Mcp-Name` headers that contradict the body are refused by the
/// outbound sidecar with 400 and JSON-RPC error -32020 (its own: `data.reason` is
/// `header-mismatch`), and the server never sees the request.
/// (a) reqwest `default_headers`: the lie rides on `initialize`, which the rmcp client sees
///     fail with -32020; (b) a client lying only on `tools/call` (claiming `analyze_text`
///     while calling `long_analysis`) in an established session: that call fails with -32020,
///     the honest calls before and after it work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_headers_that_contradict_the_body_are_refused_with_32020() {
    let pod = one_pod("rmcp-mismatch", "");
    let url = pod.outbound.outbound_url("/mcp");

    // (a) Every POST claims `tools/call analyze_text`, the initialize included.
    let mut lies = reqwest::header::HeaderMap::new();
    lies.insert("mcp-method", "tools/call".parse().unwrap());
    lies.insert("mcp-name", "analyze_text".parse().unwrap());
    let http = reqwest::Client::builder()
        .default_headers(lies)
        .build()
        .unwrap();
    let transport = StreamableHttpClientTransport::with_client(
        http,
        StreamableHttpClientTransportConfig::with_uri(url.as_str()),
    );
    let refused = bounded("a lying initialize", ().serve(transport))
        .await
        .expect_err("an initialize under a tools/call header");
    match &refused {
        ClientInitializeError::JsonRpcError(e) => {
            assert_eq!(e.code.0, -32020, "{e:?}");
            assert_eq!(
                e.data.as_ref().unwrap()["reason"],
                "header-mismatch",
                "{e:?}"
            );
        }
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
    assert!(
        pod.replica.stats.seen().is_empty(),
        "the refused initialize never reached the server"
    );

    // (b) An established session whose client lies on one tools/call.
    let transport = StreamableHttpClientTransport::with_client(
        LyingClient::new("analyze_text"),
        StreamableHttpClientTransportConfig::with_uri(url.as_str()),
    );
    let client = bounded("initialize", ().serve(transport))
        .await
        .expect("initialize (no routing headers on it)");
    assert_eq!(
        analyze(&client, "headers that agree").await,
        3,
        "a call whose headers agree with its body passes"
    );
    let err = call(
        &client,
        "long_analysis",
        json!({"steps": 1, "interval_ms": 1}),
    )
    .await
    .expect_err("long_analysis under an `Mcp-Name: analyze_text` header");
    let (code, data) = rpc_error(&err);
    assert_eq!(code, -32020, "{err:?}");
    assert_eq!(data["reason"], "header-mismatch", "{err:?}");
    let stats = &pod.replica.stats;
    assert_eq!(stats.calls("long_analysis"), 0);
    assert!(
        stats
            .seen()
            .iter()
            .all(|s| s.name.as_deref() != Some("long_analysis")),
        "the contradicted request never reached the server"
    );
    assert_eq!(
        analyze(&client, "still one session").await,
        3,
        "the session is intact"
    );
    assert_eq!(stats.requests("tools/call"), 2);
    pod.outbound
        .wait_metric(
            "outrider_proxy_errors_total",
            &[("direction", "outbound"), ("reason", "header-mismatch")],
            2.0,
        )
        .await;
}

/// A reset after the request was sent (the [`Relay`] in front of the rmcp server
/// forwards the request, then resets the connection instead of relaying the answer). Route:
/// `retry: { attempts: 2, on: [reset, 502] }`.
/// * `tools/call` is not retried (SPEC §7): the server got it exactly once, the client gets
///   the sidecar's JSON-RPC error -32000 with reason `upstream-reset` (SPEC §6);
/// * `tools/list` is a read: retried, the server got it twice, the client gets the list.
///
/// `through_mesh`: the relay sits between the inbound sidecar and the server, so the inbound
/// sidecar meets the reset and answers `502 upstream-reset`, which the outbound retries by
/// status (`502`); otherwise the outbound sidecar forwards plaintext to the relay and meets
/// the reset itself (`reset`).
async fn reset_after_send(through_mesh: bool) {
    let replica = Replica::start(Options::default());
    let relay = Relay::start(replica.addr).await;
    let mesh = Mesh::new(if through_mesh {
        "rmcp-reset-mesh"
    } else {
        "rmcp-reset-direct"
    });
    let (_inbound, backend) = if through_mesh {
        let inbound = mesh.inbound(relay.addr);
        let backend = mesh.backend("wa", &[inbound.inbound_addr()], "");
        (Some(inbound), backend)
    } else {
        let backend = format!(
            "{{ name: wa, protocol: http1, discovery: {{ static: [\"{}\"] }} }}",
            relay.addr
        );
        (None, backend)
    };
    let outbound = TestProxy::start(mesh.outbound_yaml(
        "127.0.0.1:0",
        &[route(
            "mcp",
            "wa",
            ", retry: { attempts: 2, on: [reset, 502], backoff: { base: 1ms, max: 2ms } }",
        )],
        &[backend],
        "",
    ));
    let client = session(&outbound.outbound_url("/mcp"), false)
        .await
        .expect("initialize");
    let stats = &replica.stats;

    relay.arm(r#""method":"tools/call""#);
    let err = call(&client, "analyze_text", json!({"text": "lost answer"}))
        .await
        .expect_err("the tools/call's answer was lost and it must not be retried");
    assert_eq!(relay.fired(), 1, "the reset happened");
    let (code, data) = rpc_error(&err);
    assert_eq!(
        (code, data["reason"].as_str()),
        (-32000, Some("upstream-reset")),
        "{err:?}"
    );
    assert_eq!(
        stats.requests("tools/call"),
        1,
        "the tools/call reached the server once: not retried"
    );

    relay.arm(r#""method":"tools/list""#);
    let tools = bounded("tools/list", client.list_all_tools())
        .await
        .expect("tools/list is retried after the reset");
    assert_eq!(relay.fired(), 2, "the reset happened");
    assert_eq!(sorted_tool_names(&tools), ["analyze_text", "long_analysis"]);
    assert_eq!(
        stats.requests("tools/list"),
        2,
        "tools/list reached the server twice"
    );
    // The lost call did run, once (the server handles it apart from the HTTP exchange).
    eventually(Duration::from_secs(5), "the tool ran", || async {
        (stats.calls("analyze_text") == 1).then_some(())
    })
    .await;
    assert_eq!(stats.calls("analyze_text"), 1);
    outbound
        .wait_metric(
            "outrider_retries_total",
            &[
                ("route", "mcp"),
                ("reason", if through_mesh { "502" } else { "reset" }),
            ],
            1.0,
        )
        .await;
    assert_eq!(
        outbound
            .metric("outrider_retries_total", &[("route", "mcp")])
            .await,
        Some(1.0),
        "one retry in all: the tools/list one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_after_send_retries_tools_list_but_not_tools_call() {
    reset_after_send(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_behind_the_inbound_sidecar_retries_tools_list_but_not_tools_call() {
    reset_after_send(true).await;
}

/// rmcp 3.11 implements MCP 2026-07-28 (`server/discover`, no session, and the
/// `Mcp-Method` / `Mcp-Name` headers on every POST; `ClientLifecycleMode::Discover`). Its
/// requests cross both sidecars with those headers intact (the servers record them, and rmcp's
/// server itself rejects 2026 requests whose headers are missing or wrong), the outbound checks
/// them against the body, and routes by tool: `analyze_text` to one server, the rest to the
/// other, with no session affinity needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_era_rmcp_client_sends_routing_headers_and_is_routed_by_tool() {
    let mesh = Mesh::new("rmcp-2026-route");
    let (calls, rest) = (
        Replica::start(Options::default()),
        Replica::start(Options::default()),
    );
    let (calls_in, rest_in) = (mesh.inbound(calls.addr), mesh.inbound(rest.addr));
    let outbound = TestProxy::start(mesh.outbound_yaml(
        "127.0.0.1:0",
        &[
            "{ name: analysis, match: { path_prefix: /mcp, mcp: { methods: [tools/call], tools: [analyze_text] } }, to: [{ backend: calls }] }".to_owned(),
            route("rest", "rest", ""),
        ],
        &[
            mesh.backend("calls", &[calls_in.inbound_addr()], ""),
            mesh.backend("rest", &[rest_in.inbound_addr()], ""),
        ],
        "",
    ));
    let client = stateless(&outbound.outbound_url("/mcp"))
        .await
        .expect("server/discover through the sidecars");
    assert_eq!(
        client.peer_info().map(|i| i.protocol_version.clone()),
        Some(ProtocolVersion::V_2026_07_28),
        "the stateless era was negotiated"
    );
    let tools = bounded("tools/list", client.list_all_tools())
        .await
        .unwrap();
    assert_eq!(sorted_tool_names(&tools), ["analyze_text", "long_analysis"]);
    assert_eq!(analyze(&client, "routed by its tool").await, 4);

    assert_eq!(
        (
            calls.stats.calls("analyze_text"),
            rest.stats.calls("analyze_text")
        ),
        (1, 0)
    );
    let header_pair = |s: &Seen| {
        (
            s.rpc_method.clone(),
            s.mcp_method.clone(),
            s.mcp_name.clone(),
            s.session.clone(),
        )
    };
    let at_calls: Vec<_> = calls.stats.seen().iter().map(header_pair).collect();
    assert_eq!(
        at_calls,
        [(
            Some("tools/call".into()),
            Some("tools/call".into()),
            Some("analyze_text".into()),
            None
        )],
        "one tools/call, with the routing headers rmcp set, and no session"
    );
    let at_rest: Vec<_> = rest.stats.seen().iter().map(header_pair).collect();
    for method in ["server/discover", "tools/list"] {
        assert!(
            at_rest.contains(&(Some(method.into()), Some(method.into()), None, None)),
            "{method} with its Mcp-Method header at the `rest` server: {at_rest:?}"
        );
    }
    assert!(
        at_rest.iter().all(|s| s.1.is_some() && s.3.is_none()),
        "every POST carried Mcp-Method, none a session: {at_rest:?}"
    );
    outbound
        .wait_metric(
            "outrider_requests_total",
            &[
                ("route", "analysis"),
                ("mcp_method", "tools/call"),
                ("mcp_tool", "analyze_text"),
            ],
            1.0,
        )
        .await;
}

/// Routing by the 2026-07-28 headers alone: outrider classifies from the body whenever it reads
/// it (every JSON POST within `mcp.max_inspect_body`; the headers must then agree), and refuses
/// a larger body with 413 when a route or rule needs MCP fields (SPEC §7: policy is never
/// decided on headers it could not check). So a classification from the 2026 headers alone
/// happens for a body the sidecar does not read while no policy needs it; it still names the
/// method and tool in metrics. Here `max_inspect_body: 256` and a 1 KiB `tools/call`: the
/// 2026-era rmcp client's call is labelled `tools/call` / `analyze_text` from its headers; the
/// same call from a session-era rmcp client (no headers) is not classified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_the_sidecar_does_not_read_is_classified_from_the_2026_headers() {
    let pod = one_pod("rmcp-2026-headers", "mcp: { max_inspect_body: 256 }\n");
    let url = pod.outbound.outbound_url("/mcp");
    let text = "word ".repeat(200);
    let tool_series = [("mcp_method", "tools/call"), ("mcp_tool", "analyze_text")];

    // The session-era call first, then a barrier: a small (read, classified) long_analysis.
    let legacy = session(&url, false).await.expect("initialize");
    assert_eq!(analyze(&legacy, &text).await, 200);
    call(
        &legacy,
        "long_analysis",
        json!({"steps": 1, "interval_ms": 1}),
    )
    .await
    .expect("long_analysis");
    pod.outbound
        .wait_metric(
            "outrider_requests_total",
            &[("mcp_method", "tools/call"), ("mcp_tool", "long_analysis")],
            1.0,
        )
        .await;
    assert_eq!(
        pod.outbound
            .metric("outrider_requests_total", &tool_series)
            .await,
        None,
        "a 1 KiB body without routing headers is not classified"
    );

    let modern = stateless(&url).await.expect("server/discover");
    assert_eq!(analyze(&modern, &text).await, 200);
    pod.outbound
        .wait_metric("outrider_requests_total", &tool_series, 1.0)
        .await;
    assert_eq!(pod.replica.stats.calls("analyze_text"), 2);
}

/// Two stateful rmcp replicas behind an outbound sidecar with `session_affinity: mcp` and
/// round-robin. The replica holding the session is killed: its runtime is dropped, so its
/// listener and every connection it accepted close at once. The client's next request is
/// answered 404, which rmcp reports as `SessionExpired` (its automatic re-initialization is off
/// here to see it), and a fresh rmcp client initializes on the other replica and works.
///
/// [`Dies::Replica`]: the outbound reaches the replicas in plaintext, so the endpoint that dies
/// is the rmcp server's own listener and connections. Otherwise each replica has its own
/// inbound sidecar: [`Dies::Pod`] kills app and sidecar (the pinned endpoint the outbound sees
/// is gone); [`Dies::App`] kills only the app, and its live sidecar answers the 404 for the
/// session (the app that held it cannot be reached).
async fn pinned_replica_dies(dies: Dies) {
    let through_mesh = dies != Dies::Replica;
    let mesh = Mesh::new(if through_mesh {
        "rmcp-kill-mesh"
    } else {
        "rmcp-kill-direct"
    });
    let mut replicas = [
        Replica::start(Options::default()),
        Replica::start(Options::default()),
    ];
    let mut sidecars: Vec<Option<TestProxy>> = replicas
        .iter()
        .map(|r| through_mesh.then(|| mesh.inbound(r.addr)))
        .collect();
    let affinity =
        "balance: round-robin, session_affinity: mcp, circuit_breaker: { consecutive_failures: 0 }";
    let backend = if through_mesh {
        let addrs: Vec<_> = sidecars
            .iter()
            .map(|s| s.as_ref().unwrap().inbound_addr())
            .collect();
        mesh.backend("wa", &addrs, affinity)
    } else {
        format!(
            "{{ name: wa, protocol: http1, discovery: {{ static: [\"{}\", \"{}\"] }}, {affinity} }}",
            replicas[0].addr, replicas[1].addr
        )
    };
    let outbound = TestProxy::start(mesh.outbound_yaml(
        "127.0.0.1:0",
        &[route(
            "mcp",
            "wa",
            ", retry: { attempts: 2, on: [connect-failure] }",
        )],
        &[backend],
        "",
    ));
    let url = outbound.outbound_url("/mcp");
    let pinned = session(&url, false).await.expect("initialize");
    for _ in 0..4 {
        assert_eq!(analyze(&pinned, "kept on its replica").await, 4);
    }
    let home = home_of(&[&replicas[0].stats, &replicas[1].stats]);
    let other = 1 - home;
    assert_eq!(
        (
            replicas[home].stats.calls("analyze_text"),
            replicas[other].stats.calls("analyze_text")
        ),
        (4, 0),
        "every call of the session reached its replica"
    );

    replicas[home].kill().await;
    if dies == Dies::Pod {
        if let Some(sidecar) = sidecars[home].take() {
            sidecar.stop(Duration::from_secs(5)).await;
        }
    }

    let err = call(&pinned, "analyze_text", json!({"text": "gone"}))
        .await
        .expect_err("the session's replica is gone");
    assert!(
        format!("{err:?}").contains("SessionExpired"),
        "a 404 (session expired) for the session, not another error: {err:?}"
    );
    assert_eq!(
        replicas[other].stats.requests("tools/call"),
        0,
        "the session's request was not sent to the other replica"
    );

    let fresh = session(&url, false)
        .await
        .expect("a fresh initialize after the replica died");
    assert_eq!(analyze(&fresh, "a new session").await, 3);
    assert_eq!(
        (
            replicas[other].stats.requests("initialize"),
            replicas[other].stats.calls("analyze_text")
        ),
        (1, 1),
        "the new session lives on the surviving replica"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_pinned_replica_dies_the_rmcp_client_gets_404_and_a_new_session_works() {
    pinned_replica_dies(Dies::Replica).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_pinned_app_dies_behind_its_sidecar_the_rmcp_client_gets_404() {
    pinned_replica_dies(Dies::App).await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dies {
    Replica,
    Pod,
    App,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_pinned_pod_dies_the_rmcp_client_gets_404_and_a_new_session_works() {
    pinned_replica_dies(Dies::Pod).await;
}

/// An rmcp session established through an outbound sidecar with
/// `mcp.session_key_file` keeps working after that sidecar is stopped (at once, connections
/// dropped) and started again with the same key file on the same port: the client's URL does
/// not change, and its sealed session id still opens and still reaches the replica that issued
/// it (two replicas, round-robin). The sidecar runs in-process as in every test here
/// ([`TestProxy`]); a stop and a new `App::start` drop everything a process restart drops (the
/// key of a sidecar without a key file is random per start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rmcp_session_survives_a_sidecar_restart_with_the_key_file() {
    let mesh = Mesh::new("rmcp-restart");
    let replicas = [
        Replica::start(Options::default()),
        Replica::start(Options::default()),
    ];
    let sidecars: Vec<TestProxy> = replicas.iter().map(|r| mesh.inbound(r.addr)).collect();
    let addrs: Vec<_> = sidecars.iter().map(TestProxy::inbound_addr).collect();
    let key = mesh.pki.dir.join("session.key");
    std::fs::write(&key, "42".repeat(32)).unwrap();
    let yaml = |listen: &str| {
        mesh.outbound_yaml(
            listen,
            &[route("mcp", "wa", "")],
            &[mesh.backend("wa", &addrs, "balance: round-robin, session_affinity: mcp")],
            &format!("mcp: {{ session_key_file: \"{}\" }}\n", key.display()),
        )
    };
    let outbound = TestProxy::start(yaml("127.0.0.1:0"));
    let addr = outbound.outbound_addr();
    let client = session(&outbound.outbound_url("/mcp"), false)
        .await
        .expect("initialize");
    assert_eq!(analyze(&client, "before the restart").await, 3);
    let home = home_of(&[&replicas[0].stats, &replicas[1].stats]);

    outbound.stop(Duration::from_secs(5)).await;
    let restarted_yaml = yaml(&addr.to_string());
    // The port is free once the old sidecar stopped; poll in case the kernel lags.
    let outbound = eventually(
        Duration::from_secs(5),
        "the sidecar to listen again on its port",
        || {
            let started = TestProxy::try_start(restarted_yaml.clone()).ok();
            async move { started }
        },
    )
    .await;
    assert_eq!(outbound.outbound_addr(), addr);

    for _ in 0..4 {
        assert_eq!(analyze(&client, "after the restart").await, 3);
    }
    assert_eq!(
        (
            replicas[home].stats.calls("analyze_text"),
            replicas[1 - home].stats.calls("analyze_text")
        ),
        (5, 0),
        "the session still reaches the replica that issued it"
    );
    assert_eq!(
        replicas[home].stats.requests("initialize"),
        1,
        "the client never re-initialized"
    );
}
