use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn endpoints(n: u16, now: Instant) -> Vec<Endpoint> {
    (0..n)
        .map(|i| Endpoint::new(([127, 0, 0, 1], 1000 + i).into(), now))
        .collect()
}

fn detector(pct: u8) -> OutlierDetector {
    OutlierDetector::new(OutlierSettings {
        max_ejected_percent: pct,
        ..OutlierSettings::default()
    })
}

/// Records `n` failures on endpoint `i`; returns the last verdict.
fn fail(d: &OutlierDetector, eps: &[Endpoint], i: usize, n: u32, now: Instant) -> Verdict {
    let mut v = Verdict::Unchanged;
    for _ in 0..n {
        v = d.record(eps, i, true, false, now);
    }
    v
}

#[test]
fn ejects_after_exactly_n_consecutive_failures() {
    let t0 = Instant::now();
    let eps = endpoints(1, t0);
    let d = detector(50);
    assert_eq!(fail(&d, &eps, 0, 4, t0), Verdict::Unchanged);
    assert_eq!(eps[0].outlier.consecutive_failures(), 4);
    assert!(!eps[0].outlier.is_ejected());
    // A success in between resets the run.
    d.record(&eps, 0, false, false, t0);
    assert_eq!(eps[0].outlier.consecutive_failures(), 0);
    assert_eq!(fail(&d, &eps, 0, 4, t0), Verdict::Unchanged);
    assert_eq!(
        fail(&d, &eps, 0, 1, t0),
        Verdict::Ejected {
            until: t0 + secs(30)
        }
    );
    assert!(eps[0].outlier.is_ejected());
    assert_eq!(eps[0].outlier.ejected_for(t0), Some(secs(30)));
    assert_eq!(d.ejections_total(), 1);
    assert_eq!(ejected_count(&eps), 1);
}

#[test]
fn results_of_non_probe_requests_are_ignored_while_ejected() {
    let t0 = Instant::now();
    let eps = endpoints(1, t0);
    let d = detector(50);
    fail(&d, &eps, 0, 5, t0);
    assert_eq!(d.record(&eps, 0, false, false, t0), Verdict::Unchanged);
    assert_eq!(fail(&d, &eps, 0, 10, t0), Verdict::Unchanged);
    assert!(eps[0].outlier.is_ejected());
    assert_eq!(d.ejections_total(), 1);
}

#[test]
fn half_open_allows_exactly_one_probe_and_its_result_decides() {
    let t0 = Instant::now();
    let eps = endpoints(1, t0);
    let o = &eps[0].outlier;
    let d = detector(50);
    fail(&d, &eps, 0, 5, t0);
    assert!(!o.try_claim_probe(t0 + secs(29)));
    let t1 = t0 + secs(30);
    assert!(o.try_claim_probe(t1));
    assert!(!o.try_claim_probe(t1), "second probe refused");
    assert!(
        !o.try_claim_probe(t1 + secs(5)),
        "still refused while the probe runs"
    );
    // Probe fails: re-ejected for twice as long.
    let t2 = t1 + secs(1);
    assert_eq!(
        d.record(&eps, 0, true, true, t2),
        Verdict::Ejected {
            until: t2 + secs(60)
        }
    );
    // Next probe succeeds: restored.
    let t3 = t2 + secs(60);
    assert!(o.try_claim_probe(t3));
    assert_eq!(d.record(&eps, 0, false, true, t3), Verdict::Restored);
    assert!(!o.is_ejected());
    assert_eq!(o.consecutive_failures(), 0);
}

#[test]
fn unanswered_probe_is_replaced_after_the_window_or_on_release() {
    let t0 = Instant::now();
    let eps = endpoints(1, t0);
    let o = &eps[0].outlier;
    let d = detector(50);
    fail(&d, &eps, 0, 5, t0);
    let t1 = t0 + secs(30);
    assert!(o.try_claim_probe(t1));
    d.release_probe(&eps[0], t1);
    assert!(o.try_claim_probe(t1));
    assert!(!o.try_claim_probe(t1 + PROBE_WINDOW - secs(1)));
    assert!(o.try_claim_probe(t1 + PROBE_WINDOW));
}

#[test]
fn ejection_time_doubles_per_repeat_and_caps_at_five_minutes() {
    let d = detector(50);
    let times: Vec<u64> = (1..=7).map(|l| d.ejection_time(l).as_secs()).collect();
    assert_eq!(times, [30, 60, 120, 240, 300, 300, 300]);
    assert_eq!(d.ejection_time(u32::MAX), MAX_EJECTION);

    // Repeat ejections of the same endpoint, each right after the previous probe succeeded.
    let t0 = Instant::now();
    let eps = endpoints(1, t0);
    let mut now = t0;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let Verdict::Ejected { until } = fail(&d, &eps, 0, 5, now) else {
            panic!("not ejected")
        };
        seen.push((until - now).as_secs());
        now = until;
        assert!(eps[0].outlier.try_claim_probe(now));
        assert_eq!(d.record(&eps, 0, false, true, now), Verdict::Restored);
    }
    assert_eq!(seen, [30, 60, 120, 240, 300, 300]);
}

#[test]
fn level_decays_while_the_endpoint_behaves() {
    let t0 = Instant::now();
    let eps = endpoints(1, t0);
    let d = detector(50);
    fail(&d, &eps, 0, 5, t0);
    let t1 = t0 + secs(30);
    assert!(eps[0].outlier.try_claim_probe(t1));
    d.record(&eps, 0, false, true, t1);
    // Healthy for one ejection_time: level 1 -> 0, so the next ejection is 30s again.
    let t2 = t1 + secs(30);
    assert_eq!(
        fail(&d, &eps, 0, 5, t2),
        Verdict::Ejected {
            until: t2 + secs(30)
        }
    );
}

#[test]
fn max_ejected_percent_is_respected_with_three_endpoints() {
    let t0 = Instant::now();
    let eps = endpoints(3, t0);
    let d = detector(50);
    assert_eq!(d.max_ejected(3), 1, "floor(3 × 50%) = 1");
    assert!(matches!(fail(&d, &eps, 0, 5, t0), Verdict::Ejected { .. }));
    assert_eq!(fail(&d, &eps, 1, 5, t0), Verdict::Unchanged);
    assert_eq!(fail(&d, &eps, 2, 50, t0), Verdict::Unchanged);
    assert_eq!(ejected_count(&eps), 1);
    // Once the first is restored, another may go.
    let t1 = t0 + secs(30);
    assert!(eps[0].outlier.try_claim_probe(t1));
    d.record(&eps, 0, false, true, t1);
    assert!(matches!(fail(&d, &eps, 1, 1, t1), Verdict::Ejected { .. }));

    let all = detector(100);
    let eps = endpoints(3, t0);
    for i in 0..3 {
        assert!(matches!(
            fail(&all, &eps, i, 5, t0),
            Verdict::Ejected { .. }
        ));
    }
}

#[test]
fn percent_rounding_and_single_endpoint() {
    let d = detector(50);
    assert_eq!(
        d.max_ejected(1),
        1,
        "one endpoint may be ejected: circuit-open"
    );
    assert_eq!(d.max_ejected(2), 1);
    assert_eq!(d.max_ejected(5), 2);
    assert_eq!(detector(10).max_ejected(5), 1, "at least one");
    assert_eq!(detector(0).max_ejected(5), 0, "0% disables ejection");
    let off = OutlierDetector::new(OutlierSettings {
        consecutive_failures: 0,
        ..OutlierSettings::default()
    });
    let t0 = Instant::now();
    let eps = endpoints(1, t0);
    assert_eq!(fail(&off, &eps, 0, 100, t0), Verdict::Unchanged);
}
