//! Prints Envoy protobufs as the YAML an operator reads in Envoy's docs and `config_dump`,
//! by transcoding through the descriptors that `envoy-types` ships (proto3 JSON mapping,
//! `@type` on every `Any`).

use crate::resources::{Snapshot, TypedResources};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use prost_reflect::{
    DescriptorPool, DynamicMessage, Kind, MessageDescriptor, ReflectMessage, SerializeOptions,
};
use serde_json::{Map, Value};
use std::sync::OnceLock;

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the Envoy descriptors are not available in this build: {0}")]
    Descriptors(String),
    #[error("unknown message type {0}")]
    UnknownType(String),
    #[error("cannot transcode {0}: {1}")]
    Transcode(String, String),
}

fn pool() -> Result<&'static DescriptorPool, RenderError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTORS).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| RenderError::Descriptors(e.clone()))
}

/// One `Any` as a JSON value with its `@type`.
pub fn any_to_json(any: &Any) -> Result<Value, RenderError> {
    let pool = pool()?;
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let desc = pool
        .get_message_by_name(name)
        .ok_or_else(|| RenderError::UnknownType(name.to_string()))?;
    let msg = DynamicMessage::decode(desc, any.value.as_slice())
        .map_err(|e| RenderError::Transcode(name.to_string(), e.to_string()))?;
    let mut json = message_json(&msg, name)?;
    if let Value::Object(map) = &mut json {
        let mut with_type = Map::new();
        with_type.insert("@type".into(), Value::String(any.type_url.clone()));
        with_type.extend(std::mem::take(map));
        *map = with_type;
    }
    Ok(json)
}

/// A typed message (such as the bootstrap) as JSON.
pub fn message_to_json<M: Message + prost::Name>(m: &M) -> Result<Value, RenderError> {
    let pool = pool()?;
    let name = M::full_name();
    let desc = pool
        .get_message_by_name(&name)
        .ok_or_else(|| RenderError::UnknownType(name.clone()))?;
    let msg = DynamicMessage::decode(desc, m.encode_to_vec().as_slice())
        .map_err(|e| RenderError::Transcode(name.clone(), e.to_string()))?;
    message_json(&msg, &name)
}

fn message_json(msg: &DynamicMessage, name: &str) -> Result<Value, RenderError> {
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false);
    let mut json = msg
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| RenderError::Transcode(name.to_string(), e.to_string()))?;
    sort_maps(&mut json, &msg.descriptor());
    Ok(json)
}

/// Protobuf maps (`jwt_authn`'s `providers`…) come out in hash order: sorted by key, a render
/// is the same every time. Message fields keep their declared order.
fn sort_maps(json: &mut Value, desc: &MessageDescriptor) {
    let Value::Object(object) = json else {
        return;
    };
    // An `Any` carries its own message type.
    if let Some(url) = object.get("@type").and_then(Value::as_str)
        && desc.full_name() == "google.protobuf.Any"
    {
        let name = url.rsplit('/').next().unwrap_or_default();
        if let Some(inner) = pool().ok().and_then(|p| p.get_message_by_name(name)) {
            sort_maps(json, &inner);
        }
        return;
    }
    for field in desc.fields() {
        let Some(value) = object.get_mut(field.name()) else {
            continue;
        };
        if field.is_map() {
            if let Value::Object(map) = value {
                map.sort_keys();
            }
            let entry = match field.kind() {
                Kind::Message(entry) => entry,
                _ => continue,
            };
            if let Kind::Message(value_desc) = entry.map_entry_value_field().kind() {
                for v in value
                    .as_object_mut()
                    .into_iter()
                    .flat_map(|m| m.values_mut())
                {
                    sort_maps(v, &value_desc);
                }
            }
        } else if let Kind::Message(inner) = field.kind() {
            match value {
                Value::Array(items) => items.iter_mut().for_each(|v| sort_maps(v, &inner)),
                v => sort_maps(v, &inner),
            }
        }
    }
}

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
                config.session_key = REDACTED.into();
                for k in &mut config.previous_session_keys {
                    *k = REDACTED.into();
                }
                for u in &mut config.upstreams {
                    for (_, v) in &mut u.headers {
                        *v = REDACTED.into();
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
