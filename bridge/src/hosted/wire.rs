//! JSON-RPC between the bridge's clients and a stdio child, without I/O: what a line is, and
//! the ids and progress tokens the bridge gives requests so that answers from one child are
//! never mixed up between clients.

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
}

pub fn classify(m: &Value) -> Option<Kind> {
    let has_method = m.get("method").is_some_and(Value::is_string);
    let has_id = m.get("id").is_some_and(|i| !i.is_null());
    match (has_method, has_id) {
        (true, true) => Some(Kind::Request),
        (true, false) => Some(Kind::Notification),
        (false, true) if m.get("result").is_some() || m.get("error").is_some() => {
            Some(Kind::Response)
        }
        _ => None,
    }
}

/// What the bridge changed in a client's request, to undo in what comes back.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub client_id: Value,
    pub client_token: Option<Value>,
}

/// The child's id for the bridge's `n`th request: unique per child, whatever the clients use.
pub fn child_id(n: u64) -> Value {
    json!(n)
}

/// The progress token the child sees for the bridge's `n`th request.
pub fn child_token(n: u64) -> Value {
    json!(format!("sb-{n}"))
}

/// Rewrites a client request for the child (id and progress token); returns the originals.
pub fn to_child(request: &mut Value, n: u64) -> Sent {
    let client_id = std::mem::replace(&mut request["id"], child_id(n));
    let client_token = request
        .get_mut("params")
        .and_then(|p| p.get_mut("_meta"))
        .and_then(|m| m.get_mut("progressToken"))
        .map(|t| std::mem::replace(t, child_token(n)));
    Sent {
        client_id,
        client_token,
    }
}

/// The child's answer with the client's id back.
pub fn response_to_client(response: &mut Value, sent: &Sent) {
    response["id"] = sent.client_id.clone();
}

/// The bridge request a progress notification belongs to (`sb-<n>` → `n`).
pub fn progress_of(notification: &Value) -> Option<u64> {
    notification["params"]["progressToken"]
        .as_str()?
        .strip_prefix("sb-")?
        .parse()
        .ok()
}

/// A progress notification with the client's token back.
pub fn progress_to_client(notification: &mut Value, sent: &Sent) {
    if let Some(t) = &sent.client_token {
        notification["params"]["progressToken"] = t.clone();
    }
}

pub fn error_response(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_progress_tokens_round_trip() {
        let mut r = json!({"jsonrpc": "2.0", "id": "abc", "method": "tools/call", "params": {"name": "x", "_meta": {"progressToken": 7}}});
        let sent = to_child(&mut r, 41);
        assert_eq!(r["id"], 41);
        assert_eq!(r["params"]["_meta"]["progressToken"], "sb-41");
        let mut progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "sb-41", "progress": 1}});
        assert_eq!(progress_of(&progress), Some(41));
        progress_to_client(&mut progress, &sent);
        assert_eq!(progress["params"]["progressToken"], 7);
        let mut answer = json!({"jsonrpc": "2.0", "id": 41, "result": {}});
        response_to_client(&mut answer, &sent);
        assert_eq!(answer["id"], "abc");
    }

    #[test]
    fn lines_are_classified() {
        assert_eq!(
            classify(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})),
            Some(Kind::Request)
        );
        assert_eq!(
            classify(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})),
            Some(Kind::Notification)
        );
        assert_eq!(
            classify(&json!({"jsonrpc": "2.0", "id": 1, "result": {}})),
            Some(Kind::Response)
        );
        assert_eq!(classify(&json!({"jsonrpc": "2.0", "id": 1})), None);
        assert_eq!(classify(&json!("log line")), None);
    }
}
