//! Operations as MCP tools. The rules, which `docs/openapi.md` states for users:
//!
//! - **name**: the `operationId` (characters other than letters, digits, `_`, `-` and `.`
//!   become `_`), else the method and path (`GET /items/{id}` → `get_items_id`); a name
//!   already taken gets `_2`, `_3`… in document order;
//! - **description**: summary and description, else `METHOD path`;
//! - **inputSchema**: an object with one property per path, query and header parameter, and
//!   the JSON body's own properties beside them when the body is an object whose property
//!   names clash with no parameter; any other body (an array, a clash, a non-JSON media type)
//!   is one argument, `body` (or `request_body` if a parameter is called `body`);
//! - **outputSchema**: the 2xx JSON answer's schema when it is an object.

use super::{Operation, is_json};
use serde_json::{Map, Value, json};
use switchboard_protocol::rest::{ParamLocation, RestBody, RestParam, RestTool};

pub fn tools(operations: &[Operation]) -> Vec<RestTool> {
    let mut out: Vec<RestTool> = Vec::new();
    for op in operations {
        let mut tool = tool(op);
        let base = tool.name.clone();
        let mut n = 1;
        while out.iter().any(|t| t.name == tool.name) {
            n += 1;
            tool.name = format!("{base}_{n}");
        }
        out.push(tool);
    }
    out
}

fn name(op: &Operation) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    if let Some(id) = &op.operation_id {
        return clean(id);
    }
    let path: Vec<String> = op
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| clean(s.trim_start_matches('{').trim_end_matches('}')))
        .collect();
    let mut name = op.method.to_ascii_lowercase();
    for segment in path {
        name.push('_');
        name.push_str(&segment);
    }
    name
}

fn tool(op: &Operation) -> RestTool {
    let description = match (&op.summary, &op.description) {
        (Some(s), Some(d)) if s != d => format!("{s}\n\n{d}"),
        (Some(s), _) => s.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => format!("{} {}", op.method, op.path),
    };
    let mut properties = Map::new();
    let mut required: Vec<String> = Vec::new();
    let mut params = Vec::new();
    for p in &op.params {
        // A header that would steer the request or speak for the gateway is no argument.
        if p.location == "header" && !switchboard_protocol::rest::allowed_header(&p.name) {
            continue;
        }
        let location = match p.location.as_str() {
            "path" => ParamLocation::Path,
            "query" => ParamLocation::Query,
            _ => ParamLocation::Header,
        };
        let mut schema = p.schema.clone();
        if let (Some(d), Value::Object(o)) = (&p.description, &mut schema) {
            o.entry("description").or_insert_with(|| d.clone().into());
        }
        properties.insert(p.name.clone(), schema);
        if p.required {
            required.push(p.name.clone());
        }
        params.push(RestParam {
            name: p.name.clone(),
            location,
            required: p.required,
        });
    }
    let body = match &op.body {
        None => RestBody::None,
        Some(b) => {
            let fields = b
                .schema
                .as_ref()
                .filter(|_| is_json(&b.content_type))
                .and_then(|s| {
                    let props = s.get("properties")?.as_object()?;
                    let is_object = s.get("type").is_none_or(|t| t == "object");
                    let clash = props.keys().any(|k| properties.contains_key(k));
                    (is_object && !clash).then_some((s, props))
                });
            match fields {
                Some((schema, props)) => {
                    for (k, v) in props {
                        properties.insert(k.clone(), v.clone());
                    }
                    if b.required {
                        required.extend(
                            schema
                                .get("required")
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                                .filter_map(|r| r.as_str().map(str::to_string)),
                        );
                    }
                    RestBody::Fields {
                        names: props.keys().cloned().collect(),
                    }
                }
                None => {
                    let argument = if properties.contains_key("body") {
                        "request_body"
                    } else {
                        "body"
                    };
                    let mut schema = match (&b.schema, is_json(&b.content_type)) {
                        (Some(s), true) => s.clone(),
                        _ => json!({"type": "string"}),
                    };
                    if let Value::Object(o) = &mut schema {
                        let what = b
                            .description
                            .clone()
                            .unwrap_or_else(|| format!("The request body ({})", b.content_type));
                        o.entry("description").or_insert(what.into());
                    }
                    properties.insert(argument.into(), schema);
                    if b.required {
                        required.push(argument.into());
                    }
                    RestBody::Whole {
                        argument: argument.into(),
                        content_type: b.content_type.clone(),
                    }
                }
            }
        }
    };
    let mut input = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        input["required"] = json!(required);
    }
    let output_schema = op
        .output
        .clone()
        .filter(|s| s.get("type") == Some(&json!("object")));
    RestTool {
        name: name(op),
        description,
        input_schema: input,
        output_schema,
        method: op.method.clone(),
        path: op.path.clone(),
        params,
        body,
    }
}
