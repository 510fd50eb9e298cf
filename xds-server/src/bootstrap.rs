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
    /// Where switchboard serves ADS.
    pub xds: XdsAddress,
    pub admin: std::net::SocketAddr,
}

/// Where Envoy reaches switchboard's ADS.
#[derive(Debug, Clone)]
pub enum XdsAddress {
    /// `host:port`, over TLS when `tls` is given.
    Tcp {
        host: String,
        port: u16,
        tls: Option<XdsClientTls>,
    },
    /// A Unix socket that only its owner can open (`switchboard run`).
    Unix(std::path::PathBuf),
}

/// TLS from Envoy to the control plane: files on the Envoy host.
#[derive(Debug, Clone)]
pub struct XdsClientTls {
    /// The CA the control plane's certificate must chain to.
    pub ca: String,
    /// This Envoy's client certificate and key.
    pub cert: String,
    pub key: String,
    /// The name the control plane's certificate must carry (also SNI).
    pub server_name: String,
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
    let target = match &p.xds {
        XdsAddress::Tcp { host, port, tls } => cluster::Cluster {
            transport_socket: tls.as_ref().map(xds_tls),
            ..single_host_cluster(XDS_CLUSTER, host, *port)
        },
        XdsAddress::Unix(path) => pipe_cluster(XDS_CLUSTER, path),
    };
    let xds = cluster::Cluster {
        connect_timeout: Some(duration(Duration::from_secs(1))),
        typed_extension_protocol_options: [(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
            pack_any(h2),
        )]
        .into(),
        ..target
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
        stats_config: Some(stats_config()),
        layered_runtime: Some(runtime()),
        ..Default::default()
    }
}

/// Runtime flags every Switchboard Envoy needs. The native shell's stats are under Envoy's
/// custom namespace for dynamic modules; with this flag (Envoy 1.40 leaves it off) Envoy's
/// Prometheus output drops that namespace and adds no `envoy_` prefix, as it does for
/// wasm's, so both shells make the same `switchboard_…` metrics.
pub fn runtime() -> bootstrap::LayeredRuntime {
    use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
    let flags = Struct {
        fields: [(
            "envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix".to_string(),
            Value {
                kind: Some(Kind::BoolValue(true)),
            },
        )]
        .into(),
    };
    bootstrap::LayeredRuntime {
        layers: vec![
            bootstrap::RuntimeLayer {
                name: "switchboard".into(),
                layer_specifier: Some(bootstrap::runtime_layer::LayerSpecifier::StaticLayer(flags)),
            },
            // Envoy's default when no runtime is configured: admin `/runtime_modify` works.
            bootstrap::RuntimeLayer {
                name: "admin".into(),
                layer_specifier: Some(bootstrap::runtime_layer::LayerSpecifier::AdminLayer(
                    Default::default(),
                )),
            },
        ],
    }
}

/// Tag extraction for the wasm filter's stats: proxy-wasm has no labels, so the filter
/// writes one stat per series, its labels as name segments
/// (`switchboard.tool_calls_total.upstream.github.tool.create_issue`, under Envoy's
/// `wasmcustom.`); these regexes take each label's segment out of the name and make it a
/// tag. Envoy's Prometheus output then shows the same labelled metric as the native shell's
/// (`switchboard_tool_calls_total{upstream="github",tool="create_issue"}`). Envoy matches
/// every regex against the whole name; the first group is removed, the second is the value.
pub fn stats_config() -> envoy_types::pb::envoy::config::metrics::v3::StatsConfig {
    use envoy_types::pb::envoy::config::metrics::v3 as metrics;
    metrics::StatsConfig {
        stats_tags: WASM_STAT_TAGS
            .iter()
            .map(|(name, regex)| metrics::TagSpecifier {
                tag_name: (*name).into(),
                tag_value: Some(metrics::tag_specifier::TagValue::Regex((*regex).into())),
            })
            .collect(),
        // `use_all_default_tags` unset: Envoy's own tags (cluster names, …) stay.
        ..Default::default()
    }
}

/// The labels of [`switchboard_protocol::audit::Metric::flat_name`]s, as `(tag, regex)`.
pub const WASM_STAT_TAGS: [(&str, &str); 3] = [
    (
        "upstream",
        r"^wasmcustom\.switchboard\.[a-z_]+(\.upstream\.([\w-]+))",
    ),
    (
        "tool",
        r"^wasmcustom\.switchboard\.[a-z_]+\.upstream\.[\w-]+(\.tool\.([\w-]+))",
    ),
    (
        "class",
        r"^wasmcustom\.switchboard\.[a-z_]+\.upstream\.[\w-]+(?:\.tool\.[\w-]+)?(\.class\.([\w-]+))$",
    ),
];

/// A static cluster of one Unix socket.
fn pipe_cluster(name: &str, path: &std::path::Path) -> cluster::Cluster {
    use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
    let address = core::Address {
        address: Some(core::address::Address::Pipe(core::Pipe {
            path: path.display().to_string(),
            ..Default::default()
        })),
    };
    cluster::Cluster {
        name: name.into(),
        cluster_discovery_type: Some(cluster::cluster::ClusterDiscoveryType::Type(
            cluster::cluster::DiscoveryType::Static as i32,
        )),
        load_assignment: Some(endpoint::ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: vec![endpoint::LocalityLbEndpoints {
                lb_endpoints: vec![endpoint::LbEndpoint {
                    host_identifier: Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(
                        endpoint::Endpoint {
                            address: Some(address),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// TLS to the control plane: its certificate checked against `ca` and `server_name`, this
/// Envoy's own certificate shown; HTTP/2 by ALPN, as gRPC needs.
fn xds_tls(t: &XdsClientTls) -> core::TransportSocket {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
    use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
    let file = |path: &str| core::DataSource {
        specifier: Some(core::data_source::Specifier::Filename(path.into())),
        ..Default::default()
    };
    let is_ip = t.server_name.parse::<std::net::IpAddr>().is_ok();
    let context = tls::UpstreamTlsContext {
        sni: if is_ip {
            String::new()
        } else {
            t.server_name.clone()
        },
        common_tls_context: Some(tls::CommonTlsContext {
            tls_certificates: vec![tls::TlsCertificate {
                certificate_chain: Some(file(&t.cert)),
                private_key: Some(file(&t.key)),
                ..Default::default()
            }],
            validation_context_type: Some(
                tls::common_tls_context::ValidationContextType::ValidationContext(
                    tls::CertificateValidationContext {
                        trusted_ca: Some(file(&t.ca)),
                        match_typed_subject_alt_names: vec![tls::SubjectAltNameMatcher {
                            san_type: if is_ip {
                                tls::subject_alt_name_matcher::SanType::IpAddress
                            } else {
                                tls::subject_alt_name_matcher::SanType::Dns
                            } as i32,
                            matcher: Some(matcher::StringMatcher {
                                match_pattern: Some(matcher::string_matcher::MatchPattern::Exact(
                                    t.server_name.clone(),
                                )),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                ),
            ),
            alpn_protocols: vec!["h2".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    core::TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(core::transport_socket::ConfigType::TypedConfig(pack_any(
            context,
        ))),
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
            xds: XdsAddress::Tcp {
                host: "xds.internal".into(),
                port: 18000,
                tls: None,
            },
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

    #[test]
    fn tls_to_the_control_plane_shows_a_certificate_and_checks_its_name() {
        let yaml = bootstrap_yaml(&BootstrapParams {
            node_id: "edge-1".into(),
            xds: XdsAddress::Tcp {
                host: "10.0.0.5".into(),
                port: 18000,
                tls: Some(XdsClientTls {
                    ca: "/etc/envoy/xds-ca.pem".into(),
                    cert: "/etc/envoy/edge-1.pem".into(),
                    key: "/etc/envoy/edge-1.key".into(),
                    server_name: "xds.internal".into(),
                }),
            },
            admin: "127.0.0.1:9901".parse().unwrap(),
        })
        .unwrap();
        for needle in [
            "envoy.transport_sockets.tls",
            "sni: xds.internal",
            "filename: /etc/envoy/xds-ca.pem",
            "filename: /etc/envoy/edge-1.pem",
            "filename: /etc/envoy/edge-1.key",
            "exact: xds.internal",
            "- h2",
        ] {
            assert!(yaml.contains(needle), "missing {needle:?} in\n{yaml}");
        }
    }

    /// Envoy's tag extraction, as its documentation describes it, applied to every series
    /// the filter can write: the name left over is the metric's, the tags are its labels.
    #[test]
    fn tag_extraction_turns_the_wasm_names_into_the_native_labels() {
        use switchboard_protocol::audit::Metric;
        let extract = |flat: &str| {
            let mut name = format!("wasmcustom.{flat}");
            let mut tags = Vec::new();
            let original = name.clone();
            let mut removed = Vec::new();
            for (tag, re) in WASM_STAT_TAGS {
                if let Some(c) = regex::Regex::new(re).unwrap().captures(&original) {
                    tags.push((tag.to_string(), c[2].to_string()));
                    removed.push(c.get(1).unwrap().range());
                }
            }
            removed.sort_by_key(|r| std::cmp::Reverse(r.start));
            for r in removed {
                name.replace_range(r, "");
            }
            (name, tags)
        };
        for metric in Metric::ALL {
            let values: Vec<&str> = metric
                .labels()
                .iter()
                .map(|l| match *l {
                    "upstream" => "git-hub",
                    "tool" => "create_issue",
                    _ => "upstream_timeout",
                })
                .collect();
            let (name, tags) = extract(&metric.flat_name(&values));
            assert_eq!(name, format!("wasmcustom.switchboard.{}", metric.name()));
            let want: Vec<(String, String)> = metric
                .labels()
                .iter()
                .zip(&values)
                .map(|(l, v)| (l.to_string(), v.to_string()))
                .collect();
            assert_eq!(tags, want, "{metric:?}");
        }
        // A value that looks like a label's name is still a value.
        let (name, tags) = extract(&Metric::ToolErrors.flat_name(&["tool", "class", "client"]));
        assert_eq!(name, "wasmcustom.switchboard.tool_errors_total");
        assert_eq!(
            tags.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>(),
            ["tool", "class", "client"]
        );
    }

    #[test]
    fn run_reaches_ads_on_a_unix_socket() {
        let yaml = bootstrap_yaml(&BootstrapParams {
            node_id: "run".into(),
            xds: XdsAddress::Unix("/run/sb/xds.sock".into()),
            admin: "127.0.0.1:9901".parse().unwrap(),
        })
        .unwrap();
        assert!(yaml.contains("path: /run/sb/xds.sock"), "{yaml}");
    }
}
