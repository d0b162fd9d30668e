//! HTTP clients for tests, every call bounded by [`super::TIMEOUT`]:
//! * [`Client`]: pooled HTTP/1.1 (hyper-util legacy client) for ordinary requests; an explicit
//!   `Host` header is kept, so routing by host works against 127.0.0.1.
//! * [`h1_send`]: one request on a fresh HTTP/1.1 connection, URI written exactly as given
//!   (absolute-form proxy requests, streaming request bodies).
//! * [`h2c_send`]: one request over HTTP/2 prior knowledge (h2c).
//! * [`h2_client`] + [`h2_get`]: the `h2` crate's client over h2c, its connection task kept to
//!   see how the server ended it.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client as Legacy};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::body::{self, Body, BoxError};
use super::bounded;

/// A fully read response.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `x-outrider-error` reason, if the proxy generated this response.
    pub fn error_reason(&self) -> Option<&str> {
        self.header("x-outrider-error")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// For responses of the echo upstream: which upstream answered.
    pub fn upstream(&self) -> &str {
        self.header("x-upstream").unwrap_or("<none>")
    }
}

/// Read a response body completely (bounded); an error while reading is returned.
pub async fn read(resp: Response<Incoming>) -> Result<Resp, BoxError> {
    let (parts, incoming) = resp.into_parts();
    let body = bounded("response body", incoming.collect())
        .await?
        .to_bytes();
    Ok(Resp {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
    })
}

/// Pooled HTTP/1.1 client.
#[derive(Clone)]
pub struct Client {
    inner: Legacy<HttpConnector, Body>,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    pub fn new() -> Client {
        Client {
            inner: Legacy::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Send and return the response head; the body is left to the caller.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, BoxError> {
        let what = format!("response to {} {}", req.method(), req.uri());
        Ok(bounded(&what, self.inner.request(req)).await?)
    }

    /// Send and read the whole response; panics on a transport error.
    pub async fn request(&self, req: Request<Body>) -> Resp {
        let what = format!("{} {}", req.method(), req.uri());
        let resp = self
            .send(req)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        read(resp)
            .await
            .unwrap_or_else(|e| panic!("{what}: reading body: {e:?}"))
    }

    pub async fn get(&self, url: &str) -> Resp {
        self.request(Request::get(url).body(body::empty()).unwrap())
            .await
    }

    pub async fn post(&self, url: &str, body: &str) -> Resp {
        self.request(
            Request::post(url)
                .body(body::full(body.to_string()))
                .unwrap(),
        )
        .await
    }

    /// GET `path` at `addr` with an explicit `Host` header.
    pub async fn get_host(&self, addr: SocketAddr, host: &str, path: &str) -> Resp {
        self.request(request(addr, host, path).body(body::empty()).unwrap())
            .await
    }
}

/// A request builder for `GET http://ADDR/PATH` with `Host: HOST`; change the method or add
/// headers before `.body(..)`.
pub fn request(addr: SocketAddr, host: &str, path: &str) -> http::request::Builder {
    Request::get(format!("http://{addr}{path}")).header("host", host)
}

/// Send one request on a fresh HTTP/1.1 connection to `addr`. The URI is written as given
/// (origin-form `/p` or absolute-form `http://svc/p`). Returns the response head.
pub async fn h1_send(addr: SocketAddr, req: Request<Body>) -> Result<Response<Incoming>, BoxError> {
    let stream = bounded("connect", TcpStream::connect(addr)).await?;
    let (mut sender, conn) = bounded(
        "h1 handshake",
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await?;
    tokio::spawn(conn.with_upgrades());
    Ok(bounded("h1 response", sender.send_request(req)).await?)
}

/// Send one request over h2c (prior knowledge) to `addr`. The URI must be absolute
/// (`http://svc/path`): its authority becomes `:authority`.
pub async fn h2c_send(
    addr: SocketAddr,
    req: Request<Body>,
) -> Result<Response<Incoming>, BoxError> {
    let stream = bounded("connect", TcpStream::connect(addr)).await?;
    let (mut sender, conn) = bounded(
        "h2 handshake",
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)),
    )
    .await?;
    tokio::spawn(conn);
    Ok(bounded("h2 response", sender.send_request(req)).await?)
}

/// Read body frames until `pred(all bytes so far)` holds; panics with `what` after [`super::TIMEOUT`].
/// Returns everything read. Used to prove a streamed response arrived before some step.
pub async fn read_until(body: &mut Incoming, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let mut seen = String::new();
    bounded(what, async {
        while !pred(&seen) {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        seen.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                Some(Err(e)) => panic!("{what}: body error after {seen:?}: {e}"),
                None => panic!("{what}: body ended after {seen:?}"),
            }
        }
    })
    .await;
    seen
}

/// How a streamed body finished.
#[derive(Debug)]
pub enum End {
    /// Clean end of the body.
    Eof(String),
    /// The body failed (reset, truncated chunked encoding, ...).
    Error(String, String),
}

/// Read the rest of a body within `limit`, reporting whether it ended cleanly or with an
/// error. Panics if it does neither within `limit`.
pub async fn read_to_end(body: &mut Incoming, limit: std::time::Duration) -> End {
    let mut seen = String::new();
    let res = tokio::time::timeout(limit, async {
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        seen.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                Some(Err(e)) => return Some(e.to_string()),
                None => return None,
            }
        }
    })
    .await;
    match res {
        Ok(None) => End::Eof(seen),
        Ok(Some(err)) => End::Error(seen, err),
        Err(_) => panic!("body neither ended nor failed within {limit:?}; read so far: {seen:?}"),
    }
}

/// An `h2` crate client over h2c prior knowledge; its connection task is returned to see how
/// the connection ended.
pub async fn h2_client(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = super::raw::connect(addr).await;
    let (send, conn) = bounded("h2 handshake", h2::client::handshake(tcp))
        .await
        .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let send = bounded("h2 ready", send.ready())
        .await
        .expect("h2 connection ready");
    (send, conn)
}

/// Sends a bodiless request and reads the whole answer: `Ok((status, body))`, or the
/// stream's (or connection's) error.
pub async fn h2_get(
    send: &mut h2::client::SendRequest<Bytes>,
    req: Request<()>,
) -> Result<(u16, Bytes), h2::Error> {
    let (resp, _) = send.send_request(req, true)?;
    let resp = bounded("h2 response", resp).await?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut data = Vec::new();
    while let Some(chunk) = bounded("h2 response body", body.data()).await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    Ok((status, Bytes::from(data)))
}

/// A bodiless GET of `http://{authority}{path}` for [`h2_get`].
pub fn get(authority: &str, path: &str) -> Request<()> {
    Request::get(format!("http://{authority}{path}"))
        .body(())
        .unwrap()
}
