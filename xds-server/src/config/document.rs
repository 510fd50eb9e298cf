//! The gateway file as written: every section, before `mcpServers` and the environment's
//! upstreams are merged in and the parts are checked ([`super::load`]).

use super::auth::Auth;
use super::mcp_servers::McpServers;
use super::model::{Aggregation, AuditConfig, Server, SessionConfig, TracingConfig, Upstream};
use super::values::PemFile;
use serde::Deserialize;

/// The file as written (before `mcpServers` and environment upstreams are merged in).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub session: SessionConfig,
    #[serde(default)]
    pub aggregation: Aggregation,
    /// Client authentication and access rules.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// One JSON line per MCP request.
    #[serde(default)]
    pub audit: Option<AuditConfig>,
    /// Spans to an OpenTelemetry collector.
    #[serde(default)]
    pub tracing: Option<TracingConfig>,
    #[serde(default)]
    pub upstreams: Vec<Upstream>,
    /// The `mcpServers` object of desktop MCP clients, accepted as more upstreams.
    #[serde(default, rename = "mcpServers")]
    pub mcp_servers: Option<McpServers>,
    /// The same object as VS Code's `mcp.json` names it.
    #[serde(default)]
    pub servers: Option<McpServers>,
    /// Requests routed by hostname to whole MCP servers.
    #[serde(default)]
    pub hosts: Option<super::hosts::HostsSection>,
    /// Trust shared by every HTTPS upstream without a CA of its own.
    #[serde(default)]
    pub tls: TrustConfig,
}

/// What "the system roots" are for Envoy: a CA bundle the control plane reads and pushes by
/// SDS (Envoy will not check a certificate's name against roots it was not given).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// Default: `SSL_CERT_FILE`, else the operating system's bundle.
    #[serde(default)]
    pub system_ca_file: Option<PemFile>,
}
