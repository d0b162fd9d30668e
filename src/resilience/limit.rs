//! Circuit-breaker concurrency limits of one backend: `max_concurrent_requests` active
//! requests and at most `max_pending` requests queued for a slot. Beyond that: fail fast.
//!
//! Owns: `LimitSettings`, `Limiter`, `Permit`, `Overloaded`. Does not own: the 503
//! `overloaded` response (the caller maps `Overloaded`), nor hyper's own connection pool.
//!
//! Design: a tokio `Semaphore` with `max_concurrent_requests` permits. `acquire` first tries
//! `try_acquire_owned`; when no permit is free it joins the queue only if it can reserve one
//! of `max_pending` pending slots (an atomic counter, reserved with a compare-and-swap loop
//! and released by a guard, also on cancellation), else it returns `Overloaded` at once. So
//! at most `max_pending` requests wait; how long they wait is bounded by the caller's route
//! timeout (dropping the `acquire` future leaves the queue cleanly). The tokio semaphore is
//! fair (FIFO), so queued requests are served in arrival order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Envoy's circuit-breaker defaults.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 1024;
pub const DEFAULT_MAX_PENDING: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    pub max_concurrent_requests: usize,
    pub max_pending: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_pending: DEFAULT_MAX_PENDING,
        }
    }
}

/// The backend is at its concurrency and pending limits: answer 503 `overloaded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("at the concurrency limit ({max_concurrent_requests} active, {max_pending} pending)")]
pub struct Overloaded {
    pub max_concurrent_requests: usize,
    pub max_pending: usize,
}

#[derive(Debug)]
pub struct Limiter {
    settings: LimitSettings,
    active: Arc<Semaphore>,
    pending: AtomicUsize,
}

/// One active-request slot; released on drop. Owned, so it can ride along in a response
/// body if the caller wants the slot held until the body ends.
#[derive(Debug)]
pub struct Permit(#[allow(dead_code)] OwnedSemaphorePermit);

impl Limiter {
    pub fn new(settings: LimitSettings) -> Self {
        let permits = settings.max_concurrent_requests.min(Semaphore::MAX_PERMITS);
        Limiter {
            active: Arc::new(Semaphore::new(permits)),
            pending: AtomicUsize::new(0),
            settings,
        }
    }

    /// A slot without waiting, or `Overloaded` when none is free and `max_pending` are queued.
    pub async fn acquire(&self) -> Result<Permit, Overloaded> {
        if let Some(p) = self.try_acquire() {
            return Ok(p);
        }
        let _pending = self.reserve_pending().ok_or(self.overloaded())?;
        Arc::clone(&self.active)
            .acquire_owned()
            .await
            .map(Permit)
            .map_err(|_closed| self.overloaded())
    }

    /// Active requests now (`outrider_backend_active_requests`).
    /// A slot if one is free now (the common case, with no future and no timer to set up).
    pub fn try_acquire(&self) -> Option<Permit> {
        Arc::clone(&self.active)
            .try_acquire_owned()
            .ok()
            .map(Permit)
    }

    pub fn active(&self) -> usize {
        self.settings
            .max_concurrent_requests
            .min(Semaphore::MAX_PERMITS)
            .saturating_sub(self.active.available_permits())
    }

    /// Requests waiting for a slot now.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    pub fn settings(&self) -> &LimitSettings {
        &self.settings
    }

    fn reserve_pending(&self) -> Option<PendingGuard<'_>> {
        let max = self.settings.max_pending;
        self.pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| PendingGuard(&self.pending))
    }

    fn overloaded(&self) -> Overloaded {
        Overloaded {
            max_concurrent_requests: self.settings.max_concurrent_requests,
            max_pending: self.settings.max_pending,
        }
    }
}

struct PendingGuard<'a>(&'a AtomicUsize);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn limiter(active: usize, pending: usize) -> Limiter {
        Limiter::new(LimitSettings {
            max_concurrent_requests: active,
            max_pending: pending,
        })
    }

    #[tokio::test]
    async fn fails_fast_beyond_active_plus_pending() {
        let l = limiter(2, 1);
        let a = l.acquire().await.unwrap();
        let _b = l.acquire().await.unwrap();
        assert_eq!(l.active(), 2);
        let mut waiter = Box::pin(l.acquire());
        assert!((&mut waiter).now_or_never().is_none(), "queued");
        assert_eq!(l.pending(), 1);
        let err = l.acquire().await.unwrap_err();
        assert_eq!(err.max_pending, 1);
        drop(a);
        let _c = waiter.await.unwrap();
        assert_eq!(l.pending(), 0);
        assert_eq!(l.active(), 2);
    }

    #[tokio::test]
    async fn zero_pending_never_queues() {
        let l = limiter(1, 0);
        let _a = l.acquire().await.unwrap();
        assert!(l.acquire().await.is_err());
    }

    #[tokio::test]
    async fn cancelled_waiter_frees_its_pending_slot() {
        let l = limiter(1, 1);
        let _a = l.acquire().await.unwrap();
        let mut w = Box::pin(l.acquire());
        assert!((&mut w).now_or_never().is_none());
        assert_eq!(l.pending(), 1);
        drop(w);
        assert_eq!(l.pending(), 0);
        let mut w = Box::pin(l.acquire());
        assert!((&mut w).now_or_never().is_none(), "could queue again");
    }
}
