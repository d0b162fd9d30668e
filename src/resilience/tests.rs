//! Cross-module tests through the `Backend` facade.

use std::time::Duration;

use http::HeaderValue;
use tokio::time::Instant;

use super::*;

fn endpoints(n: u16, now: Instant) -> Vec<std::sync::Arc<Endpoint>> {
    (0..n)
        .map(|i| std::sync::Arc::new(Endpoint::new(([127, 0, 0, 1], 4000 + i).into(), now)))
        .collect()
}

const LAT: Duration = Duration::from_millis(3);

#[test]
fn defaults_match_the_docs() {
    let s = Settings::default();
    assert_eq!(s.balance, BalanceKind::P2cEwma);
    assert_eq!(s.limits.max_concurrent_requests, 1024);
    assert_eq!(s.limits.max_pending, 1024);
    assert_eq!(s.outlier.consecutive_failures, 5);
    assert_eq!(s.outlier.ejection_time, Duration::from_secs(30));
    assert_eq!(s.outlier.max_ejected_percent, 50);
    assert!(s.health.is_none());
    let r = RetrySettings::default();
    assert_eq!(
        (r.attempts, r.per_try_timeout, r.max_body),
        (1, None, 64 * 1024)
    );
    assert_eq!(
        r.on,
        RetryOn::parse(&["connect-failure", "refused-stream"]).unwrap()
    );
    assert_eq!(r.budget.ratio, 0.2);
}

/// One of three endpoints answers 503; returns (requests it got, picks of each endpoint
/// after it was ejected or after the first 1,000 requests).
fn one_bad_of_three(kind: BalanceKind) -> (u32, [u32; 3], Backend, Vec<std::sync::Arc<Endpoint>>) {
    let t0 = Instant::now();
    let eps = endpoints(3, t0);
    let b = Backend::new(&Settings {
        balance: kind,
        ..Settings::default()
    });
    let mut failures = 0;
    let mut later = [0u32; 3];
    for n in 0..3000u64 {
        let now = t0 + Duration::from_millis(n);
        let counted = n >= 1000 || eps[2].outlier.is_ejected();
        let pick = b.pick(&eps, None, now).unwrap();
        if counted {
            later[pick.index] += 1;
        }
        let outcome = if pick.index == 2 {
            failures += 1;
            Outcome::Status(503)
        } else {
            Outcome::Status(200)
        };
        b.report(&eps, pick, outcome, LAT, None, now);
    }
    (failures, later, b, eps)
}

#[test]
fn one_failing_endpoint_of_three_is_ejected_and_traffic_shifts() {
    let (failures, later, b, eps) = one_bad_of_three(BalanceKind::RoundRobin);
    assert_eq!(failures, 5, "ejected after exactly consecutive_failures");
    assert_eq!(later[2], 0);
    let s = b.summary(&eps, Instant::now() + Duration::from_secs(3));
    assert_eq!((s.healthy, s.ejected, s.ejections_total), (2, 1, 1));
    assert!(!s.circuit_open);
}

#[test]
fn p2c_shifts_away_after_the_first_failure() {
    // The failure penalty (>= 1s) makes the bad endpoint lose every comparison long before
    // it could collect 5 failures in a row: traffic shifts at once, no ejection needed.
    let (failures, later, _, _) = one_bad_of_three(BalanceKind::P2cEwma);
    assert!((1..=2).contains(&failures), "{failures}");
    assert_eq!(later[2], 0);
}

#[test]
fn single_endpoint_opens_the_circuit_then_recovers_via_probe() {
    let t0 = Instant::now();
    let eps = endpoints(1, t0);
    let b = Backend::new(&Settings::default());
    for _ in 0..5 {
        let pick = b.pick(&eps, None, t0).unwrap();
        b.report(&eps, pick, Outcome::ConnectFailure, LAT, None, t0);
    }
    assert_eq!(b.pick(&eps, None, t0), Err(Unavailable::CircuitOpen));
    assert!(b.summary(&eps, t0).circuit_open);
    let t1 = t0 + Duration::from_secs(30);
    assert!(!b.summary(&eps, t1).circuit_open, "a probe is due");
    let probe = b.pick(&eps, None, t1).unwrap();
    assert!(probe.probe);
    // Cancelled probe: the next request probes instead.
    b.cancelled(&eps, probe, t1);
    let probe = b.pick(&eps, None, t1).unwrap();
    assert!(probe.probe);
    assert_eq!(b.pick(&eps, None, t1), Err(Unavailable::CircuitOpen));
    assert_eq!(
        b.report(&eps, probe, Outcome::Status(200), LAT, None, t1),
        Verdict::Restored
    );
    assert_eq!(b.pick(&eps, None, t1).unwrap().index, 0);
}

#[test]
fn report_feeds_ewma_and_penalties() {
    let t0 = Instant::now();
    let eps = endpoints(2, t0);
    let b = Backend::new(&Settings::default());
    let p = Pick {
        index: 0,
        probe: false,
    };
    b.report(
        &eps,
        p,
        Outcome::Status(200),
        Duration::from_millis(80),
        None,
        t0,
    );
    assert_eq!(eps[0].stats.ewma(t0), Duration::from_millis(80));
    // A fast 503 must not make the endpoint look fast.
    b.report(
        &eps,
        p,
        Outcome::Status(503),
        Duration::from_micros(50),
        None,
        t0,
    );
    assert!(eps[0].stats.ewma(t0) >= Duration::from_secs(1));
    assert!(
        !eps[0].stats.is_penalized(t0),
        "503 without Retry-After: no penalty"
    );
    let ra = HeaderValue::from_static("2");
    b.report(&eps, p, Outcome::Status(503), LAT, Some(&ra), t0);
    assert!(eps[0].stats.is_penalized(t0 + Duration::from_millis(1999)));
    let q = Pick {
        index: 1,
        probe: false,
    };
    b.report(&eps, q, Outcome::Status(429), LAT, None, t0);
    assert!(eps[1].stats.is_penalized(t0 + Duration::from_millis(4999)));
    assert_eq!(
        eps[1].outlier.consecutive_failures(),
        0,
        "4xx is not a failure"
    );
    // Out-of-range picks (endpoint set changed) are ignored.
    let gone = Pick {
        index: 9,
        probe: true,
    };
    assert_eq!(
        b.report(&eps, gone, Outcome::Timeout, LAT, None, t0),
        Verdict::Unchanged
    );
    b.cancelled(&eps, gone, t0);
}
