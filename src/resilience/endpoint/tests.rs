use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn approx(d: Duration, want: Duration) -> bool {
    let (d, w) = (d.as_secs_f64(), want.as_secs_f64());
    (d - w).abs() <= w * 0.01 + 1e-6
}

#[test]
fn starts_at_default_rtt_and_decays_when_idle() {
    let t0 = Instant::now();
    let s = EndpointStats::new(t0);
    assert_eq!(s.ewma(t0), DEFAULT_RTT);
    let later = t0 + DEFAULT_DECAY;
    assert!(approx(s.ewma(later), DEFAULT_RTT.mul_f64((-1f64).exp())));
}

#[test]
fn peak_replaces_at_once_and_lower_samples_blend_with_time_constant() {
    let t0 = Instant::now();
    let s = EndpointStats::new(t0);
    s.observe(ms(500), t0);
    assert_eq!(s.ewma(t0), ms(500));
    // A lower sample right away barely moves the estimate.
    s.observe(ms(10), t0);
    assert_eq!(s.ewma(t0), ms(500));
    // One time constant later it is blended with weight 1 - 1/e.
    let t1 = t0 + DEFAULT_DECAY;
    s.observe(ms(10), t1);
    let w = (-1f64).exp();
    assert!(approx(
        s.ewma(t1),
        ms(500).mul_f64(w) + ms(10).mul_f64(1.0 - w)
    ));
    // A new peak wins immediately again.
    s.observe(ms(900), t1);
    assert_eq!(s.ewma(t1), ms(900));
}

#[test]
fn failures_never_look_fast() {
    let t0 = Instant::now();
    let s = EndpointStats::new(t0);
    s.observe(ms(5), t0);
    s.observe_failure(t0);
    assert_eq!(s.ewma(t0), FAILURE_RTT_MIN);
    s.observe_failure(t0);
    assert_eq!(s.ewma(t0), ms(2000));
    for _ in 0..10 {
        s.observe_failure(t0);
    }
    assert_eq!(s.ewma(t0), FAILURE_RTT_MAX);
}

#[test]
fn load_weights_estimate_by_in_flight() {
    let t0 = Instant::now();
    let s = EndpointStats::new(t0);
    s.observe(ms(100), t0);
    let one = s.load(t0);
    let a = s.start();
    let b = s.start();
    assert_eq!(s.in_flight(), 2);
    assert!((s.load(t0) - 3.0 * one).abs() < 1.0);
    drop((a, b));
    assert_eq!(s.in_flight(), 0);
}

#[test]
fn penalty_lasts_until_deadline_and_is_never_shortened() {
    let t0 = Instant::now();
    let s = EndpointStats::new(t0);
    assert!(!s.is_penalized(t0));
    s.penalize(t0 + ms(5000));
    s.penalize(t0 + ms(1000));
    assert!(s.is_penalized(t0 + ms(4999)));
    assert!(!s.is_penalized(t0 + ms(5000)));
}

#[test]
fn retry_after_parsing_cap_and_default() {
    let t0 = Instant::now();
    let h = |s: &'static str| HeaderValue::from_static(s);
    assert_eq!(retry_after(Some(&h("3")), t0), t0 + ms(3000));
    assert_eq!(retry_after(Some(&h(" 0 ")), t0), t0);
    assert_eq!(retry_after(Some(&h("3600")), t0), t0 + RETRY_AFTER_MAX);
    assert_eq!(retry_after(None, t0), t0 + RETRY_AFTER_DEFAULT);
    let date = h("Wed, 21 Oct 2015 07:28:00 GMT");
    assert_eq!(retry_after(Some(&date), t0), t0 + RETRY_AFTER_DEFAULT);
    assert_eq!(retry_after(Some(&h("-1")), t0), t0 + RETRY_AFTER_DEFAULT);
}

#[test]
fn shed_penalty_rules() {
    let t0 = Instant::now();
    let two = HeaderValue::from_static("2");
    assert_eq!(shed_penalty(429, None, t0), Some(t0 + RETRY_AFTER_DEFAULT));
    assert_eq!(shed_penalty(429, Some(&two), t0), Some(t0 + ms(2000)));
    assert_eq!(shed_penalty(503, Some(&two), t0), Some(t0 + ms(2000)));
    assert_eq!(shed_penalty(503, None, t0), None);
    assert_eq!(shed_penalty(500, Some(&two), t0), None);
    assert_eq!(shed_penalty(200, None, t0), None);
}

#[test]
fn report_shows_state_and_numbers() {
    let t0 = Instant::now();
    let ep = Endpoint::new("127.0.0.1:1".parse().unwrap(), t0);
    let _g = ep.stats.start();
    ep.stats.penalize(t0 + ms(1500));
    let r = ep.report(t0);
    assert_eq!(r.state, EndpointState::Healthy);
    assert_eq!(r.state.as_str(), "healthy");
    assert_eq!(r.in_flight, 1);
    assert_eq!(r.ewma, DEFAULT_RTT);
    assert_eq!(r.penalized_for, Some(ms(1500)));
    assert_eq!(r.ejected_for, None);
}
