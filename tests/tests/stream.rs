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
    // The bridge reads each upstream's stream through the gateway, whose event ids name the
    // upstream; the upstream is asked with its own.
    let ev_last = position["ev"]
        .as_str()
        .and_then(|id| id.strip_prefix("ev:"))
        .unwrap_or_default()
        .to_string();
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

/// Issue 14, item 2: edits of rules, CORS and upstreams reach Envoy without replacing the
/// listener (the filter's configuration by ECDS, routes by RDS), so open streams survive them:
/// the merged GET stream and a legacy `/sse` client keep working across the edits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_stay_open_across_edits_of_rules_cors_and_upstreams() -> anyhow::Result<()> {
    use tokio::io::AsyncBufReadExt;
    let alpha = RmcpServer::start("alpha").await?;
    let beta = RmcpServer::start("beta").await?;
    let everything = Everything::start().await?;
    let key = "a-client-key-0123456789";
    let yaml = |deny: &str, origin: &str, with_beta: bool| {
        let beta = if with_beta {
            format!("  - name: beta\n    url: {}\n", beta.url())
        } else {
            String::new()
        };
        format!(
            "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n  transports: [streamable_http, sse]\n  cors: {{origins: [\"{origin}\"]}}\nauth:\n  clients:\n    - name: ci\n      api_key: {{keys: [\"{key}\"]}}\n  rules:\n    - clients: [ci]\n      allow: {{upstreams: [\"*\"]}}\n      deny: {{tools: [\"{deny}\"]}}\nupstreams:\n  - name: alpha\n    url: {}\n  - name: ev\n    url: {}\n{beta}",
            alpha.url(),
            everything.url()
        )
    };
    let gw = Gateway::start(&yaml("alpha__slow", "https://a.example", false)).await?;
    let ep = gw.endpoint.clone();
    let base = gw.base();
    let auth = [("x-api-key", key)];
    // Envoy counts every change of its listener, in place or not; an edit must make none.
    let modified = || {
        let gw = &gw;
        async move {
            gw.stat("listener_manager.listener_modified")
                .await
                .unwrap_or(u64::MAX)
        }
    };
    assert_eq!(modified().await, 0, "{}", gw.logs());

    // The merged stream of a session.
    let (_, session) = raw::initialize_with_headers(&ep, &auth).await?;
    let resp = reqwest::Client::new()
        .get(&ep)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("x-api-key", key)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let (_task, mut events) = raw::follow(resp);
    // A legacy client: its stream, initialize, initialized.
    let legacy = reqwest::Client::new()
        .get(format!("{base}/sse"))
        .header("accept", "text/event-stream")
        .header("x-api-key", key)
        .send()
        .await?;
    let (tx, mut legacy_events) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut lines =
        tokio_util::io::StreamReader::new(futures::StreamExt::map(legacy.bytes_stream(), |c| {
            c.map_err(std::io::Error::other)
        }))
        .lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(data) = line.strip_prefix("data:") {
                let _ = tx.send(data.trim().to_string());
            }
        }
    });
    let messages = format!("{base}{}", next(&mut legacy_events, "endpoint").await?);
    let post = |body: Value| {
        let messages = messages.clone();
        async move {
            reqwest::Client::new()
                .post(&messages)
                .header("content-type", "application/json")
                .header("x-api-key", key)
                .body(body.to_string())
                .send()
                .await
        }
    };
    post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}}))
    .await?;
    next(&mut legacy_events, "the initialize answer").await?;
    post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await?;

    // Three edits: a rule, CORS, a new upstream; each in force before the next.
    for (deny, origin, with_beta) in [
        ("alpha__add", "https://a.example", false),
        ("alpha__add", "https://b.example", false),
        ("alpha__add", "https://b.example", true),
    ] {
        gw.write_config(&yaml(deny, origin, with_beta))?;
        let ep = ep.clone();
        eventually(Duration::from_secs(20), "the edit to be in force", || {
            let ep = ep.clone();
            async move {
                let (_, sid) = raw::initialize_with_headers(&ep, &auth).await.ok()?;
                let a = raw::post_with(
                    &ep,
                    Some(&sid),
                    &raw::call(json!(1), "alpha__add", json!({"a": 1, "b": 1})),
                    &auth,
                )
                .await
                .ok()?;
                let denied = a.response()["error"]["code"] == -32004;
                let listed = raw::post_with(
                    &ep,
                    Some(&sid),
                    &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
                    &auth,
                )
                .await
                .ok()?;
                let has_beta = listed.response().to_string().contains("beta__whoami");
                (denied && has_beta == with_beta).then_some(())
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    }

    // Longer than any drain of a replaced listener or filter chain (the harness runs Envoy with
    // a 1 s drain), then both streams still carry what they carry.
    tokio::time::sleep(Duration::from_secs(6)).await;
    raw::post_with(
        &ep,
        Some(&session),
        &raw::call(json!(3), "ev__toggle-simulated-logging", json!({})),
        &auth,
    )
    .await?;
    raw::wait_for(&mut events, "a log message after the edits", |m| {
        m["method"] == "notifications/message"
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    post(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "alpha__whoami", "arguments": {}}})).await?;
    loop {
        let m = next(&mut legacy_events, "the call's answer").await?;
        if m.contains("\"id\":4") {
            assert!(m.contains("alpha"), "{m}");
            break;
        }
    }
    assert_eq!(
        modified().await,
        0,
        "the listener was replaced\n{}",
        gw.logs()
    );
    Ok(())
}

/// The next `data:` of a legacy event stream, within 15 s.
async fn next(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    what: &str,
) -> anyhow::Result<String> {
    tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .map_err(|_| anyhow::anyhow!("no {what} on the legacy stream"))?
        .ok_or_else(|| anyhow::anyhow!("the legacy stream closed, waiting for {what}"))
}
