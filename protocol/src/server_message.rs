//! What a message an upstream sends to the client (inside an SSE answer or on its GET stream)
//! becomes on its way through the gateway. Shared by the filter (POST answers) and the bridge
//! (the merged GET stream), so both rewrite the same way.

use crate::naming;
use serde_json::Value;
use serde_json::value::RawValue;

const TAG: &str = "sb:";

/// `sb:<upstream>:<original id as JSON>`: a server request's id as the client sees it.
pub fn tag_id(upstream: &str, id: &Value) -> String {
    format!("{TAG}{upstream}:{id}")
}

/// The upstream and original id of a tagged id.
pub fn untag_id(id: &RawValue) -> Option<(&str, Value)> {
    let Ok(Value::String(s)) = serde_json::from_str::<Value>(id.get()) else {
        return None;
    };
    let rest = s.strip_prefix(TAG)?;
    let (upstream, original) = rest.split_once(':')?;
    let original: Value = serde_json::from_str(original).ok()?;
    let upstream_start = id.get().find(upstream)?;
    // Borrow the name from the raw id, which outlives this call.
    Some((
        &id.get()[upstream_start..upstream_start + upstream.len()],
        original,
    ))
}

/// Rewrites one upstream message for the client and says whether anything changed:
/// `notifications/resources/updated` names the prefixed URI (when URIs are prefixed), and a
/// server request (`sampling/createMessage`, `elicitation/create`, `roots/list`…) gets a
/// tagged id, so the client's answer can be routed back to the upstream that asked.
pub fn for_client(
    message: &mut Value,
    upstream: &str,
    uri_prefix: Option<&str>,
    tag_requests: bool,
) -> bool {
    let mut changed = false;
    if message["method"] == "notifications/resources/updated"
        && let (Some(prefix), Some(uri)) = (uri_prefix, message["params"]["uri"].as_str())
    {
        message["params"]["uri"] = Value::String(naming::prefix_uri(prefix, uri));
        changed = true;
    }
    let is_request = message.get("method").is_some_and(Value::is_string)
        && message.get("id").is_some_and(|i| !i.is_null());
    if tag_requests && is_request {
        message["id"] = Value::String(tag_id(upstream, &message["id"]));
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_are_tagged_and_untag_to_the_original_id() {
        for id in [json!(7), json!("abc"), json!("sb:x:1")] {
            let mut m = json!({"jsonrpc": "2.0", "id": id, "method": "roots/list"});
            assert!(for_client(&mut m, "fs", None, true));
            let raw = RawValue::from_string(m["id"].to_string()).unwrap();
            assert_eq!(untag_id(&raw), Some(("fs", id)));
        }
    }

    #[test]
    fn resource_updates_name_the_prefixed_uri_and_other_messages_stay() {
        let mut m = json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": "file:///a"}});
        assert!(for_client(&mut m, "fs", Some("fs"), false));
        assert_eq!(m["params"]["uri"], "fs+file:///a");
        let mut progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}});
        let before = progress.clone();
        assert!(!for_client(&mut progress, "fs", Some("fs"), true));
        assert_eq!(progress, before);
        let mut request = json!({"jsonrpc": "2.0", "id": 1, "method": "roots/list"});
        assert!(
            !for_client(&mut request, "fs", Some("fs"), false),
            "untagged when there is one upstream"
        );
    }
}
