//! A TCP relay on 127.0.0.1:0 in front of a real server, with one fault: once
//! [armed](Relay::arm), the next request whose bytes contain a needle is forwarded to the
//! server, and when the server starts answering, the client side of that connection is reset
//! (SO_LINGER 0, RST) instead of getting the answer. The server ran the request; the client
//! never learns the outcome: a reset *after* the request was sent.
//!
//! Plaintext HTTP/1.1 only (one request at a time per connection): the request in flight when
//! the server answers is the one that carried the needle.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// A running relay; dropping it closes the listener and every relayed connection.
pub struct Relay {
    pub addr: SocketAddr,
    armed: Arc<Mutex<Option<Vec<u8>>>>,
    fired: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().unwrap();
        let armed: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let (fired_tx, fired) = watch::channel(0usize);
        let fired_tx = Arc::new(fired_tx);
        let arm = armed.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                while conns.try_join_next().is_some() {}
                conns.spawn(relay(client, target, arm.clone(), fired_tx.clone()));
            }
        });
        Relay {
            addr,
            armed,
            fired,
            task,
        }
    }

    /// Reset the connection of the next request containing `needle` once the server answers it.
    pub fn arm(&self, needle: &str) {
        *self.armed.lock().unwrap() = Some(needle.as_bytes().to_vec());
    }

    /// Connections reset so far.
    pub fn fired(&self) -> usize {
        *self.fired.borrow()
    }
}

async fn relay(
    mut client: TcpStream,
    target: SocketAddr,
    armed: Arc<Mutex<Option<Vec<u8>>>>,
    fired: Arc<watch::Sender<usize>>,
) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    // Bytes of the request in flight, to find a needle split across reads.
    let mut request = Vec::new();
    let mut doomed = false;
    let (mut up, mut down) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    loop {
        tokio::select! {
            read = client.read(&mut up) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if !doomed {
                    request.extend_from_slice(&up[..n]);
                    let mut armed = armed.lock().unwrap();
                    if armed.as_ref().is_some_and(|needle| contains(&request, needle)) {
                        *armed = None;
                        doomed = true;
                    }
                }
                if server.write_all(&up[..n]).await.is_err() {
                    return;
                }
            }
            read = server.read(&mut down) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if doomed {
                    // close() with SO_LINGER 0 sends RST: the answer is lost.
                    let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
                    fired.send_modify(|f| *f += 1);
                    return;
                }
                // The server answers: the request in flight is complete.
                request.clear();
                if client.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
