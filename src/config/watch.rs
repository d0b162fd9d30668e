//! Watches the directories of some files and reports "one of them changed", debounced.
//!
//! Watching the directory (not the file) sees in-place writes, editor rename-saves and
//! Kubernetes ConfigMap / Secret `..data` symlink swaps alike. Events for other files in the
//! same directories (an access log written next to the config, say) are dropped in the
//! watcher's own thread: they would otherwise wake the reload task, and restart its debounce,
//! for every write. Callers re-read the files and compare, so an event that gets through for
//! nothing costs one read.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Keeps the OS watch alive; dropping it stops watching.
pub struct DirWatch {
    _watcher: RecommendedWatcher,
    rx: mpsc::UnboundedReceiver<()>,
}

impl DirWatch {
    /// Watches `files` (the directory of each, once).
    pub fn new(files: &[&Path]) -> notify::Result<DirWatch> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut names: Vec<OsString> = Vec::new();
        for file in files {
            let dir = match file.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
            if let Some(name) = file.file_name() {
                names.push(name.to_owned());
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if ev.is_ok_and(|e| concerns(&e, &names)) {
                let _ = tx.send(());
            }
        })?;
        for dir in &dirs {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        Ok(DirWatch {
            _watcher: watcher,
            rx,
        })
    }

    /// Waits for a change, then for `DEBOUNCE` of quiet. `None` when the watcher is gone.
    pub async fn changed(&mut self) -> Option<()> {
        self.rx.recv().await?;
        loop {
            match tokio::time::timeout(DEBOUNCE, self.rx.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return None,
                Err(_) => return Some(()),
            }
        }
    }
}

/// Whether `event` may have changed one of the files called `names`: it names one of them, or
/// one of kubelet's `..`-prefixed entries (`..data`, `..data_tmp`, `..2026_…`: the target of
/// a ConfigMap or Secret symlink swap), or it names nothing at all (a queue overflow asking
/// for a rescan). Reads (access events) never count.
fn concerns(event: &notify::Event, names: &[OsString]) -> bool {
    if event.kind.is_access() {
        return false;
    }
    event.paths.is_empty()
        || event.need_rescan()
        || event.paths.iter().any(|p| {
            p.file_name().is_some_and(|n| {
                names.iter().any(|w| w.as_os_str() == n) || n.as_bytes().starts_with(b"..")
            })
        })
}

#[cfg(test)]
mod tests;
