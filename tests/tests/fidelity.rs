//! Every client → server method and every server → client request through the gateway, with
//! rmcp upstreams that complete, subscribe, elicit and sample, one of them on an older protocol
//! revision, driven by two independent clients (rmcp and the official Python SDK).

use rmcp::model::ProtocolVersion;
use serde_json::{Value, json};
use std::time::Duration;
use switchboard_e2e::peers::RmcpServer;
use switchboard_e2e::{Gateway, python_client};

fn gateway_yaml(upstreams: &[(&str, String)]) -> String {
    let mut y = "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nupstreams:\n".to_string();
    for (name, url) in upstreams {
        y.push_str(&format!("  - name: {name}\n    url: {url}\n"));
    }
    y
}

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> anyhow::Result<T> {
    Ok(serde_json::from_value(v)?)
}

fn record(server: &RmcpServer) -> Vec<String> {
    server
        .notifications
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default()
}

/// The `MCP-Protocol-Version` headers an upstream received after `initialize`.
fn versions_seen(server: &RmcpServer) -> Vec<String> {
    server
        .seen_headers()
        .iter()
        .filter_map(|h| h.get("mcp-protocol-version"))
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect()
}

// resources/subscribe is legacy in the newest revision (2026-07-28); the revisions the gateway
// speaks (up to 2025-11-25) have it.
#[allow(deprecated)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_upstreams_complete_subscribe_elicit_and_sample_for_an_rmcp_client()
-> anyhow::Result<()> {
    let full = RmcpServer::start_full(ProtocolVersion::KNOWN_VERSIONS).await?;
    // Speaks nothing newer than 2025-03-26, behind clients on newer revisions.
    let old = RmcpServer::start_full(ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_03_26))
        .await?;
    let gw = Gateway::start(&gateway_yaml(&[("full", full.url()), ("old", old.url())])).await?;
    let (client, seen) = switchboard_e2e::connect_rich(&gw.endpoint).await?;
    let negotiated = client
        .peer_info()
        .map(|i| i.protocol_version.to_string())
        .unwrap_or_default();

    // Prompts, with the prefix stripped on the way to the upstream.
    let prompts = client.list_prompts(None).await?;
    let names: Vec<&str> = prompts.prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["full__greet", "old__greet"]);
    let prompt = client
        .get_prompt(typed(
            json!({"name": "old__greet", "arguments": {"name": "Ada"}}),
        )?)
        .await?;
    assert_eq!(
        serde_json::to_value(&prompt.messages[0].content)?["text"],
        "Hello, Ada!"
    );

    // Completion of a prompt argument and of a resource-template argument.
    let completed = client
        .complete(typed(json!({
            "ref": {"type": "ref/prompt", "name": "full__greet"},
            "argument": {"name": "name", "value": "A"}
        }))?)
        .await?;
    assert_eq!(completed.completion.values, ["Ada", "Alan"]);
    let completed = client
        .complete(typed(json!({
            "ref": {"type": "ref/resource", "uri": "old+note://{id}"},
            "argument": {"name": "id", "value": "1"}
        }))?)
        .await?;
    assert_eq!(completed.completion.values, ["1", "10"]);
    assert!(record(&full).contains(&"complete:greet:name".to_string()));
    assert!(record(&old).contains(&"complete:note://{id}:id".to_string()));

    // Resources and templates carry the prefixed URIs; reading one reaches its upstream.
    let resources = client.list_resources(None).await?;
    let uris: Vec<&str> = resources.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "full+note://1",
            "full+note://2",
            "old+note://1",
            "old+note://2"
        ]
    );
    let templates = client.list_resource_templates(None).await?;
    assert_eq!(
        templates.resource_templates[1].uri_template,
        "old+note://{id}"
    );
    let read = client
        .read_resource(typed(json!({"uri": "full+note://2"}))?)
        .await?;
    let read = serde_json::to_value(&read.contents[0])?;
    assert_eq!(
        (read["uri"].as_str(), read["text"].as_str()),
        (Some("full+note://2"), Some("note 2"))
    );

    // Subscribe, get the update with the prefixed URI, unsubscribe.
    client
        .subscribe(typed(json!({"uri": "full+note://1"}))?)
        .await?;
    assert!(record(&full).contains(&"subscribe:note://1".to_string()));
    assert_eq!(call(&client, "full__touch", json!({})).await?, "touched 1");
    tokio::time::timeout(Duration::from_secs(15), async {
        while seen.updates.lock().map(|u| u.is_empty()).unwrap_or(true) {
            seen.updated.notified().await;
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("no resources/updated reached the client\n{}", gw.logs()))?;
    assert_eq!(
        seen.updates.lock().map(|u| u.clone()).unwrap_or_default(),
        ["full+note://1"]
    );
    client
        .unsubscribe(typed(json!({"uri": "full+note://1"}))?)
        .await?;
    assert!(record(&full).contains(&"unsubscribe:note://1".to_string()));
    assert_eq!(call(&client, "full__touch", json!({})).await?, "touched 0");

    // Requests the upstream sends inside a call reach this client and go back to it.
    assert_eq!(
        call(&client, "full__sample", json!({})).await?,
        "sampled by rmcp"
    );
    assert_eq!(call(&client, "full__ask", json!({})).await?, "hello Ada");

    // The older upstream works, and hears its own revision, not the client's.
    assert_eq!(
        call(&client, "old__add", json!({"a": 40, "b": 2})).await?,
        "42"
    );
    let old_versions = versions_seen(&old);
    assert!(!old_versions.is_empty());
    assert!(
        old_versions.iter().all(|v| v == "2025-03-26"),
        "{old_versions:?}"
    );
    let full_versions = versions_seen(&full);
    assert!(
        !full_versions.is_empty()
            && full_versions.iter().all(|v| *v == negotiated)
            && negotiated != "2025-03-26",
        "{negotiated}: {full_versions:?}"
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_client_completes_subscribes_is_sampled_and_elicited_by_rmcp_upstreams()
-> anyhow::Result<()> {
    let full = RmcpServer::start_full(ProtocolVersion::KNOWN_VERSIONS).await?;
    let old = RmcpServer::start_full(ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_03_26))
        .await?;
    let gw = Gateway::start(&gateway_yaml(&[("full", full.url()), ("old", old.url())])).await?;
    let plan = json!({
        "calls": [{"name": "old__add", "args": {"a": 40, "b": 2}}],
        "prompt": "full__greet", "prompt_args": {"name": "Grace"},
        "resources": true,
        "sample": {"tool": "full__sample"},
        "elicit": {"tool": "full__ask"},
        "complete": {"prompt": "old__greet", "argument": "name", "value": "G"},
        "complete_resource": {"uri": "full+note://{id}", "argument": "id", "value": "2"},
        "subscribe": {"uri": "full+note://2", "trigger": "full__touch", "unsubscribe": true},
    });
    let url = gw.endpoint.clone();
    let seen = tokio::task::spawn_blocking(move || python_client(&url, &plan))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    assert_eq!(seen["calls"][0]["text"], "42", "{seen}");
    assert_eq!(seen["prompt"], "Hello, Grace!", "{seen}");
    assert_eq!(seen["resources"][0], "full+note://1", "{seen}");
    assert_eq!(seen["read_uri"], "full+note://1", "{seen}");
    assert_eq!(seen["sampled"], "sampled by python", "{seen}");
    assert_eq!(seen["elicited"], "hello Ada", "{seen}");
    assert_eq!(seen["completions"], json!(["Grace"]), "{seen}");
    assert_eq!(seen["resource_completions"], json!(["2"]), "{seen}");
    assert_eq!(seen["updated"], json!(["full+note://2"]), "{seen}");
    assert_eq!(seen["after_unsubscribe"], "touched 0", "{seen}");
    let full_record = record(&full);
    assert!(
        full_record.contains(&"subscribe:note://2".to_string())
            && full_record.contains(&"unsubscribe:note://2".to_string()),
        "{full_record:?}"
    );
    let old_versions = versions_seen(&old);
    assert!(!old_versions.is_empty() && old_versions.iter().all(|v| v == "2025-03-26"));
    Ok(())
}

async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, switchboard_e2e::RichClient>,
    tool: &str,
    args: Value,
) -> anyhow::Result<String> {
    let r = client
        .call_tool(typed(json!({"name": tool, "arguments": args}))?)
        .await?;
    let v = serde_json::to_value(&r.content)?;
    Ok(v[0]["text"].as_str().unwrap_or_default().to_string())
}
