use super::*;

impl Exchange {
    /// Opens the client's session token. `Err` carries the answer for the client: 400 when
    /// it sent none, 404 when it is unknown, tampered with or expired (the client then
    /// initializes again, as the specification says).
    pub(super) fn open_session(
        &mut self,
        gw: &Gateway,
        session_id: Option<&str>,
        id: Option<&RawValue>,
    ) -> Result<Session, Step> {
        let Some(token) = session_id else {
            self.state = State::Done;
            return Err(error_reply(
                400,
                id,
                code::INVALID_REQUEST,
                "Bad Request: the Mcp-Session-Id header is required; send initialize first",
            ));
        };
        match session::open(&gw.key, token, self.now_s, gw.config.session_max_age_s) {
            // A session is its opener's: presented by anyone else, it does not exist.
            Ok(s) if gw.config.access.is_some() && s.identity != self.identity_key() => {
                self.state = State::Done;
                self.log.push(format!(
                    "refused a session opened by {:?}, presented by {:?}",
                    s.identity.as_deref().unwrap_or("nobody"),
                    self.identity_key().unwrap_or_default()
                ));
                Err(error_reply(
                    404,
                    id,
                    SESSION_NOT_FOUND,
                    "Session not found: send initialize again",
                ))
            }
            // The specification asks for 400 for an invalid or unsupported version only (and
            // to assume 2025-03-26 without the header); every upstream gets its own version.
            Ok(s) => match self.client_version.as_deref() {
                Some(v) if !mcp::SUPPORTED_VERSIONS.contains(&v) => {
                    self.state = State::Done;
                    Err(error_reply(
                        400,
                        id,
                        code::INVALID_REQUEST,
                        &format!(
                            "Bad Request: unsupported MCP-Protocol-Version {v:?}; supported: {}",
                            mcp::SUPPORTED_VERSIONS.join(", ")
                        ),
                    ))
                }
                _ => {
                    self.client_meta.clone_from(&s.client);
                    self.in_scope(gw, s, id)
                }
            },
            Err(e) => {
                self.state = State::Done;
                self.log.push(format!("refused a session id: {e}"));
                Err(error_reply(
                    404,
                    id,
                    SESSION_NOT_FOUND,
                    &format!("Session not found: {e}; send initialize again"),
                ))
            }
        }
    }

    /// The part of `session` this request may use: on an upstream's own endpoint, that
    /// upstream alone (a session without it does not exist there).
    pub(super) fn in_scope(
        &mut self,
        gw: &Gateway,
        mut session: Session,
        id: Option<&RawValue>,
    ) -> Result<Session, Step> {
        if let Scope::Upstream(index) = self.scope {
            let name = &gw.config.upstreams[index].name;
            session.upstreams.retain(|u| u.name == *name);
            if session.upstreams.is_empty() {
                self.state = State::Done;
                return Err(error_reply(
                    404,
                    id,
                    SESSION_NOT_FOUND,
                    &format!(
                        "Session not found: it has no session with upstream {name:?}; send initialize again"
                    ),
                ));
            }
        }
        Ok(session)
    }

    pub(super) fn initialize(
        &mut self,
        gw: &Gateway,
        id: &RawValue,
        params: Option<&RawValue>,
        clock: &Clock,
    ) -> Step {
        let mut params: Value = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_else(|| json!({}));
        self.client_meta = Some(crate::modern::ClientMeta::new(
            &params["capabilities"],
            params.get("clientInfo"),
        ));
        let client_version = params["protocolVersion"].as_str().unwrap_or_default();
        let version = mcp::negotiate(client_version);
        params["protocolVersion"] = json!(version);
        let id_value: Value = serde_json::from_str(id.get()).unwrap_or(Value::Null);
        let body =
            json!({"jsonrpc": "2.0", "id": id_value, "method": "initialize", "params": params})
                .to_string();
        let targets: Vec<usize> = match self.scope {
            // Its permission was checked with the headers.
            Scope::Upstream(index) => vec![index],
            Scope::Aggregated => (0..gw.config.upstreams.len())
                .filter(|&u| self.permits_by_rules(gw, &gw.config.upstreams[u].name))
                .collect(),
        };
        if targets.is_empty() && !gw.config.upstreams.is_empty() {
            self.state = State::Done;
            return error_reply(
                200,
                Some(id),
                ACCESS_DENIED,
                "Access denied: this client may use none of the gateway's upstreams",
            );
        }
        if targets.is_empty() {
            self.state = State::Done;
            return error_reply(
                200,
                Some(id),
                code::INTERNAL_ERROR,
                "No upstream MCP server is configured",
            );
        }
        // The version is in the body; the header is for the requests after it.
        self.open_upstreams(
            gw,
            Op::Initialize { version },
            Some(id_value),
            targets,
            body.into_bytes(),
            true,
            clock,
        )
    }

    pub(super) fn broadcast(
        &mut self,
        gw: &Gateway,
        session: Session,
        id: Option<Value>,
        body: &[u8],
        method: &str,
        reply_result: bool,
    ) -> Step {
        // The stateless revision has no notifications from clients and no logging level.
        let (targets, callouts) = session_callouts(gw, &session, "POST", body, |us| {
            us.protocol_version != crate::modern::VERSION
                && (method != "logging/setLevel" || us.capabilities & caps::LOGGING != 0)
        });
        if targets.is_empty() {
            self.state = State::Done;
            return Step::Respond(broadcast_reply(id.as_ref(), reply_result));
        }
        self.state = State::FanOut(FanOutState {
            op: Op::Broadcast { reply_result },
            id,
            answers: vec![None; targets.len()],
            targets,
        });
        Step::AwaitCallouts(callouts)
    }

    pub(super) fn delete(&mut self, gw: &Gateway, session_id: Option<&str>) -> Step {
        let session = match self.open_session(gw, session_id, None) {
            Ok(s) => s,
            Err(step) => return step,
        };
        let (targets, callouts) = session_closing(gw, &session);
        if targets.is_empty() {
            self.state = State::Done;
            return Step::Respond(Reply {
                status: 200,
                headers: vec![],
                body: vec![],
            });
        }
        self.state = State::FanOut(FanOutState {
            op: Op::Delete,
            id: None,
            answers: vec![None; targets.len()],
            targets,
        });
        Step::AwaitCallouts(callouts)
    }

    /// Every upstream answered `initialize` (or failed): one session sealed over theirs, and
    /// the merged answer (an upstream's own endpoint answers as that upstream).
    pub(super) fn finish_initialize(
        &mut self,
        gw: &Gateway,
        version: &'static str,
        id: Option<&Value>,
        done: Answered,
        clock: &Clock,
    ) -> Step {
        let ok = done.ok;
        if ok.is_empty() {
            let message = format!(
                "No upstream could be initialized: {}",
                done.failures.join("; ")
            );
            return Step::Respond(json_reply(
                200,
                error_body_value(id, UPSTREAM_ERROR, &message),
            ));
        }
        let (result, version) = match (self.scope, ok.first()) {
            // An upstream's own endpoint is that upstream: its own answer, its version; its
            // own stream is routed to it. A REST upstream gave no answer: the gateway's own.
            (Scope::Upstream(u), Some((_, _, own)))
                if gw.config.upstreams[u].rest_tools.is_none() =>
            {
                (
                    own.clone(),
                    own["protocolVersion"]
                        .as_str()
                        .unwrap_or(version)
                        .to_string(),
                )
            }
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
        let session = self.session_over(gw, &version, &ok, clock);
        let token = session::seal(&gw.key, &session, &clock.seed);
        let mut reply = json_reply(200, result_body(id.unwrap_or(&Value::Null), result));
        reply.headers.push((SESSION_HEADER.into(), token));
        Step::Respond(reply)
    }
}

/// The answer to a broadcast: `{}` for a request (`logging/setLevel`), 202 for a
/// notification.
pub(super) fn broadcast_reply(id: Option<&Value>, reply_result: bool) -> Reply {
    match (reply_result, id) {
        (true, Some(id)) => json_reply(200, result_body(id, json!({}))),
        _ => Reply {
            status: 202,
            headers: vec![],
            body: vec![],
        },
    }
}

impl Exchange {
    /// The session over the upstreams that answered `initialize` (upstream index, its
    /// answer, its result), each with the version it negotiated (else `version`).
    pub(super) fn session_over(
        &self,
        gw: &Gateway,
        version: &str,
        ok: &[(usize, CalloutAnswer, Value)],
        clock: &Clock,
    ) -> Session {
        let modern = ok
            .iter()
            .any(|(_, _, r)| r["protocolVersion"] == crate::modern::VERSION);
        Session {
            identity: self.identity_key(),
            client: self.client_meta.clone().filter(|_| modern),
            protocol_version: version.to_string(),
            issued_at: clock.now_s,
            upstreams: ok
                .iter()
                .map(|(u, a, r)| UpstreamSession {
                    name: gw.config.upstreams[*u].name.clone(),
                    session_id: a.session_id.clone(),
                    protocol_version: r["protocolVersion"].as_str().unwrap_or(version).to_string(),
                    capabilities: mcp::capability_bits(r),
                })
                .collect(),
        }
    }
}

/// One callout to each upstream of `session` that `keep` chooses, in its own upstream
/// session and version: upstream indexes and callouts, in call order.
pub(super) fn session_callouts(
    gw: &Gateway,
    session: &Session,
    method: &str,
    body: &[u8],
    keep: impl Fn(&UpstreamSession) -> bool,
) -> (Vec<usize>, Vec<Callout>) {
    let mut targets = Vec::new();
    let mut callouts = Vec::new();
    for us in session.upstreams.iter().filter(|us| keep(us)) {
        let Some((index, upstream)) = gw.by_name(&us.name) else {
            continue;
        };
        callouts.push(callout(
            targets.len(),
            upstream,
            method,
            us.session_id.as_deref(),
            Some(&us.protocol_version),
            body,
        ));
        targets.push(index);
    }
    (targets, callouts)
}

/// The `DELETE`s that end `session` at each upstream that gave it a session id.
fn session_closing(gw: &Gateway, session: &Session) -> (Vec<usize>, Vec<Callout>) {
    session_callouts(gw, session, "DELETE", b"", |us| us.session_id.is_some())
}
