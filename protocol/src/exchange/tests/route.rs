use super::*;

#[test]
fn tools_call_is_routed_with_the_prefix_stripped() {
    let gw = Gateway::new(example(2));
    let token = session_token(&gw);
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    let step = ex.on_request_body(&gw, br#"{"jsonrpc":"2.0","id":"c-9","method":"tools/call","params":{"name":"u1__echo__x","arguments":{"m":1},"_meta":{"progressToken":7}}}"#, &clock());
    let Step::Route(route) = step else {
        panic!("{step:?}")
    };
    assert_eq!(route.upstream, "u1");
    assert!(
        route
            .headers
            .contains(&(SESSION_HEADER.to_string(), Some("sse-sid".into())))
    );
    assert!(
        route
            .headers
            .contains(&(VERSION_HEADER.to_string(), Some("2025-06-18".into())))
    );
    let body: Value = serde_json::from_slice(&route.body.unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"jsonrpc":"2.0","id":"c-9","method":"tools/call","params":{"name":"echo__x","arguments":{"m":1},"_meta":{"progressToken":7}}})
    );
    // Several upstreams share the session: the SSE answer goes through the tagger.
    assert_eq!(
        ex.on_response_headers(200, Some("text/event-stream"), None, Some("via_upstream")),
        ResponseStep::Transform
    );
}

/// The configured headers of an upstream (credentials, often) come from the filter, not
/// from Envoy's route, and win over a pass-through header of the same name.
#[test]
fn a_routed_call_carries_its_upstreams_configured_headers() {
    let mut config = example(2);
    config.upstreams[1].headers = vec![("authorization".into(), "Bearer configured".into())];
    config.upstreams[1].pass_through = vec![crate::filter_config::PassThrough {
        source: "x-token".into(),
        target: "authorization".into(),
        format: "Bearer {value}".into(),
    }];
    let gw = Gateway::new(config);
    let token = session_token(&gw);
    let mut ex = Exchange::new();
    let head = RequestHead {
        pass_through: vec![("x-token".into(), "client".into())],
        ..post(Some(&token))
    };
    ex.on_request_headers(&gw, &head, CLOCK_S);
    let step = ex.on_request_body(&gw, br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"u1__echo","arguments":{}}}"#, &clock());
    let Step::Route(route) = step else {
        panic!("{step:?}")
    };
    let auth: Vec<_> = route
        .headers
        .iter()
        .filter(|(k, _)| k == "authorization")
        .collect();
    assert_eq!(
        auth.last().and_then(|(_, v)| v.as_deref()),
        Some("Bearer configured"),
        "{auth:?}"
    );
    // Another upstream's are not sent.
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    let step = ex.on_request_body(&gw, br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"u0__echo","arguments":{}}}"#, &clock());
    let Step::Route(route) = step else {
        panic!("{step:?}")
    };
    assert!(!route.headers.iter().any(|(k, _)| k == "authorization"));
}

#[test]
fn resources_read_is_routed_by_uri_and_its_answer_prefixed_back() {
    let gw = Gateway::new(example(2));
    let token = session_token(&gw);
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    let Step::Route(route) = ex.on_request_body(
        &gw,
        br#"{"jsonrpc":"2.0","id":5,"method":"resources/read","params":{"uri":"U0+file:///a b"}}"#,
        &clock(),
    ) else {
        panic!()
    };
    assert_eq!(route.upstream, "u0");
    let body: Value = serde_json::from_slice(&route.body.unwrap()).unwrap();
    // Normalized (RFC 3986) before anything is decided, and sent so.
    assert_eq!(body["params"]["uri"], "file:///a%20b");
    assert_eq!(
        ex.on_response_headers(200, Some("application/json"), None, Some("via_upstream")),
        ResponseStep::Buffer
    );
    let out = ex.on_response_body(
        br#"{"jsonrpc":"2.0","id":5,"result":{"contents":[{"uri":"file:///a b","text":"x"}]}}"#,
        Some("application/json"),
    );
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["result"]["contents"][0]["uri"], "u0+file:///a b");
}

#[test]
fn completion_refs_are_stripped() {
    let gw = Gateway::new(example(2));
    let token = session_token(&gw);
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    let Step::Route(route) = ex.on_request_body(&gw, br#"{"jsonrpc":"2.0","id":6,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"u1__greet"},"argument":{"name":"n","value":"a"}}}"#, &clock()) else { panic!() };
    let body: Value = serde_json::from_slice(&route.body.unwrap()).unwrap();
    assert_eq!(body["params"]["ref"]["name"], "greet");
    assert_eq!(body["params"]["argument"]["value"], "a");
}

#[test]
fn unknown_prefixes_methods_and_sessions_are_refused() {
    let gw = Gateway::new(example(2));
    let token = session_token(&gw);
    let (step, _) = run(
        &gw,
        Some(&token),
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"nope__x"}}"#,
        vec![],
    );
    let (status, body, _) = reply(step);
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (200, Some(code::INVALID_PARAMS))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nope__x")
    );
    let (step, _) = run(
        &gw,
        Some(&token),
        r#"{"jsonrpc":"2.0","id":8,"method":"tools/destroy"}"#,
        vec![],
    );
    assert_eq!(reply(step).1["error"]["code"], code::METHOD_NOT_FOUND);
    let (step, _) = run(
        &gw,
        None,
        r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#,
        vec![],
    );
    assert_eq!(reply(step).0, 400);
    let (step, _) = run(
        &gw,
        Some("sb1.AAAA"),
        r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#,
        vec![],
    );
    let (status, body, _) = reply(step);
    assert_eq!(
        (status, body["error"]["code"].as_i64(), body["id"].as_i64()),
        (404, Some(SESSION_NOT_FOUND), Some(9))
    );
    let other = Gateway::new(FilterConfig {
        session_key: "another".into(),
        ..example(2)
    });
    let (step, _) = run(
        &other,
        Some(&token),
        r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#,
        vec![],
    );
    assert_eq!(reply(step).0, 404, "a token of another key is refused");
}

#[test]
fn only_mcp_and_tracing_headers_are_forwarded() {
    for h in [
        "Authorization",
        "cookie",
        "x-api-key",
        "proxy-authorization",
        "accept-encoding",
        "x-switchboard-upstream",
    ] {
        assert!(!forwarded_request_header(h), "{h}");
    }
    for h in [
        ":path",
        "Content-Type",
        "mcp-session-id",
        "MCP-Protocol-Version",
        "traceparent",
        "x-request-id",
    ] {
        assert!(forwarded_request_header(h), "{h}");
    }
}

#[test]
fn malformed_and_oversized_bodies() {
    let gw = Gateway::new(FilterConfig {
        max_request_bytes: 64,
        ..example(1)
    });
    let (step, _) = run(&gw, None, "{oops", vec![]);
    let (status, body, _) = reply(step);
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(code::PARSE_ERROR))
    );
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(None), 0);
    assert_eq!(reply(ex.on_body_progress(&gw, 65).unwrap()).0, 413);
}

#[test]
fn a_shortened_name_is_resolved_by_listing_then_called() {
    let gw = Gateway::new(example(2));
    let token = session_token(&gw);
    let long = "t".repeat(80);
    let shown = naming::shorten(&format!("u0__{long}")).into_owned();
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    let body = json!({"jsonrpc": "2.0", "id": 30, "method": "tools/call", "params": {"name": shown, "arguments": {"x": 1}}});
    let calls = callouts(ex.on_request_body(&gw, body.to_string().as_bytes(), &clock()));
    assert_eq!(
        serde_json::from_slice::<Value>(&calls[0].body).unwrap()["method"],
        "tools/list"
    );
    // The first page has other tools and a cursor; the second has it.
    let step = ex.on_callout_response(&gw, 0, answer(None, json!({"jsonrpc":"2.0","id":30,"result":{"tools":[{"name":"a"}],"nextCursor":"p2"}})), &clock()).unwrap();
    let calls = callouts(step);
    assert_eq!(
        serde_json::from_slice::<Value>(&calls[0].body).unwrap()["params"]["cursor"],
        "p2"
    );
    let step = ex
        .on_callout_response(
            &gw,
            0,
            answer(
                None,
                json!({"jsonrpc":"2.0","id":30,"result":{"tools":[{"name": long}]}}),
            ),
            &clock(),
        )
        .unwrap();
    let calls = callouts(step);
    let sent: Value = serde_json::from_slice(&calls[0].body).unwrap();
    assert_eq!(sent["method"], "tools/call");
    assert_eq!(sent["params"], json!({"name": long, "arguments": {"x": 1}}));
    let step = ex
        .on_callout_response(
            &gw,
            0,
            sse_answer(
                json!({"jsonrpc":"2.0","id":30,"result":{"content":[{"type":"text","text":"ok"}]}}),
            ),
            &clock(),
        )
        .unwrap();
    let (status, v, _) = reply(step);
    assert_eq!(
        (status, v["result"]["content"][0]["text"].as_str()),
        (200, Some("ok"))
    );

    // A shortened name nobody has is unknown.
    let fake = naming::shorten(&format!("u0__{}", "z".repeat(80))).into_owned();
    let (step, _) = run(
        &gw,
        Some(&token),
        &json!({"jsonrpc": "2.0", "id": 31, "method": "tools/call", "params": {"name": fake}})
            .to_string(),
        vec![answer(
            None,
            json!({"jsonrpc":"2.0","id":31,"result":{"tools":[{"name": long}]}}),
        )],
    );
    assert_eq!(reply(step).1["error"]["code"], code::INVALID_PARAMS);
}
