//! REST upstreams: an HTTP API described by OpenAPI, whose operations are MCP tools. The
//! control plane turns the document into [`RestTool`]s (what a tool is called, its schemas,
//! and the recipe for its HTTP request); the filter lists them from configuration and makes
//! each call from the recipe.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One operation as a tool.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestTool {
    /// The tool's name (unprefixed), unique within its upstream.
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// JSON Schema of the arguments: the operation's parameters and its body.
    pub input_schema: Value,
    /// JSON Schema of a 2xx JSON answer, when it is an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// `GET`, `POST`, …
    pub method: String,
    /// The operation's path template (`/items/{item_id}`), after the base URL's path.
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<RestParam>,
    #[serde(default, skip_serializing_if = "RestBody::is_none")]
    pub body: RestBody,
}

/// A parameter: an argument of the same name goes to `location`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestParam {
    pub name: String,
    pub location: ParamLocation,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamLocation {
    Path,
    Query,
    Header,
}

/// Where the request body comes from in the arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RestBody {
    /// No body.
    #[default]
    None,
    /// A JSON object whose properties are these arguments (the body's own fields, beside the
    /// parameters, when no name clashes).
    Fields { names: Vec<String> },
    /// One argument (`body`, or `request_body` when a parameter is called `body`), sent as
    /// it is: JSON, or a string for another `content_type`.
    Whole {
        argument: String,
        content_type: String,
    },
}

impl RestBody {
    pub fn is_none(&self) -> bool {
        *self == RestBody::None
    }
}

/// The HTTP request a tool call makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestRequest {
    pub method: String,
    /// Path and query, after the base URL's path.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why the arguments make no request (the client's mistake: `-32602`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArgumentError(pub String);

/// Whether a document's header parameter may be sent: a plain header name, and not one
/// that would steer the request (pseudo-headers, `host`, framing) or speak for the gateway
/// (`x-switchboard-*`, `x-envoy-*`). A document fetched from a URL is the upstream's word.
pub fn allowed_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && !matches!(
            n.as_str(),
            "host"
                | "content-length"
                | "transfer-encoding"
                | "connection"
                | "upgrade"
                | "te"
                | "keep-alive"
                | "proxy-connection"
                | "content-type"
        )
        && !n.starts_with("x-switchboard-")
        && !n.starts_with("x-envoy-")
}

/// What stays as it is in a path segment or a query component: RFC 3986's unreserved.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// An argument as text: strings as they are, anything else as JSON.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl RestTool {
    /// The tool as `tools/list` gives it (unprefixed).
    pub fn listed(&self) -> Value {
        let mut tool = serde_json::json!({
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
        });
        if let Some(out) = &self.output_schema {
            tool["outputSchema"] = out.clone();
        }
        tool
    }

    /// The request for a call with `arguments`: path parameters percent-encoded into the
    /// template, query parameters (arrays repeated, `null` left out), header parameters,
    /// and the body. `base_path` is the base URL's path.
    pub fn request(
        &self,
        base_path: &str,
        arguments: &Value,
    ) -> Result<RestRequest, ArgumentError> {
        let empty = serde_json::Map::new();
        let args = match arguments {
            Value::Object(o) => o,
            Value::Null => &empty,
            _ => return Err(ArgumentError("arguments must be an object".into())),
        };
        let given = |name: &str| args.get(name).filter(|v| !v.is_null());
        let mut path = self.path.clone();
        let mut query: Vec<String> = Vec::new();
        let mut headers = Vec::new();
        for p in &self.params {
            let Some(value) = given(&p.name) else {
                if p.required {
                    return Err(ArgumentError(format!(
                        "missing required argument {:?}",
                        p.name
                    )));
                }
                if p.location == ParamLocation::Path {
                    return Err(ArgumentError(format!("missing path argument {:?}", p.name)));
                }
                continue;
            };
            match p.location {
                ParamLocation::Path => {
                    path = path.replace(&format!("{{{}}}", p.name), &encode(&text_of(value)));
                }
                ParamLocation::Query => match value {
                    Value::Array(items) => query.extend(
                        items
                            .iter()
                            .map(|i| format!("{}={}", encode(&p.name), encode(&text_of(i)))),
                    ),
                    v => query.push(format!("{}={}", encode(&p.name), encode(&text_of(v)))),
                },
                ParamLocation::Header if !allowed_header(&p.name) => {}
                ParamLocation::Header => {
                    let v = text_of(value);
                    if v.contains(['\r', '\n', '\0']) {
                        return Err(ArgumentError(format!(
                            "header argument {:?} holds a line break",
                            p.name
                        )));
                    }
                    headers.push((p.name.to_ascii_lowercase(), v));
                }
            }
        }
        let body = match &self.body {
            RestBody::None => Vec::new(),
            RestBody::Fields { names } => {
                let fields: serde_json::Map<String, Value> = names
                    .iter()
                    .filter_map(|n| args.get(n).map(|v| (n.clone(), v.clone())))
                    .collect();
                headers.push(("content-type".into(), "application/json".into()));
                Value::Object(fields).to_string().into_bytes()
            }
            RestBody::Whole {
                argument,
                content_type,
            } => match given(argument) {
                None => Vec::new(),
                Some(v) => {
                    headers.push(("content-type".into(), content_type.clone()));
                    match v {
                        Value::String(s) if !is_json_type(content_type) => s.clone().into_bytes(),
                        other => other.to_string().into_bytes(),
                    }
                }
            },
        };
        let base = base_path.trim_end_matches('/');
        let mut full = format!("{base}{path}");
        if !query.is_empty() {
            full.push(if full.contains('?') { '&' } else { '?' });
            full.push_str(&query.join("&"));
        }
        Ok(RestRequest {
            method: self.method.clone(),
            path: full,
            headers,
            body,
        })
    }
}

/// The media type of a `Content-Type` value, lower case, without parameters.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// `application/json`, or any `application/*+json`.
pub fn is_json_type(content_type: &str) -> bool {
    let t = media_type(content_type);
    t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
}

fn is_text_type(content_type: &str) -> bool {
    let t = media_type(content_type);
    t.starts_with("text/")
        || is_json_type(&t)
        || matches!(
            t.as_str(),
            "application/xml"
                | "application/yaml"
                | "application/x-yaml"
                | "application/javascript"
        )
        || t.ends_with("+xml")
}

/// The `CallToolResult` of an HTTP answer: a 2xx JSON body as text plus
/// `structuredContent` when it is an object; other text as text; anything else as an
/// embedded resource (base64); a non-2xx answer as `isError` with the status and the
/// body's message.
pub fn call_result(tool: &RestTool, status: u16, content_type: &str, body: &[u8]) -> Value {
    use base64::Engine;
    let ok = (200..300).contains(&status);
    let json: Option<Value> = is_json_type(content_type)
        .then(|| serde_json::from_slice(body).ok())
        .flatten();
    if !ok {
        let message = json
            .as_ref()
            .and_then(|j| {
                ["detail", "message", "error", "title"]
                    .iter()
                    .find_map(|k| j.get(*k))
                    .map(text_of)
            })
            .unwrap_or_else(|| {
                String::from_utf8_lossy(body)
                    .trim()
                    .chars()
                    .take(2000)
                    .collect()
            });
        let text = if message.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {message}")
        };
        return serde_json::json!({
            "content": [{"type": "text", "text": text}],
            "isError": true,
        });
    }
    if body.is_empty() {
        return serde_json::json!({
            "content": [{"type": "text", "text": format!("HTTP {status}: no content")}],
        });
    }
    if let Some(j) = json {
        let mut result = serde_json::json!({
            "content": [{"type": "text", "text": String::from_utf8_lossy(body)}],
        });
        // Only an object is structured content (what an output schema promises).
        if j.is_object() {
            result["structuredContent"] = j;
        }
        return result;
    }
    if (is_text_type(content_type) || content_type.is_empty())
        && let Ok(text) = std::str::from_utf8(body)
    {
        return serde_json::json!({"content": [{"type": "text", "text": text}]});
    }
    serde_json::json!({"content": [{
        "type": "resource",
        "resource": {
            "uri": format!("rest:///{}", tool.name),
            "mimeType": content_type,
            "blob": base64::engine::general_purpose::STANDARD.encode(body),
        }
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(body: RestBody) -> RestTool {
        RestTool {
            name: "t".into(),
            method: "POST".into(),
            path: "/items/{id}/notes".into(),
            params: vec![
                RestParam {
                    name: "id".into(),
                    location: ParamLocation::Path,
                    required: true,
                },
                RestParam {
                    name: "tag".into(),
                    location: ParamLocation::Query,
                    required: false,
                },
                RestParam {
                    name: "X-Trace".into(),
                    location: ParamLocation::Header,
                    required: false,
                },
            ],
            body,
            ..Default::default()
        }
    }

    #[test]
    fn arguments_become_path_query_headers_and_body() {
        let t = tool(RestBody::Fields {
            names: vec!["text".into()],
        });
        let r = t
            .request(
                "/api/",
                &json!({"id": "a/b c", "tag": ["x&y", "z"], "X-Trace": "r1", "text": "hi", "other": 1}),
            )
            .unwrap();
        assert_eq!(r.path, "/api/items/a%2Fb%20c/notes?tag=x%26y&tag=z");
        assert!(r.headers.contains(&("x-trace".into(), "r1".into())));
        assert_eq!(r.body, br#"{"text":"hi"}"#);
        // Missing or unsafe arguments are the client's mistake, said before any request.
        assert!(t.request("/", &json!({})).unwrap_err().0.contains("\"id\""));
        for reserved in [
            ":authority",
            "Host",
            "x-switchboard-route",
            "x-envoy-original-path",
        ] {
            assert!(!allowed_header(reserved), "{reserved}");
        }
        let crlf = t.request("/", &json!({"id": 1, "X-Trace": "a\r\nInjected: 1"}));
        assert!(crlf.unwrap_err().0.contains("line break"));
        assert!(t.request("/", &json!([1])).is_err());
        let whole = tool(RestBody::Whole {
            argument: "body".into(),
            content_type: "text/csv".into(),
        });
        let r = whole
            .request("", &json!({"id": 7, "body": "a,b\n1,2"}))
            .unwrap();
        assert_eq!(
            (r.path.as_str(), r.body.as_slice()),
            ("/items/7/notes", b"a,b\n1,2".as_slice())
        );
        assert!(
            r.headers
                .contains(&("content-type".into(), "text/csv".into()))
        );
    }

    #[test]
    fn answers_become_tool_results() {
        let t = tool(RestBody::None);
        let ok = call_result(&t, 200, "application/json", br#"{"id":1}"#);
        assert_eq!(ok["structuredContent"], json!({"id": 1}));
        assert!(ok.get("isError").is_none());
        let list = call_result(&t, 200, "application/json; charset=utf-8", b"[1,2]");
        assert!(
            list.get("structuredContent").is_none(),
            "only objects are structured"
        );
        assert_eq!(list["content"][0]["text"], "[1,2]");
        let gone = call_result(&t, 404, "application/json", br#"{"detail":"no item 9"}"#);
        assert_eq!(gone["isError"], true);
        assert_eq!(gone["content"][0]["text"], "HTTP 404: no item 9");
        let plain = call_result(&t, 500, "text/plain", b"boom");
        assert_eq!(plain["content"][0]["text"], "HTTP 500: boom");
        let empty = call_result(&t, 204, "", b"");
        assert_eq!(empty["content"][0]["text"], "HTTP 204: no content");
        let png = call_result(&t, 200, "image/png", &[0x89, b'P', 0xff]);
        assert_eq!(png["content"][0]["resource"]["blob"], "iVD/");
    }
}
