//! Streams a client cancels before their response: the paced form of HTTP/2 "rapid reset"
//! (CVE-2023-44487).
//!
//! `h2` ends a connection whose client resets more than 20 streams *before the server took
//! them in*. A client that opens and resets a few streams at a time, letting the server take
//! each batch in first, never trips that count: every stream still costs a task, routing and
//! the start of an upstream call, for ever. So each client connection counts its requests and
//! those cancelled early: handling dropped before a response head (a reset stream, or the
//! connection ending under it) less than [`EARLY`] after it began. Requests cancelled later (a
//! caller's own timeout of a second or more on a slow app) do not count, so a peer sidecar
//! timing out on a struggling app is not mistaken for an attacker. Once at least
//! [`MIN_CANCELLED`] were cancelled early and they are at least half of all its requests, the
//! connection should end (Envoy's "premature resets" rule, with its numbers halved and its 1 s).
//! An HTTP/1.1 connection can cancel at most its last request, so only HTTP/2 ever trips it.
//!
//! Owns: [`Resets`] (one per client connection; `tripped` resolves once it should end) and
//! [`Tracked`] (a request's handling, counted on creation and when dropped unfinished early).
//! Doesn't own: ending the connection (GOAWAY, then at most [`GRACE`] for the requests in
//! flight) and counting that (`proxy::Ends`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Notify;
use tokio::time::{Duration, Instant};

/// Early-cancelled requests a connection may have before the half-of-all rule ends it.
pub const MIN_CANCELLED: u64 = 100;

/// A request cancelled sooner than this after it began counts as cancelled early.
pub const EARLY: Duration = Duration::from_secs(1);

/// How long a tripped connection's requests in flight may still run after its GOAWAY. A client
/// that does not answer the GOAWAY's PING would otherwise hold it until keep-alive gives up.
pub const GRACE: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Resets {
    requests: AtomicU64,
    cancelled: AtomicU64,
    tripped: AtomicBool,
    notify: Notify,
}

impl Resets {
    pub fn new() -> Arc<Resets> {
        Arc::default()
    }

    /// Counts a request whose handling is `fut`; dropping the result before it completes, and
    /// within [`EARLY`], counts an early cancellation.
    pub fn track<F: Future>(self: &Arc<Self>, fut: F) -> Tracked<F> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        Tracked {
            fut,
            resets: Some(self.clone()),
            began: Instant::now(),
        }
    }

    fn cancelled(&self) {
        let cancelled = self.cancelled.fetch_add(1, Ordering::Relaxed) + 1;
        let requests = self.requests.load(Ordering::Relaxed);
        if cancelled >= MIN_CANCELLED
            && cancelled * 2 >= requests
            && !self.tripped.swap(true, Ordering::AcqRel)
        {
            self.notify.notify_waiters();
        }
    }

    /// Resolves once the connection should be closed.
    pub async fn tripped(&self) {
        super::wake::until(&self.notify, || self.tripped.load(Ordering::Acquire)).await;
    }

    /// Requests and early-cancelled requests so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.cancelled.load(Ordering::Relaxed),
        )
    }
}

pin_project_lite::pin_project! {
    /// A request's handling, counted as cancelled early if dropped unfinished within [`EARLY`].
    pub struct Tracked<F> {
        #[pin]
        fut: F,
        // `None` once completed.
        resets: Option<Arc<Resets>>,
        began: Instant,
    }

    impl<F> PinnedDrop for Tracked<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(resets) = this.resets.take() {
                if this.began.elapsed() < EARLY {
                    resets.cancelled();
                }
            }
        }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = this.fut.poll(cx);
        if out.is_ready() {
            *this.resets = None;
        }
        out
    }
}

#[cfg(test)]
mod tests;
