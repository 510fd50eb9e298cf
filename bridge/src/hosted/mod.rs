//! Upstreams Envoy cannot reach itself, hosted by the bridge as streamable HTTP for Envoy to
//! route to like any upstream: `POST|GET|DELETE /hosted/<name>/mcp` on the bridge. A stdio
//! server is a child process ([`process`]: newline-delimited JSON-RPC on stdin and stdout,
//! stderr to the log a line at a time); a legacy SSE server a held event stream
//! ([`legacy_sse`]). [`slot`] runs either, [`wire`] maps ids.
//!
//! `per_session` (the default): a child per session, so stateful servers stay isolated
//! between clients; ended by DELETE or after `idle_timeout`, at most `max_processes`.
//! `shared`: one child for everyone; requests get the bridge's own ids, so concurrent
//! clients never see each other's answers.

pub mod error;
mod legacy_sse;
mod link;
pub mod process;
pub mod slot;
pub mod wire;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
pub use error::HostedError;
use serde_json::Value;
use slot::Slot;
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use switchboard_protocol::jsonrpc::code;
use switchboard_protocol::wire::SESSION_HEADER;
use switchboard_protocol::wire::UPSTREAM_ERROR;
use tracing::info;
use wire::Kind;

/// One hosted upstream as the control plane configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedConfig {
    pub name: String,
    pub transport: Transport,
    pub startup_timeout: Duration,
    pub initialization_retries: u32,
    pub retry_delay: Duration,
    pub capability_discovery_delay: Duration,
    pub shared: bool,
    pub idle_timeout: Duration,
    pub max_processes: usize,
    /// How long a request may take (the upstream's timeout).
    pub request_timeout: Duration,
    /// Headers the gateway sets by pass-through on a session's `initialize` (lower case): a
    /// `per_session` legacy SSE connection is opened with them.
    pub pass_through: Vec<String>,
}

/// How the bridge reaches the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A child process, newline-delimited JSON-RPC on stdin/stdout.
    Process {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        /// Pass switchboard's whole environment (else only `env` and a minimal safe set).
        inherit_env: bool,
        cwd: Option<PathBuf>,
    },
    /// The deprecated HTTP+SSE transport (2024-11-05): a GET event stream that announces
    /// the URL to POST messages to.
    LegacySse {
        url: String,
        headers: Vec<(String, String)>,
        /// The stream counts as dead after this long without a byte.
        read_timeout: Duration,
    },
}

impl Transport {
    fn kind(&self) -> &'static str {
        match self {
            Transport::Process { .. } => "stdio",
            Transport::LegacySse { .. } => "sse",
        }
    }
}

/// The running hosted upstreams, by name.
#[derive(Default)]
pub struct HostedUpstreams {
    upstreams: RwLock<HashMap<String, Arc<Upstream>>>,
}

struct Upstream {
    config: Arc<HostedConfig>,
    /// `shared`: the one child.
    shared: Option<Arc<Slot>>,
    /// Session id → its child (`per_session`), or → the shared child.
    sessions: RwLock<HashMap<String, Arc<Slot>>>,
}

impl Upstream {
    fn stop(&self) {
        if let Some(s) = &self.shared {
            s.stop();
        }
        if let Ok(sessions) = self.sessions.read() {
            for s in sessions.values() {
                s.stop();
            }
        }
    }
}

impl HostedUpstreams {
    /// Follows a new configuration: new upstreams start on demand, removed or changed ones
    /// are stopped.
    pub fn configure(&self, configs: Vec<HostedConfig>) {
        let Ok(mut upstreams) = self.upstreams.write() else {
            return;
        };
        let wanted: HashMap<String, HostedConfig> =
            configs.into_iter().map(|c| (c.name.clone(), c)).collect();
        upstreams.retain(|name, u| {
            let keep = wanted.get(name) == Some(&*u.config);
            if !keep {
                info!(upstream = %name, "stdio upstream removed or changed; stopping its processes");
                u.stop();
            }
            keep
        });
        for (name, config) in wanted {
            upstreams.entry(name).or_insert_with(|| {
                let config = Arc::new(config);
                Arc::new(Upstream {
                    shared: config.shared.then(|| Arc::new(Slot::new(config.clone()))),
                    config,
                    sessions: RwLock::default(),
                })
            });
        }
    }

    fn get(&self, name: &str) -> Option<Arc<Upstream>> {
        self.upstreams.read().ok()?.get(name).cloned()
    }

    /// Stops `per_session` children idle for longer than their `idle_timeout`.
    pub fn reap_idle(&self) {
        let Ok(upstreams) = self.upstreams.read() else {
            return;
        };
        for u in upstreams.values().filter(|u| !u.config.shared) {
            if let Ok(mut sessions) = u.sessions.write() {
                sessions.retain(|id, slot| {
                    let idle = slot.idle_for() > u.config.idle_timeout;
                    if idle {
                        info!(upstream = %u.config.name, session = %short(id), "idle session ended; stopping its process");
                        slot.stop();
                    }
                    !idle
                });
            }
        }
    }
}

pub(crate) fn router() -> axum::Router<crate::Bridge> {
    axum::Router::new().route(
        "/hosted/{name}/mcp",
        axum::routing::post(post).get(get).delete(delete),
    )
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, id: &Value, code: i64, message: &str) -> Response {
    json(status, &wire::error_response(id, code, message))
}

/// 128 random bits, hex: a session id nobody can guess (empty without a random source).
pub(crate) fn session_id() -> String {
    let mut bytes = [0u8; 16];
    // Without randomness a session id could be guessed: fail the request instead.
    if getrandom::fill(&mut bytes).is_err() {
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn post(
    State(bridge): State<crate::Bridge>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let null = Value::Null;
    let Some(upstream) = bridge.state.hosted.get(&name) else {
        return error(
            StatusCode::NOT_FOUND,
            &null,
            code::INVALID_REQUEST,
            &format!("No stdio upstream {name:?}"),
        );
    };
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            &null,
            code::PARSE_ERROR,
            "Parse error: the body is not JSON",
        );
    };
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let Some(kind) = wire::classify(&message) else {
        return error(
            StatusCode::BAD_REQUEST,
            &id,
            code::INVALID_REQUEST,
            "Invalid Request: not a JSON-RPC message",
        );
    };
    let call = Call { name, upstream, id };
    if message["method"] == "initialize" {
        return call.initialize(&headers, message).await;
    }
    let Some(slot) = session(&call.upstream, &headers) else {
        return error(
            StatusCode::NOT_FOUND,
            &call.id,
            code::INVALID_REQUEST,
            "Session not found: send initialize again",
        );
    };
    call.relay(slot, kind, message).await
}

/// One message a client posted to a hosted upstream.
struct Call {
    name: String,
    upstream: Arc<Upstream>,
    /// The message's id (null for notifications).
    id: Value,
}

impl Call {
    /// A JSON-RPC error that names the upstream and its transport.
    fn fail(&self, e: &dyn std::fmt::Display) -> Response {
        error(
            StatusCode::OK,
            &self.id,
            UPSTREAM_ERROR,
            &format!(
                "Upstream {:?} ({}) {e}",
                self.name,
                self.upstream.config.transport.kind()
            ),
        )
    }

    /// A new session: the shared child, or a child of its own (within `max_processes`),
    /// initialized with the client's params; the answer carries the session id.
    async fn initialize(&self, headers: &HeaderMap, message: Value) -> Response {
        let upstream = &self.upstream;
        let sid = session_id();
        if sid.is_empty() {
            return self.fail(&"cannot make a session id: no random source");
        }
        let slot = match &upstream.shared {
            Some(s) => s.clone(),
            None => {
                let count = upstream.sessions.read().map(|s| s.len()).unwrap_or(0);
                if count >= upstream.config.max_processes {
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &self.id,
                        UPSTREAM_ERROR,
                        &format!(
                            "Upstream {:?} ({}) runs its limit of {} sessions (max_processes); try again later",
                            self.name,
                            upstream.config.transport.kind(),
                            upstream.config.max_processes
                        ),
                    );
                }
                let passed: Vec<(String, String)> = upstream
                    .config
                    .pass_through
                    .iter()
                    .filter_map(|h| {
                        let v = headers.get(h.as_str())?.to_str().ok()?;
                        Some((h.clone(), v.to_string()))
                    })
                    .collect();
                Arc::new(Slot::with_headers(upstream.config.clone(), passed))
            }
        };
        let result = match slot.initialize(message["params"].clone()).await {
            Ok(r) => r,
            Err(e) => {
                if upstream.shared.is_none() {
                    slot.stop();
                }
                return self.fail(&e);
            }
        };
        if let Ok(mut sessions) = upstream.sessions.write() {
            sessions.insert(sid.clone(), slot);
        }
        let answer = serde_json::json!({"jsonrpc": "2.0", "id": self.id, "result": result});
        let mut response = json(StatusCode::OK, &answer);
        if let Ok(v) = sid.parse() {
            response.headers_mut().insert(SESSION_HEADER, v);
        }
        response
    }

    /// A message in a session: notifications and answers written as they are; a request's
    /// exchange streamed back as SSE, its answer last, within the request timeout.
    async fn relay(self, slot: Arc<Slot>, kind: Kind, message: Value) -> Response {
        match kind {
            // The bridge told the child itself when it initialized it.
            Kind::Notification if message["method"] == "notifications/initialized" => {
                StatusCode::ACCEPTED.into_response()
            }
            Kind::Notification | Kind::Response => match slot.send(&message).await {
                Ok(()) => StatusCode::ACCEPTED.into_response(),
                Err(e) => self.fail(&e),
            },
            Kind::Request => {
                let mut rx = match slot.request(message).await {
                    Ok(rx) => rx,
                    Err(e) => return self.fail(&e),
                };
                let timeout = self.upstream.config.request_timeout;
                let kind = self.upstream.config.transport.kind();
                let Call { name, id, .. } = self;
                // The exchange as SSE: what the child sends for this request, its answer last.
                let stream = async_stream(move |tx| async move {
                    let deadline = tokio::time::Instant::now() + timeout;
                    loop {
                        match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Some(m)) => {
                                let last = wire::classify(&m) == Some(Kind::Response);
                                if tx.send(m).await.is_err() || last {
                                    return;
                                }
                            }
                            Ok(None) => return,
                            Err(_) => {
                                let _ = tx
                                    .send(wire::error_response(
                                        &id,
                                        switchboard_protocol::wire::UPSTREAM_TIMEOUT,
                                        &format!(
                                            "Upstream {name:?} ({kind}) did not answer within {} ms",
                                            timeout.as_millis()
                                        ),
                                    ))
                                    .await;
                                slot.stalled().await;
                                return;
                            }
                        }
                    }
                });
                Sse::new(stream).into_response()
            }
        }
    }
}

/// A stream of SSE events fed by `produce`.
fn async_stream<F, Fut>(produce: F) -> impl futures::Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Value>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Value>(16);
    tokio::spawn(produce(tx));
    futures::stream::unfold(rx, |mut rx| async move {
        let m = rx.recv().await?;
        Some((
            Ok(Event::default().event("message").data(m.to_string())),
            rx,
        ))
    })
}

fn session(upstream: &Upstream, headers: &HeaderMap) -> Option<Arc<Slot>> {
    let sid = headers.get(SESSION_HEADER)?.to_str().ok()?;
    upstream.sessions.read().ok()?.get(sid).cloned()
}

/// The server's messages that belong to no request.
async fn get(
    State(bridge): State<crate::Bridge>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let null = Value::Null;
    let Some(slot) = bridge
        .state
        .hosted
        .get(&name)
        .and_then(|u| session(&u, &headers))
    else {
        return error(
            StatusCode::NOT_FOUND,
            &null,
            code::INVALID_REQUEST,
            "Session not found",
        );
    };
    let rx = slot.unsolicited.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(m) => {
                    return Some((
                        Ok::<_, Infallible>(Event::default().event("message").data(m.to_string())),
                        rx,
                    ));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

async fn delete(
    State(bridge): State<crate::Bridge>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(upstream) = bridge.state.hosted.get(&name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(sid) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let removed = upstream
        .sessions
        .write()
        .ok()
        .and_then(|mut s| s.remove(sid));
    match removed {
        Some(slot) => {
            if upstream.shared.is_none() {
                info!(upstream = %name, session = %short(sid), "session ended; stopping its process");
                slot.stop();
            }
            StatusCode::OK.into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
