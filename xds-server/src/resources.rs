//! Snapshots: the resources of one configuration, encoded once, versioned by content per type.

use crate::translate::Resources;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const SECRET_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
/// ECDS: the configurations of the listener's HTTP filters.
pub const EXTENSION_TYPE: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";

/// The resources of one type with the version that names them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TypedResources {
    /// Hex prefix of a SHA-256 over the resources' content (see [`typed`]): unchanged
    /// content, unchanged version.
    pub version: String,
    pub items: Vec<(String, Any)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    pub listeners: TypedResources,
    pub routes: TypedResources,
    pub clusters: TypedResources,
    pub secrets: TypedResources,
    pub extension_configs: TypedResources,
}

impl Snapshot {
    /// Whether `other` holds the same content (its bytes may differ: protobuf maps encode in
    /// hash order).
    pub fn same_content(&self, other: &Snapshot) -> bool {
        TYPE_ORDER
            .iter()
            .all(|t| self.of_type(t).map(|r| &r.version) == other.of_type(t).map(|r| &r.version))
    }
}

/// Push order for ADS: secrets before the clusters that name them, clusters before the
/// filter configurations, listeners and routes that name them.
pub const TYPE_ORDER: [&str; 5] = [
    SECRET_TYPE,
    CLUSTER_TYPE,
    EXTENSION_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
];

impl Snapshot {
    pub fn new(r: &Resources) -> Self {
        Snapshot {
            listeners: typed(
                r.listeners
                    .iter()
                    .map(|l| (l.name.clone(), pack_any(l.clone()))),
            ),
            routes: typed(
                r.routes
                    .iter()
                    .map(|x| (x.name.clone(), pack_any(x.clone()))),
            ),
            clusters: typed(
                r.clusters
                    .iter()
                    .map(|c| (c.name.clone(), pack_any(c.clone()))),
            ),
            secrets: typed(
                r.secrets
                    .iter()
                    .map(|x| (x.name.clone(), pack_any(x.clone()))),
            ),
            extension_configs: typed(
                r.extension_configs
                    .iter()
                    .map(|x| (x.name.clone(), pack_any(x.clone()))),
            ),
        }
    }

    pub fn of_type(&self, type_url: &str) -> Option<&TypedResources> {
        match type_url {
            LISTENER_TYPE => Some(&self.listeners),
            ROUTE_TYPE => Some(&self.routes),
            CLUSTER_TYPE => Some(&self.clusters),
            SECRET_TYPE => Some(&self.secrets),
            EXTENSION_TYPE => Some(&self.extension_configs),
            _ => None,
        }
    }

    /// Every route configuration a listener names, and every cluster a route names, exists:
    /// publishing anything less would make Envoy wait or reject.
    pub fn check_consistent(&self) -> Result<(), Inconsistent> {
        let route_names: BTreeSet<&str> =
            self.routes.items.iter().map(|(n, _)| n.as_str()).collect();
        let cluster_names: BTreeSet<&str> = self
            .clusters
            .items
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        for (name, any) in &self.listeners.items {
            let l = listener::Listener::decode(any.value.as_slice())
                .map_err(|e| Inconsistent(e.to_string()))?;
            for chain in &l.filter_chains {
                for f in &chain.filters {
                    let Some(listener::filter::ConfigType::TypedConfig(cfg)) = &f.config_type
                    else {
                        continue;
                    };
                    let Ok(m) = hcm::HttpConnectionManager::decode(cfg.value.as_slice()) else {
                        continue;
                    };
                    if let Some(hcm::http_connection_manager::RouteSpecifier::Rds(rds)) =
                        &m.route_specifier
                        && !route_names.contains(rds.route_config_name.as_str())
                    {
                        return Err(Inconsistent(format!(
                            "listener {name} names missing route configuration {}",
                            rds.route_config_name
                        )));
                    }
                    for f in &m.http_filters {
                        if let Some(hcm::http_filter::ConfigType::ConfigDiscovery(_)) =
                            &f.config_type
                            && !self
                                .extension_configs
                                .items
                                .iter()
                                .any(|(n, _)| *n == f.name)
                        {
                            return Err(Inconsistent(format!(
                                "listener {name} names missing filter configuration {}",
                                f.name
                            )));
                        }
                    }
                }
            }
        }
        for (name, any) in &self.routes.items {
            let rc = route::RouteConfiguration::decode(any.value.as_slice())
                .map_err(|e| Inconsistent(e.to_string()))?;
            for r in rc.virtual_hosts.iter().flat_map(|v| &v.routes) {
                if let Some(route::route::Action::Route(a)) = &r.action
                    && let Some(route::route_action::ClusterSpecifier::Cluster(c)) =
                        &a.cluster_specifier
                    && !cluster_names.contains(c.as_str())
                {
                    return Err(Inconsistent(format!(
                        "route configuration {name} names missing cluster {c}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The version of `items` is a hash of their content, not of their encoding: protobuf maps
/// (a `Struct`'s fields in the audit log's format, `jwt_authn`'s providers) encode in the
/// order of a randomly seeded hash map, so the same configuration would get a new version,
/// and be pushed again, on every load. Each resource is hashed as its JSON with sorted keys.
fn typed(items: impl Iterator<Item = (String, Any)>) -> TypedResources {
    let items: Vec<(String, Any)> = items.collect();
    let mut hash = Sha256::new();
    for (name, any) in &items {
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(any.type_url.as_bytes());
        match crate::protojson::any_to_json(any) {
            Ok(json) => hash_canonical(&json, &mut hash),
            Err(_) => hash.update(any.encode_to_vec()),
        }
    }
    let digest = hash.finalize();
    let version = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    TypedResources { version, items }
}

/// Feeds `value` to `hash` with every object's keys in order; a `StringValue` that holds JSON
/// (the filter's configuration) is not reordered, it is the control plane's own text.
fn hash_canonical(value: &serde_json::Value, hash: &mut Sha256) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hash.update(b"{");
            for k in keys {
                hash.update(k.as_bytes());
                hash.update(b":");
                hash_canonical(&map[k], hash);
                hash.update(b",");
            }
            hash.update(b"}");
        }
        Value::Array(items) => {
            hash.update(b"[");
            for i in items {
                hash_canonical(i, hash);
                hash.update(b",");
            }
            hash.update(b"]");
        }
        other => hash.update(other.to_string().as_bytes()),
    }
}

/// A snapshot that names what it does not hold (a bug of the translation, never pushed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Inconsistent(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{env::Environment, load_str};
    use crate::translate::{FilterModule, translate};

    fn snapshot(yaml: &str) -> Snapshot {
        let g = load_str(yaml, "t.yaml", &Environment::Fixed(Default::default())).unwrap();
        let m = FilterModule::example();
        Snapshot::new(&translate(&g, &m))
    }

    #[test]
    fn versions_follow_content_per_type() {
        let a = snapshot("upstreams:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n");
        let b = snapshot("upstreams:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n");
        assert_eq!(a, b);
        let c = snapshot("upstreams:\n  - name: a\n    url: http://127.0.0.1:2/mcp\n");
        assert_ne!(a.clusters.version, c.clusters.version);
        // A timeout lives in routes and the filter config, not in the cluster.
        let d =
            snapshot("upstreams:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n    timeout: 9s\n");
        assert_eq!(a.clusters.version, d.clusters.version);
        assert_ne!(a.routes.version, d.routes.version);
        a.check_consistent().unwrap();
    }

    #[test]
    fn maps_in_resources_do_not_change_versions() {
        // The audit log's JSON format is a `Struct` and jwt_authn's providers a map: both
        // encode in hash order, which differs between two translations of one file.
        let yaml = "audit:\n  file: /var/log/a.log\nauth:\n  clients:\n    - name: p1\n      jwt: {issuer: i1, jwks: {url: \"http://idp1/j\"}}\n    - name: p2\n      jwt: {issuer: i2, jwks: {url: \"http://idp2/j\"}}\n    - name: p3\n      jwt: {issuer: i3, jwks: {url: \"http://idp3/j\"}}\nupstreams:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n";
        let first = snapshot(yaml);
        for _ in 0..20 {
            let again = snapshot(yaml);
            assert_eq!(again.listeners.version, first.listeners.version);
            assert!(again.same_content(&first));
        }
    }

    #[test]
    fn inconsistent_snapshot_is_detected() {
        let mut a = snapshot("upstreams:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n");
        a.clusters = typed(std::iter::empty());
        assert!(
            a.check_consistent()
                .unwrap_err()
                .0
                .contains("missing cluster upstream-a")
        );
        let mut b = snapshot("");
        b.routes = typed(std::iter::empty());
        assert!(b.check_consistent().is_err());
    }
}
