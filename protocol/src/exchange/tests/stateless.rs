use super::*;
use crate::modern::{self, meta as keys};

fn stateless_gw() -> Gateway {
    let mut config = example(2);
    config.stateless_clients = true;
    Gateway::with_cache(config, Box::new(MemoryCache::default()))
}

fn modern_head(method: &str, name: Option<&str>) -> RequestHead {
    RequestHead {
        protocol_version: Some(modern::VERSION.into()),
        mcp_method: Some(method.into()),
        mcp_name: name.map(str::to_string),
        ..post(None)
    }
}

fn modern_body(id: u64, method: &str, mut params: Value) -> String {
    params["_meta"] = json!({keys::PROTOCOL_VERSION: modern::VERSION, keys::CLIENT_CAPABILITIES: {"elicitation": {}, "experimental": {"x": {}}}});
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

fn no_content() -> Result<CalloutAnswer, Failure> {
    Ok(CalloutAnswer {
        status: 202,
        content_type: String::new(),
        session_id: None,
        body: vec![],
    })
}

#[test]
fn a_stateless_call_opens_a_session_and_answers_without_closing_it() {
    a_stateless_call_opens_a_session_at_its_upstream_only_and_keeps_it();
}

fn a_stateless_call_opens_a_session_at_its_upstream_only_and_keeps_it() -> (Gateway, String) {
    let gw = stateless_gw();
    let mut ex = Exchange::new();
    let head = modern_head("tools/call", Some("u1__echo"));
    assert_eq!(ex.on_request_headers(&gw, &head, CLOCK_S), Step::AwaitBody);
    let body = modern_body(
        5,
        "tools/call",
        json!({"name": "u1__echo", "arguments": {"x": 1}}),
    );

    // 1. initialize, at u1 alone, with the client's capabilities but those the upstream
    //    would use by asking the client (the gateway cannot relay that to this client).
    let open = callouts(ex.on_request_body(&gw, body.as_bytes(), &clock()));
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].cluster, "upstream-u1");
    let init: Value = serde_json::from_slice(&open[0].body).unwrap();
    assert_eq!(init["method"], "initialize");
    assert_eq!(
        init["params"]["capabilities"],
        json!({"experimental": {"x": {}}})
    );
    let init_answer = answer(
        Some("s1"),
        json!({"jsonrpc":"2.0","id":0,"result": init_result(json!({"tools":{}}))}),
    );

    // 2. notifications/initialized in that session.
    let told = callouts(
        ex.on_callout_response(&gw, 0, init_answer, &clock())
            .unwrap(),
    );
    assert_eq!(told.len(), 1);
    assert!(
        told[0]
            .headers
            .contains(&(SESSION_HEADER.into(), "s1".into()))
    );
    assert!(String::from_utf8_lossy(&told[0].body).contains("notifications/initialized"));

    // 3. The call, unprefixed, without the revision's _meta, in that session.
    let call = callouts(
        ex.on_callout_response(&gw, 0, no_content(), &clock())
            .unwrap(),
    );
    let sent: Value = serde_json::from_slice(&call[0].body).unwrap();
    assert_eq!(sent["params"]["name"], "echo");
    assert_eq!(sent["params"].get("_meta"), None);
    assert!(
        call[0]
            .headers
            .contains(&(VERSION_HEADER.into(), "2025-06-18".into()))
    );
    let result = answer(
        None,
        json!({"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text","text":"hi"}]}}),
    );

    // 4. The answer, complete; the upstream session is kept for the client's next request.
    let (status, v, headers) = reply(ex.on_callout_response(&gw, 0, result, &clock()).unwrap());
    assert_eq!(status, 200);
    assert_eq!(v["id"], 5);
    assert_eq!(v["result"]["resultType"], "complete");
    assert!(
        !headers.iter().any(|(k, _)| k == SESSION_HEADER),
        "no session for a stateless client"
    );
    (gw, body)
}

#[test]
fn a_stateless_clients_next_request_uses_its_kept_upstream_session() {
    let (gw, body) = a_stateless_call_opens_a_session_at_its_upstream_only_and_keeps_it();
    let again = |gw: &Gateway, answers: Vec<Result<CalloutAnswer, Failure>>| {
        let mut ex = Exchange::new();
        ex.on_request_headers(gw, &modern_head("tools/call", Some("u1__echo")), CLOCK_S);
        let first = callouts(ex.on_request_body(gw, body.as_bytes(), &clock()));
        let mut seen = vec![first];
        let mut last = None;
        for a in answers {
            let step = ex.on_callout_response(gw, 0, a, &clock()).unwrap();
            if let Step::AwaitCallouts(c) = &step {
                seen.push(c.clone());
            }
            last = Some(step);
        }
        (seen, last.unwrap(), ex.take_log())
    };
    let result = || {
        answer(
            None,
            json!({"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text","text":"hi"}]}}),
        )
    };
    // The call goes straight out in the kept session: no handshake.
    let (seen, last, _) = again(&gw, vec![result()]);
    assert_eq!(seen[0].len(), 1);
    assert_eq!(sent_method(&seen[0][0]), "tools/call");
    assert!(
        seen[0][0]
            .headers
            .contains(&(SESSION_HEADER.into(), "s1".into()))
    );
    assert_eq!(reply(last).1["result"]["content"][0]["text"], "hi");

    // The upstream forgot it (404): a new session, the call again, the client none the wiser.
    let gone = Ok(CalloutAnswer {
        status: 404,
        content_type: "application/json".into(),
        body: br#"{"jsonrpc":"2.0","id":5,"error":{"code":-32001,"message":"Session not found"}}"#
            .to_vec(),
        ..Default::default()
    });
    let init = answer(
        Some("s2"),
        json!({"jsonrpc":"2.0","id":0,"result": init_result(json!({"tools":{}}))}),
    );
    let (seen, last, log) = again(&gw, vec![gone, init, no_content(), result()]);
    let methods: Vec<String> = seen.iter().map(|c| sent_method(&c[0])).collect();
    assert_eq!(
        methods,
        [
            "tools/call",
            "initialize",
            "notifications/initialized",
            "tools/call"
        ]
    );
    assert!(
        seen[3][0]
            .headers
            .contains(&(SESSION_HEADER.into(), "s2".into()))
    );
    assert_eq!(reply(last).1["result"]["content"][0]["text"], "hi");
    assert!(log.join("\n").contains("forgot the session"), "{log:?}");
    // Forgotten again right after a new handshake: the client's answer, not a loop.
    let gone = || {
        Ok(CalloutAnswer {
            status: 404,
            ..Default::default()
        })
    };
    let init = answer(
        Some("s3"),
        json!({"jsonrpc":"2.0","id":0,"result": init_result(json!({"tools":{}}))}),
    );
    let (_, last, _) = again(&gw, vec![gone(), init, no_content(), gone()]);
    assert_eq!(reply(last).1["error"]["code"], UPSTREAM_ERROR);
}

fn sent_method(c: &Callout) -> String {
    serde_json::from_slice::<Value>(&c.body).unwrap_or_default()["method"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn discovery_merges_the_upstreams_and_promises_no_caching() {
    let gw = stateless_gw();
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &modern_head("server/discover", None), CLOCK_S);
    let body = modern_body(1, "server/discover", json!({}));
    let open = callouts(ex.on_request_body(&gw, body.as_bytes(), &clock()));
    assert_eq!(open.len(), 2, "every upstream is asked");
    // Each round: every callout answered (initialize; initialized).
    let round = |ex: &mut Exchange, answers: Vec<Result<CalloutAnswer, Failure>>| {
        let mut last = None;
        for (i, a) in answers.into_iter().enumerate() {
            last = ex.on_callout_response(&gw, i, a, &clock());
        }
        last.expect("the round ended")
    };
    let init = |sid: &str, caps: Value| {
        answer(
            Some(sid),
            json!({"jsonrpc":"2.0","id":0,"result": init_result(caps)}),
        )
    };
    let told = round(
        &mut ex,
        vec![
            init("s0", json!({"tools":{}})),
            init("s1", json!({"prompts":{}})),
        ],
    );
    assert_eq!(callouts(told).len(), 2);
    let (_, v, _) = reply(round(&mut ex, vec![no_content(), no_content()]));
    let r = &v["result"];
    assert_eq!(r["supportedVersions"][0], modern::VERSION);
    assert!(r["capabilities"]["tools"].is_object() && r["capabilities"]["prompts"].is_object());
    assert_eq!(
        (r["ttlMs"].clone(), r["cacheScope"].clone()),
        (json!(0), json!("private"))
    );
    assert_eq!(r["resultType"], "complete");
}

#[test]
fn without_stateless_clients_a_2026_request_gets_the_2025_answer() {
    let gw = Gateway::new(example(2));
    let (step, calls) = run_head(
        &gw,
        &modern_head("tools/list", None),
        &modern_body(1, "tools/list", json!({})),
        vec![],
    );
    assert!(calls.is_empty());
    let (status, v, _) = reply(step);
    assert_eq!(status, 400);
    // Not -32022: that would tell an auto client the gateway speaks the revision.
    assert_eq!(v["error"]["code"], code::INVALID_REQUEST);
}

#[test]
fn an_upstream_the_client_may_not_use_is_not_even_contacted() {
    use crate::access::{AccessConfig, Client, Lists, Rule};
    let mut config = example(2);
    config.stateless_clients = true;
    config.access = Some(AccessConfig {
        clients: vec![Client {
            name: "ci".into(),
            ..Default::default()
        }],
        rules: vec![Rule {
            clients: vec!["ci".into()],
            allow: Lists {
                upstreams: vec!["u0".into()],
                ..Default::default()
            },
            ..Default::default()
        }],
        bridge_key_sha256: None,
        oauth: None,
    });
    let gw = Gateway::new(config);
    let head = RequestHead {
        identity: Some(crate::access::Identity {
            client: "ci".into(),
            ..Default::default()
        }),
        ..modern_head("tools/call", Some("u1__echo"))
    };
    let body = modern_body(6, "tools/call", json!({"name": "u1__echo"}));
    let (step, calls) = run_head(&gw, &head, &body, vec![]);
    assert!(calls.is_empty(), "no session opened at u1");
    let (_, v, _) = reply(step);
    assert_eq!(v["error"]["code"], ACCESS_DENIED);
    assert!(v["error"]["message"].as_str().unwrap().contains("u1"));
}

#[test]
fn a_kept_session_is_its_clients_alone() {
    use crate::access::{AccessConfig, Client};
    let mut config = example(2);
    config.stateless_clients = true;
    let client = |name: &str| Client {
        name: name.into(),
        ..Default::default()
    };
    config.access = Some(AccessConfig {
        clients: vec![client("ci"), client("eve")],
        rules: vec![],
        bridge_key_sha256: None,
        oauth: None,
    });
    let gw = Gateway::with_cache(config, Box::new(MemoryCache::default()));
    let body = modern_body(
        5,
        "tools/call",
        json!({"name": "u1__echo", "arguments": {}}),
    );
    let first_call = |who: &str| {
        let mut ex = Exchange::new();
        let head = RequestHead {
            identity: Some(crate::access::Identity {
                client: who.into(),
                claims: None,
                ..Default::default()
            }),
            ..modern_head("tools/call", Some("u1__echo"))
        };
        ex.on_request_headers(&gw, &head, CLOCK_S);
        let first = callouts(ex.on_request_body(&gw, body.as_bytes(), &clock()));
        if sent_method(&first[0]) == "initialize" {
            let init = answer(
                Some(&format!("sid-{who}")),
                json!({"jsonrpc":"2.0","id":0,"result": init_result(json!({"tools":{}}))}),
            );
            ex.on_callout_response(&gw, 0, init, &clock());
            ex.on_callout_response(&gw, 0, no_content(), &clock());
            let done = answer(
                None,
                json!({"jsonrpc":"2.0","id":5,"result":{"content":[]}}),
            );
            ex.on_callout_response(&gw, 0, done, &clock());
        }
        first
    };
    assert_eq!(sent_method(&first_call("ci")[0]), "initialize");
    // eve gets a session of her own, not ci's …
    assert_eq!(sent_method(&first_call("eve")[0]), "initialize");
    // … and each, next time, their own.
    let again = first_call("ci");
    assert_eq!(sent_method(&again[0]), "tools/call");
    assert!(
        again[0]
            .headers
            .contains(&(SESSION_HEADER.into(), "sid-ci".into()))
    );
    let again = first_call("eve");
    assert!(
        again[0]
            .headers
            .contains(&(SESSION_HEADER.into(), "sid-eve".into()))
    );
}
