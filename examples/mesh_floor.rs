//! `mesh_floor`: the two-hop mesh path with outrider's transport and nothing else — the floor
//! under what any sidecar built on the same crates (tokio, hyper, h2, rustls) can cost.
//!
//! A calibration program for `scripts/bench-mesh.sh` (candidate `floor`), not a proxy: it has
//! no routing, no policies, no retries, no telemetry, no request ids and no access log, and
//! it exits when its HTTP/2 connection to the peer ends. What it shares with outrider is the
//! wire: a current-thread runtime, the same rustls configurations (`tls::Material`: SPIFFE
//! peer verification, ALPN `h2`), `h2`'s client with the same settings and one multiplexed
//! connection (`proxy::pool::h2_client`), hyper's servers, a LIFO pool of HTTP/1.1
//! connections to the app, hop-by-hop stripping (`proxy::headers`), and the early connection
//! polls of `proxy::driver`. Whatever outrider costs beyond this program is its
//! own request path; what this costs against haproxy is the stack's.
//!
//! ```text
//! mesh_floor outbound --listen 127.0.0.1:28400 --to 127.0.0.1:28401 \
//!     --ca ca.pem --cert client.pem --key client.key \
//!     --identity spiffe://bench.local/sa/client --peer spiffe://bench.local/sa/server
//! mesh_floor inbound --listen 127.0.0.1:28401 --to 127.0.0.1:28080 \
//!     --ca ca.pem --cert server.pem --key server.key --identity spiffe://bench.local/sa/server
//! ```
//! Build: `cargo build --release --features jemalloc --example mesh_floor`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use http_body_util::{BodyExt, Either, Empty};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use outrider::proxy::body::{H2Body, RespBody};
use outrider::proxy::driver::{self, Driver, Owner, StreamExec, Tick, FLUSH_AFTER};
use outrider::proxy::headers::strip_hop_by_hop;
use outrider::proxy::pool;
use outrider::tls::{Alpn, Material, TlsFiles};
use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Side {
    /// Plain HTTP/1.1 in, HTTP/2 over mTLS out.
    Outbound,
    /// mTLS in (h2 or HTTP/1.1 by ALPN), HTTP/1.1 out to the app.
    Inbound,
}

#[derive(Parser)]
#[command(about = "The mesh path with outrider's transport only (benchmark calibration)")]
struct Args {
    side: Side,
    #[arg(long)]
    listen: SocketAddr,
    /// Outbound: the inbound side; inbound: the app.
    #[arg(long)]
    to: SocketAddr,
    #[arg(long)]
    ca: PathBuf,
    #[arg(long)]
    cert: PathBuf,
    #[arg(long)]
    key: PathBuf,
    /// This side's SPIFFE ID (the certificate's URI SAN).
    #[arg(long)]
    identity: String,
    /// Outbound: the SPIFFE ID the inbound side must present.
    #[arg(long, required_if_eq("side", "outbound"))]
    peer: Option<String>,
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let files = TlsFiles {
        ca: args.ca.clone(),
        cert: args.cert.clone(),
        key: args.key.clone(),
    };
    let material = Material::load(&files, &args.identity)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(args.listen).await?;
        match args.side {
            Side::Outbound => {
                let peer = args.peer.as_deref().unwrap_or_default();
                let out = Arc::new(Outbound::connect(&material, peer, args.to).await?);
                serve(listener, move |tcp| serve_outbound(tcp, out.clone())).await
            }
            Side::Inbound => {
                let inbound = Arc::new(Inbound {
                    tls: tokio_rustls::TlsAcceptor::from(material.server.clone()),
                    app: args.to,
                    idle: Mutex::new(Vec::new()),
                });
                serve(listener, move |tcp| serve_inbound(tcp, inbound.clone())).await
            }
        }
    })
}

async fn serve<F, Fut>(listener: TcpListener, conn: F) -> Result<(), BoxError>
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        tokio::spawn(conn(tcp));
    }
}

type Answer<B> = Response<Either<B, Empty<Bytes>>>;

/// The forwarded response, or 502 when forwarding failed.
async fn answer<B>(
    forwarded: impl std::future::Future<Output = Result<Response<B>, BoxError>>,
) -> Result<Answer<B>, std::convert::Infallible> {
    Ok(match forwarded.await {
        Ok(rsp) => rsp.map(Either::Left),
        Err(error) => {
            eprintln!("mesh_floor: {error}");
            let mut rsp = Response::new(Either::Right(Empty::new()));
            *rsp.status_mut() = StatusCode::BAD_GATEWAY;
            rsp
        }
    })
}

// ---------------------------------------------------------------- outbound

/// The one HTTP/2 connection to the inbound side (the program ends with it).
struct Outbound {
    tx: h2::client::SendRequest<Bytes>,
    driver: Arc<dyn Tick>,
}

impl Outbound {
    async fn connect(m: &Material, peer: &str, to: SocketAddr) -> Result<Outbound, BoxError> {
        let tcp = TcpStream::connect(to).await?;
        tcp.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(m.client_config(peer, Alpn::H2))
            .connect(ServerName::IpAddress(to.ip().into()), tcp)
            .await?;
        // outrider's upstream HTTP/2 settings.
        let (tx, conn) = pool::h2_client().handshake::<_, Bytes>(tls).await?;
        let driver = driver::spawn_client(
            conn,
            || {
                eprintln!("mesh_floor: the HTTP/2 connection to the inbound side ended");
                std::process::exit(1);
            },
            None,
        );
        Ok(Outbound { tx, driver })
    }

    async fn forward(&self, req: Request<Incoming>) -> Result<Response<RespBody>, BoxError> {
        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers, false);
        let authority = match parts.headers.remove(header::HOST) {
            Some(h) => Authority::try_from(h.as_bytes())?,
            None => Authority::from_static("localhost"),
        };
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(Scheme::HTTPS);
        uri.authority = Some(authority);
        uri.path_and_query = Some(path);
        parts.uri = Uri::from_parts(uri)?;
        parts.version = Version::HTTP_2;
        let end = body.is_end_stream();
        let mut tx = self.tx.clone().ready().await?;
        let (response, mut stream) = tx.send_request(Request::from_parts(parts, ()), end)?;
        if !end {
            stream.send_data(body.collect().await?.to_bytes(), true)?;
        }
        self.driver.tick();
        let rsp = response.await?;
        let length = content_length(rsp.headers());
        Ok(rsp.map(|recv| RespBody::H2(H2Body::new(recv, length))))
    }
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

async fn serve_outbound(tcp: TcpStream, out: Arc<Outbound>) {
    let svc = service_fn(move |req| {
        let out = out.clone();
        answer(async move { out.forward(req).await })
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(tcp), svc)
        .await;
}

// ---------------------------------------------------------------- inbound

struct Inbound {
    tls: tokio_rustls::TlsAcceptor,
    app: SocketAddr,
    /// Idle HTTP/1.1 connections to the app, last in first out.
    idle: Mutex<Vec<http1_client::SendRequest<Incoming>>>,
}

use hyper::client::conn::http1 as http1_client;

/// An app connection back in the pool once its response body is done (dropped).
struct Leased {
    body: Incoming,
    tx: Option<http1_client::SendRequest<Incoming>>,
    pool: Weak<Inbound>,
}

impl Body for Leased {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Leased {
    fn drop(&mut self) {
        if let (Some(tx), Some(pool)) = (self.tx.take(), self.pool.upgrade()) {
            if !tx.is_closed() {
                pool.idle.lock().expect("not poisoned").push(tx);
            }
        }
    }
}

impl Inbound {
    async fn checkout(&self) -> Result<http1_client::SendRequest<Incoming>, BoxError> {
        loop {
            let pooled = self.idle.lock().expect("not poisoned").pop();
            let mut tx = match pooled {
                Some(tx) => tx,
                None => {
                    let tcp = TcpStream::connect(self.app).await?;
                    tcp.set_nodelay(true)?;
                    let (tx, conn) = http1_client::handshake(TokioIo::new(tcp)).await?;
                    tokio::spawn(conn);
                    tx
                }
            };
            // A pooled connection may still be finishing its last response.
            if tx.ready().await.is_ok() {
                return Ok(tx);
            }
        }
    }

    async fn forward(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Leased>, BoxError> {
        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers, false);
        // HTTP/2 carries the host as `:authority`; an HTTP/1.0 request may carry none.
        if !parts.headers.contains_key(header::HOST) {
            let host = match parts.uri.authority() {
                Some(a) => HeaderValue::from_str(a.as_str())?,
                None => HeaderValue::from_str(&self.app.to_string())?,
            };
            parts.headers.insert(header::HOST, host);
        }
        if let Some(pq) = parts.uri.path_and_query().cloned() {
            parts.uri = Uri::from(pq);
        }
        parts.version = Version::HTTP_11;
        let mut tx = self.checkout().await?;
        let mut rsp = tx.send_request(Request::from_parts(parts, body)).await?;
        strip_hop_by_hop(rsp.headers_mut(), false);
        let pool = Arc::downgrade(&self);
        Ok(rsp.map(|body| Leased {
            body,
            tx: Some(tx),
            pool,
        }))
    }
}

async fn serve_inbound(tcp: TcpStream, inbound: Arc<Inbound>) {
    let Ok(tls) = inbound.tls.accept(tcp).await else {
        return;
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let svc = service_fn(move |req| answer(inbound.clone().forward(req)));
    let io = TokioIo::new(tls);
    if !h2 {
        let _ = http1::Builder::new().serve_connection(io, svc).await;
        return;
    }
    // As outrider serves ALPN h2 (`proxy::serve_http`, default limits): the connection shared
    // with its streams.
    let driver = Driver::new(FLUSH_AFTER);
    let exec = StreamExec(Arc::downgrade(&driver) as Weak<dyn Tick>);
    let mut b = http2::Builder::new(exec);
    b.timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(64 * 1024);
    driver.install(b.serve_connection(io, svc));
    let owner = Owner {
        driver: driver.clone(),
        on_end: None::<fn()>,
    };
    let _ = std::future::poll_fn(|cx| driver.poll_owner(cx)).await;
    drop(owner);
}
