//! The access log: one JSON line per request, the cross-service audit trail.
//!
//! Owns: the line format (no bodies, no query strings, no headers at all besides what the
//! fields name), a writer thread fed by a bounded channel (the request path never blocks on
//! IO: when the channel is full the line is dropped and counted), and reopening the file on
//! SIGUSR1 or when it was rotated away.

use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use prometheus::IntCounter;
use serde::Serialize;

/// Lines buffered between the workers and the writer thread.
const QUEUE: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    File(PathBuf),
}

/// One request, as logged. Field names are the contract of docs/observability.md.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    pub timestamp: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub request_id: &'a str,
    pub direction: &'static str,
    pub peer_identity: Option<&'a str>,
    pub method: &'a str,
    pub authority: &'a str,
    /// Path only: the query string never appears.
    pub path: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    pub route: &'a str,
    pub backend: &'a str,
    pub upstream: Option<String>,
    pub attempts: u32,
    /// `x-outrider-error` reason when the proxy answered itself.
    pub error: Option<&'static str>,
    pub mcp_method: &'a str,
    pub mcp_tool: &'a str,
}

enum Msg {
    Line(Vec<u8>),
    Reopen,
}

pub struct AccessLog {
    tx: SyncSender<Msg>,
    dropped: IntCounter,
}

impl AccessLog {
    /// Opens the target and starts the writer thread.
    pub fn start(target: Target, dropped: IntCounter) -> std::io::Result<AccessLog> {
        let out = Output::open(&target)?;
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("outrider-access-log".into())
            .spawn(move || writer(out, target, rx))?;
        Ok(AccessLog { tx, dropped })
    }

    pub fn log(&self, entry: &Entry<'_>) {
        let mut line = Vec::with_capacity(384);
        if serde_json::to_writer(&mut line, entry).is_err() {
            return;
        }
        line.push(b'\n');
        match self.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
    }

    /// Reopen the file (logrotate's `postrotate`: send SIGUSR1).
    pub fn reopen(&self) {
        let _ = self.tx.try_send(Msg::Reopen);
    }
}

pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

enum Output {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File {
        w: std::io::BufWriter<std::fs::File>,
        ino: u64,
    },
}

impl Output {
    fn open(target: &Target) -> std::io::Result<Output> {
        use std::os::unix::fs::MetadataExt;
        Ok(match target {
            Target::Stdout => Output::Stdout(std::io::BufWriter::new(std::io::stdout())),
            Target::File(p) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?;
                let ino = f.metadata()?.ino();
                Output::File {
                    w: std::io::BufWriter::with_capacity(64 * 1024, f),
                    ino,
                }
            }
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Stdout(w) => w,
            Output::File { w, .. } => w,
        }
    }

    /// True when the path no longer names the file we write (moved away or deleted).
    fn rotated(&self, target: &Target) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (self, target) {
            (Output::File { ino, .. }, Target::File(p)) => {
                std::fs::metadata(p).map_or(true, |m| m.ino() != *ino)
            }
            _ => false,
        }
    }
}

/// How often a busy writer looks at its queue: senders never wake it while it is busy.
const POLL: Duration = Duration::from_millis(20);

fn writer(mut out: Output, target: Target, rx: Receiver<Msg>) {
    let mut last_check = std::time::Instant::now();
    let mut busy = false;
    loop {
        // Idle: block until something arrives (one wake-up per idle period). Busy: sleep and
        // drain, so a steady stream of lines costs no wake-up per line.
        let first = if busy {
            std::thread::sleep(POLL);
            match rx.try_recv() {
                Ok(m) => Some(m),
                Err(std::sync::mpsc::TryRecvError::Empty) => None,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    let _ = out.writer().flush();
                    return;
                }
            }
        } else {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = out.writer().flush();
                    return;
                }
            }
        };
        busy = first.is_some();
        let mut reopen = false;
        let mut next = first;
        while let Some(m) = next {
            match m {
                Msg::Line(l) => {
                    let _ = out.writer().write_all(&l);
                }
                Msg::Reopen => reopen = true,
            }
            next = rx.try_recv().ok();
        }
        let _ = out.writer().flush();
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = std::time::Instant::now();
            reopen |= out.rotated(&target);
        }
        if reopen {
            match Output::open(&target) {
                Ok(o) => out = o,
                Err(error) => {
                    tracing::error!(%error, "cannot reopen the access log; keeping the old file")
                }
            }
        }
    }
}
