//! The gateway YAML schema. Every struct rejects unknown fields, so a typo is an error with a
//! line number instead of a silently ignored setting.

use super::env::Expanded;
use super::values::optional_duration;
pub use super::values::{
    Address, PemFile, UpstreamName, UpstreamUrl, check_upstream_name, duration, parse_duration,
};
// The filter's own enums: the YAML spells them as the filter configuration does.
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
pub use switchboard_protocol::filter_config::{FanOut, PrefixMode};

#[cfg(test)]
mod tests {
    use crate::config::{env::Environment, load_str};

    #[test]
    fn long_prefixes_are_warned_about() {
        let g = load_str(
            "upstreams:\n  - name: a-rather-long-upstream-name\n    url: http://h/mcp\n  - name: b\n    url: http://h/mcp\n",
            "gw.yaml",
            &Environment::from_pairs(&[]),
        )
        .unwrap();
        let w = g.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("a-rather-long-upstream-name") && w[0].contains("shortened"),
            "{w:?}"
        );
    }
}

/// The validated gateway: what the translation to Envoy resources takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    pub server: Server,
    pub session: SessionConfig,
    pub aggregation: Aggregation,
    pub auth: Option<super::auth::Auth>,
    pub audit: Option<AuditConfig>,
    /// Spans of every request, by Envoy's OpenTelemetry tracer.
    pub tracing: Option<TracingConfig>,
    pub upstreams: Vec<Upstream>,
    /// Requests routed by hostname to whole MCP servers (`hosts:`, or a tunnel file).
    pub hosts: Option<super::hosts::Hosts>,
    /// The CA bundle that HTTPS upstreams (and JWKS URLs) without a CA of their own are
    /// checked against; found at load when one needs it.
    pub system_ca: Option<PemFile>,
    /// Top-level keys of a desktop client's file that are not the gateway's (Claude
    /// Desktop's `globalShortcut`, VS Code's `inputs`): ignored, and warned about.
    pub ignored_keys: Vec<String>,
}

/// Tracing: Envoy's OpenTelemetry tracer sends a span per request (tagged with what the
/// filter learned: the MCP method, the tool, the upstream) to an OTLP/gRPC collector.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// The collector's OTLP/gRPC address, `host:port` (`${VAR}` expanded).
    pub otlp: Expanded,
    /// The share of requests traced when the client's `traceparent` did not decide (0–1).
    #[serde(default = "TracingConfig::all")]
    pub sample: f64,
    /// The `service.name` of the spans.
    #[serde(default = "TracingConfig::default_service")]
    pub service_name: String,
}

impl TracingConfig {
    fn all() -> f64 {
        1.0
    }

    fn default_service() -> String {
        "switchboard".into()
    }

    /// The collector's host and port (checked at load).
    pub fn collector(&self) -> Option<(&str, u16)> {
        let (host, port) = self.otlp.0.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port.parse().ok().filter(|p| *p != 0)?;
        (!host.is_empty()).then_some((host, port))
    }
}

/// Where Envoy writes the audit log (its access log, with what the filter learned).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// A file (reopened on SIGHUP, for log rotation).
    #[serde(default)]
    pub file: Option<Expanded>,
    /// Envoy's standard output.
    #[serde(default)]
    pub stdout: bool,
}

impl Gateway {
    /// MCP authorization (`auth.oauth`), when configured.
    pub fn oauth(&self) -> Option<&super::oauth::OAuthConfig> {
        self.auth.as_ref()?.oauth.as_ref()
    }

    /// Whether old clients get the legacy `/sse` endpoint.
    pub fn legacy_sse(&self) -> bool {
        self.server.transports.contains(&ClientTransport::Sse)
    }

    /// Things that work but that an operator should know: printed by `validate` and logged
    /// at load.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .ignored_keys
            .iter()
            .map(|k| format!("ignored the top-level key {k:?}: this is a desktop client's file, of which the gateway reads only the servers"))
            .collect();
        for u in &self.upstreams {
            if u.tls.as_ref().is_some_and(|t| t.insecure_skip_verify) {
                out.push(format!(
                    "upstream {:?}: tls.insecure_skip_verify is set: its certificate is NOT verified, so anyone on the network path can impersonate it and read its traffic",
                    u.name.0
                ));
            }
            // MCP authorization forbids passing the gateway's tokens on ("token passthrough"):
            // the upstream could use them anywhere the client could.
            if self.oauth().is_some()
                && let Some(h) = u
                    .auth
                    .pass_through
                    .headers
                    .iter()
                    .find(|h| h.source_header.eq_ignore_ascii_case("authorization"))
            {
                out.push(format!(
                    "upstream {:?}: auth.pass_through sends the client's own token ({}) on as {}: it was issued for this gateway, and the MCP authorization specification forbids passing it through; use auth.token_exchange unless this upstream is meant to see it",
                    u.name.0, h.source_header, h.target_header
                ));
            }
            let used = self.prefix(u).len() + self.aggregation.separator.len();
            if used > 24 {
                out.push(format!(
                    "upstream {:?}: its prefix and separator take {used} of the 64 characters clients accept for a name; tool and prompt names longer than {} characters will be shortened (name~hash)",
                    u.name.0,
                    64usize.saturating_sub(used)
                ));
            }
        }
        out
    }

    /// Every certificate and key file it names, and REST upstreams' OpenAPI documents kept
    /// in files (absolute once loaded from a file): watched, so a rotated or edited file is
    /// read again and pushed to Envoy.
    pub fn pem_files(&self) -> Vec<&std::path::Path> {
        let mut paths: Vec<&std::path::Path> = self
            .pem_sources()
            .into_iter()
            .map(|f| f.path.as_path())
            .collect();
        // REST upstreams' OpenAPI documents kept in files.
        paths.extend(
            self.upstreams
                .iter()
                .filter_map(|u| u.openapi.as_ref())
                .filter(|o| o.url().is_none())
                .map(|o| std::path::Path::new(o.source.0.as_str())),
        );
        paths
    }

    /// Every certificate, key and JWKS file it names, with what was read from it.
    pub fn pem_sources(&self) -> Vec<&PemFile> {
        let mut out = Vec::new();
        out.extend(&self.system_ca);
        if let Some(t) = &self.server.tls {
            out.extend([&t.cert_file, &t.key_file]);
            out.extend(&t.client_ca);
        }
        for t in self.upstreams.iter().filter_map(|u| u.tls.as_ref()) {
            out.extend(t.ca_cert.iter().chain(&t.client_cert).chain(&t.client_key));
        }
        out.extend(self.hosts.iter().filter_map(|h| h.ca_file.as_ref()));
        for c in self.auth.iter().flat_map(|a| &a.clients) {
            if let Some(f) = c.jwt.as_ref().and_then(|j| j.jwks.file.as_ref()) {
                out.push(f);
            }
        }
        for a in self
            .oauth()
            .into_iter()
            .flat_map(|o| &o.authorization_servers)
        {
            out.extend(a.jwks.as_ref().and_then(|j| j.file.as_ref()));
        }
        for u in &self.upstreams {
            out.extend(
                u.auth
                    .token_exchange
                    .as_ref()
                    .and_then(|te| te.private_key.as_ref())
                    .map(|k| &k.file),
            );
        }
        out
    }

    /// Every secret value in the configuration (the session key, header values, API keys,
    /// proxy credentials, stdio environment values, the secret members of JWKS keys), for
    /// redacting whatever the commands print.
    pub fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        out.extend(self.session.key.iter().map(|k| k.0.clone()));
        out.extend(self.session.previous_keys.iter().map(|k| k.0.clone()));
        for u in &self.upstreams {
            out.extend(u.headers.values().map(|v| v.0.clone()));
            out.extend(u.env.values().map(|v| v.0.clone()));
            if let Some((_, headers)) = &u.sse {
                out.extend(headers.values().map(|v| v.0.clone()));
            }
            if let Some(p) = &u.proxy {
                out.extend(p.username.iter().chain(&p.password).map(|v| v.0.clone()));
            }
        }
        for c in self.auth.iter().flat_map(|a| &a.clients) {
            if let Some(k) = &c.api_key {
                out.extend(k.keys.iter().map(|k| k.0.clone()));
            }
            let jwks = c.jwt.as_ref().and_then(|j| j.jwks.file.as_ref());
            if let Some(v) =
                jwks.and_then(|f| serde_json::from_slice::<serde_json::Value>(&f.pem).ok())
            {
                for key in v["keys"].as_array().into_iter().flatten() {
                    for member in ["k", "d", "p", "q", "dp", "dq", "qi"] {
                        out.extend(key[member].as_str().map(str::to_string));
                    }
                }
            }
        }
        out.retain(|s| !s.is_empty());
        out
    }

    /// Whether anything is checked against the system roots: an HTTPS upstream without a
    /// CA of its own (and not `insecure_skip_verify`), or a JWKS fetched over HTTPS.
    pub fn needs_system_roots(&self) -> bool {
        let upstream = self.upstreams.iter().any(|u| {
            matches!(u.kind, UpstreamKind::Http | UpstreamKind::Openapi)
                && u.url.is_tls()
                && u.tls
                    .as_ref()
                    .is_none_or(|t| t.ca_cert.is_none() && !t.insecure_skip_verify)
        });
        let jwks = self
            .auth
            .iter()
            .flat_map(|a| &a.clients)
            .filter_map(|c| c.jwt.as_ref()?.jwks.url.as_ref())
            .any(|u| u.is_tls());
        // An https issuer's keys and token endpoint are https too, as a rule.
        let oauth = self
            .oauth()
            .into_iter()
            .flat_map(|o| &o.authorization_servers)
            .any(|a| {
                a.issuer.starts_with("https:")
                    || a.jwks_url().is_some_and(|u| u.is_tls())
                    || a.token_endpoint().is_some_and(|u| u.is_tls())
            });
        let hosts = self.hosts.as_ref().is_some_and(|h| h.include_system_cas);
        upstream || jwks || oauth || hosts
    }

    /// The prefix of an upstream's tool and prompt names.
    pub fn prefix<'a>(&self, u: &'a Upstream) -> &'a str {
        u.tool_prefix.as_deref().unwrap_or(&u.name)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Seals session tokens. Every control plane (and so every Envoy) serving the same
    /// clients needs the same key; without one, `switchboard` makes a random key per process.
    pub key: Option<Expanded>,
    /// Keys rotated out: sessions they sealed stay valid (new ones are sealed with `key`).
    #[serde(default)]
    pub previous_keys: Vec<Expanded>,
    /// How long a session stays valid after `initialize`.
    #[serde(deserialize_with = "duration")]
    pub max_age: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            key: None,
            previous_keys: Vec::new(),
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Aggregation {
    /// Between prefix and name: `github__create_issue`.
    pub separator: String,
    /// What a fan-out (initialize, lists) does when an upstream fails.
    pub fan_out: FanOut,
    /// `always`, or `when_needed`: no prefix while there is a single upstream.
    pub prefix_mode: PrefixMode,
}

/// Which of an upstream's tools the gateway offers: globs (`*`, `?`) on its own tool names.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolFilter {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl Default for Aggregation {
    fn default() -> Self {
        Aggregation {
            separator: "__".into(),
            fan_out: FanOut::FailOpen,
            prefix_mode: PrefixMode::Always,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Address Envoy's MCP listener binds. Port 0 picks a free port (printed by `run`).
    /// Set at load from what was written: `listen`, or `port` (all interfaces).
    #[serde(skip)]
    pub listen: Address,
    /// `listen` as written.
    #[serde(rename = "listen")]
    pub listen_as_written: Option<Address>,
    /// The transport seed's spelling: listen on all interfaces, on this port.
    pub port: Option<u16>,
    /// Envoy's admin interface. Keep it on loopback: it can stop Envoy.
    pub admin: Address,
    /// The aggregated MCP endpoint.
    pub mcp_path: String,
    /// Base path of the per-upstream endpoints: `<upstream_path>/<name>/mcp`.
    pub upstream_path: String,
    /// Largest request body accepted on the MCP endpoint, in bytes.
    pub max_request_bytes: u64,
    /// Serve the MCP endpoint over TLS.
    pub tls: Option<ServerTls>,
    /// Client transports: `streamable_http` always; `sse` adds the deprecated HTTP+SSE
    /// transport for old clients (`sse_path`, `messages_path`, and per upstream).
    #[serde(alias = "transport")]
    pub transports: Vec<ClientTransport>,
    /// Serve clients of the stateless revision (2026-07-28) too, over upstream sessions
    /// opened per request. Off by default while the revision's support is partial: answering
    /// it would stop `auto` clients from falling back to the 2025 handshake.
    pub stateless_clients: bool,
    /// Which shell runs the MCP filter in Envoy: `native` (a dynamic module) or `wasm` (for
    /// meshes such as Istio). `switchboard run --data-plane` wins over it. Default: `native`
    /// where its module is found.
    pub data_plane: Option<crate::translate::DataPlane>,
    /// The legacy event stream of old clients.
    pub sse_path: String,
    /// Where old clients post their messages.
    pub messages_path: String,
    /// Browser clients: which origins may call the gateway.
    pub cors: Option<Cors>,
    /// `Host` values accepted (globs, like `mcp.example.com` or `localhost:*`); others get
    /// 403 (DNS-rebinding protection). Default: any host, unless the listener is on loopback,
    /// where only loopback names are.
    pub allowed_hosts: Option<Vec<String>>,
    /// A client must have sent all its request headers within this (Envoy's
    /// `request_headers_timeout`; answered 408).
    #[serde(deserialize_with = "duration")]
    pub request_headers_timeout: Duration,
    /// ... and its whole request, body included (`request_timeout`; 408).
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// A request or answer with no bytes either way for this long is ended
    /// (`stream_idle_timeout`); event streams stay busy with keep-alives.
    #[serde(deserialize_with = "duration")]
    pub stream_idle_timeout: Duration,
    /// switchboard's log level and Envoy's (`debug`, `info`, `warn`, `error`); the command
    /// line's `--log-level`/`--envoy-log-level` win over it.
    pub log_level: Option<super::hosts::LogLevel>,
    /// How long requests in flight may take to finish when `run` stops (Envoy's drain);
    /// the command line's `--drain-timeout` wins over it.
    #[serde(deserialize_with = "optional_duration")]
    pub shutdown_timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Exact origins (`https://app.example.com`), or `*`.
    pub origins: Vec<String>,
    #[serde(default = "Cors::default_methods")]
    pub methods: Vec<String>,
    /// Request headers browsers may send, besides the MCP ones.
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default = "Cors::default_max_age", deserialize_with = "duration")]
    pub max_age: Duration,
}

impl Cors {
    fn default_methods() -> Vec<String> {
        ["GET", "POST", "DELETE", "OPTIONS"]
            .map(String::from)
            .to_vec()
    }
    fn default_max_age() -> Duration {
        Duration::from_secs(600)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientTransport {
    #[serde(alias = "streamable-http", alias = "streamableHttp", alias = "http")]
    StreamableHttp,
    Sse,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: Address(SocketAddr::from(([127, 0, 0, 1], 8080))),
            listen_as_written: None,
            port: None,
            admin: Address(SocketAddr::from(([127, 0, 0, 1], 9901))),
            mcp_path: "/mcp".into(),
            upstream_path: "/upstreams".into(),
            max_request_bytes: 4 * 1024 * 1024,
            tls: None,
            transports: vec![ClientTransport::StreamableHttp],
            stateless_clients: false,
            data_plane: None,
            sse_path: "/sse".into(),
            messages_path: "/messages".into(),
            cors: None,
            allowed_hosts: None,
            request_headers_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            stream_idle_timeout: Duration::from_secs(300),
            log_level: None,
            shutdown_timeout: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Tools appear as `<name>__<tool>`; letters, digits, `-` and `_`.
    pub name: UpstreamName,
    #[serde(rename = "type", default)]
    pub kind: UpstreamKind,
    /// Streamable HTTP upstreams only; stdio upstreams are reached through the bridge.
    #[serde(default = "UpstreamUrl::missing")]
    pub url: UpstreamUrl,
    /// A REST upstream's base URL (its operations' paths follow its path).
    #[serde(default)]
    pub base_url: Option<UpstreamUrl>,
    /// A REST upstream's OpenAPI document.
    #[serde(default)]
    pub openapi: Option<OpenApiSource>,
    /// The tools its document yields (filled at load).
    #[serde(skip)]
    pub rest_tools: Vec<switchboard_protocol::rest::RestTool>,
    #[serde(default)]
    pub headers: BTreeMap<String, Expanded>,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Prefix of this upstream's tool and prompt names (default: the name).
    #[serde(default)]
    pub tool_prefix: Option<String>,
    #[serde(default)]
    pub tools: ToolFilter,
    /// Serve this upstream's list results from a cache shared by Envoy's workers for this
    /// long (until it says a list changed). Only for upstreams whose lists are the same for
    /// every client.
    #[serde(default, deserialize_with = "optional_duration")]
    pub cache: Option<Duration>,
    /// The largest list answer (one page) the gateway reads from it, in bytes; a larger one
    /// counts as a failure of the upstream (`aggregation.fan_out` decides what follows).
    #[serde(default = "default_max_list_bytes")]
    pub max_list_bytes: u64,
    /// The most items one page of its lists may hold; more count as a failure too.
    #[serde(default = "default_max_list_items")]
    pub max_list_items: u64,
    /// The MCP revision it speaks: `auto` (asked with `server/discover` once), `legacy`
    /// (2025: `initialize` and a session) or `modern` (2026-07-28).
    #[serde(default)]
    pub protocol: switchboard_protocol::filter_config::UpstreamProtocol,
    /// How Envoy connects to it: timeout, connection pool, HTTP/2.
    #[serde(default)]
    pub transport: Transport,
    /// TLS settings of an `https://` upstream (default: system roots, SNI from the URL).
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    /// Reach it through a SOCKS5 proxy.
    #[serde(default)]
    pub proxy: Option<Proxy>,
    /// Client headers passed on to it.
    #[serde(default)]
    pub auth: super::auth::UpstreamAuth,
    // How to run a `type: stdio` upstream (fields of the upstream itself, as in `mcpServers`).
    #[serde(default)]
    pub command: Option<Expanded>,
    #[serde(default)]
    pub args: Vec<Expanded>,
    /// Its environment: these, plus PATH, HOME, USER, LOGNAME, LANG, LC_ALL, TZ and TMPDIR
    /// (unless `inherit_env`: switchboard's whole environment).
    #[serde(default)]
    pub env: BTreeMap<String, Expanded>,
    #[serde(default)]
    pub inherit_env: bool,
    #[serde(default)]
    pub cwd: Option<Expanded>,
    #[serde(default = "Stdio::startup_timeout", deserialize_with = "duration")]
    pub startup_timeout: Duration,
    #[serde(default = "Stdio::initialization_retries")]
    pub initialization_retries: u32,
    #[serde(default = "Stdio::retry_delay", deserialize_with = "duration")]
    pub retry_delay: Duration,
    /// List requests wait until the process has run this long (servers that register their
    /// tools late).
    #[serde(
        default = "Stdio::capability_discovery_delay",
        deserialize_with = "duration"
    )]
    pub capability_discovery_delay: Duration,
    #[serde(default)]
    pub session_mode: SessionMode,
    /// A `per_session` process unused this long is stopped.
    #[serde(default = "Stdio::idle_timeout", deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// At most this many `per_session` processes at once.
    #[serde(default = "Stdio::max_processes")]
    pub max_processes: usize,
    /// `type: sse`: the event stream counts as dead after this long without a byte.
    #[serde(default = "Stdio::sse_read_timeout", deserialize_with = "duration")]
    pub sse_read_timeout: Duration,
    /// `type: sse`: the server's own URL and headers, which the bridge uses (set at load;
    /// `url` and `headers` then describe the bridge's endpoint for Envoy).
    #[serde(skip)]
    pub sse: Option<(UpstreamUrl, BTreeMap<String, Expanded>)>,
}

impl Upstream {
    /// An upstream with every optional field at its default, for the loaders that build
    /// upstreams from other sources (`mcpServers`, environment variables).
    pub fn http_defaults() -> Upstream {
        Upstream {
            name: UpstreamName(String::new()),
            kind: UpstreamKind::Http,
            url: UpstreamUrl::missing(),
            base_url: None,
            openapi: None,
            rest_tools: Vec::new(),
            headers: BTreeMap::new(),
            timeout: default_timeout(),
            tool_prefix: None,
            tools: ToolFilter::default(),
            cache: None,
            max_list_bytes: default_max_list_bytes(),
            max_list_items: default_max_list_items(),
            protocol: Default::default(),
            transport: Transport::default(),
            tls: None,
            proxy: None,
            auth: Default::default(),
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            inherit_env: false,
            cwd: None,
            startup_timeout: Stdio::startup_timeout(),
            initialization_retries: Stdio::initialization_retries(),
            retry_delay: Stdio::retry_delay(),
            capability_discovery_delay: Stdio::capability_discovery_delay(),
            session_mode: SessionMode::PerSession,
            idle_timeout: Stdio::idle_timeout(),
            max_processes: Stdio::max_processes(),
            sse_read_timeout: Stdio::sse_read_timeout(),
            sse: None,
        }
    }
}

/// Where a REST upstream's OpenAPI document is: a file (relative to the gateway file;
/// watched) or an `http(s)://` URL (fetched at load and on reload, through the upstream's
/// TLS settings).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenApiSource {
    pub source: Expanded,
}

impl OpenApiSource {
    pub fn url(&self) -> Option<&str> {
        let s = self.source.0.trim();
        (s.starts_with("http://") || s.starts_with("https://")).then_some(s)
    }
}

/// Defaults of the stdio fields of [`Upstream`].
pub struct Stdio;

impl Stdio {
    pub fn startup_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn initialization_retries() -> u32 {
        5
    }
    pub fn retry_delay() -> Duration {
        Duration::from_millis(100)
    }
    pub fn capability_discovery_delay() -> Duration {
        Duration::from_secs(1)
    }
    pub fn idle_timeout() -> Duration {
        Duration::from_secs(300)
    }
    pub fn max_processes() -> usize {
        32
    }
    pub fn sse_read_timeout() -> Duration {
        Duration::from_secs(300)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    /// A process per gateway session.
    #[default]
    PerSession,
    /// One process for every session.
    Shared,
}

/// Per-upstream connection settings, each enforced by Envoy on this upstream's cluster only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Transport {
    /// The whole request, body included (same as `upstreams[].timeout`, which it overrides).
    #[serde(deserialize_with = "optional_duration")]
    pub timeout: Option<Duration>,
    /// Connections Envoy keeps open to this upstream in all, idle or busy.
    pub max_idle_conns: u32,
    /// Connections Envoy keeps open to each of its hosts, idle or busy.
    pub max_idle_conns_per_host: u32,
    /// An idle connection is closed after this long.
    #[serde(deserialize_with = "duration")]
    pub idle_conn_timeout: Duration,
    /// HTTP/2: negotiated by ALPN over TLS; over plain text, prior knowledge (h2c).
    pub http2: bool,
    /// Accepted here too (the design sketch's place); moved to `upstreams[].tls` at load.
    pub tls: Option<UpstreamTls>,
    /// Accepted here too; moved to `upstreams[].proxy` at load.
    pub proxy: Option<Proxy>,
}

impl Default for Transport {
    fn default() -> Self {
        Transport {
            timeout: None,
            max_idle_conns: 100,
            max_idle_conns_per_host: 10,
            idle_conn_timeout: Duration::from_secs(90),
            http2: false,
            tls: None,
            proxy: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// CA certificates (PEM) that sign the upstream's certificate, instead of the system roots.
    #[serde(default)]
    pub ca_cert: Option<PemFile>,
    /// A client certificate (PEM, with its chain) for mutual TLS; needs `client_key`.
    #[serde(default)]
    pub client_cert: Option<PemFile>,
    #[serde(default)]
    pub client_key: Option<PemFile>,
    /// SNI and the name the certificate must carry (default: the URL's host).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Accept any certificate. Only for tests: anyone on the path can read the traffic.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// `socks5://host:port` with optional RFC 1929 username and password.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proxy {
    pub url: ProxyUrl,
    #[serde(default)]
    pub username: Option<Expanded>,
    #[serde(default)]
    pub password: Option<Expanded>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub host: String,
    pub port: u16,
}

impl<'de> Deserialize<'de> for ProxyUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Expanded::deserialize(d)?;
        let bad =
            || serde::de::Error::custom(format!("expected socks5://host:port, found {:?}", s.0));
        let url = url::Url::parse(&s.0).map_err(|_| bad())?;
        if url.scheme() != "socks5" && url.scheme() != "socks5h" {
            return Err(serde::de::Error::custom(format!(
                "only SOCKS5 proxies are supported (socks5://host:port), found scheme {:?}",
                url.scheme()
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(serde::de::Error::custom(
                "credentials in the proxy URL are not allowed; use proxy.username and proxy.password with ${VAR}",
            ));
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(h) => h.to_string(),
            None => return Err(bad()),
        };
        Ok(ProxyUrl {
            host,
            port: url.port().unwrap_or(1080),
        })
    }
}

/// TLS on the gateway's own port.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    pub cert_file: PemFile,
    pub key_file: PemFile,
    /// Require client certificates signed by these CAs.
    #[serde(default)]
    pub client_ca: Option<PemFile>,
}

pub fn default_max_list_bytes() -> u64 {
    4 * 1024 * 1024
}

pub fn default_max_list_items() -> u64 {
    2000
}

pub fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamKind {
    /// Streamable HTTP (MCP 2025-03-26 and later).
    #[default]
    Http,
    /// A local process speaking JSON-RPC on stdin/stdout, run by the bridge.
    Stdio,
    /// The deprecated HTTP+SSE transport (2024-11-05), held by the bridge.
    Sse,
    /// Not an MCP server: a REST API described by OpenAPI (`base_url` + `openapi`), whose
    /// operations are tools.
    Openapi,
}
