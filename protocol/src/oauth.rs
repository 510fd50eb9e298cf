//! MCP authorization, the resource server's side: the `WWW-Authenticate` challenges that
//! send a client to the gateway's Protected Resource Metadata (RFC 9728) and, for a token
//! that lacks a scope, ask it to step up (RFC 6750 `insufficient_scope`); and which scopes
//! using a tool, prompt, resource or upstream needs. Envoy's `jwt_authn` has verified the
//! token (issuer, signature, expiry, audience) before any of this is asked.

use crate::access::{Kind, Lists};
use crate::glob;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where the Protected Resource Metadata is served (RFC 9728 §3.1): the gateway's at this
/// path, an endpoint's at this path followed by the endpoint's.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth {
    /// `<origin>/.well-known/oauth-protected-resource`: the metadata of the endpoint at
    /// path `/p` is at this URL followed by `/p`.
    pub metadata: String,
    /// The scopes a client without a token is told to ask for (space-separated).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// What needs which scope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<ScopeRule>,
}

/// Using what `on` names (globs, as in rules) needs `scope`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeRule {
    pub scope: String,
    pub on: Lists,
}

/// Why a request gets a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge<'a> {
    /// No token: where to learn how to get one, and what to ask for.
    NoToken,
    /// A token Envoy did not accept (expired, badly signed, another audience, unknown issuer).
    InvalidToken,
    /// A token without these scopes (all the operation needs, space-separated).
    InsufficientScope(&'a str),
}

impl OAuth {
    /// The scopes using `name` needs (each once, in the order configured).
    pub fn needed(&self, kind: Kind, name: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in &self.require {
            if r.on.of(kind).iter().any(|g| glob::matches(g, name))
                && !out.contains(&r.scope.as_str())
            {
                out.push(&r.scope);
            }
        }
        out
    }

    /// The scopes using `name` needs that a token with these claims lacks.
    pub fn missing(&self, claims: &Value, kind: Kind, name: &str) -> Vec<&str> {
        let held = granted(claims);
        self.needed(kind, name)
            .into_iter()
            .filter(|s| !held.contains(s))
            .collect()
    }

    /// The metadata URL for a request at `endpoint` (a path the gateway serves MCP at), or
    /// the gateway's own.
    pub fn metadata_url(&self, endpoint: Option<&str>) -> String {
        format!("{}{}", self.metadata, endpoint.unwrap_or_default())
    }

    /// The `WWW-Authenticate` value for a request at `endpoint`.
    pub fn challenge(&self, endpoint: Option<&str>, why: Challenge<'_>) -> String {
        let metadata = self.metadata_url(endpoint);
        match why {
            Challenge::NoToken if self.scope.is_empty() => {
                format!("Bearer resource_metadata=\"{metadata}\"")
            }
            Challenge::NoToken => format!(
                "Bearer resource_metadata=\"{metadata}\", scope=\"{}\"",
                self.scope
            ),
            Challenge::InvalidToken => format!(
                "Bearer error=\"invalid_token\", error_description=\"The access token is expired, invalid or not for this resource\", resource_metadata=\"{metadata}\""
            ),
            Challenge::InsufficientScope(scope) => format!(
                "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{metadata}\", error_description=\"The access token lacks a scope this operation needs\""
            ),
        }
    }
}

/// The scopes a token was granted: its `scope` claim (space-separated, RFC 9068 and 8693),
/// or `scp` (a list, or a string, as some providers write it).
pub fn granted(claims: &Value) -> Vec<&str> {
    let mut out = Vec::new();
    for key in ["scope", "scp"] {
        match &claims[key] {
            Value::String(s) => out.extend(s.split_whitespace()),
            Value::Array(items) => out.extend(items.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    out
}

/// Whether `authorization` carries a bearer token (any case of the scheme, RFC 9110 §11.1).
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn oauth() -> OAuth {
        OAuth {
            metadata: "https://gw.example/.well-known/oauth-protected-resource".into(),
            scope: "mcp".into(),
            require: vec![
                ScopeRule {
                    scope: "mcp".into(),
                    on: Lists {
                        upstreams: vec!["*".into()],
                        ..Default::default()
                    },
                },
                ScopeRule {
                    scope: "gh:write".into(),
                    on: Lists {
                        tools: vec!["gh__create_*".into(), "gh__delete_*".into()],
                        ..Default::default()
                    },
                },
            ],
        }
    }

    #[test]
    fn a_tool_needs_the_scopes_whose_globs_match_it() {
        let o = oauth();
        assert_eq!(o.needed(Kind::Tool, "gh__create_issue"), ["gh:write"]);
        assert!(o.needed(Kind::Tool, "gh__get_issue").is_empty());
        assert_eq!(o.needed(Kind::Upstream, "gh"), ["mcp"]);
        let reader = json!({"sub": "u", "scope": "mcp openid"});
        assert_eq!(
            o.missing(&reader, Kind::Tool, "gh__create_issue"),
            ["gh:write"]
        );
        let writer = json!({"sub": "u", "scp": ["mcp", "gh:write"]});
        assert!(
            o.missing(&writer, Kind::Tool, "gh__create_issue")
                .is_empty()
        );
        // A scope that only contains the word is not it.
        let sly = json!({"scope": "gh:write-not mcp"});
        assert_eq!(o.missing(&sly, Kind::Tool, "gh__delete_repo"), ["gh:write"]);
    }

    #[test]
    fn challenges_name_the_endpoints_metadata_and_the_scope() {
        let o = oauth();
        assert_eq!(
            o.challenge(Some("/mcp"), Challenge::NoToken),
            "Bearer resource_metadata=\"https://gw.example/.well-known/oauth-protected-resource/mcp\", scope=\"mcp\""
        );
        let step_up = o.challenge(None, Challenge::InsufficientScope("mcp gh:write"));
        assert!(step_up.starts_with("Bearer error=\"insufficient_scope\", scope=\"mcp gh:write\""));
        assert!(
            o.challenge(None, Challenge::InvalidToken)
                .contains("error=\"invalid_token\"")
        );
    }

    #[test]
    fn bearer_tokens_are_found_in_any_case_of_the_scheme() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}
