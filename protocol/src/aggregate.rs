//! Merging list results from many upstreams into one, with prefixed names and URIs. Every
//! other field of every item is kept as the upstream sent it.

use crate::naming;
use crate::session::caps;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl ListKind {
    pub fn from_method(method: &str) -> Option<ListKind> {
        Some(match method {
            "tools/list" => ListKind::Tools,
            "prompts/list" => ListKind::Prompts,
            "resources/list" => ListKind::Resources,
            "resources/templates/list" => ListKind::ResourceTemplates,
            _ => return None,
        })
    }

    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::ResourceTemplates => "resources/templates/list",
        }
    }

    /// The array's key in the result.
    pub fn key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resourceTemplates",
        }
    }

    /// The capability an upstream needs to be asked.
    pub fn capability(self) -> u8 {
        match self {
            ListKind::Tools => caps::TOOLS,
            ListKind::Prompts => caps::PROMPTS,
            ListKind::Resources | ListKind::ResourceTemplates => caps::RESOURCES,
        }
    }
}

/// How one upstream's names are prefixed.
#[derive(Debug, Clone, Copy)]
pub struct Prefixes<'a> {
    /// For tool and prompt names.
    pub name: &'a str,
    /// For resource URIs and URI templates.
    pub uri: &'a str,
}

/// Rewrites one upstream's items in place and appends them to `out`.
pub fn append_prefixed(
    kind: ListKind,
    result: &mut Value,
    prefixes: Prefixes<'_>,
    separator: &str,
    out: &mut Vec<Value>,
) {
    let Some(items) = result.get_mut(kind.key()).and_then(Value::as_array_mut) else {
        return;
    };
    for mut item in items.drain(..) {
        let (field, uri) = match kind {
            ListKind::Tools | ListKind::Prompts => ("name", false),
            ListKind::Resources => ("uri", true),
            ListKind::ResourceTemplates => ("uriTemplate", true),
        };
        let Some(original) = item.get(field).and_then(Value::as_str) else {
            continue;
        };
        let renamed = if uri {
            naming::prefix_uri(prefixes.uri, original)
        } else {
            naming::prefix_name(prefixes.name, separator, original)
        };
        item[field] = Value::String(renamed);
        out.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tools_keep_every_field_and_get_a_prefix() {
        let mut r = json!({"tools": [{
            "name": "create_issue", "title": "Create", "description": "d",
            "inputSchema": {"type": "object"}, "outputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": false}, "icons": [{"src": "x"}], "_meta": {"k": 1}
        }]});
        let mut out = Vec::new();
        append_prefixed(
            ListKind::Tools,
            &mut r,
            Prefixes {
                name: "gh",
                uri: "gh",
            },
            "__",
            &mut out,
        );
        let mut want = json!({
            "name": "gh__create_issue", "title": "Create", "description": "d",
            "inputSchema": {"type": "object"}, "outputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": false}, "icons": [{"src": "x"}], "_meta": {"k": 1}
        });
        assert_eq!(out, vec![want.take()]);
    }

    #[test]
    fn resources_and_templates_get_uri_prefixes() {
        let mut r = json!({"resources": [{"uri": "file:///a", "name": "a"}], "resourceTemplates": [{"uriTemplate": "file:///{p}", "name": "t"}]});
        let mut out = Vec::new();
        append_prefixed(
            ListKind::Resources,
            &mut r,
            Prefixes {
                name: "my_fs",
                uri: "my-fs",
            },
            "__",
            &mut out,
        );
        append_prefixed(
            ListKind::ResourceTemplates,
            &mut r,
            Prefixes {
                name: "my_fs",
                uri: "my-fs",
            },
            "__",
            &mut out,
        );
        assert_eq!(out[0]["uri"], "my-fs+file:///a");
        assert_eq!(out[0]["name"], "a");
        assert_eq!(out[1]["uriTemplate"], "my-fs+file:///{p}");
    }

    #[test]
    fn items_without_their_key_field_are_dropped() {
        let mut r = json!({"tools": [{"description": "nameless"}, {"name": "ok"}]});
        let mut out = Vec::new();
        append_prefixed(
            ListKind::Tools,
            &mut r,
            Prefixes {
                name: "a",
                uri: "a",
            },
            "__",
            &mut out,
        );
        assert_eq!(out.len(), 1);
    }
}
