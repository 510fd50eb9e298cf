//! A small MCP client for load: one pooled HTTP/1.1 client, JSON-RPC over streamable HTTP,
//! answers read as JSON or as SSE and checked, never just counted.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};

pub const PROTOCOL_VERSION: &str = "2025-06-18";

#[derive(Clone)]
pub struct Mcp {
    http: Client<HttpConnector, Full<Bytes>>,
    pub url: hyper::Uri,
}

/// What a request should have produced; anything else counts as an error.
#[derive(Debug, Clone)]
pub enum Expect {
    /// `content[0].text` of exactly this many bytes.
    Text(usize),
    /// An `initialize` result and a session header.
    Session,
}

static IDS: AtomicU64 = AtomicU64::new(1);

impl Mcp {
    pub fn new(url: &str, pool: usize) -> anyhow::Result<Mcp> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool)
            .build(connector);
        Ok(Mcp {
            http,
            url: url.parse()?,
        })
    }

    /// Sends one JSON-RPC message; returns the answer with the same id (`None` for 202) and
    /// the session header.
    pub async fn send(
        &self,
        session: Option<&str>,
        body: &Value,
    ) -> anyhow::Result<(Option<Value>, Option<String>)> {
        self.send_with(session, body, &[]).await
    }

    /// [`Mcp::send`] with more headers.
    pub async fn send_with(
        &self,
        session: Option<&str>,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(Option<Value>, Option<String>)> {
        let mut req = Request::post(self.url.clone())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(s) = session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", PROTOCOL_VERSION);
        }
        let req = req.body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
        let res = self.http.request(req).await?;
        let status = res.status();
        let session = res
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let sse = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let bytes = res.into_body().collect().await?.to_bytes();
        if status.as_u16() == 202 {
            return Ok((None, session));
        }
        anyhow::ensure!(
            status.is_success(),
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        );
        let id = &body["id"];
        let answer = if sse {
            switchboard_protocol::sse::parse(&bytes)
                .into_iter()
                .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
                .find(|m| &m["id"] == id && (m.get("result").is_some() || m.get("error").is_some()))
        } else {
            Some(serde_json::from_slice::<Value>(&bytes)?)
        };
        let answer = answer.ok_or_else(|| anyhow::anyhow!("no answer with id {id}"))?;
        if let Some(e) = answer.get("error") {
            anyhow::bail!("JSON-RPC error {e}");
        }
        Ok((Some(answer), session))
    }

    /// `initialize` + `notifications/initialized`; returns the session.
    pub async fn open(&self) -> anyhow::Result<String> {
        let (answer, session) = self.send(None, &initialize()).await?;
        check(&Expect::Session, answer.as_ref(), session.as_deref())?;
        let session = session.ok_or_else(|| anyhow::anyhow!("no mcp-session-id"))?;
        self.send(
            Some(&session),
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .await?;
        Ok(session)
    }

    pub async fn call(&self, session: &str, tool: &str, args: &Value) -> anyhow::Result<Value> {
        let req = json!({"jsonrpc": "2.0", "id": next_id(), "method": "tools/call",
            "params": {"name": tool, "arguments": args}});
        let (answer, _) = self.send(Some(session), &req).await?;
        answer.ok_or_else(|| anyhow::anyhow!("202 for a request"))
    }

    /// A `tools/call` as a client of the stateless revision sends it.
    pub async fn call_stateless(&self, tool: &str, args: &Value) -> anyhow::Result<Value> {
        let req = json!({"jsonrpc": "2.0", "id": next_id(), "method": "tools/call",
        "params": {"name": tool, "arguments": args, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }}});
        let headers = [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", tool),
        ];
        let (answer, _) = self.send_with(None, &req, &headers).await?;
        answer.ok_or_else(|| anyhow::anyhow!("202 for a request"))
    }

    /// Every page of `tools/list`.
    pub async fn list_tools(&self, session: &str) -> anyhow::Result<Vec<Value>> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let req = json!({"jsonrpc": "2.0", "id": next_id(), "method": "tools/list", "params": params});
            let (answer, _) = self.send(Some(session), &req).await?;
            let result = answer
                .as_ref()
                .and_then(|a| a.get("result"))
                .ok_or_else(|| anyhow::anyhow!("tools/list without a result"))?;
            if let Some(page) = result["tools"].as_array() {
                tools.extend(page.iter().cloned());
            }
            cursor = result["nextCursor"].as_str().map(str::to_string);
            if cursor.is_none() {
                return Ok(tools);
            }
        }
        anyhow::bail!("tools/list did not end after 1000 pages")
    }
}

pub fn next_id() -> u64 {
    IDS.fetch_add(1, Ordering::Relaxed)
}

pub fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": next_id(), "method": "initialize", "params": {
        "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
        "clientInfo": {"name": "switchboard-bench", "version": "1"}}})
}

/// Checks an answer against what was expected.
pub fn check(expect: &Expect, answer: Option<&Value>, session: Option<&str>) -> anyhow::Result<()> {
    let result = answer
        .and_then(|a| a.get("result"))
        .ok_or_else(|| anyhow::anyhow!("no result"))?;
    match expect {
        Expect::Text(n) => {
            anyhow::ensure!(result["isError"] != true, "isError: {result}");
            let got = result["content"][0]["text"].as_str().map(str::len);
            anyhow::ensure!(got == Some(*n), "text of {got:?} bytes, expected {n}");
        }
        Expect::Session => {
            anyhow::ensure!(
                result["protocolVersion"].is_string(),
                "initialize without protocolVersion"
            );
            anyhow::ensure!(session.is_some(), "initialize without mcp-session-id");
        }
    }
    Ok(())
}
