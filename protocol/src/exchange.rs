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

pub const SESSION_HEADER: &str = "mcp-session-id";
pub const VERSION_HEADER: &str = "mcp-protocol-version";
/// JSON-RPC code for an unknown or expired session (answered with HTTP 404).
pub const SESSION_NOT_FOUND: i64 = -32001;
/// JSON-RPC code for an upstream that could not be reached or answered badly.
pub const UPSTREAM_ERROR: i64 = -32002;
/// JSON-RPC code for an upstream that did not answer in time.
pub const UPSTREAM_TIMEOUT: i64 = -32003;
/// JSON-RPC code for a call the client's access rules do not allow.
pub const ACCESS_DENIED: i64 = -32004;

/// Where list results are kept between requests, shared by Envoy's workers (the wasm adapter
/// uses Envoy's shared data). A cached list is keyed by its upstream's generation: `bump`,
/// called when the upstream says its list changed, makes every cached list of it stale.
pub trait ListCache {
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    fn put(&self, key: &str, value: &[u8]);
    fn generation(&self, upstream: &str) -> u64;
    fn bump(&self, upstream: &str);
}

/// No cache: every list goes to the upstreams.
pub struct NoCache;

impl ListCache for NoCache {
    fn get(&self, _key: &str) -> Option<Vec<u8>> {
        None
    }
    fn put(&self, _key: &str, _value: &[u8]) {}
    fn generation(&self, _upstream: &str) -> u64 {
        0
    }
    fn bump(&self, _upstream: &str) {}
}

/// Whether names carry their upstream's prefix under this configuration.
fn names_prefixed(config: &FilterConfig) -> bool {
    !(config.prefix_mode == PrefixMode::WhenNeeded && config.upstreams.len() == 1)
}

/// The configuration compiled for the data path: built once per configuration.
pub struct Gateway {
    pub config: FilterConfig,
    key: SessionKey,
    cache: Box<dyn ListCache>,
    /// Per upstream: what its cached pages depend on besides the upstream (prefixes,
    /// separator, tool filters), so a changed configuration never reads an older view; on
    /// the aggregated endpoint and on the upstream's own.
    views: Vec<[String; 2]>,
    /// Full names of the tools this gateway has listed: only these get a metric series of
    /// their own; a name a client makes up counts as [`UNKNOWN_TOOL`]. Kept in the cache's
    /// shared store too, since a list and the calls after it may be served by different
    /// workers; this is the worker's own copy.
    known_tools: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// The metric series of `tools/call`s of tools the gateway never listed.
pub const UNKNOWN_TOOL: &str = "unknown";

/// At most this many tools get a series of their own (an upstream that lists millions of
/// tools must not make millions of stats).
const MAX_KNOWN_TOOLS: usize = 4096;

/// Where a request came in: the aggregated endpoint, or one upstream's own
/// (`<upstream_path>/<name>/mcp`), which serves that upstream alone, unprefixed, under the
/// same sessions, rules and filters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Scope {
    #[default]
    Aggregated,
    Upstream(usize),
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    pub fn new(config: FilterConfig) -> Gateway {
        Self::with_cache(config, Box::new(NoCache))
    }

    pub fn with_cache(config: FilterConfig, cache: Box<dyn ListCache>) -> Gateway {
        let key = config.session_keys();
        let prefixed = names_prefixed(&config);
        let view = |u: &Upstream, prefixed: bool| {
            let view = serde_json::to_string(&(
                prefixed,
                &u.prefix,
                &u.uri_prefix,
                &config.separator,
                &u.tools_include,
                &u.tools_exclude,
            ))
            .unwrap_or_default();
            let digest = Sha256::digest(view.as_bytes());
            digest[..8].iter().map(|b| format!("{b:02x}")).collect()
        };
        let views = config
            .upstreams
            .iter()
            .map(|u| [view(u, prefixed), view(u, false)])
            .collect();
        Gateway {
            config,
            key,
            cache,
            views,
            known_tools: Default::default(),
        }
    }

    /// Who sent a request: `Ok(None)` when the gateway has no clients to tell apart. A
    /// refused request gets 401 with the challenge.
    pub fn admit(
        &self,
        credentials: &crate::access::Credentials<'_>,
        now_s: u64,
    ) -> Result<Option<crate::access::Identity>, crate::access::Refused> {
        let Some(access) = &self.config.access else {
            return Ok(None);
        };
        let relayed = |token: &str| {
            crate::access::open_relayed(&self.key, token, now_s, self.config.session_max_age_s)
        };
        access.authenticate(credentials, &relayed).map(Some)
    }

    /// The sealed form of `who` that requests to the bridge carry ([`crate::access::IDENTITY_HEADER`]).
    pub fn relay(&self, who: &crate::access::Identity, clock: &Clock) -> String {
        crate::access::seal_relayed(&self.key, who, clock.now_s, &clock.seed)
    }

    fn learn_tools<'a>(&self, names: impl Iterator<Item = &'a str>) {
        if let Ok(mut known) = self.known_tools.lock() {
            for n in names {
                if known.len() >= MAX_KNOWN_TOOLS {
                    return;
                }
                if known.insert(n.to_string()) {
                    self.cache.put(&format!("tool/{n}"), b"1");
                }
            }
        }
    }

    /// The metric series of a call of the tool `full`: its own once the gateway listed it.
    fn tool_series(&self, full: &str) -> String {
        let Ok(mut known) = self.known_tools.lock() else {
            return UNKNOWN_TOOL.into();
        };
        if known.contains(full) {
            return full.into();
        }
        // Listed by another worker?
        if known.len() < MAX_KNOWN_TOOLS && self.cache.get(&format!("tool/{full}")).is_some() {
            known.insert(full.to_string());
            return full.into();
        }
        UNKNOWN_TOOL.into()
    }

    /// The upstream whose own endpoint `path` is.
    fn own_endpoint(&self, path: &str) -> Option<usize> {
        let rest = path
            .strip_prefix(self.config.upstream_path.as_str())?
            .strip_prefix('/')?
            .strip_suffix("/mcp")?;
        self.config.upstreams.iter().position(|u| u.name == rest)
    }

    /// Whether names carry their upstream's prefix (`prefix_mode: when_needed` drops it while
    /// there is a single upstream).
    pub fn prefixed(&self) -> bool {
        names_prefixed(&self.config)
    }

    fn by_name(&self, name: &str) -> Option<(usize, &Upstream)> {
        self.config
            .upstreams
            .iter()
            .enumerate()
            .find(|(_, u)| u.name == name)
    }

    fn by_prefix(&self, prefix: &str) -> Option<&Upstream> {
        self.config.upstreams.iter().find(|u| u.prefix == prefix)
    }

    fn by_uri_prefix(&self, prefix: &str) -> Option<&Upstream> {
        self.config
            .upstreams
            .iter()
            .find(|u| u.uri_prefix.eq_ignore_ascii_case(prefix))
    }
}

/// What the request line and headers say.
#[derive(Debug, Clone, Default)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    pub session_id: Option<String>,
    /// The `MCP-Protocol-Version` header.
    pub protocol_version: Option<String>,
    /// The `Last-Event-ID` header: a `GET` that resumes a stream ([`resume_point`]).
    pub last_event_id: Option<String>,
    /// Who sent it, when clients authenticate ([`crate::access`]).
    pub identity: Option<crate::access::Identity>,
    /// The client's headers that upstreams take by pass-through (lower-case names).
    pub pass_through: Vec<(String, String)>,
}

/// Time and a never-repeating seed for sealing tokens, from the host.
#[derive(Debug, Clone)]
pub struct Clock {
    pub now_s: u64,
    /// Milliseconds since the epoch, for cache expiry.
    pub now_ms: u64,
    pub seed: Vec<u8>,
}

/// An HTTP answer made by the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A call the filter makes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callout {
    /// Index to give back to [`Exchange::on_callout_response`].
    pub call: usize,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

/// The request goes on through Envoy's router to one upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Value of the route selector header.
    pub upstream: String,
    /// Replacement body, when the message was rewritten.
    pub body: Option<Vec<u8>>,
    /// Headers to set (replacing the client's); `None` removes.
    pub headers: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Not the MCP endpoint: let Envoy handle it unchanged.
    PassThrough,
    /// Hold the request until the body has arrived.
    AwaitBody,
    /// Hold the request until every callout has answered.
    AwaitCallouts(Vec<Callout>),
    Respond(Reply),
    Route(Route),
}

/// An upstream's answer to a callout, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutAnswer {
    pub status: u16,
    pub content_type: String,
    pub session_id: Option<String>,
    pub body: Vec<u8>,
}

/// What to do with a routed request's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseStep {
    /// Pass every body chunk through [`Exchange::on_response_chunk`] (remove the session
    /// and content-length headers first).
    Transform,
    /// Stream it on; remove these headers first.
    Stream { remove: Vec<&'static str> },
    /// Replace status and body (the body callback gets the whole upstream body first).
    Buffer,
    /// Replace with this answer, dropping the upstream's body.
    Replace(Reply),
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

#[derive(Debug)]
struct FanOutState {
    op: Op,
    id: Option<Value>,
    /// Upstream index per call.
    targets: Vec<usize>,
    answers: Vec<Option<Result<CalloutAnswer, String>>>,
}

#[derive(Debug)]
enum Op {
    Initialize {
        version: &'static str,
    },
    /// `pages` has one entry per upstream of the session; `slots` the session index per call.
    List {
        kind: ListKind,
        pages: Vec<Page>,
        slots: Vec<usize>,
        /// [`Session::digest`]: the cursor is bound to it.
        session: String,
        /// Per call: where to cache its answer and the generation it belongs to (`None`: not
        /// cacheable, or from the cache).
        cache_keys: Vec<Option<(String, u64)>>,
        /// Per call: the page the cache had, which no upstream was asked for.
        hits: Vec<Option<aggregate::Page>>,
    },
    /// Notifications and `logging/setLevel`: answer once every upstream has it.
    Broadcast {
        reply_result: bool,
    },
    Delete,
    /// A shortened name: list the upstream's names (page by page) to find the real one.
    Resolve(Box<Resolve>),
    /// The call with the real name, made by the filter itself; its answer is passed on.
    CallThrough,
}

#[derive(Debug)]
struct Resolve {
    kind: ListKind,
    method: String,
    params: Value,
    field: Vec<String>,
    requested: String,
    upstream: usize,
    session_id: Option<String>,
    version: String,
    pages: usize,
}

/// Where one upstream stands in a paged list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Page {
    Start,
    At(String),
    Done,
}

/// The gateway's pagination cursor: every upstream's position, sealed so a client can neither
/// read nor forge it, bound to the list method and the session.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    k: String,
    /// [`Session::digest`] of the session whose list gave it.
    s: String,
    p: Vec<Page>,
}

#[derive(Debug)]
struct Routed {
    upstream: String,
    id: Option<Box<RawValue>>,
    timeout_ms: u64,
    /// `resources/read` answers name the upstream's URIs: prefix them back.
    uri_prefix: Option<String>,
    buffering: bool,
    /// Several upstreams share the session: requests the upstream sends in its SSE answer get
    /// ids that say whose they are.
    tag_requests: bool,
    /// URIs are prefixed: a `resources/updated` in its SSE answer names the prefixed URI.
    event_uri_prefix: Option<String>,
    /// What the upstream is reached through, for error messages (usually empty).
    via: String,
    splitter: Option<crate::sse::EventSplitter>,
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
    audit: crate::audit::Audit,
    scope: Scope,
}

fn json_reply(status: u16, body: String) -> Reply {
    Reply {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.into_bytes(),
    }
}

fn error_reply(status: u16, id: Option<&RawValue>, code: i64, message: &str) -> Step {
    Step::Respond(json_reply(status, jsonrpc::error_body(id, code, message)))
}

fn result_body(id: &Value, result: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

fn error_body_value(id: Option<&Value>, code: i64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

impl Exchange {
    pub fn new() -> Self {
        Self::default()
    }

    /// Lines for the operator's log, gathered since the last call.
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    /// What the request was, as far as it is known.
    pub fn audit(&self) -> &crate::audit::Audit {
        &self.audit
    }

    fn identity_key(&self) -> Option<String> {
        self.identity.as_ref().map(crate::access::Identity::key)
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

    /// Whether the client's access rules let it use `name` (everything without rules).
    fn permits(&self, gw: &Gateway, kind: Kind, name: &str) -> bool {
        match (&gw.config.access, &self.identity) {
            (None, _) => true,
            (Some(access), Some(who)) => access.allows(who, kind, name),
            (Some(_), None) => false,
        }
    }

    /// The HTTP answer to a request at an upstream the client may not use.
    fn upstream_denied(&mut self, name: &str) -> Step {
        self.state = State::Done;
        let who = self
            .identity
            .as_ref()
            .map_or("this client", |i| i.client.as_str());
        let message = format!("Access denied: {who} may not use upstream {name:?}");
        self.log.push(message.clone());
        error_reply(403, None, ACCESS_DENIED, &message)
    }

    fn denied(&mut self, id: &RawValue, what: &str, name: &str) -> Step {
        self.state = State::Done;
        let who = self
            .identity
            .as_ref()
            .map_or("this client", |i| i.client.as_str());
        self.log
            .push(format!("access denied: {who} may not use {what} {name:?}"));
        error_reply(
            200,
            Some(id),
            ACCESS_DENIED,
            &format!("Access denied: {who} may not use {what} {name:?}"),
        )
    }

    /// Adds each upstream's pass-through headers to the calls and the route of `step`.
    fn with_pass_through(&self, gw: &Gateway, step: Step) -> Step {
        if self.pass_through.is_empty() {
            return step;
        }
        match step {
            Step::AwaitCallouts(mut calls) => {
                for c in &mut calls {
                    if let Some(u) = gw.config.upstreams.iter().find(|u| u.cluster == c.cluster) {
                        c.headers.extend(u.pass_through_headers(&self.pass_through));
                    }
                }
                Step::AwaitCallouts(calls)
            }
            Step::Route(mut r) => {
                if let Some((_, u)) = gw.by_name(&r.upstream) {
                    r.headers.extend(
                        u.pass_through_headers(&self.pass_through)
                            .into_iter()
                            .map(|(k, v)| (k, Some(v))),
                    );
                }
                Step::Route(r)
            }
            other => other,
        }
    }

    pub fn on_request_headers(&mut self, gw: &Gateway, head: &RequestHead, now_s: u64) -> Step {
        self.now_s = now_s;
        self.client_version = head.protocol_version.clone();
        self.identity = head.identity.clone();
        self.pass_through = head.pass_through.clone();
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
                return self.upstream_denied(name);
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
                let mut r = json_reply(
                    405,
                    jsonrpc::error_body(
                        None,
                        code::INVALID_REQUEST,
                        "Method not allowed on the MCP endpoint",
                    ),
                );
                r.headers.push(("allow".into(), "GET, POST, DELETE".into()));
                Step::Respond(r)
            }
        }
    }

    /// The server-to-client stream of a session, opened exactly as a POST opens it: only by
    /// the client that opened the session.
    fn get(&mut self, gw: &Gateway, head: &RequestHead) -> Step {
        let resume = head
            .last_event_id
            .as_deref()
            .and_then(|id| resume_point(gw, id));
        if self.scope == Scope::Aggregated && !gw.config.get_stream && resume.is_none() {
            // The merged stream needs the bridge; the specification allows 405 for a server
            // that offers none.
            self.state = State::Done;
            let mut r = json_reply(
                405,
                jsonrpc::error_body(
                    None,
                    code::INVALID_REQUEST,
                    "This gateway offers no server-to-client event stream; use POST",
                ),
            );
            r.headers.push(("allow".into(), "POST, DELETE".into()));
            return Step::Respond(r);
        }
        let session = match self.open_session(gw, head.session_id.as_deref(), None) {
            Ok(s) => s,
            Err(step) => return step,
        };
        if let Some((index, upstream_id)) = resume {
            return self.resume(gw, &session, index, upstream_id);
        }
        match self.scope {
            // The bridge merges the upstreams' streams; Envoy routes the GET to it.
            Scope::Aggregated => {
                self.state = State::Stream(crate::sse::EventSplitter::new());
                Step::PassThrough
            }
            Scope::Upstream(index) => {
                let name = gw.config.upstreams[index].name.clone();
                self.route_with(gw, &session, &name, None, None, None)
            }
        }
    }

    /// A `GET` with the `Last-Event-ID` of a routed stream: the stream goes on at the upstream
    /// that sent the event (with its own id), whichever endpoint the client asks, so an answer
    /// the upstream sends after cutting a stream still reaches the client.
    fn resume(&mut self, gw: &Gateway, session: &Session, index: usize, upstream_id: &str) -> Step {
        let name = gw.config.upstreams[index].name.clone();
        if matches!(self.scope, Scope::Upstream(own) if own != index) {
            self.state = State::Done;
            return error_reply(
                400,
                None,
                code::INVALID_REQUEST,
                "Last-Event-ID names a stream of another upstream",
            );
        }
        self.audit.upstream = name.clone();
        if !self.permits(gw, Kind::Upstream, &name) {
            return self.upstream_denied(&name);
        }
        let mut step = self.route_with(gw, session, &name, None, None, None);
        if let Step::Route(route) = &mut step {
            route
                .headers
                .push(("last-event-id".into(), Some(upstream_id.to_string())));
        }
        step
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
        let step = self.request_body(gw, body, clock);
        if let Step::AwaitCallouts(calls) = &step
            && self.audit.upstream.is_empty()
        {
            self.audit.upstream = match calls.as_slice() {
                [one] => gw
                    .config
                    .upstreams
                    .iter()
                    .find(|u| u.cluster == one.cluster)
                    .map_or_else(String::new, |u| u.name.clone()),
                _ => "*".into(),
            };
        }
        self.with_pass_through(gw, step)
    }

    fn request_body(&mut self, gw: &Gateway, body: &[u8], clock: &Clock) -> Step {
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

    fn request(
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

    /// Opens the client's session token. `Err` carries the answer for the client: 400 when
    /// it sent none, 404 when it is unknown, tampered with or expired (the client then
    /// initializes again, as the specification says).
    fn open_session(
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
                _ => self.in_scope(gw, s, id),
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
    fn in_scope(
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

    fn initialize(
        &mut self,
        gw: &Gateway,
        id: &RawValue,
        params: Option<&RawValue>,
        _clock: &Clock,
    ) -> Step {
        let mut params: Value = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_else(|| json!({}));
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
                .filter(|&u| self.permits(gw, Kind::Upstream, &gw.config.upstreams[u].name))
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
        let callouts = targets
            .iter()
            .enumerate()
            .map(|(call, &u)| {
                callout(
                    call,
                    &gw.config.upstreams[u],
                    "POST",
                    None,
                    // The version is in the body; the header is for the requests after it.
                    None,
                    body.as_bytes(),
                )
            })
            .collect();
        self.state = State::FanOut(FanOutState {
            op: Op::Initialize { version },
            id: Some(id_value),
            answers: vec![None; targets.len()],
            targets,
        });
        Step::AwaitCallouts(callouts)
    }

    fn list(
        &mut self,
        gw: &Gateway,
        session: Session,
        id: &RawValue,
        kind: ListKind,
        params: &Value,
        clock: &Clock,
    ) -> Step {
        let id_value: Value = serde_json::from_str(id.get()).unwrap_or(Value::Null);
        let n = session.upstreams.len();
        let pages = match params.get("cursor").and_then(Value::as_str) {
            None => vec![Page::Start; n],
            Some(token) => match session::open_value::<Cursor>(&gw.key, Sealed::Cursor, token) {
                Ok(c) if c.k == kind.method() && c.s == session.digest() && c.p.len() == n => c.p,
                _ => {
                    self.state = State::Done;
                    return error_reply(
                        200,
                        Some(id),
                        code::INVALID_PARAMS,
                        "Invalid params: the cursor is not one this session's list gave",
                    );
                }
            },
        };
        let mut base = params.clone();
        if let Some(obj) = base.as_object_mut() {
            obj.remove("cursor");
        }
        let mut targets = Vec::new();
        let mut slots = Vec::new();
        let mut callouts = Vec::new();
        let mut answers = Vec::new();
        let mut cache_keys = Vec::new();
        let mut hits = Vec::new();
        // Only plain lists are cached: anything besides the cursor may change the answer.
        let plain = base
            .as_object()
            .is_none_or(|o| o.keys().all(|k| k == "_meta"));
        for (slot, us) in session.upstreams.iter().enumerate() {
            if us.capabilities & kind.capability() == 0 || pages[slot] == Page::Done {
                continue;
            }
            let Some((index, upstream)) = gw.by_name(&us.name) else {
                continue;
            };
            // Each upstream is asked for its own next page.
            let mut params = base.clone();
            if let Page::At(c) = &pages[slot] {
                if !params.is_object() {
                    params = json!({});
                }
                params["cursor"] = Value::String(c.clone());
            }
            let key = (upstream.cache_ms > 0 && plain).then(|| {
                let page = match &pages[slot] {
                    Page::At(c) => c.as_str(),
                    _ => "",
                };
                // One key per upstream, view, method and page (Envoy's shared data cannot
                // delete): the generation lives in the entry.
                let view = usize::from(self.scope != Scope::Aggregated);
                format!(
                    "list/{}/{}/{}/{page}",
                    upstream.name,
                    gw.views[index][view],
                    kind.method()
                )
            });
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
                hits.push(Some(page));
                cache_keys.push(None);
            } else {
                let mut msg = json!({"jsonrpc": "2.0", "id": id_value, "method": kind.method()});
                if !params.is_null() {
                    msg["params"] = params;
                }
                callouts.push(callout(
                    targets.len(),
                    upstream,
                    "POST",
                    us.session_id.as_deref(),
                    Some(&us.protocol_version),
                    msg.to_string().as_bytes(),
                ));
                answers.push(None);
                hits.push(None);
                cache_keys.push(key.map(|k| (k, generation)));
            }
            targets.push(index);
            slots.push(slot);
        }
        if targets.is_empty() {
            self.state = State::Done;
            return Step::Respond(json_reply(
                200,
                result_body(&id_value, json!({ kind.key(): [] })),
            ));
        }
        let state = FanOutState {
            op: Op::List {
                kind,
                pages,
                slots,
                session: session.digest(),
                cache_keys,
                hits,
            },
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

    fn broadcast(
        &mut self,
        gw: &Gateway,
        session: Session,
        id: Option<Value>,
        body: &[u8],
        method: &str,
        reply_result: bool,
    ) -> Step {
        let mut targets = Vec::new();
        let mut callouts = Vec::new();
        for us in &session.upstreams {
            if method == "logging/setLevel" && us.capabilities & caps::LOGGING == 0 {
                continue;
            }
            let Some((index, upstream)) = gw.by_name(&us.name) else {
                continue;
            };
            callouts.push(callout(
                targets.len(),
                upstream,
                "POST",
                us.session_id.as_deref(),
                Some(&us.protocol_version),
                body,
            ));
            targets.push(index);
        }
        if targets.is_empty() {
            self.state = State::Done;
            return Step::Respond(self.broadcast_reply(id.as_ref(), reply_result));
        }
        self.state = State::FanOut(FanOutState {
            op: Op::Broadcast { reply_result },
            id,
            answers: vec![None; targets.len()],
            targets,
        });
        Step::AwaitCallouts(callouts)
    }

    fn broadcast_reply(&self, id: Option<&Value>, reply_result: bool) -> Reply {
        match (reply_result, id) {
            (true, Some(id)) => json_reply(200, result_body(id, json!({}))),
            _ => Reply {
                status: 202,
                headers: vec![],
                body: vec![],
            },
        }
    }

    fn delete(&mut self, gw: &Gateway, session_id: Option<&str>) -> Step {
        let session = match self.open_session(gw, session_id, None) {
            Ok(s) => s,
            Err(step) => return step,
        };
        let mut targets = Vec::new();
        let mut callouts = Vec::new();
        for us in &session.upstreams {
            let (Some(sid), Some((index, upstream))) =
                (us.session_id.as_deref(), gw.by_name(&us.name))
            else {
                continue;
            };
            callouts.push(callout(
                targets.len(),
                upstream,
                "DELETE",
                Some(sid),
                Some(&us.protocol_version),
                b"",
            ));
            targets.push(index);
        }
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

    #[allow(clippy::too_many_arguments)]
    fn route_by_name(
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
    fn route_by_uri(
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
    fn route_found(
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

    /// Starts resolving a shortened name: the first page of its upstream's names. `None` when
    /// no upstream of the session can have given it.
    #[allow(clippy::too_many_arguments)]
    fn resolve(
        &mut self,
        gw: &Gateway,
        session: &Session,
        id: &RawValue,
        method: &str,
        params: &Value,
        field: &[&str],
        requested: &str,
        what: &str,
    ) -> Option<Step> {
        let (index, upstream) = match self.scope {
            Scope::Upstream(index) => (index, &gw.config.upstreams[index]),
            // The shortened name's head may end inside a long prefix, before any separator:
            // the upstream is the session's one whose prefix and separator fit that head.
            Scope::Aggregated if gw.prefixed() => {
                let head = requested.rsplit_once('~').map_or(requested, |(h, _)| h);
                gw.config
                    .upstreams
                    .iter()
                    .enumerate()
                    .filter(|(_, u)| session.upstream(&u.name).is_some())
                    .find(|(_, u)| {
                        let start = naming::prefix_name(&u.prefix, &gw.config.separator, "");
                        head.starts_with(&start) || start.starts_with(head)
                    })?
            }
            Scope::Aggregated => (0, gw.config.upstreams.first()?),
        };
        let us = session.upstream(&upstream.name)?;
        let kind = if what == "tool" {
            ListKind::Tools
        } else {
            ListKind::Prompts
        };
        let resolve = Resolve {
            kind,
            method: method.to_string(),
            params: params.clone(),
            field: field.iter().map(|f| f.to_string()).collect(),
            requested: requested.to_string(),
            upstream: index,
            session_id: us.session_id.clone(),
            version: us.protocol_version.clone(),
            pages: 0,
        };
        let id_value: Value = serde_json::from_str(id.get()).unwrap_or(Value::Null);
        Some(self.resolve_page(gw, id_value, Box::new(resolve), None))
    }

    fn resolve_page(
        &mut self,
        gw: &Gateway,
        id: Value,
        mut r: Box<Resolve>,
        cursor: Option<String>,
    ) -> Step {
        r.pages += 1;
        let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": r.kind.method()});
        if let Some(c) = cursor {
            msg["params"] = json!({"cursor": c});
        }
        let upstream = &gw.config.upstreams[r.upstream];
        let call = callout(
            0,
            upstream,
            "POST",
            r.session_id.as_deref(),
            Some(&r.version),
            msg.to_string().as_bytes(),
        );
        self.state = State::FanOut(FanOutState {
            targets: vec![r.upstream],
            op: Op::Resolve(r),
            id: Some(id),
            answers: vec![None],
        });
        Step::AwaitCallouts(vec![call])
    }

    /// Sends the request on to `upstream` with its own session and version, and with
    /// `params` in place of the client's when given.
    fn route(
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
    fn route_body(
        &mut self,
        gw: &Gateway,
        session: &Session,
        upstream: &str,
        id: Option<&RawValue>,
        body: Vec<u8>,
    ) -> Step {
        self.route_with(gw, session, upstream, id, Some(body), None)
    }

    fn route_with(
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

    /// The largest body the answer to callout `call` may have: a list page beyond its
    /// upstream's `max_list_bytes` is a failure, which the shell reports without copying it.
    pub fn callout_limit(&self, gw: &Gateway, call: usize) -> u64 {
        match &self.state {
            State::FanOut(f) if matches!(f.op, Op::List { .. } | Op::Resolve(_)) => f
                .targets
                .get(call)
                .and_then(|&u| gw.config.upstreams.get(u))
                .map_or(u64::MAX, |u| u.max_list_bytes),
            _ => u64::MAX,
        }
    }

    /// The answer to callout `call`, or why there is none. Returns the final step once every
    /// callout has answered.
    pub fn on_callout_response(
        &mut self,
        gw: &Gateway,
        call: usize,
        answer: Result<CalloutAnswer, String>,
        clock: &Clock,
    ) -> Option<Step> {
        let step = self.callout_response(gw, call, answer, clock)?;
        Some(self.with_pass_through(gw, step))
    }

    fn callout_response(
        &mut self,
        gw: &Gateway,
        call: usize,
        answer: Result<CalloutAnswer, String>,
        clock: &Clock,
    ) -> Option<Step> {
        let State::FanOut(state) = &mut self.state else {
            return None;
        };
        let slot = state.answers.get_mut(call)?;
        *slot = Some(answer);
        if state.answers.iter().any(Option::is_none) {
            return None;
        }
        let State::FanOut(state) = std::mem::replace(&mut self.state, State::Done) else {
            return None;
        };
        Some(self.finish_fan_out(gw, state, clock))
    }

    fn finish_fan_out(&mut self, gw: &Gateway, state: FanOutState, clock: &Clock) -> Step {
        let FanOutState {
            mut op,
            id,
            targets,
            answers,
        } = state;
        if let Op::Resolve(r) = op {
            let answer = answers.into_iter().next().flatten();
            return self.finish_resolve(gw, *r, id.unwrap_or(Value::Null), answer);
        }
        if let Op::CallThrough = op {
            // The upstream's own answer, error or not, as a single JSON response.
            let want = id.clone().unwrap_or(Value::Null);
            let upstream = &gw.config.upstreams[targets[0]];
            let answer = answers
                .into_iter()
                .next()
                .flatten()
                .unwrap_or_else(|| Err("no answer".into()));
            return match answer.and_then(|a| {
                if (200..300).contains(&a.status) {
                    mcp::find_response(&a.content_type, &a.body, &want)
                } else {
                    Err(http_failure(a.status, &a.body, upstream.timeout_ms))
                }
            }) {
                Ok(response) => Step::Respond(json_reply(200, response.to_string())),
                Err(why) => Step::Respond(json_reply(
                    200,
                    error_body_value(
                        Some(&want),
                        UPSTREAM_ERROR,
                        &format!(
                            "Upstream {:?} {why}{}",
                            upstream.name,
                            via_note(&upstream.via)
                        ),
                    ),
                )),
            };
        }
        let id_ref = id.as_ref();
        let mut ok: Vec<(usize, CalloutAnswer, Value)> = Vec::new();
        // List results stay text: only names are read and rewritten.
        let mut lists: Vec<(usize, aggregate::Page)> = Vec::new();
        let prefixed = self.prefixed(gw);
        let ruled = gw.prefixed();
        let mut failures: Vec<String> = Vec::new();
        for (call, answer) in answers.into_iter().enumerate() {
            let upstream = &gw.config.upstreams[targets[call]];
            let timeout = upstream.timeout_ms;
            let outcome = answer
                .unwrap_or_else(|| Err("no answer".into()))
                .and_then(|a| {
                    let expect_response = !matches!(op, Op::Delete)
                        && !(matches!(
                            op,
                            Op::Broadcast {
                                reply_result: false
                            }
                        ));
                    if !(200..300).contains(&a.status) {
                        return Err(http_failure(a.status, &a.body, timeout));
                    }
                    if !expect_response {
                        return Ok((a, Value::Null, None));
                    }
                    let want = id.clone().unwrap_or(Value::Null);
                    if let Op::List { kind, hits, .. } = &mut op {
                        if let Some(page) = hits[call].take() {
                            return Ok((a, Value::Null, Some(page)));
                        }
                        if a.body.len() as u64 > upstream.max_list_bytes {
                            return Err(too_big(a.body.len(), upstream.max_list_bytes));
                        }
                        return match mcp::find_result_raw(&a.content_type, &a.body, &want)? {
                            Ok(result) => {
                                let prefixes = Prefixes {
                                    name: &upstream.prefix,
                                    uri: &upstream.uri_prefix,
                                };
                                let keep = |name: &str| {
                                    *kind != ListKind::Tools
                                        || glob::allowed(
                                            &upstream.tools_include,
                                            &upstream.tools_exclude,
                                            name,
                                        )
                                };
                                let page = aggregate::prefixed_page(
                                    *kind,
                                    &result,
                                    prefixed.then_some(prefixes),
                                    ruled.then_some(prefixes),
                                    &gw.config.separator,
                                    keep,
                                )?;
                                if page.items.len() as u64 > upstream.max_list_items {
                                    return Err(format!(
                                        "answered a page of {} items, more than its max_list_items of {}",
                                        page.items.len(),
                                        upstream.max_list_items
                                    ));
                                }
                                Ok((a, Value::Null, Some(page)))
                            }
                            Err(err) => Err(format!(
                                "answered with error {}: {}",
                                err["code"],
                                err["message"].as_str().unwrap_or_default()
                            )),
                        };
                    }
                    let response = mcp::find_response(&a.content_type, &a.body, &want)?;
                    if let Some(err) = response.get("error") {
                        return Err(format!(
                            "answered with error {}: {}",
                            err["code"],
                            err["message"].as_str().unwrap_or_default()
                        ));
                    }
                    let result = response["result"].clone();
                    if matches!(op, Op::Initialize { .. }) {
                        let v = result["protocolVersion"].as_str().unwrap_or_default();
                        if !mcp::SUPPORTED_VERSIONS.contains(&v) {
                            return Err(format!("negotiated protocol version {v:?}, which the gateway does not support"));
                        }
                    }
                    Ok((a, result, None))
                });
            if let (Op::List { cache_keys, .. }, Ok((_, _, Some(list)))) = (&op, &outcome)
                && let Some((key, generation)) = &cache_keys[call]
            {
                let expires = clock.now_ms.saturating_add(upstream.cache_ms);
                let entry = cache_entry(*generation, expires, list);
                gw.cache.put(key, entry.as_bytes());
            }
            if let Op::List { pages, slots, .. } = &mut op {
                // A failed upstream is left out of the following pages too.
                pages[slots[call]] = match &outcome {
                    Ok((_, _, list)) => list
                        .as_ref()
                        .and_then(|l| l.next_cursor.clone())
                        .map_or(Page::Done, Page::At),
                    Err(_) => Page::Done,
                };
            }
            match outcome {
                Ok((a, result, list)) => {
                    if let Some(list) = list {
                        lists.push((targets[call], list));
                    }
                    ok.push((targets[call], a, result));
                }
                Err(why) => {
                    let line = format!(
                        "upstream {:?} failed during {}: {why}{}",
                        upstream.name,
                        op.name(),
                        via_note(&upstream.via)
                    );
                    self.log.push(line.clone());
                    failures.push(line);
                }
            }
        }
        if gw.config.fan_out == FanOut::FailClosed
            && !failures.is_empty()
            && !matches!(op, Op::Delete)
        {
            return Step::Respond(json_reply(
                200,
                error_body_value(id_ref, UPSTREAM_ERROR, &capitalize(&failures.join("; "))),
            ));
        }
        match op {
            Op::Initialize { version } => {
                if ok.is_empty() {
                    return Step::Respond(json_reply(
                        200,
                        error_body_value(
                            id_ref,
                            UPSTREAM_ERROR,
                            &format!("No upstream could be initialized: {}", failures.join("; ")),
                        ),
                    ));
                }
                let (result, version) = match (self.scope, ok.first()) {
                    // An upstream's own endpoint is that upstream: its own answer, its
                    // version; its own stream is routed to it.
                    (Scope::Upstream(_), Some((_, _, own))) => (
                        own.clone(),
                        own["protocolVersion"]
                            .as_str()
                            .unwrap_or(version)
                            .to_string(),
                    ),
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
                let session = Session {
                    identity: self.identity_key(),
                    protocol_version: version.clone(),
                    issued_at: clock.now_s,
                    upstreams: ok
                        .iter()
                        .map(|(u, a, r)| UpstreamSession {
                            name: gw.config.upstreams[*u].name.clone(),
                            session_id: a.session_id.clone(),
                            protocol_version: r["protocolVersion"]
                                .as_str()
                                .unwrap_or(&version)
                                .to_string(),
                            capabilities: mcp::capability_bits(r),
                        })
                        .collect(),
                };
                let token = session::seal(&gw.key, &session, &clock.seed);
                let mut reply =
                    json_reply(200, result_body(id_ref.unwrap_or(&Value::Null), result));
                reply.headers.push((SESSION_HEADER.into(), token));
                Step::Respond(reply)
            }
            Op::List {
                kind,
                pages,
                session,
                ..
            } => {
                // A client never sees what it may not use.
                let what = match kind {
                    ListKind::Tools => Kind::Tool,
                    ListKind::Prompts => Kind::Prompt,
                    ListKind::Resources | ListKind::ResourceTemplates => Kind::Resource,
                };
                let permit =
                    |name: &str| gw.config.access.is_none() || self.permits(gw, what, name);
                if kind == ListKind::Tools {
                    // Every tool the gateway offers, whoever may call it.
                    gw.learn_tools(
                        lists
                            .iter()
                            .flat_map(|(_, page)| &page.items)
                            .map(aggregate::Item::rule_name),
                    );
                }
                let items = lists
                    .iter()
                    .filter(|(u, _)| {
                        self.permits(gw, Kind::Upstream, &gw.config.upstreams[*u].name)
                    })
                    .flat_map(|(_, page)| &page.items)
                    .filter(|i| permit(i.rule_name()))
                    .map(|i| i.text.as_str());
                let cursor = pages.iter().any(|p| matches!(p, Page::At(_))).then(|| {
                    let cursor = Cursor {
                        k: kind.method().to_string(),
                        s: session,
                        p: pages,
                    };
                    session::seal_value(&gw.key, Sealed::Cursor, &cursor, &clock.seed)
                });
                let result = aggregate::list_result(kind, items, cursor.as_deref());
                Step::Respond(json_reply(
                    200,
                    format!(
                        r#"{{"jsonrpc":"2.0","id":{},"result":{result}}}"#,
                        id_ref.unwrap_or(&Value::Null)
                    ),
                ))
            }
            Op::Broadcast { reply_result } => {
                Step::Respond(self.broadcast_reply(id_ref, reply_result))
            }
            // Handled before the loop above.
            Op::Resolve(_) | Op::CallThrough => Step::Respond(json_reply(
                500,
                jsonrpc::error_body(None, code::INTERNAL_ERROR, "internal error"),
            )),
            Op::Delete => Step::Respond(Reply {
                status: 200,
                headers: vec![],
                body: vec![],
            }),
        }
    }

    fn finish_resolve(
        &mut self,
        gw: &Gateway,
        r: Resolve,
        id: Value,
        answer: Option<Result<CalloutAnswer, String>>,
    ) -> Step {
        let upstream = &gw.config.upstreams[r.upstream];
        let listed = answer
            .unwrap_or_else(|| Err("no answer".into()))
            .and_then(|a| {
                if a.body.len() as u64 > upstream.max_list_bytes {
                    return Err(too_big(a.body.len(), upstream.max_list_bytes));
                }
                mcp::find_response(&a.content_type, &a.body, &id)
            })
            .map(|v| v["result"].clone());
        let result = match listed {
            Ok(result) => result,
            Err(why) => {
                return Step::Respond(json_reply(
                    200,
                    error_body_value(
                        Some(&id),
                        UPSTREAM_ERROR,
                        &format!(
                            "Upstream {:?} could not list its names: {why}",
                            upstream.name
                        ),
                    ),
                ));
            }
        };
        let prefix = self.prefixed(gw).then_some(upstream.prefix.as_str());
        let found = result[r.kind.key()]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["name"].as_str())
            .find(|name| {
                let full = match prefix {
                    Some(p) => naming::prefix_name(p, &gw.config.separator, name),
                    None => name.to_string(),
                };
                naming::shorten(&full) == r.requested
            });
        let what = if r.kind == ListKind::Tools {
            "tool"
        } else {
            "prompt"
        };
        if let Some(name) = found {
            // Rules know it by its full name on the aggregated endpoint.
            let full = if gw.prefixed() {
                naming::prefix_name(&upstream.prefix, &gw.config.separator, name)
            } else {
                name.to_string()
            };
            if r.method == "tools/call" {
                self.audit.tool_series = gw.tool_series(&full);
            }
            let kind = if r.kind == ListKind::Tools {
                Kind::Tool
            } else {
                Kind::Prompt
            };
            if !self.permits(gw, kind, &full) {
                self.state = State::Done;
                return Step::Respond(json_reply(
                    200,
                    error_body_value(
                        Some(&id),
                        ACCESS_DENIED,
                        &format!("Access denied: this client may not use {what} {full:?}"),
                    ),
                ));
            }
            if r.kind == ListKind::Tools
                && !glob::allowed(&upstream.tools_include, &upstream.tools_exclude, name)
            {
                return Step::Respond(json_reply(
                    200,
                    error_body_value(
                        Some(&id),
                        code::INVALID_PARAMS,
                        &format!("Unknown tool: {:?}", r.requested),
                    ),
                ));
            }
            let mut params = r.params;
            let field: Vec<&str> = r.field.iter().map(String::as_str).collect();
            set_path(&mut params, &field, Value::String(name.to_string()));
            let body = json!({"jsonrpc": "2.0", "id": id, "method": r.method, "params": params})
                .to_string();
            let call = callout(
                0,
                upstream,
                "POST",
                r.session_id.as_deref(),
                Some(&r.version),
                body.as_bytes(),
            );
            self.state = State::FanOut(FanOutState {
                targets: vec![r.upstream],
                op: Op::CallThrough,
                id: Some(id),
                answers: vec![None],
            });
            return Step::AwaitCallouts(vec![call]);
        }
        match result["nextCursor"].as_str() {
            Some(c) if r.pages < 50 => {
                let c = c.to_string();
                self.resolve_page(gw, id, Box::new(r), Some(c))
            }
            _ => Step::Respond(json_reply(
                200,
                error_body_value(
                    Some(&id),
                    code::INVALID_PARAMS,
                    &format!("Unknown {what}: {:?}", r.requested),
                ),
            )),
        }
    }

    /// Response headers of a routed request. `code_details` is Envoy's
    /// `response.code_details`: `via_upstream` when the upstream answered, else why Envoy
    /// answered itself (connection failure, timeout…). `location`: the answer's `Location`.
    pub fn on_response_headers(
        &mut self,
        status: u16,
        content_type: Option<&str>,
        location: Option<&str>,
        code_details: Option<&str>,
    ) -> ResponseStep {
        if let State::Stream(_) = &self.state {
            if (200..300).contains(&status) && code_details.is_none_or(|d| d == "via_upstream") {
                return ResponseStep::Transform;
            }
            self.state = State::Done;
        }
        let State::Routed(routed) = &mut self.state else {
            return ResponseStep::Stream { remove: vec![] };
        };
        let json_or_sse = content_type.is_some_and(|t| {
            let t = t.split(';').next().unwrap_or_default().trim();
            t.eq_ignore_ascii_case("application/json")
                || t.eq_ignore_ascii_case("text/event-stream")
        });
        let from_upstream = code_details.is_none_or(|d| d == "via_upstream");
        // A redirect is never passed on: a client (a browser above all) would follow it to
        // wherever the upstream says, with what it holds.
        if from_upstream && (300..400).contains(&status) && status != 304 {
            let message = format!(
                "Upstream {:?} answered with a redirect (HTTP {status}), which the gateway does not follow",
                routed.upstream
            );
            self.log.push(format!(
                "{message}; it pointed to {}",
                location.map_or_else(|| "no location".into(), redirect_target)
            ));
            let body = jsonrpc::error_body(routed.id.as_deref(), UPSTREAM_ERROR, &message);
            self.state = State::Done;
            return ResponseStep::Replace(json_reply(200, body));
        }
        if !from_upstream || (status >= 400 && !json_or_sse) {
            let (code, mut message) = describe_failure(
                &routed.upstream,
                status,
                code_details.filter(|_| !from_upstream),
                routed.timeout_ms,
            );
            if !from_upstream {
                message.push_str(&via_note(&routed.via));
            }
            let body = jsonrpc::error_body(routed.id.as_deref(), code, &message);
            self.log.push(message);
            // A session the upstream no longer knows is one the client must renew; what
            // answers no request (a stream, a notification) gets an HTTP error, not a body.
            let status = if status == 404 && from_upstream {
                404
            } else if routed.id.is_none() {
                502
            } else {
                200
            };
            self.state = State::Done;
            return ResponseStep::Replace(json_reply(status, body));
        }
        if routed.uri_prefix.is_some() && (200..300).contains(&status) {
            routed.buffering = true;
            return ResponseStep::Buffer;
        }
        let is_sse = content_type.is_some_and(|t| {
            t.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        });
        // Events are read one by one: their ids name the upstream (a resumed stream must go
        // back to it), a server request may need a tag, a list change must invalidate the
        // cache, a resource update must name the prefixed URI.
        if is_sse && (200..300).contains(&status) {
            routed.splitter = Some(crate::sse::EventSplitter::new());
            return ResponseStep::Transform;
        }
        ResponseStep::Stream {
            remove: vec![SESSION_HEADER],
        }
    }

    /// One chunk of a response that [`ResponseStep::Transform`] asked for: the bytes to send
    /// instead. Whole events go out as soon as they are complete.
    pub fn on_response_chunk(
        &mut self,
        gw: &Gateway,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + 32);
        match &mut self.state {
            State::Routed(Routed {
                upstream,
                splitter: Some(splitter),
                tag_requests,
                event_uri_prefix,
                ..
            }) => {
                for event in splitter.push(chunk) {
                    if is_list_changed(&event) {
                        gw.cache.bump(upstream);
                    }
                    match routed_event(&event, upstream, event_uri_prefix.as_deref(), *tag_requests)
                    {
                        Some(rewritten) => out.extend(rewritten),
                        None => out.extend_from_slice(&event),
                    }
                }
            }
            // The merged GET stream: the bridge marks each upstream's `list_changed` with a
            // comment, which only the gateway reads.
            State::Stream(splitter) => {
                for event in splitter.push(chunk) {
                    match list_changed_marker(&event) {
                        Some(upstream) => gw.cache.bump(upstream),
                        None => out.extend_from_slice(&event),
                    }
                }
            }
            _ => return chunk.to_vec(),
        }
        if end_of_stream {
            match std::mem::take(&mut self.state) {
                // What the splitter still holds may be a whole event (one ended by a lone
                // `\r` at the very end, say): it gets the same treatment as the others.
                State::Routed(Routed {
                    splitter: Some(splitter),
                    upstream,
                    tag_requests,
                    event_uri_prefix,
                    ..
                }) => {
                    let tail = splitter.finish();
                    if is_list_changed(&tail) {
                        gw.cache.bump(&upstream);
                    }
                    match routed_event(&tail, &upstream, event_uri_prefix.as_deref(), tag_requests)
                    {
                        Some(rewritten) => out.extend(rewritten),
                        None => out.extend(tail),
                    }
                }
                State::Stream(splitter) => out.extend(splitter.finish()),
                other => self.state = other,
            }
        }
        out
    }

    /// The whole body of a response that [`ResponseStep::Buffer`] asked for: the body to send.
    pub fn on_response_body(&mut self, body: &[u8], content_type: Option<&str>) -> Vec<u8> {
        let State::Routed(Routed {
            uri_prefix: Some(prefix),
            buffering: true,
            upstream,
            ..
        }) = &self.state
        else {
            return body.to_vec();
        };
        let is_sse = content_type.is_some_and(|t| {
            t.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        });
        if is_sse {
            let mut out = String::new();
            for event in crate::sse::parse(body) {
                let data = rewrite_read_uris(&event.data, prefix);
                let id = event.id.as_deref().map(|id| stream_event_id(upstream, id));
                if let Some(retry) = event.retry {
                    out.push_str(&format!("retry: {retry}\n"));
                }
                out.push_str(&crate::sse::encode(
                    event.event.as_deref(),
                    id.as_deref(),
                    &data,
                ));
            }
            out.into_bytes()
        } else {
            let text = String::from_utf8_lossy(body);
            rewrite_read_uris(&text, prefix).into_bytes()
        }
    }
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Initialize { .. } => "initialize",
            Op::List { kind, .. } => kind.method(),
            Op::Broadcast { .. } => "a notification",
            Op::Delete => "session termination",
            Op::Resolve(_) => "name resolution",
            Op::CallThrough => "a call",
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
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

/// A cached page of the upstream's current generation that has not expired. Entries are
/// `<generation> <expiry ms>\n<page>` ([`aggregate::Page::encode`]): nothing in them is parsed
/// as JSON again.
fn cached(gw: &Gateway, key: &str, generation: u64, now_ms: u64) -> Option<aggregate::Page> {
    let entry = String::from_utf8(gw.cache.get(key)?).ok()?;
    let (head, page) = entry.split_once('\n')?;
    let (g, e) = head.split_once(' ')?;
    if g.parse::<u64>().ok()? != generation || e.parse::<u64>().ok()? <= now_ms {
        return None;
    }
    aggregate::Page::decode(page)
}

fn cache_entry(generation: u64, expires_ms: u64, page: &aggregate::Page) -> String {
    format!("{generation} {expires_ms}\n{}", page.encode())
}

/// A callout to one upstream, with its configured headers.
fn callout(
    call: usize,
    upstream: &Upstream,
    method: &str,
    session_id: Option<&str>,
    version: Option<&str>,
    body: &[u8],
) -> Callout {
    let mut headers: Vec<(String, String)> = vec![
        (":method".into(), method.into()),
        (":path".into(), upstream.path.clone()),
        (":authority".into(), upstream.authority.clone()),
        (
            "accept".into(),
            "application/json, text/event-stream".into(),
        ),
    ];
    if let Some(version) = version {
        headers.push((VERSION_HEADER.into(), version.into()));
    }
    if !body.is_empty() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    if let Some(sid) = session_id {
        headers.push((SESSION_HEADER.into(), sid.into()));
    }
    headers.extend(upstream.headers.iter().cloned());
    Callout {
        call,
        cluster: upstream.cluster.clone(),
        headers,
        body: body.to_vec(),
        timeout_ms: upstream.timeout_ms,
    }
}

/// Where a redirect pointed, for the operator's log: scheme and host only (a path or query
/// may carry a token).
fn redirect_target(location: &str) -> String {
    match location.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}")
        }
        None => "a path on the same host".into(),
    }
}

/// Response headers of an upstream's answer that never reach the client: cookies (the
/// gateway's origin is not the upstream's) and CORS grants (only the gateway's own CORS
/// policy speaks for its origin; the filter adds those after this).
pub fn stripped_response_headers<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    names
        .filter(|n| {
            let n = n.to_ascii_lowercase();
            n == "set-cookie" || n == "set-cookie2" || n.starts_with("access-control-")
        })
        .collect()
}

/// Why a list answer of `size` bytes is not read.
pub fn too_big(size: usize, limit: u64) -> String {
    format!("answered a list of {size} bytes, more than its max_list_bytes of {limit}")
}

/// Says that a failure may be the proxy's: Envoy only sees the tunnel close.
fn via_note(via: &str) -> String {
    if via.is_empty() {
        String::new()
    } else {
        format!(" (reached through its {via}; the gateway's log has the proxy's answer)")
    }
}

/// Why a callout's HTTP answer is a failure, in words that name no address.
fn http_failure(status: u16, body: &[u8], timeout_ms: u64) -> String {
    // Envoy's own answer names the transport failure: `… transport failure reason:
    // TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end`.
    let original = String::from_utf8_lossy(&body[..body.len().min(1000)]);
    let text = original.to_ascii_lowercase();
    match status {
        503 if text.contains("tls_error") => format!(
            "TLS handshake failed ({})",
            tls_failure(&original).unwrap_or_default()
        ),
        503 if text.contains("refused") => "refused the connection".into(),
        // Envoy does not always say more; its `ssl.*` and `upstream_cx_*` stats of the
        // upstream's cluster do.
        503 if text.contains("connect") || text.contains("no healthy") => {
            "unreachable (the connection or its TLS handshake failed)".into()
        }
        504 => format!("timed out after {timeout_ms} ms"),
        300..=399 => {
            format!("answered with a redirect (HTTP {status}), which the gateway does not follow")
        }
        _ => format!("answered HTTP {status}"),
    }
}

/// JSON-RPC code and message for a routed request that failed at the HTTP level.
fn describe_failure(
    upstream: &str,
    status: u16,
    envoy_details: Option<&str>,
    timeout_ms: u64,
) -> (i64, String) {
    let Some(details) = envoy_details else {
        return (
            UPSTREAM_ERROR,
            format!("Upstream {upstream:?} answered HTTP {status} without a JSON-RPC response"),
        );
    };
    let why = if details.contains("timeout") {
        return (
            UPSTREAM_TIMEOUT,
            format!("Upstream {upstream:?} did not answer within {timeout_ms} ms"),
        );
    } else if let Some(reason) = tls_failure(details) {
        return (
            UPSTREAM_ERROR,
            format!("Upstream {upstream:?} failed the TLS handshake ({reason})"),
        );
    } else if details.contains("refused") {
        "refused the connection"
    } else if details.contains("connection_failure") || details.contains("connect") {
        "is unreachable (connection failed)"
    } else if details.contains("no_healthy_upstream") {
        "has no healthy host"
    } else if details.contains("overflow") {
        "is overloaded (connection or request limit reached)"
    } else if details.contains("reset") {
        "closed the connection before answering"
    } else {
        "could not be reached"
    };
    (UPSTREAM_ERROR, format!("Upstream {upstream:?} {why}"))
}

/// The reason in Envoy's details of a failed TLS handshake, e.g.
/// `…{remote_connection_failure|TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end}`.
fn tls_failure(details: &str) -> Option<String> {
    let at = details.find("TLS_error")?;
    let rest = &details[at..];
    let rest = rest.split("TLS_error_end").next().unwrap_or(rest);
    let reason = rest
        .split([':', '|', '}'])
        .map(str::trim)
        .rfind(|p| !p.is_empty() && *p != "TLS_error" && p.chars().any(char::is_alphabetic))
        .unwrap_or("TLS error");
    Some(reason.replace('_', " "))
}

/// Sets `value` at `path` inside `params` (objects along the way must exist).
fn set_path(params: &mut Value, path: &[&str], value: Value) {
    let mut at = params;
    for key in &path[..path.len().saturating_sub(1)] {
        at = &mut at[*key];
    }
    if let Some(last) = path.last() {
        at[*last] = value;
    }
}

/// The body with its `id` replaced.
fn replace_id(body: &[u8], id: Value) -> Vec<u8> {
    match serde_json::from_slice::<Value>(body) {
        Ok(mut v) => {
            v["id"] = id;
            v.to_string().into_bytes()
        }
        Err(_) => body.to_vec(),
    }
}

/// Whether an event tells that a list changed (`notifications/tools/list_changed`…).
fn is_list_changed(raw: &[u8]) -> bool {
    raw.windows(12).any(|w| w == b"list_changed")
        && crate::sse::parse(raw)
            .into_iter()
            .next()
            .is_some_and(|event| {
                serde_json::from_str::<Value>(&event.data).is_ok_and(|m| {
                    m["method"]
                        .as_str()
                        .is_some_and(|method| method.ends_with("/list_changed"))
                })
            })
}

/// The comment the bridge puts before an upstream's `list_changed`.
pub const LIST_CHANGED_MARKER: &str = "switchboard list_changed ";

/// The upstream named by a raw event that is only the bridge's marker comment.
fn list_changed_marker(raw: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(raw).ok()?;
    let line = text.trim_end_matches(['\r', '\n']);
    if line.contains('\n') {
        return None;
    }
    line.strip_prefix(':')?
        .trim_start()
        .strip_prefix(LIST_CHANGED_MARKER)
        .map(str::trim)
}

/// The id a client sees for an event of `upstream`'s stream: `<upstream>:<its id>`, so a
/// `GET` that resumes it ([`resume_point`]) goes back to that upstream. Upstream names have
/// no `:`, and the bridge's merged-stream ids are base64url, so neither is read as the other.
fn stream_event_id(upstream: &str, id: &str) -> String {
    if id.is_empty() {
        return String::new();
    }
    format!("{upstream}:{id}")
}

/// The upstream (index) and its own event id in a client's `Last-Event-ID`, when it is one
/// that [`stream_event_id`] made for an upstream of this configuration.
fn resume_point<'a>(gw: &Gateway, last_event_id: &'a str) -> Option<(usize, &'a str)> {
    let (name, id) = last_event_id.trim().split_once(':')?;
    let (index, _) = gw.by_name(name)?;
    (!id.is_empty()).then_some((index, id))
}

/// A raw event of `upstream`'s stream as the client must see it: its message rewritten
/// ([`client_event`]) and its id tagged ([`stream_event_id`]).
fn routed_event(
    raw: &[u8],
    upstream: &str,
    uri_prefix: Option<&str>,
    tag: bool,
) -> Option<Vec<u8>> {
    client_event(raw, upstream, uri_prefix, tag)
        .map(String::into_bytes)
        .or_else(|| crate::sse::map_ids(raw, |id| stream_event_id(upstream, id)))
}

/// An SSE event as the client must see it ([`server_message::for_client`]); `None` when it
/// goes out unchanged.
fn client_event(raw: &[u8], upstream: &str, uri_prefix: Option<&str>, tag: bool) -> Option<String> {
    // Most events are results: skip parsing what is neither a request nor a notification.
    if !raw.windows(8).any(|w| w == b"\"method\"") {
        return None;
    }
    let event = crate::sse::parse(raw).into_iter().next()?;
    let mut message: Value = serde_json::from_str(&event.data).ok()?;
    if !server_message::for_client(&mut message, upstream, uri_prefix, tag) {
        return None;
    }
    let id = event.id.as_deref().map(|id| stream_event_id(upstream, id));
    let mut out = crate::sse::encode(event.event.as_deref(), id.as_deref(), &message.to_string());
    if let Some(retry) = event.retry {
        out.insert_str(0, &format!("retry: {retry}\n"));
    }
    Some(out)
}

/// Prefixes `result.contents[].uri` in a `resources/read` answer.
fn rewrite_read_uris(json_text: &str, prefix: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(json_text) else {
        return json_text.to_string();
    };
    let Some(contents) = v
        .get_mut("result")
        .and_then(|r| r.get_mut("contents"))
        .and_then(Value::as_array_mut)
    else {
        return json_text.to_string();
    };
    for c in contents {
        if let Some(uri) = c.get("uri").and_then(Value::as_str) {
            c["uri"] = Value::String(naming::prefix_uri(prefix, uri));
        }
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter_config::example;

    const CLOCK_S: u64 = 1_700_000_000;

    fn clock() -> Clock {
        Clock {
            now_s: CLOCK_S,
            now_ms: CLOCK_S * 1000,
            seed: b"test-seed".to_vec(),
        }
    }

    fn post(session: Option<&str>) -> RequestHead {
        RequestHead {
            method: "POST".into(),
            path: "/mcp".into(),
            session_id: session.map(str::to_string),
            protocol_version: None,
            ..Default::default()
        }
    }

    fn answer(session_id: Option<&str>, body: Value) -> Result<CalloutAnswer, String> {
        Ok(CalloutAnswer {
            status: 200,
            content_type: "application/json".into(),
            session_id: session_id.map(str::to_string),
            body: body.to_string().into_bytes(),
        })
    }

    fn sse_answer(body: Value) -> Result<CalloutAnswer, String> {
        Ok(CalloutAnswer {
            status: 200,
            content_type: "text/event-stream".into(),
            session_id: Some("sse-sid".into()),
            body: format!("event: message\ndata: {body}\n\n").into_bytes(),
        })
    }

    fn reply(step: Step) -> (u16, Value, Vec<(String, String)>) {
        match step {
            Step::Respond(r) => (
                r.status,
                serde_json::from_slice(&r.body).unwrap_or(Value::Null),
                r.headers,
            ),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn callouts(step: Step) -> Vec<Callout> {
        match step {
            Step::AwaitCallouts(c) => c,
            other => panic!("expected callouts, got {other:?}"),
        }
    }

    /// Runs `body` through a fresh exchange, answering callouts with `answers` in order.
    fn run(
        gw: &Gateway,
        session: Option<&str>,
        body: &str,
        answers: Vec<Result<CalloutAnswer, String>>,
    ) -> (Step, Vec<Callout>) {
        run_head(gw, &post(session), body, answers)
    }

    /// [`run`] with the request head given.
    fn run_head(
        gw: &Gateway,
        head: &RequestHead,
        body: &str,
        answers: Vec<Result<CalloutAnswer, String>>,
    ) -> (Step, Vec<Callout>) {
        let mut ex = Exchange::new();
        assert_eq!(ex.on_request_headers(gw, head, CLOCK_S), Step::AwaitBody);
        let step = ex.on_request_body(gw, body.as_bytes(), &clock());
        let Step::AwaitCallouts(calls) = step else {
            return (step, vec![]);
        };
        let mut last = None;
        for (i, a) in answers.into_iter().enumerate() {
            last = ex.on_callout_response(gw, i, a, &clock());
        }
        (last.expect("every callout answered"), calls)
    }

    fn init_result(caps: Value) -> Value {
        json!({"protocolVersion": "2025-06-18", "capabilities": caps, "serverInfo": {"name": "up", "version": "1"}})
    }

    /// A session with both upstreams of `example(2)`.
    fn session_token(gw: &Gateway) -> String {
        let (step, _) = run(
            gw,
            None,
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
            vec![
                answer(
                    Some("sid-0"),
                    json!({"jsonrpc":"2.0","id":1,"result": init_result(json!({"tools":{}, "resources": {}}))}),
                ),
                sse_answer(
                    json!({"jsonrpc":"2.0","id":1,"result": init_result(json!({"tools":{}, "prompts": {}}))}),
                ),
            ],
        );
        session_header(step)
    }

    /// A session of a one-upstream gateway whose upstream has `caps`, negotiated at 2025-06-18.
    fn single_session(gw: &Gateway, caps: Value) -> String {
        let (step, _) = run(
            gw,
            None,
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#,
            vec![answer(
                Some("s"),
                json!({"jsonrpc":"2.0","id":1,"result": init_result(caps)}),
            )],
        );
        session_header(step)
    }

    /// The `Mcp-Session-Id` the gateway answered with.
    fn session_header(step: Step) -> String {
        reply(step)
            .2
            .into_iter()
            .find(|(k, _)| k == SESSION_HEADER)
            .map(|(_, v)| v)
            .expect("a session header")
    }

    /// Runs `body` as `who`, with the client's `pass` headers, answering callouts in order.
    fn run_as(
        gw: &Gateway,
        who: &str,
        pass: &[(&str, &str)],
        session: Option<&str>,
        body: &str,
        answers: Vec<Result<CalloutAnswer, String>>,
    ) -> (Step, Vec<Callout>) {
        let head = RequestHead {
            identity: Some(crate::access::Identity {
                client: who.into(),
                claims: None,
                ..Default::default()
            }),
            pass_through: pass
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..post(session)
        };
        run_head(gw, &head, body, answers)
    }

    #[test]
    fn access_rules_filter_lists_refuse_calls_and_bind_sessions() {
        use crate::access::{AccessConfig, Client, Lists, Rule};
        use crate::filter_config::PassThrough;
        let mut config = example(2);
        config.access = Some(AccessConfig {
            clients: vec![
                Client {
                    name: "ci".into(),
                    ..Default::default()
                },
                Client {
                    name: "eve".into(),
                    ..Default::default()
                },
            ],
            rules: vec![Rule {
                clients: vec!["ci".into()],
                allow: Lists {
                    upstreams: vec!["u0".into()],
                    tools: vec!["u0__*".into()],
                    ..Default::default()
                },
                deny: Lists {
                    tools: vec!["u0__secret".into()],
                    ..Default::default()
                },
                ..Default::default()
            }],
            bridge_key_sha256: None,
        });
        config.upstreams[0].pass_through = vec![PassThrough {
            source: "x-user-token".into(),
            target: "authorization".into(),
            format: "Bearer {value}".into(),
        }];
        let gw = Gateway::new(config);
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;
        // Only the allowed upstream is initialized, with the pass-through header.
        let (step, calls) = run_as(
            &gw,
            "ci",
            &[("x-user-token", "t0k")],
            None,
            init,
            vec![answer(
                Some("s"),
                json!({"jsonrpc":"2.0","id":1,"result": init_result(json!({"tools": {}}))}),
            )],
        );
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].cluster, "upstream-u0");
        assert!(
            calls[0]
                .headers
                .contains(&("authorization".into(), "Bearer t0k".into()))
        );
        let token = session_header(step);
        // The list shows only what ci may call.
        let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
        let tools = json!({"jsonrpc":"2.0","id":2,"result":{"tools":[
            {"name":"open","inputSchema":{}},{"name":"secret","inputSchema":{}}]}});
        let (step, _) = run_as(
            &gw,
            "ci",
            &[],
            Some(&token),
            list,
            vec![answer(None, tools)],
        );
        let names: Vec<String> = reply(step).1["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["u0__open"]);
        // A denied call is refused without contacting the upstream.
        let call =
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"u0__secret"}}"#;
        let (step, calls) = run_as(&gw, "ci", &[], Some(&token), call, vec![]);
        assert!(calls.is_empty());
        let (_, body, _) = reply(step);
        assert_eq!(body["error"]["code"], ACCESS_DENIED);
        // An allowed call is routed with the pass-through header.
        let (step, _) = run_as(
            &gw,
            "ci",
            &[("x-user-token", "t0k")],
            Some(&token),
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"u0__open"}}"#,
            vec![],
        );
        let Step::Route(route) = step else {
            panic!("{step:?}")
        };
        assert!(
            route
                .headers
                .contains(&("authorization".into(), Some("Bearer t0k".into())))
        );
        // The session is ci's: eve presenting it finds nothing.
        let (step, _) = run_as(&gw, "eve", &[], Some(&token), list, vec![]);
        assert_eq!(reply(step).0, 404);
        // eve may use no upstream at all.
        let (step, calls) = run_as(&gw, "eve", &[], None, init, vec![]);
        assert!(calls.is_empty());
        assert_eq!(reply(step).1["error"]["code"], ACCESS_DENIED);
    }

    /// `example(2)` with clients `ci` and `eve`, per-upstream endpoints under `/upstreams`,
    /// and a rule that lets both use everything but the tool `u0__secret` and the
    /// resources under `u0+file:///secret/`.
    fn guarded() -> Gateway {
        use crate::access::{AccessConfig, Client, Lists, Rule};
        let mut config = example(2);
        config.upstream_path = "/upstreams".into();
        config.get_stream = true;
        let client = |name: &str| Client {
            name: name.into(),
            ..Default::default()
        };
        config.access = Some(AccessConfig {
            clients: vec![client("ci"), client("eve")],
            rules: vec![Rule {
                clients: vec!["*".into()],
                allow: Lists {
                    upstreams: vec!["*".into()],
                    ..Default::default()
                },
                deny: Lists {
                    tools: vec!["u0__secret".into(), format!("u0__{}", "L".repeat(70))],
                    resources: vec!["u0+file:///secret/*".into()],
                    ..Default::default()
                },
                ..Default::default()
            }],
            bridge_key_sha256: None,
        });
        Gateway::new(config)
    }

    /// A request of `who` at `path`.
    fn head_at(who: &str, method: &str, path: &str, session: Option<&str>) -> RequestHead {
        RequestHead {
            method: method.into(),
            path: path.into(),
            session_id: session.map(str::to_string),
            identity: Some(crate::access::Identity {
                client: who.into(),
                claims: None,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn call_at(gw: &Gateway, who: &str, path: &str, token: &str, body: &str) -> Step {
        run_head(gw, &head_at(who, "POST", path, Some(token)), body, vec![]).0
    }

    /// `ci`'s session on `/upstreams/u0/mcp`, its upstream session `own-0`.
    fn own_session(gw: &Gateway) -> (Step, String) {
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;
        let mine = json!({"protocolVersion": "2025-03-26", "capabilities": {"tools": {"listChanged": true}},
            "serverInfo": {"name": "u0-itself", "version": "7"}});
        let (step, calls) = run_head(
            gw,
            &head_at("ci", "POST", "/upstreams/u0/mcp", None),
            init,
            vec![answer(
                Some("own-0"),
                json!({"jsonrpc":"2.0","id":1,"result": mine}),
            )],
        );
        assert_eq!(calls.len(), 1, "only its own upstream");
        assert_eq!(calls[0].cluster, "upstream-u0");
        let token = session_header(step.clone());
        (step, token)
    }

    #[test]
    fn a_get_stream_is_bound_to_its_session_as_a_post_is() {
        let gw = guarded();
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;
        let ok = |sid| {
            answer(
                Some(sid),
                json!({"jsonrpc":"2.0","id":1,"result": init_result(json!({"tools":{}}))}),
            )
        };
        let (step, _) = run_head(
            &gw,
            &head_at("ci", "POST", "/mcp", None),
            init,
            vec![ok("a"), ok("b")],
        );
        let token = session_header(step);
        let get = |who: &str, token: Option<&str>| {
            Exchange::new().on_request_headers(&gw, &head_at(who, "GET", "/mcp", token), CLOCK_S)
        };
        assert_eq!(get("ci", Some(&token)), Step::PassThrough);
        assert_eq!(
            reply(get("eve", Some(&token))).0,
            404,
            "another client's session"
        );
        assert_eq!(reply(get("ci", None)).0, 400);
        assert_eq!(reply(get("ci", Some("sb1.forged"))).0, 404);
    }

    #[test]
    fn a_get_with_a_routed_streams_last_event_id_resumes_it_at_its_upstream() {
        let gw = Gateway::new(example(2));
        assert!(
            !gw.config.get_stream,
            "no merged stream: resuming needs none"
        );
        let token = session_token(&gw);
        let get = |path: &str, last: &str| {
            Exchange::new().on_request_headers(
                &gw,
                &RequestHead {
                    method: "GET".into(),
                    path: path.into(),
                    session_id: Some(token.clone()),
                    last_event_id: Some(last.into()),
                    ..Default::default()
                },
                CLOCK_S,
            )
        };
        let Step::Route(route) = get("/mcp", "u1:e1|7") else {
            panic!("not routed")
        };
        assert_eq!(route.upstream, "u1");
        assert!(
            route
                .headers
                .contains(&("last-event-id".into(), Some("e1|7".into()))),
            "the upstream's own id: {:?}",
            route.headers
        );
        // Not one of ours (an unknown upstream, no id, the merged stream's): no resumption.
        for last in ["nobody:e1", "u1:", "eyJ1MCI6IjEifQ"] {
            assert_eq!(reply(get("/mcp", last)).0, 405, "{last}");
        }
        // Another client cannot resume this session's streams.
        let stolen = Exchange::new().on_request_headers(
            &gw,
            &RequestHead {
                method: "GET".into(),
                path: "/mcp".into(),
                session_id: Some("sb1.forged".into()),
                last_event_id: Some("u1:e1".into()),
                ..Default::default()
            },
            CLOCK_S,
        );
        assert_eq!(reply(stolen).0, 404);
    }

    #[test]
    fn a_resumed_stream_stays_within_what_the_client_may_use() {
        let mut config = guarded().config;
        if let Some(access) = &mut config.access {
            access.rules[0].deny.upstreams = vec!["u1".into()];
        }
        let gw = Gateway::new(config);
        let (_, token) = own_session(&gw);
        let get = |path: &str, last: &str| {
            Exchange::new().on_request_headers(
                &gw,
                &RequestHead {
                    last_event_id: Some(last.into()),
                    ..head_at("ci", "GET", path, Some(&token))
                },
                CLOCK_S,
            )
        };
        assert!(
            matches!(get("/upstreams/u0/mcp", "u0:9"), Step::Route(r) if r.headers.contains(&("last-event-id".into(), Some("9".into()))))
        );
        assert_eq!(
            reply(get("/upstreams/u0/mcp", "u1:9")).0,
            400,
            "an id of another upstream's stream at this upstream's endpoint"
        );
        assert_eq!(
            reply(get("/mcp", "u1:9")).0,
            403,
            "an upstream ci may not use"
        );
    }

    #[test]
    fn an_upstreams_own_endpoint_serves_it_alone_under_the_same_rules() {
        let gw = guarded();
        let (step, token) = own_session(&gw);
        // Its own answer to initialize, not the gateway's merged one.
        let (_, body, _) = reply(step);
        assert_eq!(body["result"]["serverInfo"]["name"], "u0-itself");
        assert_eq!(body["result"]["capabilities"]["tools"]["listChanged"], true);
        assert!(token.starts_with("sb1.") && !token.contains("own-0"));
        let own = "/upstreams/u0/mcp";
        // Lists: unprefixed, and filtered by the rules under the aggregated names.
        let long = "L".repeat(70);
        let (step, _) = run_head(
            &gw,
            &RequestHead {
                protocol_version: Some("2025-03-26".into()),
                ..head_at("ci", "POST", own, Some(&token))
            },
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            vec![answer(
                None,
                json!({"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"open"},{"name":"secret"},{"name": long}]}}),
            )],
        );
        let names: Vec<String> = reply(step).1["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            ["open"],
            "a shortened name is judged by its full one"
        );
        // Calls: the rule sees u0__secret; the upstream gets its own name and session.
        let denied = call_at(
            &gw,
            "ci",
            own,
            &token,
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"secret"}}"#,
        );
        let (_, body, _) = reply(denied);
        assert_eq!(body["error"]["code"], ACCESS_DENIED);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("u0__secret")
        );
        let Step::Route(route) = call_at(
            &gw,
            "ci",
            own,
            &token,
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"open"}}"#,
        ) else {
            panic!("not routed")
        };
        assert_eq!(route.upstream, "u0");
        assert!(
            route
                .headers
                .contains(&(SESSION_HEADER.into(), Some("own-0".into())))
        );
        let sent: Value = serde_json::from_slice(&route.body.unwrap()).unwrap();
        assert_eq!(sent["params"]["name"], "open");
        // The session is ci's, and u0's: nobody else's, nowhere else.
        let stolen = call_at(
            &gw,
            "eve",
            own,
            &token,
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#,
        );
        assert_eq!(reply(stolen).0, 404);
        let elsewhere = call_at(
            &gw,
            "ci",
            "/upstreams/u1/mcp",
            &token,
            r#"{"jsonrpc":"2.0","id":6,"method":"tools/list"}"#,
        );
        assert_eq!(reply(elsewhere).0, 404);
        // Its stream goes to the upstream with the upstream's own session, for ci alone.
        let mut ex = Exchange::new();
        let Step::Route(get) =
            ex.on_request_headers(&gw, &head_at("ci", "GET", own, Some(&token)), CLOCK_S)
        else {
            panic!("GET not routed")
        };
        assert!(
            get.headers
                .contains(&(SESSION_HEADER.into(), Some("own-0".into())))
        );
        let stolen = Exchange::new().on_request_headers(
            &gw,
            &head_at("eve", "GET", own, Some(&token)),
            CLOCK_S,
        );
        assert_eq!(reply(stolen).0, 404);
        // Anything else under the base path is not an endpoint of the filter's.
        let other = Exchange::new().on_request_headers(
            &gw,
            &head_at("ci", "POST", "/upstreams/u0/sse", None),
            CLOCK_S,
        );
        assert_eq!(other, Step::PassThrough);
    }

    #[test]
    fn an_own_endpoint_the_client_may_not_use_is_403() {
        use crate::access::{Lists, Rule};
        let mut config = example(2);
        config.upstream_path = "/upstreams".into();
        let mut access = guarded().config.access.unwrap();
        access.rules = vec![Rule {
            clients: vec!["ci".into()],
            allow: Lists {
                upstreams: vec!["u1".into()],
                ..Default::default()
            },
            ..Default::default()
        }];
        config.access = Some(access);
        let gw = Gateway::new(config);
        let step = Exchange::new().on_request_headers(
            &gw,
            &head_at("ci", "POST", "/upstreams/u0/mcp", None),
            CLOCK_S,
        );
        let (status, body, _) = reply(step);
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (403, json!(ACCESS_DENIED))
        );
    }

    #[test]
    fn resource_rules_judge_the_normalized_uri_and_the_upstream_reads_it() {
        let gw = guarded();
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;
        let ok = json!({"jsonrpc":"2.0","id":1,"result": init_result(json!({"resources":{}}))});
        let (step, _) = run_head(
            &gw,
            &head_at("ci", "POST", "/mcp", None),
            init,
            vec![answer(Some("a"), ok.clone()), answer(Some("b"), ok)],
        );
        let token = session_header(step);
        let read = |uri: &str| {
            let body =
                json!({"jsonrpc":"2.0","id":9,"method":"resources/read","params":{"uri": uri}});
            call_at(&gw, "ci", "/mcp", &token, &body.to_string())
        };
        for spelled in [
            "u0+file:///secret/a",
            "U0+file:///secret/a",
            "u0+FILE:///public/../secret/a",
            "u0+file:///./secret/a",
            "u0+file:///%73ecret/a",
        ] {
            assert_eq!(
                reply(read(spelled)).1["error"]["code"],
                ACCESS_DENIED,
                "{spelled}"
            );
        }
        let hidden = reply(read("u0+file:///public/..%2Fsecret/a")).1;
        assert_eq!(hidden["error"]["code"], code::INVALID_PARAMS, "{hidden}");
        let Step::Route(route) = read("U0+File:///public/./a") else {
            panic!("not routed")
        };
        let sent: Value = serde_json::from_slice(&route.body.unwrap()).unwrap();
        assert_eq!(sent["params"]["uri"], "file:///public/a");
    }

    #[test]
    fn a_cursor_works_only_in_the_session_that_listed() {
        let gw = Gateway::new(example(1));
        let session = |sid: &str| {
            let (step, _) = run(
                &gw,
                None,
                r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#,
                vec![answer(
                    Some(sid),
                    json!({"jsonrpc":"2.0","id":1,"result": init_result(json!({"tools":{}}))}),
                )],
            );
            session_header(step)
        };
        // Opened in the same second: only their upstream sessions tell them apart.
        let (a, b) = (session("a"), session("b"));
        let (page, _) = list_page(
            &gw,
            &a,
            None,
            vec![answer(
                None,
                json!({"jsonrpc":"2.0","id":20,"result":{"tools":[{"name":"t"}],"nextCursor":"2"}}),
            )],
        );
        let cursor = page["result"]["nextCursor"].as_str().unwrap().to_string();
        let (other, calls) = list_page(&gw, &b, Some(&cursor), vec![]);
        assert!(calls.is_empty());
        assert_eq!(other["error"]["code"], code::INVALID_PARAMS);
    }

    #[test]
    fn an_upstream_redirect_becomes_an_error_and_its_cookies_and_cors_stay_behind() {
        let gw = Gateway::new(example(1));
        let token = single_session(&gw, json!({"tools":{}}));
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
        let step = ex.on_request_body(
            &gw,
            br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"u0__go"}}"#,
            &clock(),
        );
        assert!(matches!(step, Step::Route(_)));
        let ResponseStep::Replace(r) = ex.on_response_headers(
            302,
            None,
            Some("https://user@evil.example/x?token=t0k"),
            Some("via_upstream"),
        ) else {
            panic!("a redirect was passed on")
        };
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (r.status, body["error"]["code"].clone()),
            (200, json!(UPSTREAM_ERROR))
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("redirect")
        );
        let log = ex.take_log().join("\n");
        assert!(
            log.contains("https://evil.example") && !log.contains("t0k") && !log.contains("user@"),
            "{log}"
        );
        let names = [
            "Set-Cookie",
            "content-type",
            "Access-Control-Allow-Origin",
            "access-control-allow-credentials",
            "mcp-session-id",
        ];
        assert_eq!(
            stripped_response_headers(names.into_iter()),
            [
                "Set-Cookie",
                "Access-Control-Allow-Origin",
                "access-control-allow-credentials"
            ]
        );
    }

    #[test]
    fn only_tools_the_gateway_listed_get_a_series_of_their_own() {
        let gw = Gateway::new(example(1));
        let token = single_session(&gw, json!({"tools":{}}));
        let series = |name: &str| {
            let mut ex = Exchange::new();
            ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
            let body =
                json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name": name}});
            ex.on_request_body(&gw, body.to_string().as_bytes(), &clock());
            ex.audit().tool_series.clone()
        };
        assert_eq!(series("u0__open"), UNKNOWN_TOOL, "not listed yet");
        list_page(
            &gw,
            &token,
            None,
            vec![answer(
                None,
                json!({"jsonrpc":"2.0","id":20,"result":{"tools":[{"name":"open"}]}}),
            )],
        );
        assert_eq!(series("u0__open"), "u0__open");
        for made_up in ["u0__zz1", "zz2", "x__y"] {
            assert_eq!(series(made_up), UNKNOWN_TOOL, "{made_up}");
        }
    }

    #[test]
    fn initialize_fans_out_and_seals_the_upstream_sessions() {
        let gw = Gateway::new(example(2));
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(None), CLOCK_S);
        let calls = callouts(ex.on_request_body(&gw, br#"{"jsonrpc":"2.0","id":"i","method":"initialize","params":{"protocolVersion":"1999-01-01","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#, &clock()));
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].cluster, "upstream-u1");
        assert!(
            calls[1].headers.contains(&("x-key".into(), "k1".into())),
            "configured headers go on callouts"
        );
        let sent: Value = serde_json::from_slice(&calls[0].body).unwrap();
        assert_eq!(
            sent["params"]["protocolVersion"],
            mcp::SUPPORTED_VERSIONS[0],
            "upstreams get the negotiated version"
        );
        assert_eq!(
            ex.on_callout_response(
                &gw,
                1,
                sse_answer(
                    json!({"jsonrpc":"2.0","id":"i","result": init_result(json!({"prompts":{}}))})
                ),
                &clock()
            ),
            None
        );
        let step = ex
            .on_callout_response(
                &gw,
                0,
                answer(
                    Some("sid-0"),
                    json!({"jsonrpc":"2.0","id":"i","result": init_result(json!({"tools":{}}))}),
                ),
                &clock(),
            )
            .unwrap();
        let (status, body, headers) = reply(step);
        assert_eq!(status, 200);
        assert_eq!(body["id"], "i");
        assert_eq!(body["result"]["serverInfo"]["name"], "switchboard");
        assert_eq!(
            body["result"]["protocolVersion"],
            mcp::SUPPORTED_VERSIONS[0]
        );
        assert_eq!(
            body["result"]["capabilities"],
            json!({"tools": {}, "prompts": {}})
        );
        let token = &headers.iter().find(|(k, _)| k == SESSION_HEADER).unwrap().1;
        let s = session::open(&gw.key, token, CLOCK_S, 0).unwrap();
        assert_eq!(s.upstreams[0].session_id.as_deref(), Some("sid-0"));
        assert_eq!(s.upstreams[1].session_id.as_deref(), Some("sse-sid"));
        assert!(!token.contains("sid-0"));
    }

    #[test]
    fn tools_list_merges_with_prefixes_in_config_order() {
        let gw = Gateway::new(example(2));
        let token = session_token(&gw);
        let (step, calls) = run(
            &gw,
            Some(&token),
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            vec![
                answer(
                    None,
                    json!({"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a","inputSchema":{"type":"object"}},{"name":"b","inputSchema":{"type":"object"}}]}}),
                ),
                answer(
                    None,
                    json!({"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a","title":"A","inputSchema":{"type":"object"}}]}}),
                ),
            ],
        );
        assert!(
            calls[0]
                .headers
                .contains(&(SESSION_HEADER.into(), "sid-0".into())),
            "each upstream gets its own session"
        );
        let (_, body, _) = reply(step);
        let names: Vec<&str> = body["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["u0__a", "u0__b", "u1__a"]);
        assert_eq!(body["result"]["tools"][2]["title"], "A");
    }

    #[test]
    fn lists_skip_upstreams_without_the_capability() {
        let gw = Gateway::new(example(2));
        let token = session_token(&gw);
        let (step, calls) = run(
            &gw,
            Some(&token),
            r#"{"jsonrpc":"2.0","id":3,"method":"prompts/list"}"#,
            vec![answer(
                None,
                json!({"jsonrpc":"2.0","id":3,"result":{"prompts":[{"name":"p"}]}}),
            )],
        );
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].cluster, "upstream-u1");
        let (_, body, _) = reply(step);
        assert_eq!(body["result"]["prompts"][0]["name"], "u1__p");
    }

    #[test]
    fn fail_open_leaves_a_failed_upstream_out_and_fail_closed_names_it() {
        let gw = Gateway::new(example(2));
        let token = session_token(&gw);
        let answers = || {
            vec![
                answer(
                    None,
                    json!({"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"a"}]}}),
                ),
                Ok(CalloutAnswer {
                    status: 503,
                    content_type: "text/plain".into(),
                    session_id: None,
                    body: b"upstream connect error or disconnect/reset before headers".to_vec(),
                }),
            ]
        };
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
        ex.on_request_body(
            &gw,
            br#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#,
            &clock(),
        );
        let mut last = None;
        for (i, a) in answers().into_iter().enumerate() {
            last = ex.on_callout_response(&gw, i, a, &clock());
        }
        let (_, body, _) = reply(last.unwrap());
        assert_eq!(body["result"]["tools"].as_array().unwrap().len(), 1);
        assert!(ex.take_log()[0].contains("\"u1\" failed during tools/list: unreachable"));

        let mut closed = example(2);
        closed.fan_out = FanOut::FailClosed;
        let gw = Gateway::new(closed);
        let token = session_token(&gw);
        let (step, _) = run(
            &gw,
            Some(&token),
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#,
            answers(),
        );
        let (_, body, _) = reply(step);
        assert_eq!(body["error"]["code"], UPSTREAM_ERROR);
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("\"u1\"") && message.contains("unreachable"),
            "{message}"
        );
        assert!(!message.contains("127.0.0.1"), "no addresses in messages");
    }

    #[test]
    fn tools_call_is_routed_with_the_prefix_stripped() {
        let gw = Gateway::new(example(2));
        let token = session_token(&gw);
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
        let step = ex.on_request_body(&gw, br#"{"jsonrpc":"2.0","id":"c-9","method":"tools/call","params":{"name":"u1__echo__x","arguments":{"m":1},"_meta":{"progressToken":7}}}"#, &clock());
        let Step::Route(route) = step else {
            panic!("{step:?}")
        };
        assert_eq!(route.upstream, "u1");
        assert!(
            route
                .headers
                .contains(&(SESSION_HEADER.to_string(), Some("sse-sid".into())))
        );
        assert!(
            route
                .headers
                .contains(&(VERSION_HEADER.to_string(), Some("2025-06-18".into())))
        );
        let body: Value = serde_json::from_slice(&route.body.unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"jsonrpc":"2.0","id":"c-9","method":"tools/call","params":{"name":"echo__x","arguments":{"m":1},"_meta":{"progressToken":7}}})
        );
        // Several upstreams share the session: the SSE answer goes through the tagger.
        assert_eq!(
            ex.on_response_headers(200, Some("text/event-stream"), None, Some("via_upstream")),
            ResponseStep::Transform
        );
    }

    #[test]
    fn resources_read_is_routed_by_uri_and_its_answer_prefixed_back() {
        let gw = Gateway::new(example(2));
        let token = session_token(&gw);
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
        let Step::Route(route) = ex.on_request_body(&gw, br#"{"jsonrpc":"2.0","id":5,"method":"resources/read","params":{"uri":"U0+file:///a b"}}"#, &clock()) else { panic!() };
        assert_eq!(route.upstream, "u0");
        let body: Value = serde_json::from_slice(&route.body.unwrap()).unwrap();
        // Normalized (RFC 3986) before anything is decided, and sent so.
        assert_eq!(body["params"]["uri"], "file:///a%20b");
        assert_eq!(
            ex.on_response_headers(200, Some("application/json"), None, Some("via_upstream")),
            ResponseStep::Buffer
        );
        let out = ex.on_response_body(
            br#"{"jsonrpc":"2.0","id":5,"result":{"contents":[{"uri":"file:///a b","text":"x"}]}}"#,
            Some("application/json"),
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["contents"][0]["uri"], "u0+file:///a b");
    }

    #[test]
    fn completion_refs_are_stripped() {
        let gw = Gateway::new(example(2));
        let token = session_token(&gw);
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
        let Step::Route(route) = ex.on_request_body(&gw, br#"{"jsonrpc":"2.0","id":6,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"u1__greet"},"argument":{"name":"n","value":"a"}}}"#, &clock()) else { panic!() };
        let body: Value = serde_json::from_slice(&route.body.unwrap()).unwrap();
        assert_eq!(body["params"]["ref"]["name"], "greet");
        assert_eq!(body["params"]["argument"]["value"], "a");
    }

    #[test]
    fn unknown_prefixes_methods_and_sessions_are_refused() {
        let gw = Gateway::new(example(2));
        let token = session_token(&gw);
        let (step, _) = run(
            &gw,
            Some(&token),
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"nope__x"}}"#,
            vec![],
        );
        let (status, body, _) = reply(step);
        assert_eq!(
            (status, body["error"]["code"].as_i64()),
            (200, Some(code::INVALID_PARAMS))
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nope__x")
        );
        let (step, _) = run(
            &gw,
            Some(&token),
            r#"{"jsonrpc":"2.0","id":8,"method":"tools/destroy"}"#,
            vec![],
        );
        assert_eq!(reply(step).1["error"]["code"], code::METHOD_NOT_FOUND);
        let (step, _) = run(
            &gw,
            None,
            r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#,
            vec![],
        );
        assert_eq!(reply(step).0, 400);
        let (step, _) = run(
            &gw,
            Some("sb1.AAAA"),
            r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#,
            vec![],
        );
        let (status, body, _) = reply(step);
        assert_eq!(
            (status, body["error"]["code"].as_i64(), body["id"].as_i64()),
            (404, Some(SESSION_NOT_FOUND), Some(9))
        );
        let other = Gateway::new(FilterConfig {
            session_key: "another".into(),
            ..example(2)
        });
        let (step, _) = run(
            &other,
            Some(&token),
            r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#,
            vec![],
        );
        assert_eq!(reply(step).0, 404, "a token of another key is refused");
    }

    #[test]
    fn expired_sessions_get_404() {
        let gw = Gateway::new(FilterConfig {
            session_max_age_s: 60,
            ..example(1)
        });
        let token = single_session(&gw, json!({"tools":{}}));
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S + 61);
        let (status, _, _) = reply(ex.on_request_body(
            &gw,
            br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            &clock(),
        ));
        assert_eq!(status, 404);
    }

    #[test]
    fn ping_and_notifications() {
        let gw = Gateway::new(example(2));
        let (step, _) = run(
            &gw,
            None,
            r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#,
            vec![],
        );
        assert_eq!(reply(step).1, json!({"jsonrpc":"2.0","id":"p","result":{}}));
        let token = session_token(&gw);
        let (step, calls) = run(
            &gw,
            Some(&token),
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            vec![
                Ok(CalloutAnswer {
                    status: 202,
                    content_type: String::new(),
                    session_id: None,
                    body: vec![],
                }),
                Ok(CalloutAnswer {
                    status: 202,
                    content_type: String::new(),
                    session_id: None,
                    body: vec![],
                }),
            ],
        );
        assert_eq!(calls.len(), 2);
        assert!(
            calls[1]
                .headers
                .contains(&(SESSION_HEADER.into(), "sse-sid".into()))
        );
        assert!(matches!(step, Step::Respond(Reply { status: 202, .. })));
    }

    #[test]
    fn delete_ends_every_upstream_session() {
        let gw = Gateway::new(example(2));
        let token = session_token(&gw);
        let mut ex = Exchange::new();
        let calls = callouts(ex.on_request_headers(
            &gw,
            &RequestHead {
                method: "DELETE".into(),
                path: "/mcp".into(),
                session_id: Some(token),
                protocol_version: None,
                ..Default::default()
            },
            CLOCK_S,
        ));
        assert_eq!(calls.len(), 2);
        assert!(
            calls
                .iter()
                .all(|c| c.headers.contains(&(":method".into(), "DELETE".into())))
        );
        ex.on_callout_response(
            &gw,
            0,
            Ok(CalloutAnswer {
                status: 200,
                content_type: String::new(),
                session_id: None,
                body: vec![],
            }),
            &clock(),
        );
        let step = ex
            .on_callout_response(&gw, 1, Err("timeout".into()), &clock())
            .unwrap();
        assert!(matches!(step, Step::Respond(Reply { status: 200, .. })));
    }

    #[test]
    fn tls_and_refused_connections_are_named() {
        let (_, m) = describe_failure(
            "secure",
            503,
            Some(
                "upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end}",
            ),
            1000,
        );
        assert_eq!(
            m,
            "Upstream \"secure\" failed the TLS handshake (CERTIFICATE VERIFY FAILED)"
        );
        let (_, m) = describe_failure(
            "down",
            503,
            Some(
                "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}",
            ),
            1000,
        );
        assert_eq!(m, "Upstream \"down\" refused the connection");
        let body = b"upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end";
        assert_eq!(
            http_failure(503, body, 1000),
            "TLS handshake failed (CERTIFICATE VERIFY FAILED)"
        );
    }

    #[test]
    fn routed_failures_become_json_rpc_errors_naming_the_upstream() {
        let gw = Gateway::new(example(2));
        let token = session_token(&gw);
        for (status, details, code, needle) in [
            (
                503,
                "upstream_reset_before_response_started{connection_failure}",
                UPSTREAM_ERROR,
                "unreachable",
            ),
            (504, "response_timeout", UPSTREAM_TIMEOUT, "within 1000 ms"),
        ] {
            let mut ex = Exchange::new();
            ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
            ex.on_request_body(
                &gw,
                br#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"u0__x"}}"#,
                &clock(),
            );
            let ResponseStep::Replace(r) =
                ex.on_response_headers(status, Some("text/plain"), None, Some(details))
            else {
                panic!()
            };
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(v["id"], 11);
            assert_eq!(v["error"]["code"], code);
            let m = v["error"]["message"].as_str().unwrap();
            assert!(m.contains("\"u0\"") && m.contains(needle), "{m}");
        }
    }

    #[test]
    fn only_mcp_and_tracing_headers_are_forwarded() {
        for h in [
            "Authorization",
            "cookie",
            "x-api-key",
            "proxy-authorization",
            "accept-encoding",
            "x-switchboard-upstream",
        ] {
            assert!(!forwarded_request_header(h), "{h}");
        }
        for h in [
            ":path",
            "Content-Type",
            "mcp-session-id",
            "MCP-Protocol-Version",
            "traceparent",
            "x-request-id",
        ] {
            assert!(forwarded_request_header(h), "{h}");
        }
    }

    #[test]
    fn get_is_405_and_other_paths_pass() {
        let gw = Gateway::new(example(1));
        let mut ex = Exchange::new();
        let (status, _, headers) = reply(ex.on_request_headers(
            &gw,
            &RequestHead {
                method: "GET".into(),
                path: "/mcp".into(),
                session_id: None,
                protocol_version: None,
                ..Default::default()
            },
            0,
        ));
        assert_eq!(status, 405);
        assert!(headers.iter().any(|(k, _)| k == "allow"));
        let mut ex = Exchange::new();
        assert_eq!(
            ex.on_request_headers(
                &gw,
                &RequestHead {
                    method: "POST".into(),
                    path: "/other".into(),
                    session_id: None,
                    protocol_version: None,
                    ..Default::default()
                },
                0
            ),
            Step::PassThrough
        );
    }

    #[test]
    fn malformed_and_oversized_bodies() {
        let gw = Gateway::new(FilterConfig {
            max_request_bytes: 64,
            ..example(1)
        });
        let (step, _) = run(&gw, None, "{oops", vec![]);
        let (status, body, _) = reply(step);
        assert_eq!(
            (status, body["error"]["code"].as_i64()),
            (400, Some(code::PARSE_ERROR))
        );
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(None), 0);
        assert_eq!(reply(ex.on_body_progress(&gw, 65).unwrap()).0, 413);
    }

    fn list_page(
        gw: &Gateway,
        token: &str,
        cursor: Option<&str>,
        answers: Vec<Result<CalloutAnswer, String>>,
    ) -> (Value, Vec<Callout>) {
        let body = match cursor {
            Some(c) => {
                json!({"jsonrpc": "2.0", "id": 20, "method": "tools/list", "params": {"cursor": c}})
            }
            None => json!({"jsonrpc": "2.0", "id": 20, "method": "tools/list"}),
        };
        let (step, calls) = run(gw, Some(token), &body.to_string(), answers);
        (reply(step).1, calls)
    }

    #[test]
    fn pagination_walks_every_upstream_once_with_a_sealed_cursor() {
        let gw = Gateway::new(example(2));
        let token = session_token(&gw);
        let (page1, calls) = list_page(
            &gw,
            &token,
            None,
            vec![
                answer(
                    None,
                    json!({"jsonrpc":"2.0","id":20,"result":{"tools":[{"name":"a"}],"nextCursor":"up0-page2"}}),
                ),
                answer(
                    None,
                    json!({"jsonrpc":"2.0","id":20,"result":{"tools":[{"name":"x"}]}}),
                ),
            ],
        );
        assert_eq!(calls.len(), 2);
        let names: Vec<&str> = page1["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["u0__a", "u1__x"]);
        let cursor = page1["result"]["nextCursor"].as_str().unwrap().to_string();
        assert!(cursor.starts_with("sbc1.") && !cursor.contains("up0"));

        let (page2, calls) = list_page(
            &gw,
            &token,
            Some(&cursor),
            vec![answer(
                None,
                json!({"jsonrpc":"2.0","id":20,"result":{"tools":[{"name":"b"}]}}),
            )],
        );
        assert_eq!(calls.len(), 1, "the finished upstream is not asked again");
        let sent: Value = serde_json::from_slice(&calls[0].body).unwrap();
        assert_eq!(
            sent["params"]["cursor"], "up0-page2",
            "the upstream gets its own cursor"
        );
        assert_eq!(page2["result"]["tools"], json!([{"name": "u0__b"}]));
        assert!(page2["result"].get("nextCursor").is_none());

        for bad in ["sbc1.AAAA", "42", &token] {
            let (v, calls) = list_page(&gw, &token, Some(bad), vec![]);
            assert!(calls.is_empty());
            assert_eq!(v["error"]["code"], code::INVALID_PARAMS, "{bad}");
        }
        // A cursor of another list method is refused.
        let (step, _) = run(
            &gw,
            Some(&token),
            &json!({"jsonrpc":"2.0","id":21,"method":"resources/list","params":{"cursor": cursor}})
                .to_string(),
            vec![],
        );
        assert_eq!(reply(step).1["error"]["code"], code::INVALID_PARAMS);
    }

    #[test]
    fn when_needed_drops_the_prefix_of_a_single_upstream() {
        let gw = Gateway::new(FilterConfig {
            prefix_mode: PrefixMode::WhenNeeded,
            ..example(1)
        });
        let token = single_session(&gw, json!({"tools":{}, "resources": {}}));
        let (page, _) = list_page(
            &gw,
            &token,
            None,
            vec![answer(
                None,
                json!({"jsonrpc":"2.0","id":20,"result":{"tools":[{"name":"echo"}]}}),
            )],
        );
        assert_eq!(page["result"]["tools"], json!([{"name": "echo"}]));
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
        let Step::Route(route) = ex.on_request_body(
            &gw,
            br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo"}}"#,
            &clock(),
        ) else {
            panic!()
        };
        let body: Value = serde_json::from_slice(&route.body.unwrap()).unwrap();
        assert_eq!(body["params"]["name"], "echo");
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
        let Step::Route(route) = ex.on_request_body(
            &gw,
            br#"{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///x"}}"#,
            &clock(),
        ) else {
            panic!()
        };
        assert_eq!(
            serde_json::from_slice::<Value>(&route.body.unwrap()).unwrap()["params"]["uri"],
            "file:///x"
        );
        assert_eq!(
            ex.on_response_headers(200, Some("application/json"), None, Some("via_upstream")),
            ResponseStep::Stream {
                remove: vec![SESSION_HEADER]
            },
            "nothing to prefix back"
        );
    }

    #[test]
    fn tool_filters_hide_and_refuse() {
        let mut config = example(2);
        config.upstreams[0].tools_include = vec!["a*".into()];
        config.upstreams[0].tools_exclude = vec!["ab".into()];
        let gw = Gateway::new(config);
        let token = session_token(&gw);
        let (page, _) = list_page(
            &gw,
            &token,
            None,
            vec![
                answer(
                    None,
                    json!({"jsonrpc":"2.0","id":20,"result":{"tools":[{"name":"a"},{"name":"ab"},{"name":"b"}]}}),
                ),
                answer(
                    None,
                    json!({"jsonrpc":"2.0","id":20,"result":{"tools":[{"name":"ab"}]}}),
                ),
            ],
        );
        let names: Vec<&str> = page["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["u0__a", "u1__ab"]);
        let (step, _) = run(
            &gw,
            Some(&token),
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"u0__ab"}}"#,
            vec![],
        );
        let (_, body, _) = reply(step);
        assert_eq!(body["error"]["code"], code::INVALID_PARAMS);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("does not offer it"),
            "{body}"
        );
    }

    #[test]
    fn an_unsupported_protocol_version_header_is_400() {
        let gw = Gateway::new(example(1));
        let token = single_session(&gw, json!({"tools":{}}));
        for (version, status) in [
            (Some("2025-06-18"), None),
            (None, None),
            // Supported, though not the session's: the specification allows it.
            (Some("2025-03-26"), None),
            (Some("1999-01-01"), Some(400)),
            (Some("garbage"), Some(400)),
        ] {
            let mut ex = Exchange::new();
            let head = RequestHead {
                method: "POST".into(),
                path: "/mcp".into(),
                session_id: Some(token.clone()),
                protocol_version: version.map(str::to_string),
                ..Default::default()
            };
            ex.on_request_headers(&gw, &head, CLOCK_S);
            let step = ex.on_request_body(
                &gw,
                br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
                &clock(),
            );
            match status {
                None => assert!(
                    matches!(step, Step::AwaitCallouts(_)),
                    "{version:?}: {step:?}"
                ),
                Some(code) => assert_eq!(reply(step).0, code, "{version:?}"),
            }
        }
    }

    #[test]
    fn an_upstream_on_an_unknown_version_is_left_out_with_a_clear_reason() {
        let gw = Gateway::new(example(2));
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(None), CLOCK_S);
        ex.on_request_body(&gw, br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#, &clock());
        ex.on_callout_response(
            &gw,
            0,
            answer(
                Some("a"),
                json!({"jsonrpc":"2.0","id":1,"result": init_result(json!({"tools":{}}))}),
            ),
            &clock(),
        );
        let odd = json!({"jsonrpc":"2.0","id":1,"result": {"protocolVersion": "1999-01-01", "capabilities": {}, "serverInfo": {"name": "old", "version": "1"}}});
        let step = ex
            .on_callout_response(&gw, 1, answer(Some("b"), odd), &clock())
            .unwrap();
        let token = session_header(step);
        assert_eq!(
            session::open(&gw.key, &token, CLOCK_S, 0)
                .unwrap()
                .upstreams
                .len(),
            1
        );
        assert!(ex.take_log()[0].contains("negotiated protocol version \"1999-01-01\""));
    }

    #[test]
    fn a_last_event_ended_by_a_lone_cr_is_tagged_too() {
        let gw = Gateway::new(example(2));
        let token = session_token(&gw);
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
        ex.on_request_body(
            &gw,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"u1__ask"}}"#,
            &clock(),
        );
        ex.on_response_headers(200, Some("text/event-stream"), None, Some("via_upstream"));
        // `\r\n\r`: the event is over, though the splitter could not know it before the end.
        let stream = "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"sampling/createMessage\",\"params\":{}}\r\n\r";
        let mut out = ex.on_response_chunk(&gw, stream.as_bytes(), false);
        out.extend(ex.on_response_chunk(&gw, b"", true));
        let events = crate::sse::parse(&out);
        let v: Value = serde_json::from_str(&events[0].data).unwrap();
        assert_eq!(v["id"], "sb:u1:7", "{}", String::from_utf8_lossy(&out));
    }

    #[test]
    fn server_requests_in_a_stream_are_tagged_and_their_answers_routed_back() {
        let gw = Gateway::new(example(2));
        let token = session_token(&gw);
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
        ex.on_request_body(
            &gw,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"u1__ask"}}"#,
            &clock(),
        );
        assert_eq!(
            ex.on_response_headers(200, Some("text/event-stream"), None, Some("via_upstream")),
            ResponseStep::Transform
        );
        let stream = "event: message\nid: e1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"sampling/createMessage\",\"params\":{}}\n\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/updated\",\"params\":{\"uri\":\"file:///a\"}}\n\n: ping\n\n";
        let mut out = Vec::new();
        for chunk in stream.as_bytes().chunks(10) {
            out.extend(ex.on_response_chunk(&gw, chunk, false));
        }
        out.extend(ex.on_response_chunk(&gw, b"", true));
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("event: message\nid: u1:e1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\""), "notifications pass as they are, their id naming the upstream: {text}");
        assert!(text.ends_with(": ping\n\n"), "{text}");
        let tagged = crate::sse::parse(text.as_bytes())[1].data.clone();
        let v: Value = serde_json::from_str(&tagged).unwrap();
        assert_eq!(v["id"], "sb:u1:7");
        let updated = crate::sse::parse(text.as_bytes())[2].data.clone();
        let v: Value = serde_json::from_str(&updated).unwrap();
        assert_eq!(
            v["params"]["uri"], "u1+file:///a",
            "the URI the client knows"
        );

        // The client's answer goes back to u1 with the id u1 used.
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
        let Step::Route(route) = ex.on_request_body(
            &gw,
            br#"{"jsonrpc":"2.0","id":"sb:u1:7","result":{"model":"m"}}"#,
            &clock(),
        ) else {
            panic!()
        };
        assert_eq!(route.upstream, "u1");
        assert!(
            route
                .headers
                .contains(&(SESSION_HEADER.to_string(), Some("sse-sid".into())))
        );
        let body: Value = serde_json::from_slice(&route.body.unwrap()).unwrap();
        assert_eq!(body, json!({"jsonrpc":"2.0","id":7,"result":{"model":"m"}}));
        // Untagged or unknown answers in a session of several upstreams are refused.
        for id in [r#""plain""#, r#""sb:nope:1""#, "5"] {
            let (step, _) = run(
                &gw,
                Some(&token),
                &format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#),
                vec![],
            );
            assert_eq!(reply(step).0, 400, "{id}");
        }
    }

    #[test]
    fn a_shortened_name_is_resolved_by_listing_then_called() {
        let gw = Gateway::new(example(2));
        let token = session_token(&gw);
        let long = "t".repeat(80);
        let shown = naming::shorten(&format!("u0__{long}")).into_owned();
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
        let body = json!({"jsonrpc": "2.0", "id": 30, "method": "tools/call", "params": {"name": shown, "arguments": {"x": 1}}});
        let calls = callouts(ex.on_request_body(&gw, body.to_string().as_bytes(), &clock()));
        assert_eq!(
            serde_json::from_slice::<Value>(&calls[0].body).unwrap()["method"],
            "tools/list"
        );
        // The first page has other tools and a cursor; the second has it.
        let step = ex.on_callout_response(&gw, 0, answer(None, json!({"jsonrpc":"2.0","id":30,"result":{"tools":[{"name":"a"}],"nextCursor":"p2"}})), &clock()).unwrap();
        let calls = callouts(step);
        assert_eq!(
            serde_json::from_slice::<Value>(&calls[0].body).unwrap()["params"]["cursor"],
            "p2"
        );
        let step = ex
            .on_callout_response(
                &gw,
                0,
                answer(
                    None,
                    json!({"jsonrpc":"2.0","id":30,"result":{"tools":[{"name": long}]}}),
                ),
                &clock(),
            )
            .unwrap();
        let calls = callouts(step);
        let sent: Value = serde_json::from_slice(&calls[0].body).unwrap();
        assert_eq!(sent["method"], "tools/call");
        assert_eq!(sent["params"], json!({"name": long, "arguments": {"x": 1}}));
        let step = ex.on_callout_response(&gw, 0, sse_answer(json!({"jsonrpc":"2.0","id":30,"result":{"content":[{"type":"text","text":"ok"}]}})), &clock()).unwrap();
        let (status, v, _) = reply(step);
        assert_eq!(
            (status, v["result"]["content"][0]["text"].as_str()),
            (200, Some("ok"))
        );

        // A shortened name nobody has is unknown.
        let fake = naming::shorten(&format!("u0__{}", "z".repeat(80))).into_owned();
        let (step, _) = run(
            &gw,
            Some(&token),
            &json!({"jsonrpc": "2.0", "id": 31, "method": "tools/call", "params": {"name": fake}})
                .to_string(),
            vec![answer(
                None,
                json!({"jsonrpc":"2.0","id":31,"result":{"tools":[{"name": long}]}}),
            )],
        );
        assert_eq!(reply(step).1["error"]["code"], code::INVALID_PARAMS);
    }

    /// A cache in memory, counting bumps like Envoy's shared data would hold them.
    #[derive(Default, Clone)]
    struct MemoryCache(std::rc::Rc<std::cell::RefCell<std::collections::HashMap<String, Vec<u8>>>>);

    impl ListCache for MemoryCache {
        fn get(&self, key: &str) -> Option<Vec<u8>> {
            self.0.borrow().get(key).cloned()
        }
        fn put(&self, key: &str, value: &[u8]) {
            self.0.borrow_mut().insert(key.to_string(), value.to_vec());
        }
        fn generation(&self, upstream: &str) -> u64 {
            self.get(&format!("gen/{upstream}"))
                .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
                .unwrap_or(0)
        }
        fn bump(&self, upstream: &str) {
            let next = self.generation(upstream) + 1;
            self.put(&format!("gen/{upstream}"), next.to_string().as_bytes());
        }
    }

    #[test]
    fn cached_lists_skip_the_upstream_until_they_expire_or_change() {
        let mut config = example(2);
        config.upstreams[0].cache_ms = 30_000;
        let cache = MemoryCache::default();
        let gw = Gateway::with_cache(config, Box::new(cache.clone()));
        let token = session_token(&gw);
        let list = r#"{"jsonrpc":"2.0","id":40,"method":"tools/list"}"#;
        let u0 = || {
            answer(
                None,
                json!({"jsonrpc":"2.0","id":40,"result":{"tools":[{"name":"a"}]}}),
            )
        };
        let u1 = || {
            answer(
                None,
                json!({"jsonrpc":"2.0","id":40,"result":{"tools":[{"name":"x"}]}}),
            )
        };
        let (step, calls) = run(&gw, Some(&token), list, vec![u0(), u1()]);
        assert_eq!(calls.len(), 2);
        assert_eq!(
            reply(step).1["result"]["tools"].as_array().unwrap().len(),
            2
        );

        // Second time: only the uncached upstream is asked; the answer is the same.
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
        let calls = callouts(ex.on_request_body(&gw, list.as_bytes(), &clock()));
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].cluster, "upstream-u1");
        let (_, v, _) = reply(ex.on_callout_response(&gw, 1, u1(), &clock()).unwrap());
        let names: Vec<&str> = v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["u0__a", "u1__x"]);

        // Expired: asked again.
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
        let later = Clock {
            now_ms: CLOCK_S * 1000 + 30_001,
            ..clock()
        };
        assert_eq!(
            callouts(ex.on_request_body(&gw, list.as_bytes(), &later)).len(),
            2
        );

        // A list_changed in u0's answer makes its cached lists stale.
        let before = cache.generation("u0");
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
        ex.on_request_body(
            &gw,
            br#"{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"u0__a"}}"#,
            &clock(),
        );
        assert_eq!(
            ex.on_response_headers(200, Some("text/event-stream"), None, Some("via_upstream")),
            ResponseStep::Transform
        );
        let out = ex.on_response_chunk(
            &gw,
            b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n",
            true,
        );
        assert!(!out.is_empty(), "the notification still reaches the client");
        assert_eq!(cache.generation("u0"), before + 1);
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
        assert_eq!(
            callouts(ex.on_request_body(&gw, list.as_bytes(), &clock())).len(),
            2,
            "stale after the change"
        );
        let keys = cache
            .0
            .borrow()
            .keys()
            .filter(|k| k.starts_with("list/"))
            .count();
        assert_eq!(keys, 1, "one entry per upstream, method and page");
    }

    #[test]
    fn the_bridge_marker_on_the_get_stream_bumps_and_is_not_forwarded() {
        let cache = MemoryCache::default();
        let gw = Gateway::with_cache(
            FilterConfig {
                get_stream: true,
                ..example(2)
            },
            Box::new(cache.clone()),
        );
        let token = session_token(&gw);
        let mut ex = Exchange::new();
        let head = RequestHead {
            method: "GET".into(),
            path: "/mcp".into(),
            session_id: Some(token),
            protocol_version: None,
            ..Default::default()
        };
        assert_eq!(
            ex.on_request_headers(&gw, &head, CLOCK_S),
            Step::PassThrough
        );
        assert_eq!(
            ex.on_response_headers(200, Some("text/event-stream"), None, Some("via_upstream")),
            ResponseStep::Transform
        );
        let stream = ": switchboard list_changed u1\n\nevent: message\nid: x\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n";
        let out = ex.on_response_chunk(&gw, stream.as_bytes(), false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "event: message\nid: x\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n"
        );
        assert_eq!(cache.generation("u1"), 1);
        assert_eq!(cache.generation("u0"), 0);
    }
}
