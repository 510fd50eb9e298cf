//! Upstreams given by environment variables (`SWITCHBOARD_UPSTREAMS_<NAME>_<FIELD>`), as the
//! gateway this project replaces configures them.

use super::env::{Environment, Expanded};
use super::error::ValueError;
use super::model::{Upstream, UpstreamKind, UpstreamUrl, default_timeout, parse_duration};
use std::collections::BTreeMap;

pub const UPSTREAM_PREFIX: &str = "SWITCHBOARD_UPSTREAMS_";

/// One upstream's variables, each with the variable's name for errors.
#[derive(Default)]
struct UpstreamVars {
    url: Option<(String, String)>,
    kind: Option<(String, String)>,
    timeout: Option<(String, String)>,
    headers: BTreeMap<String, String>,
    command: Option<(String, String)>,
    args: Option<(String, String)>,
    env: BTreeMap<String, String>,
    pass_through_enabled: Option<(String, String)>,
    pass_through_headers: Option<(String, String)>,
}

/// The fields a variable may set, after `SWITCHBOARD_UPSTREAMS_<NAME>`.
const FIELDS: &str = "_URL, _TYPE, _TIMEOUT, _HEADERS_<HEADER>, _COMMAND, _ARGS, _ENV_<VAR>, _AUTH_PASS_THROUGH_ENABLED or _AUTH_PASS_THROUGH_HEADERS";

/// Applies `SWITCHBOARD_UPSTREAMS_<NAME>_<FIELD>` variables: each either overrides a field of
/// the upstream of that name or defines a new upstream. `_` in NAME and HEADER becomes `-`;
/// NAME is lower-cased. The fields:
///
/// - `_URL`, `_TYPE` (`http`, `sse`, `stdio`), `_TIMEOUT` (`30s`), `_HEADERS_<HEADER>`;
/// - stdio servers: `_COMMAND`, `_ARGS` (split as a POSIX shell would), `_ENV_<VAR>`;
/// - `_AUTH_PASS_THROUGH_HEADERS`: `source:target:format` entries, comma-separated (`format`
///   optional, `{value}` the client's value; `\` escapes `,`, `:`, a space or itself), and
///   `_AUTH_PASS_THROUGH_ENABLED` (`true`/`false`: `false` turns them off).
pub fn apply_upstream_vars(
    upstreams: &mut Vec<Upstream>,
    env: &Environment,
) -> Result<(), ValueError> {
    for (name, vars) in collect(env)? {
        Fields::parse(&name, vars)?.apply(upstreams, &name)?;
    }
    Ok(())
}

/// The upstream variables of the environment, by upstream name.
fn collect(env: &Environment) -> Result<BTreeMap<String, UpstreamVars>, ValueError> {
    let mut by_name: BTreeMap<String, UpstreamVars> = BTreeMap::new();
    let to_name = |n: &str| n.to_ascii_lowercase().replace('_', "-");
    for (var, value) in env.vars() {
        let Some(rest) = var.strip_prefix(UPSTREAM_PREFIX) else {
            continue;
        };
        if let Some((name, header)) = rest.split_once("_HEADERS_") {
            by_name
                .entry(to_name(name))
                .or_default()
                .headers
                .insert(header.replace('_', "-").to_ascii_lowercase(), value);
            continue;
        }
        if let Some((name, child_var)) = rest.split_once("_ENV_") {
            by_name
                .entry(to_name(name))
                .or_default()
                .env
                .insert(child_var.to_string(), value);
            continue;
        }
        let field = [
            "_AUTH_PASS_THROUGH_ENABLED",
            "_AUTH_PASS_THROUGH_HEADERS",
            "_URL",
            "_TYPE",
            "_TIMEOUT",
            "_COMMAND",
            "_ARGS",
        ]
        .into_iter()
        .find_map(|f| rest.strip_suffix(f).map(|n| (n, f)));
        let Some((name, field)) = field else {
            return Err(ValueError(format!(
                "{var}: unknown upstream variable; expected {UPSTREAM_PREFIX}<NAME> followed by {FIELDS}"
            )));
        };
        if name.is_empty() {
            return Err(ValueError(format!("{var}: the upstream name is empty")));
        }
        let vars = by_name.entry(to_name(name)).or_default();
        let slot = match field {
            "_URL" => &mut vars.url,
            "_TYPE" => &mut vars.kind,
            "_TIMEOUT" => &mut vars.timeout,
            "_COMMAND" => &mut vars.command,
            "_ARGS" => &mut vars.args,
            "_AUTH_PASS_THROUGH_ENABLED" => &mut vars.pass_through_enabled,
            _ => &mut vars.pass_through_headers,
        };
        *slot = Some((var.clone(), value));
    }
    Ok(by_name)
}

/// The variable that sets `field` of upstream `name`, for messages.
fn var_name(name: &str, field: &str) -> String {
    format!(
        "{UPSTREAM_PREFIX}{}{field}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

/// One upstream's variables, parsed; errors name the variable.
struct Fields {
    url: Option<UpstreamUrl>,
    kind: Option<UpstreamKind>,
    timeout: Option<std::time::Duration>,
    args: Option<Vec<String>>,
    pass_through: Option<Vec<super::auth::PassThroughHeader>>,
    headers: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    command: Option<String>,
}

impl Fields {
    fn parse(name: &str, f: UpstreamVars) -> Result<Fields, ValueError> {
        super::model::check_upstream_name(name)
            .map_err(|e| ValueError(format!("{}: {e}", var_name(name, ""))))?;
        let url = f
            .url
            .map(|(var, v)| UpstreamUrl::parse(&v).map_err(|e| ValueError(format!("{var}: {e}"))))
            .transpose()?;
        let kind = f
            .kind
            .map(|(var, v)| match v.as_str() {
                "http" | "streamable-http" | "streamableHttp" | "streamable_http" => {
                    Ok(UpstreamKind::Http)
                }
                "sse" => Ok(UpstreamKind::Sse),
                "stdio" => Ok(UpstreamKind::Stdio),
                other => Err(ValueError(format!(
                    "{var}: unsupported upstream type {other:?}; expected \"http\", \"sse\" or \"stdio\""
                ))),
            })
            .transpose()?;
        let timeout = f
            .timeout
            .map(|(var, v)| parse_duration(&v).map_err(|e| ValueError(format!("{var}: {e}"))))
            .transpose()?;
        let args = f
            .args
            .map(|(var, v)| {
                shlex::split(&v)
                    .ok_or_else(|| ValueError(format!("{var}: unbalanced quotes in {v:?}")))
            })
            .transpose()?;
        Ok(Fields {
            url,
            kind,
            timeout,
            args,
            pass_through: pass_through(name, f.pass_through_enabled, f.pass_through_headers)?,
            headers: f.headers,
            env: f.env,
            command: f.command.map(|(_, c)| c),
        })
    }

    /// Overrides the upstream `name`, or adds it.
    fn apply(self, upstreams: &mut Vec<Upstream>, name: &str) -> Result<(), ValueError> {
        let stdio = self.kind == Some(UpstreamKind::Stdio)
            || (self.kind.is_none() && self.command.is_some());
        let upstream = match upstreams.iter().position(|u| *u.name == *name) {
            Some(i) => &mut upstreams[i],
            None => {
                let url = if stdio {
                    UpstreamUrl::missing()
                } else {
                    self.url.clone().ok_or_else(|| {
                        ValueError(format!(
                            "upstream {name:?} is given by environment variables but has no URL: set {} (or {} for a stdio server)",
                            var_name(name, "_URL"),
                            var_name(name, "_COMMAND")
                        ))
                    })?
                };
                upstreams.push(Upstream {
                    name: super::model::UpstreamName(name.to_string()),
                    url,
                    timeout: default_timeout(),
                    ..Upstream::http_defaults()
                });
                upstreams
                    .last_mut()
                    .ok_or_else(|| ValueError("no upstream".into()))?
            }
        };
        if let Some(url) = self.url {
            upstream.url = url;
        }
        match self.kind {
            Some(k) => upstream.kind = k,
            None if stdio => upstream.kind = UpstreamKind::Stdio,
            None => {}
        }
        if let Some(t) = self.timeout {
            upstream.timeout = t;
        }
        upstream
            .headers
            .extend(self.headers.into_iter().map(|(k, v)| (k, Expanded(v))));
        if let Some(c) = self.command {
            upstream.command = Some(Expanded(c));
        }
        if let Some(a) = self.args {
            upstream.args = a.into_iter().map(Expanded).collect();
        }
        upstream
            .env
            .extend(self.env.into_iter().map(|(k, v)| (k, Expanded(v))));
        if let Some(p) = self.pass_through {
            upstream.auth.pass_through.headers = p;
        }
        Ok(())
    }
}

/// `_AUTH_PASS_THROUGH_ENABLED` and `_AUTH_PASS_THROUGH_HEADERS` together: `Some` replaces the
/// upstream's pass-through headers (`false` empties them).
fn pass_through(
    name: &str,
    enabled: Option<(String, String)>,
    headers: Option<(String, String)>,
) -> Result<Option<Vec<super::auth::PassThroughHeader>>, ValueError> {
    let enabled = enabled
        .map(|(var, v)| match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok((var, true)),
            "false" | "0" | "no" | "off" => Ok((var, false)),
            other => Err(ValueError(format!(
                "{var}: expected true or false, found {other:?}"
            ))),
        })
        .transpose()?;
    match (enabled, headers) {
        (Some((_, false)), _) => Ok(Some(Vec::new())),
        (Some((var, true)), None) => Err(ValueError(format!(
            "{var}: pass-through is enabled but no headers are given: set {}",
            var_name(name, "_AUTH_PASS_THROUGH_HEADERS")
        ))),
        (_, Some((var, v))) => pass_through_headers(&v)
            .map(Some)
            .map_err(|e| ValueError(format!("{var}: {e}"))),
        (None, None) => Ok(None),
    }
}

/// `X-Token:Authorization:Bearer {value},X-Org:X-Org` → pass-through headers.
fn pass_through_headers(value: &str) -> Result<Vec<super::auth::PassThroughHeader>, ValueError> {
    let mut out = Vec::new();
    for entry in split_escaped(value, ',') {
        if entry.trim().is_empty() {
            continue;
        }
        let parts = split_escaped(&entry, ':');
        let unescape = |s: &str| {
            let mut out = String::new();
            let mut chars = s.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next()),
                    c => out.push(c),
                }
            }
            out
        };
        let (source, target, format) = match parts.as_slice() {
            [s, t] => (s, t, "{value}".to_string()),
            [s, t, f] => (s, t, unescape(f)),
            _ => {
                return Err(ValueError(format!(
                    "expected source:target or source:target:format, found {entry:?}"
                )));
            }
        };
        let (source, target) = (
            unescape(source).trim().to_string(),
            unescape(target).trim().to_string(),
        );
        if source.is_empty() || target.is_empty() {
            return Err(ValueError(format!("a header name is empty in {entry:?}")));
        }
        out.push(super::auth::PassThroughHeader {
            source_header: source,
            target_header: target,
            format,
        });
    }
    Ok(out)
}

/// `s` split at each `sep` not escaped by a backslash (escapes are kept).
fn split_escaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        let last = parts.last_mut();
        match (escaped, c, last) {
            (false, '\\', Some(p)) => {
                escaped = true;
                p.push(c);
            }
            (false, c, _) if c == sep => parts.push(String::new()),
            (_, c, Some(p)) => {
                escaped = false;
                p.push(c);
            }
            (_, _, None) => {}
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs)
    }

    #[test]
    fn upstreams_from_environment() {
        let mut ups = Vec::new();
        let e = env(&[
            (
                "SWITCHBOARD_UPSTREAMS_MY_SERVER_URL",
                "http://127.0.0.1:9/mcp",
            ),
            ("SWITCHBOARD_UPSTREAMS_MY_SERVER_HEADERS_X_API_KEY", "k"),
            ("SWITCHBOARD_UPSTREAMS_MY_SERVER_TIMEOUT", "5s"),
            ("UNRELATED", "x"),
        ]);
        apply_upstream_vars(&mut ups, &e).unwrap();
        assert_eq!(ups.len(), 1);
        assert_eq!(&*ups[0].name, "my-server");
        assert_eq!(ups[0].url.authority(), "127.0.0.1:9");
        assert_eq!(ups[0].headers["x-api-key"].0, "k");
        assert_eq!(ups[0].timeout, std::time::Duration::from_secs(5));
    }

    #[test]
    fn environment_overrides_a_file_upstream() {
        let mut ups = vec![Upstream {
            name: super::super::model::UpstreamName("gh".into()),
            kind: UpstreamKind::Http,
            url: UpstreamUrl::parse("http://a/mcp").unwrap(),
            ..Upstream::http_defaults()
        }];
        apply_upstream_vars(
            &mut ups,
            &env(&[("SWITCHBOARD_UPSTREAMS_GH_URL", "https://b/mcp")]),
        )
        .unwrap();
        assert_eq!(ups[0].url.authority(), "b");
    }

    #[test]
    fn stdio_servers_and_pass_through_from_environment() {
        let mut ups = Vec::new();
        let e = env(&[
            ("SWITCHBOARD_UPSTREAMS_FILES_COMMAND", "npx"),
            (
                "SWITCHBOARD_UPSTREAMS_FILES_ARGS",
                "-y @modelcontextprotocol/server-filesystem '/srv/my files'",
            ),
            ("SWITCHBOARD_UPSTREAMS_FILES_ENV_LOG_LEVEL", "debug"),
            ("SWITCHBOARD_UPSTREAMS_GH_URL", "https://gh.example/mcp"),
            ("SWITCHBOARD_UPSTREAMS_GH_AUTH_PASS_THROUGH_ENABLED", "true"),
            (
                "SWITCHBOARD_UPSTREAMS_GH_AUTH_PASS_THROUGH_HEADERS",
                "X-Token:Authorization:Bearer\\ {value},X-Org:X-Org,X-A:X-B:a\\:b\\,c",
            ),
        ]);
        apply_upstream_vars(&mut ups, &e).unwrap();
        let files = ups.iter().find(|u| &*u.name == "files").unwrap();
        assert_eq!(files.kind, UpstreamKind::Stdio);
        assert_eq!(files.command.as_ref().unwrap().0, "npx");
        let args: Vec<&str> = files.args.iter().map(|a| a.0.as_str()).collect();
        assert_eq!(
            args,
            [
                "-y",
                "@modelcontextprotocol/server-filesystem",
                "/srv/my files"
            ]
        );
        assert_eq!(files.env["LOG_LEVEL"].0, "debug");
        let gh = ups.iter().find(|u| &*u.name == "gh").unwrap();
        let p = &gh.auth.pass_through.headers;
        assert_eq!(
            (
                p[0].source_header.as_str(),
                p[0].target_header.as_str(),
                p[0].format.as_str()
            ),
            ("X-Token", "Authorization", "Bearer {value}")
        );
        assert_eq!(p[1].format, "{value}");
        assert_eq!(p[2].format, "a:b,c");
        // Turned off, even with headers given.
        let mut ups = Vec::new();
        apply_upstream_vars(
            &mut ups,
            &env(&[
                ("SWITCHBOARD_UPSTREAMS_GH_URL", "https://gh.example/mcp"),
                (
                    "SWITCHBOARD_UPSTREAMS_GH_AUTH_PASS_THROUGH_ENABLED",
                    "false",
                ),
                ("SWITCHBOARD_UPSTREAMS_GH_AUTH_PASS_THROUGH_HEADERS", "A:B"),
            ]),
        )
        .unwrap();
        assert!(ups[0].auth.pass_through.headers.is_empty());
    }

    #[test]
    fn environment_errors_name_the_variable() {
        let mut ups = Vec::new();
        let err = apply_upstream_vars(
            &mut ups,
            &env(&[("SWITCHBOARD_UPSTREAMS_X_URL", "ftp://x")]),
        )
        .unwrap_err();
        assert!(err.0.starts_with("SWITCHBOARD_UPSTREAMS_X_URL:"), "{err}");
        let err = apply_upstream_vars(
            &mut ups,
            &env(&[("SWITCHBOARD_UPSTREAMS_X_HEADERS_A", "1")]),
        )
        .unwrap_err();
        assert!(err.0.contains("SWITCHBOARD_UPSTREAMS_X_URL"), "{err}");
        let err = apply_upstream_vars(&mut ups, &env(&[("SWITCHBOARD_UPSTREAMS_X_PORT", "1")]))
            .unwrap_err();
        assert!(err.0.contains("unknown upstream variable"), "{err}");
        for (var, value) in [
            ("SWITCHBOARD_UPSTREAMS_X_ARGS", "a 'b"),
            ("SWITCHBOARD_UPSTREAMS_X_AUTH_PASS_THROUGH_ENABLED", "maybe"),
            (
                "SWITCHBOARD_UPSTREAMS_X_AUTH_PASS_THROUGH_HEADERS",
                "only-one",
            ),
            ("SWITCHBOARD_UPSTREAMS_X_TYPE", "carrier-pigeon"),
        ] {
            let mut ups = Vec::new();
            let err = apply_upstream_vars(
                &mut ups,
                &env(&[
                    ("SWITCHBOARD_UPSTREAMS_X_URL", "http://x/mcp"),
                    (var, value),
                ]),
            )
            .unwrap_err();
            assert!(err.0.starts_with(var), "{var}: {err}");
        }
    }
}
