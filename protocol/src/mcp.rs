//! MCP semantics the gateway needs: protocol versions, reading an upstream's answer (JSON or
//! SSE), and merging `initialize` results into the gateway's own.

use crate::session::caps;
use crate::sse;
use serde_json::{Map, Value, json};

/// Newest first. The gateway answers with the client's version when it is here, else with
/// the newest, as the specification's version negotiation asks.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

pub fn negotiate(client_version: &str) -> &'static str {
    SUPPORTED_VERSIONS
        .iter()
        .find(|v| **v == client_version)
        .copied()
        .unwrap_or(SUPPORTED_VERSIONS[0])
}

/// Whether an answer's `content-type` is an SSE stream (parameters such as `charset` aside).
fn is_event_stream(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// A JSON-RPC response read without building its result: lists of hundreds of items pass
/// through the gateway as text, only their names are looked at.
#[derive(serde::Deserialize)]
struct RawResponse<'a> {
    #[serde(borrow, default)]
    id: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    error: Option<Value>,
}

/// Why an upstream's answer holds no response to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("its event stream ended without a response")]
    StreamEnded,
    #[error("its answer is not JSON")]
    NotJson,
    #[error("its answer is not a JSON-RPC response")]
    NotResponse,
}

/// What [`find_result_raw`] found: the result as JSON text, or the error object.
pub type RawOutcome = Result<Box<serde_json::value::RawValue>, Value>;

/// [`find_response`] that keeps the result as text.
pub fn find_result_raw(
    content_type: &str,
    body: &[u8],
    id: &Value,
) -> Result<RawOutcome, ReadError> {
    let pick = |r: RawResponse<'_>| -> Option<RawOutcome> {
        match (r.result, r.error) {
            (_, Some(e)) => Some(Err(e)),
            (Some(res), None) => Some(Ok(res.to_owned())),
            (None, None) => None,
        }
    };
    if is_event_stream(content_type) {
        for event in sse::parse(body) {
            let Ok(r) = serde_json::from_str::<RawResponse<'_>>(&event.data) else {
                continue;
            };
            let same_id =
                r.id.and_then(|i| serde_json::from_str::<Value>(i.get()).ok())
                    .as_ref()
                    == Some(id);
            if same_id && let Some(found) = pick(r) {
                return Ok(found);
            }
        }
        return Err(ReadError::StreamEnded);
    }
    let r: RawResponse<'_> = serde_json::from_slice(body).map_err(|_| ReadError::NotJson)?;
    pick(r).ok_or(ReadError::NotResponse)
}

/// Finds the JSON-RPC response with `id` in an upstream's answer to one request: a JSON body,
/// or an SSE stream that may carry notifications and server requests before it.
pub fn find_response(content_type: &str, body: &[u8], id: &Value) -> Result<Value, ReadError> {
    if is_event_stream(content_type) {
        for event in sse::parse(body) {
            let Ok(v) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            if v.get("id") == Some(id) && (v.get("result").is_some() || v.get("error").is_some()) {
                return Ok(v);
            }
        }
        return Err(ReadError::StreamEnded);
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| ReadError::NotJson)?;
    if v.get("result").is_some() || v.get("error").is_some() {
        Ok(v)
    } else {
        Err(ReadError::NotResponse)
    }
}

/// The server capabilities the gateway relays, each with its [`caps`] bit, in the order
/// merged answers list them.
pub const CAPABILITIES: [(&str, u8); 5] = [
    ("completions", caps::COMPLETIONS),
    ("logging", caps::LOGGING),
    ("prompts", caps::PROMPTS),
    ("resources", caps::RESOURCES),
    ("tools", caps::TOOLS),
];

/// The [`caps`] bits an upstream's `initialize` result advertises.
pub fn capability_bits(result: &Value) -> u8 {
    let c = &result["capabilities"];
    let mut bits = 0;
    for (key, bit) in CAPABILITIES {
        if c.get(key).is_some_and(|v| !v.is_null()) {
            bits |= bit;
        }
    }
    if c["resources"]["subscribe"] == json!(true) {
        bits |= caps::RESOURCE_SUBSCRIBE;
    }
    bits
}

/// One upstream that answered `initialize`.
#[derive(Debug, Clone)]
pub struct Joined<'a> {
    pub name: &'a str,
    pub result: &'a Value,
}

/// The gateway's `initialize` result: its own `serverInfo`, the negotiated version, and only
/// the capabilities it really relays. `listChanged` and resource subscriptions reach the
/// client only through the merged GET stream, so they are advertised only with `get_stream`
/// (and when an upstream offers them).
pub fn merged_initialize(
    version: &str,
    server_name: &str,
    server_version: &str,
    joined: &[Joined<'_>],
    get_stream: bool,
) -> Value {
    let bits = joined
        .iter()
        .fold(0, |acc, j| acc | capability_bits(j.result));
    let any = |key: &str, flag: &str| {
        joined
            .iter()
            .any(|j| j.result["capabilities"][key][flag] == json!(true))
    };
    let mut capabilities = Map::new();
    for (key, bit) in CAPABILITIES {
        if bits & bit == 0 {
            continue;
        }
        let mut cap = Map::new();
        if get_stream && matches!(key, "prompts" | "resources" | "tools") && any(key, "listChanged")
        {
            cap.insert("listChanged".into(), json!(true));
        }
        if get_stream && key == "resources" && any(key, "subscribe") {
            cap.insert("subscribe".into(), json!(true));
        }
        capabilities.insert(key.into(), Value::Object(cap));
    }
    let instructions: Vec<String> = joined
        .iter()
        .filter_map(|j| {
            j.result["instructions"]
                .as_str()
                .filter(|s| !s.trim().is_empty())
                .map(|s| format!("## {}\n\n{}", j.name, s.trim()))
        })
        .collect();
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": capabilities,
        "serverInfo": {"name": server_name, "version": server_version},
    });
    if !instructions.is_empty() {
        result["instructions"] = Value::String(instructions.join("\n\n"));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_the_clients_version() {
        assert_eq!(negotiate("2025-03-26"), "2025-03-26");
        assert_eq!(negotiate("2099-01-01"), "2025-11-25");
        assert_eq!(negotiate(""), "2025-11-25");
    }

    #[test]
    fn finds_the_response_in_sse_after_notifications() {
        let body = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"x\",\"result\":{\"ok\":true}}\n\n";
        let v = find_response("text/event-stream", body, &json!("x")).unwrap();
        assert_eq!(v["result"]["ok"], true);
        assert!(find_response("text/event-stream; charset=utf-8", body, &json!(1)).is_err());
        let v = find_response(
            "application/json",
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"m"}}"#,
            &json!(1),
        )
        .unwrap();
        assert_eq!(v["error"]["code"], -1);
        assert!(find_response("application/json", b"<html>", &json!(1)).is_err());
    }

    #[test]
    fn merge_advertises_only_what_is_relayed() {
        let a = json!({"capabilities": {"tools": {"listChanged": true}, "experimental": {"x": {}}}, "instructions": "Use a."});
        let b = json!({"capabilities": {"prompts": {}, "resources": {"subscribe": true, "listChanged": true}, "logging": {}}});
        let joined = [
            Joined {
                name: "a",
                result: &a,
            },
            Joined {
                name: "b",
                result: &b,
            },
        ];
        let m = merged_initialize("2025-06-18", "switchboard", "0.1.0", &joined, false);
        assert_eq!(m["protocolVersion"], "2025-06-18");
        assert_eq!(m["serverInfo"]["name"], "switchboard");
        assert_eq!(
            m["capabilities"],
            json!({"tools": {}, "prompts": {}, "resources": {}, "logging": {}})
        );
        assert_eq!(m["instructions"], "## a\n\nUse a.");
        assert_eq!(
            capability_bits(&b),
            caps::PROMPTS | caps::RESOURCES | caps::LOGGING | caps::RESOURCE_SUBSCRIBE
        );
        // With the merged GET stream, what travels on it is advertised too.
        let m = merged_initialize("2025-06-18", "switchboard", "0.1.0", &joined, true);
        assert_eq!(
            m["capabilities"],
            json!({"tools": {"listChanged": true}, "prompts": {}, "resources": {"subscribe": true, "listChanged": true}, "logging": {}})
        );
    }
}
