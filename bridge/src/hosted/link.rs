//! The connection to one running hosted upstream (a child process, or a held legacy SSE
//! connection): where the bridge writes, the requests in flight, and where the upstream's
//! messages go. Shared by the slot that owns it and the transport that reads from it.

use super::error::HostedError;
use super::wire::{self, Kind, Sent};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use switchboard_protocol::wire::UPSTREAM_ERROR;
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::sync::{broadcast, mpsc, oneshot};

pub(super) struct Pending {
    pub(super) sent: Sent,
    pub(super) tx: mpsc::UnboundedSender<Value>,
}

/// Where the bridge writes the client's messages.
pub(super) enum Sink {
    Stdin(tokio::sync::Mutex<ChildStdin>),
    /// The legacy SSE server's message endpoint.
    Post {
        http: reqwest::Client,
        url: String,
        headers: Vec<(String, String)>,
    },
}

/// A running child process, or a held legacy SSE connection.
pub(super) struct Proc {
    sink: Sink,
    pub(super) pending: Mutex<HashMap<u64, Pending>>,
    pub(super) started: Instant,
    exited: std::sync::atomic::AtomicBool,
    kill: Mutex<Option<oneshot::Sender<()>>>,
    pub pid: Option<u32>,
}

impl Proc {
    pub(super) fn alive(&self) -> bool {
        !self.exited.load(Ordering::SeqCst)
    }

    pub(super) fn kill(&self) {
        if let Some(k) = self.kill.lock().ok().and_then(|mut k| k.take()) {
            let _ = k.send(());
        }
    }

    pub(super) fn new(sink: Sink, kill: oneshot::Sender<()>, pid: Option<u32>) -> Arc<Proc> {
        Arc::new(Proc {
            sink,
            pending: Mutex::new(HashMap::new()),
            started: Instant::now(),
            exited: std::sync::atomic::AtomicBool::new(false),
            kill: Mutex::new(Some(kill)),
            pid,
        })
    }

    pub(super) async fn write(&self, message: &Value) -> Result<(), HostedError> {
        match &self.sink {
            Sink::Stdin(stdin) => {
                let mut line = message.to_string();
                line.push('\n');
                let mut stdin = stdin.lock().await;
                stdin
                    .write_all(line.as_bytes())
                    .await
                    .map_err(HostedError::Write)?;
                stdin.flush().await.map_err(HostedError::Write)
            }
            Sink::Post { http, url, headers } => {
                let mut req = http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(message.to_string());
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                let r = req.send().await.map_err(HostedError::Post)?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(HostedError::PostStatus(r.status().as_u16()))
                }
            }
        }
    }
}

/// What a transport's reader needs to hand the server's messages on.
pub(super) struct Link {
    pub name: String,
    pub unsolicited: broadcast::Sender<Value>,
    pub shared: bool,
}

impl Link {
    pub fn deliver(&self, proc: &Proc, message: Value) {
        route(proc, message, &self.unsolicited, self.shared);
    }

    /// The connection ended: everything in flight fails now, naming the upstream, instead
    /// of waiting out its timeout.
    pub fn ended(&self, proc: &Proc, kind: &str) {
        proc.exited.store(true, Ordering::SeqCst);
        let pending: Vec<Pending> = proc
            .pending
            .lock()
            .map(|mut p| p.drain().map(|(_, v)| v).collect())
            .unwrap_or_default();
        for p in pending {
            let _ = p.tx.send(wire::error_response(
                &p.sent.client_id,
                UPSTREAM_ERROR,
                &format!(
                    "Upstream {:?} ({kind}) {} before answering; it is restarted for the next request",
                    self.name,
                    if kind == "stdio" { "exited" } else { "closed its event stream" }
                ),
            ));
        }
    }
}

/// Where a line from the child goes: an answer to its request; progress to the request it
/// belongs to; anything else to the oldest request in flight (per session), or to the GET
/// streams.
fn route(proc: &Proc, mut message: Value, unsolicited: &broadcast::Sender<Value>, shared: bool) {
    let Ok(mut pending) = proc.pending.lock() else {
        return;
    };
    match wire::classify(&message) {
        Some(Kind::Response) => {
            let n = message["id"].as_u64();
            if let Some(p) = n.and_then(|n| pending.remove(&n)) {
                wire::response_to_client(&mut message, &p.sent);
                let _ = p.tx.send(message);
            }
        }
        Some(Kind::Notification) if wire::progress_of(&message).is_some() => {
            if let Some(p) = wire::progress_of(&message).and_then(|n| pending.get(&n)) {
                wire::progress_to_client(&mut message, &p.sent);
                let _ = p.tx.send(message);
            }
        }
        Some(kind) => {
            let to_call = kind == Kind::Request || !shared;
            match pending.iter().filter(|_| to_call).min_by_key(|(n, _)| **n) {
                Some((_, p)) => {
                    let _ = p.tx.send(message);
                }
                None => {
                    let _ = unsolicited.send(message);
                }
            }
        }
        None => {}
    }
}
