//! A gateway of two upstreams and a real session on it, for the fuzz targets that drive the
//! exchange.

use switchboard_protocol::exchange::{Clock, Exchange, Gateway, RequestHead, Step};
use switchboard_protocol::filter_config::FilterConfig;
use switchboard_protocol::session::{self, Session, SessionKey, UpstreamSession};

pub const NOW: u64 = 1_700_000_000;

pub fn gateway() -> Gateway {
    let upstream = |n: &str| {
        serde_json::json!({"name": n, "prefix": n, "uri_prefix": n, "cluster": format!("upstream-{n}"),
            "authority": "127.0.0.1:1", "path": "/mcp", "timeout_ms": 1000, "headers": []})
    };
    let config = serde_json::json!({
        "mcp_path": "/mcp", "max_request_bytes": 1048576, "server_name": "switchboard",
        "server_version": "0", "session_key": "fuzzing key, fixed for the run",
        "session_max_age_s": 3600, "separator": "__", "fan_out": "fail_open",
        "upstreams": [upstream("a"), upstream("b")]
    });
    let config = FilterConfig::from_json(config.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("the fuzz gateway's configuration: {e}"));
    Gateway::new(config)
}

/// A session with both upstreams, sealed with the gateway's key.
pub fn session(gw: &Gateway) -> String {
    let key = SessionKey::derive(gw.config.session_key.as_bytes());
    let up = |n: &str| UpstreamSession {
        name: n.into(),
        session_id: Some(format!("sid-{n}")),
        protocol_version: "2025-06-18".into(),
        capabilities: u8::MAX,
    };
    let s = Session {
        protocol_version: "2025-06-18".into(),
        issued_at: NOW,
        upstreams: vec![up("a"), up("b")],
        identity: None,
        client: None,
    };
    session::seal(&key, &s, b"fuzz seed")
}

pub fn clock() -> Clock {
    Clock {
        now_s: NOW,
        now_ms: NOW * 1000,
        seed: b"fuzz".to_vec(),
    }
}

/// Runs one POST through a fresh exchange; the step it ends in.
pub fn post(gw: &Gateway, token: Option<&str>, body: &[u8]) -> Step {
    let mut ex = Exchange::new();
    let head = RequestHead {
        method: "POST".into(),
        path: "/mcp".into(),
        session_id: token.map(str::to_string),
        ..Default::default()
    };
    match ex.on_request_headers(gw, &head, NOW) {
        Step::AwaitBody => ex.on_request_body(gw, body, &clock()),
        other => other,
    }
}

pub fn list_with_cursor(gw: &Gateway, token: &str, cursor: &str) {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"cursor": cursor}});
    let step = post(gw, Some(token), body.to_string().as_bytes());
    assert!(
        matches!(step, Step::Respond(_) | Step::AwaitCallouts(_)),
        "a list is answered or fanned out: {step:?}"
    );
}
