//! The merged server-to-client stream (GET /mcp), served by the bridge inside `switchboard
//! run`, through real Envoy, with server-everything sending notifications on its own stream.

use serde_json::{Value, json};
use std::time::Duration;
use switchboard_e2e::peers::{Everything, RmcpServer};
use switchboard_e2e::{Gateway, eventually, raw};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_merged_stream_carries_every_upstreams_notifications() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let everything = Everything::start().await?;
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nupstreams:\n  - name: alpha\n    url: {}\n  - name: ev\n    url: {}\n",
        alpha.url(),
        everything.url()
    ))
    .await?;
    let ep = gw.endpoint.clone();
    let (init, session) = raw::initialize_with(&ep, json!({})).await?;
    // What travels on the stream is advertised now.
    let caps = &init.response()["result"]["capabilities"];
    assert_eq!(caps["resources"]["subscribe"], true, "{caps}");
    assert_eq!(caps["tools"]["listChanged"], true, "{caps}");

    let resp = open_stream(&ep, &session, None).await?;
    assert!(
        resp.headers()["content-type"]
            .to_str()?
            .starts_with("text/event-stream")
    );
    let (first, mut events) = raw::follow(resp);

    // Logging from one upstream, resource updates (with the prefixed URI) from the same.
    let uri = "ev+demo://resource/static/document/architecture.md";
    let a = raw::post(&ep, Some(&session), &json!({"jsonrpc": "2.0", "id": 1, "method": "resources/subscribe", "params": {"uri": uri}})).await?;
    assert!(a.response()["result"].is_object(), "{a:?}");
    raw::post(
        &ep,
        Some(&session),
        &raw::call(json!(2), "ev__toggle-simulated-logging", json!({})),
    )
    .await?;
    raw::post(
        &ep,
        Some(&session),
        &raw::call(json!(3), "ev__toggle-subscriber-updates", json!({})),
    )
    .await?;
    let (_, log) = raw::wait_for(&mut events, "log message", |m| {
        m["method"] == "notifications/message"
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    assert!(log["params"]["level"].is_string(), "{log}");
    let (id, update) = raw::wait_for(&mut events, "resource update", |m| {
        m["method"] == "notifications/resources/updated"
    })
    .await?;
    assert_eq!(update["params"]["uri"], uri, "{update}");
    let id = id.unwrap_or_default();
    assert!(!id.is_empty(), "merged events carry resumable ids");

    // A client that reconnects (closing its stream first) with Last-Event-ID: each upstream
    // is asked to resume from its own last event id, which the merged id carries.
    first.abort();
    drop(events);
    release(&gw).await?;
    let position: Value = serde_json::from_slice(&base64_url(&id)?)?;
    let ev_last = position["ev"].as_str().unwrap_or_default().to_string();
    assert!(!ev_last.is_empty(), "{position}");
    let resumed = open_stream(&ep, &session, Some(&id)).await?;
    let log = everything.log.clone();
    eventually(
        Duration::from_secs(10),
        "server-everything to be asked to resume",
        || {
            let asked = log.contains(&format!(
                "Client reconnecting with Last-Event-ID: {ev_last}"
            ));
            async move { asked.then_some(()) }
        },
    )
    .await?;
    // server-everything's example event store cannot resume its standalone stream (it hands
    // the SDK an event id where a stream id belongs), so continue with a fresh stream.
    drop(resumed);
    release(&gw).await?;
    let (_again_task, mut again) = raw::follow(open_stream(&ep, &session, None).await?);
    raw::wait_for(&mut again, "log message on a new stream", |m| {
        m["method"] == "notifications/message"
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}\n{}", gw.logs(), everything.log.text()))?;

    // Without a session: 400; with a forged one: 404.
    let r = reqwest::Client::new()
        .get(&ep)
        .header("accept", "text/event-stream")
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    let r = reqwest::Client::new()
        .get(&ep)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", "sb1.Zm9v")
        .send()
        .await?;
    assert_eq!(r.status(), 404);
    Ok(())
}

async fn open_stream(
    ep: &str,
    session: &str,
    last_event_id: Option<&str>,
) -> anyhow::Result<reqwest::Response> {
    let mut req = reqwest::Client::new()
        .get(ep)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let resp = req.send().await?;
    anyhow::ensure!(resp.status() == 200, "GET /mcp: HTTP {}", resp.status());
    Ok(resp)
}

/// Servers allow one stream per session: wait until Envoy shows the last one released.
async fn release(gw: &Gateway) -> anyhow::Result<()> {
    eventually(
        Duration::from_secs(10),
        "the stream to be released upstream",
        || async move {
            (gw.stat("cluster.upstream-ev-stream.upstream_rq_active")
                .await
                == Some(0))
            .then_some(())
        },
    )
    .await
}

fn base64_url(s: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s)?)
}
