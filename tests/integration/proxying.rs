//! Outbound routing (SPEC §1, §3 `outbound.routes`): host (exact, `*.suffix`, with port,
//! absolute-form), path prefix vs exact, method and header match, first match wins, and the
//! weighted split between backends.

use http::Request;

use crate::support::body;
use crate::support::client::{self, h1_send};
use crate::support::{Cfg, Upstream};

/// Two named echo upstreams `b1` and `b2` (they answer with `x-upstream: b1|b2`).
async fn two_upstreams() -> (Upstream, Upstream) {
    (Upstream::named("b1").await, Upstream::named("b2").await)
}

#[tokio::test]
async fn routes_by_exact_and_wildcard_host() {
    let (b1, b2) = two_upstreams().await;
    let proxy = Cfg::new()
        .backend("b1", b1.addr)
        .backend("b2", b2.addr)
        .host_route("exact", "svc", "b1", "")
        .host_route("wild", "*.mesh.local", "b2", "")
        .start();

    assert_eq!(proxy.get("svc", "/a").await.upstream(), "b1");
    let with_port = proxy.get("svc:8080", "/a").await;
    assert_eq!(
        with_port.status, 200,
        "Host with a port must match the bare host"
    );
    assert_eq!(with_port.upstream(), "b1");
    assert_eq!(proxy.get("api.mesh.local", "/a").await.upstream(), "b2");
    assert_eq!(proxy.get("x.y.mesh.local", "/a").await.upstream(), "b2");

    let none = proxy.get("elsewhere", "/a").await;
    assert_eq!(none.status, 404);
    assert_eq!(none.error_reason(), Some("no-route"));

    let seen = b1.last_request().await;
    assert_eq!(seen.uri.path(), "/a");
}

#[tokio::test]
async fn absolute_form_request_routes_by_its_authority() {
    let (b1, b2) = two_upstreams().await;
    let proxy = Cfg::new()
        .backend("b1", b1.addr)
        .backend("b2", b2.addr)
        .host_route("svc", "svc", "b1", "")
        .host_route("other", "other", "b2", "")
        .start();

    // The app uses outrider as an HTTP proxy: `GET http://svc/path?q=1 HTTP/1.1`.
    let req = Request::get("http://svc/path?q=1")
        .header("host", "svc")
        .body(body::empty())
        .unwrap();
    let resp = client::read(h1_send(proxy.outbound_addr(), req).await.unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.upstream(), "b1");
    let seen = b1.last_request().await;
    assert_eq!(seen.uri.path(), "/path");
    assert_eq!(seen.uri.query(), Some("q=1"));

    // RFC 9112 §3.2.2: with absolute-form, the target's authority wins over `Host`.
    let req = Request::get("http://svc/again")
        .header("host", "other")
        .body(body::empty())
        .unwrap();
    let resp = client::read(h1_send(proxy.outbound_addr(), req).await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        resp.upstream(),
        "b1",
        "absolute-form authority must take precedence over Host"
    );
    assert_eq!(b2.requests().len(), 0);
}

#[tokio::test]
async fn path_prefix_and_exact_path() {
    let (b1, b2) = two_upstreams().await;
    let proxy = Cfg::new()
        .backend("b1", b1.addr)
        .backend("b2", b2.addr)
        .route("{ name: exact, match: { host: svc, path: /exact }, to: [{ backend: b1 }] }")
        .route("{ name: prefix, match: { host: svc, path_prefix: /api }, to: [{ backend: b2 }] }")
        .start();

    assert_eq!(proxy.get("svc", "/exact").await.upstream(), "b1");
    assert_eq!(
        proxy.get("svc", "/exact?x=1").await.upstream(),
        "b1",
        "the query is not part of the path"
    );
    assert_eq!(
        proxy.get("svc", "/exact/more").await.status,
        404,
        "`path` is exact"
    );
    assert_eq!(proxy.get("svc", "/api").await.upstream(), "b2");
    assert_eq!(proxy.get("svc", "/api/v1/things").await.upstream(), "b2");
    let other = proxy.get("svc", "/other").await;
    assert_eq!(other.status, 404);
    assert_eq!(other.error_reason(), Some("no-route"));
}

#[tokio::test]
async fn method_and_header_match_with_first_match_winning() {
    let (b1, b2) = two_upstreams().await;
    let proxy = Cfg::new()
        .backend("b1", b1.addr)
        .backend("b2", b2.addr)
        .route("{ name: get-v2, match: { host: svc, method: GET, headers: { x-v: \"2\" } }, to: [{ backend: b2 }] }")
        .route("{ name: rest, match: { host: svc }, to: [{ backend: b1 }] }")
        .start();

    let get_v2 = proxy
        .send(proxy.request("svc", "/").header("x-v", "2"))
        .await;
    assert_eq!(get_v2.upstream(), "b2");
    assert_eq!(
        proxy.get("svc", "/").await.upstream(),
        "b1",
        "header missing"
    );
    let get_v3 = proxy
        .send(proxy.request("svc", "/").header("x-v", "3"))
        .await;
    assert_eq!(get_v3.upstream(), "b1", "header value differs");
    let post_v2 = proxy
        .send(proxy.request("svc", "/").method("POST").header("x-v", "2"))
        .await;
    assert_eq!(post_v2.upstream(), "b1", "method differs");
}

#[tokio::test]
async fn first_matching_route_wins() {
    let (b1, b2) = two_upstreams().await;
    let base = Cfg::new().backend("b1", b1.addr).backend("b2", b2.addr);

    let a = base
        .clone()
        .host_route("first", "svc", "b1", "")
        .host_route("second", "svc", "b2", "")
        .start();
    assert_eq!(a.get("svc", "/").await.upstream(), "b1");

    let b = base
        .host_route("first", "svc", "b2", "")
        .host_route("second", "svc", "b1", "")
        .start();
    assert_eq!(b.get("svc", "/").await.upstream(), "b2");
}

#[tokio::test]
async fn weighted_split_follows_weights() {
    let (b1, b2) = two_upstreams().await;
    let proxy = Cfg::new()
        .backend("b1", b1.addr)
        .backend("b2", b2.addr)
        .route("{ name: split, match: { host: svc }, to: [{ backend: b1, weight: 90 }, { backend: b2, weight: 10 }] }")
        .start();

    const N: usize = 1000;
    for _ in 0..N {
        let resp = proxy.get("svc", "/").await;
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    let (n1, n2) = (b1.requests().len(), b2.requests().len());
    assert_eq!(n1 + n2, N);
    // Expected 900/100 (σ ≈ 9.5): the bound is > 10σ, so only a wrong split fails.
    assert!(
        (800..=980).contains(&n1),
        "b1 got {n1}, b2 got {n2} of {N}; expected about 900/100"
    );
    assert!(n2 >= 20, "b2 got only {n2} of {N}");
}
