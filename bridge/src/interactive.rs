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
//! replica, or comes after [`HOLD`], is refused with a clear error. The 2025 session is kept
//! for the client's next call (by identity and declared capabilities, [`SESSION_IDLE`]).

use crate::stream::{Bridge, error, header, now_s, post_json, starting};
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
use switchboard_protocol::interactive::{
    ANSWER, ASKED_HEADER, ERA_HEADER, HELD_PREFIX, QUESTION_PREFIX, SESSION_CLIENT, TARGET_HEADER,
};
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

/// A session kept for a client's next call serves this long after its last use.
const SESSION_IDLE: Duration = Duration::from_secs(300);

/// At most this many sessions are kept (the least recently used makes room).
const MAX_SESSIONS: usize = 4096;

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

/// A 2025 client's call whose questions wait for its answers.
struct Asking {
    answers: tokio::sync::mpsc::Sender<(String, Value)>,
    identity: Option<String>,
    upstream: String,
}

/// The calls this bridge holds, by token; the 2025 sessions it keeps for clients' next calls.
#[derive(Default)]
pub struct Held {
    calls: Mutex<HashMap<String, Call>>,
    asking: Mutex<HashMap<String, Asking>>,
    /// By upstream endpoint, client identity and declared capabilities: the session and
    /// its last use.
    sessions: Mutex<HashMap<String, (String, Instant)>>,
    counter: AtomicU64,
}

impl Held {
    /// Ends what waited longer than [`HOLD`] (its upstream stream closes with it), and
    /// forgets sessions unused for [`SESSION_IDLE`] (the upstream ends them itself).
    pub fn reap_expired(&self) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.retain(|_, c| c.since.elapsed() < HOLD);
        }
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|_, (_, used)| used.elapsed() < SESSION_IDLE);
        }
    }

    /// The session kept for `key`, marked used.
    fn kept(&self, key: &str) -> Option<String> {
        let mut sessions = self.sessions.lock().ok()?;
        let (session, used) = sessions.get_mut(key)?;
        if used.elapsed() >= SESSION_IDLE {
            return None;
        }
        *used = Instant::now();
        Some(session.clone())
    }

    fn keep(&self, key: &str, session: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            if sessions.len() >= MAX_SESSIONS && !sessions.contains_key(key) {
                // Full: the least recently used makes room.
                let oldest = sessions
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    sessions.remove(&k);
                }
            }
            sessions.insert(key.to_string(), (session.to_string(), Instant::now()));
        }
    }

    /// `session` (kept for `key`) is gone; `true` when it was the kept one.
    fn forget(&self, key: &str, session: &str) -> bool {
        let Ok(mut sessions) = self.sessions.lock() else {
            return false;
        };
        if sessions.get(key).is_some_and(|(s, _)| s == session) {
            sessions.remove(key);
            return true;
        }
        false
    }

    /// A name for a held call nobody can guess: a 2025 client answers a question by its id,
    /// so the id must not name someone else's call.
    fn token(&self) -> String {
        let mut random = [0u8; 16];
        if getrandom::fill(&mut random).is_err() {
            // No entropy: still unique, and bound to the identity checked on use.
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            random[..8].copy_from_slice(&n.to_be_bytes());
            random[8..].copy_from_slice(&(nanos as u64).to_be_bytes());
        }
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        format!("{HELD_PREFIX}{hex}")
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
    let header = |name: &str| header(&headers, name);
    let Some((config, gateway)) = bridge.state.serving(&headers) else {
        return starting();
    };
    // Only the filter names the upstream, and only one of the configuration's (the name
    // goes into a URL).
    let Some(target) =
        header(TARGET_HEADER).filter(|t| config.filter.upstreams.iter().any(|u| u.name == *t))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "Bad Request: not a call the gateway sent",
        );
    };
    // What the call was for, as the client named it (an answer names nothing).
    let asked = header(ASKED_HEADER)
        .map(|a| modern::decode_header_value(&a).unwrap_or(a))
        .unwrap_or_default();
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
    match header(ERA_HEADER).as_deref() {
        Some(SESSION_CLIENT) => {
            let link = Link {
                upstream: target,
                url,
                session: String::new(),
                on_behalf,
            };
            return for_session(bridge, link, identity, request).await;
        }
        Some(ANSWER) => return answered(&bridge, &target, identity.as_ref(), &request),
        _ => {}
    }
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
        // The session stays, kept for the client's next call.
        Some(Next::Result(result)) => reply(with_complete(result)),
        Some(Next::Error(e)) => json_response(&json!({"jsonrpc": "2.0", "id": id, "error": e})),
        Some(Next::Question(question)) => {
            let full = bridge
                .state
                .held
                .calls
                .lock()
                .map(|c| c.len() >= MAX_HELD)
                .unwrap_or(true);
            if full {
                // The call is dropped (its stream with it); the session stays for others.
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
        // A session that broke answers 404 next time, and a new one is opened then.
        None => fail(format!(
            "Upstream {target:?} ended the call without an answer"
        )),
    }
}

enum Opened {
    Call(Box<Call>),
    Answered(Value),
}

/// Makes the call in a 2025 session at the upstream's endpoint opened with the client's
/// capabilities — the one kept for this client from its last call when there is one (a
/// session the gateway forgot, 404, is opened again once); a JSON answer is the result at
/// once, an event stream is read on.
async fn open_call(
    bridge: &Bridge,
    url: &str,
    on_behalf: reqwest::header::HeaderMap,
    request: &Value,
    target: &str,
    identity: Option<String>,
) -> Result<Opened, String> {
    let m = &request["params"]["_meta"];
    let capabilities = m
        .get(meta::CLIENT_CAPABILITIES)
        .cloned()
        .unwrap_or_else(|| json!({}));
    let key = format!(
        "{url}\u{0}{}\u{0}{capabilities}",
        identity.as_deref().unwrap_or("")
    );
    // The request as a 2025 session sends it: without the revision's `_meta` keys.
    let mut sent = request.clone();
    modern::without_request_meta(&mut sent);
    let mut link = Link {
        upstream: target.to_string(),
        url: url.to_string(),
        session: String::new(),
        on_behalf,
    };
    let mut kept = bridge.state.held.kept(&key);
    let resp = loop {
        link.session = match kept.take() {
            Some(session) => session,
            None => {
                let session =
                    initialize(bridge, &link, &capabilities, m.get(meta::CLIENT_INFO)).await?;
                bridge.state.held.keep(&key, &session);
                session
            }
        };
        let resp = post_json(&bridge.http, url, &link.on_behalf)
            .header(VERSION_HEADER, LEGACY)
            .header(SESSION_HEADER, &link.session)
            .body(sent.to_string())
            .send()
            .await
            .map_err(|e| format!("Upstream {target:?} could not be reached: {e}"))?;
        if resp.status() == StatusCode::NOT_FOUND && bridge.state.held.forget(&key, &link.session) {
            // The kept session is gone: a new one, the call again.
            continue;
        }
        break resp;
    };
    let stream = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if !stream {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
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
    Ok(Opened::Call(Box::new(Call {
        link,
        identity,
        id: request["id"].clone(),
        question: Value::Null,
        body: Box::pin(resp.bytes_stream()),
        decoder: sse::Decoder::new(),
        pending: VecDeque::new(),
        since: Instant::now(),
    })))
}

/// `initialize` and `notifications/initialized` at the upstream's endpoint: the session.
async fn initialize(
    bridge: &Bridge,
    link: &Link,
    capabilities: &Value,
    client_info: Option<&Value>,
) -> Result<String, String> {
    let target = &link.upstream;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": LEGACY,
        "capabilities": capabilities,
        "clientInfo": client_info.cloned().unwrap_or_else(
            || json!({"name": "switchboard-bridge", "version": env!("CARGO_PKG_VERSION")})),
    }});
    let resp = post_json(&bridge.http, &link.url, &link.on_behalf)
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
    let opened = Link {
        session: session.clone(),
        ..link.clone()
    };
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post_in_session(&bridge.http, &opened, &initialized)
        .await
        .map_err(|e| format!("Upstream {target:?}: {e}"))?;
    Ok(session)
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
    let resp = post_json(http, &call.url, &call.on_behalf)
        .header(VERSION_HEADER, LEGACY)
        .header(SESSION_HEADER, &call.session)
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

/// A 2025 client's call of an upstream of the stateless revision, made as a stateless client
/// through the upstream's endpoint. A complete answer is the answer; `input_required` turns
/// the answer into an event stream: each input request goes to the client as a request of
/// the upstream's (the gateway's tagged id), its answers (POSTed by the client, sent here by
/// the filter) make the retry, until the upstream completes.
async fn for_session(
    bridge: Bridge,
    link: Link,
    identity: Option<String>,
    request: Value,
) -> Response {
    let id = request["id"].clone();
    let first = match ask_stateless(&bridge.http, &link, &request).await {
        Ok(answer) => answer,
        Err(message) => {
            return json_response(&json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": UPSTREAM_ERROR, "message": message}}));
        }
    };
    if !first["result"]
        .get("resultType")
        .is_some_and(|t| t == "input_required")
    {
        return json_response(&for_2025(first));
    }
    let token = bridge.state.held.token();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Value)>(16);
    if let Ok(mut asking) = bridge.state.held.asking.lock() {
        if asking.len() >= MAX_HELD {
            return json_response(&json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": UPSTREAM_ERROR,
                "message": format!("Upstream {:?} needs input, and the gateway holds {MAX_HELD} calls already", link.upstream)}}));
        }
        asking.insert(
            token.clone(),
            Asking {
                answers: tx,
                identity,
                upstream: link.upstream.clone(),
            },
        );
    }
    let held = std::sync::Arc::clone(&bridge.state);
    let events = crate::stream::async_stream(move |emit| async move {
        let mut answer = first;
        let mut rounds = 0;
        let end = loop {
            let result = &answer["result"];
            if !result
                .get("resultType")
                .is_some_and(|t| t == "input_required")
            {
                break for_2025(answer);
            }
            rounds += 1;
            let empty = serde_json::Map::new();
            let asks = result["inputRequests"].as_object().unwrap_or(&empty);
            if rounds > 8 || asks.is_empty() {
                break json!({"jsonrpc": "2.0", "id": id, "error": {"code": UPSTREAM_ERROR,
                    "message": format!("Upstream {:?} kept asking for input", link.upstream)}});
            }
            for (key, ask) in asks {
                let question = json!({"jsonrpc": "2.0",
                    "id": switchboard_protocol::server_message::tag_id(
                        &link.upstream, &json!(format!("{QUESTION_PREFIX}{token}/{key}"))),
                    "method": ask["method"], "params": ask["params"]});
                let event = axum::response::sse::Event::default()
                    .event("message")
                    .data(question.to_string());
                if emit.send(event).await.is_err() {
                    break;
                }
            }
            let mut responses = serde_json::Map::new();
            while responses.len() < asks.len() {
                let got = tokio::select! {
                    g = tokio::time::timeout(HOLD, rx.recv()) => g.ok().flatten(),
                    () = emit.closed() => None,
                };
                let Some((key, value)) = got else { break };
                responses.insert(key, value);
            }
            if responses.len() < asks.len() {
                break json!({"jsonrpc": "2.0", "id": id, "error": {"code": UPSTREAM_ERROR,
                    "message": format!("The client did not answer upstream {:?}'s question", link.upstream)}});
            }
            let mut retry = request.clone();
            retry["params"]["inputResponses"] = Value::Object(responses);
            if let Some(state) = result.get("requestState") {
                retry["params"]["requestState"] = state.clone();
            }
            answer = match ask_stateless(&bridge.http, &link, &retry).await {
                Ok(a) => a,
                Err(message) => {
                    break json!({"jsonrpc": "2.0", "id": id,
                    "error": {"code": UPSTREAM_ERROR, "message": message}});
                }
            };
        };
        if let Ok(mut asking) = held.held.asking.lock() {
            asking.remove(&token);
        }
        let event = axum::response::sse::Event::default()
            .event("message")
            .data(end.to_string());
        let _ = emit.send(event).await;
    });
    axum::response::sse::Sse::new(events).into_response()
}

/// A 2025 client's answer to a question the bridge put to it.
fn answered(bridge: &Bridge, target: &str, identity: Option<&String>, message: &Value) -> Response {
    let question = message["id"].as_str().unwrap_or_default();
    let Some((token, key)) = question
        .strip_prefix(QUESTION_PREFIX)
        .and_then(|q| q.split_once('/'))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "This response answers no request the gateway relayed",
        );
    };
    let value = message
        .get("result")
        .cloned()
        .unwrap_or_else(|| json!({"action": "cancel"}));
    let sender = bridge.state.held.asking.lock().ok().and_then(|asking| {
        asking
            .get(token)
            .filter(|a| a.upstream == target && a.identity.as_ref() == identity)
            .map(|a| a.answers.clone())
    });
    match sender {
        Some(tx) if tx.try_send((key.to_string(), value)).is_ok() => {
            (StatusCode::ACCEPTED, "").into_response()
        }
        _ => error(
            StatusCode::NOT_FOUND,
            code::INVALID_REQUEST,
            "No question of that id is waiting (answered already, or it waited too long)",
        ),
    }
}

/// A request to the upstream's endpoint as a stateless client: the response.
async fn ask_stateless(
    http: &reqwest::Client,
    link: &Link,
    request: &Value,
) -> Result<Value, String> {
    let method = request["method"].as_str().unwrap_or_default();
    let mut req = post_json(http, &link.url, &link.on_behalf)
        .header(VERSION_HEADER, modern::VERSION)
        .header(switchboard_protocol::wire::METHOD_HEADER, method);
    if let Some(name) = modern::named_param(method).and_then(|f| request["params"][f].as_str()) {
        req = req.header(
            switchboard_protocol::wire::NAME_HEADER,
            modern::encode_header_value(name),
        );
    }
    let resp = req
        .body(request.to_string())
        .send()
        .await
        .map_err(|e| format!("Upstream {:?} could not be reached: {e}", link.upstream))?;
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("Upstream {:?}: {e}", link.upstream))?;
    switchboard_protocol::mcp::find_response(&content_type, &body, &request["id"])
        .map_err(|e| format!("Upstream {:?}: {e}", link.upstream))
}

/// A response of the stateless revision as a 2025 client reads it.
fn for_2025(mut response: Value) -> Value {
    if let Some(r) = response.get_mut("result").and_then(Value::as_object_mut) {
        for key in ["resultType", "ttlMs", "cacheScope"] {
            r.remove(key);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn asking(
        bridge: &Bridge,
        token: &str,
        identity: Option<&str>,
    ) -> tokio::sync::mpsc::Receiver<(String, Value)> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        bridge
            .state
            .held
            .asking
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                token.to_string(),
                Asking {
                    answers: tx,
                    identity: identity.map(str::to_string),
                    upstream: "mo".into(),
                },
            );
        rx
    }

    fn answer(token: &str) -> Value {
        json!({"jsonrpc": "2.0", "id": format!("{QUESTION_PREFIX}{token}/confirm"),
               "result": {"action": "accept", "content": {"ok": true}}})
    }

    #[test]
    fn a_kept_session_serves_its_key_until_forgotten() {
        let held = Held::default();
        assert_eq!(held.kept("k"), None);
        held.keep("k", "s1");
        assert_eq!(held.kept("k").as_deref(), Some("s1"));
        assert_eq!(held.kept("other"), None);
        // Only the kept session is forgotten (a stale 404 of an older one changes nothing).
        assert!(!held.forget("k", "s0"));
        assert!(held.forget("k", "s1"));
        assert_eq!(held.kept("k"), None);
    }

    #[tokio::test]
    async fn only_the_client_that_was_asked_answers() {
        let bridge = Bridge::new(Arc::new(crate::BridgeState::default()));
        let token = bridge.state.held.token();
        assert!(token.starts_with(HELD_PREFIX) && token.len() > HELD_PREFIX.len() + 30);
        assert_ne!(token, bridge.state.held.token(), "tokens are not reused");
        let mut rx = asking(&bridge, &token, Some("alice"));
        let alice = "alice".to_string();
        let eve = "eve".to_string();
        // Another client, another upstream, a made-up question: nothing reaches the call.
        let status = |r: Response| r.status();
        assert_eq!(
            status(answered(&bridge, "mo", Some(&eve), &answer(&token))),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(answered(&bridge, "py", Some(&alice), &answer(&token))),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(answered(
                &bridge,
                "mo",
                Some(&alice),
                &answer("bridge:guess")
            )),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(answered(
                &bridge,
                "mo",
                Some(&alice),
                &json!({"id": "not-ours", "result": {}})
            )),
            StatusCode::BAD_REQUEST
        );
        assert!(rx.try_recv().is_err());
        // The client that was asked: its answer reaches the waiting call.
        assert_eq!(
            status(answered(&bridge, "mo", Some(&alice), &answer(&token))),
            StatusCode::ACCEPTED
        );
        let (key, value) = rx.try_recv().unwrap_or_default();
        assert_eq!(key, "confirm");
        assert_eq!(value["action"], "accept");
    }
}
