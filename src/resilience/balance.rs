//! Endpoint choice over a backend's endpoints: `p2c-ewma`, `least-request`, `round-robin`.
//!
//! Owns: `BalanceKind`, `Balancer`, `Pick`, `Unavailable` and the usability tiers. Does not
//! own: the state it reads (`endpoint`, `outlier`, `health`) or weighted backend splits
//! (`crate::balance::weighted`).
//!
//! Each endpoint is classified at `now`:
//! * unusable: actively unhealthy, or ejected (deadline not passed, or its probe in flight);
//! * probe: ejected and its deadline passed. The first pick that sees it claims the single
//!   half-open probe and sends this request there (prompt recovery, one request at risk);
//! * last resort: penalized by 429/`Retry-After`, or the endpoint the caller asked to avoid
//!   (a retry). Only picked when no normal endpoint is usable;
//! * normal: everything else.
//!
//! The algorithm runs over the normal tier, else over the last-resort tier, else the backend
//! is unavailable: `NoEndpoints` when there are none or all are unhealthy, `CircuitOpen`
//! otherwise. Picks never allocate; each is two passes over the slice.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::time::Instant;

use super::endpoint::Endpoint;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BalanceKind {
    #[default]
    P2cEwma,
    LeastRequest,
    RoundRobin,
}

impl BalanceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BalanceKind::P2cEwma => "p2c-ewma",
            BalanceKind::LeastRequest => "least-request",
            BalanceKind::RoundRobin => "round-robin",
        }
    }
}

/// The chosen endpoint. Hand it back to `Backend::report` (or `cancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub index: usize,
    /// This request is the half-open probe of an ejected endpoint.
    pub probe: bool,
}

/// Why no endpoint could be picked (both answer 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// No endpoints, or all of them actively unhealthy: `no-endpoints`.
    #[error("no healthy endpoints")]
    NoEndpoints,
    /// Every healthy endpoint is ejected (or probing): `circuit-open`, no connect attempt.
    #[error("all endpoints ejected")]
    CircuitOpen,
}

impl Unavailable {
    /// The `x-outrider-error` reason of SPEC §6.
    pub fn reason(self) -> &'static str {
        match self {
            Unavailable::NoEndpoints => "no-endpoints",
            Unavailable::CircuitOpen => "circuit-open",
        }
    }
}

#[derive(Debug)]
pub struct Balancer {
    kind: BalanceKind,
    next: AtomicUsize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    Normal,
    LastResort,
    Probe,
    Unusable,
    Unhealthy,
}

fn tier(ep: &Endpoint, avoided: bool, now: Instant) -> Tier {
    if !ep.health.is_healthy() {
        Tier::Unhealthy
    } else if ep.outlier.is_ejected() {
        if !avoided && ep.outlier.probe_ready(now) {
            Tier::Probe
        } else {
            Tier::Unusable
        }
    } else if avoided || ep.stats.is_penalized(now) {
        Tier::LastResort
    } else {
        Tier::Normal
    }
}

impl Balancer {
    pub fn new(kind: BalanceKind) -> Self {
        Balancer {
            kind,
            next: AtomicUsize::new(0),
        }
    }

    pub fn kind(&self) -> BalanceKind {
        self.kind
    }

    /// Chooses an endpoint; `avoid` (the endpoint a failed try went to) is used only when
    /// nothing else is usable.
    pub fn pick<E: AsRef<Endpoint>>(
        &self,
        endpoints: &[E],
        avoid: Option<usize>,
        now: Instant,
    ) -> Result<Pick, Unavailable> {
        let (mut normal, mut last, mut unhealthy) = (0usize, 0usize, 0usize);
        for (i, e) in endpoints.iter().enumerate() {
            let ep = e.as_ref();
            match tier(ep, avoid == Some(i), now) {
                Tier::Normal => normal += 1,
                Tier::LastResort => last += 1,
                Tier::Probe if ep.outlier.try_claim_probe(now) => {
                    return Ok(Pick {
                        index: i,
                        probe: true,
                    })
                }
                Tier::Probe | Tier::Unusable => {}
                Tier::Unhealthy => unhealthy += 1,
            }
        }
        let (want, count) = if normal > 0 {
            (Tier::Normal, normal)
        } else if last > 0 {
            (Tier::LastResort, last)
        } else if unhealthy == endpoints.len() {
            return Err(Unavailable::NoEndpoints);
        } else {
            return Err(Unavailable::CircuitOpen);
        };
        let in_tier = |i: usize, e: &E| tier(e.as_ref(), avoid == Some(i), now) == want;
        let index = match self.kind {
            BalanceKind::RoundRobin => {
                let r = self.next.fetch_add(1, Ordering::Relaxed) % count;
                nth(endpoints, r, in_tier)
            }
            BalanceKind::P2cEwma => p2c(endpoints, count, now, in_tier),
            BalanceKind::LeastRequest => least_request(endpoints, in_tier),
        };
        // `None` only if the tiers changed between the passes (a concurrent ejection):
        // falling back to any member of the tier, or to the first endpoint, is harmless.
        let index = index.or_else(|| nth(endpoints, 0, in_tier)).unwrap_or(0);
        Ok(Pick {
            index,
            probe: false,
        })
    }
}

/// Power of two choices: two distinct random members of the tier, the lower `load` wins.
fn p2c<E: AsRef<Endpoint>>(
    endpoints: &[E],
    count: usize,
    now: Instant,
    in_tier: impl Fn(usize, &E) -> bool + Copy,
) -> Option<usize> {
    if count == 1 {
        return nth(endpoints, 0, in_tier);
    }
    let a = fastrand::usize(..count);
    let mut b = fastrand::usize(..count - 1);
    if b >= a {
        b += 1;
    }
    let (a, b) = (nth(endpoints, a, in_tier)?, nth(endpoints, b, in_tier)?);
    let (la, lb) = (
        endpoints[a].as_ref().stats.load(now),
        endpoints[b].as_ref().stats.load(now),
    );
    Some(if lb < la { b } else { a })
}

/// Fewest in-flight requests; ties broken uniformly at random (reservoir sampling).
fn least_request<E: AsRef<Endpoint>>(
    endpoints: &[E],
    in_tier: impl Fn(usize, &E) -> bool,
) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    let mut ties = 0u32;
    for (i, e) in endpoints.iter().enumerate() {
        if !in_tier(i, e) {
            continue;
        }
        let n = e.as_ref().stats.in_flight();
        match best {
            Some((_, m)) if n > m => {}
            Some((_, m)) if n == m => {
                ties += 1;
                if fastrand::u32(..ties) == 0 {
                    best = Some((i, n));
                }
            }
            _ => {
                best = Some((i, n));
                ties = 1;
            }
        }
    }
    best.map(|(i, _)| i)
}

/// Index of the `r`-th endpoint (0-based) satisfying `in_tier`.
fn nth<E>(endpoints: &[E], r: usize, in_tier: impl Fn(usize, &E) -> bool) -> Option<usize> {
    endpoints
        .iter()
        .enumerate()
        .filter(|(i, e)| in_tier(*i, e))
        .nth(r)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests;
