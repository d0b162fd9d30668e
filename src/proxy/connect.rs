//! Connecting to an upstream endpoint: TCP (with `connect_timeout`, `TCP_NODELAY`) and, for
//! backends with `tls`, an mTLS handshake that verifies the endpoint's SPIFFE identity.
//! ALPN decides HTTP/2 vs HTTP/1.1 on TLS connections (`protocol: auto`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use prometheus::IntCounterVec;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::body::BoxError;
use crate::tls::{verify::handshake_reason, Alpn, TlsStore};

/// mTLS settings of one backend.
#[derive(Clone)]
pub struct UpstreamTls {
    pub store: Arc<TlsStore>,
    pub expected: Arc<str>,
    pub alpn: Alpn,
    /// `outrider_tls_handshake_errors_total`, counted with direction `outbound`.
    pub errors: IntCounterVec,
}

#[derive(Clone)]
pub struct Connector {
    pub connect_timeout: Duration,
    pub tls: Option<UpstreamTls>,
}

pub enum Conn {
    Plain(TokioIo<TcpStream>),
    /// Boxed: a TLS stream is ~1 KiB; the plain variant stays small. The flag is "ALPN h2".
    Tls(Box<TokioIo<TlsStream<TcpStream>>>, bool),
}

impl tower::Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let addr: SocketAddr = uri
                .authority()
                .and_then(|a| a.as_str().parse().ok())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("not an endpoint address: {uri}"),
                    )
                })?;
            let connect = async {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let Some(tls) = &this.tls else {
                    return Ok::<_, BoxError>(Conn::Plain(TokioIo::new(tcp)));
                };
                let cfg = tls.store.current().client_config(&tls.expected, tls.alpn);
                let name = ServerName::IpAddress(addr.ip().into());
                match TlsConnector::from(cfg).connect(name, tcp).await {
                    Ok(stream) => {
                        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                        Ok(Conn::Tls(Box::new(TokioIo::new(stream)), h2))
                    }
                    Err(e) => {
                        tls.errors
                            .with_label_values(&["outbound", handshake_reason(&e)])
                            .inc();
                        Err(e.into())
                    }
                }
            };
            match tokio::time::timeout(this.connect_timeout, connect).await {
                Ok(r) => r,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "connect to {addr} timed out after {:?}",
                        this.connect_timeout
                    ),
                )
                .into()),
            }
        })
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        match self {
            Conn::Tls(_, true) => Connected::new().negotiated_h2(),
            _ => Connected::new(),
        }
    }
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s, _) => s.is_write_vectored(),
        }
    }
}
