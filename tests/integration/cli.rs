//! The binary itself (SPEC §2): `outrider run` with a file, SIGHUP reloads, SIGTERM drains
//! and exits 0, a second listener on a taken port exits 2.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{bounded, eventually, within, Cfg, Upstream};

struct Running {
    child: Child,
    admin: String,
    outbound: String,
}

/// Starts `outrider run -c FILE` and reads its JSON start line for the bound addresses.
async fn spawn(path: &std::path::Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_outrider"))
        .args(["run", "--workers", "1", "--log-format", "json", "-c"])
        .arg(path)
        .env("OUTRIDER_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("outrider binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = bounded("the `outrider started` log line", async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("outrider started") {
                return line;
            }
        }
        panic!("outrider exited before starting");
    })
    .await;
    // Keep draining stderr so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let v: serde_json::Value = serde_json::from_str(&started).expect("JSON log line");
    let field = |k: &str| {
        v[k].as_str()
            .unwrap()
            .trim_start_matches("Some(")
            .trim_end_matches(')')
            .to_owned()
    };
    Running {
        admin: field("admin"),
        outbound: field("outbound"),
        child,
    }
}

fn signal(child: &Child, sig: &str) {
    let pid = child.id().expect("child is running").to_string();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

async fn get(url: &str, host: &str) -> (u16, String) {
    let client = crate::support::client::Client::new();
    let req = http::Request::get(url)
        .header("host", host)
        .body(crate::support::body::empty())
        .unwrap();
    let r = client.request(req).await;
    (r.status.as_u16(), r.text())
}

#[tokio::test]
async fn sighup_reloads_and_sigterm_drains_to_exit_zero() {
    let (b1, b2) = (Upstream::named("b1").await, Upstream::named("b2").await);
    let dir = std::env::temp_dir().join(format!("outrider-it-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("outrider.yaml");
    let cfg = |target: &str| {
        Cfg::new()
            .backend("b1", b1.addr)
            .backend("b2", b2.addr)
            .host_route("r1", "svc", target, "")
    };
    std::fs::write(&path, cfg("b1").yaml()).unwrap();
    let mut run = spawn(&path).await;
    let url = format!("http://{}/", run.outbound);
    assert_eq!(get(&url, "svc").await.0, 200);
    assert_eq!(b1.requests().len(), 1);

    std::fs::write(&path, cfg("b2").yaml()).unwrap();
    signal(&run.child, "-HUP");
    let history_url = format!("http://{}/config/history", run.admin);
    eventually(
        Duration::from_secs(5),
        "a reload triggered by SIGHUP",
        || async {
            let (_, body) = get(&history_url, "admin").await;
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            v.as_array()
                .unwrap()
                .iter()
                .any(|a| a["trigger"] == "signal")
                .then_some(())
        },
    )
    .await;
    // Whichever of the watcher and SIGHUP applied it, the new route is in force.
    eventually(Duration::from_secs(5), "requests to reach b2", || async {
        (get(&url, "svc").await.0 == 200 && !b2.requests().is_empty()).then_some(())
    })
    .await;

    signal(&run.child, "-TERM");
    let status = within(
        Duration::from_secs(10),
        "outrider to exit after SIGTERM",
        run.child.wait(),
    )
    .await
    .unwrap();
    assert_eq!(status.code(), Some(0), "clean drain exits 0");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_taken_port_exits_2_and_an_invalid_config_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = std::env::temp_dir().join(format!("outrider-it-cli2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("outrider.yaml");
    let yaml = Cfg::new().yaml().replace(
        "admin: { listen: 127.0.0.1:0 }",
        &format!("admin: {{ listen: \"{}\" }}", taken.local_addr().unwrap()),
    );
    std::fs::write(&path, yaml).unwrap();
    let run = |p: std::path::PathBuf| async move {
        let out = Command::new(env!("CARGO_BIN_EXE_outrider"))
            .args(["run", "--workers", "1", "-c"])
            .arg(p)
            .stdin(Stdio::null())
            .output();
        within(Duration::from_secs(10), "outrider to exit", out)
            .await
            .unwrap()
    };
    let out = run(path.clone()).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen on"));

    std::fs::write(&path, "version: 1\nadmin: { listen: nowhere }\n").unwrap();
    let out = run(path).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("outrider.yaml:2:18: invalid address `nowhere`"));
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
}
