//! The filter-config contract: the one set of types that the control plane serializes into the
//! wasm filter's `PluginConfig.configuration` and the filter parses in `on_configure`, so the
//! two can never drift apart.

use serde::{Deserialize, Serialize};

/// Request header the filter sets to pick an upstream's route. Envoy's route table matches on
/// it; the filter always overwrites it, so a client cannot choose a route by sending it.
pub const ROUTE_HEADER: &str = "x-switchboard-upstream";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The aggregated MCP endpoint the filter acts on (`/mcp`). Other paths pass untouched.
    pub mcp_path: String,
    /// Largest request body the filter buffers; larger ones get HTTP 413.
    pub max_request_bytes: u64,
    /// `serverInfo` of the gateway.
    pub server_name: String,
    pub server_version: String,
    /// The secret that seals session tokens; every replica must have the same.
    pub session_key: String,
    /// Earlier session keys: tokens they sealed still open (key rotation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_session_keys: Vec<String>,
    /// Seconds a session token stays valid after `initialize` (0: forever).
    pub session_max_age_s: u64,
    /// Between prefix and name: `github__create_issue`.
    pub separator: String,
    pub fan_out: FanOut,
    #[serde(default)]
    pub prefix_mode: PrefixMode,
    /// The bridge serves the merged server-to-client stream: pass `GET` on to it.
    #[serde(default)]
    pub get_stream: bool,
    /// Serve clients of the stateless revision (2026-07-28) over upstream sessions opened
    /// per request ([`crate::exchange`]'s `stateless`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stateless_clients: bool,
    /// Upstreams in configuration order.
    pub upstreams: Vec<Upstream>,
    /// Client authentication and access rules; `None`: every request is let in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<crate::access::AccessConfig>,
    /// Client headers that carry credentials: removed before anything goes upstream
    /// (pass-through headers are set from them first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_headers: Vec<String>,
    /// Base path of the per-upstream endpoints (`/upstreams`), where pass-through applies too.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub upstream_path: String,
    /// Browser clients: the origins accepted (a request with any other `Origin` gets 403)
    /// and what preflights answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// An audit log reads the filter's findings: leave them in filter state.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub audit: bool,
    /// `Host` globs accepted; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// The listener is on loopback: an `Origin` on a loopback host (a page served from this
    /// machine) is no DNS rebinding and is let in without CORS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub loopback_origins: bool,
    /// The secrets ([`Secrets`]), sealed with the key in Envoy's environment
    /// ([`SECRETS_KEY_ENV`]) and left out of the rest of this configuration: Envoy's
    /// `config_dump` and anything that prints the configuration show ciphertext only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_secrets: Option<String>,
    /// Envoy traces requests (`tracing:`): the filter's own calls get spans of their own
    /// where the shell can make them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trace_calls: bool,
    /// Hostnames routed to whole MCP servers (the gateway's `hosts:`, a tunnel file): their
    /// requests pass through untouched but for what [`HostRoutes`] says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_routes: Option<HostRoutes>,
}

/// Requests Envoy routes by hostname: the gateway authenticates the client and checks its
/// rules (`hosts` lists), removes the credentials it consumed, audits and counts them, and
/// reads none of the body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRoutes {
    pub routes: Vec<HostRoute>,
    /// Removed from every host-routed request (lower case).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strip_headers: Vec<String>,
    /// The tunnel domain: a name under it that no route serves is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Host routes only (a tunnel file): the gateway has no MCP endpoint of its own, and
    /// every name no route serves is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclusive: bool,
}

/// Where a request's `Host` leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMatch<'a> {
    Route(&'a HostRoute),
    /// A name the host routes claim (under the tunnel domain, or any with `exclusive`)
    /// that no route serves.
    Unknown,
    /// Not a host route's: the gateway's own endpoints.
    Gateway,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRoute {
    /// The route's key, as rules and the audit log name it.
    pub name: String,
    /// The hostnames it answers (lower case, no port), as Envoy's virtual host does.
    pub hosts: Vec<String>,
}

impl HostRoutes {
    /// Where a request for `authority` (`Host`/`:authority`) goes; a port and a final dot
    /// are ignored, case too.
    pub fn find(&self, authority: &str) -> HostMatch<'_> {
        let host = bare_host(authority);
        if let Some(r) = self.routes.iter().find(|r| r.hosts.contains(&host)) {
            return HostMatch::Route(r);
        }
        let under_domain = self
            .domain
            .as_deref()
            .is_some_and(|d| host.strip_suffix(d).is_some_and(|s| s.ends_with('.')));
        if self.exclusive || under_domain {
            HostMatch::Unknown
        } else {
            HostMatch::Gateway
        }
    }
}

/// `authority` without its port and final dot, lower case.
fn bare_host(authority: &str) -> String {
    let host = match authority.rsplit_once(':') {
        // Not the colons of a bracketed IPv6 address.
        Some((h, port)) if !port.contains(']') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    };
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// What a filter configuration holds that an operator's `config_dump` must not show: the
/// session keys, the values of the headers configured for upstreams, and the API-key
/// digests (a digest of a short key can be guessed offline).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    pub session_key: String,
    pub previous_session_keys: Vec<String>,
    /// Per upstream, in order: its header values.
    pub upstream_headers: Vec<Vec<String>>,
    /// Per access client, in order: its API-key digests.
    pub api_key_digests: Vec<Vec<String>>,
    /// Per upstream, in order: its token exchange's client secret or key (empty: none).
    #[serde(default)]
    pub exchange_credentials: Vec<String>,
}

/// The environment variable of Envoy's process that holds the key the filter's secrets are
/// sealed with: never in Envoy's configuration, readable by Envoy's user only.
pub const SECRETS_KEY_ENV: &str = "SWITCHBOARD_SECRETS_KEY";

/// Why the sealed secrets could not be put back.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("the filter's secrets are sealed, but {SECRETS_KEY_ENV} is not in Envoy's environment")]
    NoKey,
    #[error("the filter's secrets do not open with {SECRETS_KEY_ENV} (another key sealed them)")]
    WrongKey,
    #[error("the sealed secrets were made for another configuration ({0})")]
    Mismatch(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Exact origins, or `*`.
    pub origins: Vec<String>,
    pub methods: String,
    pub headers: String,
    pub max_age_s: u64,
}

/// Response headers that let a page of an allowed origin read the answer, the session id
/// included.
pub const CORS_EXPOSED: &str = "mcp-session-id, mcp-protocol-version";

impl FilterConfig {
    /// The key set that seals and opens tokens: the session key, then the earlier ones.
    pub fn session_keys(&self) -> crate::session::SessionKey {
        let previous: Vec<&[u8]> = self
            .previous_session_keys
            .iter()
            .map(|k| k.as_bytes())
            .collect();
        crate::session::SessionKey::rotating(self.session_key.as_bytes(), &previous)
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.cors.as_ref().is_some_and(|c| {
            c.origins
                .iter()
                .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
        })
    }

    /// CORS headers for an answer to a request from `origin` (none for other origins).
    pub fn cors_headers(&self, origin: &str) -> Vec<(String, String)> {
        if !self.origin_allowed(origin) {
            return Vec::new();
        }
        vec![
            ("access-control-allow-origin".into(), origin.to_string()),
            ("access-control-expose-headers".into(), CORS_EXPOSED.into()),
            ("vary".into(), "origin".into()),
        ]
    }

    /// The answer to a CORS preflight from an allowed `origin`.
    pub fn preflight_headers(&self, origin: &str) -> Option<Vec<(String, String)>> {
        let c = self.cors.as_ref().filter(|_| self.origin_allowed(origin))?;
        let mut h = self.cors_headers(origin);
        h.push(("access-control-allow-methods".into(), c.methods.clone()));
        h.push(("access-control-allow-headers".into(), c.headers.clone()));
        h.push(("access-control-max-age".into(), c.max_age_s.to_string()));
        Some(h)
    }

    /// DNS-rebinding protection: why a request's `Origin` or `Host` is refused, if it is.
    pub fn refuses_origin(&self, origin: Option<&str>, host: Option<&str>) -> Option<String> {
        if let Some(o) = origin
            && !self.origin_allowed(o)
            && !(self.loopback_origins && is_loopback_origin(o))
        {
            return Some(format!("Forbidden: origin {o:?} is not allowed"));
        }
        if !self.allowed_hosts.is_empty() {
            let h = host.unwrap_or_default();
            if !self
                .allowed_hosts
                .iter()
                .any(|g| crate::glob::matches(&g.to_ascii_lowercase(), &h.to_ascii_lowercase()))
            {
                return Some(format!("Forbidden: host {h:?} is not allowed"));
            }
        }
        None
    }
}

/// `http(s)://localhost`, `127.0.0.1` or `[::1]`, with or without a port.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().map(|h| format!("[{h}]")),
        None => rest.split(':').next().map(str::to_string),
    };
    matches!(
        host.as_deref().map(str::to_ascii_lowercase).as_deref(),
        Some("localhost" | "127.0.0.1" | "[::1]")
    ) && !rest.contains(['/', '@'])
}

/// Whether names get their upstream's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefixMode {
    #[default]
    Always,
    /// No prefix while there is only one upstream.
    WhenNeeded,
}

/// What a fan-out does when an upstream fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FanOut {
    /// Leave the failed upstream out and log it.
    #[default]
    FailOpen,
    /// Fail the whole request, naming the upstream.
    FailClosed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// The upstream's name from the gateway YAML; also the value of [`ROUTE_HEADER`].
    pub name: String,
    /// Prefix of its tool and prompt names.
    pub prefix: String,
    /// Prefix of its resource URIs (the URI-scheme form of `prefix`).
    pub uri_prefix: String,
    /// The Envoy cluster that reaches it.
    pub cluster: String,
    /// `:authority` for calls the filter makes itself (`dispatch_http_call`).
    pub authority: String,
    /// The upstream's MCP path (`/mcp`).
    pub path: String,
    pub timeout_ms: u64,
    /// Configured headers, sent on the filter's own calls (routed calls get them from the
    /// route).
    pub headers: Vec<(String, String)>,
    /// Globs on the upstream's own tool names: which tools the gateway offers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools_include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools_exclude: Vec<String>,
    /// How long its list results may be served from the cache shared by Envoy's workers
    /// (0: not cached).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_ms: u64,
    /// What it is reached through (`SOCKS5 proxy host:port`), for error messages; empty
    /// when direct.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub via: String,
    /// Client headers passed on to it, reformatted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_through: Vec<PassThrough>,
    /// The largest list answer read from it (bytes): Envoy has it whole already, but the
    /// filter does not copy or parse more.
    #[serde(default = "unlimited")]
    pub max_list_bytes: u64,
    /// The most items of one page of its lists.
    #[serde(default = "unlimited")]
    pub max_list_items: u64,
    /// The MCP revision it speaks, when configured rather than found.
    /// A REST API (OpenAPI), not an MCP server: its operations as tools, listed from here
    /// and called as HTTP requests to `path` (the base URL's path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest_tools: Option<Vec<crate::rest::RestTool>>,
    #[serde(default, skip_serializing_if = "UpstreamProtocol::is_auto")]
    pub protocol: UpstreamProtocol,
    /// Its `Authorization` is a token of its own for the user, exchanged for the client's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_exchange: Option<crate::token_exchange::TokenExchange>,
}

/// Which MCP revision an upstream speaks: found by asking it `server/discover` once (`auto`),
/// or as configured (no question asked).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    #[default]
    Auto,
    /// 2024-11-05 … 2025-11-25: `initialize` and a session.
    Legacy,
    /// 2026-07-28: no handshake, no session.
    #[serde(alias = "2026-07-28")]
    Modern,
}

impl UpstreamProtocol {
    pub fn is_auto(&self) -> bool {
        *self == UpstreamProtocol::Auto
    }
}

fn unlimited() -> u64 {
    u64::MAX
}

impl Upstream {
    /// The headers this upstream takes by pass-through, formatted from the client's
    /// (`client`: lower-case names and values).
    pub fn pass_through_headers(&self, client: &[(String, String)]) -> Vec<(String, String)> {
        self.pass_through
            .iter()
            .filter_map(|p| {
                let (_, value) = client
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&p.source))?;
                Some((p.target.clone(), p.format.replace("{value}", value)))
            })
            .collect()
    }
}

/// `source_header` of the client's request becomes `target_header: format` (`{value}` in
/// `format` stands for the client's value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassThrough {
    pub source: String,
    pub target: String,
    pub format: String,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl FilterConfig {
    /// MCP authorization, when the gateway has it.
    pub fn oauth(&self) -> Option<&crate::oauth::OAuth> {
        self.access.as_ref()?.oauth.as_ref()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn to_json(&self) -> String {
        // Plain strings and integers only: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Moves the secrets out (their places left empty); [`FilterConfig::restore_secrets`]
    /// puts them back.
    pub fn take_secrets(&mut self) -> Secrets {
        Secrets {
            session_key: std::mem::take(&mut self.session_key),
            previous_session_keys: std::mem::take(&mut self.previous_session_keys),
            upstream_headers: self
                .upstreams
                .iter_mut()
                .map(|u| {
                    u.headers
                        .iter_mut()
                        .map(|(_, v)| std::mem::take(v))
                        .collect()
                })
                .collect(),
            api_key_digests: self
                .access
                .iter_mut()
                .flat_map(|a| a.clients.iter_mut())
                .map(|c| {
                    c.api_key
                        .as_mut()
                        .map(|k| std::mem::take(&mut k.sha256))
                        .unwrap_or_default()
                })
                .collect(),
            exchange_credentials: self
                .upstreams
                .iter_mut()
                .map(|u| {
                    u.token_exchange
                        .as_mut()
                        .map(|te| std::mem::take(te.client_auth.secret_mut()))
                        .unwrap_or_default()
                })
                .collect(),
        }
    }

    /// Moves the secrets into [`FilterConfig::sealed_secrets`], sealed with `key`. The
    /// same configuration and key seal to the same text, so an unchanged configuration is
    /// not pushed again.
    pub fn seal_secrets(&mut self, key: &str) {
        let secrets = self.take_secrets();
        let key = crate::session::SessionKey::derive(key.as_bytes());
        self.sealed_secrets = Some(crate::session::seal_value(
            &key,
            crate::session::Sealed::FilterSecrets,
            &secrets,
            b"",
        ));
    }

    /// Opens [`FilterConfig::sealed_secrets`], if any, with `key` (the value of
    /// [`SECRETS_KEY_ENV`] in Envoy's environment) and puts the secrets back.
    pub fn open_secrets(&mut self, key: Option<&str>) -> Result<(), SecretsError> {
        let Some(sealed) = self.sealed_secrets.as_deref() else {
            return Ok(());
        };
        let key = key.ok_or(SecretsError::NoKey)?;
        let key = crate::session::SessionKey::derive(key.as_bytes());
        let secrets =
            crate::session::open_value(&key, crate::session::Sealed::FilterSecrets, sealed)
                .map_err(|_| SecretsError::WrongKey)?;
        self.restore_secrets(secrets)
    }

    /// Puts back what [`FilterConfig::take_secrets`] took.
    pub fn restore_secrets(&mut self, s: Secrets) -> Result<(), SecretsError> {
        let clients = self.access.as_ref().map_or(0, |a| a.clients.len());
        if s.upstream_headers.len() != self.upstreams.len()
            || self
                .upstreams
                .iter()
                .zip(&s.upstream_headers)
                .any(|(u, h)| u.headers.len() != h.len())
        {
            return Err(SecretsError::Mismatch("upstream headers"));
        }
        if s.api_key_digests.len() != clients {
            return Err(SecretsError::Mismatch("clients"));
        }
        let exchanging = self.upstreams.iter().any(|u| u.token_exchange.is_some());
        if (exchanging || !s.exchange_credentials.is_empty())
            && s.exchange_credentials.len() != self.upstreams.len()
        {
            return Err(SecretsError::Mismatch("token exchange credentials"));
        }
        self.session_key = s.session_key;
        self.previous_session_keys = s.previous_session_keys;
        for (u, values) in self.upstreams.iter_mut().zip(s.upstream_headers) {
            for ((_, v), value) in u.headers.iter_mut().zip(values) {
                *v = value;
            }
        }
        for (u, credential) in self.upstreams.iter_mut().zip(s.exchange_credentials) {
            if let Some(te) = u.token_exchange.as_mut() {
                *te.client_auth.secret_mut() = credential;
            }
        }
        if let Some(a) = self.access.as_mut() {
            for (c, digests) in a.clients.iter_mut().zip(s.api_key_digests) {
                if let Some(k) = c.api_key.as_mut() {
                    k.sha256 = digests;
                }
            }
        }
        self.sealed_secrets = None;
        Ok(())
    }
}

#[cfg(test)]
mod secrets_tests {
    use super::*;

    #[test]
    fn secrets_go_out_and_come_back() {
        let mut c = example(2);
        c.session_key = "k".repeat(32);
        c.previous_session_keys = vec!["old".into()];
        c.upstreams[0].headers = vec![("authorization".into(), "Bearer s3cret".into())];
        let original = c.clone();
        let secrets = c.take_secrets();
        let shown = c.to_json();
        assert!(
            !shown.contains("s3cret") && !shown.contains(&"k".repeat(32)) && !shown.contains("old")
        );
        assert!(shown.contains("authorization"), "names stay");
        let mut other = c.clone();
        other.upstreams.pop();
        assert!(matches!(
            other.restore_secrets(secrets.clone()),
            Err(SecretsError::Mismatch(_))
        ));
        c.restore_secrets(secrets).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c, original);
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let mut c = example(2);
        c.session_key = "k".repeat(32);
        c.upstreams[0].headers = vec![("authorization".into(), "Bearer s3cret".into())];
        let original = c.clone();
        c.seal_secrets("the-deployment-key");
        let shown = c.to_json();
        assert!(!shown.contains("s3cret") && !shown.contains(&"k".repeat(32)));
        let mut again = original.clone();
        again.seal_secrets("the-deployment-key");
        assert_eq!(
            again, c,
            "sealing is deterministic: no new version for nothing"
        );

        let parsed = FilterConfig::from_json(shown.as_bytes()).unwrap();
        assert!(matches!(
            parsed.clone().open_secrets(None),
            Err(SecretsError::NoKey)
        ));
        assert!(matches!(
            parsed.clone().open_secrets(Some("another-key")),
            Err(SecretsError::WrongKey)
        ));
        let mut tampered = parsed.clone();
        tampered.sealed_secrets = tampered.sealed_secrets.map(|s| s.replace('A', "B"));
        assert!(tampered.open_secrets(Some("the-deployment-key")).is_err());
        let mut opened = parsed;
        opened.open_secrets(Some("the-deployment-key")).unwrap();
        assert_eq!(opened, original);
        // Nothing sealed: nothing to open, no key needed.
        let mut plain = original.clone();
        plain.open_secrets(None).unwrap();
        assert_eq!(plain, original);
    }
}

#[cfg(test)]
mod origin_tests {
    use super::*;

    #[test]
    fn origins_and_hosts_are_checked() {
        let mut c = example(1);
        assert_eq!(c.refuses_origin(None, Some("anything")), None);
        assert!(
            c.refuses_origin(Some("https://evil.example"), None)
                .is_some()
        );
        c.cors = Some(Cors {
            origins: vec!["https://app.example".into()],
            methods: "POST".into(),
            headers: "content-type".into(),
            max_age_s: 60,
        });
        assert_eq!(c.refuses_origin(Some("https://app.example"), None), None);
        assert!(c.preflight_headers("https://app.example").is_some());
        assert!(c.preflight_headers("https://evil.example").is_none());
        assert!(c.cors_headers("https://evil.example").is_empty());
        c.allowed_hosts = vec!["localhost:*".into(), "127.0.0.1:*".into()];
        assert_eq!(c.refuses_origin(None, Some("127.0.0.1:8080")), None);
        assert!(
            c.refuses_origin(None, Some("attacker.example:8080"))
                .is_some()
        );
    }
}

#[cfg(test)]
pub(crate) fn example(upstreams: usize) -> FilterConfig {
    FilterConfig {
        mcp_path: "/mcp".into(),
        max_request_bytes: 1 << 20,
        server_name: "switchboard".into(),
        server_version: "0.1.0".into(),
        session_key: "test-key".into(),
        previous_session_keys: Vec::new(),
        session_max_age_s: 3600,
        separator: "__".into(),
        fan_out: FanOut::FailOpen,
        prefix_mode: PrefixMode::Always,
        get_stream: false,
        stateless_clients: false,
        upstreams: (0..upstreams)
            .map(|i| Upstream {
                name: format!("u{i}"),
                prefix: format!("u{i}"),
                uri_prefix: format!("u{i}"),
                cluster: format!("upstream-u{i}"),
                authority: format!("127.0.0.1:{}", 3000 + i),
                path: "/mcp".into(),
                timeout_ms: 1000,
                headers: vec![("x-key".into(), format!("k{i}"))],
                tools_include: vec![],
                tools_exclude: vec![],
                cache_ms: 0,
                via: String::new(),
                pass_through: Vec::new(),
                max_list_bytes: 1 << 20,
                max_list_items: 100,
                rest_tools: None,
                protocol: UpstreamProtocol::Legacy,
                token_exchange: None,
            })
            .collect(),
        access: None,
        credential_headers: Vec::new(),
        upstream_path: String::new(),
        cors: None,
        audit: false,
        allowed_hosts: Vec::new(),
        loopback_origins: false,
        sealed_secrets: None,
        trace_calls: false,
        host_routes: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_origin_on_a_loopback_listener_is_no_rebinding() {
        let mut c = example(1);
        c.allowed_hosts = vec!["localhost:*".into(), "127.0.0.1:*".into()];
        let host = Some("127.0.0.1:8080");
        assert!(
            c.refuses_origin(Some("http://localhost:3000"), host)
                .is_some()
        );
        c.loopback_origins = true;
        for ok in [
            "http://localhost:3000",
            "http://127.0.0.1",
            "https://[::1]:9",
            "http://LOCALHOST:1",
        ] {
            assert_eq!(c.refuses_origin(Some(ok), host), None, "{ok}");
        }
        for bad in [
            "http://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
            "http://localhost@evil.example",
            "null",
        ] {
            assert!(c.refuses_origin(Some(bad), host).is_some(), "{bad}");
        }
    }

    #[test]
    fn round_trips_and_rejects_unknown_fields() {
        let c = example(2);
        assert_eq!(FilterConfig::from_json(c.to_json().as_bytes()).unwrap(), c);
        let mut v: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        v["surprise"] = true.into();
        assert!(FilterConfig::from_json(v.to_string().as_bytes()).is_err());
    }
}
