//! State-of-the-world xDS rules for one stream, without I/O (after go-control-plane's
//! `sotw/v3/ads.go`): per type URL remember the last nonce and version sent; ignore requests
//! that answer an older nonce; an `error_detail` is a NACK, which is reported and whose
//! version is not sent again; push a type again only when its version changes.

use crate::resources::{Snapshot, TYPE_ORDER, TypedResources};
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
struct TypeState {
    /// Names Envoy asked for; empty means all (wildcard).
    names: Vec<String>,
    sent_version: Option<String>,
    sent_nonce: Option<String>,
    nacked_version: Option<String>,
}

/// What a request meant, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Subscribed {
        type_url: String,
    },
    Ack {
        type_url: String,
        version: String,
    },
    Nack {
        type_url: String,
        version: String,
        error: String,
    },
    Stale {
        type_url: String,
        nonce: String,
    },
    UnknownType {
        type_url: String,
    },
}

#[derive(Debug, Default)]
pub struct StreamState {
    types: BTreeMap<String, TypeState>,
    nonce: u64,
}

impl StreamState {
    pub fn on_request(
        &mut self,
        req: &DiscoveryRequest,
        snapshot: &Snapshot,
    ) -> (Option<DiscoveryResponse>, Event) {
        let type_url = req.type_url.clone();
        let Some(resources) = snapshot.of_type(&type_url) else {
            return (None, Event::UnknownType { type_url });
        };
        let state = self.types.entry(type_url.clone()).or_default();
        if !req.response_nonce.is_empty()
            && state.sent_nonce.as_deref() != Some(req.response_nonce.as_str())
        {
            return (
                None,
                Event::Stale {
                    type_url,
                    nonce: req.response_nonce.clone(),
                },
            );
        }
        let names_changed = state.names != req.resource_names;
        state.names = req.resource_names.clone();
        let event = if req.response_nonce.is_empty() {
            Event::Subscribed {
                type_url: type_url.clone(),
            }
        } else if let Some(status) = &req.error_detail {
            let rejected = state.sent_version.clone().unwrap_or_default();
            state.nacked_version = Some(rejected.clone());
            // A NACK is not followed by a resend of the same version; a new version will be.
            return (
                None,
                Event::Nack {
                    type_url,
                    version: rejected,
                    error: status.message.clone(),
                },
            );
        } else {
            Event::Ack {
                type_url: type_url.clone(),
                version: req.version_info.clone(),
            }
        };
        let first = matches!(event, Event::Subscribed { .. });
        let changed = state.sent_version.as_deref() != Some(resources.version.as_str());
        if first || names_changed || changed {
            let response = self.respond(&type_url, resources);
            (Some(response), event)
        } else {
            (None, event)
        }
    }

    /// Responses for every subscribed type whose version changed, clusters first.
    pub fn on_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DiscoveryResponse> {
        let mut out = Vec::new();
        for type_url in TYPE_ORDER {
            let Some(resources) = snapshot.of_type(type_url) else {
                continue;
            };
            let Some(state) = self.types.get(type_url) else {
                continue;
            };
            let current = Some(resources.version.as_str());
            if state.sent_version.as_deref() == current
                || state.nacked_version.as_deref() == current
            {
                continue;
            }
            out.push(self.respond(type_url, resources));
        }
        out
    }

    fn respond(&mut self, type_url: &str, resources: &TypedResources) -> DiscoveryResponse {
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let state = self.types.entry(type_url.to_string()).or_default();
        state.sent_version = Some(resources.version.clone());
        state.sent_nonce = Some(nonce.clone());
        let wanted = |name: &str| state.names.is_empty() || state.names.iter().any(|n| n == name);
        DiscoveryResponse {
            version_info: resources.version.clone(),
            resources: resources
                .items
                .iter()
                .filter(|(n, _)| wanted(n))
                .map(|(_, a)| a.clone())
                .collect(),
            type_url: type_url.to_string(),
            nonce,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{env::Environment, load_str};
    use crate::resources::{CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE};
    use crate::translate::{FilterModule, translate};
    use envoy_types::pb::google::rpc::Status;

    fn snapshot(port: u16) -> Snapshot {
        let yaml = format!("upstreams:\n  - name: a\n    url: http://127.0.0.1:{port}/mcp\n");
        let g = load_str(&yaml, "t.yaml", &Environment::Fixed(Default::default())).unwrap();
        Snapshot::new(&translate(&g, &FilterModule::example()))
    }

    fn req(type_url: &str, version: &str, nonce: &str, names: &[&str]) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: type_url.into(),
            version_info: version.into(),
            response_nonce: nonce.into(),
            resource_names: names.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn first_request_gets_resources_and_ack_gets_nothing() {
        let s = snapshot(1);
        let mut st = StreamState::default();
        let (r, e) = st.on_request(&req(CLUSTER_TYPE, "", "", &[]), &s);
        let r = r.unwrap();
        assert_eq!(
            e,
            Event::Subscribed {
                type_url: CLUSTER_TYPE.into()
            }
        );
        assert_eq!(
            r.resources.len(),
            2,
            "the upstream's calls and streams clusters"
        );
        assert_eq!(r.version_info, s.clusters.version);
        let (r2, e) = st.on_request(&req(CLUSTER_TYPE, &r.version_info, &r.nonce, &[]), &s);
        assert!(r2.is_none());
        assert!(matches!(e, Event::Ack { .. }));
    }

    #[test]
    fn stale_nonce_is_ignored() {
        let s = snapshot(1);
        let mut st = StreamState::default();
        let (r, _) = st.on_request(&req(CLUSTER_TYPE, "", "", &[]), &s);
        let first = r.unwrap();
        let pushed = st.on_snapshot(&snapshot(2));
        assert_eq!(pushed.len(), 1);
        // The ACK of the first push arrives after the second push: stale.
        let (r, e) = st.on_request(
            &req(CLUSTER_TYPE, &first.version_info, &first.nonce, &[]),
            &snapshot(2),
        );
        assert!(r.is_none());
        assert!(matches!(e, Event::Stale { .. }));
    }

    #[test]
    fn nack_is_reported_and_the_version_not_resent() {
        let s1 = snapshot(1);
        let s2 = snapshot(2);
        let mut st = StreamState::default();
        let (r, _) = st.on_request(&req(CLUSTER_TYPE, "", "", &[]), &s1);
        let r = r.unwrap();
        st.on_request(&req(CLUSTER_TYPE, &r.version_info, &r.nonce, &[]), &s1);
        let push = st.on_snapshot(&s2).remove(0);
        let mut nack = req(CLUSTER_TYPE, &r.version_info, &push.nonce, &[]);
        nack.error_detail = Some(Status {
            code: 3,
            message: "bad cluster".into(),
            details: vec![],
        });
        let (resp, e) = st.on_request(&nack, &s2);
        assert!(resp.is_none());
        assert_eq!(
            e,
            Event::Nack {
                type_url: CLUSTER_TYPE.into(),
                version: s2.clusters.version.clone(),
                error: "bad cluster".into()
            }
        );
        assert!(
            st.on_snapshot(&s2).is_empty(),
            "a NACKed version is not pushed again"
        );
        assert_eq!(st.on_snapshot(&snapshot(3)).len(), 1, "a new version is");
    }

    #[test]
    fn only_subscribed_types_are_pushed_in_order_and_routes_by_name() {
        let mut st = StreamState::default();
        let s1 = snapshot(1);
        st.on_request(&req(LISTENER_TYPE, "", "", &[]), &s1);
        st.on_request(&req(CLUSTER_TYPE, "", "", &[]), &s1);
        let (r, _) = st.on_request(&req(ROUTE_TYPE, "", "", &["other"]), &s1);
        assert!(r.unwrap().resources.is_empty(), "only the names asked for");
        let (r, _) = st.on_request(&req(ROUTE_TYPE, "", "", &["switchboard"]), &s1);
        assert_eq!(r.unwrap().resources.len(), 1);
        let mut s2 = snapshot(2);
        s2.listeners.version = "changed".into();
        let types: Vec<String> = st
            .on_snapshot(&s2)
            .into_iter()
            .map(|r| r.type_url)
            .collect();
        assert_eq!(types, [CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE]);
    }

    #[test]
    fn unknown_type_is_reported() {
        let mut st = StreamState::default();
        let (r, e) = st.on_request(&req("type.googleapis.com/x.Y", "", "", &[]), &snapshot(1));
        assert!(r.is_none());
        assert!(matches!(e, Event::UnknownType { .. }));
    }
}
