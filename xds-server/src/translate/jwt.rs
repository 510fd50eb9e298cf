//! JWT clients: Envoy's own `jwt_authn` verifies the token (issuer, audiences, signature
//! against the JWKS, expiry) and forwards its payload to the filter in a header, which a
//! `header_mutation` filter first removes from what the client sent, so it cannot be forged.
//! A request without a token passes on to the filter (API keys and CIDRs may admit it); one
//! with a bad token gets 401 from `jwt_authn`.

use super::{duration, http_filter, single_host_cluster};
use crate::config::auth::JwtConfig;
use crate::config::model::Gateway;
use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::common::mutation_rules::v3 as mutation;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::http::header_mutation::v3 as header_mutation;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3 as jwt_authn;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::util::pack_any;
use std::time::Duration;
use switchboard_protocol::access::JWT_PAYLOAD_HEADER;

fn jwt_clients(gateway: &Gateway) -> impl Iterator<Item = (&str, &JwtConfig)> {
    gateway
        .auth
        .iter()
        .flat_map(|a| &a.clients)
        .filter_map(|c| c.jwt.as_ref().map(|j| (c.name.as_str(), j)))
}

fn jwks_cluster_name(client: &str) -> String {
    format!("jwks-{client}")
}

/// A JWKS with the private members of asymmetric keys left out: Envoy verifies with the
/// public part only, and its configuration is printed by the admin interface. A symmetric
/// key's `k` is the verification key itself and stays (docs/access.md says to prefer
/// asymmetric keys). Text that is not JSON is passed on for Envoy to refuse.
pub(super) fn public_jwks(text: &str) -> String {
    let Ok(mut jwks) = serde_json::from_str::<serde_json::Value>(text) else {
        return text.to_string();
    };
    for key in jwks["keys"].as_array_mut().into_iter().flatten() {
        if let Some(members) = key.as_object_mut() {
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
                members.remove(private);
            }
        }
    }
    jwks.to_string()
}

/// Where `jwt_authn` finds the keys: a local JWKS file (its public part, inline), or a URL it
/// fetches through `cluster` and caches for 5 minutes. Neither: no key verifies anything.
pub(super) fn jwks_source(
    file: Option<&crate::config::values::PemFile>,
    url: Option<&crate::config::values::UpstreamUrl>,
    cluster: String,
) -> jwt_authn::jwt_provider::JwksSourceSpecifier {
    use jwt_authn::jwt_provider::JwksSourceSpecifier;
    let inline = |text: String| {
        JwksSourceSpecifier::LocalJwks(core::DataSource {
            specifier: Some(core::data_source::Specifier::InlineString(text)),
            ..Default::default()
        })
    };
    match (file, url) {
        (Some(f), _) => inline(public_jwks(&String::from_utf8_lossy(&f.pem))),
        (None, Some(u)) => JwksSourceSpecifier::RemoteJwks(jwt_authn::RemoteJwks {
            http_uri: Some(core::HttpUri {
                uri: u.url.to_string(),
                timeout: Some(duration(Duration::from_secs(5))),
                http_upstream_type: Some(core::http_uri::HttpUpstreamType::Cluster(cluster)),
            }),
            cache_duration: Some(duration(Duration::from_secs(300))),
            ..Default::default()
        }),
        (None, None) => inline(r#"{"keys":[]}"#.into()),
    }
}

/// `jwt_authn`'s configuration: a provider per JWT client (none: it checks nothing).
pub fn authentication(gateway: &Gateway) -> jwt_authn::JwtAuthentication {
    let providers: std::collections::HashMap<String, jwt_authn::JwtProvider> = jwt_clients(gateway)
        .map(|(name, j)| {
            // The loader refuses a JWKS with neither.
            let source = jwks_source(
                j.jwks.file.as_ref(),
                j.jwks.url.as_ref(),
                jwks_cluster_name(name),
            );
            (
                name.to_string(),
                jwt_authn::JwtProvider {
                    issuer: j.issuer.clone(),
                    audiences: j.audiences.clone(),
                    jwks_source_specifier: Some(source),
                    forward_payload_header: JWT_PAYLOAD_HEADER.into(),
                    ..Default::default()
                },
            )
        })
        .collect();
    let mut providers = providers;
    let oauth = super::oauth::providers(gateway);
    let oauth_names: Vec<String> = oauth.iter().map(|(n, _)| n.clone()).collect();
    providers.extend(oauth);
    if providers.is_empty() {
        return jwt_authn::JwtAuthentication::default();
    }
    let mut names: Vec<&String> = providers
        .keys()
        .filter(|n| !oauth_names.contains(n))
        .collect();
    names.sort();
    let by_name = |n: &str| jwt_authn::JwtRequirement {
        requires_type: Some(jwt_authn::jwt_requirement::RequiresType::ProviderName(
            n.to_string(),
        )),
    };
    // With MCP authorization a token Envoy cannot verify passes on unverified (no payload
    // header): the filter answers it with the challenge that names the metadata, which
    // `jwt_authn`'s own 401 cannot carry.
    let otherwise = if oauth_names.is_empty() {
        jwt_authn::jwt_requirement::RequiresType::AllowMissing(Default::default())
    } else {
        jwt_authn::jwt_requirement::RequiresType::AllowMissingOrFailed(Default::default())
    };
    let requirement = |audiences: Option<&Vec<String>>| {
        let oauth = oauth_names.iter().map(|n| match audiences {
            Some(a) => jwt_authn::JwtRequirement {
                requires_type: Some(
                    jwt_authn::jwt_requirement::RequiresType::ProviderAndAudiences(
                        jwt_authn::ProviderWithAudiences {
                            provider_name: n.clone(),
                            audiences: a.clone(),
                        },
                    ),
                ),
            },
            None => by_name(n),
        });
        let requirements = oauth
            .chain(names.iter().map(|n| by_name(n)))
            .chain(std::iter::once(jwt_authn::JwtRequirement {
                requires_type: Some(otherwise.clone()),
            }))
            .collect();
        jwt_authn::JwtRequirement {
            requires_type: Some(jwt_authn::jwt_requirement::RequiresType::RequiresAny(
                jwt_authn::JwtRequirementOrList { requirements },
            )),
        }
    };
    let rule = |path: route::route_match::PathSpecifier, audiences: Option<&Vec<String>>| {
        jwt_authn::RequirementRule {
            r#match: Some(route::RouteMatch {
                path_specifier: Some(path),
                ..Default::default()
            }),
            requirement_type: Some(jwt_authn::requirement_rule::RequirementType::Requires(
                requirement(audiences),
            )),
        }
    };
    // An upstream's own endpoint with a resource of its own takes tokens for it too.
    let mut rules: Vec<jwt_authn::RequirementRule> = super::oauth::endpoint_audiences(gateway)
        .iter()
        .map(|(path, audiences)| {
            rule(
                route::route_match::PathSpecifier::Path(path.clone()),
                Some(audiences),
            )
        })
        .collect();
    rules.push(rule(
        route::route_match::PathSpecifier::Prefix("/".into()),
        None,
    ));
    jwt_authn::JwtAuthentication {
        providers,
        rules,
        ..Default::default()
    }
}

/// Removes a payload header a client sent itself, before `jwt_authn` runs: only a token
/// `jwt_authn` verified ever puts one there.
pub fn strip_payload_filter() -> hcm::HttpFilter {
    let strip = header_mutation::HeaderMutation {
        mutations: Some(header_mutation::Mutations {
            request_mutations: vec![mutation::HeaderMutation {
                action: Some(mutation::header_mutation::Action::Remove(
                    JWT_PAYLOAD_HEADER.into(),
                )),
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    http_filter("envoy.filters.http.header_mutation", pack_any(strip))
}

/// A cluster per JWKS URL, for `jwt_authn` to fetch the keys (TLS for https, against the
/// system roots and the URL's host, as for upstreams).
pub fn jwks_clusters(gateway: &Gateway) -> Vec<cluster::Cluster> {
    jwt_clients(gateway)
        .filter_map(|(name, j)| j.jwks.url.as_ref().map(|u| (name, u)))
        .map(|(name, u)| {
            let host = u.host();
            // The keys decide who gets in: the server must prove it is `host`.
            let tls = u
                .is_tls()
                .then(|| super::cluster::tls_to(&host, super::cluster::Verify::SystemRoots, None));
            cluster::Cluster {
                connect_timeout: Some(duration(Duration::from_secs(5))),
                transport_socket: tls,
                dns_lookup_family: cluster::cluster::DnsLookupFamily::V4Preferred as i32,
                ..single_host_cluster(&jwks_cluster_name(name), &host, u.port())
            }
        })
        .collect()
}

#[cfg(test)]
mod public_jwks_tests {
    #[test]
    fn private_members_of_asymmetric_keys_stay_behind() {
        let jwks = r#"{"keys":[{"kty":"RSA","n":"nn","e":"AQAB","d":"secret-d","p":"pp","q":"qq","dp":"x","dq":"y","qi":"z"},{"kty":"oct","k":"shared"}]}"#;
        let shown = super::public_jwks(jwks);
        for private in ["secret-d", "\"pp\"", "\"qq\"", "\"qi\""] {
            assert!(!shown.contains(private), "{private} in {shown}");
        }
        assert!(shown.contains("\"n\":\"nn\"") && shown.contains("\"k\":\"shared\""));
        assert_eq!(super::public_jwks("not json"), "not json");
    }
}
