//! REST upstreams on the data path: opened without a call (no session, tools only), their
//! `tools/list` answered from configuration, a `tools/call` made as the operation's HTTP
//! request through the upstream's cluster and its answer read as a `CallToolResult`
//! ([`crate::rest`] has the pure parts).

use super::*;
use crate::rest::RestTool;

/// The `initialize`-shaped result a REST upstream opens with: the stateless revision's
/// version (so nothing is ever sent to it as to a 2025 session) and tools only.
pub(super) fn opened() -> Value {
    era::known_result(crate::modern::VERSION, caps::TOOLS)
}

/// The answer a REST upstream "gives" to `tools/list` (request id `id`): its tools.
pub(super) fn list_answer(tools: &[RestTool], id: &Value) -> CalloutAnswer {
    let listed: Vec<Value> = tools.iter().map(RestTool::listed).collect();
    CalloutAnswer {
        status: 200,
        content_type: "application/json".into(),
        session_id: None,
        body: json!({"jsonrpc": "2.0", "id": id, "result": {"tools": listed}})
            .to_string()
            .into_bytes(),
    }
}

impl Exchange {
    /// A request routed to REST upstream `index`: a `tools/call` becomes its HTTP request;
    /// anything else has no meaning there.
    pub(super) fn call_rest(
        &mut self,
        gw: &Gateway,
        index: usize,
        id: Option<&RawValue>,
        body: Option<Vec<u8>>,
    ) -> Step {
        let upstream = &gw.config.upstreams[index];
        let tools = upstream.rest_tools.as_deref().unwrap_or_default();
        let body = body.or_else(|| self.stateless.as_ref().map(|s| s.body.clone()));
        if body.is_none() {
            // A GET on its own endpoint: a REST API sends no events.
            self.state = State::Done;
            return not_allowed(
                &format!(
                    "Upstream {:?} is a REST API: it has no event stream",
                    upstream.name
                ),
                "POST, DELETE",
            );
        }
        let request: Value = body
            .as_deref()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let refuse = |ex: &mut Exchange, code: i64, message: String| {
            ex.state = State::Done;
            error_reply(200, id, code, &message)
        };
        if request["method"] != "tools/call" {
            return refuse(
                self,
                code::METHOD_NOT_FOUND,
                format!(
                    "Method not found: upstream {:?} is a REST API, which offers tools only",
                    upstream.name
                ),
            );
        }
        let name = request["params"]["name"].as_str().unwrap_or_default();
        let Some((tool_index, tool)) = tools.iter().enumerate().find(|(_, t)| t.name == name)
        else {
            return refuse(
                self,
                code::INVALID_PARAMS,
                format!("Unknown tool: {name:?} (upstream {:?})", upstream.name),
            );
        };
        let call = match tool.request(&base_path(&upstream.path), &request["params"]["arguments"]) {
            Ok(call) => call,
            Err(e) => {
                return refuse(
                    self,
                    code::INVALID_PARAMS,
                    format!("Invalid params for {name:?}: {e}"),
                );
            }
        };
        let mut headers = vec![
            (":method".to_string(), call.method.clone()),
            (":path".to_string(), call.path.clone()),
            (":authority".to_string(), upstream.authority.clone()),
            (
                "accept".to_string(),
                "application/json, */*;q=0.8".to_string(),
            ),
        ];
        headers.extend(call.headers);
        // Configured headers last: a client's argument never replaces the gateway's token.
        for (k, v) in &upstream.headers {
            headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
            headers.push((k.clone(), v.clone()));
        }
        self.through = Some(Through {
            upstream: upstream.name.clone(),
            uri_prefix: None,
            modern: false,
            asked: self.asked.take().unwrap_or_default(),
            rest: Some(tool_index),
        });
        self.state = State::FanOut(FanOutState {
            targets: vec![index],
            op: Op::CallThrough,
            id: id.and_then(|i| serde_json::from_str::<Value>(i.get()).ok()),
            answers: vec![None],
        });
        Step::AwaitCallouts(vec![Callout {
            call: 0,
            cluster: upstream.cluster.clone(),
            headers,
            body: call.body,
            timeout_ms: upstream.timeout_ms,
        }])
    }

    /// The REST call's answer as the client's `tools/call` result; `None` when the call was
    /// not a REST one.
    pub(super) fn finish_rest(
        &mut self,
        gw: &Gateway,
        target: usize,
        id: &Value,
        answer: &Result<CalloutAnswer, Failure>,
    ) -> Option<Step> {
        let tool_index = self.through.as_mut()?.rest.take()?;
        self.through = None;
        let upstream = &gw.config.upstreams[target];
        let tool = upstream.rest_tools.as_deref()?.get(tool_index)?;
        // Envoy's own answer for the callout (no connection, reset, timeout) is no answer
        // of the API's: the usual error naming the upstream.
        let envoys = answer.as_ref().ok().and_then(envoy_local_reply);
        let answer = match envoys {
            Some(failure) => &Err(failure),
            None => answer,
        };
        Some(match answer {
            Ok(a) => Step::Respond(json_reply(
                200,
                result_body(
                    id,
                    crate::rest::call_result(tool, a.status, &a.content_type, &a.body),
                ),
            )),
            Err(why) => upstream_failed(upstream, id, why),
        })
    }
}

/// The full name of the REST tool a client called by its shortened name (`head~digest`).
pub(super) fn unshorten(
    gw: &Gateway,
    session: &Session,
    shortened: &str,
    prefixed: bool,
) -> Option<String> {
    gw.config
        .upstreams
        .iter()
        .filter(|u| session.upstream(&u.name).is_some())
        .flat_map(|u| {
            u.rest_tools.iter().flatten().map(move |t| {
                if prefixed {
                    naming::prefix_name(&u.prefix, &gw.config.separator, &t.name)
                } else {
                    t.name.clone()
                }
            })
        })
        .find(|full| naming::shorten(full) == shortened)
}

/// A callout answer Envoy made itself (its local replies' fixed texts), as the failure it
/// stands for.
fn envoy_local_reply(a: &CalloutAnswer) -> Option<Failure> {
    if !matches!(a.status, 502..=504) || a.body.len() > 512 {
        return None;
    }
    let body = std::str::from_utf8(&a.body).ok()?;
    if body == "upstream request timeout" {
        return Some(Failure::Http(format!(
            "timed out (HTTP {}: {body})",
            a.status
        )));
    }
    let envoy = body.starts_with("upstream connect error or disconnect/reset before headers")
        || body == "no healthy upstream";
    envoy.then(|| Failure::Http(format!("could not be reached ({body})")))
}

/// The base URL's path (the upstream's `path`, without a query).
fn base_path(path: &str) -> String {
    path.split('?').next().unwrap_or_default().to_string()
}
