use super::*;

impl Exchange {
    pub(super) fn request_body(&mut self, gw: &Gateway, body: &[u8], clock: &Clock) -> Step {
        let session_id = match std::mem::take(&mut self.state) {
            State::Body { session_id } => session_id,
            _ => None,
        };
        if let Some(step) = self.on_body_progress(gw, body.len() as u64) {
            return step;
        }
        let message = match jsonrpc::parse(body) {
            Ok(m) => m,
            Err(rejection) => {
                self.state = State::Done;
                return Step::Respond(json_reply(400, rejection.to_body()));
            }
        };
        match message {
            Message::Request {
                id,
                ref method,
                params,
            } => {
                let method = method.to_string();
                self.audit.method = method.clone();
                if session_id.is_none()
                    && let Some(step) = self.stateless_request(gw, id, &method, params, body, clock)
                {
                    return step;
                }
                self.request(gw, id, &method, params, session_id.as_deref(), clock)
            }
            Message::Notification { method, .. } => {
                self.audit.method = method.to_string();
                if session_id.is_none() && gw.config.stateless_clients {
                    // A stateless client's notification belongs to no session the gateway
                    // holds (its requests' sessions closed with them): taken, not relayed.
                    self.state = State::Done;
                    return Step::Respond(Reply {
                        status: 202,
                        headers: vec![],
                        body: vec![],
                    });
                }
                match self.open_session(gw, session_id.as_deref(), None) {
                    Ok(session) => self.broadcast(gw, session, None, body, &method, false),
                    Err(step) => step,
                }
            }
            Message::Response { id } => match self.open_session(gw, session_id.as_deref(), None) {
                Ok(session) => match server_message::untag_id(id) {
                    // An answer to a request the gateway tagged: back to the upstream that
                    // asked, with the id it used.
                    Some((upstream, original)) if session.upstream(upstream).is_some() => {
                        let body = replace_id(body, original);
                        let name = upstream.to_string();
                        // An upstream of the stateless revision asks nothing itself: the
                        // question was the bridge's, put for it.
                        if session
                            .upstream(upstream)
                            .is_some_and(|us| us.protocol_version == crate::modern::VERSION)
                        {
                            return self.answer_to_bridge(gw, &name, body, clock);
                        }
                        self.route_body(gw, &session, &name, None, body)
                    }
                    // With one upstream in the session, the answer can only be for it.
                    _ if session.upstreams.len() == 1 => {
                        let name = session.upstreams[0].name.clone();
                        self.route(gw, &session, &name, None, None, None)
                    }
                    _ => {
                        self.state = State::Done;
                        error_reply(
                            400,
                            Some(id),
                            code::INVALID_REQUEST,
                            "This response answers no request the gateway relayed",
                        )
                    }
                },
                Err(step) => step,
            },
        }
    }

    pub(super) fn request(
        &mut self,
        gw: &Gateway,
        id: &RawValue,
        method: &str,
        params: Option<&RawValue>,
        session_id: Option<&str>,
        clock: &Clock,
    ) -> Step {
        match method {
            "initialize" => return self.initialize(gw, id, params, clock),
            "ping" => {
                self.state = State::Done;
                return Step::Respond(json_reply(
                    200,
                    format!(r#"{{"jsonrpc":"2.0","id":{},"result":{{}}}}"#, id.get()),
                ));
            }
            _ => {}
        }
        let session = match self.open_session(gw, session_id, Some(id)) {
            Ok(s) => s,
            Err(step) => return step,
        };
        self.request_in(gw, id, method, params, session, clock)
    }

    /// A request in `session` (a client's, or one opened for a stateless request).
    pub(super) fn request_in(
        &mut self,
        gw: &Gateway,
        id: &RawValue,
        method: &str,
        params: Option<&RawValue>,
        session: Session,
        clock: &Clock,
    ) -> Step {
        let params_value: Value = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or(Value::Null);
        if let Some(kind) = ListKind::from_method(method) {
            return self.list(gw, session, id, kind, &params_value, clock);
        }
        let req = Addressed {
            id,
            method,
            params: params_value,
            field: &[],
            kind: Kind::Tool,
            requested: String::new(),
        };
        match method {
            "tools/call" => self.by_name(gw, session, req, Kind::Tool),
            "prompts/get" => self.by_name(gw, session, req, Kind::Prompt),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                let how = UriUse {
                    rewrite_answer: method == "resources/read",
                    template: false,
                };
                self.by_uri(gw, session, req, how)
            }
            "completion/complete" => self.complete(gw, session, req),
            "logging/setLevel" => {
                let body = format!(
                    r#"{{"jsonrpc":"2.0","id":{},"method":"logging/setLevel","params":{}}}"#,
                    id.get(),
                    params.map_or("{}", RawValue::get)
                );
                let id_value: Value = serde_json::from_str(id.get()).unwrap_or(Value::Null);
                self.broadcast(gw, session, Some(id_value), body.as_bytes(), method, true)
            }
            _ => {
                self.state = State::Done;
                error_reply(
                    200,
                    Some(id),
                    code::METHOD_NOT_FOUND,
                    &format!("Method not found: {method}"),
                )
            }
        }
    }

    /// `tools/call`, `prompts/get`: routed by `params.name`.
    fn by_name(&mut self, gw: &Gateway, session: Session, req: Addressed<'_>, kind: Kind) -> Step {
        let Some(name) = req.params["name"].as_str().map(str::to_string) else {
            return self.missing(req.id, req.method, "name");
        };
        let req = Addressed {
            field: &["name"],
            kind,
            requested: name,
            ..req
        };
        self.route_by_name(gw, session, req)
    }

    /// `resources/read`, `resources/(un)subscribe`: routed by `params.uri`.
    fn by_uri(&mut self, gw: &Gateway, session: Session, req: Addressed<'_>, how: UriUse) -> Step {
        let Some(uri) = req.params["uri"].as_str().map(str::to_string) else {
            return self.missing(req.id, req.method, "uri");
        };
        let req = Addressed {
            field: &["uri"],
            kind: Kind::Resource,
            requested: uri,
            ..req
        };
        self.route_by_uri(gw, session, req, how)
    }

    /// `completion/complete`: routed by the prompt or resource (template) it completes for.
    fn complete(&mut self, gw: &Gateway, session: Session, req: Addressed<'_>) -> Step {
        let r = &req.params["ref"];
        let (kind, field, requested) = match (
            r["type"].as_str(),
            r["name"].as_str(),
            r["uri"].as_str(),
        ) {
            (Some("ref/prompt"), Some(name), _) => (Kind::Prompt, &["ref", "name"], name),
            (Some("ref/resource"), _, Some(uri)) => (Kind::Resource, &["ref", "uri"], uri),
            _ => {
                self.state = State::Done;
                return error_reply(
                    200,
                    Some(req.id),
                    code::INVALID_PARAMS,
                    "Invalid params: completion/complete needs a ref/prompt name or a ref/resource uri",
                );
            }
        };
        let req = Addressed {
            field,
            kind,
            requested: requested.to_string(),
            ..req
        };
        if kind == Kind::Prompt {
            return self.route_by_name(gw, session, req);
        }
        let how = UriUse {
            rewrite_answer: false,
            template: true,
        };
        self.route_by_uri(gw, session, req, how)
    }

    fn missing(&mut self, id: &RawValue, method: &str, field: &str) -> Step {
        self.state = State::Done;
        error_reply(
            200,
            Some(id),
            code::INVALID_PARAMS,
            &format!("Invalid params: {method} needs a \"{field}\""),
        )
    }
}
