//! One MCP server out of many: aggregation, prefixed names, routed calls and sealed sessions,
//! through real Envoy, with real upstreams (rmcp, server-everything) and real clients (rmcp,
//! and the TypeScript SDK through inspector-cli).

use rmcp::model::{CompleteRequestParams, GetPromptRequestParams, ReadResourceRequestParams};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchboard_e2e::peers::{Everything, RmcpServer};
use switchboard_e2e::{Gateway, call_text, connect, eventually, inspector, raw};

struct Up<'a> {
    name: &'a str,
    url: String,
    extra: &'a str,
}

fn up<'a>(name: &'a str, url: String) -> Up<'a> {
    Up {
        name,
        url,
        extra: "",
    }
}

fn config(top: &str, upstreams: &[Up<'_>]) -> String {
    let mut y = format!("server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n{top}upstreams:\n");
    for u in upstreams {
        y.push_str(&format!(
            "  - name: {}\n    url: {}\n    timeout: 5s\n{}",
            u.name, u.url, u.extra
        ));
    }
    y
}

fn text(answer: &raw::Answer) -> &str {
    answer.response()["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_upstreams_look_like_one_server_to_an_rmcp_client() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let beta = RmcpServer::start("beta").await?;
    let everything = Everything::start().await?;
    let gw = Gateway::start(&config(
        "",
        &[
            up("alpha", alpha.url()),
            up("beta", beta.url()),
            Up {
                name: "everything",
                url: everything.url(),
                extra: "    tool_prefix: ev\n",
            },
        ],
    ))
    .await?;
    let client = connect(&gw.endpoint)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", gw.logs()))?;

    let names: Vec<String> = client
        .list_all_tools()
        .await?
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    // Config order, then each upstream's own order.
    let firsts: Vec<&str> = names
        .iter()
        .map(|n| n.split("__").next().unwrap_or_default())
        .collect();
    let mut order = firsts.clone();
    order.dedup();
    assert_eq!(order, ["alpha", "beta", "ev"], "{names:?}");
    assert!(
        names.contains(&"ev__echo".to_string()) && names.contains(&"beta__slow".to_string()),
        "{names:?}"
    );

    assert_eq!(
        call_text(&client, "alpha__whoami", json!({})).await?,
        "alpha"
    );
    assert_eq!(call_text(&client, "beta__whoami", json!({})).await?, "beta");
    assert_eq!(
        call_text(&client, "beta__add", json!({"a": 2, "b": 3})).await?,
        "5"
    );
    assert!(
        call_text(&client, "ev__echo", json!({"message": "hi"}))
            .await?
            .contains("hi")
    );

    let prompts = client.list_all_prompts().await?;
    assert!(
        prompts.iter().any(|p| p.name == "ev__simple-prompt"),
        "{prompts:?}"
    );
    let prompt = client
        .get_prompt(GetPromptRequestParams::new("ev__simple-prompt"))
        .await?;
    assert!(!prompt.messages.is_empty());

    let resources = client.list_all_resources().await?;
    let doc = resources
        .iter()
        .find(|r| r.uri.starts_with("ev+demo://"))
        .expect("a prefixed resource");
    let read = client
        .read_resource(ReadResourceRequestParams::new(doc.uri.clone()))
        .await?;
    let v = serde_json::to_value(&read.contents)?;
    assert_eq!(
        v[0]["uri"],
        json!(doc.uri),
        "the answer names the URI the client asked for"
    );
    let templates = client.list_all_resource_templates().await?;
    assert!(
        !templates.is_empty() && templates.iter().all(|t| t.uri_template.starts_with("ev+")),
        "{templates:?}"
    );

    let completion = client
        .complete(CompleteRequestParams::new(
            rmcp::model::Reference::for_prompt("ev__completable-prompt"),
            rmcp::model::ArgumentInfo::new("department", "Eng"),
        ))
        .await?;
    assert!(
        completion
            .completion
            .values
            .iter()
            .any(|v| v.starts_with("Eng")),
        "{completion:?}"
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_client_accepts_everything_the_gateway_says() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let everything = Everything::start().await?;
    let gw = Gateway::start(&config(
        "",
        &[up("alpha", alpha.url()), up("everything", everything.url())],
    ))
    .await?;
    let url = gw.endpoint.clone();
    let (tools, call, sum, prompts, prompt, resources, templates) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            Ok((
                inspector(&url, &["--method", "tools/list"])?,
                inspector(
                    &url,
                    &[
                        "--method",
                        "tools/call",
                        "--tool-name",
                        "alpha__add",
                        "--tool-arg",
                        "a=40",
                        "b=2",
                    ],
                )?,
                inspector(
                    &url,
                    &[
                        "--method",
                        "tools/call",
                        "--tool-name",
                        "everything__get-structured-content",
                        "--tool-arg",
                        "location=New York",
                    ],
                )?,
                inspector(&url, &["--method", "prompts/list"])?,
                inspector(
                    &url,
                    &[
                        "--method",
                        "prompts/get",
                        "--prompt-name",
                        "everything__args-prompt",
                        "--prompt-args",
                        "city=Paris",
                    ],
                )?,
                inspector(&url, &["--method", "resources/list"])?,
                inspector(&url, &["--method", "resources/templates/list"])?,
            ))
        })
        .await??;
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        names.contains(&"alpha__add") && names.contains(&"everything__echo"),
        "{names:?}"
    );
    // outputSchema and structuredContent survive: the SDK validates one against the other.
    let structured = tools["tools"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|t| t["name"] == "everything__get-structured-content")
        })
        .cloned();
    assert!(
        structured.is_some_and(|t| t["outputSchema"].is_object()),
        "{tools}"
    );
    assert_eq!(call["content"][0]["text"], "42");
    assert!(sum["structuredContent"].is_object(), "{sum}");
    assert!(
        prompts["prompts"].as_array().is_some_and(|p| !p.is_empty()),
        "{prompts}"
    );
    assert!(
        prompt["messages"][0]["content"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Paris")),
        "{prompt}"
    );
    let uri = resources["resources"][0]["uri"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(uri.starts_with("everything+"), "{resources}");
    let url = gw.endpoint.clone();
    let read = tokio::task::spawn_blocking(move || {
        inspector(&url, &["--method", "resources/read", "--uri", &uri])
    })
    .await??;
    assert!(
        read["contents"][0]["uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("everything+")),
        "{read}"
    );
    assert!(
        templates["resourceTemplates"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{templates}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_moves_between_two_envoy_replicas_with_the_same_key() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let key = "session:\n  key: replica-shared-key-0123456789\n";
    let a = Gateway::start(&config(key, &[up("alpha", alpha.url())])).await?;
    let b = Gateway::start(&config(key, &[up("alpha", alpha.url())])).await?;
    let session = raw::initialize(&a.endpoint).await?;
    assert!(session.starts_with("sb1."), "{session}");
    let answer = raw::post(
        &b.endpoint,
        Some(&session),
        &raw::call(json!(1), "alpha__add", json!({"a": 1, "b": 1})),
    )
    .await?;
    assert_eq!(text(&answer), "2", "{answer:?}");
    let answer = raw::post(
        &b.endpoint,
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await?;
    assert_eq!(
        answer.response()["result"]["tools"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    // No upstream session id ever reaches the client.
    for h in alpha.seen_headers() {
        if let Some(sid) = h.get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            assert!(!session.contains(sid));
        }
    }

    // A gateway with another key does not know the session.
    let c = Gateway::start(&config(
        "session:\n  key: some-other-key-0123456789\n",
        &[up("alpha", alpha.url())],
    ))
    .await?;
    let answer = raw::post(
        &c.endpoint,
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    )
    .await?;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.response()["error"]["code"], -32001);
    assert_eq!(answer.response()["id"], 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_or_tampered_sessions_get_404_and_none_gets_400() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let gw = Gateway::start(&config("", &[up("alpha", alpha.url())])).await?;
    let session = raw::initialize(&gw.endpoint).await?;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let mut tampered = session.clone().into_bytes();
    let i = tampered.len() - 5;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered)?;
    for bad in [
        tampered.as_str(),
        "sb1.bm90LWEtdG9rZW4",
        "3f1b7c1e-0000-4000-8000-000000000000",
    ] {
        let a = raw::post(&gw.endpoint, Some(bad), &list).await?;
        assert_eq!(a.status, 404, "{bad}: {a:?}");
        assert_eq!(a.response()["error"]["code"], -32001);
    }
    let a = raw::post(&gw.endpoint, None, &list).await?;
    assert_eq!(a.status, 400);
    let a = raw::post(&gw.endpoint, Some(&session), &list).await?;
    assert_eq!(a.status, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_down_during_fan_out_is_left_out_or_fails_the_call_per_policy()
-> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let beta = RmcpServer::start("beta").await?;
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let dead_url = format!("http://{dead}/mcp");

    // fail_open (the default): initialize leaves "dead" out; a later failure during a list too.
    let open = Gateway::start(&config(
        "",
        &[
            up("alpha", alpha.url()),
            up("beta", beta.url()),
            up("dead", dead_url.clone()),
        ],
    ))
    .await?;
    let session = raw::initialize(&open.endpoint).await?;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let a = raw::post(&open.endpoint, Some(&session), &list).await?;
    let names: Vec<&str> = a.response()["result"]["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(
        open.stderr
            .contains("upstream \\\"dead\\\" failed during initialize")
            || open
                .stderr
                .contains("upstream \"dead\" failed during initialize"),
        "{}",
        open.logs()
    );

    let closed = Gateway::start(&config(
        "aggregation:\n  fan_out: fail_closed\n",
        &[
            up("alpha", alpha.url()),
            up("beta", beta.url()),
            up("dead", dead_url),
        ],
    ))
    .await?;
    let a = raw::post(&closed.endpoint, None, &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})).await?;
    let message = a.response()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("\"dead\"") && message.contains("unreachable"),
        "{a:?}"
    );
    assert!(
        !message.contains(&dead.port().to_string()),
        "no address in the message: {message}"
    );

    // Both policies when an upstream of an existing session goes down.
    let closed2 = Gateway::start(&config(
        "aggregation:\n  fan_out: fail_closed\n",
        &[up("alpha", alpha.url()), up("beta", beta.url())],
    ))
    .await?;
    let closed_session = raw::initialize(&closed2.endpoint).await?;
    beta.stop();
    let a = raw::post(&open.endpoint, Some(&session), &list).await?;
    let names: Vec<&str> = a.response()["result"]["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        names.iter().all(|n| n.starts_with("alpha__")) && names.len() == 3,
        "{names:?}"
    );
    let a = raw::post(&closed2.endpoint, Some(&closed_session), &list).await?;
    let message = a.response()["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("\"beta\"") && message.contains("tools/list"),
        "{a:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_notifications_stream_through_as_they_happen() -> anyhow::Result<()> {
    let everything = Everything::start().await?;
    let gw = Gateway::start(&config("", &[up("everything", everything.url())])).await?;
    let session = raw::initialize(&gw.endpoint).await?;
    let call = json!({"jsonrpc": "2.0", "id": "long-1", "method": "tools/call", "params": {
        "name": "everything__trigger-long-running-operation",
        "arguments": {"duration": 2, "steps": 4},
        "_meta": {"progressToken": "tok-7"}}});
    let events = raw::post_streaming(&gw.endpoint, &session, &call).await?;
    let progress: Vec<&(Duration, Value)> = events
        .iter()
        .filter(|(_, m)| m["method"] == "notifications/progress")
        .collect();
    let last = events.last().expect("a response");
    assert_eq!(last.1["id"], "long-1", "{events:?}");
    assert!(last.1["result"].is_object(), "{events:?}");
    assert!(progress.len() >= 3, "{events:?}");
    assert_eq!(progress[0].1["params"]["progressToken"], "tok-7");
    // Streamed, not buffered whole: the first progress came well before the result.
    assert!(
        last.0 - progress[0].0 >= Duration::from_millis(900),
        "first progress at {:?}, result at {:?}",
        progress[0].0,
        last.0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_rpc_and_name_the_upstream() -> anyhow::Result<()> {
    // alpha answers with one JSON body; beta (rmcp's default) opens an SSE stream at once.
    let alpha = RmcpServer::start_with("alpha", true).await?;
    let beta = RmcpServer::start("beta").await?;
    let one_second = config("", &[up("alpha", alpha.url()), up("beta", beta.url())])
        .replace("timeout: 5s", "timeout: 1s");
    let gw = Gateway::start(&one_second).await?;
    let session = raw::initialize(&gw.endpoint).await?;
    let ep = &gw.endpoint;

    let a = raw::post(
        ep,
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/frobnicate"}),
    )
    .await?;
    assert_eq!(a.response()["error"]["code"], -32601, "{a:?}");
    let a = raw::post(
        ep,
        Some(&session),
        &raw::call(json!(2), "gamma__x", json!({})),
    )
    .await?;
    assert_eq!(a.response()["error"]["code"], -32602, "{a:?}");
    assert!(
        a.response()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("gamma__x")
    );
    let a = raw::post(ep, Some(&session), &json!({"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": "nope+file:///x"}})).await?;
    assert_eq!(a.response()["error"]["code"], -32602, "{a:?}");

    // Timeout at the configured 1s, named.
    let start = Instant::now();
    let a = raw::post(
        ep,
        Some(&session),
        &raw::call(json!(4), "alpha__slow", json!({"ms": 3000})),
    )
    .await?;
    let took = start.elapsed();
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.response()["error"]["code"], -32003, "{a:?}");
    assert_eq!(a.response()["id"], 4);
    assert!(
        a.response()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("\"alpha\""),
        "{a:?}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );

    // Once an SSE answer has started, Envoy can no longer answer in its place: the stream is
    // cut at the timeout rather than left hanging.
    let start = Instant::now();
    let cut = raw::post(
        ep,
        Some(&session),
        &raw::call(json!(5), "beta__slow", json!({"ms": 3000})),
    )
    .await;
    let took = start.elapsed();
    // Answered (the SSE headers came), then cut at the timeout: a body that ends early, or
    // one without a result; never the result 3 s later, never a refused connection.
    match &cut {
        Ok(a) => assert!(a.status == 200 && a.response()["result"].is_null(), "{a:?}"),
        Err(e) => assert!(format!("{e:#}").contains("reading the answer"), "{e:#}"),
    }
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );

    // Unreachable after the session began.
    beta.stop();
    let a = raw::post(
        ep,
        Some(&session),
        &raw::call(json!("b-5"), "beta__whoami", json!({})),
    )
    .await?;
    assert_eq!(a.response()["id"], "b-5", "{a:?}");
    assert_eq!(a.response()["error"]["code"], -32002, "{a:?}");
    let message = a.response()["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("\"beta\" refused the connection"),
        "{message}"
    );
    assert!(!message.contains("127.0.0.1"), "{message}");
    assert_eq!(
        a.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_headers_reach_the_upstream_and_client_credentials_do_not() -> anyhow::Result<()>
{
    let alpha = RmcpServer::start("alpha").await?;
    let gw = Gateway::start(&config(
        "",
        &[Up {
            name: "alpha",
            url: alpha.url(),
            extra: "    headers:\n      X-Upstream-Key: k-alpha\n",
        }],
    ))
    .await?;
    let client_headers = [
        ("authorization", "Bearer client-secret"),
        ("x-custom", "1"),
        ("cookie", "c=1"),
    ];
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let a = raw::post_with(&gw.endpoint, None, &init, &client_headers).await?;
    let session = a.session_id().unwrap_or_default();
    raw::post_with(
        &gw.endpoint,
        Some(&session),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        &client_headers,
    )
    .await?;
    let a = raw::post_with(
        &gw.endpoint,
        Some(&session),
        &raw::call(json!(1), "alpha__whoami", json!({})),
        &client_headers,
    )
    .await?;
    assert_eq!(text(&a), "alpha");
    let seen = alpha.seen_headers();
    assert!(seen.len() >= 3, "fan-out and routed calls: {seen:?}");
    for h in &seen {
        assert_eq!(
            h.get("x-upstream-key").and_then(|v| v.to_str().ok()),
            Some("k-alpha"),
            "{h:?}"
        );
        for leaked in [
            "authorization",
            "x-custom",
            "cookie",
            "x-switchboard-upstream",
        ] {
            assert!(
                h.get(leaked).is_none(),
                "{leaked} reached the upstream: {h:?}"
            );
        }
        if let Some(sid) = h.get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            assert!(
                !sid.starts_with("sb1."),
                "the upstream got the gateway's token"
            );
        }
    }
    // The per-upstream endpoint does not pass client credentials either.
    let direct = format!("{}/upstreams/alpha/mcp", gw.base());
    let before = alpha.seen_headers().len();
    raw::post_with(&direct, None, &init, &client_headers).await?;
    let h = &alpha.seen_headers()[before];
    assert!(
        h.get("authorization").is_none() && h.get("cookie").is_none(),
        "{h:?}"
    );
    assert_eq!(
        h.get("x-upstream-key").and_then(|v| v.to_str().ok()),
        Some("k-alpha")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_kept_ping_is_local_and_delete_ends_upstream_sessions() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let gw = Gateway::start(&config("", &[up("alpha", alpha.url())])).await?;
    let session = raw::initialize(&gw.endpoint).await?;
    let before = alpha.request_count();
    for id in [
        json!(7),
        json!("seven"),
        json!(9007199254740993_i64),
        json!(""),
    ] {
        let a = raw::post(
            &gw.endpoint,
            Some(&session),
            &json!({"jsonrpc": "2.0", "id": id, "method": "ping"}),
        )
        .await?;
        assert_eq!(
            a.response(),
            &json!({"jsonrpc": "2.0", "id": id, "result": {}})
        );
    }
    assert_eq!(
        alpha.request_count(),
        before,
        "ping is answered by the gateway"
    );
    for id in [json!(11), json!("eleven")] {
        let a = raw::post(
            &gw.endpoint,
            Some(&session),
            &raw::call(id.clone(), "alpha__add", json!({"a": 1, "b": 2})),
        )
        .await?;
        assert_eq!(a.response()["id"], id);
        let a = raw::post(
            &gw.endpoint,
            Some(&session),
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}),
        )
        .await?;
        assert_eq!(a.response()["id"], id);
    }

    let deletes = alpha.method_count("DELETE");
    let resp = reqwest::Client::new()
        .delete(&gw.endpoint)
        .header("mcp-session-id", &session)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        alpha.method_count("DELETE"),
        deletes + 1,
        "the upstream's session was ended"
    );
    // The upstream forgot its session, so the gateway session is over: the client must
    // initialize again.
    let a = raw::post(
        &gw.endpoint,
        Some(&session),
        &raw::call(json!(12), "alpha__add", json!({"a": 1, "b": 2})),
    )
    .await?;
    assert_eq!(a.status, 404, "{a:?}");
    assert_eq!(a.response()["id"], 12);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_request_inside_a_call_reaches_the_client_and_its_answer_the_upstream()
-> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let everything = Everything::start().await?;
    let gw = Gateway::start(&config(
        "",
        &[up("alpha", alpha.url()), up("ev", everything.url())],
    ))
    .await?;
    let ep = gw.endpoint.clone();
    // A client that can sample, so server-everything offers its sampling tool.
    let (_, session) = raw::initialize_with(&ep, json!({"sampling": {}})).await?;

    let call = raw::call(
        json!("call-1"),
        "ev__trigger-sampling-request",
        json!({"prompt": "hello"}),
    );
    let (stream, mut rx) = raw::post_following(&ep, &session, &call).await?;
    let (_, request) = raw::wait_for(&mut rx, "sampling request", |m| {
        m["method"] == "sampling/createMessage"
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    let tagged = request["id"].as_str().unwrap_or_default().to_string();
    assert!(tagged.starts_with("sb:ev:"), "{request}");
    let answer = json!({"jsonrpc": "2.0", "id": tagged, "result": {
        "role": "assistant", "content": {"type": "text", "text": "sampled!"}, "model": "test-model", "stopReason": "endTurn"}});
    let a = raw::post(&ep, Some(&session), &answer).await?;
    assert!(a.status == 202 || a.status == 200, "{a:?}");
    let (_, result) = raw::wait_for(&mut rx, "the call's result", |m| m["id"] == "call-1").await?;
    let text = result["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("sampled!"), "{result}");
    stream.abort();
    Ok(())
}

// Sampling and logging are deprecated in the newest MCP revision (SEP-2577); the revisions the
// gateway speaks (up to 2025-11-25) have both.
#[allow(deprecated)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rmcp_client_samples_elicits_sets_the_level_and_gets_resource_updates()
-> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let everything = Everything::start().await?;
    let gw = Gateway::start(&config(
        "",
        &[up("alpha", alpha.url()), up("ev", everything.url())],
    ))
    .await?;
    let (client, seen) = switchboard_e2e::connect_rich(&gw.endpoint).await?;
    let sampled = call_text_rich(
        &client,
        "ev__trigger-sampling-request",
        json!({"prompt": "hi"}),
    )
    .await?;
    assert!(sampled.contains("sampled by rmcp"), "{sampled}");
    let elicited = call_text_rich(&client, "ev__trigger-elicitation-request", json!({})).await?;
    assert!(elicited.contains("- Name: Ada"), "{elicited}");
    client
        .set_level(rmcp::model::SetLevelRequestParams::new(
            rmcp::model::LoggingLevel::Debug,
        ))
        .await?;
    let uri = "ev+demo://resource/static/document/architecture.md";
    client
        .subscribe(rmcp::model::SubscribeRequestParams::new(uri))
        .await?;
    call_text_rich(&client, "ev__toggle-subscriber-updates", json!({})).await?;
    tokio::time::timeout(Duration::from_secs(15), seen.updated.notified())
        .await
        .map_err(|_| {
            anyhow::anyhow!("no resource update reached the rmcp client\n{}", gw.logs())
        })?;
    assert_eq!(
        seen.updates
            .lock()
            .map(|u| u[0].clone())
            .unwrap_or_default(),
        uri
    );
    Ok(())
}

async fn call_text_rich(
    client: &rmcp::service::RunningService<rmcp::RoleClient, switchboard_e2e::RichClient>,
    tool: &str,
    args: Value,
) -> anyhow::Result<String> {
    let Value::Object(args) = args else {
        anyhow::bail!("arguments must be an object")
    };
    let r = client
        .call_tool(rmcp::model::CallToolRequestParams::new(tool.to_string()).with_arguments(args))
        .await?;
    // Every text block, one per line.
    let v = serde_json::to_value(&r.content)?;
    let texts: Vec<&str> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect();
    Ok(texts.join("\n"))
}

/// An MCP server (JSON answers, no session) whose tools/list holds `tools` tools.
async fn huge_list_upstream(tools: usize) -> anyhow::Result<std::net::SocketAddr> {
    let list: Vec<Value> = (0..tools)
        .map(|i| json!({"name": format!("tool_{i:05}"), "description": "x".repeat(200), "inputSchema": {"type": "object"}}))
        .collect();
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |body: axum::body::Bytes| {
            let list = list.clone();
            async move {
                use axum::response::IntoResponse;
                let m: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let result = match m["method"].as_str() {
                    Some("initialize") => json!({"protocolVersion": "2025-06-18",
                        "capabilities": {"tools": {}}, "serverInfo": {"name": "huge", "version": "1"}}),
                    Some("tools/list") => json!({"tools": list}),
                    _ => return axum::http::StatusCode::ACCEPTED.into_response(),
                };
                (
                    [("content-type", "application/json")],
                    json!({"jsonrpc": "2.0", "id": m["id"], "result": result}).to_string(),
                )
                    .into_response()
            }
        }),
    );
    switchboard_e2e::peers::serve_app(app).await
}

/// Issue 14, item 10: an upstream's list is bounded (items and bytes per page, per upstream,
/// with defaults): beyond it the upstream counts as failed, is logged, and `fan_out` decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_upstream_list_is_a_failure_of_that_upstream() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let huge = huge_list_upstream(2500).await?;
    let yaml = |extra: &str, fan_out: &str| {
        format!(
            "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\naggregation:\n  fan_out: {fan_out}\nupstreams:\n  - name: alpha\n    url: {}\n  - name: huge\n    url: http://{huge}/mcp\n{extra}",
            alpha.url()
        )
    };
    // The default of 2000 items a page.
    let gw = Gateway::start(&yaml("", "fail_open")).await?;
    let sid = raw::initialize(&gw.endpoint).await?;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let a = raw::post(&gw.endpoint, Some(&sid), &list).await?;
    let names: Vec<&str> = a.response()["result"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("alpha__")),
        "{} names",
        names.len()
    );
    eventually(Duration::from_secs(10), "the log line", || {
        let seen = gw.logs().contains("more than its max_list_items of 2000");
        async move { seen.then_some(()) }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    drop(gw);
    // A byte limit, and fail_closed: the client is told which upstream and why.
    let gw = Gateway::start(&yaml(
        "    max_list_items: 5000\n    max_list_bytes: 100000\n",
        "fail_closed",
    ))
    .await?;
    let sid = raw::initialize(&gw.endpoint).await?;
    let a = raw::post(&gw.endpoint, Some(&sid), &list).await?;
    let message = a.response()["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("huge") && message.contains("max_list_bytes of 100000"),
        "{a:?}"
    );
    // Within the limits, every tool.
    drop(gw);
    let gw = Gateway::start(&yaml(
        "    max_list_items: 5000\n    max_list_bytes: 10000000\n",
        "fail_closed",
    ))
    .await?;
    let sid = raw::initialize(&gw.endpoint).await?;
    let a = raw::post(&gw.endpoint, Some(&sid), &list).await?;
    assert_eq!(
        a.response()["result"]["tools"].as_array().map(Vec::len),
        Some(2500 + 3),
        "{}",
        gw.logs()
    );
    Ok(())
}
