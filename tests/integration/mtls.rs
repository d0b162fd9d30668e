//! mTLS between sidecars (SPEC §1, §3 `identity`/`tls`/`inbound.mode`/`inbound.authorize`,
//! §6 `forbidden`, §8 TLS metrics): real handshakes with certificates generated in the test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use outrider::certs::Validity;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::pki::{openssl, send, Pki, TlsClient};
use crate::support::upstream::Recorded;
use crate::support::{bounded, eventually, TestProxy, Upstream};

const LISTENERS: &str = "admin: { listen: 127.0.0.1:0 }\nmetrics: { listen: 127.0.0.1:0 }\n";

fn inbound_yaml(pki: &Pki, name: &str, app: SocketAddr, mode: &str, authorize: &str) -> String {
    let authorize = if authorize.is_empty() {
        String::new()
    } else {
        format!(", authorize: {authorize}")
    };
    format!(
        "version: 1\n{}{LISTENERS}inbound: {{ listen: 127.0.0.1:0, app: \"{app}\", mode: {mode}{authorize} }}\n",
        pki.sidecar_yaml(name)
    )
}

fn inbound_sidecar(
    pki: &Pki,
    name: &str,
    app: SocketAddr,
    mode: &str,
    authorize: &str,
) -> TestProxy {
    TestProxy::start(inbound_yaml(pki, name, app, mode, authorize))
}

fn outbound_sidecar(pki: &Pki, name: &str, target: SocketAddr, expected: &str) -> TestProxy {
    outbound_with(&pki.sidecar_yaml(name), target, expected)
}

/// An outbound sidecar with the given `identity:` + `tls:` lines.
fn outbound_with(sidecar: &str, target: SocketAddr, expected: &str) -> TestProxy {
    TestProxy::start(format!(
        "version: 1\n{sidecar}{LISTENERS}outbound:\n  listen: 127.0.0.1:0\n  routes: [{{ name: r1, match: {{ host: svc }}, to: [{{ backend: b }}] }}]\n\
         backends: [{{ name: b, discovery: {{ static: [\"{target}\"] }}, tls: {{ identity: \"{expected}\" }}, connect_timeout: 2s }}]\n"
    ))
}

/// A strict inbound sidecar with the given `identity:` + `tls:` lines.
fn strict_inbound_with(sidecar: &str, app: SocketAddr) -> String {
    format!(
        "version: 1\n{sidecar}{LISTENERS}inbound: {{ listen: 127.0.0.1:0, app: \"{app}\", mode: strict }}\n"
    )
}

/// A strict inbound "writing-analysis" and a "gateway" outbound calling it, each with the given
/// `identity:` + `tls:` lines: one request must reach the app with the gateway's identity.
/// Returns the inbound sidecar and its app.
async fn one_verified_hop(server: &str, client: &str, path: &str) -> (TestProxy, Upstream) {
    let app = Upstream::echo().await;
    let b = TestProxy::start(strict_inbound_with(server, app.addr));
    let a = outbound_with(client, b.inbound_addr(), &Pki::id("writing-analysis"));
    assert_eq!(a.get("svc", path).await.status, 200);
    let seen = app.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header_all("x-outrider-peer-identity"),
        vec![Pki::id("gateway")]
    );
    (b, app)
}

/// The "gateway" outbound sidecar calling the "writing-analysis" inbound sidecar `b`.
fn gateway_to(pki: &Pki, b: &TestProxy) -> Arc<TestProxy> {
    Arc::new(outbound_sidecar(
        pki,
        "gateway",
        b.inbound_addr(),
        &Pki::id("writing-analysis"),
    ))
}

async fn inbound_connections(b: &TestProxy) -> Option<f64> {
    b.metric("outrider_connections_open", &[("direction", "inbound")])
        .await
}

/// An app that records each request and holds its answer (`body`) until the gate opens.
async fn held_app(body: &'static str) -> (tokio::sync::watch::Sender<bool>, Upstream) {
    let (gate, opened) = tokio::sync::watch::channel(false);
    let app = Upstream::start("held", move |req, shared| {
        let mut opened = opened.clone();
        async move {
            shared.record(Recorded::of(&req, bytes::Bytes::new()));
            let _ = opened.wait_for(|o| *o).await;
            http::Response::new(crate::support::body::full(body))
        }
    })
    .await;
    (gate, app)
}

fn handshake_errors(reason: &str) -> [(&str, &str); 2] {
    [("direction", "inbound"), ("reason", reason)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_hop_carries_the_verified_identity_over_one_h2_connection() {
    let pki = Pki::new("mesh");
    let (gate, app) = held_app("ok").await;
    let b = inbound_sidecar(&pki, "writing-analysis", app.addr, "strict", "");
    let a = gateway_to(&pki, &b);

    // Cold start: eight requests arrive together before any connection exists. The first
    // dials; the others wait for its ALPN outcome (h2) instead of dialing their own.
    let mut calls = Vec::new();
    for _ in 0..8 {
        let a = a.clone();
        calls.push(tokio::spawn(async move {
            // A forged identity header from the caller must never reach the app.
            let req = a
                .request("svc", "/mcp")
                .header("x-outrider-peer-identity", "spiffe://evil/sa/x");
            a.send(req).await
        }));
    }
    app.wait_requests(8).await;
    // Eight requests in flight, one multiplexed HTTP/2 connection between the sidecars.
    assert_eq!(inbound_connections(&b).await, Some(1.0));
    gate.send_replace(true);
    for c in calls {
        assert_eq!(c.await.unwrap().status, 200);
    }
    // And later requests reuse it.
    assert_eq!(a.get("svc", "/again").await.status, 200);
    assert_eq!(inbound_connections(&b).await, Some(1.0));
    // One handshake on each side, counted.
    let handshakes = |dir| [("direction", dir)];
    assert_eq!(
        a.metric("outrider_tls_handshakes_total", &handshakes("outbound"))
            .await,
        Some(1.0)
    );
    assert_eq!(
        b.metric("outrider_tls_handshakes_total", &handshakes("inbound"))
            .await,
        Some(1.0)
    );
    for r in app.requests() {
        assert_eq!(
            r.header_all("x-outrider-peer-identity"),
            vec![Pki::id("gateway")]
        );
    }
}

#[tokio::test]
async fn bad_handshakes_are_refused_and_counted_by_reason() {
    let pki = Pki::new("refuse");
    let app = Upstream::echo().await;
    let b = inbound_sidecar(&pki, "writing-analysis", app.addr, "strict", "");
    let addr = b.inbound_addr();
    let server = Pki::id("writing-analysis");
    let other_ca = Pki::new("other-ca");

    let good = pki
        .ca
        .issue(&[Pki::id("gateway")], Validity::days(1))
        .unwrap();
    let foreign = other_ca
        .ca
        .issue(&[Pki::id("gateway")], Validity::days(1))
        .unwrap();
    let expired = pki.expired("gateway");
    let not_spiffe = pki
        .ca
        .issue(&["https://gateway.example/".to_owned()], Validity::days(1))
        .unwrap();
    let cases = [
        ("no-client-cert", None),
        ("unknown-ca", Some(&foreign)),
        ("expired", Some(&expired)),
        ("bad-identity", Some(&not_spiffe)),
    ];
    for (reason, cert) in cases {
        let client = TlsClient::new(&pki.ca.cert_pem, &server, cert, false);
        let refused = match client.http1(addr).await {
            Err(_) => true,
            Ok((mut sender, _)) => send(&mut sender, "/").await.is_err(),
        };
        assert!(refused, "{reason}: the request must not get through");
        b.wait_metric(
            "outrider_tls_handshake_errors_total",
            &handshake_errors(reason),
            1.0,
        )
        .await;
    }
    // Plaintext to a strict port: closed without an answer.
    let mut tcp = bounded("connect", tokio::net::TcpStream::connect(addr))
        .await
        .unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: app\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let n = bounded("the strict port to close", tcp.read_to_end(&mut buf))
        .await
        .unwrap_or(0);
    assert_eq!(
        n,
        0,
        "no HTTP answer on a strict port: {:?}",
        String::from_utf8_lossy(&buf)
    );
    b.wait_metric(
        "outrider_tls_handshake_errors_total",
        &handshake_errors("not-tls"),
        1.0,
    )
    .await;
    assert!(app.requests().is_empty(), "nothing reached the app");

    // The valid certificate works on the same listener.
    let client = TlsClient::new(&pki.ca.cert_pem, &server, Some(&good), false);
    let (mut sender, _) = client.http1(addr).await.unwrap();
    assert_eq!(send(&mut sender, "/").await.unwrap().status(), 200);
}

#[tokio::test]
async fn outbound_refuses_an_upstream_with_the_wrong_identity() {
    let pki = Pki::new("wrong-server");
    let app = Upstream::echo().await;
    let b = inbound_sidecar(&pki, "student-profiling", app.addr, "strict", "");
    // The caller expects writing-analysis but the endpoint is student-profiling.
    let a = outbound_sidecar(
        &pki,
        "gateway",
        b.inbound_addr(),
        &Pki::id("writing-analysis"),
    );
    let r = a.get("svc", "/").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.error_reason(), Some("connect-failed"));
    a.wait_metric(
        "outrider_tls_handshake_errors_total",
        &[("direction", "outbound"), ("reason", "bad-identity")],
        1.0,
    )
    .await;
    assert!(app.requests().is_empty());
}

#[tokio::test]
async fn permissive_mode_accepts_mtls_and_plaintext() {
    let pki = Pki::new("permissive");
    let app = Upstream::echo().await;
    let b = inbound_sidecar(&pki, "writing-analysis", app.addr, "permissive", "");
    let plain = b.client.get(&b.inbound_url("/plain")).await;
    assert_eq!(plain.status, 200);
    assert_eq!(
        app.last_request().await.header("x-outrider-peer-identity"),
        None
    );

    let a = outbound_sidecar(
        &pki,
        "gateway",
        b.inbound_addr(),
        &Pki::id("writing-analysis"),
    );
    assert_eq!(a.get("svc", "/tls").await.status, 200);
    let seen = app.wait_requests(2).await;
    assert_eq!(
        seen[1].header("x-outrider-peer-identity"),
        Some(Pki::id("gateway").as_str())
    );
    // What a migration to `strict` watches: plaintext connections against mTLS ones.
    let inbound = [("direction", "inbound")];
    assert_eq!(
        b.metric("outrider_plaintext_connections_total", &inbound)
            .await,
        Some(1.0)
    );
    assert_eq!(
        b.metric("outrider_tls_handshakes_total", &inbound).await,
        Some(1.0)
    );
}

#[tokio::test]
async fn authorize_allows_and_denies_by_identity_glob() {
    let pki = Pki::new("authz");
    let app = Upstream::echo().await;
    let rules = r#"[{ name: gateways, peers: ["spiffe://classroom.local/sa/gate*"] }]"#;
    let b = inbound_sidecar(&pki, "writing-analysis", app.addr, "strict", rules);
    let target = Pki::id("writing-analysis");
    let gateway = outbound_sidecar(&pki, "gateway", b.inbound_addr(), &target);
    let alerts = outbound_sidecar(&pki, "educator-alerts", b.inbound_addr(), &target);

    assert_eq!(gateway.get("svc", "/").await.status, 200);
    let denied = alerts.get("svc", "/").await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.error_reason(), Some("forbidden"));
    b.wait_metric(
        "outrider_authz_denied_total",
        &[
            ("direction", "inbound"),
            ("peer", Pki::id("educator-alerts").as_str()),
        ],
        1.0,
    )
    .await;
    b.wait_metric(
        "outrider_proxy_errors_total",
        &[("direction", "inbound"), ("reason", "forbidden")],
        1.0,
    )
    .await;
    assert_eq!(
        app.requests().len(),
        1,
        "the denied request never reached the app"
    );
}

/// A "gateway" client of the "writing-analysis" inbound at `addr`, its first connection after a
/// 200 on it, and the serial the inbound presented on that connection.
async fn gateway_client(
    pki: &Pki,
    addr: SocketAddr,
) -> (
    TlsClient,
    hyper::client::conn::http1::SendRequest<crate::support::body::Body>,
    String,
) {
    let me = pki
        .ca
        .issue(&[Pki::id("gateway")], Validity::days(1))
        .unwrap();
    let client = TlsClient::new(
        &pki.ca.cert_pem,
        &Pki::id("writing-analysis"),
        Some(&me),
        false,
    );
    let (mut conn, serial) = client.http1(addr).await.unwrap();
    assert_eq!(send(&mut conn, "/before").await.unwrap().status(), 200);
    (client, conn, serial)
}

/// The serial of the first new connection that presents a certificate other than `old`'s.
async fn next_serial(client: &TlsClient, addr: SocketAddr, old: &str) -> String {
    eventually(
        Duration::from_secs(5),
        "a new connection to present the rotated certificate",
        || async {
            let (_, serial) = client.http1(addr).await.ok()?;
            (serial != old).then_some(serial)
        },
    )
    .await
}

#[tokio::test]
async fn rotated_certificates_apply_to_new_connections_only() {
    let pki = Pki::new("rotate");
    let app = Upstream::echo().await;
    let b = inbound_sidecar(&pki, "writing-analysis", app.addr, "strict", "");
    let server = Pki::id("writing-analysis");
    let (client, mut old, first_serial) = gateway_client(&pki, b.inbound_addr()).await;

    // Rotate: a new certificate for the same identity, written like cert-manager does
    // (each file replaced by rename).
    let next = pki
        .ca
        .issue(std::slice::from_ref(&server), Validity::days(60))
        .unwrap();
    for (file, body) in [
        ("writing-analysis.key", &next.key_pem),
        ("writing-analysis.pem", &next.cert_pem),
    ] {
        let tmp = pki.dir.join(format!("{file}.tmp"));
        std::fs::write(&tmp, body).unwrap();
        std::fs::rename(&tmp, pki.dir.join(file)).unwrap();
    }
    let new_serial = next_serial(&client, b.inbound_addr(), &first_serial).await;
    // The connection opened before the rotation keeps working.
    assert_eq!(send(&mut old, "/after").await.unwrap().status(), 200);
    assert!(b
        .metric("outrider_tls_rotations_total", &[("result", "applied")])
        .await
        .is_some_and(|n| n >= 1.0));

    // A broken certificate file is rejected and counted; the current one stays in force.
    let tmp = pki.dir.join("writing-analysis.pem.tmp");
    std::fs::write(&tmp, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    std::fs::rename(&tmp, pki.dir.join("writing-analysis.pem")).unwrap();
    eventually(
        Duration::from_secs(5),
        "the broken file to be rejected",
        || async {
            let n = b
                .metric("outrider_tls_rotations_total", &[("result", "rejected")])
                .await?;
            (n >= 1.0).then_some(())
        },
    )
    .await;
    let (_, serial) = client.http1(b.inbound_addr()).await.unwrap();
    assert_eq!(serial, new_serial, "still the last good certificate");
}

/// A Kubernetes Secret volume rotates by swapping the `..data` symlink: certificate and key
/// change together. The next connection presents the new certificate; an open one keeps going.
#[tokio::test]
async fn a_secret_volume_symlink_swap_rotates_the_certificate() {
    let pki = Pki::new("secret-swap");
    let server = Pki::id("writing-analysis");
    // The layout kubelet writes: tls.crt -> ..data/tls.crt, ..data -> ..v1 (and so on).
    let secret = pki.dir.join("secret");
    let version = |v: &str, issued: &outrider::certs::Issued| {
        let dir = secret.join(v);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tls.crt"), &issued.cert_pem).unwrap();
        std::fs::write(dir.join("tls.key"), &issued.key_pem).unwrap();
        std::fs::write(dir.join("ca.crt"), &pki.ca.cert_pem).unwrap();
    };
    let first = pki
        .ca
        .issue(std::slice::from_ref(&server), Validity::days(1))
        .unwrap();
    version("..v1", &first);
    std::os::unix::fs::symlink("..v1", secret.join("..data")).unwrap();
    for file in ["tls.crt", "tls.key", "ca.crt"] {
        std::os::unix::fs::symlink(format!("..data/{file}"), secret.join(file)).unwrap();
    }
    let app = Upstream::echo().await;
    let b = TestProxy::start(strict_inbound_with(
        &format!(
            "identity: \"{server}\"\ntls: {{ ca: \"{}\", cert: \"{}\", key: \"{}\" }}\n",
            secret.join("ca.crt").display(),
            secret.join("tls.crt").display(),
            secret.join("tls.key").display()
        ),
        app.addr,
    ));
    let (client, mut old, first_serial) = gateway_client(&pki, b.inbound_addr()).await;

    let next = pki
        .ca
        .issue(std::slice::from_ref(&server), Validity::days(60))
        .unwrap();
    version("..v2", &next);
    std::os::unix::fs::symlink("..v2", secret.join("..data_tmp")).unwrap();
    std::fs::rename(secret.join("..data_tmp"), secret.join("..data")).unwrap();
    let new_serial = next_serial(&client, b.inbound_addr(), &first_serial).await;
    let expected = outrider::tls::identity::cert_info(
        &rustls_pki_types::CertificateDer::from_pem_slice(next.cert_pem.as_bytes()).unwrap(),
    )
    .unwrap()
    .serial;
    assert_eq!(new_serial, expected);
    assert_eq!(send(&mut old, "/after").await.unwrap().status(), 200);
    // Key and certificate changed together: no rejected intermediate state.
    assert_eq!(
        b.metric("outrider_tls_rotations_total", &[("result", "rejected")])
            .await
            .unwrap_or(0.0),
        0.0
    );
}

/// A CA bundle change alone applies to new connections: a client of a newly trusted CA is
/// refused before and accepted after (no restart).
#[tokio::test]
async fn a_rotated_ca_bundle_applies_without_a_restart() {
    let pki = Pki::new("rotate-ca");
    let app = Upstream::echo().await;
    let b = inbound_sidecar(&pki, "writing-analysis", app.addr, "strict", "");
    let server = Pki::id("writing-analysis");
    let other_ca = outrider::certs::Ca::new(crate::support::pki::TD).unwrap();
    let stranger = other_ca
        .issue(&[Pki::id("gateway")], Validity::days(1))
        .unwrap();
    let client = TlsClient::new(&pki.ca.cert_pem, &server, Some(&stranger), false);
    let refused = match client.http1(b.inbound_addr()).await {
        Ok((mut conn, _)) => send(&mut conn, "/before").await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a client of an untrusted CA is refused");

    // Trust both CAs (bundle replaced by rename, as a Secret update does).
    let bundle = format!("{}{}", pki.ca.cert_pem, other_ca.cert_pem);
    let tmp = pki.dir.join("ca.pem.tmp");
    std::fs::write(&tmp, bundle).unwrap();
    std::fs::rename(&tmp, pki.ca_path()).unwrap();
    let status = eventually(
        Duration::from_secs(5),
        "the new CA to be trusted by new connections",
        || async {
            let (mut conn, _) = client.http1(b.inbound_addr()).await.ok()?;
            send(&mut conn, "/after").await.ok().map(|r| r.status())
        },
    )
    .await;
    assert_eq!(status, 200);
}

/// A reload that switches a permissive listener to strict also refuses further requests on
/// plaintext connections opened before it.
#[tokio::test]
async fn switching_to_strict_by_reload_refuses_open_plaintext_connections() {
    let pki = Pki::new("to-strict");
    let app = Upstream::echo().await;
    let path = pki.dir.join("inbound.yaml");
    let yaml = |mode: &str| {
        format!(
            "version: 1\n{}{LISTENERS}inbound: {{ listen: 127.0.0.1:0, app: \"{}\", mode: {mode} }}\n",
            pki.sidecar_yaml("writing-analysis"),
            app.addr
        )
    };
    std::fs::write(&path, yaml("permissive")).unwrap();
    let b = TestProxy::start_file(&path);
    let tcp = tokio::net::TcpStream::connect(b.inbound_addr())
        .await
        .unwrap();
    let (mut conn, driver) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(driver);
    let get = |path: &str| {
        http::Request::get(path)
            .header("host", "app")
            .body(crate::support::body::empty())
            .unwrap()
    };
    assert_eq!(
        conn.send_request(get("/before")).await.unwrap().status(),
        200
    );

    std::fs::write(&path, yaml("strict")).unwrap();
    let r = b.client.post(&b.admin_url("/reload"), "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let after = conn.send_request(get("/after")).await.unwrap();
    assert_eq!(after.status(), 403);
    assert_eq!(
        app.requests().len(),
        1,
        "nothing after the switch reached the app"
    );
}

/// Draining an inbound sidecar with requests in flight on its HTTP/2 connection (more of them
/// than the early-poll threshold): every one is answered, then the connection is closed
/// gracefully and the sidecar stops well before its drain timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_drain_finishes_the_streams_in_flight_on_its_h2_connection() {
    let pki = Pki::new("h2-drain");
    let (gate, app) = held_app("done").await;
    let b = TestProxy::start(format!(
        "{}drain_timeout: 30s\n",
        inbound_yaml(&pki, "writing-analysis", app.addr, "strict", "")
    ));
    let a = gateway_to(&pki, &b);
    let mut calls = Vec::new();
    for i in 0..6 {
        let a = a.clone();
        calls.push(tokio::spawn(async move {
            a.get("svc", &format!("/call/{i}")).await
        }));
    }
    app.wait_requests(6).await;
    assert_eq!(inbound_connections(&b).await, Some(1.0));

    b.drain();
    gate.send_replace(true);
    for c in calls {
        let r = bounded("a drained stream to be answered", c).await.unwrap();
        assert_eq!((r.status.as_u16(), r.text()), (200, "done".to_owned()));
    }
    // The connection closes once its streams are done, so the drain ends long before
    // drain_timeout (30 s).
    b.wait(Duration::from_secs(5)).await;
}

/// Large bodies both ways over the HTTP/2 hop: a streamed 1.5 MiB request body (no length,
/// sent in chunks while the sidecars forward it) and a 3 MiB response, both beyond the
/// initial flow-control windows, arrive byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_cross_the_h2_hop_intact_both_ways() {
    use http_body_util::BodyExt;
    let pki = Pki::new("h2-bodies");
    let app = Upstream::start("doubler", |req, _shared| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let mut twice = body.to_vec();
        twice.extend_from_slice(&body);
        http::Response::new(crate::support::body::full(twice))
    })
    .await;
    let b = inbound_sidecar(&pki, "writing-analysis", app.addr, "strict", "");
    let a = outbound_sidecar(
        &pki,
        "gateway",
        b.inbound_addr(),
        &Pki::id("writing-analysis"),
    );
    let sent: Vec<u8> = (0..1_536 * 1024u32).map(|i| (i % 251) as u8).collect();
    let (tx, body) = crate::support::body::channel();
    let req = a
        .request("svc", "/upload")
        .method("POST")
        .header("content-type", "application/octet-stream")
        .body(body)
        .unwrap();
    let chunks = sent.clone();
    tokio::spawn(async move {
        for c in chunks.chunks(64 * 1024) {
            if tx.send(bytes::Bytes::copy_from_slice(c)).is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
    });
    let rsp = bounded("the upload", a.client.send(req)).await.unwrap();
    assert_eq!(rsp.status(), 200);
    let got = bounded("the 3 MiB answer", rsp.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(got.len(), 2 * sent.len());
    assert!(got[..sent.len()] == sent[..] && got[sent.len()..] == sent[..]);
}

/// The pooled HTTP/2 connection dies with its server (the inbound sidecar restarts on the
/// same port): the next request goes out on a new connection and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_pooled_h2_connection_is_replaced_transparently() {
    let pki = Pki::new("h2-restart");
    let app = Upstream::echo().await;
    let yaml = |listen: &str| {
        format!(
            "version: 1\n{}{LISTENERS}inbound: {{ listen: \"{listen}\", app: \"{}\", mode: strict }}\n",
            pki.sidecar_yaml("writing-analysis"),
            app.addr
        )
    };
    let b = TestProxy::start(yaml("127.0.0.1:0"));
    let addr = b.inbound_addr();
    let a = outbound_sidecar(&pki, "gateway", addr, &Pki::id("writing-analysis"));
    assert_eq!(a.get("svc", "/first").await.status, 200);

    b.stop(Duration::from_secs(5)).await;
    let restarted = yaml(&addr.to_string());
    let _b = eventually(
        Duration::from_secs(5),
        "the inbound sidecar to listen again on its port",
        || {
            let started = TestProxy::try_start(restarted.clone()).ok();
            async move { started }
        },
    )
    .await;
    let r = a.get("svc", "/second").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(app.requests().len(), 2);
}

/// Certificates from an intermediate CA (SPIRE with an upstream authority, cert-manager with a
/// chained issuer): each certificate file holds the leaf and the intermediate, the trust bundle
/// only the root. Both directions verify the chain through the intermediate; a peer that sends
/// its leaf alone cannot be verified, and a sidecar whose own file lacks the intermediate is
/// a config error.
#[tokio::test]
async fn certificates_from_an_intermediate_ca_verify_through_the_chain() {
    let pki = Pki::new("intermediate");
    let issuing = pki.ca.intermediate("outrider test intermediate").unwrap();
    let mut yaml = std::collections::HashMap::new();
    for name in ["writing-analysis", "gateway"] {
        let issued = issuing.issue(&[Pki::id(name)], Validity::days(1)).unwrap();
        assert_eq!(issued.cert_pem.matches("BEGIN CERTIFICATE").count(), 2);
        let (cert, key) = pki.write(name, &issued);
        yaml.insert(name, pki.sidecar_yaml_files(name, &cert, &key));
    }
    let (b, app) = one_verified_hop(&yaml["writing-analysis"], &yaml["gateway"], "/chained").await;

    // The same certificate without its intermediate: the inbound cannot reach the root.
    let full = issuing
        .issue(&[Pki::id("gateway")], Validity::days(1))
        .unwrap();
    let leaf_only = outrider::certs::Issued {
        cert_pem: full.cert_pem[..full.cert_pem.find("-----END CERTIFICATE-----").unwrap()]
            .to_owned()
            + "-----END CERTIFICATE-----\n",
        key_pem: full.key_pem.clone(),
    };
    let server = Pki::id("writing-analysis");
    let client = TlsClient::new(&pki.ca.cert_pem, &server, Some(&leaf_only), false);
    let refused = match client.http1(b.inbound_addr()).await {
        Err(_) => true,
        Ok((mut sender, _)) => send(&mut sender, "/leaf-only").await.is_err(),
    };
    assert!(
        refused,
        "a leaf without its intermediate must not get through"
    );
    b.wait_metric(
        "outrider_tls_handshake_errors_total",
        &handshake_errors("unknown-ca"),
        1.0,
    )
    .await;
    let client = TlsClient::new(&pki.ca.cert_pem, &server, Some(&full), false);
    let (mut sender, _) = client.http1(b.inbound_addr()).await.unwrap();
    assert_eq!(send(&mut sender, "/full").await.unwrap().status(), 200);
    assert_eq!(
        app.requests().len(),
        2,
        "only the chained requests got through"
    );

    // Own certificate file without the intermediate: refused at load, with the reason.
    let (cert, key) = pki.write("leaf-only", &leaf_only);
    let config = strict_inbound_with(&pki.sidecar_yaml_files("gateway", &cert, &key), app.addr);
    let errors = match outrider::config::load_str(&config, "leaf-only.yaml") {
        Ok(_) => panic!("a certificate that does not chain to the CA bundle is a config error"),
        Err(errors) => errors.to_string(),
    };
    assert!(
        errors.contains("does not verify against the CA bundle"),
        "{errors}"
    );
}

/// The key files cert-manager and SPIRE write: an RSA key in PKCS#1 (cert-manager's default:
/// RSA 2048, `encoding: PKCS1`) on one side, an ECDSA key in SEC1 on the other. Both load,
/// and the hop between them verifies both ways.
#[tokio::test]
async fn rsa_pkcs1_and_ec_sec1_keys_work_across_the_hop() {
    let pki = Pki::new("key-formats");
    let pkcs8 = pki.dir.join("rsa-pkcs8.key");
    std::fs::write(
        &pkcs8,
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ]),
    )
    .unwrap();
    let rsa = pki
        .ca
        .issue_for_key(
            &[Pki::id("writing-analysis")],
            Validity::days(1),
            &std::fs::read_to_string(&pkcs8).unwrap(),
        )
        .unwrap();
    let rsa = outrider::certs::Issued {
        key_pem: openssl(&["rsa", "-in", pkcs8.to_str().unwrap(), "-traditional"]),
        ..rsa
    };
    assert!(rsa.key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let (server_cert, server_key) = pki.write("writing-analysis", &rsa);

    let ec = pki
        .ca
        .issue(&[Pki::id("gateway")], Validity::days(1))
        .unwrap();
    let ec_pkcs8 = pki.dir.join("ec-pkcs8.key");
    std::fs::write(&ec_pkcs8, &ec.key_pem).unwrap();
    let ec = outrider::certs::Issued {
        key_pem: openssl(&["ec", "-in", ec_pkcs8.to_str().unwrap()]),
        ..ec
    };
    assert!(ec.key_pem.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let (client_cert, client_key) = pki.write("gateway", &ec);

    one_verified_hop(
        &pki.sidecar_yaml_files("writing-analysis", &server_cert, &server_key),
        &pki.sidecar_yaml_files("gateway", &client_cert, &client_key),
        "/formats",
    )
    .await;
}
