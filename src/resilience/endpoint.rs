//! Per-endpoint state shared by every worker: load (in-flight + peak-EWMA latency), the
//! load-shedding penalty, and the outlier and health state the balancer reads.
//!
//! Owns: `Endpoint` (one upstream address and all its resilience state), `EndpointStats`
//! (in-flight counter with the `InFlight` guard, peak-EWMA, penalty), `retry_after`, the
//! `/backends` view `EndpointReport`. Does not own: connections, the decision to eject
//! (`outlier`) or to mark unhealthy (`health`).
//!
//! Peak-EWMA follows Linkerd/tower: a sample above the stored estimate replaces it at once;
//! a lower sample is blended in with weight `1 - exp(-elapsed / decay)`; with no samples the
//! estimate decays toward zero, so an idle endpoint is eventually tried again. Failures are
//! never samples: `observe_failure` raises the estimate to `clamp(2 × current, 1s, 30s)`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use http::HeaderValue;
use tokio::time::Instant;

use super::deadline::AtomicDeadline;
use super::health::HealthState;
use super::outlier::OutlierState;

/// Estimate used before the first sample (Linkerd's default RTT).
pub const DEFAULT_RTT: Duration = Duration::from_millis(30);
/// Time constant of the EWMA decay (Linkerd's default).
pub const DEFAULT_DECAY: Duration = Duration::from_secs(10);
/// Lower bound of the latency a failure is counted as.
pub const FAILURE_RTT_MIN: Duration = Duration::from_secs(1);
/// Upper bound of the latency a failure is counted as.
pub const FAILURE_RTT_MAX: Duration = Duration::from_secs(30);
/// Penalty when a 429/503 carries no usable `Retry-After`.
pub const RETRY_AFTER_DEFAULT: Duration = Duration::from_secs(5);
/// Longest penalty a `Retry-After` can impose.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(30);

/// One upstream endpoint and everything the resilience logic tracks about it. Share it as
/// `Arc<Endpoint>` and keep it across reloads while the address stays in the backend.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub stats: EndpointStats,
    pub outlier: OutlierState,
    pub health: HealthState,
}

impl Endpoint {
    pub fn new(addr: SocketAddr, now: Instant) -> Self {
        Endpoint {
            addr,
            stats: EndpointStats::new(now),
            outlier: OutlierState::new(now),
            health: HealthState::new(),
        }
    }

    /// The `/backends` view: ejected beats unhealthy beats healthy.
    pub fn report(&self, now: Instant) -> EndpointReport {
        let state = if self.outlier.is_ejected() {
            EndpointState::Ejected
        } else if !self.health.is_healthy() {
            EndpointState::Unhealthy
        } else {
            EndpointState::Healthy
        };
        EndpointReport {
            addr: self.addr,
            state,
            in_flight: self.stats.in_flight(),
            ewma: self.stats.ewma(now),
            consecutive_failures: self.outlier.consecutive_failures(),
            ejected_for: self.outlier.ejected_for(now),
            penalized_for: self.stats.penalty.remaining(now),
        }
    }
}

impl AsRef<Endpoint> for Endpoint {
    fn as_ref(&self) -> &Endpoint {
        self
    }
}

/// State label of `/backends` and `outrider_backend_endpoints{state}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointState {
    Healthy,
    Unhealthy,
    Ejected,
}

impl EndpointState {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointState::Healthy => "healthy",
            EndpointState::Unhealthy => "unhealthy",
            EndpointState::Ejected => "ejected",
        }
    }
}

/// Snapshot of one endpoint for `/backends`. Durations are "from now" so the admin handler
/// can render them against wall-clock time.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointReport {
    pub addr: SocketAddr,
    pub state: EndpointState,
    pub in_flight: u32,
    pub ewma: Duration,
    pub consecutive_failures: u32,
    /// Until a half-open probe may go; `None` when not ejected or the probe is due.
    pub ejected_for: Option<Duration>,
    pub penalized_for: Option<Duration>,
}

/// Load statistics of one endpoint.
#[derive(Debug)]
pub struct EndpointStats {
    in_flight: AtomicU32,
    rtt: Mutex<Rtt>,
    decay_ns: f64,
    penalty: AtomicDeadline,
}

#[derive(Debug)]
struct Rtt {
    ns: f64,
    at: Instant,
}

impl EndpointStats {
    pub fn new(now: Instant) -> Self {
        Self::with_params(now, DEFAULT_RTT, DEFAULT_DECAY)
    }

    pub fn with_params(now: Instant, default_rtt: Duration, decay: Duration) -> Self {
        EndpointStats {
            in_flight: AtomicU32::new(0),
            rtt: Mutex::new(Rtt {
                ns: nanos(default_rtt),
                at: now,
            }),
            decay_ns: nanos(decay).max(1.0),
            penalty: AtomicDeadline::new(now),
        }
    }

    /// Counts a request as in flight until the guard drops (after response headers).
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Feeds the time to response headers of a *successful* attempt (not 5xx, not 429).
    pub fn observe(&self, latency: Duration, now: Instant) {
        let sample = nanos(latency);
        let mut rtt = self.lock();
        if sample > rtt.ns {
            rtt.ns = sample;
        } else {
            let w = self.weight(&rtt, now);
            rtt.ns = rtt.ns * w + sample * (1.0 - w);
        }
        rtt.at = now;
    }

    /// Records a failed attempt (5xx, 429, connect/reset error, timeout) as a peak of
    /// `clamp(2 × current estimate, 1s, 30s)`, so failing fast never looks fast.
    pub fn observe_failure(&self, now: Instant) {
        let mut rtt = self.lock();
        let cur = rtt.ns * self.weight(&rtt, now);
        let penalty = (cur * 2.0).clamp(nanos(FAILURE_RTT_MIN), nanos(FAILURE_RTT_MAX));
        rtt.ns = cur.max(penalty);
        rtt.at = now;
    }

    /// Current latency estimate (decayed toward zero since the last sample).
    pub fn ewma(&self, now: Instant) -> Duration {
        Duration::from_nanos(self.estimate_ns(now) as u64)
    }

    /// Cost used by P2C: estimate (ns) × (in-flight + 1).
    pub fn load(&self, now: Instant) -> f64 {
        self.estimate_ns(now) * (f64::from(self.in_flight()) + 1.0)
    }

    /// Avoid this endpoint until `until` unless nothing else is usable.
    pub fn penalize(&self, until: Instant) {
        if self.penalty.get().is_none_or(|cur| cur < until) {
            self.penalty.set(until);
        }
    }

    pub fn is_penalized(&self, now: Instant) -> bool {
        self.penalty.is_after(now)
    }

    fn estimate_ns(&self, now: Instant) -> f64 {
        let rtt = self.lock();
        rtt.ns * self.weight(&rtt, now)
    }

    /// exp(-elapsed / decay): the share of the stored estimate still valid at `now`.
    fn weight(&self, rtt: &Rtt, now: Instant) -> f64 {
        (-nanos(now.saturating_duration_since(rtt.at)) / self.decay_ns).exp()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rtt> {
        // A panic while holding this lock leaves two plain numbers behind: still usable.
        self.rtt
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Decrements the in-flight count on drop.
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicU32);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Until when a 429/503 answer with this `Retry-After` penalizes the endpoint: delta-seconds
/// capped at `RETRY_AFTER_MAX`; absent, unparsable or HTTP-date values give
/// `RETRY_AFTER_DEFAULT` (an HTTP-date would need the wall clock, which is not injectable).
pub fn retry_after(header: Option<&HeaderValue>, now: Instant) -> Instant {
    let secs = header
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    let wait = match secs {
        Some(s) => Duration::from_secs(s).min(RETRY_AFTER_MAX),
        None => RETRY_AFTER_DEFAULT,
    };
    now + wait
}

/// The load-shedding rule: 429 always penalizes; 503 penalizes only with a `Retry-After`.
pub fn shed_penalty(status: u16, header: Option<&HeaderValue>, now: Instant) -> Option<Instant> {
    match (status, header) {
        (429, h) | (503, h @ Some(_)) => Some(retry_after(h, now)),
        _ => None,
    }
}

/// Via seconds: `as_nanos` is a `u128`, whose conversion to `f64` is a software routine.
fn nanos(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

#[cfg(test)]
mod tests;
