//! A connection future shared between the task that owns it and the requests it carries.
//!
//! `h2` writes queued frames only when the connection future is polled, and that future runs
//! in one task, which a current-thread runtime polls after every task already queued. Under
//! load every request (outbound) or response (inbound) of a runtime cycle then waited for the
//! end of the cycle, and the peer sidecar got the whole cycle's worth at once: the two sidecars
//! worked in turns (a quarter of both cores idle in the mesh benchmark) instead of side by
//! side. Every [`FLUSH_AFTER`] streams opened (or answered) since the connection was last
//! polled, the request polls it at once (writing them all), with the owning task's own waker,
//! so every wake-up and readiness registration still goes to that task.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use super::keepalive::Pings;

/// Streams since the connection was last polled before a request polls it itself. 1 writes
/// every request at once (the most parallel, one TLS record and syscall each); a few keep most
/// of the batching. Measured on the mesh benchmark (`wrk -c64`, req/s against no early polls),
/// outbound side only: 1 → +13–23%, 4 → +17–20% at less CPU per request, 8 → +18%; both
/// sides: 2 to 16 within the noise of each other, 32 and (served side) 1 worse.
pub const FLUSH_AFTER: u32 = 4;

pub struct Driver<F: Future> {
    conn: Mutex<Option<Pin<Box<F>>>>,
    /// What the connection ended with, when an early poll saw it end.
    ended: Mutex<Option<F::Output>>,
    /// The owning task's waker, from its last poll.
    waker: Mutex<Option<Waker>>,
    streams: AtomicU32,
    after: u32,
}

/// A stream was opened or answered (type-erased, for hyper's executor).
pub trait Tick: Send + Sync {
    fn tick(&self);
}

impl<F> Driver<F>
where
    F: Future + Send + 'static,
    F::Output: Send,
{
    /// `after`: streams since the last poll that make a request poll the connection itself.
    pub fn new(after: u32) -> Arc<Driver<F>> {
        Arc::new(Driver {
            conn: Mutex::new(None),
            ended: Mutex::new(None),
            waker: Mutex::new(None),
            streams: AtomicU32::new(0),
            after,
        })
    }

    pub fn install(&self, conn: F) {
        *lock(&self.conn) = Some(Box::pin(conn));
    }

    /// Polls the connection from the task that owns it.
    pub fn poll_owner(&self, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        {
            let mut w = lock(&self.waker);
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        if let Some(out) = lock(&self.ended).take() {
            return Poll::Ready(Some(out));
        }
        self.poll_conn(cx)
    }

    /// Runs `f` on the connection, if it is still there.
    pub fn with_conn(&self, f: impl FnOnce(Pin<&mut F>)) {
        if let Some(conn) = lock(&self.conn).as_mut() {
            f(conn.as_mut());
        }
    }

    /// One poll of the connection outside its task, on that task's behalf.
    fn poll_now(&self) {
        let waker = lock(&self.waker).clone();
        if let Some(waker) = waker {
            if let Poll::Ready(Some(out)) = self.poll_conn(&mut Context::from_waker(&waker)) {
                *lock(&self.ended) = Some(out);
                waker.wake();
            }
        }
    }

    /// `Ready(None)`: the connection is gone (ended earlier, or closed).
    fn poll_conn(&self, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        self.streams.store(0, Ordering::Relaxed);
        // Never contended on a worker (one thread); elsewhere a busy lock means the
        // connection is being polled right now, which is what was wanted.
        let Ok(mut conn) = self.conn.try_lock() else {
            return Poll::Pending;
        };
        let Some(f) = conn.as_mut() else {
            return Poll::Ready(None);
        };
        let out = std::task::ready!(f.as_mut().poll(cx));
        *conn = None;
        Poll::Ready(Some(out))
    }
}

impl<F> Tick for Driver<F>
where
    F: Future + Send + 'static,
    F::Output: Send,
{
    fn tick(&self) {
        if self.streams.fetch_add(1, Ordering::Relaxed) + 1 >= self.after {
            self.poll_now();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spawns the task that owns an upstream HTTP/2 connection until it ends, or until one of its
/// keep-alive `pings` goes unanswered; `on_end` runs then (also when the runtime drops the
/// task, which closes the connection).
pub fn spawn_client<F>(
    conn: F,
    on_end: impl FnOnce() + Send + 'static,
    pings: Option<Pings>,
) -> Arc<Driver<F>>
where
    F: Future<Output = Result<(), h2::Error>> + Send + 'static,
{
    let driver = Driver::new(FLUSH_AFTER);
    driver.install(conn);
    let owner = Owner {
        driver: driver.clone(),
        on_end: Some(on_end),
    };
    tokio::spawn(async move {
        let conn = std::future::poll_fn(|cx| owner.driver.poll_owner(cx));
        let ended = match pings {
            None => conn.await,
            Some(pings) => tokio::select! {
                biased;
                ended = conn => ended,
                // Dropping the connection fails its streams: their requests see a reset.
                () = pings.unanswered() => None,
            },
        };
        if let Some(Err(error)) = ended {
            tracing::debug!(%error, "upstream HTTP/2 connection ended with an error");
        }
        drop(owner);
    });
    driver
}

/// Closes the connection and runs `on_end` when the owning task ends or is dropped.
pub struct Owner<F: Future, E: FnOnce()> {
    pub driver: Arc<Driver<F>>,
    pub on_end: Option<E>,
}

impl<F: Future, E: FnOnce()> Drop for Owner<F, E> {
    fn drop(&mut self) {
        lock(&self.driver.conn).take();
        if let Some(f) = self.on_end.take() {
            f();
        }
    }
}

/// hyper's executor for a served HTTP/2 connection: spawns each stream's task, and counts the
/// stream towards an early poll of the connection when it has answered.
#[derive(Clone)]
pub struct StreamExec(pub Weak<dyn Tick>);

impl<Fut> hyper::rt::Executor<Fut> for StreamExec
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn execute(&self, fut: Fut) {
        let tick = self.0.clone();
        tokio::spawn(async move {
            fut.await;
            if let Some(t) = tick.upgrade() {
                t.tick();
            }
        });
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
        let driver = spawn_client(
            conn(probe.clone()),
            move || flag.store(true, Ordering::SeqCst),
            None,
        );
        until(|| probe.polls.load(Ordering::SeqCst) == 1).await;

        // Fewer than FLUSH_AFTER streams: left to the connection's task.
        for _ in 1..FLUSH_AFTER {
            driver.tick();
        }
        assert_eq!(probe.polls.load(Ordering::SeqCst), 1);
        // The next one polls it at once, without this task yielding.
        driver.tick();
        assert_eq!(probe.polls.load(Ordering::SeqCst), 2);
        // ... and the count starts over.
        driver.tick();
        assert_eq!(probe.polls.load(Ordering::SeqCst), 2);

        // The waker it was polled with is the task's: waking it runs the task.
        probe.waker.lock().unwrap().take().unwrap().wake();
        until(|| probe.polls.load(Ordering::SeqCst) == 3).await;

        // A connection that ends during an early poll ends its task too.
        probe.finish.store(true, Ordering::SeqCst);
        for _ in 0..FLUSH_AFTER {
            driver.tick();
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
            let d = spawn_client(
                conn(probe.clone()),
                move || flag.store(true, Ordering::SeqCst),
                None,
            );
            until(|| probe.polls.load(Ordering::SeqCst) == 1).await;
            d
        });
        drop(rt);
        assert!(ended.load(Ordering::SeqCst));
        assert!(driver.conn.lock().unwrap().is_none());
        // Nothing to poll any more.
        for _ in 0..FLUSH_AFTER {
            driver.tick();
        }
        assert_eq!(probe.polls.load(Ordering::SeqCst), 1);
    }
}
