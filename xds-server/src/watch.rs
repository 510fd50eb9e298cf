//! Hot reload: the config file and every certificate file it names are watched (through
//! their directories, so editors and tools that replace a file atomically are seen too), and
//! SIGHUP forces a reload.

use crate::gateway::{self, Source};
use crate::resources::Snapshot;
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

/// Edits often arrive as several events (truncate, write, rename): wait for quiet first.
const SETTLE: Duration = Duration::from_millis(200);

/// `files`: the certificate files of the configuration in force (see
/// [`crate::config::Gateway::pem_files`]).
pub fn spawn(
    source: Source,
    tx: watch::Sender<Arc<Snapshot>>,
    files: Vec<PathBuf>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (events_tx, mut events) = mpsc::unbounded_channel::<()>();
    let config = std::path::absolute(&source.config)?;
    let watched: Arc<Mutex<BTreeSet<PathBuf>>> = Arc::default();
    let seen = watched.clone();
    let hup_tx = events_tx.clone();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            // Reading a file (which every reload does) is no change: reacting to it made
            // each reload the cause of the next.
            Ok(ev) if matches!(ev.kind, notify::EventKind::Access(_)) => {}
            Ok(ev) => {
                let relevant = seen
                    .lock()
                    .is_ok_and(|w| ev.paths.iter().any(|p| w.contains(p)));
                if relevant {
                    let _ = events_tx.send(());
                }
            }
            Err(e) => warn!("file watch error: {e}"),
        })?;
    let mut dirs = BTreeSet::new();
    let mut follow = move |watcher: &mut notify::RecommendedWatcher, files: &[PathBuf]| {
        let mut w = watched.lock().unwrap_or_else(|e| e.into_inner());
        w.clear();
        for file in std::iter::once(&config).chain(files) {
            let Ok(file) = std::path::absolute(file) else {
                continue;
            };
            let dir = file
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            if dirs.insert(dir.clone())
                && let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive)
            {
                warn!("cannot watch {}: {e}", dir.display());
            }
            w.insert(file);
        }
    };
    follow(&mut watcher, &files);

    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let _ = hup_tx.send(());
        }
    });

    Ok(tokio::spawn(async move {
        let mut watcher = watcher; // dropped when this task ends
        while events.recv().await.is_some() {
            loop {
                match tokio::time::timeout(SETTLE, events.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            debug!("configuration or certificate file changed");
            let source = source.clone();
            let tx = tx.clone();
            // Loading reads files: keep it off the async workers.
            if let Ok(Some(files)) =
                tokio::task::spawn_blocking(move || gateway::reload(&source, &tx)).await
            {
                follow(&mut watcher, &files);
            }
        }
    }))
}
