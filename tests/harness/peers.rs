//! Real upstream MCP servers for the tests.

use super::{Log, capture, eventually, repo_root};
use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct AddRequest {
    pub a: i64,
    pub b: i64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct SlowRequest {
    /// How long to take, in milliseconds.
    pub ms: u64,
}

/// A small rmcp server whose `whoami` tool names the instance, so a test can tell which
/// upstream answered.
#[derive(Debug, Clone)]
pub struct TestServer {
    label: String,
    tool_router: ToolRouter<Self>,
}

impl TestServer {
    pub fn new(label: &str) -> TestServer {
        TestServer {
            label: label.to_string(),
            tool_router: TestServer::tool_router(),
        }
    }
}

#[tool_router]
impl TestServer {
    #[tool(description = "Add two integers")]
    fn add(&self, Parameters(AddRequest { a, b }): Parameters<AddRequest>) -> String {
        (a + b).to_string()
    }

    #[tool(description = "Name of the server instance that answers")]
    fn whoami(&self) -> String {
        self.label.clone()
    }

    #[tool(description = "Answer after a while")]
    async fn slow(&self, Parameters(SlowRequest { ms }): Parameters<SlowRequest>) -> String {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        "done".into()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// Lists its tools in pages, as large servers do.
#[derive(Debug, Clone)]
pub struct PagedServer {
    tools: usize,
    page: usize,
    /// Names longer than clients accept (80 characters).
    long_names: bool,
    /// Client notifications it received, in order (`cancelled:<id>`, `roots_list_changed`).
    notifications: Arc<Mutex<Vec<String>>>,
}

impl PagedServer {
    fn name(&self, i: usize) -> String {
        if self.long_names {
            format!("tool_{i:03}_{}", "x".repeat(71))
        } else {
            format!("tool_{i:03}")
        }
    }
}

impl ServerHandler for PagedServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        request: Option<rmcp::model::PaginatedRequestParams>,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, rmcp::ErrorData> {
        let start: usize = request
            .and_then(|r| r.cursor)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let end = (start + self.page).min(self.tools);
        let schema: Arc<serde_json::Map<String, serde_json::Value>> = Arc::new(
            [("type".to_string(), serde_json::Value::from("object"))]
                .into_iter()
                .collect(),
        );
        let page = (start..end)
            .map(|i| rmcp::model::Tool::new(self.name(i), "one of many", schema.clone()))
            .collect();
        let mut result = rmcp::model::ListToolsResult::with_all_items(page);
        result.next_cursor = (end < self.tools).then(|| end.to_string());
        Ok(result)
    }

    async fn on_cancelled(
        &self,
        notification: rmcp::model::CancelledNotificationParam,
        _context: rmcp::service::NotificationContext<rmcp::RoleServer>,
    ) {
        let id = notification
            .request_id
            .map(|i| serde_json::to_string(&i).unwrap_or_default())
            .unwrap_or_default();
        if let Ok(mut n) = self.notifications.lock() {
            n.push(format!("cancelled:{id}"));
        }
    }

    async fn on_roots_list_changed(
        &self,
        _context: rmcp::service::NotificationContext<rmcp::RoleServer>,
    ) {
        if let Ok(mut n) = self.notifications.lock() {
            n.push("roots_list_changed".into());
        }
    }

    /// Answers with the name it was called by.
    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        if request.name == "change" {
            // Tell the client the tool list changed (on the session's own stream).
            let _ = _context.peer.notify_tool_list_changed().await;
            return Ok(rmcp::model::CallToolResult::success(vec![
                rmcp::model::ContentBlock::text("changed"),
            ])
            .into());
        }
        let known = (0..self.tools).any(|i| self.name(i) == request.name);
        if !known {
            return Err(rmcp::ErrorData::invalid_params(
                format!("no tool {}", request.name),
                None,
            ));
        }
        Ok(
            rmcp::model::CallToolResult::success(vec![rmcp::model::ContentBlock::text(
                request.name.to_string(),
            )])
            .into(),
        )
    }
}

/// An rmcp server on 127.0.0.1:<ephemeral>/mcp, in this process.
pub struct RmcpServer {
    pub addr: SocketAddr,
    /// HTTP requests that reached it.
    pub requests: Arc<AtomicUsize>,
    /// The headers of every request that reached it.
    pub headers: Arc<Mutex<Vec<HeaderMap>>>,
    /// The HTTP method of every request that reached it, in order.
    pub methods: Arc<Mutex<Vec<String>>>,
    /// Client notifications a paging server received.
    pub notifications: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
}

impl RmcpServer {
    pub async fn start(label: &str) -> anyhow::Result<RmcpServer> {
        Self::start_with(label, false).await
    }

    /// `json_response`: a stateless server that answers with one JSON body instead of an SSE
    /// stream, so nothing is sent before the result is ready.
    pub async fn start_on(label: &str, port: u16) -> anyhow::Result<RmcpServer> {
        Self::serve(label, false, port).await
    }

    pub async fn start_with(label: &str, json_response: bool) -> anyhow::Result<RmcpServer> {
        Self::serve(label, json_response, 0).await
    }

    /// Like [`Self::start_paged`], with 80-character tool names.
    pub async fn start_paged_long(tools: usize, page: usize) -> anyhow::Result<RmcpServer> {
        Self::start_paged_with(tools, page, true).await
    }

    /// A server whose `tools/list` pages: `tools` tools named `tool_000`…, `page` per page.
    /// It records the client notifications it receives in `notifications`.
    pub async fn start_paged(tools: usize, page: usize) -> anyhow::Result<RmcpServer> {
        Self::start_paged_with(tools, page, false).await
    }

    async fn start_paged_with(
        tools: usize,
        page: usize,
        long_names: bool,
    ) -> anyhow::Result<RmcpServer> {
        let notifications = Arc::new(Mutex::new(Vec::new()));
        let seen = notifications.clone();
        let mut server = Self::serve_handler(
            move || PagedServer {
                tools,
                page,
                long_names,
                notifications: seen.clone(),
            },
            false,
            0,
        )
        .await?;
        server.notifications = notifications;
        Ok(server)
    }

    /// A [`crate::full::FullServer`] that speaks the revisions in `versions`; what it is asked
    /// is recorded in `notifications`.
    pub async fn start_full(
        versions: &'static [rmcp::model::ProtocolVersion],
    ) -> anyhow::Result<RmcpServer> {
        let record = Arc::new(Mutex::new(Vec::new()));
        let seen = record.clone();
        let mut server = Self::serve_handler(
            move || crate::full::FullServer::new(versions, seen.clone()),
            false,
            0,
        )
        .await?;
        server.notifications = record;
        Ok(server)
    }

    async fn serve(label: &str, json_response: bool, port: u16) -> anyhow::Result<RmcpServer> {
        let label = label.to_string();
        Self::serve_handler(
            move || TestServer {
                label: label.clone(),
                tool_router: TestServer::tool_router(),
            },
            json_response,
            port,
        )
        .await
    }

    /// A [`TestServer`] that also accepts requests for `host` (its DNS name), as a server
    /// behind a name must: rmcp refuses other `Host` values than loopback's by default
    /// (DNS-rebinding protection).
    pub async fn start_named(label: &str, host: &str) -> anyhow::Result<RmcpServer> {
        let label = label.to_string();
        Self::serve_handler_for(
            move || TestServer::new(&label),
            false,
            0,
            &[host, "localhost", "127.0.0.1"],
            None,
        )
        .await
    }

    async fn serve_handler<S: ServerHandler + Send + 'static>(
        factory: impl Fn() -> S + Send + Sync + 'static,
        json_response: bool,
        port: u16,
    ) -> anyhow::Result<RmcpServer> {
        Self::serve_handler_for(factory, json_response, port, &[], None).await
    }

    /// A [`TestServer`] that takes only tokens `guard` accepts (401 otherwise); what reaches
    /// it, refused or not, is recorded.
    pub async fn start_guarded(
        label: &str,
        guard: Arc<crate::auth::TokenGuard>,
    ) -> anyhow::Result<RmcpServer> {
        let label = label.to_string();
        Self::serve_handler_for(move || TestServer::new(&label), false, 0, &[], Some(guard)).await
    }

    /// `hosts`: the `Host` values accepted (none given: rmcp's default, loopback's).
    async fn serve_handler_for<S: ServerHandler + Send + 'static>(
        factory: impl Fn() -> S + Send + Sync + 'static,
        json_response: bool,
        port: u16,
        hosts: &[&str],
        guard: Option<Arc<crate::auth::TokenGuard>>,
    ) -> anyhow::Result<RmcpServer> {
        let stop = CancellationToken::new();
        let mut config = StreamableHttpServerConfig::default();
        if !hosts.is_empty() {
            config = config.with_allowed_hosts(hosts.iter().copied());
        }
        let service: StreamableHttpService<S, LocalSessionManager> = StreamableHttpService::new(
            move || Ok(factory()),
            Default::default(),
            config
                .with_json_response(json_response)
                // JSON answers are only given by rmcp's stateless (non-legacy) mode.
                .with_legacy_session_mode(!json_response)
                .with_sse_keep_alive(None)
                .with_cancellation_token(stop.child_token()),
        );
        let requests = Arc::new(AtomicUsize::new(0));
        let headers = Arc::new(Mutex::new(Vec::new()));
        let methods = Arc::new(Mutex::new(Vec::new()));
        let mut app = axum::Router::new().nest_service("/mcp", service);
        if let Some(guard) = guard {
            app = app.layer(axum::middleware::from_fn_with_state(
                guard,
                crate::auth::guard,
            ));
        }
        let app = app.layer(axum::middleware::from_fn_with_state(
            (requests.clone(), headers.clone(), methods.clone()),
            record,
        ));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        // Small SSE writes must not wait for delayed ACKs (40 ms each on loopback).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let token = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await;
        });
        Ok(RmcpServer {
            addr,
            requests,
            headers,
            methods,
            notifications: Arc::default(),
            stop,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn request_count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Headers of every request so far.
    pub fn seen_headers(&self) -> Vec<HeaderMap> {
        self.headers.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// How many requests with this HTTP method reached it.
    pub fn method_count(&self, method: &str) -> usize {
        self.methods
            .lock()
            .map(|m| m.iter().filter(|x| *x == method).count())
            .unwrap_or_default()
    }

    /// Stops serving: later connections are refused.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for RmcpServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

type Recorder = (
    Arc<AtomicUsize>,
    Arc<Mutex<Vec<HeaderMap>>>,
    Arc<Mutex<Vec<String>>>,
);

async fn record(
    State((counter, headers, methods)): State<Recorder>,
    req: Request,
    next: Next,
) -> Response {
    counter.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut h) = headers.lock() {
        h.push(req.headers().clone());
    }
    if let Ok(mut m) = methods.lock() {
        m.push(req.method().to_string());
    }
    next.run(req).await
}

/// A Node MCP server of the project's npm test peers, on 127.0.0.1 and an ephemeral port.
pub struct NodeServer {
    child: Child,
    pub addr: SocketAddr,
    pub log: Log,
}

/// `@modelcontextprotocol/server-everything` over streamable HTTP, bound to loopback by the
/// preload in `scripts/loopback.cjs`.
pub type Everything = NodeServer;

impl NodeServer {
    pub async fn start() -> anyhow::Result<NodeServer> {
        Self::everything("streamableHttp").await
    }

    /// The same server on the deprecated HTTP+SSE transport; its stream is [`Self::sse_url`].
    pub async fn start_sse() -> anyhow::Result<NodeServer> {
        Self::everything("sse").await
    }

    /// The server side of the official conformance suite (`tests/servers/conformance_fixtures.mjs`,
    /// on the TypeScript SDK): the tools, resources and prompts its scenarios call.
    pub async fn conformance_fixtures() -> anyhow::Result<NodeServer> {
        let script = repo_root().join("tests/servers/conformance_fixtures.mjs");
        Self::spawn("conformance fixtures", &[script.as_os_str()]).await
    }

    pub fn sse_url(&self) -> String {
        format!("http://{}/sse", self.addr)
    }

    async fn everything(mode: &str) -> anyhow::Result<NodeServer> {
        let root = repo_root();
        let script = root
            .join(".tools/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        let preload = root.join("scripts/loopback.cjs");
        Self::spawn(
            "server-everything",
            &[
                "--require".as_ref(),
                preload.as_os_str(),
                script.as_os_str(),
                mode.as_ref(),
            ],
        )
        .await
    }

    /// Runs `node args…` and waits for the line with the address it listens on.
    async fn spawn(what: &str, args: &[&std::ffi::OsStr]) -> anyhow::Result<NodeServer> {
        let sdk = repo_root().join(".tools/npm/node_modules/@modelcontextprotocol/sdk");
        anyhow::ensure!(
            sdk.is_dir(),
            "{} is missing: run scripts/setup.sh npm",
            sdk.display()
        );
        let mut child = Command::new("node")
            .args(args)
            .env("PORT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start node")?;
        let log = Log::default();
        if let Some(out) = child.stdout.take() {
            capture(out, log.clone());
        }
        if let Some(err) = child.stderr.take() {
            capture(err, log.clone());
        }
        let l = log.clone();
        let addr = eventually(
            Duration::from_secs(30),
            &format!("{what} to listen"),
            || {
                let addr = l.text().lines().find_map(|line| {
                    line.strip_prefix("switchboard-test-peer listening on ")
                        .and_then(|a| a.trim().parse().ok())
                });
                async move { addr }
            },
        )
        .await
        .with_context(|| format!("{what} output:\n{}", log.text()))?;
        Ok(NodeServer { child, addr, log })
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An MCP server of the Python SDK that speaks both protocol eras on one endpoint
/// (`tests/servers/python_dual_era_server.py`, tools `add`, `era` and `confirm`, which asks
/// for input with a 2026-07-28 multi-round-trip request), on 127.0.0.1 and an ephemeral port;
/// or ([`DualEraServer::modern_only`]) one that refuses everything but 2026-07-28.
pub struct DualEraServer {
    child: Child,
    pub addr: SocketAddr,
    pub log: Log,
}

impl DualEraServer {
    pub async fn start() -> anyhow::Result<DualEraServer> {
        Self::with_args(&[]).await
    }

    /// A server of 2026-07-28 alone: `initialize` gets 400 with -32022; its `era` tool
    /// answers `name`.
    pub async fn modern_only(name: &str) -> anyhow::Result<DualEraServer> {
        Self::with_args(&["--modern-only", "--name", name]).await
    }

    async fn with_args(args: &[&str]) -> anyhow::Result<DualEraServer> {
        let python = repo_root().join(".tools/venv/bin/python");
        let mut child = Command::new(&python)
            .arg(repo_root().join("tests/servers/python_dual_era_server.py"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", python.display()))?;
        let log = Log::default();
        if let Some(out) = child.stdout.take() {
            capture(out, log.clone());
        }
        if let Some(err) = child.stderr.take() {
            capture(err, log.clone());
        }
        let l = log.clone();
        let port: u16 = eventually(
            Duration::from_secs(30),
            "the dual-era server to listen",
            || {
                let port = l
                    .text()
                    .lines()
                    .find_map(|line| line.strip_prefix("listening on ")?.trim().parse().ok());
                async move { port }
            },
        )
        .await
        .with_context(|| format!("dual-era server output:\n{}", log.text()))?;
        Ok(DualEraServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

impl Drop for DualEraServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real SOCKS5 server (PyPI's `pproxy`, installed by `scripts/setup.sh python`) on
/// 127.0.0.1, requiring a username and password on every connection.
pub struct Socks5Proxy {
    child: Child,
    pub addr: SocketAddr,
    pub log: Log,
}

impl Socks5Proxy {
    pub async fn start(username: &str, password: &str) -> anyhow::Result<Socks5Proxy> {
        let bin = repo_root().join(".tools/venv/bin/pproxy");
        anyhow::ensure!(
            bin.is_file(),
            "{} is missing: run scripts/setup.sh python",
            bin.display()
        );
        // Port 0: pproxy picks one and prints it ("Serving on ipv? 127.0.0.1:38041 by socks5").
        let mut child = Command::new(bin)
            .arg("-l")
            .arg(format!("socks5://127.0.0.1:0#{username}:{password}"))
            // Authenticate every connection (pproxy otherwise trusts an address for 30 days).
            .args(["--auth", "0", "-v"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start pproxy")?;
        let log = Log::default();
        if let Some(out) = child.stdout.take() {
            capture(out, log.clone());
        }
        if let Some(err) = child.stderr.take() {
            capture(err, log.clone());
        }
        let l = log.clone();
        let addr: SocketAddr = eventually(Duration::from_secs(20), "pproxy to listen", || {
            let addr = l.text().lines().find_map(|line| {
                line.split("Serving on ")
                    .nth(1)?
                    .split_whitespace()
                    .find_map(|w| w.parse::<SocketAddr>().ok())
            });
            async move { addr }
        })
        .await
        .with_context(|| format!("pproxy output:\n{}", log.text()))?;
        Ok(Socks5Proxy { child, addr, log })
    }
}

impl Drop for Socks5Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves `app` on a free loopback port until the test ends: the plain HTTP peers tests
/// write for one scenario.
pub async fn serve_app(app: axum::Router) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}
