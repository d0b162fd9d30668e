//! Resilience building blocks: endpoint load and health state, balancing, outlier ejection,
//! concurrency limits, retry decisions and budgets, active health checks.
//!
//! Owns: pure, thread-safe state and decisions, shared across worker threads through `Arc`
//! (atomics, or short uncontended `std` locks never held across an await). Every
//! time-dependent call takes `now: tokio::time::Instant`, so tests use explicit or paused
//! time. Does not own: IO, request bodies, per-try timeouts, the 503 responses, metric
//! registration, config parsing. The request path (`proxy::forward`) wires these in.
//!
//! Key types:
//! * `Settings` — per-backend runtime settings, filled by config validation;
//!   `retry::RetrySettings` is the per-route counterpart.
//! * `Endpoint` — one upstream address: `EndpointStats` (in-flight, peak-EWMA, 429 penalty),
//!   `OutlierState`, `HealthState`. Keep it in an `Arc` across reloads.
//! * `Backend` — per backend: `acquire` (limits), `pick` (`Balancer`), `report` (EWMA,
//!   penalty, ejection), `summary` (metrics).
//! * `retry::{RetryOn, Outcome, should_retry, Backoff, RetryBudget}` — per route.
//! * `health::run_checks` — the active check loop with an injected probe.
//!
//! See docs/resilience.md for the semantics of every knob.

pub mod backend;
pub mod balance;
mod deadline;
pub mod endpoint;
pub mod health;
pub mod limit;
pub mod outlier;
pub mod retry;

pub use backend::{Backend, Summary};
pub use balance::{BalanceKind, Balancer, Pick, Unavailable};
pub use endpoint::{retry_after, Endpoint, EndpointReport, EndpointState, EndpointStats, InFlight};
pub use health::{run_checks, HealthSettings};
pub use limit::{LimitSettings, Limiter, Overloaded, Permit};
pub use outlier::{OutlierDetector, OutlierSettings, Verdict};
pub use retry::{
    should_retry, Backoff, BudgetSettings, Outcome, RetryBudget, RetryOn, RetrySettings,
};

/// Per-backend resilience settings (the runtime form of `balance`, `circuit_breaker`,
/// `health_check`). `connect_timeout` stays with the connector.
///
/// Defaults: `p2c-ewma`; Envoy's circuit-breaker defaults of 1024 active and 1024 pending
/// requests; ejection after 5 consecutive failures for 30s, at most 50% ejected; no active
/// health check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    pub balance: BalanceKind,
    pub limits: LimitSettings,
    pub outlier: OutlierSettings,
    pub health: Option<HealthSettings>,
}

#[cfg(test)]
mod tests;
