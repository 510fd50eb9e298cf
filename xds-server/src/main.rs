//! `switchboard`: the control plane of an MCP gateway that runs inside Envoy.

mod ads;
mod bootstrap;
mod commands;
mod envoy;
mod gateway;
mod tunnels;
mod watch;

// What the library has; `crate::config` (and the others) paths go through this import.
use switchboard::{config, render, resources, translate};

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "An MCP gateway inside Envoy: gateway YAML in, Envoy xDS out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve xDS on loopback and run a local Envoy with it (the embedded default).
    Run(commands::run::Args),
    /// Serve xDS only, for an Envoy fleet that already runs.
    Serve(commands::serve::Args),
    /// Print the Envoy bootstrap that connects an Envoy to `switchboard serve`.
    Bootstrap(commands::bootstrap::Args),
    /// Make or renew the tunnel domain's CA and server certificate (offline).
    #[command(subcommand)]
    Certs(commands::certs::Certs),
    /// Check a gateway file; exit 1 with the error (file:line:column: field: message).
    Validate {
        #[arg(short, long, env = "SWITCHBOARD_CONFIG")]
        config: PathBuf,
    },
    /// Print the Envoy resources that would be pushed for a gateway file, as YAML.
    Render {
        #[arg(short, long, env = "SWITCHBOARD_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        modules: commands::ModuleArgs,
        /// Render as `serve --bridge ADDR` would push (default: as `run` does, the bridge on
        /// loopback, at port 0 where `run` picks one).
        #[arg(long)]
        bridge: Option<std::net::SocketAddr>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => commands::run::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Bootstrap(args) => commands::bootstrap::run(args),
        Command::Certs(c) => commands::certs::run(c),
        Command::Validate { config } => commands::validate(&config),
        Command::Render {
            config,
            modules,
            bridge,
        } => commands::render(&config, &modules, bridge),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("switchboard: {e:#}");
            ExitCode::FAILURE
        }
    }
}
