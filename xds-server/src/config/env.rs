//! `${VAR}` and `${VAR:-default}` expansion.
//!
//! Expansion happens while a string value is deserialized, not on the raw text: a variable's
//! value can never change the YAML's structure, and an unset variable is reported with the
//! line, column and field path of the value that names it.

use super::error::ValueError;
use serde::{Deserialize, Deserializer};
use std::cell::RefCell;
use std::collections::HashMap;

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
pub fn expand(input: &str, env: &Environment) -> Result<String, ValueError> {
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
                .ok_or_else(|| ValueError(format!("unclosed ${{ in {input:?}")))?;
            let (name, default) = match body[..end].split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (&body[..end], None),
            };
            if name.starts_with("input:") || name.starts_with("env:") {
                return Err(ValueError(format!(
                    "${{{name}}} in {input:?} is a variable of VS Code's, which asks the user; the gateway reads its environment: write ${{VARIABLE}}"
                )));
            }
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(ValueError(format!(
                    "invalid variable name {name:?} in {input:?}"
                )));
            }
            match (env.get(name), default) {
                (Some(v), _) if !(v.is_empty() && default.is_some()) => out.push_str(&v),
                (_, Some(d)) => out.push_str(d),
                (_, None) => {
                    return Err(ValueError(format!(
                        "environment variable {name} is not set (write ${{{name}:-default}} for a default)"
                    )));
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
        assert!(err.0.contains("TOKEN is not set"), "{err}");
        assert!(expand("${UNCLOSED", &env(&[])).is_err());
        assert!(expand("${bad-name}", &env(&[])).is_err());
    }
}
