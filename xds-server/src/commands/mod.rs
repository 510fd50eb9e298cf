//! One module per subcommand; `validate` and `render` are small enough to live here.

pub mod bootstrap;
pub mod run;
pub mod serve;

use crate::config::{self, env::Environment};
use crate::gateway::{Source, filter_module};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn validate(path: &Path) -> anyhow::Result<ExitCode> {
    match config::load_file(path, &Environment::Process) {
        Ok(g) => {
            for w in g.warnings() {
                eprintln!("{}: warning: {w}", path.display());
            }
            println!(
                "{}: ok ({} upstream{})",
                path.display(),
                g.upstreams.len(),
                if g.upstreams.len() == 1 { "" } else { "s" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `bridge`: where `serve --bridge` would run it; else as `run` does, on loopback (the port
/// `run` picks at start shows as 0).
pub fn render(
    path: &Path,
    wasm: Option<&Path>,
    bridge: Option<std::net::SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let mut module = filter_module(&wasm_path(wasm));
    module.bridge = Some(bridge.unwrap_or_else(|| ([127, 0, 0, 1], 0).into()));
    let source = Source {
        config: path.to_path_buf(),
        module,
        bridge: None,
        tunnels: std::sync::Arc::new(crate::tunnels::Tunnels::Placeholder),
    };
    let (gateway, snapshot) = source.load()?;
    let yaml = crate::render::snapshot_yaml(&snapshot)?;
    print!(
        "{}",
        crate::render::redact_values(&yaml, &gateway.secrets())
    );
    Ok(ExitCode::SUCCESS)
}

/// The filter module: `--wasm`/`SWITCHBOARD_WASM`, else the one built in this checkout.
pub fn wasm_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    }
    const BUILT: &str = "target/wasm/wasm32-unknown-unknown/wasm/switchboard_filter.wasm";
    let roots = crate::envoy::project_roots();
    roots
        .iter()
        .map(|r| r.join(BUILT))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            roots
                .first()
                .map(|r| r.join(BUILT))
                .unwrap_or_else(|| BUILT.into())
        })
}
