//! What one MCP request was, for the audit log and the metrics: its method, the tool, prompt
//! or resource it named, the upstream it went to, and the class of its outcome.

use crate::jsonrpc::code;
use crate::wire::{ACCESS_DENIED, SESSION_NOT_FOUND, UPSTREAM_ERROR, UPSTREAM_TIMEOUT};

/// Filled by the exchange as it learns it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit {
    pub method: String,
    /// The prefixed tool or prompt name, or resource URI.
    pub name: String,
    /// Where it was routed; `*` for a fan-out to the session's upstreams.
    pub upstream: String,
    /// A `tools/call`'s metric series: the tool's full name once the gateway has listed it,
    /// else [`crate::exchange::UNKNOWN_TOOL`], so a client cannot make series up.
    pub tool_series: String,
}

/// The outcome classes of the audit log and the error metrics.
pub const CLASSES: [&str; 5] = [
    "client",
    "gateway",
    "upstream_connect",
    "upstream_timeout",
    "upstream_error",
];

/// The class of an outcome: `None` for success. `status` is the HTTP status the client gets,
/// `rpc_code` the JSON-RPC error code in it (when the gateway read it), `details` Envoy's
/// `response.code_details` (`via_upstream` when the upstream answered).
pub fn class(status: u16, rpc_code: Option<i64>, details: Option<&str>) -> Option<&'static str> {
    if let Some(c) = rpc_code {
        return Some(match c {
            UPSTREAM_TIMEOUT => "upstream_timeout",
            UPSTREAM_ERROR => match details {
                // The gateway's own answer about an upstream it could not reach.
                Some(d) if d != "via_upstream" && !d.is_empty() => "upstream_connect",
                _ => "upstream_error",
            },
            ACCESS_DENIED | SESSION_NOT_FOUND => "client",
            code::PARSE_ERROR
            | code::INVALID_REQUEST
            | code::METHOD_NOT_FOUND
            | code::INVALID_PARAMS => "client",
            code::INTERNAL_ERROR => "gateway",
            // Any other error code came from the upstream itself.
            _ => "upstream_error",
        });
    }
    let from_upstream = details.is_none_or(|d| d == "via_upstream");
    match status {
        200..=399 => None,
        400..=499 if !from_upstream || status != 404 => Some("client"),
        _ if !from_upstream => Some(match details {
            Some(d) if d.contains("timeout") => "upstream_timeout",
            Some(d) if d.contains("connect") || d.contains("reset") || d.contains("no_healthy") => {
                "upstream_connect"
            }
            _ => "gateway",
        }),
        _ => Some("upstream_error"),
    }
}

/// The JSON-RPC error code in a gateway answer's body, if it is one.
pub fn error_code(body: &[u8]) -> Option<i64> {
    if !body.windows(7).any(|w| w == b"\"error\"") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["error"]["code"].as_i64()
}

/// A session id as the audit log shows it: a short digest, never the token itself.
pub fn session_digest(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_classified() {
        assert_eq!(class(200, None, Some("via_upstream")), None);
        assert_eq!(class(200, Some(ACCESS_DENIED), None), Some("client"));
        assert_eq!(class(401, None, None), Some("client"));
        assert_eq!(
            class(200, Some(UPSTREAM_TIMEOUT), None),
            Some("upstream_timeout")
        );
        assert_eq!(
            class(
                200,
                Some(UPSTREAM_ERROR),
                Some("upstream_reset_before_response_started{connection_failure}")
            ),
            Some("upstream_connect")
        );
        assert_eq!(
            class(200, Some(-32099), Some("via_upstream")),
            Some("upstream_error")
        );
        assert_eq!(
            class(500, None, Some("via_upstream")),
            Some("upstream_error")
        );
        assert_eq!(
            class(504, None, Some("upstream_response_timeout")),
            Some("upstream_timeout")
        );
        assert_eq!(
            class(200, Some(code::INTERNAL_ERROR), None),
            Some("gateway")
        );
        assert_eq!(
            error_code(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32004,"message":"x"}}"#),
            Some(-32004)
        );
        assert_eq!(error_code(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#), None);
        assert_eq!(session_digest("sb1.abc").len(), 16);
    }
}
