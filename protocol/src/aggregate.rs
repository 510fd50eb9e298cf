//! Merging list results from many upstreams into one, with prefixed names and URIs. Every
//! other field of every item is kept as the upstream sent it.

use crate::naming;
use crate::session::caps;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl ListKind {
    /// What the items of this list are, for access rules.
    pub fn item_kind(self) -> crate::access::Kind {
        use crate::access::Kind;
        match self {
            ListKind::Tools => Kind::Tool,
            ListKind::Prompts => Kind::Prompt,
            ListKind::Resources | ListKind::ResourceTemplates => Kind::Resource,
        }
    }

    /// The list that names things of `kind` (tools and prompts; resources are found by URI).
    pub fn naming(kind: crate::access::Kind) -> Option<ListKind> {
        use crate::access::Kind;
        match kind {
            Kind::Tool => Some(ListKind::Tools),
            Kind::Prompt => Some(ListKind::Prompts),
            Kind::Upstream | Kind::Resource | Kind::Host => None,
        }
    }

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

/// The fields of a list result the gateway reads; items stay text.
#[derive(Deserialize)]
struct ListFields<'a> {
    #[serde(borrow, default)]
    tools: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    prompts: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    resources: Vec<&'a RawValue>,
    #[serde(borrow, default, rename = "resourceTemplates")]
    resource_templates: Vec<&'a RawValue>,
    #[serde(default, rename = "nextCursor")]
    next_cursor: Option<String>,
}

impl<'a> ListFields<'a> {
    fn items(self, kind: ListKind) -> Vec<&'a RawValue> {
        match kind {
            ListKind::Tools => self.tools,
            ListKind::Prompts => self.prompts,
            ListKind::Resources => self.resources,
            ListKind::ResourceTemplates => self.resource_templates,
        }
    }
}

/// An object's members in their order, values as text; keys borrowed unless escaped.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    members.push((k.0, v));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

fn push_json_str(out: &mut String, s: &str) {
    // Serialising a str into a String cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\"")));
}

/// One item of a merged list: the name (or URI) the client sees and the item as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    pub text: String,
    /// The name access rules judge it by, when that is not `name`: the aggregated
    /// endpoint's full name (prefixed, never shortened), or the normalized URI.
    pub rule: String,
}

impl Item {
    /// The name access rules judge this item by.
    pub fn rule_name(&self) -> &str {
        if self.rule.is_empty() {
            &self.name
        } else {
            &self.rule
        }
    }
}

/// One upstream's page as the client will see it, before access rules: what the list cache
/// keeps, so a cached page is joined, not parsed again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub items: Vec<Item>,
    pub next_cursor: Option<String>,
}

impl Page {
    /// `<cursor as JSON>\n` then per item `<name bytes> <text bytes> <rule bytes>\n<name><text><rule>`.
    pub fn encode(&self) -> String {
        let size: usize = self
            .items
            .iter()
            .map(|i| i.name.len() + i.text.len() + i.rule.len() + 24)
            .sum();
        let mut out = String::with_capacity(size + 64);
        match &self.next_cursor {
            Some(c) => push_json_str(&mut out, c),
            None => out.push_str("null"),
        }
        out.push('\n');
        for i in &self.items {
            out.push_str(&format!(
                "{} {} {}\n",
                i.name.len(),
                i.text.len(),
                i.rule.len()
            ));
            out.push_str(&i.name);
            out.push_str(&i.text);
            out.push_str(&i.rule);
        }
        out
    }

    pub fn decode(text: &str) -> Option<Page> {
        let (cursor, mut rest) = text.split_once('\n')?;
        let next_cursor: Option<String> = serde_json::from_str(cursor).ok()?;
        let mut items = Vec::new();
        while !rest.is_empty() {
            let (sizes, after) = rest.split_once('\n')?;
            let mut sizes = sizes.splitn(3, ' ');
            let mut size = || sizes.next()?.parse::<usize>().ok();
            let (n, t, r) = (size()?, size()?, size()?);
            let text_end = n.checked_add(t)?;
            let end = text_end.checked_add(r)?;
            items.push(Item {
                name: after.get(..n)?.to_string(),
                text: after.get(n..text_end)?.to_string(),
                rule: after.get(text_end..end)?.to_string(),
            });
            rest = after.get(end..)?;
        }
        Some(Page { items, next_cursor })
    }
}

/// An upstream's list result that is not a list of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("answered with a list that is not one ({0})")]
pub struct PageError(pub String);

/// One upstream's list result (JSON text) as the client will see it: the items `keep`
/// accepts (by their own name), with the name or URI prefixed when `prefixes` is given.
/// `ruled`: the prefixes under which access rules know the names (the aggregated
/// endpoint's, also where the client sees them unprefixed). Every other member is copied as
/// it came; the result is read once.
pub fn prefixed_page(
    kind: ListKind,
    result: &RawValue,
    prefixes: Option<Prefixes<'_>>,
    ruled: Option<Prefixes<'_>>,
    separator: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Page, PageError> {
    let fields: ListFields<'_> =
        serde_json::from_str(result.get()).map_err(|e| PageError(e.to_string()))?;
    let mut page = Page {
        items: Vec::new(),
        next_cursor: fields.next_cursor.clone(),
    };
    let out = &mut page.items;
    let (field, uri) = match kind {
        ListKind::Tools | ListKind::Prompts => ("name", false),
        ListKind::Resources => ("uri", true),
        ListKind::ResourceTemplates => ("uriTemplate", true),
    };
    for item in fields.items(kind) {
        let Ok(Members(members)) = serde_json::from_str::<Members<'_>>(item.get()) else {
            continue;
        };
        let Some(original) = members
            .iter()
            .find(|(k, _)| k == field)
            .and_then(|(_, v)| serde_json::from_str::<Cow<'_, str>>(v.get()).ok())
        else {
            continue;
        };
        if !keep(&original) {
            continue;
        }
        let rule = rule_name(kind, &original, ruled, separator);
        let renamed = match (prefixes, uri) {
            (Some(p), true) => Some(naming::prefix_uri(p.uri, &original)),
            (Some(p), false) => Some(
                naming::shorten(&naming::prefix_name(p.name, separator, &original)).into_owned(),
            ),
            (None, false) if original.len() > naming::MAX_NAME_LEN => {
                Some(naming::shorten(&original).into_owned())
            }
            (None, _) => None,
        };
        let Some(renamed) = renamed else {
            let rule = if rule == original {
                String::new()
            } else {
                rule
            };
            out.push(Item {
                name: original.into_owned(),
                text: item.get().to_string(),
                rule,
            });
            continue;
        };
        let mut text = String::with_capacity(item.get().len() + renamed.len());
        text.push('{');
        for (i, (k, v)) in members.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            push_json_str(&mut text, k);
            text.push(':');
            if k == field {
                push_json_str(&mut text, &renamed);
            } else {
                text.push_str(v.get());
            }
        }
        text.push('}');
        out.push(Item {
            rule: if rule == renamed { String::new() } else { rule },
            name: renamed,
            text,
        });
    }
    Ok(page)
}

/// The name rules know an item by: prefixed as on the aggregated endpoint, never shortened;
/// a URI normalized as every URI a client sends is ([`crate::uri`]).
fn rule_name(
    kind: ListKind,
    original: &str,
    ruled: Option<Prefixes<'_>>,
    separator: &str,
) -> String {
    match (kind, ruled) {
        (ListKind::Tools | ListKind::Prompts, Some(p)) => {
            naming::prefix_name(p.name, separator, original)
        }
        (ListKind::Tools | ListKind::Prompts, None) => original.to_string(),
        (ListKind::Resources | ListKind::ResourceTemplates, _) => {
            let full = match ruled {
                Some(p) => naming::prefix_uri(p.uri, original),
                None => original.to_string(),
            };
            let normalized = if kind == ListKind::Resources {
                crate::uri::normalize(&full)
            } else {
                crate::uri::normalize_template(&full)
            };
            normalized.unwrap_or(full)
        }
    }
}

/// A merged list result: `{"<key>":[items…],"nextCursor":…}`.
pub fn list_result<'a>(
    kind: ListKind,
    items: impl Iterator<Item = &'a str> + Clone,
    next_cursor: Option<&str>,
) -> String {
    let size: usize = items.clone().map(|i| i.len() + 1).sum();
    let mut out = String::with_capacity(size + 64);
    out.push_str("{\"");
    out.push_str(kind.key());
    out.push_str("\":[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
    if let Some(c) = next_cursor {
        out.push_str(",\"nextCursor\":");
        push_json_str(&mut out, c);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn gh() -> Option<Prefixes<'static>> {
        Some(Prefixes {
            name: "gh",
            uri: "gh",
        })
    }

    fn raw(v: &Value) -> Box<RawValue> {
        RawValue::from_string(v.to_string()).unwrap()
    }

    fn text(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.into()).unwrap()
    }

    /// Prefixes and reads the items back as values, checking each item's name.
    fn append(
        kind: ListKind,
        r: &Value,
        prefixes: Option<Prefixes<'_>>,
        keep: impl Fn(&str) -> bool,
    ) -> Vec<Value> {
        let key = match kind {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources => "uri",
            ListKind::ResourceTemplates => "uriTemplate",
        };
        prefixed_page(kind, &raw(r), prefixes, prefixes, "__", keep)
            .unwrap()
            .items
            .iter()
            .map(|i| {
                let v: Value = serde_json::from_str(&i.text).unwrap();
                assert_eq!(v[key], i.name.as_str());
                v
            })
            .collect()
    }

    #[test]
    fn tools_keep_every_field_in_order_and_get_a_prefix() {
        let r = json!({"tools": [{
            "title": "Create", "name": "create_issue", "description": "d",
            "inputSchema": {"type": "object"}, "outputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": false}, "icons": [{"src": "x"}], "_meta": {"k": 1}
        }]});
        let want = json!({
            "title": "Create", "name": "gh__create_issue", "description": "d",
            "inputSchema": {"type": "object"}, "outputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": false}, "icons": [{"src": "x"}], "_meta": {"k": 1}
        });
        assert_eq!(
            append(ListKind::Tools, &r, gh(), |_| true),
            vec![want.clone()]
        );
        // The order of members is the upstream's.
        let page = prefixed_page(ListKind::Tools, &raw(&r), gh(), gh(), "__", |_| true).unwrap();
        assert_eq!(page.items[0].text, want.to_string());
    }

    #[test]
    fn escaped_keys_and_names_survive() {
        let body = r#"{"tools":[{"na\u006de":"a\"b","x\ny":1}]}"#;
        let page = prefixed_page(ListKind::Tools, &text(body), gh(), gh(), "__", |_| true).unwrap();
        let v: Value = serde_json::from_str(&page.items[0].text).unwrap();
        assert_eq!(v, json!({"name": "gh__a\"b", "x\ny": 1}));
        assert_eq!(page.items[0].name, "gh__a\"b");
    }

    #[test]
    fn resources_and_templates_get_uri_prefixes() {
        let r = json!({"resources": [{"uri": "file:///a", "name": "a"}], "resourceTemplates": [{"uriTemplate": "file:///{p}", "name": "t"}]});
        let p = Some(Prefixes {
            name: "my_fs",
            uri: "my-fs",
        });
        let resources = append(ListKind::Resources, &r, p, |_| true);
        let templates = append(ListKind::ResourceTemplates, &r, p, |_| true);
        assert_eq!(resources[0]["uri"], "my-fs+file:///a");
        assert_eq!(resources[0]["name"], "a");
        assert_eq!(templates[0]["uriTemplate"], "my-fs+file:///{p}");
    }

    #[test]
    fn items_without_their_key_field_are_dropped_and_filters_apply() {
        let r = json!({"tools": [{"description": "nameless"}, {"name": "ok"}, {"name": "secret"}]});
        let out = append(ListKind::Tools, &r, gh(), |n| n != "secret");
        assert_eq!(out, vec![json!({"name": "gh__ok"})]);
    }

    #[test]
    fn long_names_are_shortened() {
        let long = "t".repeat(70);
        let out = append(
            ListKind::Tools,
            &json!({"tools": [{"name": long}]}),
            gh(),
            |_| true,
        );
        let name = out[0]["name"].as_str().unwrap();
        assert_eq!(name.len(), 64);
        assert_eq!(name, naming::shorten(&format!("gh__{long}")));
        // Rules judge it by the full name it stands for.
        let body = raw(&json!({"tools": [{"name": long}]}));
        let page = prefixed_page(ListKind::Tools, &body, gh(), gh(), "__", |_| true).unwrap();
        assert_eq!(page.items[0].rule_name(), format!("gh__{long}"));
        // Unprefixed for the client, prefixed for the rules (a per-upstream endpoint).
        let page = prefixed_page(ListKind::Tools, &body, None, gh(), "__", |_| true).unwrap();
        assert_eq!(page.items[0].rule_name(), format!("gh__{long}"));
    }

    #[test]
    fn without_prefixes_names_stay_and_the_text_is_untouched() {
        let body = r#"{"tools":[ {"name": "ok" ,"a":1} ], "nextCursor": "n"}"#;
        let page = prefixed_page(ListKind::Tools, &text(body), None, None, "__", |_| true).unwrap();
        assert_eq!(page.items[0].text, r#"{"name": "ok" ,"a":1}"#);
        assert_eq!(page.items[0].name, "ok");
        assert_eq!(page.next_cursor.as_deref(), Some("n"));
    }

    #[test]
    fn a_merged_result_has_the_items_and_the_cursor() {
        let items = [r#"{"name":"a"}"#, r#"{"name":"b"}"#];
        let merged = list_result(ListKind::Prompts, items.iter().copied(), Some("c\"1"));
        let v: Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(
            v,
            json!({"prompts": [{"name": "a"}, {"name": "b"}], "nextCursor": "c\"1"})
        );
        let empty = list_result(ListKind::Tools, std::iter::empty(), None);
        assert_eq!(
            serde_json::from_str::<Value>(&empty).unwrap(),
            json!({"tools": []})
        );
    }

    #[test]
    fn a_result_that_is_not_a_list_is_refused() {
        for bad in [r#"{"tools": 3}"#, r#"{"nextCursor": 1}"#, "7"] {
            assert!(
                prefixed_page(ListKind::Tools, &text(bad), None, None, "__", |_| true).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_page_survives_the_cache_encoding() {
        let page = Page {
            items: vec![
                Item {
                    name: "gh__a\nb é".into(),
                    text: r#"{"name":"gh__a\nb é","d":"1 2\n3"}"#.into(),
                    rule: "gh__a\nb é long".into(),
                },
                Item {
                    name: String::new(),
                    text: "{}".into(),
                    rule: String::new(),
                },
            ],
            next_cursor: Some("c\n1".into()),
        };
        assert_eq!(Page::decode(&page.encode()), Some(page));
        assert_eq!(
            Page::decode(&Page::default().encode()),
            Some(Page::default())
        );
        for bad in [
            "",
            "null\n3 2 0\nab",
            "null\nx y z\n",
            "null\n1 2\nabc",
            "null\n1 99999999999999999999 0\na",
        ] {
            assert_eq!(Page::decode(bad), None, "{bad:?}");
        }
    }
}
