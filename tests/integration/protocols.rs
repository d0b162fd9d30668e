//! Protocols and connection reuse: an h2c client on the outbound listener, an h2c upstream
//! (`protocol: http2`), and keep-alive pooling of upstream connections.

use http::{Request, Version};

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::support::client::{self, h2c_send};
use crate::support::tap::{self, Tap};
use crate::support::{body, bounded, Cfg, Upstream};

#[tokio::test]
async fn h2c_client_through_the_outbound_listener() {
    let up = Upstream::named("b1").await;
    let proxy = Cfg::single(up.addr).start();

    for path in ["/one", "/two"] {
        let req = Request::get(format!("http://svc{path}"))
            .body(body::empty())
            .unwrap();
        let resp = client::read(
            h2c_send(proxy.outbound_addr(), req)
                .await
                .expect("h2c request"),
        )
        .await
        .unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.version, Version::HTTP_2);
        assert_eq!(resp.upstream(), "b1", "routed by :authority");
    }
    let seen = up.wait_requests(2).await;
    assert_eq!(seen[0].uri.path(), "/one");
    assert_eq!(
        seen[0].version,
        Version::HTTP_11,
        "backend is protocol: http1"
    );
}

#[tokio::test]
async fn http2_upstream_with_protocol_http2() {
    let up = Upstream::named("b1").await;
    let proxy = Cfg::new()
        .backend_with("b1", up.addr, "protocol: http2")
        .host_route("r1", "svc", "b1", "")
        .start();

    let resp = proxy.get("svc", "/h2").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = up.last_request().await;
    assert_eq!(
        seen.version,
        Version::HTTP_2,
        "h2c prior knowledge to the upstream"
    );
    assert_eq!(seen.uri.path(), "/h2");

    // Several requests share one HTTP/2 connection.
    for _ in 0..5 {
        assert_eq!(proxy.get("svc", "/again").await.status, 200);
    }
    assert_eq!(
        up.accepts(),
        1,
        "HTTP/2 requests must be multiplexed on one connection"
    );
}

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let up = Upstream::named("b1").await;
    let proxy = Cfg::single(up.addr).start();

    for i in 0..20 {
        let resp = proxy.get("svc", &format!("/k/{i}")).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    assert_eq!(up.requests().len(), 20);
    assert_eq!(
        up.accepts(),
        1,
        "20 sequential requests should use 1 pooled upstream connection"
    );
}

/// Trailers cross an HTTP/2 client → outrider → HTTP/2 upstream path both ways (gRPC-style):
/// request trailers through the pool's body pump, response trailers through its stream
/// reader.
#[tokio::test]
async fn trailers_cross_an_http2_path_both_ways() {
    use http_body_util::{BodyExt, StreamBody};
    fn with_trailers(
        data: &'static str,
        name: &'static str,
        value: &'static str,
    ) -> crate::support::body::Body {
        let mut trailers = http::HeaderMap::new();
        trailers.insert(name, value.parse().unwrap());
        let frames: Vec<Result<http_body::Frame<bytes::Bytes>, crate::support::body::BoxError>> = vec![
            Ok(http_body::Frame::data(bytes::Bytes::from_static(
                data.as_bytes(),
            ))),
            Ok(http_body::Frame::trailers(trailers)),
        ];
        StreamBody::new(futures_util::stream::iter(frames)).boxed()
    }
    let up = Upstream::start("trailers", |req, _shared| async move {
        let collected = req.into_body().collect().await.unwrap();
        let seen = collected
            .trailers()
            .and_then(|t| t.get("x-checksum"))
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let mut rsp = http::Response::new(with_trailers("answer", "grpc-status", "0"));
        rsp.headers_mut()
            .insert("x-seen-trailer", seen.parse().unwrap());
        rsp
    })
    .await;
    let proxy = Cfg::new()
        .backend_with("b1", up.addr, "protocol: http2")
        .host_route("r1", "svc", "b1", "")
        .start();
    // HTTP/2 carries the authority in the URI (`:authority`).
    let req = http::Request::post("http://svc/rpc")
        .header("te", "trailers")
        .body(with_trailers("question", "x-checksum", "abc123"))
        .unwrap();
    let rsp = crate::support::client::h2c_send(proxy.outbound_addr(), req)
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    assert_eq!(
        rsp.headers()["x-seen-trailer"],
        "abc123",
        "request trailers arrived"
    );
    let body = crate::support::bounded("the answer", rsp.into_body().collect())
        .await
        .unwrap();
    assert_eq!(
        body.trailers()
            .and_then(|t| t.get("grpc-status"))
            .map(|v| v.to_str().unwrap()),
        Some("0"),
        "response trailers arrived"
    );
    assert_eq!(body.to_bytes(), "answer");
}

/// Fields of `block` whose name went out as a literal string.
fn literal_names(block: &[u8]) -> usize {
    tap::fields(block).iter().filter(|f| f.literal_name).count()
}

/// Fields of `block` sent never-indexed with their name from a table.
fn never_indexed_by_index(block: &[u8]) -> usize {
    tap::fields(block)
        .iter()
        .filter(|f| f.repr == tap::Repr::NeverIndexed && !f.literal_name)
        .count()
}

#[tokio::test]
async fn unique_ids_to_an_http2_upstream_name_their_fields_by_index_after_the_first_request() {
    let up = Upstream::named("b1").await;
    let tap = Tap::start(up.addr).await;
    let proxy = Cfg::new()
        .backend_with("b1", tap.addr, "protocol: http2")
        .host_route("r1", "svc", "b1", "")
        .start();
    for _ in 0..3 {
        assert_eq!(proxy.get("svc", "/ids").await.status, 200);
    }
    let seen = up.wait_requests(3).await;
    let ids: std::collections::BTreeSet<_> =
        seen.iter().map(|r| r.header("x-request-id")).collect();
    assert_eq!(ids.len(), 3, "one id per request: {ids:?}");

    let blocks = tap::header_blocks(&tap.to_server.lock().unwrap());
    assert_eq!(blocks.len(), 3, "one HEADERS frame per request");
    // The first request puts `x-request-id` and `traceparent` into HPACK's table...
    let first = tap::fields(&blocks[0]);
    let seeded = first
        .iter()
        .filter(|f| f.repr == tap::Repr::Incremental && f.literal_name)
        .count();
    assert!(seeded >= 2, "ids seeded by the first request: {first:?}");
    // ...so the later ones send their (never-indexed) values under a table name.
    for block in &blocks[1..] {
        assert_eq!(literal_names(block), 0, "{:?}", tap::fields(block));
        assert_eq!(never_indexed_by_index(block), 2, "{:?}", tap::fields(block));
    }
}

#[tokio::test]
async fn the_inbound_echoes_request_ids_on_http2_by_index_after_the_first_response() {
    let app = Upstream::named("app").await;
    let proxy = Cfg::single(app.addr).inbound(app.addr, 16).start();
    let tap = Tap::start(proxy.inbound_addr()).await;
    let stream = TcpStream::connect(tap.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c handshake");
    tokio::spawn(conn);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let req = Request::get(format!("http://{}/ids", proxy.inbound_addr()))
            .body(body::empty())
            .unwrap();
        let rsp = bounded("h2c response", sender.send_request(req))
            .await
            .expect("response");
        assert_eq!(rsp.status(), 200);
        ids.push(rsp.headers().get("x-request-id").cloned().expect("echoed"));
    }
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "{ids:?}");

    let blocks = tap::header_blocks(&tap.to_client.lock().unwrap());
    assert_eq!(blocks.len(), 3, "one HEADERS frame per response");
    assert!(
        literal_names(&blocks[0]) >= 1,
        "{:?}",
        tap::fields(&blocks[0])
    );
    for block in &blocks[1..] {
        assert_eq!(literal_names(block), 0, "{:?}", tap::fields(block));
        assert_eq!(never_indexed_by_index(block), 1, "{:?}", tap::fields(block));
    }
}
