use super::*;

#[test]
fn a_cursor_works_only_in_the_session_that_listed() {
    let gw = Gateway::new(example(1));
    let session = |sid: &str| {
        let (step, _) = run(
            &gw,
            None,
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#,
            vec![answer(
                Some(sid),
                json!({"jsonrpc":"2.0","id":1,"result": init_result(json!({"tools":{}}))}),
            )],
        );
        session_header(step)
    };
    // Opened in the same second: only their upstream sessions tell them apart.
    let (a, b) = (session("a"), session("b"));
    let (page, _) = list_page(
        &gw,
        &a,
        None,
        vec![answer(
            None,
            json!({"jsonrpc":"2.0","id":20,"result":{"tools":[{"name":"t"}],"nextCursor":"2"}}),
        )],
    );
    let cursor = page["result"]["nextCursor"].as_str().unwrap().to_string();
    let (other, calls) = list_page(&gw, &b, Some(&cursor), vec![]);
    assert!(calls.is_empty());
    assert_eq!(other["error"]["code"], code::INVALID_PARAMS);
}

#[test]
fn tools_list_merges_with_prefixes_in_config_order() {
    let gw = Gateway::new(example(2));
    let token = session_token(&gw);
    let (step, calls) = run(
        &gw,
        Some(&token),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        vec![
            answer(
                None,
                json!({"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a","inputSchema":{"type":"object"}},{"name":"b","inputSchema":{"type":"object"}}]}}),
            ),
            answer(
                None,
                json!({"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a","title":"A","inputSchema":{"type":"object"}}]}}),
            ),
        ],
    );
    assert!(
        calls[0]
            .headers
            .contains(&(SESSION_HEADER.into(), "sid-0".into())),
        "each upstream gets its own session"
    );
    let (_, body, _) = reply(step);
    let names: Vec<&str> = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["u0__a", "u0__b", "u1__a"]);
    assert_eq!(body["result"]["tools"][2]["title"], "A");
}

#[test]
fn lists_skip_upstreams_without_the_capability() {
    let gw = Gateway::new(example(2));
    let token = session_token(&gw);
    let (step, calls) = run(
        &gw,
        Some(&token),
        r#"{"jsonrpc":"2.0","id":3,"method":"prompts/list"}"#,
        vec![answer(
            None,
            json!({"jsonrpc":"2.0","id":3,"result":{"prompts":[{"name":"p"}]}}),
        )],
    );
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].cluster, "upstream-u1");
    let (_, body, _) = reply(step);
    assert_eq!(body["result"]["prompts"][0]["name"], "u1__p");
}

#[test]
fn fail_open_leaves_a_failed_upstream_out_and_fail_closed_names_it() {
    let gw = Gateway::new(example(2));
    let token = session_token(&gw);
    let answers = || {
        vec![
            answer(
                None,
                json!({"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"a"}]}}),
            ),
            Ok(CalloutAnswer {
                status: 503,
                content_type: "text/plain".into(),
                session_id: None,
                body: b"upstream connect error or disconnect/reset before headers".to_vec(),
            }),
        ]
    };
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    ex.on_request_body(
        &gw,
        br#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#,
        &clock(),
    );
    let mut last = None;
    for (i, a) in answers().into_iter().enumerate() {
        last = ex.on_callout_response(&gw, i, a, &clock());
    }
    let (_, body, _) = reply(last.unwrap());
    assert_eq!(body["result"]["tools"].as_array().unwrap().len(), 1);
    assert!(ex.take_log()[0].contains("\"u1\" failed during tools/list: unreachable"));

    let mut closed = example(2);
    closed.fan_out = FanOut::FailClosed;
    let gw = Gateway::new(closed);
    let token = session_token(&gw);
    let (step, _) = run(
        &gw,
        Some(&token),
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#,
        answers(),
    );
    let (_, body, _) = reply(step);
    assert_eq!(body["error"]["code"], UPSTREAM_ERROR);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"u1\"") && message.contains("unreachable"),
        "{message}"
    );
    assert!(!message.contains("127.0.0.1"), "no addresses in messages");
}

#[test]
fn pagination_walks_every_upstream_once_with_a_sealed_cursor() {
    let gw = Gateway::new(example(2));
    let token = session_token(&gw);
    let (page1, calls) = list_page(
        &gw,
        &token,
        None,
        vec![
            answer(
                None,
                json!({"jsonrpc":"2.0","id":20,"result":{"tools":[{"name":"a"}],"nextCursor":"up0-page2"}}),
            ),
            answer(
                None,
                json!({"jsonrpc":"2.0","id":20,"result":{"tools":[{"name":"x"}]}}),
            ),
        ],
    );
    assert_eq!(calls.len(), 2);
    let names: Vec<&str> = page1["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["u0__a", "u1__x"]);
    let cursor = page1["result"]["nextCursor"].as_str().unwrap().to_string();
    assert!(cursor.starts_with("sbc1.") && !cursor.contains("up0"));

    let (page2, calls) = list_page(
        &gw,
        &token,
        Some(&cursor),
        vec![answer(
            None,
            json!({"jsonrpc":"2.0","id":20,"result":{"tools":[{"name":"b"}]}}),
        )],
    );
    assert_eq!(calls.len(), 1, "the finished upstream is not asked again");
    let sent: Value = serde_json::from_slice(&calls[0].body).unwrap();
    assert_eq!(
        sent["params"]["cursor"], "up0-page2",
        "the upstream gets its own cursor"
    );
    assert_eq!(page2["result"]["tools"], json!([{"name": "u0__b"}]));
    assert!(page2["result"].get("nextCursor").is_none());

    for bad in ["sbc1.AAAA", "42", &token] {
        let (v, calls) = list_page(&gw, &token, Some(bad), vec![]);
        assert!(calls.is_empty());
        assert_eq!(v["error"]["code"], code::INVALID_PARAMS, "{bad}");
    }
    // A cursor of another list method is refused.
    let (step, _) = run(
        &gw,
        Some(&token),
        &json!({"jsonrpc":"2.0","id":21,"method":"resources/list","params":{"cursor": cursor}})
            .to_string(),
        vec![],
    );
    assert_eq!(reply(step).1["error"]["code"], code::INVALID_PARAMS);
}

#[test]
fn when_needed_drops_the_prefix_of_a_single_upstream() {
    let gw = Gateway::new(FilterConfig {
        prefix_mode: PrefixMode::WhenNeeded,
        ..example(1)
    });
    let token = single_session(&gw, json!({"tools":{}, "resources": {}}));
    let (page, _) = list_page(
        &gw,
        &token,
        None,
        vec![answer(
            None,
            json!({"jsonrpc":"2.0","id":20,"result":{"tools":[{"name":"echo"}]}}),
        )],
    );
    assert_eq!(page["result"]["tools"], json!([{"name": "echo"}]));
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    let Step::Route(route) = ex.on_request_body(
        &gw,
        br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo"}}"#,
        &clock(),
    ) else {
        panic!()
    };
    let body: Value = serde_json::from_slice(&route.body.unwrap()).unwrap();
    assert_eq!(body["params"]["name"], "echo");
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    let Step::Route(route) = ex.on_request_body(
        &gw,
        br#"{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///x"}}"#,
        &clock(),
    ) else {
        panic!()
    };
    assert_eq!(
        serde_json::from_slice::<Value>(&route.body.unwrap()).unwrap()["params"]["uri"],
        "file:///x"
    );
    assert_eq!(
        ex.on_response_headers(200, Some("application/json"), None, Some("via_upstream")),
        ResponseStep::Stream {
            remove: vec![SESSION_HEADER]
        },
        "nothing to prefix back"
    );
}

#[test]
fn cached_lists_skip_the_upstream_until_they_expire_or_change() {
    let mut config = example(2);
    config.upstreams[0].cache_ms = 30_000;
    let cache = MemoryCache::default();
    let gw = Gateway::with_cache(config, Box::new(cache.clone()));
    let token = session_token(&gw);
    let list = r#"{"jsonrpc":"2.0","id":40,"method":"tools/list"}"#;
    let u0 = || {
        answer(
            None,
            json!({"jsonrpc":"2.0","id":40,"result":{"tools":[{"name":"a"}]}}),
        )
    };
    let u1 = || {
        answer(
            None,
            json!({"jsonrpc":"2.0","id":40,"result":{"tools":[{"name":"x"}]}}),
        )
    };
    let (step, calls) = run(&gw, Some(&token), list, vec![u0(), u1()]);
    assert_eq!(calls.len(), 2);
    assert_eq!(
        reply(step).1["result"]["tools"].as_array().unwrap().len(),
        2
    );

    // Second time: only the uncached upstream is asked; the answer is the same.
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    let calls = callouts(ex.on_request_body(&gw, list.as_bytes(), &clock()));
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].cluster, "upstream-u1");
    let (_, v, _) = reply(ex.on_callout_response(&gw, 1, u1(), &clock()).unwrap());
    let names: Vec<&str> = v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["u0__a", "u1__x"]);

    // Expired: asked again.
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    let later = Clock {
        now_ms: CLOCK_S * 1000 + 30_001,
        ..clock()
    };
    assert_eq!(
        callouts(ex.on_request_body(&gw, list.as_bytes(), &later)).len(),
        2
    );

    // A list_changed in u0's answer makes its cached lists stale.
    let before = cache.generation("u0");
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    ex.on_request_body(
        &gw,
        br#"{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"u0__a"}}"#,
        &clock(),
    );
    assert_eq!(
        ex.on_response_headers(200, Some("text/event-stream"), None, Some("via_upstream")),
        ResponseStep::Transform
    );
    let out = ex.on_response_chunk(
        &gw,
        b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n",
        true,
    );
    assert!(!out.is_empty(), "the notification still reaches the client");
    assert_eq!(cache.generation("u0"), before + 1);
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    assert_eq!(
        callouts(ex.on_request_body(&gw, list.as_bytes(), &clock())).len(),
        2,
        "stale after the change"
    );
    let keys = cache
        .0
        .lock()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("list/"))
        .count();
    assert_eq!(keys, 1, "one entry per upstream, method and page");
}
