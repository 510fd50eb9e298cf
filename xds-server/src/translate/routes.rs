//! The route configuration (RDS): the route selector the filter sets picks each upstream's
//! cluster; per-upstream endpoints, the bridge's paths and the legacy `/sse` transport.

use super::*;

pub(super) fn route_configuration(
    gateway: &Gateway,
    module: &FilterModule,
) -> route::RouteConfiguration {
    let server = &gateway.server;
    let bridge = get_stream(gateway, module);
    // The Protected Resource Metadata (`auth.oauth`), answered by Envoy itself.
    let mut routes = super::oauth::metadata_routes(gateway);
    if bridge {
        // What the filter sends the bridge by selector, from any endpoint (only the filter
        // sets the selector): a 2026-07-28 client's subscription stream, and a call the
        // bridge holds while a client answers an upstream's question. First, so that no
        // upstream's own route takes them.
        for (name, selector) in [
            (
                "mcp-listen",
                switchboard_protocol::subscriptions::LISTEN_ROUTE,
            ),
            (
                "mcp-interactive",
                switchboard_protocol::interactive::INTERACTIVE_ROUTE,
            ),
        ] {
            let mut r = merged_stream_route(
                gateway,
                name,
                vec![
                    exact_header(":method", "POST"),
                    exact_header(ROUTE_HEADER, selector),
                ],
            );
            if let Some(m) = r.r#match.as_mut() {
                m.path_specifier = Some(route::route_match::PathSpecifier::Prefix("/".into()));
            }
            routes.push(r);
        }
    }
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
        routes.push(merged_stream_route(
            gateway,
            "mcp-stream",
            vec![exact_header(":method", "GET")],
        ));
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
    let mut virtual_hosts = gateway
        .hosts
        .as_ref()
        .map(hosts::virtual_hosts)
        .unwrap_or_default();
    // A tunnel file has host routes only: every other name is unknown.
    if gateway.hosts.is_some() && gateway.upstreams.is_empty() {
        routes = vec![hosts::unknown_host()];
    }
    virtual_hosts.push(route::VirtualHost {
        name: "switchboard".into(),
        domains: vec!["*".into()],
        routes,
        ..Default::default()
    });
    route::RouteConfiguration {
        name: ROUTE_CONFIG_NAME.into(),
        virtual_hosts,
        ..Default::default()
    }
}

/// A stream the bridge merges (the 2025 GET stream, a 2026-07-28 subscription): no overall
/// timeout, as for every stream.
fn merged_stream_route(
    gateway: &Gateway,
    name: &str,
    headers: Vec<route::HeaderMatcher>,
) -> route::Route {
    route::Route {
        name: name.into(),
        r#match: Some(route::RouteMatch {
            path_specifier: Some(route::route_match::PathSpecifier::Path(
                gateway.server.mcp_path.clone(),
            )),
            headers,
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
            if gateway.server.tls.is_some() {
                "https://%DOWNSTREAM_LOCAL_ADDRESS%"
            } else {
                "http://%DOWNSTREAM_LOCAL_ADDRESS%"
            },
        )],
        // The client's credentials were removed by the filter; the identity it found
        // stays, for the bridge.
        ..Default::default()
    }
}

/// The deprecated HTTP+SSE transport for old clients, served by the bridge: the aggregated
/// endpoint at `sse_path`/`messages_path`, each upstream's at `<upstream_path>/<name>/sse`.
pub(super) fn legacy_sse_routes(gateway: &Gateway) -> Vec<route::Route> {
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
pub(super) fn upstream_routes(
    u: &Upstream,
    name: &str,
    path: &str,
    headers: &[route::HeaderMatcher],
) -> [route::Route; 3] {
    let make = |suffix: &str,
                method: Option<(&str, Option<&str>)>,
                timeout: Duration,
                cluster: String| {
        let mut matchers = headers.to_vec();
        if let Some((m, mcp_method)) = method {
            matchers.push(exact_header(":method", m));
            if let Some(mcp) = mcp_method {
                matchers.push(exact_header(switchboard_protocol::wire::METHOD_HEADER, mcp));
            }
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
            // The filter removed the client's credentials and set the pass-through and
            // configured headers (their values are in no route: see `FilterConfig::secrets`).
            request_headers_to_remove: vec![
                ROUTE_HEADER.into(),
                switchboard_protocol::access::IDENTITY_HEADER.into(),
            ],
            ..Default::default()
        }
    };
    [
        // Streams: no overall timeout, and their own pool (see `cluster`): the 2025 GET
        // stream, and the 2026-07-28 subscription stream (a POST the filter has checked
        // names the method it carries).
        make(
            "-stream",
            Some(("GET", None)),
            Duration::ZERO,
            stream_cluster_name(&u.name),
        ),
        make(
            "-listen",
            Some(("POST", Some(switchboard_protocol::subscriptions::LISTEN))),
            Duration::ZERO,
            stream_cluster_name(&u.name),
        ),
        make("", None, u.timeout, cluster_name(&u.name)),
    ]
}

pub(super) fn exact_header(name: &str, value: &str) -> route::HeaderMatcher {
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
pub(super) fn header_value(key: &str, value: &str) -> core::HeaderValueOption {
    header_format(key, &value.replace('%', "%%"))
}

/// A header whose value is an Envoy format string (`%DOWNSTREAM_LOCAL_ADDRESS%`).
pub(super) fn header_format(key: &str, format: &str) -> core::HeaderValueOption {
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
pub(super) fn direct_response(
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
