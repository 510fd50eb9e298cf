use super::*;

fn env(pairs: &[(&str, &str)]) -> Environment {
    Environment::from_pairs(pairs)
}

fn err(text: &str) -> ConfigError {
    load_str(text, "gw.yaml", &env(&[])).unwrap_err()
}

#[test]
fn minimal_file_gets_defaults() {
    let g = load_str(
        "upstreams:\n  - name: a\n    url: http://127.0.0.1:3000/mcp\n",
        "gw.yaml",
        &env(&[]),
    )
    .unwrap();
    assert_eq!(g.server.mcp_path, "/mcp");
    assert_eq!(g.server.listen.0.port(), 8080);
    assert_eq!(g.upstreams[0].timeout.as_secs(), 30);
    let g = load_str("", "gw.yaml", &env(&[])).unwrap();
    assert!(g.upstreams.is_empty());
}

#[test]
fn unknown_field_names_line_column_and_path() {
    let e = err(
        "server:\n  listen: 127.0.0.1:1\nupstreams:\n  - name: a\n    url: http://h/mcp\n    tiemout: 5s\n",
    );
    assert_eq!((e.line, e.column), (Some(6), Some(5)), "{e}");
    assert_eq!(e.path, "upstreams[0].tiemout", "{e}");
    assert!(e.message.contains("unknown field `tiemout`"), "{e}");
    assert!(e.message.contains("expected one of"), "{e}");
    assert!(e.to_string().starts_with("gw.yaml:6:"), "{e}");
}

#[test]
fn bad_url_names_line_and_path() {
    let e = err("upstreams:\n  - name: a\n    url: ftp://h/x\n");
    assert_eq!(
        (e.line, e.path.as_str()),
        (Some(3), "upstreams[0].url"),
        "{e}"
    );
    assert!(e.message.contains("http:// or https://"), "{e}");
    let e = err("upstreams:\n  - name: a\n    url: not a url\n");
    assert_eq!(e.line, Some(3), "{e}");
}

#[test]
fn transport_settings_that_cannot_work_together_are_refused_with_their_line() {
    for (yaml, line, path, says) in [
        (
            "upstreams:\n  - name: a\n    url: http://h/mcp\n    tls:\n      server_name: x\n",
            5,
            "upstreams[0].tls",
            "https://",
        ),
        (
            "upstreams:\n  - name: a\n    url: https://h/mcp\n    tls:\n      client_cert: c.pem\n",
            5,
            "upstreams[0].tls.client_key",
            "both",
        ),
        (
            "upstreams:\n  - name: a\n    url: https://h/mcp\n    tls:\n      ca_cert: ca.pem\n      insecure_skip_verify: true\n",
            6,
            "upstreams[0].tls.insecure_skip_verify",
            "contradicts",
        ),
        (
            "upstreams:\n  - name: a\n    url: http://h/mcp\n    transport:\n      max_idle_conns: 5\n      max_idle_conns_per_host: 9\n",
            6,
            "upstreams[0].transport.max_idle_conns_per_host",
            "more than",
        ),
        (
            "upstreams:\n  - name: a\n    url: http://h/mcp\n    timeout: 5s\n    transport:\n      timeout: 7s\n",
            6,
            "upstreams[0].transport.timeout",
            "not both",
        ),
        (
            "upstreams:\n  - name: a\n    url: http://h/mcp\n    proxy:\n      url: http://p:3128\n",
            5,
            "upstreams[0].proxy.url",
            "SOCKS5",
        ),
        (
            "upstreams:\n  - name: a\n    url: https://h/mcp\n    tls: {}\n    transport:\n      tls: {server_name: x}\n",
            6,
            "upstreams[0].transport.tls",
            "not both",
        ),
    ] {
        let e = err(yaml);
        let tls_line = e.line.unwrap_or(0);
        assert_eq!(e.path, path, "{e}");
        assert!(e.message.contains(says), "{e}");
        // The field's own line, or its mapping's when the field is missing.
        assert!(tls_line == line || tls_line + 1 == line, "{e}");
    }
}

#[test]
fn tls_and_proxy_are_accepted_under_transport_too() {
    let g = load_str(
        "upstreams:\n  - name: a\n    url: https://h/mcp\n    transport:\n      http2: true\n      tls: {server_name: inner.h}\n      proxy: {url: socks5://p:1080}\n",
        "gw.yaml",
        &env(&[]),
    )
    .unwrap();
    let u = &g.upstreams[0];
    assert_eq!(
        u.tls.as_ref().unwrap().server_name.as_deref(),
        Some("inner.h")
    );
    assert_eq!(u.proxy.as_ref().unwrap().url.port, 1080);
    assert!(u.transport.tls.is_none() && u.transport.http2);
}

#[test]
fn certificate_files_are_read_and_a_mismatched_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let pair = |name: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (cert, _) = pair("a");
    let (_, other_key) = pair("b");
    std::fs::write(dir.path().join("c.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("k.pem"), &other_key).unwrap();
    let file = dir.path().join("gw.yaml");
    std::fs::write(
        &file,
        "upstreams:\n  - name: a\n    url: https://h/mcp\n    tls:\n      client_cert: c.pem\n      client_key: k.pem\n",
    )
    .unwrap();
    let e = load_file(&file, &env(&[])).unwrap_err();
    assert_eq!(
        (e.line, e.path.as_str()),
        (Some(6), "upstreams[0].tls.client_key"),
        "{e}"
    );
    assert!(e.message.contains("does not match the certificate"), "{e}");
    std::fs::remove_file(dir.path().join("k.pem")).unwrap();
    let e = load_file(&file, &env(&[])).unwrap_err();
    assert!(e.message.contains("cannot read"), "{e}");
}

#[test]
fn unset_variable_names_line_and_path() {
    let e = err(
        "upstreams:\n  - name: a\n    url: http://h/mcp\n    headers:\n      Authorization: Bearer ${GITHUB_TOKEN}\n",
    );
    assert_eq!(e.line, Some(5), "{e}");
    assert_eq!(e.path, "upstreams[0].headers.Authorization", "{e}");
    assert!(e.message.contains("GITHUB_TOKEN is not set"), "{e}");
}

#[test]
fn variables_expand_in_values() {
    let g = load_str(
        "server:\n  listen: ${ADDR:-127.0.0.1:7000}\nupstreams:\n  - name: a\n    url: http://${HOST}/mcp\n    headers: {X-Key: \"${KEY}\"}\n",
        "gw.yaml",
        &env(&[("HOST", "10.0.0.1:81"), ("KEY", "s3cret")]),
    )
    .unwrap();
    assert_eq!(g.server.listen.0.port(), 7000);
    assert_eq!(g.upstreams[0].url.authority(), "10.0.0.1:81");
    assert_eq!(g.upstreams[0].headers["X-Key"].0, "s3cret");
}

#[test]
fn wrong_types_and_names() {
    let e = err("upstreams:\n  - name: \"a b\"\n    url: http://h/mcp\n");
    assert_eq!(
        (e.line, e.path.as_str()),
        (Some(2), "upstreams[0].name"),
        "{e}"
    );
    let e = err("upstreams:\n  - name: a\n    url: http://h/mcp\n    timeout: soon\n");
    assert!(e.message.contains("expected a duration"), "{e}");
    assert_eq!(e.line, Some(4));
    let e = err("upstreams:\n  - name: a\n    url: http://h/mcp\n    type: grpc\n");
    assert_eq!(e.path, "upstreams[0].type", "{e}");
    let e = err("upstreams:\n  - name: a\n");
    assert_eq!(e.path, "upstreams[0].url", "{e}");
    assert!(e.message.contains("needs a url"), "{e}");
}

#[test]
fn stdio_upstreams_need_a_command_and_take_nothing_of_http() {
    let g = load_str(
        "upstreams:\n  - name: local\n    type: stdio\n    command: python3\n    args: [server.py, \"${MODE:-fast}\"]\n    env: {TOKEN: \"${TOKEN}\"}\n    session_mode: shared\n    startup_timeout: 2s\n",
        "gw.yaml",
        &env(&[("TOKEN", "t0k")]),
    )
    .unwrap();
    let u = &g.upstreams[0];
    assert_eq!(u.url.path_and_query(), "/hosted/local/mcp");
    assert_eq!(u.args[1].0, "fast");
    assert_eq!(u.env["TOKEN"].0, "t0k");
    assert_eq!(u.session_mode, crate::config::model::SessionMode::Shared);
    assert_eq!(u.initialization_retries, 5);
    for (yaml, path) in [
        (
            "upstreams:\n  - name: a\n    type: stdio\n",
            "upstreams[0].command",
        ),
        (
            "upstreams:\n  - name: a\n    type: stdio\n    command: x\n    url: http://h/mcp\n",
            "upstreams[0].url",
        ),
        (
            "upstreams:\n  - name: a\n    type: stdio\n    command: x\n    headers: {A: b}\n",
            "upstreams[0].type",
        ),
        (
            "upstreams:\n  - name: a\n    url: http://h/mcp\n    command: x\n",
            "upstreams[0].command",
        ),
    ] {
        assert_eq!(err(yaml).path, path, "{yaml}");
    }
}

#[test]
fn duplicate_names_are_refused() {
    let e =
        err("upstreams:\n  - name: a\n    url: http://h/mcp\n  - name: A\n    url: http://h/mcp\n");
    assert_eq!(e.path, "upstreams[1].name", "{e}");
    assert_eq!(e.line, Some(4), "{e}");
}

#[test]
fn mcp_servers_json_is_accepted() {
    let json = r#"{
  "mcpServers": {
"github": {"url": "https://api.example/mcp", "headers": {"Authorization": "Bearer ${T:-x}"}, "timeout": 5000},
"local": {"type": "http", "url": "http://127.0.0.1:3001/mcp"},
"off": {"command": "x", "disabled": true}
  }
}"#;
    let g = load_str(json, "mcp.json", &env(&[])).unwrap();
    let names: Vec<&str> = g.upstreams.iter().map(|u| &*u.name).collect();
    assert_eq!(names, ["github", "local"]);
    assert_eq!(g.upstreams[0].timeout.as_millis(), 5000);
    assert!(g.upstreams[0].url.is_tls());
}

#[test]
fn mcp_servers_errors_have_positions() {
    let e = load_str(
        "{\"mcpServers\": {\n  \"x\": {\"url\": \"http://h\", \"colour\": 1}\n}}",
        "mcp.json",
        &env(&[]),
    )
    .unwrap_err();
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.path.starts_with("mcpServers.x"), "{e}");
    let e = load_str(
        "{\"mcpServers\": {\n  \"x\": {\"command\": \"npx\", \"url\": \"http://h\"}\n}}",
        "mcp.json",
        &env(&[]),
    )
    .unwrap_err();
    assert!(e.message.contains("stdio"), "{e}");
    assert_eq!(e.line, Some(2), "{e}");
}

#[test]
fn mcp_servers_with_a_command_are_stdio_upstreams() {
    let g = load_str(
        "{\"mcpServers\": {\"fs\": {\"command\": \"npx\", \"args\": [\"-y\", \"@modelcontextprotocol/server-filesystem\", \"${DIR}\"], \"env\": {\"TOKEN\": \"${T}\"}}}}",
        "mcp.json",
        &env(&[("DIR", "/tmp"), ("T", "x")]),
    )
    .unwrap();
    let u = &g.upstreams[0];
    assert_eq!(u.kind, crate::config::model::UpstreamKind::Stdio);
    assert_eq!(u.args[2].0, "/tmp");
    assert_eq!(u.env["TOKEN"].0, "x");
    assert_eq!(u.url.path_and_query(), "/hosted/fs/mcp");
}

#[test]
fn prefixes_are_checked_and_unique() {
    let e = err(
        "upstreams:\n  - name: a\n    url: http://h/mcp\n  - name: b\n    url: http://h/mcp\n    tool_prefix: a\n",
    );
    assert_eq!(e.path, "upstreams[1].tool_prefix", "{e}");
    assert!(e.message.contains("already used by upstreams[0]"), "{e}");
    let e = err("upstreams:\n  - name: a_\n    url: http://h/mcp\n");
    assert_eq!(e.path, "upstreams[0].name", "{e}");
    let e = err(
        "upstreams:\n  - name: my_x\n    url: http://h/mcp\n  - name: my-x\n    url: http://h/mcp\n",
    );
    assert!(e.message.contains("resource-URI prefix"), "{e}");
    let e = err("aggregation:\n  separator: \"\"\n");
    assert_eq!(e.path, "aggregation.separator", "{e}");
    let e = err("session:\n  key: short\n");
    assert_eq!((e.path.as_str(), e.line), ("session.key", Some(2)), "{e}");
    let g = load_str("aggregation: {separator: \".\", fan_out: fail_closed}\nsession: {key: 0123456789abcdef0123, max_age: 1h}\nupstreams:\n  - name: a\n    url: http://h/mcp\n    tool_prefix: gh\n", "gw.yaml", &env(&[])).unwrap();
    assert_eq!(g.prefix(&g.upstreams[0]), "gh");
    assert_eq!(g.session.max_age.as_secs(), 3600);
}

#[test]
fn server_paths_are_checked() {
    let e = err("server:\n  mcp_path: mcp\n");
    assert_eq!(
        (e.line, e.path.as_str()),
        (Some(2), "server.mcp_path"),
        "{e}"
    );
}

const OAUTH: &str = "auth:\n  oauth:\n    resource: https://gw.example/mcp\n    authorization_servers:\n      - issuer: https://idp.example\n";

#[test]
fn token_exchange_mistakes_name_their_field_and_line() {
    let upstream = |exchange: &str| {
        format!(
            "{OAUTH}upstreams:\n  - name: gh\n    url: https://gh.example/mcp\n    auth:\n      token_exchange:\n{exchange}"
        )
    };
    let e = err(&upstream(
        "        audience: gh\n        client_id: gw\n        client_secret: s\n        private_key: {file: k.pem}\n",
    ));
    assert_eq!(e.path, "upstreams[0].auth.token_exchange", "{e}");
    assert!(e.message.contains("client_secret or private_key"), "{e}");
    assert_eq!(e.line, Some(10), "{e}");
    let e = err(&upstream(
        "        client_id: gw\n        client_secret: s\n",
    ));
    assert_eq!(e.path, "upstreams[0].auth.token_exchange.audience", "{e}");
    let e = err(&upstream(
        "        issuer: https://else.example\n        audience: gh\n        client_id: gw\n        client_secret: s\n",
    ));
    assert_eq!(e.path, "upstreams[0].auth.token_exchange.issuer", "{e}");
    assert_eq!(e.line, Some(11), "{e}");
    // Without auth.oauth there is no client token to exchange.
    let e = err(
        "upstreams:\n  - name: gh\n    url: https://gh.example/mcp\n    auth:\n      token_exchange:\n        audience: gh\n        client_id: gw\n        client_secret: s\n",
    );
    assert!(e.message.contains("needs auth.oauth"), "{e}");
    // The upstream's Authorization is the exchanged token's alone.
    let e = err(&format!(
        "{OAUTH}upstreams:\n  - name: gh\n    url: https://gh.example/mcp\n    headers: {{Authorization: x}}\n    auth:\n      token_exchange:\n        audience: gh\n        client_id: gw\n        client_secret: s\n"
    ));
    assert!(e.message.contains("cannot also get one"), "{e}");
}

#[test]
fn oauth_mistakes_name_their_field() {
    let e = err(
        "auth:\n  oauth:\n    resource: https://gw.example/mcp\n    authorization_servers: []\n",
    );
    assert_eq!(e.path, "auth.oauth.authorization_servers", "{e}");
    let e = err(&format!(
        "{OAUTH}    require:\n      - scope: \"a b\"\n        tools: [x]\n"
    ));
    assert_eq!(e.path, "auth.oauth.require[0].scope", "{e}");
    let e = err(&format!("{OAUTH}    require:\n      - scope: a\n"));
    assert_eq!(e.path, "auth.oauth.require[0]", "{e}");
    let e = err(&format!(
        "{OAUTH}  clients:\n    - name: oauth\n      cidrs: [10.0.0.0/8]\n"
    ));
    assert_eq!(e.path, "auth.oauth.client", "{e}");
}

#[test]
fn passing_the_clients_token_on_is_warned_about_under_oauth() {
    let g = load_str(
        &format!("{OAUTH}upstreams:\n  - name: gh\n    url: https://gh.example/mcp\n    auth:\n      pass_through:\n        headers:\n          - {{source_header: Authorization, target_header: Authorization}}\n"),
        "gw.yaml",
        &env(&[]),
    )
    .unwrap();
    let w = g.warnings();
    assert!(
        w.iter()
            .any(|w| w.contains("token passthrough") || w.contains("forbids passing it through")),
        "{w:?}"
    );
}
