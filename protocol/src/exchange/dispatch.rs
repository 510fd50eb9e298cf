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
                self.request(gw, id, &method, params, session_id.as_deref(), clock)
            }
            Message::Notification { method, .. } => {
                self.audit.method = method.to_string();
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
        let params_value: Value = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or(Value::Null);
        if let Some(kind) = ListKind::from_method(method) {
            return self.list(gw, session, id, kind, &params_value, clock);
        }
        match method {
            "tools/call" | "prompts/get" => {
                let what = if method == "tools/call" {
                    "tool"
                } else {
                    "prompt"
                };
                let Some(name) = params_value["name"].as_str() else {
                    self.state = State::Done;
                    return error_reply(
                        200,
                        Some(id),
                        code::INVALID_PARAMS,
                        &format!("Invalid params: {method} needs a \"name\""),
                    );
                };
                self.route_by_name(
                    gw,
                    session,
                    id,
                    method,
                    params_value.clone(),
                    &["name"],
                    name,
                    what,
                )
            }
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                let Some(uri) = params_value["uri"].as_str() else {
                    self.state = State::Done;
                    return error_reply(
                        200,
                        Some(id),
                        code::INVALID_PARAMS,
                        &format!("Invalid params: {method} needs a \"uri\""),
                    );
                };
                let rewrite = method == "resources/read";
                self.route_by_uri(
                    gw,
                    session,
                    id,
                    method,
                    params_value.clone(),
                    &["uri"],
                    uri,
                    rewrite,
                    false,
                )
            }
            "completion/complete" => {
                let r = &params_value["ref"];
                match (r["type"].as_str(), r["name"].as_str(), r["uri"].as_str()) {
                    (Some("ref/prompt"), Some(name), _) => {
                        let name = name.to_string();
                        self.route_by_name(
                            gw,
                            session,
                            id,
                            method,
                            params_value.clone(),
                            &["ref", "name"],
                            &name,
                            "prompt",
                        )
                    }
                    (Some("ref/resource"), _, Some(uri)) => {
                        let uri = uri.to_string();
                        self.route_by_uri(
                            gw,
                            session,
                            id,
                            method,
                            params_value.clone(),
                            &["ref", "uri"],
                            &uri,
                            false,
                            true,
                        )
                    }
                    _ => {
                        self.state = State::Done;
                        error_reply(
                            200,
                            Some(id),
                            code::INVALID_PARAMS,
                            "Invalid params: completion/complete needs a ref/prompt name or a ref/resource uri",
                        )
                    }
                }
            }
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
}
