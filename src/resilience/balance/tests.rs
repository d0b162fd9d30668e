use std::time::Duration;

use super::*;
use crate::resilience::endpoint::InFlight;
use crate::resilience::outlier::{OutlierDetector, OutlierSettings};

fn endpoints(n: u16, now: Instant) -> Vec<Endpoint> {
    (0..n)
        .map(|i| Endpoint::new(([127, 0, 0, 1], 3000 + i).into(), now))
        .collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Ejects `eps[i]` (one-endpoint-at-a-time cap lifted) and returns the detector.
fn eject(eps: &[Endpoint], i: usize, now: Instant) -> OutlierDetector {
    let d = OutlierDetector::new(OutlierSettings {
        max_ejected_percent: 100,
        ..OutlierSettings::default()
    });
    for _ in 0..5 {
        d.record(eps, i, true, false, now);
    }
    assert!(eps[i].outlier.is_ejected());
    d
}

/// Open-loop simulation: a request every 2ms for 10,000 requests; endpoint 0 answers in
/// 10ms, endpoint 1 in 100ms. Returns the share of requests sent to the slow one.
fn slow_share(kind: BalanceKind) -> f64 {
    let t0 = Instant::now();
    let eps = endpoints(2, t0);
    let b = Balancer::new(kind);
    let latency = [ms(10), ms(100)];
    let mut open = Vec::new();
    let mut picks = [0u32; 2];
    for n in 0..10_000u64 {
        let now = t0 + ms(2 * n);
        open.retain(|(done, i, _guard): &(Instant, usize, InFlight<'_>)| {
            if *done <= now {
                eps[*i].stats.observe(latency[*i], *done);
                false
            } else {
                true
            }
        });
        let i = b.pick(&eps, None, now).unwrap().index;
        picks[i] += 1;
        open.push((now + latency[i], i, eps[i].stats.start()));
    }
    f64::from(picks[1]) / 10_000.0
}

#[test]
fn p2c_ewma_sends_less_traffic_to_a_slow_endpoint_than_round_robin() {
    let rr = slow_share(BalanceKind::RoundRobin);
    let p2c = slow_share(BalanceKind::P2cEwma);
    let lr = slow_share(BalanceKind::LeastRequest);
    assert!((rr - 0.5).abs() < 0.001, "round-robin {rr}");
    // Measured: p2c-ewma ~0.8%, least-request ~10%, round-robin 50%.
    assert!(p2c < 0.05, "p2c-ewma {p2c} vs round-robin {rr}");
    assert!(lr < 0.2, "least-request {lr} vs round-robin {rr}");
}

#[test]
fn round_robin_cycles_and_skips_unusable() {
    let t0 = Instant::now();
    let eps = endpoints(4, t0);
    let _d = eject(&eps, 1, t0);
    let b = Balancer::new(BalanceKind::RoundRobin);
    let picks: Vec<usize> = (0..6)
        .map(|_| b.pick(&eps, None, t0).unwrap().index)
        .collect();
    assert_eq!(picks, [0, 2, 3, 0, 2, 3]);
}

#[test]
fn least_request_prefers_idle_and_breaks_ties_randomly() {
    let t0 = Instant::now();
    let eps = endpoints(3, t0);
    let b = Balancer::new(BalanceKind::LeastRequest);
    let _busy = eps[0].stats.start();
    let mut counts = [0u32; 3];
    for _ in 0..1000 {
        counts[b.pick(&eps, None, t0).unwrap().index] += 1;
    }
    assert_eq!(counts[0], 0);
    assert!(counts[1] > 350 && counts[2] > 350, "{counts:?}");
}

#[test]
fn penalized_endpoint_is_avoided_but_used_when_alone() {
    let t0 = Instant::now();
    for kind in [
        BalanceKind::P2cEwma,
        BalanceKind::LeastRequest,
        BalanceKind::RoundRobin,
    ] {
        let eps = endpoints(2, t0);
        eps[0].stats.penalize(t0 + ms(5000));
        let b = Balancer::new(kind);
        for _ in 0..100 {
            assert_eq!(b.pick(&eps, None, t0).unwrap().index, 1, "{kind:?}");
        }
        let _d = eject(&eps, 1, t0);
        assert_eq!(
            b.pick(&eps, None, t0).unwrap().index,
            0,
            "last resort, {kind:?}"
        );
        let alone = endpoints(1, t0);
        alone[0].stats.penalize(t0 + ms(5000));
        assert_eq!(b.pick(&alone, None, t0).unwrap().index, 0);
    }
}

#[test]
fn retries_prefer_a_different_endpoint() {
    let t0 = Instant::now();
    let eps = endpoints(3, t0);
    let b = Balancer::new(BalanceKind::P2cEwma);
    for _ in 0..200 {
        assert_ne!(b.pick(&eps, Some(1), t0).unwrap().index, 1);
    }
    let one = endpoints(1, t0);
    assert_eq!(b.pick(&one, Some(0), t0).unwrap().index, 0);
}

#[test]
fn ejected_never_picked_then_one_probe_after_expiry() {
    let t0 = Instant::now();
    let eps = endpoints(2, t0);
    let d = eject(&eps, 0, t0);
    let b = Balancer::new(BalanceKind::P2cEwma);
    for _ in 0..100 {
        assert_eq!(
            b.pick(&eps, None, t0).unwrap(),
            Pick {
                index: 1,
                probe: false
            }
        );
    }
    let t1 = t0 + Duration::from_secs(30);
    assert_eq!(
        b.pick(&eps, None, t1).unwrap(),
        Pick {
            index: 0,
            probe: true
        }
    );
    for _ in 0..100 {
        assert_eq!(b.pick(&eps, None, t1).unwrap().index, 1, "probe in flight");
    }
    d.record(&eps, 0, false, true, t1);
    let mut saw0 = false;
    for _ in 0..100 {
        saw0 |= b.pick(&eps, None, t1).unwrap().index == 0;
    }
    assert!(saw0, "restored endpoint takes traffic again");
}

#[test]
fn unavailable_reasons() {
    let t0 = Instant::now();
    let b = Balancer::new(BalanceKind::P2cEwma);
    let none: Vec<Endpoint> = Vec::new();
    assert_eq!(b.pick(&none, None, t0), Err(Unavailable::NoEndpoints));
    let eps = endpoints(1, t0);
    let s = crate::resilience::HealthSettings {
        unhealthy_threshold: 1,
        ..Default::default()
    };
    eps[0].health.record(false, &s);
    assert_eq!(b.pick(&eps, None, t0), Err(Unavailable::NoEndpoints));
    let eps = endpoints(1, t0);
    let _d = eject(&eps, 0, t0);
    let err = b.pick(&eps, None, t0).unwrap_err();
    assert_eq!(
        (err, err.reason()),
        (Unavailable::CircuitOpen, "circuit-open")
    );
    // The probe is not sent to the endpoint a retry avoids.
    let t1 = t0 + Duration::from_secs(30);
    assert_eq!(b.pick(&eps, Some(0), t1), Err(Unavailable::CircuitOpen));
    assert!(b.pick(&eps, None, t1).unwrap().probe);
    assert_eq!(b.pick(&eps, None, t1), Err(Unavailable::CircuitOpen));
}
