//! WebSocket support: an echo server (tokio-tungstenite on raw TCP, 127.0.0.1:0) and a
//! client that performs the Upgrade through the proxy's outbound listener.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::bounded;

/// Echoes every text/binary message back on the same socket.
pub struct WsEcho {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WsEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WsEcho {
    pub async fn start() -> WsEcho {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind ws echo");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                while conns.try_join_next().is_some() {}
                conns.spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        WsEcho { addr, task }
    }
}

/// Connect to `proxy`, upgrade `ws://HOST/PATH`, send `text`, return the first text reply.
pub async fn roundtrip(proxy: SocketAddr, host: &str, path: &str, text: &str) -> String {
    let tcp = bounded("connect to proxy", TcpStream::connect(proxy))
        .await
        .expect("connect");
    let url = format!("ws://{host}{path}");
    let (mut ws, resp) = bounded(
        "websocket upgrade through the proxy",
        tokio_tungstenite::client_async(url, tcp),
    )
    .await
    .expect("websocket handshake through the proxy");
    assert_eq!(resp.status(), 101);
    bounded("ws send", ws.send(Message::text(text)))
        .await
        .expect("ws send");
    let reply = loop {
        match bounded("ws echo reply", ws.next()).await {
            Some(Ok(Message::Text(t))) => break t.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("no echo from websocket upstream: {other:?}"),
        }
    };
    let _ = bounded("ws close", ws.close(None)).await;
    reply
}
