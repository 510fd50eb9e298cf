//! The `switchboard` CLI without Envoy: validate, render and bootstrap.

use std::process::Command;
use switchboard_e2e::{module_args, native, native_module_path, switchboard_bin, wasm_path};

fn validate(yaml: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("gw.yaml");
    std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("write: {e}"));
    let out = Command::new(switchboard_bin())
        .arg("validate")
        .arg("-c")
        .arg(&path)
        .env_remove("GITHUB_TOKEN")
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run switchboard: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn validate_accepts_a_good_file() {
    let (ok, stdout, stderr) = validate(
        "upstreams:\n  - name: a\n    url: http://127.0.0.1:3000/mcp\n",
        &[],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("ok (1 upstream)"), "{stdout}");
}

#[test]
fn validate_names_line_and_field_of_an_unknown_field() {
    let (ok, _, stderr) = validate(
        "upstreams:\n  - name: a\n    url: http://127.0.0.1:3000/mcp\n    timout: 5s\n",
        &[],
    );
    assert!(!ok);
    assert!(
        stderr
            .contains("gw.yaml:4:5: upstreams[0].timout: unknown field `timout`, expected one of"),
        "{stderr}"
    );
}

#[test]
fn validate_names_line_and_field_of_a_bad_url() {
    let (ok, _, stderr) = validate(
        "upstreams:\n  - name: a\n    url: ftp://files.example/mcp\n",
        &[],
    );
    assert!(!ok);
    assert!(
        stderr.contains("gw.yaml:3:10: upstreams[0].url: expected an http:// or https:// URL"),
        "{stderr}"
    );
}

#[test]
fn validate_names_line_and_field_of_an_unset_variable() {
    let yaml = "upstreams:\n  - name: gh\n    url: https://api.example/mcp\n    headers:\n      Authorization: Bearer ${GITHUB_TOKEN}\n";
    let (ok, _, stderr) = validate(yaml, &[]);
    assert!(!ok);
    assert!(stderr.contains("gw.yaml:5:22: upstreams[0].headers.Authorization: environment variable GITHUB_TOKEN is not set"), "{stderr}");
    let (ok, _, stderr) = validate(yaml, &[("GITHUB_TOKEN", "t")]);
    assert!(ok, "{stderr}");
}

#[test]
fn validate_reads_upstreams_from_the_environment() {
    let (ok, stdout, stderr) = validate(
        "",
        &[(
            "SWITCHBOARD_UPSTREAMS_MY_SERVER_URL",
            "http://127.0.0.1:9/mcp",
        )],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 upstream"), "{stdout}");
    let (ok, _, stderr) = validate("", &[("SWITCHBOARD_UPSTREAMS_MY_SERVER_URL", "nope")]);
    assert!(!ok);
    assert!(
        stderr.contains("SWITCHBOARD_UPSTREAMS_MY_SERVER_URL"),
        "{stderr}"
    );
}

#[test]
fn render_prints_the_envoy_resources_as_yaml() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("gw.yaml");
    std::fs::write(
        &path,
        "upstreams:\n  - name: a\n    url: http://127.0.0.1:3000/mcp\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(switchboard_bin())
        .args(["render", "-c"])
        .arg(&path)
        .args(module_args())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8_lossy(&out.stdout);
    let doc: serde_json::Value = serde_yaml_doc(&yaml);
    assert_eq!(doc["clusters"]["resources"][0]["name"], "upstream-a");
    assert_eq!(doc["listeners"]["resources"][0]["name"], "switchboard-mcp");
    assert_eq!(doc["routes"]["resources"][0]["name"], "switchboard");
    // The module of the data plane under test, as Envoy will load it.
    let module = if native() {
        native_module_path()
    } else {
        wasm_path()
    };
    assert!(yaml.contains(&module.display().to_string()), "{yaml}");
}

#[test]
fn bootstrap_prints_an_ads_bootstrap() {
    let out = Command::new(switchboard_bin())
        .args([
            "bootstrap",
            "--xds",
            "xds.internal:18000",
            "--node",
            "edge-7",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success());
    let doc = serde_yaml_doc(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(doc["node"]["id"], "edge-7");
    assert_eq!(doc["dynamic_resources"]["ads_config"]["api_type"], "GRPC");
}

/// The CLI prints YAML; JSON-compatible YAML parses through serde_json after a round trip
/// through the `switchboard render` format (block YAML), so read it with a YAML parser.
fn serde_yaml_doc(text: &str) -> serde_json::Value {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
}

#[test]
fn validate_accepts_the_mcp_servers_json_of_desktop_clients() {
    let json = r#"{"mcpServers": {"remote": {"type": "http", "url": "https://mcp.example.com/mcp", "timeout": 5000}}}"#;
    let (ok, stdout, stderr) = validate(json, &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 upstream"), "{stdout}");
    // A stdio entry is a stdio upstream; one with a URL as well is an error with its place.
    let (ok, stdout, stderr) = validate(
        "{\"mcpServers\": {\n  \"local\": {\"command\": \"npx\", \"args\": [\"x\"]}\n}}",
        &[],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 upstream"), "{stdout}");
    let (ok, _, stderr) = validate(
        "{\"mcpServers\": {\n  \"local\": {\"command\": \"npx\", \"url\": \"http://h/mcp\"}\n}}",
        &[],
    );
    assert!(!ok);
    assert!(
        stderr.contains("gw.yaml:2:")
            && stderr.contains("mcpServers.local")
            && stderr.contains("stdio"),
        "{stderr}"
    );
}

/// Item 6 of issue 13: no command prints a secret. A configuration with every kind of
/// secret goes through `validate`, `render`, `bootstrap` and a `run` that serves a call
/// (with debug logs); none of their output holds any of the secrets.
#[test]
fn no_command_prints_a_secret() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
        p.display().to_string()
    };
    let hmac_key = "jwks-secret-DDDD-32-bytes-long!!";
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hmac_key);
    let jwks = write(
        "jwks.json",
        &format!(r#"{{"keys":[{{"kty":"oct","alg":"HS256","kid":"k1","k":"{k}"}}]}}"#),
    );
    let ca = switchboard_e2e::tls::Ca::new("ca").unwrap_or_else(|e| panic!("{e}"));
    let server = ca.server(&["localhost"]).unwrap_or_else(|e| panic!("{e}"));
    let client = ca.client("gw").unwrap_or_else(|e| panic!("{e}"));
    let server_key = write("server.key", &server.key);
    let server_cert = write("server.crt", &server.cert);
    let client_key = write("client.key", &client.key);
    let client_cert = write("client.crt", &client.cert);
    let ca_file = write("ca.crt", &ca.pem);
    // The middle line of a PEM body: any part of a key printed would show it.
    let key_line = |pem: &str| {
        let lines: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        lines[lines.len() / 2].to_string()
    };
    let secrets = [
        "session-secret-AAAA-0123456789".to_string(),
        "header-secret-BBBB".to_string(),
        "api-key-secret-CCCC".to_string(),
        k.clone(),
        hmac_key.to_string(),
        "proxy-secret-EEEE".to_string(),
        "env-secret-FFFF".to_string(),
        "sse-secret-GGGG".to_string(),
        key_line(&server.key),
        key_line(&client.key),
    ];
    let config = write(
        "gateway.yaml",
        &format!(
            "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n  tls: {{cert_file: {server_cert}, key_file: {server_key}}}\nsession:\n  key: {}\nauth:\n  clients:\n    - name: ci\n      api_key: {{keys: [\"{}\"]}}\n    - name: people\n      jwt: {{issuer: \"https://idp.test\", audiences: [gw], jwks: {{file: {jwks}}}}}\nupstreams:\n  - name: web\n    url: https://localhost:9/mcp\n    headers: {{Authorization: \"Bearer {}\"}}\n    tls: {{ca_cert: {ca_file}, client_cert: {client_cert}, client_key: {client_key}}}\n    proxy: {{url: \"socks5://127.0.0.1:9\", username: proxy-user, password: \"{}\"}}\n  - name: local\n    type: stdio\n    command: sleep\n    args: [\"600\"]\n    startup_timeout: 1s\n    initialization_retries: 0\n    env: {{TOKEN: \"{}\"}}\n  - name: old\n    type: sse\n    url: http://127.0.0.1:9/sse\n    headers: {{Authorization: \"Bearer {}\"}}\n",
            secrets[0], secrets[2], secrets[1], secrets[5], secrets[6], secrets[7]
        ),
    );
    let run = |args: &[&str]| {
        let out = Command::new(switchboard_bin())
            .args(args)
            .env("SWITCHBOARD_LOG", "debug")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let wasm = wasm_path().display().to_string();
    let mut printed = vec![
        ("validate", run(&["validate", "-c", &config])),
        ("render", run(&["render", "-c", &config, "--wasm", &wasm])),
        (
            "bootstrap",
            run(&["bootstrap", "--xds", "127.0.0.1:18000", "--node", "n"]),
        ),
    ];
    // `run` with debug logs, until it has served, then stopped.
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let logs = rt.block_on(async {
        let yaml = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{e}"));
        // Plain HTTP on the gateway's port so the test's client needs no CA.
        let yaml = yaml.replace(
            &format!("  tls: {{cert_file: {server_cert}, key_file: {server_key}}}\n"),
            "",
        );
        let mut gw = switchboard_e2e::Gateway::start(&yaml)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = switchboard_e2e::raw::post_with(
            &gw.endpoint,
            None,
            &serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
            &[("x-api-key", &secrets[2])],
        )
        .await;
        let _ = gw.terminate(std::time::Duration::from_secs(15));
        gw.logs()
    });
    printed.push(("run", logs));
    for (command, output) in &printed {
        for secret in &secrets {
            assert!(
                !output.contains(secret.as_str()),
                "`switchboard {command}` printed the secret {secret:?}:\n{output}"
            );
        }
    }
}

fn validate_file(path: &std::path::Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(switchboard_bin())
        .arg("validate")
        .arg("-c")
        .arg(path)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run switchboard: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Issue 14, item 12: the files desktop clients keep, as they are. Claude Desktop's with
/// keys of its own beside `mcpServers`, VS Code's `mcp.json` with `servers` and `inputs`:
/// their servers are read, the rest set aside with a warning; a VS Code input variable is
/// refused with a message that says what it is.
#[test]
fn desktop_config_files_are_read_as_they_are() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let claude = dir.path().join("claude_desktop_config.json");
    std::fs::write(
        &claude,
        r#"{"globalShortcut": "Ctrl+Space", "mcpServers": {
            "remote": {"type": "http", "url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}, "timeout": 30000},
            "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]}}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (ok, out, err) = validate_file(&claude, &[("TOKEN", "t")]);
    assert!(ok, "{err}");
    assert!(out.contains("(2 upstreams)"), "{out}");
    assert!(err.contains("globalShortcut"), "{err}");

    let vscode = dir.path().join("mcp.json");
    let text = r#"{"inputs": [{"type": "promptString", "id": "key", "password": true}], "servers": {
        "everything": {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-everything"], "cwd": "/tmp"},
        "docs": {"type": "http", "url": "http://127.0.0.1:9/mcp"},
        "old": {"type": "sse", "url": "http://127.0.0.1:9/sse"}}}"#;
    std::fs::write(&vscode, text).unwrap_or_else(|e| panic!("{e}"));
    let (ok, out, err) = validate_file(&vscode, &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains("(3 upstreams)") && err.contains("inputs"),
        "{out}{err}"
    );
    std::fs::write(
        &vscode,
        text.replace(
            r#""cwd": "/tmp""#,
            r#""cwd": "/tmp", "env": {"K": "${input:key}"}"#,
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (ok, _, err) = validate_file(&vscode, &[]);
    assert!(
        !ok && err.contains("VS Code") && err.contains("servers.everything.env.K"),
        "{err}"
    );
    // A gateway file still knows every key it accepts: a typo there is an error.
    let gw = dir.path().join("gw.yaml");
    std::fs::write(
        &gw,
        "server: {listen: 127.0.0.1:0}\nmcpServers: {}\nglobalShortcut: x\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (ok, _, err) = validate_file(&gw, &[]);
    assert!(!ok && err.contains("globalShortcut"), "{err}");
}

/// Issue 14, item 14: the transport seed's file as written: `server.port` (every interface)
/// and `server.transport` with its spelling of the transports.
#[test]
fn the_transport_seed_file_is_accepted_as_written() {
    let file = switchboard_e2e::repo_root().join("examples/transport-seed.yaml");
    let (ok, out, err) = validate_file(&file, &[("GITHUB_TOKEN", "t"), ("HOME", "/root")]);
    assert!(ok, "{err}");
    assert!(out.contains("(2 upstreams)"), "{out}");
    let rendered = Command::new(switchboard_bin())
        .args(["render", "-c"])
        .arg(&file)
        .env("GITHUB_TOKEN", "t")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let doc = serde_yaml_doc(&String::from_utf8_lossy(&rendered.stdout));
    let address = &doc["listeners"]["resources"][0]["address"]["socket_address"];
    assert_eq!(
        (address["address"].as_str(), address["port_value"].as_u64()),
        (Some("0.0.0.0"), Some(8080)),
        "{doc}"
    );
    let routes = doc["routes"].to_string();
    assert!(
        routes.contains("/sse") && routes.contains("/messages"),
        "the sse transport: {routes}"
    );
    // Both spellings at once say which to keep.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let both = dir.path().join("both.yaml");
    std::fs::write(&both, "server: {port: 8080, listen: 127.0.0.1:8080}\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let (ok, _, err) = validate_file(&both, &[]);
    assert!(!ok && err.contains("server.port"), "{err}");
}

/// Issue 14, item 13: upstreams from the environment in the compact forms of the gateway this
/// replaces: stdio servers (`_COMMAND`, `_ARGS`, `_ENV_<VAR>`) and pass-through headers
/// (`_AUTH_PASS_THROUGH_HEADERS` as `source:target:format`), with errors naming the variable.
#[test]
fn upstreams_come_from_the_environment_in_every_form() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let empty = dir.path().join("empty.yaml");
    std::fs::write(&empty, "").unwrap_or_else(|e| panic!("{e}"));
    let env = [
        ("SWITCHBOARD_UPSTREAMS_FILES_COMMAND", "npx"),
        (
            "SWITCHBOARD_UPSTREAMS_FILES_ARGS",
            "-y @modelcontextprotocol/server-filesystem '/srv/my files'",
        ),
        ("SWITCHBOARD_UPSTREAMS_FILES_ENV_LOG_LEVEL", "debug"),
        ("SWITCHBOARD_UPSTREAMS_GH_URL", "https://gh.example/mcp"),
        ("SWITCHBOARD_UPSTREAMS_GH_AUTH_PASS_THROUGH_ENABLED", "true"),
        (
            "SWITCHBOARD_UPSTREAMS_GH_AUTH_PASS_THROUGH_HEADERS",
            "X-Token:Authorization:Bearer\\ {value}",
        ),
    ];
    let out = Command::new(switchboard_bin())
        .args(["render", "-c"])
        .arg(&empty)
        .envs(env)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(
        yaml.contains("upstream-files") && yaml.contains("upstream-gh"),
        "{yaml}"
    );
    assert!(
        yaml.contains(r#""target":"authorization","format":"Bearer {value}""#),
        "{yaml}"
    );
    let (ok, _, err) = validate(
        "",
        &[
            ("SWITCHBOARD_UPSTREAMS_FILES_COMMAND", "npx"),
            ("SWITCHBOARD_UPSTREAMS_FILES_ARGS", "'unbalanced"),
        ],
    );
    assert!(
        !ok && err.contains("SWITCHBOARD_UPSTREAMS_FILES_ARGS"),
        "{err}"
    );
}
