//! One HTTP exchange on the MCP endpoint, as a state machine without I/O.
//!
//! The wasm adapter feeds it what Envoy delivers (request headers, the body, the answers to
//! its own calls, the response headers and body) and carries out the [`Step`] it returns:
//! answer locally, fan out with `dispatch_http_call`, or route the request to one upstream
//! through Envoy's router. Every MCP decision is here, so it is tested natively.

use crate::access::Kind;
use crate::aggregate::{self, ListKind, Prefixes};
use crate::filter_config::{FanOut, FilterConfig, PrefixMode, Upstream};
use crate::glob;
use crate::jsonrpc::{self, Message, code};
use crate::mcp;
use crate::naming;
use crate::server_message;
use crate::session::{self, Sealed, Session, SessionKey, UpstreamSession, caps};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::wire::{
    ACCESS_DENIED, SESSION_HEADER, SESSION_NOT_FOUND, UPSTREAM_ERROR, UPSTREAM_TIMEOUT,
    VERSION_HEADER,
};

mod admission;
mod bounded_cache;
mod dispatch;
mod era;
mod failure;
mod fan_out;
mod gateway;
mod input_required;
mod interactive;
mod kept;
mod lifecycle;
mod lists;
mod resolve;
mod response;
mod rest_call;
mod route;
mod stateless;
mod steps;
mod stream;
#[cfg(test)]
mod tests;
mod upstream_tokens;

pub use admission::{Arrival, Headers, source_ip};
pub use bounded_cache::BoundedCache;
pub use failure::Failure;
pub use gateway::{Gateway, ListCache, NoCache, UNKNOWN_TOOL};
pub use response::stripped_response_headers;
pub use route::forwarded_request_header;
pub use steps::{Callout, CalloutAnswer, Clock, Reply, RequestHead, ResponseStep, Route, Step};
pub use stream::LIST_CHANGED_MARKER;

use era::{Opening, upstream_callout};
use failure::*;
use fan_out::{Answer, Answered, FanOutState, Op};
use lifecycle::{broadcast_reply, session_callouts};
use lists::*;
use resolve::Resolve;
use response::*;
use route::*;
use route::{Addressed, UriUse};
use stateless::Stateless;
use steps::*;
use stream::*;

/// Where a request came in: the aggregated endpoint, or one upstream's own
/// (`<upstream_path>/<name>/mcp`), which serves that upstream alone, unprefixed, under the
/// same sessions, rules and filters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Scope {
    #[default]
    Aggregated,
    Upstream(usize),
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Start,
    Body {
        session_id: Option<String>,
    },
    FanOut(FanOutState),
    Routed(Routed),
    /// The merged GET stream, watched for the bridge's `list_changed` markers.
    Stream(crate::sse::EventSplitter),
    Done,
}

/// One exchange on the MCP endpoint.
#[derive(Debug, Default)]
pub struct Exchange {
    state: State,
    log: Vec<String>,
    /// Seconds since the epoch when the request arrived, for session expiry.
    now_s: u64,
    /// The client's `MCP-Protocol-Version` header.
    client_version: Option<String>,
    identity: Option<crate::access::Identity>,
    pass_through: Vec<(String, String)>,
    trace_context: Vec<(String, String)>,
    audit: crate::audit::Audit,
    scope: Scope,
    /// Milliseconds since the epoch when the request arrived, for its latency.
    arrived_ms: u64,
    /// CORS headers for the answer ([`Exchange::cors`]).
    cors: Vec<(String, String)>,
    /// The client as the audit log names it.
    client: crate::audit::Client,
    /// The outcome was recorded ([`Exchange::record`]).
    recorded: bool,
    /// `Mcp-Method` and `Mcp-Name`.
    routing: (Option<String>, Option<String>),
    /// A stateless client's request being served.
    stateless: Option<Box<Stateless>>,
    /// What upstreams of the stateless revision are told about the client.
    client_meta: Option<crate::modern::ClientMeta>,
    /// Upstreams being opened (a 2025 client's `initialize`, a stateless request).
    opening: Option<Box<Opening>>,
    /// A call the filter makes itself and answers from ([`Op::CallThrough`]).
    through: Option<Through>,
    /// The method and name or URI of a routed request, as the client wrote them.
    asked: Option<(String, String)>,
    /// The client's `Mcp-Param-*` headers, for a `tools/call` to an upstream of the
    /// stateless revision.
    mcp_params: Vec<(String, String)>,
    /// The body's arrival time and seed, for what is sealed while it is routed.
    arrival: Clock,
    /// A host route's request (the route's key): it and its answer pass untouched.
    host_route: Option<String>,
    /// The path of the MCP endpoint the request came to (its metadata is named in
    /// challenges), when it is one.
    endpoint: Option<String>,
    /// The client's bearer token, when an upstream takes an exchanged one for it.
    subject_token: Option<String>,
    /// Upstream tokens got for this request, by upstream name.
    upstream_tokens: Vec<(String, String)>,
    /// What waits for token exchanges.
    tokens: Option<Box<upstream_tokens::TokenStage>>,
}

/// What a call the filter makes itself needs to make of its answer.
#[derive(Debug)]
struct Through {
    upstream: String,
    /// A `resources/read` answer names the upstream's URIs: prefixed back with this.
    uri_prefix: Option<String>,
    /// The upstream speaks the stateless revision.
    modern: bool,
    /// The method and the name or URI (as the client wrote it) the call is for.
    asked: (String, String),
    /// A REST upstream's tool (its index in the upstream's `rest_tools`): its HTTP answer
    /// becomes the result.
    rest: Option<usize>,
}

impl Exchange {
    pub fn new() -> Self {
        Self::default()
    }

    /// Lines for the operator's log, gathered since the last call.
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    /// A host route's request, whose answer the shell passes on as it comes (no header of
    /// the upstream's is removed).
    pub fn host_routed(&self) -> bool {
        self.host_route.is_some()
    }

    /// What the request was, as far as it is known.
    pub fn audit(&self) -> &crate::audit::Audit {
        &self.audit
    }

    /// The audit fields and metric updates of the request's outcome: once, the first time
    /// it is known (`None` after).
    pub fn record(
        &mut self,
        gw: &Gateway,
        outcome: crate::audit::Outcome<'_>,
        now_ms: u64,
    ) -> Option<crate::audit::Record> {
        if std::mem::replace(&mut self.recorded, true) {
            return None;
        }
        let latency = now_ms.saturating_sub(self.arrived_ms);
        Some(crate::audit::record(
            &self.audit,
            &self.client,
            gw.config.audit,
            outcome,
            latency,
        ))
    }

    /// What the client's sessions and upstream tokens are bound to
    /// ([`crate::access::Identity::binding`]).
    fn identity_key(&self) -> Option<String> {
        self.identity.as_ref().map(crate::access::Identity::binding)
    }

    /// Whether the client sees prefixed names here: on the aggregated endpoint as
    /// configured; an upstream's own endpoint never prefixes.
    fn prefixed(&self, gw: &Gateway) -> bool {
        self.scope == Scope::Aggregated && gw.prefixed()
    }

    /// The name rules know `upstream`'s tool or prompt `name` (its own) by: the aggregated
    /// endpoint's name, on every endpoint.
    fn rule_name(gw: &Gateway, upstream: &Upstream, name: &str) -> String {
        if gw.prefixed() {
            naming::prefix_name(&upstream.prefix, &gw.config.separator, name)
        } else {
            name.to_string()
        }
    }

    /// Whether the client may use `name`: its access rules (everything without rules) and,
    /// for a token, its scopes.
    fn permits(&self, gw: &Gateway, kind: Kind, name: &str) -> bool {
        match (&gw.config.access, &self.identity) {
            (None, _) => true,
            (Some(access), Some(who)) => {
                access.allows(who, kind, name) && access.holds_scopes(who, kind, name)
            }
            (Some(_), None) => false,
        }
    }

    /// Whether the rules alone let the client use upstream `name`: a session includes an
    /// upstream whose scopes the token lacks, so that a client that steps up can use it in
    /// the same session (its lists and calls are still judged by scopes).
    fn permits_by_rules(&self, gw: &Gateway, name: &str) -> bool {
        match (&gw.config.access, &self.identity) {
            (None, _) => true,
            (Some(access), Some(who)) => access.allows(who, Kind::Upstream, name),
            (Some(_), None) => false,
        }
    }

    /// A scope challenge for using `name` (and its upstream, `upstream`), when the rules
    /// allow it and only the token's scopes are lacking: every scope the operation needs.
    fn step_up(
        &self,
        gw: &Gateway,
        upstream: Option<&str>,
        kind: Kind,
        name: &str,
    ) -> Option<String> {
        let access = gw.config.access.as_ref()?;
        let oauth = access.oauth.as_ref()?;
        let who = self.identity.as_ref()?;
        let claims = who.claims.as_ref()?;
        let checks: Vec<(Kind, &str)> = upstream
            .map(|u| (Kind::Upstream, u))
            .into_iter()
            .chain((kind != Kind::Upstream).then_some((kind, name)))
            .collect();
        if !checks.iter().all(|(k, n)| access.allows(who, *k, n)) {
            return None;
        }
        let mut needed: Vec<&str> = Vec::new();
        let mut lacking = false;
        for (k, n) in &checks {
            lacking |= !oauth.missing(claims, *k, n).is_empty();
            for s in oauth.needed(*k, n) {
                if !needed.contains(&s) {
                    needed.push(s);
                }
            }
        }
        lacking.then(|| {
            oauth.challenge(
                self.endpoint.as_deref(),
                crate::oauth::Challenge::InsufficientScope(&needed.join(" ")),
            )
        })
    }

    /// What goes out after the exchange decided a step: a stateless request's end, the
    /// upstreams' headers, their tokens.
    fn outgoing(&mut self, gw: &Gateway, step: Step, clock: &Clock) -> Step {
        let step = self.after_stateless(gw, step, clock);
        let step = self.with_upstream_headers(gw, step);
        self.with_upstream_tokens(gw, step, clock)
    }

    /// Adds what an upstream gets beyond the client's request: its pass-through headers
    /// (taken from the client's) to the calls and the route of `step`, and to the route its
    /// configured headers too, which win (callouts carry those already: `steps::callout`).
    /// Calls also carry the client's trace context (a routed request keeps its own).
    /// The filter adds them rather than Envoy's route, so their values (credentials, often)
    /// are in no route configuration.
    fn with_upstream_headers(&self, gw: &Gateway, step: Step) -> Step {
        match step {
            Step::AwaitCallouts(mut calls)
                if !(self.pass_through.is_empty() && self.trace_context.is_empty()) =>
            {
                for c in &mut calls {
                    if let Some((_, u)) = gw.by_cluster(&c.cluster) {
                        c.headers.extend(u.pass_through_headers(&self.pass_through));
                    }
                    c.headers.extend(self.trace_context.iter().cloned());
                }
                Step::AwaitCallouts(calls)
            }
            Step::Route(mut r) => {
                if let Some((_, u)) = gw.by_name(&r.upstream) {
                    let passed = u.pass_through_headers(&self.pass_through);
                    let configured = u.headers.iter().cloned();
                    r.headers.extend(
                        passed
                            .into_iter()
                            .chain(configured)
                            .map(|(k, v)| (k, Some(v))),
                    );
                }
                Step::Route(r)
            }
            other => other,
        }
    }

    pub fn on_request_headers(&mut self, gw: &Gateway, head: &RequestHead, now_s: u64) -> Step {
        let step = self.request_headers(gw, head, now_s);
        self.with_upstream_headers(gw, step)
    }

    fn request_headers(&mut self, gw: &Gateway, head: &RequestHead, now_s: u64) -> Step {
        self.now_s = now_s;
        self.client_version = head.protocol_version.clone();
        self.identity = head.identity.clone();
        self.pass_through = head.pass_through.clone();
        self.trace_context = head.trace_context.clone();
        self.routing = (head.mcp_method.clone(), head.mcp_name.clone());
        self.mcp_params.clone_from(&head.mcp_params);
        let path = head
            .path
            .split_once('?')
            .map_or(head.path.as_str(), |(p, _)| p);
        self.scope = if path == gw.config.mcp_path {
            Scope::Aggregated
        } else if let Some(index) = gw.own_endpoint(path) {
            Scope::Upstream(index)
        } else {
            self.state = State::Done;
            return Step::PassThrough;
        };
        if let Scope::Upstream(index) = self.scope {
            let name = &gw.config.upstreams[index].name;
            self.audit.upstream = name.clone();
            if !self.permits(gw, Kind::Upstream, name) {
                return self.upstream_denied(gw, name);
            }
        }
        match head.method.as_str() {
            "POST" => {
                self.state = State::Body {
                    session_id: head.session_id.clone(),
                };
                Step::AwaitBody
            }
            "GET" => self.get(gw, head),
            "DELETE" => self.delete(gw, head.session_id.as_deref()),
            _ => {
                self.state = State::Done;
                not_allowed(
                    "Method not allowed on the MCP endpoint",
                    "GET, POST, DELETE",
                )
            }
        }
    }

    /// Called while the body arrives; `Some` when it is already too large.
    pub fn on_body_progress(&mut self, gw: &Gateway, buffered: u64) -> Option<Step> {
        (buffered > gw.config.max_request_bytes).then(|| {
            self.state = State::Done;
            error_reply(
                413,
                None,
                code::INVALID_REQUEST,
                &format!(
                    "Request body exceeds the gateway's limit of {} bytes",
                    gw.config.max_request_bytes
                ),
            )
        })
    }

    pub fn on_request_body(&mut self, gw: &Gateway, body: &[u8], clock: &Clock) -> Step {
        self.arrival = clock.clone();
        let step = self.request_body(gw, body, clock);
        if let Step::AwaitCallouts(calls) = &step
            && self.audit.upstream.is_empty()
        {
            self.audit.upstream = match calls.as_slice() {
                [one] => gw
                    .by_cluster(&one.cluster)
                    .map_or_else(String::new, |(_, u)| u.name.clone()),
                _ => "*".into(),
            };
        }
        self.outgoing(gw, step, clock)
    }
}
