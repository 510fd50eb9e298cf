use super::*;

#[test]
fn an_upstream_redirect_becomes_an_error_and_its_cookies_and_cors_stay_behind() {
    let gw = Gateway::new(example(1));
    let token = single_session(&gw, json!({"tools":{}}));
    let mut ex = Exchange::new();
    ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
    let step = ex.on_request_body(
        &gw,
        br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"u0__go"}}"#,
        &clock(),
    );
    assert!(matches!(step, Step::Route(_)));
    let ResponseStep::Replace(r) = ex.on_response_headers(
        302,
        None,
        Some("https://user@evil.example/x?token=t0k"),
        Some("via_upstream"),
    ) else {
        panic!("a redirect was passed on")
    };
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (r.status, body["error"]["code"].clone()),
        (200, json!(UPSTREAM_ERROR))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("redirect")
    );
    let log = ex.take_log().join("\n");
    assert!(
        log.contains("https://evil.example") && !log.contains("t0k") && !log.contains("user@"),
        "{log}"
    );
    let names = [
        "Set-Cookie",
        "content-type",
        "Access-Control-Allow-Origin",
        "access-control-allow-credentials",
        "mcp-session-id",
    ];
    assert_eq!(
        stripped_response_headers(names.into_iter()),
        [
            "Set-Cookie",
            "Access-Control-Allow-Origin",
            "access-control-allow-credentials"
        ]
    );
}

#[test]
fn tls_and_refused_connections_are_named() {
    let (_, m) = describe_failure(
        "secure",
        503,
        Some(
            "upstream_reset_before_response_started{remote_connection_failure|TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end}",
        ),
        1000,
    );
    assert_eq!(
        m,
        "Upstream \"secure\" failed the TLS handshake (CERTIFICATE VERIFY FAILED)"
    );
    let (_, m) = describe_failure(
        "down",
        503,
        Some(
            "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}",
        ),
        1000,
    );
    assert_eq!(m, "Upstream \"down\" refused the connection");
    let body = b"upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end";
    assert_eq!(
        http_failure(503, body, 1000).to_string(),
        "TLS handshake failed (CERTIFICATE VERIFY FAILED)"
    );
}

#[test]
fn routed_failures_become_json_rpc_errors_naming_the_upstream() {
    let gw = Gateway::new(example(2));
    let token = session_token(&gw);
    for (status, details, code, needle) in [
        (
            503,
            "upstream_reset_before_response_started{connection_failure}",
            UPSTREAM_ERROR,
            "unreachable",
        ),
        (504, "response_timeout", UPSTREAM_TIMEOUT, "within 1000 ms"),
    ] {
        let mut ex = Exchange::new();
        ex.on_request_headers(&gw, &post(Some(&token)), CLOCK_S);
        ex.on_request_body(
            &gw,
            br#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"u0__x"}}"#,
            &clock(),
        );
        let ResponseStep::Replace(r) =
            ex.on_response_headers(status, Some("text/plain"), None, Some(details))
        else {
            panic!()
        };
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(v["id"], 11);
        assert_eq!(v["error"]["code"], code);
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains("\"u0\"") && m.contains(needle), "{m}");
    }
}
