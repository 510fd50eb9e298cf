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
    /// A `tools/call`'s metric series: the tool's own name at its upstream once the gateway
    /// has listed it, else [`crate::exchange::UNKNOWN_TOOL`], so a client cannot make series up.
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

/// The client as the audit log names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    /// [`crate::access::Identity::key`], empty without clients.
    pub identity: String,
    /// [`session_digest`] of the session header (only with an audit log).
    pub session: String,
    /// The bridge sent the request on the client's behalf.
    pub via_bridge: bool,
}

/// How a request ended, as the shell saw it.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    /// The HTTP status the client gets.
    pub status: u16,
    /// The JSON-RPC error code in it, when the gateway read it.
    pub rpc_code: Option<i64>,
    /// Envoy's `response.code_details`.
    pub details: Option<&'a str>,
}

/// What the shell writes once a request's outcome is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Properties the access log reads (Envoy keeps them as filter state); only with an audit
    /// log, empty values left out.
    pub properties: Vec<(&'static str, String)>,
    /// Counters to increment by one.
    pub counters: Vec<Counter>,
    /// Latency histograms and the value to record (milliseconds).
    pub histograms: Vec<(Series, u64)>,
}

/// Whose metrics: an upstream's, or a tool's. Names are already [`stat_name`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Series {
    /// `fan_out` for initialize and lists, `gateway` for the gateway's own answers.
    Upstream(String),
    /// A `tools/call`: the upstream and the tool's own name there (unprefixed).
    Tool { upstream: String, tool: String },
}

/// The gateway's metrics: one per kind, labelled. The native shell defines them with Envoy
/// labels; the wasm shell cannot, so it writes [`Metric::flat_name`]s, from which the
/// bootstrap's tag extraction takes the labels back: Prometheus sees the same series from
/// both (`switchboard_tool_calls_total{upstream="github",tool="create_issue"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    UpstreamRequests,
    UpstreamErrors,
    UpstreamDuration,
    ToolCalls,
    ToolErrors,
    ToolDuration,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::UpstreamRequests,
        Metric::UpstreamErrors,
        Metric::UpstreamDuration,
        Metric::ToolCalls,
        Metric::ToolErrors,
        Metric::ToolDuration,
    ];

    /// Its place in [`Metric::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name under the `switchboard` namespace.
    pub fn name(self) -> &'static str {
        match self {
            Metric::UpstreamRequests => "upstream_requests_total",
            Metric::UpstreamErrors => "upstream_errors_total",
            Metric::UpstreamDuration => "upstream_request_duration_ms",
            Metric::ToolCalls => "tool_calls_total",
            Metric::ToolErrors => "tool_errors_total",
            Metric::ToolDuration => "tool_call_duration_ms",
        }
    }

    /// Its labels, in order.
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            Metric::UpstreamRequests | Metric::UpstreamDuration => &["upstream"],
            Metric::UpstreamErrors => &["upstream", "class"],
            Metric::ToolCalls | Metric::ToolDuration => &["upstream", "tool"],
            Metric::ToolErrors => &["upstream", "tool", "class"],
        }
    }

    pub fn is_histogram(self) -> bool {
        matches!(self, Metric::UpstreamDuration | Metric::ToolDuration)
    }

    /// One stat name for a series: `switchboard.<name>.<label>.<value>…`, the name Envoy's
    /// admin `/stats` shows for the native shell's labelled stat too.
    pub fn flat_name(self, values: &[&str]) -> String {
        let mut name = format!("switchboard.{}", self.name());
        for (label, value) in self.labels().iter().zip(values) {
            name.push('.');
            name.push_str(label);
            name.push('.');
            name.push_str(value);
        }
        name
    }
}

impl Series {
    /// Its latency histogram and the label values.
    pub fn duration(&self) -> (Metric, Vec<&str>) {
        match self {
            Series::Upstream(u) => (Metric::UpstreamDuration, vec![u]),
            Series::Tool { upstream, tool } => (Metric::ToolDuration, vec![upstream, tool]),
        }
    }
}

/// One request counted in a series; with `class`, one failure of that class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub series: Series,
    pub class: Option<&'static str>,
}

impl Counter {
    /// The counter and its label values.
    pub fn metric(&self) -> (Metric, Vec<&str>) {
        match (&self.series, self.class) {
            (Series::Upstream(u), None) => (Metric::UpstreamRequests, vec![u]),
            (Series::Upstream(u), Some(class)) => (Metric::UpstreamErrors, vec![u, class]),
            (Series::Tool { upstream, tool }, None) => (Metric::ToolCalls, vec![upstream, tool]),
            (Series::Tool { upstream, tool }, Some(class)) => {
                (Metric::ToolErrors, vec![upstream, tool, class])
            }
        }
    }

    /// Its [`Metric::flat_name`].
    pub fn name(&self) -> String {
        let (metric, values) = self.metric();
        metric.flat_name(&values)
    }
}

/// The audit line's fields and the metric updates of one request. Metrics count MCP
/// requests: one refused before its body was read has no method (its audit line has the
/// status and class).
pub fn record(
    audit: &Audit,
    client: &Client,
    audit_log: bool,
    outcome: Outcome<'_>,
    latency_ms: u64,
) -> Record {
    let class = class(outcome.status, outcome.rpc_code, outcome.details);
    let mut record = Record::default();
    if audit_log {
        let code = outcome.rpc_code.map(|c| c.to_string()).unwrap_or_default();
        let via = if client.via_bridge { "bridge" } else { "" };
        record.properties = [
            ("switchboard_identity", client.identity.as_str()),
            ("switchboard_session", client.session.as_str()),
            ("switchboard_method", audit.method.as_str()),
            ("switchboard_name", audit.name.as_str()),
            ("switchboard_upstream", audit.upstream.as_str()),
            ("switchboard_rpc_code", code.as_str()),
            ("switchboard_class", class.unwrap_or("")),
            ("switchboard_via", via),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    }
    if audit.method.is_empty() {
        return record;
    }
    // Fan-outs (initialize, lists) and answers of the gateway's own count apart.
    let upstream = match audit.upstream.as_str() {
        "" => "gateway",
        "*" => "fan_out",
        u => u,
    };
    let mut all = vec![Series::Upstream(stat_name(upstream))];
    if audit.method == "tools/call" {
        // Only tools the gateway listed have a series of their own.
        let tool = if audit.tool_series.is_empty() {
            crate::exchange::UNKNOWN_TOOL
        } else {
            audit.tool_series.as_str()
        };
        all.push(Series::Tool {
            upstream: stat_name(upstream),
            tool: stat_name(tool),
        });
    }
    for series in all {
        record.counters.push(Counter {
            series: series.clone(),
            class: None,
        });
        if class.is_some() {
            record.counters.push(Counter {
                series: series.clone(),
                class,
            });
        }
        record.histograms.push((series, latency_ms));
    }
    record
}

/// A name as one segment of a stat name: what Envoy's stats would split on becomes `_`.
pub fn stat_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
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

    #[test]
    fn a_metric_is_at_its_index_in_all() {
        for (i, m) in Metric::ALL.iter().enumerate() {
            assert_eq!(m.index(), i, "{m:?}");
        }
    }

    #[test]
    fn a_record_names_the_series_and_the_audit_fields() {
        let audit = Audit {
            method: "tools/call".into(),
            name: "gh__create.issue".into(),
            upstream: "gh".into(),
            tool_series: "create.issue".into(),
        };
        let client = Client {
            identity: "ci".into(),
            ..Default::default()
        };
        let failed = Outcome {
            status: 200,
            rpc_code: Some(UPSTREAM_TIMEOUT),
            details: None,
        };
        let r = record(&audit, &client, true, failed, 7);
        assert_eq!(
            r.counters.iter().map(Counter::name).collect::<Vec<_>>(),
            [
                "switchboard.upstream_requests_total.upstream.gh",
                "switchboard.upstream_errors_total.upstream.gh.class.upstream_timeout",
                "switchboard.tool_calls_total.upstream.gh.tool.create_issue",
                "switchboard.tool_errors_total.upstream.gh.tool.create_issue.class.upstream_timeout",
            ]
        );
        let (metric, values) = r.histograms[1].0.duration();
        assert_eq!(
            (metric.flat_name(&values), r.histograms[1].1),
            (
                "switchboard.tool_call_duration_ms.upstream.gh.tool.create_issue".into(),
                7
            )
        );
        assert_eq!(
            r.histograms[1].0,
            Series::Tool {
                upstream: "gh".into(),
                tool: "create_issue".into()
            }
        );
        assert!(
            r.properties
                .contains(&("switchboard_class", "upstream_timeout".into()))
        );
        assert!(
            !r.properties.iter().any(|(k, _)| *k == "switchboard_via"),
            "empty values are left out"
        );

        // No audit log: no properties; a tool never listed counts as unknown; a request with
        // no method counts nowhere.
        let unlisted = Audit {
            tool_series: String::new(),
            ..audit.clone()
        };
        let ok = Outcome {
            status: 200,
            rpc_code: None,
            details: Some("via_upstream"),
        };
        let r = record(&unlisted, &client, false, ok, 1);
        assert!(r.properties.is_empty());
        assert_eq!(
            r.counters[1].name(),
            "switchboard.tool_calls_total.upstream.gh.tool.unknown"
        );
        let refused = record(
            &Audit::default(),
            &client,
            true,
            Outcome { status: 401, ..ok },
            1,
        );
        assert!(refused.counters.is_empty() && refused.histograms.is_empty());
        assert!(
            refused
                .properties
                .contains(&("switchboard_class", "client".into()))
        );
    }
}
