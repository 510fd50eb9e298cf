//! Shortened names: a name over MCP's 64 characters is listed as `<head>~<digest>`; a call
//! with it is resolved by listing its upstream's names (page by page) and is then made by
//! the filter itself with the real name.

use super::*;

/// A name being resolved: the request that used it and where its upstream's listing stands.
#[derive(Debug)]
pub(super) struct Resolve {
    pub(super) kind: Kind,
    pub(super) method: String,
    pub(super) params: Value,
    pub(super) field: &'static [&'static str],
    pub(super) requested: String,
    pub(super) upstream: usize,
    pub(super) session_id: Option<String>,
    pub(super) version: String,
    pub(super) pages: usize,
}

impl Resolve {
    fn list(&self) -> ListKind {
        ListKind::naming(self.kind).unwrap_or(ListKind::Tools)
    }
}

/// Listing stops after this many pages of one upstream.
const MAX_PAGES: usize = 50;

impl Exchange {
    /// Starts resolving a shortened name: the first page of its upstream's names. `None` when
    /// no upstream of the session can have given it.
    pub(super) fn resolve(
        &mut self,
        gw: &Gateway,
        session: &Session,
        req: &Addressed<'_>,
    ) -> Option<Step> {
        let requested = req.requested.as_str();
        let (index, upstream) = match self.scope {
            Scope::Upstream(index) => (index, &gw.config.upstreams[index]),
            // The shortened name's head may end inside a long prefix, before any separator:
            // the upstream is the session's one whose prefix and separator fit that head.
            Scope::Aggregated if gw.prefixed() => {
                let head = requested.rsplit_once('~').map_or(requested, |(h, _)| h);
                gw.config
                    .upstreams
                    .iter()
                    .enumerate()
                    .filter(|(_, u)| session.upstream(&u.name).is_some())
                    .find(|(_, u)| {
                        let start = naming::prefix_name(&u.prefix, &gw.config.separator, "");
                        head.starts_with(&start) || start.starts_with(head)
                    })?
            }
            Scope::Aggregated => (0, gw.config.upstreams.first()?),
        };
        let us = session.upstream(&upstream.name)?;
        let resolve = Resolve {
            kind: req.kind,
            method: req.method.to_string(),
            params: req.params.clone(),
            field: req.field,
            requested: requested.to_string(),
            upstream: index,
            session_id: us.session_id.clone(),
            version: us.protocol_version.clone(),
            pages: 0,
        };
        let id_value: Value = serde_json::from_str(req.id.get()).unwrap_or(Value::Null);
        Some(self.resolve_page(gw, id_value, Box::new(resolve), None))
    }

    fn resolve_page(
        &mut self,
        gw: &Gateway,
        id: Value,
        mut r: Box<Resolve>,
        cursor: Option<String>,
    ) -> Step {
        r.pages += 1;
        let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": r.list().method()});
        if let Some(c) = cursor {
            msg["params"] = json!({"cursor": c});
        }
        let upstream = &gw.config.upstreams[r.upstream];
        let call = upstream_callout(
            0,
            upstream,
            r.session_id.as_deref(),
            &r.version,
            self.client_meta.as_ref(),
            msg.to_string().as_bytes(),
        );
        self.state = State::FanOut(FanOutState {
            targets: vec![r.upstream],
            op: Op::Resolve(r),
            id: Some(id),
            answers: vec![None],
        });
        Step::AwaitCallouts(vec![call])
    }

    /// A page of the upstream's names: call the one the shortened name stands for, or ask
    /// for the next page.
    pub(super) fn finish_resolve(
        &mut self,
        gw: &Gateway,
        r: Resolve,
        id: Value,
        answer: Option<Result<CalloutAnswer, Failure>>,
    ) -> Step {
        let upstream = &gw.config.upstreams[r.upstream];
        let listed = answer
            .unwrap_or(Err(Failure::NoAnswer))
            .and_then(|a| {
                if a.body.len() as u64 > upstream.max_list_bytes {
                    return Err(Failure::TooBig {
                        size: a.body.len(),
                        limit: upstream.max_list_bytes,
                    });
                }
                Ok(mcp::find_response(&a.content_type, &a.body, &id)?)
            })
            .map(|v| v["result"].clone());
        let result = match listed {
            Ok(result) => result,
            Err(why) => {
                let message = format!(
                    "Upstream {:?} could not list its names: {why}",
                    upstream.name
                );
                return Step::Respond(json_reply(
                    200,
                    error_body_value(Some(&id), UPSTREAM_ERROR, &message),
                ));
            }
        };
        let prefix = self.prefixed(gw).then_some(upstream.prefix.as_str());
        let found = result[r.list().key()]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["name"].as_str())
            .find(|name| {
                let full = match prefix {
                    Some(p) => naming::prefix_name(p, &gw.config.separator, name),
                    None => name.to_string(),
                };
                naming::shorten(&full) == r.requested
            });
        if let Some(name) = found {
            let name = name.to_string();
            return self.call_resolved(gw, r, id, &name);
        }
        match result["nextCursor"].as_str() {
            Some(c) if r.pages < MAX_PAGES => {
                let c = c.to_string();
                self.resolve_page(gw, id, Box::new(r), Some(c))
            }
            _ => Step::Respond(json_reply(
                200,
                error_body_value(
                    Some(&id),
                    code::INVALID_PARAMS,
                    &format!("Unknown {}: {:?}", r.kind.noun(), r.requested),
                ),
            )),
        }
    }

    /// The call with the real `name`, once the client may make it.
    fn call_resolved(&mut self, gw: &Gateway, r: Resolve, id: Value, name: &str) -> Step {
        let upstream = &gw.config.upstreams[r.upstream];
        // Rules know it by its full name on the aggregated endpoint.
        let full = Self::rule_name(gw, upstream, name);
        if r.method == "tools/call" {
            self.audit.tool_series = gw.tool_series(&full, name);
        }
        if !self.permits(gw, r.kind, &full) {
            if let Some(challenge) = self.step_up(gw, Some(&upstream.name), r.kind, &full) {
                self.state = State::Done;
                let message = format!(
                    "Insufficient scope: the access token does not allow the {} {full:?}",
                    r.kind.noun()
                );
                let reply = json_reply(403, error_body_value(Some(&id), ACCESS_DENIED, &message));
                return with_challenge(Step::Respond(reply), Some(challenge));
            }
            self.state = State::Done;
            let message = format!(
                "Access denied: this client may not use {} {full:?}",
                r.kind.noun()
            );
            return Step::Respond(json_reply(
                200,
                error_body_value(Some(&id), ACCESS_DENIED, &message),
            ));
        }
        if r.kind == Kind::Tool
            && !glob::allowed(&upstream.tools_include, &upstream.tools_exclude, name)
        {
            return Step::Respond(json_reply(
                200,
                error_body_value(
                    Some(&id),
                    code::INVALID_PARAMS,
                    &format!("Unknown tool: {:?}", r.requested),
                ),
            ));
        }
        let mut params = r.params;
        set_path(&mut params, r.field, Value::String(name.to_string()));
        let body =
            json!({"jsonrpc": "2.0", "id": id, "method": r.method, "params": params}).to_string();
        let call = upstream_callout(
            0,
            upstream,
            r.session_id.as_deref(),
            &r.version,
            self.client_meta.as_ref(),
            body.as_bytes(),
        );
        self.state = State::FanOut(FanOutState {
            targets: vec![r.upstream],
            op: Op::CallThrough,
            id: Some(id),
            answers: vec![None],
        });
        Step::AwaitCallouts(vec![call])
    }

    /// The upstream's own answer to the resolved call, error or not, as one JSON response.
    pub(super) fn finish_call_through(
        &mut self,
        gw: &Gateway,
        target: usize,
        id: Option<Value>,
        answer: Option<Result<CalloutAnswer, Failure>>,
        clock: &Clock,
    ) -> Step {
        let want = id.unwrap_or(Value::Null);
        let upstream = &gw.config.upstreams[target];
        let answer = answer.unwrap_or(Err(Failure::NoAnswer));
        if let Some(step) = self.finish_rest(gw, target, &want, &answer) {
            return step;
        }
        if answer.as_ref().is_ok_and(|a| a.status == 404)
            && let Some(again) = self.ask_again(gw, target, clock)
        {
            return again;
        }
        match answer.and_then(|a| {
            if (200..300).contains(&a.status) {
                Ok(mcp::find_response(&a.content_type, &a.body, &want)?)
            } else {
                Err(http_failure(a.status, &a.body, upstream.timeout_ms))
            }
        }) {
            Ok(response) => {
                let uri_prefix = self.through.as_ref().and_then(|t| t.uri_prefix.clone());
                let mut text = self.through_answer(gw, response, clock).to_string();
                if let Some(prefix) = uri_prefix {
                    text = rewrite_read_uris(&text, &prefix);
                }
                Step::Respond(json_reply(200, text))
            }
            Err(why) => upstream_failed(upstream, &want, &why),
        }
    }
}
