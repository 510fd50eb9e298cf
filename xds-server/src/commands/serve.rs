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
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let source = Source {
            config: args.config,
            module: filter_module(&wasm_path(args.wasm.as_deref())),
            bridge: None,
        };
        let (_, snapshot) = source.load()?;
        let (tx, rx) = tokio::sync::watch::channel(Arc::new(snapshot));
        let _watch = crate::watch::spawn(source, tx)?;
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
