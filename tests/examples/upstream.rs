//! The rmcp test server on its own, for trying the gateway by hand and quick measurements:
//! `cargo run -p switchboard-e2e --example upstream -- [PORT] [LABEL]` (PORT 0: any free one).

use switchboard_e2e::peers::RmcpServer;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(0);
    let label = args.next().unwrap_or_else(|| "upstream".into());
    let server = RmcpServer::start_on(&label, port).await?;
    println!("MCP upstream {label:?}: {}", server.url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
