//! Host routes as Envoy resources: a virtual host per route (its names, and `<name>:*` for a
//! `Host` with a port), a `*.<tunnel_domain>` virtual host that refuses unknown names, and a
//! cluster per route whose endpoints are the addresses the IP guard permits — never a name
//! Envoy would resolve itself.

use super::cluster::{Verify, protocol_options, tls_to};
use super::routes::{direct_response, header_value};
use super::*;
use crate::config::hosts::{HostRoute, Hosts, Resolved};
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;
use std::net::IpAddr;

/// The CA bundle `https://` host routes are checked against (`upstream.tls`).
pub const HOSTS_CA: &str = "switchboard-hosts-ca";

pub fn cluster_name(route: &HostRoute) -> String {
    format!("host-{}", route.key)
}

/// The route's name in Envoy (and in its local replies).
pub fn route_name(route: &HostRoute) -> String {
    format!("host:{}", route.key)
}

/// The addresses a route may connect to: its IP, or what its name resolved to, less what
/// the guard refuses.
pub fn allowed_addresses(hosts: &Hosts, route: &HostRoute, resolved: &Resolved) -> Vec<IpAddr> {
    let found = match route.target.ip() {
        Some(ip) => vec![ip],
        None => resolved
            .get(&route.target.host)
            .cloned()
            .unwrap_or_default(),
    };
    found
        .into_iter()
        .filter(|ip| hosts.guard.permits(*ip))
        .collect()
}

pub(super) fn clusters(hosts: &Hosts, resolved: &Resolved) -> Vec<envoy_cluster::Cluster> {
    use envoy_cluster::cluster::{ClusterDiscoveryType, DiscoveryType};
    hosts
        .routes
        .iter()
        .map(|route| {
            let name = cluster_name(route);
            let target = &route.target;
            let endpoints = allowed_addresses(hosts, route, resolved)
                .into_iter()
                .map(|ip| endpoint::LbEndpoint {
                    host_identifier: Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(
                        endpoint::Endpoint {
                            address: Some(socket_address(&ip.to_string(), target.port)),
                            // Health checks and logs name the host, not only the address.
                            hostname: target.host.clone(),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                })
                .collect();
            let verify = if hosts.ca_file.is_some() {
                Verify::Ca(HOSTS_CA.into())
            } else {
                Verify::SystemRoots
            };
            envoy_cluster::Cluster {
                name: name.clone(),
                cluster_discovery_type: Some(ClusterDiscoveryType::Type(
                    DiscoveryType::Static as i32,
                )),
                connect_timeout: Some(duration(super::cluster::CONNECT_TIMEOUT)),
                load_assignment: Some(endpoint::ClusterLoadAssignment {
                    cluster_name: name,
                    endpoints: vec![endpoint::LocalityLbEndpoints {
                        lb_endpoints: endpoints,
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                transport_socket: target.tls.then(|| tls_to(&target.host, verify, None)),
                typed_extension_protocol_options: [(
                    super::cluster::HTTP_OPTIONS.to_string(),
                    pack_any(protocol_options(
                        &crate::config::model::Transport::default(),
                        target.tls,
                    )),
                )]
                .into_iter()
                .collect(),
                ..Default::default()
            }
        })
        .collect()
}

/// The virtual hosts, before the gateway's own (`*`): one per route, then the tunnel
/// domain's refusal of names it does not route.
pub(super) fn virtual_hosts(hosts: &Hosts) -> Vec<route::VirtualHost> {
    let mut out: Vec<route::VirtualHost> = hosts
        .domains()
        .into_iter()
        .map(|(r, names)| route::VirtualHost {
            name: route_name(r),
            domains: names
                .iter()
                .flat_map(|n| [n.clone(), format!("{n}:*")])
                .collect(),
            routes: vec![route::Route {
                name: route_name(r),
                r#match: Some(route::RouteMatch {
                    path_specifier: Some(route::route_match::PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(route::route::Action::Route(route::RouteAction {
                    cluster_specifier: Some(route::route_action::ClusterSpecifier::Cluster(
                        cluster_name(r),
                    )),
                    // Path and query untouched; `Host` is the upstream's (servers that
                    // guard against DNS rebinding accept only their own), the client's
                    // goes in `x-forwarded-host`.
                    host_rewrite_specifier: Some(
                        route::route_action::HostRewriteSpecifier::HostRewriteLiteral(
                            r.target.authority(),
                        ),
                    ),
                    append_x_forwarded_host: true,
                    // Event streams last as long as they last.
                    timeout: Some(duration(Duration::ZERO)),
                    ..Default::default()
                })),
                request_headers_to_remove: vec![
                    switchboard_protocol::filter_config::ROUTE_HEADER.into(),
                    switchboard_protocol::access::IDENTITY_HEADER.into(),
                ],
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    if let Some(domain) = &hosts.domain {
        out.push(route::VirtualHost {
            name: "host:unknown".into(),
            domains: vec![format!("*.{domain}")],
            routes: vec![unknown_host()],
            ..Default::default()
        });
    }
    out
}

/// The answer to a name no route serves.
pub(super) fn unknown_host() -> route::Route {
    let mut r = direct_response(
        "host:unknown",
        route::route_match::PathSpecifier::Prefix("/".into()),
        404,
        "No MCP server is routed at this hostname",
    );
    r.response_headers_to_add
        .push(header_value("cache-control", "no-store"));
    r
}

/// `https://` routes are checked against `upstream.tls.ca_file`, plus the system roots with
/// `include_system_cas`; with only the latter, against the system roots' own secret.
pub(super) fn ca_secret(gateway: &Gateway) -> Option<tls::Secret> {
    let hosts = gateway.hosts.as_ref()?;
    let ca = hosts.ca_file.as_ref()?;
    let mut bundle = ca.pem.clone();
    if hosts.include_system_cas
        && let Some(system) = &gateway.system_ca
    {
        bundle.push(b'\n');
        bundle.extend_from_slice(&system.pem);
    }
    Some(secret::trusted_ca(
        HOSTS_CA,
        &crate::config::model::PemFile {
            path: ca.path.clone(),
            pem: bundle,
        },
    ))
}
