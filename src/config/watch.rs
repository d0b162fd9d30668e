//! Watches the config file's directory and reports "something changed", debounced.
//!
//! Watching the directory (not the file) sees in-place writes, editor rename-saves and
//! Kubernetes ConfigMap `..data` symlink swaps alike. Callers re-read the file and compare
//! its hash, so spurious events (other files in the directory) cost one read.

use std::path::Path;
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
    pub fn new(file: &Path) -> notify::Result<DirWatch> {
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if ev.is_ok_and(|e| !e.kind.is_access()) {
                let _ = tx.send(());
            }
        })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
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
