//! JSON-RPC 2.0 envelopes as MCP uses them: classification of an incoming body and the error
//! bodies the gateway answers with.
//!
//! Parsing borrows from the body (`&RawValue` for `id` and `params`) so the hot path never
//! copies or re-serializes what it only forwards.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt::Write as _;

/// Standard JSON-RPC error codes.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
}

/// One JSON-RPC message received from a client, borrowed from the request body.
#[derive(Debug, Clone)]
pub enum Message<'a> {
    Request {
        id: &'a RawValue,
        method: Cow<'a, str>,
        params: Option<&'a RawValue>,
    },
    Notification {
        method: Cow<'a, str>,
        params: Option<&'a RawValue>,
    },
    /// A client's answer to a request the server sent (sampling, elicitation, roots).
    Response { id: &'a RawValue },
}

impl Message<'_> {
    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request { method, .. } | Message::Notification { method, .. } => Some(method),
            Message::Response { .. } => None,
        }
    }
}

/// Why a body is not an acceptable JSON-RPC message. Carries the id when one could be read, so
/// the error answer can be correlated by the client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub code: i64,
    pub message: String,
    pub id: Option<Box<RawValue>>,
}

impl Rejection {
    fn new(code: i64, message: impl Into<String>, id: Option<&RawValue>) -> Self {
        Rejection {
            code,
            message: message.into(),
            id: id.map(ToOwned::to_owned),
        }
    }

    /// The JSON-RPC error body answering this rejection.
    pub fn to_body(&self) -> String {
        error_body(self.id.as_deref(), self.code, &self.message)
    }
}

/// `id` is kept apart from `Option` so that an explicit `"id": null` is seen (and refused)
/// instead of being mistaken for a notification.
#[derive(Default)]
enum IdField<'a> {
    #[default]
    Absent,
    Present(&'a RawValue),
}

impl<'de: 'a, 'a> Deserialize<'de> for IdField<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(d).map(IdField::Present)
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    id: IdField<'a>,
    #[serde(default, borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    params: Option<&'a RawValue>,
    #[serde(default, borrow)]
    result: Option<&'a RawValue>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

/// Classifies one request body. Errors carry the JSON-RPC code the client must get:
/// `-32700` when the body is not JSON, `-32600` when it is JSON but not a valid message.
pub fn parse(body: &[u8]) -> Result<Message<'_>, Rejection> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        // Batches existed only in MCP 2025-03-26 and were removed in 2025-06-18; still tell a
        // well-formed batch from garbage so the code is right.
        return Err(match serde_json::from_slice::<Vec<&RawValue>>(body) {
            Ok(_) => Rejection::new(
                code::INVALID_REQUEST,
                "JSON-RPC batches are not supported (removed in MCP 2025-06-18); send one message per request",
                None,
            ),
            Err(e) => Rejection::new(code::PARSE_ERROR, format!("Parse error: {e}"), None),
        });
    }
    let env: Envelope<'_> = match serde_json::from_slice(body) {
        Ok(env) => env,
        Err(e) if e.is_data() => {
            // Valid JSON of the wrong shape (not an object, or a field of the wrong type).
            return Err(Rejection::new(
                code::INVALID_REQUEST,
                format!("Invalid Request: {e}"),
                None,
            ));
        }
        Err(e) => {
            return Err(Rejection::new(
                code::PARSE_ERROR,
                format!("Parse error: {e}"),
                None,
            ));
        }
    };
    let id = match env.id {
        IdField::Absent => None,
        IdField::Present(raw) => Some(raw),
    };
    if env.jsonrpc.as_deref() != Some("2.0") {
        return Err(Rejection::new(
            code::INVALID_REQUEST,
            "Invalid Request: \"jsonrpc\" must be \"2.0\"",
            id.filter(|raw| valid_id(raw)),
        ));
    }
    if let Some(raw) = id
        && !valid_id(raw)
    {
        return Err(Rejection::new(
            code::INVALID_REQUEST,
            "Invalid Request: \"id\" must be a string or an integer",
            None,
        ));
    }
    match (env.method, id) {
        (Some(method), Some(id)) => Ok(Message::Request {
            id,
            method,
            params: env.params,
        }),
        (Some(method), None) => Ok(Message::Notification {
            method,
            params: env.params,
        }),
        (None, Some(id)) if env.result.is_some() != env.error.is_some() => {
            Ok(Message::Response { id })
        }
        (None, id) => Err(Rejection::new(
            code::INVALID_REQUEST,
            "Invalid Request: a message needs \"method\" (request or notification) or exactly one of \"result\"/\"error\" with an \"id\" (response)",
            id,
        )),
    }
}

/// MCP ids are strings or integers; `null`, floats, objects and arrays are refused.
fn valid_id(raw: &RawValue) -> bool {
    let s = raw.get();
    s.starts_with('"') || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
}

/// A JSON-RPC error response. `id` is the client's raw id, kept byte for byte (numbers stay
/// numbers, strings stay strings); `None` gives `"id": null` as JSON-RPC requires when the id
/// could not be read.
pub fn error_body(id: Option<&RawValue>, code: i64, message: &str) -> String {
    let mut out = String::with_capacity(64 + message.len());
    out.push_str(r#"{"jsonrpc":"2.0","id":"#);
    out.push_str(id.map_or("null", RawValue::get));
    // Writing to a String cannot fail.
    let _ = write!(out, r#","error":{{"code":{code},"message":"#);
    out.push_str(&serde_json::Value::from(message).to_string());
    out.push_str("}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(body: &str) -> Rejection {
        match parse(body.as_bytes()) {
            Err(r) => r,
            Ok(m) => panic!("expected a rejection for {body}, got {m:?}"),
        }
    }

    #[test]
    fn request_keeps_raw_id_and_params() {
        let m =
            parse(br#"{"jsonrpc":"2.0","id":"a-1","method":"tools/call","params":{"name":"x"}}"#)
                .unwrap();
        match m {
            Message::Request { id, method, params } => {
                assert_eq!(id.get(), r#""a-1""#);
                assert_eq!(method, "tools/call");
                assert_eq!(params.unwrap().get(), r#"{"name":"x"}"#);
            }
            other => panic!("{other:?}"),
        }
        let m = parse(br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).unwrap();
        assert!(matches!(m, Message::Request { id, .. } if id.get() == "7"));
    }

    #[test]
    fn notification_and_response() {
        let m = parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(m.method(), Some("notifications/initialized"));
        assert!(matches!(m, Message::Notification { .. }));
        let m = parse(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#).unwrap();
        assert!(matches!(m, Message::Response { .. }));
    }

    #[test]
    fn escaped_method_is_decoded() {
        let m = parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools\/list"}"#).unwrap();
        assert_eq!(m.method(), Some("tools/list"));
    }

    #[test]
    fn malformed_json_is_a_parse_error() {
        for body in [
            "{",
            "not json",
            "",
            r#"{"jsonrpc":"2.0","id":1,"method":"x""#,
            "[1,",
        ] {
            assert_eq!(rejection(body).code, code::PARSE_ERROR, "{body:?}");
        }
    }

    #[test]
    fn wrong_shapes_are_invalid_requests() {
        for body in [
            "42",
            r#""text""#,
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
        ] {
            assert_eq!(rejection(body).code, code::INVALID_REQUEST, "{body}");
        }
    }

    #[test]
    fn invalid_request_echoes_a_readable_id() {
        let r = rejection(r#"{"jsonrpc":"1.0","id":"x","method":"ping"}"#);
        assert_eq!(r.id.as_deref().map(RawValue::get), Some(r#""x""#));
        let body: serde_json::Value = serde_json::from_str(&r.to_body()).unwrap();
        assert_eq!(body["id"], "x");
        assert_eq!(body["error"]["code"], code::INVALID_REQUEST);
    }

    #[test]
    fn error_body_is_valid_json_with_escaped_message() {
        let id = RawValue::from_string("12".into()).unwrap();
        let body = error_body(Some(&id), code::METHOD_NOT_FOUND, "no \"such\" method\n");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["id"], 12);
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["error"]["message"], "no \"such\" method\n");
        let v: serde_json::Value =
            serde_json::from_str(&error_body(None, code::PARSE_ERROR, "bad")).unwrap();
        assert!(v["id"].is_null());
    }
}
