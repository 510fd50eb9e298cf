//! The MCP listener: address, server TLS, the HTTP connection manager with its filter chain
//! (configurations by ECDS, routes by RDS) and Envoy's own answers in JSON-RPC form.

use super::*;

/// An HTTP filter whose configuration comes by ECDS, as `type_url` (Envoy waits for it
/// before the listener serves, and applies a new one to new streams without draining).
pub(super) fn discovered_filter(name: &str, type_url: &str) -> hcm::HttpFilter {
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
pub(super) fn mcp_listener(gateway: &Gateway, data_plane: DataPlane) -> envoy_listener::Listener {
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
            discovered_filter(MCP_FILTER_NAME, data_plane.type_url()),
            http_filter("envoy.filters.http.router", pack_any(Router::default())),
        ],
        // Host routes pass paths byte for byte; the gateway's own endpoints match exact
        // paths either way.
        normalize_path: Some(BoolValue {
            value: gateway.hosts.is_none(),
        }),
        merge_slashes: gateway.hosts.is_none(),
        // Slow clients (headers or a body trickling in) are not waited for without end.
        request_headers_timeout: Some(duration(gateway.server.request_headers_timeout)),
        request_timeout: Some(duration(gateway.server.request_timeout)),
        stream_idle_timeout: Some(duration(gateway.server.stream_idle_timeout)),
        local_reply_config: Some(local_replies(gateway)),
        access_log: audit::access_logs(gateway, data_plane),
        tracing: gateway
            .tracing
            .as_ref()
            .map(|t| super::tracing::tracing(t, data_plane)),
        ..Default::default()
    };
    let address = gateway.server.listen.0;
    envoy_listener::Listener {
        name: LISTENER_NAME.into(),
        address: Some(socket_address(&address.ip().to_string(), address.port())),
        // Envoy buffers a body the filter holds up to this limit and answers 413 in plain
        // text beyond it; leave headroom so the filter's own JSON-RPC 413 comes first.
        per_connection_buffer_limit_bytes: Some(envoy_types::pb::google::protobuf::UInt32Value {
            value: u32::try_from(gateway.server.max_request_bytes.saturating_add(64 * 1024))
                .unwrap_or(u32::MAX),
        }),
        filter_chains: vec![envoy_listener::FilterChain {
            filters: vec![envoy_listener::Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(envoy_listener::filter::ConfigType::TypedConfig(pack_any(
                    manager,
                ))),
            }],
            transport_socket: gateway.server.tls.as_ref().map(server_tls),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// TLS on the gateway's port: the certificate (and the CA that signs client certificates,
/// when they are required) by SDS; HTTP/2 or HTTP/1.1 by ALPN.
pub(super) fn server_tls(t: &crate::config::model::ServerTls) -> core::TransportSocket {
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

/// Envoy's own answers in JSON-RPC form. A body over the buffer limit can be refused by
/// Envoy before the filter sees it (one socket read may cross both limits at once).
pub(super) fn local_replies(gateway: &Gateway) -> hcm::LocalReplyConfig {
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
