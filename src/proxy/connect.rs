//! Connecting to an upstream endpoint: TCP (with `connect_timeout`, `TCP_NODELAY`) and, for
//! backends with `tls`, an mTLS handshake that verifies the endpoint's SPIFFE identity.
//! ALPN decides HTTP/2 vs HTTP/1.1 on TLS connections (`protocol: auto`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::rt::TokioIo;
use prometheus::{IntCounter, IntCounterVec};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::tls::{verify::handshake_reason, Alpn, TlsStore};

/// mTLS settings of one backend.
#[derive(Clone)]
pub struct UpstreamTls {
    pub store: Arc<TlsStore>,
    pub expected: Arc<str>,
    pub alpn: Alpn,
    /// `outrider_tls_handshake_errors_total`, counted with direction `outbound`.
    pub errors: IntCounterVec,
    /// `outrider_tls_handshakes_total{direction="outbound"}`.
    pub handshakes: IntCounter,
}

/// Dials endpoints of one backend: TCP (with `connect_timeout`, `TCP_NODELAY`), then the
/// mTLS handshake when the backend has `tls`.
#[derive(Clone)]
pub struct Dialer {
    pub connect_timeout: Duration,
    pub tls: Option<UpstreamTls>,
}

pub enum Conn {
    Plain(TokioIo<TcpStream>),
    /// Boxed: a TLS stream is ~1 KiB; the plain variant stays small. The flag is "ALPN h2".
    Tls(Box<TokioIo<TlsStream<TcpStream>>>, bool),
}

impl Conn {
    /// ALPN chose HTTP/2 on this TLS connection.
    pub fn negotiated_h2(&self) -> bool {
        matches!(self, Conn::Tls(_, true))
    }
}

impl Dialer {
    /// Whether a connection of this dialer may speak HTTP/2 by ALPN.
    pub fn offers_h2(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.alpn != Alpn::Http1)
    }

    /// A connection to `addr`, handshakes done, within `connect_timeout`.
    pub async fn dial(&self, addr: SocketAddr) -> io::Result<Conn> {
        let connect = async {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let Some(tls) = &self.tls else {
                return Ok(Conn::Plain(TokioIo::new(tcp)));
            };
            let cfg = tls.store.current().client_config(&tls.expected, tls.alpn);
            let name = ServerName::IpAddress(addr.ip().into());
            match TlsConnector::from(cfg).connect(name, tcp).await {
                Ok(stream) => {
                    tls.handshakes.inc();
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    Ok(Conn::Tls(Box::new(TokioIo::new(stream)), h2))
                }
                Err(e) => {
                    tls.errors
                        .with_label_values(&["outbound", handshake_reason(&e)])
                        .inc();
                    Err(e)
                }
            }
        };
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "connect to {addr} timed out after {:?}",
                    self.connect_timeout
                ),
            )),
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
