use super::*;

/// Where one upstream stands in a paged list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Page {
    Start,
    At(String),
    Done,
}

/// The gateway's pagination cursor: every upstream's position, sealed so a client can neither
/// read nor forge it, bound to the list method and the session.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Cursor {
    pub(super) k: String,
    /// [`Session::digest`] of the session whose list gave it.
    pub(super) s: String,
    pub(super) p: Vec<Page>,
}

/// A cached page of the upstream's current generation that has not expired. Entries are
/// `<generation> <expiry ms>\n<page>` ([`aggregate::Page::encode`]): nothing in them is parsed
/// as JSON again.
pub(super) fn cached(
    gw: &Gateway,
    key: &str,
    generation: u64,
    now_ms: u64,
) -> Option<aggregate::Page> {
    let entry = String::from_utf8(gw.cache.get(key)?).ok()?;
    let (head, page) = entry.split_once('\n')?;
    let (g, e) = head.split_once(' ')?;
    if g.parse::<u64>().ok()? != generation || e.parse::<u64>().ok()? <= now_ms {
        return None;
    }
    aggregate::Page::decode(page)
}

pub(super) fn cache_entry(generation: u64, expires_ms: u64, page: &aggregate::Page) -> String {
    format!("{generation} {expires_ms}\n{}", page.encode())
}

impl Exchange {
    pub(super) fn list(
        &mut self,
        gw: &Gateway,
        session: Session,
        id: &RawValue,
        kind: ListKind,
        params: &Value,
        clock: &Clock,
    ) -> Step {
        let id_value: Value = serde_json::from_str(id.get()).unwrap_or(Value::Null);
        let n = session.upstreams.len();
        let pages = match params.get("cursor").and_then(Value::as_str) {
            None => vec![Page::Start; n],
            Some(token) => match session::open_value::<Cursor>(&gw.key, Sealed::Cursor, token) {
                Ok(c) if c.k == kind.method() && c.s == session.digest() && c.p.len() == n => c.p,
                _ => {
                    self.state = State::Done;
                    return error_reply(
                        200,
                        Some(id),
                        code::INVALID_PARAMS,
                        "Invalid params: the cursor is not one this session's list gave",
                    );
                }
            },
        };
        let mut base = params.clone();
        if let Some(obj) = base.as_object_mut() {
            obj.remove("cursor");
        }
        let mut targets = Vec::new();
        let mut slots = Vec::new();
        let mut callouts = Vec::new();
        let mut answers = Vec::new();
        let mut cache_keys = Vec::new();
        let mut hits = Vec::new();
        // Only plain lists are cached: anything besides the cursor may change the answer.
        let plain = base
            .as_object()
            .is_none_or(|o| o.keys().all(|k| k == "_meta"));
        for (slot, us) in session.upstreams.iter().enumerate() {
            if us.capabilities & kind.capability() == 0 || pages[slot] == Page::Done {
                continue;
            }
            let Some((index, upstream)) = gw.by_name(&us.name) else {
                continue;
            };
            // Each upstream is asked for its own next page.
            let mut params = base.clone();
            if let Page::At(c) = &pages[slot] {
                if !params.is_object() {
                    params = json!({});
                }
                params["cursor"] = Value::String(c.clone());
            }
            let key = (upstream.cache_ms > 0 && plain).then(|| {
                let page = match &pages[slot] {
                    Page::At(c) => c.as_str(),
                    _ => "",
                };
                // One key per upstream, view, method and page (Envoy's shared data cannot
                // delete): the generation lives in the entry.
                let view = usize::from(self.scope != Scope::Aggregated);
                format!(
                    "list/{}/{}/{}/{page}",
                    upstream.name,
                    gw.views[index][view],
                    kind.method()
                )
            });
            let generation = gw.cache.generation(&upstream.name);
            if let Some(page) = key
                .as_deref()
                .and_then(|k| cached(gw, k, generation, clock.now_ms))
            {
                // Answered already: the page stands in for the callout.
                answers.push(Some(Ok(CalloutAnswer {
                    status: 200,
                    content_type: String::new(),
                    session_id: None,
                    body: Vec::new(),
                })));
                hits.push(Some(page));
                cache_keys.push(None);
            } else {
                let mut msg = json!({"jsonrpc": "2.0", "id": id_value, "method": kind.method()});
                if !params.is_null() {
                    msg["params"] = params;
                }
                callouts.push(callout(
                    targets.len(),
                    upstream,
                    "POST",
                    us.session_id.as_deref(),
                    Some(&us.protocol_version),
                    msg.to_string().as_bytes(),
                ));
                answers.push(None);
                hits.push(None);
                cache_keys.push(key.map(|k| (k, generation)));
            }
            targets.push(index);
            slots.push(slot);
        }
        if targets.is_empty() {
            self.state = State::Done;
            return Step::Respond(json_reply(
                200,
                result_body(&id_value, json!({ kind.key(): [] })),
            ));
        }
        let state = FanOutState {
            op: Op::List {
                kind,
                pages,
                slots,
                session: session.digest(),
                cache_keys,
                hits,
            },
            id: Some(id_value),
            answers,
            targets,
        };
        if callouts.is_empty() {
            // Every upstream answered from the cache.
            return self.finish_fan_out(gw, state, clock);
        }
        self.state = State::FanOut(state);
        Step::AwaitCallouts(callouts)
    }
}
