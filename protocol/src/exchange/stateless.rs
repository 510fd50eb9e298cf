//! Clients of the stateless revision (2026-07-28) in front of upstreams of the 2025 ones. A
//! request names its revision and the client's capabilities in `_meta` and carries no
//! session; the gateway opens a session at each upstream it needs for that request
//! (`initialize` with the client's capabilities, then `notifications/initialized`), serves
//! the request over them exactly as a 2025 session's request, and closes them (`DELETE`)
//! before it answers. Nothing is kept between requests: any replica serves any request.
//! The cost is two extra round trips and a close per upstream and request.

use super::fan_out::capitalize;
use super::*;
use crate::modern::{self, RequestMeta, RoutingHeaders};

/// A stateless client's request while the gateway serves it.
#[derive(Debug)]
pub(super) struct Stateless {
    /// The request as the client sent it (read again once the sessions are open).
    pub(super) body: Vec<u8>,
    /// The request's id.
    pub(super) id: Value,
    pub(super) method: String,
    /// Each upstream's `initialize` result, by name: what `server/discover` merges.
    pub(super) joined: Vec<(String, Value)>,
    /// The upstream sessions opened for it.
    pub(super) session: Option<Session>,
    /// The `initialize` request for its 2025 upstreams.
    pub(super) initialize: Vec<u8>,
    /// Upstreams whose kept session serves it ([`super::kept`]), with its last use.
    pub(super) reused: Vec<(String, u64)>,
    /// A kept session turned out forgotten and the request was asked again.
    pub(super) retried: bool,
}

impl Exchange {
    /// A request without a session whose `_meta` names a revision: served statelessly when
    /// the gateway is configured to, else `None` (the 2025 path answers it).
    pub(super) fn stateless_request(
        &mut self,
        gw: &Gateway,
        id: &RawValue,
        method: &str,
        params: Option<&RawValue>,
        body: &[u8],
        clock: &Clock,
    ) -> Option<Step> {
        if !gw.config.stateless_clients || method == "initialize" {
            return None;
        }
        let params: Value = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or(Value::Null);
        let meta = RequestMeta::of(&params)?;
        let id_value: Value = serde_json::from_str(id.get()).unwrap_or(Value::Null);
        if meta.protocol_version != modern::VERSION {
            let mut supported = vec![modern::VERSION];
            supported.extend(mcp::SUPPORTED_VERSIONS);
            self.state = State::Done;
            let body = modern::unsupported_version_body(
                Some(&id_value),
                &meta.protocol_version,
                &supported,
            );
            return Some(Step::Respond(json_reply(400, body)));
        }
        let headers = RoutingHeaders {
            version: self.client_version.as_deref(),
            method: self.routing.0.as_deref(),
            name: self.routing.1.as_deref(),
        };
        if let Err(why) = modern::check_headers(headers, method, &params, &meta) {
            self.state = State::Done;
            self.log.push(format!("refused a request: {why}"));
            let body = modern::header_mismatch_body(Some(&id_value), &why);
            return Some(Step::Respond(json_reply(400, body)));
        }
        if method == crate::subscriptions::LISTEN {
            return Some(self.listen(gw, id, &params, clock));
        }
        // A request that names one upstream's tool, prompt or resource needs that one only;
        // one the client may not use is not even contacted.
        let targets = match self.addressed_upstream(gw, method, &params) {
            Some(index) => {
                let name = &gw.config.upstreams[index].name;
                if !self.permits(gw, Kind::Upstream, name) {
                    let challenge = self.step_up(gw, Some(name), Kind::Upstream, name);
                    let status = if challenge.is_some() { 403 } else { 200 };
                    let message = self.upstream_refusal(name);
                    let refusal = error_reply(status, Some(id), ACCESS_DENIED, &message);
                    return Some(with_challenge(refusal, challenge));
                }
                vec![index]
            }
            None => self.targets(gw),
        };
        if targets.is_empty() {
            self.state = State::Done;
            return Some(error_reply(
                200,
                Some(id),
                ACCESS_DENIED,
                "Access denied: this client may use none of the gateway's upstreams",
            ));
        }
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": mcp::SUPPORTED_VERSIONS[0],
            // With a bridge, a 2025 upstream's questions reach the client (as
            // `input_required`, see `interactive`); without one the upstream must not ask.
            "capabilities": if gw.config.get_stream {
                meta.client_capabilities.clone()
            } else {
                modern::without_server_requests(&meta.client_capabilities)
            },
            "clientInfo": meta.client_info.clone().unwrap_or_else(
                || json!({"name": gw.config.server_name, "version": gw.config.server_version})),
        }})
        .to_string();
        self.client_meta = Some(crate::modern::ClientMeta::new(
            &meta.client_capabilities,
            meta.client_info.as_ref(),
        ));
        self.stateless = Some(Box::new(Stateless {
            body: Vec::new(),
            id: id_value,
            method: method.to_string(),
            joined: Vec::new(),
            session: None,
            initialize: init.clone().into_bytes(),
            reused: Vec::new(),
            retried: false,
        }));
        // A retry of a multi-round-trip request is checked before any upstream is asked.
        let addressed = (targets.len() == 1).then(|| targets[0]);
        let body = match self.retry_body(gw, method, &params, addressed, for_upstreams(body)) {
            Ok(body) => body,
            Err(refused) => return Some(refused),
        };
        let retry = params.get("requestState").is_some();
        if let Some(step) = self.interactive(gw, method, addressed, retry, &body, clock) {
            return Some(step);
        }
        if let Some(s) = self.stateless.as_mut() {
            s.body = body;
        }
        Some(self.open_upstreams(
            gw,
            Op::Open,
            Some(json!(0)),
            targets,
            init.into_bytes(),
            method == "server/discover",
            clock,
        ))
    }

    /// `subscriptions/listen`: on the aggregated endpoint the bridge merges it (Envoy's route
    /// for the method takes it there, the filter watching for its list-changed markers);
    /// on an upstream's own endpoint — where the bridge asks each upstream — it goes on to
    /// that upstream as a stream, unless the upstream is known to speak 2025 only.
    fn listen(&mut self, gw: &Gateway, id: &RawValue, params: &Value, clock: &Clock) -> Step {
        let refuse = |ex: &mut Exchange, message: String| {
            ex.state = State::Done;
            error_reply(200, Some(id), code::METHOD_NOT_FOUND, &message)
        };
        match self.scope {
            Scope::Aggregated if gw.config.get_stream => {
                self.state = State::Stream(crate::sse::EventSplitter::new());
                // The bridge asks the upstreams as this client: it gets who that is, sealed.
                let identity = self
                    .identity
                    .as_ref()
                    .map(|who| gw.relay(who, clock));
                Step::Route(Route {
                    upstream: crate::subscriptions::LISTEN_ROUTE.into(),
                    body: None,
                    headers: vec![(crate::access::IDENTITY_HEADER.into(), identity)],
                })
            }
            Scope::Aggregated => refuse(
                self,
                "Method not found: subscriptions need the gateway's bridge (switchboard run, or serve --bridge)".into(),
            ),
            Scope::Upstream(index) => {
                let upstream = &gw.config.upstreams[index];
                let name = upstream.name.clone();
                // Updates of a resource the client may not read are not its to hear (the
                // bridge leaves them out; a client asking here directly is refused).
                let uris = params["notifications"]["resourceSubscriptions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str);
                for uri in uris {
                    let full = if gw.prefixed() {
                        naming::prefix_uri(&upstream.uri_prefix, uri)
                    } else {
                        uri.to_string()
                    };
                    if !self.permits(gw, Kind::Resource, &full) {
                        return self.denied(gw, id, &upstream.name, Kind::Resource, &full);
                    }
                }
                if upstream.rest_tools.is_some() {
                    return refuse(
                        self,
                        format!("Method not found: upstream {name:?} is a REST API, which has no subscriptions"),
                    );
                }
                if gw.era(index) == Some(era::Era::Legacy) {
                    return refuse(
                        self,
                        format!(
                            "Method not found: upstream {name:?} speaks MCP 2025 (resources/subscribe and the GET stream of a session)"
                        ),
                    );
                }
                self.audit.upstream.clone_from(&name);
                self.state = State::Done;
                Step::Route(Route {
                    upstream: name,
                    body: None,
                    headers: vec![(SESSION_HEADER.into(), None)],
                })
            }
        }
    }

    /// The upstream whose prefix a request's name or URI has, on the aggregated endpoint
    /// (whether the client may use it is decided as for any request, later).
    fn addressed_upstream(&self, gw: &Gateway, method: &str, params: &Value) -> Option<usize> {
        if self.scope != Scope::Aggregated || !gw.prefixed() {
            return None;
        }
        let r = &params["ref"];
        let (name, uri) = match method {
            "tools/call" | "prompts/get" => (params["name"].as_str(), None),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                (None, params["uri"].as_str())
            }
            "completion/complete" => (r["name"].as_str(), r["uri"].as_str()),
            _ => return None,
        };
        let upstream = match (name, uri) {
            (Some(n), _) if !naming::looks_shortened(n) => {
                naming::split_name(n, &gw.config.separator)
                    .and_then(|(prefix, _)| gw.by_prefix(prefix))
            }
            (_, Some(u)) => naming::split_uri(u).and_then(|(prefix, _)| gw.by_uri_prefix(prefix)),
            _ => None,
        }?;
        gw.by_name(&upstream.name).map(|(index, _)| index)
    }

    /// The upstreams a request may reach here: its own on an upstream's endpoint, else
    /// every upstream the client may use.
    pub(super) fn targets(&self, gw: &Gateway) -> Vec<usize> {
        match self.scope {
            Scope::Upstream(index) => vec![index],
            Scope::Aggregated => (0..gw.config.upstreams.len())
                .filter(|&u| self.permits(gw, Kind::Upstream, &gw.config.upstreams[u].name))
                .collect(),
        }
    }

    /// The upstreams answered `initialize`: a session over them, and each told it is
    /// initialized.
    pub(super) fn opened(&mut self, gw: &Gateway, done: Answered, clock: &Clock) -> Step {
        if done.ok.is_empty() {
            self.stateless = None;
            let message = format!(
                "No upstream could be initialized: {}",
                done.failures.join("; ")
            );
            return Step::Respond(json_reply(
                200,
                self.stateless_error(UPSTREAM_ERROR, &message),
            ));
        }
        let session = self.session_over(gw, mcp::SUPPORTED_VERSIONS[0], &done.ok, clock);
        let reused: Vec<(String, u64)> = done
            .reused
            .iter()
            .map(|&(u, used)| (gw.config.upstreams[u].name.clone(), used))
            .collect();
        // Only a session opened now is told it is initialized.
        let initialized = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let (targets, callouts) = session_callouts(gw, &session, "POST", initialized, |us| {
            us.protocol_version != modern::VERSION && !reused.iter().any(|(n, _)| *n == us.name)
        });
        let failed_closed = gw.config.fan_out == FanOut::FailClosed && !done.failures.is_empty();
        if let Some(s) = self.stateless.as_mut() {
            s.reused = reused;
            s.joined = done
                .ok
                .iter()
                .map(|(u, _, r)| (gw.config.upstreams[*u].name.clone(), r.clone()))
                .collect();
            s.session = Some(session);
        }
        if failed_closed {
            let message = capitalize(&done.failures.join("; "));
            return Step::Respond(json_reply(
                200,
                self.stateless_error(UPSTREAM_ERROR, &message),
            ));
        }
        if targets.is_empty() {
            // Only upstreams of the stateless revision: nothing to tell.
            return self.serve_stateless(gw, clock);
        }
        self.state = State::FanOut(FanOutState {
            op: Op::Opened,
            id: None,
            answers: vec![None; targets.len()],
            targets,
        });
        Step::AwaitCallouts(callouts)
    }

    /// The sessions are ready: the request itself, as a 2025 session's.
    pub(super) fn serve_stateless(&mut self, gw: &Gateway, clock: &Clock) -> Step {
        let Some(s) = self.stateless.as_mut() else {
            return internal_error();
        };
        let (body, method) = (s.body.clone(), s.method.clone());
        let Some(session) = s.session.clone() else {
            return internal_error();
        };
        let Ok(Message::Request { id, params, .. }) = jsonrpc::parse(&body) else {
            return internal_error();
        };
        if method == "server/discover" {
            let id = s.id.clone();
            return Step::Respond(json_reply(200, result_body(&id, self.discover_result(gw))));
        }
        self.request_in(gw, id, &method, params, session, clock)
    }

    /// What `server/discover` answers: the merged capabilities and identity of the
    /// upstreams, and the revisions the gateway serves.
    fn discover_result(&self, gw: &Gateway) -> Value {
        let joined: Vec<(String, Value)> = self
            .stateless
            .as_ref()
            .map(|s| s.joined.clone())
            .unwrap_or_default();
        let parts: Vec<mcp::Joined<'_>> = joined
            .iter()
            .map(|(name, result)| mcp::Joined { name, result })
            .collect();
        let merged = mcp::merged_initialize(
            modern::VERSION,
            &gw.config.server_name,
            &gw.config.server_version,
            &parts,
            false,
        );
        let mut supported = vec![modern::VERSION];
        supported.extend(mcp::SUPPORTED_VERSIONS);
        // The revision names the server in `_meta`; `serverInfo` beside it is for readers
        // of the 2025 shape.
        let mut result = json!({
            "supportedVersions": supported,
            "capabilities": merged["capabilities"],
            "serverInfo": merged["serverInfo"],
            "_meta": {modern::meta::SERVER_INFO: merged["serverInfo"]},
        });
        if let Some(i) = merged.get("instructions") {
            result["instructions"] = i.clone();
        }
        result
    }

    /// A step of a stateless request: its answer goes out once the upstream sessions it
    /// used are kept for the client's next requests. Every other step passes.
    pub(super) fn after_stateless(&mut self, gw: &Gateway, step: Step, clock: &Clock) -> Step {
        let Step::Respond(reply) = step else {
            return step;
        };
        let Some(s) = self.stateless.take() else {
            return Step::Respond(reply);
        };
        if let Some(session) = &s.session {
            self.keep_sessions(gw, session, &s.reused, clock.now_ms);
        }
        self.state = State::Done;
        Step::Respond(finished(reply, &s.method))
    }

    /// Upstream `u` answered 404: a kept session it had for this client is gone.
    pub(super) fn forgotten(&self, gw: &Gateway, u: usize) {
        let name = &gw.config.upstreams[u].name;
        if self
            .stateless
            .as_ref()
            .is_some_and(|s| s.reused.iter().any(|(n, _)| n == name))
        {
            self.forget_kept(gw, u);
        }
    }

    /// A call in a kept session the upstream forgot: once, a new session and the call
    /// again (the client never hears of it).
    pub(super) fn ask_again(&mut self, gw: &Gateway, u: usize, clock: &Clock) -> Option<Step> {
        let name = &gw.config.upstreams[u].name;
        let s = self.stateless.as_mut()?;
        if s.retried || !s.reused.iter().any(|(n, _)| n == name) {
            return None;
        }
        self.forget_kept(gw, u);
        let s = self.stateless.as_mut()?;
        s.retried = true;
        s.reused.clear();
        s.session = None;
        let initialize = s.initialize.clone();
        self.log.push(format!(
            "upstream {name:?} forgot the session kept for this client: initialized again"
        ));
        Some(self.open_upstreams(
            gw,
            Op::Open,
            Some(json!(0)),
            vec![u],
            initialize,
            false,
            clock,
        ))
    }

    fn stateless_error(&self, code: i64, message: &str) -> String {
        error_body_value(self.stateless.as_ref().map(|s| &s.id), code, message)
    }
}

/// The client's request as a 2025-era upstream gets it: without the revision's `_meta` keys
/// (an upstream that knows the revision would read them against its own session's).
fn for_upstreams(body: &[u8]) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    modern::without_request_meta(&mut v);
    v.to_string().into_bytes()
}

/// An answer as a stateless client gets it: a result says what kind it is; a cacheable one
/// (lists, discovery) says how long it may be kept — not at all, and only by this client,
/// as nothing of a 2025 upstream's answer promises more.
fn finished(mut reply: Reply, method: &str) -> Reply {
    let Ok(mut v) = serde_json::from_slice::<Value>(&reply.body) else {
        return reply;
    };
    let Some(result) = v.get_mut("result") else {
        return reply;
    };
    modern::complete(result);
    if method == "server/discover" || method.ends_with("/list") {
        let hints = modern::CacheHints::of(result);
        modern::CacheHints {
            ttl_ms: Some(hints.ttl_ms.unwrap_or(0)),
            scope: Some(hints.scope.unwrap_or(modern::CacheScope::Private)),
        }
        .write(result);
    }
    reply.body = v.to_string().into_bytes();
    reply
}
