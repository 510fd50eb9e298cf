//! The Envoy bootstrap: node identity, admin, and ADS pointing at switchboard. Everything else
//! arrives over ADS.

use crate::translate::{ads, duration, single_host_cluster, socket_address};
use envoy_types::pb::envoy::config::bootstrap::v3 as bootstrap;
use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as http_options;
use envoy_types::util::pack_any;
use std::time::Duration;

pub const XDS_CLUSTER: &str = "switchboard-xds";

#[derive(Debug, Clone)]
pub struct BootstrapParams {
    pub node_id: String,
    /// Where switchboard serves ADS, `host:port`.
    pub xds_host: String,
    pub xds_port: u16,
    pub admin: std::net::SocketAddr,
}

pub fn bootstrap(p: &BootstrapParams) -> bootstrap::Bootstrap {
    // ADS is gRPC: the xDS cluster must speak HTTP/2.
    let h2 = http_options::HttpProtocolOptions {
        upstream_protocol_options: Some(http_options::http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            http_options::http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(
                    http_options::http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                        core::Http2ProtocolOptions {
                            connection_keepalive: Some(core::KeepaliveSettings {
                                interval: Some(duration(Duration::from_secs(30))),
                                timeout: Some(duration(Duration::from_secs(5))),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ),
                ),
            },
        )),
        ..Default::default()
    };
    let xds = cluster::Cluster {
        connect_timeout: Some(duration(Duration::from_secs(1))),
        typed_extension_protocol_options: [(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
            pack_any(h2),
        )]
        .into(),
        ..single_host_cluster(XDS_CLUSTER, &p.xds_host, p.xds_port)
    };
    bootstrap::Bootstrap {
        node: Some(core::Node {
            id: p.node_id.clone(),
            cluster: "switchboard".into(),
            ..Default::default()
        }),
        admin: Some(bootstrap::Admin {
            address: Some(socket_address(&p.admin.ip().to_string(), p.admin.port())),
            ..Default::default()
        }),
        dynamic_resources: Some(bootstrap::bootstrap::DynamicResources {
            ads_config: Some(core::ApiConfigSource {
                api_type: core::api_config_source::ApiType::Grpc as i32,
                transport_api_version: core::ApiVersion::V3 as i32,
                grpc_services: vec![core::GrpcService {
                    target_specifier: Some(core::grpc_service::TargetSpecifier::EnvoyGrpc(
                        core::grpc_service::EnvoyGrpc {
                            cluster_name: XDS_CLUSTER.into(),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }],
                set_node_on_first_message_only: true,
                ..Default::default()
            }),
            lds_config: Some(ads()),
            cds_config: Some(ads()),
            ..Default::default()
        }),
        static_resources: Some(bootstrap::bootstrap::StaticResources {
            clusters: vec![xds],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The bootstrap as YAML, as Envoy reads it with `-c`.
pub fn bootstrap_yaml(p: &BootstrapParams) -> Result<String, crate::render::RenderError> {
    crate::render::to_yaml(&crate::render::message_to_json(&bootstrap(p))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_points_ads_at_switchboard() {
        let yaml = bootstrap_yaml(&BootstrapParams {
            node_id: "edge-1".into(),
            xds_host: "xds.internal".into(),
            xds_port: 18000,
            admin: "127.0.0.1:9901".parse().unwrap(),
        })
        .unwrap();
        for needle in [
            "id: edge-1",
            "cluster_name: switchboard-xds",
            "api_type: GRPC",
            "address: xds.internal",
            "port_value: 18000",
            "type: LOGICAL_DNS",
            "http2_protocol_options",
        ] {
            assert!(yaml.contains(needle), "missing {needle:?} in\n{yaml}");
        }
    }
}
