//! One tokio timer per connection and purpose, reused request after request.
//!
//! A new `tokio::time::Sleep` per request costs an allocation, an insertion into the runtime's
//! timer wheel when first polled, and a removal (both under the time driver's lock) when the
//! request ends first, as it nearly always does: about 500 instructions per request for
//! hyper's header-read timer alone, as much again for the route timeout. A timer kept by the
//! connection stays in the wheel between requests; moving it to a *later* deadline is one
//! atomic exchange (tokio re-files it only when the old deadline comes round). So each purpose
//! gets its own slot: deadlines of one purpose only move forward.
//!
//! Owns: [`ConnTimer`] (a connection's slot, and hyper's `Timer` for its HTTP/1.1 server) and
//! [`Recycled`] (a sleep borrowed from the slot; dropping it puts the timer back). A slot whose
//! timer is in use (concurrent HTTP/2 requests) hands out a fresh timer instead. A timer left in
//! the slot may still fire at its last deadline: it then wakes the task that last polled it
//! once, for nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

type Slot = Arc<Mutex<Option<Pin<Box<Sleep>>>>>;

/// A connection's reusable timer for one purpose.
#[derive(Clone, Default)]
pub struct ConnTimer {
    slot: Slot,
}

impl ConnTimer {
    pub fn new() -> ConnTimer {
        ConnTimer::default()
    }

    /// A sleep until `deadline`: the connection's timer moved there when it is free, else a
    /// new one.
    pub fn sleep_until(&self, deadline: Instant) -> Recycled {
        let kept = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let sleep = match kept {
            Some(mut sleep) => {
                sleep.as_mut().reset(deadline);
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        Recycled {
            sleep: Some(sleep),
            home: self.slot.clone(),
        }
    }
}

/// A sleep on a connection's timer; dropping it puts the timer back for the next request.
pub struct Recycled {
    sleep: Option<Pin<Box<Sleep>>>,
    home: Slot,
}

impl Recycled {
    pub fn reset(&mut self, deadline: Instant) {
        if let Some(s) = &mut self.sleep {
            s.as_mut().reset(deadline);
        }
    }
}

impl Future for Recycled {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.sleep {
            Some(s) => s.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        let mut slot = self.home.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = self.sleep.take();
        }
    }
}

impl hyper::rt::Sleep for Recycled {}

/// hyper's HTTP/1.1 server asks for a new header-read timer for every request; this hands it
/// the connection's own.
impl hyper::rt::Timer for ConnTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(ConnTimer::sleep_until(self, Instant::now() + duration))
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(ConnTimer::sleep_until(self, deadline.into()))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: std::time::Instant) {
        match sleep.as_mut().downcast_mut_pin::<Recycled>() {
            Some(mut s) => s.reset(new_deadline.into()),
            None => *sleep = hyper::rt::Timer::sleep_until(self, new_deadline),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_timer_fires_at_its_deadline_and_comes_back_for_the_next_request() {
        let timer = ConnTimer::new();
        let start = Instant::now();
        timer.sleep_until(start + Duration::from_secs(5)).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
        assert!(timer.slot.lock().unwrap().is_some(), "back in its slot");

        // Reused, earlier and later than its last deadline.
        let at = Instant::now();
        timer.sleep_until(at + Duration::from_secs(1)).await;
        assert_eq!(Instant::now() - at, Duration::from_secs(1));
        let at = Instant::now();
        timer.sleep_until(at + Duration::from_secs(30)).await;
        assert_eq!(Instant::now() - at, Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_in_use_leaves_concurrent_requests_their_own() {
        let timer = ConnTimer::new();
        let now = Instant::now();
        let first = timer.sleep_until(now + Duration::from_secs(10));
        let second = timer.sleep_until(now + Duration::from_secs(2));
        // The second fires on its own deadline, not the first's.
        second.await;
        assert_eq!(Instant::now() - now, Duration::from_secs(2));
        // The second went home first; the first, dropped unfired, finds the slot taken.
        drop(first);
        assert!(timer.slot.lock().unwrap().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_ends_first_leaves_the_timer_armed_for_later() {
        let timer = ConnTimer::new();
        let now = Instant::now();
        {
            let mut sleep = std::pin::pin!(timer.sleep_until(now + Duration::from_secs(10)));
            // Polled once (registered), then the request ends.
            let mut cx = Context::from_waker(std::task::Waker::noop());
            assert!(sleep.as_mut().poll(&mut cx).is_pending());
        }
        // The next request moves it later: it must not fire at the old deadline.
        let next = timer.sleep_until(now + Duration::from_secs(20));
        let fired = tokio::time::timeout(Duration::from_secs(15), next).await;
        assert!(fired.is_err(), "fired at the previous request's deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn hyper_resets_move_the_same_timer() {
        let timer = ConnTimer::new();
        // hyper's deadlines are std instants; under paused time, read them off tokio's clock.
        let now = Instant::now().into_std();
        let mut sleep = hyper::rt::Timer::sleep_until(&timer, now + Duration::from_secs(60));
        hyper::rt::Timer::reset(&timer, &mut sleep, now + Duration::from_secs(3));
        sleep.await;
        assert_eq!(Instant::now().into_std() - now, Duration::from_secs(3));
    }
}
