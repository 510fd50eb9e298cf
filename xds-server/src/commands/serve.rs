use crate::ads::Ads;
use crate::commands::wasm_path;
use crate::gateway::{Source, filter_module};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::info;

#[derive(clap::Args)]
pub struct Args {
    #[arg(short, long, env = "SWITCHBOARD_CONFIG")]
    config: PathBuf,
    /// Address to serve ADS on.
    #[arg(long, default_value = "127.0.0.1:18000")]
    xds: String,
    /// Path of the filter's .wasm on the Envoy hosts.
    #[arg(long, env = "SWITCHBOARD_WASM")]
    wasm: Option<PathBuf>,
    /// Also run the bridge (the merged `GET /mcp` stream) on this address, which every Envoy
    /// must reach and nothing else should (like the xDS port). Without it, `GET /mcp` is 405.
    #[arg(long)]
    bridge: Option<std::net::SocketAddr>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut module = filter_module(&wasm_path(args.wasm.as_deref()));
        let mut bridge = None;
        let mut tunnels = crate::tunnels::Tunnels::Unavailable;
        if let Some(addr) = args.bridge {
            anyhow::ensure!(
                !addr.ip().is_unspecified(),
                "--bridge {addr}: give the address Envoy connects to, not a wildcard"
            );
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for the bridge"))?;
            let addr = listener.local_addr()?;
            let state = Arc::new(switchboard_bridge::BridgeState::default());
            let app = switchboard_bridge::Bridge::new(state.clone()).router();
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!("bridge failed: {e}");
                }
            });
            module.bridge = Some(addr);
            bridge = Some(state);
            tunnels = crate::tunnels::Tunnels::live(addr.ip());
            // stdout, one line, like the xDS address.
            println!("bridge: {addr}");
        }
        let source = Source {
            config: args.config,
            module,
            bridge,
            tunnels: Arc::new(tunnels),
        };
        let (gateway, snapshot) = source.load()?;
        let files: Vec<PathBuf> = gateway.pem_files().into_iter().map(Into::into).collect();
        source.update_bridge(&gateway);
        let (tx, rx) = tokio::sync::watch::channel(Arc::new(snapshot));
        let _watch = crate::watch::spawn(source, tx, files)?;
        let listener = TcpListener::bind(&args.xds)
            .await
            .with_context(|| format!("cannot listen on {}", args.xds))?;
        // stdout, one line, so scripts (and `switchboard bootstrap --xds`) can use a port 0 bind.
        println!("xDS: {}", listener.local_addr()?);
        serve_ads(listener, Ads::new(rx), shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

pub async fn serve_ads(
    listener: TcpListener,
    ads: Ads,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .add_service(ads.into_service())
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await
        .context("ADS server failed")
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    info!("shutting down");
}
