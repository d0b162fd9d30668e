//! Sealed MCP session affinity (SPEC §7): every request of a session reaches the replica that
//! issued it, the client sees only a sealed id, a dead replica yields 404 and a fresh
//! initialize works, and a sidecar restarted with the same key file keeps the sessions.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::{Request, Response};

use crate::support::{body, chaos, TestProxy, Upstream};

/// A stateful MCP-ish replica: `initialize` (no session header) issues `NAME-N`; any other
/// request must carry one of its own ids, else 404 (as a real stateful server answers).
async fn replica(name: &'static str) -> Upstream {
    let issued: Arc<Mutex<HashSet<String>>> = Arc::default();
    Upstream::start(name, move |req, shared| {
        let issued = issued.clone();
        async move {
            shared.record(crate::support::upstream::Recorded::of(
                &req,
                bytes::Bytes::new(),
            ));
            let session = req
                .headers()
                .get("mcp-session-id")
                .map(|v| v.to_str().unwrap().to_owned());
            let mut set = issued.lock().unwrap();
            match session {
                None => {
                    let id = format!("{name}-{}", set.len() + 1);
                    set.insert(id.clone());
                    Response::builder()
                        .header("mcp-session-id", id)
                        .header("x-upstream", name)
                        .body(body::full("{}"))
                        .unwrap()
                }
                Some(id) if set.contains(&id) => {
                    if req.method() == http::Method::DELETE {
                        set.remove(&id);
                    }
                    Response::builder()
                        .header("x-upstream", name)
                        .body(body::full("{}"))
                        .unwrap()
                }
                Some(_) => Response::builder()
                    .status(404)
                    .body(body::full("unknown session"))
                    .unwrap(),
            }
        }
    })
    .await
}

fn proxy(a: SocketAddr, b: SocketAddr, key_file: &std::path::Path) -> TestProxy {
    let yaml = chaos::start_yaml(
        &["{ name: r, match: { host: svc }, to: [{ backend: mcp }], retry: { attempts: 2, on: [connect-failure] } }".to_owned()],
        &[chaos::backend("mcp", &[a, b], "balance: round-robin, session_affinity: mcp, circuit_breaker: { consecutive_failures: 0 }")],
    );
    TestProxy::start(format!(
        "{yaml}mcp: {{ session_key_file: \"{}\" }}\n",
        key_file.display()
    ))
}

async fn call(
    p: &TestProxy,
    method: http::Method,
    session: Option<&str>,
) -> crate::support::client::Resp {
    let mut b = Request::builder()
        .method(method)
        .uri(p.outbound_url("/mcp"))
        .header("host", "svc")
        .header("content-type", "application/json");
    if let Some(s) = session {
        b = b.header("mcp-session-id", s);
    }
    p.client
        .request(
            b.body(body::full(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            ))
            .unwrap(),
        )
        .await
}

#[tokio::test]
async fn a_session_sticks_to_its_replica_survives_a_restart_and_ends_with_404_when_it_dies() {
    let (r1, r2) = (replica("r1").await, replica("r2").await);
    let dir = std::env::temp_dir().join(format!("outrider-it-sessions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("session.key");
    std::fs::write(&key, "42".repeat(32)).unwrap();
    let p = proxy(r1.addr, r2.addr, &key);

    let init = call(&p, http::Method::POST, None).await;
    assert_eq!(init.status, 200);
    let sealed = init.header("mcp-session-id").unwrap().to_owned();
    let home = init.upstream().to_owned();
    // The replica's own id is `{home}-1`; it must not show through. (Checking for the bare
    // replica name would fail now and then: two base64url characters match "r1" by chance.)
    assert!(
        sealed.starts_with("o1.") && !sealed.contains(&format!("{home}-1")),
        "sealed, opaque id: {sealed}"
    );
    for _ in 0..10 {
        let r = call(&p, http::Method::POST, Some(&sealed)).await;
        assert_eq!(
            (r.status.as_u16(), r.upstream()),
            (200, home.as_str()),
            "every request lands on the issuing replica"
        );
    }
    let get = call(&p, http::Method::GET, Some(&sealed)).await;
    assert_eq!((get.status.as_u16(), get.upstream()), (200, home.as_str()));
    let (home_up, other_up) = if home == "r1" { (&r1, &r2) } else { (&r2, &r1) };
    assert!(home_up.requests().iter().skip(1).all(|r| r
        .header("mcp-session-id")
        .is_some_and(|s| s.starts_with(&home))));
    assert!(
        other_up
            .requests()
            .iter()
            .all(|r| r.header("mcp-session-id").is_none()),
        "no session request went elsewhere"
    );
    assert_eq!(
        p.metric("outrider_mcp_sessions", &[("backend", "mcp")])
            .await,
        Some(1.0)
    );

    // A tampered or foreign id is not a session: 404, the client re-initializes.
    let forged = call(&p, http::Method::POST, Some(&format!("{home}-1"))).await;
    assert_eq!(forged.status, 404);
    assert_eq!(forged.error_reason(), Some("session-not-found"));

    // The same key after a restart: the session still routes.
    drop(p);
    let p = proxy(r1.addr, r2.addr, &key);
    let r = call(&p, http::Method::POST, Some(&sealed)).await;
    assert_eq!(
        (r.status.as_u16(), r.upstream()),
        (200, home.as_str()),
        "sessions survive a restart with the key file"
    );

    // The replica dies: 404 for its session, and a fresh initialize works on the other one.
    let other = other_up.addr;
    if home == "r1" {
        drop(r1)
    } else {
        drop(r2)
    }
    let dead = call(&p, http::Method::POST, Some(&sealed)).await;
    assert_eq!(dead.status, 404, "{}", dead.text());
    let fresh = call(&p, http::Method::POST, None).await;
    assert_eq!(fresh.status, 200);
    assert_ne!(fresh.upstream(), home);
    let _ = other;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_session_survives_a_config_reload_and_delete_ends_it() {
    let (r1, r2) = (replica("r1").await, replica("r2").await);
    let dir = std::env::temp_dir().join(format!(
        "outrider-it-sessions-reload-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("outrider.yaml");
    let yaml = |extra: &str| {
        format!(
            "{}{extra}",
            chaos::start_yaml(
                &["{ name: r, match: { host: svc }, to: [{ backend: mcp }] }".to_owned()],
                &[chaos::backend(
                    "mcp",
                    &[r1.addr, r2.addr],
                    "balance: round-robin, session_affinity: mcp"
                )],
            )
        )
    };
    std::fs::write(&path, yaml("")).unwrap();
    let p = TestProxy::start_file(&path);
    let init = call(&p, http::Method::POST, None).await;
    let sealed = init.header("mcp-session-id").unwrap().to_owned();
    let home = init.upstream().to_owned();

    // A reload that changes something else keeps the backend, its key and the session.
    std::fs::write(&path, yaml("access_log: { path: off }\n")).unwrap();
    let r = p.client.post(&p.admin_url("/reload"), "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    for _ in 0..4 {
        let r = call(&p, http::Method::POST, Some(&sealed)).await;
        assert_eq!((r.status.as_u16(), r.upstream()), (200, home.as_str()));
    }
    assert_eq!(
        p.metric("outrider_mcp_sessions", &[("backend", "mcp")])
            .await,
        Some(1.0)
    );

    // DELETE reaches the same replica and ends the session.
    let d = call(&p, http::Method::DELETE, Some(&sealed)).await;
    assert_eq!((d.status.as_u16(), d.upstream()), (200, home.as_str()));
    assert_eq!(
        p.metric("outrider_mcp_sessions", &[("backend", "mcp")])
            .await,
        Some(0.0)
    );
    let after = call(&p, http::Method::POST, Some(&sealed)).await;
    assert_eq!(
        after.status, 404,
        "the replica forgot the session; the client re-initializes"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
