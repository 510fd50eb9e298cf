//! One logical stdio server: a child process, started and initialized on demand (with
//! retries), restarted with backoff when it exits or stops answering. Requests get ids of the
//! bridge's own, so the answers of one child never cross between clients.

use super::error::HostedError;
use super::link::{Link, Pending, Proc};
use super::wire::{self, Kind};
use super::{HostedConfig, Transport};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};
use tracing::{info, warn};

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
    pub async fn initialize(&self, params: Value) -> Result<Value, HostedError> {
        if let Ok(mut p) = self.init_params.lock()
            && p.is_none()
        {
            *p = Some(params);
        }
        self.proc().await?;
        // The session's idle time counts from here: starting the child may take longer than
        // a short idle_timeout, and the session is in use now.
        self.touch();
        self.init_result
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .ok_or(HostedError::NotInitialized)
    }

    /// Sends a client request; the messages of its exchange arrive on the receiver, the
    /// answer last.
    pub async fn request(
        &self,
        mut message: Value,
    ) -> Result<mpsc::UnboundedReceiver<Value>, HostedError> {
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
    pub async fn send(&self, message: &Value) -> Result<(), HostedError> {
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
    async fn proc(&self) -> Result<Arc<Proc>, HostedError> {
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
    async fn start(&self) -> Result<Arc<Proc>, HostedError> {
        let params = self
            .init_params
            .lock()
            .ok()
            .and_then(|p| p.clone())
            .ok_or(HostedError::NoClientYet)?;
        let attempts = self.config.initialization_retries + 1;
        let mut last = HostedError::NotInitialized;
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
        Err(HostedError::GaveUp {
            attempts,
            last: Box::new(last),
        })
    }

    async fn handshake(&self, proc: &Arc<Proc>, params: &Value) -> Result<(), HostedError> {
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
        .map_err(|_| HostedError::InitializeTimeout(self.config.startup_timeout))?
        .ok_or(HostedError::ExitedBeforeInitialize)?;
        if let Some(error) = answer.get("error") {
            return Err(HostedError::InitializeRefused(error.clone()));
        }
        if let Ok(mut r) = self.init_result.lock() {
            *r = Some(answer["result"].clone());
        }
        proc.write(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        info!(upstream = %self.config.name, pid = ?proc.pid, "stdio server initialized");
        Ok(())
    }

    async fn connect(&self) -> Result<Arc<Proc>, HostedError> {
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
