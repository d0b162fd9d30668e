//! Hostile HTTP/2 clients (SPEC §3 `limits`: `max_header_bytes`, `max_concurrent_streams`):
//! rapid reset (CVE-2023-44487) over h2c and over the strict mTLS inbound, in bursts (h2's own
//! limit) and paced under it (`proxy::resets`), CONTINUATION floods,
//! header lists over `max_header_bytes`, and more streams than `max_concurrent_streams`.
//!
//! The hostile parts are hand-written frames ([`h2raw`]); the well-behaved parts use the `h2`
//! crate or hyper's client. Every test ends with a fresh client being served.
//!
//! The bounds asserted come from the HTTP/2 server settings the proxy runs with (hyper 1 over
//! h2 0.4, `src/proxy.rs`): `max_header_list_size = limits.max_header_bytes`,
//! `max_concurrent_streams = limits.max_concurrent_streams`, the 16 KiB default
//! `SETTINGS_MAX_FRAME_SIZE`, and h2's defaults for what hyper leaves unset: at most 20 streams
//! reset by the client before the server accepted them (`max_pending_accept_reset_streams`),
//! at most 1024 streams reset by the server itself for errors and refusals
//! (`max_local_error_reset_streams`), and at most `max(max_header_list_size / max_frame_size
//! * 5/4, 5)` CONTINUATION frames in one header block.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use outrider::certs::Validity;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::support::client::{get, h2_client, h2_get};
use crate::support::h2raw::{self, Frame, GoAway};
use crate::support::pki::{Pki, TlsClient};
use crate::support::upstream::Upstream;
use crate::support::{body, bounded, client, raw, within, Cfg, TestProxy};

/// `Cfg`'s default `max_header_bytes` (16KiB).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The server's `SETTINGS_MAX_FRAME_SIZE` (hyper's default; the proxy does not change it).
const MAX_FRAME_SIZE: usize = 16 * 1024;
/// h2's `max_pending_accept_reset_streams` default (hyper does not change it).
const MAX_PENDING_ACCEPT_RESETS: u32 = 20;
/// Streams a rapid-reset client tries to open on one connection.
const RAPID_RESET_STREAMS: u32 = 10_000;
/// HEADERS + RST_STREAM pairs per write of a rapid-reset client (about 4.7 KB).
const RAPID_RESET_BATCH: u32 = 100;
/// Most streams the server may read from a burst of resets before its GOAWAY. It fires at the
/// 21st stream reset before being accepted; a burst arrives in reads of many streams, each
/// read processed whole before hyper accepts any of them, so that is the 21st stream, or a
/// little later when a read ends early in a batch (observed: 21, last stream id 41).
const RAPID_RESET_MAX_PROCESSED: u32 = 64;
/// Most requests the upstream may see from one rapid-reset connection: only a stream hyper
/// accepted before its RST_STREAM was read can reach the service at all, and at least
/// [`MAX_PENDING_ACCEPT_RESETS`] + 1 of the processed streams were not (observed: none).
const RAPID_RESET_MAX_FORWARDED: usize =
    (RAPID_RESET_MAX_PROCESSED - MAX_PENDING_ACCEPT_RESETS - 1) as usize;

/// A fresh client, over h2c prior knowledge on a new connection, is served 200.
async fn assert_still_serving_h2c(proxy: &TestProxy) {
    let req = Request::get("http://svc/still-there")
        .body(body::empty())
        .unwrap();
    let resp = client::h2c_send(proxy.outbound_addr(), req)
        .await
        .expect("proxy stopped accepting h2c");
    let resp = client::read(resp).await.unwrap();
    assert_eq!(resp.status, 200, "proxy stopped serving: {}", resp.text());
}

/// Runs a hostile writer beside the reader watching for the server's answer, bounded.
async fn until_stopped<R: std::future::Future, W: std::future::Future>(
    what: &str,
    reader: R,
    writer: W,
) -> (R::Output, W::Output) {
    within(Duration::from_secs(5), what, async {
        tokio::join!(reader, writer)
    })
    .await
}

/// Reads on to the close: the server answers none of the streams after it stopped the client.
async fn assert_no_answers_after_the_stop(rd: &mut (impl AsyncRead + Unpin)) {
    let after = h2raw::read_to_close(rd).await;
    assert!(
        after.iter().all(|f| f.kind != h2raw::HEADERS),
        "responses after the server stopped the client: {after:?}"
    );
}

/// What a rapid-reset client saw.
#[derive(Debug)]
struct RapidReset {
    /// HEADERS + RST_STREAM pairs written before the writer stopped (more than the server
    /// read: the kernel buffers them faster than any server reads; the GOAWAY tells what was
    /// read).
    written: u32,
    /// The server's GOAWAY, if it sent one before closing.
    goaway: Option<GoAway>,
    /// From the first stream to the GOAWAY (or close).
    elapsed: Duration,
}

/// Rapid reset (CVE-2023-44487): open `streams` streams on one connection, each reset
/// (CANCEL) right after its HEADERS, as fast as the socket takes them, while reading the
/// server's frames; stops at the server's GOAWAY or close, then waits for the close.
async fn rapid_reset<S>(mut io: S, authority: &str, streams: u32) -> RapidReset
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    h2raw::handshake(&mut io).await;
    let (mut rd, mut wr) = tokio::io::split(io);
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let reader = async {
        let mut goaway = None;
        while let Some(f) = h2raw::read_frame(&mut rd).await {
            goaway = f.goaway();
            if goaway.is_some() {
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
        (goaway, start.elapsed())
    };
    let writer = async {
        let block = h2raw::request_block(authority, "/reset");
        let mut written = 0;
        while written < streams && !stop.load(Ordering::SeqCst) {
            // One write per batch, as an attacker does: the server reads whole batches.
            let mut batch = Vec::new();
            for _ in 0..RAPID_RESET_BATCH.min(streams - written) {
                let id = 2 * written + 1;
                batch.extend_from_slice(&h2raw::headers(
                    id,
                    h2raw::END_HEADERS | h2raw::END_STREAM,
                    &block,
                ));
                batch.extend_from_slice(&h2raw::rst_stream(id, h2raw::CANCEL));
                written += 1;
            }
            if wr.write_all(&batch).await.is_err() {
                break;
            }
            // Let the reader see a GOAWAY (same task, `join!`).
            tokio::task::yield_now().await;
        }
        written
    };
    let ((goaway, elapsed), written) = until_stopped(
        "the proxy to end the rapid-reset connection",
        reader,
        writer,
    )
    .await;
    assert_no_answers_after_the_stop(&mut rd).await;
    RapidReset {
        written,
        goaway,
        elapsed,
    }
}

/// The protection against rapid reset, asserted on what the client saw and on what reached
/// the upstream (`forwarded`, counted once the connection and its tasks are gone).
fn assert_rapid_reset_stopped(seen: &RapidReset, forwarded: usize) {
    let goaway = seen
        .goaway
        .as_ref()
        .unwrap_or_else(|| panic!("connection closed without a GOAWAY: {seen:?}"));
    assert_eq!(
        (
            h2raw::code_name(goaway.code).as_str(),
            goaway.debug.as_str()
        ),
        ("ENHANCE_YOUR_CALM", "too_many_resets"),
        "{seen:?}"
    );
    // Streams are numbered 1, 3, 5, ...: the last one the server processed tells how many.
    let processed = goaway.last_stream / 2 + 1;
    assert!(
        processed > MAX_PENDING_ACCEPT_RESETS,
        "GOAWAY before the reset limit was even reached: {seen:?}"
    );
    assert!(
        processed <= RAPID_RESET_MAX_PROCESSED,
        "the server read {processed} reset streams before stopping (bound {RAPID_RESET_MAX_PROCESSED}): {seen:?}"
    );
    assert!(
        forwarded <= RAPID_RESET_MAX_FORWARDED,
        "{forwarded} requests reached the upstream from {processed} streams read ({} written) and reset (bound {RAPID_RESET_MAX_FORWARDED})",
        seen.written
    );
    assert!(seen.elapsed < Duration::from_secs(2), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_rapid_reset_gets_goaway_enhance_your_calm() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();

    let tcp = raw::connect(proxy.outbound_addr()).await;
    let seen = rapid_reset(tcp, "svc", RAPID_RESET_STREAMS).await;
    proxy.wait_connections_closed("outbound").await;
    let forwarded = up.requests().len();
    eprintln!("h2c rapid reset: {seen:?}; the upstream saw {forwarded} request(s)");
    assert_rapid_reset_stopped(&seen, forwarded);

    assert_still_serving_h2c(&proxy).await;
    assert_eq!(up.requests().len(), forwarded + 1);
}

/// A strict mTLS inbound sidecar ("writing-analysis") in front of an echo app, and a "gateway"
/// peer's certificate with an mTLS client offering ALPN h2 only.
struct Mesh {
    pki: Pki,
    app: Upstream,
    proxy: TestProxy,
    gateway: outrider::certs::Issued,
    tls: TlsClient,
}

impl Mesh {
    async fn start(name: &str) -> Mesh {
        let pki = Pki::new(name);
        let app = Upstream::echo().await;
        let proxy = TestProxy::start(format!(
            "version: 1\n{}admin: {{ listen: 127.0.0.1:0 }}\nmetrics: {{ listen: 127.0.0.1:0 }}\n\
             inbound: {{ listen: 127.0.0.1:0, app: \"{}\", mode: strict }}\n",
            pki.sidecar_yaml("writing-analysis"),
            app.addr
        ));
        let gateway = pki
            .ca
            .issue(&[Pki::id("gateway")], Validity::days(1))
            .unwrap();
        let tls = TlsClient::new(
            &pki.ca.cert_pem,
            &Pki::id("writing-analysis"),
            Some(&gateway),
            true,
        );
        Mesh {
            pki,
            app,
            proxy,
            gateway,
            tls,
        }
    }
}

/// The sidecar-to-sidecar path: a client with a valid certificate of the mesh, ALPN h2, on
/// the strict mTLS inbound listener (served by the proxy's own HTTP/2 driver, not hyper-util's
/// auto builder) gets the same protection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_rapid_reset_on_the_strict_inbound_gets_goaway_enhance_your_calm() {
    let Mesh {
        pki: _pki,
        app,
        proxy,
        gateway: _,
        tls,
    } = Mesh::start("hostile-h2").await;

    let stream = tls
        .connect(proxy.inbound_addr())
        .await
        .expect("mTLS connect");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let seen = rapid_reset(stream, "app", RAPID_RESET_STREAMS).await;
    proxy.wait_connections_closed("inbound").await;
    let forwarded = app.requests().len();
    eprintln!("mTLS rapid reset: {seen:?}; the app saw {forwarded} request(s)");
    assert_rapid_reset_stopped(&seen, forwarded);

    // A well-behaved peer sidecar is still served, over a new mTLS HTTP/2 connection.
    let stream = tls
        .connect(proxy.inbound_addr())
        .await
        .expect("mTLS connect");
    let (mut sender, conn) = bounded(
        "h2 handshake over mTLS",
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = Request::get("https://app/still-there")
        .body(body::empty())
        .unwrap();
    let resp = bounded("response over mTLS h2", sender.send_request(req))
        .await
        .unwrap();
    let resp = client::read(resp).await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let last = app.last_request().await;
    assert_eq!(last.uri.path(), "/still-there");
    assert_eq!(
        last.header("x-outrider-peer-identity"),
        Some(Pki::id("gateway").as_str())
    );
}

/// Streams a paced rapid-reset client opens and resets on one connection.
const PACED_STREAMS: u32 = 2_000;
/// Streams per PING round trip: fewer than [`MAX_PENDING_ACCEPT_RESETS`], so the server has
/// accepted every reset stream before the next batch comes.
const PACED_BATCH: u32 = 10;
/// Most streams opened and reset without any answer that a connection may carry before the
/// proxy ends it (`proxy::resets`): the 100th cancelled request closes it, and the client may
/// have written one more batch meanwhile. (Envoy ends such a connection after 500 streams.)
const PACED_MAX_STREAMS: u32 = outrider::proxy::resets::MIN_CANCELLED as u32 + PACED_BATCH;

/// What a paced rapid-reset client saw.
#[derive(Debug)]
struct Paced {
    /// Streams opened and reset before the server ended the connection (or all of them).
    opened: u32,
    goaway: Option<GoAway>,
    /// The server closed the connection.
    closed: bool,
    elapsed: Duration,
}

/// Rapid reset paced to stay under h2's pending-accept heuristic: batches of
/// [`PACED_BATCH`] HEADERS + RST_STREAM pairs, each batch followed by a PING whose ACK says
/// the server has read it. Stops at `streams`, a GOAWAY or the close.
async fn paced_rapid_reset<S>(io: &mut S, authority: &str, streams: u32) -> Paced
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    h2raw::handshake(io).await;
    let start = Instant::now();
    let mut opened = 0;
    let (goaway, closed) = within(Duration::from_secs(5), "the paced rapid reset", async {
        while opened < streams {
            let mut batch = Vec::new();
            for _ in 0..PACED_BATCH {
                let id = 2 * opened + 1;
                batch.extend_from_slice(&h2raw::get(id, authority, "/paced"));
                batch.extend_from_slice(&h2raw::rst_stream(id, h2raw::CANCEL));
                opened += 1;
            }
            let ping = u64::from(opened).to_be_bytes();
            batch.extend_from_slice(&h2raw::frame(h2raw::PING, 0, 0, &ping));
            if io.write_all(&batch).await.is_err() {
                return (None, true);
            }
            loop {
                let Some(f) = h2raw::read_frame(io).await else {
                    return (None, true);
                };
                if let Some(mut g) = f.goaway() {
                    // A graceful end sends two: "no more streams soon" (the highest id), then
                    // the last stream taken; read on to the close and keep the last.
                    while let Some(f) = h2raw::read_frame(io).await {
                        g = f.goaway().unwrap_or(g);
                    }
                    return (Some(g), true);
                }
                if f.kind == h2raw::PING && f.flags & h2raw::ACK != 0 && f.payload == ping {
                    break;
                }
            }
        }
        (None, false)
    })
    .await;
    Paced {
        opened,
        goaway,
        closed,
        elapsed: start.elapsed(),
    }
}

/// The rapid reset of CVE-2023-44487 paced to one small batch per round trip. h2's own
/// defence counts streams reset *before* hyper accepted them; here each batch is accepted
/// before the next arrives, so that count never passes 10 (before `proxy::resets`: 2,000
/// streams in 0.3 s, 10,000 in 1.6 s, no GOAWAY). The proxy counts requests cancelled before
/// their response within 1 s of their start; at the 100th, when they are at least half of all,
/// it sends GOAWAY and closes the connection at most 1 s later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_paced_rapid_reset_is_ended_too() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();

    let mut tcp = raw::connect(proxy.outbound_addr()).await;
    let seen = paced_rapid_reset(&mut tcp, "svc", PACED_STREAMS).await;
    drop(tcp);
    proxy.wait_connections_closed("outbound").await;
    let forwarded = up.requests().len();
    eprintln!("paced rapid reset: {seen:?}; the upstream saw {forwarded} request(s)");
    assert!(
        forwarded <= RAPID_RESET_MAX_FORWARDED,
        "{forwarded} requests reached the upstream from {} streams opened and reset",
        seen.opened
    );
    assert_still_serving_h2c(&proxy).await;

    // Streams the server took before ending the connection: a final GOAWAY says which; the
    // first of a graceful pair (the highest id: this client never answers its PING) or a bare
    // close, the batches written (at most one batch more than it read).
    let taken = match (&seen.goaway, seen.closed) {
        (Some(goaway), _) if goaway.last_stream < (1 << 31) - 1 => goaway.last_stream / 2 + 1,
        (Some(_), _) => seen.opened,
        (None, true) => seen.opened.saturating_sub(PACED_BATCH),
        (None, false) => panic!(
            "the proxy kept the connection open after {} streams were opened and reset \
             without a single answer, in {:?} (bound {PACED_MAX_STREAMS})",
            seen.opened, seen.elapsed
        ),
    };
    assert!(taken <= PACED_MAX_STREAMS, "{seen:?}");
    assert_eq!(
        proxy
            .metric(
                "outrider_rapid_reset_closes_total",
                &[("direction", "outbound")]
            )
            .await,
        Some(1.0)
    );
}

/// The paced rapid reset from a peer with a valid certificate, on the strict mTLS inbound
/// (the proxy's own HTTP/2 driver): ended the same way, and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_paced_rapid_reset_on_the_strict_inbound_is_ended() {
    let Mesh {
        pki,
        app: _app,
        proxy,
        gateway,
        tls,
    } = Mesh::start("hostile-h2-paced").await;
    let mut stream = tls
        .connect(proxy.inbound_addr())
        .await
        .expect("mTLS connect");
    let seen = paced_rapid_reset(&mut stream, "app", PACED_STREAMS).await;
    assert!(seen.goaway.is_some() || seen.closed, "{seen:?}");
    assert!(seen.opened <= PACED_MAX_STREAMS + PACED_BATCH, "{seen:?}");
    drop(stream);
    proxy.wait_connections_closed("inbound").await;
    proxy
        .wait_metric(
            "outrider_rapid_reset_closes_total",
            &[("direction", "inbound")],
            1.0,
        )
        .await;

    // A well-behaved peer is served on a new connection.
    let h1 = TlsClient::new(
        &pki.ca.cert_pem,
        &Pki::id("writing-analysis"),
        Some(&gateway),
        false,
    );
    let (mut sender, _) = h1
        .http1(proxy.inbound_addr())
        .await
        .expect("a new mTLS connection");
    let resp = crate::support::pki::send(&mut sender, "/after")
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// What a CONTINUATION flood saw.
#[derive(Debug)]
struct Flood {
    /// CONTINUATION frames written before the writer stopped.
    frames: usize,
    /// Bytes written on the connection after the handshake, up to the stop.
    bytes: usize,
    goaway: Option<GoAway>,
    /// The first frame the server sent on stream 1, if any (a response, a reset).
    on_stream: Option<Frame>,
}

/// Most bytes a flood may write before the server stops it: 32 × `max_header_bytes`
/// (512 KiB). The server itself reads at most `max(16KiB / 16KiB * 5/4, 5) + 1 = 6` frames of
/// the block (96 KiB); the rest is what the client's pinned 8 KiB send buffer and the
/// server's receive window hold before the GOAWAY comes back (observed: 110–160 KB). A server
/// without a limit reads on until the flood gives up at [`FLOOD_CAP_BYTES`].
const FLOOD_MAX_BYTES: usize = 32 * MAX_HEADER_BYTES;
/// The flood gives up (and the test fails) after this much without an answer.
const FLOOD_CAP_BYTES: usize = 10 * 1024 * 1024;

/// Opens stream 1 with a HEADERS frame without END_HEADERS, then writes CONTINUATION frames
/// carrying `payload`, none with END_HEADERS, until the server answers or closes (or
/// [`FLOOD_CAP_BYTES`]). Then waits for the close.
async fn continuation_flood(addr: SocketAddr, payload: &[u8]) -> Flood {
    let mut tcp = h2raw::connect_small_sndbuf(addr).await;
    h2raw::handshake(&mut tcp).await;
    let (mut rd, mut wr) = tcp.into_split();
    let stop = AtomicBool::new(false);
    let reader = async {
        let mut goaway = None;
        let mut on_stream = None;
        while let Some(f) = h2raw::read_frame(&mut rd).await {
            goaway = f.goaway();
            if goaway.is_some() {
                break;
            }
            if f.stream == 1 {
                on_stream = Some(f);
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
        (goaway, on_stream)
    };
    let writer = async {
        let open = h2raw::headers(1, h2raw::END_STREAM, &h2raw::request_block("svc", "/flood"));
        let mut bytes = open.len();
        if wr.write_all(&open).await.is_err() {
            return (0, bytes);
        }
        let cont = h2raw::continuation(1, false, payload);
        let mut frames = 0;
        while bytes < FLOOD_CAP_BYTES && !stop.load(Ordering::SeqCst) {
            if wr.write_all(&cont).await.is_err() {
                break;
            }
            frames += 1;
            bytes += cont.len();
            // Let the reader see the answer (same task, `join!`).
            tokio::task::yield_now().await;
        }
        (frames, bytes)
    };
    let ((goaway, on_stream), (frames, bytes)) =
        until_stopped("the proxy to stop the CONTINUATION flood", reader, writer).await;
    assert_no_answers_after_the_stop(&mut rd).await;
    Flood {
        frames,
        bytes,
        goaway,
        on_stream,
    }
}

/// One HPACK block of at most `MAX_FRAME_SIZE` bytes: literal `x-flood` headers with
/// 1000-byte values, each a new field for the decoder to account for.
fn flood_block() -> Vec<u8> {
    let field = h2raw::literal("x-flood", &[b'f'; 1000]);
    let mut block = Vec::new();
    while block.len() + field.len() <= MAX_FRAME_SIZE {
        block.extend_from_slice(&field);
    }
    block
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_continuation_flood_is_stopped_after_a_bounded_number_of_bytes() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();

    // Full frames of real header fields (past max_header_bytes from the second frame on,
    // which h2 then decodes but no longer keeps), and empty frames (nothing to decode: only
    // their number can stop them). Either way h2 counts the frames of the block.
    let full = continuation_flood(proxy.outbound_addr(), &flood_block()).await;
    let empty = continuation_flood(proxy.outbound_addr(), &[]).await;
    eprintln!("full-frame CONTINUATION flood: {full:?}");
    eprintln!("empty CONTINUATION flood: {empty:?}");

    for flood in [&full, &empty] {
        let goaway = flood
            .goaway
            .as_ref()
            .unwrap_or_else(|| panic!("flood ended without a GOAWAY: {flood:?}"));
        assert_eq!(
            (
                h2raw::code_name(goaway.code).as_str(),
                goaway.debug.as_str()
            ),
            ("ENHANCE_YOUR_CALM", "too_many_continuations"),
            "{flood:?}"
        );
        // Stream 1's head never completed: no stream was processed, none answered.
        assert_eq!(goaway.last_stream, 0, "{flood:?}");
        assert!(flood.on_stream.is_none(), "{flood:?}");
        assert!(
            flood.bytes <= FLOOD_MAX_BYTES,
            "the flood wrote {} bytes ({} CONTINUATION frames) before the server stopped it (bound {FLOOD_MAX_BYTES}): {flood:?}",
            flood.bytes,
            flood.frames
        );
    }
    proxy.wait_connections_closed("outbound").await;
    assert_eq!(
        up.requests().len(),
        0,
        "a flooded head reached the upstream"
    );

    assert_still_serving_h2c(&proxy).await;
}

/// 16KiB limit, one 20KiB header: the `h2` crate client gets a 431 with an empty body (h2
/// answers it itself: hyper and the proxy never see the request), and the same connection
/// carries the next requests.
#[tokio::test]
async fn h2_header_list_over_max_header_bytes_gets_431_and_the_connection_lives_on() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();

    let (mut send, conn) = h2_client(proxy.outbound_addr()).await;
    let big = Request::get("http://svc/big")
        .header("x-big", "a".repeat(20 * 1024))
        .body(())
        .unwrap();
    let answer = h2_get(&mut send, big)
        .await
        .expect("the oversized head is answered, not reset");
    assert_eq!(answer, (431, Bytes::new()));

    for path in ["/after-1", "/after-2"] {
        let (status, body) = h2_get(&mut send, get("svc", path))
            .await
            .expect("the connection still carries requests");
        assert_eq!(status, 200, "{body:?}");
    }
    assert!(!conn.is_finished(), "the connection was closed");
    let paths = up.paths();
    assert_eq!(
        paths,
        ["/after-1", "/after-2"],
        "the oversized head reached the upstream"
    );

    assert_still_serving_h2c(&proxy).await;
}

/// The same on the wire: stream 1's head (20KiB, HEADERS + CONTINUATION) over the limit and
/// stream 3's normal head in one write. Stream 1 gets exactly one frame, HEADERS `:status 431`
/// with END_STREAM (no body, no RST_STREAM: both sides are closed), and stream 3 is served.
#[tokio::test]
async fn h2_header_list_over_max_header_bytes_on_the_wire() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();

    let mut tcp = raw::connect(proxy.outbound_addr()).await;
    h2raw::handshake(&mut tcp).await;
    let mut block = h2raw::request_block("svc", "/big");
    block.extend_from_slice(&h2raw::literal("x-big", &[b'a'; 20 * 1024]));
    let (first, rest) = block.split_at(MAX_FRAME_SIZE);
    let mut bytes = h2raw::headers(1, h2raw::END_STREAM, first);
    bytes.extend_from_slice(&h2raw::continuation(1, true, rest));
    bytes.extend_from_slice(&h2raw::get(3, "svc", "/after"));
    // A PING after both: its ACK comes once the server has handled everything before it.
    bytes.extend_from_slice(&h2raw::frame(h2raw::PING, 0, 0, b"431probe"));
    raw::write(&mut tcp, &bytes).await;

    let mut on_1 = Vec::new();
    let mut ended_3 = false;
    let mut status_3 = None;
    let mut pinged = false;
    bounded("stream 3's answer and the PING ACK", async {
        while !(ended_3 && pinged) {
            let f = h2raw::read_frame(&mut tcp)
                .await
                .expect("connection closed");
            assert!(f.goaway().is_none(), "GOAWAY: {f:?}");
            match f.stream {
                0 => pinged |= f.kind == h2raw::PING && f.payload == b"431probe",
                1 => on_1.push(f),
                3 => {
                    if f.kind == h2raw::HEADERS {
                        status_3 = f.status();
                    }
                    ended_3 |= f.is_end_stream();
                    assert!(f.reset_code().is_none(), "stream 3 reset: {f:?}");
                }
                _ => panic!("frame on a stream never opened: {f:?}"),
            }
        }
    })
    .await;
    assert_eq!(status_3, Some(200));
    let [answer] = &on_1[..] else {
        panic!("stream 1 got {} frames: {on_1:?}", on_1.len());
    };
    assert_eq!(answer.kind, h2raw::HEADERS, "{answer:?}");
    assert!(answer.is_end_stream(), "{answer:?}");
    assert_eq!(answer.status(), Some(431), "{answer:?}");

    let paths = up.paths();
    assert_eq!(paths, ["/after"], "the oversized head reached the upstream");
    assert_still_serving_h2c(&proxy).await;
}

/// Past 4 × `max_header_bytes` in one field h2 stops decoding and ends the whole connection
/// (GOAWAY ENHANCE_YOUR_CALM `header_list_way_too_large`) instead of answering 431.
#[tokio::test]
async fn h2_header_list_far_over_max_header_bytes_ends_the_connection() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();

    let (mut send, conn) = h2_client(proxy.outbound_addr()).await;
    let huge = Request::get("http://svc/huge")
        .header("x-huge", "a".repeat(5 * MAX_HEADER_BYTES))
        .body(())
        .unwrap();
    let err = h2_get(&mut send, huge)
        .await
        .expect_err("a 5 × max_header_bytes head is answered");
    assert!(err.is_go_away() && err.is_remote(), "{err:?}");
    assert_eq!(err.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM), "{err:?}");
    let ended = bounded("the connection to end", conn)
        .await
        .unwrap()
        .expect_err("the connection ends with the GOAWAY's error");
    assert_eq!(
        ended.reason(),
        Some(h2::Reason::ENHANCE_YOUR_CALM),
        "{ended:?}"
    );
    assert_eq!(up.requests().len(), 0);

    assert_still_serving_h2c(&proxy).await;
}

const FOUR_STREAMS: &str =
    "{ max_header_bytes: 16KiB, header_read_timeout: 5s, max_concurrent_streams: 4 }";

/// A client ignoring the advertised SETTINGS_MAX_CONCURRENT_STREAMS (4) opens 8 streams at
/// once: the 4 over the limit are refused with REFUSED_STREAM (safe to retry: never
/// processed), the 4 allowed ones complete, and the refused ones succeed when retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_streams_over_max_concurrent_streams_are_refused() {
    let (up, gate) = Upstream::gated().await;
    let proxy = Cfg::single(up.addr).limits(FOUR_STREAMS).start();

    let mut tcp = raw::connect(proxy.outbound_addr()).await;
    let settings = h2raw::handshake(&mut tcp).await;
    assert_eq!(
        h2raw::setting(&settings, h2raw::SETTINGS_MAX_CONCURRENT_STREAMS),
        Some(4),
        "advertised settings: {settings:?}"
    );
    assert_eq!(
        h2raw::setting(&settings, h2raw::SETTINGS_MAX_HEADER_LIST_SIZE),
        Some(MAX_HEADER_BYTES as u32),
        "advertised settings: {settings:?}"
    );
    let mut opens = Vec::new();
    for i in 0..8u32 {
        opens.extend_from_slice(&h2raw::get(2 * i + 1, "svc", &format!("/s{i}")));
    }
    raw::write(&mut tcp, &opens).await;

    // The upstream holds the 4 allowed streams; the 4 others are refused meanwhile.
    let held = up.wait_requests(4).await;
    let mut refused = Vec::new();
    bounded("4 RST_STREAM REFUSED_STREAM", async {
        while refused.len() < 4 {
            let f = h2raw::read_frame(&mut tcp)
                .await
                .expect("connection closed");
            assert!(
                f.goaway().is_none() && f.kind != h2raw::HEADERS,
                "unexpected frame while 4 streams are held: {f:?}"
            );
            if let Some(code) = f.reset_code() {
                assert_eq!(
                    h2raw::code_name(code),
                    "REFUSED_STREAM",
                    "stream {} reset",
                    f.stream
                );
                refused.push(f.stream);
            }
        }
    })
    .await;
    refused.sort_unstable();
    assert_eq!(refused, [9, 11, 13, 15], "the streams over the limit");
    let mut held: Vec<_> = held.iter().map(|r| r.uri.path().to_owned()).collect();
    held.sort();
    assert_eq!(held, ["/s0", "/s1", "/s2", "/s3"]);

    // Released: the 4 allowed streams complete with 200.
    gate.open();
    let done = read_responses(&mut tcp, &[1, 3, 5, 7]).await;
    assert_eq!(done, [(1, 200), (3, 200), (5, 200), (7, 200)]);

    // The refused ones, retried on new streams of the same connection, are served.
    let mut retries = Vec::new();
    for (n, id) in (17..=23).step_by(2).enumerate() {
        retries.extend_from_slice(&h2raw::get(id, "svc", &format!("/retry{n}")));
    }
    raw::write(&mut tcp, &retries).await;
    let done = read_responses(&mut tcp, &[17, 19, 21, 23]).await;
    assert_eq!(done, [(17, 200), (19, 200), (21, 200), (23, 200)]);
    assert_eq!(up.requests().len(), 8);

    assert_still_serving_h2c(&proxy).await;
}

/// Reads frames until each of `streams` has ended (END_STREAM); returns each stream's status
/// (0 if not decodable), sorted by stream. Fails on a reset or GOAWAY.
async fn read_responses<R: AsyncRead + Unpin>(rd: &mut R, streams: &[u32]) -> Vec<(u32, u16)> {
    let mut status = std::collections::BTreeMap::new();
    let mut ended = std::collections::BTreeSet::new();
    bounded("the responses", async {
        while ended.len() < streams.len() {
            let f = h2raw::read_frame(rd).await.expect("connection closed");
            assert!(f.goaway().is_none(), "GOAWAY: {f:?}");
            assert!(f.reset_code().is_none(), "stream reset: {f:?}");
            if !streams.contains(&f.stream) {
                continue;
            }
            if f.kind == h2raw::HEADERS && !status.contains_key(&f.stream) {
                status.insert(f.stream, f.status().unwrap_or(0));
            }
            if f.is_end_stream() {
                ended.insert(f.stream);
            }
        }
    })
    .await;
    status.into_iter().collect()
}

/// A client honouring SETTINGS_MAX_CONCURRENT_STREAMS (the `h2` crate) queues its streams
/// past 4 on its side: the upstream holds 4 at once, and all 8 complete once released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_client_over_max_concurrent_streams_queues_and_all_complete() {
    let (up, gate) = Upstream::gated().await;
    let warm = Upstream::echo().await;
    let proxy = Cfg::single(up.addr)
        .backend("warm", warm.addr)
        .host_route("warm", "warm", "warm", "")
        .limits(FOUR_STREAMS)
        .start();

    let (mut send, conn) = h2_client(proxy.outbound_addr()).await;
    // A first answer means the server's SETTINGS (sent before it) are applied.
    let answer = h2_get(&mut send, get("warm", "/")).await.unwrap();
    assert_eq!(answer.0, 200);
    assert_eq!(send.current_max_send_streams(), 4);

    let mut calls = Vec::new();
    for i in 0..8 {
        let send = send.clone();
        calls.push(tokio::spawn(async move {
            let mut send = bounded("h2 ready", send.ready()).await?;
            h2_get(&mut send, get("svc", &format!("/q{i}"))).await
        }));
    }
    up.wait_requests(4).await;
    // The other 4 wait on the client's side, for a stream of the 4 to end.
    assert_eq!(up.requests().len(), 4);
    gate.open();
    for call in calls {
        let answer = bounded("queued request", call)
            .await
            .unwrap()
            .expect("stream completes");
        assert_eq!(answer, (200, Bytes::from_static(b"released")));
    }
    assert_eq!(up.requests().len(), 8);
    assert!(!conn.is_finished(), "the connection was closed");

    assert_still_serving_h2c(&proxy).await;
}
