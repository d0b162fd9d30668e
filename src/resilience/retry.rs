//! Retry decisions: which outcomes may be retried (`on`), when a retry is safe, backoff with
//! full jitter, and the retry budget.
//!
//! Owns: `RetrySettings`, `RetryOn` (parsed from SPEC §3 strings), `Outcome`, `should_retry`,
//! `is_idempotent_method`, `Backoff`, `BudgetSettings`, `RetryBudget` (tower's `TpsBudget`).
//! Does not own: body buffering/replay, per-try timeouts, endpoint choice for the retry
//! (`Balancer::pick` with `avoid`), metrics (the caller counts `outrider_retries_total` and
//! `outrider_retry_budget_exhausted_total`).
//!
//! Safety rules of `should_retry`, in order: never once a response byte reached the client;
//! never when the body cannot be replayed; connect failures and refused streams (nothing was
//! processed) and resets before the request was sent are retried without regard to the
//! method; resets after sending, timeouts and status codes only for idempotent requests.

use std::fmt;
use std::time::Duration;

use http::Method;
use tower::retry::budget::{Budget, TpsBudget};

#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    /// Total tries, the first included (1 = no retry).
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    pub on: RetryOn,
    pub backoff: Backoff,
    pub budget: BudgetSettings,
    /// Larger request bodies are not buffered, so not retried.
    pub max_body: usize,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            attempts: 1,
            per_try_timeout: None,
            on: RetryOn::default(),
            backoff: Backoff::default(),
            budget: BudgetSettings::default(),
            max_body: 64 * 1024,
        }
    }
}

/// The conditions of `retry.on`. Copy, no allocation: a status-code bitset.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RetryOn {
    pub connect_failure: bool,
    pub refused_stream: bool,
    pub reset: bool,
    /// Bit `s` set = retry on status `s` (100..=599).
    statuses: [u64; 10],
}

impl Default for RetryOn {
    /// `[connect-failure, refused-stream]`.
    fn default() -> Self {
        RetryOn {
            connect_failure: true,
            refused_stream: true,
            ..RetryOn::none()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown retry condition `{0}`: expected connect-failure, refused-stream, reset, \
     gateway-error or a status code 100..=599"
)]
pub struct RetryOnError(pub String);

impl RetryOn {
    pub fn none() -> Self {
        RetryOn {
            connect_failure: false,
            refused_stream: false,
            reset: false,
            statuses: [0; 10],
        }
    }

    /// Parses a whole `on:` list; the first bad item is the error.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, RetryOnError> {
        let mut on = RetryOn::none();
        for item in items {
            on.add(item.as_ref())?;
        }
        Ok(on)
    }

    /// Adds one item (validation can report every bad item with its own YAML path).
    pub fn add(&mut self, item: &str) -> Result<(), RetryOnError> {
        match item {
            "connect-failure" => self.connect_failure = true,
            "refused-stream" => self.refused_stream = true,
            "reset" => self.reset = true,
            "gateway-error" => {
                for s in [502, 503, 504] {
                    self.set_status(s);
                }
            }
            s => match s.parse::<u16>() {
                Ok(code @ 100..=599) if !s.starts_with('+') => self.set_status(code),
                _ => return Err(RetryOnError(item.to_owned())),
            },
        }
        Ok(())
    }

    pub fn status(&self, code: u16) -> bool {
        let c = usize::from(code);
        c < 640 && self.statuses[c / 64] & (1 << (c % 64)) != 0
    }

    fn set_status(&mut self, code: u16) {
        let c = usize::from(code);
        self.statuses[c / 64] |= 1 << (c % 64);
    }
}

impl fmt::Debug for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codes: Vec<u16> = (100..600).filter(|c| self.status(*c)).collect();
        f.debug_struct("RetryOn")
            .field("connect_failure", &self.connect_failure)
            .field("refused_stream", &self.refused_stream)
            .field("reset", &self.reset)
            .field("statuses", &codes)
            .finish()
    }
}

/// How one try ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// TCP/TLS connect failed or timed out: the upstream saw nothing.
    ConnectFailure,
    /// HTTP/2 REFUSED_STREAM (or GOAWAY above our stream): not processed.
    RefusedStream,
    /// Connection closed/reset before response headers.
    Reset { request_sent: bool },
    /// Per-try timeout before response headers.
    Timeout,
    /// Response headers arrived with this status.
    Status(u16),
}

impl Outcome {
    /// Counts toward outlier ejection and EWMA failure: 5xx and every transport error. 4xx
    /// (including 429, handled by the penalty) do not.
    pub fn is_failure(self) -> bool {
        match self {
            Outcome::Status(s) => s >= 500,
            _ => true,
        }
    }
}

/// Whether a try that ended in `outcome` may be retried (attempts left and budget are
/// checked separately). `idempotent`: `is_idempotent_method` or flagged by the route/MCP
/// classification; `body_replayable`: empty or fully buffered within `max_body`.
pub fn should_retry(
    on: &RetryOn,
    outcome: Outcome,
    idempotent: bool,
    body_replayable: bool,
    response_bytes_sent: bool,
) -> bool {
    if response_bytes_sent || !body_replayable {
        return false;
    }
    match outcome {
        Outcome::ConnectFailure => on.connect_failure,
        Outcome::RefusedStream => on.refused_stream,
        Outcome::Reset {
            request_sent: false,
        } => on.reset,
        Outcome::Reset { request_sent: true } => on.reset && idempotent,
        // A per-try timeout would become a 504: retried under `reset` or 504/`gateway-error`.
        Outcome::Timeout => (on.reset || on.status(504)) && idempotent,
        Outcome::Status(s) => on.status(s) && idempotent,
    }
}

/// GET, HEAD, OPTIONS, TRACE, PUT, DELETE (RFC 9110 §9.2.2).
pub fn is_idempotent_method(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Exponential backoff with full jitter: retry `n` (0 = first retry) waits a uniformly random
/// time in `[0, min(max, base × 2^n)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(25),
            max: Duration::from_millis(250),
        }
    }
}

impl Backoff {
    /// Upper bound of the wait before retry `n`.
    pub fn cap(&self, n: u32) -> Duration {
        let factor = 1u32 << n.min(30);
        self.base.saturating_mul(factor).min(self.max)
    }

    pub fn delay(&self, n: u32) -> Duration {
        self.delay_with(n, &mut fastrand::Rng::new())
    }

    pub fn delay_with(&self, n: u32, rng: &mut fastrand::Rng) -> Duration {
        let cap = u64::try_from(self.cap(n).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.u64(0..=cap))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetSettings {
    /// Retries allowed per original request, on top of the minimum (0.2 = 20%).
    pub ratio: f32,
    pub min_per_second: u32,
    /// How long a deposit (and a withdrawal) counts; clamped to 1s..=60s.
    pub ttl: Duration,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        BudgetSettings {
            ratio: 0.2,
            min_per_second: 10,
            ttl: Duration::from_secs(10),
        }
    }
}

/// Retry budget of one route, shared by all workers. Deposit once per original request,
/// withdraw once per retry; a failed withdrawal means "do not retry" (count
/// `outrider_retry_budget_exhausted_total`). Uses `tokio::time::Instant::now()` internally.
pub struct RetryBudget {
    inner: TpsBudget,
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl RetryBudget {
    /// Out-of-range values are clamped (ratio 0..=1000, ttl 1s..=60s) instead of panicking
    /// inside `TpsBudget::new`; validation should reject them earlier.
    pub fn new(s: &BudgetSettings) -> Self {
        let ttl = s.ttl.clamp(Duration::from_secs(1), Duration::from_secs(60));
        let ratio = if s.ratio.is_finite() {
            s.ratio.clamp(0.0, 1000.0)
        } else {
            0.0
        };
        let min = s.min_per_second.min(i32::MAX as u32 - 1);
        RetryBudget {
            inner: TpsBudget::new(ttl, min, ratio),
        }
    }

    pub fn deposit(&self) {
        self.inner.deposit();
    }

    pub fn withdraw(&self) -> bool {
        self.inner.withdraw()
    }
}

#[cfg(test)]
mod tests;
