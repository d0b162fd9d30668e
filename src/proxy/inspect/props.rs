//! Property tests (proptest): inspection never alters the bytes it hands on for forwarding.
//!
//! Each case sends one request through a real hyper connection (HTTP/1.1 or HTTP/2 over an
//! in-memory duplex pipe): the client's body is an `http_body_util::StreamBody` over generated
//! frames (arbitrary chunking, empty chunks, sometimes trailers, sometimes a `Content-Length`),
//! and the server side runs the proxy's own [`inspect`] on the `Request<Incoming>` hyper gives
//! it, then drains the `UpstreamBody` it returns, exactly what the forwarder would send
//! upstream. No production code is copied or stubbed, and `inspect` needed no test seam.
//! Chunk boundaries reach `inspect` as generated; empty chunks reach it only as they can in
//! production (see [`harness_delivers_chunks_as_sent`]).
//!
//! Bodies: arbitrary bytes, generated JSON-RPC messages and batches (arbitrary methods, tool
//! names, ids, unicode, escapes, whitespace, nested params; see `mcp::classify::tests::props`)
//! and broken variants of them; `mcp.max_inspect_body` is drawn around the body's length.
//! Run with `cargo test --lib props`; `PROPTEST_CASES=N` for more than the default 256 cases.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::inspect;
use crate::mcp::classify::tests::props::{arb_body, arb_payload, config};
use crate::mcp::{self, Classification};
use crate::proxy::body::UpstreamBody;
use crate::proxy::error::ProxyError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    H1,
    H2,
}

/// How the client delivers the body.
#[derive(Debug, Clone)]
struct Delivery {
    proto: Proto,
    /// Concatenated, the body; any of them may be empty.
    chunks: Vec<Bytes>,
    trailers: Option<HeaderMap>,
    /// Send `Content-Length` (hyper then knows the exact size before reading).
    content_length: bool,
}

/// Which `UpstreamBody` inspection handed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// `Stream`: the body was not read.
    Unread,
    /// `Bytes`: read in full and classified.
    Buffered,
    /// `Prefixed`: read past the limit, forwarded as what was read and then the rest.
    Prefixed,
}

/// What happened to one request, as seen from the forwarding side.
#[derive(Debug, PartialEq)]
enum Outcome {
    Forwarded {
        path: Path,
        mcp: Option<Classification>,
        data: Bytes,
        trailers: Option<HeaderMap>,
    },
    /// `inspect` refused the request (the `x-outrider-error` reason).
    Refused(&'static str),
}

/// Sends one request through a real hyper connection (client and server over an in-memory
/// pipe), its body `delivery`'s frames, and returns what `handle` made of the
/// `Request<Incoming>` the server side received.
fn exchange<T, F, Fut>(req: http::request::Builder, delivery: &Delivery, handle: F) -> T
where
    T: Send + 'static,
    F: FnOnce(Request<Incoming>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send,
{
    let frames = delivery
        .chunks
        .iter()
        .cloned()
        .map(Frame::data)
        .chain(delivery.trailers.clone().map(Frame::trailers))
        .map(Ok::<_, Infallible>)
        .collect::<Vec<_>>();
    let mut req = req;
    if delivery.content_length {
        let len: usize = delivery.chunks.iter().map(Bytes::len).sum();
        req = req.header(header::CONTENT_LENGTH, len);
    }
    if delivery.proto == Proto::H1 && delivery.trailers.is_some() {
        // HTTP/1.1 sends only the trailer fields the request announces.
        req = req.header(header::TRAILER, "x-digest");
    }
    let req = req
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client_io, server_io) = tokio::io::duplex(16 * 1024);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let slot = Arc::new(Mutex::new(Some((handle, tx))));
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let slot = Arc::clone(&slot);
            async move {
                let (handle, tx) = slot.lock().unwrap().take().expect("one request");
                let _ = tx.send(handle(req).await);
                Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
            }
        });
        let server_io = TokioIo::new(server_io);
        let client_io = TokioIo::new(client_io);
        // A refused request is answered without reading its body: the client's result is not
        // the point, only what the server side saw.
        match delivery.proto {
            Proto::H1 => {
                let server = hyper::server::conn::http1::Builder::new();
                tokio::spawn(server.serve_connection(server_io, service));
                let (mut send, conn) = hyper::client::conn::http1::handshake(client_io)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                tokio::spawn(async move { send.send_request(req).await });
            }
            Proto::H2 => {
                let server = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                tokio::spawn(server.serve_connection(server_io, service));
                let (mut send, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), client_io)
                        .await
                        .unwrap();
                tokio::spawn(conn);
                tokio::spawn(async move { send.send_request(req).await });
            }
        }
        // A hang (inspection waiting for bytes that never come) fails instead of stalling CI.
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .expect("the server side answered within 10s")
            .expect("the server side ran")
    })
}

/// Runs the proxy's [`inspect`] on the request as received and drains the body it hands on.
fn run(
    method: &Method,
    content_type: Option<&'static str>,
    delivery: &Delivery,
    limit: usize,
    needs_body: bool,
) -> Outcome {
    let mut req = Request::builder()
        .method(method.clone())
        .uri("http://mcp.test/mcp");
    if let Some(ct) = content_type {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    exchange(req, delivery, move |req| async move {
        match inspect(req).finish(limit, needs_body).await {
            Ok((req, mcp)) => {
                let path = match req.body() {
                    UpstreamBody::Stream(_) => Path::Unread,
                    UpstreamBody::Bytes(_) => Path::Buffered,
                    UpstreamBody::Prefixed { .. } => Path::Prefixed,
                };
                let collected = req.into_body().collect().await.expect("forwarded body");
                let trailers = collected.trailers().cloned();
                Outcome::Forwarded {
                    path,
                    mcp,
                    data: collected.to_bytes(),
                    trailers,
                }
            }
            Err(e) => Outcome::Refused(e.reason()),
        }
    })
}

/// What inspection must do, from the whole body: forward it unchanged (classified when it was
/// read in full), or refuse it. Never anything that depends on how the body was chunked.
fn expected(
    method: &Method,
    content_type: Option<&'static str>,
    body: &Bytes,
    delivery: &Delivery,
    limit: usize,
    needs_body: bool,
) -> Outcome {
    let ct = content_type.map(HeaderValue::from_static);
    let json_post = method == Method::POST && ct.as_ref().is_some_and(mcp::is_json_content_type);
    let path = match () {
        () if !json_post => Path::Unread,
        () if body.len() <= limit => Path::Buffered,
        () if needs_body => return Outcome::Refused(ProxyError::BodyTooLarge { limit }.reason()),
        () if delivery.content_length => Path::Unread,
        () => Path::Prefixed,
    };
    let mcp = match path {
        Path::Buffered => match mcp::classify(ct.as_ref(), body) {
            Ok(c) => c,
            Err(e) => {
                let e = ProxyError::ClientBody { source: e.into() };
                return Outcome::Refused(e.reason());
            }
        },
        Path::Unread | Path::Prefixed => None,
    };
    // A buffered body is forwarded without its trailers (nothing MCP uses); a streamed one
    // keeps them. HTTP/1.1 has trailers only with chunked framing (no Content-Length).
    let trailers_sent = delivery.proto == Proto::H2 || !delivery.content_length;
    let trailers = delivery
        .trailers
        .clone()
        .filter(|_| path != Path::Buffered && trailers_sent);
    Outcome::Forwarded {
        path,
        mcp,
        data: body.clone(),
        trailers,
    }
}

/// Splits `body` at the given points (sorted; repeats and the ends make empty chunks).
fn split(body: &Bytes, cuts: &[Index]) -> Vec<Bytes> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
    at.sort_unstable();
    let mut chunks = Vec::with_capacity(at.len() + 1);
    let mut start = 0;
    for end in at {
        chunks.push(body.slice(start..end));
        start = end;
    }
    chunks.push(body.slice(start..));
    chunks
}

fn arb_body_bytes() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        2 => arb_body().prop_map(|b| Bytes::from(b.text)),
        2 => arb_payload().prop_map(Bytes::from),
    ]
}

/// A delivery: protocol, where to cut the body (as positions in its length, so the
/// generated values shrink independently of the body), trailers, `Content-Length`.
#[derive(Debug, Clone)]
struct DeliverySpec {
    proto: Proto,
    cuts: Vec<Index>,
    digest: Option<String>,
    content_length: bool,
}

impl DeliverySpec {
    fn of(&self, body: &Bytes) -> Delivery {
        Delivery {
            proto: self.proto,
            chunks: split(body, &self.cuts),
            trailers: self.digest.as_deref().map(|d| {
                let mut t = HeaderMap::new();
                t.insert("x-digest", HeaderValue::from_str(d).unwrap());
                t
            }),
            content_length: self.content_length,
        }
    }
}

fn arb_delivery() -> impl Strategy<Value = DeliverySpec> {
    (
        prop_oneof![Just(Proto::H1), Just(Proto::H2)],
        vec(any::<Index>(), 0..12),
        prop::option::weighted(0.3, "[a-z0-9]{0,16}"),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(proto, cuts, digest, content_length)| DeliverySpec {
            proto,
            cuts,
            digest,
            content_length,
        })
}

/// `mcp.max_inspect_body` relative to the body's length.
#[derive(Debug, Clone)]
enum LimitSpec {
    /// The length plus this (-3..=3): at, just under, just over the bound.
    Near(i64),
    /// Anywhere from 1 byte to twice the length.
    Anywhere(Index),
}

impl LimitSpec {
    /// At least 1 byte, as the configuration requires.
    fn of(&self, len: usize) -> usize {
        match self {
            LimitSpec::Near(d) => (len as i64 + d).max(1) as usize,
            LimitSpec::Anywhere(i) => 1 + i.index(2 * len + 1),
        }
    }
}

fn arb_limit() -> impl Strategy<Value = LimitSpec> {
    prop_oneof![
        3 => (-3i64..=3).prop_map(LimitSpec::Near),
        1 => any::<Index>().prop_map(LimitSpec::Anywhere),
    ]
}

fn arb_request() -> impl Strategy<Value = (Method, Option<&'static str>)> {
    prop_oneof![
        8 => Just((Method::POST, Some("application/json"))),
        1 => Just((Method::POST, Some("application/json; charset=utf-8"))),
        1 => Just((Method::POST, Some("text/plain"))),
        1 => Just((Method::POST, None)),
        1 => Just((Method::PUT, Some("application/json"))),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Whatever the body and its chunking, inspection hands on exactly the client's bytes, in
    /// order (classified, not JSON-RPC, or over the limit), or refuses the request; which of
    /// these, and the classification, depend only on the whole body, never on the chunking.
    #[test]
    fn forwarded_bytes_are_the_received_bytes(
        body in arb_body_bytes(),
        first in arb_delivery(),
        second in arb_delivery(),
        limit in arb_limit(),
        (method, content_type) in arb_request(),
        needs_body in any::<bool>(),
    ) {
        let (first, second, limit) = (first.of(&body), second.of(&body), limit.of(body.len()));
        let want = expected(&method, content_type, &body, &first, limit, needs_body);
        let got = run(&method, content_type, &first, limit, needs_body);
        prop_assert_eq!(&got, &want);
        // The same body chunked another way (and maybe over the other protocol).
        let again = run(&method, content_type, &second, limit, needs_body);
        let want_again = expected(&method, content_type, &body, &second, limit, needs_body);
        prop_assert_eq!(&again, &want_again);
        if let (
            Outcome::Forwarded { mcp: a, .. },
            Outcome::Forwarded { mcp: b, .. },
        ) = (&got, &again)
        {
            prop_assert_eq!(a, b);
        }
    }
}

/// The harness hands the generated chunking to the server side as generated, so the property
/// above really varies the frames `inspect` reads: both protocols keep chunk boundaries.
/// Empty chunks do not arrive (HTTP/1.1 does not send them; h2 drops empty DATA frames on
/// receipt), except HTTP/2's final empty `END_STREAM` DATA frame, which `Incoming` yields:
/// those are all the empty frames `inspect` can meet in production.
#[test]
fn harness_delivers_chunks_as_sent() {
    let chunks: Vec<Bytes> = ["", "{\"jsonrpc\"", "", ":", "\"2.0\"}", ""]
        .into_iter()
        .map(Bytes::from)
        .collect();
    for proto in [Proto::H1, Proto::H2] {
        let delivery = Delivery {
            proto,
            chunks: chunks.clone(),
            trailers: None,
            content_length: false,
        };
        let seen = exchange(
            Request::post("http://mcp.test/mcp"),
            &delivery,
            |req| async move {
                let mut body = req.into_body();
                let mut seen = Vec::new();
                while let Some(frame) = body.frame().await {
                    if let Ok(data) = frame.unwrap().into_data() {
                        seen.push(data);
                    }
                }
                seen
            },
        );
        let mut sent: Vec<Bytes> = chunks.iter().filter(|c| !c.is_empty()).cloned().collect();
        if proto == Proto::H2 {
            sent.push(Bytes::new());
        }
        assert_eq!(seen, sent, "{proto:?}");
    }
}
