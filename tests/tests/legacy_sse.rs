//! Old clients on the deprecated HTTP+SSE transport (the Python SDK's SSE client) through the
//! gateway's `/sse` endpoint and an upstream's own `/upstreams/<name>/sse`, calling tools of
//! an HTTP upstream and of a stdio upstream.

use serde_json::json;
use switchboard_e2e::peers::RmcpServer;
use switchboard_e2e::{Gateway, eventually, python_client, repo_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sse_client_calls_http_and_stdio_upstreams_through_sse() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n  transports: [streamable_http, sse]\nupstreams:\n  - name: alpha\n    url: {}\n  - name: py\n    type: stdio\n    command: {}\n    args: [\"{}\"]\n    capability_discovery_delay: 0s\n",
        alpha.url(),
        repo_root().join(".tools/venv/bin/python").display(),
        repo_root().join("tests/servers/python_stdio_server.py").display(),
    ))
    .await?;
    let base = gw.base();

    // The aggregated endpoint, prefixes and all.
    let url = format!("{base}/sse");
    let plan = json!({
        "transport": "sse",
        "calls": [{"name": "alpha__add", "args": {"a": 40, "b": 2}}, {"name": "py__echo", "args": {"text": "via sse"}}],
    });
    let seen = tokio::task::spawn_blocking(move || python_client(&url, &plan))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    assert_eq!(seen["server"], "switchboard", "{seen}");
    let tools = seen["tools"].to_string();
    assert!(
        tools.contains("alpha__add") && tools.contains("py__echo"),
        "{tools}"
    );
    assert_eq!(seen["calls"][0]["text"], "42", "{seen}");
    assert_eq!(seen["calls"][1]["text"], "via sse", "{seen}");

    // One upstream on its own, unprefixed; the gateway stands in front of it.
    let url = format!("{base}/upstreams/py/sse");
    let plan = json!({"transport": "sse", "calls": [{"name": "echo", "args": {"text": "direct"}}]});
    let seen = tokio::task::spawn_blocking(move || python_client(&url, &plan))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    assert_eq!(seen["calls"][0]["text"], "direct", "{seen}");
    assert!(seen["tools"].to_string().contains("\"recall\""), "{seen}");
    Ok(())
}

/// Issue 14, item 6: when a legacy `/sse` client goes away, everything the bridge opened for
/// it goes too: no upstream stream is opened again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_stops_following_upstreams_when_a_legacy_client_leaves() -> anyhow::Result<()> {
    use std::time::Duration;
    // server-everything answers a stream of an ended session with 400 (rmcp: 404).
    let everything = switchboard_e2e::peers::Everything::start().await?;
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n  transports: [streamable_http, sse]\nupstreams:\n  - name: ev\n    url: {}\n",
        everything.url(),
    ))
    .await?;
    let base = gw.base();
    // An old client: the stream, initialize, initialized; then it waits a little and leaves.
    // The streams the bridge opens to the upstream, as Envoy counts them on its stream cluster.
    let gets = || {
        let gw = &gw;
        async move {
            gw.stat("cluster.upstream-ev-stream.upstream_rq_total")
                .await
                .unwrap_or(0)
        }
    };
    {
        let mut stream = reqwest::Client::new()
            .get(format!("{base}/sse"))
            .header("accept", "text/event-stream")
            .send()
            .await?;
        let mut text = String::new();
        while !text.contains("\n\n") {
            let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
                .await??
                .ok_or_else(|| anyhow::anyhow!("the stream ended"))?;
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        let endpoint = text
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .map(|d| format!("{base}{}", d.trim()))
            .ok_or_else(|| anyhow::anyhow!("no endpoint: {text}"))?;
        let post = |body: serde_json::Value| {
            reqwest::Client::new()
                .post(&endpoint)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
        };
        post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}}))
        .await?;
        // The answer comes on the stream; then initialized starts the server-to-client stream.
        while !text.contains("\"result\"") {
            let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
                .await??
                .ok_or_else(|| anyhow::anyhow!("the stream ended"))?;
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await?;
        eventually(
            Duration::from_secs(10),
            "the upstream's stream to be followed",
            || async { (gets().await >= 1).then_some(()) },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    }
    // Gone. Whatever was open closes; nothing is opened again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_leaving = gets().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        gets().await,
        after_leaving,
        "the bridge kept opening the upstream's stream after the client left\n{}",
        gw.logs()
    );
    assert!(
        !gw.logs().contains("upstream event stream refused"),
        "{}",
        gw.logs()
    );
    Ok(())
}
