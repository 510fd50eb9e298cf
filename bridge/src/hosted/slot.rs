//! One logical stdio server: a child process, started and initialized on demand (with
//! retries), restarted with backoff when it exits or stops answering. Requests get ids of the
//! bridge's own, so the answers of one child never cross between clients.

use super::wire::{self, Kind, Sent};
use super::{HostedConfig, Transport};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{info, warn};

/// JSON-RPC code of a failure of the stdio server itself (exited, did not start).
pub const UPSTREAM_ERROR: i64 = -32002;

struct Pending {
    sent: Sent,
    tx: mpsc::UnboundedSender<Value>,
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
    pending: Mutex<HashMap<u64, Pending>>,
    started: Instant,
    exited: std::sync::atomic::AtomicBool,
    kill: Mutex<Option<oneshot::Sender<()>>>,
    pub pid: Option<u32>,
}

impl Proc {
    fn alive(&self) -> bool {
        !self.exited.load(Ordering::SeqCst)
    }

    fn kill(&self) {
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

    async fn write(&self, message: &Value) -> Result<(), String> {
        match &self.sink {
            Sink::Stdin(stdin) => {
                let mut line = message.to_string();
                line.push('\n');
                let mut stdin = stdin.lock().await;
                stdin
                    .write_all(line.as_bytes())
                    .await
                    .map_err(|e| format!("cannot write to it: {e}"))?;
                stdin
                    .flush()
                    .await
                    .map_err(|e| format!("cannot write to it: {e}"))
            }
            Sink::Post { http, url, headers } => {
                let mut req = http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(message.to_string());
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                let r = req
                    .send()
                    .await
                    .map_err(|e| format!("cannot post to its message endpoint: {e}"))?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(format!(
                        "its message endpoint answered HTTP {}",
                        r.status().as_u16()
                    ))
                }
            }
        }
    }
}

pub struct Slot {
    config: Arc<HostedConfig>,
    /// The `initialize` params, kept to initialize a restarted child the same way.
    init_params: Mutex<Option<Value>>,
    init_result: Mutex<Option<Value>>,
    current: tokio::sync::Mutex<Option<Arc<Proc>>>,
    next: AtomicU64,
    /// Consecutive failed starts, for the restart backoff.
    failures: AtomicU32,
    /// Server messages that belong to no request in flight: for the GET streams.
    pub unsolicited: broadcast::Sender<Value>,
    last_used: Mutex<Instant>,
    /// More headers for a legacy SSE connection: the client's pass-through ones.
    headers: Vec<(String, String)>,
}

impl Slot {
    pub fn new(config: Arc<HostedConfig>) -> Slot {
        Self::with_headers(config, Vec::new())
    }

    /// A slot whose legacy SSE connection also carries `headers` (pass-through).
    pub fn with_headers(config: Arc<HostedConfig>, headers: Vec<(String, String)>) -> Slot {
        Slot {
            headers,
            config,
            init_params: Mutex::new(None),
            init_result: Mutex::new(None),
            current: tokio::sync::Mutex::new(None),
            next: AtomicU64::new(1),
            failures: AtomicU32::new(0),
            unsolicited: broadcast::channel(256).0,
            last_used: Mutex::new(Instant::now()),
        }
    }

    pub fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    fn touch(&self) {
        if let Ok(mut t) = self.last_used.lock() {
            *t = Instant::now();
        }
    }

    /// Starts and initializes the child with `params` (the first client's), unless it runs;
    /// the `initialize` result.
    pub async fn initialize(&self, params: Value) -> Result<Value, String> {
        if let Ok(mut p) = self.init_params.lock()
            && p.is_none()
        {
            *p = Some(params);
        }
        self.proc().await?;
        self.init_result
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .ok_or_else(|| "it did not initialize".to_string())
    }

    /// Sends a client request; the messages of its exchange arrive on the receiver, the
    /// answer last.
    pub async fn request(
        &self,
        mut message: Value,
    ) -> Result<mpsc::UnboundedReceiver<Value>, String> {
        self.touch();
        let proc = self.proc().await?;
        // Some servers register their tools a moment after they answer `initialize`.
        let method = message["method"].as_str().unwrap_or_default();
        if method.ends_with("/list") {
            let ready = proc.started + self.config.capability_discovery_delay;
            tokio::time::sleep_until(ready.into()).await;
        }
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let sent = wire::to_child(&mut message, n);
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut p) = proc.pending.lock() {
            p.insert(n, Pending { sent, tx });
        }
        if let Err(e) = proc.write(&message).await {
            if let Ok(mut p) = proc.pending.lock() {
                p.remove(&n);
            }
            return Err(e);
        }
        Ok(rx)
    }

    /// A notification, or the client's answer to a server request: written as it is.
    pub async fn send(&self, message: &Value) -> Result<(), String> {
        self.touch();
        let proc = self.proc().await?;
        proc.write(message).await
    }

    /// The child did not answer in time: it is stopped, and started again when next needed.
    pub async fn stalled(&self) {
        if let Some(p) = self.current.lock().await.take() {
            warn!(upstream = %self.config.name, "stdio server stopped answering; restarting it");
            p.kill();
        }
    }

    pub fn stop(&self) {
        if let Ok(mut c) = self.current.try_lock()
            && let Some(p) = c.take()
        {
            p.kill();
        }
    }

    /// The running child, starting (or restarting, with backoff) one if needed.
    async fn proc(&self) -> Result<Arc<Proc>, String> {
        let mut current = self.current.lock().await;
        if let Some(p) = current.as_ref()
            && p.alive()
        {
            return Ok(p.clone());
        }
        let restarting = current.take().is_some();
        let failures = self.failures.load(Ordering::SeqCst);
        if restarting || failures > 0 {
            let backoff = self
                .config
                .retry_delay
                .saturating_mul(2u32.saturating_pow(failures.min(6)))
                .min(Duration::from_secs(5));
            tokio::time::sleep(backoff).await;
        }
        match self.start().await {
            Ok(p) => {
                self.failures.store(0, Ordering::SeqCst);
                *current = Some(p.clone());
                Ok(p)
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Spawns and initializes, retrying a child that exits or does not answer in time.
    async fn start(&self) -> Result<Arc<Proc>, String> {
        let params = self
            .init_params
            .lock()
            .ok()
            .and_then(|p| p.clone())
            .ok_or("no client has initialized it yet")?;
        let attempts = self.config.initialization_retries + 1;
        let mut last = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                tokio::time::sleep(self.config.retry_delay).await;
            }
            let proc = match self.connect().await {
                Ok(p) => p,
                Err(e) if matches!(self.config.transport, Transport::Process { .. }) => {
                    // A command that cannot be started will not start on a retry either.
                    return Err(e);
                }
                Err(e) => {
                    warn!(upstream = %self.config.name, attempt, attempts, "cannot connect: {e}");
                    last = e;
                    continue;
                }
            };
            match self.handshake(&proc, &params).await {
                Ok(()) => return Ok(proc),
                Err(e) => {
                    warn!(upstream = %self.config.name, attempt, attempts, "stdio server did not initialize: {e}");
                    proc.kill();
                    last = e;
                }
            }
        }
        Err(format!(
            "did not initialize after {attempts} attempts: {last}"
        ))
    }

    async fn handshake(&self, proc: &Arc<Proc>, params: &Value) -> Result<(), String> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let mut init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params});
        let sent = wire::to_child(&mut init, n);
        let (tx, mut rx) = mpsc::unbounded_channel();
        if let Ok(mut p) = proc.pending.lock() {
            p.insert(n, Pending { sent, tx });
        }
        proc.write(&init).await?;
        let answer = tokio::time::timeout(self.config.startup_timeout, async {
            while let Some(m) = rx.recv().await {
                if wire::classify(&m) == Some(Kind::Response) {
                    return Some(m);
                }
            }
            None
        })
        .await
        .map_err(|_| {
            format!(
                "no answer to initialize within {:?}",
                self.config.startup_timeout
            )
        })?
        .ok_or("it exited before answering initialize")?;
        if let Some(error) = answer.get("error") {
            return Err(format!("it refused initialize: {error}"));
        }
        if let Ok(mut r) = self.init_result.lock() {
            *r = Some(answer["result"].clone());
        }
        proc.write(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        info!(upstream = %self.config.name, pid = ?proc.pid, "stdio server initialized");
        Ok(())
    }

    async fn connect(&self) -> Result<Arc<Proc>, String> {
        let link = Link {
            name: self.config.name.clone(),
            unsolicited: self.unsolicited.clone(),
            shared: self.config.shared,
        };
        match &self.config.transport {
            Transport::Process { .. } => super::process::spawn(&self.config.transport, link),
            Transport::LegacySse { .. } => {
                super::legacy_sse::connect(&self.config.transport, &self.headers, link).await
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
