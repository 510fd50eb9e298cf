//! The `auth` section: who may connect (API keys, JWTs verified by Envoy's `jwt_authn`,
//! source addresses), what each may use, and the per-upstream pass-through of client headers.

use super::env::Expanded;
use super::error::FieldError;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// In order; a request is its first matching client's. With clients configured, a
    /// request that matches none gets 401.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// Access rules. None: every client may use everything; any: what no rule allows is
    /// denied, and a deny beats an allow.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// MCP authorization: tokens of these authorization servers for this gateway.
    #[serde(default)]
    pub oauth: Option<super::oauth::OAuthConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub name: String,
    #[serde(default)]
    pub api_key: Option<ApiKeyConfig>,
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    /// Source addresses (`10.0.0.0/8`, `::1/128`).
    #[serde(default)]
    pub cidrs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The header the key travels in.
    #[serde(default = "default_key_header")]
    pub header: String,
    /// Keys, normally as `${VAR}`; only their SHA-256 reaches Envoy.
    #[serde(default)]
    pub keys: Vec<Expanded>,
    /// Keys given as hex SHA-256 digests (`echo -n KEY | sha256sum`).
    #[serde(default)]
    pub sha256: Vec<String>,
}

fn default_key_header() -> String {
    "x-api-key".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    pub jwks: Jwks,
}

/// Where the token's signing keys are: a local JWKS `file` (read at load and watched, handed
/// to Envoy inline: the keys are public), or a `url` Envoy fetches and caches. One of them.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwks {
    #[serde(default)]
    pub file: Option<super::values::PemFile>,
    #[serde(default)]
    pub url: Option<super::values::UpstreamUrl>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Client names (globs) it applies to.
    #[serde(default)]
    pub clients: Vec<String>,
    /// JWT claims that must all match (a string claim equal, or an array claim holding it).
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    #[serde(default)]
    pub allow: ListsConfig,
    #[serde(default)]
    pub deny: ListsConfig,
}

/// Globs on the names clients see: `github`, `github__create_*`, `files+file:///etc/*`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListsConfig {
    #[serde(default)]
    pub upstreams: Vec<String>,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub prompts: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    /// Host routes by key (`hosts.routes`).
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// `upstreams[].auth`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamAuth {
    #[serde(default)]
    pub pass_through: PassThroughConfig,
    /// A token of the upstream's own for the user, exchanged for the client's (RFC 8693).
    #[serde(default)]
    pub token_exchange: Option<super::oauth::TokenExchangeConfig>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassThroughConfig {
    #[serde(default)]
    pub headers: Vec<PassThroughHeader>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassThroughHeader {
    pub source_header: String,
    pub target_header: String,
    /// `{value}` stands for the client's value (default: the value as it is).
    #[serde(default = "default_format")]
    pub format: String,
}

fn default_format() -> String {
    "{value}".into()
}

impl Auth {
    /// Errors a loader reports as `(field path under auth, message)`.
    pub fn check(&self) -> Result<(), FieldError> {
        let mut names = std::collections::HashSet::new();
        for (i, c) in self.clients.iter().enumerate() {
            let at = |f: &str| format!("clients[{i}]{f}");
            if c.name.is_empty() || !names.insert(c.name.clone()) {
                return Err(FieldError::new(
                    at(".name"),
                    format!(
                        "client names must be unique and not empty, found {:?}",
                        c.name
                    ),
                ));
            }
            if c.api_key.is_none() && c.jwt.is_none() && c.cidrs.is_empty() {
                return Err(FieldError::new(
                    at(""),
                    "a client needs an api_key, a jwt or cidrs",
                ));
            }
            if let Some(k) = &c.api_key {
                if k.keys.is_empty() && k.sha256.is_empty() {
                    return Err(FieldError::new(
                        at(".api_key"),
                        "give keys (as ${VAR}) or their sha256",
                    ));
                }
                if let Some(bad) = k
                    .sha256
                    .iter()
                    .find(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
                {
                    return Err(FieldError::new(
                        at(".api_key.sha256"),
                        format!("expected 64 hex digits, found {bad:?}"),
                    ));
                }
                if let Some(short) = k.keys.iter().find(|k| k.0.trim().len() < 16) {
                    let _ = short;
                    return Err(FieldError::new(
                        at(".api_key.keys"),
                        "an API key needs at least 16 characters",
                    ));
                }
            }
            if let Some(j) = &c.jwt
                && j.jwks.file.is_some() == j.jwks.url.is_some()
            {
                return Err(FieldError::new(at(".jwt.jwks"), "give either file or url"));
            }
            if let Some(bad) = c
                .cidrs
                .iter()
                .find(|n| !switchboard_protocol::access::valid_cidr(n))
            {
                return Err(FieldError::new(
                    at(".cidrs"),
                    format!("expected an address or CIDR like 10.0.0.0/8, found {bad:?}"),
                ));
            }
        }
        if let Some(o) = &self.oauth {
            o.check().map_err(|e| e.within("oauth"))?;
            if self.clients.iter().any(|c| c.name == o.client) {
                return Err(FieldError::new(
                    "oauth.client",
                    format!(
                        "{:?} is the name of a client already: OAuth tokens need a name of their own",
                        o.client
                    ),
                ));
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            if r.clients.is_empty() && r.claims.is_empty() {
                return Err(FieldError::new(
                    format!("rules[{i}]"),
                    "a rule names clients or claims",
                ));
            }
        }
        Ok(())
    }
}
