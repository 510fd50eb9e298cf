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

/// A list fanned out to the session's upstreams, each at its own page.
#[derive(Debug)]
pub(super) struct ListFanOut {
    pub(super) kind: ListKind,
    /// One entry per upstream of the session.
    pub(super) pages: Vec<Page>,
    /// The session index of each call.
    pub(super) slots: Vec<usize>,
    /// [`Session::digest`]: the cursor is bound to it.
    pub(super) session: String,
    /// Per call: where to cache its answer and the generation it belongs to (`None`: not
    /// cacheable, or from the cache).
    pub(super) cache_keys: Vec<Option<(String, u64)>>,
    /// Per call: the page the cache had, which no upstream was asked for.
    pub(super) hits: Vec<Option<aggregate::Page>>,
    /// The cache hints (`ttlMs`, `cacheScope`) of each page read, merged into the answer
    /// of a stateless client.
    pub(super) hints: Vec<crate::modern::CacheHints>,
}

impl ListFanOut {
    /// Where the upstream of `call` stands after its answer: done when it failed or has no
    /// further page.
    pub(super) fn advance(&mut self, call: usize, page: Option<&aggregate::Page>) {
        self.pages[self.slots[call]] = page
            .and_then(|p| p.next_cursor.clone())
            .map_or(Page::Done, Page::At);
    }
}

/// The request for one upstream's page of a list.
struct PageRequest<'a> {
    kind: ListKind,
    id: &'a Value,
    /// The client's params without its cursor.
    params: &'a Value,
    /// Nothing besides the cursor and `_meta`: the answer may be cached.
    plain: bool,
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
        let Some(pages) = self.cursor_pages(gw, &session, kind, params) else {
            self.state = State::Done;
            return error_reply(
                200,
                Some(id),
                code::INVALID_PARAMS,
                "Invalid params: the cursor is not one this session's list gave",
            );
        };
        let mut base = params.clone();
        if let Some(obj) = base.as_object_mut() {
            obj.remove("cursor");
        }
        let request = PageRequest {
            kind,
            id: &id_value,
            // Only plain lists are cached: anything besides the cursor may change the answer.
            plain: base
                .as_object()
                .is_none_or(|o| o.keys().all(|k| k == "_meta")),
            params: &base,
        };
        let mut list = ListFanOut {
            kind,
            pages,
            slots: Vec::new(),
            session: session.digest(),
            cache_keys: Vec::new(),
            hits: Vec::new(),
            hints: Vec::new(),
        };
        let mut targets = Vec::new();
        let mut callouts = Vec::new();
        let mut answers = Vec::new();
        for (slot, us) in session.upstreams.iter().enumerate() {
            if us.capabilities & kind.capability() == 0 || list.pages[slot] == Page::Done {
                continue;
            }
            let Some((index, upstream)) = gw.by_name(&us.name) else {
                continue;
            };
            if let Some(tools) = &upstream.rest_tools {
                // Its tools are in the configuration: read as any upstream's answer.
                answers.push(Some(Ok(rest_call::list_answer(tools, &id_value))));
                list.hits.push(None);
                list.cache_keys.push(None);
                targets.push(index);
                list.slots.push(slot);
                continue;
            }
            let key = self.cache_key(gw, &request, index, &list.pages[slot]);
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
                list.hits.push(Some(page));
                list.cache_keys.push(None);
            } else {
                let body = page_request_body(&request, &list.pages[slot]);
                callouts.push(upstream_callout(
                    targets.len(),
                    upstream,
                    us.session_id.as_deref(),
                    &us.protocol_version,
                    self.client_meta.as_ref(),
                    body.as_bytes(),
                ));
                answers.push(None);
                list.hits.push(None);
                list.cache_keys.push(key.map(|k| (k, generation)));
            }
            targets.push(index);
            list.slots.push(slot);
        }
        if targets.is_empty() {
            self.state = State::Done;
            return Step::Respond(json_reply(
                200,
                result_body(&id_value, json!({ kind.key(): [] })),
            ));
        }
        let state = FanOutState {
            op: Op::List(Box::new(list)),
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

    /// Every upstream's position: from the start, or where the client's cursor says, if it is
    /// one this session's list of this kind gave (`None` otherwise).
    fn cursor_pages(
        &self,
        gw: &Gateway,
        session: &Session,
        kind: ListKind,
        params: &Value,
    ) -> Option<Vec<Page>> {
        let n = session.upstreams.len();
        let Some(token) = params.get("cursor").and_then(Value::as_str) else {
            return Some(vec![Page::Start; n]);
        };
        match session::open_value::<Cursor>(&gw.key, Sealed::Cursor, token) {
            Ok(c) if c.k == kind.method() && c.s == session.digest() && c.p.len() == n => Some(c.p),
            _ => None,
        }
    }

    /// Where the page of upstream `index` is cached, when its list may be.
    fn cache_key(
        &self,
        gw: &Gateway,
        request: &PageRequest<'_>,
        index: usize,
        page: &Page,
    ) -> Option<String> {
        let upstream = &gw.config.upstreams[index];
        if upstream.cache_ms == 0 || !request.plain {
            return None;
        }
        let page = match page {
            Page::At(c) => c.as_str(),
            _ => "",
        };
        // One key per upstream, view, method and page (Envoy's shared data cannot delete):
        // the generation lives in the entry.
        let view = usize::from(self.scope != Scope::Aggregated);
        Some(format!(
            "list/{}/{}/{}/{page}",
            upstream.name,
            gw.views[index][view],
            request.kind.method()
        ))
    }

    /// One upstream's page, from the cache or its answer: names prefixed, filtered tools left
    /// out, sizes checked; a fresh page is cached.
    pub(super) fn read_page(
        &self,
        gw: &Gateway,
        list: &mut ListFanOut,
        of: &Answer<'_>,
        a: &CalloutAnswer,
        clock: &Clock,
    ) -> Result<aggregate::Page, Failure> {
        if let Some(page) = list.hits[of.call].take() {
            // What the page promised when cached is not kept: it promises nothing now.
            list.hints.push(crate::modern::CacheHints::default());
            return Ok(page);
        }
        let upstream = of.upstream;
        if a.body.len() as u64 > upstream.max_list_bytes {
            return Err(Failure::TooBig {
                size: a.body.len(),
                limit: upstream.max_list_bytes,
            });
        }
        let result = mcp::find_result_raw(&a.content_type, &a.body, of.want)?
            .map_err(|err| Failure::error(&err))?;
        let prefixes = Prefixes {
            name: &upstream.prefix,
            uri: &upstream.uri_prefix,
        };
        let kind = list.kind;
        let keep = |name: &str| {
            kind != ListKind::Tools
                || glob::allowed(&upstream.tools_include, &upstream.tools_exclude, name)
        };
        let page = aggregate::prefixed_page(
            kind,
            &result,
            self.prefixed(gw).then_some(prefixes),
            gw.prefixed().then_some(prefixes),
            &gw.config.separator,
            keep,
        )?;
        if page.items.len() as u64 > upstream.max_list_items {
            return Err(Failure::TooManyItems {
                items: page.items.len(),
                limit: upstream.max_list_items,
            });
        }
        // An upstream of the 2026-07-28 revision says how long its list may be kept, and
        // by whom: the shared cache keeps it no longer, and a private one not at all (the
        // cache serves every client).
        let hints = page_hints(result.get());
        list.hints.push(hints);
        let cache_ms = hints
            .ttl_ms
            .map_or(upstream.cache_ms, |t| t.min(upstream.cache_ms));
        let shareable = hints.scope != Some(crate::modern::CacheScope::Private);
        if let Some((key, generation)) = &list.cache_keys[of.call]
            && shareable
            && cache_ms > 0
        {
            let expires = clock.now_ms.saturating_add(cache_ms);
            gw.cache
                .put(key, cache_entry(*generation, expires, &page).as_bytes());
        }
        Ok(page)
    }

    /// The merged page: what the client may use of every upstream's page, in configuration
    /// order, with a sealed cursor while any upstream has more.
    pub(super) fn finish_list(
        &self,
        gw: &Gateway,
        list: ListFanOut,
        id: Option<&Value>,
        pages: &[(usize, aggregate::Page)],
        clock: &Clock,
    ) -> Step {
        let ListFanOut {
            kind,
            pages: positions,
            session,
            hints,
            ..
        } = list;
        // A client never sees what it may not use.
        let what = kind.item_kind();
        let permit = |name: &str| gw.config.access.is_none() || self.permits(gw, what, name);
        if kind == ListKind::Tools {
            // Every tool the gateway offers, whoever may call it.
            gw.learn_tools(
                pages
                    .iter()
                    .flat_map(|(_, page)| &page.items)
                    .map(aggregate::Item::rule_name),
            );
        }
        let items = pages
            .iter()
            .filter(|(u, _)| self.permits(gw, Kind::Upstream, &gw.config.upstreams[*u].name))
            .flat_map(|(_, page)| &page.items)
            .filter(|i| permit(i.rule_name()))
            .map(|i| i.text.as_str());
        let cursor = positions.iter().any(|p| matches!(p, Page::At(_))).then(|| {
            let cursor = Cursor {
                k: kind.method().to_string(),
                s: session,
                p: positions,
            };
            session::seal_value(&gw.key, Sealed::Cursor, &cursor, &clock.seed)
        });
        let mut result = aggregate::list_result(kind, items, cursor.as_deref());
        if self.stateless.is_some() {
            result = with_hints(gw, &result, hints);
        }
        Step::Respond(json_reply(
            200,
            format!(
                r#"{{"jsonrpc":"2.0","id":{},"result":{result}}}"#,
                id.unwrap_or(&Value::Null)
            ),
        ))
    }
}

/// The cache hints of one upstream's list result (none from a 2025 upstream).
fn page_hints(result: &str) -> crate::modern::CacheHints {
    if !result.contains("\"ttlMs\"") && !result.contains("\"cacheScope\"") {
        return crate::modern::CacheHints::default();
    }
    #[derive(Deserialize)]
    struct Hints {
        #[serde(rename = "ttlMs")]
        ttl_ms: Option<u64>,
        #[serde(rename = "cacheScope")]
        scope: Option<String>,
    }
    serde_json::from_str::<Hints>(result).map_or_else(
        |_| crate::modern::CacheHints::default(),
        |h| crate::modern::CacheHints::of(&json!({"ttlMs": h.ttl_ms, "cacheScope": h.scope})),
    )
}

/// A merged list as a stateless client gets it: what every part promises (the shortest
/// time, the narrowest scope); private whenever access rules shape lists per client.
fn with_hints(gw: &Gateway, result: &str, parts: Vec<crate::modern::CacheHints>) -> String {
    let mut hints = crate::modern::CacheHints::merge(parts);
    if gw.config.access.is_some() {
        hints.scope = Some(crate::modern::CacheScope::Private);
    }
    if hints.ttl_ms.is_none() && hints.scope.is_none() {
        return result.to_string();
    }
    let Ok(mut v) = serde_json::from_str::<Value>(result) else {
        return result.to_string();
    };
    hints.write(&mut v);
    v.to_string()
}

/// The body asking one upstream for its page at `page`.
fn page_request_body(request: &PageRequest<'_>, page: &Page) -> String {
    let mut params = request.params.clone();
    if let Page::At(c) = page {
        if !params.is_object() {
            params = json!({});
        }
        params["cursor"] = Value::String(c.clone());
    }
    let mut msg = json!({"jsonrpc": "2.0", "id": request.id, "method": request.kind.method()});
    if !params.is_null() {
        msg["params"] = params;
    }
    msg.to_string()
}
