//! `tracing:` becomes Envoy's OpenTelemetry tracer on the gateway's connection manager: a
//! span per request, continuing the client's W3C trace context (`traceparent`), sampled at
//! `sample` when the client did not decide, tagged with what the filter learned (its
//! filter-state findings, the audit log's), with a child span per upstream request, and
//! sent over OTLP/gRPC to the collector's cluster.

use super::*;
use crate::config::model::TracingConfig;
use envoy_types::pb::envoy::config::trace::v3 as trace;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use envoy_types::pb::envoy::r#type::tracing::v3 as tags;
use envoy_types::pb::envoy::r#type::v3::Percent;

/// The collector's cluster.
pub const OTLP_CLUSTER: &str = "switchboard-otlp";

/// Span tags and the filter-state key of each (`STATE.` stands for the data plane's prefix).
pub const TAGS: [(&str, &str); 6] = [
    ("mcp.method.name", "STATE.switchboard_method"),
    // The tool, prompt or resource the request named (prefixed, as the client sees it).
    ("mcp.name", "STATE.switchboard_name"),
    ("mcp.upstream", "STATE.switchboard_upstream"),
    ("mcp.client", "STATE.switchboard_identity"),
    ("mcp.session", "STATE.switchboard_session"),
    ("mcp.error.class", "STATE.switchboard_class"),
];

/// The connection manager's tracing.
pub fn tracing(t: &TracingConfig, data_plane: DataPlane) -> Tracing {
    let otel = trace::OpenTelemetryConfig {
        grpc_service: Some(core::GrpcService {
            target_specifier: Some(core::grpc_service::TargetSpecifier::EnvoyGrpc(
                core::grpc_service::EnvoyGrpc {
                    cluster_name: OTLP_CLUSTER.into(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        service_name: t.service_name.clone(),
        ..Default::default()
    };
    Tracing {
        random_sampling: Some(Percent {
            value: t.sample * 100.0,
        }),
        provider: Some(trace::tracing::Http {
            name: "envoy.tracers.opentelemetry".into(),
            config_type: Some(trace::tracing::http::ConfigType::TypedConfig(pack_any(
                otel,
            ))),
        }),
        custom_tags: TAGS
            .iter()
            .map(|(tag, key)| tags::CustomTag {
                tag: (*tag).into(),
                r#type: Some(tags::custom_tag::Type::Value(format!(
                    "%FILTER_STATE({}:PLAIN)%",
                    key.replace("STATE.", data_plane.state_prefix())
                ))),
            })
            .collect(),
        // A child span per request to an upstream (routed calls), under the gateway's.
        spawn_upstream_span: Some(BoolValue { value: true }),
        ..Default::default()
    }
}

/// The collector, reached over HTTP/2 (OTLP/gRPC).
pub fn otlp_cluster(t: &TracingConfig) -> Option<envoy_cluster::Cluster> {
    let (host, port) = t.collector()?;
    let transport = crate::config::model::Transport {
        http2: true,
        ..Default::default()
    };
    Some(envoy_cluster::Cluster {
        typed_extension_protocol_options: [(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
            pack_any(cluster::protocol_options(&transport, false)),
        )]
        .into(),
        ..cluster::single_host_cluster(OTLP_CLUSTER, host, port)
    })
}
