//! Admin and metrics listeners (SPEC §5, §8): health endpoints, `/config`, `/backends`, the
//! metric families after real traffic, and `promtool check metrics` on the real scrape.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::support::metrics;
use crate::support::{bounded, Cfg, Upstream};

#[tokio::test]
async fn live_and_ready_on_admin_and_metrics_listeners() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();

    for url in [
        proxy.admin_url("/live"),
        proxy.admin_url("/ready"),
        proxy.metrics_url("/live"),
        proxy.metrics_url("/ready"),
    ] {
        let resp = proxy.client.get(&url).await;
        assert_eq!(resp.status, 200, "GET {url}: {}", resp.text());
    }
}

#[tokio::test]
async fn metrics_listener_serves_only_metrics_ready_live() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();

    assert_eq!(
        proxy
            .client
            .get(&proxy.metrics_url("/metrics"))
            .await
            .status,
        200
    );
    for path in ["/config", "/backends", "/config/history"] {
        let resp = proxy.client.get(&proxy.metrics_url(path)).await;
        assert_eq!(resp.status, 404, "metrics listener must not serve {path}");
    }
    let drain = proxy.client.post(&proxy.metrics_url("/drain"), "").await;
    assert!(
        drain.status.is_client_error(),
        "metrics listener must not accept POST /drain: {}",
        drain.status
    );
    assert_eq!(
        proxy.client.get(&proxy.metrics_url("/ready")).await.status,
        200,
        "still ready"
    );
}

#[tokio::test]
async fn config_endpoint_describes_the_loaded_config() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();

    let resp = proxy.admin_get("/config").await;
    assert_eq!(resp.status, 200);
    let json = resp.json();
    assert_eq!(json["generation"], 1, "{json}");
    let sha = json["sha256"]
        .as_str()
        .unwrap_or_else(|| panic!("sha256 missing: {json}"));
    assert_eq!(sha.len(), 64, "sha256 must be 64 hex chars: {sha}");
    assert!(sha.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(
        json.get("loaded_at").is_some_and(|v| !v.is_null()),
        "loaded_at missing: {json}"
    );
    assert!(json.get("path").is_some(), "path missing: {json}");
    let config = &json["config"];
    assert!(
        config.is_object(),
        "config must be the parsed config: {json}"
    );
    assert!(
        config.to_string().contains(&up.authority()),
        "config should show the backend endpoint: {config}"
    );
}

/// Find a JSON object anywhere in `v` whose `address` is `addr`.
fn find_endpoint<'a>(v: &'a serde_json::Value, addr: &str) -> Option<&'a serde_json::Value> {
    match v {
        serde_json::Value::Object(map) => {
            if map.get("address").and_then(|a| a.as_str()) == Some(addr) {
                return Some(v);
            }
            map.values().find_map(|x| find_endpoint(x, addr))
        }
        serde_json::Value::Array(items) => items.iter().find_map(|x| find_endpoint(x, addr)),
        _ => None,
    }
}

#[tokio::test]
async fn backends_endpoint_lists_endpoints_with_state() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();

    let resp = proxy.admin_get("/backends").await;
    assert_eq!(resp.status, 200);
    let json = resp.json();
    assert!(
        json.to_string().contains("\"b1\""),
        "backend b1 missing: {json}"
    );
    let endpoint =
        find_endpoint(&json, &up.authority()).unwrap_or_else(|| panic!("endpoint missing: {json}"));
    assert_eq!(endpoint["state"], "healthy", "{endpoint}");
}

#[tokio::test]
async fn metrics_after_traffic() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();
    for _ in 0..3 {
        assert_eq!(proxy.get("svc", "/").await.status, 200);
    }

    let requests = [
        ("direction", "outbound"),
        ("route", "r1"),
        ("backend", "b1"),
        ("code", "200"),
        ("mcp_method", ""),
        ("mcp_tool", ""),
    ];
    proxy
        .wait_metric("outrider_requests_total", &requests, 3.0)
        .await;

    let text = proxy.metrics_text().await;
    let build = metrics::find(
        &text,
        "outrider_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
    );
    assert_eq!(
        build.len(),
        1,
        "outrider_build_info{{version=...}}:\n{text}"
    );
    assert!(
        build[0].labels.contains_key("commit"),
        "build_info needs a commit label"
    );
    assert_eq!(
        metrics::value(&text, "outrider_config_generation", &[]),
        Some(1.0),
        "\n{text}"
    );
    assert!(
        metrics::value(&text, "outrider_connections_open", &[]).is_some(),
        "connections_open missing:\n{text}"
    );
    assert_eq!(
        metrics::value(
            &text,
            "outrider_backend_endpoints",
            &[("backend", "b1"), ("state", "healthy")]
        ),
        Some(1.0),
        "\n{text}"
    );
    let rss = metrics::value(&text, "process_resident_memory_bytes", &[]);
    assert!(
        rss.is_some_and(|v| v > 0.0),
        "process_resident_memory_bytes: {rss:?}"
    );
    assert!(
        text.contains("outrider_request_duration_seconds_bucket"),
        "duration histogram missing"
    );

    // The admin listener serves the same exposition.
    let admin = proxy.admin_get("/metrics").await;
    assert_eq!(admin.status, 200);
    assert!(admin.text().contains("outrider_requests_total"));
}

/// `promtool check metrics` on the real scrape after traffic (success and failure series).
#[tokio::test]
async fn scrape_passes_promtool_check_metrics() {
    let up = Upstream::echo().await;
    let proxy = Cfg::single(up.addr).start();
    assert_eq!(proxy.get("svc", "/").await.status, 200);
    assert_eq!(proxy.get("nowhere", "/").await.status, 404);
    let text = proxy.metrics_text().await;

    let child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => panic!("cannot run promtool ({e}): run scripts/test.sh, which installs it, instead of a bare cargo test"),
    };
    let mut stdin = child.stdin.take().unwrap();
    bounded("writing to promtool", stdin.write_all(text.as_bytes()))
        .await
        .unwrap();
    drop(stdin);
    let out = bounded("promtool", child.wait_with_output()).await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- scrape ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
