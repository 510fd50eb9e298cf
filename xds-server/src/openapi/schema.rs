//! `$ref`s and schemas: references inside the document (`#/components/…`) resolved, schemas
//! made self-contained JSON Schema for MCP clients (which do not follow references).

use serde_json::{Map, Value};

/// How deep references are followed: a recursive schema (a tree of nodes) stops there as
/// "any value", with a description that says so.
const MAX_DEPTH: usize = 16;

/// The object `v` stands for: itself, or what its `$ref` points to (followed a few times).
pub fn resolve(root: &Value, v: &Value) -> Value {
    let mut current = v.clone();
    for _ in 0..MAX_DEPTH {
        let Some(target) = current
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| pointer(root, r))
        else {
            return current;
        };
        current = target.clone();
    }
    current
}

/// A local reference (`#/components/schemas/Pet`) in the document; `None` for others.
fn pointer<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let path = reference.strip_prefix('#')?;
    root.pointer(path)
}

/// `schema` with every `$ref` replaced by what it names, and OpenAPI 3.0's `nullable` as
/// JSON Schema's `null` type.
pub fn inline(root: &Value, schema: &Value) -> Value {
    inline_at(root, schema, &mut Vec::new())
}

fn inline_at(root: &Value, schema: &Value, seen: &mut Vec<String>) -> Value {
    match schema {
        Value::Object(map) => {
            if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                let name = reference
                    .rsplit('/')
                    .next()
                    .unwrap_or(reference)
                    .to_string();
                if seen.iter().any(|s| s == reference) || seen.len() >= MAX_DEPTH {
                    return serde_json::json!({
                        "description": format!("{name} (recursive: any value of that shape)")
                    });
                }
                let Some(target) = pointer(root, reference) else {
                    // A reference outside the document: any value.
                    return serde_json::json!({"description": format!("{reference} (not resolved)")});
                };
                seen.push(reference.to_string());
                let mut out = inline_at(root, target, seen);
                seen.pop();
                // Siblings of `$ref` (3.1 allows a description beside it) win.
                if let Value::Object(o) = &mut out {
                    for (k, v) in map.iter().filter(|(k, _)| *k != "$ref") {
                        o.insert(k.clone(), inline_at(root, v, seen));
                    }
                }
                return out;
            }
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), inline_at(root, v, seen));
            }
            nullable_to_null_type(&mut out);
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| inline_at(root, v, seen)).collect())
        }
        other => other.clone(),
    }
}

/// OpenAPI 3.0 writes "may be null" as `nullable: true`; JSON Schema as a `null` type.
fn nullable_to_null_type(schema: &mut Map<String, Value>) {
    if schema.remove("nullable") != Some(Value::Bool(true)) {
        return;
    }
    match schema.get_mut("type") {
        Some(Value::String(t)) => {
            let t = t.clone();
            schema.insert("type".into(), serde_json::json!([t, "null"]));
        }
        Some(Value::Array(types)) if !types.iter().any(|t| t == "null") => {
            types.push("null".into());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_inlined_and_cycles_stop() {
        let root = json!({"components": {"schemas": {
            "Pet": {"type": "object", "properties": {"name": {"type": "string", "nullable": true},
                    "owner": {"$ref": "#/components/schemas/Owner"}}},
            "Owner": {"type": "object", "properties": {"pets": {"type": "array",
                    "items": {"$ref": "#/components/schemas/Pet"}}}}
        }}});
        let pet = inline(&root, &json!({"$ref": "#/components/schemas/Pet"}));
        assert_eq!(pet["properties"]["name"]["type"], json!(["string", "null"]));
        let again = &pet["properties"]["owner"]["properties"]["pets"]["items"];
        assert!(
            again["description"].as_str().unwrap().contains("recursive"),
            "{again}"
        );
        let outside = inline(&root, &json!({"$ref": "other.yaml#/X"}));
        assert!(
            outside["description"]
                .as_str()
                .unwrap()
                .contains("not resolved")
        );
    }
}
