//! The `switchboard` CLI without Envoy: validate, render and bootstrap.

use std::process::Command;
use switchboard_e2e::{switchboard_bin, wasm_path};

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
        .arg("--wasm")
        .arg(wasm_path())
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
    assert!(yaml.contains(&wasm_path().display().to_string()), "{yaml}");
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
