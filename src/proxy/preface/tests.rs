use std::io;
use std::time::Duration;

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::{PrefaceDeadline, PREFACE};

const LIMIT: Duration = Duration::from_secs(10);

fn pair() -> (PrefaceDeadline<DuplexStream>, DuplexStream) {
    let (server, client) = duplex(1024);
    (PrefaceDeadline::new(server, LIMIT), client)
}

/// Reads what is there (or waits for it); the deadline error comes out of here.
async fn read_some(io: &mut PrefaceDeadline<DuplexStream>) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; 64];
    let n = io.read(&mut buf).await?;
    Ok(buf[..n].to_vec())
}

#[tokio::test(start_paused = true)]
async fn a_stalled_prefix_times_out_at_the_deadline() {
    let (mut server, mut client) = pair();
    client.write_all(b"P").await.unwrap();
    assert_eq!(read_some(&mut server).await.unwrap(), b"P");
    assert!(server.armed());
    let start = tokio::time::Instant::now();
    let err = read_some(&mut server).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(start.elapsed(), LIMIT);
}

#[tokio::test(start_paused = true)]
async fn the_whole_preface_in_pieces_disarms_it() {
    let (mut server, mut client) = pair();
    let (a, b) = PREFACE.split_at(7);
    client.write_all(a).await.unwrap();
    assert_eq!(read_some(&mut server).await.unwrap(), a);
    assert!(server.armed());
    // SETTINGS may follow in the same read: only the preface's bytes are compared.
    client.write_all(b).await.unwrap();
    client
        .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let got = read_some(&mut server).await.unwrap();
    assert_eq!(&got[..b.len()], b);
    assert!(!server.armed());
    // Silence after the preface is the HTTP/2 server's business (keep-alive pings).
    let waited = tokio::time::timeout(LIMIT * 3, read_some(&mut server)).await;
    assert!(waited.is_err(), "a disarmed read must not fail: {waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_byte_off_the_preface_disarms_it() {
    let (mut server, mut client) = pair();
    // A POST on a detecting listener: HTTP/1.1's own header timer takes over.
    client.write_all(b"POST / HTTP/1.1\r\n").await.unwrap();
    read_some(&mut server).await.unwrap();
    assert!(!server.armed());
    let waited = tokio::time::timeout(LIMIT * 3, read_some(&mut server)).await;
    assert!(waited.is_err(), "a disarmed read must not fail: {waited:?}");
}

#[tokio::test(start_paused = true)]
async fn nothing_at_all_times_out() {
    let (mut server, _client) = pair();
    let err = read_some(&mut server).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn writes_pass_through_while_armed() {
    let (mut server, mut client) = pair();
    server.write_all(b"hello").await.unwrap();
    server.flush().await.unwrap();
    let mut buf = [0u8; 5];
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello");
    assert!(server.armed());
}
