//! The `mcpServers` JSON of desktop MCP clients (Claude Desktop, Cursor, VS Code…), accepted
//! as a source of upstreams so a user can point the gateway at the file they already have.
//! Times are in milliseconds there, as those clients write them.

use super::env::Expanded;
use super::model::{Upstream, UpstreamKind, UpstreamName, UpstreamUrl, default_timeout};
use indexmap::IndexMap;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// `{"name": {...}, ...}` in file order.
#[derive(Debug, Default, Deserialize)]
pub struct McpServers(pub IndexMap<UpstreamName, McpServer>);

/// One entry, already converted: `None` when the entry is `disabled`.
#[derive(Debug)]
pub struct McpServer(pub Option<Entry>);

#[derive(Debug)]
pub struct Entry {
    pub kind: UpstreamKind,
    pub url: UpstreamUrl,
    pub headers: BTreeMap<String, Expanded>,
    pub timeout: Duration,
    pub command: Option<Expanded>,
    pub args: Vec<Expanded>,
    pub env: BTreeMap<String, Expanded>,
    pub cwd: Option<Expanded>,
    pub sse_read_timeout: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawEntry {
    url: Option<UpstreamUrl>,
    #[serde(rename = "type")]
    kind: Option<String>,
    transport: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, Expanded>,
    /// Milliseconds.
    timeout: Option<u64>,
    /// Milliseconds; applies to SSE upstreams.
    sse_read_timeout: Option<u64>,
    command: Option<Expanded>,
    #[serde(default)]
    args: Vec<Expanded>,
    #[serde(default)]
    env: BTreeMap<String, Expanded>,
    /// The working directory of a stdio server.
    cwd: Option<Expanded>,
    #[serde(default)]
    disabled: bool,
}

impl<'de> Deserialize<'de> for McpServer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawEntry::deserialize(d)?;
        convert(raw)
            .map(McpServer)
            .map_err(serde::de::Error::custom)
    }
}

fn convert(raw: RawEntry) -> Result<Option<Entry>, String> {
    if raw.disabled {
        return Ok(None);
    }
    let timeout = raw
        .timeout
        .map_or_else(default_timeout, Duration::from_millis);
    let kind = raw.kind.or(raw.transport);
    let stdio = raw.command.is_some() || !raw.args.is_empty() || !raw.env.is_empty();
    match kind.as_deref() {
        None | Some("http" | "streamable-http" | "streamableHttp" | "streamable_http")
            if !stdio => {}
        Some("stdio") | None => {
            if raw.url.is_some() {
                return Err("a stdio server (\"command\") has no \"url\"".into());
            }
            let command = raw.command.ok_or("a stdio server needs a \"command\"")?;
            return Ok(Some(Entry {
                kind: UpstreamKind::Stdio,
                url: UpstreamUrl::missing(),
                headers: BTreeMap::new(),
                timeout,
                command: Some(command),
                args: raw.args,
                env: raw.env,
                cwd: raw.cwd,
                sse_read_timeout: None,
            }));
        }
        Some("sse") => {
            let url = raw.url.ok_or("an sse server needs a \"url\"")?;
            return Ok(Some(Entry {
                kind: UpstreamKind::Sse,
                url,
                headers: raw.headers,
                timeout,
                command: None,
                args: Vec::new(),
                env: BTreeMap::new(),
                cwd: None,
                sse_read_timeout: raw.sse_read_timeout.map(Duration::from_millis),
            }));
        }
        Some(other) => {
            return Err(format!(
                "unknown server type {other:?}; expected \"http\" (also \"streamable-http\", \"streamableHttp\", \"streamable_http\"), \"sse\" or \"stdio\""
            ));
        }
    }
    if raw.sse_read_timeout.is_some() {
        return Err("\"sseReadTimeout\" applies to SSE servers only".into());
    }
    let url = raw.url.ok_or("an http server needs a \"url\"")?;
    Ok(Some(Entry {
        kind: UpstreamKind::Http,
        url,
        headers: raw.headers,
        timeout,
        command: None,
        args: Vec::new(),
        env: BTreeMap::new(),
        cwd: None,
        sse_read_timeout: None,
    }))
}

impl McpServers {
    pub fn into_upstreams(self) -> Vec<Upstream> {
        self.0
            .into_iter()
            .filter_map(|(name, McpServer(entry))| {
                entry.map(|e| Upstream {
                    name,
                    kind: e.kind,
                    url: e.url,
                    headers: e.headers,
                    timeout: e.timeout,
                    command: e.command,
                    args: e.args,
                    env: e.env,
                    cwd: e.cwd,
                    sse_read_timeout: e
                        .sse_read_timeout
                        .unwrap_or_else(super::model::Stdio::sse_read_timeout),
                    ..Upstream::http_defaults()
                })
            })
            .collect()
    }
}
