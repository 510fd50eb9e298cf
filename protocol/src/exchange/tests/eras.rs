//! Upstreams of the 2026-07-28 revision: found, remembered, and spoken to for clients of
//! both eras; multi-round-trip requests through the gateway.

use super::*;
use crate::filter_config::UpstreamProtocol;
use crate::modern::{self, meta as keys};

/// `example(2)` with its upstreams' revisions found rather than configured, and a shared
/// cache to remember them in.
fn auto_gw(stateless: bool) -> (Gateway, MemoryCache) {
    let mut config = example(2);
    config.stateless_clients = stateless;
    for u in &mut config.upstreams {
        u.protocol = UpstreamProtocol::Auto;
    }
    let cache = MemoryCache::default();
    (Gateway::with_cache(config, Box::new(cache.clone())), cache)
}

fn sent(call: &Callout) -> Value {
    serde_json::from_slice(&call.body).unwrap_or(Value::Null)
}

fn header<'a>(call: &'a Callout, name: &str) -> Option<&'a str> {
    call.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn refused_initialize() -> Result<CalloutAnswer, Failure> {
    Ok(CalloutAnswer {
        status: 400,
        content_type: "application/json".into(),
        session_id: None,
        body: br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"Unsupported protocol version"}}"#.to_vec(),
    })
}

fn discovered(id: u64) -> Result<CalloutAnswer, Failure> {
    answer(
        None,
        json!({"jsonrpc": "2.0", "id": id, "result": {
            "supportedVersions": [modern::VERSION], "capabilities": {"tools": {}},
            "resultType": "complete", "ttlMs": 0, "cacheScope": "private",
            "_meta": {keys::SERVER_INFO: {"name": "modern-up", "version": "2"}}}}),
    )
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"elicitation":{}},"clientInfo":{"name":"legacy-client","version":"1"}}}"#;

/// A 2025 client's session over u0 (2025) and u1 (refuses initialize, speaks 2026-07-28).
fn legacy_session_with_a_modern_upstream(gw: &Gateway) -> String {
    let mut ex = Exchange::new();
    assert_eq!(
        ex.on_request_headers(gw, &post(None), CLOCK_S),
        Step::AwaitBody
    );
    // 1. initialize to both: nothing is known yet, and 2025 comes first for a 2025 client.
    let first = callouts(ex.on_request_body(gw, INIT.as_bytes(), &clock()));
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|c| sent(c)["method"] == "initialize"));
    ex.on_callout_response(
        gw,
        0,
        answer(
            Some("s0"),
            json!({"jsonrpc":"2.0","id":1,"result": init_result(json!({"tools":{}}))}),
        ),
        &clock(),
    );
    // 2. u1 refused: asked server/discover, with the client's capabilities in _meta.
    let second = callouts(
        ex.on_callout_response(gw, 1, refused_initialize(), &clock())
            .expect("a second round"),
    );
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].cluster, "upstream-u1");
    let discover = sent(&second[0]);
    assert_eq!(discover["method"], "server/discover");
    assert_eq!(
        discover["params"]["_meta"][keys::CLIENT_CAPABILITIES],
        json!({"elicitation": {}})
    );
    assert_eq!(header(&second[0], "mcp-method"), Some("server/discover"));
    let step = ex
        .on_callout_response(gw, 0, discovered(0), &clock())
        .expect("the session");
    let (status, body, _) = reply(step.clone());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["capabilities"]["tools"], json!({}));
    let log = ex.take_log().join("\n");
    assert!(
        log.contains(r#"upstream "u1" speaks MCP 2026-07-28 only"#),
        "{log}"
    );
    session_header(step)
}

#[test]
fn a_2025_client_reaches_an_upstream_that_refuses_initialize_in_its_revision() {
    let (gw, _cache) = auto_gw(false);
    let token = legacy_session_with_a_modern_upstream(&gw);
    let session = session::open(&gw.key, &token, CLOCK_S, 0).unwrap();
    let u1 = session.upstream("u1").unwrap();
    assert_eq!(u1.protocol_version, modern::VERSION);
    assert_eq!(u1.session_id, None);
    assert!(session.client.is_some(), "what u1 is told on every request");

    // A call to u1: made by the filter, with the revision's _meta and routing headers, no
    // session; the answer loses the revision's result fields.
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    let body = r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"u1__echo","arguments":{}}}"#;
    let calls = callouts(ex.on_request_body(&gw, body.as_bytes(), &clock()));
    assert_eq!(calls[0].cluster, "upstream-u1");
    let call = sent(&calls[0]);
    assert_eq!(call["params"]["name"], "echo");
    assert_eq!(
        call["params"]["_meta"][keys::PROTOCOL_VERSION],
        modern::VERSION
    );
    assert_eq!(
        call["params"]["_meta"][keys::CLIENT_INFO]["name"],
        "legacy-client"
    );
    assert_eq!(header(&calls[0], "mcp-name"), Some("echo"));
    assert_eq!(
        header(&calls[0], "mcp-protocol-version"),
        Some(modern::VERSION)
    );
    assert_eq!(header(&calls[0], SESSION_HEADER), None);
    let result = json!({"jsonrpc": "2.0", "id": 4, "result": {"content": [], "resultType": "complete",
        "_meta": {keys::SERVER_INFO: {"name": "modern-up"}}}});
    let (_, body, _) = reply(
        ex.on_callout_response(&gw, 0, answer(None, result), &clock())
            .unwrap(),
    );
    assert_eq!(body["result"], json!({"content": []}));

    // input_required cannot reach a 2025 client: an error naming the upstream.
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    ex.on_request_body(&gw, body_of("u1__confirm").as_bytes(), &clock());
    let asks = json!({"jsonrpc": "2.0", "id": 4, "result": {"resultType": "input_required",
        "inputRequests": {"q": {"method": "elicitation/create", "params": {}}}}});
    let (_, body, _) = reply(
        ex.on_callout_response(&gw, 0, answer(None, asks), &clock())
            .unwrap(),
    );
    assert_eq!(body["error"]["code"], UPSTREAM_ERROR);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(r#"Upstream "u1""#)
    );

    // Notifications and DELETE go to the 2025 upstream only.
    let (step, calls) = run(
        &gw,
        Some(&token),
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
        vec![no_content()],
    );
    assert_eq!(reply(step).0, 202);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].cluster, "upstream-u0");
}

#[test]
fn what_an_upstream_speaks_is_remembered_and_asked_first_next_time() {
    let (gw, _cache) = auto_gw(false);
    legacy_session_with_a_modern_upstream(&gw);
    // The next session asks u1 server/discover at once, u0 initialize.
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(None), CLOCK_S);
    let first = callouts(ex.on_request_body(&gw, INIT.as_bytes(), &clock()));
    let methods: Vec<Value> = first.iter().map(|c| sent(c)["method"].clone()).collect();
    assert_eq!(methods, [json!("initialize"), json!("server/discover")]);
}

fn body_of(name: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": name, "arguments": {}}})
        .to_string()
}

fn modern_head(name: &str) -> RequestHead {
    RequestHead {
        protocol_version: Some(modern::VERSION.into()),
        mcp_method: Some("tools/call".into()),
        mcp_name: Some(name.into()),
        ..post(None)
    }
}

fn modern_call(name: &str, state: Option<&str>) -> String {
    let mut params = json!({"name": name, "arguments": {},
        "_meta": {keys::PROTOCOL_VERSION: modern::VERSION, keys::CLIENT_CAPABILITIES: {"elicitation": {}}}});
    if let Some(s) = state {
        params["requestState"] = json!(s);
        params["inputResponses"] = json!({"q": {"action": "accept", "content": {}}});
    }
    json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": params}).to_string()
}

fn no_content() -> Result<CalloutAnswer, Failure> {
    Ok(CalloutAnswer {
        status: 202,
        ..Default::default()
    })
}

#[test]
fn a_stateless_client_reaches_a_modern_upstream_without_a_session_and_its_state_is_sealed() {
    let (gw, _cache) = auto_gw(true);
    // 1. Unknown: asked server/discover (no initialize, nothing to close after).
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &modern_head("u1__confirm"), CLOCK_S);
    let probe =
        callouts(ex.on_request_body(&gw, modern_call("u1__confirm", None).as_bytes(), &clock()));
    assert_eq!(sent(&probe[0])["method"], "server/discover");
    let call = callouts(
        ex.on_callout_response(&gw, 0, discovered(0), &clock())
            .unwrap(),
    );
    assert_eq!(sent(&call[0])["params"]["name"], "confirm");
    assert_eq!(header(&call[0], SESSION_HEADER), None);
    let asks = json!({"jsonrpc": "2.0", "id": 8, "result": {"resultType": "input_required",
        "inputRequests": {"q": {"method": "elicitation/create", "params": {}}},
        "requestState": "upstream-own-state"}});
    let (_, body, _) = reply(
        ex.on_callout_response(&gw, 0, answer(None, asks), &clock())
            .unwrap(),
    );
    assert_eq!(body["result"]["resultType"], "input_required");
    let sealed = body["result"]["requestState"].as_str().unwrap().to_string();
    assert!(sealed.starts_with("sbr1."), "{body}");
    assert!(!sealed.contains("upstream-own-state"));

    // 2. The retry: known and fresh now, so the call goes straight out, with the upstream's
    //    own state again.
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &modern_head("u1__confirm"), CLOCK_S);
    let call = callouts(ex.on_request_body(
        &gw,
        modern_call("u1__confirm", Some(&sealed)).as_bytes(),
        &clock(),
    ));
    assert_eq!(call.len(), 1);
    assert_eq!(
        sent(&call[0])["params"]["requestState"],
        "upstream-own-state"
    );
    assert_eq!(
        sent(&call[0])["params"]["inputResponses"]["q"]["action"],
        "accept"
    );

    // 3. Forged, or carried to another tool: refused, no upstream asked.
    for (name, state) in [
        ("u1__confirm", "upstream-own-state"),
        ("u1__other", sealed.as_str()),
        ("u0__confirm", sealed.as_str()),
    ] {
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &modern_head(name), CLOCK_S);
        let step = ex.on_request_body(&gw, modern_call(name, Some(state)).as_bytes(), &clock());
        let (_, body, _) = reply(step);
        assert_eq!(
            body["error"]["code"],
            code::INVALID_PARAMS,
            "{name}: {body}"
        );
    }
}

#[test]
fn an_upstream_that_does_not_discover_gets_initialize_and_is_remembered_as_2025() {
    let (gw, _cache) = auto_gw(true);
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &modern_head("u0__echo"), CLOCK_S);
    let probe =
        callouts(ex.on_request_body(&gw, modern_call("u0__echo", None).as_bytes(), &clock()));
    assert_eq!(sent(&probe[0])["method"], "server/discover");
    let no_session = Ok(CalloutAnswer {
        status: 400,
        content_type: "application/json".into(),
        body: br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: No valid session ID provided"}}"#.to_vec(),
        ..Default::default()
    });
    let init = callouts(
        ex.on_callout_response(&gw, 0, no_session, &clock())
            .unwrap(),
    );
    assert_eq!(sent(&init[0])["method"], "initialize");
    let log = ex.take_log().join("\n");
    assert!(
        log.contains(r#"upstream "u0" does not speak MCP 2026-07-28"#),
        "{log}"
    );
    // Next time, initialize at once.
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &modern_head("u0__echo"), CLOCK_S);
    let first =
        callouts(ex.on_request_body(&gw, modern_call("u0__echo", None).as_bytes(), &clock()));
    assert_eq!(sent(&first[0])["method"], "initialize");
}

#[test]
fn a_stateless_list_promises_what_every_upstream_promises() {
    let (gw, _cache) = auto_gw(true);
    let list = |hints: [(u64, &str); 2]| {
        let mut ex = Exchange::new();
        let head = RequestHead {
            protocol_version: Some(modern::VERSION.into()),
            mcp_method: Some("tools/list".into()),
            ..post(None)
        };
        ex.on_request_headers(&gw, &head, CLOCK_S);
        let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {
            "_meta": {keys::PROTOCOL_VERSION: modern::VERSION}}});
        let mut step = ex.on_request_body(&gw, body.to_string().as_bytes(), &clock());
        if let Step::AwaitCallouts(c) = &step
            && sent(&c[0])["method"] == "server/discover"
        {
            ex.on_callout_response(&gw, 0, discovered(0), &clock());
            step = ex
                .on_callout_response(&gw, 1, discovered(0), &clock())
                .unwrap();
        }
        let calls = callouts(step);
        assert_eq!(calls.len(), 2, "both lists, no session");
        let mut last = None;
        for (i, (ttl, scope)) in hints.iter().enumerate() {
            let page = json!({"jsonrpc": "2.0", "id": 3, "result": {"tools": [{"name": "t", "inputSchema": {}}],
                "resultType": "complete", "ttlMs": ttl, "cacheScope": scope}});
            last = ex.on_callout_response(&gw, i, answer(None, page), &clock());
        }
        reply(last.unwrap()).1["result"].clone()
    };
    let both_public = list([(60_000, "public"), (30_000, "public")]);
    assert_eq!(both_public["ttlMs"], 30_000, "{both_public}");
    assert_eq!(both_public["cacheScope"], "public");
    assert_eq!(both_public["resultType"], "complete");
    let one_private = list([(60_000, "public"), (90_000, "private")]);
    assert_eq!(one_private["ttlMs"], 60_000);
    assert_eq!(one_private["cacheScope"], "private");
}

#[test]
fn a_subscription_at_an_upstreams_endpoint_is_held_to_the_resource_rules() {
    let mut config = guarded().config;
    config.stateless_clients = true;
    for u in &mut config.upstreams {
        u.protocol = UpstreamProtocol::Auto;
    }
    let gw = Gateway::new(config);
    let listen = |uri: &str| {
        let mut ex = Exchange::new();
        let head = RequestHead {
            protocol_version: Some(modern::VERSION.into()),
            mcp_method: Some("subscriptions/listen".into()),
            ..head_at("ci", "POST", "/upstreams/u0/mcp", None)
        };
        ex.on_request_headers(&gw, &head, CLOCK_S);
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen", "params": {
            "_meta": {keys::PROTOCOL_VERSION: modern::VERSION},
            "notifications": {"resourceSubscriptions": [uri]}}});
        ex.on_request_body(&gw, body.to_string().as_bytes(), &clock())
    };
    // u0+file:///secret/* is denied to every client: no stream of its updates either.
    let (_, body, _) = reply(listen("file:///secret/plans"));
    assert_eq!(body["error"]["code"], ACCESS_DENIED, "{body}");
    match listen("file:///public/notes") {
        Step::Route(r) => assert_eq!(r.upstream, "u0"),
        other => panic!("expected the stream routed to u0, got {other:?}"),
    }
}
