//! A stateless client's call of a 2025 upstream that may ask the client something
//! (`elicitation/create`, `sampling/createMessage`, `roots/list` inside its answer). The
//! revision has no server requests: they reach the client as `input_required`, and its retry
//! answers them. The upstream meanwhile waits on an open stream, which a filter cannot hold
//! across requests; the bridge can: the filter sends such calls there
//! ([`crate::interactive`]), the bridge makes them through the upstream's own endpoint on
//! the gateway in a 2025 session, and holds the stream while the client answers. The retry
//! carries a `requestState` the bridge sealed as the filter does, naming the held call.

use super::*;
use crate::interactive::{ASKED_HEADER, HELD_PREFIX, INTERACTIVE_ROUTE, TARGET_HEADER};
use crate::modern;

impl Exchange {
    /// `Some` when this stateless request goes to the bridge: a retry of a call the bridge
    /// holds, or a call of a 2025 upstream by a client that can be asked something.
    pub(super) fn interactive(
        &mut self,
        gw: &Gateway,
        method: &str,
        addressed: Option<usize>,
        body: &[u8],
        clock: &Clock,
    ) -> Option<Step> {
        let u = addressed?;
        let field = modern::named_param(method)?;
        if !gw.config.get_stream {
            return None;
        }
        let mut v: Value = serde_json::from_slice(body).ok()?;
        let held = v["params"]["requestState"]
            .as_str()
            .is_some_and(|s| s.starts_with(HELD_PREFIX));
        let asks = self.client_meta.as_ref().is_some_and(|c| {
            serde_json::from_str::<Value>(&c.capabilities).is_ok_and(|caps| {
                ["elicitation", "sampling", "roots"]
                    .iter()
                    .any(|k| caps.get(k).is_some())
            })
        });
        if !(held || (asks && gw.era(u) == Some(era::Era::Legacy))) {
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
