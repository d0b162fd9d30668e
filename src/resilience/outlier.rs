//! Passive outlier ejection (Envoy `consecutive_5xx` style) with a half-open probe.
//!
//! Owns: `OutlierState` (per endpoint: consecutive failures, ejection deadline, repeat level)
//! and `OutlierDetector` (per backend: settings, the `max_ejected_percent` cap, the ejection
//! counter). Does not own: what counts as a failure (`retry::Outcome::is_failure`), picking
//! endpoints (`balance`), metrics registration (the caller reads `ejections_total` and
//! `ejected_count`).
//!
//! Rules:
//! * `consecutive_failures` failures in a row eject the endpoint; any success resets the run.
//!   0 disables ejection.
//! * Ejection lasts `ejection_time × 2^(level-1)`, capped at `max(5m, ejection_time)`. The
//!   level grows by one per ejection and shrinks by one per `ejection_time` the endpoint then
//!   stays un-ejected (so an endpoint that behaves for a while starts again at the base time).
//! * At most `max(1, floor(n × max_ejected_percent / 100))` of `n` endpoints are ejected at
//!   once (0% disables ejection). "At least one" lets a one-endpoint backend open its circuit.
//! * Once the deadline passes, the balancer hands out exactly one probe (`try_claim_probe`);
//!   its result restores the endpoint or re-ejects it one level up. Results of requests that
//!   were not the probe are ignored while ejected. A probe with no verdict after
//!   `PROBE_WINDOW` (or `release_probe`) lets another probe go.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::deadline::AtomicDeadline;
use super::endpoint::Endpoint;

/// Upper bound of the doubled ejection time.
pub const MAX_EJECTION: Duration = Duration::from_secs(300);
/// How long a claimed probe may go without a verdict before another probe is allowed.
pub const PROBE_WINDOW: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierSettings {
    pub consecutive_failures: u32,
    pub ejection_time: Duration,
    /// 0..=100.
    pub max_ejected_percent: u8,
}

impl Default for OutlierSettings {
    fn default() -> Self {
        OutlierSettings {
            consecutive_failures: 5,
            ejection_time: Duration::from_secs(30),
            max_ejected_percent: 50,
        }
    }
}

/// What a recorded result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Unchanged,
    /// The endpoint was (re-)ejected; a probe may go at `until`.
    Ejected {
        until: Instant,
    },
    /// A probe succeeded: the endpoint takes normal traffic again.
    Restored,
}

#[derive(Debug)]
pub struct OutlierState {
    consecutive: AtomicU32,
    ejected: AtomicBool,
    /// While ejected: when the next probe may be claimed.
    until: AtomicDeadline,
    history: Mutex<History>,
}

#[derive(Debug, Default)]
struct History {
    level: u32,
    recovered_at: Option<Instant>,
}

impl OutlierState {
    pub fn new(now: Instant) -> Self {
        OutlierState {
            consecutive: AtomicU32::new(0),
            ejected: AtomicBool::new(false),
            until: AtomicDeadline::new(now),
            history: Mutex::new(History::default()),
        }
    }

    /// Ejected, including "waiting for the probe" and "probe in flight".
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Acquire)
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive.load(Ordering::Relaxed)
    }

    /// Time until a probe may be claimed, while ejected.
    pub fn ejected_for(&self, now: Instant) -> Option<Duration> {
        if self.is_ejected() {
            self.until.remaining(now)
        } else {
            None
        }
    }

    /// Ejected and a probe may be claimed now.
    pub fn probe_ready(&self, now: Instant) -> bool {
        self.is_ejected() && !self.until.is_after(now)
    }

    /// Claims the single half-open probe; true for exactly one caller per expiry.
    pub fn try_claim_probe(&self, now: Instant) -> bool {
        self.is_ejected() && self.until.claim_if_passed(now, now + PROBE_WINDOW)
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Per-backend ejection policy.
#[derive(Debug)]
pub struct OutlierDetector {
    settings: OutlierSettings,
    /// Serializes eject/restore so the percent cap holds under concurrent failures.
    lock: Mutex<()>,
    ejections: AtomicU64,
}

impl OutlierDetector {
    pub fn new(settings: OutlierSettings) -> Self {
        OutlierDetector {
            settings,
            lock: Mutex::new(()),
            ejections: AtomicU64::new(0),
        }
    }

    pub fn settings(&self) -> &OutlierSettings {
        &self.settings
    }

    /// Records one finished attempt on `endpoints[index]`. `probe` is `Pick::probe`.
    pub fn record<E: AsRef<Endpoint>>(
        &self,
        endpoints: &[E],
        index: usize,
        failure: bool,
        probe: bool,
        now: Instant,
    ) -> Verdict {
        let Some(ep) = endpoints.get(index).map(AsRef::as_ref) else {
            return Verdict::Unchanged;
        };
        let o = &ep.outlier;
        if o.is_ejected() {
            if !probe {
                return Verdict::Unchanged;
            }
            let _g = self.lock();
            if !o.is_ejected() {
                return Verdict::Unchanged;
            }
            if failure {
                let level = o.history().level + 1;
                return self.eject(ep, level, now);
            }
            o.consecutive.store(0, Ordering::Relaxed);
            o.history().recovered_at = Some(now);
            o.until.clear();
            o.ejected.store(false, Ordering::Release);
            info!(addr = %ep.addr, "endpoint restored after probe");
            return Verdict::Restored;
        }
        if !failure {
            if o.consecutive.load(Ordering::Relaxed) != 0 {
                o.consecutive.store(0, Ordering::Relaxed);
            }
            return Verdict::Unchanged;
        }
        let run = o
            .consecutive
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let threshold = self.settings.consecutive_failures;
        if threshold == 0 || run < threshold {
            return Verdict::Unchanged;
        }
        let _g = self.lock();
        let ejected = ejected_count(endpoints);
        if o.is_ejected() || ejected >= self.max_ejected(endpoints.len()) {
            return Verdict::Unchanged;
        }
        let level = {
            let h = o.history();
            let healthy_for = h.recovered_at.map_or(Duration::ZERO, |r| now - r);
            let steps = healthy_for.as_nanos() / self.settings.ejection_time.as_nanos().max(1);
            h.level
                .saturating_sub(u32::try_from(steps).unwrap_or(u32::MAX))
                + 1
        };
        self.eject(ep, level, now)
    }

    /// Gives up a claimed probe without a verdict (request cancelled): the next pick may probe.
    pub fn release_probe(&self, ep: &Endpoint, now: Instant) {
        if ep.outlier.is_ejected() {
            ep.outlier.until.set(now);
        }
    }

    /// How many of `n` endpoints may be ejected at once.
    pub fn max_ejected(&self, n: usize) -> usize {
        if self.settings.consecutive_failures == 0 || self.settings.max_ejected_percent == 0 {
            return 0;
        }
        (n * usize::from(self.settings.max_ejected_percent.min(100)) / 100).max(1)
    }

    /// Ejections since this detector was built (`outrider_outlier_ejections_total`).
    pub fn ejections_total(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Ejection time for a given level (1 = first ejection).
    pub fn ejection_time(&self, level: u32) -> Duration {
        let base = self.settings.ejection_time;
        let factor = 1u32 << level.saturating_sub(1).min(16);
        base.saturating_mul(factor).min(MAX_EJECTION.max(base))
    }

    fn eject(&self, ep: &Endpoint, level: u32, now: Instant) -> Verdict {
        let o = &ep.outlier;
        let time = self.ejection_time(level);
        let until = now + time;
        o.history().level = level;
        o.consecutive.store(0, Ordering::Relaxed);
        o.until.set(until);
        o.ejected.store(true, Ordering::Release);
        self.ejections.fetch_add(1, Ordering::Relaxed);
        warn!(addr = %ep.addr, ?time, level, "endpoint ejected");
        Verdict::Ejected { until }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Endpoints currently ejected (including those waiting for or running their probe).
pub fn ejected_count<E: AsRef<Endpoint>>(endpoints: &[E]) -> usize {
    endpoints
        .iter()
        .filter(|e| e.as_ref().outlier.is_ejected())
        .count()
}

#[cfg(test)]
mod tests;
