//! MCP 2026-07-28 next to the 2025 revisions, with the newest SDKs of both eras (the Python
//! SDK's `Client`, mcp 2.3.0; the TypeScript SDK v2 client) and upstreams of every era:
//! server-everything (2025 only), rmcp and the Python SDK's `MCPServer` (both), and that
//! server refusing everything but 2026-07-28.
//!
//! Without `server.stateless_clients` the gateway is a 2025 server to clients: an `auto`
//! client falls back to the handshake, one pinned to 2026-07-28 gets the gateway's 400 (never
//! the revision's -32022, which says "modern server" and stops a fallback). With it, every
//! mode works: routing headers checked before any upstream is asked, upstreams found and
//! spoken to in their own revision, 2025 upstream sessions kept per client, multi-round-trip
//! requests with a sealed `requestState`, and `subscriptions/listen` merged by the bridge.

use serde_json::{Value, json};
use switchboard_e2e::peers::RmcpServer;
use switchboard_e2e::{Gateway, python_modern_client, ts_modern_client};

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
        let seen =
            tokio::task::spawn_blocking(move || python_modern_client(&url, mode, &calls)).await??;
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
    let seen =
        tokio::task::spawn_blocking(move || ts_modern_client(&url, "auto", &ts_calls)).await??;
    assert_eq!(seen["era"], "legacy", "{seen}");
    assert_eq!(seen["calls"][0]["text"], "42", "{seen}");

    // Pinned to the new revision: refused, and not with the modern -32022 (which would tell
    // an `auto` client the gateway is modern).
    let url = gw.endpoint.clone();
    let seen = tokio::task::spawn_blocking(move || {
        python_modern_client(
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

/// Two rmcp upstreams behind a gateway that serves stateless clients. rmcp 3.9 speaks both
/// eras: the gateway finds that with `server/discover` and speaks 2026-07-28 to them for
/// stateless clients (no session), the 2025 handshake for 2025 clients.
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
        let seen =
            tokio::task::spawn_blocking(move || python_modern_client(&url, mode, &calls)).await??;
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
    // The same call with matching headers works, and says it is complete; it reaches its
    // upstream only, in 2026-07-28 (no session opened, none to close).
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
    assert!(a.method_count("POST") >= 1);
    assert_eq!(a.method_count("DELETE"), 0, "no session was opened");
    assert_eq!(b.method_count("POST") + b.method_count("DELETE"), 0);
    assert!(
        gw.logs().contains(r#"upstream "a" speaks MCP 2026-07-28"#),
        "{}",
        gw.logs()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_v2_client_pinned_to_2026_07_28_calls_through_the_gateway()
-> anyhow::Result<()> {
    let (_a, _b, gw) = stateless_gateway().await?;
    let calls = json!([{"name": "a__add", "args": {"a": 40, "b": 2}}, {"name": "b__whoami"}]);
    for mode in ["2026-07-28", "auto"] {
        let url = gw.endpoint.clone();
        let calls = calls.clone();
        let seen =
            tokio::task::spawn_blocking(move || ts_modern_client(&url, mode, &calls)).await??;
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
        let seen =
            tokio::task::spawn_blocking(move || python_modern_client(&url, mode, &calls)).await??;
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

/// Upstreams of every era in one endpoint: `server-everything` (2025 only), the Python SDK's
/// `MCPServer` (both eras) and the same server behind a door that refuses everything but
/// 2026-07-28 (no `initialize`, no `GET`).
async fn three_eras() -> anyhow::Result<(Vec<Box<dyn std::any::Any + Send>>, Gateway)> {
    use switchboard_e2e::peers::{DualEraServer, Everything};
    let ev = Everything::start().await?;
    let py = DualEraServer::start().await?;
    let mo = DualEraServer::modern_only("modern").await?;
    let yaml = gateway_yaml(
        &[("ev", ev.url()), ("py", py.url()), ("mo", mo.url())],
        true,
    );
    let gw = Gateway::start(&yaml).await?;
    Ok((vec![Box::new(ev), Box::new(py), Box::new(mo)], gw))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_of_every_era_in_one_endpoint_serve_clients_of_every_mode() -> anyhow::Result<()>
{
    let (_peers, gw) = three_eras().await?;
    let calls = json!([
        {"name": "mo__add", "args": {"a": 2, "b": 3}},
        {"name": "py__era"},
        {"name": "ev__echo", "args": {"message": "hi"}},
        {"name": "mo__era"},
    ]);
    for mode in ["2026-07-28", "auto", "legacy"] {
        let url = gw.endpoint.clone();
        let calls = calls.clone();
        let seen =
            tokio::task::spawn_blocking(move || python_modern_client(&url, mode, &calls)).await??;
        eprintln!("the Python SDK client ({mode}) saw: {seen}");
        assert!(seen.get("error").is_none(), "{mode}: {seen}\n{}", gw.logs());
        let tools = seen["tools"].to_string();
        for tool in ["mo__confirm", "py__add", "ev__echo"] {
            assert!(tools.contains(tool), "{mode}: {tool} missing from {tools}");
        }
        // server-everything offers its elicitation tool to clients that can be asked: a 2025
        // session relays the question, a stateless client gets it as input_required.
        assert!(
            tools.contains("ev__trigger-elicitation-request"),
            "{mode}: {tools}"
        );
        assert_eq!(
            seen["calls"][0]["text"],
            "5",
            "{mode}: {seen}\n{}",
            gw.logs()
        );
        assert_eq!(seen["calls"][1]["text"], "dual-era", "{mode}: {seen}");
        assert!(
            seen["calls"][2]["text"]
                .as_str()
                .is_some_and(|t| t.contains("hi")),
            "{mode}: {seen}"
        );
        assert_eq!(seen["calls"][3]["text"], "modern", "{mode}: {seen}");
    }
    // An upstream's own endpoint serves a 2026-07-28 client too: that upstream alone,
    // unprefixed (here the 2026-only one, and the 2025-only one through a kept session).
    for (name, tool, args, text) in [
        ("mo", "add", json!({"a": 2, "b": 2}), "4"),
        ("ev", "echo", json!({"message": "own"}), "Echo: own"),
    ] {
        let url = gw
            .endpoint
            .replace("/mcp", &format!("/upstreams/{name}/mcp"));
        let calls = json!([{"name": tool, "args": args}]);
        let seen =
            tokio::task::spawn_blocking(move || python_modern_client(&url, "2026-07-28", &calls))
                .await??;
        assert_eq!(
            seen["calls"][0]["text"],
            text,
            "{name}: {seen}\n{}",
            gw.logs()
        );
        assert!(
            seen["tools"]
                .as_array()
                .is_some_and(|t| t.iter().all(|n| !n.as_str().unwrap_or("").contains("__"))),
            "{name}: {seen}"
        );
    }
    // A tool whose argument the client mirrors as a header (`x-mcp-header`): the gateway
    // passes Mcp-Param-Region on, and the upstream finds it equal to the argument.
    let url = gw.endpoint.clone();
    let seen = tokio::task::spawn_blocking(move || {
        python_modern_client(
            &url,
            "2026-07-28",
            &json!([{"name": "mo__locate", "args": {"region": "eu-west-1"}}]),
        )
    })
    .await??;
    assert_eq!(
        seen["calls"][0]["text"],
        "region:eu-west-1",
        "{seen}\n{}",
        gw.logs()
    );
    let url = gw.endpoint.clone();
    let ts_calls = calls.clone();
    let seen = tokio::task::spawn_blocking(move || ts_modern_client(&url, "2026-07-28", &ts_calls))
        .await??;
    eprintln!("the TypeScript SDK v2 client saw: {seen}");
    assert!(seen.get("error").is_none(), "{seen}\n{}", gw.logs());
    assert_eq!(seen["calls"][0]["text"], "5", "{seen}");
    assert_eq!(seen["calls"][3]["text"], "modern", "{seen}");
    // What each upstream speaks was found once and said.
    let logs = gw.logs();
    assert!(
        logs.contains(r#"upstream "mo" speaks MCP 2026-07-28 only"#),
        "{logs}"
    );
    assert!(
        logs.contains(r#"upstream "ev" does not speak MCP 2026-07-28"#),
        "{logs}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_round_trip_tool_answers_through_the_gateway_and_its_state_is_sealed()
-> anyhow::Result<()> {
    use switchboard_e2e::raw::post_with;
    let (_peers, gw) = three_eras().await?;
    // The Python SDK in 2026-07-28 mode: the upstream's input_required reaches it, it asks
    // its user, retries with the gateway's sealed state, and the upstream gets its own back.
    let calls = json!([{"name": "mo__confirm", "args": {"question": "Ship it?"}},
                       {"name": "py__confirm", "args": {"question": "Really?"}}]);
    let url = gw.endpoint.clone();
    let modern_calls = calls.clone();
    let seen = tokio::task::spawn_blocking(move || {
        python_modern_client(&url, "2026-07-28", &modern_calls)
    })
    .await??;
    eprintln!("the Python SDK client (2026-07-28) saw: {seen}");
    assert_eq!(
        seen["asked"],
        json!(["Ship it?", "Really?"]),
        "{seen}\n{}",
        gw.logs()
    );
    assert_eq!(
        seen["calls"][0]["text"], "accept:True:asked:Ship it?",
        "{seen}"
    );
    assert_eq!(
        seen["calls"][1]["text"], "accept:True:asked:Really?",
        "{seen}"
    );

    // A 2025 upstream's question (server-everything's elicitation tool asks inside its
    // answer) reaches the same client as input_required: the bridge holds the upstream's
    // stream while the client answers, and the answer goes back in the upstream's session.
    let url = gw.endpoint.clone();
    let seen = tokio::task::spawn_blocking(move || {
        python_modern_client(
            &url,
            "2026-07-28",
            &json!([{"name": "ev__trigger-elicitation-request"},
                    {"name": "ev__trigger-elicitation-request"}]),
        )
    })
    .await??;
    eprintln!("the Python SDK client (2026-07-28) asked by a 2025 upstream saw: {seen}");
    // Twice: the second call in the session the bridge kept from the first.
    for call in 0..2 {
        let text = seen["calls"][call]["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("User provided the requested information") && text.contains("Ada"),
            "{seen}\n{}",
            gw.logs()
        );
    }
    assert_eq!(
        seen["asked"][0],
        "Please provide inputs for the following fields:"
    );

    // The same tool for a 2025 session: the bridge makes the call as a stateless client and
    // puts the upstream's input request to the client as a server request inside the call's
    // stream; the client's answer (a separate POST) makes the retry.
    let url = gw.endpoint.clone();
    let legacy_calls = json!([{"name": "mo__confirm", "args": {"question": "Ship it?"}},
                              {"name": "mo__add", "args": {"a": 1, "b": 1}}]);
    let seen =
        tokio::task::spawn_blocking(move || python_modern_client(&url, "legacy", &legacy_calls))
            .await??;
    eprintln!("the Python SDK client (legacy) saw: {seen}");
    assert_eq!(
        seen["calls"][0]["text"],
        "accept:True:asked:Ship it?",
        "{seen}\n{}",
        gw.logs()
    );
    assert_eq!(seen["asked"], json!(["Ship it?"]), "{seen}");
    assert_eq!(seen["calls"][1]["text"], "2", "{seen}");

    // By hand: the state the client gets is the gateway's, not the upstream's.
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}});
    let call = |name: &str, state: Option<&str>| {
        let mut params = json!({"name": name, "arguments": {"question": "Q"}, "_meta": meta});
        if let Some(state) = state {
            params["requestState"] = json!(state);
            params["inputResponses"] =
                json!({"confirm": {"action": "accept", "content": {"ok": true}}});
        }
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params})
    };
    let headers = |name: &'static str| {
        [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", name),
        ]
    };
    let first = post_with(
        &gw.endpoint,
        None,
        &call("mo__confirm", None),
        &headers("mo__confirm"),
    )
    .await?;
    let result = first.response()["result"].clone();
    assert_eq!(result["resultType"], "input_required", "{result}");
    let sealed = result["requestState"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(sealed.starts_with("sbr1."), "{result}");
    // Made up, taken to another upstream's tool of the same name, or the upstream's own
    // token replayed: refused by the gateway with -32602.
    for (name, state, header) in [
        ("mo__confirm", "v1.forged".to_string(), "mo__confirm"),
        ("py__confirm", sealed.clone(), "py__confirm"),
    ] {
        let refused = post_with(
            &gw.endpoint,
            None,
            &call(name, Some(&state)),
            &headers(header),
        )
        .await?;
        let error = &refused.response()["error"];
        assert_eq!(error["code"], -32602, "{name}: {:?}", refused.messages);
        // The gateway's refusal, not the upstream's own.
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Invalid params: the requestState")),
            "{name}: {error}"
        );
    }
    assert!(gw.logs().contains("refused a retry"), "{}", gw.logs());
    // The real retry completes.
    let done = post_with(
        &gw.endpoint,
        None,
        &call("mo__confirm", Some(&sealed)),
        &headers("mo__confirm"),
    )
    .await?;
    let result = &done.response()["result"];
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(
        result["content"][0]["text"], "accept:True:asked:Q",
        "{result}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_listen_merges_upstreams_of_both_eras() -> anyhow::Result<()> {
    use switchboard_e2e::raw::{follow, post_with, wait_for};
    let (_peers, gw) = three_eras().await?;
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}});
    // server-everything's first static resource, and one the modern upstream announces.
    let ev_uri = "ev+demo://resource/static/document/architecture.md";
    let listen = json!({"jsonrpc": "2.0", "id": "sub-1", "method": "subscriptions/listen",
        "params": {"_meta": meta, "notifications": {"toolsListChanged": true,
            "resourceSubscriptions": ["mo+mem://news", ev_uri, "nobody+x://y"]}}});
    let resp = reqwest::Client::new()
        .post(&gw.endpoint)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "subscriptions/listen")
        .body(listen.to_string())
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let (task, mut events) = follow(resp);
    // One acknowledgement: what the upstreams honour together. The 2026-07-28 upstream took
    // its part of the filter as a subscription of its own; server-everything (2025) was
    // subscribed in a session of the bridge's; a URI of no upstream is not honoured.
    let (_, ack) = wait_for(&mut events, "the acknowledgement", |m| {
        m["method"] == "notifications/subscriptions/acknowledged"
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    eprintln!("acknowledged: {ack}");
    let honoured = &ack["params"]["notifications"];
    assert_eq!(honoured["toolsListChanged"], true, "{ack}");
    let uris = honoured["resourceSubscriptions"].to_string();
    assert!(
        uris.contains("mo+mem://news") && uris.contains(ev_uri),
        "{ack}\n{}",
        gw.logs()
    );
    assert!(!uris.contains("nobody"), "{ack}");
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-1"
    );
    // The modern upstream announces: the client hears it, prefixed, tagged with its id.
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "mo__announce", "arguments": {"uri": "mem://news"}, "_meta": meta}});
    let done = post_with(
        &gw.endpoint,
        None,
        &call,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "mo__announce"),
        ],
    )
    .await?;
    assert_eq!(done.response()["result"]["content"][0]["text"], "announced");
    // Both notifications arrive, in whichever order: prefixed, tagged with the client's id.
    let mut heard = Vec::new();
    while heard.len() < 2 {
        let (_, m) = wait_for(
            &mut events,
            "the list change and the resource update",
            |m| {
                m["method"] == "notifications/resources/updated"
                    || m["method"] == "notifications/tools/list_changed"
            },
        )
        .await?;
        assert_eq!(
            m["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "sub-1",
            "{m}"
        );
        heard.push(m);
    }
    let updated = heard
        .iter()
        .find(|m| m["method"] == "notifications/resources/updated")
        .ok_or_else(|| anyhow::anyhow!("no update in {heard:?}"))?;
    assert_eq!(updated["params"]["uri"], "mo+mem://news", "{updated}");
    assert!(
        heard
            .iter()
            .any(|m| m["method"] == "notifications/tools/list_changed"),
        "{heard:?}"
    );
    task.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_hears_only_what_the_clients_rules_allow() -> anyhow::Result<()> {
    use switchboard_e2e::peers::DualEraServer;
    use switchboard_e2e::raw::{follow, wait_for};
    let mo = DualEraServer::modern_only("modern").await?;
    let py = DualEraServer::start().await?;
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n  stateless_clients: true\nauth:\n  clients:\n    - name: ci\n      api_key: {{header: x-api-key, keys: [\"ci-key-0123456789\"]}}\n  rules:\n    - clients: [ci]\n      allow: {{upstreams: [mo, py], resources: [\"mo+mem://open/*\", \"py+*\"]}}\n      deny: {{upstreams: [py]}}\nupstreams:\n  - name: mo\n    url: {}\n  - name: py\n    url: {}\n",
        mo.url(),
        py.url()
    );
    let gw = Gateway::start(&yaml).await?;
    let listen = |key: Option<&'static str>| {
        let endpoint = gw.endpoint.clone();
        async move {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen",
                "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"},
                    "notifications": {"toolsListChanged": true, "resourceSubscriptions":
                        ["mo+mem://open/a", "mo+mem://closed/b", "py+mem://c"]}}});
            let mut req = reqwest::Client::new()
                .post(&endpoint)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "subscriptions/listen");
            if let Some(k) = key {
                req = req.header("x-api-key", k);
            }
            req.body(body.to_string()).send().await
        }
    };
    // Without credentials: refused by the filter before anything is asked.
    assert_eq!(listen(None).await?.status(), 401);
    let resp = listen(Some("ci-key-0123456789")).await?;
    anyhow::ensure!(
        resp.status() == 200,
        "HTTP {}: {}
{}",
        resp.status(),
        resp.text().await?,
        gw.logs()
    );
    let (task, mut events) = follow(resp);
    let (_, ack) = wait_for(&mut events, "the acknowledgement", |m| {
        m["method"] == "notifications/subscriptions/acknowledged"
    })
    .await?;
    // py is denied as an upstream, mem://closed is not a resource ci may read.
    assert_eq!(
        ack["params"]["notifications"]["resourceSubscriptions"],
        json!(["mo+mem://open/a"]),
        "{ack}\n{}",
        gw.logs()
    );
    task.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_client_reuses_one_session_at_a_2025_upstream() -> anyhow::Result<()> {
    use switchboard_e2e::raw::post_with;
    let a = RmcpServer::start("a").await?;
    // rmcp speaks both eras; pinned to 2025 here, as a 2025-only upstream is spoken to.
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n  stateless_clients: true\nupstreams:\n  - name: a\n    url: {}\n    protocol: legacy\n",
        a.url()
    );
    let gw = Gateway::start(&yaml).await?;
    let call = |n: i64| {
        json!({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {
            "name": "a__add", "arguments": {"a": n, "b": 1},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}}}})
    };
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "a__add"),
    ];
    for n in 1..=3 {
        let answer = post_with(&gw.endpoint, None, &call(n), &headers).await?;
        assert_eq!(
            answer.response()["result"]["content"][0]["text"],
            (n + 1).to_string(),
            "{:?}\n{}",
            answer.messages,
            gw.logs()
        );
    }
    // One handshake (initialize, notifications/initialized), then three calls in that
    // session; nothing closed between requests.
    assert_eq!(a.method_count("POST"), 5, "{}", gw.logs());
    assert_eq!(a.method_count("DELETE"), 0);
    Ok(())
}
