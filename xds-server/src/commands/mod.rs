//! One module per subcommand; `validate` and `render` are small enough to live here.

pub mod bootstrap;
pub mod certs;
pub mod run;
pub mod serve;

use crate::config::{self, env::Environment};
use crate::gateway::{Source, filter_module};
use crate::translate::{DataPlane, FilterModule};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use switchboard_protocol::filter_config::SECRETS_KEY_ENV;

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub fn validate(path: &Path) -> anyhow::Result<ExitCode> {
    match config::load_file(path, &Environment::Process) {
        Ok(g) => {
            for w in g.warnings() {
                eprintln!("{}: warning: {w}", path.display());
            }
            let routes = g.hosts.as_ref().map_or(0, |h| h.routes.len());
            if routes == 0 {
                println!(
                    "{}: ok ({} upstream{})",
                    path.display(),
                    g.upstreams.len(),
                    plural(g.upstreams.len())
                );
            } else {
                println!(
                    "{}: ok ({} upstream{}, {routes} host route{})",
                    path.display(),
                    g.upstreams.len(),
                    plural(g.upstreams.len()),
                    plural(routes)
                );
                for (r, names) in g.hosts.iter().flat_map(|h| h.domains()) {
                    let t = &r.target;
                    let scheme = if t.tls { "https" } else { "http" };
                    println!("  {} -> {scheme}://{}", names.join(", "), t.authority());
                }
            }
            // What each REST upstream's document yields, as clients will see the names.
            for u in g
                .upstreams
                .iter()
                .filter(|u| !u.rest_tools.is_empty() || u.openapi.is_some())
            {
                let source = u.openapi.as_ref().map_or("", |o| o.source.0.as_str());
                println!(
                    "  {}: {} tool{} from {source}",
                    u.name,
                    u.rest_tools.len(),
                    plural(u.rest_tools.len())
                );
                let prefix = switchboard_protocol::naming::prefix_name(
                    g.prefix(u),
                    &g.aggregation.separator,
                    "",
                );
                for t in &u.rest_tools {
                    println!("    {prefix}{}  ({} {})", t.name, t.method, t.path);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Which data plane, and where its module is: shared by `run`, `serve` and `render`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ModuleArgs {
    /// The data plane: `native` (an Envoy dynamic module, Envoy ≥ 1.38) or `wasm`
    /// (proxy-wasm, for Istio and Envoys without dynamic modules). Default: the gateway
    /// file's `server.data_plane`, else `native` where its module is found, else `wasm`.
    #[arg(long, env = "SWITCHBOARD_DATA_PLANE", value_enum)]
    pub data_plane: Option<DataPlane>,
    /// The filter's .wasm (else the one built in this checkout).
    #[arg(long, env = "SWITCHBOARD_WASM")]
    pub wasm: Option<PathBuf>,
    /// The native module, libswitchboard_native.so (else the one built in this checkout).
    #[arg(long = "native-module", env = "SWITCHBOARD_NATIVE_MODULE")]
    pub native_module: Option<PathBuf>,
}

impl ModuleArgs {
    /// The module, and the secrets key from the environment (which must be long enough to
    /// be one).
    pub fn filter_module(&self) -> anyhow::Result<FilterModule> {
        let wasm = wasm_path(self.wasm.as_deref());
        let native = native_path(self.native_module.as_deref());
        let mut module = filter_module(&wasm);
        module.native_path = native.display().to_string();
        module.data_plane = self.data_plane.unwrap_or(
            // Given only a .wasm, or no native module to load: wasm.
            if native.is_file() && (self.wasm.is_none() || self.native_module.is_some()) {
                DataPlane::Native
            } else {
                DataPlane::Wasm
            },
        );
        module.data_plane_pinned = self.data_plane.is_some();
        if let Some(key) = &module.secrets_key {
            anyhow::ensure!(
                key.len() >= 32,
                "{SECRETS_KEY_ENV} has {} characters: give at least 32 (e.g. `openssl rand -hex 32`)",
                key.len()
            );
        }
        Ok(module)
    }
}

/// What `render` prints.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderFormat {
    /// The resources ADS pushes, by type, with their versions.
    Resources,
    /// One static Envoy configuration (`envoy -c`).
    Envoy,
    /// The objects of an Istio ingress gateway.
    Istio,
}

/// Where `--format istio` puts its objects.
#[derive(Debug, Clone)]
pub struct IstioArgs {
    pub namespace: String,
    /// `KEY=VALUE` labels of the ingress gateway's pods.
    pub selector: Vec<String>,
}

impl IstioArgs {
    fn target(&self) -> anyhow::Result<crate::istio::IstioTarget> {
        let selector = self
            .selector
            .iter()
            .map(|s| {
                s.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| anyhow::anyhow!("--selector {s:?}: expected KEY=VALUE"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(crate::istio::IstioTarget {
            namespace: self.namespace.clone(),
            selector,
        })
    }
}

/// `bridge`: where `serve --bridge` would run it; else as `run` does, on loopback (the port
/// `run` picks at start shows as 0).
pub fn render(
    path: &Path,
    modules: &ModuleArgs,
    bridge: Option<std::net::SocketAddr>,
    format: RenderFormat,
    istio: &IstioArgs,
) -> anyhow::Result<ExitCode> {
    let mut module = modules.filter_module()?;
    if format == RenderFormat::Istio {
        // Istio's proxies load wasm, not dynamic modules.
        module.data_plane = DataPlane::Wasm;
        module.data_plane_pinned = true;
    }
    module.bridge = match format {
        RenderFormat::Resources => Some(bridge.unwrap_or_else(|| ([127, 0, 0, 1], 0).into())),
        RenderFormat::Envoy | RenderFormat::Istio => {
            anyhow::ensure!(
                bridge.is_none(),
                "--bridge: a static configuration has no bridge (it runs inside `serve`)"
            );
            anyhow::ensure!(
                module.secrets_key.is_some(),
                "set {SECRETS_KEY_ENV}: the filter's secrets are sealed with it, and the Envoy that reads this configuration needs the same key in its environment"
            );
            None
        }
    };
    let source = Source {
        config: path.to_path_buf(),
        module,
        bridge: None,
        tunnels: std::sync::Arc::new(crate::tunnels::Tunnels::Placeholder),
        dns: None,
    };
    let (gateway, snapshot) = source.load()?;
    let yaml = match format {
        RenderFormat::Resources => crate::render::snapshot_yaml(&snapshot)?,
        RenderFormat::Envoy => crate::render::to_yaml(&crate::static_config::static_bootstrap(
            &gateway, &snapshot,
        )?)?,
        RenderFormat::Istio => crate::istio::objects(&gateway, &source.module, &istio.target()?)?
            .iter()
            .map(crate::render::to_yaml)
            .collect::<Result<Vec<_>, _>>()?
            .join("---\n"),
    };
    print!(
        "{}",
        crate::render::redact_values(&yaml, &gateway.secrets())
    );
    Ok(ExitCode::SUCCESS)
}

/// The wasm filter: `--wasm`/`SWITCHBOARD_WASM`, else the one built in this checkout.
pub fn wasm_path(flag: Option<&Path>) -> PathBuf {
    built(
        flag,
        &["target/wasm/wasm32-unknown-unknown/wasm/switchboard_filter.wasm"],
    )
}

/// The native module: `--native-module`/`SWITCHBOARD_NATIVE_MODULE`, else the one built in
/// this checkout (release before debug).
pub fn native_path(flag: Option<&Path>) -> PathBuf {
    built(
        flag,
        &[
            "target/release/libswitchboard_native.so",
            "target/debug/libswitchboard_native.so",
        ],
    )
}

fn built(flag: Option<&Path>, candidates: &[&str]) -> PathBuf {
    if let Some(p) = flag {
        return std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    }
    let roots = crate::envoy::project_roots();
    let mut all = roots
        .iter()
        .flat_map(|r| candidates.iter().map(move |c| r.join(c)));
    all.find(|p| p.is_file()).unwrap_or_else(|| {
        roots
            .first()
            .map(|r| r.join(candidates[0]))
            .unwrap_or_else(|| candidates[0].into())
    })
}
