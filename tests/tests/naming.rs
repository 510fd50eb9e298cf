//! Pagination through the gateway's sealed cursor, naming controls and the protocol-version
//! header, through real Envoy with real rmcp peers.

use serde_json::{Value, json};
use std::collections::HashMap;
use switchboard_e2e::peers::{Everything, RmcpServer};
use switchboard_e2e::{Gateway, call_text, connect, python_client, raw};

fn gateway_yaml(top: &str, upstreams: &[(&str, String, &str)]) -> String {
    let mut y = format!("server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n{top}upstreams:\n");
    for (name, url, extra) in upstreams {
        y.push_str(&format!("  - name: {name}\n    url: {url}\n{extra}"));
    }
    y
}

fn names(v: &Value) -> Vec<String> {
    v["result"]["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_with_small_pages_sees_every_tool_exactly_once() -> anyhow::Result<()> {
    let big = RmcpServer::start_paged(23, 5).await?;
    let small = RmcpServer::start_paged(7, 3).await?;
    let alpha = RmcpServer::start("alpha").await?;
    let gw = Gateway::start(&gateway_yaml(
        "",
        &[
            ("big", big.url(), ""),
            ("small", small.url(), ""),
            ("alpha", alpha.url(), ""),
        ],
    ))
    .await?;
    let session = raw::initialize(&gw.endpoint).await?;

    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        anyhow::ensure!(pages <= 20, "the cursor never ended");
        let mut req = json!({"jsonrpc": "2.0", "id": pages, "method": "tools/list"});
        if let Some(c) = &cursor {
            req["params"] = json!({"cursor": c});
        }
        let a = raw::post(&gw.endpoint, Some(&session), &req).await?;
        for n in names(a.response()) {
            *seen.entry(n).or_default() += 1;
        }
        match a.response()["result"]["nextCursor"].as_str() {
            Some(c) => {
                assert!(c.starts_with("sbc1."), "{c}");
                cursor = Some(c.to_string());
            }
            None => break,
        }
    }
    assert_eq!(pages, 5, "the biggest upstream needs 5 pages");
    assert_eq!(seen.len(), 23 + 7 + 3, "{seen:?}");
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    assert!(seen.contains_key("big__tool_022") && seen.contains_key("small__tool_006"));

    // A forged cursor is refused.
    let a = raw::post(&gw.endpoint, Some(&session), &json!({"jsonrpc": "2.0", "id": 99, "method": "tools/list", "params": {"cursor": "sbc1.Zm9yZ2Vk"}})).await?;
    assert_eq!(a.response()["error"]["code"], -32602);

    // rmcp's client follows the cursor by itself and gets the same list.
    let client = connect(&gw.endpoint).await?;
    let all = client.list_all_tools().await?;
    assert_eq!(all.len(), 33);
    assert_eq!(
        call_text(&client, "alpha__whoami", json!({})).await?,
        "alpha"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_filters_prefix_mode_and_the_version_header() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    // A single upstream with prefix_mode when_needed: names stay as the upstream has them,
    // and a filter hides `slow`.
    let gw = Gateway::start(&gateway_yaml(
        "aggregation:\n  prefix_mode: when_needed\n",
        &[(
            "alpha",
            alpha.url(),
            "    tools:\n      exclude: [\"sl*\"]\n",
        )],
    ))
    .await?;
    let client = connect(&gw.endpoint).await?;
    let mut tools: Vec<String> = client
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    tools.sort();
    assert_eq!(tools, ["add", "whoami"]);
    assert_eq!(call_text(&client, "whoami", json!({})).await?, "alpha");
    let session = raw::initialize(&gw.endpoint).await?;
    let a = raw::post(
        &gw.endpoint,
        Some(&session),
        &raw::call(json!(1), "slow", json!({"ms": 1})),
    )
    .await?;
    assert_eq!(
        a.response()["error"]["code"],
        -32602,
        "a filtered tool cannot be called: {a:?}"
    );

    // MCP-Protocol-Version must be one the gateway supports (400 only for others, as the
    // specification says), not necessarily the session's (raw::initialize negotiates
    // 2025-06-18).
    for (version, status) in [
        ("2025-06-18", 200),
        ("2025-03-26", 200),
        ("9999-01-01", 400),
    ] {
        let a = raw::post_with(
            &gw.endpoint,
            Some(&session),
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
            &[("mcp-protocol-version", version)],
        )
        .await?;
        assert_eq!(a.status, status, "{version}: {a:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_client_runs_every_scenario_through_the_gateway() -> anyhow::Result<()> {
    let big = RmcpServer::start_paged(12, 5).await?;
    let alpha = RmcpServer::start("alpha").await?;
    let everything = Everything::start().await?;
    let notes = RmcpServer::start_full(rmcp::model::ProtocolVersion::KNOWN_VERSIONS).await?;
    let gw = Gateway::start(&gateway_yaml(
        "",
        &[
            ("big", big.url(), ""),
            ("alpha", alpha.url(), ""),
            ("ev", everything.url(), ""),
            ("notes", notes.url(), ""),
        ],
    ))
    .await?;
    let plan = json!({
        "calls": [{"name": "alpha__add", "args": {"a": 40, "b": 2}}, {"name": "ev__echo", "args": {"message": "py"}}],
        "prompt": "ev__args-prompt", "prompt_args": {"city": "Lyon"},
        "resources": true,
        "sample": {"tool": "ev__trigger-sampling-request", "args": {"prompt": "hi"}},
        "elicit": {"tool": "ev__trigger-elicitation-request"},
        "log_level": "debug",
        "complete": {"prompt": "ev__completable-prompt", "argument": "department", "value": "Eng"},
        "subscribe": {"uri": "ev+demo://resource/static/document/architecture.md", "trigger": "ev__toggle-subscriber-updates"},
    });
    let url = gw.endpoint.clone();
    let seen = tokio::task::spawn_blocking(move || python_client(&url, &plan)).await??;
    assert_eq!(seen["server"], "switchboard", "{seen}");
    let tools: Vec<&str> = seen["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(seen["tool_pages"], 3, "{seen}");
    assert_eq!(
        tools.iter().filter(|t| t.starts_with("big__")).count(),
        12,
        "{tools:?}"
    );
    let unique: std::collections::HashSet<&&str> = tools.iter().collect();
    assert_eq!(unique.len(), tools.len(), "every tool once: {tools:?}");
    assert_eq!(seen["calls"][0]["text"], "42");
    assert!(
        seen["calls"][1]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("py")
    );
    assert!(
        seen["prompt"].as_str().unwrap_or_default().contains("Lyon"),
        "{seen}"
    );
    let first = seen["resources"][0].as_str().unwrap_or_default();
    assert!(first.starts_with("ev+"), "{seen}");
    assert_eq!(seen["read_uri"], first);
    // Sampling requested by an upstream inside a call, answered by the Python client.
    assert!(
        seen["sampled"]
            .as_str()
            .unwrap_or_default()
            .contains("sampled by python"),
        "{seen}"
    );
    assert_eq!(seen["log_level_set"], true);
    // ... and the level reached an upstream that logs, not only an answer the gateway made.
    let asked = notes
        .notifications
        .lock()
        .map(|n| n.clone())
        .unwrap_or_default();
    assert!(asked.contains(&"set_level:debug".to_string()), "{asked:?}");
    // Elicitation requested by an upstream inside a call, answered by the Python client.
    assert!(
        seen["elicited"]
            .as_str()
            .unwrap_or_default()
            .contains("- Name: Ada"),
        "{seen}"
    );
    assert!(
        seen["completions"].as_array().is_some_and(|v| v
            .iter()
            .any(|c| c.as_str().is_some_and(|c| c.starts_with("Eng")))),
        "{seen}"
    );
    // A resource update on the merged GET stream, with the prefixed URI.
    assert_eq!(
        seen["updated"][0], "ev+demo://resource/static/document/architecture.md",
        "{seen}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_longer_than_64_characters_are_shortened_and_still_callable() -> anyhow::Result<()> {
    let long = RmcpServer::start_paged_long(7, 3).await?;
    let gw = Gateway::start(&gateway_yaml("", &[("verbose", long.url(), "")])).await?;
    let client = connect(&gw.endpoint).await?;
    let tools = client.list_all_tools().await?;
    assert_eq!(tools.len(), 7);
    for t in &tools {
        assert!(t.name.len() <= 64, "{}", t.name);
        assert!(t.name.starts_with("verbose__tool_"), "{}", t.name);
    }
    // Calling a shortened name reaches the tool with its real name (found on the upstream's
    // second page here).
    let shown = tools
        .iter()
        .find(|t| t.name.starts_with("verbose__tool_005"))
        .map(|t| t.name.to_string())
        .unwrap_or_default();
    let real = format!("tool_005_{}", "x".repeat(71));
    assert_eq!(call_text(&client, &shown, json!({})).await?, real);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_lists_spare_the_upstream_until_it_says_they_changed() -> anyhow::Result<()> {
    let paged = RmcpServer::start_paged(3, 10).await?;
    let gw = Gateway::start(&gateway_yaml(
        "",
        &[("paged", paged.url(), "    cache: 30s\n")],
    ))
    .await?;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let (_, first) = raw::initialize_with(&gw.endpoint, json!({})).await?;
    assert_eq!(
        names(
            raw::post(&gw.endpoint, Some(&first), &list)
                .await?
                .response()
        )
        .len(),
        3
    );

    // Later lists, new connections (so both Envoy workers) and a second session: from the cache.
    let (_, second) = raw::initialize_with(&gw.endpoint, json!({})).await?;
    let before = paged.request_count();
    for session in [&first, &second, &first, &second, &first, &second] {
        let a = raw::post(&gw.endpoint, Some(session), &list).await?;
        assert_eq!(
            names(a.response()),
            ["paged__tool_000", "paged__tool_001", "paged__tool_002"]
        );
    }
    assert_eq!(
        paged.request_count(),
        before,
        "the cached lists reached the upstream"
    );

    // The upstream says its tools changed (on its own stream, which the merged GET carries):
    // the next list goes to it again.
    let stream = reqwest::Client::new()
        .get(&gw.endpoint)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &first)
        .send()
        .await?;
    let (_task, mut events) = raw::follow(stream);
    switchboard_e2e::eventually(
        std::time::Duration::from_secs(10),
        "the bridge to follow the upstream",
        || {
            let gw = &gw;
            async move {
                gw.stat("cluster.upstream-paged-stream.upstream_rq_active")
                    .await
                    .filter(|n| *n >= 1)
            }
        },
    )
    .await?;
    let a = raw::post(
        &gw.endpoint,
        Some(&first),
        &raw::call(json!(2), "paged__change", json!({})),
    )
    .await?;
    assert_eq!(
        a.response()["result"]["content"][0]["text"],
        "changed",
        "{a:?}"
    );
    raw::wait_for(&mut events, "tools/list_changed", |m| {
        m["method"] == "notifications/tools/list_changed"
    })
    .await?;
    let before = paged.request_count();
    raw::post(&gw.endpoint, Some(&second), &list).await?;
    assert_eq!(
        paged.request_count(),
        before + 1,
        "a changed list is asked for again\n{}",
        gw.logs()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_notifications_reach_every_upstream_of_the_session() -> anyhow::Result<()> {
    let one = RmcpServer::start_paged(2, 10).await?;
    let two = RmcpServer::start_paged(2, 10).await?;
    let gw = Gateway::start(&gateway_yaml(
        "",
        &[("one", one.url(), ""), ("two", two.url(), "")],
    ))
    .await?;
    let (_, session) =
        raw::initialize_with(&gw.endpoint, json!({"roots": {"listChanged": true}})).await?;
    for body in [
        json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99, "reason": "user"}}),
    ] {
        let a = raw::post(&gw.endpoint, Some(&session), &body).await?;
        assert_eq!(a.status, 202, "{a:?}");
    }
    for upstream in [&one, &two] {
        let seen = switchboard_e2e::eventually(
            std::time::Duration::from_secs(10),
            "both notifications upstream",
            || {
                let n = upstream
                    .notifications
                    .lock()
                    .map(|n| n.clone())
                    .unwrap_or_default();
                async move { (n.len() >= 2).then_some(n) }
            },
        )
        .await?;
        assert_eq!(seen, ["roots_list_changed", "cancelled:99"]);
    }
    Ok(())
}

/// Issue 14, item 8: with a prefix so long that a shortened name's 55-character head holds
/// no separator, every tool is still callable by the name the list gave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_shortened_behind_a_58_character_prefix_are_callable() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let beta = RmcpServer::start("beta").await?;
    let long = format!("p{}", "x".repeat(57));
    assert_eq!(long.len(), 58);
    let gw = Gateway::start(&gateway_yaml(
        "",
        &[
            ("alpha", alpha.url(), &format!("    tool_prefix: {long}\n")),
            ("beta", beta.url(), ""),
        ],
    ))
    .await?;
    let session = raw::initialize(&gw.endpoint).await?;
    let listed = raw::post(
        &gw.endpoint,
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await?;
    let tools = names(listed.response());
    let whoami = tools
        .iter()
        .find(|t| t.starts_with(&long[..20]) && t.contains('~'))
        .ok_or_else(|| anyhow::anyhow!("no shortened name: {tools:?}"))?
        .clone();
    assert!(!whoami[..55].contains("__"), "{whoami}");
    for name in tools.iter().filter(|t| t.starts_with(&long[..20])) {
        let args = if name.ends_with("add") {
            json!({"a": 1, "b": 2})
        } else {
            json!({"ms": 1})
        };
        let called = raw::post(
            &gw.endpoint,
            Some(&session),
            &raw::call(json!(2), name, args),
        )
        .await?;
        assert!(
            called.response()["result"]["content"][0]["text"].is_string(),
            "{name}: {called:?}"
        );
    }
    let client = connect(&gw.endpoint).await?;
    assert!(
        ["alpha", "3", "done"].contains(&call_text(&client, &whoami, json!({})).await?.as_str())
    );
    assert_eq!(call_text(&client, "beta__whoami", json!({})).await?, "beta");
    Ok(())
}
