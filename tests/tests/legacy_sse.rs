//! Old clients on the deprecated HTTP+SSE transport (the Python SDK's SSE client) through the
//! gateway's `/sse` endpoint and an upstream's own `/upstreams/<name>/sse`, calling tools of
//! an HTTP upstream and of a stdio upstream.

use serde_json::json;
use switchboard_e2e::peers::RmcpServer;
use switchboard_e2e::{Gateway, python_client, repo_root};

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
