use super::*;

#[test]
fn parses_spec_items() {
    let on = RetryOn::parse(&["connect-failure", "refused-stream", "reset", "502", "429"]).unwrap();
    assert!(on.connect_failure && on.refused_stream && on.reset);
    assert!(on.status(502) && on.status(429));
    assert!(!on.status(503) && !on.status(500));
    let gw = RetryOn::parse(&["gateway-error"]).unwrap();
    assert!(gw.status(502) && gw.status(503) && gw.status(504));
    assert!(!gw.connect_failure && !gw.status(500));
    assert!(RetryOn::parse(&["100", "599"]).is_ok());
    let d = RetryOn::default();
    assert!(d.connect_failure && d.refused_stream && !d.reset);
    assert_eq!(RetryOn::parse::<&str>(&[]).unwrap(), RetryOn::none());
}

#[test]
fn rejects_unknown_items_with_a_helpful_message() {
    for bad in [
        "5xx",
        "99",
        "600",
        "",
        "+502",
        "Reset",
        "connect_failure",
        "65536",
    ] {
        let err = RetryOn::parse(&["reset", bad]).unwrap_err();
        assert_eq!(err, RetryOnError(bad.to_owned()));
    }
    let msg = RetryOn::parse(&["5xx"]).unwrap_err().to_string();
    assert_eq!(
        msg,
        "unknown retry condition `5xx`: expected connect-failure, refused-stream, reset, \
         gateway-error or a status code 100..=599"
    );
}

#[test]
fn should_retry_truth_table() {
    let all = RetryOn::parse(&[
        "connect-failure",
        "refused-stream",
        "reset",
        "gateway-error",
    ])
    .unwrap();
    use Outcome::*;
    let sent = Reset { request_sent: true };
    let unsent = Reset {
        request_sent: false,
    };
    // (outcome, idempotent, expected) with a replayable body and nothing sent to the client.
    let table = [
        (ConnectFailure, false, true),
        (ConnectFailure, true, true),
        (RefusedStream, false, true),
        (unsent, false, true),
        (sent, false, false),
        (sent, true, true),
        (Timeout, false, false),
        (Timeout, true, true),
        (Status(503), false, false),
        (Status(503), true, true),
        (Status(500), true, false),
        (Status(429), true, false),
        (Status(200), true, false),
    ];
    for (outcome, idem, want) in table {
        assert_eq!(
            should_retry(&all, outcome, idem, true, false),
            want,
            "{outcome:?} {idem}"
        );
        // Never after a response byte reached the client, never with an unreplayable body.
        assert!(
            !should_retry(&all, outcome, idem, true, true),
            "{outcome:?}"
        );
        assert!(
            !should_retry(&all, outcome, idem, false, false),
            "{outcome:?}"
        );
    }
    // Conditions that are not configured are never retried.
    let none = RetryOn::none();
    for outcome in [
        ConnectFailure,
        RefusedStream,
        sent,
        unsent,
        Timeout,
        Status(502),
    ] {
        assert!(
            !should_retry(&none, outcome, true, true, false),
            "{outcome:?}"
        );
    }
    let only_504 = RetryOn::parse(&["504"]).unwrap();
    assert!(should_retry(&only_504, Timeout, true, true, false));
}

#[test]
fn idempotent_methods_and_failures() {
    for m in [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
    ] {
        assert!(is_idempotent_method(&m), "{m}");
    }
    assert!(!is_idempotent_method(&Method::POST));
    assert!(!is_idempotent_method(&Method::PATCH));
    assert!(Outcome::Status(500).is_failure() && Outcome::Timeout.is_failure());
    assert!(!Outcome::Status(429).is_failure() && !Outcome::Status(404).is_failure());
}

#[test]
fn backoff_is_capped_exponential_with_full_jitter() {
    let b = Backoff::default();
    let caps: Vec<u128> = (0..6).map(|n| b.cap(n).as_millis()).collect();
    assert_eq!(caps, [25, 50, 100, 200, 250, 250]);
    assert_eq!(b.cap(u32::MAX), b.max);
    let mut rng = fastrand::Rng::with_seed(7);
    for n in 0..8 {
        let cap = b.cap(n);
        let samples: Vec<Duration> = (0..2000).map(|_| b.delay_with(n, &mut rng)).collect();
        assert!(samples.iter().all(|d| *d <= cap));
        let mean = samples.iter().sum::<Duration>() / 2000;
        assert!(
            mean > cap.mul_f64(0.4) && mean < cap.mul_f64(0.6),
            "n={n} mean={mean:?}"
        );
        assert!(
            samples.iter().any(|d| *d < cap.mul_f64(0.05)),
            "jitter reaches near 0"
        );
    }
    assert!(b.delay(3) <= b.cap(3));
}

fn drain(b: &RetryBudget) -> u32 {
    let mut n = 0;
    while b.withdraw() {
        n += 1;
        assert!(n < 100_000, "budget never runs out");
    }
    n
}

#[test]
fn budget_allows_ratio_of_requests_plus_minimum() {
    let s = BudgetSettings::default();
    // Minimum alone: min_per_second × ttl retries per ttl window.
    let b = RetryBudget::new(&s);
    assert_eq!(drain(&b), 10 * 10);

    // 100 requests × 0.2 + 10/s × 10s, and not one more.
    let b = RetryBudget::new(&s);
    for _ in 0..100 {
        b.deposit();
    }
    assert_eq!(drain(&b), 20 + 100);
    // Each further request earns a fifth of a retry.
    for _ in 0..4 {
        b.deposit();
    }
    assert!(!b.withdraw());
    b.deposit();
    assert!(b.withdraw());
}

#[test]
fn budget_with_one_second_ttl_tracks_min_per_second() {
    let s = BudgetSettings {
        ttl: Duration::from_secs(1),
        ..BudgetSettings::default()
    };
    let b = RetryBudget::new(&s);
    for _ in 0..100 {
        b.deposit();
    }
    assert_eq!(drain(&b), 20 + 10);
}

#[test]
fn budget_clamps_out_of_range_settings() {
    let b = RetryBudget::new(&BudgetSettings {
        ratio: f32::NAN,
        min_per_second: 0,
        ttl: Duration::ZERO,
    });
    b.deposit();
    assert!(!b.withdraw());
}
