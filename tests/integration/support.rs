//! Shared test support: in-process outrider ([`proxy`]), programmable fake upstreams on
//! 127.0.0.1:0 ([`upstream`], [`faults`], [`websocket`]), HTTP clients with per-call timeouts
//! ([`client`], [`raw`]), a Prometheus text parser ([`metrics`]), and real MCP on both ends
//! ([`rmcp_mesh`]: rmcp servers and clients, mTLS sidecars; [`relay`]: a reset after the
//! request was sent; [`lying_client`]: routing headers that contradict the body).
//!
//! Rules every helper follows: ephemeral loopback ports only, every network wait bounded by
//! [`TIMEOUT`] (a hung test fails instead of hanging), no sleeps to wait for state.

#![allow(dead_code)]

pub mod body;
pub mod chaos;
pub mod client;
pub mod faults;
pub mod h2raw;
pub mod lying_client;
pub mod metrics;
pub mod pki;
pub mod proxy;
pub mod raw;
pub mod relay;
pub mod rmcp_mesh;
pub mod tap;
pub mod upstream;
pub mod websocket;

use std::future::Future;
use std::time::{Duration, Instant};

pub use proxy::{Cfg, TestProxy};
pub use upstream::Upstream;

/// Upper bound for any single network wait in a test.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Await `fut`, failing the test with `what` if it takes longer than `limit`.
pub async fn within<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Await `fut` bounded by [`TIMEOUT`].
pub async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    within(TIMEOUT, what, fut).await
}

/// Last-resort poll: retry `check` until it returns `Some`, failing after `deadline`.
/// Used only where the proxy offers no signal to wait on (e.g. a listener being closed).
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("condition not reached within {deadline:?}: {what}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
