//! MCP authorization in the exchange: challenges, scopes, and upstream tokens got by token
//! exchange, driven from the headers on as the shells drive it.

use super::*;
use crate::access::{AccessConfig, Client, JWT_PAYLOAD_HEADER, Lists};
use crate::oauth::{OAuth, ScopeRule};
use crate::token_exchange::{ClientAuth, TokenExchange};
use base64::Engine;

const ISSUER: &str = "https://idp.example";
const AS_CLUSTER: &str = "oauth-token-0";

/// `example(2)`: OAuth tokens of one issuer; every upstream needs `mcp`, the tool `u0__add`
/// needs `write` too; `u1` gets tokens of its own by exchange. Lists and tokens are cached.
fn authorizing() -> Gateway {
    let mut config = example(2);
    config.upstream_path = "/upstreams".into();
    config.access = Some(AccessConfig {
        clients: vec![Client {
            name: "oauth".into(),
            jwt_issuer: Some(ISSUER.into()),
            ..Default::default()
        }],
        rules: vec![],
        bridge_key_sha256: None,
        oauth: Some(OAuth {
            metadata: "https://gw.example/.well-known/oauth-protected-resource".into(),
            scope: "mcp".into(),
            require: vec![
                ScopeRule {
                    scope: "mcp".into(),
                    on: Lists {
                        upstreams: vec!["*".into()],
                        ..Default::default()
                    },
                },
                ScopeRule {
                    scope: "write".into(),
                    on: Lists {
                        tools: vec!["u0__add".into()],
                        ..Default::default()
                    },
                },
            ],
        }),
    });
    config.credential_headers = vec!["authorization".into()];
    config.upstreams[1].token_exchange = Some(TokenExchange {
        cluster: AS_CLUSTER.into(),
        authority: "idp.example".into(),
        path: "/token".into(),
        endpoint: "https://idp.example/token".into(),
        audience: Some("u1-api".into()),
        resource: None,
        scope: String::new(),
        client_id: "gateway".into(),
        client_auth: ClientAuth::Secret {
            secret: "s3cret".into(),
        },
        timeout_ms: 2000,
    });
    Gateway::with_cache(config, Box::new(BoundedCache::new(1 << 20)))
}

/// The headers of a request with a token `jwt_authn` verified: its payload, and the token.
fn with_token<'a>(
    scope: &str,
    token: &'a str,
    rest: &[(&'a str, &'a str)],
) -> Vec<(String, String)> {
    let claims =
        json!({"iss": ISSUER, "sub": "alice", "aud": "https://gw.example/mcp", "scope": scope});
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut h: Vec<(String, String)> = rest
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    h.push(("authorization".into(), format!("Bearer {token}")));
    h.push((JWT_PAYLOAD_HEADER.into(), payload));
    h
}

fn head(method: &str, path: &str, session: Option<&str>) -> Vec<(String, String)> {
    let mut h = vec![
        (":method".to_string(), method.to_string()),
        (":path".to_string(), path.to_string()),
    ];
    if let Some(s) = session {
        h.push((SESSION_HEADER.into(), s.into()));
    }
    h
}

/// What went out, and the final step.
struct Drive {
    step: Step,
    calls: Vec<Callout>,
    log: Vec<String>,
}

/// Runs one request through arrival, body and callouts; `respond` answers each callout.
fn drive(
    gw: &Gateway,
    headers: Vec<(String, String)>,
    body: &str,
    at: &Clock,
    respond: &dyn Fn(&Callout) -> Result<CalloutAnswer, Failure>,
) -> Drive {
    let mut ex = Exchange::new();
    let arrival = ex.on_arrival(gw, Headers(&headers), || None, at);
    let mut step = arrival.step;
    if step == Step::AwaitBody {
        step = ex.on_request_body(gw, body.as_bytes(), at);
    }
    let mut calls = Vec::new();
    while let Step::AwaitCallouts(batch) = step.clone() {
        let mut next = None;
        for c in batch {
            let answer = respond(&c);
            calls.push(c.clone());
            if let Some(s) = ex.on_callout_response(gw, c.call, answer, at) {
                next = Some(s);
            }
        }
        step = next.expect("the last callout's answer gives the next step");
    }
    Drive {
        step,
        calls,
        log: ex.take_log(),
    }
}

fn token_answer(token: &str, expires_in: u64) -> Result<CalloutAnswer, Failure> {
    answer(
        None,
        json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in,
               "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"}),
    )
}

/// Upstreams answer `initialize` and lists; the authorization server issues `up-token-1`.
fn upstreams(c: &Callout) -> Result<CalloutAnswer, Failure> {
    if c.cluster == AS_CLUSTER {
        return token_answer("up-token-1", 300);
    }
    let body: Value = serde_json::from_slice(&c.body).unwrap_or(Value::Null);
    let result = match body["method"].as_str() {
        Some("initialize") => init_result(json!({"tools": {}})),
        Some("tools/list") if c.cluster == "upstream-u0" => {
            json!({"tools": [{"name": "add", "inputSchema": {"type": "object"}},
                             {"name": "whoami", "inputSchema": {"type": "object"}}]})
        }
        Some("tools/list") => json!({"tools": [{"name": "x", "inputSchema": {"type": "object"}}]}),
        _ => json!({}),
    };
    answer(
        Some(&format!("sid-{}", c.cluster)),
        json!({"jsonrpc": "2.0", "id": body["id"], "result": result}),
    )
}

fn header<'a>(c: &'a Callout, name: &str) -> Option<&'a str> {
    c.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

fn call(tool: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
        .to_string()
}

/// `alice`'s `initialize` at `/mcp` with the token `client-token` (scope `mcp`); `respond`
/// answers the callouts.
fn sign_in(gw: &Gateway, respond: &dyn Fn(&Callout) -> Result<CalloutAnswer, Failure>) -> Drive {
    let h = with_token(
        "mcp",
        "client-token",
        &[(":method", "POST"), (":path", "/mcp")],
    );
    drive(gw, h, INIT, &clock(), respond)
}

/// The headers of `alice`'s request in `session` with `token` of `scope`.
fn in_session(scope: &str, token: &str, session: &str) -> Vec<(String, String)> {
    let rest = [
        (":method", "POST"),
        (":path", "/mcp"),
        (SESSION_HEADER, session),
    ];
    with_token(scope, token, &rest)
}

#[test]
fn without_a_token_the_401_names_the_endpoints_metadata_and_the_scope() {
    let gw = authorizing();
    let d = drive(&gw, head("POST", "/mcp", None), INIT, &clock(), &upstreams);
    let (status, body, headers) = reply(d.step);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], -32600);
    assert!(headers.contains(&(
        "www-authenticate".into(),
        "Bearer resource_metadata=\"https://gw.example/.well-known/oauth-protected-resource/mcp\", scope=\"mcp\"".into()
    )));
    // An upstream's own endpoint names its own metadata.
    let d = drive(
        &gw,
        head("POST", "/upstreams/u1/mcp", None),
        INIT,
        &clock(),
        &upstreams,
    );
    let (_, _, headers) = reply(d.step);
    assert!(headers.iter().any(|(k, v)| k == "www-authenticate"
        && v.contains("oauth-protected-resource/upstreams/u1/mcp\"")));
    assert!(
        d.calls.is_empty(),
        "nothing reaches an upstream or the authorization server"
    );
}

#[test]
fn a_token_envoy_did_not_verify_is_invalid_and_the_metadata_is_public() {
    let gw = authorizing();
    let mut h = head("POST", "/mcp", None);
    h.push(("authorization".into(), "Bearer forged.or.expired".into()));
    let (status, _, headers) = reply(drive(&gw, h, INIT, &clock(), &upstreams).step);
    assert_eq!(status, 401);
    let challenge = &headers
        .iter()
        .find(|(k, _)| k == "www-authenticate")
        .unwrap()
        .1;
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(challenge.contains("resource_metadata="));
    // A client that makes up the payload header is stripped of it by Envoy before this;
    // here, the metadata passes without credentials.
    let d = drive(
        &gw,
        head("GET", "/.well-known/oauth-protected-resource/mcp", None),
        "",
        &clock(),
        &upstreams,
    );
    assert_eq!(d.step, Step::PassThrough);
}

#[test]
fn scopes_hide_tools_and_a_call_without_one_is_told_to_step_up() {
    let gw = authorizing();
    let session = session_header(sign_in(&gw, &upstreams).step);
    let at = |scope: &str| in_session(scope, "client-token", &session);
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let (_, body, _) = reply(drive(&gw, at("mcp"), list, &clock(), &upstreams).step);
    let names: Vec<&str> = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["u0__whoami", "u1__x"], "u0__add needs write");

    let d = drive(&gw, at("mcp"), &call("u0__add"), &clock(), &upstreams);
    let (status, body, headers) = reply(d.step);
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], ACCESS_DENIED);
    assert_eq!(body["id"], 7);
    let challenge = &headers
        .iter()
        .find(|(k, _)| k == "www-authenticate")
        .unwrap()
        .1;
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\", scope=\"mcp write\""),
        "every scope the call needs: {challenge}"
    );
    // The same user with the scope, in the same session: routed.
    let d = drive(&gw, at("mcp write"), &call("u0__add"), &clock(), &upstreams);
    assert!(
        matches!(d.step, Step::Route(ref r) if r.upstream == "u0"),
        "{:?}",
        d.step
    );
    // A token without `mcp` may use no upstream: not even the session's tools are listed.
    let (_, body, _) = reply(drive(&gw, at("openid"), list, &clock(), &upstreams).step);
    assert_eq!(body["result"]["tools"], json!([]));
}

#[test]
fn an_upstream_gets_an_exchanged_token_once_per_user_until_it_nears_expiry() {
    let gw = authorizing();
    let init = sign_in(&gw, &upstreams);
    // The exchange first, then both initializes: u1's with its own token, u0's with none.
    let exchange = &init.calls[0];
    assert_eq!(exchange.cluster, AS_CLUSTER);
    assert!(header(exchange, "authorization").is_some_and(|v| v.starts_with("Basic ")));
    let form = String::from_utf8_lossy(&exchange.body).to_string();
    assert!(form.contains("subject_token=client-token") && form.contains("audience=u1-api"));
    let u1 = init
        .calls
        .iter()
        .find(|c| c.cluster == "upstream-u1")
        .unwrap();
    assert_eq!(header(u1, "authorization"), Some("Bearer up-token-1"));
    let u0 = init
        .calls
        .iter()
        .find(|c| c.cluster == "upstream-u0")
        .unwrap();
    assert_eq!(
        header(u0, "authorization"),
        None,
        "the client's token goes nowhere"
    );
    let session = session_header(init.step);

    // A routed call: the cached token, no exchange.
    let at = |clock: &Clock| {
        let d = drive(
            &gw,
            in_session("mcp", "client-token-2", &session),
            &call("u1__x"),
            clock,
            &|c| {
                assert_eq!(c.cluster, AS_CLUSTER, "only the exchange is a callout");
                token_answer("up-token-2", 300)
            },
        );
        let Step::Route(r) = d.step else {
            panic!("routed: {:?}", d.step)
        };
        let auth = r
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .and_then(|(_, v)| v.clone());
        (auth, d.calls.len())
    };
    assert_eq!(at(&clock()), (Some("Bearer up-token-1".into()), 0));
    // 300 s tokens are used for 240 s: at 241 s, a new exchange (with the token the
    // client presents now).
    let later = Clock {
        now_ms: clock().now_ms + 241_000,
        now_s: clock().now_s + 241,
        ..clock()
    };
    assert_eq!(at(&later), (Some("Bearer up-token-2".into()), 1));
}

#[test]
fn an_authorization_server_that_refuses_is_the_clients_401_or_an_error_naming_the_upstream() {
    let gw = authorizing();
    let init = sign_in(&gw, &|c| {
        if c.cluster == AS_CLUSTER {
            // The fan-out goes on without u1's part.
            Err(Failure::Unreachable)
        } else {
            upstreams(c)
        }
    });
    assert!(
        init.log
            .iter()
            .any(|l| l.contains("token exchange for upstream \"u1\""))
    );
    assert!(
        !init.calls.iter().any(|c| c.cluster == "upstream-u1"),
        "u1 is not called without its token"
    );
    let (status, body, _) = reply(init.step);
    assert_eq!(status, 200, "the session opens over u0: {body}");
    // A session over both; its cached token expired when the calls below are made.
    let init = sign_in(&gw, &upstreams);
    let session = session_header(init.step);
    let later = Clock {
        now_ms: clock().now_ms + 300_000,
        now_s: clock().now_s + 300,
        ..clock()
    };
    let headers = || in_session("mcp", "client-token", &session);
    let refused = |status: u16, body: Value| {
        move |_: &Callout| {
            Ok(CalloutAnswer {
                status,
                content_type: "application/json".into(),
                session_id: None,
                body: body.to_string().into_bytes(),
            })
        }
    };
    let d = drive(
        &gw,
        headers(),
        &call("u1__x"),
        &later,
        &refused(
            400,
            json!({"error": "invalid_grant", "error_description": "token revoked"}),
        ),
    );
    let (status, body, h) = reply(d.step);
    assert_eq!(status, 401, "{body}");
    assert!(
        h.iter()
            .any(|(k, v)| k == "www-authenticate" && v.contains("invalid_token"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("token revoked")
    );
    let d = drive(
        &gw,
        headers(),
        &call("u1__x"),
        &later,
        &refused(403, json!({"error": "access_denied"})),
    );
    let (status, body, _) = reply(d.step);
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!(ACCESS_DENIED))
    );
    let d = drive(
        &gw,
        headers(),
        &call("u1__x"),
        &later,
        &refused(401, json!({"error": "invalid_client"})),
    );
    let (status, body, _) = reply(d.step);
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (200, json!(UPSTREAM_ERROR))
    );
    assert_eq!(body["id"], 7);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"u1\"") && message.contains("invalid_client"),
        "{message}"
    );
}

#[test]
fn without_a_client_token_only_a_cached_one_serves() {
    let gw = authorizing();
    // A request the bridge makes for the client: its identity, no token of the client's.
    let mut h = head("POST", "/mcp", None);
    let claims = json!({"iss": ISSUER, "sub": "bob", "scope": "mcp"});
    h.push((
        JWT_PAYLOAD_HEADER.into(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string()),
    ));
    let d = drive(&gw, h, INIT, &clock(), &upstreams);
    assert!(
        !d.calls.iter().any(|c| c.cluster == AS_CLUSTER),
        "nothing to exchange"
    );
    assert!(
        d.log
            .iter()
            .any(|l| l.contains("no client token to exchange"))
    );
}

#[test]
fn users_of_two_issuers_with_one_subject_share_no_token() {
    let mallory = crate::access::Identity {
        client: "oauth".into(),
        claims: Some(json!({"iss": "https://other-idp.example", "sub": "alice"})),
        ..Default::default()
    };
    let alice = crate::access::Identity {
        claims: Some(json!({"iss": ISSUER, "sub": "alice"})),
        ..mallory.clone()
    };
    assert_eq!(
        alice.key(),
        mallory.key(),
        "the audit log names both oauth/alice"
    );
    assert_ne!(alice.binding(), mallory.binding());
}
