//! The exchange driven as the shells drive it: helpers here, tests by concern beside.

mod access;
mod admission;
mod authorization;
mod eras;
mod failure;
mod lifecycle;
mod lists;
mod route;
mod stateless;
mod stream;

use super::*;

use crate::filter_config::example;

const CLOCK_S: u64 = 1_700_000_000;

fn clock() -> Clock {
    Clock {
        now_s: CLOCK_S,
        now_ms: CLOCK_S * 1000,
        seed: b"test-seed".to_vec(),
    }
}

fn post(session: Option<&str>) -> RequestHead {
    RequestHead {
        method: "POST".into(),
        path: "/mcp".into(),
        session_id: session.map(str::to_string),
        protocol_version: None,
        ..Default::default()
    }
}

fn answer(session_id: Option<&str>, body: Value) -> Result<CalloutAnswer, Failure> {
    Ok(CalloutAnswer {
        status: 200,
        content_type: "application/json".into(),
        session_id: session_id.map(str::to_string),
        body: body.to_string().into_bytes(),
    })
}

fn sse_answer(body: Value) -> Result<CalloutAnswer, Failure> {
    Ok(CalloutAnswer {
        status: 200,
        content_type: "text/event-stream".into(),
        session_id: Some("sse-sid".into()),
        body: format!("event: message\ndata: {body}\n\n").into_bytes(),
    })
}

fn reply(step: Step) -> (u16, Value, Vec<(String, String)>) {
    match step {
        Step::Respond(r) => (
            r.status,
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
            r.headers,
        ),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn callouts(step: Step) -> Vec<Callout> {
    match step {
        Step::AwaitCallouts(c) => c,
        other => panic!("expected callouts, got {other:?}"),
    }
}

/// Runs `body` through a fresh exchange, answering callouts with `answers` in order.
fn run(
    gw: &Gateway,
    session: Option<&str>,
    body: &str,
    answers: Vec<Result<CalloutAnswer, Failure>>,
) -> (Step, Vec<Callout>) {
    run_head(gw, &post(session), body, answers)
}

/// [`run`] with the request head given.
fn run_head(
    gw: &Gateway,
    head: &RequestHead,
    body: &str,
    answers: Vec<Result<CalloutAnswer, Failure>>,
) -> (Step, Vec<Callout>) {
    let mut ex = Exchange::new();
    assert_eq!(ex.on_request_headers(gw, head, CLOCK_S), Step::AwaitBody);
    let step = ex.on_request_body(gw, body.as_bytes(), &clock());
    let Step::AwaitCallouts(calls) = step else {
        return (step, vec![]);
    };
    let mut last = None;
    for (i, a) in answers.into_iter().enumerate() {
        last = ex.on_callout_response(gw, i, a, &clock());
    }
    (last.expect("every callout answered"), calls)
}

fn init_result(caps: Value) -> Value {
    json!({"protocolVersion": "2025-06-18", "capabilities": caps, "serverInfo": {"name": "up", "version": "1"}})
}

/// A session with both upstreams of `example(2)`.
fn session_token(gw: &Gateway) -> String {
    let (step, _) = run(
        gw,
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        vec![
            answer(
                Some("sid-0"),
                json!({"jsonrpc":"2.0","id":1,"result": init_result(json!({"tools":{}, "resources": {}}))}),
            ),
            sse_answer(
                json!({"jsonrpc":"2.0","id":1,"result": init_result(json!({"tools":{}, "prompts": {}}))}),
            ),
        ],
    );
    session_header(step)
}

/// A session of a one-upstream gateway whose upstream has `caps`, negotiated at 2025-06-18.
fn single_session(gw: &Gateway, caps: Value) -> String {
    let (step, _) = run(
        gw,
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#,
        vec![answer(
            Some("s"),
            json!({"jsonrpc":"2.0","id":1,"result": init_result(caps)}),
        )],
    );
    session_header(step)
}

/// The `Mcp-Session-Id` the gateway answered with.
fn session_header(step: Step) -> String {
    reply(step)
        .2
        .into_iter()
        .find(|(k, _)| k == SESSION_HEADER)
        .map(|(_, v)| v)
        .expect("a session header")
}

/// Runs `body` as `who`, with the client's `pass` headers, answering callouts in order.
fn run_as(
    gw: &Gateway,
    who: &str,
    pass: &[(&str, &str)],
    session: Option<&str>,
    body: &str,
    answers: Vec<Result<CalloutAnswer, Failure>>,
) -> (Step, Vec<Callout>) {
    let head = RequestHead {
        identity: Some(crate::access::Identity {
            client: who.into(),
            claims: None,
            ..Default::default()
        }),
        pass_through: pass
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..post(session)
    };
    run_head(gw, &head, body, answers)
}

/// `example(2)` with clients `ci` and `eve`, per-upstream endpoints under `/upstreams`,
/// and a rule that lets both use everything but the tool `u0__secret` and the
/// resources under `u0+file:///secret/`.
fn guarded() -> Gateway {
    use crate::access::{AccessConfig, Client, Lists, Rule};
    let mut config = example(2);
    config.upstream_path = "/upstreams".into();
    config.get_stream = true;
    let client = |name: &str| Client {
        name: name.into(),
        ..Default::default()
    };
    config.access = Some(AccessConfig {
        clients: vec![client("ci"), client("eve")],
        rules: vec![Rule {
            clients: vec!["*".into()],
            allow: Lists {
                upstreams: vec!["*".into()],
                ..Default::default()
            },
            deny: Lists {
                tools: vec!["u0__secret".into(), format!("u0__{}", "L".repeat(70))],
                resources: vec!["u0+file:///secret/*".into()],
                ..Default::default()
            },
            ..Default::default()
        }],
        bridge_key_sha256: None,
        oauth: None,
    });
    Gateway::new(config)
}

/// A request of `who` at `path`.
fn head_at(who: &str, method: &str, path: &str, session: Option<&str>) -> RequestHead {
    RequestHead {
        method: method.into(),
        path: path.into(),
        session_id: session.map(str::to_string),
        identity: Some(crate::access::Identity {
            client: who.into(),
            claims: None,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn call_at(gw: &Gateway, who: &str, path: &str, token: &str, body: &str) -> Step {
    run_head(gw, &head_at(who, "POST", path, Some(token)), body, vec![]).0
}

/// `ci`'s session on `/upstreams/u0/mcp`, its upstream session `own-0`.
fn own_session(gw: &Gateway) -> (Step, String) {
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;
    let mine = json!({"protocolVersion": "2025-03-26", "capabilities": {"tools": {"listChanged": true}},
        "serverInfo": {"name": "u0-itself", "version": "7"}});
    let (step, calls) = run_head(
        gw,
        &head_at("ci", "POST", "/upstreams/u0/mcp", None),
        init,
        vec![answer(
            Some("own-0"),
            json!({"jsonrpc":"2.0","id":1,"result": mine}),
        )],
    );
    assert_eq!(calls.len(), 1, "only its own upstream");
    assert_eq!(calls[0].cluster, "upstream-u0");
    let token = session_header(step.clone());
    (step, token)
}

fn list_page(
    gw: &Gateway,
    token: &str,
    cursor: Option<&str>,
    answers: Vec<Result<CalloutAnswer, Failure>>,
) -> (Value, Vec<Callout>) {
    let body = match cursor {
        Some(c) => {
            json!({"jsonrpc": "2.0", "id": 20, "method": "tools/list", "params": {"cursor": c}})
        }
        None => json!({"jsonrpc": "2.0", "id": 20, "method": "tools/list"}),
    };
    let (step, calls) = run(gw, Some(token), &body.to_string(), answers);
    (reply(step).1, calls)
}

/// A cache in memory, counting bumps like Envoy's shared data would hold them.
#[derive(Default, Clone)]
struct MemoryCache(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>>);

impl ListCache for MemoryCache {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.0.lock().unwrap().get(key).cloned()
    }
    fn put(&self, key: &str, value: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .insert(key.to_string(), value.to_vec());
    }
    fn generation(&self, upstream: &str) -> u64 {
        self.get(&format!("gen/{upstream}"))
            .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
            .unwrap_or(0)
    }
    fn bump(&self, upstream: &str) {
        let next = self.generation(upstream) + 1;
        self.put(&format!("gen/{upstream}"), next.to_string().as_bytes());
    }
}
