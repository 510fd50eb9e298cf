//! The audit log (Envoy's access log with what the filter learned) and the per-upstream and
//! per-tool metrics in Envoy's stats, through real Envoy.

use serde_json::{Value, json};
use std::time::Duration;
use switchboard_e2e::peers::RmcpServer;
use switchboard_e2e::{Gateway, eventually, raw};

const API_KEY: &str = "audit-key-0123456789abcdef";

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

async fn find(
    path: &std::path::Path,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let path = path.to_path_buf();
    eventually(Duration::from_secs(15), what, || {
        let found = lines(&path).into_iter().find(|l| f(l));
        async move { found }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mcp_request_leaves_an_audit_line_and_counts_in_the_stats() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let down = RmcpServer::start("down").await?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("audit.log");
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\naudit:\n  file: {}\nauth:\n  clients:\n    - name: ci\n      api_key: {{keys: [\"{API_KEY}\"]}}\n  rules:\n    - clients: [ci]\n      allow: {{upstreams: [alpha, down]}}\n      deny: {{tools: [alpha__slow]}}\nupstreams:\n  - name: alpha\n    url: {}\n  - name: down\n    url: {}\n",
        log.display(),
        alpha.url(),
        down.url()
    ))
    .await?;
    let ep = gw.endpoint.clone();
    let key = [("x-api-key", API_KEY)];
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let refused = raw::post(&ep, None, &init).await?;
    assert_eq!(refused.status, 401);
    let a = raw::post_with(&ep, None, &init, &key).await?;
    let sid = a.session_id().unwrap_or_default();
    // Tools get a metric series of their own once the gateway has listed them.
    let listed = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"});
    raw::post_with(&ep, Some(&sid), &listed, &key).await?;
    down.stop();
    for (id, tool) in [(1, "alpha__add"), (2, "alpha__slow"), (3, "down__whoami")] {
        let args = if tool == "alpha__add" {
            json!({"a": 1, "b": 2})
        } else {
            json!({"ms": 1})
        };
        raw::post_with(&ep, Some(&sid), &raw::call(json!(id), tool, args), &key).await?;
    }

    let ok = find(&log, "the audit line of alpha__add", |l| {
        l["name"] == "alpha__add"
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}\n{}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            gw.logs()
        )
    })?;
    assert_eq!(ok["identity"], "ci", "{ok}");
    assert_eq!(ok["method"], "tools/call");
    assert_eq!(ok["upstream"], "alpha");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["source"], "127.0.0.1");
    assert!(ok["class"].is_null(), "{ok}");
    assert!(
        ok["session"].as_str().is_some_and(|s| s.len() == 16),
        "{ok}"
    );
    assert!(
        ok["duration_ms"].is_number() && ok["bytes_sent"].is_number(),
        "{ok}"
    );
    let denied = find(&log, "the denied call", |l| l["name"] == "alpha__slow").await?;
    assert_eq!(
        (denied["rpc_error"].as_str(), denied["class"].as_str()),
        (Some("-32004"), Some("client")),
        "{denied}"
    );
    let unreachable = find(&log, "the call to the stopped upstream", |l| {
        l["name"] == "down__whoami"
    })
    .await?;
    assert_eq!(unreachable["class"], "upstream_connect", "{unreachable}");
    let unauthenticated = find(&log, "the 401", |l| l["status"] == 401).await?;
    assert_eq!(unauthenticated["class"], "client", "{unauthenticated}");
    let init_line = find(&log, "initialize", |l| l["method"] == "initialize").await?;
    assert_eq!(init_line["upstream"], "*", "{init_line}");
    // The merged stream: the client's GET, and the bridge's reading of alpha's own stream on
    // its behalf, told apart by `via`.
    let stream = reqwest::Client::new()
        .get(&ep)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("x-api-key", API_KEY)
        .send()
        .await?;
    assert_eq!(stream.status(), 200);
    // A line is written when its request ends: let the bridge open alpha's stream, then leave.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(stream);
    let relayed = find(&log, "the bridge's GET on the client's behalf", |l| {
        l["path"] == "/upstreams/alpha/mcp" && l["http_method"] == "GET"
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}
{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    })?;
    assert_eq!(
        (relayed["via"].as_str(), relayed["identity"].as_str()),
        (Some("bridge"), Some("ci")),
        "{relayed}"
    );
    let own = find(&log, "the client's GET", |l| {
        l["path"] == "/mcp" && l["http_method"] == "GET"
    })
    .await?;
    assert!(own["via"].is_null(), "{own}");
    // No secret in any line: neither the API key nor the session token.
    let text = std::fs::read_to_string(&log)?;
    assert!(!text.contains(API_KEY) && !text.contains(&sid), "{text}");

    // Metrics per upstream and per tool, with errors by class and a latency histogram.
    let stat = |name: &String| {
        let (gw, name) = (&gw, name.clone());
        async move { gw.stat(&name).await.unwrap_or(0) }
    };
    let all = reqwest::get(format!("{}/stats?filter=switchboard\\.", gw.admin))
        .await?
        .text()
        .await?;
    // The same counts on both data planes (labels on native; on wasm one stat per series,
    // whose labels the bootstrap's tag extraction takes back), the same Prometheus series.
    let [upstream_calls, add_calls, slow_client, down_connect] = [
        "switchboard.upstream_requests_total.upstream.alpha",
        "switchboard.tool_calls_total.upstream.alpha.tool.add",
        "switchboard.tool_errors_total.upstream.alpha.tool.slow.class.client",
        "switchboard.upstream_errors_total.upstream.down.class.upstream_connect",
    ]
    .map(switchboard_e2e::filter_stat);
    let bucket = "switchboard_upstream_request_duration_ms_bucket{upstream=\"alpha\"";
    let prom_add = "switchboard_tool_calls_total{upstream=\"alpha\",tool=\"add\"} 1";
    assert!(stat(&upstream_calls).await == 2, "{all}");
    assert_eq!(stat(&add_calls).await, 1, "{all}");
    assert_eq!(stat(&slow_client).await, 1, "{all}");
    assert_eq!(stat(&down_connect).await, 1, "{all}");
    // Histograms reach the admin interface at Envoy's next stats flush.
    let prometheus = eventually(Duration::from_secs(15), "the latency histogram", || {
        let admin = gw.admin.clone();
        async move {
            let text = reqwest::get(format!("{admin}/stats/prometheus"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            text.contains(bucket).then_some(text)
        }
    })
    .await
    .unwrap_or_default();
    assert!(
        prometheus.contains(bucket) && prometheus.contains(prom_add),
        "{}",
        prometheus
            .lines()
            .filter(|l| l.contains("switchboard"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // SIGHUP reopens the log: after a rotation, new lines go to a new file.
    std::fs::rename(&log, dir.path().join("audit.log.1"))?;
    switchboard_e2e::signal(gw.pid(), nix::sys::signal::Signal::SIGHUP);
    eventually(Duration::from_secs(15), "a new audit file", || {
        let (ep, log) = (ep.clone(), log.clone());
        async move {
            raw::post(
                &ep,
                None,
                &json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}),
            )
            .await
            .ok()?;
            log.exists().then_some(())
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    Ok(())
}
