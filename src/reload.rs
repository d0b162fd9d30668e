//! Applying a new config to a running proxy, and the audit trail of every attempt (SPEC §4).
//!
//! Owns: `Reloader` (re-read, validate, refuse restart-only changes, build and swap a new
//! snapshot that keeps unchanged backends' state, record history, count). Does not own: file
//! watching (`config::watch`) or what a snapshot contains (`snapshot`).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tracing::{info, warn};

use crate::config::{self, Config};
use crate::proxy::Shared;
use crate::snapshot::{Deps, Snapshot};

pub const HISTORY_LEN: usize = 100;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Start,
    Watch,
    Signal,
    Api,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Unchanged,
    Failure,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Changes {
    pub routes_added: Vec<String>,
    pub routes_removed: Vec<String>,
    pub routes_changed: Vec<String>,
    pub backends_added: Vec<String>,
    pub backends_removed: Vec<String>,
    pub backends_changed: Vec<String>,
    /// Any other change (limits excluded: those need a restart), e.g. inbound settings.
    pub other: Vec<String>,
}

/// One reload attempt, as shown by `GET /config/history` and `POST /reload`.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub time: String,
    pub trigger: Trigger,
    pub result: Outcome,
    /// Generation in force after the attempt.
    pub generation: u64,
    pub sha256: Option<String>,
    pub error: Option<String>,
    pub changes: Changes,
    pub duration_ms: f64,
}

pub struct Reloader {
    shared: Arc<Shared>,
    path: Option<PathBuf>,
    deps: Deps,
    history: Mutex<VecDeque<Attempt>>,
}

impl Reloader {
    pub fn new(shared: Arc<Shared>, path: Option<PathBuf>, deps: Deps) -> Reloader {
        let snap = shared.snapshot.load_full();
        let first = Attempt {
            time: rfc3339(snap.loaded.loaded_at),
            trigger: Trigger::Start,
            result: Outcome::Success,
            generation: snap.generation,
            sha256: Some(snap.loaded.sha256.clone()),
            error: None,
            changes: diff(None, &snap.loaded.config),
            duration_ms: 0.0,
        };
        for result in ["success", "failure"] {
            shared.metrics.config_reloads.with_label_values(&[result]);
        }
        shared
            .metrics
            .config_last_success
            .set(unix_seconds(snap.loaded.loaded_at));
        Reloader {
            shared,
            path,
            deps,
            history: Mutex::new(VecDeque::from([first])),
        }
    }

    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    pub fn history(&self) -> Vec<Attempt> {
        self.history
            .lock()
            .expect("history lock is never poisoned")
            .iter()
            .cloned()
            .collect()
    }

    /// Re-reads the file and applies it. `Watch` triggers skip files whose hash is unchanged
    /// without recording anything.
    pub fn reload(&self, trigger: Trigger) -> Attempt {
        // One reload at a time; the history lock doubles as the reload lock.
        let mut history = self.history.lock().expect("history lock is never poisoned");
        let started = std::time::Instant::now();
        let current = self.shared.snapshot.load_full();
        let mut attempt = Attempt {
            time: rfc3339(SystemTime::now()),
            trigger,
            result: Outcome::Failure,
            generation: current.generation,
            sha256: None,
            error: None,
            changes: Changes::default(),
            duration_ms: 0.0,
        };
        let Some(path) = &self.path else {
            attempt.error = Some("no config file to reload: running the embedded default".into());
            return self.record(&mut history, attempt, started);
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                attempt.error = Some(format!("{}: cannot read config file: {e}", path.display()));
                return self.record(&mut history, attempt, started);
            }
        };
        let sha = config::sha256_hex(&text);
        attempt.sha256 = Some(sha.clone());
        if sha == current.loaded.sha256 {
            if trigger == Trigger::Watch {
                return attempt;
            }
            attempt.result = Outcome::Unchanged;
            return self.record(&mut history, attempt, started);
        }
        let loaded = match config::load_str(&text, &path.display().to_string()) {
            Ok(mut l) => {
                l.path = Some(path.clone());
                l
            }
            Err(errors) => {
                attempt.error = Some(errors.to_string());
                return self.record(&mut history, attempt, started);
            }
        };
        if let Err(why) = restart_only_changes(&current.loaded.config, &loaded.config) {
            attempt.error = Some(format!(
                "{why}: restart outrider to apply it; the running config is unchanged"
            ));
            return self.record(&mut history, attempt, started);
        }
        attempt.changes = diff(Some(&current.loaded.config), &loaded.config);
        let generation = current.generation + 1;
        let next = Snapshot::build(loaded, generation, &self.deps, Some(&current));
        self.shared.snapshot.store(Arc::new(next));
        attempt.generation = generation;
        attempt.result = Outcome::Success;
        self.shared
            .metrics
            .config_last_success
            .set(unix_seconds(SystemTime::now()));
        self.record(&mut history, attempt, started)
    }

    fn record(
        &self,
        history: &mut VecDeque<Attempt>,
        mut a: Attempt,
        started: std::time::Instant,
    ) -> Attempt {
        a.duration_ms = started.elapsed().as_secs_f64() * 1e3;
        let label = if a.result == Outcome::Failure {
            "failure"
        } else {
            "success"
        };
        self.shared
            .metrics
            .config_reloads
            .with_label_values(&[label])
            .inc();
        match a.result {
            Outcome::Failure => warn!(
                trigger = ?a.trigger, generation = a.generation, error = a.error.as_deref().unwrap_or(""),
                "config reload rejected; the previous config stays in force"
            ),
            Outcome::Unchanged => info!(trigger = ?a.trigger, "config reload: file unchanged"),
            Outcome::Success => info!(
                trigger = ?a.trigger, generation = a.generation, changes = ?a.changes, ms = a.duration_ms,
                "config reloaded"
            ),
        }
        if history.len() == HISTORY_LEN {
            history.pop_front();
        }
        history.push_back(a.clone());
        a
    }
}

/// Changes that a running process cannot apply (bound sockets, per-connection codec limits).
fn restart_only_changes(old: &Config, new: &Config) -> Result<(), String> {
    let mut what = Vec::new();
    let mut cmp = |name: &str, a: Option<std::net::SocketAddr>, b: Option<std::net::SocketAddr>| {
        if a != b {
            let show =
                |x: Option<std::net::SocketAddr>| x.map_or("none".to_owned(), |a| a.to_string());
            what.push(format!("{name} {} -> {}", show(a), show(b)));
        }
    };
    cmp("admin.listen", Some(old.admin), Some(new.admin));
    cmp("metrics.listen", Some(old.metrics), Some(new.metrics));
    cmp(
        "inbound.listen",
        old.inbound.as_ref().map(|i| i.listen),
        new.inbound.as_ref().map(|i| i.listen),
    );
    cmp(
        "outbound.listen",
        old.outbound.as_ref().map(|o| o.listen),
        new.outbound.as_ref().map(|o| o.listen),
    );
    if old.limits != new.limits {
        what.push("limits".to_owned());
    }
    if old.access_log != new.access_log {
        what.push("access_log".to_owned());
    }
    if old.mcp_session_key_file != new.mcp_session_key_file {
        what.push("mcp.session_key_file".to_owned());
    }
    if old.otlp_endpoint != new.otlp_endpoint {
        what.push("tracing.otlp".to_owned());
    }
    if old.tls != new.tls || old.identity != new.identity {
        // The files themselves rotate live; pointing at other files or another identity does not.
        what.push("tls/identity".to_owned());
    }
    if what.is_empty() {
        Ok(())
    } else {
        Err(format!("listener settings changed ({})", what.join(", ")))
    }
}

fn diff(old: Option<&Config>, new: &Config) -> Changes {
    let mut c = Changes::default();
    let routes = |cfg: &Config| {
        cfg.outbound
            .iter()
            .flat_map(|o| o.routes.iter())
            .cloned()
            .collect::<Vec<_>>()
    };
    let new_routes = routes(new);
    let old_routes = old.map(routes).unwrap_or_default();
    for r in &new_routes {
        match old_routes.iter().find(|o| o.name == r.name) {
            None => c.routes_added.push(r.name.clone()),
            // Backend indexes may shift when backends are added; compare by backend names.
            Some(o) if !same_route(o, old, r, new) => c.routes_changed.push(r.name.clone()),
            Some(_) => {}
        }
    }
    for o in &old_routes {
        if !new_routes.iter().any(|r| r.name == o.name) {
            c.routes_removed.push(o.name.clone());
        }
    }
    let old_backends = old.map_or(&[][..], |o| &o.backends[..]);
    for b in &new.backends {
        match old_backends.iter().find(|o| o.name == b.name) {
            None => c.backends_added.push(b.name.clone()),
            Some(o) if o != b => c.backends_changed.push(b.name.clone()),
            Some(_) => {}
        }
    }
    for o in old_backends {
        if !new.backends.iter().any(|b| b.name == o.name) {
            c.backends_removed.push(o.name.clone());
        }
    }
    if let Some(old) = old {
        if old.inbound != new.inbound {
            c.other.push("inbound".into());
        }
        if old.drain_timeout != new.drain_timeout {
            c.other.push("drain_timeout".into());
        }
        if old.service != new.service {
            c.other.push("service".into());
        }
    }
    c
}

fn same_route(
    a: &config::model::Route,
    ac: Option<&Config>,
    b: &config::model::Route,
    bc: &Config,
) -> bool {
    let names = |r: &config::model::Route, c: &Config| -> Vec<(String, u32)> {
        r.to.iter()
            .map(|(i, w)| (c.backends[*i].name.clone(), *w))
            .collect()
    };
    let Some(ac) = ac else { return false };
    let mut a2 = a.clone();
    a2.to = b.to.clone();
    a2 == *b && names(a, ac) == names(b, bc)
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests;
