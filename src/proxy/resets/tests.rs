use std::future::{pending, ready};

use futures_util::FutureExt;

use super::{Resets, EARLY, MIN_CANCELLED};

fn tripped(r: &Resets) -> bool {
    r.tripped().now_or_never().is_some()
}

#[test]
fn completed_requests_are_not_cancellations() {
    let r = Resets::new();
    for _ in 0..500 {
        assert_eq!(r.track(ready(7)).now_or_never(), Some(7));
    }
    assert_eq!(r.counts(), (500, 0));
    assert!(!tripped(&r));
}

#[test]
fn cancelling_every_request_trips_at_the_minimum() {
    let r = Resets::new();
    for _ in 0..MIN_CANCELLED - 1 {
        drop(r.track(pending::<()>()));
    }
    assert!(!tripped(&r), "below the minimum");
    drop(r.track(pending::<()>()));
    assert!(tripped(&r));
    assert_eq!(r.counts(), (MIN_CANCELLED, MIN_CANCELLED));
}

#[test]
fn cancellations_must_be_half_of_all_requests() {
    let r = Resets::new();
    for _ in 0..3 * MIN_CANCELLED {
        r.track(ready(())).now_or_never().unwrap();
    }
    for _ in 0..(3 * MIN_CANCELLED) - 1 {
        drop(r.track(pending::<()>()));
    }
    assert!(!tripped(&r), "{:?}: just under half", r.counts());
    drop(r.track(pending::<()>()));
    assert!(tripped(&r), "{:?}: half", r.counts());
}

#[tokio::test]
async fn a_waiter_is_woken_when_it_trips() {
    let r = Resets::new();
    let waiter = tokio::spawn({
        let r = r.clone();
        async move { r.tripped().await }
    });
    tokio::task::yield_now().await;
    for _ in 0..MIN_CANCELLED {
        drop(r.track(pending::<()>()));
    }
    tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .expect("the waiter was woken")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn cancellations_after_the_early_window_do_not_count() {
    let r = Resets::new();
    let slow: Vec<_> = (0..2 * MIN_CANCELLED)
        .map(|_| r.track(pending::<()>()))
        .collect();
    tokio::time::advance(EARLY).await;
    // A caller's timeouts on a slow app: late, not counted.
    drop(slow);
    assert_eq!(r.counts(), (2 * MIN_CANCELLED, 0));
    assert!(!tripped(&r));
}
