//! Prints a snapshot as the YAML an operator reads in Envoy's docs and `config_dump`
//! ([`crate::protojson`] transcodes), with secrets redacted.

pub use crate::protojson::{RenderError, any_to_json, message_to_json};
use crate::resources::{Snapshot, TypedResources};
use serde_json::Value;

pub const REDACTED: &str = "<redacted>";

/// Replaces secrets in rendered resources: configured header values on routes and in the
/// filter's configuration, the session key, private keys and generic secrets in SDS
/// secrets, and the secret members of inline JWKS keys (an HS256 key's `k`). What Envoy
/// receives is unchanged.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("@type").and_then(Value::as_str)
                == Some("type.googleapis.com/google.protobuf.StringValue")
                && let Some(Value::String(inner)) = map.get_mut("value")
                && let Ok(mut config) =
                    switchboard_protocol::filter_config::FilterConfig::from_json(inner.as_bytes())
            {
                // Sealed secrets (`SWITCHBOARD_SECRETS_KEY`) left their places empty.
                let mut hide = |v: &mut String| {
                    if !v.is_empty() {
                        *v = REDACTED.into();
                    }
                };
                hide(&mut config.session_key);
                config.previous_session_keys.iter_mut().for_each(&mut hide);
                for u in &mut config.upstreams {
                    for (_, v) in &mut u.headers {
                        hide(v);
                    }
                }
                *inner = config.to_json();
            }
            for (key, v) in map.iter_mut() {
                if key == "request_headers_to_add"
                    && let Value::Array(options) = v
                {
                    for o in options {
                        if let Some(h) = o.get_mut("header").and_then(Value::as_object_mut) {
                            h.insert("value".into(), Value::String(REDACTED.into()));
                        }
                    }
                } else if key == "private_key" || key == "generic_secret" {
                    *v = Value::String(REDACTED.into());
                } else if key == "local_jwks"
                    && let Some(Value::String(inline)) = v.get_mut("inline_string")
                {
                    *inline = redact_jwks(inline);
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// A JWKS with the members that make a key secret (a symmetric key's `k`, a private key's
/// `d`, primes and exponents) redacted; public keys stay readable. Unreadable: all of it.
fn redact_jwks(text: &str) -> String {
    let Ok(mut jwks) = serde_json::from_str::<Value>(text) else {
        return REDACTED.into();
    };
    for key in jwks["keys"].as_array_mut().into_iter().flatten() {
        if let Some(members) = key.as_object_mut() {
            for (name, value) in members.iter_mut() {
                if ["k", "d", "p", "q", "dp", "dq", "qi", "oth"].contains(&name.as_str()) {
                    *value = Value::String(REDACTED.into());
                }
            }
        }
    }
    jwks.to_string()
}

/// `text` with every occurrence of a secret replaced: what the structural redaction above
/// misses (a secret in a place no rule names) still never prints. Values shorter than 8
/// characters are left, as they would match ordinary words.
pub fn redact_values(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 8) {
        out = out.replace(s.as_str(), REDACTED);
    }
    out
}

/// The whole snapshot, in push order, as one YAML document, secrets redacted.
pub fn snapshot_yaml(snapshot: &Snapshot) -> Result<String, RenderError> {
    let section = |t: &TypedResources| -> Result<Value, RenderError> {
        let mut items = t
            .items
            .iter()
            .map(|(_, any)| any_to_json(any))
            .collect::<Result<Vec<_>, _>>()?;
        items.iter_mut().for_each(redact);
        Ok(serde_json::json!({ "version_info": t.version, "resources": items }))
    };
    let doc = serde_json::json!({
        "clusters": section(&snapshot.clusters)?,
        "listeners": section(&snapshot.listeners)?,
        "routes": section(&snapshot.routes)?,
        "secrets": section(&snapshot.secrets)?,
        "extension_configs": section(&snapshot.extension_configs)?,
    });
    to_yaml(&doc)
}

pub fn to_yaml(value: &Value) -> Result<String, RenderError> {
    serde_yaml_ng::to_string(value)
        .map_err(|e| RenderError::Transcode("yaml".into(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{env::Environment, load_str};
    use crate::translate::{FilterModule, translate};

    #[test]
    fn renders_snapshot_as_envoy_yaml() {
        let g = load_str(
            "upstreams:\n  - name: a\n    url: https://api.example.com/mcp\n    headers: {Authorization: Bearer s3cret-value}\n",
            "t.yaml",
            &Environment::Fixed(Default::default()),
        )
        .unwrap();
        let m = FilterModule::example();
        let yaml = snapshot_yaml(&Snapshot::new(&translate(&g, &m))).unwrap();
        for needle in [
            "'@type': type.googleapis.com/envoy.config.cluster.v3.Cluster",
            "name: upstream-a",
            "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "allow_on_headers_stop_iteration: true",
            "sni: api.example.com",
            "route_config_name: switchboard",
        ] {
            assert!(yaml.contains(needle), "missing {needle:?} in\n{yaml}");
        }
        assert!(
            !yaml.contains("s3cret-value"),
            "secrets are redacted:\n{yaml}"
        );
        assert!(
            !yaml.contains(&"k".repeat(32)),
            "the session key is redacted"
        );
        assert!(yaml.contains(REDACTED));
    }
}
