//! Multi-round-trip requests (2026-07-28) through the gateway: an upstream's
//! `input_required` result goes to the client with its `requestState` sealed
//! ([`crate::request_state`]); the client's retry is checked and carries the upstream's own
//! state again. A 2025 client cannot answer `input_required`: it gets an error naming the
//! upstream.

use super::*;
use crate::modern;
use crate::request_state::{Expected, RequestState};

/// How long a client may take to answer an upstream's questions.
const STATE_MAX_AGE_S: u64 = 3600;

/// An upstream state larger than this is refused rather than sealed into a token the
/// gateway could not open again.
const MAX_INNER_STATE: usize = 12 * 1024;

impl Exchange {
    /// A stateless client's retry: its `requestState` must be one this gateway sealed for
    /// this client, this request and `upstream`. `Ok` with the request as the upstream
    /// gets it (its own state, or none); `Err` with the refusal, before any upstream is
    /// asked.
    pub(super) fn retry_body(
        &mut self,
        gw: &Gateway,
        method: &str,
        params: &Value,
        upstream: Option<usize>,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, Step> {
        let Some(token) = params.get("requestState") else {
            return Ok(body);
        };
        let name = modern::named_param(method)
            .and_then(|f| params[f].as_str())
            .unwrap_or_default();
        let identity = self.identity_key();
        let expect = Expected {
            identity: identity.as_deref(),
            method,
            name,
        };
        let opened = token
            .as_str()
            .ok_or_else(|| "the requestState is not a string".to_string())
            .and_then(|t| {
                RequestState::open(&gw.key, t, expect, self.now_s, STATE_MAX_AGE_S)
                    .map_err(|e| e.to_string())
            })
            .and_then(|state| match upstream {
                Some(u) if gw.config.upstreams[u].name == state.upstream => Ok(state),
                _ => Err(format!(
                    "the requestState was issued for upstream {:?}",
                    state.upstream
                )),
            });
        let state = match opened {
            Ok(state) => state,
            Err(why) => {
                self.state = State::Done;
                self.log.push(format!("refused a retry: {why}"));
                let id = self.stateless.as_ref().map(|s| s.id.clone());
                let body = error_body_value(
                    id.as_ref(),
                    code::INVALID_PARAMS,
                    &format!("Invalid params: {why}"),
                );
                self.stateless = None;
                return Err(Step::Respond(json_reply(200, body)));
            }
        };
        let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
            return Ok(body);
        };
        if let Some(p) = v.get_mut("params").and_then(Value::as_object_mut) {
            match state.inner {
                Some(inner) => p.insert("requestState".into(), Value::String(inner)),
                None => p.remove("requestState"),
            };
        }
        Ok(v.to_string().into_bytes())
    }

    /// An upstream's answer to a call the filter made: `input_required` sealed for a
    /// stateless client, refused for a 2025 one; the upstream's identity in `_meta` left
    /// out (the client talks to the gateway).
    pub(super) fn through_answer(
        &mut self,
        gw: &Gateway,
        mut response: Value,
        clock: &Clock,
    ) -> Value {
        let Some(through) = self.through.take() else {
            return response;
        };
        let id = response.get("id").cloned();
        let Some(result) = response.get_mut("result").filter(|r| r.is_object()) else {
            return response;
        };
        if let Some(m) = result.get_mut("_meta").and_then(Value::as_object_mut) {
            m.remove(modern::meta::SERVER_INFO);
            if m.is_empty() {
                result.as_object_mut().map(|r| r.remove("_meta"));
            }
        }
        if !modern::input_required(result) {
            if through.modern && self.stateless.is_none() {
                // A 2025 client knows none of the revision's result fields.
                if let Some(r) = result.as_object_mut() {
                    for key in ["resultType", "ttlMs", "cacheScope"] {
                        r.remove(key);
                    }
                }
            }
            return response;
        }
        if self.stateless.is_none() {
            let message = format!(
                "Upstream {:?} needs input from the client to answer (input_required, MCP {}); \
                 a 2025 session cannot give it through this gateway: use a 2026-07-28 client",
                through.upstream,
                modern::VERSION
            );
            self.log.push(message.clone());
            return serde_json::from_str(&error_body_value(id.as_ref(), UPSTREAM_ERROR, &message))
                .unwrap_or(Value::Null);
        }
        let inner = result["requestState"].as_str().map(str::to_string);
        if inner.as_ref().is_some_and(|s| s.len() > MAX_INNER_STATE) {
            let message = format!(
                "Upstream {:?} sent a requestState larger than {MAX_INNER_STATE} bytes",
                through.upstream
            );
            self.log.push(message.clone());
            return serde_json::from_str(&error_body_value(id.as_ref(), UPSTREAM_ERROR, &message))
                .unwrap_or(Value::Null);
        }
        let (method, name) = through.asked;
        let state = RequestState {
            upstream: through.upstream,
            identity: self.identity_key(),
            method,
            name,
            inner,
            issued_at: clock.now_s,
        };
        result["requestState"] = Value::String(state.seal(&gw.key, &clock.seed));
        response
    }
}
