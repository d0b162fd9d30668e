//! Polling a future that waits for a rare event only when that event woke it.
//!
//! A connection's task is polled for every read and write; the drain signal beside it (a
//! `watch` wait) re-checks the channel and re-registers on each of those polls. [`OnWake`]
//! polls it on its first poll and after its own wake-up only, and otherwise costs a lock and
//! an atomic swap. [`until`] is the wait on a flag behind a `Notify` (no open connections, a
//! connection to end).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use tokio::sync::Notify;

/// Resolves once `ready()` holds, checking again after each `notify_waiters` on `notify`
/// (registered before each check, so a notification between check and wait is not missed).
pub async fn until(notify: &Notify, ready: impl Fn() -> bool) {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if ready() {
            return;
        }
        notified.await;
    }
}

pub struct OnWake<F> {
    fut: Pin<Box<F>>,
    flag: Arc<Flag>,
    /// `flag` as a waker, made once.
    waker: Waker,
}

struct Flag {
    woken: AtomicBool,
    /// The waker of the task polling the [`OnWake`], kept current.
    task: Mutex<Option<Waker>>,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(t) = task {
            t.wake();
        }
    }
}

impl<F: Future> OnWake<F> {
    pub fn new(fut: F) -> OnWake<F> {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: Mutex::new(None),
        });
        OnWake {
            fut: Box::pin(fut),
            waker: Waker::from(flag.clone()),
            flag,
        }
    }
}

impl<F: Future> Future for OnWake<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        {
            let mut task = self
                .flag
                .task
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        if !self.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let this = &mut *self;
        this.fut
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its polls; ready once `open` is set, waking the last waker it was given.
    #[derive(Default)]
    struct Gate {
        polls: AtomicUsize,
        open: AtomicBool,
        waker: Mutex<Option<Waker>>,
    }

    impl Gate {
        fn wait(self: &Arc<Self>) -> impl Future<Output = ()> {
            let gate = self.clone();
            std::future::poll_fn(move |cx| {
                gate.polls.fetch_add(1, Ordering::SeqCst);
                if gate.open.load(Ordering::SeqCst) {
                    return Poll::Ready(());
                }
                *gate.waker.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            })
        }

        fn open(&self) {
            self.open.store(true, Ordering::SeqCst);
            if let Some(w) = self.waker.lock().unwrap().take() {
                w.wake();
            }
        }
    }

    /// Counts the wake-ups the polling task gets.
    #[derive(Default)]
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_inner_future_is_polled_first_and_then_only_after_its_wake_up() {
        let gate = Arc::new(Gate::default());
        let task = Arc::new(Task::default());
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        let mut f = OnWake::new(gate.wait());
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        assert_eq!(gate.polls.load(Ordering::SeqCst), 1);
        for _ in 0..5 {
            assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        }
        assert_eq!(
            gate.polls.load(Ordering::SeqCst),
            1,
            "not woken: not polled"
        );
        gate.open();
        assert_eq!(
            task.0.load(Ordering::SeqCst),
            1,
            "its wake-up reaches the task"
        );
        assert!(Pin::new(&mut f).poll(&mut cx).is_ready());
        assert_eq!(gate.polls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_wake_up_reaches_the_latest_task_waker() {
        let gate = Arc::new(Gate::default());
        let (first, second) = (Arc::new(Task::default()), Arc::new(Task::default()));
        let mut f = OnWake::new(gate.wait());
        let w1 = Waker::from(first.clone());
        assert!(Pin::new(&mut f)
            .poll(&mut Context::from_waker(&w1))
            .is_pending());
        let w2 = Waker::from(second.clone());
        assert!(Pin::new(&mut f)
            .poll(&mut Context::from_waker(&w2))
            .is_pending());
        gate.open();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }
}
