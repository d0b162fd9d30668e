//! Streams a client cancels before their response: the paced form of HTTP/2 "rapid reset"
//! (CVE-2023-44487).
//!
//! `h2` ends a connection whose client resets more than 20 streams *before the server took
//! them in*. A client that opens and resets a few streams at a time, letting the server take
//! each batch in first, never trips that count: every stream still costs a task, routing and
//! the start of an upstream call, for ever. So each client connection counts its requests and
//! those whose handling was dropped before a response head (a reset stream, or the connection
//! ending under it). Once at least [`MIN_CANCELLED`] were cancelled and they are at least half
//! of all its requests, the connection is closed (as Envoy does with its "premature resets").
//! An HTTP/1.1 connection can cancel at most its last request, so only HTTP/2 ever trips it.
//!
//! Owns: [`Resets`] (one per client connection; `tripped` resolves once it should close) and
//! [`Tracked`] (a request's handling, counted on creation and when dropped unfinished).
//! Doesn't own: closing the connection and counting that (`proxy::serve_http`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Notify;

/// Cancelled requests a connection may have before the half-of-all rule closes it.
pub const MIN_CANCELLED: u32 = 100;

#[derive(Default)]
pub struct Resets {
    requests: AtomicU32,
    cancelled: AtomicU32,
    tripped: AtomicBool,
    notify: Notify,
}

impl Resets {
    pub fn new() -> Arc<Resets> {
        Arc::default()
    }

    /// Counts a request whose handling is `fut`; dropping the result before it completes
    /// counts a cancellation.
    pub fn track<F: Future>(self: &Arc<Self>, fut: F) -> Tracked<F> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        Tracked {
            fut,
            resets: Some(self.clone()),
        }
    }

    fn cancelled(&self) {
        let cancelled = self.cancelled.fetch_add(1, Ordering::Relaxed) + 1;
        let requests = self.requests.load(Ordering::Relaxed);
        if cancelled >= MIN_CANCELLED
            && u64::from(cancelled) * 2 >= u64::from(requests)
            && !self.tripped.swap(true, Ordering::AcqRel)
        {
            self.notify.notify_waiters();
        }
    }

    /// Resolves once the connection should be closed.
    pub async fn tripped(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.tripped.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Requests and cancelled requests so far.
    pub fn counts(&self) -> (u32, u32) {
        (
            self.requests.load(Ordering::Relaxed),
            self.cancelled.load(Ordering::Relaxed),
        )
    }
}

pin_project_lite::pin_project! {
    /// A request's handling, counted as cancelled if dropped before it completes.
    pub struct Tracked<F> {
        #[pin]
        fut: F,
        // `None` once completed.
        resets: Option<Arc<Resets>>,
    }

    impl<F> PinnedDrop for Tracked<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(resets) = this.project().resets.take() {
                resets.cancelled();
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
