//! A lock-free optional point in time, shared across worker threads.
//!
//! Owns: `AtomicDeadline`, an `Option<Instant>` stored as nanoseconds since a per-value epoch
//! in one `AtomicU64` (0 = unset). Used for ejection and penalty deadlines that every pick
//! reads. Does not own: any policy about what the deadline means.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct AtomicDeadline {
    epoch: Instant,
    /// Nanoseconds since `epoch`, plus one; 0 means unset.
    nanos: AtomicU64,
}

impl AtomicDeadline {
    /// An unset deadline. Instants before `epoch` are stored as `epoch`.
    pub(crate) fn new(epoch: Instant) -> Self {
        AtomicDeadline {
            epoch,
            nanos: AtomicU64::new(0),
        }
    }

    fn encode(&self, t: Instant) -> u64 {
        let n = t.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(n).unwrap_or(u64::MAX - 1).saturating_add(1)
    }

    fn decode(&self, n: u64) -> Option<Instant> {
        (n != 0).then(|| self.epoch + Duration::from_nanos(n - 1))
    }

    pub(crate) fn get(&self) -> Option<Instant> {
        self.decode(self.nanos.load(Ordering::Acquire))
    }

    pub(crate) fn set(&self, t: Instant) {
        self.nanos.store(self.encode(t), Ordering::Release);
    }

    pub(crate) fn clear(&self) {
        self.nanos.store(0, Ordering::Release);
    }

    /// True when set and strictly later than `now`.
    pub(crate) fn is_after(&self, now: Instant) -> bool {
        let n = self.nanos.load(Ordering::Acquire);
        n != 0 && n > self.encode(now)
    }

    /// Time left until the deadline, when it is set and in the future.
    pub(crate) fn remaining(&self, now: Instant) -> Option<Duration> {
        self.get()
            .and_then(|t| t.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// When the deadline is set and has passed (`<= now`), atomically moves it to `next`
    /// and returns true. Exactly one of several concurrent callers wins.
    pub(crate) fn claim_if_passed(&self, now: Instant, next: Instant) -> bool {
        let cur = self.nanos.load(Ordering::Acquire);
        if cur == 0 || cur > self.encode(now) {
            return false;
        }
        self.nanos
            .compare_exchange(cur, self.encode(next), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_claim() {
        let t0 = Instant::now();
        let d = AtomicDeadline::new(t0);
        assert_eq!(d.get(), None);
        assert!(!d.is_after(t0));
        d.set(t0 + Duration::from_secs(2));
        assert!(d.is_after(t0 + Duration::from_secs(1)));
        assert!(!d.is_after(t0 + Duration::from_secs(2)));
        assert_eq!(d.remaining(t0), Some(Duration::from_secs(2)));
        let later = t0 + Duration::from_secs(3);
        assert!(!d.claim_if_passed(t0 + Duration::from_secs(1), later));
        assert!(d.claim_if_passed(t0 + Duration::from_secs(2), later));
        assert!(!d.claim_if_passed(t0 + Duration::from_secs(2), later));
        assert_eq!(d.get(), Some(later));
        d.clear();
        assert_eq!(d.get(), None);
        assert!(!d.claim_if_passed(later, later));
    }
}
