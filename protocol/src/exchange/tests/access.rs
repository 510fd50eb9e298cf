use super::*;

#[test]
fn access_rules_filter_lists_refuse_calls_and_bind_sessions() {
    use crate::access::{AccessConfig, Client, Lists, Rule};
    use crate::filter_config::PassThrough;
    let mut config = example(2);
    config.access = Some(AccessConfig {
        clients: vec![
            Client {
                name: "ci".into(),
                ..Default::default()
            },
            Client {
                name: "eve".into(),
                ..Default::default()
            },
        ],
        rules: vec![Rule {
            clients: vec!["ci".into()],
            allow: Lists {
                upstreams: vec!["u0".into()],
                tools: vec!["u0__*".into()],
                ..Default::default()
            },
            deny: Lists {
                tools: vec!["u0__secret".into()],
                ..Default::default()
            },
            ..Default::default()
        }],
        bridge_key_sha256: None,
        oauth: None,
    });
    config.upstreams[0].pass_through = vec![PassThrough {
        source: "x-user-token".into(),
        target: "authorization".into(),
        format: "Bearer {value}".into(),
    }];
    let gw = Gateway::new(config);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;
    // Only the allowed upstream is initialized, with the pass-through header.
    let (step, calls) = run_as(
        &gw,
        "ci",
        &[("x-user-token", "t0k")],
        None,
        init,
        vec![answer(
            Some("s"),
            json!({"jsonrpc":"2.0","id":1,"result": init_result(json!({"tools": {}}))}),
        )],
    );
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].cluster, "upstream-u0");
    assert!(
        calls[0]
            .headers
            .contains(&("authorization".into(), "Bearer t0k".into()))
    );
    let token = session_header(step);
    // The list shows only what ci may call.
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let tools = json!({"jsonrpc":"2.0","id":2,"result":{"tools":[
        {"name":"open","inputSchema":{}},{"name":"secret","inputSchema":{}}]}});
    let (step, _) = run_as(
        &gw,
        "ci",
        &[],
        Some(&token),
        list,
        vec![answer(None, tools)],
    );
    let names: Vec<String> = reply(step).1["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["u0__open"]);
    // A denied call is refused without contacting the upstream.
    let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"u0__secret"}}"#;
    let (step, calls) = run_as(&gw, "ci", &[], Some(&token), call, vec![]);
    assert!(calls.is_empty());
    let (_, body, _) = reply(step);
    assert_eq!(body["error"]["code"], ACCESS_DENIED);
    // An allowed call is routed with the pass-through header.
    let (step, _) = run_as(
        &gw,
        "ci",
        &[("x-user-token", "t0k")],
        Some(&token),
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"u0__open"}}"#,
        vec![],
    );
    let Step::Route(route) = step else {
        panic!("{step:?}")
    };
    assert!(
        route
            .headers
            .contains(&("authorization".into(), Some("Bearer t0k".into())))
    );
    // The session is ci's: eve presenting it finds nothing.
    let (step, _) = run_as(&gw, "eve", &[], Some(&token), list, vec![]);
    assert_eq!(reply(step).0, 404);
    // eve may use no upstream at all.
    let (step, calls) = run_as(&gw, "eve", &[], None, init, vec![]);
    assert!(calls.is_empty());
    assert_eq!(reply(step).1["error"]["code"], ACCESS_DENIED);
}

#[test]
fn an_upstreams_own_endpoint_serves_it_alone_under_the_same_rules() {
    let gw = guarded();
    let (step, token) = own_session(&gw);
    // Its own answer to initialize, not the gateway's merged one.
    let (_, body, _) = reply(step);
    assert_eq!(body["result"]["serverInfo"]["name"], "u0-itself");
    assert_eq!(body["result"]["capabilities"]["tools"]["listChanged"], true);
    assert!(token.starts_with("sb1.") && !token.contains("own-0"));
    let own = "/upstreams/u0/mcp";
    // Lists: unprefixed, and filtered by the rules under the aggregated names.
    let long = "L".repeat(70);
    let (step, _) = run_head(
        &gw,
        &RequestHead {
            protocol_version: Some("2025-03-26".into()),
            ..head_at("ci", "POST", own, Some(&token))
        },
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        vec![answer(
            None,
            json!({"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"open"},{"name":"secret"},{"name": long}]}}),
        )],
    );
    let names: Vec<String> = reply(step).1["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["open"],
        "a shortened name is judged by its full one"
    );
    // Calls: the rule sees u0__secret; the upstream gets its own name and session.
    let denied = call_at(
        &gw,
        "ci",
        own,
        &token,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"secret"}}"#,
    );
    let (_, body, _) = reply(denied);
    assert_eq!(body["error"]["code"], ACCESS_DENIED);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("u0__secret")
    );
    let Step::Route(route) = call_at(
        &gw,
        "ci",
        own,
        &token,
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"open"}}"#,
    ) else {
        panic!("not routed")
    };
    assert_eq!(route.upstream, "u0");
    assert!(
        route
            .headers
            .contains(&(SESSION_HEADER.into(), Some("own-0".into())))
    );
    let sent: Value = serde_json::from_slice(&route.body.unwrap()).unwrap();
    assert_eq!(sent["params"]["name"], "open");
    // The session is ci's, and u0's: nobody else's, nowhere else.
    let stolen = call_at(
        &gw,
        "eve",
        own,
        &token,
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#,
    );
    assert_eq!(reply(stolen).0, 404);
    let elsewhere = call_at(
        &gw,
        "ci",
        "/upstreams/u1/mcp",
        &token,
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/list"}"#,
    );
    assert_eq!(reply(elsewhere).0, 404);
    // Its stream goes to the upstream with the upstream's own session, for ci alone.
    let mut ex = Exchange::new();
    let Step::Route(get) =
        ex.on_request_headers(&gw, &head_at("ci", "GET", own, Some(&token)), CLOCK_S)
    else {
        panic!("GET not routed")
    };
    assert!(
        get.headers
            .contains(&(SESSION_HEADER.into(), Some("own-0".into())))
    );
    let stolen =
        Exchange::new().on_request_headers(&gw, &head_at("eve", "GET", own, Some(&token)), CLOCK_S);
    assert_eq!(reply(stolen).0, 404);
    // Anything else under the base path is not an endpoint of the filter's.
    let other = Exchange::new().on_request_headers(
        &gw,
        &head_at("ci", "POST", "/upstreams/u0/sse", None),
        CLOCK_S,
    );
    assert_eq!(other, Step::PassThrough);
}

#[test]
fn an_own_endpoint_the_client_may_not_use_is_403() {
    use crate::access::{Lists, Rule};
    let mut config = example(2);
    config.upstream_path = "/upstreams".into();
    let mut access = guarded().config.access.unwrap();
    access.rules = vec![Rule {
        clients: vec!["ci".into()],
        allow: Lists {
            upstreams: vec!["u1".into()],
            ..Default::default()
        },
        ..Default::default()
    }];
    config.access = Some(access);
    let gw = Gateway::new(config);
    let step = Exchange::new().on_request_headers(
        &gw,
        &head_at("ci", "POST", "/upstreams/u0/mcp", None),
        CLOCK_S,
    );
    let (status, body, _) = reply(step);
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!(ACCESS_DENIED))
    );
}

#[test]
fn resource_rules_judge_the_normalized_uri_and_the_upstream_reads_it() {
    let gw = guarded();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;
    let ok = json!({"jsonrpc":"2.0","id":1,"result": init_result(json!({"resources":{}}))});
    let (step, _) = run_head(
        &gw,
        &head_at("ci", "POST", "/mcp", None),
        init,
        vec![answer(Some("a"), ok.clone()), answer(Some("b"), ok)],
    );
    let token = session_header(step);
    let read = |uri: &str| {
        let body = json!({"jsonrpc":"2.0","id":9,"method":"resources/read","params":{"uri": uri}});
        call_at(&gw, "ci", "/mcp", &token, &body.to_string())
    };
    for spelled in [
        "u0+file:///secret/a",
        "U0+file:///secret/a",
        "u0+FILE:///public/../secret/a",
        "u0+file:///./secret/a",
        "u0+file:///%73ecret/a",
    ] {
        assert_eq!(
            reply(read(spelled)).1["error"]["code"],
            ACCESS_DENIED,
            "{spelled}"
        );
    }
    let hidden = reply(read("u0+file:///public/..%2Fsecret/a")).1;
    assert_eq!(hidden["error"]["code"], code::INVALID_PARAMS, "{hidden}");
    let Step::Route(route) = read("U0+File:///public/./a") else {
        panic!("not routed")
    };
    let sent: Value = serde_json::from_slice(&route.body.unwrap()).unwrap();
    assert_eq!(sent["params"]["uri"], "file:///public/a");
}

#[test]
fn only_tools_the_gateway_listed_get_a_series_of_their_own() {
    let gw = Gateway::new(example(1));
    let token = single_session(&gw, json!({"tools":{}}));
    let series = |name: &str| {
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
        let body = json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name": name}});
        ex.on_request_body(&gw, body.to_string().as_bytes(), &clock());
        ex.audit().tool_series.clone()
    };
    assert_eq!(series("u0__open"), UNKNOWN_TOOL, "not listed yet");
    list_page(
        &gw,
        &token,
        None,
        vec![answer(
            None,
            json!({"jsonrpc":"2.0","id":20,"result":{"tools":[{"name":"open"}]}}),
        )],
    );
    assert_eq!(
        series("u0__open"),
        "open",
        "the tool's own name: upstream is a label"
    );
    for made_up in ["u0__zz1", "zz2", "x__y"] {
        assert_eq!(series(made_up), UNKNOWN_TOOL, "{made_up}");
    }
}

#[test]
fn tool_filters_hide_and_refuse() {
    let mut config = example(2);
    config.upstreams[0].tools_include = vec!["a*".into()];
    config.upstreams[0].tools_exclude = vec!["ab".into()];
    let gw = Gateway::new(config);
    let token = session_token(&gw);
    let (page, _) = list_page(
        &gw,
        &token,
        None,
        vec![
            answer(
                None,
                json!({"jsonrpc":"2.0","id":20,"result":{"tools":[{"name":"a"},{"name":"ab"},{"name":"b"}]}}),
            ),
            answer(
                None,
                json!({"jsonrpc":"2.0","id":20,"result":{"tools":[{"name":"ab"}]}}),
            ),
        ],
    );
    let names: Vec<&str> = page["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["u0__a", "u1__ab"]);
    let (step, _) = run(
        &gw,
        Some(&token),
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"u0__ab"}}"#,
        vec![],
    );
    let (_, body, _) = reply(step);
    assert_eq!(body["error"]["code"], code::INVALID_PARAMS);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not offer it"),
        "{body}"
    );
}
