use super::*;
use crate::access::{AccessConfig, Client, IDENTITY_HEADER};
use crate::filter_config::{Cors, PassThrough, ROUTE_HEADER};

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `example(1)` whose only client is `lan` (by source address), a CORS origin, a
/// pass-through of `X-Token`, and the client's `Authorization` as a credential header.
fn admitting() -> Gateway {
    let mut config = example(1);
    config.get_stream = true;
    config.access = Some(AccessConfig {
        clients: vec![Client {
            name: "lan".into(),
            cidrs: vec!["10.0.0.0/8".into()],
            ..Default::default()
        }],
        rules: vec![],
        bridge_key_sha256: None,
        oauth: None,
    });
    config.cors = Some(Cors {
        origins: vec!["https://app.example".into()],
        methods: "GET, POST".into(),
        headers: "content-type".into(),
        max_age_s: 60,
    });
    config.upstreams[0].pass_through = vec![PassThrough {
        source: "x-token".into(),
        target: "authorization".into(),
        format: "Bearer {value}".into(),
    }];
    config.credential_headers = vec!["authorization".into(), "x-token".into()];
    Gateway::new(config)
}

fn arrive(gw: &Gateway, pairs: &[(&str, &str)], source: &str) -> (Exchange, Arrival) {
    let mut ex = Exchange::new();
    let h = headers(pairs);
    let arrival = ex.on_arrival(gw, Headers(&h), || source_ip(source), &clock());
    (ex, arrival)
}

#[test]
fn a_preflight_is_answered_before_credentials_are_asked_for() {
    let gw = admitting();
    let (ex, a) = arrive(
        &gw,
        &[
            (":method", "OPTIONS"),
            (":path", "/mcp"),
            ("Origin", "https://app.example"),
            ("access-control-request-method", "POST"),
        ],
        "192.0.2.1:5000",
    );
    let (status, _, h) = reply(a.step);
    assert_eq!(status, 204);
    assert!(h.contains(&("access-control-max-age".into(), "60".into())));
    assert!(
        ex.cors().is_empty(),
        "the preflight's grants are in its reply, not added twice"
    );
}

#[test]
fn another_origin_is_403_and_an_unknown_client_401_with_the_cors_grants_to_read_it() {
    let gw = admitting();
    let (_, a) = arrive(
        &gw,
        &[
            (":method", "POST"),
            (":path", "/mcp"),
            ("origin", "https://evil.example"),
        ],
        "10.1.2.3:5000",
    );
    let (status, body, _) = reply(a.step);
    assert_eq!(status, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("evil.example")
    );

    let (ex, a) = arrive(
        &gw,
        &[
            (":method", "POST"),
            (":path", "/mcp"),
            ("origin", "https://app.example"),
        ],
        "192.0.2.1:5000",
    );
    let (status, _, h) = reply(a.step);
    assert_eq!(status, 401);
    assert!(h.iter().any(|(k, _)| k == "www-authenticate"));
    assert!(
        ex.cors()
            .iter()
            .any(|(k, v)| k == "access-control-allow-origin" && v == "https://app.example")
    );
}

#[test]
fn an_admitted_request_loses_the_route_selector_and_its_credentials_but_keeps_pass_through() {
    let gw = admitting();
    let (mut ex, a) = arrive(
        &gw,
        &[
            (":method", "POST"),
            (":path", "/mcp"),
            (ROUTE_HEADER, "u0"),
            ("Authorization", "Bearer client-secret"),
            ("X-Token", "t0k"),
            (SESSION_HEADER, "sb1.whatever"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ],
        "10.1.2.3:5000",
    );
    assert_eq!(a.step, Step::AwaitBody);
    assert_eq!(a.remove, [ROUTE_HEADER, "authorization", "x-token"]);
    assert!(a.set.is_empty());
    // The pass-through value reaches the upstream as configured: the initialize fan-out.
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;
    let calls = callouts(ex.on_request_body(&gw, init.as_bytes(), &clock()));
    assert!(
        calls[0]
            .headers
            .contains(&("authorization".into(), "Bearer t0k".into()))
    );
    // The gateway's own calls carry the client's trace context, so they join its trace.
    assert!(calls[0].headers.contains(&(
        "traceparent".into(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()
    )));
}

#[test]
fn what_goes_to_the_bridge_carries_the_sealed_identity_found_here() {
    let gw = admitting();
    let (_, a) = arrive(
        &gw,
        &[
            (":method", "GET"),
            (":path", "/sse"),
            (IDENTITY_HEADER, "forged"),
        ],
        "10.1.2.3:5000",
    );
    assert_eq!(a.step, Step::PassThrough);
    let (name, sealed) = &a.set[0];
    assert_eq!(name, IDENTITY_HEADER);
    assert_ne!(sealed, "forged");
    let who = crate::access::open_relayed(&gw.key, sealed, CLOCK_S, gw.config.session_max_age_s)
        .expect("the sealed identity opens");
    assert_eq!(who.client, "lan");
}

#[test]
fn the_outcome_is_recorded_once_with_the_clients_identity() {
    let mut config = example(1);
    config.audit = true;
    let gw = Gateway::new(config);
    let (mut ex, a) = arrive(
        &gw,
        &[(":method", "DELETE"), (":path", "/mcp")],
        "10.1.2.3:1",
    );
    assert_eq!(reply(a.step).0, 400);
    let outcome = crate::audit::Outcome {
        status: 400,
        rpc_code: Some(code::INVALID_REQUEST),
        details: None,
    };
    let first = ex
        .record(&gw, outcome, CLOCK_S * 1000 + 5)
        .expect("recorded");
    assert!(
        first
            .properties
            .contains(&("switchboard_class", "client".into()))
    );
    assert!(ex.record(&gw, outcome, CLOCK_S * 1000 + 9).is_none());
}

/// `admitting()` with host routes `wiki` (and `wiki.t.example`) under the domain
/// `t.example`, a rule that lets `lan` use that route only, and the gateway's API-key
/// header to strip.
fn host_routed() -> Gateway {
    use crate::access::{Lists, Rule};
    use crate::filter_config::{HostRoute, HostRoutes};
    let mut config = admitting().config.clone();
    if let Some(access) = config.access.as_mut() {
        access.rules = vec![Rule {
            clients: vec!["lan".into()],
            allow: Lists {
                hosts: vec!["wiki".into()],
                ..Default::default()
            },
            ..Default::default()
        }];
    }
    config.host_routes = Some(HostRoutes {
        routes: vec![
            HostRoute {
                name: "wiki".into(),
                hosts: vec!["wiki".into(), "wiki.t.example".into()],
            },
            HostRoute {
                name: "docs".into(),
                hosts: vec!["docs.t.example".into()],
            },
        ],
        strip_headers: vec!["x-token".into()],
        domain: Some("t.example".into()),
        exclusive: false,
    });
    Gateway::new(config)
}

#[test]
fn a_host_route_passes_untouched_after_its_client_and_rule_are_checked() {
    let gw = host_routed();
    let request = |host: &str, source: &str| {
        arrive(
            &gw,
            &[
                (":method", "POST"),
                (":path", "/anything?x=1"),
                (":authority", host),
                ("x-token", "secret"),
                ("authorization", "Bearer for-the-upstream"),
                ("origin", "https://evil.example"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "search"),
            ],
            source,
        )
    };
    // Any case, a port and a final dot: the same route. Origin and CORS are the server's.
    let (ex, a) = request("WIKI.t.example.:8443", "10.1.2.3:5000");
    assert_eq!(a.step, Step::PassThrough);
    assert!(ex.host_routed());
    assert_eq!(
        a.remove,
        vec!["x-token".to_string()],
        "only what the gateway consumed"
    );
    assert!(ex.cors().is_empty());
    assert_eq!(ex.audit().upstream, "host:wiki");
    assert_eq!(
        (ex.audit().method.as_str(), ex.audit().name.as_str()),
        ("tools/call", "search")
    );
    // The rule names routes: `lan` may not use `docs`; a stranger is not let in at all.
    let (_, a) = request("docs.t.example", "10.1.2.3:5000");
    let (status, body, _) = reply(a.step);
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("host route")
    );
    let (_, a) = request("wiki", "192.0.2.1:5000");
    assert_eq!(reply(a.step).0, 401);
    // Unknown under the domain: 404; any other name is the gateway's own endpoint.
    let (_, a) = request("nope.t.example", "10.1.2.3:5000");
    assert_eq!(reply(a.step).0, 404);
    let (ex, _) = request("gateway.example", "10.1.2.3:5000");
    assert!(!ex.host_routed());
}
