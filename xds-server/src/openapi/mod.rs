//! OpenAPI documents → MCP tools, for REST upstreams.
//!
//! The document is parsed by the model of its version — `openapiv3` for 3.0, `oas3` for 3.1
//! — which checks its shape; the parsed document, serialized back, is then read the same way
//! for both versions ([`operations`]): paths, methods, parameters, bodies and answers, with
//! `$ref`s to `components` inlined ([`schema`]). [`tools`] turns operations into tools.

pub mod schema;
pub mod tools;

use serde_json::Value;

/// Why a document gives no tools.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenApiError {
    #[error("not YAML or JSON: {0}")]
    Syntax(String),
    #[error(
        "this is a Swagger {0} document: only OpenAPI 3.0 and 3.1 are read (convert it, e.g. with swagger2openapi)"
    )]
    Swagger(String),
    #[error("no `openapi` version at the top of the document")]
    NoVersion,
    #[error("OpenAPI {0} is not supported (3.0.x and 3.1.x are)")]
    Version(String),
    #[error("not a valid OpenAPI {version} document: {message}")]
    Invalid { version: String, message: String },
}

/// An operation, read from the document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Operation {
    pub operation_id: Option<String>,
    /// Upper case.
    pub method: String,
    pub path: String,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub params: Vec<Param>,
    pub body: Option<Body>,
    /// The JSON schema of the first 2xx answer with one.
    pub output: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    /// `path`, `query`, `header` (cookie parameters are left out: the gateway sends no
    /// client cookies upstream).
    pub location: String,
    pub required: bool,
    pub description: Option<String>,
    pub schema: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub required: bool,
    pub content_type: String,
    /// `None` when the body's media type has no schema.
    pub schema: Option<Value>,
    pub description: Option<String>,
}

/// The parsed document, normalized to JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub version: String,
    pub json: Value,
}

/// Reads an OpenAPI 3.0 or 3.1 document, YAML or JSON.
pub fn parse(text: &str) -> Result<Document, OpenApiError> {
    let raw: Value =
        serde_yaml_ng::from_str(text).map_err(|e| OpenApiError::Syntax(e.to_string()))?;
    if let Some(v) = raw.get("swagger") {
        return Err(OpenApiError::Swagger(version_text(v)));
    }
    let version = raw
        .get("openapi")
        .map(version_text)
        .ok_or(OpenApiError::NoVersion)?;
    let invalid = |message: String| OpenApiError::Invalid {
        version: version.clone(),
        message,
    };
    let json = if version.starts_with("3.0.") || version == "3.0" {
        let doc: openapiv3::OpenAPI = serde_path_to_error::deserialize(&raw)
            .map_err(|e| invalid(format!("{}: {}", e.path(), e.inner())))?;
        serde_json::to_value(doc).map_err(|e| invalid(e.to_string()))?
    } else if version.starts_with("3.1.") || version == "3.1" {
        let doc: oas3::OpenApiV3Spec = serde_path_to_error::deserialize(&raw)
            .map_err(|e| invalid(format!("{}: {}", e.path(), e.inner())))?;
        serde_json::to_value(doc).map_err(|e| invalid(e.to_string()))?
    } else {
        return Err(OpenApiError::Version(version));
    };
    Ok(Document { version, json })
}

fn version_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every operation: paths in the document's order, then methods in the order the
/// specification lists them.
pub fn operations(doc: &Document) -> Vec<Operation> {
    let root = &doc.json;
    let mut out = Vec::new();
    let Some(paths) = root.get("paths").and_then(Value::as_object) else {
        return out;
    };
    for (path, item) in paths {
        let item = schema::resolve(root, item);
        let shared = item
            .get("parameters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let op = schema::resolve(root, op);
            out.push(operation(root, path, method, &op, &shared));
        }
    }
    out
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn operation(root: &Value, path: &str, method: &str, op: &Value, shared: &[Value]) -> Operation {
    // An operation's parameter overrides a path item's of the same name and location.
    let mut params: Vec<Param> = Vec::new();
    let own = op
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for p in shared.iter().chain(&own) {
        let p = schema::resolve(root, p);
        let (Some(name), Some(location)) = (text(&p, "name"), text(&p, "in")) else {
            continue;
        };
        if !matches!(location.as_str(), "path" | "query" | "header") {
            continue;
        }
        let param = Param {
            required: location == "path" || p.get("required") == Some(&Value::Bool(true)),
            description: text(&p, "description"),
            schema: p
                .get("schema")
                .map(|s| schema::inline(root, s))
                .unwrap_or_else(|| serde_json::json!({"type": "string"})),
            name,
            location,
        };
        params.retain(|q| !(q.name == param.name && q.location == param.location));
        params.push(param);
    }
    let body = op
        .get("requestBody")
        .map(|b| schema::resolve(root, b))
        .and_then(|b| {
            let content = b.get("content")?.as_object()?;
            // JSON first (any `+json` too), else the first media type.
            let (content_type, media) = content
                .iter()
                .find(|(t, _)| is_json(t))
                .or_else(|| content.iter().next())?;
            Some(Body {
                required: b.get("required") == Some(&Value::Bool(true)),
                content_type: content_type.clone(),
                schema: media.get("schema").map(|s| schema::inline(root, s)),
                description: text(&b, "description"),
            })
        });
    let output = op
        .get("responses")
        .and_then(Value::as_object)
        .and_then(|responses| {
            responses
                .iter()
                .filter(|(code, _)| code.starts_with('2') || code.as_str() == "2XX")
                .find_map(|(_, r)| {
                    let r = schema::resolve(root, r);
                    let content = r.get("content")?.as_object()?;
                    let (_, media) = content.iter().find(|(t, _)| is_json(t))?;
                    media.get("schema").map(|s| schema::inline(root, s))
                })
        });
    Operation {
        operation_id: text(op, "operationId"),
        method: method.to_ascii_uppercase(),
        path: path.to_string(),
        summary: text(op, "summary"),
        description: text(op, "description"),
        params,
        body,
        output,
    }
}

pub use switchboard_protocol::rest::is_json_type as is_json;
