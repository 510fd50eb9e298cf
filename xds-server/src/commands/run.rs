use crate::ads::Ads;
use crate::bootstrap::{BootstrapParams, XdsAddress, bootstrap_yaml};
use crate::commands::serve::{serve_ads, shutdown_signal};
use crate::envoy::{self, Endpoints};
use crate::gateway::Source;
use crate::translate::DataPlane;
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use switchboard_protocol::filter_config::SECRETS_KEY_ENV;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

#[derive(clap::Args)]
pub struct Args {
    #[arg(short, long, env = "SWITCHBOARD_CONFIG")]
    config: PathBuf,
    /// The Envoy binary (else ENVOY_BIN, the project's .tools/envoy, or PATH).
    #[arg(long)]
    envoy: Option<PathBuf>,
    #[command(flatten)]
    modules: crate::commands::ModuleArgs,
    /// Envoy worker threads (default: one per core).
    #[arg(long)]
    concurrency: Option<u16>,
    /// Envoy's log level (default: the configuration's `log_level`, else warning).
    #[arg(long)]
    envoy_log_level: Option<String>,
    /// How long requests in flight may take to finish on shutdown (default: the
    /// configuration's `shutdown_timeout`, else 5s).
    #[arg(long, value_parser = humantime::parse_duration)]
    drain_timeout: Option<Duration>,
    /// More arguments for Envoy, after `--`.
    #[arg(last = true)]
    envoy_args: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: Args) -> anyhow::Result<ExitCode> {
    let bin = envoy::find_binary(args.envoy.as_deref())?;
    // The bridge serves what Envoy cannot (the merged GET stream), on loopback.
    let bridge_state = Arc::new(switchboard_bridge::BridgeState::default());
    let bridge_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the bridge port")?;
    let bridge_addr = bridge_listener.local_addr()?;
    // The snapshots carry the session key and upstream credentials: only the Envoy started
    // here reaches ADS, on a Unix socket in a directory only this user can open (tempfile
    // makes it 0700), not on a port any local process could connect to.
    let workdir = tempfile::Builder::new()
        .prefix("switchboard-")
        .tempdir()
        .context("cannot create a working directory")?;
    let mut module = args.modules.filter_module()?;
    module.bridge = Some(bridge_addr);
    // The filter's secrets reach it sealed, with a key only in the environment of the Envoy
    // started here, so Envoy's admin interface does not show them.
    let secrets_key = module
        .secrets_key
        .get_or_insert_with(|| crate::gateway::process_secret("secrets").to_string())
        .clone();
    let source = Source {
        config: args.config.clone(),
        module,
        bridge: Some(bridge_state.clone()),
        tunnels: Arc::new(crate::tunnels::Tunnels::live(bridge_addr.ip())),
        dns: crate::dns::Dns::shared()?,
    };
    let (gateway, snapshot) = crate::dns::load_resolved(&source).await?;
    if let Some(level) = gateway.server.log_level {
        crate::set_log_level(level.filter());
    }
    let data_plane = source.module.data_plane_for(&gateway);
    let module_file = match data_plane {
        DataPlane::Native => (&source.module.native_path, "make native"),
        DataPlane::Wasm => (&source.module.path, "make wasm"),
    };
    anyhow::ensure!(
        std::path::Path::new(module_file.0).is_file(),
        "the {} data plane's module {} does not exist: build it with `{}`",
        data_plane.as_str(),
        module_file.0,
        module_file.1
    );
    info!("data plane: {} ({})", data_plane.as_str(), module_file.0);
    check_addresses_free(&gateway)?;
    let files: Vec<PathBuf> = gateway.pem_files().into_iter().map(Into::into).collect();
    source.update_bridge(&gateway);
    info!("bridge on {bridge_addr}");

    let (tx, rx) = watch::channel(Arc::new(snapshot));
    let _dns = crate::dns::spawn(source.clone(), tx.clone());
    let _watch = crate::watch::spawn(source, tx, files)?;
    let socket = workdir.path().join("xds.sock");
    let xds = private_socket(&socket)?;
    info!("serving ADS on {}", socket.display());
    let (stop_tx, stop_rx) = watch::channel(false);
    // ADS ends after Envoy has stopped, so Envoy never sees its config stream cut.
    let (envoy_gone_tx, mut envoy_gone) = watch::channel(false);
    let ads_stop = async move {
        let _ = envoy_gone.wait_for(|s| *s).await;
    };
    let ads = tokio::spawn(serve_ads(
        tokio_stream::wrappers::UnixListenerStream::new(xds),
        None,
        Ads::new(rx),
        ads_stop,
    ));
    spawn_bridge(bridge_listener, bridge_state.clone(), stop_rx.clone());

    let bootstrap_file = workdir.path().join("bootstrap.yaml");
    let params = BootstrapParams {
        node_id: format!("switchboard-run-{}", std::process::id()),
        xds: XdsAddress::Unix(socket.clone()),
        admin: gateway.server.admin.0,
    };
    std::fs::write(&bootstrap_file, bootstrap_yaml(&params)?)
        .with_context(|| format!("cannot write {}", bootstrap_file.display()))?;

    let (ready_tx, ready_rx) = watch::channel(None::<Endpoints>);
    let opts = envoy::Options {
        bin,
        bootstrap: bootstrap_file,
        workdir: workdir.path().to_path_buf(),
        concurrency: args.concurrency,
        log_level: args.envoy_log_level.unwrap_or_else(|| {
            gateway
                .server
                .log_level
                .map_or("warning", |l| l.envoy())
                .to_string()
        }),
        drain_timeout: args
            .drain_timeout
            .or(gateway.server.shutdown_timeout)
            .unwrap_or(Duration::from_secs(5)),
        extra_args: args.envoy_args,
        env: vec![(SECRETS_KEY_ENV.to_string(), secrets_key)],
    };
    let endpoints = ready_tx.subscribe();
    let supervisor = tokio::spawn(envoy::supervise(opts, stop_rx, ready_tx));
    spawn_log_reopener(endpoints);
    let announce = spawn_announcer(ready_rx, bridge_state, &gateway);

    let mut supervisor = supervisor;
    let result = tokio::select! {
        _ = shutdown_signal() => None,
        r = &mut supervisor => Some(r),
    };
    let _ = stop_tx.send(true);
    let outcome = match result {
        Some(r) => r.context("envoy supervisor failed"),
        None => supervisor.await.context("envoy supervisor failed"),
    };
    let _ = envoy_gone_tx.send(true);
    announce.abort();
    let _ = ads.await;
    let outcome = outcome?;
    drop(workdir);
    outcome.map(|()| ExitCode::SUCCESS)
}

/// Envoy would refuse a busy address and go on without serving: say so at once.
fn check_addresses_free(gateway: &crate::config::Gateway) -> anyhow::Result<()> {
    for (field, addr) in [
        ("server.listen", gateway.server.listen.0),
        ("server.admin", gateway.server.admin.0),
    ] {
        if addr.port() != 0 {
            std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on {addr} ({field})"))?;
        }
    }
    Ok(())
}

/// A Unix socket only this user can connect to.
fn private_socket(path: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    Ok(listener)
}

/// The bridge's HTTP server, until `stop` turns true.
fn spawn_bridge(
    listener: TcpListener,
    state: Arc<switchboard_bridge::BridgeState>,
    mut stop: watch::Receiver<bool>,
) {
    let app = switchboard_bridge::Bridge::new(state).router();
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!("bridge failed: {e}");
        }
    });
}

/// SIGHUP also reopens Envoy's access logs (the audit log), for log rotation.
fn spawn_log_reopener(endpoints: watch::Receiver<Option<Endpoints>>) {
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        let http = reqwest::Client::new();
        while hup.recv().await.is_some() {
            let admin = endpoints.borrow().as_ref().map(|e| e.admin);
            if let Some(admin) = admin {
                match http
                    .post(format!("http://{admin}/reopen_logs"))
                    .send()
                    .await
                {
                    Ok(_) => info!("Envoy's access logs reopened"),
                    Err(e) => tracing::warn!("cannot reopen Envoy's access logs: {e}"),
                }
            }
        }
    });
}

/// Each time Envoy serves: tells the bridge where the listener is, and prints the endpoint
/// (stdout, one line each, so scripts can read them).
fn spawn_announcer(
    mut ready: watch::Receiver<Option<Endpoints>>,
    bridge_state: Arc<switchboard_bridge::BridgeState>,
    gateway: &crate::config::Gateway,
) -> tokio::task::JoinHandle<()> {
    let mcp_path = gateway.server.mcp_path.clone();
    let scheme = if gateway.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tokio::spawn(async move {
        while ready.changed().await.is_ok() {
            let Some(e) = ready.borrow_and_update().clone() else {
                continue;
            };
            let host = if e.listener.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                e.listener.ip().to_string()
            };
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            bridge_state.set_gateway(Some(format!("{scheme}://{host}:{}", e.listener.port())));
            println!(
                "MCP endpoint: {scheme}://{host}:{}{mcp_path}",
                e.listener.port()
            );
            println!("Envoy admin: http://{}", e.admin);
        }
    })
}
