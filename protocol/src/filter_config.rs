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
    /// `serverInfo` of the gateway.
    pub server_name: String,
    pub server_version: String,
    /// The secret that seals session tokens; every replica must have the same.
    pub session_key: String,
    /// Seconds a session token stays valid after `initialize` (0: forever).
    pub session_max_age_s: u64,
    /// Between prefix and name: `github__create_issue`.
    pub separator: String,
    pub fan_out: FanOut,
    #[serde(default)]
    pub prefix_mode: PrefixMode,
    /// The bridge serves the merged server-to-client stream: pass `GET` on to it.
    #[serde(default)]
    pub get_stream: bool,
    /// Upstreams in configuration order.
    pub upstreams: Vec<Upstream>,
    /// Client authentication and access rules; `None`: every request is let in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<crate::access::AccessConfig>,
    /// Client headers that carry credentials: removed before anything goes upstream
    /// (pass-through headers are set from them first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_headers: Vec<String>,
    /// Base path of the per-upstream endpoints (`/upstreams`), where pass-through applies too.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub upstream_path: String,
}

/// Whether names get their upstream's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefixMode {
    #[default]
    Always,
    /// No prefix while there is only one upstream.
    WhenNeeded,
}

/// What a fan-out does when an upstream fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FanOut {
    /// Leave the failed upstream out and log it.
    #[default]
    FailOpen,
    /// Fail the whole request, naming the upstream.
    FailClosed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// The upstream's name from the gateway YAML; also the value of [`ROUTE_HEADER`].
    pub name: String,
    /// Prefix of its tool and prompt names.
    pub prefix: String,
    /// Prefix of its resource URIs (the URI-scheme form of `prefix`).
    pub uri_prefix: String,
    /// The Envoy cluster that reaches it.
    pub cluster: String,
    /// `:authority` for calls the filter makes itself (`dispatch_http_call`).
    pub authority: String,
    /// The upstream's MCP path (`/mcp`).
    pub path: String,
    pub timeout_ms: u64,
    /// Configured headers, sent on the filter's own calls (routed calls get them from the
    /// route).
    pub headers: Vec<(String, String)>,
    /// Globs on the upstream's own tool names: which tools the gateway offers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools_include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools_exclude: Vec<String>,
    /// How long its list results may be served from the cache shared by Envoy's workers
    /// (0: not cached).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_ms: u64,
    /// What it is reached through (`SOCKS5 proxy host:port`), for error messages; empty
    /// when direct.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub via: String,
    /// Client headers passed on to it, reformatted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_through: Vec<PassThrough>,
}

/// `source_header` of the client's request becomes `target_header: format` (`{value}` in
/// `format` stands for the client's value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassThrough {
    pub source: String,
    pub target: String,
    pub format: String,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
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
pub(crate) fn example(upstreams: usize) -> FilterConfig {
    FilterConfig {
        mcp_path: "/mcp".into(),
        max_request_bytes: 1 << 20,
        server_name: "switchboard".into(),
        server_version: "0.1.0".into(),
        session_key: "test-key".into(),
        session_max_age_s: 3600,
        separator: "__".into(),
        fan_out: FanOut::FailOpen,
        prefix_mode: PrefixMode::Always,
        get_stream: false,
        upstreams: (0..upstreams)
            .map(|i| Upstream {
                name: format!("u{i}"),
                prefix: format!("u{i}"),
                uri_prefix: format!("u{i}"),
                cluster: format!("upstream-u{i}"),
                authority: format!("127.0.0.1:{}", 3000 + i),
                path: "/mcp".into(),
                timeout_ms: 1000,
                headers: vec![("x-key".into(), format!("k{i}"))],
                tools_include: vec![],
                tools_exclude: vec![],
                cache_ms: 0,
                via: String::new(),
                pass_through: Vec::new(),
            })
            .collect(),
        access: None,
        credential_headers: Vec::new(),
        upstream_path: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown_fields() {
        let c = example(2);
        assert_eq!(FilterConfig::from_json(c.to_json().as_bytes()).unwrap(), c);
        let mut v: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        v["surprise"] = true.into();
        assert!(FilterConfig::from_json(v.to_string().as_bytes()).is_err());
    }
}
