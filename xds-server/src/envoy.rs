//! Runs Envoy for `switchboard run`: finds the binary, starts it on a generated bootstrap,
//! streams its log, waits until it serves, restarts it if it dies, and drains it on shutdown.

use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tracing::{error, info, warn};

#[derive(Debug, Clone)]
pub struct Options {
    pub bin: PathBuf,
    pub bootstrap: PathBuf,
    pub workdir: PathBuf,
    pub concurrency: Option<u16>,
    pub log_level: String,
    pub drain_timeout: Duration,
    pub extra_args: Vec<String>,
    /// Added to Envoy's environment (the filter's secrets key).
    pub env: Vec<(String, String)>,
}

/// The Envoy binary: `--envoy`, then `ENVOY_BIN`, then the project's `.tools/envoy` (next to
/// the working directory or to this executable's checkout), then `envoy` on PATH.
pub fn find_binary(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("ENVOY_BIN") {
        return Ok(PathBuf::from(p));
    }
    for base in project_roots() {
        let p = base.join(".tools/envoy");
        if p.is_file() {
            return Ok(p);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("envoy");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    bail!(
        "cannot find Envoy: pass --envoy, set ENVOY_BIN, or run `scripts/setup.sh envoy` to install it into .tools/"
    )
}

/// The working directory and the checkout this binary was built in (`target/<profile>/..`).
pub fn project_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(root) = exe.ancestors().nth(3)
    {
        roots.push(root.to_path_buf());
    }
    roots
}

/// What a running Envoy exposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub admin: SocketAddr,
    /// The MCP listener's bound address (the real port when the config asked for port 0).
    pub listener: SocketAddr,
}

/// Runs Envoy until `shutdown` turns true, restarting it with backoff if it exits by itself.
/// `ready` receives the endpoints each time an Envoy becomes ready.
pub async fn supervise(
    opts: Options,
    mut shutdown: watch::Receiver<bool>,
    ready: watch::Sender<Option<Endpoints>>,
) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(500);
    let mut first = true;
    loop {
        let started = Instant::now();
        let admin_path = opts.workdir.join("admin-address");
        let _ = std::fs::remove_file(&admin_path);
        let mut child = spawn(&opts, &admin_path)?;
        let pid = child.id().unwrap_or_default();
        info!(pid, bin = %opts.bin.display(), "envoy started");

        let outcome = tokio::select! {
            r = wait_ready(&admin_path) => Some(r),
            status = child.wait() => {
                // The first start failing is a setting (a busy admin port, a bad binary), not
                // bad luck: retrying would only hide it.
                if first {
                    bail!("envoy exited during start-up ({}); its log above says why", describe(status));
                }
                error!("envoy exited during start-up: {}", describe(status));
                None
            }
            () = stopped(&mut shutdown) => {
                stop(&mut child, None, opts.drain_timeout).await;
                return Ok(());
            }
        };
        match outcome {
            Some(Ok(endpoints)) => {
                first = false;
                let admin = Some(endpoints.admin);
                let _ = ready.send(Some(endpoints));
                tokio::select! {
                    status = child.wait() => error!("envoy exited unexpectedly: {}", describe(status)),
                    () = stopped(&mut shutdown) => {
                        stop(&mut child, admin, opts.drain_timeout).await;
                        return Ok(());
                    }
                }
            }
            Some(Err(e)) => {
                error!("envoy did not become ready: {e:#}");
                stop(&mut child, None, Duration::ZERO).await;
            }
            None => {}
        }
        let _ = ready.send(None);
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_millis(500);
        }
        warn!("restarting envoy in {backoff:?}");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            () = stopped(&mut shutdown) => return Ok(()),
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Resolves once shutdown is asked for (the watch guard is not held across an await).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("cannot wait for it: {e}"),
    }
}

fn spawn(opts: &Options, admin_path: &Path) -> anyhow::Result<Child> {
    let mut cmd = Command::new(&opts.bin);
    cmd.arg("-c")
        .arg(&opts.bootstrap)
        .arg("--admin-address-path")
        .arg(admin_path)
        // Several gateways (and tests) share a machine: no hot-restart shared memory.
        .arg("--disable-hot-restart")
        .args(["--log-level", &opts.log_level])
        .args([
            "--drain-time-s",
            &opts.drain_timeout.as_secs().max(1).to_string(),
        ])
        .args(["--drain-strategy", "immediate"])
        // Access log (audit) lines within a second, not Envoy's default ten.
        .args(["--file-flush-interval-msec", "1000"]);
    if let Some(n) = opts.concurrency {
        cmd.args(["--concurrency", &n.to_string()]);
    }
    // Its own process group: a Ctrl-C in the terminal reaches switchboard alone, which then
    // drains Envoy, instead of Envoy dying at once under its feet.
    cmd.process_group(0);
    cmd.args(&opts.extra_args)
        .envs(opts.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Envoy must not outlive switchboard, even when switchboard is killed with SIGKILL; SIGTERM
    // lets it close its listeners.
    switchboard_bridge::hosted::process::die_with_parent(
        &mut cmd,
        nix::sys::signal::Signal::SIGTERM,
    );
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start envoy from {}", opts.bin.display()))?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(BufReader::new(out)));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(BufReader::new(err)));
    }
    Ok(child)
}

async fn forward<R: tokio::io::AsyncRead + Unpin>(reader: BufReader<R>) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("envoy | {line}");
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .unwrap_or_default()
}

/// Waits for the admin address file, for `/ready` to say LIVE, and for the MCP listener.
async fn wait_ready(admin_path: &Path) -> anyhow::Result<Endpoints> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let http = client();
    let mut admin: Option<SocketAddr> = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Some(addr) = admin.or_else(|| read_admin_address(admin_path)) else {
            continue;
        };
        admin = Some(addr);
        let live = http
            .get(format!("http://{addr}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if !live {
            continue;
        }
        if let Some(listener) = listener_address(&http, addr).await {
            return Ok(Endpoints {
                admin: addr,
                listener,
            });
        }
    }
    bail!("envoy was not ready after 60s (admin: {admin:?})")
}

fn read_admin_address(path: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The MCP listener's real address, from `/listeners`.
pub async fn listener_address(http: &reqwest::Client, admin: SocketAddr) -> Option<SocketAddr> {
    let v: serde_json::Value = http
        .get(format!("http://{admin}/listeners?format=json"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    switchboard::admin::listener_address(&v, crate::translate::LISTENER_NAME)
}

/// Graceful stop: stop accepting, let requests in flight finish (up to `drain`), then quit.
async fn stop(child: &mut Child, admin: Option<SocketAddr>, drain: Duration) {
    if let Some(admin) = admin {
        let http = client();
        info!("draining envoy (up to {drain:?})");
        let _ = http
            .post(format!("http://{admin}/drain_listeners?graceful"))
            .send()
            .await;
        let deadline = Instant::now() + drain;
        while Instant::now() < deadline {
            if active_connections(&http, admin).await == Some(0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = http
            .post(format!("http://{admin}/quitquitquit"))
            .send()
            .await;
    } else if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or_default()),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
        Ok(status) => info!("envoy stopped: {}", describe(status)),
        Err(_) => {
            warn!("envoy did not stop in 10s; killing it");
            let _ = child.kill().await;
        }
    }
}

async fn active_connections(http: &reqwest::Client, admin: SocketAddr) -> Option<u64> {
    let text = http
        .get(format!(
            "http://{admin}/stats?filter=^http\\.switchboard\\.downstream_cx_active$"
        ))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.split_once(": "))
        .and_then(|(_, v)| v.trim().parse().ok())
}
