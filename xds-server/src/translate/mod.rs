//! Gateway YAML → Envoy resources. One pure function, [`translate`], tested without Envoy.
//!
//! Resource names are deterministic (`upstream-<name>`, `switchboard`), so an unchanged
//! upstream produces byte-identical resources and is never re-pushed.

use crate::config::model::{FanOutPolicy, Gateway, PrefixModeConfig, Upstream, UpstreamKind};
use envoy_types::pb::envoy::config::cluster::v3 as envoy_cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3 as listener;
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
use switchboard_protocol::filter_config::{self, FanOut, FilterConfig, PrefixMode, ROUTE_HEADER};

pub mod audit;
pub mod cluster;
pub mod jwt;
pub mod secret;

pub use cluster::{cluster_name, single_host_cluster, stream_cluster_name};

pub const LISTENER_NAME: &str = "switchboard-mcp";
pub const ROUTE_CONFIG_NAME: &str = "switchboard";
pub const WASM_FILTER_NAME: &str = "switchboard.mcp";

/// The compiled filter as Envoy will load it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterModule {
    /// Path of the `.wasm` file on the Envoy host.
    pub path: String,
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
}

/// Everything the control plane pushes, as typed Envoy messages.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resources {
    pub listeners: Vec<listener::Listener>,
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
            let hosted = u.kind != UpstreamKind::Http;
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
    Resources {
        listeners: vec![mcp_listener(gateway)],
        routes: vec![route_configuration(gateway, module)],
        clusters,
        secrets,
        extension_configs: vec![
            core::TypedExtensionConfig {
                name: JWT_FILTER_NAME.into(),
                typed_config: Some(pack_any(jwt::authentication(gateway))),
            },
            core::TypedExtensionConfig {
                name: WASM_FILTER_NAME.into(),
                typed_config: Some(pack_any(wasm_filter(gateway, module))),
            },
        ],
    }
}

/// The contract the filter receives in its `PluginConfig.configuration`.
pub fn filter_config(gateway: &Gateway, module: &FilterModule) -> FilterConfig {
    let session_key = module.fallback_session_key.as_str();
    FilterConfig {
        access: access_config(gateway, module),
        cors: cors(gateway),
        audit: gateway.audit.is_some(),
        allowed_hosts: allowed_hosts(gateway),
        loopback_origins: gateway.server.listen.0.ip().is_loopback(),
        credential_headers: credential_headers(gateway),
        upstream_path: gateway.server.upstream_path.clone(),
        mcp_path: gateway.server.mcp_path.clone(),
        max_request_bytes: gateway.server.max_request_bytes,
        server_name: "switchboard".into(),
        server_version: env!("CARGO_PKG_VERSION").into(),
        session_key: gateway
            .session
            .key
            .as_ref()
            .map_or(session_key, |k| k.0.as_str())
            .to_string(),
        previous_session_keys: gateway
            .session
            .previous_keys
            .iter()
            .map(|k| k.0.clone())
            .collect(),
        session_max_age_s: gateway.session.max_age.as_secs(),
        separator: gateway.aggregation.separator.clone(),
        fan_out: match gateway.aggregation.fan_out {
            FanOutPolicy::FailOpen => FanOut::FailOpen,
            FanOutPolicy::FailClosed => FanOut::FailClosed,
        },
        // Set where the listener is built: it depends on where the bridge runs.
        get_stream: false,
        prefix_mode: match gateway.aggregation.prefix_mode {
            PrefixModeConfig::Always => PrefixMode::Always,
            PrefixModeConfig::WhenNeeded => PrefixMode::WhenNeeded,
        },
        upstreams: gateway
            .upstreams
            .iter()
            .map(|u| filter_config::Upstream {
                name: u.name.to_string(),
                prefix: gateway.prefix(u).to_string(),
                uri_prefix: switchboard_protocol::naming::uri_prefix(gateway.prefix(u)),
                cluster: cluster_name(&u.name),
                authority: u.url.authority(),
                path: u.url.path_and_query(),
                timeout_ms: u64::try_from(u.timeout.as_millis()).unwrap_or(u64::MAX),
                headers: u
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.0.clone()))
                    .collect(),
                tools_include: u.tools.include.clone(),
                tools_exclude: u.tools.exclude.clone(),
                cache_ms: u
                    .cache
                    .map_or(0, |c| u64::try_from(c.as_millis()).unwrap_or(u64::MAX)),
                pass_through: u
                    .auth
                    .pass_through
                    .headers
                    .iter()
                    .map(|h| filter_config::PassThrough {
                        source: h.source_header.to_ascii_lowercase(),
                        target: h.target_header.to_ascii_lowercase(),
                        format: h.format.clone(),
                    })
                    .collect(),
                via: u
                    .proxy
                    .as_ref()
                    .map(|p| format!("SOCKS5 proxy {}:{}", p.url.host, p.url.port))
                    .unwrap_or_default(),
                max_list_bytes: u.max_list_bytes,
                max_list_items: u.max_list_items,
            })
            .collect(),
    }
}

/// The filter's view of `auth`: API keys as digests only; JWT clients by issuer (Envoy's
/// `jwt_authn` verifies the tokens); the bridge's own key when a bridge runs.
fn access_config(gateway: &Gateway, module: &FilterModule) -> Option<AccessConfig> {
    let auth = gateway.auth.as_ref().filter(|a| !a.clients.is_empty())?;
    Some(AccessConfig {
        clients: auth
            .clients
            .iter()
            .map(|c| access::Client {
                name: c.name.clone(),
                api_key: c.api_key.as_ref().map(|k| access::ApiKey {
                    header: k.header.to_ascii_lowercase(),
                    sha256: k
                        .keys
                        .iter()
                        .map(|key| access::key_digest(&key.0))
                        .chain(k.sha256.iter().map(|h| h.to_ascii_lowercase()))
                        .collect(),
                }),
                jwt_issuer: c.jwt.as_ref().map(|j| j.issuer.clone()),
                cidrs: c.cidrs.clone(),
            })
            .collect(),
        rules: auth
            .rules
            .iter()
            .map(|r| access::Rule {
                clients: r.clients.clone(),
                claims: r.claims.clone().into_iter().collect(),
                allow: lists(&r.allow),
                deny: lists(&r.deny),
            })
            .collect(),
        bridge_key_sha256: module
            .bridge
            .map(|_| access::key_digest(&module.bridge_key)),
    })
}

fn lists(l: &crate::config::auth::ListsConfig) -> access::Lists {
    access::Lists {
        upstreams: l.upstreams.clone(),
        tools: l.tools.clone(),
        prompts: l.prompts.clone(),
        resources: l.resources.iter().map(|p| resource_pattern(p)).collect(),
    }
}

/// A resource glob as rules compare it: the filter normalizes every URI before a rule sees
/// it (RFC 3986: scheme and host in lower case), so the pattern's scheme and host are too.
fn resource_pattern(pattern: &str) -> String {
    match pattern.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            format!(
                "{}://{}{path}",
                scheme.to_ascii_lowercase(),
                authority.to_ascii_lowercase()
            )
        }
        None => pattern.to_string(),
    }
}

/// `server.allowed_hosts`, or for a loopback listener the loopback names (a browser page
/// elsewhere cannot reach it by a name it controls: DNS rebinding).
fn allowed_hosts(gateway: &Gateway) -> Vec<String> {
    if let Some(h) = &gateway.server.allowed_hosts {
        return h.clone();
    }
    if gateway.server.listen.0.ip().is_loopback() {
        [
            "localhost",
            "localhost:*",
            "127.0.0.1",
            "127.0.0.1:*",
            "[::1]",
            "[::1]:*",
        ]
        .map(String::from)
        .to_vec()
    } else {
        Vec::new()
    }
}

/// Every client header that carries credentials: the filter removes them before anything
/// goes upstream.
fn credential_headers(gateway: &Gateway) -> Vec<String> {
    let mut out: Vec<String> = [
        "authorization",
        "cookie",
        "proxy-authorization",
        access::JWT_PAYLOAD_HEADER,
        access::BRIDGE_KEY_HEADER,
        access::IDENTITY_HEADER,
        // Envoy's own, where a route rewrote the path: the audit log reads it.
        "x-envoy-original-path",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let sources = gateway
        .upstreams
        .iter()
        .flat_map(|u| &u.auth.pass_through.headers)
        .map(|h| h.source_header.to_ascii_lowercase());
    push_new(&mut out, api_key_headers(gateway).chain(sources));
    out
}

/// The headers API keys travel in (lower case).
fn api_key_headers(gateway: &Gateway) -> impl Iterator<Item = String> + '_ {
    gateway
        .auth
        .iter()
        .flat_map(|a| &a.clients)
        .filter_map(|c| c.api_key.as_ref().map(|k| k.header.to_ascii_lowercase()))
}

/// Appends the names `out` does not have yet, in order.
fn push_new(out: &mut Vec<String>, names: impl Iterator<Item = String>) {
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
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

/// The Switchboard filter as Envoy loads it: the module, and the filter's configuration.
fn wasm_filter(gateway: &Gateway, module: &FilterModule) -> Wasm {
    Wasm {
        config: Some(wasm::PluginConfig {
            name: "switchboard".into(),
            root_id: "switchboard".into(),
            vm: Some(wasm::plugin_config::Vm::VmConfig(wasm::VmConfig {
                vm_id: format!(
                    "switchboard-{}",
                    module.sha256.get(..16).unwrap_or(&module.sha256)
                ),
                runtime: "envoy.wasm.runtime.v8".into(),
                code: Some(core::AsyncDataSource {
                    specifier: Some(core::async_data_source::Specifier::Local(
                        core::DataSource {
                            specifier: Some(core::data_source::Specifier::Filename(
                                module.path.clone(),
                            )),
                            ..Default::default()
                        },
                    )),
                }),
                ..Default::default()
            })),
            configuration: Some(pack_any(StringValue {
                value: FilterConfig {
                    get_stream: get_stream(gateway, module),
                    ..filter_config(gateway, module)
                }
                .to_json(),
            })),
            // Lets the filter hold the headers until the body has chosen the route.
            allow_on_headers_stop_iteration: Some(BoolValue { value: true }),
            failure_policy: wasm::FailurePolicy::FailClosed as i32,
            ..Default::default()
        }),
    }
}

/// An HTTP filter whose configuration comes by ECDS, as `type_url` (Envoy waits for it
/// before the listener serves, and applies a new one to new streams without draining).
fn discovered_filter(name: &str, type_url: &str) -> hcm::HttpFilter {
    hcm::HttpFilter {
        name: name.into(),
        config_type: Some(hcm::http_filter::ConfigType::ConfigDiscovery(
            core::ExtensionConfigSource {
                config_source: Some(ads()),
                type_urls: vec![type_url.into()],
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// The listener holds only what changes with its address and TLS (and the settings of its
/// connection manager); the filters' configurations come by ECDS, routes by RDS.
fn mcp_listener(gateway: &Gateway) -> listener::Listener {
    let manager = hcm::HttpConnectionManager {
        stat_prefix: "switchboard".into(),
        codec_type: hcm::http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
            hcm::Rds {
                config_source: Some(ads()),
                route_config_name: ROUTE_CONFIG_NAME.into(),
            },
        )),
        // Always the same four, whatever the clients: adding the first JWT client is an edit
        // like any other.
        http_filters: vec![
            jwt::strip_payload_filter(),
            discovered_filter(
                JWT_FILTER_NAME,
                "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            ),
            discovered_filter(
                WASM_FILTER_NAME,
                "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            ),
            http_filter("envoy.filters.http.router", pack_any(Router::default())),
        ],
        normalize_path: Some(BoolValue { value: true }),
        merge_slashes: true,
        // Slow clients (headers or a body trickling in) are not waited for without end.
        request_headers_timeout: Some(duration(gateway.server.request_headers_timeout)),
        request_timeout: Some(duration(gateway.server.request_timeout)),
        stream_idle_timeout: Some(duration(gateway.server.stream_idle_timeout)),
        local_reply_config: Some(local_replies(gateway)),
        access_log: audit::access_logs(gateway),
        ..Default::default()
    };
    let address = gateway.server.listen.0;
    listener::Listener {
        name: LISTENER_NAME.into(),
        address: Some(socket_address(&address.ip().to_string(), address.port())),
        // Envoy buffers a body the filter holds up to this limit and answers 413 in plain
        // text beyond it; leave headroom so the filter's own JSON-RPC 413 comes first.
        per_connection_buffer_limit_bytes: Some(envoy_types::pb::google::protobuf::UInt32Value {
            value: u32::try_from(gateway.server.max_request_bytes.saturating_add(64 * 1024))
                .unwrap_or(u32::MAX),
        }),
        filter_chains: vec![listener::FilterChain {
            filters: vec![listener::Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(listener::filter::ConfigType::TypedConfig(pack_any(manager))),
            }],
            transport_socket: gateway.server.tls.as_ref().map(server_tls),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Browsers' CORS, answered by the filter: Envoy's CORS filter acts only on routes chosen
/// before any filter runs, and the filter chooses `/mcp`'s route from the body (and answers
/// `initialize` itself).
fn cors(gateway: &Gateway) -> Option<filter_config::Cors> {
    let c = gateway.server.cors.as_ref()?;
    let mut headers: Vec<String> = [
        "content-type",
        "accept",
        "authorization",
        "mcp-session-id",
        "mcp-protocol-version",
        "last-event-id",
    ]
    .map(String::from)
    .to_vec();
    push_new(
        &mut headers,
        c.headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .chain(api_key_headers(gateway)),
    );
    Some(filter_config::Cors {
        origins: c.origins.clone(),
        methods: c.methods.join(", "),
        headers: headers.join(", "),
        max_age_s: c.max_age.as_secs(),
    })
}

/// TLS on the gateway's port: the certificate (and the CA that signs client certificates,
/// when they are required) by SDS; HTTP/2 or HTTP/1.1 by ALPN.
fn server_tls(t: &crate::config::model::ServerTls) -> core::TransportSocket {
    let context = tls::DownstreamTlsContext {
        common_tls_context: Some(tls::CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![secret::sds(secret::SERVER_CERT)],
            validation_context_type: t.client_ca.as_ref().map(|_| {
                tls::common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(
                    secret::sds(secret::SERVER_CLIENT_CA),
                )
            }),
            alpn_protocols: vec!["h2".into(), "http/1.1".into()],
            ..Default::default()
        }),
        require_client_certificate: Some(BoolValue {
            value: t.client_ca.is_some(),
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

/// Whether the merged GET stream can work: the bridge reads upstream streams back through
/// this listener, and has no client certificate to show when the listener requires one.
pub fn get_stream(gateway: &Gateway, module: &FilterModule) -> bool {
    module.bridge.is_some()
        && gateway
            .server
            .tls
            .as_ref()
            .is_none_or(|t| t.client_ca.is_none())
}

/// Envoy's own answers in JSON-RPC form. A body over the buffer limit can be refused by
/// Envoy before the filter sees it (one socket read may cross both limits at once).
fn local_replies(gateway: &Gateway) -> hcm::LocalReplyConfig {
    use envoy_types::pb::envoy::config::accesslog::v3 as accesslog;
    let status_is = |code: u32| accesslog::AccessLogFilter {
        filter_specifier: Some(
            accesslog::access_log_filter::FilterSpecifier::StatusCodeFilter(
                accesslog::StatusCodeFilter {
                    comparison: Some(accesslog::ComparisonFilter {
                        op: accesslog::comparison_filter::Op::Eq as i32,
                        value: Some(core::RuntimeUInt32 {
                            default_value: code,
                            runtime_key: format!("switchboard.local_reply.{code}"),
                        }),
                    }),
                },
            ),
        ),
    };
    let json_body = |message: &str| core::SubstitutionFormatString {
        format: Some(core::substitution_format_string::Format::TextFormatSource(
            core::DataSource {
                specifier: Some(core::data_source::Specifier::InlineString(
                    // `%` starts a command in Envoy's format strings.
                    switchboard_protocol::jsonrpc::error_body(
                        None,
                        switchboard_protocol::jsonrpc::code::INVALID_REQUEST,
                        message,
                    )
                    .replace('%', "%%"),
                )),
                ..Default::default()
            },
        )),
        content_type: "application/json".into(),
        ..Default::default()
    };
    hcm::LocalReplyConfig {
        mappers: vec![hcm::ResponseMapper {
            filter: Some(status_is(413)),
            body_format_override: Some(json_body(&format!(
                "Request body exceeds the gateway's limit of {} bytes",
                gateway.server.max_request_bytes
            ))),
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub(crate) fn http_filter(name: &str, config: Any) -> hcm::HttpFilter {
    hcm::HttpFilter {
        name: name.into(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

fn route_configuration(gateway: &Gateway, module: &FilterModule) -> route::RouteConfiguration {
    let server = &gateway.server;
    let bridge = get_stream(gateway, module);
    let mut routes = Vec::new();
    if module.bridge.is_some() && gateway.legacy_sse() {
        routes.extend(legacy_sse_routes(gateway));
    }
    for u in &gateway.upstreams {
        let selected = vec![exact_header(ROUTE_HEADER, &u.name)];
        // The aggregated endpoint: the filter has put the upstream's name in ROUTE_HEADER.
        routes.extend(upstream_routes(
            u,
            &format!("{}-mcp", u.name),
            &server.mcp_path,
            &selected,
        ));
        // The upstream's own endpoint, unprefixed.
        let own = format!("{}/{}/mcp", server.upstream_path, u.name);
        routes.extend(upstream_routes(u, &format!("{}-direct", u.name), &own, &[]));
    }
    if bridge {
        // The merged server-to-client stream: no overall timeout, as for every stream.
        routes.push(route::Route {
            name: "mcp-stream".into(),
            r#match: Some(route::RouteMatch {
                path_specifier: Some(route::route_match::PathSpecifier::Path(
                    server.mcp_path.clone(),
                )),
                headers: vec![exact_header(":method", "GET")],
                ..Default::default()
            }),
            action: Some(route::route::Action::Route(route::RouteAction {
                cluster_specifier: Some(route::route_action::ClusterSpecifier::Cluster(
                    BRIDGE_CLUSTER.into(),
                )),
                timeout: Some(duration(Duration::ZERO)),
                ..Default::default()
            })),
            // The bridge reads the upstreams' streams back through this Envoy listener.
            request_headers_to_add: vec![header_format(
                switchboard_bridge::GATEWAY_HEADER,
                if server.tls.is_some() {
                    "https://%DOWNSTREAM_LOCAL_ADDRESS%"
                } else {
                    "http://%DOWNSTREAM_LOCAL_ADDRESS%"
                },
            )],
            // The client's credentials were removed by the filter; the identity it found
            // stays, for the bridge.
            ..Default::default()
        });
    }
    routes.push(direct_response(
        "mcp-unrouted",
        route::route_match::PathSpecifier::Path(server.mcp_path.clone()),
        503,
        "The gateway could not select an upstream for this request",
    ));
    routes.push(direct_response(
        "not-found",
        route::route_match::PathSpecifier::Prefix("/".into()),
        404,
        &format!("Not found: the MCP endpoint is {}", server.mcp_path),
    ));
    route::RouteConfiguration {
        name: ROUTE_CONFIG_NAME.into(),
        virtual_hosts: vec![route::VirtualHost {
            name: "switchboard".into(),
            domains: vec!["*".into()],
            routes,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The deprecated HTTP+SSE transport for old clients, served by the bridge: the aggregated
/// endpoint at `sse_path`/`messages_path`, each upstream's at `<upstream_path>/<name>/sse`.
fn legacy_sse_routes(gateway: &Gateway) -> Vec<route::Route> {
    use switchboard_bridge::legacy_endpoint::{MESSAGES_HEADER, TARGET_HEADER};
    let server = &gateway.server;
    let stamp = header_format(
        switchboard_bridge::GATEWAY_HEADER,
        if server.tls.is_some() {
            "https://%DOWNSTREAM_LOCAL_ADDRESS%"
        } else {
            "http://%DOWNSTREAM_LOCAL_ADDRESS%"
        },
    );
    let to_bridge = |name: String,
                     path: String,
                     method: &str,
                     rewrite: &str,
                     headers: Vec<core::HeaderValueOption>| route::Route {
        name,
        r#match: Some(route::RouteMatch {
            path_specifier: Some(route::route_match::PathSpecifier::Path(path)),
            headers: vec![exact_header(":method", method)],
            ..Default::default()
        }),
        action: Some(route::route::Action::Route(route::RouteAction {
            cluster_specifier: Some(route::route_action::ClusterSpecifier::Cluster(
                BRIDGE_CLUSTER.into(),
            )),
            prefix_rewrite: rewrite.into(),
            // The event stream lives as long as the client stays.
            timeout: Some(duration(Duration::ZERO)),
            ..Default::default()
        })),
        request_headers_to_add: headers,
        ..Default::default()
    };
    let mut endpoints = vec![(
        "sse".to_string(),
        server.sse_path.clone(),
        server.messages_path.clone(),
        server.mcp_path.clone(),
    )];
    for u in &gateway.upstreams {
        let base = format!("{}/{}", server.upstream_path, u.name);
        endpoints.push((
            format!("{}-sse", u.name),
            format!("{base}/sse"),
            format!("{base}/messages"),
            format!("{base}/mcp"),
        ));
    }
    let mut routes = Vec::new();
    for (name, sse, messages, target) in endpoints {
        routes.push(to_bridge(
            name.clone(),
            sse,
            "GET",
            "/legacy/sse",
            vec![
                stamp.clone(),
                header_value(TARGET_HEADER, &target),
                header_value(MESSAGES_HEADER, &messages),
            ],
        ));
        routes.push(to_bridge(
            format!("{name}-messages"),
            messages,
            "POST",
            "/legacy/messages",
            vec![],
        ));
    }
    routes
}

/// Two routes to one upstream at `path`: GET opens a long-lived SSE stream and so gets no
/// overall timeout; everything else gets the upstream's `timeout`.
fn upstream_routes(
    u: &Upstream,
    name: &str,
    path: &str,
    headers: &[route::HeaderMatcher],
) -> [route::Route; 2] {
    let make = |suffix: &str, method: Option<&str>, timeout: Duration, cluster: String| {
        let mut matchers = headers.to_vec();
        if let Some(m) = method {
            matchers.push(exact_header(":method", m));
        }
        route::Route {
            name: format!("{name}{suffix}"),
            r#match: Some(route::RouteMatch {
                path_specifier: Some(route::route_match::PathSpecifier::Path(path.into())),
                headers: matchers,
                ..Default::default()
            }),
            action: Some(route::route::Action::Route(route::RouteAction {
                cluster_specifier: Some(route::route_action::ClusterSpecifier::Cluster(cluster)),
                prefix_rewrite: u.url.path_and_query(),
                host_rewrite_specifier: Some(
                    route::route_action::HostRewriteSpecifier::HostRewriteLiteral(
                        u.url.authority(),
                    ),
                ),
                timeout: Some(duration(timeout)),
                ..Default::default()
            })),
            request_headers_to_add: u
                .headers
                .iter()
                .map(|(k, v)| header_value(k, &v.0))
                .collect(),
            // The filter removed the client's credentials (and set pass-through headers);
            // configured headers are added after this.
            request_headers_to_remove: vec![
                ROUTE_HEADER.into(),
                switchboard_protocol::access::IDENTITY_HEADER.into(),
            ],
            ..Default::default()
        }
    };
    [
        // Streams: no overall timeout, and their own pool (see `cluster`).
        make(
            "-stream",
            Some("GET"),
            Duration::ZERO,
            stream_cluster_name(&u.name),
        ),
        make("", None, u.timeout, cluster_name(&u.name)),
    ]
}

fn exact_header(name: &str, value: &str) -> route::HeaderMatcher {
    route::HeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(route::header_matcher::HeaderMatchSpecifier::StringMatch(
            matcher::StringMatcher {
                match_pattern: Some(matcher::string_matcher::MatchPattern::Exact(value.into())),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// A header with a literal value: Envoy reads `%…%` in added headers as a command, so a `%`
/// in a configured value (a token, say) is escaped.
fn header_value(key: &str, value: &str) -> core::HeaderValueOption {
    header_format(key, &value.replace('%', "%%"))
}

/// A header whose value is an Envoy format string (`%DOWNSTREAM_LOCAL_ADDRESS%`).
fn header_format(key: &str, format: &str) -> core::HeaderValueOption {
    core::HeaderValueOption {
        header: Some(core::HeaderValue {
            key: key.into(),
            value: format.into(),
            ..Default::default()
        }),
        append_action: core::header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

/// A local JSON-RPC error answer, so a client never gets an empty or text/plain error.
fn direct_response(
    name: &str,
    path: route::route_match::PathSpecifier,
    status: u32,
    message: &str,
) -> route::Route {
    route::Route {
        name: name.into(),
        r#match: Some(route::RouteMatch {
            path_specifier: Some(path),
            ..Default::default()
        }),
        action: Some(route::route::Action::DirectResponse(
            route::DirectResponseAction {
                status,
                body: Some(core::DataSource {
                    specifier: Some(core::data_source::Specifier::InlineString(
                        switchboard_protocol::jsonrpc::error_body(
                            None,
                            switchboard_protocol::jsonrpc::code::INVALID_REQUEST,
                            message,
                        ),
                    )),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )),
        response_headers_to_add: vec![header_value("content-type", "application/json")],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{env::Environment, load_str};
    use envoy_types::pb::envoy::extensions::upstreams::http::v3 as http_options;
    use prost::Message;

    fn gateway(yaml: &str) -> Gateway {
        load_str(yaml, "t.yaml", &Environment::Fixed(Default::default())).unwrap()
    }

    fn module() -> FilterModule {
        FilterModule {
            path: "/opt/switchboard.wasm".into(),
            sha256: "ab".repeat(32),
            fallback_session_key: "k".repeat(32),
            bridge: None,
            tunnels: Default::default(),
            bridge_key: "b".repeat(32),
            bridge_ingress: "i".repeat(32),
        }
    }

    const TWO: &str = "server:\n  listen: 127.0.0.1:8080\nupstreams:\n  - name: local\n    url: http://127.0.0.1:3001/mcp\n    headers: {X-Key: \"k%1%\"}\n    timeout: 5s\n  - name: gh\n    url: https://api.example.com/mcp/\n";

    #[test]
    fn one_cluster_per_upstream_with_deterministic_names() {
        let r = translate(&gateway(TWO), &module());
        let names: Vec<&str> = r.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "upstream-local",
                "upstream-local-stream",
                "upstream-gh",
                "upstream-gh-stream"
            ]
        );
        let local = &r.clusters[0];
        assert_eq!(
            local.cluster_discovery_type,
            Some(envoy_cluster::cluster::ClusterDiscoveryType::Type(
                envoy_cluster::cluster::DiscoveryType::Static as i32
            ))
        );
        assert!(local.transport_socket.is_none());
        let gh = &r.clusters[2];
        let ts = gh.transport_socket.as_ref().unwrap();
        let Some(core::transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type else {
            panic!()
        };
        let tls = tls::UpstreamTlsContext::decode(any.value.as_slice()).unwrap();
        assert_eq!(tls.sni, "api.example.com");
    }

    fn tls_context(c: &envoy_cluster::Cluster) -> tls::UpstreamTlsContext {
        let ts = c.transport_socket.as_ref().unwrap();
        let Some(core::transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type else {
            panic!()
        };
        tls::UpstreamTlsContext::decode(any.value.as_slice()).unwrap()
    }

    fn protocol(c: &envoy_cluster::Cluster) -> http_options::HttpProtocolOptions {
        let any = &c.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        http_options::HttpProtocolOptions::decode(any.value.as_slice()).unwrap()
    }

    #[test]
    fn transport_settings_map_to_each_upstreams_own_cluster() {
        use http_options::http_protocol_options::UpstreamProtocolOptions;
        let g = gateway(
            "upstreams:\n  - name: a\n    url: https://a.example/mcp\n    transport: {http2: true, max_idle_conns: 50, max_idle_conns_per_host: 5, idle_conn_timeout: 30s, timeout: 7s}\n    tls: {ca_cert: ca.pem, client_cert: c.pem, client_key: k.pem, server_name: internal.a}\n  - name: b\n    url: http://127.0.0.1:1/mcp\n    transport: {http2: true}\n  - name: c\n    url: https://c.example/mcp\n    tls: {insecure_skip_verify: true}\n  - name: d\n    url: http://127.0.0.1:2/mcp\n",
        );
        let r = translate(&g, &module());
        let by_name = |n: &str| r.clusters.iter().find(|c| c.name == n).unwrap();
        // Pool limits on the calls' cluster only; the streams' cluster has Envoy's defaults.
        let a = by_name("upstream-a");
        let breakers = a.circuit_breakers.as_ref().unwrap();
        assert_eq!(breakers.thresholds[0].max_connections.unwrap().value, 50);
        assert_eq!(
            breakers.per_host_thresholds[0]
                .max_connections
                .unwrap()
                .value,
            5
        );
        assert!(by_name("upstream-a-stream").circuit_breakers.is_none());
        let d = by_name("upstream-d");
        assert_eq!(
            d.circuit_breakers.as_ref().unwrap().per_host_thresholds[0]
                .max_connections
                .unwrap()
                .value,
            10,
            "the default"
        );
        // HTTP/2 by ALPN over TLS, prior knowledge over plain text only when asked.
        let p = protocol(a);
        assert!(matches!(
            p.upstream_protocol_options,
            Some(UpstreamProtocolOptions::AutoConfig(_))
        ));
        assert_eq!(
            p.common_http_protocol_options.unwrap().idle_timeout,
            Some(duration(Duration::from_secs(30)))
        );
        let h2c = format!(
            "{:?}",
            protocol(by_name("upstream-b")).upstream_protocol_options
        );
        assert!(h2c.contains("Http2ProtocolOptions"), "{h2c}");
        let h1 = format!("{:?}", protocol(d).upstream_protocol_options);
        assert!(
            h1.contains("HttpProtocolOptions(Http1ProtocolOptions"),
            "{h1}"
        );
        assert_eq!(g.upstreams[0].timeout, Duration::from_secs(7));
        // TLS: SNI override, CA and client certificate by SDS, never inline.
        let t = tls_context(a);
        assert_eq!(t.sni, "internal.a");
        let common = t.common_tls_context.unwrap();
        assert_eq!(
            common.tls_certificate_sds_secret_configs[0].name,
            "upstream-a-client-cert"
        );
        assert!(common.tls_certificates.is_empty());
        let Some(tls::common_tls_context::ValidationContextType::CombinedValidationContext(v)) =
            common.validation_context_type
        else {
            panic!("{:?}", common.validation_context_type)
        };
        assert_eq!(
            v.validation_context_sds_secret_config.unwrap().name,
            "upstream-a-ca"
        );
        let san = &v
            .default_validation_context
            .unwrap()
            .match_typed_subject_alt_names[0];
        assert_eq!(
            san.matcher.as_ref().unwrap().match_pattern,
            Some(matcher::string_matcher::MatchPattern::Exact(
                "internal.a".into()
            ))
        );
        let names: Vec<&str> = r.secrets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["upstream-a-ca", "upstream-a-client-cert"]);
        // Verification off only when asked.
        let c = tls_context(by_name("upstream-c"));
        assert!(
            c.common_tls_context
                .unwrap()
                .validation_context_type
                .is_none()
        );
        assert!(g.warnings().iter().any(|w| w.contains("NOT verified")));
    }

    #[test]
    fn a_jwks_url_is_fetched_over_tls_checked_like_an_upstreams() {
        let g = gateway(
            "auth:\n  clients:\n    - name: people\n      jwt: {issuer: i, jwks: {url: \"https://idp.example/jwks.json\"}}\nupstreams:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n",
        );
        let r = translate(&g, &module());
        let jwks = r.clusters.iter().find(|c| c.name == "jwks-people").unwrap();
        let t = tls_context(jwks);
        assert_eq!(t.sni, "idp.example");
        let Some(tls::common_tls_context::ValidationContextType::CombinedValidationContext(c)) =
            t.common_tls_context.unwrap().validation_context_type
        else {
            panic!()
        };
        // The system roots as the control plane found them, by SDS; the name checked here.
        assert_eq!(
            c.validation_context_sds_secret_config.unwrap().name,
            secret::SYSTEM_ROOTS
        );
        let v = c.default_validation_context.unwrap();
        assert!(v.system_root_certs.is_none());
        assert_eq!(
            v.match_typed_subject_alt_names[0]
                .matcher
                .as_ref()
                .unwrap()
                .match_pattern,
            Some(matcher::string_matcher::MatchPattern::Exact(
                "idp.example".into()
            ))
        );
    }

    #[test]
    fn routes_select_by_header_and_per_upstream_path() {
        let r = translate(&gateway(TWO), &module());
        let routes = &r.routes[0].virtual_hosts[0].routes;
        let names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "local-mcp-stream",
                "local-mcp",
                "local-direct-stream",
                "local-direct",
                "gh-mcp-stream",
                "gh-mcp",
                "gh-direct-stream",
                "gh-direct",
                "mcp-unrouted",
                "not-found"
            ]
        );
        let local = &routes[1];
        let m = local.r#match.as_ref().unwrap();
        assert_eq!(
            m.path_specifier,
            Some(route::route_match::PathSpecifier::Path("/mcp".into()))
        );
        assert_eq!(m.headers[0].name, ROUTE_HEADER);
        let Some(route::route::Action::Route(action)) = &local.action else {
            panic!()
        };
        assert_eq!(action.timeout, Some(duration(Duration::from_secs(5))));
        assert_eq!(action.prefix_rewrite, "/mcp");
        let added = local.request_headers_to_add[0].header.as_ref().unwrap();
        assert_eq!(
            (added.key.as_str(), added.value.as_str()),
            ("X-Key", "k%%1%%"),
            "a literal % is escaped for Envoy's header formatter"
        );
        let direct = &routes[7];
        let m = direct.r#match.as_ref().unwrap();
        assert_eq!(
            m.path_specifier,
            Some(route::route_match::PathSpecifier::Path(
                "/upstreams/gh/mcp".into()
            ))
        );
        let Some(route::route::Action::Route(action)) = &direct.action else {
            panic!()
        };
        assert_eq!(action.prefix_rewrite, "/mcp/");
        assert_eq!(
            action.host_rewrite_specifier,
            Some(
                route::route_action::HostRewriteSpecifier::HostRewriteLiteral(
                    "api.example.com".into()
                )
            )
        );
        let Some(route::route::Action::Route(stream)) = &routes[0].action else {
            panic!()
        };
        assert_eq!(stream.timeout, Some(duration(Duration::ZERO)));
    }

    #[test]
    fn listener_carries_wasm_filter_with_contract() {
        let g = gateway(TWO);
        let r = translate(&g, &module());
        let l = &r.listeners[0];
        let Some(listener::filter::ConfigType::TypedConfig(any)) =
            &l.filter_chains[0].filters[0].config_type
        else {
            panic!()
        };
        let m = hcm::HttpConnectionManager::decode(any.value.as_slice()).unwrap();
        let names: Vec<&str> = m.http_filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "envoy.filters.http.header_mutation",
                JWT_FILTER_NAME,
                WASM_FILTER_NAME,
                "envoy.filters.http.router"
            ]
        );
        // The filter's configuration is not in the listener: it comes by ECDS.
        let Some(hcm::http_filter::ConfigType::ConfigDiscovery(source)) =
            &m.http_filters[2].config_type
        else {
            panic!("the wasm filter is not discovered")
        };
        assert!(source.type_urls[0].ends_with("wasm.v3.Wasm"));
        let ext = r
            .extension_configs
            .iter()
            .find(|e| e.name == WASM_FILTER_NAME)
            .unwrap();
        let w = Wasm::decode(ext.typed_config.as_ref().unwrap().value.as_slice()).unwrap();
        let pc = w.config.unwrap();
        assert_eq!(
            pc.allow_on_headers_stop_iteration,
            Some(BoolValue { value: true })
        );
        let cfg = StringValue::decode(pc.configuration.unwrap().value.as_slice()).unwrap();
        assert_eq!(
            FilterConfig::from_json(cfg.value.as_bytes()).unwrap(),
            filter_config(&g, &module())
        );
    }

    #[test]
    fn edits_of_rules_cors_upstreams_and_jwt_clients_leave_the_listener_as_it_is() {
        let base = "server:\n  cors: {origins: [\"https://a\"]}\nauth:\n  clients:\n    - name: ci\n      api_key: {keys: [\"0123456789abcdef\"]}\nupstreams:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n";
        let edited = "server:\n  cors: {origins: [\"https://b\"]}\nauth:\n  clients:\n    - name: ci\n      api_key: {keys: [\"0123456789abcdef\"]}\n    - name: people\n      jwt: {issuer: i, jwks: {url: \"http://idp/j\"}}\n  rules:\n    - clients: [ci]\n      allow: {upstreams: [a]}\nupstreams:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n  - name: b\n    url: http://127.0.0.1:2/mcp\n";
        let (one, two) = (
            translate(&gateway(base), &module()),
            translate(&gateway(edited), &module()),
        );
        assert_eq!(one.listeners, two.listeners);
        assert_ne!(one.extension_configs, two.extension_configs);
    }

    #[test]
    fn translation_is_deterministic() {
        let g = gateway(TWO);
        assert_eq!(translate(&g, &module()), translate(&g, &module()));
    }
}
