//! Config validation (SPEC §2 `check`, §3 "Validation"): every problem reported as
//! `SOURCE:LINE:COL: message` with the right line, unsupported sections rejected by name,
//! every `examples/*.yaml` valid, and the `outrider check` / `--version` CLI.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::{bounded, Cfg};

/// Twenty-two lines with five problems, each in a different item so that none hides another;
/// `PROBLEMS` lists (line, what, a word the message must contain).
const BAD: &str = r#"version: 1
service: test
drain_timeout: 5 parsecs
admin: { listen: 127.0.0.1:0 }
metrics: { listen: 127.0.0.1:0 }
outbound:
  listen: 127.0.0.1:0
  routes:
    - name: r1
      match: { host: svc }
      to: [{ backend: nope }]
    - name: r2
      match: { host: other }
      to: [{ backend: b1, weight: 0 }]
    - name: r3
      timout: 1s
      to: [{ backend: b1 }]
backends:
  - name: b1
    discovery: { static: ["127.0.0.1:1"] }
  - name: b1
    discovery: { static: ["127.0.0.1:2"] }
"#;

const PROBLEMS: &[(usize, &str, &str)] = &[
    (3, "bad duration", "duration"),
    (11, "route to unknown backend", "nope"),
    (14, "zero total weight", "weight"),
    (16, "unknown key", "timout"),
    (21, "duplicate backend name", "b1"),
];

/// A rendered problem: `SOURCE:LINE:COL: message`.
#[derive(Debug)]
struct Problem {
    line: usize,
    col: usize,
    message: String,
}

fn parse_rendered(source: &str, rendered: &str) -> Vec<Problem> {
    rendered
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let rest = l
                .strip_prefix(source)
                .and_then(|r| r.strip_prefix(':'))
                .unwrap_or_else(|| panic!("{l:?} does not start with {source:?}:"));
            let mut parts = rest.splitn(3, ':');
            let line = parts.next().and_then(|n| n.parse().ok());
            let col = parts.next().and_then(|n| n.parse().ok());
            let message = parts.next().map(str::trim).unwrap_or_default().to_string();
            match (line, col) {
                (Some(line), Some(col)) if !message.is_empty() => Problem { line, col, message },
                _ => panic!("{l:?} is not SOURCE:LINE:COL: message"),
            }
        })
        .collect()
}

fn errors_of(text: &str, source: &str) -> Vec<Problem> {
    match outrider::config::load_str(text, source) {
        Ok(_) => panic!("config accepted but it is invalid:\n{text}"),
        Err(errors) => {
            let rendered = errors.to_string();
            let problems = parse_rendered(source, &rendered);
            assert_eq!(
                problems.len(),
                errors.iter().count(),
                "one line per problem:\n{rendered}"
            );
            problems
        }
    }
}

fn assert_reported(problems: &[Problem], line: usize, what: &str, word: &str) {
    let hit = problems
        .iter()
        .find(|p| p.line == line && p.message.to_lowercase().contains(word));
    assert!(
        hit.is_some(),
        "{what}: no problem at line {line} mentioning {word:?}; got {problems:#?}"
    );
    assert!(hit.unwrap().col >= 1, "columns are 1-based");
}

#[test]
fn all_problems_are_reported_with_their_lines() {
    let problems = errors_of(BAD, "bad.yaml");
    for (line, what, word) in PROBLEMS {
        assert_reported(&problems, *line, what, word);
    }
}

#[test]
fn unsupported_section_is_rejected_by_name() {
    let yaml = Cfg::single("127.0.0.1:1".parse().unwrap())
        .raw("gateway:\n  listen: 0.0.0.0:8443")
        .yaml();
    let problems = errors_of(&yaml, "t.yaml");
    assert!(
        problems
            .iter()
            .any(|p| p.message.contains("not supported yet: gateway")),
        "expected `not supported yet: gateway`, got {problems:#?}"
    );
    let line = yaml
        .lines()
        .position(|l| l.starts_with("gateway:"))
        .unwrap()
        + 1;
    assert_reported(&problems, line, "gateway section", "gateway");
}

#[test]
fn test_config_builder_output_is_valid() {
    let yaml = Cfg::single("127.0.0.1:1".parse().unwrap())
        .inbound("127.0.0.1:2".parse().unwrap(), 10)
        .yaml();
    if let Err(errors) = outrider::config::load_str(&yaml, "cfg.yaml") {
        panic!("{errors}\n{yaml}");
    }
}

#[test]
fn every_example_config_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    if !dir.exists() {
        return; // nothing to check yet
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "{} exists but holds no *.yaml config",
        dir.display()
    );
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        if let Err(errors) = outrider::config::load_str(&text, &file.display().to_string()) {
            failures.push(errors.to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "invalid example configs:\n{}",
        failures.join("\n")
    );
}

// ---- the CLI binary ----

/// A fresh directory under the system temp dir for this test process.
fn scratch_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "outrider-it-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn outrider(args: &[&str]) -> Output {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_outrider"))
        .args(args)
        .env("OUTRIDER_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    bounded(&format!("outrider {args:?}"), child)
        .await
        .expect("run outrider")
}

fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn cli_check_reports_every_problem_and_exits_1() {
    let dir = scratch_dir();
    let path = dir.join("bad.yaml");
    std::fs::write(&path, BAD).unwrap();

    let out = outrider(&["check", "-c", path.to_str().unwrap()]).await;
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "exit code; output:\n{text}");
    for (line, what, _) in PROBLEMS {
        let needle = format!("bad.yaml:{line}:");
        assert!(
            text.contains(&needle),
            "{what}: `{needle}` missing from:\n{text}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn cli_check_accepts_a_valid_config() {
    let dir = scratch_dir();
    let path = dir.join("good.yaml");
    std::fs::write(&path, Cfg::single("127.0.0.1:1".parse().unwrap()).yaml()).unwrap();

    let out = outrider(&["check", "-c", path.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "output:\n{}", all_output(&out));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn cli_prints_its_version() {
    let out = outrider(&["--version"]).await;
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(env!("CARGO_PKG_VERSION")),
        "version missing: {text}"
    );
}
