//! `subscriptions/listen` (2026-07-28): a client's long-lived stream of list changes and
//! resource updates, which replaces the 2025 `GET` stream and `resources/subscribe`.
//!
//! The bridge merges it across upstreams: each upstream gets the part of the client's
//! filter that concerns it (its own URIs, unprefixed), through the gateway's endpoint of that
//! upstream; what comes back is prefixed again ([`crate::server_message`]), tagged with the
//! client's subscription id, and let through only if the client asked for it.

use crate::naming;
use serde_json::{Value, json};

/// The method that opens a subscription stream.
pub const LISTEN: &str = "subscriptions/listen";

/// The route selector value that sends a subscription to the bridge (no upstream name
/// can be it: names are letters, digits, `-` and `_`).
pub const LISTEN_ROUTE: &str = "~subscriptions";

/// `_meta` key naming the subscription a notification belongs to (the listen request's id).
pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// The notification that opens every subscription stream.
pub const ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";

/// What a client asks to hear (`params.notifications`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub tools: bool,
    pub prompts: bool,
    pub resources: bool,
    /// `resourceSubscriptions`.
    pub uris: Vec<String>,
}

impl Filter {
    pub fn of(notifications: &Value) -> Filter {
        let flag = |k: &str| notifications[k].as_bool().unwrap_or(false);
        Filter {
            tools: flag("toolsListChanged"),
            prompts: flag("promptsListChanged"),
            resources: flag("resourcesListChanged"),
            uris: notifications["resourceSubscriptions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        !(self.tools || self.prompts || self.resources) && self.uris.is_empty()
    }

    pub fn to_json(&self) -> Value {
        let mut n = serde_json::Map::new();
        for (key, on) in [
            ("toolsListChanged", self.tools),
            ("promptsListChanged", self.prompts),
            ("resourcesListChanged", self.resources),
        ] {
            if on {
                n.insert(key.into(), Value::Bool(true));
            }
        }
        if !self.uris.is_empty() {
            n.insert("resourceSubscriptions".into(), json!(self.uris));
        }
        Value::Object(n)
    }

    /// The part of the filter for the upstream whose resources carry `uri_prefix` (when
    /// `prefixed`): the list flags, and its own URIs without the prefix. `None` when
    /// nothing of it concerns that upstream.
    pub fn for_upstream(&self, uri_prefix: &str, prefixed: bool) -> Option<Filter> {
        let uris: Vec<String> = if prefixed {
            self.uris
                .iter()
                .filter_map(|u| {
                    let (p, rest) = naming::split_uri(u)?;
                    p.eq_ignore_ascii_case(uri_prefix).then(|| rest.to_string())
                })
                .collect()
        } else {
            self.uris.clone()
        };
        let part = Filter {
            uris,
            ..self.clone()
        };
        (!part.is_empty()).then_some(part)
    }

    /// The part an upstream acknowledged, as the client knows it (URIs prefixed back).
    pub fn from_upstream(&self, uri_prefix: &str, prefixed: bool) -> Filter {
        Filter {
            uris: self
                .uris
                .iter()
                .map(|u| {
                    if prefixed {
                        naming::prefix_uri(uri_prefix, u)
                    } else {
                        u.clone()
                    }
                })
                .collect(),
            ..self.clone()
        }
    }

    /// What every part honours together.
    pub fn union<'a>(parts: impl IntoIterator<Item = &'a Filter>) -> Filter {
        let mut out = Filter::default();
        for p in parts {
            out.tools |= p.tools;
            out.prompts |= p.prompts;
            out.resources |= p.resources;
            for u in &p.uris {
                if !out.uris.contains(u) {
                    out.uris.push(u.clone());
                }
            }
        }
        out
    }

    /// Whether the client asked for `message` (a notification as the client gets it).
    pub fn wants(&self, message: &Value) -> bool {
        match message["method"].as_str() {
            Some("notifications/tools/list_changed") => self.tools,
            Some("notifications/prompts/list_changed") => self.prompts,
            Some("notifications/resources/list_changed") => self.resources,
            Some("notifications/resources/updated") => message["params"]["uri"]
                .as_str()
                .is_some_and(|u| self.uris.iter().any(|w| w == u)),
            _ => false,
        }
    }
}

/// `message` as part of subscription `id`.
pub fn tagged(mut message: Value, id: &Value) -> Value {
    if !message["params"].is_object() {
        message["params"] = json!({});
    }
    let params = &mut message["params"];
    if !params["_meta"].is_object() {
        params["_meta"] = json!({});
    }
    params["_meta"][SUBSCRIPTION_ID] = id.clone();
    message
}

/// The first message of subscription `id`: what the gateway will deliver.
pub fn acknowledged(id: &Value, honoured: &Filter) -> Value {
    tagged(
        json!({"jsonrpc": "2.0", "method": ACKNOWLEDGED, "params": {"notifications": honoured.to_json()}}),
        id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked() -> Filter {
        Filter::of(&json!({"toolsListChanged": true,
            "resourceSubscriptions": ["a+file:///x", "b+mem://y", "file:///unprefixed"]}))
    }

    #[test]
    fn each_upstream_gets_its_own_uris_unprefixed_and_the_flags() {
        let a = asked().for_upstream("a", true).unwrap();
        assert!(a.tools && !a.prompts);
        assert_eq!(a.uris, ["file:///x"]);
        assert_eq!(asked().for_upstream("b", true).unwrap().uris, ["mem://y"]);
        // Only flags concern c.
        assert!(asked().for_upstream("c", true).unwrap().uris.is_empty());
        let uris_only = Filter::of(&json!({"resourceSubscriptions": ["a+file:///x"]}));
        assert_eq!(uris_only.for_upstream("c", true), None);
        // One upstream, names unprefixed: the URIs as they are.
        assert_eq!(asked().for_upstream("a", false).unwrap().uris.len(), 3);
    }

    #[test]
    fn acknowledgements_merge_and_notifications_are_let_through_as_asked() {
        let a = asked()
            .for_upstream("a", true)
            .unwrap()
            .from_upstream("a", true);
        let b = Filter {
            tools: false,
            ..asked().for_upstream("b", true).unwrap()
        }
        .from_upstream("b", true);
        let honoured = Filter::union([&a, &b]);
        assert_eq!(honoured.uris, ["a+file:///x", "b+mem://y"]);
        let ack = acknowledged(&json!(7), &honoured);
        assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_ID], 7);
        assert_eq!(ack["params"]["notifications"]["toolsListChanged"], true);
        assert!(honoured.wants(&json!({"method": "notifications/tools/list_changed"})));
        assert!(!honoured.wants(&json!({"method": "notifications/prompts/list_changed"})));
        assert!(
            honoured.wants(&json!({"method": "notifications/resources/updated",
            "params": {"uri": "b+mem://y"}}))
        );
        assert!(
            !honoured.wants(&json!({"method": "notifications/resources/updated",
            "params": {"uri": "b+mem://z"}}))
        );
        assert!(!honoured.wants(&json!({"method": "notifications/message"})));
        let t = tagged(
            json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}),
            &json!("s"),
        );
        assert_eq!(t["params"]["_meta"][SUBSCRIPTION_ID], "s");
    }
}
