//! One logical stdio server: a child process, started and initialized on demand (with
//! retries), restarted with backoff when it exits or stops answering. Requests get ids of the
//! bridge's own, so the answers of one child never cross between clients.

use super::StdioConfig;
use super::wire::{self, Kind, Sent};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

/// JSON-RPC code of a failure of the stdio server itself (exited, did not start).
pub const UPSTREAM_ERROR: i64 = -32002;

/// Environment variables a child gets besides its configured ones, unless it inherits all.
const SAFE_ENV: [&str; 8] = [
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR",
];

struct Pending {
    sent: Sent,
    tx: mpsc::UnboundedSender<Value>,
}

/// A running child process.
struct Proc {
    stdin: tokio::sync::Mutex<ChildStdin>,
    pending: Mutex<HashMap<u64, Pending>>,
    started: Instant,
    exited: Arc<std::sync::atomic::AtomicBool>,
    kill: Mutex<Option<oneshot::Sender<()>>>,
    pid: Option<u32>,
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

    async fn write(&self, message: &Value) -> Result<(), String> {
        let mut line = message.to_string();
        line.push('\n');
        let mut stdin = self.stdin.lock().await;
        stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("cannot write to it: {e}"))?;
        stdin
            .flush()
            .await
            .map_err(|e| format!("cannot write to it: {e}"))
    }
}

pub struct Slot {
    config: Arc<StdioConfig>,
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
}

impl Slot {
    pub fn new(config: Arc<StdioConfig>) -> Slot {
        Slot {
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
            let proc = match self.spawn() {
                Ok(p) => p,
                Err(e) => {
                    // A command that cannot be started will not start on a retry either.
                    return Err(e);
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

    fn spawn(&self) -> Result<Arc<Proc>, String> {
        let c = &self.config;
        let mut cmd = Command::new(&c.command);
        cmd.args(&c.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if !c.inherit_env {
            cmd.env_clear();
            for key in SAFE_ENV {
                if let Ok(v) = std::env::var(key) {
                    cmd.env(key, v);
                }
            }
        }
        cmd.envs(&c.env);
        if let Some(dir) = &c.cwd {
            cmd.current_dir(dir);
        }
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", c.command))?;
        let pid = child.id();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("its standard streams are not available".into());
        };
        let (kill_tx, kill_rx) = oneshot::channel();
        let exited = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let proc = Arc::new(Proc {
            stdin: tokio::sync::Mutex::new(stdin),
            pending: Mutex::new(HashMap::new()),
            started: Instant::now(),
            exited: exited.clone(),
            kill: Mutex::new(Some(kill_tx)),
            pid,
        });
        let name = c.name.clone();
        // Reaps the child whatever happens, so none is left a zombie.
        tokio::spawn({
            let name = name.clone();
            async move {
                let status = tokio::select! {
                    s = child.wait() => s,
                    _ = kill_rx => {
                        let _ = child.start_kill();
                        child.wait().await
                    }
                };
                info!(upstream = %name, pid = ?pid, status = ?status.ok(), "stdio server exited");
            }
        });
        tokio::spawn({
            let name = name.clone();
            async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    info!(upstream = %name, "stderr: {line}");
                }
            }
        });
        let unsolicited = self.unsolicited.clone();
        let shared = c.shared;
        let reader = proc.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(message) = serde_json::from_str::<Value>(&line) else {
                    debug!(upstream = %name, "not JSON-RPC on stdout: {line}");
                    continue;
                };
                route(&reader, message, &unsolicited, shared);
            }
            exited.store(true, Ordering::SeqCst);
            // Everything in flight fails now, naming the upstream, instead of waiting out its
            // timeout.
            let pending: Vec<Pending> = reader
                .pending
                .lock()
                .map(|mut p| p.drain().map(|(_, v)| v).collect())
                .unwrap_or_default();
            for p in pending {
                let _ = p.tx.send(wire::error_response(
                    &p.sent.client_id,
                    UPSTREAM_ERROR,
                    &format!("Upstream {name:?} (stdio) exited before answering; it is restarted for the next request"),
                ));
            }
        });
        Ok(proc)
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

/// The child gets SIGKILL if switchboard dies, even by SIGKILL.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2), which
    // is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
}
