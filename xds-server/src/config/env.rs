//! `${VAR}` and `${VAR:-default}` expansion, and upstreams given by environment variables.
//!
//! Expansion happens while a string value is deserialized, not on the raw text: a variable's
//! value can never change the YAML's structure, and an unset variable is reported with the
//! line, column and field path of the value that names it.

use super::model::{Upstream, UpstreamKind, UpstreamUrl, default_timeout, parse_duration};
use serde::{Deserialize, Deserializer};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

/// Where `${VAR}` looks values up: the process environment, or a fixed map in tests.
#[derive(Debug, Clone, Default)]
pub enum Environment {
    #[default]
    Process,
    /// A fixed map (tests, fuzzing, tools that check a file against a given environment).
    Fixed(HashMap<String, String>),
}

impl Environment {
    /// A fixed environment.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Environment::Fixed(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<String> {
        match self {
            Environment::Process => std::env::var(name).ok(),
            Environment::Fixed(map) => map.get(name).cloned(),
        }
    }

    pub fn vars(&self) -> Vec<(String, String)> {
        match self {
            Environment::Process => std::env::vars().collect(),
            Environment::Fixed(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }
}

thread_local! {
    // serde's Deserialize has no context argument; the loader sets this for the duration of
    // one parse on its own thread.
    static CURRENT: RefCell<Environment> = const { RefCell::new(Environment::Process) };
}

/// Runs `f` with `env` as the source for `${VAR}`.
pub fn with_environment<T>(env: &Environment, f: impl FnOnce() -> T) -> T {
    let previous = CURRENT.with(|c| c.replace(env.clone()));
    let out = f();
    CURRENT.with(|c| *c.borrow_mut() = previous);
    out
}

/// A string with `${VAR}` expanded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Expanded(pub String);

impl<'de> Deserialize<'de> for Expanded {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        CURRENT
            .with(|env| expand(&raw, &env.borrow()))
            .map(Expanded)
            .map_err(serde::de::Error::custom)
    }
}

/// Expands `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`.
pub fn expand(input: &str, env: &Environment) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {input:?}"))?;
            let (name, default) = match body[..end].split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (&body[..end], None),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("invalid variable name {name:?} in {input:?}"));
            }
            match (env.get(name), default) {
                (Some(v), _) if !(v.is_empty() && default.is_some()) => out.push_str(&v),
                (_, Some(d)) => out.push_str(d),
                (_, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (write ${{{name}:-default}} for a default)"
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

pub const UPSTREAM_PREFIX: &str = "SWITCHBOARD_UPSTREAMS_";

/// Applies `SWITCHBOARD_UPSTREAMS_<NAME>_URL`, `_TYPE`, `_TIMEOUT` and `_HEADERS_<H>`: each
/// either overrides a field of the upstream of that name or defines a new upstream. `_` in
/// NAME and H becomes `-`; NAME is lower-cased.
pub fn apply_upstream_vars(upstreams: &mut Vec<Upstream>, env: &Environment) -> Result<(), String> {
    #[derive(Default)]
    struct Fields {
        url: Option<(String, String)>,
        kind: Option<(String, String)>,
        timeout: Option<(String, String)>,
        headers: BTreeMap<String, String>,
    }
    let mut by_name: BTreeMap<String, Fields> = BTreeMap::new();
    for (var, value) in env.vars() {
        let Some(rest) = var.strip_prefix(UPSTREAM_PREFIX) else {
            continue;
        };
        let (name, field) = if let Some((n, h)) = rest.split_once("_HEADERS_") {
            (n, Some(h))
        } else {
            (rest, None)
        };
        let to_name = |n: &str| n.to_ascii_lowercase().replace('_', "-");
        if let Some(header) = field {
            by_name
                .entry(to_name(name))
                .or_default()
                .headers
                .insert(header.replace('_', "-").to_ascii_lowercase(), value);
            continue;
        }
        let (name, slot) = if let Some(n) = rest.strip_suffix("_URL") {
            (n, 0)
        } else if let Some(n) = rest.strip_suffix("_TYPE") {
            (n, 1)
        } else if let Some(n) = rest.strip_suffix("_TIMEOUT") {
            (n, 2)
        } else {
            return Err(format!(
                "{var}: unknown upstream variable; expected {UPSTREAM_PREFIX}<NAME>_URL, _TYPE, _TIMEOUT or _HEADERS_<HEADER>"
            ));
        };
        if name.is_empty() {
            return Err(format!("{var}: the upstream name is empty"));
        }
        let fields = by_name.entry(to_name(name)).or_default();
        let v = Some((var.clone(), value));
        match slot {
            0 => fields.url = v,
            1 => fields.kind = v,
            _ => fields.timeout = v,
        }
    }

    for (name, f) in by_name {
        super::model::check_upstream_name(&name).map_err(|e| {
            format!(
                "{UPSTREAM_PREFIX}{}: {e}",
                name.to_ascii_uppercase().replace('-', "_")
            )
        })?;
        let url = f
            .url
            .map(|(var, v)| UpstreamUrl::parse(&v).map_err(|e| format!("{var}: {e}")))
            .transpose()?;
        let kind = f
            .kind
            .map(|(var, v)| match v.as_str() {
                "http" | "streamable-http" | "streamableHttp" => Ok(UpstreamKind::Http),
                other => Err(format!(
                    "{var}: unsupported upstream type {other:?}; expected \"http\""
                )),
            })
            .transpose()?;
        let timeout = f
            .timeout
            .map(|(var, v)| parse_duration(&v).map_err(|e| format!("{var}: {e}")))
            .transpose()?;
        let headers = f
            .headers
            .into_iter()
            .map(|(k, v)| (k, super::env::Expanded(v)));
        if let Some(existing) = upstreams.iter_mut().find(|u| *u.name == *name) {
            if let Some(url) = url {
                existing.url = url;
            }
            if let Some(kind) = kind {
                existing.kind = kind;
            }
            if let Some(t) = timeout {
                existing.timeout = t;
            }
            existing.headers.extend(headers);
        } else {
            let url = url.ok_or_else(|| {
                format!(
                    "upstream {name:?} is given by environment variables but has no URL: set {UPSTREAM_PREFIX}{}_URL",
                    name.to_ascii_uppercase().replace('-', "_")
                )
            })?;
            upstreams.push(Upstream {
                name: super::model::UpstreamName(name),
                kind: kind.unwrap_or_default(),
                url,
                headers: headers.collect(),
                timeout: timeout.unwrap_or_else(default_timeout),
                ..Upstream::http_defaults()
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs)
    }

    #[test]
    fn expands_variables_defaults_and_dollars() {
        let e = env(&[("A", "1"), ("EMPTY", "")]);
        assert_eq!(expand("x${A}y", &e).unwrap(), "x1y");
        assert_eq!(expand("${B:-def}", &e).unwrap(), "def");
        assert_eq!(expand("${EMPTY:-def}", &e).unwrap(), "def");
        assert_eq!(expand("${EMPTY}", &e).unwrap(), "");
        assert_eq!(expand("$$A $A", &e).unwrap(), "$A $A");
        assert_eq!(expand("${B:-}", &e).unwrap(), "");
    }

    #[test]
    fn unset_variable_without_default_is_an_error() {
        let err = expand("Bearer ${TOKEN}", &env(&[])).unwrap_err();
        assert!(err.contains("TOKEN is not set"), "{err}");
        assert!(expand("${UNCLOSED", &env(&[])).is_err());
        assert!(expand("${bad-name}", &env(&[])).is_err());
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
    fn environment_errors_name_the_variable() {
        let mut ups = Vec::new();
        let err = apply_upstream_vars(
            &mut ups,
            &env(&[("SWITCHBOARD_UPSTREAMS_X_URL", "ftp://x")]),
        )
        .unwrap_err();
        assert!(err.starts_with("SWITCHBOARD_UPSTREAMS_X_URL:"), "{err}");
        let err = apply_upstream_vars(
            &mut ups,
            &env(&[("SWITCHBOARD_UPSTREAMS_X_HEADERS_A", "1")]),
        )
        .unwrap_err();
        assert!(err.contains("SWITCHBOARD_UPSTREAMS_X_URL"), "{err}");
        let err = apply_upstream_vars(&mut ups, &env(&[("SWITCHBOARD_UPSTREAMS_X_PORT", "1")]))
            .unwrap_err();
        assert!(err.contains("unknown upstream variable"), "{err}");
    }
}
