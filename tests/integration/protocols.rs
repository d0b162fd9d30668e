//! Protocols and connection reuse: an h2c client on the outbound listener, an h2c upstream
//! (`protocol: http2`), and keep-alive pooling of upstream connections.

use http::{Request, Version};

use crate::support::body;
use crate::support::client::{self, h2c_send};
use crate::support::{Cfg, Upstream};

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
