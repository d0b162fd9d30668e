use std::sync::Arc;

use tokio::time::Instant;

use super::*;

fn settings() -> HealthSettings {
    HealthSettings {
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(1),
        healthy_threshold: 2,
        unhealthy_threshold: 3,
        ..HealthSettings::default()
    }
}

#[test]
fn thresholds_over_consecutive_results() {
    let s = settings();
    let h = HealthState::new();
    assert!(h.is_healthy(), "healthy until proven otherwise");
    assert_eq!(h.record(false, &s), None);
    assert_eq!(h.record(false, &s), None);
    assert_eq!(h.record(true, &s), None, "a success resets the failure run");
    assert_eq!(h.record(false, &s), None);
    assert_eq!(h.record(false, &s), None);
    assert_eq!(h.record(false, &s), Some(false));
    assert!(!h.is_healthy());
    assert_eq!(h.record(true, &s), None);
    assert_eq!(
        h.record(false, &s),
        None,
        "a failure resets the success run"
    );
    assert_eq!(h.record(true, &s), None);
    assert_eq!(h.record(true, &s), Some(true));
    assert!(h.is_healthy());
}

/// Real time with short intervals; the test waits on probe calls (acknowledgements), never
/// on sleeps: seeing the first probe of round 4 proves rounds 1-3 were recorded.
#[tokio::test]
async fn loop_probes_marks_and_stops() {
    let now = Instant::now();
    let eps: Arc<Vec<Endpoint>> = Arc::new(
        (0..3u16)
            .map(|i| Endpoint::new(([127, 0, 0, 1], 2000 + i).into(), now))
            .collect(),
    );
    let s = HealthSettings {
        interval: Duration::from_millis(20),
        timeout: Duration::from_millis(5),
        ..settings()
    };
    let (calls_tx, mut calls) = tokio::sync::mpsc::unbounded_channel();
    let (tx, rx) = watch::channel(false);
    let task = {
        let eps = Arc::clone(&eps);
        tokio::spawn(async move {
            let probe = |addr: SocketAddr| {
                let _ = calls_tx.send(addr);
                async move {
                    match addr.port() {
                        2000 => true,
                        2001 => false,
                        // Never answers: the per-probe timeout makes it a failure.
                        _ => std::future::pending().await,
                    }
                }
            };
            run_checks(&eps, &s, probe, rx).await;
        })
    };
    let wait = async {
        for _ in 0..10 {
            calls.recv().await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap();
    assert!(eps[0].health.is_healthy());
    assert!(!eps[1].health.is_healthy());
    assert!(!eps[2].health.is_healthy());
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    while calls.try_recv().is_ok() {}
    assert!(
        calls.recv().await.is_none(),
        "loop ended and dropped its probe"
    );
}

#[tokio::test]
async fn loop_ends_when_the_sender_is_dropped() {
    let eps = vec![Endpoint::new(([127, 0, 0, 1], 1).into(), Instant::now())];
    let (tx, rx) = watch::channel(false);
    drop(tx);
    run_checks(&eps, &settings(), |_| async { true }, rx).await;
}
