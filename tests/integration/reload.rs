//! Hot reload (SPEC §4, issue "Hot-reloaded YAML routing rules"): file watch (in-place writes,
//! rename-saves, ConfigMap symlink swaps), SIGHUP, `POST /reload`, rejected edits keep the old
//! config, listener changes need a restart, unchanged backends keep their pools, and no
//! request fails while reloads happen under load.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::support::{eventually, Cfg, TestProxy, Upstream};

/// A fresh directory under the target dir (no shared /tmp names between tests).
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "outrider-it-{name}-{}-{}",
        std::process::id(),
        fastrand_u64()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// Writes like an editor's rename-save: a temp file then an atomic rename.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn two_backend_cfg(b1: &Upstream, b2: &Upstream, target: &str) -> Cfg {
    Cfg::new()
        .backend("b1", b1.addr)
        .backend("b2", b2.addr)
        .host_route("r1", "svc", target, "")
}

async fn config_json(proxy: &TestProxy) -> Value {
    let r = proxy.admin_get("/config").await;
    assert_eq!(r.status, 200);
    r.json()
}

async fn wait_generation(proxy: &TestProxy, generation: u64) {
    eventually(
        Duration::from_secs(5),
        &format!("config generation {generation}"),
        || async {
            (config_json(proxy).await["generation"].as_u64() == Some(generation)).then_some(())
        },
    )
    .await;
}

async fn history(proxy: &TestProxy) -> Vec<Value> {
    let r = proxy.admin_get("/config/history").await;
    assert_eq!(r.status, 200);
    r.json().as_array().cloned().unwrap()
}

#[tokio::test]
async fn a_route_edit_on_disk_takes_effect() {
    let (b1, b2) = (Upstream::named("b1").await, Upstream::named("b2").await);
    let dir = temp_dir("edit");
    let path = dir.join("outrider.yaml");
    std::fs::write(&path, two_backend_cfg(&b1, &b2, "b1").yaml()).unwrap();
    let proxy = TestProxy::start_file(&path);
    assert_eq!(proxy.get("svc", "/").await.upstream(), "b1");

    // In-place write (truncate + write), as `kubectl cp` or `echo >` would do.
    std::fs::write(&path, two_backend_cfg(&b1, &b2, "b2").yaml()).unwrap();
    wait_generation(&proxy, 2).await;
    assert_eq!(proxy.get("svc", "/").await.upstream(), "b2");

    // Rename-save of an editor.
    write_atomic(&path, two_backend_cfg(&b1, &b2, "b1").yaml().as_str());
    wait_generation(&proxy, 3).await;
    assert_eq!(proxy.get("svc", "/").await.upstream(), "b1");

    let h = history(&proxy).await;
    let last = h.last().unwrap();
    assert_eq!(last["result"], "success");
    assert_eq!(last["trigger"], "watch");
    assert_eq!(last["changes"]["routes_changed"][0], "r1");
    assert_eq!(
        proxy.metric("outrider_config_generation", &[]).await,
        Some(3.0)
    );
    assert_eq!(
        proxy
            .metric("outrider_config_reloads_total", &[("result", "success")])
            .await,
        Some(2.0)
    );
}

#[tokio::test]
async fn a_configmap_symlink_swap_is_picked_up() {
    let (b1, b2) = (Upstream::named("b1").await, Upstream::named("b2").await);
    // The layout kubelet uses: config.yaml -> ..data/config.yaml, ..data -> ..v1
    let dir = temp_dir("configmap");
    std::fs::create_dir(dir.join("..v1")).unwrap();
    std::fs::write(
        dir.join("..v1/config.yaml"),
        two_backend_cfg(&b1, &b2, "b1").yaml(),
    )
    .unwrap();
    std::os::unix::fs::symlink("..v1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/config.yaml", dir.join("config.yaml")).unwrap();
    let proxy = TestProxy::start_file(&dir.join("config.yaml"));
    assert_eq!(proxy.get("svc", "/").await.upstream(), "b1");

    std::fs::create_dir(dir.join("..v2")).unwrap();
    std::fs::write(
        dir.join("..v2/config.yaml"),
        two_backend_cfg(&b1, &b2, "b2").yaml(),
    )
    .unwrap();
    std::os::unix::fs::symlink("..v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    wait_generation(&proxy, 2).await;
    assert_eq!(proxy.get("svc", "/").await.upstream(), "b2");
}

#[tokio::test]
async fn an_invalid_edit_keeps_the_old_routes_and_is_reported_with_its_line() {
    let (b1, b2) = (Upstream::named("b1").await, Upstream::named("b2").await);
    let dir = temp_dir("invalid");
    let path = dir.join("outrider.yaml");
    let good = two_backend_cfg(&b1, &b2, "b1").yaml();
    std::fs::write(&path, &good).unwrap();
    let proxy = TestProxy::start_file(&path);

    let bad = good.replace("backend: b1 }", "backend: nope }");
    let bad_line = bad.lines().position(|l| l.contains("nope")).unwrap() + 1;
    write_atomic(&path, &bad);
    let failure = eventually(
        Duration::from_secs(5),
        "a failed reload in the history",
        || async {
            history(&proxy)
                .await
                .into_iter()
                .find(|a| a["result"] == "failure")
        },
    )
    .await;
    let error = failure["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("outrider.yaml:{bad_line}:")),
        "error names the line: {error}"
    );
    assert!(error.contains("unknown backend `nope`"), "{error}");
    assert_eq!(failure["generation"], 1);
    assert_eq!(
        proxy.get("svc", "/").await.upstream(),
        "b1",
        "old routes still serve"
    );
    assert_eq!(config_json(&proxy).await["generation"], 1);
    assert_eq!(
        proxy
            .metric("outrider_config_reloads_total", &[("result", "failure")])
            .await,
        Some(1.0)
    );

    // `POST /reload` on the same bad file: 422 with the error, nothing changes.
    let r = proxy.client.post(&proxy.admin_url("/reload"), "").await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["result"], "failure");
}

#[tokio::test]
async fn post_reload_applies_and_reports() {
    let (b1, b2) = (Upstream::named("b1").await, Upstream::named("b2").await);
    let dir = temp_dir("post");
    let path = dir.join("outrider.yaml");
    std::fs::write(&path, two_backend_cfg(&b1, &b2, "b1").yaml()).unwrap();
    let proxy = TestProxy::start_file(&path);

    let r = proxy.client.post(&proxy.admin_url("/reload"), "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"], "unchanged");

    write_atomic(&path, &two_backend_cfg(&b1, &b2, "b2").yaml());
    // The watcher may apply the edit first; either way `POST /reload` reports success and
    // the history shows the API attempt.
    let r = proxy.client.post(&proxy.admin_url("/reload"), "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(matches!(
        r.json()["result"].as_str(),
        Some("success" | "unchanged")
    ));
    wait_generation(&proxy, 2).await;
    assert_eq!(proxy.get("svc", "/").await.upstream(), "b2");
    assert!(history(&proxy).await.iter().any(|a| a["trigger"] == "api"));
}

#[tokio::test]
async fn a_listener_change_is_rejected_with_a_restart_message() {
    let b1 = Upstream::named("b1").await;
    let dir = temp_dir("listener");
    let path = dir.join("outrider.yaml");
    let good = Cfg::single(b1.addr).yaml();
    std::fs::write(&path, &good).unwrap();
    let proxy = TestProxy::start_file(&path);
    let port = proxy.outbound_addr().port();
    let moved = good.replacen(
        "outbound:\n  listen: 127.0.0.1:0",
        &format!("outbound:\n  listen: 127.0.0.1:{}", port + 1),
        1,
    );
    assert_ne!(moved, good);
    write_atomic(&path, &moved);
    let r = proxy.client.post(&proxy.admin_url("/reload"), "").await;
    assert_eq!(r.status, 422);
    let error = r.json()["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("outbound.listen") && error.contains("restart"),
        "{error}"
    );
    assert_eq!(proxy.get("svc", "/").await.status, 200);
}

#[tokio::test]
async fn an_unchanged_backend_keeps_its_upstream_connection() {
    let (b1, b2) = (Upstream::named("b1").await, Upstream::named("b2").await);
    let dir = temp_dir("pool");
    let path = dir.join("outrider.yaml");
    std::fs::write(&path, two_backend_cfg(&b1, &b2, "b1").yaml()).unwrap();
    let proxy = TestProxy::start_file(&path);
    for _ in 0..3 {
        assert_eq!(proxy.get("svc", "/").await.status, 200);
    }
    assert_eq!(b1.accepts(), 1);

    // Add a route and change b2; b1 is untouched.
    let next = two_backend_cfg(&b1, &b2, "b1")
        .host_route("r2", "other", "b2", "timeout: 2s")
        .yaml()
        .replace(
            &format!("\"{}\"] }}, connect_timeout: 1s", b2.addr),
            &format!("\"{}\"] }}, connect_timeout: 2s", b2.addr),
        );
    write_atomic(&path, &next);
    wait_generation(&proxy, 2).await;
    let h = history(&proxy).await;
    let changes = &h.last().unwrap()["changes"];
    assert_eq!(changes["routes_added"][0], "r2");
    assert_eq!(changes["backends_changed"][0], "b2");
    for _ in 0..3 {
        assert_eq!(proxy.get("svc", "/").await.status, 200);
    }
    assert_eq!(
        b1.accepts(),
        1,
        "the pooled connection to b1 survived the reload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_during_twenty_reloads_under_load() {
    let (b1, b2) = (Upstream::named("b1").await, Upstream::named("b2").await);
    let dir = temp_dir("load");
    let path = dir.join("outrider.yaml");
    std::fs::write(&path, two_backend_cfg(&b1, &b2, "b1").yaml()).unwrap();
    let proxy = Arc::new(TestProxy::start_file(&path));
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (proxy, stop, ok) = (proxy.clone(), stop.clone(), ok.clone());
        clients.push(tokio::spawn(async move {
            // Bounded: at most 5,000 requests per client.
            for _ in 0..5_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let r = proxy.get("svc", "/").await;
                assert_eq!(r.status, 200, "request failed during reloads: {}", r.text());
                assert!(matches!(r.upstream(), "b1" | "b2"));
                ok.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for i in 0..20u64 {
        let target = if i % 2 == 0 { "b2" } else { "b1" };
        write_atomic(&path, &two_backend_cfg(&b1, &b2, target).yaml());
        let r = proxy.client.post(&proxy.admin_url("/reload"), "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        wait_generation(&proxy, i + 2).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert!(ok.load(Ordering::Relaxed) > 0);
    let failures = proxy
        .metric("outrider_proxy_errors_total", &[])
        .await
        .unwrap_or(0.0);
    assert_eq!(failures, 0.0);
}
