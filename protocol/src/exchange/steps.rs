use super::*;

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
    /// The client's W3C trace context (`traceparent`, `tracestate`): the filter's own calls
    /// to upstreams carry it, so their work joins the client's trace (Envoy traces routed
    /// requests itself, not the filter's calls).
    pub trace_context: Vec<(String, String)>,
    /// `Mcp-Method` and `Mcp-Name` (the stateless revision's routing headers).
    pub mcp_method: Option<String>,
    pub mcp_name: Option<String>,
    /// `Mcp-Param-*`: arguments of a `tools/call` a tool's `x-mcp-header` annotation asks
    /// to be mirrored as headers (lower-case names).
    pub mcp_params: Vec<(String, String)>,
}

/// Time and a never-repeating seed for sealing tokens, from the host.
#[derive(Debug, Clone, Default)]
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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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

pub(super) fn json_reply(status: u16, body: String) -> Reply {
    Reply {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.into_bytes(),
    }
}

pub(super) fn error_reply(status: u16, id: Option<&RawValue>, code: i64, message: &str) -> Step {
    Step::Respond(json_reply(status, jsonrpc::error_body(id, code, message)))
}

/// 405 with what is allowed.
pub(super) fn not_allowed(message: &str, allow: &str) -> Step {
    let mut r = json_reply(
        405,
        jsonrpc::error_body(None, code::INVALID_REQUEST, message),
    );
    r.headers.push(("allow".into(), allow.into()));
    Step::Respond(r)
}

/// The answer to a state the exchange should never be in.
pub(super) fn internal_error() -> Step {
    Step::Respond(json_reply(
        500,
        jsonrpc::error_body(None, code::INTERNAL_ERROR, "internal error"),
    ))
}

pub(super) fn result_body(id: &Value, result: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

pub(super) fn error_body_value(id: Option<&Value>, code: i64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

/// A callout to one upstream, with its configured headers.
pub(super) fn callout(
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
