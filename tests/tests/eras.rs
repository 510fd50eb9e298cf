//! The newest SDK of the 2026-07-28 era (the Python SDK's `Client`, mcp 2.3.0) against the
//! gateway, which speaks the 2025 revisions (issue 16 adds 2026-07-28). A client in `auto`
//! mode probes `server/discover`, is refused as by any 2025 server, and falls back to the
//! handshake; a client pinned to 2026-07-28 fails with the gateway's 400. The gateway must
//! not answer a 2026 request with the new revision's -32022: that error says "a modern server
//! that does not speak your version", and stops a client's fallback.

use serde_json::{Value, json};
use switchboard_e2e::peers::RmcpServer;
use switchboard_e2e::{CLIENT_TIMEOUT, Gateway, output_within, repo_root};

fn modern_client(url: &str, mode: &str, calls: &Value) -> anyhow::Result<Value> {
    let python = repo_root().join(".tools/venv/bin/python");
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(repo_root().join("tests/clients/python_modern_client.py"))
        .arg(url)
        .arg(mode)
        .arg(calls.to_string());
    let out = output_within(cmd, CLIENT_TIMEOUT)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "the client script failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_str(stdout.trim())?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_era_client_in_auto_mode_falls_back_to_the_handshake_through_the_gateway()
-> anyhow::Result<()> {
    let a = RmcpServer::start("a").await?;
    let b = RmcpServer::start("b").await?;
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nupstreams:\n  - name: a\n    url: {}\n  - name: b\n    url: {}\n",
        a.url(),
        b.url()
    );
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
