//! The filter's metrics as labelled Envoy stats: one metric per kind ([`Metric`]), the
//! upstream, tool and failure class as labels, so Prometheus can aggregate them
//! (`switchboard_tool_calls_total{upstream="github",tool="create_issue"}`).
//! Defined once per configuration: Envoy freezes stat creation after that.

use crate::ffi::{EnvoyConfig, EnvoyFilter, LogLevel, MetricId};
use switchboard_protocol::audit::{Counter, Metric, Series};

/// The Envoy id of each [`Metric`], in [`Metric::ALL`]'s order.
pub struct Metrics {
    ids: [Option<MetricId>; Metric::ALL.len()],
}

impl Metrics {
    pub fn define(envoy: &EnvoyConfig) -> Metrics {
        let ids = Metric::ALL.map(|metric| {
            // Under Envoy's custom namespace for dynamic modules, as the wasm shell's are
            // under `wasmcustom.`: Prometheus sees `switchboard_…` from both.
            let name = format!("switchboard.{}", metric.name());
            let id = if metric.is_histogram() {
                envoy.histogram(&name, metric.labels())
            } else {
                envoy.counter(&name, metric.labels())
            };
            if id.is_none() {
                crate::ffi::log(
                    LogLevel::Warn,
                    &format!("switchboard: Envoy refused the metric {}", metric.name()),
                );
            }
            id
        });
        Metrics { ids }
    }

    fn id(&self, metric: Metric) -> Option<MetricId> {
        self.ids[metric.index()]
    }

    pub fn increment(&self, envoy: &EnvoyFilter, counter: &Counter) {
        let (metric, values) = counter.metric();
        if let Some(id) = self.id(metric) {
            envoy.increment(id, &values);
        }
    }

    pub fn record(&self, envoy: &EnvoyFilter, series: &Series, value: u64) {
        let (metric, values) = series.duration();
        if let Some(id) = self.id(metric) {
            envoy.record(id, &values, value);
        }
    }
}
