use super::*;
use crate::config::{env::Environment, load_str};
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as http_options;
use prost::Message;

fn gateway(yaml: &str) -> Gateway {
    load_str(yaml, "t.yaml", &Environment::Fixed(Default::default())).unwrap()
}

fn module() -> FilterModule {
    FilterModule::example()
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
            "local-mcp-listen",
            "local-mcp",
            "local-direct-stream",
            "local-direct-listen",
            "local-direct",
            "gh-mcp-stream",
            "gh-mcp-listen",
            "gh-mcp",
            "gh-direct-stream",
            "gh-direct-listen",
            "gh-direct",
            "mcp-unrouted",
            "not-found"
        ]
    );
    let local = &routes[2];
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
    assert!(
        local.request_headers_to_add.is_empty(),
        "configured header values are set by the filter, never in a route"
    );
    // A subscription stream (2026-07-28) at an upstream's own endpoint: no timeout.
    let listen = &routes[10];
    let m = listen.r#match.as_ref().unwrap();
    assert!(
        m.headers
            .iter()
            .any(|h| h.name == switchboard_protocol::wire::METHOD_HEADER)
    );
    let Some(route::route::Action::Route(action)) = &listen.action else {
        panic!()
    };
    assert_eq!(action.timeout, Some(duration(Duration::ZERO)));
    let direct = &routes[11];
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
            route::route_action::HostRewriteSpecifier::HostRewriteLiteral("api.example.com".into())
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
    let Some(envoy_listener::filter::ConfigType::TypedConfig(any)) =
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
            MCP_FILTER_NAME,
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
        .find(|e| e.name == MCP_FILTER_NAME)
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

#[test]
fn both_data_planes_get_the_same_contract_and_their_secrets_sealed() {
    use envoy_types::pb::envoy::extensions::filters::http::dynamic_modules::v3::DynamicModuleFilter;
    let g = gateway(
        "session:\n  key: \"0123456789abcdef0123456789abcdef\"\nauth:\n  clients:\n    - name: ci\n      api_key: {keys: [\"0123456789abcdef\"]}\nupstreams:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n    headers: {x-token: s3cret}\n",
    );
    let mut m = module();
    m.data_plane = DataPlane::Native;
    let r = translate(&g, &m);
    let ext = r
        .extension_configs
        .iter()
        .find(|e| e.name == MCP_FILTER_NAME)
        .unwrap();
    let any = ext.typed_config.as_ref().unwrap();
    assert_eq!(any.type_url, DataPlane::Native.type_url());
    let f = DynamicModuleFilter::decode(any.value.as_slice()).unwrap();
    let dm = f.dynamic_module_config.unwrap();
    // Never unloaded: the process-wide cache lives in the module.
    assert!(dm.do_not_close);
    assert_eq!(dm.metrics_namespace, "dynamicmodulescustom");
    assert_eq!(f.filter_name, "switchboard");
    let cfg = StringValue::decode(f.filter_config.unwrap().value.as_slice()).unwrap();
    assert_eq!(
        FilterConfig::from_json(cfg.value.as_bytes()).unwrap(),
        filter_config(&g, &m),
        "without a secrets key, the same contract as wasm"
    );

    // With a secrets key (`run`'s, or SWITCHBOARD_SECRETS_KEY), both shells get them
    // sealed: the configuration Envoy holds and prints has none of them.
    m.secrets_key = Some("the-deployment-key".into());
    for data_plane in [DataPlane::Native, DataPlane::Wasm] {
        m.data_plane = data_plane;
        let r = translate(&g, &m);
        let any = r
            .extension_configs
            .iter()
            .find(|e| e.name == MCP_FILTER_NAME)
            .unwrap();
        let bytes = any.typed_config.as_ref().unwrap().value.as_slice();
        let shown = match data_plane {
            DataPlane::Native => {
                let f = DynamicModuleFilter::decode(bytes).unwrap();
                StringValue::decode(f.filter_config.unwrap().value.as_slice())
                    .unwrap()
                    .value
            }
            DataPlane::Wasm => {
                let pc = Wasm::decode(bytes).unwrap().config.unwrap();
                let Some(wasm::plugin_config::Vm::VmConfig(vm)) = &pc.vm else {
                    panic!("no vm_config")
                };
                assert_eq!(
                    vm.environment_variables.as_ref().unwrap().host_env_keys,
                    ["SWITCHBOARD_SECRETS_KEY"],
                    "the VM sees the key in Envoy's environment"
                );
                StringValue::decode(pc.configuration.unwrap().value.as_slice())
                    .unwrap()
                    .value
            }
        };
        assert!(
            !shown.contains("s3cret") && !shown.contains("0123456789abcdef0123456789abcdef"),
            "{shown}"
        );
        let mut opened = FilterConfig::from_json(shown.as_bytes()).unwrap();
        assert!(opened.sealed_secrets.is_some());
        opened.open_secrets(Some("the-deployment-key")).unwrap();
        assert_eq!(opened, filter_config(&g, &m));
    }
}

#[test]
fn the_gateway_file_chooses_the_data_plane_unless_the_command_line_did() {
    let g = gateway(
        "server:\n  data_plane: wasm\nupstreams:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n",
    );
    let mut m = module();
    m.data_plane = DataPlane::Native;
    assert_eq!(m.data_plane_for(&g), DataPlane::Wasm);
    m.data_plane_pinned = true;
    assert_eq!(m.data_plane_for(&g), DataPlane::Native);
    let e = load_str(
        "server:\n  data_plane: v8\nupstreams:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n",
        "g.yaml",
        &Environment::Process,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("g.yaml:2") && e.contains("data_plane"), "{e}");
}

/// `auth.oauth` over two upstreams, `gh` exchanging tokens with a secret.
const OAUTH: &str = "server:\n  listen: 127.0.0.1:8080\nauth:\n  oauth:\n    resource: https://gw.example/mcp\n    authorization_servers:\n      - issuer: https://idp.example\n        jwks: {url: https://idp.example/jwks}\n        token_endpoint: https://idp.example/token\n    scopes: [mcp]\nupstreams:\n  - name: local\n    url: http://127.0.0.1:3001/mcp\n  - name: gh\n    url: https://api.example.com/mcp/\n    auth:\n      token_exchange:\n        audience: gh-api\n        client_id: gateway\n        client_secret: exchange-s3cret\n";

#[test]
fn oauth_becomes_metadata_routes_a_verifying_provider_and_the_filters_challenge() {
    use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3 as jwt_authn;
    let g = gateway(OAUTH);
    let r = translate(&g, &module());
    // Metadata at the well-known path, for the gateway and for each endpoint.
    let routes = &r.routes[0].virtual_hosts.last().unwrap().routes;
    let metadata: Vec<(String, serde_json::Value)> = routes
        .iter()
        .filter_map(|route| {
            let Some(route::route_match::PathSpecifier::Path(p)) =
                route.r#match.as_ref()?.path_specifier.clone()
            else {
                return None;
            };
            let Some(route::route::Action::DirectResponse(d)) = &route.action else {
                return None;
            };
            let Some(core::data_source::Specifier::InlineString(body)) =
                d.body.as_ref()?.specifier.clone()
            else {
                return None;
            };
            p.starts_with("/.well-known/")
                .then(|| (p, serde_json::from_str(&body).unwrap()))
        })
        .collect();
    let paths: Vec<&str> = metadata.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource/upstreams/local/mcp",
            "/.well-known/oauth-protected-resource/upstreams/gh/mcp",
        ]
    );
    assert_eq!(metadata[1].1["resource"], "https://gw.example/mcp");
    assert_eq!(
        metadata[3].1["resource"],
        "https://gw.example/upstreams/gh/mcp"
    );
    assert_eq!(
        metadata[1].1["authorization_servers"],
        serde_json::json!(["https://idp.example"])
    );

    // jwt_authn: the gateway's audience, the header only, the token kept for exchange, and
    // failures left to the filter's challenge; an upstream's endpoint takes its own too.
    let any = r.extension_configs[0].typed_config.clone().unwrap();
    let authn = jwt_authn::JwtAuthentication::decode(any.value.as_slice()).unwrap();
    let provider = &authn.providers["oauth-0"];
    assert_eq!(provider.audiences, ["https://gw.example/mcp"]);
    assert!(provider.forward);
    assert_eq!(provider.from_headers[0].name, "authorization");
    assert!(
        provider.from_params.is_empty(),
        "no token in a query string"
    );
    let debug = format!("{:?}", authn.rules);
    assert!(debug.contains("AllowMissingOrFailed"), "{debug}");
    assert!(
        debug.contains("https://gw.example/upstreams/gh/mcp"),
        "{debug}"
    );
    let clusters: Vec<&str> = r.clusters.iter().map(|c| c.name.as_str()).collect();
    assert!(clusters.contains(&"oauth-jwks-0") && clusters.contains(&"oauth-token-0"));

    // The filter: its challenge, the exchange; the client secret only sealed.
    let config = filter_config(&g, &module());
    let oauth = config.access.as_ref().unwrap().oauth.as_ref().unwrap();
    assert_eq!(
        oauth.metadata,
        "https://gw.example/.well-known/oauth-protected-resource"
    );
    assert_eq!(oauth.scope, "mcp");
    let te = config.upstreams[1].token_exchange.as_ref().unwrap();
    assert_eq!(
        (te.cluster.as_str(), te.path.as_str()),
        ("oauth-token-0", "/token")
    );
    let mut sealed = config.clone();
    sealed.seal_secrets(&"x".repeat(32));
    let shown = sealed.to_json();
    assert!(!shown.contains("exchange-s3cret"), "{shown}");
    sealed.open_secrets(Some(&"x".repeat(32))).unwrap();
    assert_eq!(sealed, config);
}
