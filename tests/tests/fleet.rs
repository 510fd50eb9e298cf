//! `switchboard serve` + `switchboard bootstrap` for an Envoy that switchboard does not start,
//! and how Envoy's refusals (NACKs) are reported.

use serde_json::json;
use std::time::Duration;
use switchboard_e2e::peers::RmcpServer;
use switchboard_e2e::{Background, Envoy, Gateway, call_text, connect, eventually, raw, wasm_path};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_started_from_the_printed_bootstrap_serves_mcp() -> anyhow::Result<()> {
    let upstream = RmcpServer::start("fleet").await?;
    let notes = RmcpServer::start_full(rmcp::model::ProtocolVersion::KNOWN_VERSIONS).await?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  listen: 127.0.0.1:0\nupstreams:\n  - name: fleet\n    url: {}\n  - name: notes\n    url: {}\n",
            upstream.url(),
            notes.url()
        ),
    )?;
    let wasm = wasm_path();
    let serve = Background::spawn(&[
        "serve",
        "-c",
        &config.to_string_lossy(),
        "--xds",
        "127.0.0.1:0",
        "--wasm",
        &wasm.to_string_lossy(),
        "--bridge",
        "127.0.0.1:0",
    ])?;
    let xds = serve.line("xDS: ").await?;
    serve.line("bridge: ").await?;

    let (envoy, listener) = Envoy::from_bootstrap(&xds, "edge-1").await?;

    let client = connect(&format!("http://{listener}/mcp")).await?;
    assert_eq!(
        call_text(&client, "fleet__whoami", serde_json::json!({})).await?,
        "fleet"
    );
    client.cancel().await?;

    // The merged GET stream, served by the bridge `serve` runs, reading the upstreams'
    // streams back through this Envoy.
    let ep = format!("http://{listener}/mcp");
    let session = raw::initialize(&ep).await?;
    let subscribe = json!({"jsonrpc": "2.0", "id": 1, "method": "resources/subscribe", "params": {"uri": "notes+note://1"}});
    let a = raw::post(&ep, Some(&session), &subscribe).await?;
    assert!(a.response()["result"].is_object(), "{a:?}");
    let stream = reqwest::Client::new()
        .get(&ep)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await?;
    assert_eq!(stream.status(), 200, "{}", serve.stderr.text());
    let (_, mut events) = raw::follow(stream);
    // The upstream's own stream may open after the first touch: touch until an update comes.
    let mut updated = None;
    for attempt in 0..15 {
        raw::post(
            &ep,
            Some(&session),
            &raw::call(json!(attempt), "notes__touch", json!({})),
        )
        .await?;
        let wait = raw::wait_for(&mut events, "update", |m| {
            m["method"] == "notifications/resources/updated"
        });
        if let Ok(Ok(u)) = tokio::time::timeout(Duration::from_secs(1), wait).await {
            updated = Some(u);
            break;
        }
    }
    let updated = updated.ok_or_else(|| {
        anyhow::anyhow!(
            "no resource update on the stream\n{}\n{}",
            serve.stderr.text(),
            envoy.log.text()
        )
    })?;
    assert_eq!(updated.1["params"]["uri"], "notes+note://1");
    assert!(
        serve.stderr.contains("node=edge-1") || serve.stderr.contains("node=\"edge-1\""),
        "{}",
        serve.stderr.text()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_envoy_refuses_is_logged_with_its_error_and_traffic_continues()
-> anyhow::Result<()> {
    let upstream = RmcpServer::start("alpha").await?;
    let base = |listen: &str| {
        format!(
            "server:\n  listen: {listen}\n  admin: 127.0.0.1:0\nupstreams:\n  - name: alpha\n    url: {}\n",
            upstream.url()
        )
    };
    let gw = Gateway::start(&base("127.0.0.1:0")).await?;
    let client = connect(&gw.endpoint).await?;

    // Valid YAML that Envoy cannot apply: a listener cannot move to another address in place.
    let busy = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = busy.local_addr()?.port();
    gw.write_config(&base(&format!("127.0.0.1:{port}")))?;
    let err = gw.stderr.clone();
    eventually(Duration::from_secs(20), "the NACK to be logged", || {
        let nacked = err.text().lines().any(|l| {
            l.contains("envoy REJECTED") && l.contains("Listener") && l.contains("error=")
        });
        async move { nacked.then_some(()) }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    assert_eq!(
        call_text(&client, "alpha__whoami", serde_json::json!({})).await?,
        "alpha"
    );
    Ok(())
}
