//! OAuth 2.0 Token Exchange (RFC 8693), the gateway as the client: the client's token (the
//! subject) becomes a token of the upstream's own for the same user, asked of the
//! authorization server with the gateway's client credentials (`client_secret_basic`, or
//! `private_key_jwt` with an ES256 assertion, RFC 7523). Pure: the exchange builds the
//! request and reads the answer; the shell makes the call.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The largest token endpoint answer read.
pub const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// How an upstream's tokens are got (the filter's contract).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenExchange {
    /// The Envoy cluster of the authorization server's token endpoint.
    pub cluster: String,
    pub authority: String,
    pub path: String,
    /// The token endpoint's URL: a client assertion's audience.
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Space-separated.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    pub client_id: String,
    pub client_auth: ClientAuth,
    pub timeout_ms: u64,
}

/// The gateway's client authentication at the token endpoint. The secret and the key are
/// secrets: sealed with the filter's others ([`crate::filter_config::Secrets`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientAuth {
    /// `client_secret_basic`.
    Secret { secret: String },
    /// `private_key_jwt`: the P-256 private scalar (hex) and the key's id.
    PrivateKey {
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kid: Option<String>,
    },
}

impl Default for ClientAuth {
    fn default() -> Self {
        ClientAuth::Secret {
            secret: String::new(),
        }
    }
}

impl ClientAuth {
    /// The secret part (moved out when sealing).
    pub fn secret_mut(&mut self) -> &mut String {
        match self {
            ClientAuth::Secret { secret } => secret,
            ClientAuth::PrivateKey { key, .. } => key,
        }
    }
}

/// A token request: its headers and form body.
pub type TokenRequest = (Vec<(String, String)>, Vec<u8>);

/// Why no token came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The authorization server refused the subject token (`invalid_grant`): the client's
    /// token is no good, and the client is told so.
    #[error("the authorization server refused the client's token ({0})")]
    SubjectRefused(String),
    /// The authorization server will not let this user have a token for the upstream
    /// (`access_denied`): the client is told it may not use it.
    #[error("the authorization server denied this user a token for it ({0})")]
    Denied(String),
    /// Any other refusal or a broken answer: the gateway's or the server's problem.
    #[error("the token exchange failed: {0}")]
    Failed(String),
    #[error("the gateway's client assertion could not be signed: {0}")]
    Signing(String),
}

impl TokenExchange {
    /// The request headers and form body that exchange `subject` (the client's token).
    /// `now_s` and `seed` date the client assertion and make its `jti` unique.
    pub fn request(
        &self,
        subject: &str,
        now_s: u64,
        seed: &[u8],
    ) -> Result<TokenRequest, ExchangeError> {
        let mut form = vec![
            ("grant_type", GRANT_TYPE.to_string()),
            ("subject_token", subject.to_string()),
            ("subject_token_type", ACCESS_TOKEN_TYPE.to_string()),
            ("requested_token_type", ACCESS_TOKEN_TYPE.to_string()),
        ];
        if let Some(a) = &self.audience {
            form.push(("audience", a.clone()));
        }
        if let Some(r) = &self.resource {
            form.push(("resource", r.clone()));
        }
        if !self.scope.is_empty() {
            form.push(("scope", self.scope.clone()));
        }
        let mut headers = vec![
            (":method".to_string(), "POST".to_string()),
            (":path".to_string(), self.path.clone()),
            (":authority".to_string(), self.authority.clone()),
            (
                "content-type".to_string(),
                "application/x-www-form-urlencoded".to_string(),
            ),
            ("accept".to_string(), "application/json".to_string()),
        ];
        match &self.client_auth {
            ClientAuth::Secret { secret } => {
                // RFC 6749 §2.3.1: both parts form-encoded before base64.
                let pair = format!("{}:{}", form_encode(&self.client_id), form_encode(secret));
                headers.push((
                    "authorization".to_string(),
                    format!("Basic {}", STANDARD.encode(pair)),
                ));
            }
            ClientAuth::PrivateKey { key, kid } => {
                let assertion = self.assertion(key, kid.as_deref(), now_s, seed)?;
                form.push(("client_id", self.client_id.clone()));
                form.push(("client_assertion_type", ASSERTION_TYPE.to_string()));
                form.push(("client_assertion", assertion));
            }
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        Ok((headers, body.into_bytes()))
    }

    /// A client assertion (RFC 7523 §3): issued by and about the gateway's client, for the
    /// token endpoint, valid for a minute, never repeated.
    fn assertion(
        &self,
        key_hex: &str,
        kid: Option<&str>,
        now_s: u64,
        seed: &[u8],
    ) -> Result<String, ExchangeError> {
        use p256::ecdsa::signature::Signer;
        let bytes = hex_bytes(key_hex).ok_or_else(|| ExchangeError::Signing("not hex".into()))?;
        let key = p256::ecdsa::SigningKey::from_slice(&bytes)
            .map_err(|_| ExchangeError::Signing("not a P-256 private key".into()))?;
        let mut header = json!({"alg": "ES256", "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let jti: String = Sha256::digest([seed, &now_s.to_be_bytes()].concat())[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let claims = json!({
            "iss": self.client_id, "sub": self.client_id, "aud": self.endpoint,
            "iat": now_s, "exp": now_s + 60, "jti": jti,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature: p256::ecdsa::Signature = key.sign(signing_input.as_bytes());
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        ))
    }
}

/// A token the authorization server issued, and until when it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub token: String,
    /// Milliseconds since the epoch after which it is asked for anew: shortly before it
    /// expires. `None`: it said no lifetime, so it is used for this request only.
    pub use_until_ms: Option<u64>,
}

/// Reads the token endpoint's answer (RFC 8693 §2.2).
pub fn read_answer(status: u16, body: &[u8], now_ms: u64) -> Result<Issued, ExchangeError> {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if status != 200 {
        let error = value["error"].as_str().unwrap_or("no error code");
        let mut what = format!("HTTP {status}, {error}");
        if let Some(d) = value["error_description"].as_str() {
            // Printable and short: it reaches the client.
            let d: String = d.chars().filter(|c| !c.is_control()).take(200).collect();
            what.push_str(&format!(": {d}"));
        }
        return Err(match error {
            "invalid_grant" => ExchangeError::SubjectRefused(what),
            "access_denied" => ExchangeError::Denied(what),
            _ => ExchangeError::Failed(what),
        });
    }
    let token = value["access_token"]
        .as_str()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        .ok_or_else(|| ExchangeError::Failed("the answer holds no usable access_token".into()))?;
    let kind = value["token_type"].as_str().unwrap_or_default();
    if !kind.eq_ignore_ascii_case("bearer") && !kind.eq_ignore_ascii_case("N_A") {
        return Err(ExchangeError::Failed(format!(
            "token_type {kind:?}, not Bearer"
        )));
    }
    let use_until_ms = value["expires_in"].as_u64().map(|s| {
        // Asked for anew a little before it expires: a fifth of its life, at most a minute.
        let margin = (s / 5).min(60);
        now_ms + (s - margin) * 1000
    });
    Ok(Issued {
        token: token.to_string(),
        use_until_ms,
    })
}

/// The cache key of `user`'s token for `upstream` (the user's name is hashed: the key is
/// not a place to read identities from).
pub fn cache_key(upstream: &str, user: &str) -> String {
    let digest: String = Sha256::digest(user.as_bytes())[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("token/{upstream}/{digest}")
}

/// What the cache keeps: `<use until> <token>`.
pub fn cache_value(issued: &Issued) -> Option<Vec<u8>> {
    issued
        .use_until_ms
        .map(|until| format!("{until} {}", issued.token).into_bytes())
}

/// A cached token still in use at `now_ms`.
pub fn cached(value: &[u8], now_ms: u64) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    let (until, token) = text.split_once(' ')?;
    (until.parse::<u64>().ok()? > now_ms).then(|| token.to_string())
}

fn form_encode(s: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    // application/x-www-form-urlencoded: everything but unreserved characters escaped.
    const FORM: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(s, FORM).to_string()
}

fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(auth: ClientAuth) -> TokenExchange {
        TokenExchange {
            cluster: "oauth-token-0".into(),
            authority: "idp.example".into(),
            path: "/token".into(),
            endpoint: "https://idp.example/token".into(),
            audience: Some("github".into()),
            resource: Some("https://gh.example/mcp".into()),
            scope: "repo read".into(),
            client_id: "switch board".into(),
            client_auth: auth,
            timeout_ms: 5000,
        }
    }

    fn form(body: &[u8]) -> Vec<(String, String)> {
        String::from_utf8(body.to_vec())
            .unwrap()
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                let v = percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn a_secret_client_asks_with_basic_authentication() {
        let te = exchange(ClientAuth::Secret {
            secret: "s&cr=t".into(),
        });
        let (headers, body) = te.request("subject.jwt", 1000, b"seed").unwrap();
        let basic = headers.iter().find(|(k, _)| k == "authorization").unwrap();
        let decoded = STANDARD
            .decode(basic.1.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, b"switch%20board:s%26cr%3Dt");
        let form = form(&body);
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("grant_type"), Some(GRANT_TYPE));
        assert_eq!(get("subject_token"), Some("subject.jwt"));
        assert_eq!(get("audience"), Some("github"));
        assert_eq!(get("resource"), Some("https://gh.example/mcp"));
        assert_eq!(get("scope"), Some("repo read"));
        assert_eq!(get("client_assertion"), None);
    }

    #[test]
    fn a_key_client_signs_an_assertion_the_public_key_verifies() {
        use p256::ecdsa::signature::Verifier;
        let scalar = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";
        let te = exchange(ClientAuth::PrivateKey {
            key: scalar.into(),
            kid: Some("k1".into()),
        });
        let (headers, body) = te.request("subject.jwt", 1000, b"seed").unwrap();
        assert!(!headers.iter().any(|(k, _)| k == "authorization"));
        let form = form(&body);
        let assertion = &form
            .iter()
            .find(|(k, _)| k == "client_assertion")
            .unwrap()
            .1;
        let parts: Vec<&str> = assertion.split('.').collect();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://idp.example/token");
        assert_eq!(claims["iss"], "switch board");
        assert_eq!(claims["exp"], 1060);
        let key = p256::ecdsa::SigningKey::from_slice(&hex_bytes(scalar).unwrap()).unwrap();
        let signature =
            p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        key.verifying_key()
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();
        // Another seed, another jti.
        let (_, again) = te.request("subject.jwt", 1000, b"other").unwrap();
        assert_ne!(again, body);
    }

    #[test]
    fn answers_become_tokens_with_a_margin_or_errors_that_say_why() {
        let ok = br#"{"access_token":"up.tok","token_type":"Bearer","expires_in":300,"issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#;
        let issued = read_answer(200, ok, 1_000_000).unwrap();
        assert_eq!(issued.token, "up.tok");
        assert_eq!(issued.use_until_ms, Some(1_000_000 + 240_000));
        let value = cache_value(&issued).unwrap();
        assert_eq!(cached(&value, 1_000_000).as_deref(), Some("up.tok"));
        assert_eq!(cached(&value, 1_240_000), None);
        let refused =
            br#"{"error":"invalid_grant","error_description":"subject token expired\r\n"}"#;
        assert_eq!(
            read_answer(400, refused, 0).unwrap_err(),
            ExchangeError::SubjectRefused("HTTP 400, invalid_grant: subject token expired".into())
        );
        assert!(matches!(
            read_answer(401, br#"{"error":"invalid_client"}"#, 0),
            Err(ExchangeError::Failed(_))
        ));
        assert!(matches!(
            read_answer(403, br#"{"error":"access_denied"}"#, 0),
            Err(ExchangeError::Denied(_))
        ));
        assert!(matches!(
            read_answer(200, br#"{"access_token":"a b","token_type":"Bearer"}"#, 0),
            Err(ExchangeError::Failed(_))
        ));
        let no_lifetime =
            read_answer(200, br#"{"access_token":"t","token_type":"bearer"}"#, 0).unwrap();
        assert_eq!(cache_value(&no_lifetime), None);
    }

    #[test]
    fn cache_keys_hide_the_user() {
        let key = cache_key("github", "oauth/alice");
        assert!(key.starts_with("token/github/") && !key.contains("alice"));
        assert_ne!(key, cache_key("github", "oauth/bob"));
    }
}
