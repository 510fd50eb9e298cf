//! A stateless client's call of a 2025 upstream that may ask the client something
//! (`elicitation/create`, `sampling/createMessage`, `roots/list` inside its answer). The
//! revision has no server requests: they reach the client as `input_required`, and its retry
//! answers them. The upstream meanwhile waits on an open stream, which a filter cannot hold
//! across requests; the bridge can: the filter sends such calls there
//! ([`crate::interactive`]), the bridge makes them through the upstream's own endpoint on
//! the gateway in a 2025 session, and holds the stream while the client answers. The retry
//! carries a `requestState` the bridge sealed as the filter does, naming the held call.

use super::*;
use crate::interactive::{
    ANSWER, ASKED_HEADER, ERA_HEADER, HELD_PREFIX, INTERACTIVE_ROUTE, SESSION_CLIENT, TARGET_HEADER,
};
use crate::modern;

impl Exchange {
    /// `Some` when this stateless request goes to the bridge: a retry (`retry`: it carries a
    /// `requestState`) of a call the bridge holds, or a call of a 2025 upstream by a client
    /// that can be asked something.
    pub(super) fn interactive(
        &mut self,
        gw: &Gateway,
        method: &str,
        addressed: Option<usize>,
        retry: bool,
        body: &[u8],
        clock: &Clock,
    ) -> Option<Step> {
        let u = addressed?;
        let field = modern::named_param(method)?;
        if !gw.config.get_stream {
            return None;
        }
        // Decided before the body is read again: most calls are neither.
        let asked_by_legacy = self.client_can_be_asked() && gw.era(u) == Some(era::Era::Legacy);
        if !(retry || asked_by_legacy) {
            return None;
        }
        let mut v: Value = serde_json::from_slice(body).ok()?;
        let held = v["params"]["requestState"]
            .as_str()
            .is_some_and(|s| s.starts_with(HELD_PREFIX));
        if !(held || asked_by_legacy) {
            return None;
        }
        let upstream = &gw.config.upstreams[u];
        let asked = v["params"][field].as_str()?.to_string();
        // The bridge asks the upstream's own endpoint, where names are its own.
        let own = match (self.scope, gw.prefixed()) {
            (Scope::Aggregated, true) if field == "uri" => naming::split_uri(&asked)?.1.to_string(),
            (Scope::Aggregated, true) => {
                if naming::looks_shortened(&asked) {
                    return None;
                }
                naming::split_name(&asked, &gw.config.separator)?
                    .1
                    .to_string()
            }
            _ => asked.clone(),
        };
        v["params"][field] = Value::String(own);
        let client = self.client_meta.clone().unwrap_or_default();
        let body = modern::with_request_meta(v.to_string().as_bytes(), &client);
        let identity = self.identity.as_ref().map(|who| gw.relay(who, clock));
        self.audit.upstream.clone_from(&upstream.name);
        self.stateless = None;
        self.state = State::Done;
        Some(Step::Route(Route {
            upstream: INTERACTIVE_ROUTE.into(),
            body: Some(body),
            headers: vec![
                (crate::access::IDENTITY_HEADER.into(), identity),
                (TARGET_HEADER.into(), Some(upstream.name.clone())),
                (
                    ASKED_HEADER.into(),
                    Some(modern::encode_header_value(&asked)),
                ),
            ],
        }))
    }
}

impl Exchange {
    /// Whether the client declared a capability an upstream uses by asking it something.
    fn client_can_be_asked(&self) -> bool {
        self.client_meta.as_ref().is_some_and(|c| {
            serde_json::from_str::<Value>(&c.capabilities).is_ok_and(|caps| {
                ["elicitation", "sampling", "roots"]
                    .iter()
                    .any(|k| caps.get(k).is_some())
            })
        })
    }

    /// A 2025 client's call of an upstream of the stateless revision, when that upstream may
    /// answer `input_required`: the bridge makes it (as a stateless client, through the
    /// upstream's own endpoint) and puts the upstream's questions to the client as server
    /// requests inside the call's event stream. Needs the bridge and `stateless_clients`.
    pub(super) fn held_for_session(
        &mut self,
        gw: &Gateway,
        upstream: &str,
        body: &[u8],
    ) -> Option<Step> {
        if !(gw.config.get_stream && gw.config.stateless_clients && self.client_can_be_asked()) {
            return None;
        }
        let (_, asked) = self.asked.clone()?;
        let client = self.client_meta.clone().unwrap_or_default();
        let body = modern::with_request_meta(body, &client);
        let clock = self.arrival.clone();
        Some(self.via_bridge(gw, upstream, body, SESSION_CLIENT, Some(&asked), &clock))
    }

    /// A 2025 client's answer to a question the bridge put to it for `upstream`.
    pub(super) fn answer_to_bridge(
        &mut self,
        gw: &Gateway,
        upstream: &str,
        body: Vec<u8>,
        clock: &Clock,
    ) -> Step {
        self.via_bridge(gw, upstream, body, ANSWER, None, clock)
    }

    fn via_bridge(
        &mut self,
        gw: &Gateway,
        upstream: &str,
        body: Vec<u8>,
        era: &str,
        asked: Option<&str>,
        clock: &Clock,
    ) -> Step {
        let identity = self.identity.as_ref().map(|who| gw.relay(who, clock));
        self.audit.upstream = upstream.to_string();
        self.state = State::Done;
        let mut headers = vec![
            (crate::access::IDENTITY_HEADER.into(), identity),
            (TARGET_HEADER.into(), Some(upstream.to_string())),
            (ERA_HEADER.into(), Some(era.to_string())),
            (SESSION_HEADER.into(), None),
        ];
        if let Some(a) = asked {
            headers.push((ASKED_HEADER.into(), Some(modern::encode_header_value(a))));
        }
        Step::Route(Route {
            upstream: INTERACTIVE_ROUTE.into(),
            body: Some(body),
            headers,
        })
    }
}
