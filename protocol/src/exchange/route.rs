use super::*;
use crate::wire::LAST_EVENT_ID_HEADER;

/// Sets `value` at `path` inside `params` (objects along the way must exist).
pub(super) fn set_path(params: &mut Value, path: &[&str], value: Value) {
    let mut at = params;
    for key in &path[..path.len().saturating_sub(1)] {
        at = &mut at[*key];
    }
    if let Some(last) = path.last() {
        at[*last] = value;
    }
}

/// The body with its `id` replaced.
pub(super) fn replace_id(body: &[u8], id: Value) -> Vec<u8> {
    match serde_json::from_slice::<Value>(body) {
        Ok(mut v) => {
            v["id"] = id;
            v.to_string().into_bytes()
        }
        Err(_) => body.to_vec(),
    }
}

/// Whether a client's request header goes on to the upstream of a routed call. Only what MCP
/// and tracing need: credentials and everything else stay at the gateway unless configured
/// (`Authorization` above all). `accept-encoding` stays too, so answers the gateway rewrites
/// arrive uncompressed.
pub fn forwarded_request_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with(':')
        || name.starts_with("x-b3-")
        || matches!(
            name.as_str(),
            "content-type"
                | "content-length"
                | "accept"
                | "user-agent"
                | SESSION_HEADER
                | VERSION_HEADER
                // The method is never rewritten; the (prefixed) name is, so Mcp-Name is not
                // passed on as the client wrote it.
                | crate::wire::METHOD_HEADER
                | LAST_EVENT_ID_HEADER
                | "x-request-id"
                | "traceparent"
                | "tracestate"
                | "b3"
                | "x-forwarded-for"
                | "x-forwarded-proto"
                | "x-envoy-expected-rq-timeout-ms"
        )
}

/// A request that names one tool, prompt or resource: `tools/call`, `prompts/get`,
/// `resources/read`, `resources/(un)subscribe`, `completion/complete`.
#[derive(Debug)]
pub(super) struct Addressed<'a> {
    pub(super) id: &'a RawValue,
    pub(super) method: &'a str,
    pub(super) params: Value,
    /// Where the name or URI is inside `params` (`["name"]`, `["ref", "uri"]`).
    pub(super) field: &'static [&'static str],
    /// What it names.
    pub(super) kind: Kind,
    /// The name or URI as the client sent it.
    pub(super) requested: String,
}

/// How a URI is judged and its answer treated.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct UriUse {
    /// The answer names URIs of the upstream (`resources/read`): prefix them back.
    pub(super) rewrite_answer: bool,
    /// The URI is a URI template (a `completion/complete` reference): judged normalized but
    /// sent as the client wrote it, so the upstream finds its template.
    pub(super) template: bool,
}

impl Exchange {
    /// Routes a request that names a tool or prompt to the upstream whose prefix the name has,
    /// with the prefix stripped; a shortened name is resolved first.
    pub(super) fn route_by_name(
        &mut self,
        gw: &Gateway,
        session: Session,
        mut req: Addressed<'_>,
    ) -> Step {
        // A REST upstream's shortened tool name is known from configuration, without asking.
        if req.kind == Kind::Tool
            && naming::looks_shortened(&req.requested)
            && let Some(full) =
                rest_call::unshorten(gw, &session, &req.requested, self.prefixed(gw))
        {
            req.requested = full;
        }
        let prefixed = req.requested.as_str();
        self.audit.name = prefixed.to_string();
        if naming::looks_shortened(prefixed)
            && let Some(step) = self.resolve(gw, &session, &req)
        {
            return step;
        }
        let found = match self.scope {
            Scope::Upstream(index) => Some((&gw.config.upstreams[index], prefixed)),
            Scope::Aggregated if gw.prefixed() => {
                naming::split_name(prefixed, &gw.config.separator)
                    .and_then(|(prefix, name)| gw.by_prefix(prefix).map(|u| (u, name)))
            }
            Scope::Aggregated => gw.config.upstreams.first().map(|u| (u, prefixed)),
        }
        .filter(|(u, _)| session.upstream(&u.name).is_some());
        // A tool the gateway does not offer (tools.include / exclude) is unknown, and said so.
        let filtered_out = found.is_some_and(|(u, name)| {
            req.kind == Kind::Tool && !glob::allowed(&u.tools_include, &u.tools_exclude, name)
        });
        let found = found.filter(|_| !filtered_out);
        if let Some((u, name)) = found {
            let full = Self::rule_name(gw, u, name);
            if req.method == "tools/call" {
                self.audit.tool_series = gw.tool_series(&full, name);
            }
            if !(self.permits(gw, Kind::Upstream, &u.name) && self.permits(gw, req.kind, &full)) {
                self.audit.upstream = u.name.clone();
                return self.denied(gw, req.id, &u.name, req.kind, &full);
            }
        } else if req.method == "tools/call" {
            self.audit.tool_series = UNKNOWN_TOOL.into();
        }
        let what = req.kind.noun();
        let found = found.map(|(u, name)| (u, name.to_string())).ok_or_else(|| {
            if filtered_out {
                format!("Unknown {what}: {prefixed:?} (the gateway does not offer it)")
            } else {
                format!(
                    "Unknown {what}: {prefixed:?} (no upstream of this session has that prefix)"
                )
            }
        });
        self.route_found(gw, &session, req, found, false)
    }

    /// Routes a request that names a resource (or a template) by its URI's prefix.
    pub(super) fn route_by_uri(
        &mut self,
        gw: &Gateway,
        session: Session,
        req: Addressed<'_>,
        how: UriUse,
    ) -> Step {
        let requested = req.requested.as_str();
        let normalized = if how.template {
            crate::uri::normalize_template(requested)
        } else {
            crate::uri::normalize(requested)
        };
        let normalized = match normalized {
            Ok(u) => u,
            Err(e) => {
                self.audit.name = requested.to_string();
                self.state = State::Done;
                return error_reply(
                    200,
                    Some(req.id),
                    code::INVALID_PARAMS,
                    &format!("Invalid params: {e}"),
                );
            }
        };
        self.audit.name.clone_from(&normalized);
        let found = match self.scope {
            Scope::Upstream(index) => Some((&gw.config.upstreams[index], normalized.as_str())),
            Scope::Aggregated if gw.prefixed() => naming::split_uri(&normalized)
                .and_then(|(prefix, uri)| gw.by_uri_prefix(prefix).map(|u| (u, uri))),
            Scope::Aggregated => gw
                .config
                .upstreams
                .first()
                .map(|u| (u, normalized.as_str())),
        }
        .filter(|(u, _)| session.upstream(&u.name).is_some());
        if let Some((u, uri)) = found {
            let full = match self.scope {
                Scope::Upstream(_) if gw.prefixed() => naming::prefix_uri(&u.uri_prefix, uri),
                _ => normalized.clone(),
            };
            if !(self.permits(gw, Kind::Upstream, &u.name)
                && self.permits(gw, Kind::Resource, &full))
            {
                self.audit.upstream = u.name.clone();
                return self.denied(gw, req.id, &u.name, Kind::Resource, &full);
            }
        }
        // A template goes as the client spelled it, without the prefix.
        let as_sent = match (self.scope, gw.prefixed()) {
            (Scope::Aggregated, true) => naming::split_uri(requested).map_or(requested, |(_, u)| u),
            _ => requested,
        };
        let found = found
            .map(|(u, uri)| (u, if how.template { as_sent } else { uri }.to_string()))
            .ok_or_else(|| {
                format!(
                    "Unknown resource: {requested:?} (no upstream of this session has that URI prefix)"
                )
            });
        self.route_found(gw, &session, req, found, how.rewrite_answer)
    }

    /// Routes to the upstream a prefixed name or URI was found to belong to, with the
    /// unprefixed one in `params`; or answers `-32602` with why none was found.
    fn route_found(
        &mut self,
        gw: &Gateway,
        session: &Session,
        req: Addressed<'_>,
        found: Result<(&Upstream, String), String>,
        prefix_answer_uris: bool,
    ) -> Step {
        let (upstream, unprefixed) = match found {
            Ok(found) => found,
            Err(unknown) => {
                self.state = State::Done;
                return error_reply(200, Some(req.id), code::INVALID_PARAMS, &unknown);
            }
        };
        self.asked = Some((req.method.to_string(), req.requested.clone()));
        let mut params = req.params;
        set_path(&mut params, req.field, Value::String(unprefixed));
        let uri_prefix =
            (prefix_answer_uris && self.prefixed(gw)).then(|| upstream.uri_prefix.clone());
        let name = upstream.name.clone();
        self.route(
            gw,
            session,
            &name,
            Some(req.id),
            Some((req.method, params)),
            uri_prefix,
        )
    }

    /// Sends the request on to `upstream` with its own session and version, and with
    /// `params` in place of the client's when given.
    pub(super) fn route(
        &mut self,
        gw: &Gateway,
        session: &Session,
        upstream: &str,
        id: Option<&RawValue>,
        rewritten: Option<(&str, Value)>,
        uri_prefix: Option<String>,
    ) -> Step {
        self.audit.upstream = upstream.to_string();
        // Only `params` changes; the method and the id stay the client's, byte for byte.
        let body = match (rewritten, id) {
            (Some((method, params)), Some(id)) => Some(
                format!(
                    r#"{{"jsonrpc":"2.0","id":{},"method":{},"params":{}}}"#,
                    id.get(),
                    Value::from(method),
                    params
                )
                .into_bytes(),
            ),
            _ => None,
        };
        self.route_with(gw, session, upstream, id, body, uri_prefix)
    }

    /// Sends `body` (a client's response to a server request) on to `upstream`.
    pub(super) fn route_body(
        &mut self,
        gw: &Gateway,
        session: &Session,
        upstream: &str,
        id: Option<&RawValue>,
        body: Vec<u8>,
    ) -> Step {
        self.route_with(gw, session, upstream, id, Some(body), None)
    }

    pub(super) fn route_with(
        &mut self,
        gw: &Gateway,
        session: &Session,
        upstream: &str,
        id: Option<&RawValue>,
        body: Option<Vec<u8>>,
        uri_prefix: Option<String>,
    ) -> Step {
        let Some(us) = session.upstream(upstream) else {
            self.state = State::Done;
            return error_reply(
                200,
                id,
                code::INTERNAL_ERROR,
                "The upstream is not part of this session",
            );
        };
        if let Some((index, u)) = gw.by_name(upstream)
            && u.rest_tools.is_some()
        {
            return self.call_rest(gw, index, id, body);
        }
        let config = gw.by_name(upstream).map(|(_, u)| u);
        let modern = us.protocol_version == crate::modern::VERSION && id.is_some();
        if modern
            && self.stateless.is_none()
            && let Some(b) = &body
            && let Some(step) = self.held_for_session(gw, upstream, b)
        {
            return step;
        }
        if (self.stateless.is_some() || modern)
            && let Some((index, config)) = gw.by_name(upstream)
        {
            // The filter makes the call itself and reads the answer whole: a stateless
            // client's upstream session closes before the answer goes out, and an upstream
            // of the stateless revision may answer `input_required`.
            let Some(body) = body.or_else(|| self.stateless.as_ref().map(|s| s.body.clone()))
            else {
                return internal_error();
            };
            let mut call = upstream_callout(
                0,
                config,
                us.session_id.as_deref(),
                &us.protocol_version,
                self.client_meta.as_ref(),
                &body,
            );
            if modern {
                call.headers.extend(self.mcp_params.iter().cloned());
            }
            let id = id.and_then(|i| serde_json::from_str::<Value>(i.get()).ok());
            self.through = Some(Through {
                upstream: upstream.to_string(),
                uri_prefix,
                modern,
                asked: self.asked.take().unwrap_or_default(),
                rest: None,
            });
            self.state = State::FanOut(FanOutState {
                targets: vec![index],
                op: Op::CallThrough,
                id,
                answers: vec![None],
            });
            return Step::AwaitCallouts(vec![call]);
        }
        let timeout_ms = config.map_or(0, |u| u.timeout_ms);
        self.state = State::Routed(Routed {
            upstream: upstream.to_string(),
            id: id.map(ToOwned::to_owned),
            timeout_ms,
            uri_prefix,
            buffering: false,
            tag_requests: session.upstreams.len() > 1,
            event_uri_prefix: config
                .filter(|_| self.prefixed(gw))
                .map(|u| u.uri_prefix.clone()),
            via: config.map(|u| u.via.clone()).unwrap_or_default(),
            splitter: None,
        });
        Step::Route(Route {
            upstream: upstream.to_string(),
            body,
            headers: vec![
                (SESSION_HEADER.into(), us.session_id.clone()),
                (VERSION_HEADER.into(), Some(us.protocol_version.clone())),
            ],
        })
    }
}
