use crate::bootstrap::{BootstrapParams, bootstrap_yaml};
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
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (host, port) = split_host_port(&args.xds)?;
    let yaml = bootstrap_yaml(&BootstrapParams {
        node_id: args.node,
        xds_host: host,
        xds_port: port,
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
