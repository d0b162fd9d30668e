//! The driver of one upstream HTTP/2 connection, shared between its task and the requests.
//!
//! `h2` writes queued frames only when the connection future is polled, and that future runs
//! in its own task, which a current-thread runtime polls after every task already queued. So
//! under load every request of a runtime cycle waited for the end of the cycle, and the peer
//! sidecar got the whole cycle's requests at once: the two sidecars worked in turns (a quarter
//! of both cores idle in the mesh benchmark) instead of side by side. A request that finds
//! [`FLUSH_AFTER`] streams opened since the connection was last polled polls it at once
//! (writing them all), with the connection task's own waker, so every wake-up and readiness
//! registration still goes to that task.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

type ConnFuture = Pin<Box<dyn Future<Output = Result<(), h2::Error>> + Send>>;

/// Streams opened without the connection being polled before a request writes them itself.
/// 1 writes every request at once (the most parallel, one TLS record and syscall each); a few
/// keep most of the batching. Measured on the mesh benchmark (`wrk -c64`, req/s against no
/// early writes): 1 → +13–23%, 4 → +17–20% at less CPU per request, 8 → +18%.
pub const FLUSH_AFTER: u32 = 4;

pub struct Driver {
    conn: Mutex<Option<ConnFuture>>,
    /// The connection task's waker, from its last poll.
    waker: Mutex<Option<Waker>>,
    opened: AtomicU32,
}

impl Driver {
    /// Spawns the task that drives `conn` until it ends; `on_end` runs then (also when the
    /// runtime drops the task).
    pub fn spawn<F>(conn: F, on_end: impl FnOnce() + Send + 'static) -> Arc<Driver>
    where
        F: Future<Output = Result<(), h2::Error>> + Send + 'static,
    {
        let driver = Arc::new(Driver {
            conn: Mutex::new(Some(Box::pin(conn))),
            waker: Mutex::new(None),
            opened: AtomicU32::new(0),
        });
        let task = Ended {
            driver: driver.clone(),
            on_end: Some(on_end),
        };
        tokio::spawn(async move {
            if let Err(error) = std::future::poll_fn(|cx| task.driver.poll_task(cx)).await {
                tracing::debug!(%error, "upstream HTTP/2 connection ended with an error");
            }
            drop(task);
        });
        driver
    }

    /// A stream was opened: writes the pending streams now when enough have queued up.
    pub fn opened(&self) {
        if self.opened.fetch_add(1, Ordering::Relaxed) + 1 >= FLUSH_AFTER {
            self.poll_now();
        }
    }

    fn poll_task(&self, cx: &mut Context<'_>) -> Poll<Result<(), h2::Error>> {
        {
            let mut w = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        self.poll_conn(cx)
    }

    /// One poll of the connection outside its task, on that task's behalf.
    fn poll_now(&self) {
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(waker) = waker {
            if let Poll::Ready(result) = self.poll_conn(&mut Context::from_waker(&waker)) {
                if let Err(error) = result {
                    tracing::debug!(%error, "upstream HTTP/2 connection ended with an error");
                }
                // The task sees the connection gone and ends.
                waker.wake();
            }
        }
    }

    fn poll_conn(&self, cx: &mut Context<'_>) -> Poll<Result<(), h2::Error>> {
        self.opened.store(0, Ordering::Relaxed);
        // Never contended on a worker (one thread); elsewhere a busy lock means the
        // connection is being polled right now, which is what was wanted.
        let Ok(mut conn) = self.conn.try_lock() else {
            return Poll::Pending;
        };
        let Some(f) = conn.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let result = f.as_mut().poll(cx);
        if result.is_ready() {
            *conn = None;
        }
        result
    }
}

/// Drops the connection (closing it) and runs `on_end` when the task ends or is dropped.
struct Ended<F: FnOnce()> {
    driver: Arc<Driver>,
    on_end: Option<F>,
}

impl<F: FnOnce()> Drop for Ended<F> {
    fn drop(&mut self) {
        self.driver
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(f) = self.on_end.take() {
            f();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// A stand-in connection: counts its polls, keeps the waker it was polled with, and ends
    /// when told to.
    #[derive(Default)]
    struct Probe {
        polls: AtomicU32,
        waker: Mutex<Option<Waker>>,
        finish: AtomicBool,
    }

    fn conn(p: Arc<Probe>) -> impl Future<Output = Result<(), h2::Error>> + Send {
        std::future::poll_fn(move |cx| {
            p.polls.fetch_add(1, Ordering::SeqCst);
            *p.waker.lock().unwrap() = Some(cx.waker().clone());
            if p.finish.load(Ordering::SeqCst) {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
    }

    async fn until(what: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while !what() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition not reached"
            );
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn enough_opened_streams_poll_the_connection_in_place_on_its_tasks_behalf() {
        let probe = Arc::new(Probe::default());
        let ended = Arc::new(AtomicBool::new(false));
        let flag = ended.clone();
        let driver = Driver::spawn(conn(probe.clone()), move || {
            flag.store(true, Ordering::SeqCst)
        });
        until(|| probe.polls.load(Ordering::SeqCst) == 1).await;

        // Fewer than FLUSH_AFTER streams: left to the connection's task.
        for _ in 1..FLUSH_AFTER {
            driver.opened();
        }
        assert_eq!(probe.polls.load(Ordering::SeqCst), 1);
        // The next one polls it at once, without this task yielding.
        driver.opened();
        assert_eq!(probe.polls.load(Ordering::SeqCst), 2);
        // ... and the count starts over.
        driver.opened();
        assert_eq!(probe.polls.load(Ordering::SeqCst), 2);

        // The waker it was polled with is the task's: waking it runs the task.
        probe.waker.lock().unwrap().take().unwrap().wake();
        until(|| probe.polls.load(Ordering::SeqCst) == 3).await;

        // A connection that ends during an early poll ends its task too.
        probe.finish.store(true, Ordering::SeqCst);
        for _ in 0..FLUSH_AFTER {
            driver.opened();
        }
        assert_eq!(probe.polls.load(Ordering::SeqCst), 4);
        until(|| ended.load(Ordering::SeqCst)).await;
        assert!(
            driver.conn.lock().unwrap().is_none(),
            "the connection is dropped"
        );
    }

    #[test]
    fn a_dropped_task_drops_the_connection_and_reports_the_end() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let probe = Arc::new(Probe::default());
        let ended = Arc::new(AtomicBool::new(false));
        let flag = ended.clone();
        let driver = rt.block_on(async {
            let d = Driver::spawn(conn(probe.clone()), move || {
                flag.store(true, Ordering::SeqCst)
            });
            until(|| probe.polls.load(Ordering::SeqCst) == 1).await;
            d
        });
        drop(rt);
        assert!(ended.load(Ordering::SeqCst));
        assert!(driver.conn.lock().unwrap().is_none());
        // Nothing to poll any more.
        for _ in 0..FLUSH_AFTER {
            driver.opened();
        }
        assert_eq!(probe.polls.load(Ordering::SeqCst), 1);
    }
}
