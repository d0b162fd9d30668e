//! Misbehaving upstreams on raw TCP (127.0.0.1:0), for the failure contract of SPEC §6:
//! a black hole (accepts, never answers), a reset (reads the request, closes without a
//! response), a truncated response (content-length 100, 10 bytes, close) and a closed port.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::bounded;

#[derive(Clone, Copy, Debug)]
enum Kind {
    BlackHole,
    Reset,
    Truncated,
}

/// A running fault server; dropping it closes the listener and every connection.
pub struct Fault {
    pub addr: SocketAddr,
    accepts: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fault {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fault {
    /// Accepts connections, reads whatever arrives and never answers.
    pub async fn black_hole() -> Fault {
        Fault::start(Kind::BlackHole).await
    }

    /// Reads the request head, then closes the connection without a response.
    pub async fn reset() -> Fault {
        Fault::start(Kind::Reset).await
    }

    /// Answers `200` with `content-length: 100`, sends 10 bytes of body and closes.
    pub async fn truncated() -> Fault {
        Fault::start(Kind::Truncated).await
    }

    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    pub fn accepts(&self) -> usize {
        *self.accepts.borrow()
    }

    /// Wait (bounded) until at least `n` connections were accepted.
    pub async fn wait_accepts(&self, n: usize) {
        let mut rx = self.accepts.clone();
        bounded(
            &format!("fault server to accept {n} connection(s)"),
            rx.wait_for(|c| *c >= n),
        )
        .await
        .expect("fault server stopped");
    }

    async fn start(kind: Kind) -> Fault {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fault server");
        let addr = listener.local_addr().unwrap();
        let (tx, accepts) = watch::channel(0usize);
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                while conns.try_join_next().is_some() {}
                tx.send_modify(|n| *n += 1);
                conns.spawn(misbehave(kind, stream));
            }
        });
        Fault {
            addr,
            accepts,
            task,
        }
    }
}

async fn misbehave(kind: Kind, mut stream: TcpStream) {
    match kind {
        Kind::BlackHole => {
            let mut buf = [0u8; 4096];
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        }
        Kind::Reset => {
            read_head(&mut stream).await;
            drop(stream);
        }
        Kind::Truncated => {
            read_head(&mut stream).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(b"0123456789").await;
            let _ = stream.flush().await;
            let _ = stream.shutdown().await;
        }
    }
}

/// Read until the end of an HTTP/1 request head (or EOF).
async fn read_head(stream: &mut TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// A port on 127.0.0.1 where connections are refused: the socket is bound (so no other test
/// can be given the port) but never listens. Keep it alive as long as the port is used.
pub struct ClosedPort {
    pub addr: SocketAddr,
    _socket: tokio::net::TcpSocket,
}

pub fn closed_port() -> ClosedPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    ClosedPort {
        addr: socket.local_addr().unwrap(),
        _socket: socket,
    }
}
