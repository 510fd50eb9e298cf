use super::*;

#[derive(Debug)]
pub(super) struct Resolve {
    pub(super) kind: ListKind,
    pub(super) method: String,
    pub(super) params: Value,
    pub(super) field: Vec<String>,
    pub(super) requested: String,
    pub(super) upstream: usize,
    pub(super) session_id: Option<String>,
    pub(super) version: String,
    pub(super) pages: usize,
}

impl Exchange {
    /// Starts resolving a shortened name: the first page of its upstream's names. `None` when
    /// no upstream of the session can have given it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn resolve(
        &mut self,
        gw: &Gateway,
        session: &Session,
        id: &RawValue,
        method: &str,
        params: &Value,
        field: &[&str],
        requested: &str,
        what: &str,
    ) -> Option<Step> {
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
        let kind = if what == "tool" {
            ListKind::Tools
        } else {
            ListKind::Prompts
        };
        let resolve = Resolve {
            kind,
            method: method.to_string(),
            params: params.clone(),
            field: field.iter().map(|f| f.to_string()).collect(),
            requested: requested.to_string(),
            upstream: index,
            session_id: us.session_id.clone(),
            version: us.protocol_version.clone(),
            pages: 0,
        };
        let id_value: Value = serde_json::from_str(id.get()).unwrap_or(Value::Null);
        Some(self.resolve_page(gw, id_value, Box::new(resolve), None))
    }

    pub(super) fn resolve_page(
        &mut self,
        gw: &Gateway,
        id: Value,
        mut r: Box<Resolve>,
        cursor: Option<String>,
    ) -> Step {
        r.pages += 1;
        let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": r.kind.method()});
        if let Some(c) = cursor {
            msg["params"] = json!({"cursor": c});
        }
        let upstream = &gw.config.upstreams[r.upstream];
        let call = callout(
            0,
            upstream,
            "POST",
            r.session_id.as_deref(),
            Some(&r.version),
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

    pub(super) fn finish_resolve(
        &mut self,
        gw: &Gateway,
        r: Resolve,
        id: Value,
        answer: Option<Result<CalloutAnswer, String>>,
    ) -> Step {
        let upstream = &gw.config.upstreams[r.upstream];
        let listed = answer
            .unwrap_or_else(|| Err("no answer".into()))
            .and_then(|a| {
                if a.body.len() as u64 > upstream.max_list_bytes {
                    return Err(too_big(a.body.len(), upstream.max_list_bytes));
                }
                mcp::find_response(&a.content_type, &a.body, &id)
            })
            .map(|v| v["result"].clone());
        let result = match listed {
            Ok(result) => result,
            Err(why) => {
                return Step::Respond(json_reply(
                    200,
                    error_body_value(
                        Some(&id),
                        UPSTREAM_ERROR,
                        &format!(
                            "Upstream {:?} could not list its names: {why}",
                            upstream.name
                        ),
                    ),
                ));
            }
        };
        let prefix = self.prefixed(gw).then_some(upstream.prefix.as_str());
        let found = result[r.kind.key()]
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
        let what = if r.kind == ListKind::Tools {
            "tool"
        } else {
            "prompt"
        };
        if let Some(name) = found {
            // Rules know it by its full name on the aggregated endpoint.
            let full = if gw.prefixed() {
                naming::prefix_name(&upstream.prefix, &gw.config.separator, name)
            } else {
                name.to_string()
            };
            if r.method == "tools/call" {
                self.audit.tool_series = gw.tool_series(&full);
            }
            let kind = if r.kind == ListKind::Tools {
                Kind::Tool
            } else {
                Kind::Prompt
            };
            if !self.permits(gw, kind, &full) {
                self.state = State::Done;
                return Step::Respond(json_reply(
                    200,
                    error_body_value(
                        Some(&id),
                        ACCESS_DENIED,
                        &format!("Access denied: this client may not use {what} {full:?}"),
                    ),
                ));
            }
            if r.kind == ListKind::Tools
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
            let field: Vec<&str> = r.field.iter().map(String::as_str).collect();
            set_path(&mut params, &field, Value::String(name.to_string()));
            let body = json!({"jsonrpc": "2.0", "id": id, "method": r.method, "params": params})
                .to_string();
            let call = callout(
                0,
                upstream,
                "POST",
                r.session_id.as_deref(),
                Some(&r.version),
                body.as_bytes(),
            );
            self.state = State::FanOut(FanOutState {
                targets: vec![r.upstream],
                op: Op::CallThrough,
                id: Some(id),
                answers: vec![None],
            });
            return Step::AwaitCallouts(vec![call]);
        }
        match result["nextCursor"].as_str() {
            Some(c) if r.pages < 50 => {
                let c = c.to_string();
                self.resolve_page(gw, id, Box::new(r), Some(c))
            }
            _ => Step::Respond(json_reply(
                200,
                error_body_value(
                    Some(&id),
                    code::INVALID_PARAMS,
                    &format!("Unknown {what}: {:?}", r.requested),
                ),
            )),
        }
    }
}
