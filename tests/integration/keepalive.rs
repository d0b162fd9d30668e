//! PINGs on upstream HTTP/2 connections (`backends[].h2_keepalive`, an extension): a pooled
//! connection whose peer stops answering is closed and the next request dials a new one; one
//! that answers is kept.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::support::upstream::Upstream;
use crate::support::{eventually, Cfg};

/// A TCP relay in front of `target` that can be frozen: from then on it forwards nothing in
/// either direction, but keeps both sockets open (a peer that vanished without closing).
/// Connections accepted after [`Freezer::thaw`] relay normally.
struct Freezer {
    addr: SocketAddr,
    frozen: watch::Sender<bool>,
    accepted: Arc<AtomicUsize>,
    /// Client sides that closed (the proxy gave the connection up).
    closed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Freezer {
    async fn start(target: SocketAddr) -> Freezer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (frozen, watch) = watch::channel(false);
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (acc, clo) = (accepted.clone(), closed.clone());
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                acc.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                conns.spawn(relay(client, server, watch.clone(), clo.clone()));
            }
        });
        Freezer {
            addr,
            frozen,
            accepted,
            closed,
            task,
        }
    }

    fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    fn thaw(&self) {
        self.frozen.send_replace(false);
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

/// Copies both ways until either side closes, or for ever without copying once frozen (the
/// connection's sockets stay open). Counts the client closing its side.
async fn relay(
    client: TcpStream,
    server: TcpStream,
    mut frozen: watch::Receiver<bool>,
    closed: Arc<AtomicUsize>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut up = [0u8; 16 * 1024];
    let mut down = [0u8; 16 * 1024];
    loop {
        tokio::select! {
            _ = async { frozen.wait_for(|f| *f).await.map(|_| ()) } => {
                // Hold both sides open and silent until the client gives up.
                let mut sink = [0u8; 1024];
                while matches!(cr.read(&mut sink).await, Ok(n) if n > 0) {}
                closed.fetch_add(1, Ordering::SeqCst);
                return;
            }
            n = cr.read(&mut up) => match n {
                Ok(n) if n > 0 => {
                    if sw.write_all(&up[..n]).await.is_err() {
                        return;
                    }
                }
                _ => {
                    closed.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            },
            n = sr.read(&mut down) => match n {
                Ok(n) if n > 0 => {
                    if cw.write_all(&down[..n]).await.is_err() {
                        return;
                    }
                }
                _ => return,
            },
        }
    }
}

/// An h2c backend behind the relay, with the given `h2_keepalive`.
fn proxy_via(relay: &Freezer, keepalive: &str) -> crate::support::TestProxy {
    Cfg::new()
        .backend_with(
            "b1",
            relay.addr,
            &format!("protocol: http2, h2_keepalive: {keepalive}"),
        )
        .host_route("r1", "svc", "b1", "timeout: 5s")
        .start()
}

/// PINGs every 200ms, 1s to answer (generous: a loaded test machine must not miss one).
const KEEPALIVE: &str = "{ interval: 200ms, timeout: 1s }";

/// The pooled HTTP/2 connection answers its PINGs: after several intervals the next request
/// still goes over it. Then the peer goes silent: the unanswered PING closes the connection,
/// and the next request is served on a new one.
#[tokio::test]
async fn an_unanswered_ping_closes_the_pooled_h2_connection_and_the_next_request_redials() {
    let up = Upstream::echo().await;
    let relay = Freezer::start(up.addr).await;
    let proxy = proxy_via(&relay, KEEPALIVE);

    assert_eq!(proxy.get("svc", "/one").await.status, 200);
    // The scenario: several PING intervals on a healthy connection.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(proxy.get("svc", "/two").await.status, 200);
    assert_eq!(relay.accepted(), 1, "a healthy connection was replaced");
    assert_eq!(relay.closed(), 0);

    relay.freeze();
    eventually(
        Duration::from_secs(5),
        "the proxy to close the silent connection",
        || async { (relay.closed() == 1).then_some(()) },
    )
    .await;
    relay.thaw();
    assert_eq!(proxy.get("svc", "/three").await.status, 200);
    assert_eq!(
        relay.accepted(),
        2,
        "the next request dialed a new connection"
    );
    assert_eq!(up.paths(), ["/one", "/two", "/three"]);
}

/// `interval: 0s` turns PINGs off: a silent peer keeps its pooled connection.
#[tokio::test]
async fn without_pings_a_silent_connection_stays_pooled() {
    let up = Upstream::echo().await;
    let relay = Freezer::start(up.addr).await;
    let proxy = proxy_via(&relay, "{ interval: 0s }");

    assert_eq!(proxy.get("svc", "/one").await.status, 200);
    relay.freeze();
    // The scenario: longer than the other test's interval and timeout together.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(relay.closed(), 0, "closed without keep-alive PINGs");
}
