//! `auth.oauth` as Envoy configuration: the Protected Resource Metadata (RFC 9728) as direct
//! responses, a `jwt_authn` provider per authorization server whose audience is the
//! endpoint's resource (RFC 8707), the clusters that reach the servers' keys and token
//! endpoints, and what the filter needs (its challenges, the scope requirements, each
//! upstream's token exchange).

use super::*;
use crate::config::oauth::{OAuthConfig, TokenExchangeConfig};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3 as jwt_authn;
use serde_json::json;
use switchboard_protocol::oauth::{METADATA_PATH, OAuth, ScopeRule};
use switchboard_protocol::token_exchange::{ClientAuth, TokenExchange};

/// `scheme://authority` of the gateway's resource URI.
fn origin(o: &OAuthConfig) -> String {
    o.resource.url.origin().ascii_serialization()
}

/// The resource URI of the MCP endpoint at `path`: the gateway's own when it names that
/// endpoint or one above it (a client uses a parent's token, as the SDKs do), else the
/// endpoint's URL.
pub fn endpoint_resource(o: &OAuthConfig, path: &str) -> String {
    let base = o.resource.url.path().trim_end_matches('/');
    if base.is_empty() || path == base || path.starts_with(&format!("{base}/")) {
        o.resource.url.to_string()
    } else {
        format!("{}{path}", origin(o))
    }
}

/// The paths the gateway serves MCP at: the aggregated endpoint and each upstream's own.
fn endpoints(gateway: &Gateway) -> Vec<String> {
    std::iter::once(gateway.server.mcp_path.clone())
        .chain(
            gateway
                .upstreams
                .iter()
                .map(|u| format!("{}/{}/mcp", gateway.server.upstream_path, u.name)),
        )
        .collect()
}

/// The metadata document of the endpoint at `path` (`None`: the gateway's own, at the
/// well-known path itself).
pub fn metadata(o: &OAuthConfig, path: Option<&str>) -> serde_json::Value {
    let resource = match path {
        Some(p) => endpoint_resource(o, p),
        None => o.resource.url.to_string(),
    };
    let mut doc = json!({
        "resource": resource,
        "authorization_servers": o.authorization_servers.iter().map(|a| &a.issuer).collect::<Vec<_>>(),
        "bearer_methods_supported": ["header"],
        "scopes_supported": o.scopes_supported(),
    });
    if let Some(name) = &o.resource_name {
        doc["resource_name"] = json!(name);
    }
    doc
}

/// The metadata routes, first in the route table: GET (and a browser's preflight) at the
/// well-known path and at it followed by each endpoint's path.
pub(super) fn metadata_routes(gateway: &Gateway) -> Vec<route::Route> {
    let Some(o) = gateway.oauth() else {
        return Vec::new();
    };
    std::iter::once(None)
        .chain(endpoints(gateway).into_iter().map(Some))
        .enumerate()
        .map(|(i, endpoint)| {
            let body = metadata(o, endpoint.as_deref()).to_string();
            route::Route {
                name: format!("oauth-protected-resource-{i}"),
                r#match: Some(route::RouteMatch {
                    path_specifier: Some(route::route_match::PathSpecifier::Path(format!(
                        "{METADATA_PATH}{}",
                        endpoint.as_deref().unwrap_or_default()
                    ))),
                    ..Default::default()
                }),
                action: Some(route::route::Action::DirectResponse(
                    route::DirectResponseAction {
                        status: 200,
                        body: Some(core::DataSource {
                            specifier: Some(core::data_source::Specifier::InlineString(body)),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )),
                response_headers_to_add: vec![
                    routes::header_value("content-type", "application/json"),
                    // Public, and read by web clients from their own origin.
                    routes::header_value("access-control-allow-origin", "*"),
                    routes::header_value("cache-control", "max-age=300"),
                ],
                ..Default::default()
            }
        })
        .collect()
}

pub(super) fn provider_name(i: usize) -> String {
    format!("oauth-{i}")
}

fn jwks_cluster_name(i: usize) -> String {
    format!("oauth-jwks-{i}")
}

fn token_cluster_name(i: usize) -> String {
    format!("oauth-token-{i}")
}

/// A `jwt_authn` provider per authorization server: its issuer, its keys, the gateway's
/// resource as audience; tokens only from `Authorization: Bearer` (never a query), kept on
/// the request for token exchange (the filter removes them before anything goes upstream).
pub(super) fn providers(gateway: &Gateway) -> Vec<(String, jwt_authn::JwtProvider)> {
    let Some(o) = gateway.oauth() else {
        return Vec::new();
    };
    o.authorization_servers
        .iter()
        .enumerate()
        .map(|(i, a)| {
            // Not discovered (a configuration read from text, in tests): no key verifies.
            let file = a.jwks.as_ref().and_then(|j| j.file.as_ref());
            let source = super::jwt::jwks_source(file, a.jwks_url(), jwks_cluster_name(i));
            (
                provider_name(i),
                jwt_authn::JwtProvider {
                    issuer: a.issuer.clone(),
                    audiences: vec![o.resource.url.to_string()],
                    jwks_source_specifier: Some(source),
                    forward: true,
                    from_headers: vec![jwt_authn::JwtHeader {
                        name: "authorization".into(),
                        value_prefix: "Bearer ".into(),
                    }],
                    forward_payload_header: switchboard_protocol::access::JWT_PAYLOAD_HEADER.into(),
                    ..Default::default()
                },
            )
        })
        .collect()
}

/// The audiences a token must have at each upstream's own endpoint when that endpoint has
/// a resource of its own: its resource or the gateway's (a token for the whole gateway
/// serves each part of it). `(path, audiences)`.
pub(super) fn endpoint_audiences(gateway: &Gateway) -> Vec<(String, Vec<String>)> {
    let Some(o) = gateway.oauth() else {
        return Vec::new();
    };
    let gateway_resource = o.resource.url.to_string();
    endpoints(gateway)
        .into_iter()
        .skip(1)
        .filter_map(|path| {
            let own = endpoint_resource(o, &path);
            (own != gateway_resource).then(|| (path, vec![own, gateway_resource.clone()]))
        })
        .collect()
}

/// Clusters for the authorization servers' keys (when fetched) and token endpoints (when an
/// upstream exchanges tokens there): TLS for https, against the system roots.
pub(super) fn clusters(gateway: &Gateway) -> Vec<envoy_cluster::Cluster> {
    let Some(o) = gateway.oauth() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, a) in o.authorization_servers.iter().enumerate() {
        let file = a.jwks.as_ref().is_some_and(|j| j.file.is_some());
        if let (false, Some(u)) = (file, a.jwks_url()) {
            out.push(https_cluster(&jwks_cluster_name(i), u));
        }
        let exchanging = gateway
            .upstreams
            .iter()
            .filter_map(|u| u.auth.token_exchange.as_ref())
            .any(|te| {
                o.server(te.issuer.as_deref())
                    .is_some_and(|s| s.issuer == a.issuer)
            });
        if exchanging && let Some(u) = a.token_endpoint() {
            out.push(https_cluster(&token_cluster_name(i), u));
        }
    }
    out
}

fn https_cluster(name: &str, u: &crate::config::values::UpstreamUrl) -> envoy_cluster::Cluster {
    let host = u.host();
    // Whoever answers here decides whose tokens count, or receives users' tokens: it must
    // prove it is `host`.
    let tls = u
        .is_tls()
        .then(|| super::cluster::tls_to(&host, super::cluster::Verify::SystemRoots, None));
    envoy_cluster::Cluster {
        connect_timeout: Some(duration(Duration::from_secs(5))),
        transport_socket: tls,
        dns_lookup_family: envoy_cluster::cluster::DnsLookupFamily::V4Preferred as i32,
        ..single_host_cluster(name, &host, u.port())
    }
}

/// The filter's part: where its challenges send clients, and what needs which scope.
pub(super) fn filter_oauth(gateway: &Gateway) -> Option<OAuth> {
    let o = gateway.oauth()?;
    Some(OAuth {
        metadata: format!("{}{METADATA_PATH}", origin(o)),
        scope: o.scopes.join(" "),
        require: o
            .require
            .iter()
            .map(|r| ScopeRule {
                scope: r.scope.clone(),
                on: access::Lists {
                    upstreams: r.upstreams.clone(),
                    tools: r.tools.clone(),
                    prompts: r.prompts.clone(),
                    resources: r.resources.clone(),
                    hosts: Vec::new(),
                },
            })
            .collect(),
    })
}

/// The access clients OAuth tokens make: one per authorization server, all named as
/// `auth.oauth.client` says.
pub(super) fn clients(gateway: &Gateway) -> Vec<access::Client> {
    gateway
        .oauth()
        .map(|o| {
            o.authorization_servers
                .iter()
                .map(|a| access::Client {
                    name: o.client.clone(),
                    jwt_issuer: Some(a.issuer.clone()),
                    ..Default::default()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An upstream's token exchange as the filter carries it out.
pub(super) fn token_exchange(gateway: &Gateway, te: &TokenExchangeConfig) -> Option<TokenExchange> {
    let o = gateway.oauth()?;
    let index = o.authorization_servers.iter().position(|a| {
        o.server(te.issuer.as_deref())
            .is_some_and(|s| s.issuer == a.issuer)
    })?;
    // Without an endpoint (a configuration read from text), calls fail as unreachable.
    let endpoint = o.authorization_servers[index].token_endpoint();
    let client_auth = match (&te.client_secret, &te.private_key) {
        (_, Some(k)) => ClientAuth::PrivateKey {
            key: signing_key(&k.file.pem).unwrap_or_default(),
            kid: k.kid.clone(),
        },
        (Some(secret), None) => ClientAuth::Secret {
            secret: secret.0.clone(),
        },
        (None, None) => return None,
    };
    Some(TokenExchange {
        cluster: token_cluster_name(index),
        authority: endpoint.map(|u| u.authority()).unwrap_or_default(),
        path: endpoint.map(|u| u.path_and_query()).unwrap_or_default(),
        endpoint: endpoint.map(|u| u.url.to_string()).unwrap_or_default(),
        audience: te.audience.clone(),
        resource: te.resource.clone(),
        scope: te.scopes.join(" "),
        client_id: te.client_id.clone(),
        client_auth,
        timeout_ms: u64::try_from(te.timeout.as_millis()).unwrap_or(u64::MAX),
    })
}

/// The P-256 private scalar (hex) of a PEM key (PKCS#8 or SEC1): how the filter receives
/// the key it signs client assertions with.
pub fn signing_key(pem: &[u8]) -> Result<String, String> {
    use p256::pkcs8::DecodePrivateKey;
    let text = std::str::from_utf8(pem).map_err(|_| "not PEM text".to_string())?;
    let key = p256::SecretKey::from_pkcs8_pem(text)
        .or_else(|_| p256::SecretKey::from_sec1_pem(text))
        .map_err(|_| {
            "not an EC P-256 private key (PEM, PKCS#8 or SEC1): client assertions are ES256"
                .to_string()
        })?;
    Ok(key.to_bytes().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(resource: &str) -> OAuthConfig {
        serde_yaml_ng::from_str(&format!(
            "resource: {resource}\nauthorization_servers: [{{issuer: https://idp.example}}]\nscopes: [mcp]\nrequire: [{{scope: gh:write, tools: [\"gh__create_*\"]}}]"
        ))
        .unwrap()
    }

    #[test]
    fn an_endpoint_under_the_resource_shares_it_and_others_get_their_own() {
        let at_root = config("https://gw.example");
        assert_eq!(
            endpoint_resource(&at_root, "/upstreams/gh/mcp"),
            "https://gw.example/"
        );
        let at_mcp = config("https://gw.example/mcp");
        assert_eq!(endpoint_resource(&at_mcp, "/mcp"), "https://gw.example/mcp");
        assert_eq!(
            endpoint_resource(&at_mcp, "/upstreams/gh/mcp"),
            "https://gw.example/upstreams/gh/mcp"
        );
        let doc = metadata(&at_mcp, Some("/upstreams/gh/mcp"));
        assert_eq!(doc["resource"], "https://gw.example/upstreams/gh/mcp");
        assert_eq!(doc["authorization_servers"], json!(["https://idp.example"]));
        assert_eq!(doc["scopes_supported"], json!(["mcp", "gh:write"]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    }

    #[test]
    fn a_pkcs8_p256_key_becomes_its_scalar_and_others_are_refused() {
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        let key = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert_eq!(signing_key(pem.as_bytes()).unwrap(), "07".repeat(32));
        assert!(
            signing_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err()
        );
    }
}
