//! A TCP relay on 127.0.0.1:0 that records what passes through it, and a reader of the
//! HTTP/2 header blocks in those bytes: to check how a peer encodes its headers (HPACK), which
//! a decoded `HeaderMap` no longer shows.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running tap: every connection to `addr` is relayed to the target, and the bytes of each
/// direction are appended to `to_server` and `to_client` (one connection at a time is what
/// the tests need: the bytes of several would interleave).
pub struct Tap {
    pub addr: SocketAddr,
    pub to_server: Arc<Mutex<Vec<u8>>>,
    pub to_client: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tap {
    pub async fn start(target: SocketAddr) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tap");
        let addr = listener.local_addr().unwrap();
        let to_server: Arc<Mutex<Vec<u8>>> = Arc::default();
        let to_client: Arc<Mutex<Vec<u8>>> = Arc::default();
        let (up, down) = (Arc::clone(&to_server), Arc::clone(&to_client));
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(copy(cr, sw, up.clone()));
                tokio::spawn(copy(sr, cw, down.clone()));
            }
        });
        Tap {
            addr,
            to_server,
            to_client,
            task,
        }
    }
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    log: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                log.lock().unwrap().extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The header blocks of the HEADERS frames in `bytes`, one direction of an HTTP/2 connection
/// (the client's starts with the connection preface). Panics on padded or prioritized HEADERS
/// and on CONTINUATION frames, which the peers under test do not send for small heads.
pub fn header_blocks(bytes: &[u8]) -> Vec<Vec<u8>> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut b = bytes.strip_prefix(PREFACE).unwrap_or(bytes);
    let mut blocks = Vec::new();
    while b.len() >= 9 {
        let len = usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]);
        let (kind, flags) = (b[3], b[4]);
        let Some(payload) = b.get(9..9 + len) else {
            break;
        };
        match kind {
            0x1 => {
                assert_eq!(flags & 0x28, 0, "padded or prioritized HEADERS");
                assert_ne!(flags & 0x4, 0, "HEADERS without END_HEADERS");
                blocks.push(payload.to_vec());
            }
            0x9 => panic!("CONTINUATION frame"),
            _ => {}
        }
        b = &b[9 + len..];
    }
    blocks
}

/// How a field of an HPACK block is represented (RFC 7541 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr {
    /// Name and value from a table.
    Indexed,
    /// Literal value, added to the dynamic table.
    Incremental,
    /// Literal value, not added.
    WithoutIndexing,
    /// Literal value that no intermediary may add to a table either (sensitive).
    NeverIndexed,
}

/// One field of a header block: its representation, and whether its name was sent as a
/// literal string rather than as an index into the static or dynamic table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub repr: Repr,
    pub literal_name: bool,
}

/// The fields of an HPACK block (dynamic table size updates skipped).
pub fn fields(mut b: &[u8]) -> Vec<Field> {
    let mut out = Vec::new();
    while let Some(&first) = b.first() {
        let (prefix, repr) = match first {
            f if f & 0x80 != 0 => (7, Some(Repr::Indexed)),
            f if f & 0xc0 == 0x40 => (6, Some(Repr::Incremental)),
            f if f & 0xe0 == 0x20 => (5, None),
            f if f & 0xf0 == 0x10 => (4, Some(Repr::NeverIndexed)),
            _ => (4, Some(Repr::WithoutIndexing)),
        };
        let index = integer(&mut b, prefix);
        let Some(repr) = repr else { continue };
        let literal_name = repr != Repr::Indexed && index == 0;
        if repr != Repr::Indexed {
            if literal_name {
                skip_string(&mut b);
            }
            skip_string(&mut b);
        }
        out.push(Field { repr, literal_name });
    }
    out
}

/// An HPACK integer with an N-bit prefix (RFC 7541 §5.1).
fn integer(b: &mut &[u8], prefix: u32) -> usize {
    let max = (1usize << prefix) - 1;
    let mut value = usize::from(b[0]) & max;
    *b = &b[1..];
    if value < max {
        return value;
    }
    let mut shift = 0;
    loop {
        let byte = b[0];
        *b = &b[1..];
        value += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return value;
        }
    }
}

fn skip_string(b: &mut &[u8]) {
    let len = integer(b, 7);
    *b = &b[len..];
}
