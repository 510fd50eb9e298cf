//! The fast upstream: a minimal MCP server over streamable HTTP (JSON answers, or one SSE
//! event when the call asks for it) so that what the benchmark measures is the gateway in
//! front of it, not the server.
//!
//! Each listener offers `echo` plus `tools - 1` filler tools. `echo` returns `size` bytes of
//! text when asked (pre-built once per size), else the `text` argument. Sessions are issued
//! on `initialize` and required on every other request, so a gateway that loses the session
//! header fails the benchmark's verification instead of passing silently.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

pub const ECHO: &str = "echo";
const SESSION: &str = "mcp-session-id";

/// One listener's behaviour.
#[derive(Debug, Clone)]
pub struct Listener {
    pub tools: usize,
    /// Added before answering `tools/list`: the fan-out scenario's slow upstreams.
    pub list_delay: Duration,
}

struct Server {
    /// `{"tools":[…]}`, serialised once.
    tool_list: String,
    list_delay: Duration,
    sessions: AtomicU64,
    events: AtomicU64,
    texts: Mutex<HashMap<usize, Arc<str>>>,
}

/// Binds every listener on loopback and serves until the process ends; returns the addresses.
pub async fn serve(listeners: &[Listener]) -> anyhow::Result<Vec<SocketAddr>> {
    let mut addrs = Vec::new();
    for l in listeners {
        let tcp = TcpListener::bind("127.0.0.1:0").await?;
        addrs.push(tcp.local_addr()?);
        let server = Arc::new(Server {
            tool_list: tool_list(l.tools),
            list_delay: l.list_delay,
            sessions: AtomicU64::new(0),
            events: AtomicU64::new(0),
            texts: Mutex::new(HashMap::new()),
        });
        tokio::spawn(accept(tcp, server));
    }
    Ok(addrs)
}

async fn accept(tcp: TcpListener, server: Arc<Server>) {
    loop {
        let Ok((stream, _)) = tcp.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, std::convert::Infallible>(server.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct CallParams {
    name: String,
    #[serde(default)]
    arguments: EchoArgs,
}

#[derive(Deserialize, Default)]
struct EchoArgs {
    size: Option<usize>,
    #[serde(default)]
    text: String,
    /// Answer as an SSE stream: one `message` event with an id, as servers with an event
    /// store send it.
    #[serde(default)]
    sse: bool,
}

#[derive(Deserialize, Default)]
struct InitParams {
    #[serde(rename = "protocolVersion")]
    protocol_version: Option<String>,
}

type Answer = Response<Full<Bytes>>;

impl Server {
    async fn handle(&self, req: Request<Incoming>) -> Answer {
        match *req.method() {
            Method::POST => {}
            Method::DELETE => return status(StatusCode::OK),
            _ => return status(StatusCode::METHOD_NOT_ALLOWED),
        }
        let has_session = req.headers().contains_key(SESSION);
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return status(StatusCode::BAD_REQUEST),
        };
        let Ok(msg) = serde_json::from_slice::<Message>(&body) else {
            return json(error_body("null", -32700, "parse error"));
        };
        let method = msg.method.as_deref().unwrap_or("");
        let Some(id) = msg.id.map(RawValue::get) else {
            // Notifications (and stray responses) are accepted.
            return status(StatusCode::ACCEPTED);
        };
        if method == "initialize" {
            let version = msg
                .params
                .and_then(|p| serde_json::from_str::<InitParams>(p.get()).ok())
                .and_then(|p| p.protocol_version)
                .unwrap_or_else(|| "2025-06-18".into());
            let n = self.sessions.fetch_add(1, Ordering::Relaxed);
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"protocolVersion":{},"capabilities":{{"tools":{{"listChanged":false}}}},"serverInfo":{{"name":"bench-upstream","version":"1"}}}}}}"#,
                serde_json::Value::String(version)
            );
            let mut answer = json(body);
            if let Ok(v) = format!("bench-{n}").parse() {
                answer.headers_mut().insert(SESSION, v);
            }
            return answer;
        }
        if !has_session {
            return status(StatusCode::BAD_REQUEST);
        }
        match method {
            "ping" => json(format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#)),
            "tools/list" => {
                if !self.list_delay.is_zero() {
                    tokio::time::sleep(self.list_delay).await;
                }
                json(format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"result":{}}}"#,
                    self.tool_list
                ))
            }
            "tools/call" => {
                let params = msg
                    .params
                    .and_then(|p| serde_json::from_str::<CallParams>(p.get()).ok())
                    .unwrap_or_default();
                if params.name != ECHO {
                    return json(error_body(id, -32602, "unknown tool"));
                }
                let text: Arc<str> = match params.arguments.size {
                    Some(size) => self.text(size),
                    None => params.arguments.text.into(),
                };
                let body = format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":{}}}],"isError":false}}}}"#,
                    serde_json::Value::String(text.to_string())
                );
                if params.arguments.sse {
                    let n = self.events.fetch_add(1, Ordering::Relaxed);
                    sse(format!("event: message\nid: stream-{n}\ndata: {body}\n\n"))
                } else {
                    json(body)
                }
            }
            _ => json(error_body(id, -32601, "method not found")),
        }
    }

    fn text(&self, size: usize) -> Arc<str> {
        let Ok(mut texts) = self.texts.lock() else {
            return "x".repeat(size).into();
        };
        texts
            .entry(size)
            .or_insert_with(|| "x".repeat(size).into())
            .clone()
    }
}

fn error_body(id: &str, code: i32, message: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":"{message}"}}}}"#)
}

fn json(body: String) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn sse(body: String) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    r
}

fn status(code: StatusCode) -> Answer {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}

/// `echo` first, then fillers shaped like real tools (a description and a small schema).
fn tool_list(tools: usize) -> String {
    let mut list = vec![serde_json::json!({
        "name": ECHO,
        "description": "Returns `size` bytes of text, or the `text` argument.",
        "inputSchema": {"type": "object", "properties": {
            "text": {"type": "string"}, "size": {"type": "integer", "minimum": 0}}}
    })];
    for i in 1..tools {
        list.push(serde_json::json!({
            "name": format!("tool_{i:03}"),
            "description": format!("Filler tool number {i}: looks up a record by its key and returns it as JSON."),
            "inputSchema": {"type": "object", "properties": {
                "key": {"type": "string", "description": "The record's key"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100}},
                "required": ["key"]}
        }));
    }
    serde_json::json!({ "tools": list }).to_string()
}
