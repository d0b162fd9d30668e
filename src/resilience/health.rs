//! Active health checking: the per-endpoint threshold state machine and the probe loop.
//!
//! Owns: `HealthSettings`, `HealthState` (healthy flag plus runs of consecutive probe
//! results) and `run_checks`, which probes every endpoint each `interval` with a per-probe
//! `timeout` until told to stop. Does not own: the HTTP GET itself (an injected
//! `Fn(SocketAddr) -> impl Future<Output = bool>`), nor passive ejection (`outlier`).
//!
//! An endpoint starts healthy (a sidecar must not answer `no-endpoints` while the first round
//! runs; passive ejection covers dead endpoints meanwhile). It turns unhealthy after
//! `unhealthy_threshold` failed probes in a row and healthy again after `healthy_threshold`
//! successes in a row. A probe that times out is a failure.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tracing::{info, warn};

use super::endpoint::Endpoint;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// Path of the GET probe (used by the caller's probe function).
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            path: "/healthz".to_owned(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

/// Active-check state of one endpoint. Without a health check it stays healthy forever.
#[derive(Debug)]
pub struct HealthState {
    healthy: AtomicBool,
    /// Consecutive successes (while unhealthy) or failures (while healthy).
    run: AtomicU32,
}

impl Default for HealthState {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthState {
    pub fn new() -> Self {
        HealthState {
            healthy: AtomicBool::new(true),
            run: AtomicU32::new(0),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Records one probe result; returns the new state when it changed. One writer (the
    /// check loop) per endpoint is assumed.
    pub fn record(&self, ok: bool, settings: &HealthSettings) -> Option<bool> {
        let healthy = self.is_healthy();
        if ok == healthy {
            self.run.store(0, Ordering::Relaxed);
            return None;
        }
        let run = self.run.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        let threshold = if healthy {
            settings.unhealthy_threshold
        } else {
            settings.healthy_threshold
        };
        if run < threshold.max(1) {
            return None;
        }
        self.run.store(0, Ordering::Relaxed);
        self.healthy.store(ok, Ordering::Release);
        Some(ok)
    }
}

/// Probes every endpoint once per `interval` (first round at once) until `stop` turns true
/// or its sender is dropped. Probes of one round run concurrently, each bounded by
/// `timeout`. Spawn it per backend with `.instrument(span)`; restart it when the endpoint
/// set changes.
pub async fn run_checks<E, P, F>(
    endpoints: &[E],
    settings: &HealthSettings,
    probe: P,
    mut stop: watch::Receiver<bool>,
) where
    E: AsRef<Endpoint>,
    P: Fn(SocketAddr) -> F,
    F: Future<Output = bool>,
{
    let mut ticker = tokio::time::interval(settings.interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            changed = stop.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return,
            },
        }
        tokio::select! {
            () = check_round(endpoints, settings, &probe) => {}
            changed = stop.changed() => if changed.is_err() {
                return;
            },
        }
    }
}

/// One round: all probes concurrently, then the verdicts.
async fn check_round<E, P, F>(endpoints: &[E], settings: &HealthSettings, probe: &P)
where
    E: AsRef<Endpoint>,
    P: Fn(SocketAddr) -> F,
    F: Future<Output = bool>,
{
    let mut probes: Vec<Pin<Box<tokio::time::Timeout<F>>>> = endpoints
        .iter()
        .map(|e| {
            Box::pin(tokio::time::timeout(
                settings.timeout,
                probe(e.as_ref().addr),
            ))
        })
        .collect();
    let mut results: Vec<Option<bool>> = vec![None; probes.len()];
    poll_fn(|cx| {
        let mut pending = false;
        for (fut, slot) in probes.iter_mut().zip(results.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(r) => *slot = Some(matches!(r, Ok(true))),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    for (e, ok) in endpoints.iter().zip(results) {
        let ep = e.as_ref();
        match ep.health.record(ok == Some(true), settings) {
            Some(false) => warn!(addr = %ep.addr, "endpoint failed health checks"),
            Some(true) => info!(addr = %ep.addr, "endpoint passed health checks"),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests;
