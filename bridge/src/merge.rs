//! Pure rules of the merged stream: how one upstream's event reads in the merged stream, and
//! the event ids that let a client resume every upstream at once.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use switchboard_protocol::server_message;

/// The message of one upstream event as the client sees it: `resources/updated` names the
/// prefixed URI, and a server request gets an id that says which upstream asked (the same
/// tagging as in routed answers, so the client's answer is routed back).
pub fn rewrite(data: &str, upstream: &str, uri_prefix: Option<&str>) -> Option<String> {
    let mut message: Value = serde_json::from_str(data).ok()?;
    server_message::for_client(&mut message, upstream, uri_prefix, true);
    Some(message.to_string())
}

/// Whether a message says a list changed (`notifications/tools/list_changed`…).
pub fn is_list_changed(data: &str) -> bool {
    serde_json::from_str::<Value>(data).is_ok_and(|m| {
        m["method"]
            .as_str()
            .is_some_and(|method| method.ends_with("/list_changed"))
    })
}

/// Every upstream's last event id, as one opaque event id.
pub fn encode_position(position: &Map<String, Value>) -> String {
    URL_SAFE_NO_PAD.encode(Value::Object(position.clone()).to_string())
}

/// The positions in a client's `Last-Event-ID` (empty when it is not one of ours).
pub fn decode_position(last_event_id: &str) -> Map<String, Value> {
    URL_SAFE_NO_PAD
        .decode(last_event_id.trim())
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resource_updates_name_the_prefixed_uri() {
        let out = rewrite(r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///a"}}"#, "fs", Some("fs")).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap()["params"]["uri"],
            "fs+file:///a"
        );
        let out = rewrite(
            r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
            "fs",
            Some("fs"),
        )
        .unwrap();
        assert_eq!(
            out,
            r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#
        );
    }

    #[test]
    fn server_requests_are_tagged() {
        let out = rewrite(
            r#"{"jsonrpc":"2.0","id":3,"method":"roots/list"}"#,
            "fs",
            None,
        )
        .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap()["id"],
            "sb:fs:3"
        );
        assert!(rewrite("not json", "fs", None).is_none());
    }

    #[test]
    fn positions_round_trip_and_garbage_is_empty() {
        let mut m = Map::new();
        m.insert("a".into(), json!("17"));
        m.insert("b".into(), json!("x/9"));
        assert_eq!(decode_position(&encode_position(&m)), m);
        assert!(decode_position("not ours").is_empty());
        assert!(decode_position("").is_empty());
    }
}
