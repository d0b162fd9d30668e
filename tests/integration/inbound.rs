//! Inbound listener (SPEC §1, §6), plaintext mode: requests are forwarded to the local app
//! unchanged except for `x-forwarded-for` (appended) and `x-outrider-peer-identity` (never the
//! client's value).

use crate::support::body;
use crate::support::client;
use crate::support::{Cfg, Upstream};

#[tokio::test]
async fn forwards_to_the_app_and_appends_x_forwarded_for() {
    let app = Upstream::named("app").await;
    let proxy = Cfg::new().inbound(app.addr, 1000).start();

    let req = client::request(proxy.inbound_addr(), "app.local", "/mcp?x=1")
        .method("POST")
        .header("x-forwarded-for", "10.1.2.3")
        .header("content-type", "text/plain")
        .body(body::full("payload"))
        .unwrap();
    let resp = proxy.client.request(req).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.upstream(), "app");

    let seen = app.last_request().await;
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri.path(), "/mcp");
    assert_eq!(seen.uri.query(), Some("x=1"));
    assert_eq!(&seen.body[..], b"payload");
    let xff: Vec<String> = seen
        .header_joined("x-forwarded-for")
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    assert_eq!(
        xff,
        vec!["10.1.2.3", "127.0.0.1"],
        "existing value kept, peer appended"
    );
}

#[tokio::test]
async fn x_forwarded_for_is_set_when_absent() {
    let app = Upstream::named("app").await;
    let proxy = Cfg::new().inbound(app.addr, 1000).start();

    let resp = proxy
        .client
        .get_host(proxy.inbound_addr(), "app.local", "/")
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        app.last_request().await.header_joined("x-forwarded-for"),
        "127.0.0.1"
    );
}

#[tokio::test]
async fn client_sent_peer_identity_is_stripped() {
    let app = Upstream::named("app").await;
    let proxy = Cfg::new().inbound(app.addr, 1000).start();

    let req = client::request(proxy.inbound_addr(), "app.local", "/")
        .header("x-outrider-peer-identity", "spiffe://evil.example/sa/admin")
        .body(body::empty())
        .unwrap();
    assert_eq!(proxy.client.request(req).await.status, 200);

    let seen = app.last_request().await;
    let values = seen.header_all("x-outrider-peer-identity");
    assert!(
        values.iter().all(|v| !v.contains("evil.example")),
        "a client-sent identity reached the app: {values:?}"
    );
}
