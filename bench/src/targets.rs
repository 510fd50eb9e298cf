//! The processes under test: the upstream fleet, an Envoy with static configuration (plain
//! route and native `mcp_router` listeners), and `switchboard run` with its own Envoy.

use crate::procfs;
use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the binaries are; defaults are this checkout's build outputs.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub envoy: PathBuf,
    pub switchboard: PathBuf,
    pub wasm: PathBuf,
    pub native: PathBuf,
    pub concurrency: u16,
}

/// Which shell `switchboard run` loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    Native,
    Wasm,
}

/// A child process stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Process {
    child: Child,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The upstream fleet, one process (`switchboard-bench upstream`).
pub struct Upstreams {
    _process: Process,
    /// Listeners answering at once.
    pub fast: Vec<SocketAddr>,
    /// Listeners whose `tools/list` is delayed (the fan-out scenario).
    pub slow: Vec<(SocketAddr, u64)>,
}

impl Upstreams {
    pub fn start(fast: usize, tools: usize, slow_ms: &[u64]) -> anyhow::Result<Upstreams> {
        let delays: Vec<String> = slow_ms.iter().map(u64::to_string).collect();
        let mut child = Command::new(std::env::current_exe()?)
            .args(["upstream", "--listeners", &fast.to_string()])
            .args(["--tools", &tools.to_string()])
            .args(["--slow-list-ms", &delays.join(",")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the upstream fleet")?;
        let out = child.stdout.take().context("no stdout")?;
        let process = Process { child };
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
        let addrs: Vec<SocketAddr> = serde_json::from_str(line.trim())
            .with_context(|| format!("upstream fleet printed {line:?}"))?;
        anyhow::ensure!(addrs.len() == fast + slow_ms.len(), "{addrs:?}");
        Ok(Upstreams {
            _process: process,
            fast: addrs[..fast].to_vec(),
            slow: addrs[fast..]
                .iter()
                .copied()
                .zip(slow_ms.iter().copied())
                .collect(),
        })
    }
}

/// Envoy on a static bootstrap, its listeners by name.
pub struct StaticEnvoy {
    pub process: Process,
    pub listeners: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl StaticEnvoy {
    pub async fn start(bin: &Binaries, bootstrap: &str) -> anyhow::Result<StaticEnvoy> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("bootstrap.yaml");
        let admin_path = dir.path().join("admin");
        std::fs::write(&file, bootstrap)?;
        let log = std::fs::File::create(dir.path().join("envoy.log"))?;
        let child = Command::new(&bin.envoy)
            .arg("-c")
            .arg(&file)
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["--disable-hot-restart", "--log-level", "warn"])
            .args(["--concurrency", &bin.concurrency.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.envoy.display()))?;
        let process = Process { child };
        let log_path = dir.path().join("envoy.log");
        let admin = wait_for(Duration::from_secs(60), || {
            std::fs::read_to_string(&admin_path)
                .ok()
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
        })
        .await
        .with_context(|| log_tail(&log_path))?;
        let listeners = listeners(&format!("http://{admin}")).await?;
        Ok(StaticEnvoy {
            process,
            listeners,
            _dir: dir,
        })
    }

    pub fn url(&self, listener: &str) -> anyhow::Result<String> {
        self.listeners
            .iter()
            .find(|(n, _)| n == listener)
            .map(|(_, a)| format!("http://{a}/mcp"))
            .with_context(|| format!("no listener {listener}"))
    }
}

async fn listeners(admin: &str) -> anyhow::Result<Vec<(String, String)>> {
    let text = crate::http_get(&format!("{admin}/listeners?format=json")).await?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    Ok(v["listener_statuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            let name = l["name"].as_str()?;
            let sa = &l["local_address"]["socket_address"];
            Some((
                name.to_string(),
                format!("{}:{}", sa["address"].as_str()?, sa["port_value"].as_u64()?),
            ))
        })
        .collect())
}

/// `switchboard run` on a gateway YAML, with the Envoy it started.
pub struct Switchboard {
    pub process: Process,
    pub envoy_pid: u32,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Switchboard {
    pub async fn start(bin: &Binaries, yaml: &str, plane: Plane) -> anyhow::Result<Switchboard> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("gateway.yaml");
        std::fs::write(&config, yaml)?;
        let out_path = dir.path().join("stdout");
        let err_path = dir.path().join("stderr");
        let child = Command::new(&bin.switchboard)
            .arg("run")
            .arg("-c")
            .arg(&config)
            .arg("--envoy")
            .arg(&bin.envoy)
            .arg("--wasm")
            .arg(&bin.wasm)
            .arg("--native-module")
            .arg(&bin.native)
            .args([
                "--data-plane",
                match plane {
                    Plane::Native => "native",
                    Plane::Wasm => "wasm",
                },
            ])
            .args(["--concurrency", &bin.concurrency.to_string()])
            .args(["--envoy-log-level", "warn"])
            .env("SWITCHBOARD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path)?)
            .stderr(std::fs::File::create(&err_path)?)
            .spawn()
            .with_context(|| format!("starting {}", bin.switchboard.display()))?;
        let process = Process { child };
        let endpoint = wait_for(Duration::from_secs(90), || {
            std::fs::read_to_string(&out_path)
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("MCP endpoint: ").map(str::to_string))
        })
        .await
        .with_context(|| log_tail(&err_path))?;
        let pid = process.pid();
        let envoy_pid = wait_for(Duration::from_secs(10), || {
            procfs::child_named(pid, "envoy")
        })
        .await
        .context("the Envoy that switchboard started")?;
        Ok(Switchboard {
            process,
            envoy_pid,
            endpoint,
            _dir: dir,
        })
    }
}

async fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < until, "not ready after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The static Envoy: one listener with a plain route to the first fast upstream, and native
/// `mcp` + `mcp_router` listeners over the first 1, 4 and 16 fast upstreams and over the slow
/// ones.
pub fn static_bootstrap(up: &Upstreams) -> String {
    let mut clusters = String::new();
    let mut cluster = |name: &str, addr: &SocketAddr| {
        clusters.push_str(&format!(
            r#"
  - name: {name}
    type: STATIC
    connect_timeout: 5s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: "{ip}", port_value: {port}}}}}}}
"#,
            ip = addr.ip(),
            port = addr.port()
        ));
    };
    for (i, a) in up.fast.iter().enumerate() {
        cluster(&format!("fast{i}"), a);
    }
    for (i, (a, _)) in up.slow.iter().enumerate() {
        cluster(&format!("slow{i}"), a);
    }
    let fast: Vec<String> = (0..up.fast.len()).map(|i| format!("fast{i}")).collect();
    let slow: Vec<String> = (0..up.slow.len()).map(|i| format!("slow{i}")).collect();
    let mut listeners = listener("plain", &plain_filters());
    for n in [1usize, 4, 16] {
        if n <= fast.len() {
            listeners.push_str(&listener(
                &format!("native{n}"),
                &native_filters(&fast[..n]),
            ));
        }
    }
    if !slow.is_empty() {
        listeners.push_str(&listener("native_slow", &native_filters(&slow)));
    }
    format!(
        r#"admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
static_resources:
  listeners:{listeners}
  clusters:{clusters}"#
    )
}

fn listener(name: &str, http_filters: &str) -> String {
    format!(
        r#"
  - name: {name}
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: fast0, timeout: 60s}}
          http_filters:{http_filters}"#
    )
}

fn plain_filters() -> String {
    r#"
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}"#
        .to_string()
}

/// Envoy's own MCP filters, as its docs and integration tests set them up: `mcp` parses the
/// request into dynamic metadata, `mcp_router` is the terminal filter that routes and fans out.
fn native_filters(clusters: &[String]) -> String {
    let servers: String = clusters
        .iter()
        .map(|c| {
            format!(
                r#"
              - name: {name}
                mcp_cluster: {{cluster: {c}, path: /mcp, timeout: 60s}}"#,
                name = c
            )
        })
        .collect();
    format!(
        r#"
          - name: envoy.filters.http.mcp
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.mcp.v3.Mcp
              traffic_mode: PASS_THROUGH
          - name: envoy.filters.http.mcp_router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.mcp_router.v3.McpRouter
              servers:{servers}"#
    )
}
