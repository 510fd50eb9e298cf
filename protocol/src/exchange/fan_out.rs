use super::*;

#[derive(Debug)]
pub(super) struct FanOutState {
    pub(super) op: Op,
    pub(super) id: Option<Value>,
    /// Upstream index per call.
    pub(super) targets: Vec<usize>,
    pub(super) answers: Vec<Option<Result<CalloutAnswer, String>>>,
}

#[derive(Debug)]
pub(super) enum Op {
    Initialize {
        version: &'static str,
    },
    /// `pages` has one entry per upstream of the session; `slots` the session index per call.
    List {
        kind: ListKind,
        pages: Vec<Page>,
        slots: Vec<usize>,
        /// [`Session::digest`]: the cursor is bound to it.
        session: String,
        /// Per call: where to cache its answer and the generation it belongs to (`None`: not
        /// cacheable, or from the cache).
        cache_keys: Vec<Option<(String, u64)>>,
        /// Per call: the page the cache had, which no upstream was asked for.
        hits: Vec<Option<aggregate::Page>>,
    },
    /// Notifications and `logging/setLevel`: answer once every upstream has it.
    Broadcast {
        reply_result: bool,
    },
    Delete,
    /// A shortened name: list the upstream's names (page by page) to find the real one.
    Resolve(Box<Resolve>),
    /// The call with the real name, made by the filter itself; its answer is passed on.
    CallThrough,
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Initialize { .. } => "initialize",
            Op::List { kind, .. } => kind.method(),
            Op::Broadcast { .. } => "a notification",
            Op::Delete => "session termination",
            Op::Resolve(_) => "name resolution",
            Op::CallThrough => "a call",
        }
    }
}

pub(super) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

impl Exchange {
    /// The largest body the answer to callout `call` may have: a list page beyond its
    /// upstream's `max_list_bytes` is a failure, which the shell reports without copying it.
    pub fn callout_limit(&self, gw: &Gateway, call: usize) -> u64 {
        match &self.state {
            State::FanOut(f) if matches!(f.op, Op::List { .. } | Op::Resolve(_)) => f
                .targets
                .get(call)
                .and_then(|&u| gw.config.upstreams.get(u))
                .map_or(u64::MAX, |u| u.max_list_bytes),
            _ => u64::MAX,
        }
    }

    /// The answer to callout `call`, or why there is none. Returns the final step once every
    /// callout has answered.
    pub fn on_callout_response(
        &mut self,
        gw: &Gateway,
        call: usize,
        answer: Result<CalloutAnswer, String>,
        clock: &Clock,
    ) -> Option<Step> {
        let step = self.callout_response(gw, call, answer, clock)?;
        Some(self.with_pass_through(gw, step))
    }

    pub(super) fn callout_response(
        &mut self,
        gw: &Gateway,
        call: usize,
        answer: Result<CalloutAnswer, String>,
        clock: &Clock,
    ) -> Option<Step> {
        let State::FanOut(state) = &mut self.state else {
            return None;
        };
        let slot = state.answers.get_mut(call)?;
        *slot = Some(answer);
        if state.answers.iter().any(Option::is_none) {
            return None;
        }
        let State::FanOut(state) = std::mem::replace(&mut self.state, State::Done) else {
            return None;
        };
        Some(self.finish_fan_out(gw, state, clock))
    }

    pub(super) fn finish_fan_out(
        &mut self,
        gw: &Gateway,
        state: FanOutState,
        clock: &Clock,
    ) -> Step {
        let FanOutState {
            mut op,
            id,
            targets,
            answers,
        } = state;
        if let Op::Resolve(r) = op {
            let answer = answers.into_iter().next().flatten();
            return self.finish_resolve(gw, *r, id.unwrap_or(Value::Null), answer);
        }
        if let Op::CallThrough = op {
            // The upstream's own answer, error or not, as a single JSON response.
            let want = id.clone().unwrap_or(Value::Null);
            let upstream = &gw.config.upstreams[targets[0]];
            let answer = answers
                .into_iter()
                .next()
                .flatten()
                .unwrap_or_else(|| Err("no answer".into()));
            return match answer.and_then(|a| {
                if (200..300).contains(&a.status) {
                    mcp::find_response(&a.content_type, &a.body, &want)
                } else {
                    Err(http_failure(a.status, &a.body, upstream.timeout_ms))
                }
            }) {
                Ok(response) => Step::Respond(json_reply(200, response.to_string())),
                Err(why) => Step::Respond(json_reply(
                    200,
                    error_body_value(
                        Some(&want),
                        UPSTREAM_ERROR,
                        &format!(
                            "Upstream {:?} {why}{}",
                            upstream.name,
                            via_note(&upstream.via)
                        ),
                    ),
                )),
            };
        }
        let id_ref = id.as_ref();
        let mut ok: Vec<(usize, CalloutAnswer, Value)> = Vec::new();
        // List results stay text: only names are read and rewritten.
        let mut lists: Vec<(usize, aggregate::Page)> = Vec::new();
        let prefixed = self.prefixed(gw);
        let ruled = gw.prefixed();
        let mut failures: Vec<String> = Vec::new();
        for (call, answer) in answers.into_iter().enumerate() {
            let upstream = &gw.config.upstreams[targets[call]];
            let timeout = upstream.timeout_ms;
            let outcome = answer
                .unwrap_or_else(|| Err("no answer".into()))
                .and_then(|a| {
                    let expect_response = !matches!(op, Op::Delete)
                        && !(matches!(
                            op,
                            Op::Broadcast {
                                reply_result: false
                            }
                        ));
                    if !(200..300).contains(&a.status) {
                        return Err(http_failure(a.status, &a.body, timeout));
                    }
                    if !expect_response {
                        return Ok((a, Value::Null, None));
                    }
                    let want = id.clone().unwrap_or(Value::Null);
                    if let Op::List { kind, hits, .. } = &mut op {
                        if let Some(page) = hits[call].take() {
                            return Ok((a, Value::Null, Some(page)));
                        }
                        if a.body.len() as u64 > upstream.max_list_bytes {
                            return Err(too_big(a.body.len(), upstream.max_list_bytes));
                        }
                        return match mcp::find_result_raw(&a.content_type, &a.body, &want)? {
                            Ok(result) => {
                                let prefixes = Prefixes {
                                    name: &upstream.prefix,
                                    uri: &upstream.uri_prefix,
                                };
                                let keep = |name: &str| {
                                    *kind != ListKind::Tools
                                        || glob::allowed(
                                            &upstream.tools_include,
                                            &upstream.tools_exclude,
                                            name,
                                        )
                                };
                                let page = aggregate::prefixed_page(
                                    *kind,
                                    &result,
                                    prefixed.then_some(prefixes),
                                    ruled.then_some(prefixes),
                                    &gw.config.separator,
                                    keep,
                                )?;
                                if page.items.len() as u64 > upstream.max_list_items {
                                    return Err(format!(
                                        "answered a page of {} items, more than its max_list_items of {}",
                                        page.items.len(),
                                        upstream.max_list_items
                                    ));
                                }
                                Ok((a, Value::Null, Some(page)))
                            }
                            Err(err) => Err(format!(
                                "answered with error {}: {}",
                                err["code"],
                                err["message"].as_str().unwrap_or_default()
                            )),
                        };
                    }
                    let response = mcp::find_response(&a.content_type, &a.body, &want)?;
                    if let Some(err) = response.get("error") {
                        return Err(format!(
                            "answered with error {}: {}",
                            err["code"],
                            err["message"].as_str().unwrap_or_default()
                        ));
                    }
                    let result = response["result"].clone();
                    if matches!(op, Op::Initialize { .. }) {
                        let v = result["protocolVersion"].as_str().unwrap_or_default();
                        if !mcp::SUPPORTED_VERSIONS.contains(&v) {
                            return Err(format!("negotiated protocol version {v:?}, which the gateway does not support"));
                        }
                    }
                    Ok((a, result, None))
                });
            if let (Op::List { cache_keys, .. }, Ok((_, _, Some(list)))) = (&op, &outcome)
                && let Some((key, generation)) = &cache_keys[call]
            {
                let expires = clock.now_ms.saturating_add(upstream.cache_ms);
                let entry = cache_entry(*generation, expires, list);
                gw.cache.put(key, entry.as_bytes());
            }
            if let Op::List { pages, slots, .. } = &mut op {
                // A failed upstream is left out of the following pages too.
                pages[slots[call]] = match &outcome {
                    Ok((_, _, list)) => list
                        .as_ref()
                        .and_then(|l| l.next_cursor.clone())
                        .map_or(Page::Done, Page::At),
                    Err(_) => Page::Done,
                };
            }
            match outcome {
                Ok((a, result, list)) => {
                    if let Some(list) = list {
                        lists.push((targets[call], list));
                    }
                    ok.push((targets[call], a, result));
                }
                Err(why) => {
                    let line = format!(
                        "upstream {:?} failed during {}: {why}{}",
                        upstream.name,
                        op.name(),
                        via_note(&upstream.via)
                    );
                    self.log.push(line.clone());
                    failures.push(line);
                }
            }
        }
        if gw.config.fan_out == FanOut::FailClosed
            && !failures.is_empty()
            && !matches!(op, Op::Delete)
        {
            return Step::Respond(json_reply(
                200,
                error_body_value(id_ref, UPSTREAM_ERROR, &capitalize(&failures.join("; "))),
            ));
        }
        match op {
            Op::Initialize { version } => {
                if ok.is_empty() {
                    return Step::Respond(json_reply(
                        200,
                        error_body_value(
                            id_ref,
                            UPSTREAM_ERROR,
                            &format!("No upstream could be initialized: {}", failures.join("; ")),
                        ),
                    ));
                }
                let (result, version) = match (self.scope, ok.first()) {
                    // An upstream's own endpoint is that upstream: its own answer, its
                    // version; its own stream is routed to it.
                    (Scope::Upstream(_), Some((_, _, own))) => (
                        own.clone(),
                        own["protocolVersion"]
                            .as_str()
                            .unwrap_or(version)
                            .to_string(),
                    ),
                    _ => {
                        let joined: Vec<mcp::Joined<'_>> = ok
                            .iter()
                            .map(|(u, _, r)| mcp::Joined {
                                name: &gw.config.upstreams[*u].name,
                                result: r,
                            })
                            .collect();
                        let merged = mcp::merged_initialize(
                            version,
                            &gw.config.server_name,
                            &gw.config.server_version,
                            &joined,
                            gw.config.get_stream,
                        );
                        (merged, version.to_string())
                    }
                };
                let session = Session {
                    identity: self.identity_key(),
                    protocol_version: version.clone(),
                    issued_at: clock.now_s,
                    upstreams: ok
                        .iter()
                        .map(|(u, a, r)| UpstreamSession {
                            name: gw.config.upstreams[*u].name.clone(),
                            session_id: a.session_id.clone(),
                            protocol_version: r["protocolVersion"]
                                .as_str()
                                .unwrap_or(&version)
                                .to_string(),
                            capabilities: mcp::capability_bits(r),
                        })
                        .collect(),
                };
                let token = session::seal(&gw.key, &session, &clock.seed);
                let mut reply =
                    json_reply(200, result_body(id_ref.unwrap_or(&Value::Null), result));
                reply.headers.push((SESSION_HEADER.into(), token));
                Step::Respond(reply)
            }
            Op::List {
                kind,
                pages,
                session,
                ..
            } => {
                // A client never sees what it may not use.
                let what = match kind {
                    ListKind::Tools => Kind::Tool,
                    ListKind::Prompts => Kind::Prompt,
                    ListKind::Resources | ListKind::ResourceTemplates => Kind::Resource,
                };
                let permit =
                    |name: &str| gw.config.access.is_none() || self.permits(gw, what, name);
                if kind == ListKind::Tools {
                    // Every tool the gateway offers, whoever may call it.
                    gw.learn_tools(
                        lists
                            .iter()
                            .flat_map(|(_, page)| &page.items)
                            .map(aggregate::Item::rule_name),
                    );
                }
                let items = lists
                    .iter()
                    .filter(|(u, _)| {
                        self.permits(gw, Kind::Upstream, &gw.config.upstreams[*u].name)
                    })
                    .flat_map(|(_, page)| &page.items)
                    .filter(|i| permit(i.rule_name()))
                    .map(|i| i.text.as_str());
                let cursor = pages.iter().any(|p| matches!(p, Page::At(_))).then(|| {
                    let cursor = Cursor {
                        k: kind.method().to_string(),
                        s: session,
                        p: pages,
                    };
                    session::seal_value(&gw.key, Sealed::Cursor, &cursor, &clock.seed)
                });
                let result = aggregate::list_result(kind, items, cursor.as_deref());
                Step::Respond(json_reply(
                    200,
                    format!(
                        r#"{{"jsonrpc":"2.0","id":{},"result":{result}}}"#,
                        id_ref.unwrap_or(&Value::Null)
                    ),
                ))
            }
            Op::Broadcast { reply_result } => {
                Step::Respond(self.broadcast_reply(id_ref, reply_result))
            }
            // Handled before the loop above.
            Op::Resolve(_) | Op::CallThrough => Step::Respond(json_reply(
                500,
                jsonrpc::error_body(None, code::INTERNAL_ERROR, "internal error"),
            )),
            Op::Delete => Step::Respond(Reply {
                status: 200,
                headers: vec![],
                body: vec![],
            }),
        }
    }
}
