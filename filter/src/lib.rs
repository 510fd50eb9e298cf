//! The proxy-wasm adapter. Every decision is made by `switchboard_protocol::exchange`; this
//! crate reads Envoy's buffers, carries the steps out with host calls and handles their
//! errors. Raw host calls are used throughout: the SDK's helpers panic when the host refuses.

use log::{error, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};
use switchboard_protocol::access::{Credentials, IDENTITY_HEADER};
use switchboard_protocol::audit;
use switchboard_protocol::exchange::{
    CalloutAnswer, Clock, Exchange, Gateway, ListCache, Reply, RequestHead, ResponseStep, Route,
    SESSION_HEADER, Step, UNKNOWN_TOOL, VERSION_HEADER, forwarded_request_header,
    stripped_response_headers,
};
use switchboard_protocol::filter_config::{FilterConfig, ROUTE_HEADER};
use switchboard_protocol::jsonrpc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    std::panic::set_hook(Box::new(|info| {
        let _ = hostcalls::log(LogLevel::Critical, &format!("switchboard filter panicked: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { gateway: None, sealed: Rc::new(Cell::new(0)) }) });
}}

struct Root {
    gateway: Option<Rc<Gateway>>,
    /// Tokens sealed by this VM: part of each nonce seed.
    sealed: Rc<Cell<u64>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(b)) => b,
            _ => {
                error!("switchboard: the filter has no configuration");
                return false;
            }
        };
        match FilterConfig::from_json(&bytes) {
            Ok(config) => {
                self.gateway = Some(Rc::new(Gateway::with_cache(config, Box::new(SharedCache))));
                true
            }
            Err(e) => {
                // Returning false makes Envoy reject this configuration and keep the last one.
                error!("switchboard: invalid filter configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let gateway = self.gateway.clone()?;
        Some(Box::new(Request {
            gateway,
            exchange: Exchange::new(),
            context_id,
            sealed: self.sealed.clone(),
            awaiting_body: false,
            calls: HashMap::new(),
            response: ResponseMode::Stream,
            cors: Vec::new(),
            started_ms: 0,
            recorded: Cell::new(false),
            local: Cell::new(false),
            who: String::new(),
            via_bridge: false,
            session: String::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// What the response phase does with the body.
enum ResponseMode {
    Stream,
    /// Edit each chunk as it passes (server requests in an SSE answer get tagged ids).
    Transform,
    /// Buffer the whole body, then let the exchange rewrite it.
    Rewrite {
        content_type: Option<String>,
    },
    /// Drop the upstream's body and send this one.
    Replace(Vec<u8>),
}

struct Request {
    gateway: Rc<Gateway>,
    exchange: Exchange,
    context_id: u32,
    sealed: Rc<Cell<u64>>,
    /// Set when the headers phase decided the body decides; other bodies pass untouched.
    awaiting_body: bool,
    /// Host token of each callout → the exchange's call index.
    calls: HashMap<u32, usize>,
    response: ResponseMode,
    /// CORS headers for this request's answer (an allowed `Origin`).
    cors: Vec<(String, String)>,
    /// When the request arrived, for the latency metric.
    started_ms: u64,
    /// The outcome went to the audit log and the metrics already.
    recorded: Cell<bool>,
    /// The answer is the filter's own (its headers are the gateway's to keep).
    local: Cell<bool>,
    /// The client's identity and the session digest, for the audit log.
    who: String,
    /// The bridge sent this on the client's behalf.
    via_bridge: bool,
    session: String,
}

impl Context for Request {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(call) = self.calls.remove(&token) else {
            return;
        };
        let limit = self.exchange.callout_limit(&self.gateway, call);
        let answer = if num_headers == 0 {
            // Envoy reports a failed callout (no connection, timeout) with no headers.
            Err("no answer: unreachable, TLS handshake failed or timed out (the upstream's cluster stats in Envoy say which)".to_string())
        } else if body_size as u64 > limit {
            // Not copied into the VM, whose memory would keep the size for good.
            Err(switchboard_protocol::exchange::too_big(body_size, limit))
        } else {
            let headers = hostcalls::get_map(MapType::HttpCallResponseHeaders).unwrap_or_default();
            let find = |name: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                .ok()
                .flatten()
                .unwrap_or_default();
            Ok(CalloutAnswer {
                status: find(":status").and_then(|s| s.parse().ok()).unwrap_or(0),
                content_type: find("content-type").unwrap_or_default(),
                session_id: find(SESSION_HEADER),
                body,
            })
        };
        let clock = self.clock();
        let step = self
            .exchange
            .on_callout_response(&self.gateway, call, answer, &clock);
        self.flush_log();
        if let Some(step) = step {
            self.carry_out(step);
        }
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        // One host call for every header: each call costs a crossing into Envoy and back.
        let headers = hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default();
        let request_header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let present = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        // A client must never pick a route by sending the selector itself.
        if present(ROUTE_HEADER) {
            let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, ROUTE_HEADER);
        }
        let config = &self.gateway.config;
        let origin = request_header("origin");
        // A CORS preflight carries no credentials: answered before anything else.
        if let Some(o) = &origin
            && request_header(":method").as_deref() == Some("OPTIONS")
            && present("access-control-request-method")
            && let Some(headers) = config.preflight_headers(o)
        {
            self.send(&Reply {
                status: 204,
                headers,
                body: Vec::new(),
            });
            return Action::Pause;
        }
        self.cors = origin
            .as_deref()
            .map(|o| config.cors_headers(o))
            .unwrap_or_default();
        // DNS rebinding: a page on another origin, or a name that resolves to us, gets 403.
        if let Some(why) =
            config.refuses_origin(origin.as_deref(), request_header(":authority").as_deref())
        {
            let body = jsonrpc::error_body(None, jsonrpc::code::INVALID_REQUEST, &why);
            self.send(&Reply {
                status: 403,
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.into_bytes(),
            });
            return Action::Pause;
        }
        let source = || {
            hostcalls::get_property(vec!["source", "address"])
                .ok()
                .flatten()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|a| source_ip(&a))
        };
        let identity = match &config.access {
            None => None,
            Some(_) => {
                let credentials = Credentials {
                    header: &request_header,
                    source: source(),
                };
                match self.gateway.admit(&credentials, now().as_secs()) {
                    Ok(who) => who,
                    Err(refused) => {
                        let body = jsonrpc::error_body(
                            None,
                            jsonrpc::code::INVALID_REQUEST,
                            &refused.message,
                        );
                        self.send(&Reply {
                            status: 401,
                            headers: vec![
                                ("content-type".into(), "application/json".into()),
                                ("www-authenticate".into(), refused.challenge),
                            ],
                            body: body.into_bytes(),
                        });
                        return Action::Pause;
                    }
                }
            }
        };
        // Pass-through values are read before the client's credentials are removed: nothing
        // of them goes upstream unless an upstream asks for it.
        let mut pass_through: Vec<(String, String)> = Vec::new();
        for p in config.upstreams.iter().flat_map(|u| &u.pass_through) {
            if !pass_through
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(&p.source))
                && let Some(v) = request_header(&p.source)
            {
                pass_through.push((p.source.to_ascii_lowercase(), v));
            }
        }
        for name in config.credential_headers.iter().filter(|n| present(n)) {
            let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
        }
        let path = request_header(":path").unwrap_or_default();
        self.started_ms = now_ms();
        self.who = identity.as_ref().map(|i| i.key()).unwrap_or_default();
        self.via_bridge = identity.as_ref().is_some_and(|i| i.via_bridge);
        if config.audit {
            self.session = request_header(SESSION_HEADER)
                .map(|t| audit::session_digest(&t))
                .unwrap_or_default();
        }
        let head = RequestHead {
            method: request_header(":method").unwrap_or_default(),
            path,
            session_id: request_header(SESSION_HEADER),
            protocol_version: request_header(VERSION_HEADER),
            last_event_id: request_header("last-event-id"),
            identity,
            pass_through,
        };
        let step = self
            .exchange
            .on_request_headers(&self.gateway, &head, now().as_secs());
        // What passes on untouched goes to the bridge (the merged stream, `/sse`), which
        // serves it through the gateway again on the client's behalf: it gets the identity
        // found here, sealed, so only an identity established here ever counts.
        if step == Step::PassThrough
            && let Some(who) = &head.identity
        {
            let relayed = self.gateway.relay(who, &self.clock());
            let _ = hostcalls::set_map_value(
                MapType::HttpRequestHeaders,
                IDENTITY_HEADER,
                Some(&relayed),
            );
        }
        match step {
            Step::AwaitBody if end_of_stream => {
                let clock = self.clock();
                let step = self.exchange.on_request_body(&self.gateway, &[], &clock);
                self.carry_out(step)
            }
            Step::AwaitBody => {
                // Hold the headers so the body can still choose the route.
                self.awaiting_body = true;
                Action::Pause
            }
            step => self.carry_out(step),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.awaiting_body {
            return Action::Continue;
        }
        if let Some(step) = self
            .exchange
            .on_body_progress(&self.gateway, body_size as u64)
        {
            self.awaiting_body = false;
            return self.carry_out(step);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.awaiting_body = false;
        let body = match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size) {
            Ok(body) => body.unwrap_or_default(),
            Err(e) => {
                error!("switchboard: cannot read the request body: {e:?}");
                return self.respond_error(500, "The gateway could not read the request body");
            }
        };
        let clock = self.clock();
        let step = self.exchange.on_request_body(&self.gateway, &body, &clock);
        self.carry_out(step)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let headers = hostcalls::get_map(MapType::HttpResponseHeaders).unwrap_or_default();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        // The upstream's cookies and CORS grants stop here; the gateway's own CORS follows.
        if !self.local.get() {
            for name in stripped_response_headers(headers.iter().map(|(k, _)| k.as_str())) {
                let _ = hostcalls::remove_map_value(MapType::HttpResponseHeaders, name);
            }
        }
        for (k, v) in &self.cors {
            let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, k, Some(v));
        }
        let status = header(":status").and_then(|s| s.parse().ok()).unwrap_or(0);
        let content_type = header("content-type");
        let location = header("location");
        // A 2xx on a routed request can only be the upstream's: the details (a property
        // lookup) matter for everything else.
        let details = if (200..300).contains(&status) {
            None
        } else {
            hostcalls::get_property(vec!["response", "code_details"])
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        };
        let step = self.exchange.on_response_headers(
            status,
            content_type.as_deref(),
            location.as_deref(),
            details.as_deref(),
        );
        self.flush_log();
        if !matches!(step, ResponseStep::Replace(_)) {
            self.record(status, None, details.as_deref());
        }
        match step {
            ResponseStep::Stream { remove } => {
                for h in remove {
                    let _ = hostcalls::remove_map_value(MapType::HttpResponseHeaders, h);
                }
                Action::Continue
            }
            ResponseStep::Transform => {
                let _ = hostcalls::remove_map_value(MapType::HttpResponseHeaders, SESSION_HEADER);
                let _ = hostcalls::remove_map_value(MapType::HttpResponseHeaders, "content-length");
                self.response = ResponseMode::Transform;
                Action::Continue
            }
            ResponseStep::Buffer => {
                let _ = hostcalls::remove_map_value(MapType::HttpResponseHeaders, SESSION_HEADER);
                let _ = hostcalls::remove_map_value(MapType::HttpResponseHeaders, "content-length");
                self.response = ResponseMode::Rewrite { content_type };
                if end_of_stream {
                    Action::Continue
                } else {
                    Action::Pause
                }
            }
            ResponseStep::Replace(reply) => {
                self.record(
                    reply.status,
                    audit::error_code(&reply.body),
                    details.as_deref(),
                );
                if end_of_stream {
                    // No body will come to replace: answer anew instead.
                    self.send(&reply);
                    return Action::Pause;
                }
                let _ = hostcalls::set_map(
                    MapType::HttpResponseHeaders,
                    std::iter::once((":status", reply.status.to_string()))
                        .chain(reply.headers.iter().map(|(k, v)| (k.as_str(), v.clone())))
                        .collect::<Vec<_>>()
                        .iter()
                        .map(|(k, v)| (*k, v.as_str()))
                        .collect(),
                );
                self.response = ResponseMode::Replace(reply.body);
                Action::Pause
            }
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.response {
            ResponseMode::Stream => return Action::Continue,
            ResponseMode::Transform => {
                let chunk = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let out = self
                    .exchange
                    .on_response_chunk(&self.gateway, &chunk, end_of_stream);
                if out != chunk
                    && let Err(e) =
                        hostcalls::set_buffer(BufferType::HttpResponseBody, 0, body_size, &out)
                {
                    error!("switchboard: cannot edit the response stream: {e:?}");
                }
                return Action::Continue;
            }
            _ => {}
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let new_body = match std::mem::replace(&mut self.response, ResponseMode::Stream) {
            ResponseMode::Replace(body) => body,
            ResponseMode::Rewrite { content_type } => {
                let body = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                self.exchange
                    .on_response_body(&body, content_type.as_deref())
            }
            ResponseMode::Stream | ResponseMode::Transform => return Action::Continue,
        };
        if let Err(e) = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, body_size, &new_body)
        {
            error!("switchboard: cannot replace the response body: {e:?}");
        }
        Action::Continue
    }
}

impl Request {
    fn carry_out(&mut self, step: Step) -> Action {
        self.flush_log();
        match step {
            Step::PassThrough | Step::AwaitBody => Action::Continue,
            Step::Respond(reply) => {
                self.send(&reply);
                Action::Pause
            }
            Step::Route(route) => self.route(route),
            Step::AwaitCallouts(callouts) => {
                for c in callouts {
                    let headers: Vec<(&str, &str)> = c
                        .headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let body = (!c.body.is_empty()).then_some(c.body.as_slice());
                    match hostcalls::dispatch_http_call(
                        &c.cluster,
                        headers,
                        body,
                        vec![],
                        Duration::from_millis(c.timeout_ms),
                    ) {
                        Ok(token) => {
                            self.calls.insert(token, c.call);
                        }
                        Err(e) => {
                            let clock = self.clock();
                            let answer = Err(format!("could not be called ({e:?})"));
                            if let Some(step) = self.exchange.on_callout_response(
                                &self.gateway,
                                c.call,
                                answer,
                                &clock,
                            ) {
                                return self.carry_out(step);
                            }
                        }
                    }
                }
                Action::Pause
            }
        }
    }

    /// Sends the request on to the upstream's route, with only the headers that belong there.
    fn route(&mut self, route: Route) -> Action {
        let headers = hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default();
        for (name, _) in &headers {
            if !forwarded_request_header(name) {
                let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
            }
        }
        for (name, value) in &route.headers {
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value.as_deref());
        }
        if let Some(body) = &route.body {
            let _ = hostcalls::set_map_value(
                MapType::HttpRequestHeaders,
                "content-length",
                Some(&body.len().to_string()),
            );
            if let Err(e) = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, usize::MAX, body)
            {
                error!("switchboard: cannot rewrite the request body: {e:?}");
                return self.respond_error(500, "The gateway could not rewrite the request");
            }
        }
        if let Err(e) = hostcalls::set_map_value(
            MapType::HttpRequestHeaders,
            ROUTE_HEADER,
            Some(&route.upstream),
        ) {
            warn!("switchboard: cannot set the route header: {e:?}");
        }
        // Envoy clears the route cache when a wasm filter changes request headers; the
        // explicit call keeps that true on hosts that do not.
        let _ = hostcalls::call_foreign_function("clear_route_cache", None);
        Action::Continue
    }

    fn send(&self, reply: &Reply) {
        self.local.set(true);
        self.record(reply.status, audit::error_code(&reply.body), None);
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .chain(&self.cors)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = (!reply.body.is_empty()).then_some(reply.body.as_slice());
        if let Err(e) = hostcalls::send_http_response(u32::from(reply.status), headers, body) {
            error!("switchboard: cannot send a local response: {e:?}");
        }
    }

    /// The outcome, once: properties for the access log (the audit line) and the metrics.
    fn record(&self, status: u16, rpc_code: Option<i64>, details: Option<&str>) {
        let a = self.exchange.audit();
        if self.recorded.replace(true) {
            return;
        }
        let class = audit::class(status, rpc_code, details);
        // Seven host calls a request: only when an audit log reads them.
        if self.gateway.config.audit {
            let code = rpc_code.map(|c| c.to_string()).unwrap_or_default();
            for (key, value) in [
                ("switchboard_identity", self.who.as_str()),
                ("switchboard_session", self.session.as_str()),
                ("switchboard_method", a.method.as_str()),
                ("switchboard_name", a.name.as_str()),
                ("switchboard_upstream", a.upstream.as_str()),
                ("switchboard_rpc_code", code.as_str()),
                ("switchboard_class", class.unwrap_or("")),
                (
                    "switchboard_via",
                    if self.via_bridge { "bridge" } else { "" },
                ),
            ] {
                if !value.is_empty() {
                    // Envoy keeps it as filter state `wasm.<key>`, which the access log reads.
                    let _ = hostcalls::set_property(vec![key], Some(value.as_bytes()));
                }
            }
        }
        // Metrics count MCP requests; a request refused before its body was read has no
        // method (its line in the audit log has the status and class).
        if a.method.is_empty() {
            return;
        }
        // Fan-outs (initialize, lists) and answers of the gateway's own count apart.
        let upstream = match a.upstream.as_str() {
            "" => "gateway",
            "*" => "fan_out",
            u => u,
        };
        let mut series = vec![format!("switchboard.upstream.{}", stat_name(upstream))];
        if a.method == "tools/call" {
            // Only tools the gateway listed have a series of their own.
            let tool = if a.tool_series.is_empty() {
                UNKNOWN_TOOL
            } else {
                a.tool_series.as_str()
            };
            series.push(format!("switchboard.tool.{}", stat_name(tool)));
        }
        let latency = now_ms().saturating_sub(self.started_ms);
        for base in series {
            metrics::increment(&format!("{base}.calls"));
            if let Some(class) = class {
                metrics::increment(&format!("{base}.errors.{class}"));
            }
            metrics::record(&format!("{base}.latency_ms"), latency);
        }
    }

    fn respond_error(&self, status: u16, message: &str) -> Action {
        let body = jsonrpc::error_body(None, jsonrpc::code::INTERNAL_ERROR, message);
        self.send(&Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into_bytes(),
        });
        Action::Pause
    }

    fn clock(&self) -> Clock {
        let t = now();
        let n = self.sealed.get().wrapping_add(1);
        self.sealed.set(n);
        let mut seed = Vec::with_capacity(28);
        seed.extend_from_slice(&t.as_nanos().to_be_bytes());
        seed.extend_from_slice(&self.context_id.to_be_bytes());
        seed.extend_from_slice(&n.to_be_bytes());
        Clock {
            now_s: t.as_secs(),
            now_ms: u64::try_from(t.as_millis()).unwrap_or(u64::MAX),
            seed,
        }
    }

    fn flush_log(&mut self) {
        for line in self.exchange.take_log() {
            warn!("switchboard: {line}");
        }
    }
}

/// List results in Envoy's shared data, which every worker's VM (of this VM id) sees.
struct SharedCache;

impl SharedCache {
    fn key(key: &str) -> String {
        format!("switchboard/{key}")
    }
}

impl ListCache for SharedCache {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        hostcalls::get_shared_data(&Self::key(key)).ok()?.0
    }

    fn put(&self, key: &str, value: &[u8]) {
        if let Err(e) = hostcalls::set_shared_data(&Self::key(key), Some(value), None) {
            warn!("switchboard: cannot cache a list: {e:?}");
        }
    }

    fn generation(&self, upstream: &str) -> u64 {
        self.get(&format!("gen/{upstream}"))
            .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
            .unwrap_or(0)
    }

    fn bump(&self, upstream: &str) {
        let key = Self::key(&format!("gen/{upstream}"));
        // Workers may bump at once: compare-and-swap, a few tries.
        for _ in 0..8 {
            let (value, cas) = hostcalls::get_shared_data(&key).unwrap_or((None, None));
            let current: u64 = value
                .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
                .unwrap_or(0);
            let next = (current + 1).to_string();
            if hostcalls::set_shared_data(&key, Some(next.as_bytes()), cas).is_ok() {
                return;
            }
        }
        warn!("switchboard: cannot mark the lists of {upstream:?} as changed");
    }
}

fn now() -> Duration {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default()
}

/// The IP of Envoy's `source.address` (`1.2.3.4:5678`, `[::1]:5678`).
fn source_ip(address: &str) -> Option<std::net::IpAddr> {
    address
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .ok()
        .or_else(|| address.parse().ok())
}

fn now_ms() -> u64 {
    u64::try_from(now().as_millis()).unwrap_or(u64::MAX)
}

/// A name as one segment of a stat name: what Envoy's stats would split on becomes `_`.
fn stat_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Envoy stats defined by the filter (Envoy names them `wasmcustom.<name>`), ids kept per
/// VM: defining is a host call.
mod metrics {
    use proxy_wasm::hostcalls;
    use proxy_wasm::types::MetricType;
    use std::cell::RefCell;
    use std::collections::HashMap;

    thread_local! {
        static IDS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
    }

    fn id(kind: MetricType, name: &str) -> Option<u32> {
        IDS.with(|ids| {
            if let Some(id) = ids.borrow().get(name) {
                return Some(*id);
            }
            let id = hostcalls::define_metric(kind, name).ok()?;
            ids.borrow_mut().insert(name.to_string(), id);
            Some(id)
        })
    }

    pub fn increment(name: &str) {
        if let Some(id) = id(MetricType::Counter, name) {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    pub fn record(name: &str, value: u64) {
        if let Some(id) = id(MetricType::Histogram, name) {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}
