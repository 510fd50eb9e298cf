//! The filter's configuration: the contract (`switchboard_protocol::filter_config`) the data
//! plane receives, and the wasm filter that carries it, delivered by ECDS.

use super::*;
use envoy_types::pb::envoy::extensions::dynamic_modules::v3::DynamicModuleConfig;
use envoy_types::pb::envoy::extensions::filters::http::dynamic_modules::v3::DynamicModuleFilter;
use switchboard_protocol::filter_config::SECRETS_KEY_ENV;
use switchboard_protocol::wire;

/// The contract the filter receives in its `PluginConfig.configuration`.
pub fn filter_config(gateway: &Gateway, module: &FilterModule) -> FilterConfig {
    let session_key = module.fallback_session_key.as_str();
    FilterConfig {
        access: access_config(gateway, module),
        cors: cors(gateway),
        // The audit log and the spans' tags read the filter's findings.
        audit: gateway.audit.is_some() || gateway.tracing.is_some(),
        allowed_hosts: allowed_hosts(gateway),
        loopback_origins: gateway.server.listen.0.ip().is_loopback(),
        credential_headers: credential_headers(gateway),
        upstream_path: gateway.server.upstream_path.clone(),
        mcp_path: gateway.server.mcp_path.clone(),
        max_request_bytes: gateway.server.max_request_bytes,
        sealed_secrets: None,
        trace_calls: gateway.tracing.is_some(),
        host_routes: gateway.hosts.as_ref().map(|h| host_routes(gateway, h)),
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
        fan_out: gateway.aggregation.fan_out,
        get_stream: get_stream(gateway, module),
        stateless_clients: gateway.server.stateless_clients,
        prefix_mode: gateway.aggregation.prefix_mode,
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
                // The bridge speaks the 2025 revision for what it hosts.
                rest_tools: (u.kind == UpstreamKind::Openapi).then(|| u.rest_tools.clone()),
                protocol: match u.kind {
                    UpstreamKind::Http | UpstreamKind::Openapi => u.protocol,
                    _ => filter_config::UpstreamProtocol::Legacy,
                },
                token_exchange: u
                    .auth
                    .token_exchange
                    .as_ref()
                    .and_then(|te| super::oauth::token_exchange(gateway, te)),
            })
            .collect(),
    }
}

/// The filter's view of `auth`: API keys as digests only; JWT clients by issuer (Envoy's
/// `jwt_authn` verifies the tokens); the bridge's own key when a bridge runs.
pub(super) fn access_config(gateway: &Gateway, module: &FilterModule) -> Option<AccessConfig> {
    let auth = gateway
        .auth
        .as_ref()
        .filter(|a| !a.clients.is_empty() || a.oauth.is_some())?;
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
            .chain(super::oauth::clients(gateway))
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
        oauth: super::oauth::filter_oauth(gateway),
    })
}

pub(super) fn lists(l: &crate::config::auth::ListsConfig) -> access::Lists {
    access::Lists {
        upstreams: l.upstreams.clone(),
        tools: l.tools.clone(),
        prompts: l.prompts.clone(),
        resources: l.resources.iter().map(|p| resource_pattern(p)).collect(),
        hosts: l.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
    }
}

/// A resource glob as rules compare it: the filter normalizes every URI before a rule sees
/// it (RFC 3986: scheme and host in lower case), so the pattern's scheme and host are too.
pub(super) fn resource_pattern(pattern: &str) -> String {
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
pub(super) fn allowed_hosts(gateway: &Gateway) -> Vec<String> {
    if let Some(h) = &gateway.server.allowed_hosts {
        return h.clone();
    }
    if gateway.server.listen.0.ip().is_loopback() {
        let mut hosts: Vec<String> = [
            "localhost",
            "localhost:*",
            "127.0.0.1",
            "127.0.0.1:*",
            "[::1]",
            "[::1]:*",
        ]
        .map(String::from)
        .to_vec();
        // Names under the tunnel domain that no route serves get Envoy's 404 instead.
        if let Some(domain) = gateway.hosts.as_ref().and_then(|h| h.domain.as_ref()) {
            hosts.extend([format!("*.{domain}"), format!("*.{domain}:*")]);
        }
        hosts
    } else {
        Vec::new()
    }
}

/// Every client header that carries credentials: the filter removes them before anything
/// goes upstream.
pub(super) fn credential_headers(gateway: &Gateway) -> Vec<String> {
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

/// The host routes as the filter checks them, with the headers it removes there: the
/// gateway's own always, the credentials it consumed unless `forward_credentials`.
fn host_routes(
    gateway: &Gateway,
    hosts: &crate::config::hosts::Hosts,
) -> filter_config::HostRoutes {
    let mut strip: Vec<String> = [
        access::JWT_PAYLOAD_HEADER,
        access::BRIDGE_KEY_HEADER,
        access::IDENTITY_HEADER,
    ]
    .into_iter()
    .map(String::from)
    .collect();
    if !hosts.forward_credentials {
        let jwt = gateway
            .auth
            .iter()
            .flat_map(|a| &a.clients)
            .any(|c| c.jwt.is_some());
        push_new(
            &mut strip,
            api_key_headers(gateway).chain(jwt.then(|| "authorization".to_string())),
        );
    }
    filter_config::HostRoutes {
        routes: hosts
            .domains()
            .into_iter()
            .map(|(r, names)| filter_config::HostRoute {
                name: r.key.clone(),
                hosts: names,
            })
            .collect(),
        strip_headers: strip,
        domain: hosts.domain.clone(),
        exclusive: gateway.upstreams.is_empty(),
    }
}

/// The headers API keys travel in (lower case).
pub(super) fn api_key_headers(gateway: &Gateway) -> impl Iterator<Item = String> + '_ {
    gateway
        .auth
        .iter()
        .flat_map(|a| &a.clients)
        .filter_map(|c| c.api_key.as_ref().map(|k| k.header.to_ascii_lowercase()))
}

/// Appends the names `out` does not have yet, in order.
pub(super) fn push_new(out: &mut Vec<String>, names: impl Iterator<Item = String>) {
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
}

/// Browsers' CORS, answered by the filter: Envoy's CORS filter acts only on routes chosen
/// before any filter runs, and the filter chooses `/mcp`'s route from the body (and answers
/// `initialize` itself).
pub(super) fn cors(gateway: &Gateway) -> Option<filter_config::Cors> {
    let c = gateway.server.cors.as_ref()?;
    let mut headers: Vec<String> = [
        "content-type",
        "accept",
        "authorization",
        wire::SESSION_HEADER,
        wire::VERSION_HEADER,
        wire::LAST_EVENT_ID_HEADER,
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

/// The Switchboard filter as Envoy loads it: the module, and the filter's configuration.
/// The MCP filter as the module's data plane carries it, with the same configuration.
pub(super) fn mcp_filter(gateway: &Gateway, module: &FilterModule) -> Any {
    match module.data_plane_for(gateway) {
        DataPlane::Wasm => pack_any(wasm_filter(gateway, module)),
        DataPlane::Native => pack_any(native_filter(gateway, module)),
    }
}

/// The configuration as Envoy receives it: with a secrets key, the secrets sealed with it
/// (the filter opens them with the key from Envoy's environment, [`SECRETS_KEY_ENV`]), so
/// Envoy's `config_dump` shows none of them.
fn data_plane_config(gateway: &Gateway, module: &FilterModule) -> FilterConfig {
    let mut config = filter_config(gateway, module);
    if let Some(key) = &module.secrets_key {
        config.seal_secrets(key);
    }
    config
}

/// Where the native shell's stats live (`dynamicmodulescustom.switchboard.tool_calls_total…`).
pub const NATIVE_METRICS_NAMESPACE: &str = "dynamicmodulescustom";

/// The dynamic module: loaded from its file once per Envoy process and never unloaded (its
/// process-wide list cache outlives any one configuration).
fn native_filter(gateway: &Gateway, module: &FilterModule) -> DynamicModuleFilter {
    let config = data_plane_config(gateway, module);
    DynamicModuleFilter {
        dynamic_module_config: Some(DynamicModuleConfig {
            module: Some(core::AsyncDataSource {
                specifier: Some(core::async_data_source::Specifier::Local(
                    core::DataSource {
                        specifier: Some(core::data_source::Specifier::Filename(
                            module.native_path.clone(),
                        )),
                        ..Default::default()
                    },
                )),
            }),
            do_not_close: true,
            // Envoy's own default, a custom stat namespace like wasm's `wasmcustom`: the
            // bootstrap's runtime makes Prometheus drop it (see `bootstrap::runtime`).
            metrics_namespace: NATIVE_METRICS_NAMESPACE.into(),
            ..Default::default()
        }),
        filter_name: "switchboard".into(),
        filter_config: Some(pack_any(StringValue {
            value: config.to_json(),
        })),
        ..Default::default()
    }
}

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
                // The key of the sealed secrets, from Envoy's own environment.
                environment_variables: module.secrets_key.as_ref().map(|_| {
                    wasm::EnvironmentVariables {
                        host_env_keys: vec![SECRETS_KEY_ENV.into()],
                        ..Default::default()
                    }
                }),
                ..Default::default()
            })),
            configuration: Some(pack_any(StringValue {
                value: data_plane_config(gateway, module).to_json(),
            })),
            // Lets the filter hold the headers until the body has chosen the route.
            allow_on_headers_stop_iteration: Some(BoolValue { value: true }),
            failure_policy: wasm::FailurePolicy::FailClosed as i32,
            ..Default::default()
        }),
    }
}
