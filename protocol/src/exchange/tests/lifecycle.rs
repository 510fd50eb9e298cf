use super::*;

#[test]
fn initialize_fans_out_and_seals_the_upstream_sessions() {
    let gw = Gateway::new(example(2));
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(None), CLOCK_S);
    let calls = callouts(ex.on_request_body(&gw, br#"{"jsonrpc":"2.0","id":"i","method":"initialize","params":{"protocolVersion":"1999-01-01","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#, &clock()));
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].cluster, "upstream-u1");
    assert!(
        calls[1].headers.contains(&("x-key".into(), "k1".into())),
        "configured headers go on callouts"
    );
    let sent: Value = serde_json::from_slice(&calls[0].body).unwrap();
    assert_eq!(
        sent["params"]["protocolVersion"],
        mcp::SUPPORTED_VERSIONS[0],
        "upstreams get the negotiated version"
    );
    assert_eq!(
        ex.on_callout_response(
            &gw,
            1,
            sse_answer(
                json!({"jsonrpc":"2.0","id":"i","result": init_result(json!({"prompts":{}}))})
            ),
            &clock()
        ),
        None
    );
    let step = ex
        .on_callout_response(
            &gw,
            0,
            answer(
                Some("sid-0"),
                json!({"jsonrpc":"2.0","id":"i","result": init_result(json!({"tools":{}}))}),
            ),
            &clock(),
        )
        .unwrap();
    let (status, body, headers) = reply(step);
    assert_eq!(status, 200);
    assert_eq!(body["id"], "i");
    assert_eq!(body["result"]["serverInfo"]["name"], "switchboard");
    assert_eq!(
        body["result"]["protocolVersion"],
        mcp::SUPPORTED_VERSIONS[0]
    );
    assert_eq!(
        body["result"]["capabilities"],
        json!({"tools": {}, "prompts": {}})
    );
    let token = &headers.iter().find(|(k, _)| k == SESSION_HEADER).unwrap().1;
    let s = session::open(&gw.key, token, CLOCK_S, 0).unwrap();
    assert_eq!(s.upstreams[0].session_id.as_deref(), Some("sid-0"));
    assert_eq!(s.upstreams[1].session_id.as_deref(), Some("sse-sid"));
    assert!(!token.contains("sid-0"));
}

#[test]
fn expired_sessions_get_404() {
    let gw = Gateway::new(FilterConfig {
        session_max_age_s: 60,
        ..example(1)
    });
    let token = single_session(&gw, json!({"tools":{}}));
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S + 61);
    let (status, _, _) = reply(ex.on_request_body(
        &gw,
        br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        &clock(),
    ));
    assert_eq!(status, 404);
}

#[test]
fn ping_and_notifications() {
    let gw = Gateway::new(example(2));
    let (step, _) = run(
        &gw,
        None,
        r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#,
        vec![],
    );
    assert_eq!(reply(step).1, json!({"jsonrpc":"2.0","id":"p","result":{}}));
    let token = session_token(&gw);
    let (step, calls) = run(
        &gw,
        Some(&token),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        vec![
            Ok(CalloutAnswer {
                status: 202,
                content_type: String::new(),
                session_id: None,
                body: vec![],
            }),
            Ok(CalloutAnswer {
                status: 202,
                content_type: String::new(),
                session_id: None,
                body: vec![],
            }),
        ],
    );
    assert_eq!(calls.len(), 2);
    assert!(
        calls[1]
            .headers
            .contains(&(SESSION_HEADER.into(), "sse-sid".into()))
    );
    assert!(matches!(step, Step::Respond(Reply { status: 202, .. })));
}

#[test]
fn delete_ends_every_upstream_session() {
    let gw = Gateway::new(example(2));
    let token = session_token(&gw);
    let mut ex = Exchange::new();
    let calls = callouts(ex.on_request_headers(
        &gw,
        &RequestHead {
            method: "DELETE".into(),
            path: "/mcp".into(),
            session_id: Some(token),
            protocol_version: None,
            ..Default::default()
        },
        CLOCK_S,
    ));
    assert_eq!(calls.len(), 2);
    assert!(
        calls
            .iter()
            .all(|c| c.headers.contains(&(":method".into(), "DELETE".into())))
    );
    ex.on_callout_response(
        &gw,
        0,
        Ok(CalloutAnswer {
            status: 200,
            content_type: String::new(),
            session_id: None,
            body: vec![],
        }),
        &clock(),
    );
    let step = ex
        .on_callout_response(&gw, 1, Err(Failure::NotCalled("timeout".into())), &clock())
        .unwrap();
    assert!(matches!(step, Step::Respond(Reply { status: 200, .. })));
}

#[test]
fn an_unsupported_protocol_version_header_is_400() {
    let gw = Gateway::new(example(1));
    let token = single_session(&gw, json!({"tools":{}}));
    for (version, status) in [
        (Some("2025-06-18"), None),
        (None, None),
        // Supported, though not the session's: the specification allows it.
        (Some("2025-03-26"), None),
        (Some("1999-01-01"), Some(400)),
        (Some("garbage"), Some(400)),
    ] {
        let mut ex = Exchange::new();
        let head = RequestHead {
            method: "POST".into(),
            path: "/mcp".into(),
            session_id: Some(token.clone()),
            protocol_version: version.map(str::to_string),
            ..Default::default()
        };
        ex.on_request_headers(&gw, &head, CLOCK_S);
        let step = ex.on_request_body(
            &gw,
            br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            &clock(),
        );
        match status {
            None => assert!(
                matches!(step, Step::AwaitCallouts(_)),
                "{version:?}: {step:?}"
            ),
            Some(code) => assert_eq!(reply(step).0, code, "{version:?}"),
        }
    }
}

#[test]
fn an_upstream_on_an_unknown_version_is_left_out_with_a_clear_reason() {
    let gw = Gateway::new(example(2));
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(None), CLOCK_S);
    ex.on_request_body(&gw, br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#, &clock());
    ex.on_callout_response(
        &gw,
        0,
        answer(
            Some("a"),
            json!({"jsonrpc":"2.0","id":1,"result": init_result(json!({"tools":{}}))}),
        ),
        &clock(),
    );
    let odd = json!({"jsonrpc":"2.0","id":1,"result": {"protocolVersion": "1999-01-01", "capabilities": {}, "serverInfo": {"name": "old", "version": "1"}}});
    let step = ex
        .on_callout_response(&gw, 1, answer(Some("b"), odd), &clock())
        .unwrap();
    let token = session_header(step);
    assert_eq!(
        session::open(&gw.key, &token, CLOCK_S, 0)
            .unwrap()
            .upstreams
            .len(),
        1
    );
    assert!(ex.take_log()[0].contains("negotiated protocol version \"1999-01-01\""));
}
