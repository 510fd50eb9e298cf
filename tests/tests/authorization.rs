//! MCP authorization end to end: a real authorization server (`oidc-provider`), the official
//! Python SDK's OAuth client, upstreams that accept only tokens for their own audience.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use switchboard_e2e::auth::{AuthServer, TokenGuard, claims, python_oauth_client};
use switchboard_e2e::peers::RmcpServer;
use switchboard_e2e::{Gateway, raw};

const EXCHANGE_SECRET: &str = "exchange-secret-0123456789";
const BETA_AUDIENCE: &str = "https://beta.example/mcp";
const GAMMA_RESOURCE: &str = "urn:switchboard:gamma";
/// How long an exchanged token lives at the authorization server (seconds): the gateway
/// uses it for 10 s (a fifth of its life before it expires is left as margin).
const EXCHANGE_TTL: u64 = 12;

/// A free loopback port: the gateway's resource URI names it before the gateway starts.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Setup {
    auth: AuthServer,
    gateway: Gateway,
    alpha: RmcpServer,
    beta: RmcpServer,
    gamma: RmcpServer,
    resource: String,
    _dir: tempfile::TempDir,
}

/// The authorization server with the gateway's two clients (one authenticating with a
/// secret, one with a private key), and a gateway whose `alpha` is open, `beta` and `gamma`
/// guarded (each takes only tokens for itself, got by token exchange).
async fn setup(stateless: bool) -> anyhow::Result<Setup> {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let key = p256::SecretKey::from_slice(&[0x42; 32])?;
    let mut public: Value = serde_json::from_str(&key.public_key().to_jwk_string())?;
    public["kid"] = json!("gw-1");
    let dir = tempfile::tempdir()?;
    let key_file = dir.path().join("exchange-key.pem");
    std::fs::write(&key_file, key.to_pkcs8_pem(LineEnding::LF)?.as_bytes())?;
    let exchange = json!(["urn:ietf:params:oauth:grant-type:token-exchange"]);
    let auth = AuthServer::start(&json!({
        "scopes": ["mcp", "tools:write"],
        "exchange_ttl": EXCHANGE_TTL,
        "clients": [
            {"client_id": "switchboard", "client_secret": EXCHANGE_SECRET,
             "grant_types": exchange, "response_types": [], "redirect_uris": []},
            {"client_id": "switchboard-key", "token_endpoint_auth_method": "private_key_jwt",
             "token_endpoint_auth_signing_alg": "ES256", "jwks": {"keys": [public]},
             "grant_types": exchange, "response_types": [], "redirect_uris": []},
        ],
    }))
    .await?;
    let alpha = RmcpServer::start("alpha").await?;
    let beta =
        RmcpServer::start_guarded("beta", TokenGuard::new(&auth.issuer, BETA_AUDIENCE).await?)
            .await?;
    let gamma = RmcpServer::start_guarded(
        "gamma",
        TokenGuard::new(&auth.issuer, GAMMA_RESOURCE).await?,
    )
    .await?;
    let port = free_port()?;
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let yaml = format!(
        r#"
server:
  listen: 127.0.0.1:{port}
  admin: 127.0.0.1:0
  stateless_clients: {stateless}
auth:
  oauth:
    resource: {resource}
    authorization_servers:
      - issuer: {issuer}
    scopes: [mcp]
    require:
      - {{scope: mcp, upstreams: ["*"]}}
      - {{scope: "tools:write", tools: [alpha__add]}}
upstreams:
  - name: alpha
    url: {alpha}
  - name: beta
    url: {beta}
    auth:
      token_exchange:
        audience: {BETA_AUDIENCE}
        client_id: switchboard
        client_secret: ${{EXCHANGE_SECRET}}
  - name: gamma
    url: {gamma}
    auth:
      token_exchange:
        resource: {GAMMA_RESOURCE}
        client_id: switchboard-key
        private_key: {{file: {key}, kid: gw-1}}
"#,
        issuer = auth.issuer,
        alpha = alpha.url(),
        beta = beta.url(),
        gamma = gamma.url(),
        key = key_file.display(),
    );
    let gateway = Gateway::start_with_env(&yaml, &[("EXCHANGE_SECRET", EXCHANGE_SECRET)]).await?;
    Ok(Setup {
        auth,
        gateway,
        alpha,
        beta,
        gamma,
        resource,
        _dir: dir,
    })
}

fn www_authenticate(a: &raw::Answer) -> String {
    a.headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The bearer tokens an upstream received.
fn tokens_seen(upstream: &RmcpServer) -> Vec<String> {
    upstream
        .seen_headers()
        .iter()
        .filter_map(|h| {
            h.get("authorization")?
                .to_str()
                .ok()?
                .strip_prefix("Bearer ")
                .map(str::to_string)
        })
        .collect()
}

/// The access tokens the client was given, as issued.
fn access_tokens(out: &Value) -> Vec<String> {
    out["access_tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect()
}

/// The exchanged tokens `upstream` got are for it, acting for `user`, never the client's.
fn only_exchanged_tokens(upstream: &RmcpServer, audience: &str, client_tokens: &[String]) {
    let seen = tokens_seen(upstream);
    assert!(!seen.is_empty(), "{audience} got no token");
    assert_eq!(
        seen.len(),
        upstream.request_count(),
        "every request to {audience} carries a token"
    );
    for token in &seen {
        assert!(
            !client_tokens.contains(token),
            "{audience} got the client's own token"
        );
        let c = claims(token).unwrap_or_default();
        assert_eq!(c["aud"], audience);
        assert_eq!(c["sub"], "alice");
        assert!(
            c["act"]["sub"].is_string(),
            "an exchanged token names the gateway: {c}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standard_client_signs_in_steps_up_and_its_upstreams_get_tokens_of_their_own()
-> anyhow::Result<()> {
    let s = setup(false).await?;
    let url = s.gateway.endpoint.clone();
    let steps = json!([
        {"list": true},
        {"call": "alpha__add", "args": {"a": 2, "b": 3}},
        {"list": true},
        {"call": "beta__whoami"},
        {"call": "beta__whoami"},
        {"call": "gamma__whoami"},
        {"sleep": EXCHANGE_TTL},
        {"call": "beta__whoami"},
    ]);
    let out = python_oauth_client(&url, "legacy", "alice", &steps)?;
    let logs = || format!("{out:#}\n{}\n{}", s.gateway.logs(), s.auth.log.text());
    let steps = out["steps"].as_array().cloned().unwrap_or_default();
    assert_eq!(steps.len(), 8, "{}", logs());
    // Signed in with the scope the 401 asked for: the write tool is hidden.
    let first = steps[0]["tools"].as_array().cloned().unwrap_or_default();
    assert!(first.contains(&json!("alpha__whoami")), "{}", logs());
    assert!(first.contains(&json!("beta__whoami")) && first.contains(&json!("gamma__whoami")));
    assert!(!first.contains(&json!("alpha__add")), "{}", logs());
    // The call needing tools:write stepped up, and succeeded with the new token.
    assert_eq!(steps[1]["text"], "5", "{}", logs());
    assert!(
        steps[2]["tools"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("alpha__add")))
    );
    for i in [3, 4, 7] {
        assert_eq!(steps[i]["text"], "beta", "step {i}: {}", logs());
    }
    assert_eq!(steps[5]["text"], "gamma", "{}", logs());
    let authorizations = out["authorizations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        authorizations.len(),
        2,
        "one sign-in, one step-up: {}",
        logs()
    );
    let first_auth = authorizations[0].as_str().unwrap_or_default();
    assert!(
        first_auth.contains("scope=mcp") && !first_auth.contains("tools"),
        "{first_auth}"
    );
    let resource_param = format!("resource={}", url_encode(&s.resource));
    assert!(first_auth.contains(&resource_param), "{first_auth}");
    assert!(
        authorizations[1]
            .as_str()
            .unwrap_or_default()
            .contains("tools%3Awrite")
    );
    let issued = out["tokens"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        issued[0]["aud"],
        s.resource.as_str(),
        "bound to the gateway (RFC 8707)"
    );
    assert!(
        issued[1]["scope"]
            .as_str()
            .unwrap_or_default()
            .contains("tools:write")
    );

    // Each guarded upstream got only exchanged tokens; the open one got no token at all.
    let client_tokens = access_tokens(&out);
    only_exchanged_tokens(&s.beta, BETA_AUDIENCE, &client_tokens);
    only_exchanged_tokens(&s.gamma, GAMMA_RESOURCE, &client_tokens);
    assert!(tokens_seen(&s.alpha).is_empty() && s.alpha.request_count() > 0);
    assert!(
        s.alpha
            .seen_headers()
            .iter()
            .all(|h| h.get("authorization").is_none())
    );

    // One exchange per upstream served everything until it neared expiry, then one more.
    let exchanges = s.auth.exchanges().await?;
    let to = |aud: &str| {
        exchanges
            .iter()
            .filter(|e| e["audience"] == aud)
            .collect::<Vec<_>>()
    };
    // Beta: one exchange with the sign-in token served the session's start, its lists and
    // calls (after the step-up too: the cache is per user and upstream); then one more, when
    // the exchanged token neared expiry. Gamma: one for all of the session's calls (the
    // session's DELETE at the end, after it expired, may renew it).
    let jti = |i: usize| issued[i]["jti"].clone();
    let beta = to(BETA_AUDIENCE);
    let subjects = |list: &[&Value]| {
        list.iter()
            .map(|e| e["subject_jti"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        subjects(&beta),
        [jti(0), jti(1)],
        "reused, then renewed: {exchanges:#?}"
    );
    assert!(s.beta.request_count() > 4, "several calls per exchange");
    assert!(
        beta.iter()
            .all(|e| e["client_id"] == "switchboard" && e["sub"] == "alice")
    );
    assert!(beta.iter().all(|e| e["subject_aud"] == s.resource.as_str()));
    let gamma = to(GAMMA_RESOURCE);
    let gamma_subjects = subjects(&gamma);
    assert_eq!(gamma_subjects.first(), Some(&jti(0)), "{exchanges:#?}");
    assert_eq!(
        gamma_subjects.iter().filter(|j| **j == jti(0)).count(),
        1,
        "{exchanges:#?}"
    );
    assert!(
        gamma.iter().all(|e| e["client_id"] == "switchboard-key"),
        "private_key_jwt"
    );

    challenges_and_refusals(&s, &client_tokens).await
}

/// What a client without the right token is told.
async fn challenges_and_refusals(s: &Setup, client_tokens: &[String]) -> anyhow::Result<()> {
    let url = &s.gateway.endpoint;
    let base = s.gateway.base();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    // No token: 401 naming the endpoint's metadata and the scope to ask for.
    let a = raw::post(url, None, &initialize).await?;
    assert_eq!(a.status, 401);
    assert_eq!(
        www_authenticate(&a),
        format!(
            "Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\", scope=\"mcp\""
        )
    );
    assert_eq!(a.response()["error"]["code"], -32600);
    // The metadata: the gateway's, and an upstream endpoint's with a resource of its own.
    let meta: Value = reqwest::get(format!("{base}/.well-known/oauth-protected-resource/mcp"))
        .await?
        .json()
        .await?;
    assert_eq!(meta["resource"], s.resource.as_str());
    assert_eq!(meta["authorization_servers"], json!([s.auth.issuer]));
    assert_eq!(meta["scopes_supported"], json!(["mcp", "tools:write"]));
    let own: Value = reqwest::get(format!(
        "{base}/.well-known/oauth-protected-resource/upstreams/alpha/mcp"
    ))
    .await?
    .json()
    .await?;
    assert_eq!(own["resource"], format!("{base}/upstreams/alpha/mcp"));

    let sign_in = &client_tokens[0];
    let bearer = |t: &str| format!("Bearer {t}");
    // A token for another resource, the token an upstream got, garbage: invalid_token.
    let other = s
        .auth
        .exchange(
            "switchboard",
            EXCHANGE_SECRET,
            sign_in,
            "http://other.example/mcp",
        )
        .await?;
    let upstreams_token = tokens_seen(&s.beta).pop().unwrap_or_default();
    for (what, token) in [
        ("another audience", other.as_str()),
        ("an upstream's token", upstreams_token.as_str()),
        ("not a token", "eyJhbGciOiJub25lIn0.e30.x"),
    ] {
        let a =
            raw::post_with(url, None, &initialize, &[("authorization", &bearer(token))]).await?;
        assert_eq!(a.status, 401, "{what}");
        let challenge = www_authenticate(&a);
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\"")
                && challenge.contains("resource_metadata="),
            "{what}: {challenge}"
        );
    }
    // An attacker's spellings of a good token: in the query string (RFC 6750 §2.3, which MCP
    // forbids), or the verified payload header written by the client itself.
    let a = raw::post(&format!("{url}?access_token={sign_in}"), None, &initialize).await?;
    assert_eq!(a.status, 401, "a token in the query string is not taken");
    let forged = URL_SAFE_NO_PAD.encode(
        json!({"iss": s.auth.issuer, "sub": "alice", "aud": s.resource, "scope": "mcp tools:write"})
            .to_string(),
    );
    let a = raw::post_with(
        url,
        None,
        &initialize,
        &[("x-switchboard-jwt-payload", &forged)],
    )
    .await?;
    assert_eq!(
        a.status, 401,
        "a payload the client wrote counts for nothing"
    );

    // A token for one upstream's own endpoint works there, and nowhere else.
    let alpha_own = format!("{base}/upstreams/alpha/mcp");
    let for_alpha = s
        .auth
        .exchange("switchboard", EXCHANGE_SECRET, sign_in, &alpha_own)
        .await?;
    let a = raw::post_with(
        url,
        None,
        &initialize,
        &[("authorization", &bearer(&for_alpha))],
    )
    .await?;
    assert_eq!(
        a.status, 401,
        "a token for alpha's endpoint at the gateway's"
    );
    let a = raw::post_with(
        &alpha_own,
        None,
        &initialize,
        &[("authorization", &bearer(&for_alpha))],
    )
    .await?;
    assert_eq!(a.status, 200, "{:?}", a.messages);

    // The sign-in token (scope mcp) may not call the write tool: 403 and the step-up.
    let (_, session) =
        raw::initialize_with_headers(url, &[("authorization", &bearer(sign_in))]).await?;
    let a = raw::post_with(
        url,
        Some(&session),
        &raw::call(json!(2), "alpha__add", json!({"a": 1, "b": 1})),
        &[("authorization", &bearer(sign_in))],
    )
    .await?;
    assert_eq!(a.status, 403, "{:?}", a.messages);
    let challenge = www_authenticate(&a);
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\", scope=\"mcp tools:write\""),
        "{challenge}"
    );
    assert_eq!(a.response()["error"]["code"], -32004);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stateless_client_signs_in_and_steps_up_too() -> anyhow::Result<()> {
    let s = setup(true).await?;
    let steps = json!([
        {"list": true},
        {"call": "beta__whoami"},
        {"call": "alpha__add", "args": {"a": 20, "b": 22}},
    ]);
    let out = python_oauth_client(&s.gateway.endpoint, "2026-07-28", "alice", &steps)?;
    let logs = || format!("{out:#}\n{}", s.gateway.logs());
    assert_eq!(out["protocol_version"], "2026-07-28", "{}", logs());
    let steps = out["steps"].as_array().cloned().unwrap_or_default();
    let tools = steps[0]["tools"].as_array().cloned().unwrap_or_default();
    assert!(tools.contains(&json!("beta__whoami")) && !tools.contains(&json!("alpha__add")));
    assert_eq!(steps[1]["text"], "beta", "{}", logs());
    assert_eq!(steps[2]["text"], "42", "{}", logs());
    assert_eq!(out["authorizations"].as_array().map(Vec::len), Some(2));
    let client_tokens = access_tokens(&out);
    only_exchanged_tokens(&s.beta, BETA_AUDIENCE, &client_tokens);
    Ok(())
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
