//! The official MCP conformance suite (`@modelcontextprotocol/conformance`), server side, run
//! twice in one test: straight at a TypeScript SDK server with the suite's fixtures, then at
//! the gateway in front of that same server. The gateway must do no worse on any check; and a
//! stream an upstream cuts mid-call resumes through the gateway (SEP-1699).

use serde_json::json;
use std::time::Duration;
use switchboard_e2e::peers::{NodeServer, RmcpServer};
use switchboard_e2e::raw::{self, ACCEPT};
use switchboard_e2e::{ConformanceReport, Gateway, conformance};

/// Checks whose outcome differs through the gateway by design, and why.
const BY_DESIGN: &[(&str, &str, &str)] = &[(
    "server-sse-multiple-streams",
    "server-sse-streams-functional",
    "the gateway answers tools/list itself, as JSON, so there is no SSE stream to check",
)];

/// How good a status is; `INFO` and the like say nothing.
fn rank(status: &str) -> Option<u8> {
    match status {
        "FAILURE" => Some(0),
        "WARNING" => Some(1),
        "SUCCESS" => Some(2),
        _ => None,
    }
}

fn failures(report: &ConformanceReport) -> Vec<String> {
    report
        .iter()
        .filter(|(_, (status, _))| status == "FAILURE")
        .map(|((scenario, check), (_, message))| format!("{scenario}/{check}: {message:?}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_passes_the_official_conformance_suite_as_the_server_behind_it_does()
-> anyhow::Result<()> {
    let fixtures = NodeServer::conformance_fixtures().await?;
    let url = fixtures.url();
    let direct = tokio::task::spawn_blocking(move || conformance(&url)).await??;
    let scenarios = |r: &ConformanceReport| {
        r.keys()
            .map(|(s, _)| s.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    // The baseline must be one: every scenario ran, and the server behind passes them all.
    assert!(scenarios(&direct).len() >= 30, "{:?}", scenarios(&direct));
    assert_eq!(
        failures(&direct),
        Vec::<String>::new(),
        "the fixtures themselves"
    );

    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\naggregation:\n  prefix_mode: when_needed\nupstreams:\n  - name: fixtures\n    url: {}\n",
        fixtures.url()
    ))
    .await?;
    let endpoint = gw.endpoint.clone();
    let through = tokio::task::spawn_blocking(move || conformance(&endpoint)).await??;
    assert_eq!(scenarios(&through), scenarios(&direct));
    assert_eq!(
        failures(&through),
        Vec::<String>::new(),
        "through the gateway"
    );
    let mut worse = Vec::new();
    for (key, (status, _)) in &direct {
        let Some(want) = rank(status) else { continue };
        if BY_DESIGN
            .iter()
            .any(|(s, c, _)| (*s, *c) == (key.0.as_str(), key.1.as_str()))
        {
            continue;
        }
        let got = through.get(key);
        if got.and_then(|(s, _)| rank(s)).is_none_or(|g| g < want) {
            worse.push(format!(
                "{}/{}: {status} direct, {got:?} through",
                key.0, key.1
            ));
        }
    }
    assert_eq!(
        worse,
        Vec::<String>::new(),
        "checks the gateway does worse on"
    );
    // The server cuts the call's stream; the client resumes it through the gateway.
    let resumed = &through[&(
        "server-sse-polling".to_string(),
        "server-sse-disconnect-resume".to_string(),
    )];
    assert_eq!(resumed.0, "SUCCESS", "{resumed:?}");
    Ok(())
}

/// The ids of the events in an SSE body, in order.
fn event_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .map(|id| id.trim_start().to_string())
        .collect()
}

/// With several upstreams the aggregated endpoint has one stream per call; a cut one resumes
/// at the upstream that cut it, and nowhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_stream_the_upstream_cuts_resumes_through_the_gateway() -> anyhow::Result<()> {
    let fixtures = NodeServer::conformance_fixtures().await?;
    let other = RmcpServer::start("other").await?;
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nupstreams:\n  - name: fixtures\n    url: {}\n  - name: other\n    url: {}\n",
        fixtures.url(),
        other.url()
    ))
    .await?;
    let url = &gw.endpoint;
    // Resumable streams are of 2025-11-25: the SDK primes them with an event id.
    let init = raw::post(
        url,
        None,
        &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}),
    )
    .await?;
    let session = init.session_id().expect("a session");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let cut = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .body(raw::call(json!(7), "fixtures__test_reconnection", json!({})).to_string())
        .send()
        .await?;
    assert_eq!(cut.status(), 200);
    let text = cut.text().await?;
    assert!(
        raw::sse_messages(&text)
            .iter()
            .all(|m| m.get("id").is_none()),
        "the answer comes after the cut, not before: {text}"
    );
    let last = event_ids(&text)
        .pop()
        .unwrap_or_else(|| panic!("no event id to resume from: {text}"));
    assert!(
        last.starts_with("fixtures:"),
        "the id names its upstream: {last}"
    );

    let resume = |last: String| {
        client
            .get(url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
            .header("last-event-id", last)
            .send()
    };
    let resp = resume(last.clone()).await?;
    assert_eq!(resp.status(), 200);
    let (task, mut events) = raw::follow(resp);
    let (id, answer) = raw::wait_for(&mut events, "the answer to the cut call", |m| {
        m["id"] == json!(7)
    })
    .await?;
    task.abort();
    assert_eq!(
        answer["result"]["content"][0]["text"],
        "Reconnection test completed successfully."
    );
    assert!(
        id.is_some_and(|id| id.starts_with("fixtures:")),
        "a resumed stream can be resumed again"
    );
    // An id of another session's stream, or one the gateway never made, replays nothing:
    // the first is the other session's (its upstream session), the second the merged stream.
    let other_session = raw::initialize(url).await?;
    for (session, last) in [(&other_session, last.as_str()), (&session, "nobody:1")] {
        let resp = client
            .get(url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", session)
            .header("last-event-id", last)
            .send()
            .await?;
        assert_eq!(resp.status(), 200, "{last}");
        let (task, mut events) = raw::follow(resp);
        // The true replay above came at once; three seconds are plenty for a false one.
        let replayed = tokio::time::timeout(
            Duration::from_secs(3),
            raw::wait_for(&mut events, "a replay", |m| m["id"] == json!(7)),
        )
        .await;
        task.abort();
        assert!(
            !matches!(replayed, Ok(Ok(_))),
            "{last} replayed {replayed:?}"
        );
    }
    Ok(())
}
