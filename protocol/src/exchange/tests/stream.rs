use super::*;

#[test]
fn a_get_stream_is_bound_to_its_session_as_a_post_is() {
    let gw = guarded();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;
    let ok = |sid| {
        answer(
            Some(sid),
            json!({"jsonrpc":"2.0","id":1,"result": init_result(json!({"tools":{}}))}),
        )
    };
    let (step, _) = run_head(
        &gw,
        &head_at("ci", "POST", "/mcp", None),
        init,
        vec![ok("a"), ok("b")],
    );
    let token = session_header(step);
    let get = |who: &str, token: Option<&str>| {
        Exchange::new().on_request_headers(&gw, &head_at(who, "GET", "/mcp", token), CLOCK_S)
    };
    assert_eq!(get("ci", Some(&token)), Step::PassThrough);
    assert_eq!(
        reply(get("eve", Some(&token))).0,
        404,
        "another client's session"
    );
    assert_eq!(reply(get("ci", None)).0, 400);
    assert_eq!(reply(get("ci", Some("sb1.forged"))).0, 404);
}

#[test]
fn a_get_with_a_routed_streams_last_event_id_resumes_it_at_its_upstream() {
    let gw = Gateway::new(example(2));
    assert!(
        !gw.config.get_stream,
        "no merged stream: resuming needs none"
    );
    let token = session_token(&gw);
    let get = |path: &str, last: &str| {
        Exchange::new().on_request_headers(
            &gw,
            &RequestHead {
                method: "GET".into(),
                path: path.into(),
                session_id: Some(token.clone()),
                last_event_id: Some(last.into()),
                ..Default::default()
            },
            CLOCK_S,
        )
    };
    let Step::Route(route) = get("/mcp", "u1:e1|7") else {
        panic!("not routed")
    };
    assert_eq!(route.upstream, "u1");
    assert!(
        route
            .headers
            .contains(&("last-event-id".into(), Some("e1|7".into()))),
        "the upstream's own id: {:?}",
        route.headers
    );
    // Not one of ours (an unknown upstream, no id, the merged stream's): no resumption.
    for last in ["nobody:e1", "u1:", "eyJ1MCI6IjEifQ"] {
        assert_eq!(reply(get("/mcp", last)).0, 405, "{last}");
    }
    // Another client cannot resume this session's streams.
    let stolen = Exchange::new().on_request_headers(
        &gw,
        &RequestHead {
            method: "GET".into(),
            path: "/mcp".into(),
            session_id: Some("sb1.forged".into()),
            last_event_id: Some("u1:e1".into()),
            ..Default::default()
        },
        CLOCK_S,
    );
    assert_eq!(reply(stolen).0, 404);
}

#[test]
fn a_resumed_stream_stays_within_what_the_client_may_use() {
    let mut config = guarded().config;
    if let Some(access) = &mut config.access {
        access.rules[0].deny.upstreams = vec!["u1".into()];
    }
    let gw = Gateway::new(config);
    let (_, token) = own_session(&gw);
    let get = |path: &str, last: &str| {
        Exchange::new().on_request_headers(
            &gw,
            &RequestHead {
                last_event_id: Some(last.into()),
                ..head_at("ci", "GET", path, Some(&token))
            },
            CLOCK_S,
        )
    };
    assert!(
        matches!(get("/upstreams/u0/mcp", "u0:9"), Step::Route(r) if r.headers.contains(&("last-event-id".into(), Some("9".into()))))
    );
    assert_eq!(
        reply(get("/upstreams/u0/mcp", "u1:9")).0,
        400,
        "an id of another upstream's stream at this upstream's endpoint"
    );
    assert_eq!(
        reply(get("/mcp", "u1:9")).0,
        403,
        "an upstream ci may not use"
    );
}

#[test]
fn get_is_405_and_other_paths_pass() {
    let gw = Gateway::new(example(1));
    let mut ex = Exchange::new();
    let (status, _, headers) = reply(ex.on_request_headers(
        &gw,
        &RequestHead {
            method: "GET".into(),
            path: "/mcp".into(),
            session_id: None,
            protocol_version: None,
            ..Default::default()
        },
        0,
    ));
    assert_eq!(status, 405);
    assert!(headers.iter().any(|(k, _)| k == "allow"));
    let mut ex = Exchange::new();
    assert_eq!(
        ex.on_request_headers(
            &gw,
            &RequestHead {
                method: "POST".into(),
                path: "/other".into(),
                session_id: None,
                protocol_version: None,
                ..Default::default()
            },
            0
        ),
        Step::PassThrough
    );
}

#[test]
fn a_last_event_ended_by_a_lone_cr_is_tagged_too() {
    let gw = Gateway::new(example(2));
    let token = session_token(&gw);
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    ex.on_request_body(
        &gw,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"u1__ask"}}"#,
        &clock(),
    );
    ex.on_response_headers(200, Some("text/event-stream"), None, Some("via_upstream"));
    // `\r\n\r`: the event is over, though the splitter could not know it before the end.
    let stream = "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"sampling/createMessage\",\"params\":{}}\r\n\r";
    let mut out = ex.on_response_chunk(&gw, stream.as_bytes(), false);
    out.extend(ex.on_response_chunk(&gw, b"", true));
    let events = crate::sse::parse(&out);
    let v: Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(v["id"], "sb:u1:7", "{}", String::from_utf8_lossy(&out));
}

#[test]
fn server_requests_in_a_stream_are_tagged_and_their_answers_routed_back() {
    let gw = Gateway::new(example(2));
    let token = session_token(&gw);
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    ex.on_request_body(
        &gw,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"u1__ask"}}"#,
        &clock(),
    );
    assert_eq!(
        ex.on_response_headers(200, Some("text/event-stream"), None, Some("via_upstream")),
        ResponseStep::Transform
    );
    let stream = "event: message\nid: e1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"sampling/createMessage\",\"params\":{}}\n\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/updated\",\"params\":{\"uri\":\"file:///a\"}}\n\n: ping\n\n";
    let mut out = Vec::new();
    for chunk in stream.as_bytes().chunks(10) {
        out.extend(ex.on_response_chunk(&gw, chunk, false));
    }
    out.extend(ex.on_response_chunk(&gw, b"", true));
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("event: message\nid: u1:e1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\""), "notifications pass as they are, their id naming the upstream: {text}");
    assert!(text.ends_with(": ping\n\n"), "{text}");
    let tagged = crate::sse::parse(text.as_bytes())[1].data.clone();
    let v: Value = serde_json::from_str(&tagged).unwrap();
    assert_eq!(v["id"], "sb:u1:7");
    let updated = crate::sse::parse(text.as_bytes())[2].data.clone();
    let v: Value = serde_json::from_str(&updated).unwrap();
    assert_eq!(
        v["params"]["uri"], "u1+file:///a",
        "the URI the client knows"
    );

    // The client's answer goes back to u1 with the id u1 used.
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    let Step::Route(route) = ex.on_request_body(
        &gw,
        br#"{"jsonrpc":"2.0","id":"sb:u1:7","result":{"model":"m"}}"#,
        &clock(),
    ) else {
        panic!()
    };
    assert_eq!(route.upstream, "u1");
    assert!(
        route
            .headers
            .contains(&(SESSION_HEADER.to_string(), Some("sse-sid".into())))
    );
    let body: Value = serde_json::from_slice(&route.body.unwrap()).unwrap();
    assert_eq!(body, json!({"jsonrpc":"2.0","id":7,"result":{"model":"m"}}));
    // Untagged or unknown answers in a session of several upstreams are refused.
    for id in [r#""plain""#, r#""sb:nope:1""#, "5"] {
        let (step, _) = run(
            &gw,
            Some(&token),
            &format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#),
            vec![],
        );
        assert_eq!(reply(step).0, 400, "{id}");
    }
}

#[test]
fn the_bridge_marker_on_the_get_stream_bumps_and_is_not_forwarded() {
    let cache = MemoryCache::default();
    let gw = Gateway::with_cache(
        FilterConfig {
            get_stream: true,
            ..example(2)
        },
        Box::new(cache.clone()),
    );
    let token = session_token(&gw);
    let mut ex = Exchange::new();
    let head = RequestHead {
        method: "GET".into(),
        path: "/mcp".into(),
        session_id: Some(token),
        protocol_version: None,
        ..Default::default()
    };
    assert_eq!(
        ex.on_request_headers(&gw, &head, CLOCK_S),
        Step::PassThrough
    );
    assert_eq!(
        ex.on_response_headers(200, Some("text/event-stream"), None, Some("via_upstream")),
        ResponseStep::Transform
    );
    let stream = ": switchboard list_changed u1\n\nevent: message\nid: x\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n";
    let out = ex.on_response_chunk(&gw, stream.as_bytes(), false);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "event: message\nid: x\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n"
    );
    assert_eq!(cache.generation("u1"), 1);
    assert_eq!(cache.generation("u0"), 0);
}
