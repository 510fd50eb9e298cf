//! `auth.oauth`: the gateway as an OAuth 2.1 resource server (MCP authorization): the
//! authorization servers whose tokens it takes, its own resource URI (the tokens' audience,
//! RFC 8707), the scopes tools need; and `upstreams[].auth.token_exchange` (RFC 8693), by
//! which an upstream gets a token of its own for the user instead of the client's.
//!
//! What the configuration leaves out of an authorization server (its JWKS, its token
//! endpoint) is read from its metadata (RFC 8414, else OpenID discovery) at load.

use super::env::Expanded;
use super::error::FieldError;
use super::values::{PemFile, UpstreamUrl, duration};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// The gateway's canonical URI as its clients reach it (`https://mcp.example.com/mcp`):
    /// the `resource` clients ask tokens for, and the audience those tokens must carry.
    pub resource: UpstreamUrl,
    /// Whose tokens count (usually one).
    pub authorization_servers: Vec<AuthorizationServer>,
    /// The identity's client name, as `rules[].clients` names it.
    #[serde(default = "default_client")]
    pub client: String,
    /// What a client without a token is told to ask for (the 401's `scope`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Scopes that using something needs: a token without one may not call it, is told to
    /// step up (403 `insufficient_scope`), and does not see it in lists.
    #[serde(default)]
    pub require: Vec<ScopeRequirement>,
    /// A human-readable name for the metadata (`resource_name`).
    #[serde(default)]
    pub resource_name: Option<String>,
}

fn default_client() -> String {
    "oauth".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationServer {
    /// Its issuer identifier, exactly as its tokens' `iss` say.
    pub issuer: String,
    /// Its signing keys; by default the `jwks_uri` of its metadata.
    #[serde(default)]
    pub jwks: Option<super::auth::Jwks>,
    /// Where token exchange asks; by default the `token_endpoint` of its metadata.
    #[serde(default)]
    pub token_endpoint: Option<UpstreamUrl>,
    /// What its metadata said, filled in at load.
    #[serde(skip)]
    pub discovered: Option<Discovered>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Discovered {
    pub jwks_uri: Option<UpstreamUrl>,
    pub token_endpoint: Option<UpstreamUrl>,
}

impl AuthorizationServer {
    /// The JWKS URL Envoy fetches, when the keys are not in a file.
    pub fn jwks_url(&self) -> Option<&UpstreamUrl> {
        match &self.jwks {
            Some(j) => j.url.as_ref(),
            None => self.discovered.as_ref()?.jwks_uri.as_ref(),
        }
    }

    pub fn token_endpoint(&self) -> Option<&UpstreamUrl> {
        self.token_endpoint
            .as_ref()
            .or_else(|| self.discovered.as_ref()?.token_endpoint.as_ref())
    }
}

/// `scope` is needed to use what the lists name (globs as in rules).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeRequirement {
    pub scope: String,
    #[serde(default)]
    pub upstreams: Vec<String>,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub prompts: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
}

/// `upstreams[].auth.token_exchange`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenExchangeConfig {
    /// Which authorization server exchanges (its issuer); the only one by default.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The upstream's identifier at the authorization server (`audience`, RFC 8693).
    #[serde(default)]
    pub audience: Option<String>,
    /// The upstream's URI (`resource`, RFC 8707).
    #[serde(default)]
    pub resource: Option<String>,
    /// Scopes to ask for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The gateway's client at the authorization server.
    pub client_id: String,
    /// `client_secret_basic`, normally as `${VAR}`.
    #[serde(default)]
    pub client_secret: Option<Expanded>,
    /// `private_key_jwt`: an EC P-256 key (PEM, PKCS#8 or SEC1); assertions are ES256.
    #[serde(default)]
    pub private_key: Option<PrivateKeyConfig>,
    #[serde(default = "default_exchange_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

fn default_exchange_timeout() -> Duration {
    Duration::from_secs(5)
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateKeyConfig {
    pub file: PemFile,
    /// The key's id at the authorization server (the assertion's `kid`).
    #[serde(default)]
    pub kid: Option<String>,
}

impl OAuthConfig {
    /// Errors as `(field path under auth.oauth, message)`.
    pub fn check(&self) -> Result<(), FieldError> {
        if self.authorization_servers.is_empty() {
            return Err(FieldError::new(
                "authorization_servers",
                "name at least one authorization server (its issuer)",
            ));
        }
        if self.resource.url.query().is_some() {
            return Err(FieldError::new(
                "resource",
                "a resource URI has no query (RFC 8707)",
            ));
        }
        for (i, a) in self.authorization_servers.iter().enumerate() {
            if url::Url::parse(&a.issuer)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.query().is_none())
                .is_none()
            {
                return Err(FieldError::new(
                    format!("authorization_servers[{i}].issuer"),
                    format!(
                        "expected an http(s) URL without query, found {:?}",
                        a.issuer
                    ),
                ));
            }
            if let Some(j) = &a.jwks
                && j.file.is_some() == j.url.is_some()
            {
                return Err(FieldError::new(
                    format!("authorization_servers[{i}].jwks"),
                    "give either file or url (or leave jwks out: its metadata's jwks_uri)",
                ));
            }
        }
        for (i, r) in self.require.iter().enumerate() {
            if !valid_scope(&r.scope) {
                return Err(FieldError::new(
                    format!("require[{i}].scope"),
                    format!(
                        "expected a scope (printable, no space or quote), found {:?}",
                        r.scope
                    ),
                ));
            }
            if r.upstreams.is_empty()
                && r.tools.is_empty()
                && r.prompts.is_empty()
                && r.resources.is_empty()
            {
                return Err(FieldError::new(
                    format!("require[{i}]"),
                    "name what the scope is needed for (upstreams, tools, prompts or resources)",
                ));
            }
        }
        check_scopes(&self.scopes)
    }

    /// Every scope the gateway knows of (`scopes_supported`).
    pub fn scopes_supported(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for s in self
            .scopes
            .iter()
            .chain(self.require.iter().map(|r| &r.scope))
        {
            if !all.contains(s) {
                all.push(s.clone());
            }
        }
        all
    }

    /// The authorization server `issuer` names (the only one when `None`).
    pub fn server(&self, issuer: Option<&str>) -> Option<&AuthorizationServer> {
        match issuer {
            Some(i) => self.authorization_servers.iter().find(|a| a.issuer == i),
            None if self.authorization_servers.len() == 1 => self.authorization_servers.first(),
            None => None,
        }
    }
}

/// A `scopes` list: each a scope.
fn check_scopes(scopes: &[String]) -> Result<(), FieldError> {
    match scopes.iter().find(|s| !valid_scope(s)) {
        Some(bad) => Err(FieldError::new(
            "scopes",
            format!("expected scopes (printable, no space or quote), found {bad:?}"),
        )),
        None => Ok(()),
    }
}

/// RFC 6749 §3.3 scope-token characters (and nothing a header's quoted string would break on).
fn valid_scope(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

impl TokenExchangeConfig {
    /// Errors as `(field path under the upstream's auth.token_exchange, message)`.
    pub fn check(&self, oauth: Option<&OAuthConfig>) -> Result<(), FieldError> {
        let Some(oauth) = oauth else {
            return Err(FieldError::new(
                "",
                "token exchange needs auth.oauth: the client's token is what is exchanged",
            ));
        };
        if oauth.server(self.issuer.as_deref()).is_none() {
            return Err(FieldError::new(
                "issuer",
                match &self.issuer {
                    Some(i) => format!("{i:?} is none of auth.oauth.authorization_servers"),
                    None => {
                        "there are several authorization servers: say which one exchanges".into()
                    }
                },
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(FieldError::new(
                "client_id",
                "the gateway's client id is needed",
            ));
        }
        if self.client_secret.is_some() == self.private_key.is_some() {
            return Err(FieldError::new(
                "",
                "give the gateway's client authentication: client_secret or private_key (one)",
            ));
        }
        if self.audience.is_none() && self.resource.is_none() {
            return Err(FieldError::new(
                "audience",
                "say whom the exchanged token is for: audience and/or resource",
            ));
        }
        check_scopes(&self.scopes)
    }
}

/// Reads the metadata of every authorization server that leaves its JWKS or token endpoint
/// to it: RFC 8414 (`/.well-known/oauth-authorization-server`, inserted before the issuer's
/// path), else OpenID Connect discovery. Its `issuer` must be the configured one (RFC 8414
/// §3.3). A fetch that fails keeps what this process read last from that issuer.
pub fn discover_all(
    oauth: &mut OAuthConfig,
    needs_token_endpoint: &[bool],
    ca: Option<&[u8]>,
) -> Result<(), FieldError> {
    for (i, a) in oauth.authorization_servers.iter_mut().enumerate() {
        let wants_jwks = a.jwks.is_none();
        let wants_token =
            needs_token_endpoint.get(i).copied().unwrap_or(false) && a.token_endpoint.is_none();
        if !(wants_jwks || wants_token) {
            continue;
        }
        let field = format!("authorization_servers[{i}].issuer");
        let found = discover_or_last_good(&a.issuer, ca).map_err(|m| FieldError::new(&field, m))?;
        if wants_jwks && found.jwks_uri.is_none() {
            return Err(FieldError::new(
                &field,
                "its metadata names no jwks_uri: give auth.oauth.authorization_servers[].jwks",
            ));
        }
        if wants_token && found.token_endpoint.is_none() {
            return Err(FieldError::new(
                &field,
                "its metadata names no token_endpoint, which token exchange needs: give token_endpoint",
            ));
        }
        a.discovered = Some(found);
    }
    Ok(())
}

static LAST_GOOD: Mutex<Option<HashMap<String, Discovered>>> = Mutex::new(None);

fn discover_or_last_good(issuer: &str, ca: Option<&[u8]>) -> Result<Discovered, String> {
    let mut last = LAST_GOOD.lock().unwrap_or_else(|e| e.into_inner());
    match discover(issuer, ca) {
        Ok(found) => {
            last.get_or_insert_with(HashMap::new)
                .insert(issuer.to_string(), found.clone());
            Ok(found)
        }
        Err(e) => match last.as_ref().and_then(|m| m.get(issuer)) {
            Some(found) => {
                tracing::warn!(
                    "cannot read the metadata of {issuer}: {e}; keeping what was read last"
                );
                Ok(found.clone())
            }
            None => Err(format!("cannot read its metadata: {e}")),
        },
    }
}

/// The metadata URLs of `issuer`, in the order they are tried.
pub fn metadata_urls(issuer: &str) -> Vec<String> {
    let Ok(u) = url::Url::parse(issuer) else {
        return Vec::new();
    };
    let origin = u.origin().ascii_serialization();
    let path = u.path().trim_end_matches('/');
    vec![
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}/.well-known/openid-configuration{path}"),
        format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ),
    ]
}

fn discover(issuer: &str, ca: Option<&[u8]>) -> Result<Discovered, String> {
    let urls = metadata_urls(issuer);
    let ca = ca.map(<[u8]>::to_vec);
    let issuer = issuer.to_string();
    let run = move || -> Result<Discovered, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            // Metadata decides whose tokens count: no redirect elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &ca {
            let certs = reqwest::Certificate::from_pem_bundle(ca).map_err(|e| e.to_string())?;
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let mut why = Vec::new();
            for url in &urls {
                let response = match client.get(url).send().await {
                    Ok(r) => r,
                    Err(e) => {
                        why.push(format!("{url}: {e}"));
                        continue;
                    }
                };
                if !response.status().is_success() {
                    why.push(format!("{url}: HTTP {}", response.status()));
                    continue;
                }
                let meta: serde_json::Value = match response.json().await {
                    Ok(m) => m,
                    Err(e) => {
                        why.push(format!("{url}: not JSON ({e})"));
                        continue;
                    }
                };
                return read_metadata(&issuer, &meta).map_err(|m| format!("{url}: {m}"));
            }
            Err(why.join("; "))
        })
    };
    std::thread::spawn(run)
        .join()
        .map_err(|_| "the fetch failed".to_string())?
}

/// The parts of an authorization server's metadata the gateway uses, checked.
pub fn read_metadata(issuer: &str, meta: &serde_json::Value) -> Result<Discovered, String> {
    let said = meta["issuer"].as_str().unwrap_or_default();
    if said != issuer {
        return Err(format!(
            "it names the issuer {said:?}, not {issuer:?} (RFC 8414 §3.3: refused)"
        ));
    }
    let url = |key: &str| -> Result<Option<UpstreamUrl>, String> {
        meta[key]
            .as_str()
            .map(|s| UpstreamUrl::parse(s).map_err(|e| format!("{key}: {}", e.0)))
            .transpose()
    };
    Ok(Discovered {
        jwks_uri: url("jwks_uri")?,
        token_endpoint: url("token_endpoint")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_looked_for_where_rfc_8414_and_openid_say() {
        assert_eq!(
            metadata_urls("https://idp.example.com/realms/a"),
            [
                "https://idp.example.com/.well-known/oauth-authorization-server/realms/a",
                "https://idp.example.com/.well-known/openid-configuration/realms/a",
                "https://idp.example.com/realms/a/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            metadata_urls("https://idp.example.com")[0],
            "https://idp.example.com/.well-known/oauth-authorization-server"
        );
    }

    #[test]
    fn metadata_of_another_issuer_is_refused() {
        let meta = serde_json::json!({"issuer": "https://evil.example", "jwks_uri": "https://evil.example/jwks"});
        assert!(
            read_metadata("https://idp.example.com", &meta)
                .unwrap_err()
                .contains("RFC 8414")
        );
        let meta = serde_json::json!({"issuer": "https://idp.example.com", "jwks_uri": "https://idp.example.com/jwks", "token_endpoint": "https://idp.example.com/token"});
        let found = read_metadata("https://idp.example.com", &meta).unwrap();
        assert_eq!(found.jwks_uri.unwrap().url.path(), "/jwks");
    }
}
