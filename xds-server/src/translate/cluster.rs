//! An upstream's transport as Envoy clusters: connection pool limits, idle timeout, HTTP/1 or
//! HTTP/2, TLS with certificates by SDS. Each upstream has two clusters with the same
//! transport: one for calls, whose pool limits apply, and one for long-lived streams
//! (`GET`), so open streams never take the connections calls need.

use super::secret;
use super::{duration, socket_address};
use crate::config::model::{Transport, Upstream};
use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as http_options;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub(super) const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

pub fn cluster_name(upstream: &str) -> String {
    format!("upstream-{upstream}")
}

/// The cluster of an upstream's long-lived `GET` streams.
pub fn stream_cluster_name(upstream: &str) -> String {
    format!("upstream-{upstream}-stream")
}

/// The upstream's two clusters. `tunnel`: the loopback SOCKS5 tunnel to connect to instead of
/// the upstream's own address (TLS still goes end to end, with the upstream's name), or the
/// bridge, for an upstream the bridge hosts (`hosted`).
pub fn upstream_clusters(
    u: &Upstream,
    tunnel: Option<SocketAddr>,
    hosted: bool,
) -> [cluster::Cluster; 2] {
    let (host, port) = match tunnel {
        Some(t) => (t.ip().to_string(), t.port()),
        None => (u.url.host(), u.url.port()),
    };
    let base = cluster::Cluster {
        connect_timeout: Some(duration(CONNECT_TIMEOUT)),
        dns_lookup_family: cluster::cluster::DnsLookupFamily::V4Preferred as i32,
        transport_socket: u.url.is_tls().then(|| upstream_tls(u)),
        typed_extension_protocol_options: [(
            HTTP_OPTIONS.to_string(),
            pack_any(http_options::HttpProtocolOptions {
                http_filters: if hosted {
                    to_bridge_filters()
                } else {
                    Vec::new()
                },
                ..protocol_options(&u.transport, u.url.is_tls())
            }),
        )]
        .into_iter()
        .collect(),
        ..single_host_cluster(&cluster_name(&u.name), &host, port)
    };
    let calls = cluster::Cluster {
        circuit_breakers: Some(pool_limits(&u.transport)),
        ..base.clone()
    };
    let streams = cluster::Cluster {
        ..with_name(base, &stream_cluster_name(&u.name))
    };
    [calls, streams]
}

fn with_name(mut c: cluster::Cluster, name: &str) -> cluster::Cluster {
    c.name = name.into();
    if let Some(la) = &mut c.load_assignment {
        la.cluster_name = name.into();
    }
    c
}

/// Envoy has no limit on idle connections alone: `max_idle_conns` and
/// `max_idle_conns_per_host` cap the open connections (idle or busy); a call beyond the cap
/// waits in Envoy's queue for a free connection rather than opening another.
fn pool_limits(t: &Transport) -> cluster::CircuitBreakers {
    use cluster::circuit_breakers::Thresholds;
    let limit = |n: u32| Thresholds {
        priority: core::RoutingPriority::Default as i32,
        max_connections: Some(UInt32Value { value: n }),
        ..Default::default()
    };
    cluster::CircuitBreakers {
        thresholds: vec![limit(t.max_idle_conns)],
        per_host_thresholds: vec![limit(t.max_idle_conns_per_host)],
    }
}

/// HTTP/1.1 unless `http2`: then ALPN chooses over TLS (h2 if the upstream offers it), and
/// plain text uses HTTP/2 with prior knowledge.
pub(super) fn protocol_options(t: &Transport, is_tls: bool) -> http_options::HttpProtocolOptions {
    use http_options::http_protocol_options::{
        AutoHttpConfig, ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config,
    };
    let protocol = match (t.http2, is_tls) {
        (true, true) => UpstreamProtocolOptions::AutoConfig(AutoHttpConfig {
            http_protocol_options: Some(Default::default()),
            http2_protocol_options: Some(Default::default()),
            ..Default::default()
        }),
        (true, false) => UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
            protocol_config: Some(explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                Default::default(),
            )),
        }),
        (false, _) => UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
            protocol_config: Some(explicit_http_config::ProtocolConfig::HttpProtocolOptions(
                Default::default(),
            )),
        }),
    };
    http_options::HttpProtocolOptions {
        common_http_protocol_options: Some(core::HttpProtocolOptions {
            idle_timeout: Some(duration(t.idle_conn_timeout)),
            ..Default::default()
        }),
        upstream_protocol_options: Some(protocol),
        ..Default::default()
    }
}

/// The cluster of the bridge's own endpoints (the merged stream, `/sse`): HTTP/1.1, with the
/// proof that its requests are Envoy's.
pub fn bridge_cluster(name: &str, bridge: SocketAddr) -> cluster::Cluster {
    use http_options::http_protocol_options::{
        ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config,
    };
    let options = http_options::HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(explicit_http_config::ProtocolConfig::HttpProtocolOptions(
                    Default::default(),
                )),
            },
        )),
        http_filters: to_bridge_filters(),
        ..Default::default()
    };
    cluster::Cluster {
        connect_timeout: Some(duration(CONNECT_TIMEOUT)),
        typed_extension_protocol_options: [(HTTP_OPTIONS.to_string(), pack_any(options))]
            .into_iter()
            .collect(),
        ..single_host_cluster(name, &bridge.ip().to_string(), bridge.port())
    }
}

/// Upstream filters of every cluster that reaches the bridge: a credential injector puts the
/// bridge's ingress secret (by SDS, so it is in no cluster's configuration) in
/// [`switchboard_bridge::INGRESS_HEADER`], over whatever a client sent. The bridge serves
/// nothing without it, so a local process that finds its port gets nothing.
fn to_bridge_filters() -> Vec<hcm::HttpFilter> {
    use envoy_types::pb::envoy::extensions::filters::http::credential_injector::v3::CredentialInjector;
    use envoy_types::pb::envoy::extensions::filters::http::upstream_codec::v3::UpstreamCodec;
    use envoy_types::pb::envoy::extensions::http::injected_credentials::generic::v3::Generic;
    let injector = CredentialInjector {
        overwrite: true,
        allow_request_without_credential: false,
        credential: Some(core::TypedExtensionConfig {
            name: "envoy.http.injected_credentials.generic".into(),
            typed_config: Some(pack_any(Generic {
                credential: Some(secret::sds(secret::BRIDGE_INGRESS)),
                header: switchboard_bridge::INGRESS_HEADER.into(),
                ..Default::default()
            })),
        }),
    };
    vec![
        super::http_filter("envoy.filters.http.credential_injector", pack_any(injector)),
        super::http_filter(
            "envoy.filters.http.upstream_codec",
            pack_any(UpstreamCodec {}),
        ),
    ]
}

/// A cluster of one `host:port`: static for an IP address; for a hostname, logical DNS (one
/// name, possibly many addresses behind it: connect to whichever DNS returns).
pub fn single_host_cluster(name: &str, host: &str, port: u16) -> cluster::Cluster {
    let discovery = if host.parse::<IpAddr>().is_ok() {
        cluster::cluster::DiscoveryType::Static
    } else {
        cluster::cluster::DiscoveryType::LogicalDns
    };
    cluster::Cluster {
        name: name.into(),
        cluster_discovery_type: Some(cluster::cluster::ClusterDiscoveryType::Type(
            discovery as i32,
        )),
        load_assignment: Some(endpoint::ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: vec![endpoint::LocalityLbEndpoints {
                lb_endpoints: vec![endpoint::LbEndpoint {
                    host_identifier: Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(
                        endpoint::Endpoint {
                            address: Some(socket_address(host, port)),
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

/// How a server's certificate is checked.
pub(super) enum Verify {
    /// Against the system CA bundle the control plane pushes by SDS ([`secret::SYSTEM_ROOTS`]):
    /// Envoy 1.40 refuses to match names against roots it was not given
    /// (`system_root_certs` with a SAN matcher is a NACK).
    SystemRoots,
    /// Against the CA in this SDS secret.
    Ca(String),
    /// Not at all (`insecure_skip_verify`).
    Off,
}

/// HTTPS upstreams. SNI and the name the certificate must carry are `tls.server_name` or the
/// URL's host. The certificate is verified against the system roots, or against `ca_cert`
/// (by SDS); not at all with `insecure_skip_verify`. A client certificate comes by SDS.
fn upstream_tls(u: &Upstream) -> core::TransportSocket {
    let config = u.tls.clone().unwrap_or_default();
    let name = config.server_name.clone().unwrap_or_else(|| u.url.host());
    let verify = if config.insecure_skip_verify {
        Verify::Off
    } else if config.ca_cert.is_some() {
        Verify::Ca(secret::upstream_ca(&u.name))
    } else {
        Verify::SystemRoots
    };
    let client_cert = config
        .client_cert
        .is_some()
        .then(|| secret::upstream_client_cert(&u.name));
    tls_to(&name, verify, client_cert)
}

/// TLS to the server `name` (a DNS name or an IP address): SNI, and a certificate that must
/// carry that name, checked as `verify` says; `client_cert` names the SDS secret of a client
/// certificate. Envoy resumes TLS sessions by default, which stays so.
pub(super) fn tls_to(
    name: &str,
    verify: Verify,
    client_cert: Option<String>,
) -> core::TransportSocket {
    use tls::common_tls_context::ValidationContextType;
    use tls::subject_alt_name_matcher::SanType;
    let is_ip = name.parse::<IpAddr>().is_ok();
    let names = tls::CertificateValidationContext {
        match_typed_subject_alt_names: vec![tls::SubjectAltNameMatcher {
            san_type: if is_ip {
                SanType::IpAddress
            } else {
                SanType::Dns
            } as i32,
            matcher: Some(matcher::StringMatcher {
                match_pattern: Some(matcher::string_matcher::MatchPattern::Exact(name.into())),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let validation = match verify {
        Verify::Off => None,
        Verify::Ca(secret_name) => Some(ValidationContextType::CombinedValidationContext(
            tls::common_tls_context::CombinedCertificateValidationContext {
                default_validation_context: Some(names),
                validation_context_sds_secret_config: Some(secret::sds(&secret_name)),
                ..Default::default()
            },
        )),
        Verify::SystemRoots => Some(ValidationContextType::CombinedValidationContext(
            tls::common_tls_context::CombinedCertificateValidationContext {
                default_validation_context: Some(names),
                validation_context_sds_secret_config: Some(secret::sds(secret::SYSTEM_ROOTS)),
                ..Default::default()
            },
        )),
    };
    let context = tls::UpstreamTlsContext {
        sni: if is_ip { String::new() } else { name.into() },
        common_tls_context: Some(tls::CommonTlsContext {
            tls_certificate_sds_secret_configs: client_cert
                .map(|c| secret::sds(&c))
                .into_iter()
                .collect(),
            validation_context_type: validation,
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
