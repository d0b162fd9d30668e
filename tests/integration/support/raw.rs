//! Raw TCP clients for hostile-client tests: write arbitrary bytes, read a response head,
//! and observe the server closing the connection. Every read is bounded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{bounded, within};

pub async fn connect(addr: SocketAddr) -> TcpStream {
    bounded("raw connect", TcpStream::connect(addr))
        .await
        .expect("raw connect")
}

/// Write `bytes` (ignoring a failed write: the server may have hung up already).
pub async fn write(stream: &mut TcpStream, bytes: &[u8]) {
    let _ = bounded("raw write", stream.write_all(bytes)).await;
}

/// Read until the end of a response head (`\r\n\r\n`), EOF or an error. Returns the bytes
/// read, lossily decoded.
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    bounded("raw response head", async {
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&seen).into_owned()
}

/// The status code of a raw response head, or `None` if there is no status line.
pub fn status(head: &str) -> Option<u16> {
    let line = head.lines().next()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// Send `bytes` on a new connection and return the response head.
pub async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = connect(addr).await;
    write(&mut stream, bytes).await;
    read_head(&mut stream).await
}

/// Wait until the peer closes the connection (EOF or reset), discarding anything it sends
/// first. Panics if it is still open after `limit`. Returns how long it took.
pub async fn wait_closed(stream: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    within(limit, "the server to close the connection", async {
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
    start.elapsed()
}
