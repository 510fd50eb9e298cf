//! An attacker's moves against the gateway, through real Envoy and the real `switchboard run`:
//! another client's session on every transport, the bridge's loopback port, resource URIs
//! spelled differently, a malicious legacy SSE upstream, upstream answers with cookies, CORS
//! and redirects, and client-chosen names in the stats. Each test names the item of issue 13
//! it pins.

use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_e2e::peers::{Everything, RmcpServer};
use switchboard_e2e::{Gateway, eventually, python_client, raw, repo_root};

const KEY_A: &str = "client-a-key-0123456789";
const KEY_B: &str = "client-b-key-0123456789";

fn init() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
}

/// `initialize` + `initialized` at `url` with these headers; the session id.
async fn session(url: &str, headers: &[(&str, &str)]) -> anyhow::Result<String> {
    let a = raw::post_with(url, None, &init(), headers).await?;
    anyhow::ensure!(a.status == 200, "initialize at {url}: {a:?}");
    let sid = a
        .session_id()
        .ok_or_else(|| anyhow::anyhow!("no session: {a:?}"))?;
    let n = raw::post_with(
        url,
        Some(&sid),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        headers,
    )
    .await?;
    anyhow::ensure!(n.status == 202, "initialized at {url}: {n:?}");
    Ok(sid)
}

async fn request(
    url: &str,
    sid: &str,
    method: &str,
    params: Value,
    headers: &[(&str, &str)],
) -> anyhow::Result<raw::Answer> {
    raw::post_with(
        url,
        Some(sid),
        &json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}),
        headers,
    )
    .await
}

fn names(answer: &raw::Answer, key: &str) -> Vec<String> {
    answer.response()["result"][key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect()
}

/// The status of `GET url` (an event stream) with these headers; the stream is dropped.
async fn get_status(url: &str, sid: Option<&str>, headers: &[(&str, &str)]) -> anyhow::Result<u16> {
    let mut req = reqwest::Client::new()
        .get(url)
        .header("accept", "text/event-stream");
    if let Some(s) = sid {
        req = req.header("mcp-session-id", s);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Ok(req.send().await?.status().as_u16())
}

/// Opens a legacy `/sse` stream and returns the message URL of its `endpoint` event.
async fn legacy_endpoint(
    base: &str,
    sse_path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(reqwest::Response, String)> {
    let mut req = reqwest::Client::new()
        .get(format!("{base}{sse_path}"))
        .header("accept", "text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.send().await?;
    anyhow::ensure!(resp.status() == 200, "GET {sse_path}: {resp:?}");
    let mut text = String::new();
    let endpoint = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(chunk) = resp.chunk().await? {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(data) = text
                .split("\n\n")
                .find(|e| e.contains("event: endpoint"))
                .and_then(|e| e.lines().find_map(|l| l.strip_prefix("data:")))
            {
                return Ok::<_, anyhow::Error>(data.trim().to_string());
            }
        }
        anyhow::bail!("the stream ended before its endpoint event: {text}")
    })
    .await??;
    Ok((resp, format!("{base}{endpoint}")))
}

async fn post_status(url: &str, body: &Value, headers: &[(&str, &str)]) -> anyhow::Result<u16> {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Ok(req.send().await?.status().as_u16())
}

/// Two API-key clients, `a` and `b`; tool `alpha__slow` denied to both.
fn two_clients(alpha: &str, upstream_extra: &str) -> String {
    format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n  transports: [streamable_http, sse]\nauth:\n  clients:\n    - name: a\n      api_key: {{keys: [\"{KEY_A}\"]}}\n    - name: b\n      api_key: {{keys: [\"{KEY_B}\"]}}\n  rules:\n    - clients: [\"*\"]\n      allow: {{upstreams: [\"*\"]}}\n      deny: {{tools: [alpha__slow]}}\nupstreams:\n  - name: alpha\n    url: {alpha}\n{upstream_extra}"
    )
}

/// Item 1: the merged GET stream, a per-upstream endpoint's GET and the legacy `/sse`
/// messages are bound to the identity that opened the session, as POST and DELETE are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item1_every_stream_is_bound_to_the_identity_that_opened_its_session() -> anyhow::Result<()>
{
    let alpha = RmcpServer::start("alpha").await?;
    let gw = Gateway::start(&two_clients(&alpha.url(), "")).await?;
    let (ep, base) = (gw.endpoint.clone(), gw.base());
    let a = [("x-api-key", KEY_A)];
    let b = [("x-api-key", KEY_B)];

    // The aggregated endpoint: b cannot follow a's stream; a can.
    let sid = session(&ep, &a).await?;
    assert_eq!(
        get_status(&ep, Some(&sid), &b).await?,
        404,
        "another client's session on GET /mcp\n{}",
        gw.logs()
    );
    assert_eq!(get_status(&ep, Some(&sid), &a).await?, 200, "{}", gw.logs());
    assert_eq!(get_status(&ep, None, &a).await?, 400);
    assert_eq!(get_status(&ep, Some("sb1.forged"), &a).await?, 404);
    assert_eq!(get_status(&ep, Some(&sid), &[]).await?, 401);

    // A per-upstream endpoint: its session is the gateway's too, and bound the same way.
    let own = format!("{base}/upstreams/alpha/mcp");
    let own_sid = session(&own, &a).await?;
    assert!(
        own_sid.starts_with("sb1."),
        "the upstream's own session id reaches the client: {own_sid}"
    );
    assert_eq!(get_status(&own, Some(&own_sid), &b).await?, 404);
    let stolen = request(&own, &own_sid, "tools/list", json!({}), &b).await?;
    assert_eq!(stolen.status, 404, "{stolen:?}");
    assert_eq!(get_status(&own, Some(&own_sid), &a).await?, 200);

    // Legacy `/sse`: the messages of a's stream are a's alone.
    let (_stream, messages) = legacy_endpoint(&base, "/sse", &a).await?;
    assert_eq!(post_status(&messages, &init(), &b).await?, 404);
    assert_eq!(post_status(&messages, &init(), &a).await?, 202);
    Ok(())
}

/// Item 7 (and the per-upstream part of the guarantees): the per-upstream endpoint applies
/// the tool rules under the names the aggregated endpoint shows, passes client headers on
/// as configured, and lets configured headers win.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item7_per_upstream_endpoints_apply_rules_and_pass_through() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let gw = Gateway::start(&two_clients(
        &alpha.url(),
        "    headers: {X-Static: configured}\n    auth:\n      pass_through:\n        headers:\n          - {source_header: X-User-Token, target_header: Authorization, format: \"Bearer {value}\"}\n          - {source_header: X-Override, target_header: X-Static, format: \"{value}\"}\n",
    ))
    .await?;
    let own = format!("{}/upstreams/alpha/mcp", gw.base());
    let a = [
        ("x-api-key", KEY_A),
        ("x-user-token", "t0k"),
        ("x-override", "from-client"),
    ];
    // Without credentials: 401, as on /mcp.
    let anonymous = raw::post(&own, None, &init()).await?;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    let sid = session(&own, &a).await?;
    let listed = request(&own, &sid, "tools/list", json!({}), &a).await?;
    let tools = names(&listed, "tools");
    assert!(tools.contains(&"add".to_string()), "{listed:?}");
    assert!(
        !tools.contains(&"slow".to_string()),
        "alpha__slow is denied: {tools:?}"
    );
    let before = alpha.request_count();
    let denied = request(
        &own,
        &sid,
        "tools/call",
        json!({"name": "slow", "arguments": {"ms": 1}}),
        &a,
    )
    .await?;
    assert_eq!(denied.response()["error"]["code"], -32004, "{denied:?}");
    assert_eq!(
        alpha.request_count(),
        before,
        "a denied call stays at the gateway"
    );
    let ok = request(
        &own,
        &sid,
        "tools/call",
        json!({"name": "add", "arguments": {"a": 40, "b": 2}}),
        &a,
    )
    .await?;
    assert_eq!(
        ok.response()["result"]["content"][0]["text"],
        "42",
        "{ok:?}"
    );
    let seen = alpha.seen_headers().pop().unwrap_or_default();
    let h = |n: &str| {
        seen.get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        h("authorization").as_deref(),
        Some("Bearer t0k"),
        "{seen:?}"
    );
    assert_eq!(
        h("x-static").as_deref(),
        Some("configured"),
        "configured headers win over pass-through: {seen:?}"
    );
    assert!(
        h("x-api-key").is_none() && h("x-user-token").is_none(),
        "{seen:?}"
    );
    Ok(())
}

/// Item 2: the bridge serves only Envoy. A local process that connects to its port can
/// neither start a hosted stdio upstream nor make it send its key somewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item2_the_bridge_port_serves_only_envoy() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let python = repo_root().join(".tools/venv/bin/python");
    let server = repo_root().join("tests/servers/python_stdio_server.py");
    let gw = Gateway::start(&two_clients(
        &alpha.url(),
        &format!(
            "  - name: py\n    type: stdio\n    command: {}\n    args: [\"{}\"]\n    capability_discovery_delay: 0s\n",
            python.display(),
            server.display()
        ),
    ))
    .await?;
    let bridge = eventually(
        Duration::from_secs(10),
        "the bridge's address in the log",
        || {
            let text = gw.stderr.text();
            let addr = text
                .lines()
                .find_map(|l| l.split("bridge on ").nth(1))
                .map(|a| a.trim().to_string());
            async move { addr }
        },
    )
    .await?;

    // A thief's HTTP server, recording whatever reaches it.
    let stolen: Arc<Mutex<Vec<axum::http::HeaderMap>>> = Arc::default();
    let record = stolen.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let record = record.clone();
        async move {
            if let Ok(mut s) = record.lock() {
                s.push(headers);
            }
            axum::http::StatusCode::OK
        }
    });
    let thief = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let thief_addr = thief.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(thief, app).await;
    });

    // 1. A hosted stdio upstream, straight from its port: no credentials, no session.
    let direct = raw::post(&format!("http://{bridge}/hosted/py/mcp"), None, &init()).await?;
    assert!(
        direct.status == 401 || direct.status == 403,
        "the bridge initialized a stdio upstream for a local process: {direct:?}"
    );

    // 2. The legacy endpoint, told to reach the gateway at the thief's address.
    let sse = reqwest::Client::new()
        .get(format!("http://{bridge}/legacy/sse"))
        .header("accept", "text/event-stream")
        .header("x-switchboard-gateway", thief_addr.to_string())
        .header("x-switchboard-target", "/mcp")
        .header("x-switchboard-messages", "/legacy/messages")
        .send()
        .await?;
    if sse.status() == 200 {
        let mut sse = sse;
        let mut text = String::new();
        while !text.contains("\n\n") {
            match tokio::time::timeout(Duration::from_secs(5), sse.chunk()).await {
                Ok(Ok(Some(c))) => text.push_str(&String::from_utf8_lossy(&c)),
                _ => break,
            }
        }
        let path = text
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .map(|d| d.trim().to_string())
            .unwrap_or_default();
        let _ = post_status(&format!("http://{bridge}{path}"), &init(), &[]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let keys: Vec<String> = stolen
        .lock()
        .map(|s| {
            s.iter()
                .filter_map(|h| h.get("x-switchboard-bridge-key"))
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();

    // 3. With what it caught, the public port: a forged identity, or none.
    for key in &keys {
        let forged = raw::post_with(
            &gw.endpoint,
            None,
            &init(),
            &[("x-switchboard-bridge-key", key)],
        )
        .await?;
        assert_ne!(
            forged.status, 200,
            "the bridge key alone admits a client that has no credentials"
        );
    }
    assert!(
        keys.is_empty(),
        "a local process made the bridge send its key to {thief_addr}"
    );
    // The secret Envoy shows the bridge is not in Envoy's configuration dump either.
    let secrets = reqwest::get(format!(
        "{}/config_dump?resource=dynamic_active_secrets",
        gw.admin
    ))
    .await?
    .text()
    .await?;
    assert!(
        secrets.contains("switchboard-bridge-ingress") && secrets.contains("[redacted]"),
        "{secrets}"
    );
    // Envoy's own requests still work.
    let sid = session(&gw.endpoint, &[("x-api-key", KEY_A)]).await?;
    let echo = request(
        &gw.endpoint,
        &sid,
        "tools/call",
        json!({"name": "py__echo", "arguments": {"text": "through envoy"}}),
        &[("x-api-key", KEY_A)],
    )
    .await?;
    assert_eq!(
        echo.response()["result"]["content"][0]["text"],
        "through envoy",
        "{echo:?}\n{}",
        gw.logs()
    );
    Ok(())
}

/// Item 3: a resource rule sees the URI that will be read, however the client spells it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item3_resource_rules_see_the_normalized_uri() -> anyhow::Result<()> {
    let everything = Everything::start().await?;
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nauth:\n  clients:\n    - name: a\n      api_key: {{keys: [\"{KEY_A}\"]}}\n  rules:\n    - clients: [a]\n      allow: {{upstreams: [ev1]}}\n      deny: {{resources: [\"ev1+demo://resource/static/*\"]}}\nupstreams:\n  - name: ev1\n    url: {}\n",
        everything.url()
    ))
    .await?;
    let ep = gw.endpoint.clone();
    let a = [("x-api-key", KEY_A)];
    let sid = session(&ep, &a).await?;
    let read = |uri: String| {
        let (ep, sid) = (ep.clone(), sid.clone());
        async move { request(&ep, &sid, "resources/read", json!({"uri": uri}), &a).await }
    };
    let doc = "document/architecture.md";
    for spelled in [
        format!("ev1+demo://resource/static/{doc}"),
        format!("EV1+demo://resource/static/{doc}"),
        format!("ev1+DEMO://resource/static/{doc}"),
        format!("ev1+demo://RESOURCE/static/{doc}"),
        format!("ev1+demo://resource/static/x/../{doc}"),
        format!("ev1+demo://resource/dynamic/../static/{doc}"),
        format!("ev1+demo://resource/./static/./{doc}"),
        format!("ev1+demo://resource/%73tatic/{doc}"),
        format!("ev1+demo://resource/dynamic/%2e%2E/static/{doc}"),
    ] {
        let a = read(spelled.clone()).await?;
        assert_eq!(
            a.response()["error"]["code"],
            -32004,
            "{spelled} was read: {a:?}"
        );
    }
    // A separator hidden in an escape cannot walk out of a path either.
    let hidden = read(format!("ev1+demo://resource/dynamic/..%2Fstatic/{doc}")).await?;
    assert!(
        hidden.response()["error"]["code"] == -32602
            || hidden.response()["error"]["code"] == -32004,
        "{hidden:?}"
    );
    for method in ["resources/subscribe", "resources/unsubscribe"] {
        let a = request(
            &ep,
            &sid,
            method,
            json!({"uri": format!("EV1+demo://resource/static/x/../{doc}")}),
            &a,
        )
        .await?;
        assert_eq!(a.response()["error"]["code"], -32004, "{method}: {a:?}");
    }
    let complete = request(
        &ep,
        &sid,
        "completion/complete",
        json!({"ref": {"type": "ref/resource", "uri": format!("EV1+demo://resource/static/{doc}")},
               "argument": {"name": "x", "value": ""}}),
        &a,
    )
    .await?;
    assert_eq!(complete.response()["error"]["code"], -32004, "{complete:?}");
    // What is allowed stays readable, spelled either way; answers name the prefixed URI.
    for spelled in [
        "ev1+demo://resource/dynamic/text/1",
        "EV1+demo://resource/dynamic/./text/1",
    ] {
        let ok = read(spelled.to_string()).await?;
        assert_eq!(
            ok.response()["result"]["contents"][0]["uri"],
            "ev1+demo://resource/dynamic/text/1",
            "{spelled}: {ok:?}\n{}",
            gw.logs()
        );
    }
    Ok(())
}

/// A legacy SSE server whose `endpoint` event names another origin.
async fn misdirecting_sse_server(endpoint: String) -> anyhow::Result<std::net::SocketAddr> {
    let app = axum::Router::new().route(
        "/sse",
        axum::routing::get(move || {
            let endpoint = endpoint.clone();
            async move {
                let first = futures_once(format!("event: endpoint\ndata: {endpoint}\n\n"));
                (
                    [("content-type", "text/event-stream")],
                    axum::body::Body::from_stream(first),
                )
            }
        }),
    );
    switchboard_e2e::peers::serve_app(app).await
}

/// One chunk, then a stream that stays open.
fn futures_once(
    text: String,
) -> impl futures::Stream<Item = Result<String, std::convert::Infallible>> {
    use futures::StreamExt;
    futures::stream::once(async move { Ok(text) }).chain(futures::stream::pending())
}

/// Item 4: the bridge follows a legacy SSE server's `endpoint` only to the server's own
/// origin, so its configured secret headers never go elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item4_a_legacy_sse_upstream_cannot_send_the_bridge_elsewhere() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let thief = RmcpServer::start("thief").await?;
    let evil = misdirecting_sse_server(format!("http://{}/mcp?session=1", thief.addr)).await?;
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nupstreams:\n  - name: alpha\n    url: {}\n  - name: old\n    type: sse\n    url: http://{evil}/sse\n    headers: {{Authorization: \"Bearer upstream-secret\"}}\n    startup_timeout: 2s\n    initialization_retries: 0\n",
        alpha.url()
    ))
    .await?;
    let sid = raw::initialize(&gw.endpoint).await?;
    let listed = raw::post(
        &gw.endpoint,
        Some(&sid),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await?;
    let tools = names(&listed, "tools");
    assert!(tools.iter().any(|t| t.starts_with("alpha__")), "{tools:?}");
    assert!(!tools.iter().any(|t| t.starts_with("old__")), "{tools:?}");
    let leaked = thief
        .seen_headers()
        .iter()
        .any(|h| h.get("authorization").is_some());
    assert!(
        !leaked && thief.request_count() == 0,
        "the bridge posted to another origin ({} requests)",
        thief.request_count()
    );
    eventually(Duration::from_secs(10), "the refusal in the log", || {
        let found = gw.logs().contains("another origin");
        async move { found.then_some(()) }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    Ok(())
}

/// An MCP server that answers with what an attacker would like a browser to keep: cookies,
/// CORS grants, and a redirect to another host.
async fn cookie_upstream() -> anyhow::Result<std::net::SocketAddr> {
    use axum::response::IntoResponse;
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(|body: axum::body::Bytes| async move {
            let m: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let id = m["id"].clone();
            let grants = [
                ("set-cookie", "upstream=1; Path=/"),
                ("access-control-allow-origin", "https://evil.example"),
                ("access-control-allow-credentials", "true"),
                ("mcp-session-id", "up-session"),
            ];
            let result = match m["method"].as_str() {
                Some("initialize") => json!({"protocolVersion": "2025-06-18",
                    "capabilities": {"tools": {}}, "serverInfo": {"name": "cookies", "version": "1"}}),
                Some("tools/list") => json!({"tools": [
                    {"name": "go", "inputSchema": {"type": "object"}},
                    {"name": "stay", "inputSchema": {"type": "object"}}]}),
                Some("tools/call") if m["params"]["name"] == "go" => {
                    return (
                        axum::http::StatusCode::FOUND,
                        [("location", "http://evil.example/elsewhere")],
                        "",
                    )
                        .into_response();
                }
                Some("tools/call") => json!({"content": [{"type": "text", "text": "stayed"}]}),
                _ => return (axum::http::StatusCode::ACCEPTED, grants).into_response(),
            };
            (
                grants,
                [("content-type", "application/json")],
                json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
            )
                .into_response()
        }),
    );
    switchboard_e2e::peers::serve_app(app).await
}

/// Item 8: cookies and CORS headers of an upstream's answer stop at the gateway, and a
/// redirect becomes a JSON-RPC error, on the aggregated and the per-upstream endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item8_upstream_cookies_cors_and_redirects_stop_at_the_gateway() -> anyhow::Result<()> {
    let up = cookie_upstream().await?;
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n  cors:\n    origins: [\"https://app.example\"]\nupstreams:\n  - name: c\n    url: http://{up}/mcp\n"
    ))
    .await?;
    let origin = [("origin", "https://app.example")];
    for (url, stay, go) in [
        (gw.endpoint.clone(), "c__stay", "c__go"),
        (format!("{}/upstreams/c/mcp", gw.base()), "stay", "go"),
    ] {
        let sid = session(&url, &origin).await?;
        let a = request(
            &url,
            &sid,
            "tools/call",
            json!({"name": stay, "arguments": {}}),
            &origin,
        )
        .await?;
        assert_eq!(
            a.response()["result"]["content"][0]["text"],
            "stayed",
            "{a:?}"
        );
        assert!(
            a.headers.get("set-cookie").is_none(),
            "{url}: {:?}",
            a.headers
        );
        assert!(
            a.headers.get("access-control-allow-credentials").is_none(),
            "{url}: {:?}",
            a.headers
        );
        let allowed: Vec<&str> = a
            .headers
            .get_all("access-control-allow-origin")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(allowed, ["https://app.example"], "{url}: {:?}", a.headers);
        let r = request(
            &url,
            &sid,
            "tools/call",
            json!({"name": go, "arguments": {}}),
            &origin,
        )
        .await?;
        assert!(
            r.headers.get("location").is_none(),
            "{url}: {:?}",
            r.headers
        );
        assert_eq!(r.response()["error"]["code"], -32002, "{url}: {r:?}");
        let message = r.response()["error"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains("redirect"), "{message}");
        assert!(!message.contains("evil.example"), "{message}");
    }
    Ok(())
}

/// Item 9: a name a client makes up counts under `unknown`; it never becomes a stat of its
/// own. Names the gateway listed do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item9_client_chosen_tool_names_do_not_create_stats() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nupstreams:\n  - name: alpha\n    url: {}\n",
        alpha.url()
    ))
    .await?;
    let ep = gw.endpoint.clone();
    let sid = raw::initialize(&ep).await?;
    raw::post(
        &ep,
        Some(&sid),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await?;
    raw::post(
        &ep,
        Some(&sid),
        &raw::call(json!(2), "alpha__add", json!({"a": 1, "b": 2})),
    )
    .await?;
    for (i, name) in ["zz1", "zz2", "alpha__nope", "x__y", "alpha__add.evil"]
        .iter()
        .enumerate()
    {
        raw::post(&ep, Some(&sid), &raw::call(json!(10 + i), name, json!({}))).await?;
    }
    let stats = eventually(Duration::from_secs(10), "the unknown bucket", || {
        let admin = gw.admin.clone();
        async move {
            let text = reqwest::get(format!("{admin}/stats?filter=switchboard"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            // Native: one series per upstream label the made-up names pointed at.
            let unknown: u64 = text
                .lines()
                .filter(|l| {
                    l.starts_with(&switchboard_e2e::filter_stat(
                        "switchboard.tool_calls_total.",
                    )) && l.contains(".tool.unknown: ")
                })
                .filter_map(|l| l.rsplit(": ").next()?.trim().parse::<u64>().ok())
                .sum();
            (unknown == 5).then_some(text)
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    let add =
        switchboard_e2e::filter_stat("switchboard.tool_calls_total.upstream.alpha.tool.add: 1");
    assert!(stats.contains(&add), "{stats}");
    for made_up in ["zz1", "zz2", "alpha__nope", "x__y", "alpha__add_evil"] {
        assert!(
            !stats.contains(&format!("switchboard.tool.{made_up}."))
                && !stats.contains(&format!(".tool.{made_up}:"))
                && !stats.contains(&format!(".tool.{made_up}.")),
            "{made_up} has a stat of its own:\n{stats}"
        );
    }
    Ok(())
}

/// Item 9: an upstream cannot take the name of the gateway's own pseudo-upstreams in the
/// stats.
#[test]
fn item9_upstream_names_of_the_pseudo_upstreams_are_refused() -> anyhow::Result<()> {
    for name in ["gateway", "fan_out", "Gateway"] {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("g.yaml");
        std::fs::write(
            &file,
            format!("upstreams:\n  - name: {name}\n    url: http://127.0.0.1:9/mcp\n"),
        )?;
        let out = std::process::Command::new(switchboard_e2e::switchboard_bin())
            .arg("validate")
            .arg("-c")
            .arg(&file)
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} was accepted");
        assert!(err.contains("upstreams[0].name"), "{err}");
    }
    Ok(())
}

/// Guarantees: auth through the bridge. With `auth` configured, the legacy `/sse` transport,
/// a stdio and a legacy SSE upstream, and the merged GET stream all work for the client the
/// filter identified, under its rules; without credentials `/sse` is 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarantee_auth_holds_through_the_bridge() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let everything = Everything::start_sse().await?;
    let gw = Gateway::start(&two_clients(
        &alpha.url(),
        &format!(
            "  - name: py\n    type: stdio\n    command: {}\n    args: [\"{}\"]\n    capability_discovery_delay: 0s\n  - name: old\n    type: sse\n    url: {}\n",
            repo_root().join(".tools/venv/bin/python").display(),
            repo_root().join("tests/servers/python_stdio_server.py").display(),
            everything.sse_url()
        ),
    ))
    .await?;
    let base = gw.base();
    assert_eq!(get_status(&format!("{base}/sse"), None, &[]).await?, 401);
    assert_eq!(
        get_status(&format!("{base}/upstreams/py/sse"), None, &[]).await?,
        401
    );

    // The Python SDK's SSE client with an API key: every kind of upstream, under the rules.
    let url = format!("{base}/sse");
    let plan = json!({
        "transport": "sse",
        "headers": {"x-api-key": KEY_A},
        "calls": [{"name": "py__echo", "args": {"text": "stdio"}}, {"name": "old__echo", "args": {"message": "legacy"}},
                  {"name": "alpha__add", "args": {"a": 1, "b": 1}}, {"name": "alpha__slow", "args": {"ms": 1}}],
    });
    let seen = tokio::task::spawn_blocking(move || python_client(&url, &plan))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    assert_eq!(seen["calls"][0]["text"], "stdio", "{seen}");
    assert!(
        seen["calls"][1]["text"]
            .as_str()
            .is_some_and(|t| t.contains("legacy")),
        "{seen}"
    );
    assert_eq!(seen["calls"][2]["text"], "2", "{seen}");
    assert_eq!(seen["calls"][3]["is_error"], true, "{seen}");
    assert!(
        seen["calls"][3]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Access denied")),
        "{seen}"
    );

    // The merged stream: events reach the client that opened the session, through the
    // bridge reading each upstream's stream on its behalf.
    let a = [("x-api-key", KEY_A)];
    let ep = gw.endpoint.clone();
    let sid = session(&ep, &a).await?;
    let resp = reqwest::Client::new()
        .get(&ep)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("x-api-key", KEY_A)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let (_task, mut events) = raw::follow(resp);
    request(
        &ep,
        &sid,
        "tools/call",
        json!({"name": "old__toggle-simulated-logging", "arguments": {}}),
        &a,
    )
    .await?;
    raw::wait_for(
        &mut events,
        "a log message from the legacy SSE upstream",
        |m| m["method"] == "notifications/message",
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    Ok(())
}

/// No secret of the gateway's is in what Envoy's admin interface prints, on either data
/// plane: session keys (current and previous), API keys and their digests, configured
/// upstream header values (the filter sets them; no route carries them), the private keys of
/// mutual TLS and of the gateway's own port, the bridge's ingress secret and the private
/// members of a JWKS. The gateway works with all of them (a key accepted, a session opened,
/// the upstream reached over mutual TLS with its header).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_of_the_gateway_is_in_envoys_config_dump() -> anyhow::Result<()> {
    use sha2::{Digest, Sha256};
    use switchboard_e2e::tls::{Ca, TlsUpstream};
    let dir = tempfile::tempdir()?;
    let ca = Ca::new("secrets test CA")?;
    let upstream =
        TlsUpstream::start("alpha", &ca.server(&["mcp.internal"])?, Some(&ca), true).await?;
    let (client_cert, client_key) = ca.client("gateway")?.write(dir.path(), "client")?;
    let ca_file = ca.write(dir.path(), "ca")?;
    let client_key_pem = std::fs::read_to_string(&client_key)?;
    let jwks = dir.path().join("jwks.json");
    let jwk_private = "private-exponent-that-must-not-leak";
    std::fs::write(
        &jwks,
        json!({"keys": [{"kty": "RSA", "kid": "r1", "alg": "RS256", "e": "AQAB",
            "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
            "d": jwk_private}]})
        .to_string(),
    )?;
    let session_key = "a-session-key-that-must-not-leak-0123456789";
    let previous_key = "a-previous-session-key-that-must-not-leak-98765";
    let header_value = "upstream-credential-that-must-not-leak";
    // Token exchange: a client secret, and a private key whose scalar must not show either.
    let exchange_secret = "exchange-secret-that-must-not-leak";
    let exchange_key = {
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        let key = p256::SecretKey::from_slice(&[0x17; 32])?;
        let file = dir.path().join("exchange.key");
        std::fs::write(&file, key.to_pkcs8_pem(LineEnding::LF)?.as_bytes())?;
        file
    };
    let exchange_scalar = "17".repeat(32);
    let exchange_pem_body = std::fs::read_to_string(&exchange_key)?
        .lines()
        .find(|l| l.len() > 40 && !l.starts_with("-----"))
        .unwrap_or_default()
        .to_string();
    let exchanging = format!(
        "  - name: beta\n    url: http://127.0.0.1:9/mcp\n    auth:\n      token_exchange: {{audience: beta, client_id: gw, private_key: {{file: {}}}}}\n  - name: gamma\n    url: http://127.0.0.1:9/mcp\n    auth:\n      token_exchange: {{audience: gamma, client_id: gw, client_secret: \"{exchange_secret}\"}}\n",
        exchange_key.display()
    );
    let oauth = "  oauth:\n    resource: http://127.0.0.1/mcp\n    authorization_servers:\n      - {issuer: \"http://127.0.0.1:9\", jwks: {url: \"http://127.0.0.1:9/jwks\"}, token_endpoint: \"http://127.0.0.1:9/token\"}\n";
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nsession:\n  key: \"{session_key}\"\n  previous_keys: [\"{previous_key}\"]\nauth:\n{oauth}  clients:\n    - name: a\n      api_key: {{keys: [\"{KEY_A}\"]}}\n    - name: people\n      jwt: {{issuer: \"https://idp.test\", jwks: {{file: {}}}}}\n  rules:\n    - clients: [\"*\"]\n      allow: {{upstreams: [\"*\"]}}\nupstreams:\n  - name: alpha\n    url: https://127.0.0.1:{}/mcp\n    headers: {{x-upstream-token: \"{header_value}\"}}\n    tls:\n      ca_cert: {}\n      server_name: mcp.internal\n      client_cert: {}\n      client_key: {}\n{exchanging}",
        jwks.display(),
        upstream.addr.port(),
        ca_file.display(),
        client_cert.display(),
        client_key.display(),
    );
    let gw = Gateway::start(&yaml).await?;
    let sid = session(&gw.endpoint, &[("x-api-key", KEY_A)]).await?;
    let called = request(
        &gw.endpoint,
        &sid,
        "tools/call",
        json!({"name": "alpha__whoami", "arguments": {}}),
        &[("x-api-key", KEY_A)],
    )
    .await?;
    let text = called.response().to_string();
    assert!(
        text.contains("\"text\":\"alpha\""),
        "the upstream answered over mutual TLS: {text}"
    );

    let dump = reqwest::get(format!("{}/config_dump?include_eds", gw.admin))
        .await?
        .text()
        .await?;
    assert!(
        dump.contains("switchboard.mcp"),
        "the filter's configuration is in the dump"
    );
    let digest: String = Sha256::digest(KEY_A.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let key_body = client_key_pem
        .lines()
        .find(|l| l.len() > 40 && !l.starts_with("-----"))
        .unwrap_or_default()
        .to_string();
    assert!(!key_body.is_empty());
    for (what, secret) in [
        ("the session key", session_key),
        ("a previous session key", previous_key),
        ("an API key", KEY_A),
        ("an API-key digest", digest.as_str()),
        ("an upstream header value", header_value),
        ("the client private key", key_body.as_str()),
        ("a JWKS private member", jwk_private),
        ("a token exchange client secret", exchange_secret),
        ("a token exchange private key", exchange_scalar.as_str()),
        ("a token exchange key file", exchange_pem_body.as_str()),
    ] {
        assert!(!dump.contains(secret), "{what} is in config_dump");
    }
    // The filter's secrets travel sealed; the configuration says so.
    assert!(
        dump.contains("sealed_secrets"),
        "no sealed secrets in the dump"
    );
    Ok(())
}
