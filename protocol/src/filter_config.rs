//! The filter-config contract: the one set of types that the control plane serializes into the
//! wasm filter's `PluginConfig.configuration` and the filter parses in `on_configure`, so the
//! two can never drift apart.

use serde::{Deserialize, Serialize};

/// Request header the filter sets to pick an upstream's route. Envoy's route table matches on
/// it; the filter always overwrites it, so a client cannot choose a route by sending it.
pub const ROUTE_HEADER: &str = "x-switchboard-upstream";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The aggregated MCP endpoint the filter acts on (`/mcp`). Other paths pass untouched.
    pub mcp_path: String,
    /// Largest request body the filter buffers; larger ones get HTTP 413.
    pub max_request_bytes: u64,
    /// Upstreams in configuration order.
    pub upstreams: Vec<Upstream>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// The upstream's name from the gateway YAML; also the value of [`ROUTE_HEADER`].
    pub name: String,
    /// The Envoy cluster that reaches it.
    pub cluster: String,
    /// `:authority` for calls the filter makes itself (`dispatch_http_call`).
    pub authority: String,
    /// The upstream's MCP path (`/mcp`).
    pub path: String,
    pub timeout_ms: u64,
}

impl FilterConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn to_json(&self) -> String {
        // Plain strings and integers only: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown_fields() {
        let c = FilterConfig {
            mcp_path: "/mcp".into(),
            max_request_bytes: 1 << 20,
            upstreams: vec![Upstream {
                name: "everything".into(),
                cluster: "upstream-everything".into(),
                authority: "127.0.0.1:3001".into(),
                path: "/mcp".into(),
                timeout_ms: 30_000,
            }],
        };
        assert_eq!(FilterConfig::from_json(c.to_json().as_bytes()).unwrap(), c);
        let mut v: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        v["surprise"] = true.into();
        assert!(FilterConfig::from_json(v.to_string().as_bytes()).is_err());
    }
}
