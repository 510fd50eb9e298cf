//! A stateless (2026-07-28) client's call of a 2025 upstream that asks the client something
//! inside its answer (`elicitation/create`, `sampling/createMessage`, `roots/list`).
//!
//! The revision has no server requests; it has `input_required`. The bridge makes the call
//! through the upstream's own endpoint on the gateway, in a 2025 session opened with the
//! client's capabilities, and reads the answer as it streams. A question ends the client's
//! request with `input_required` (the question as an input request) and a `requestState`
//! sealed like the filter's, naming the call the bridge now holds — the upstream's stream
//! stays open, waiting. The client's retry (checked by the filter, then sent here) answers
//! the question in the upstream's session, and the held stream goes on to the result or
//! the next question. Held calls live in this process: a retry that reaches another
//! replica, or comes after [`HOLD`], is refused with a clear error.

use crate::stream::{Bridge, error, now_s};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchboard_protocol::access::IDENTITY_HEADER;
use switchboard_protocol::interactive::{ASKED_HEADER, HELD_PREFIX, TARGET_HEADER};
use switchboard_protocol::jsonrpc::code;
use switchboard_protocol::modern::{self, meta};
use switchboard_protocol::request_state::RequestState;
use switchboard_protocol::sse;
use switchboard_protocol::wire::{SESSION_HEADER, UPSTREAM_ERROR, VERSION_HEADER};
use tracing::{debug, warn};

/// How long a held call waits for the client's answer.
const HOLD: Duration = Duration::from_secs(600);

/// At most this many calls are held at once; more are refused (each holds a stream).
const MAX_HELD: usize = 1000;

/// The revision the bridge speaks to the upstream.
const LEGACY: &str = "2025-11-25";

/// The key of the one input request an `input_required` carries.
const INPUT_KEY: &str = "input";

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Where a call's session is: what a request in it needs.
#[derive(Clone)]
struct Link {
    upstream: String,
    url: String,
    session: String,
    on_behalf: reqwest::header::HeaderMap,
}

/// A call waiting for the client's answer.
struct Call {
    link: Link,
    /// Whose call it is ([`switchboard_protocol::access::Identity::key`]).
    identity: Option<String>,
    /// The id the call went to the upstream with (the client's first), which its result
    /// carries; a retry's answer goes out with the retry's own id.
    id: Value,
    /// The id of the upstream's question, which the answer must carry.
    question: Value,
    body: Body,
    decoder: sse::Decoder,
    pending: VecDeque<String>,
    since: Instant,
}

/// The calls this bridge holds, by token.
#[derive(Default)]
pub struct Held {
    calls: Mutex<HashMap<String, Call>>,
    counter: AtomicU64,
}

impl Held {
    /// Ends what waited longer than [`HOLD`] (its upstream stream closes with it).
    pub fn reap_expired(&self) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.retain(|_, c| c.since.elapsed() < HOLD);
        }
    }

    fn token(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{HELD_PREFIX}{}-{nanos:x}-{n}", std::process::id())
    }
}

/// The bridge's POSTs: a held or holdable call (the filter named its upstream), else a
/// subscription.
pub(crate) async fn post(state: State<Bridge>, headers: HeaderMap, body: Bytes) -> Response {
    if headers.contains_key(TARGET_HEADER) {
        call(state, headers, body).await
    } else {
        crate::listen::listen(state, headers, body).await
    }
}

async fn call(State(bridge): State<Bridge>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let stamped =
        header(crate::GATEWAY_HEADER).and_then(|v| crate::gateway_address::gateway_url(&v));
    let Some((config, gateway)) = bridge
        .state
        .current()
        .and_then(|(c, g)| Some((c, stamped.or(g)?)))
    else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            code::INTERNAL_ERROR,
            "The gateway is starting",
        );
    };
    let (Some(target), Some(asked)) = (header(TARGET_HEADER), header(ASKED_HEADER)) else {
        return error(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "Bad Request: not a call the gateway sent",
        );
    };
    let asked = modern::decode_header_value(&asked).unwrap_or(asked);
    let identity_header = header(IDENTITY_HEADER);
    let identity = match config.relayed(identity_header.as_deref()) {
        Ok(who) => who,
        Err(()) => {
            return error(
                StatusCode::UNAUTHORIZED,
                code::INVALID_REQUEST,
                "Unauthorized: no identity established by the gateway",
            );
        }
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            code::PARSE_ERROR,
            "Parse error: the body is not JSON",
        );
    };
    let id = request["id"].clone();
    let method = request["method"].as_str().unwrap_or_default().to_string();
    let on_behalf = bridge.state.on_behalf(identity_header.as_deref());
    let url = format!("{gateway}{}/{target}/mcp", config.upstream_path);
    let reply =
        |result: Value| json_response(&json!({"jsonrpc": "2.0", "id": id, "result": result}));
    let fail = |message: String| {
        json_response(&json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": UPSTREAM_ERROR, "message": message}}))
    };

    let held = request["params"]["requestState"]
        .as_str()
        .filter(|s| s.starts_with(HELD_PREFIX))
        .map(str::to_string);
    let mut call = match held {
        // The client's answer to the question of a call held here.
        Some(token) => {
            let taken = bridge
                .state
                .held
                .calls
                .lock()
                .ok()
                .and_then(|mut calls| calls.remove(&token));
            let Some(mut call) =
                taken.filter(|c| c.link.upstream == target && c.identity == identity)
            else {
                return json_response(&json!({"jsonrpc": "2.0", "id": id, "error": {
                    "code": code::INVALID_PARAMS,
                    "message": "Invalid params: the call that asked for input is not held here any more (it waited too long, or the gateway has several replicas without affinity); call again"}}));
            };
            let answer = &request["params"]["inputResponses"][INPUT_KEY];
            if answer.is_null() {
                return json_response(&json!({"jsonrpc": "2.0", "id": id, "error": {
                    "code": code::INVALID_PARAMS,
                    "message": format!("Invalid params: inputResponses.{INPUT_KEY} is missing")}}));
            }
            let response = json!({"jsonrpc": "2.0", "id": call.question, "result": answer});
            if let Err(e) = post_in_session(&bridge.http, &call.link, &response).await {
                return fail(format!("Upstream {target:?} did not take the answer: {e}"));
            }
            call.since = Instant::now();
            call
        }
        // A new call: a session opened with the client's capabilities, then the call.
        None => {
            match open_call(
                &bridge,
                &url,
                on_behalf,
                &request,
                &target,
                identity.clone(),
            )
            .await
            {
                Ok(Opened::Call(call)) => *call,
                Ok(Opened::Answered(result)) => return reply(with_complete(result)),
                Err(message) => return fail(message),
            }
        }
    };
    match next_event(&mut call).await {
        Some(Next::Result(result)) => {
            close(&bridge.http, &call.link).await;
            reply(with_complete(result))
        }
        Some(Next::Error(e)) => {
            close(&bridge.http, &call.link).await;
            json_response(&json!({"jsonrpc": "2.0", "id": id, "error": e}))
        }
        Some(Next::Question(question)) => {
            let full = bridge
                .state
                .held
                .calls
                .lock()
                .map(|c| c.len() >= MAX_HELD)
                .unwrap_or(true);
            if full {
                close(&bridge.http, &call.link).await;
                return fail(format!(
                    "Upstream {target:?} asked the client something, and the gateway holds {MAX_HELD} calls already"
                ));
            }
            call.question = question["id"].clone();
            let token = bridge.state.held.token();
            let state = RequestState {
                upstream: target.clone(),
                identity: identity.clone(),
                method,
                name: asked,
                inner: Some(token.clone()),
                issued_at: now_s(),
            };
            let seed = format!("{token}-{}", now_s());
            let sealed = state.seal(&config.key, seed.as_bytes());
            debug!(
                upstream = target,
                "holding a call while the client answers its question"
            );
            if let Ok(mut calls) = bridge.state.held.calls.lock() {
                calls.insert(token, call);
            }
            reply(json!({
                "resultType": "input_required",
                "inputRequests": {INPUT_KEY: {"method": question["method"], "params": question["params"]}},
                "requestState": sealed,
            }))
        }
        None => {
            close(&bridge.http, &call.link).await;
            fail(format!(
                "Upstream {target:?} ended the call without an answer"
            ))
        }
    }
}

enum Opened {
    Call(Box<Call>),
    Answered(Value),
}

/// Opens a 2025 session at the upstream's endpoint with the client's capabilities and
/// makes the call in it; a JSON answer is the result at once, an event stream is read on.
async fn open_call(
    bridge: &Bridge,
    url: &str,
    on_behalf: reqwest::header::HeaderMap,
    request: &Value,
    target: &str,
    identity: Option<String>,
) -> Result<Opened, String> {
    let m = &request["params"]["_meta"];
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": LEGACY,
        "capabilities": m.get(meta::CLIENT_CAPABILITIES).cloned().unwrap_or_else(|| json!({})),
        "clientInfo": m.get(meta::CLIENT_INFO).cloned().unwrap_or_else(
            || json!({"name": "switchboard-bridge", "version": env!("CARGO_PKG_VERSION")})),
    }});
    let resp = bridge
        .http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .headers(on_behalf.clone())
        .body(init.to_string())
        .send()
        .await
        .map_err(|e| format!("Upstream {target:?} could not be reached: {e}"))?;
    let session = resp
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "Upstream {target:?} refused initialize (HTTP {})",
                resp.status()
            )
        })?;
    let mut call = Call {
        link: Link {
            upstream: target.to_string(),
            url: url.to_string(),
            session,
            on_behalf,
        },
        identity,
        id: request["id"].clone(),
        question: Value::Null,
        body: Box::pin(futures::stream::empty()),
        decoder: sse::Decoder::new(),
        pending: VecDeque::new(),
        since: Instant::now(),
    };
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post_in_session(&bridge.http, &call.link, &initialized)
        .await
        .map_err(|e| format!("Upstream {target:?}: {e}"))?;
    // The request as a 2025 session sends it: without the revision's `_meta` keys.
    let mut sent = request.clone();
    if let Some(m) = sent["params"]["_meta"].as_object_mut() {
        m.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
    }
    let resp = bridge
        .http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header(VERSION_HEADER, LEGACY)
        .header(SESSION_HEADER, &call.link.session)
        .headers(call.link.on_behalf.clone())
        .body(sent.to_string())
        .send()
        .await
        .map_err(|e| format!("Upstream {target:?} could not be reached: {e}"))?;
    let stream = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if !stream {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        close(&bridge.http, &call.link).await;
        let answer: Value = serde_json::from_str(&text)
            .map_err(|_| format!("Upstream {target:?} answered HTTP {status} without JSON-RPC"))?;
        return match (answer.get("result"), answer.get("error")) {
            (Some(r), _) => Ok(Opened::Answered(r.clone())),
            (_, Some(e)) => Err(format!(
                "Upstream {target:?} answered with error {}",
                e["message"].as_str().unwrap_or_default()
            )),
            _ => Err(format!(
                "Upstream {target:?} answered HTTP {status} without a result"
            )),
        };
    }
    call.body = Box::pin(resp.bytes_stream());
    Ok(Opened::Call(Box::new(call)))
}

enum Next {
    Result(Value),
    Error(Value),
    /// A request of the upstream's: method, params, id.
    Question(Value),
}

/// The next thing of the held stream that matters: the call's answer, or a question.
async fn next_event(call: &mut Call) -> Option<Next> {
    loop {
        while let Some(data) = call.pending.pop_front() {
            let Ok(message) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            let is_request = message["method"].is_string() && !message["id"].is_null();
            if is_request {
                return Some(Next::Question(message));
            }
            if message["id"] == call.id {
                if let Some(r) = message.get("result") {
                    return Some(Next::Result(r.clone()));
                }
                if let Some(e) = message.get("error") {
                    return Some(Next::Error(e.clone()));
                }
            }
            // Progress and log notifications: not relayed (the answer is one JSON body).
        }
        let chunk = tokio::time::timeout(HOLD, call.body.next()).await.ok()??;
        let Ok(chunk) = chunk else {
            warn!(
                upstream = call.link.upstream,
                "the held call's stream failed"
            );
            return None;
        };
        for event in call.decoder.push(&chunk) {
            call.pending.push_back(event.data);
        }
    }
}

async fn post_in_session(
    http: &reqwest::Client,
    call: &Link,
    message: &Value,
) -> Result<(), String> {
    let resp = http
        .post(&call.url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header(VERSION_HEADER, LEGACY)
        .header(SESSION_HEADER, &call.session)
        .headers(call.on_behalf.clone())
        .body(message.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", resp.status()))
    }
}

/// Ends the call's upstream session.
async fn close(http: &reqwest::Client, call: &Link) {
    let deleted = http
        .delete(&call.url)
        .header(SESSION_HEADER, &call.session)
        .header(VERSION_HEADER, LEGACY)
        .headers(call.on_behalf.clone())
        .send()
        .await;
    if let Err(e) = deleted {
        debug!(upstream = call.upstream, error = %e, "could not end a held call's session");
    }
}

fn with_complete(mut result: Value) -> Value {
    modern::complete(&mut result);
    result
}

fn json_response(body: &Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}
