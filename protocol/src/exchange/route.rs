use super::*;

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
                | "mcp-session-id"
                | "mcp-protocol-version"
                | "last-event-id"
                | "x-request-id"
                | "traceparent"
                | "tracestate"
                | "b3"
                | "x-forwarded-for"
                | "x-forwarded-proto"
                | "x-envoy-expected-rq-timeout-ms"
        )
}

impl Exchange {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn route_by_name(
        &mut self,
        gw: &Gateway,
        session: Session,
        id: &RawValue,
        method: &str,
        params: Value,
        field: &[&str],
        prefixed: &str,
        what: &str,
    ) -> Step {
        self.audit.name = prefixed.to_string();
        if naming::looks_shortened(prefixed)
            && let Some(step) =
                self.resolve(gw, &session, id, method, &params, field, prefixed, what)
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
            what == "tool" && !glob::allowed(&u.tools_include, &u.tools_exclude, name)
        });
        let found = found.filter(|_| !filtered_out);
        let kind = if what == "tool" {
            Kind::Tool
        } else {
            Kind::Prompt
        };
        if let Some((u, name)) = found {
            let full = Self::rule_name(gw, u, name);
            if method == "tools/call" {
                self.audit.tool_series = gw.tool_series(&full);
            }
            if !(self.permits(gw, Kind::Upstream, &u.name) && self.permits(gw, kind, &full)) {
                self.audit.upstream = u.name.clone();
                return self.denied(id, what, &full);
            }
        } else if method == "tools/call" {
            self.audit.tool_series = UNKNOWN_TOOL.into();
        }
        let unknown = || {
            if filtered_out {
                format!("Unknown {what}: {prefixed:?} (the gateway does not offer it)")
            } else {
                format!(
                    "Unknown {what}: {prefixed:?} (no upstream of this session has that prefix)"
                )
            }
        };
        self.route_found(
            gw, &session, id, method, params, field, found, unknown, false,
        )
    }

    /// `template`: the URI is a URI template (a `completion/complete` reference), which is
    /// judged normalized but sent as the client wrote it, so the upstream finds its template.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn route_by_uri(
        &mut self,
        gw: &Gateway,
        session: Session,
        id: &RawValue,
        method: &str,
        params: Value,
        field: &[&str],
        requested: &str,
        rewrite_answer: bool,
        template: bool,
    ) -> Step {
        let normalized = if template {
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
                    Some(id),
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
                return self.denied(id, "resource", &full);
            }
        }
        // A template goes as the client spelled it, without the prefix.
        let as_sent = match (self.scope, gw.prefixed()) {
            (Scope::Aggregated, true) => naming::split_uri(requested).map_or(requested, |(_, u)| u),
            _ => requested,
        };
        let found = found.map(|(u, uri)| (u, if template { as_sent } else { uri }));
        let unknown = || {
            format!(
                "Unknown resource: {requested:?} (no upstream of this session has that URI prefix)"
            )
        };
        self.route_found(
            gw,
            &session,
            id,
            method,
            params,
            field,
            found,
            unknown,
            rewrite_answer,
        )
    }

    /// Routes to the upstream a prefixed name or URI was found to belong to, with the
    /// unprefixed one in `params`; or answers `-32602` with `unknown()` when none was found.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn route_found(
        &mut self,
        gw: &Gateway,
        session: &Session,
        id: &RawValue,
        method: &str,
        mut params: Value,
        field: &[&str],
        found: Option<(&Upstream, &str)>,
        unknown: impl FnOnce() -> String,
        prefix_answer_uris: bool,
    ) -> Step {
        let Some((upstream, unprefixed)) = found else {
            self.state = State::Done;
            return error_reply(200, Some(id), code::INVALID_PARAMS, &unknown());
        };
        set_path(&mut params, field, Value::String(unprefixed.to_string()));
        let uri_prefix =
            (prefix_answer_uris && self.prefixed(gw)).then(|| upstream.uri_prefix.clone());
        let name = upstream.name.clone();
        self.route(
            gw,
            session,
            &name,
            Some(id),
            Some((method, params)),
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
        let config = gw.by_name(upstream).map(|(_, u)| u);
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
