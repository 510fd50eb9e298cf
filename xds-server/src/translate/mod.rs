//! Gateway YAML → Envoy resources. One pure function, [`translate`], tested without Envoy.
//!
//! Resource names are deterministic (`upstream-<name>`, `switchboard`), so an unchanged
//! upstream produces byte-identical resources and is never re-pushed.

use crate::config::model::{Gateway, Upstream, UpstreamKind};
use envoy_types::pb::envoy::config::cluster::v3 as envoy_cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3 as envoy_listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::envoy::extensions::wasm::v3 as wasm;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration as PbDuration, StringValue};
use envoy_types::util::pack_any;
use std::time::Duration;
use switchboard_protocol::access::{self, AccessConfig};
use switchboard_protocol::filter_config::{self, FilterConfig, ROUTE_HEADER};

pub mod audit;
pub mod cluster;
pub mod filter;
pub mod hosted;
pub mod hosts;
pub mod jwt;
pub mod listener;
pub mod oauth;
pub mod routes;
pub mod secret;
pub mod tracing;

pub use cluster::{cluster_name, single_host_cluster, stream_cluster_name};
use filter::mcp_filter;
pub use filter::{filter_config, get_stream};
pub use hosted::{TranslateError, hosted_configs, hosted_module};
use listener::mcp_listener;
use routes::route_configuration;

pub const LISTENER_NAME: &str = "switchboard-mcp";

pub const ROUTE_CONFIG_NAME: &str = "switchboard";

/// The MCP filter's name, and its ECDS resource's.
pub const MCP_FILTER_NAME: &str = "switchboard.mcp";

/// Which shell carries the protocol core inside Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataPlane {
    /// An Envoy dynamic module (`libswitchboard_native.so`): Envoy ≥ 1.38 with the dynamic
    /// modules filter; the fastest.
    #[default]
    Native,
    /// The proxy-wasm filter (`switchboard_filter.wasm`) in Envoy's V8: any Envoy with wasm,
    /// and meshes (Istio) that load wasm but not dynamic modules.
    Wasm,
}

impl DataPlane {
    pub fn as_str(self) -> &'static str {
        match self {
            DataPlane::Native => "native",
            DataPlane::Wasm => "wasm",
        }
    }

    /// The type of the filter's configuration, as the listener announces it for ECDS.
    pub fn type_url(self) -> &'static str {
        match self {
            DataPlane::Native => {
                "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"
            }
            DataPlane::Wasm => "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        }
    }

    /// What the filter's filter-state keys (the audit fields) start with.
    pub fn state_prefix(self) -> &'static str {
        match self {
            // The shell names them itself.
            DataPlane::Native => "",
            // Envoy keeps a wasm filter's properties as `wasm.<name>`.
            DataPlane::Wasm => "wasm.",
        }
    }
}

/// The compiled filter as Envoy will load it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterModule {
    /// The data plane when the gateway file names none (`server.data_plane`).
    pub data_plane: DataPlane,
    /// Chosen on the command line: it wins over the gateway file.
    pub data_plane_pinned: bool,
    /// Path of the `.wasm` file on the Envoy host.
    pub path: String,
    /// Path of the native module (`libswitchboard_native.so`) on the Envoy host.
    pub native_path: String,
    /// The key the filter's secrets are sealed with (`SWITCHBOARD_SECRETS_KEY` in every
    /// Envoy's environment); `None`: they are in its configuration, in the clear.
    pub secrets_key: Option<String>,
    /// Hex SHA-256 of the file: part of the VM id, so a new build replaces the VM.
    pub sha256: String,
    /// The session key used when the gateway file sets none (one per control-plane process).
    pub fallback_session_key: String,
    /// Where the bridge listens, as Envoy reaches it; `None`: no merged GET stream.
    pub bridge: Option<std::net::SocketAddr>,
    /// The bridge's key on its own requests to the gateway (one per control-plane process).
    pub bridge_key: String,
    /// What Envoy shows the bridge on every request to it (one per control-plane process).
    pub bridge_ingress: String,
    /// Upstreams the bridge stands in for, by name: the address Envoy connects to instead of
    /// the upstream's own (a SOCKS5 tunnel, or the bridge itself for a stdio upstream).
    pub tunnels: std::collections::BTreeMap<String, std::net::SocketAddr>,
    /// What the names of host routes resolved to (the translation applies the IP guard).
    pub resolved: crate::config::hosts::Resolved,
}

impl FilterModule {
    /// The data plane a gateway gets: the command line's, else its file's, else the default.
    pub fn data_plane_for(&self, gateway: &Gateway) -> DataPlane {
        match gateway.server.data_plane {
            Some(p) if !self.data_plane_pinned => p,
            _ => self.data_plane,
        }
    }

    /// A module with fixed values and no bridge: renders made with it are the same on every
    /// run and machine (golden snapshots, tests, docs).
    pub fn example() -> FilterModule {
        FilterModule {
            data_plane: DataPlane::Wasm,
            data_plane_pinned: false,
            path: "/opt/switchboard.wasm".into(),
            native_path: "/opt/libswitchboard_native.so".into(),
            secrets_key: None,
            sha256: "ab".repeat(32),
            fallback_session_key: "k".repeat(32),
            bridge: None,
            tunnels: Default::default(),
            resolved: Default::default(),
            bridge_key: "b".repeat(32),
            bridge_ingress: "i".repeat(32),
        }
    }
}

/// Everything the control plane pushes, as typed Envoy messages.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resources {
    pub listeners: Vec<envoy_listener::Listener>,
    pub routes: Vec<route::RouteConfiguration>,
    pub clusters: Vec<envoy_cluster::Cluster>,
    pub secrets: Vec<tls::Secret>,
    /// The HTTP filters' configurations, by ECDS: what edits change most (rules, CORS,
    /// upstreams, JWT clients) changes here, never the listener, whose replacement would
    /// drain every open connection (merged streams, legacy `/sse` clients).
    pub extension_configs: Vec<core::TypedExtensionConfig>,
}

/// The `jwt_authn` filter's name, and its ECDS resource's.
pub const JWT_FILTER_NAME: &str = "switchboard.jwt_authn";

pub const BRIDGE_CLUSTER: &str = "switchboard-bridge";

pub fn translate(gateway: &Gateway, module: &FilterModule) -> Resources {
    let mut clusters: Vec<envoy_cluster::Cluster> = gateway
        .upstreams
        .iter()
        .flat_map(|u| {
            let hosted = !matches!(u.kind, UpstreamKind::Http | UpstreamKind::Openapi);
            cluster::upstream_clusters(u, module.tunnels.get(&*u.name).copied(), hosted)
        })
        .collect();
    let mut secrets = secret::secrets(gateway);
    if let Some(bridge) = module.bridge {
        clusters.push(cluster::bridge_cluster(BRIDGE_CLUSTER, bridge));
        secrets.push(secret::generic(
            secret::BRIDGE_INGRESS,
            &module.bridge_ingress,
        ));
    }
    clusters.extend(jwt::jwks_clusters(gateway));
    clusters.extend(oauth::clusters(gateway));
    clusters.extend(gateway.tracing.as_ref().and_then(tracing::otlp_cluster));
    if let Some(h) = &gateway.hosts {
        clusters.extend(hosts::clusters(h, &module.resolved));
        secrets.extend(hosts::ca_secret(gateway));
    }
    Resources {
        listeners: vec![mcp_listener(gateway, module.data_plane_for(gateway))],
        routes: vec![route_configuration(gateway, module)],
        clusters,
        secrets,
        extension_configs: vec![
            core::TypedExtensionConfig {
                name: JWT_FILTER_NAME.into(),
                typed_config: Some(pack_any(jwt::authentication(gateway))),
            },
            core::TypedExtensionConfig {
                name: MCP_FILTER_NAME.into(),
                typed_config: Some(mcp_filter(gateway, module)),
            },
        ],
    }
}

/// "From the ADS stream", for LDS/CDS in the bootstrap and RDS in the listener.
pub fn ads() -> core::ConfigSource {
    core::ConfigSource {
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
            core::AggregatedConfigSource {},
        )),
        resource_api_version: core::ApiVersion::V3 as i32,
        ..Default::default()
    }
}

pub fn socket_address(host: &str, port: u16) -> core::Address {
    core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: host.to_string(),
            port_specifier: Some(core::socket_address::PortSpecifier::PortValue(u32::from(
                port,
            ))),
            ..Default::default()
        })),
    }
}

pub fn duration(d: Duration) -> PbDuration {
    PbDuration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

pub(crate) fn http_filter(name: &str, config: Any) -> hcm::HttpFilter {
    hcm::HttpFilter {
        name: name.into(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
