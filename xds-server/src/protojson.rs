//! Envoy protobufs as JSON (the proto3 JSON mapping, `@type` on every `Any`, protobuf maps
//! sorted), by transcoding through the descriptors that `envoy-types` ships. Used to render
//! resources for operators and to hash them into versions.

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
