use crate::ads::Ads;
use crate::gateway::Source;
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
    /// The data plane and where its module is on the Envoy hosts.
    #[command(flatten)]
    modules: crate::commands::ModuleArgs,
    /// Also run the bridge (the merged `GET /mcp` stream) on this address, which every Envoy
    /// must reach and nothing else should (like the xDS port). Without it, `GET /mcp` is 405.
    #[arg(long)]
    bridge: Option<std::net::SocketAddr>,
    #[command(flatten)]
    tls: XdsTls,
}

/// ADS over TLS. Every snapshot carries the session key and upstream credentials: serve it
/// only to Envoys that prove who they are.
#[derive(clap::Args)]
pub struct XdsTls {
    /// The control plane's certificate (PEM), for ADS over TLS.
    #[arg(long, requires = "xds_key")]
    xds_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "xds_cert")]
    xds_key: Option<PathBuf>,
    /// CA (PEM) that signs the Envoys' client certificates: each must show one.
    #[arg(long, requires = "xds_cert")]
    xds_client_ca: Option<PathBuf>,
    /// Serve only this node id (repeat for more), and only to a client certificate that names
    /// it (common name, DNS or URI name).
    #[arg(long = "xds-allow-node", value_name = "ID", requires = "xds_client_ca")]
    allowed: Vec<String>,
    /// Serve plain-text ADS on an address that is not loopback: whoever reaches the port gets
    /// the whole configuration, secrets included. Only behind a network that does the
    /// authenticating (a mesh's mTLS, say).
    #[arg(long)]
    xds_insecure: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut module = args.modules.filter_module()?;
        if module.secrets_key.is_none() {
            tracing::warn!(
                "SWITCHBOARD_SECRETS_KEY is not set: the filter's secrets (session keys, API-key digests, upstream header values) go to every Envoy in its configuration, where the admin interface's config_dump shows them. Set the same random key in the environment of switchboard and of every Envoy"
            );
        }
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
            dns: crate::dns::Dns::shared()?,
        };
        let (gateway, snapshot) = crate::dns::load_resolved(&source).await?;
        if let Some(level) = gateway.server.log_level {
            crate::set_log_level(level.filter());
        }
        let files: Vec<PathBuf> = gateway.pem_files().into_iter().map(Into::into).collect();
        source.update_bridge(&gateway);
        let (tx, rx) = tokio::sync::watch::channel(Arc::new(snapshot));
        let _dns = crate::dns::spawn(source.clone(), tx.clone());
        let _watch = crate::watch::spawn(source, tx, files)?;
        let tls = args.tls.server_config()?;
        let listener = TcpListener::bind(&args.xds)
            .await
            .with_context(|| format!("cannot listen on {}", args.xds))?;
        let addr = listener.local_addr()?;
        match &tls {
            None if !addr.ip().is_loopback() && !args.tls.xds_insecure => anyhow::bail!(
                "refusing plain-text ADS on {addr}: every Envoy that reaches it would get the configuration with its session key and upstream credentials. Give --xds-cert, --xds-key and --xds-client-ca (and --xds-allow-node), or --xds-insecure if the network authenticates the Envoys"
            ),
            None => tracing::warn!(
                "ADS on {addr} is plain text: any process that reaches it gets the configuration with its secrets (use --xds-cert, --xds-key and --xds-client-ca)"
            ),
            Some(_) if args.tls.xds_client_ca.is_none() => tracing::warn!(
                "ADS on {addr} asks no client certificate: any client that reaches it gets the configuration with its secrets (add --xds-client-ca)"
            ),
            Some(_) => {}
        }
        // stdout, one line, so scripts (and `switchboard bootstrap --xds`) can use a port 0 bind.
        println!("xDS: {addr}");
        let ads = Ads::new(rx).with_nodes(crate::ads::peer::NodePolicy {
            allowed: args.tls.allowed.clone(),
        });
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        serve_ads(incoming, tls, ads, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

impl XdsTls {
    fn server_config(&self) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
        let (Some(cert), Some(key)) = (&self.xds_cert, &self.xds_key) else {
            return Ok(None);
        };
        let read =
            |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
        let mut config = tonic::transport::ServerTlsConfig::new().identity(
            tonic::transport::Identity::from_pem(read(cert)?, read(key)?),
        );
        if let Some(ca) = &self.xds_client_ca {
            config = config
                .client_ca_root(tonic::transport::Certificate::from_pem(read(ca)?))
                .client_auth_optional(false);
        }
        Ok(Some(config))
    }
}

/// Serves ADS on `incoming` (TCP, or the Unix socket of `run`), over TLS when `tls` is set.
pub async fn serve_ads<S, IO, E>(
    incoming: S,
    tls: Option<tonic::transport::ServerTlsConfig>,
    ads: Ads,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    S: futures::Stream<Item = Result<IO, E>> + Send + 'static,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)));
    if let Some(tls) = tls {
        server = server.tls_config(tls).context("invalid xDS TLS settings")?;
    }
    // A graceful stop waits for open requests, and an ADS stream is one that never ends by
    // itself: end them first.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut stopped = stop_rx.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    server
        .add_service(ads.with_stopping(stop_rx).into_service())
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
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
