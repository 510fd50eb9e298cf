//! `switchboard-bench`: the side-by-side benchmark (`make bench`, see BENCHMARKS.md).
//!
//! `run` starts an upstream fleet, an Envoy with a plain route and Envoy's native
//! `mcp_router`, and Switchboard gateways, then runs every scenario against every target in
//! alternating rounds and writes a markdown table and a JSON file.
//! `upstream` is the fast MCP server the others stand in front of.

mod client;
mod load;
mod procfs;
mod report;
mod scenarios;
mod targets;
mod upstream;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Switchboard's side-by-side benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every scenario against direct, plain route, native mcp_router and Switchboard.
    Run(scenarios::Options),
    /// Load one endpoint with `tools/call` of its echo tool (for profiling a gateway).
    Load {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Result size in bytes.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// The upstream answers the call as an event stream.
        #[arg(long)]
        sse: bool,
        /// `tools/list` instead of `tools/call`.
        #[arg(long)]
        list: bool,
    },
    /// Serve the fast upstream fleet on loopback; prints its addresses as one JSON line.
    Upstream {
        /// Listeners answering at once.
        #[arg(long, default_value_t = 16)]
        listeners: usize,
        /// Tools per listener (`echo` and fillers).
        #[arg(long, default_value_t = 50)]
        tools: usize,
        /// More listeners, whose `tools/list` waits this many milliseconds (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "")]
        slow_list_ms: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run(opts) => {
            // The load generator gets its own two threads; Envoy and the upstream share the
            // rest of the machine with it, as in any single-host benchmark.
            runtime(2)?.block_on(scenarios::run(opts))
        }
        Cmd::Load {
            url,
            concurrency,
            seconds,
            size,
            sse,
            list,
        } => runtime(2)?.block_on(scenarios::load_one(
            &url,
            concurrency,
            seconds,
            size,
            sse,
            list,
        )),
        Cmd::Upstream {
            listeners,
            tools,
            slow_list_ms,
        } => {
            runtime(1)?.block_on(async move {
                let mut specs = vec![
                    upstream::Listener {
                        tools,
                        list_delay: Duration::ZERO,
                    };
                    listeners
                ];
                for ms in slow_list_ms.iter().filter(|s| !s.is_empty()) {
                    specs.push(upstream::Listener {
                        tools,
                        list_delay: Duration::from_millis(ms.parse()?),
                    });
                }
                let addrs = upstream::serve(&specs).await?;
                println!("{}", serde_json::to_string(&addrs)?);
                // Until the benchmark stops us.
                std::future::pending::<()>().await;
                Ok(())
            })
        }
    }
}

fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
}

/// GET a URL as text (Envoy's admin).
pub async fn http_get(url: &str) -> anyhow::Result<String> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let res = client.get(url.parse()?).await?;
    let body = res.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// This checkout's root (the bench crate's parent).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}
