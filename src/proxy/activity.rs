//! Whether a client connection is in use, for `limits.idle_timeout`.
//!
//! A connection is busy from the start of a request until its response body has ended (an SSE
//! stream keeps it busy however quiet it is), and idle otherwise, from the moment it opened or
//! its last request ended.
//!
//! Owns: [`Activity`] (one per client connection: requests in flight, and since when none) and
//! [`Busy`] (held by one request, then by its response body).
//! Doesn't own: closing the connection (`proxy::Ends`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::time::{Duration, Instant};

pub struct Activity {
    busy: AtomicUsize,
    /// When the last request ended, in nanoseconds after `opened` (0: none has yet).
    idle_since: AtomicU64,
    opened: Instant,
}

/// One request's share of its connection's activity, from its start until it is dropped (with
/// the response body, or with the request when it ends without one).
pub struct Busy(Arc<Activity>);

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            opened: Instant::now(),
        })
    }

    /// A request starts.
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// Resolves once the connection has had nothing in flight for `timeout`. Wakes once per
    /// `timeout` while requests are in flight, never per request.
    pub async fn idle_for(&self, timeout: Duration) {
        loop {
            let now = Instant::now();
            let deadline = match self.busy.load(Ordering::Acquire) {
                0 => {
                    let since = Duration::from_nanos(self.idle_since.load(Ordering::Acquire));
                    self.opened + since + timeout
                }
                _ => now + timeout,
            };
            if deadline <= now {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        // The connection's tasks all run on one worker thread, so the store lands before
        // `idle_for` can look again; the clock is read only when the last request ends.
        if a.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            let since = u64::try_from(a.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
            a.idle_since.store(since, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_from_the_start_resolves_after_the_timeout() {
        let a = Activity::new();
        let t0 = Instant::now();
        a.idle_for(Duration::from_secs(5)).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_it_busy_and_its_end_restarts_the_clock() {
        let a = Activity::new();
        let busy = a.begin();
        let t0 = Instant::now();
        let watcher = tokio::spawn({
            let a = a.clone();
            async move { a.idle_for(Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert!(!watcher.is_finished(), "idle while a request was in flight");
        drop(busy);
        watcher.await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_secs(17), "5 s after the end");
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_last_of_concurrent_requests_starts_the_idle_clock() {
        let a = Activity::new();
        let (one, two) = (a.begin(), a.begin());
        let t0 = Instant::now();
        let watcher = tokio::spawn({
            let a = a.clone();
            async move { a.idle_for(Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(one);
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert!(
            !watcher.is_finished(),
            "idle while one request was in flight"
        );
        drop(two);
        watcher.await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_secs(13));
    }
}
