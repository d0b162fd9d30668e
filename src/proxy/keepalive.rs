//! PINGs on an upstream HTTP/2 connection (`backends[].h2_keepalive`), so that a peer that
//! vanished without closing (node lost, network partition, a middlebox dropping the flow) or
//! stopped answering is found out within `interval + timeout`, instead of every request on the
//! pooled connection running into its route timeout until the kernel gives up on the socket
//! (about 15 minutes of retransmissions).
//!
//! Owns: [`Pings`] (the connection's `h2` ping handle and its settings) and
//! [`Pings::unanswered`], which resolves when a PING went unanswered.
//! Doesn't own: closing the connection (the driver task drops it: `driver::spawn_client`).

use std::net::SocketAddr;

use crate::config::model::H2Keepalive;

pub struct Pings {
    pings: h2::PingPong,
    settings: H2Keepalive,
    /// For the log line.
    peer: SocketAddr,
}

impl Pings {
    pub fn new(pings: h2::PingPong, settings: H2Keepalive, peer: SocketAddr) -> Pings {
        Pings {
            pings,
            settings,
            peer,
        }
    }

    /// Sends a PING every `interval` and waits up to `timeout` for its PONG; resolves when one
    /// did not come in time. Stays pending once the connection itself fails (its driver ends
    /// it then).
    pub async fn unanswered(mut self) {
        let H2Keepalive { interval, timeout } = self.settings;
        loop {
            tokio::time::sleep(interval).await;
            if self.pings.send_ping(h2::Ping::opaque()).is_err() {
                return std::future::pending().await;
            }
            let pong = std::future::poll_fn(|cx| self.pings.poll_pong(cx));
            match tokio::time::timeout(timeout, pong).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return std::future::pending().await,
                Err(_) => {
                    tracing::warn!(
                        peer = %self.peer,
                        ?timeout,
                        "upstream HTTP/2 connection did not answer a PING in time: closing it"
                    );
                    return;
                }
            }
        }
    }
}
