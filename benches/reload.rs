//! Reload and route-matching benchmark (issue: hot-reloaded routing rules).
//!
//! `cargo bench --bench reload` prints:
//! * the time to apply a reload of 10,000 routes and 1,000 backends (read + parse + validate
//!   + snapshot build + swap), and the memory the new snapshot costs;
//! * route matching time with 10 vs 10,000 routes (host-indexed: must not grow linearly).
//!
//! Plain `std::time::Instant` loops: no criterion, to keep CI builds small. Figures are
//! medians of several runs; compare the two matching figures with each other (same run).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use outrider::config;
use outrider::routing::{Request, Table};
use outrider::snapshot::{Deps, Snapshot};
use outrider::telemetry::metrics::Metrics;

fn config_text(routes: usize, backends: usize) -> String {
    let mut y = String::from("version: 1\nadmin: { listen: 127.0.0.1:0 }\nmetrics: { listen: 127.0.0.1:0 }\noutbound:\n  listen: 127.0.0.1:0\n  routes:\n");
    for i in 0..routes {
        let host = if i % 10 == 9 {
            format!("\"*.zone-{i}.mesh.local\"")
        } else {
            format!("svc-{i}.mesh.local")
        };
        y.push_str(&format!(
            "    - {{ name: r{i}, match: {{ host: {host}, path_prefix: /mcp }}, to: [{{ backend: b{} }}], timeout: 5s }}\n",
            i % backends
        ));
    }
    y.push_str("backends:\n");
    for i in 0..backends {
        y.push_str(&format!(
            "  - {{ name: b{i}, discovery: {{ static: [\"10.{}.{}.1:15006\", \"10.{}.{}.2:15006\"] }} }}\n",
            i / 250,
            i % 250,
            i / 250,
            i % 250
        ));
    }
    y
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let deps = Deps {
        metrics: Metrics::new(),
        workers: 1,
        runtime: None,
        tls: None,
    };
    let dir = std::env::temp_dir().join(format!("outrider-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.yaml");
    std::fs::write(&path, config_text(10_000, 1_000)).unwrap();
    let rss_start = rss_kib();
    let first = config::load_file(&path).expect("bench config is valid");
    let current = ArcSwap::from_pointee(Snapshot::build(first, 1, &deps, None));
    let rss_loaded = rss_kib();

    let mut times = Vec::new();
    let mut mem = Vec::new();
    for generation in 2..9 {
        let before = rss_kib();
        let t = Instant::now();
        let loaded = config::load_file(&path).expect("valid");
        let prev = current.load_full();
        let next = Snapshot::build(loaded, generation, &deps, Some(&prev));
        current.store(Arc::new(next));
        times.push(t.elapsed());
        drop(prev);
        mem.push(rss_kib().saturating_sub(before));
    }
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "reload of 10,000 routes / 1,000 backends ({} KiB of YAML): median {:?} (target <= 100ms)",
        size / 1024,
        median(times)
    );
    println!(
        "memory: process RSS {} MiB before the first load, {} MiB with one snapshot ({} MiB for it, metric series included)",
        rss_start / 1024,
        rss_loaded / 1024,
        rss_loaded.saturating_sub(rss_start) / 1024
    );
    mem.sort();
    println!(
        "RSS growth per reload (old snapshot freed): median {} KiB",
        mem[mem.len() / 2]
    );

    let h = http::HeaderMap::new();
    let m = http::Method::POST;
    for n in [10usize, 10_000] {
        let loaded = config::load_str(&config_text(n, n.min(1_000)), "bench").unwrap();
        let routes = loaded.config.outbound.as_ref().unwrap().routes.clone();
        let table = Table::new(&routes);
        let host = |i: usize| {
            if i % 10 == 9 {
                format!("a.zone-{i}.mesh.local")
            } else {
                format!("svc-{i}.mesh.local")
            }
        };
        // A sidecar talks to a handful of services: the same 10 hosts in both cases, the last
        // ones of the table (worst case for a linear scan). Then every host of the table.
        let hot: Vec<String> = (n - 10..n).map(host).collect();
        let all: Vec<String> = (0..n).map(host).collect();
        for (label, hosts) in [("10 hot hosts", &hot), ("all hosts", &all)] {
            let iters = 1_000_000;
            let mut runs = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                for i in 0..iters {
                    let host = &hosts[i % hosts.len()];
                    let req = Request {
                        host,
                        path: "/mcp",
                        method: &m,
                        headers: &h,
                        mcp: None,
                    };
                    black_box(table.find(&routes, black_box(&req)));
                }
                runs.push(t.elapsed() / iters as u32);
            }
            println!(
                "route match, {n:>6} routes, {label:>12}: median {:?} per lookup",
                median(runs)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
