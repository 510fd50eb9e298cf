//! Hot reload: the config file is watched (through its directory, so editors that replace the
//! file atomically are seen too) and SIGHUP forces a reload.

use crate::gateway::{self, Source};
use crate::resources::Snapshot;
use notify::{RecursiveMode, Watcher};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

/// Edits often arrive as several events (truncate, write, rename): wait for quiet first.
const SETTLE: Duration = Duration::from_millis(200);

pub fn spawn(
    source: Source,
    tx: watch::Sender<Arc<Snapshot>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (events_tx, mut events) = mpsc::unbounded_channel::<()>();
    let file = std::path::absolute(&source.config)?;
    let dir = file
        .parent()
        .map(ToOwned::to_owned)
        .unwrap_or_else(|| ".".into());
    let file_name = file.file_name().map(ToOwned::to_owned);
    let hup_tx = events_tx.clone();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev)
                if ev
                    .paths
                    .iter()
                    .any(|p| p.file_name() == file_name.as_deref()) =>
            {
                let _ = events_tx.send(());
            }
            Ok(_) => {}
            Err(e) => warn!("file watch error: {e}"),
        })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;

    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let _ = hup_tx.send(());
        }
    });

    Ok(tokio::spawn(async move {
        let _watcher = watcher; // dropped when this task ends
        while events.recv().await.is_some() {
            loop {
                match tokio::time::timeout(SETTLE, events.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            debug!("configuration file changed");
            let source = source.clone();
            let tx = tx.clone();
            // Loading reads files: keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || gateway::reload(&source, &tx)).await;
        }
    }))
}
