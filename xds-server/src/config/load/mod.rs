//! From a file to a validated [`Gateway`], with errors an operator can act on: file, line,
//! column, the field's path, and what was expected. [`load_str`] reads in steps: parse the
//! document, gather the upstreams (desktop `mcpServers`, the environment), check each part,
//! assemble.

use super::document::GatewayFile;
use super::env::{self, Environment};
use super::error::{ConfigError, FieldError};
use super::hosts::{Hosts, TunnelFile};
use super::model::{Aggregation, Gateway, Server, SessionConfig, Upstream};
use super::position;
use std::path::Path;

pub fn load_file(path: &Path, env: &Environment) -> Result<Gateway, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::file(&name, "", format!("cannot read the file: {e}")))?;
    let mut gateway = load_str(&text, &name, env)?;
    if gateway.system_ca.is_none() && gateway.needs_system_roots() {
        let found = system_bundle(env).ok_or_else(|| {
            ConfigError::file(
                &name,
                "tls.system_ca_file",
                format!(
                    "an HTTPS upstream is checked against the system roots, and there is no CA bundle at SSL_CERT_FILE or {}: give one (or the upstream's tls.ca_cert)",
                    SYSTEM_BUNDLES.join(", ")
                ),
            )
        })?;
        gateway.system_ca = Some(super::model::PemFile {
            path: found,
            pem: Vec::new(),
        });
    }
    let base = path.parent().unwrap_or(Path::new("."));
    super::certs::read_all(&mut gateway, base).map_err(|mut e| {
        // A tunnel file spells the listener's certificate `tls.cert_file`, the guard's CA
        // `upstream.tls.ca_file` at its top.
        if TunnelFile::is_one(&text) {
            e.field = e.field.replacen("server.tls.", "tls.", 1);
        } else if e.field == "upstream.tls.ca_file" {
            e.field = "hosts.upstream.tls.ca_file".into();
        }
        Refusal::at_field(e).placed(&text, &name)
    })?;
    super::openapi_docs::read_all(&mut gateway, base)
        .map_err(|e| Refusal::at_field(e).placed(&text, &name))?;
    discover_authorization_servers(&mut gateway)
        .map_err(|e| Refusal::at_field(e.within("auth.oauth")).placed(&text, &name))?;
    Ok(gateway)
}

/// Fills in what `auth.oauth` leaves to the authorization servers' metadata.
fn discover_authorization_servers(gateway: &mut Gateway) -> Result<(), FieldError> {
    let ca = gateway.system_ca.as_ref().map(|c| c.pem.clone());
    let Some(oauth) = gateway.auth.as_mut().and_then(|a| a.oauth.as_mut()) else {
        return Ok(());
    };
    let exchanging: Vec<bool> = oauth
        .authorization_servers
        .iter()
        .map(|a| {
            gateway.upstreams.iter().any(|u| {
                u.auth
                    .token_exchange
                    .as_ref()
                    .is_some_and(|te| te.issuer.as_deref().is_none_or(|i| i == a.issuer))
            })
        })
        .collect();
    super::oauth::discover_all(oauth, &exchanging, ca.as_deref().filter(|c| !c.is_empty()))
}

/// Line and column of the value at a field path like `upstreams[0].tls.client_cert`.
fn at(text: &str, field: &str) -> (Option<usize>, Option<usize>) {
    let mut steps = Vec::new();
    // A host route's key is a hostname: one step, dots and all.
    let (field, route) = match field.split_once("routes.") {
        Some((head, key)) if head.is_empty() || head.ends_with('.') => {
            (head.trim_end_matches('.'), Some(key))
        }
        _ => (field, None),
    };
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        steps.push(position::Step::Key(key.to_string()));
        if let Some(n) = rest.strip_suffix(']').and_then(|n| n.parse().ok()) {
            steps.push(position::Step::Index(n));
        }
    }
    if let Some(key) = route {
        steps.push(position::Step::Key("routes".into()));
        steps.push(position::Step::Key(key.into()));
    }
    // A missing field (client_key without client_cert…) points at the mapping that lacks it.
    while !steps.is_empty() {
        if let Some((l, c)) = position::locate(text, &steps, position::Target::Value) {
            return (Some(l), Some(c));
        }
        steps.pop();
    }
    (None, None)
}

/// A refused field and where in the text to point for it.
struct Refusal {
    error: FieldError,
    near: Near,
}

enum Near {
    /// The value at the field's path.
    Field,
    /// The first line with this key.
    Key(&'static str),
    /// The first line with this value.
    Value(String),
    /// Nowhere in particular (the environment).
    Nowhere,
}

impl Refusal {
    fn at_field(error: FieldError) -> Refusal {
        Refusal {
            error,
            near: Near::Field,
        }
    }

    fn at_key(field: &str, key: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            error: FieldError::new(field, message),
            near: Near::Key(key),
        }
    }

    fn at_value(field: impl Into<String>, value: &str, message: impl Into<String>) -> Refusal {
        Refusal {
            error: FieldError::new(field, message),
            near: Near::Value(value.to_string()),
        }
    }

    fn placed(self, text: &str, file: &str) -> ConfigError {
        let (line, column) = match &self.near {
            Near::Field => at(text, &self.error.field),
            Near::Key(key) => find_key(text, key),
            Near::Value(value) => find_value(text, value),
            Near::Nowhere => (None, None),
        };
        ConfigError {
            file: file.to_string(),
            line,
            column,
            path: self.error.field,
            message: self.error.message,
        }
    }
}

/// Parses and validates gateway YAML (or `mcpServers` JSON, which is YAML too).
pub fn load_str(text: &str, file: &str, env: &Environment) -> Result<Gateway, ConfigError> {
    if TunnelFile::is_one(text) {
        return load_tunnel(text, file, env);
    }
    let (parsed, ignored_keys) = parse(text, file, env)?;
    let place = |r: Refusal| r.placed(text, file);
    let mut upstreams = parsed.upstreams;
    for servers in [parsed.mcp_servers, parsed.servers].into_iter().flatten() {
        upstreams.extend(servers.into_upstreams());
    }
    super::env_upstreams::apply_upstream_vars(&mut upstreams, env).map_err(|e| {
        place(Refusal {
            error: FieldError::new("", format!("environment: {e}")),
            near: Near::Nowhere,
        })
    })?;
    let server = check_server(parsed.server).map_err(place)?;
    check_aggregation(&parsed.aggregation).map_err(place)?;
    check_session(&parsed.session).map_err(place)?;
    if let Some(t) = &parsed.tracing {
        check_tracing(t).map_err(place)?;
    }
    check_names(&upstreams, &parsed.aggregation.separator).map_err(place)?;
    if let Some(auth) = &parsed.auth {
        auth.check()
            .map_err(|e| place(Refusal::at_field(e.within("auth"))))?;
    }
    let hosts = parsed
        .hosts
        .map(|h| Hosts::check(h, "hosts."))
        .transpose()
        .map_err(|e| place(Refusal::at_field(e)))?;
    let oauth = parsed.auth.as_ref().and_then(|a| a.oauth.as_ref());
    for (i, u) in upstreams.iter_mut().enumerate() {
        check_upstream(u, oauth)
            .map_err(|e| place(Refusal::at_field(e.within(&format!("upstreams[{i}]")))))?;
    }
    Ok(Gateway {
        server,
        session: parsed.session,
        aggregation: parsed.aggregation,
        auth: parsed.auth,
        audit: parsed.audit,
        tracing: parsed.tracing,
        upstreams,
        hosts,
        system_ca: parsed.tls.system_ca_file,
        ignored_keys,
    })
}

/// The document as the schema reads it, and the top-level keys of a desktop client's file
/// that were set aside. Errors point at the field serde stopped at.
fn parse(
    text: &str,
    file: &str,
    env: &Environment,
) -> Result<(GatewayFile, Vec<String>), ConfigError> {
    // A desktop client's file (Claude Desktop's, VS Code's `mcp.json`) holds more than its
    // servers: read those, and set the rest aside with a warning, instead of refusing it.
    let desktop = desktop_file(text);
    let ignored_keys = desktop
        .as_ref()
        .map(|(_, ignored)| ignored.clone())
        .unwrap_or_default();
    if text.trim().is_empty() {
        let empty = serde_yaml_ng::from_str("{}")
            .map_err(|e| ConfigError::file(file, "", e.to_string()))?;
        return Ok((empty, ignored_keys));
    }
    let parsed = read_as(text, file, env, desktop.map(|(servers, _)| servers))?;
    Ok((parsed, ignored_keys))
}

/// `T` from the text (or from `value`, the part of it to read). Errors point at the field
/// serde stopped at.
fn read_as<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
    env: &Environment,
    value: Option<serde_yaml_ng::Value>,
) -> Result<T, ConfigError> {
    let parse = || match value {
        Some(v) => serde_path_to_error::deserialize(v),
        None => serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(text)),
    };
    env::with_environment(env, parse).map_err(|e| {
        let path = if e.path().iter().next().is_none() {
            String::new()
        } else {
            e.path().to_string()
        };
        let target = if e.inner().to_string().contains("unknown field") {
            position::Target::Key
        } else {
            position::Target::Value
        };
        let exact = position::locate(text, &position::steps(e.path()), target);
        let inner = e.into_inner();
        let (line, column) = match (exact, inner.location()) {
            (Some((l, c)), _) => (Some(l), Some(c)),
            (None, Some(l)) => (Some(l.line()), Some(l.column())),
            (None, None) => (None, None),
        };
        ConfigError {
            file: file.to_string(),
            line,
            column,
            message: clean_message(&inner.to_string(), &path),
            path,
        }
    })
}

/// The tunnel proxy's file: its listener, certificate and host routes, and nothing else
/// (no aggregated endpoint). Its requests are audited to Envoy's standard output.
fn load_tunnel(text: &str, file: &str, env: &Environment) -> Result<Gateway, ConfigError> {
    let tunnel: TunnelFile = read_as(text, file, env, None)?;
    let hosts =
        Hosts::check(tunnel.hosts(), "").map_err(|e| Refusal::at_field(e).placed(text, file))?;
    let server = Server {
        listen: tunnel.listen_addr,
        tls: Some(super::model::ServerTls {
            cert_file: tunnel.tls.cert_file,
            key_file: tunnel.tls.key_file,
            client_ca: None,
        }),
        log_level: Some(tunnel.log_level),
        shutdown_timeout: Some(tunnel.shutdown_timeout),
        // The tunnel has no admin address of its own: any free loopback port.
        admin: super::model::Address(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        ..Server::default()
    };
    Ok(Gateway {
        server: check_server(server).map_err(|r| r.placed(text, file))?,
        session: SessionConfig::default(),
        aggregation: Aggregation::default(),
        auth: None,
        audit: Some(super::model::AuditConfig {
            file: None,
            stdout: true,
        }),
        tracing: None,
        upstreams: Vec::new(),
        hosts: Some(hosts),
        system_ca: None,
        ignored_keys: Vec::new(),
    })
}

/// `tracing`: a collector Envoy can be pointed at, a share that is one.
fn check_tracing(t: &super::model::TracingConfig) -> Result<(), Refusal> {
    if t.collector().is_none() {
        return Err(Refusal::at_field(FieldError::new(
            "tracing.otlp",
            format!(
                "expected the collector's OTLP/gRPC address as host:port, found {:?}",
                t.otlp.0
            ),
        )));
    }
    if !(0.0..=1.0).contains(&t.sample) {
        return Err(Refusal::at_field(FieldError::new(
            "tracing.sample",
            format!("expected a share between 0 and 1, found {}", t.sample),
        )));
    }
    if t.service_name.trim().is_empty() {
        return Err(Refusal::at_field(FieldError::new(
            "tracing.service_name",
            "must not be empty",
        )));
    }
    Ok(())
}

/// `server`: one way to say where to listen; paths; limits.
fn check_server(mut server: Server) -> Result<Server, Refusal> {
    server.listen = match (server.listen_as_written, server.port) {
        (Some(_), Some(_)) => {
            return Err(Refusal::at_field(FieldError::new(
                "server.port",
                "give server.listen or server.port, not both",
            )));
        }
        (Some(listen), None) => listen,
        // As the gateway this spelling comes from: every interface.
        (None, Some(port)) => {
            super::model::Address(std::net::SocketAddr::from(([0, 0, 0, 0], port)))
        }
        (None, None) => server.listen,
    };
    for (field, key, value) in [
        ("server.mcp_path", "mcp_path", &server.mcp_path),
        (
            "server.upstream_path",
            "upstream_path",
            &server.upstream_path,
        ),
        ("server.sse_path", "sse_path", &server.sse_path),
        (
            "server.messages_path",
            "messages_path",
            &server.messages_path,
        ),
    ] {
        if !value.starts_with('/')
            || value.contains(['?', '#', ' '])
            || (value.len() > 1 && value.ends_with('/'))
        {
            return Err(Refusal::at_key(
                field,
                key,
                format!("expected an absolute path like /mcp, found {value:?}"),
            ));
        }
    }
    if server.upstream_path == server.mcp_path || server.upstream_path == "/" {
        return Err(Refusal::at_key(
            "server.upstream_path",
            "upstream_path",
            format!(
                "must differ from mcp_path and from /, found {:?}",
                server.upstream_path
            ),
        ));
    }
    if server.max_request_bytes < 1024 {
        return Err(Refusal::at_key(
            "server.max_request_bytes",
            "max_request_bytes",
            "expected at least 1024 bytes",
        ));
    }
    if server.listen.0 == server.admin.0 && server.listen.0.port() != 0 {
        return Err(Refusal::at_key(
            "server.admin",
            "admin",
            "must differ from server.listen",
        ));
    }
    Ok(server)
}

fn check_aggregation(aggregation: &Aggregation) -> Result<(), Refusal> {
    let separator = &aggregation.separator;
    if separator.is_empty()
        || separator.len() > 8
        || !separator.bytes().all(|b| b"_-.:/~".contains(&b))
    {
        return Err(Refusal::at_key(
            "aggregation.separator",
            "separator",
            format!("expected 1-8 of the characters _ - . : / ~, found {separator:?}"),
        ));
    }
    Ok(())
}

/// Session keys long enough to seal with; earlier keys only beside a current one.
fn check_session(session: &SessionConfig) -> Result<(), Refusal> {
    if let Some(key) = &session.key
        && key.0.len() < 16
    {
        return Err(Refusal::at_key(
            "session.key",
            "key",
            "expected at least 16 characters (32 random bytes, base64, are a good key)",
        ));
    }
    if let Some(i) = session.previous_keys.iter().position(|k| k.0.len() < 16) {
        return Err(Refusal::at_field(FieldError::new(
            format!("session.previous_keys[{i}]"),
            "expected at least 16 characters, as session.key",
        )));
    }
    if !session.previous_keys.is_empty() && session.key.is_none() {
        return Err(Refusal::at_key(
            "session.previous_keys",
            "previous_keys",
            "needs session.key: the key that seals new sessions",
        ));
    }
    Ok(())
}

/// Prefixes valid and unique (as names, and as URI prefixes, where `_`, `-` and case are
/// the same); names unique without case.
fn check_names(upstreams: &[Upstream], separator: &str) -> Result<(), Refusal> {
    let mut seen = std::collections::HashSet::new();
    let mut prefixes = std::collections::HashMap::new();
    let mut uri_prefixes = std::collections::HashMap::new();
    for (i, u) in upstreams.iter().enumerate() {
        let prefix = u.tool_prefix.as_deref().unwrap_or(&u.name);
        let field = if u.tool_prefix.is_some() {
            format!("upstreams[{i}].tool_prefix")
        } else {
            format!("upstreams[{i}].name")
        };
        if let Err(e) = switchboard_protocol::naming::check_prefix(prefix, separator) {
            return Err(Refusal::at_value(field, prefix, e.to_string()));
        }
        if let Some(other) = prefixes.insert(prefix.to_string(), i) {
            return Err(Refusal::at_value(
                field,
                prefix,
                format!("prefix {prefix:?} is already used by upstreams[{other}]"),
            ));
        }
        let uri = switchboard_protocol::naming::uri_prefix(prefix);
        if let Some(other) = uri_prefixes.insert(uri.clone(), i) {
            return Err(Refusal::at_value(
                field,
                prefix,
                format!(
                    "prefix {prefix:?} gives the resource-URI prefix {uri:?}, already used by upstreams[{other}] ('_' and '-' and case are the same in URIs)"
                ),
            ));
        }
        if !seen.insert(u.name.to_ascii_lowercase()) {
            return Err(Refusal::at_value(
                format!("upstreams[{i}].name"),
                &u.name,
                format!(
                    "upstream name {:?} is used twice (names are compared without case)",
                    u.name.0
                ),
            ));
        }
    }
    Ok(())
}

/// One upstream: what its type needs and allows, its transport.
fn check_upstream(
    u: &mut Upstream,
    oauth: Option<&super::oauth::OAuthConfig>,
) -> Result<(), FieldError> {
    use super::model::UpstreamKind;
    if !u.auth.pass_through.headers.is_empty() && u.kind == UpstreamKind::Stdio {
        return Err(FieldError::new(
            "auth.pass_through",
            "pass-through applies to http and sse upstreams; a stdio process gets no client headers",
        ));
    }
    if let Some(te) = &u.auth.token_exchange {
        te.check(oauth)
            .map_err(|e| e.within("auth.token_exchange"))?;
        if !matches!(u.kind, UpstreamKind::Http | UpstreamKind::Openapi) {
            return Err(FieldError::new(
                "auth.token_exchange",
                "token exchange applies to http and openapi upstreams, which the gateway calls itself",
            ));
        }
        let takes_authorization = |name: &str| name.eq_ignore_ascii_case("authorization");
        if u.headers.keys().any(|k| takes_authorization(k))
            || u.auth
                .pass_through
                .headers
                .iter()
                .any(|h| takes_authorization(&h.target_header))
        {
            return Err(FieldError::new(
                "auth.token_exchange",
                "the exchanged token is the upstream's Authorization: it cannot also get one from headers or pass_through",
            ));
        }
    }
    check_kind(u)?;
    check_transport(u)
}

/// The keys of a gateway file; a file with none of them but with servers is a desktop
/// client's.
const GATEWAY_KEYS: [&str; 7] = [
    "server",
    "session",
    "aggregation",
    "auth",
    "audit",
    "upstreams",
    "tls",
];
const SERVER_KEYS: [&str; 2] = ["mcpServers", "servers"];

/// A desktop client's file: its servers alone (as a document to deserialize), and the
/// top-level keys set aside. `None` for a gateway file (whose every key must be known).
fn desktop_file(text: &str) -> Option<(serde_yaml_ng::Value, Vec<String>)> {
    let serde_yaml_ng::Value::Mapping(map) = serde_yaml_ng::from_str(text).ok()? else {
        return None;
    };
    let key = |k: &serde_yaml_ng::Value| k.as_str().map(str::to_string);
    let keys: Vec<String> = map.keys().filter_map(key).collect();
    if !keys.iter().any(|k| SERVER_KEYS.contains(&k.as_str()))
        || keys.iter().any(|k| GATEWAY_KEYS.contains(&k.as_str()))
    {
        return None;
    }
    let mut servers = serde_yaml_ng::Mapping::new();
    let mut ignored = Vec::new();
    for (k, v) in map {
        match key(&k) {
            Some(name) if SERVER_KEYS.contains(&name.as_str()) => {
                servers.insert(k, v);
            }
            Some(name) => ignored.push(name),
            None => {}
        }
    }
    Some((serde_yaml_ng::Value::Mapping(servers), ignored))
}

/// Where operating systems keep their CA bundle (Debian and Ubuntu, Alpine, RHEL and
/// Fedora, SUSE, macOS and BSD), in the order they are tried.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The system CA bundle: `SSL_CERT_FILE` (OpenSSL's variable), else the first bundle of
/// [`SYSTEM_BUNDLES`] that exists.
fn system_bundle(env: &Environment) -> Option<std::path::PathBuf> {
    if let Some(f) = env.get("SSL_CERT_FILE").filter(|f| !f.is_empty()) {
        return Some(f.into());
    }
    SYSTEM_BUNDLES
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
}

/// What each `type` needs and allows: `http` a `url`; `stdio` a `command` and nothing of
/// HTTP (it is reached through the bridge, whose endpoint becomes its URL).
fn check_kind(u: &mut super::model::Upstream) -> Result<(), FieldError> {
    use super::model::{UpstreamKind, UpstreamUrl};
    let err = |f: &str, m: &str| Err(FieldError::new(f, m));
    // The REST upstream's shape of the transport seed: `base_url` + `openapi`, no `url`.
    let rest_shape = u.base_url.is_some() || u.openapi.is_some();
    if u.kind == UpstreamKind::Http && u.url.is_missing() && rest_shape {
        u.kind = UpstreamKind::Openapi;
    }
    let needs_url = match u.kind {
        UpstreamKind::Http => Some("an http upstream needs a url (or type: stdio with a command)"),
        UpstreamKind::Sse => Some("an sse upstream needs the url of its event stream"),
        UpstreamKind::Stdio | UpstreamKind::Openapi => None,
    };
    if rest_shape && u.kind != UpstreamKind::Openapi {
        return err(
            "base_url",
            "base_url and openapi make a REST upstream, which has no url (or type: openapi)",
        );
    }
    if let Some(message) = needs_url.filter(|_| u.url.is_missing()) {
        return err("url", message);
    }
    let runs_a_process =
        u.command.is_some() || !u.args.is_empty() || !u.env.is_empty() || u.cwd.is_some();
    if runs_a_process && u.kind != UpstreamKind::Stdio {
        return err(
            "command",
            "command, args, env and cwd apply to type: stdio upstreams",
        );
    }
    match u.kind {
        UpstreamKind::Http => {}
        UpstreamKind::Openapi => {
            let Some(base) = u.base_url.clone() else {
                return err(
                    "base_url",
                    "a REST upstream needs base_url (where its API is)",
                );
            };
            if u.openapi.is_none() {
                return err(
                    "openapi",
                    "a REST upstream needs openapi.source (its OpenAPI document: a file or a URL)",
                );
            }
            if !u.url.is_missing() {
                return err("url", "a REST upstream has base_url, not url");
            }
            // Envoy's cluster, TLS and Host come from the base URL, as from an MCP URL.
            u.url = base;
        }
        UpstreamKind::Stdio => {
            if u.command.as_ref().is_none_or(|c| c.0.trim().is_empty()) {
                return err("command", "a stdio upstream needs a command");
            }
            if !u.url.is_missing() {
                return err(
                    "url",
                    "a stdio upstream has no url: the bridge runs its command",
                );
            }
            if !u.headers.is_empty() || u.tls.is_some() || u.proxy.is_some() {
                return err(
                    "type",
                    "headers, tls and proxy apply to http upstreams, not to a local process",
                );
            }
            if u.max_processes == 0 {
                return err("max_processes", "expected at least 1");
            }
            u.url = UpstreamUrl::hosted(&u.name);
        }
        UpstreamKind::Sse => {
            if u.tls.is_some() || u.proxy.is_some() {
                return err(
                    "type",
                    "tls and proxy are not available for sse upstreams yet (the bridge connects to them directly, with the system roots)",
                );
            }
            let own = (
                std::mem::replace(&mut u.url, UpstreamUrl::hosted(&u.name)),
                std::mem::take(&mut u.headers),
            );
            u.sse = Some(own);
        }
    }
    Ok(())
}

/// Settings of one upstream's connection that only make sense together; resolves the
/// timeout (`transport.timeout` over `timeout`). Errors name the field under the upstream.
fn check_transport(u: &mut super::model::Upstream) -> Result<(), FieldError> {
    if let Some(tls) = u.transport.tls.take() {
        if u.tls.is_some() {
            return Err(FieldError::new(
                "transport.tls",
                "set either tls or transport.tls, not both",
            ));
        }
        u.tls = Some(tls);
    }
    if let Some(proxy) = u.transport.proxy.take() {
        if u.proxy.is_some() {
            return Err(FieldError::new(
                "transport.proxy",
                "set either proxy or transport.proxy, not both",
            ));
        }
        u.proxy = Some(proxy);
    }
    let t = &u.transport;
    if let Some(timeout) = t.timeout {
        if u.timeout != super::model::default_timeout() && u.timeout != timeout {
            return Err(FieldError::new(
                "transport.timeout",
                "set either timeout or transport.timeout, not both",
            ));
        }
        u.timeout = timeout;
    }
    if t.max_idle_conns == 0 || t.max_idle_conns_per_host == 0 {
        let f = if t.max_idle_conns == 0 {
            "max_idle_conns"
        } else {
            "max_idle_conns_per_host"
        };
        return Err(FieldError::new(
            format!("transport.{f}"),
            "expected at least 1",
        ));
    }
    if t.max_idle_conns_per_host > t.max_idle_conns {
        return Err(FieldError::new(
            "transport.max_idle_conns_per_host",
            format!(
                "{} is more than max_idle_conns ({})",
                t.max_idle_conns_per_host, t.max_idle_conns
            ),
        ));
    }
    if let Some(tls) = &u.tls {
        if !u.url.is_tls() {
            return Err(FieldError::new(
                "tls",
                "applies to https:// upstreams; this URL is http://",
            ));
        }
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            let missing = if tls.client_cert.is_some() {
                "client_key"
            } else {
                "client_cert"
            };
            return Err(FieldError::new(
                format!("tls.{missing}"),
                "mutual TLS needs both client_cert and client_key",
            ));
        }
        if tls.insecure_skip_verify && tls.ca_cert.is_some() {
            return Err(FieldError::new(
                "tls.insecure_skip_verify",
                "contradicts tls.ca_cert: verify against the CA, or skip verification",
            ));
        }
        if tls.server_name.as_deref().is_some_and(|n| {
            n.is_empty()
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        }) {
            return Err(FieldError::new(
                "tls.server_name",
                "expected a DNS name like api.example.com",
            ));
        }
    }
    if let Some(p) = &u.proxy
        && p.username.is_some() != p.password.is_some()
    {
        return Err(FieldError::new(
            "proxy",
            "SOCKS5 username/password authentication needs both username and password",
        ));
    }
    Ok(())
}

/// serde_yaml_ng puts its own path in front of a message and the position behind it; both
/// are printed by [`ConfigError`] already.
fn clean_message(message: &str, path: &str) -> String {
    let mut m = message;
    if let Some(i) = m.rfind(" at line ") {
        m = &m[..i];
    }
    if let Some((prefix, rest)) = m.split_once(": ")
        && !prefix.is_empty()
        && path.starts_with(prefix)
    {
        m = rest;
    }
    m.to_string()
}

/// Position of the first `key:` in the text, for checks that span several fields and so run
/// after deserialization.
fn find_key(text: &str, key: &str) -> (Option<usize>, Option<usize>) {
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start().trim_start_matches("- ");
        if trimmed
            .strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with(':'))
            || trimmed
                .strip_prefix(&format!("\"{key}\""))
                .is_some_and(|r| r.trim_start().starts_with(':'))
        {
            return (Some(n + 1), Some(line.len() - line.trim_start().len() + 1));
        }
    }
    (None, None)
}

/// Position of the last line naming `value` (a duplicate is the later one).
fn find_value(text: &str, value: &str) -> (Option<usize>, Option<usize>) {
    text.lines()
        .enumerate()
        .filter_map(|(n, line)| line.find(value).map(|c| (Some(n + 1), Some(c + 1))))
        .last()
        .unwrap_or((None, None))
}

#[cfg(test)]
mod tests;
