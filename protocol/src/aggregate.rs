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

/// Appends one upstream's items to `out`: those `keep` accepts (by their own name), with the
/// name or URI prefixed when `prefixes` is given.
pub fn append_prefixed(
    kind: ListKind,
    result: &mut Value,
    prefixes: Option<Prefixes<'_>>,
    separator: &str,
    keep: impl Fn(&str) -> bool,
    out: &mut Vec<Value>,
) {
    let Some(items) = result.get_mut(kind.key()).and_then(Value::as_array_mut) else {
        return;
    };
    let (field, uri) = match kind {
        ListKind::Tools | ListKind::Prompts => ("name", false),
        ListKind::Resources => ("uri", true),
        ListKind::ResourceTemplates => ("uriTemplate", true),
    };
    for mut item in items.drain(..) {
        let Some(original) = item.get(field).and_then(Value::as_str) else {
            continue;
        };
        if !keep(original) {
            continue;
        }
        let renamed = match (prefixes, uri) {
            (Some(p), true) => Some(naming::prefix_uri(p.uri, original)),
            (Some(p), false) => Some(
                naming::shorten(&naming::prefix_name(p.name, separator, original)).into_owned(),
            ),
            (None, false) if original.len() > naming::MAX_NAME_LEN => {
                Some(naming::shorten(original).into_owned())
            }
            (None, _) => None,
        };
        if let Some(renamed) = renamed {
            item[field] = Value::String(renamed);
        }
        out.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gh() -> Option<Prefixes<'static>> {
        Some(Prefixes {
            name: "gh",
            uri: "gh",
        })
    }

    #[test]
    fn tools_keep_every_field_and_get_a_prefix() {
        let mut r = json!({"tools": [{
            "name": "create_issue", "title": "Create", "description": "d",
            "inputSchema": {"type": "object"}, "outputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": false}, "icons": [{"src": "x"}], "_meta": {"k": 1}
        }]});
        let mut out = Vec::new();
        append_prefixed(ListKind::Tools, &mut r, gh(), "__", |_| true, &mut out);
        let want = json!({
            "name": "gh__create_issue", "title": "Create", "description": "d",
            "inputSchema": {"type": "object"}, "outputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": false}, "icons": [{"src": "x"}], "_meta": {"k": 1}
        });
        assert_eq!(out, vec![want]);
    }

    #[test]
    fn resources_and_templates_get_uri_prefixes() {
        let mut r = json!({"resources": [{"uri": "file:///a", "name": "a"}], "resourceTemplates": [{"uriTemplate": "file:///{p}", "name": "t"}]});
        let mut out = Vec::new();
        let p = Some(Prefixes {
            name: "my_fs",
            uri: "my-fs",
        });
        append_prefixed(ListKind::Resources, &mut r, p, "__", |_| true, &mut out);
        append_prefixed(
            ListKind::ResourceTemplates,
            &mut r,
            p,
            "__",
            |_| true,
            &mut out,
        );
        assert_eq!(out[0]["uri"], "my-fs+file:///a");
        assert_eq!(out[0]["name"], "a");
        assert_eq!(out[1]["uriTemplate"], "my-fs+file:///{p}");
    }

    #[test]
    fn items_without_their_key_field_are_dropped_and_filters_apply() {
        let mut r =
            json!({"tools": [{"description": "nameless"}, {"name": "ok"}, {"name": "secret"}]});
        let mut out = Vec::new();
        append_prefixed(
            ListKind::Tools,
            &mut r,
            gh(),
            "__",
            |n| n != "secret",
            &mut out,
        );
        assert_eq!(out, vec![json!({"name": "gh__ok"})]);
    }

    #[test]
    fn long_names_are_shortened() {
        let long = "t".repeat(70);
        let mut r = json!({"tools": [{"name": long}]});
        let mut out = Vec::new();
        append_prefixed(ListKind::Tools, &mut r, gh(), "__", |_| true, &mut out);
        let name = out[0]["name"].as_str().unwrap();
        assert_eq!(name.len(), 64);
        assert_eq!(name, naming::shorten(&format!("gh__{long}")));
    }

    #[test]
    fn without_prefixes_names_stay() {
        let mut r = json!({"tools": [{"name": "ok"}]});
        let mut out = Vec::new();
        append_prefixed(ListKind::Tools, &mut r, None, "__", |_| true, &mut out);
        assert_eq!(out, vec![json!({"name": "ok"})]);
    }
}
