//! One HTTP stream: Envoy's callbacks in, host calls out.

use crate::host::{Host, Level};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use switchboard_protocol::audit::{self, Outcome};
use switchboard_protocol::exchange::{
    Callout, CalloutAnswer, Clock, Exchange, Failure, Gateway, Headers, Reply, ResponseStep, Route,
    Step, forwarded_request_header, source_ip, stripped_response_headers,
};
use switchboard_protocol::filter_config::ROUTE_HEADER;
use switchboard_protocol::jsonrpc;
use switchboard_protocol::wire::SESSION_HEADER;

/// Whether Envoy goes on with the stream or waits for the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Pause,
}

/// What the response phase does with the body.
enum ResponseMode {
    Stream,
    /// Edit each chunk as it passes (events get tagged ids, list changes are seen).
    Transform,
    /// Buffer the whole body, then let the exchange rewrite it.
    Rewrite {
        content_type: Option<String>,
    },
    /// Drop the upstream's body and send this one.
    Replace(Vec<u8>),
}

/// A call of the filter's own, waiting for its answer.
struct PendingCall {
    index: usize,
    /// Its span ([`Host::start_span`]) and cluster, when Envoy traces the request.
    span: Option<(u64, String)>,
}

/// One HTTP stream through the gateway.
pub struct Stream<H: Host> {
    host: H,
    gateway: Arc<Gateway>,
    exchange: Exchange,
    /// Part of every nonce seed: the host's stream id and a per-worker counter of seals.
    stream_id: u32,
    seals: Rc<std::cell::Cell<u64>>,
    /// The headers phase decided the body decides; other bodies pass untouched.
    awaiting_body: bool,
    /// Host token of each callout → the exchange's call index, and the call's span.
    calls: HashMap<u32, PendingCall>,
    response: ResponseMode,
    /// The answer is the gateway's own (its headers are the gateway's to keep).
    local: bool,
}

impl<H: Host> Stream<H> {
    /// `seals` is shared by the streams of one worker, so no two seeds repeat.
    pub fn new(
        host: H,
        gateway: Arc<Gateway>,
        stream_id: u32,
        seals: Rc<std::cell::Cell<u64>>,
    ) -> Self {
        Stream {
            host,
            gateway,
            exchange: Exchange::new(),
            stream_id,
            seals,
            awaiting_body: false,
            calls: HashMap::new(),
            response: ResponseMode::Stream,
            local: false,
        }
    }

    pub fn host(&self) -> &H {
        &self.host
    }

    pub fn on_request_headers(&mut self, end_of_stream: bool) -> Flow {
        // One host call for every header: each call costs a crossing into Envoy and back.
        let headers = self.host.request_headers();
        let clock = self.clock();
        let host = &self.host;
        let source = || {
            host.property(&["source", "address"])
                .and_then(|a| source_ip(&a))
        };
        let arrival = self
            .exchange
            .on_arrival(&self.gateway, Headers(&headers), source, &clock);
        for name in &arrival.remove {
            self.host.set_request_header(name, None);
        }
        for (name, value) in &arrival.set {
            self.host.set_request_header(name, Some(value));
        }
        match arrival.step {
            Step::AwaitBody if end_of_stream => {
                let step = self.exchange.on_request_body(&self.gateway, &[], &clock);
                self.carry_out(step)
            }
            Step::AwaitBody => {
                // Hold the headers so the body can still choose the route.
                self.awaiting_body = true;
                Flow::Pause
            }
            step => self.carry_out(step),
        }
    }

    pub fn on_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        if !self.awaiting_body {
            return Flow::Continue;
        }
        if let Some(step) = self
            .exchange
            .on_body_progress(&self.gateway, body_size as u64)
        {
            self.awaiting_body = false;
            return self.carry_out(step);
        }
        if !end_of_stream {
            return Flow::Pause;
        }
        self.awaiting_body = false;
        let body = match self.host.request_body(body_size) {
            Ok(body) => body,
            Err(e) => {
                self.log(Level::Error, &format!("cannot read the request body: {e}"));
                return self.respond_error(500, "The gateway could not read the request body");
            }
        };
        let clock = self.clock();
        let step = self.exchange.on_request_body(&self.gateway, &body, &clock);
        self.carry_out(step)
    }

    /// The answer to the callout with host `token`: `num_headers` 0 is a failed call.
    pub fn on_callout_response(&mut self, token: u32, num_headers: usize, body_size: usize) {
        let Some(PendingCall { index: call, span }) = self.calls.remove(&token) else {
            return;
        };
        let limit = self.exchange.callout_limit(&self.gateway, call);
        let answer = if num_headers == 0 {
            // Envoy reports a failed callout (no connection, timeout) with no headers.
            Err(Failure::Unreachable)
        } else if body_size as u64 > limit {
            // Not copied into the filter, whose memory would keep the size for good.
            Err(Failure::TooBig {
                size: body_size,
                limit,
            })
        } else {
            let headers = self.host.callout_headers();
            let find = |name: &str| Headers(&headers).get(name).map(str::to_string);
            Ok(CalloutAnswer {
                status: find(":status").and_then(|s| s.parse().ok()).unwrap_or(0),
                content_type: find("content-type").unwrap_or_default(),
                session_id: find(SESSION_HEADER),
                body: self.host.callout_body(body_size),
            })
        };
        if let Some((span, cluster)) = span {
            let status = answer.as_ref().ok().map(|a| a.status.to_string());
            let outcome = match &status {
                Some(code) => ("http.status_code", code.as_str()),
                None => ("error", "true"),
            };
            self.host
                .end_span(span, &[("upstream_cluster", cluster.as_str()), outcome]);
        }
        let clock = self.clock();
        let step = self
            .exchange
            .on_callout_response(&self.gateway, call, answer, &clock);
        self.flush_log();
        if let Some(step) = step
            && self.carry_out(step) == Flow::Continue
        {
            // The request was held for the callouts: it goes on now.
            self.host.resume_request();
        }
    }

    pub fn on_response_headers(&mut self, end_of_stream: bool) -> Flow {
        let headers = self.host.response_headers();
        let header = |name: &str| Headers(&headers).get(name).map(str::to_string);
        // The upstream's cookies and CORS grants stop here; the gateway's own CORS follows.
        if !self.local && !self.exchange.host_routed() {
            for name in stripped_response_headers(headers.iter().map(|(k, _)| k.as_str())) {
                self.host.set_response_header(name, None);
            }
        }
        for (k, v) in self.exchange.cors() {
            self.host.set_response_header(k, Some(v));
        }
        let status = header(":status").and_then(|s| s.parse().ok()).unwrap_or(0);
        let content_type = header("content-type");
        // A 2xx on a routed request can only be the upstream's: the details (a property
        // lookup) matter for everything else.
        let details = if (200..300).contains(&status) {
            None
        } else {
            self.host.property(&["response", "code_details"])
        };
        let step = self.exchange.on_response_headers(
            status,
            content_type.as_deref(),
            header("location").as_deref(),
            details.as_deref(),
        );
        self.flush_log();
        if !matches!(step, ResponseStep::Replace(_)) {
            self.record(status, None, details.as_deref());
        }
        match step {
            ResponseStep::Stream { remove } => {
                for h in remove {
                    self.host.set_response_header(h, None);
                }
                Flow::Continue
            }
            ResponseStep::Transform => {
                self.host.set_response_header(SESSION_HEADER, None);
                self.host.set_response_header("content-length", None);
                self.response = ResponseMode::Transform;
                Flow::Continue
            }
            ResponseStep::Buffer => {
                self.host.set_response_header(SESSION_HEADER, None);
                self.host.set_response_header("content-length", None);
                self.response = ResponseMode::Rewrite { content_type };
                if end_of_stream {
                    Flow::Continue
                } else {
                    Flow::Pause
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
                    return Flow::Pause;
                }
                let mut all = vec![(":status".to_string(), reply.status.to_string())];
                all.extend(reply.headers.iter().cloned());
                all.extend(self.exchange.cors().iter().cloned());
                self.host.replace_response_headers(&all);
                self.response = ResponseMode::Replace(reply.body);
                Flow::Pause
            }
        }
    }

    pub fn on_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        match self.response {
            ResponseMode::Stream => return Flow::Continue,
            ResponseMode::Transform => {
                let chunk = self.host.response_body(body_size);
                let out = self
                    .exchange
                    .on_response_chunk(&self.gateway, &chunk, end_of_stream);
                if out != chunk
                    && let Err(e) = self.host.set_response_body(body_size, &out)
                {
                    self.log(
                        Level::Error,
                        &format!("cannot edit the response stream: {e}"),
                    );
                }
                return Flow::Continue;
            }
            _ => {}
        }
        if !end_of_stream {
            return Flow::Pause;
        }
        let new_body = match std::mem::replace(&mut self.response, ResponseMode::Stream) {
            ResponseMode::Replace(body) => body,
            ResponseMode::Rewrite { content_type } => {
                let body = self.host.response_body(body_size);
                self.exchange
                    .on_response_body(&body, content_type.as_deref())
            }
            ResponseMode::Stream | ResponseMode::Transform => return Flow::Continue,
        };
        if let Err(e) = self.host.set_response_body(body_size, &new_body) {
            self.log(
                Level::Error,
                &format!("cannot replace the response body: {e}"),
            );
        }
        Flow::Continue
    }

    fn carry_out(&mut self, step: Step) -> Flow {
        self.flush_log();
        match step {
            Step::PassThrough | Step::AwaitBody => Flow::Continue,
            Step::Respond(reply) => {
                self.send(&reply);
                Flow::Pause
            }
            Step::Route(route) => self.route(route),
            Step::AwaitCallouts(callouts) => {
                // Envoy's sampling decision, read once for the calls' spans.
                let sampled = self.gateway.config.trace_calls.then(|| {
                    let headers = self.host.request_headers();
                    Headers(&headers)
                        .get("x-request-id")
                        .is_some_and(envoy_sampled)
                });
                for mut c in callouts {
                    let span = sampled.and_then(|sampled| self.call_span(&mut c, sampled));
                    match self.host.dispatch(&c) {
                        Ok(token) => {
                            let span = span.map(|s| (s, c.cluster.clone()));
                            self.calls.insert(
                                token,
                                PendingCall {
                                    index: c.call,
                                    span,
                                },
                            );
                        }
                        Err(e) => {
                            if let Some(span) = span {
                                self.host.end_span(span, &[("error", "true")]);
                            }
                            let clock = self.clock();
                            let answer = Err(Failure::NotCalled(e.to_string()));
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
                Flow::Pause
            }
        }
    }

    /// A span for a call of the filter's own (`tools/list upstream-github`), a child of the
    /// request's when Envoy traces it; the call then carries the span's `traceparent`
    /// (`sampled` as Envoy decided), so the upstream's work is its child.
    fn call_span(&self, call: &mut Callout, sampled: bool) -> Option<u64> {
        let method = self.exchange.audit().method.as_str();
        let operation = format!(
            "{} {}",
            if method.is_empty() { "mcp" } else { method },
            call.cluster
        );
        let (span, trace_id, span_id) = self.host.start_span(&operation)?;
        call.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("traceparent"));
        call.headers.push((
            "traceparent".into(),
            format!(
                "00-{trace_id}-{span_id}-{}",
                if sampled { "01" } else { "00" }
            ),
        ));
        Some(span)
    }

    /// Sends the request on to the upstream's route, with only the headers that belong there.
    fn route(&mut self, route: Route) -> Flow {
        for (name, _) in self.host.request_headers() {
            if !forwarded_request_header(&name) {
                self.host.set_request_header(&name, None);
            }
        }
        for (name, value) in &route.headers {
            self.host.set_request_header(name, value.as_deref());
        }
        if let Some(body) = &route.body {
            self.host
                .set_request_header("content-length", Some(&body.len().to_string()));
            if let Err(e) = self.host.set_request_body(body) {
                self.log(
                    Level::Error,
                    &format!("cannot rewrite the request body: {e}"),
                );
                return self.respond_error(500, "The gateway could not rewrite the request");
            }
        }
        self.host
            .set_request_header(ROUTE_HEADER, Some(&route.upstream));
        self.host.clear_route_cache();
        Flow::Continue
    }

    fn send(&mut self, reply: &Reply) {
        self.local = true;
        self.record(reply.status, audit::error_code(&reply.body), None);
        let mut headers = reply.headers.clone();
        headers.extend(self.exchange.cors().iter().cloned());
        if let Err(e) = self.host.send_reply(reply.status, &headers, &reply.body) {
            self.log(Level::Error, &format!("cannot send a local response: {e}"));
        }
    }

    /// The outcome, once: properties for the access log (the audit line) and the metrics.
    fn record(&mut self, status: u16, rpc_code: Option<i64>, details: Option<&str>) {
        let outcome = Outcome {
            status,
            rpc_code,
            details,
        };
        let now_ms = u64::try_from(self.host.now().as_millis()).unwrap_or(u64::MAX);
        let Some(record) = self.exchange.record(&self.gateway, outcome, now_ms) else {
            return;
        };
        for (name, value) in &record.properties {
            self.host.set_property(name, value);
        }
        for counter in &record.counters {
            self.host.increment(counter);
        }
        for (series, value) in &record.histograms {
            self.host.record(series, *value);
        }
    }

    fn respond_error(&mut self, status: u16, message: &str) -> Flow {
        let body = jsonrpc::error_body(None, jsonrpc::code::INTERNAL_ERROR, message);
        self.send(&Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into_bytes(),
        });
        Flow::Pause
    }

    /// The time, and a seed that never repeats: time, stream id and a per-worker counter.
    fn clock(&self) -> Clock {
        let t = self.host.now();
        let n = self.seals.get().wrapping_add(1);
        self.seals.set(n);
        let mut seed = Vec::with_capacity(28);
        seed.extend_from_slice(&t.as_nanos().to_be_bytes());
        seed.extend_from_slice(&self.stream_id.to_be_bytes());
        seed.extend_from_slice(&n.to_be_bytes());
        Clock {
            now_s: t.as_secs(),
            now_ms: u64::try_from(t.as_millis()).unwrap_or(u64::MAX),
            seed,
        }
    }

    fn flush_log(&mut self) {
        for line in self.exchange.take_log() {
            self.host.log(Level::Warn, &format!("switchboard: {line}"));
        }
    }

    fn log(&self, level: Level, message: &str) {
        self.host.log(level, &format!("switchboard: {message}"));
    }
}

/// Whether Envoy samples the request: its `x-request-id` (a UUID) carries the decision in
/// its 15th character (`9` sampled, `a` forced, `b` by the client; `4` not traced).
fn envoy_sampled(request_id: &str) -> bool {
    matches!(request_id.as_bytes().get(14), Some(b'9' | b'a' | b'b'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn envoys_sampling_decision_is_read_from_the_request_id() {
        for (id, sampled) in [
            ("5f2ea5b8-2f7e-9b4c-8f00-1c2d3e4f5a6b", true),
            ("5f2ea5b8-2f7e-ab4c-8f00-1c2d3e4f5a6b", true),
            ("5f2ea5b8-2f7e-bb4c-8f00-1c2d3e4f5a6b", true),
            ("5f2ea5b8-2f7e-4b4c-8f00-1c2d3e4f5a6b", false),
            ("short", false),
        ] {
            assert_eq!(super::envoy_sampled(id), sampled, "{id}");
        }
    }
}
