//! The filter's metrics as labelled Envoy stats: one metric per kind, the upstream, tool and
//! failure class as labels, so Prometheus can aggregate them
//! (`envoy_switchboard_tool_calls{upstream="github",tool="github__create_issue"}`).
//! Defined once per configuration: Envoy freezes stat creation after that.

use crate::ffi::{EnvoyConfig, EnvoyFilter, LogLevel, MetricId};
use switchboard_protocol::audit::{Counter, Series};

pub struct Metrics {
    upstream_calls: Option<MetricId>,
    upstream_errors: Option<MetricId>,
    upstream_latency: Option<MetricId>,
    tool_calls: Option<MetricId>,
    tool_errors: Option<MetricId>,
    tool_latency: Option<MetricId>,
}

impl Metrics {
    pub fn define(envoy: &EnvoyConfig) -> Metrics {
        let counter = |name: &str, labels: &[&str]| {
            let id = envoy.counter(name, labels);
            if id.is_none() {
                crate::ffi::log(
                    LogLevel::Warn,
                    &format!("switchboard: Envoy refused the metric {name}"),
                );
            }
            id
        };
        let histogram = |name: &str, labels: &[&str]| envoy.histogram(name, labels);
        Metrics {
            upstream_calls: counter("upstream_calls", &["upstream"]),
            upstream_errors: counter("upstream_errors", &["upstream", "class"]),
            upstream_latency: histogram("upstream_latency_ms", &["upstream"]),
            tool_calls: counter("tool_calls", &["upstream", "tool"]),
            tool_errors: counter("tool_errors", &["upstream", "tool", "class"]),
            tool_latency: histogram("tool_latency_ms", &["upstream", "tool"]),
        }
    }

    pub fn increment(&self, envoy: &EnvoyFilter, counter: &Counter) {
        let (id, labels) = match (&counter.series, counter.class) {
            (Series::Upstream(u), None) => (self.upstream_calls, vec![u.as_str()]),
            (Series::Upstream(u), Some(class)) => (self.upstream_errors, vec![u.as_str(), class]),
            (Series::Tool { upstream, tool }, None) => {
                (self.tool_calls, vec![upstream.as_str(), tool.as_str()])
            }
            (Series::Tool { upstream, tool }, Some(class)) => (
                self.tool_errors,
                vec![upstream.as_str(), tool.as_str(), class],
            ),
        };
        if let Some(id) = id {
            envoy.increment(id, &labels);
        }
    }

    pub fn record(&self, envoy: &EnvoyFilter, series: &Series, value: u64) {
        let (id, labels) = match series {
            Series::Upstream(u) => (self.upstream_latency, vec![u.as_str()]),
            Series::Tool { upstream, tool } => {
                (self.tool_latency, vec![upstream.as_str(), tool.as_str()])
            }
        };
        if let Some(id) = id {
            envoy.record(id, &labels, value);
        }
    }
}
