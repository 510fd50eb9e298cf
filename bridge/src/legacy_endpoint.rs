//! The deprecated HTTP+SSE transport (2024-11-05) for old clients: `GET <sse path>` opens an
//! event stream whose first event names the URL to POST messages to; every message is sent
//! on as a streamable-HTTP request to the gateway's own endpoint (through Envoy, so every
//! policy applies once), and whatever comes back, answers and notifications, is written to
//! the client's event stream.
//!
//! Envoy's routes tell the bridge where things are (headers set by the route, which a client
//! cannot choose): [`TARGET_HEADER`] the streamable-HTTP path behind this endpoint,
//! [`MESSAGES_HEADER`] the public path of the message endpoint.

use crate::gateway_address::{GATEWAY_HEADER, gateway_url};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::Value;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_protocol::access::IDENTITY_HEADER;
use switchboard_protocol::jsonrpc::code;
use switchboard_protocol::sse;
use switchboard_protocol::wire::{SESSION_HEADER, VERSION_HEADER};
use tokio::sync::mpsc;
use tracing::{debug, info};

pub const TARGET_HEADER: &str = "x-switchboard-target";
pub const MESSAGES_HEADER: &str = "x-switchboard-messages";

/// The open legacy sessions, by the id in their message URL.
#[derive(Default)]
pub struct LegacySessions {
    sessions: Mutex<HashMap<String, Arc<LegacySession>>>,
}

struct LegacySession {
    /// `http(s)://<gateway>/<target path>`.
    target: String,
    tx: mpsc::Sender<Value>,
    /// The streamable-HTTP session behind it, once `initialize` answered.
    mcp: Mutex<Option<(String, Option<String>)>>,
    get_started: std::sync::atomic::AtomicBool,
    /// Who the filter found the client to be, for the bridge's requests on its behalf.
    on_behalf: reqwest::header::HeaderMap,
    /// Its identity key: every message must come from that client.
    identity: Option<String>,
}

pub(crate) fn router() -> axum::Router<crate::Bridge> {
    axum::Router::new()
        .route("/legacy/sse", axum::routing::get(open))
        .route("/legacy/messages", axum::routing::post(message))
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Ends the streamable-HTTP session when the client's event stream goes away.
struct Guard {
    bridge: crate::Bridge,
    id: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let removed = self
            .bridge
            .state
            .legacy
            .sessions
            .lock()
            .ok()
            .and_then(|mut s| s.remove(&self.id));
        if let Some(session) = removed
            && let Some((sid, _)) = session.mcp.lock().ok().and_then(|m| m.clone())
        {
            let http = self.bridge.http.clone();
            let target = session.target.clone();
            tokio::spawn(async move {
                let _ = http
                    .delete(&target)
                    .header(SESSION_HEADER, sid)
                    .headers(session.on_behalf.clone())
                    .send()
                    .await;
            });
        }
        debug!(session = %self.id, "legacy SSE client left");
    }
}

async fn open(State(bridge): State<crate::Bridge>, headers: HeaderMap) -> Response {
    let (Some(gateway), Some(target), Some(messages)) = (
        header(&headers, GATEWAY_HEADER).and_then(|g| gateway_url(&g)),
        header(&headers, TARGET_HEADER),
        header(&headers, MESSAGES_HEADER),
    ) else {
        return (StatusCode::NOT_FOUND, "not routed by the gateway").into_response();
    };
    let id = crate::hosted::session_id();
    if id.is_empty() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no random source").into_response();
    }
    let (tx, rx) = mpsc::channel::<Value>(64);
    let relayed = header(&headers, IDENTITY_HEADER);
    let Some(identity) = bridge.state.relayed(relayed.as_deref()) else {
        return (
            StatusCode::FORBIDDEN,
            "not an identity the gateway established",
        )
            .into_response();
    };
    let on_behalf = bridge.state.on_behalf(relayed.as_deref());
    let session = Arc::new(LegacySession {
        target: format!("{gateway}{target}"),
        tx,
        mcp: Mutex::new(None),
        get_started: std::sync::atomic::AtomicBool::new(false),
        on_behalf,
        identity,
    });
    if let Ok(mut s) = bridge.state.legacy.sessions.lock() {
        s.insert(id.clone(), session);
    }
    info!(target = %target, "legacy SSE client connected");
    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("{messages}?session_id={id}"));
    let guard = Guard {
        bridge: bridge.clone(),
        id,
    };
    let events = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let m = rx.recv().await?;
        Some((
            Ok::<_, Infallible>(Event::default().event("message").data(m.to_string())),
            (rx, guard),
        ))
    });
    let stream = futures::stream::once(async move { Ok::<_, Infallible>(endpoint) }).chain(events);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

async fn message(
    State(bridge): State<crate::Bridge>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let session = query.get("session_id").and_then(|id| {
        bridge
            .state
            .legacy
            .sessions
            .lock()
            .ok()
            .and_then(|s| s.get(id).cloned())
    });
    // A session is its opener's: posted by anyone else, it does not exist.
    let relayed = header(&headers, IDENTITY_HEADER);
    let who = bridge.state.relayed(relayed.as_deref());
    let Some(session) = session.filter(|s| who.as_ref() == Some(&s.identity)) else {
        return (StatusCode::NOT_FOUND, "Could not find session").into_response();
    };
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "Could not parse message").into_response();
    };
    let http = bridge.http.clone();
    // On behalf of the client as the filter found it for this very message.
    let on_behalf = bridge.state.on_behalf(relayed.as_deref());
    tokio::spawn(async move { forward(http, session, message, on_behalf).await });
    (StatusCode::ACCEPTED, "Accepted").into_response()
}

/// One message to the gateway's endpoint; what comes back goes to the client's stream.
async fn forward(
    http: reqwest::Client,
    session: Arc<LegacySession>,
    message: Value,
    on_behalf: reqwest::header::HeaderMap,
) {
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let is_request = message.get("method").is_some() && !id.is_null();
    let mcp = session.mcp.lock().ok().and_then(|m| m.clone());
    let mut req = http
        .post(&session.target)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(message.to_string());
    if let Some((sid, version)) = &mcp {
        req = req.header(SESSION_HEADER, sid);
        if let Some(v) = version {
            req = req.header(VERSION_HEADER, v);
        }
    }
    // The client was authenticated on its way here; the filter takes the identity it sealed.
    req = req.headers(on_behalf);
    let fail = |why: String| {
        let tx = session.tx.clone();
        let id = id.clone();
        async move {
            if is_request {
                let _ = tx
                    .send(serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code::INTERNAL_ERROR, "message": why}}))
                    .await;
            }
        }
    };
    let response = match req.send().await {
        Ok(r) => r,
        Err(e) => return fail(format!("The gateway could not be reached: {e}")).await,
    };
    if message["method"] == "initialize"
        && let Some(sid) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        && let Ok(mut m) = session.mcp.lock()
    {
        *m = Some((sid.to_string(), None));
    }
    let status = response.status();
    let is_sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if is_sse {
        let mut body = response.bytes_stream();
        let mut decoder = sse::Decoder::default();
        while let Some(Ok(chunk)) = body.next().await {
            for event in decoder.push(&chunk) {
                if let Ok(m) = serde_json::from_str::<Value>(&event.data) {
                    deliver(&session, m).await;
                }
            }
        }
    } else {
        let bytes = response.bytes().await.unwrap_or_default();
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(m) => deliver(&session, m).await,
            Err(_) if status.is_success() => {}
            Err(_) => {
                return fail(format!("The gateway answered HTTP {}", status.as_u16())).await;
            }
        }
    }
    if message["method"] == "notifications/initialized" {
        follow_server_stream(http, session);
    }
}

/// A message for the client; an `initialize` result also gives the protocol version.
async fn deliver(session: &LegacySession, m: Value) {
    if let Some(v) = m["result"]["protocolVersion"].as_str()
        && let Ok(mut mcp) = session.mcp.lock()
        && let Some((_, version)) = mcp.as_mut()
    {
        *version = Some(v.to_string());
    }
    let _ = session.tx.send(m).await;
}

/// The gateway's server-to-client stream (`GET`), written to the client's event stream.
fn follow_server_stream(http: reqwest::Client, session: Arc<LegacySession>) {
    if session
        .get_started
        .swap(true, std::sync::atomic::Ordering::SeqCst)
    {
        return;
    }
    let Some((sid, version)) = session.mcp.lock().ok().and_then(|m| m.clone()) else {
        return;
    };
    tokio::spawn(async move {
        let mut req = http
            .get(&session.target)
            .header("accept", "text/event-stream")
            .header(SESSION_HEADER, sid);
        if let Some(v) = version {
            req = req.header(VERSION_HEADER, v);
        }
        req = req.headers(session.on_behalf.clone());
        // The client leaving ends this at once (its stream's receiver is gone), not at the
        // next event: the gateway's stream, and each upstream's behind it, close with it.
        let gone = session.tx.clone();
        // 405: the gateway has no server-to-client stream here; answers still arrive.
        let response = tokio::select! {
            r = req.send() => r,
            () = gone.closed() => return,
        };
        let Ok(response) = response else {
            return;
        };
        if !response.status().is_success() {
            return;
        }
        let mut body = response.bytes_stream();
        let mut decoder = sse::Decoder::default();
        loop {
            let chunk = tokio::select! {
                c = body.next() => c,
                () = gone.closed() => return,
            };
            let Some(Ok(chunk)) = chunk else { return };
            for event in decoder.push(&chunk) {
                if let Ok(m) = serde_json::from_str::<Value>(&event.data)
                    && session.tx.send(m).await.is_err()
                {
                    return;
                }
            }
        }
    });
}
