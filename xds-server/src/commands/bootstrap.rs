use crate::bootstrap::{BootstrapParams, XdsAddress, XdsClientTls, bootstrap_yaml};
use anyhow::Context;
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Where `switchboard serve` listens, as the Envoy hosts reach it (`host:port`).
    #[arg(long)]
    xds: String,
    /// The Envoy node id (shows in switchboard's log).
    #[arg(long)]
    node: String,
    /// Envoy's admin address.
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin: SocketAddr,
    /// ADS over TLS: the CA (PEM, a path on the Envoy host) that signs the control plane's
    /// certificate (`serve --xds-cert`).
    #[arg(long, requires_all = ["xds_cert", "xds_key"])]
    xds_ca: Option<String>,
    /// This Envoy's client certificate (PEM, a path on the Envoy host), which `serve
    /// --xds-client-ca` checks and `--xds-allow-node` matches against the node id.
    #[arg(long, requires = "xds_ca")]
    xds_cert: Option<String>,
    /// Its private key (a path on the Envoy host).
    #[arg(long, requires = "xds_ca")]
    xds_key: Option<String>,
    /// The name the control plane's certificate must carry (default: the host of --xds).
    #[arg(long, requires = "xds_ca")]
    xds_server_name: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (host, port) = split_host_port(&args.xds)?;
    let tls = match (args.xds_ca, args.xds_cert, args.xds_key) {
        (Some(ca), Some(cert), Some(key)) => Some(XdsClientTls {
            ca,
            cert,
            key,
            server_name: args.xds_server_name.unwrap_or_else(|| host.clone()),
        }),
        _ => None,
    };
    let yaml = bootstrap_yaml(&BootstrapParams {
        node_id: args.node,
        xds: XdsAddress::Tcp { host, port, tls },
        admin: args.admin,
    })?;
    print!("{yaml}");
    Ok(ExitCode::SUCCESS)
}

/// `host:port` or `[v6]:port`.
pub fn split_host_port(s: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = s
        .rsplit_once(':')
        .with_context(|| format!("expected host:port, found {s:?}"))?;
    let port = port
        .parse()
        .with_context(|| format!("invalid port in {s:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    anyhow::ensure!(!host.is_empty(), "expected host:port, found {s:?}");
    Ok((host.to_string(), port))
}
