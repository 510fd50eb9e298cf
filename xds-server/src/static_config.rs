//! `render --format envoy`: what ADS would push, as one complete Envoy configuration read
//! with `envoy -c`, for an Envoy run without a control plane. Routes are inlined into their
//! listener, the filters' configurations into the filter chain (no ECDS), secrets become
//! static ones (no SDS), and every certificate and key is named by its file, so nothing
//! secret is in the output: the filter's own secrets are sealed
//! ([`switchboard_protocol::filter_config::FilterConfig::sealed_secrets`]), its key in
//! Envoy's environment.

use crate::bootstrap::{runtime, stats_config};
use crate::config::model::Gateway;
use crate::render::{RenderError, any_to_json, message_to_json};
use crate::resources::Snapshot;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("the listener {0} names the routes {1:?}, which were not rendered")]
    NoRoutes(String, String),
    #[error("the filter {0} is configured by discovery, but no configuration was rendered for it")]
    NoFilterConfig(String),
    #[error(
        "the secret {0} holds a private key that is not in a file the gateway names: a static configuration cannot carry it"
    )]
    InlineKey(String),
}

/// The bootstrap: admin, the stats tags and runtime every Switchboard Envoy has, and the
/// snapshot's resources as static ones.
pub fn static_bootstrap(gateway: &Gateway, snapshot: &Snapshot) -> Result<Value, StaticError> {
    let json = |items: &[(String, envoy_types::pb::google::protobuf::Any)]| -> Result<Vec<Value>, StaticError> {
        items
            .iter()
            .map(|(_, any)| Ok(strip_type(any_to_json(any)?)))
            .collect()
    };
    let routes: HashMap<String, Value> = json(&snapshot.routes.items)?
        .into_iter()
        .map(|r| (r["name"].as_str().unwrap_or_default().to_string(), r))
        .collect();
    let filters: HashMap<String, Value> = json(&snapshot.extension_configs.items)?
        .into_iter()
        .map(|f| (f["name"].as_str().unwrap_or_default().to_string(), f))
        .collect();
    let mut listeners = json(&snapshot.listeners.items)?;
    for l in &mut listeners {
        inline_listener(l, &routes, &filters)?;
    }
    let files = files_by_content(gateway);
    let mut secrets = json(&snapshot.secrets.items)?;
    for s in &mut secrets {
        by_file(s, &files)?;
    }
    let mut clusters = json(&snapshot.clusters.items)?;
    for c in &mut clusters {
        drop_sds_sources(c);
    }
    for l in &mut listeners {
        drop_sds_sources(l);
    }
    let admin = gateway.server.admin.0;
    Ok(json!({
        "node": {"id": "switchboard-static", "cluster": "switchboard"},
        "admin": {"address": {"socket_address": {
            "address": admin.ip().to_string(), "port_value": admin.port()}}},
        "static_resources": {
            "listeners": listeners,
            "clusters": clusters,
            "secrets": secrets,
        },
        "stats_config": message_to_json(&stats_config())?,
        "layered_runtime": message_to_json(&runtime())?,
    }))
}

/// A resource's `@type` is implied where it is inlined.
fn strip_type(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("@type");
    }
    v
}

/// Each HTTP connection manager gets its routes inline, and each filter its configuration.
fn inline_listener(
    listener: &mut Value,
    routes: &HashMap<String, Value>,
    filters: &HashMap<String, Value>,
) -> Result<(), StaticError> {
    let name = listener["name"].as_str().unwrap_or_default().to_string();
    let chains = listener["filter_chains"]
        .as_array_mut()
        .into_iter()
        .flatten();
    for network in chains.flat_map(|c| c["filters"].as_array_mut().into_iter().flatten()) {
        let Some(hcm) = network["typed_config"].as_object_mut() else {
            continue;
        };
        if let Some(rds) = hcm.remove("rds") {
            let wanted = rds["route_config_name"].as_str().unwrap_or_default();
            let config = routes
                .get(wanted)
                .ok_or_else(|| StaticError::NoRoutes(name.clone(), wanted.to_string()))?;
            hcm.insert("route_config".into(), config.clone());
        }
        for filter in hcm
            .get_mut("http_filters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(f) = filter.as_object_mut() else {
                continue;
            };
            if f.remove("config_discovery").is_some() {
                let fname = f.get("name").and_then(Value::as_str).unwrap_or_default();
                let config = filters
                    .get(fname)
                    .ok_or_else(|| StaticError::NoFilterConfig(fname.to_string()))?;
                f.insert("typed_config".into(), config["typed_config"].clone());
            }
        }
    }
    Ok(())
}

/// The files the gateway names, by content: what SDS carries inline, a static
/// configuration names by file.
fn files_by_content(gateway: &Gateway) -> HashMap<Vec<u8>, String> {
    gateway
        .pem_sources()
        .into_iter()
        .filter(|f| !f.pem.is_empty())
        .map(|f| (f.pem.clone(), f.path.display().to_string()))
        .collect()
}

/// Inline certificates and keys of a secret named by their files. A certificate authority
/// not read from one file (a bundle) stays inline: it is public. A private key must be a
/// file's.
fn by_file(secret: &mut Value, files: &HashMap<Vec<u8>, String>) -> Result<(), StaticError> {
    use base64::Engine as _;
    let name = secret["name"].as_str().unwrap_or_default().to_string();
    fn walk(
        v: &mut Value,
        key: Option<&str>,
        files: &HashMap<Vec<u8>, String>,
        name: &str,
    ) -> Result<(), StaticError> {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(b64)) = m.get("inline_bytes") {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap_or_default();
                    match files.get(&bytes) {
                        Some(path) => {
                            *m = Map::from_iter([("filename".to_string(), json!(path))]);
                        }
                        None if key == Some("private_key") => {
                            return Err(StaticError::InlineKey(name.to_string()));
                        }
                        None => {}
                    }
                    return Ok(());
                }
                for (k, child) in m.iter_mut() {
                    walk(child, Some(k), files, name)?;
                }
                Ok(())
            }
            Value::Array(items) => items.iter_mut().try_for_each(|i| walk(i, key, files, name)),
            _ => Ok(()),
        }
    }
    walk(secret, None, files, &name)
}

/// References to SDS secrets lose their source: they name static secrets.
fn drop_sds_sources(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.contains_key("name") && m.contains_key("sds_config") {
                m.remove("sds_config");
            }
            m.values_mut().for_each(drop_sds_sources);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_sds_sources),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{env::Environment, load_file};
    use crate::translate::{FilterModule, translate};

    /// TLS on the gateway's port: the certificate and its key are named by their files, the
    /// routes and the filters' configurations are inline, nothing is left to discovery, and
    /// no private key and no filter secret is in the text.
    #[test]
    fn a_static_configuration_names_files_and_discovers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let now = time::OffsetDateTime::now_utc();
        let ca = switchboard::certs::new_ca("gw.test", now).unwrap();
        let server = switchboard::certs::server_cert(
            "gw.test",
            &ca,
            now,
            std::time::Duration::from_secs(86_400),
        )
        .unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let (cert, key, client_ca) = (
            write("gw.crt", &server.cert_pem),
            write("gw.key", &server.key_pem),
            write("ca.crt", &ca.cert_pem),
        );
        let file = write(
            "gateway.yaml",
            &format!(
                "server:\n  listen: 127.0.0.1:8443\n  tls: {{cert_file: {cert}, key_file: {key}, client_ca: {client_ca}}}\nsession:\n  key: a-session-key-that-stays-sealed-0123\nupstreams:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n    headers: {{authorization: \"Bearer upstream-s3cret\"}}\n"
            ),
        );
        let gateway = load_file(std::path::Path::new(&file), &Environment::Process).unwrap();
        let mut module = FilterModule::example();
        module.secrets_key = Some("the-deployment-key-0123456789abcdef".into());
        let snapshot = Snapshot::new(&translate(&gateway, &module));
        let text = static_bootstrap(&gateway, &snapshot).unwrap().to_string();
        let key_line = server
            .key_pem
            .lines()
            .find(|l| !l.starts_with("-----"))
            .unwrap();
        for secret in [
            key_line,
            "upstream-s3cret",
            "a-session-key-that-stays-sealed",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains(&format!("\"filename\":\"{key}\"")), "{text}");
        assert!(text.contains(&format!("\"filename\":\"{cert}\"")), "{text}");
        for discovered in ["\"rds\"", "config_discovery", "sds_config", "\"ads\""] {
            assert!(!text.contains(discovered), "{discovered} in {text}");
        }
        assert!(text.contains("route_config") && text.contains("sealed_secrets"));
    }
}
