//! The per-backend facade the request path calls: pick, limit, report, summarize.
//!
//! Owns: `Backend` (balancer + outlier detector + concurrency limiter built from one
//! `Settings`) and `Summary` (counts for metrics). Does not own: the endpoint list (the
//! caller's snapshot holds `Arc<Endpoint>`s and passes the slice in), retries (per route).

use std::time::Duration;

use http::HeaderValue;
use tokio::time::Instant;

use super::balance::{Balancer, Pick, Unavailable};
use super::endpoint::{shed_penalty, Endpoint, EndpointState};
use super::limit::{Limiter, Overloaded, Permit};
use super::outlier::{OutlierDetector, Verdict};
use super::retry::Outcome;
use super::Settings;

#[derive(Debug)]
pub struct Backend {
    balancer: Balancer,
    outlier: OutlierDetector,
    limiter: Limiter,
}

/// Endpoint counts and gauges of one backend at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub healthy: usize,
    pub unhealthy: usize,
    pub ejected: usize,
    /// `outrider_backend_active_requests`.
    pub active_requests: usize,
    /// `outrider_circuit_breaker_open`: a pick now would fail with `circuit-open`.
    pub circuit_open: bool,
    /// `outrider_outlier_ejections_total` (monotonic).
    pub ejections_total: u64,
}

impl Backend {
    pub fn new(settings: &Settings) -> Self {
        Backend {
            balancer: Balancer::new(settings.balance),
            outlier: OutlierDetector::new(settings.outlier.clone()),
            limiter: Limiter::new(settings.limits.clone()),
        }
    }

    /// Step 1: an active-request slot, or `Overloaded` (503 `overloaded`) at once.
    pub async fn acquire(&self) -> Result<Permit, Overloaded> {
        self.limiter.acquire().await
    }

    /// Step 1 when a slot is free now: no waiting, so no future and no timer.
    pub fn try_acquire(&self) -> Option<Permit> {
        self.limiter.try_acquire()
    }

    /// Step 2: the endpoint for this try. `avoid`: the endpoint of the previous try.
    pub fn pick<E: AsRef<Endpoint>>(
        &self,
        endpoints: &[E],
        avoid: Option<usize>,
        now: Instant,
    ) -> Result<Pick, Unavailable> {
        self.balancer.pick(endpoints, avoid, now)
    }

    /// Step 3, once per finished try (hold `endpoint.stats.start()` during the try):
    /// feeds EWMA (successes as samples, failures and 429 as penalties), the 429/503
    /// `Retry-After` penalty, and outlier ejection.
    pub fn report<E: AsRef<Endpoint>>(
        &self,
        endpoints: &[E],
        pick: Pick,
        outcome: Outcome,
        latency: Duration,
        retry_after: Option<&HeaderValue>,
        now: Instant,
    ) -> Verdict {
        let Some(ep) = endpoints.get(pick.index).map(AsRef::as_ref) else {
            return Verdict::Unchanged;
        };
        match outcome {
            Outcome::Status(s) if s < 500 && s != 429 => ep.stats.observe(latency, now),
            _ => ep.stats.observe_failure(now),
        }
        if let Outcome::Status(s) = outcome {
            if let Some(until) = shed_penalty(s, retry_after, now) {
                ep.stats.penalize(until);
            }
        }
        self.outlier
            .record(endpoints, pick.index, outcome.is_failure(), pick.probe, now)
    }

    /// A try abandoned without an outcome (client went away): frees a claimed probe.
    pub fn cancelled<E: AsRef<Endpoint>>(&self, endpoints: &[E], pick: Pick, now: Instant) {
        if let (true, Some(ep)) = (pick.probe, endpoints.get(pick.index)) {
            self.outlier.release_probe(ep.as_ref(), now);
        }
    }

    pub fn summary<E: AsRef<Endpoint>>(&self, endpoints: &[E], now: Instant) -> Summary {
        let mut s = Summary {
            active_requests: self.limiter.active(),
            ejections_total: self.outlier.ejections_total(),
            ..Summary::default()
        };
        let mut open = !endpoints.is_empty();
        for e in endpoints {
            let ep = e.as_ref();
            match ep.report(now).state {
                EndpointState::Healthy => s.healthy += 1,
                EndpointState::Unhealthy => s.unhealthy += 1,
                EndpointState::Ejected => s.ejected += 1,
            }
            if ep.health.is_healthy() && (!ep.outlier.is_ejected() || ep.outlier.probe_ready(now)) {
                open = false;
            }
        }
        s.circuit_open = open && s.ejected > 0;
        s
    }

    pub fn balancer(&self) -> &Balancer {
        &self.balancer
    }

    pub fn outlier(&self) -> &OutlierDetector {
        &self.outlier
    }

    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }
}
