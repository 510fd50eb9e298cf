//! Who may call what, through real Envoy: API keys, JWTs verified by Envoy's `jwt_authn`
//! (minted here with a test key), source addresses, access rules on lists and calls,
//! pass-through headers, and sessions bound to their client.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchboard_e2e::peers::RmcpServer;
use switchboard_e2e::{Gateway, eventually, raw};

const SECRET: &[u8] = b"a test signing key of 32 bytes!!";
const API_KEY: &str = "ci-key-0123456789abcdef";

fn jwt(claims: Value) -> String {
    let header = B64.encode(json!({"alg": "HS256", "typ": "JWT", "kid": "k1"}).to_string());
    let payload = B64.encode(claims.to_string());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap_or_else(|e| panic!("{e}"));
    mac.update(format!("{header}.{payload}").as_bytes());
    let sig = B64.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{sig}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn token(role: &str, audience: &str, expires_in: i64) -> String {
    let exp = (now() as i64 + expires_in).max(1);
    jwt(
        json!({"iss": "https://idp.test", "sub": format!("{role}-user"), "aud": audience, "exp": exp, "role": role}),
    )
}

fn init() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
}

/// Status and `WWW-Authenticate` of a POST, whatever its body.
async fn status_of(url: &str, headers: &[(&str, &str)]) -> anyhow::Result<(u16, Option<String>)> {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", raw::ACCEPT)
        .body(init().to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await?;
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((r.status().as_u16(), challenge))
}

/// `initialize` + `initialized` with these headers; the session id.
async fn session(url: &str, headers: &[(&str, &str)]) -> anyhow::Result<String> {
    let a = raw::post_with(url, None, &init(), headers).await?;
    anyhow::ensure!(a.status == 200, "initialize: {a:?}");
    let sid = a
        .session_id()
        .ok_or_else(|| anyhow::anyhow!("no session: {a:?}"))?;
    raw::post_with(
        url,
        Some(&sid),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        headers,
    )
    .await?;
    Ok(sid)
}

async fn tool_names(url: &str, sid: &str, headers: &[(&str, &str)]) -> anyhow::Result<Vec<String>> {
    let a = raw::post_with(
        url,
        Some(sid),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        headers,
    )
    .await?;
    Ok(a.response()["result"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect())
}

fn yaml(alpha: &str, beta: &str, jwks: &str, office: &str) -> String {
    format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nauth:\n  clients:\n    - name: ci\n      api_key: {{header: x-api-key, keys: [\"{API_KEY}\"]}}\n    - name: people\n      jwt: {{issuer: \"https://idp.test\", audiences: [switchboard], jwks: {{file: {jwks}}}}}\n    - name: office\n      cidrs: [\"{office}\"]\n  rules:\n    - clients: [ci]\n      allow: {{upstreams: [alpha], tools: [\"alpha__*\"]}}\n      deny: {{tools: [alpha__slow]}}\n    - claims: {{role: admin}}\n      allow: {{upstreams: [\"*\"]}}\n    - clients: [people, office]\n      allow: {{upstreams: [beta]}}\nupstreams:\n  - name: alpha\n    url: {alpha}\n    auth:\n      pass_through:\n        headers:\n          - {{source_header: X-User-Token, target_header: Authorization, format: \"Bearer {{value}}\"}}\n  - name: beta\n    url: {beta}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_authenticate_and_see_and_call_only_what_their_rules_allow() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let beta = RmcpServer::start("beta").await?;
    let dir = tempfile::tempdir()?;
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        json!({"keys": [{"kty": "oct", "alg": "HS256", "kid": "k1", "k": B64.encode(SECRET)}]})
            .to_string(),
    )?;
    let jwks = jwks.display().to_string();
    let gw = Gateway::start(&yaml(&alpha.url(), &beta.url(), &jwks, "192.0.2.0/24")).await?;
    let ep = gw.endpoint.clone();

    // No credentials, a wrong key: 401 with a challenge, and no upstream hears of it.
    let before = alpha.request_count() + beta.request_count();
    let (status, challenge) = status_of(&ep, &[]).await?;
    assert_eq!(status, 401);
    assert!(
        challenge.is_some_and(|c| c.starts_with("Bearer")),
        "{}",
        gw.logs()
    );
    assert_eq!(
        status_of(&ep, &[("x-api-key", "wrong-key-0123456789")])
            .await?
            .0,
        401
    );
    assert_eq!(alpha.request_count() + beta.request_count(), before);

    // The API key client: only alpha's tools, minus the denied one.
    let ci = [("x-api-key", API_KEY), ("x-user-token", "t0k")];
    let sid = session(&ep, &ci).await?;
    let names = tool_names(&ep, &sid, &ci).await?;
    assert!(names.contains(&"alpha__whoami".to_string()), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n == "alpha__slow" || n.starts_with("beta__")),
        "{names:?}"
    );
    let calls_before = alpha.request_count();
    let denied = raw::post_with(
        &ep,
        Some(&sid),
        &raw::call(json!(2), "alpha__slow", json!({"ms": 1})),
        &ci,
    )
    .await?;
    assert_eq!(denied.response()["error"]["code"], -32004, "{denied:?}");
    assert_eq!(
        alpha.request_count(),
        calls_before,
        "a denied call never reaches the upstream"
    );
    let ok = raw::post_with(
        &ep,
        Some(&sid),
        &raw::call(json!(3), "alpha__whoami", json!({})),
        &ci,
    )
    .await?;
    assert_eq!(
        ok.response()["result"]["content"][0]["text"],
        "alpha",
        "{ok:?}"
    );
    // Pass-through: the client's token, formatted; its API key is not passed on.
    let last = alpha.seen_headers().pop().unwrap_or_default();
    assert_eq!(
        last.get("authorization").and_then(|v| v.to_str().ok()),
        Some("Bearer t0k")
    );
    assert!(
        last.get("x-api-key").is_none() && last.get("x-user-token").is_none(),
        "{last:?}"
    );

    // JWTs: an admin sees every upstream; a plain user only beta; expired or for another
    // audience is refused by Envoy.
    let admin = format!("Bearer {}", token("admin", "switchboard", 600));
    let admin_h = [("authorization", admin.as_str())];
    let admin_sid = session(&ep, &admin_h).await?;
    let names = tool_names(&ep, &admin_sid, &admin_h).await?;
    assert!(
        names.iter().any(|n| n.starts_with("alpha__"))
            && names.iter().any(|n| n.starts_with("beta__")),
        "{names:?}"
    );
    let user = format!("Bearer {}", token("user", "switchboard", 600));
    let user_h = [("authorization", user.as_str())];
    let user_sid = session(&ep, &user_h).await?;
    let names = tool_names(&ep, &user_sid, &user_h).await?;
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("beta__")),
        "{names:?}"
    );
    let beta_last = beta.seen_headers().pop().unwrap_or_default();
    assert!(
        beta_last.get("authorization").is_none(),
        "the client's token stays at the gateway"
    );
    let expired = format!("Bearer {}", token("admin", "switchboard", -600));
    let (status, challenge) = status_of(&ep, &[("authorization", &expired)]).await?;
    assert_eq!(status, 401);
    assert!(challenge.is_some_and(|c| c.contains("invalid_token")));
    // A valid token for another service: Envoy's jwt_authn answers 403 (not for us).
    let elsewhere = format!("Bearer {}", token("admin", "another-service", 600));
    assert_eq!(
        status_of(&ep, &[("authorization", &elsewhere)]).await?.0,
        403
    );
    // Malformed, and well formed but signed with another key: both refused.
    let malformed = format!(
        "Bearer {}",
        token("admin", "switchboard", 600).replace('.', ".x")
    );
    assert_eq!(
        status_of(&ep, &[("authorization", &malformed)]).await?.0,
        401
    );
    let forged = format!(
        "Bearer {}",
        jwt_with(
            b"not the idp's key, but 32 bytes!",
            json!({"iss": "https://idp.test", "sub": "admin-user", "aud": "switchboard", "exp": now() + 600, "role": "admin"})
        )
    );
    assert_eq!(status_of(&ep, &[("authorization", &forged)]).await?.0, 401);

    // A session is its client's: the admin's session presented by ci finds nothing.
    let stolen = raw::post_with(
        &ep,
        Some(&admin_sid),
        &json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}),
        &ci,
    )
    .await?;
    assert_eq!(stolen.status, 404, "{stolen:?}");
    // The per-upstream endpoint of an upstream ci may not use: 403.
    let direct = raw::post_with(
        &format!("{}/upstreams/beta/mcp", gw.base()),
        None,
        &init(),
        &ci,
    )
    .await?;
    assert_eq!(direct.status, 403, "{direct:?}");

    // Source addresses: once loopback is an office address, no credentials are needed.
    gw.write_config(&yaml(&alpha.url(), &beta.url(), &jwks, "127.0.0.1/32"))?;
    eventually(Duration::from_secs(20), "loopback to be admitted", || {
        let ep = ep.clone();
        async move { (status_of(&ep, &[]).await.ok()?.0 == 200).then_some(()) }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_cors_and_other_origins_or_hosts_are_refused() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n  cors:\n    origins: [\"https://app.example\"]\nupstreams:\n  - name: alpha\n    url: {}\n",
        alpha.url()
    ))
    .await?;
    let http = reqwest::Client::new();
    // The preflight is answered by the gateway's filter (204), before any authentication.
    let pre = http
        .request(reqwest::Method::OPTIONS, &gw.endpoint)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, mcp-session-id",
        )
        .send()
        .await?;
    assert_eq!(pre.status(), 204, "{pre:?}");
    let h = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        h(&pre, "access-control-allow-origin"),
        "https://app.example"
    );
    assert!(h(&pre, "access-control-allow-methods").contains("POST"));
    assert!(h(&pre, "access-control-allow-headers").contains("mcp-session-id"));
    // The page can read the session id of the gateway's own answer to initialize.
    let post = |origin: &str, host: Option<&str>| {
        let mut req = http
            .post(&gw.endpoint)
            .header("content-type", "application/json")
            .header("accept", raw::ACCEPT)
            .header("origin", origin)
            .body(init().to_string());
        if let Some(host) = host {
            req = req.header("host", host);
        }
        req.send()
    };
    let ok = post("https://app.example", None).await?;
    assert_eq!(ok.status(), 200);
    assert_eq!(h(&ok, "access-control-allow-origin"), "https://app.example");
    assert!(
        h(&ok, "access-control-expose-headers").contains("mcp-session-id"),
        "{ok:?}"
    );
    // Another origin, or a name that is not ours (DNS rebinding): 403.
    assert_eq!(post("https://evil.example", None).await?.status(), 403);
    let port = gw
        .endpoint
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches("/mcp")
        .to_string();
    let rebound = post(
        "https://app.example",
        Some(&format!("attacker.example:{port}")),
    )
    .await?;
    assert_eq!(rebound.status(), 403);
    // A page of this machine, on this loopback listener, is no rebinding (issue 14, item 15:
    // the conformance suite's dns-rebinding-protection).
    let local = post(&format!("http://localhost:{port}"), None).await?;
    assert_eq!(local.status(), 200, "{local:?}");
    assert_eq!(
        post("http://localhost.evil.example", None).await?.status(),
        403
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_keys_can_come_from_a_jwks_url_envoy_fetches() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    // The identity provider's JWKS endpoint.
    let jwks =
        json!({"keys": [{"kty": "oct", "alg": "HS256", "kid": "k1", "k": B64.encode(SECRET)}]});
    let fetched = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = fetched.clone();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = jwks.to_string();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    let idp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let idp_addr = idp.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(idp, app).await;
    });
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nauth:\n  clients:\n    - name: people\n      jwt: {{issuer: \"https://idp.test\", audiences: [switchboard], jwks: {{url: \"http://{idp_addr}/jwks.json\"}}}}\nupstreams:\n  - name: alpha\n    url: {}\n",
        alpha.url()
    ))
    .await?;
    let good = format!("Bearer {}", token("user", "switchboard", 600));
    let status = eventually(
        Duration::from_secs(20),
        "a token checked against the fetched keys",
        || {
            let (ep, good) = (gw.endpoint.clone(), good.clone());
            async move {
                let s = status_of(&ep, &[("authorization", &good)]).await.ok()?.0;
                (s == 200).then_some(s)
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    assert_eq!(status, 200);
    assert!(
        fetched.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "Envoy fetched the JWKS"
    );
    let forged = format!(
        "Bearer {}",
        jwt_with(
            b"not the idp's key, but 32 bytes!",
            json!({"iss": "https://idp.test", "sub": "user-user", "aud": "switchboard", "exp": now() + 600, "role": "user"})
        )
    );
    assert_eq!(
        status_of(&gw.endpoint, &[("authorization", &forged)])
            .await?
            .0,
        401
    );
    Ok(())
}

fn jwt_with(secret: &[u8], claims: Value) -> String {
    let header = B64.encode(json!({"alg": "HS256", "typ": "JWT", "kid": "k1"}).to_string());
    let payload = B64.encode(claims.to_string());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap_or_else(|e| panic!("{e}"));
    mac.update(format!("{header}.{payload}").as_bytes());
    let sig = B64.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{sig}")
}

/// Guarantees of issue 13: a client-sent JWT payload header is never taken for a verified
/// one; a token signed with another key is refused; a session is bound to the token's
/// subject, so two users of the same JWT client cannot use each other's session (POST or GET).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarantee_forged_payloads_other_keys_and_other_subjects_are_refused() -> anyhow::Result<()>
{
    let alpha = RmcpServer::start("alpha").await?;
    let beta = RmcpServer::start("beta").await?;
    let dir = tempfile::tempdir()?;
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        json!({"keys": [{"kty": "oct", "alg": "HS256", "kid": "k1", "k": B64.encode(SECRET)}]})
            .to_string(),
    )?;
    let gw = Gateway::start(&yaml(
        &alpha.url(),
        &beta.url(),
        &jwks.display().to_string(),
        "192.0.2.0/24",
    ))
    .await?;
    let ep = gw.endpoint.clone();
    let admin_claims = json!({"iss": "https://idp.test", "sub": "mallory", "aud": "switchboard",
        "exp": now() + 600, "role": "admin"});
    let forged = B64.encode(admin_claims.to_string());

    // A payload header alone is no credential.
    let (status, _) = status_of(&ep, &[("x-switchboard-jwt-payload", &forged)]).await?;
    assert_eq!(status, 401, "{}", gw.logs());
    // Beside an API key it changes nothing: ci sees ci's tools, not an admin's.
    let ci = [
        ("x-api-key", API_KEY),
        ("x-switchboard-jwt-payload", forged.as_str()),
    ];
    let sid = session(&ep, &ci).await?;
    let names = tool_names(&ep, &sid, &ci).await?;
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("alpha__")),
        "a forged payload made ci an admin: {names:?}"
    );
    // A well-formed token signed with another key.
    let other = format!(
        "Bearer {}",
        jwt_with(b"another signing key, 32 bytes!!!", admin_claims.clone())
    );
    assert_eq!(status_of(&ep, &[("authorization", &other)]).await?.0, 401);

    // Two users of the same JWT client: each session is its subject's.
    let user = |sub: &str| {
        format!(
            "Bearer {}",
            jwt(
                json!({"iss": "https://idp.test", "sub": sub, "aud": "switchboard", "exp": now() + 600, "role": "user"})
            )
        )
    };
    let (alice, bob) = (user("alice"), user("bob"));
    let alice_h = [("authorization", alice.as_str())];
    let bob_h = [("authorization", bob.as_str())];
    let alice_sid = session(&ep, &alice_h).await?;
    assert!(!tool_names(&ep, &alice_sid, &alice_h).await?.is_empty());
    let stolen = raw::post_with(
        &ep,
        Some(&alice_sid),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        &bob_h,
    )
    .await?;
    assert_eq!(stolen.status, 404, "{stolen:?}");
    let stream = reqwest::Client::new()
        .get(&ep)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &alice_sid)
        .header("authorization", &bob)
        .send()
        .await?;
    assert_eq!(stream.status(), 404);
    Ok(())
}

/// Guarantees of issue 13: access rules for prompts, resources, completion and subscribe
/// end to end (server-everything), and a shortened tool name checked under its full name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarantee_rules_hold_for_prompts_resources_completion_subscribe_and_long_names()
-> anyhow::Result<()> {
    use switchboard_e2e::peers::Everything;
    let everything = Everything::start().await?;
    let long = RmcpServer::start_paged_long(3, 10).await?;
    let denied_tool = format!("long__tool_001_{}", "x".repeat(71));
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nauth:\n  clients:\n    - name: ci\n      api_key: {{header: x-api-key, keys: [\"{API_KEY}\"]}}\n  rules:\n    - clients: [ci]\n      allow: {{upstreams: [ev, long], prompts: [\"ev__simple-prompt\"], resources: [\"ev+demo://resource/dynamic/*\"], tools: [\"ev__echo\", \"long__*\"]}}\n      deny: {{tools: [\"{denied_tool}\"]}}\nupstreams:\n  - name: ev\n    url: {}\n  - name: long\n    url: {}\n",
        everything.url(),
        long.url()
    ))
    .await?;
    let ep = gw.endpoint.clone();
    let ci = [("x-api-key", API_KEY)];
    let sid = session(&ep, &ci).await?;
    let ask = |method: &'static str, params: Value| {
        let (ep, sid) = (ep.clone(), sid.clone());
        async move {
            raw::post_with(
                &ep,
                Some(&sid),
                &json!({"jsonrpc": "2.0", "id": 5, "method": method, "params": params}),
                &[("x-api-key", API_KEY)],
            )
            .await
        }
    };
    let code = |a: &raw::Answer| a.response()["error"]["code"].clone();

    // Prompts: only the allowed one is listed or given.
    let prompts = ask("prompts/list", json!({})).await?;
    let listed: Vec<&str> = prompts.response()["result"]["prompts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(listed, ["ev__simple-prompt"], "{prompts:?}");
    assert!(
        ask("prompts/get", json!({"name": "ev__simple-prompt"}))
            .await?
            .response()["result"]
            .is_object()
    );
    assert_eq!(
        code(
            &ask(
                "prompts/get",
                json!({"name": "ev__args-prompt", "arguments": {"city": "x"}})
            )
            .await?
        ),
        -32004
    );
    // Completion follows the prompt's and the resource's rules.
    let prompt_ref = json!({"ref": {"type": "ref/prompt", "name": "ev__completable-prompt"}, "argument": {"name": "department", "value": "E"}});
    assert_eq!(code(&ask("completion/complete", prompt_ref).await?), -32004);
    let template = json!({"ref": {"type": "ref/resource", "uri": "ev+demo://resource/dynamic/text/{resourceId}"}, "argument": {"name": "resourceId", "value": "1"}});
    let completed = ask("completion/complete", template).await?;
    assert!(completed.response()["result"].is_object(), "{completed:?}");

    // Resources: listed, read and subscribed only where allowed.
    let resources = ask("resources/list", json!({})).await?;
    let uris: Vec<&str> = resources.response()["result"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uri"].as_str())
        .collect();
    assert!(
        uris.iter()
            .all(|u| u.starts_with("ev+demo://resource/dynamic/")),
        "{uris:?}"
    );
    let static_doc = "ev+demo://resource/static/document/architecture.md";
    assert_eq!(
        code(&ask("resources/read", json!({"uri": static_doc})).await?),
        -32004
    );
    assert_eq!(
        code(&ask("resources/subscribe", json!({"uri": static_doc})).await?),
        -32004
    );
    let dynamic = "ev+demo://resource/dynamic/text/1";
    assert!(
        ask("resources/read", json!({"uri": dynamic}))
            .await?
            .response()["result"]
            .is_object()
    );
    assert!(
        ask("resources/subscribe", json!({"uri": dynamic}))
            .await?
            .response()["result"]
            .is_object()
    );

    // A shortened name is checked under the full name it stands for.
    let tools = tool_names(&ep, &sid, &ci).await?;
    let short: Vec<&String> = tools.iter().filter(|t| t.starts_with("long__")).collect();
    assert_eq!(short.len(), 2, "the denied tool is not listed: {tools:?}");
    assert!(short.iter().all(|t| t.len() <= 64), "{short:?}");
    let shortened_denied = format!("{}~{}", &denied_tool[..55], {
        use sha2::Digest;
        let d = sha2::Sha256::digest(denied_tool.as_bytes());
        d[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    });
    let denied = ask(
        "tools/call",
        json!({"name": shortened_denied, "arguments": {}}),
    )
    .await?;
    assert_eq!(code(&denied), -32004, "{denied:?}");
    let allowed = ask("tools/call", json!({"name": short[0], "arguments": {}})).await?;
    assert!(
        allowed.response()["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("tool_00")),
        "{allowed:?}"
    );
    Ok(())
}

/// Guarantees of issue 13: a pagination cursor works only in the session whose list gave
/// it, and `session.max_age` ends a session in the real filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarantee_cursors_stay_in_their_session_and_sessions_expire() -> anyhow::Result<()> {
    let paged = RmcpServer::start_paged(10, 3).await?;
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nsession:\n  max_age: 3s\nupstreams:\n  - name: p\n    url: {}\n",
        paged.url()
    ))
    .await?;
    let ep = gw.endpoint.clone();
    let list = |sid: String, cursor: Option<String>| {
        let ep = ep.clone();
        async move {
            let params = cursor.map_or(json!({}), |c| json!({"cursor": c}));
            raw::post(
                &ep,
                Some(&sid),
                &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": params}),
            )
            .await
        }
    };
    let a = raw::initialize(&ep).await?;
    let b = raw::initialize(&ep).await?;
    let first = list(a.clone(), None).await?;
    let cursor = first.response()["result"]["nextCursor"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no cursor: {first:?}"))?;
    let replayed = list(b, Some(cursor.clone())).await?;
    assert_eq!(replayed.response()["error"]["code"], -32602, "{replayed:?}");
    let own = list(a.clone(), Some(cursor)).await?;
    assert!(own.response()["result"]["tools"].is_array(), "{own:?}");
    // Past max_age the session is gone: 404, and the client initializes again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let expired = list(a, None).await?;
    assert_eq!(expired.status, 404, "{expired:?}");
    Ok(())
}
