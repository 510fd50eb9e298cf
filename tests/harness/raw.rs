//! MCP over plain HTTP, for what a client library hides: session ids, raw JSON-RPC ids,
//! status codes, and the timing of streamed events.

use anyhow::Context;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub const ACCEPT: &str = "application/json, text/event-stream";

/// An answer: HTTP status, headers, and the JSON-RPC messages in it (one for JSON, every
/// event for SSE).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub messages: Vec<Value>,
}

impl Answer {
    /// The last message: the response, for a request.
    pub fn response(&self) -> &Value {
        self.messages.last().unwrap_or(&Value::Null)
    }

    pub fn session_id(&self) -> Option<String> {
        self.headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

pub async fn post(url: &str, session: Option<&str>, body: &Value) -> anyhow::Result<Answer> {
    post_with(url, session, body, &[]).await
}

pub async fn post_with(
    url: &str,
    session: Option<&str>,
    body: &Value,
    headers: &[(&str, &str)],
) -> anyhow::Result<Answer> {
    // Bounded: a gateway that never answers fails the test instead of hanging it.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .body(body.to_string());
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let is_sse = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    let text = resp
        .text()
        .await
        .with_context(|| format!("reading the answer (HTTP {status}, {headers:?}) to {body}"))?;
    let messages = if is_sse {
        sse_messages(&text)
    } else if text.trim().is_empty() {
        vec![]
    } else {
        vec![
            serde_json::from_str(&text)
                .with_context(|| format!("not JSON (HTTP {status}): {text}"))?,
        ]
    };
    Ok(Answer {
        status,
        headers,
        messages,
    })
}

/// The JSON of every `data:` event in an SSE body.
pub fn sse_messages(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            (!data.is_empty())
                .then(|| serde_json::from_str(&data.join("\n")).ok())
                .flatten()
        })
        .collect()
}

/// `initialize` + `notifications/initialized`; returns the session id.
pub async fn initialize(url: &str) -> anyhow::Result<String> {
    Ok(initialize_with(url, json!({})).await?.1)
}

/// `initialize` declaring `capabilities`, then `notifications/initialized`; returns the
/// answer to `initialize` and the session id.
pub async fn initialize_with(url: &str, capabilities: Value) -> anyhow::Result<(Answer, String)> {
    let a = post(
        url,
        None,
        &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": capabilities, "clientInfo": {"name": "raw", "version": "1"}}}),
    )
    .await?;
    anyhow::ensure!(
        a.status == 200,
        "initialize: HTTP {} {:?}",
        a.status,
        a.messages
    );
    let session = a
        .session_id()
        .context("initialize answered without mcp-session-id")?;
    let n = post(
        url,
        Some(&session),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await?;
    anyhow::ensure!(
        n.status == 202,
        "notifications/initialized: HTTP {}",
        n.status
    );
    Ok((a, session))
}

/// Messages of an SSE response as they stream: (event id, message). Abort the handle to close
/// the stream.
pub type Events = tokio::sync::mpsc::UnboundedReceiver<(Option<String>, Value)>;

pub fn follow(resp: reqwest::Response) -> (tokio::task::JoinHandle<()>, Events) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut resp = resp;
        let mut buf = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                let id = event
                    .lines()
                    .find_map(|l| l.strip_prefix("id:"))
                    .map(|s| s.trim().to_string());
                for m in sse_messages(&event) {
                    if tx.send((id.clone(), m)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    (task, rx)
}

/// The next message that `want` accepts, within 15 s.
pub async fn wait_for(
    rx: &mut Events,
    what: &str,
    want: impl Fn(&Value) -> bool,
) -> anyhow::Result<(Option<String>, Value)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((id, m))) if want(&m) => return Ok((id, m)),
            Ok(Some(_)) => continue,
            _ => anyhow::bail!("no {what} within 15 s"),
        }
    }
}

/// POSTs a request whose answer is an SSE stream, and follows it.
pub async fn post_following(
    url: &str,
    session: &str,
    body: &Value,
) -> anyhow::Result<(tokio::task::JoinHandle<()>, Events)> {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .header("mcp-session-id", session)
        .body(body.to_string())
        .send()
        .await?;
    Ok(follow(resp))
}

pub fn call(id: Value, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}})
}

/// Posts and reads an SSE answer as it streams, noting when each message arrived.
pub async fn post_streaming(
    url: &str,
    session: &str,
    body: &Value,
) -> anyhow::Result<Vec<(Duration, Value)>> {
    let start = Instant::now();
    let (_task, mut events) = post_following(url, session, body).await?;
    let mut out = Vec::new();
    while let Some((_, message)) = events.recv().await {
        out.push((start.elapsed(), message));
    }
    Ok(out)
}

/// `initialize` + `notifications/initialized` with these headers (credentials); the answer to
/// `initialize` and the session id.
pub async fn initialize_with_headers(
    url: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(Answer, String)> {
    let a = post_with(
        url,
        None,
        &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}),
        headers,
    )
    .await?;
    anyhow::ensure!(
        a.status == 200,
        "initialize: HTTP {} {:?}",
        a.status,
        a.messages
    );
    let session = a
        .session_id()
        .context("initialize answered without mcp-session-id")?;
    let n = post_with(
        url,
        Some(&session),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        headers,
    )
    .await?;
    anyhow::ensure!(
        n.status == 202,
        "notifications/initialized: HTTP {}",
        n.status
    );
    Ok((a, session))
}
