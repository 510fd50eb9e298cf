//! REST upstreams: an HTTP API described by OpenAPI, whose operations are MCP tools. The
//! control plane turns the document into [`RestTool`]s (what a tool is called, its schemas,
//! and the recipe for its HTTP request); the filter lists them from configuration and makes
//! each call from the recipe.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One operation as a tool.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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
