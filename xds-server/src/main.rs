//! `switchboard`: the control plane of an MCP gateway that runs inside Envoy.

mod ads;
mod bootstrap;
mod commands;
mod dns;
mod envoy;
mod gateway;
mod istio;
mod static_config;
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
        /// `resources`: what ADS pushes, by type. `envoy`: one complete static configuration
        /// for `envoy -c` (no control plane, no bridge; needs SWITCHBOARD_SECRETS_KEY, which
        /// that Envoy then needs in its environment too). `istio`: the objects an Istio
        /// ingress gateway needs (WasmPlugin, ServiceEntry, DestinationRule, Gateway,
        /// VirtualService; needs SWITCHBOARD_SECRETS_KEY too).
        #[arg(long, value_enum, default_value_t = commands::RenderFormat::Resources)]
        format: commands::RenderFormat,
        /// `--format istio`: the namespace of the objects (the ingress gateway's).
        #[arg(long, default_value = "istio-system")]
        namespace: String,
        /// `--format istio`: the ingress gateway's pod labels, `KEY=VALUE` (repeatable).
        #[arg(long = "selector", default_value = "istio=ingressgateway")]
        selector: Vec<String>,
    },
}

type LogFilter =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// Set when `SWITCHBOARD_LOG` does not decide the log's filter: the configuration may then.
static LOG_FILTER: std::sync::OnceLock<LogFilter> = std::sync::OnceLock::new();

/// The configuration's `log_level` (`server.log_level`, a tunnel file's), unless
/// `SWITCHBOARD_LOG` was given.
pub(crate) fn set_log_level(level: &str) {
    if let Some(handle) = LOG_FILTER.get()
        && let Err(e) = handle.reload(tracing_subscriber::EnvFilter::new(level))
    {
        eprintln!("switchboard: cannot change the log level: {e}");
    }
}

fn main() -> ExitCode {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let from_env = tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG").ok();
    let configurable = from_env.is_none();
    let (filter, handle) = tracing_subscriber::reload::Layer::new(
        from_env.unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info")),
    );
    if configurable {
        let _ = LOG_FILTER.set(handle);
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
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
            format,
            namespace,
            selector,
        } => commands::render(
            &config,
            &modules,
            bridge,
            format,
            &commands::IstioArgs {
                namespace,
                selector,
            },
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("switchboard: {e:#}");
            ExitCode::FAILURE
        }
    }
}
