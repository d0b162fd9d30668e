//! Hand-written HTTP/2 frames for hostile-client tests (RFC 9113 §4.1, §6): what a
//! well-behaved client library refuses to send (streams opened and reset at once, header blocks
//! that never end, more streams than the server advertised), and a reader of the server's
//! frames to see how it answers (RST_STREAM and GOAWAY error codes, SETTINGS).
//!
//! Request heads are encoded with a minimal HPACK encoder (RFC 7541): static-table indexes
//! and literals without indexing, so no dynamic table state is involved. Reads here are not
//! bounded themselves: callers wrap them in [`super::bounded`] / [`super::within`].

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::bounded;

/// RFC 9113 §3.4: the client connection preface (a SETTINGS frame must follow).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The 9-byte frame header.
pub const HEADER_LEN: usize = 9;

/// Frame types (RFC 9113 §6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

/// Frame flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// Error codes (RFC 9113 §7).
pub const NO_ERROR: u32 = 0x0;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;
pub const COMPRESSION_ERROR: u32 = 0x9;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// SETTINGS identifiers (RFC 9113 §6.5.2).
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
pub const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// The name of an error code, for assertion messages.
pub fn code_name(code: u32) -> String {
    match code {
        NO_ERROR => "NO_ERROR".into(),
        PROTOCOL_ERROR => "PROTOCOL_ERROR".into(),
        REFUSED_STREAM => "REFUSED_STREAM".into(),
        CANCEL => "CANCEL".into(),
        COMPRESSION_ERROR => "COMPRESSION_ERROR".into(),
        ENHANCE_YOUR_CALM => "ENHANCE_YOUR_CALM".into(),
        other => format!("0x{other:x}"),
    }
}

/// One encoded frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame payload length");
    assert!(len < 1 << 24, "frame payload over 2^24 bytes");
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A SETTINGS frame with these `(identifier, value)` pairs.
pub fn settings(values: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(values.len() * 6);
    for (id, value) in values {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &payload)
}

pub fn settings_ack() -> Vec<u8> {
    frame(SETTINGS, ACK, 0, &[])
}

/// HEADERS carrying `block`; `flags` picks END_STREAM / END_HEADERS.
pub fn headers(stream: u32, flags: u8, block: &[u8]) -> Vec<u8> {
    frame(HEADERS, flags, stream, block)
}

/// CONTINUATION carrying `block`, with END_HEADERS when `end`.
pub fn continuation(stream: u32, end: bool, block: &[u8]) -> Vec<u8> {
    frame(
        CONTINUATION,
        if end { END_HEADERS } else { 0 },
        stream,
        block,
    )
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// A complete GET request head on `stream`: HEADERS with END_HEADERS and END_STREAM.
pub fn get(stream: u32, authority: &str, path: &str) -> Vec<u8> {
    headers(
        stream,
        END_HEADERS | END_STREAM,
        &request_block(authority, path),
    )
}

/// HPACK block of `GET http://AUTHORITY/PATH`: `:method GET` (static 2), `:scheme http`
/// (static 6), `:path` (static 4 when "/", else a literal with the static name 4) and
/// `:authority` as a literal with the static name 1, both without indexing.
pub fn request_block(authority: &str, path: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x86];
    if path == "/" {
        b.push(0x84);
    } else {
        literal_indexed_name(&mut b, 4, path.as_bytes());
    }
    literal_indexed_name(&mut b, 1, authority.as_bytes());
    b
}

/// A literal header field without indexing, with a literal name (RFC 7541 §6.2.2).
pub fn literal(name: &str, value: &[u8]) -> Vec<u8> {
    let mut b = vec![0x00];
    string(&mut b, name.as_bytes());
    string(&mut b, value);
    b
}

/// A literal header field without indexing, its name from the static table.
fn literal_indexed_name(out: &mut Vec<u8>, index: usize, value: &[u8]) {
    integer(out, 0x00, 4, index);
    string(out, value);
}

/// A string literal without Huffman coding (RFC 7541 §5.2).
fn string(out: &mut Vec<u8>, s: &[u8]) {
    integer(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

/// An integer with an N-bit prefix (RFC 7541 §5.1); `high` holds the bits above the prefix.
fn integer(out: &mut Vec<u8>, high: u8, prefix: u32, mut value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max as u8);
    value -= max;
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// One frame received from the server.
#[derive(Clone, Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// A GOAWAY frame, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoAway {
    pub last_stream: u32,
    pub code: u32,
    /// Additional debug data (h2 names its abuse limits here, e.g. `too_many_resets`).
    pub debug: String,
}

impl Frame {
    /// The error code of a RST_STREAM frame.
    pub fn reset_code(&self) -> Option<u32> {
        (self.kind == RST_STREAM && self.payload.len() == 4).then(|| be32(&self.payload))
    }

    pub fn goaway(&self) -> Option<GoAway> {
        if self.kind != GOAWAY || self.payload.len() < 8 {
            return None;
        }
        Some(GoAway {
            last_stream: be32(&self.payload[..4]) & 0x7fff_ffff,
            code: be32(&self.payload[4..8]),
            debug: String::from_utf8_lossy(&self.payload[8..]).into_owned(),
        })
    }

    /// The `(identifier, value)` pairs of a SETTINGS frame (none for an ACK).
    pub fn settings(&self) -> Vec<(u16, u32)> {
        if self.kind != SETTINGS {
            return Vec::new();
        }
        self.payload
            .chunks_exact(6)
            .map(|c| (u16::from_be_bytes([c[0], c[1]]), be32(&c[2..])))
            .collect()
    }

    pub fn is_end_stream(&self) -> bool {
        matches!(self.kind, DATA | HEADERS) && self.flags & END_STREAM != 0
    }

    /// For a HEADERS frame of a response: its `:status`, decoded from the first field of
    /// the block (where RFC 9113 §8.3 puts pseudo-headers) if that is a static-table index
    /// (200, 204, 206, 304, 400, 404, 500) or a literal with the static name `:status` (index
    /// 8), plain or Huffman-coded (h2's encoder codes every literal with Huffman). `None`
    /// for anything else (a padded or prioritized HEADERS frame, say).
    pub fn status(&self) -> Option<u16> {
        if self.kind != HEADERS || self.flags & 0x28 != 0 {
            return None;
        }
        let (&first, mut rest) = self.payload.split_first()?;
        if first & 0x80 != 0 {
            let statuses = [200, 204, 206, 304, 400, 404, 500];
            let index = usize::from(first & 0x7f);
            return (8..=14).contains(&index).then(|| statuses[index - 8]);
        }
        // Literal with incremental indexing (01), without indexing (0000) or never indexed
        // (0001), all naming static entry 8.
        if first != 0x48 && first != 0x08 && first != 0x18 {
            return None;
        }
        let (&len, value) = rest.split_first()?;
        rest = value.get(..usize::from(len & 0x7f))?;
        let digits = if len & 0x80 == 0 {
            String::from_utf8(rest.to_vec()).ok()?
        } else {
            huffman_digits(rest)?
        };
        digits.parse().ok()
    }
}

/// Decodes a Huffman-coded string of decimal digits (RFC 7541 Appendix B: '0'..'2' are the
/// 5-bit codes 00000..00010, '3'..'9' the 6-bit codes 011001..011111); the padding is the
/// most significant bits of EOS, all ones. `None` for any other symbol.
fn huffman_digits(bytes: &[u8]) -> Option<String> {
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    let mut out = String::new();
    let mut i = 0;
    while i < bits.len() {
        let rest = &bits[i..];
        if rest.len() < 8 && rest.iter().all(|&b| b == 1) {
            break;
        }
        let code = |n: usize| {
            rest.get(..n)
                .map(|c| c.iter().fold(0u8, |v, &b| v << 1 | b))
        };
        match code(5)? {
            d @ 0..=2 => {
                out.push(char::from(b'0' + d));
                i += 5;
            }
            _ => match code(6)? {
                c @ 0b011001..=0b011111 => {
                    out.push(char::from(b'3' + (c - 0b011001)));
                    i += 6;
                }
                _ => return None,
            },
        }
    }
    Some(out)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// A TCP connection whose send buffer is pinned small (8 KiB asked, no autotuning), so that a
/// flooding writer is held back by how much the server actually reads, not by megabytes of
/// kernel buffer on the client's side.
pub async fn connect_small_sndbuf(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .set_send_buffer_size(8 * 1024)
        .expect("set SO_SNDBUF");
    bounded("connect", socket.connect(addr))
        .await
        .expect("connect")
}

/// Read one frame; `None` at EOF or on a read error (the peer closed or reset the connection).
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Option<Frame> {
    let mut head = [0u8; HEADER_LEN];
    r.read_exact(&mut head).await.ok()?;
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await.ok()?;
    Some(Frame {
        kind: head[3],
        flags: head[4],
        stream: be32(&head[5..]) & 0x7fff_ffff,
        payload,
    })
}

/// Read frames until the peer closes the connection, returning them (bounded by `TIMEOUT`).
pub async fn read_to_close<R: AsyncRead + Unpin>(r: &mut R) -> Vec<Frame> {
    let mut frames = Vec::new();
    bounded("the server to close the HTTP/2 connection", async {
        while let Some(f) = read_frame(r).await {
            frames.push(f);
        }
    })
    .await;
    frames
}

/// Client side of the connection preface: our preface and (empty) SETTINGS, then the
/// server's SETTINGS, which we acknowledge. Returns the server's settings. Panics if the
/// server closes first; bounded by `TIMEOUT`.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) -> Vec<(u16, u32)> {
    let mut hello = PREFACE.to_vec();
    hello.extend_from_slice(&settings(&[]));
    bounded("h2 preface write", io.write_all(&hello))
        .await
        .expect("write the HTTP/2 preface");
    let server = bounded("the server's SETTINGS", async {
        loop {
            let f = read_frame(io)
                .await
                .expect("server closed before its SETTINGS");
            if f.kind == SETTINGS && f.flags & ACK == 0 {
                return f.settings();
            }
        }
    })
    .await;
    bounded("h2 SETTINGS ack write", io.write_all(&settings_ack()))
        .await
        .expect("acknowledge the server's SETTINGS");
    server
}

/// The value of setting `id` in `settings`, if the server sent it.
pub fn setting(settings: &[(u16, u32)], id: u16) -> Option<u32> {
    settings
        .iter()
        .rev()
        .find(|(i, _)| *i == id)
        .map(|(_, v)| *v)
}

#[test]
fn encodes_frames_and_hpack() {
    let f = rst_stream(3, CANCEL);
    assert_eq!(f, [0, 0, 4, RST_STREAM, 0, 0, 0, 0, 3, 0, 0, 0, 8]);
    assert_eq!(
        request_block("svc", "/"),
        [0x82, 0x86, 0x84, 0x01, 3, b's', b'v', b'c']
    );
    let mut long = Vec::new();
    integer(&mut long, 0x00, 7, 20 * 1024);
    // RFC 7541 §5.1: 127 in the prefix, then 20353 in 7-bit groups, least significant first.
    assert_eq!(long, [0x7f, 0x81, 0x9f, 0x01]);
}

#[test]
fn decodes_response_statuses() {
    let status = |block: &[u8]| {
        Frame {
            kind: HEADERS,
            flags: END_HEADERS,
            stream: 1,
            payload: block.to_vec(),
        }
        .status()
    };
    assert_eq!(status(&[0x88]), Some(200));
    assert_eq!(status(&[0x8d, 0x0f]), Some(404));
    // What h2 sends for a 431: `:status` literal, "431" Huffman-coded (seen on the wire).
    assert_eq!(status(&[0x48, 0x83, 0x69, 0x90, 0xff]), Some(431));
    assert_eq!(status(&[0x08, 0x03, b'5', b'0', b'3']), Some(503));
    assert_eq!(status(&[0x82]), None);
}
