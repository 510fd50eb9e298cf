//! One configuration in force: load the file, translate, check, and publish the snapshot that
//! every ADS stream follows. A bad edit is refused here and the last good snapshot stays.

use crate::config::model::{SessionMode, UpstreamKind};
use crate::config::{self, env::Environment};
use crate::resources::Snapshot;
use crate::translate::{self, FilterModule};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use switchboard_bridge::hosted::{HostedConfig, Transport};
use tokio::sync::watch;
use tracing::{error, info};

/// Where the configuration comes from.
#[derive(Clone)]
pub struct Source {
    pub config: PathBuf,
    pub module: FilterModule,
    /// The bridge this control plane runs, which follows every configuration in force.
    pub bridge: Option<Arc<switchboard_bridge::BridgeState>>,
    /// The bridge's SOCKS5 tunnels for proxied upstreams.
    pub tunnels: Arc<crate::tunnels::Tunnels>,
}

impl Source {
    pub fn load(&self) -> anyhow::Result<(config::Gateway, Snapshot)> {
        let gateway = config::load_file(&self.config, &Environment::Process)?;
        for w in gateway.warnings() {
            tracing::warn!("{w}");
        }
        if gateway.session.key.is_none() {
            tracing::warn!(
                "session.key is not set: using a random key, so sessions end when switchboard restarts and cannot move between control planes"
            );
        }
        let mut tunnels = self.tunnels.ensure(&gateway)?;
        // A stdio upstream is the bridge's endpoint for it.
        for u in gateway
            .upstreams
            .iter()
            .filter(|u| u.kind != UpstreamKind::Http)
        {
            let bridge = self.module.bridge.ok_or_else(|| {
                anyhow::anyhow!(
                    "upstream {:?} is a stdio or legacy SSE server, which needs the bridge: use `switchboard run`, or `switchboard serve --bridge ADDR`",
                    u.name.0
                )
            })?;
            tunnels.insert(u.name.to_string(), bridge);
        }
        if gateway.legacy_sse() && self.module.bridge.is_none() {
            anyhow::bail!(
                "server.transports has sse, which needs the bridge: use `switchboard run`, or `switchboard serve --bridge ADDR`"
            );
        }
        let module = FilterModule {
            tunnels,
            ..self.module.clone()
        };
        let snapshot = Snapshot::new(&translate::translate(&gateway, &module));
        snapshot
            .check_consistent()
            .map_err(|e| anyhow::anyhow!("internal error: inconsistent snapshot: {e}"))?;
        Ok((gateway, snapshot))
    }
}

impl Source {
    /// Hands the configuration in force to the bridge, if this control plane runs one.
    pub fn update_bridge(&self, gateway: &config::Gateway) {
        if let Some(bridge) = &self.bridge {
            bridge.set_config(
                translate::filter_config(gateway, &self.module),
                gateway.server.upstream_path.clone(),
            );
            bridge.hosted.configure(hosted_configs(gateway));
            bridge.set_key(self.module.bridge_key.clone());
            bridge.set_ingress_secret(self.module.bridge_ingress.clone());
        }
    }
}

/// What the bridge needs to run the gateway's stdio and legacy SSE upstreams.
fn hosted_configs(gateway: &config::Gateway) -> Vec<HostedConfig> {
    gateway
        .upstreams
        .iter()
        .filter_map(|u| {
            let transport = match u.kind {
                UpstreamKind::Http => return None,
                UpstreamKind::Stdio => Transport::Process {
                    command: u.command.as_ref().map(|c| c.0.clone()).unwrap_or_default(),
                    args: u.args.iter().map(|a| a.0.clone()).collect(),
                    env: u
                        .env
                        .iter()
                        .map(|(k, v)| (k.clone(), v.0.clone()))
                        .collect(),
                    inherit_env: u.inherit_env,
                    cwd: u.cwd.as_ref().map(|c| PathBuf::from(&c.0)),
                },
                UpstreamKind::Sse => {
                    let (url, headers) = u.sse.clone()?;
                    Transport::LegacySse {
                        url: url.url.to_string(),
                        headers: headers.into_iter().map(|(k, v)| (k, v.0)).collect(),
                        read_timeout: u.sse_read_timeout,
                    }
                }
            };
            Some(HostedConfig {
                name: u.name.to_string(),
                transport,
                startup_timeout: u.startup_timeout,
                initialization_retries: u.initialization_retries,
                retry_delay: u.retry_delay,
                capability_discovery_delay: u.capability_discovery_delay,
                shared: u.session_mode == SessionMode::Shared,
                idle_timeout: u.idle_timeout,
                max_processes: u.max_processes,
                request_timeout: u.timeout,
                pass_through: u
                    .auth
                    .pass_through
                    .headers
                    .iter()
                    .map(|h| h.target_header.to_ascii_lowercase())
                    .collect(),
            })
        })
        .collect()
}

/// Reads the filter module to name its VM by content. When the file is not on this host (a
/// fleet that has it at another path), the path names it instead.
pub fn filter_module(path: &Path) -> FilterModule {
    use sha2::{Digest, Sha256};
    let digest = match std::fs::read(path) {
        Ok(bytes) => Sha256::digest(&bytes),
        Err(_) => Sha256::digest(path.to_string_lossy().as_bytes()),
    };
    FilterModule {
        path: path.display().to_string(),
        sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        fallback_session_key: process_session_key().to_string(),
        bridge: None,
        tunnels: Default::default(),
        bridge_key: process_secret("bridge").to_string(),
        bridge_ingress: process_secret("bridge-ingress").to_string(),
    }
}

/// A random session key for this process, used when the gateway file sets none: sessions
/// then end when switchboard restarts and cannot be shared with another control plane.
pub fn process_session_key() -> &'static str {
    process_secret("session")
}

/// 32 random bytes, hex, made once per process and `purpose`.
fn process_secret(purpose: &str) -> &'static str {
    static SESSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static BRIDGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static INGRESS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let cell = match purpose {
        "bridge" => &BRIDGE,
        "bridge-ingress" => &INGRESS,
        _ => &SESSION,
    };
    cell.get_or_init(|| {
        let mut bytes = [0u8; 32];
        if let Err(e) = getrandom::fill(&mut bytes) {
            // Without an OS random source nothing can be kept secret: refuse to run.
            panic!("no random source for the session key: {e}");
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// Reloads `source` and publishes the result if it changed; on error keeps what is in force.
/// Returns the certificate files the configuration in force names.
pub fn reload(source: &Source, tx: &watch::Sender<Arc<Snapshot>>) -> Option<Vec<PathBuf>> {
    match source.load() {
        Ok((gateway, snapshot)) => {
            let files = gateway
                .pem_files()
                .into_iter()
                .map(Path::to_path_buf)
                .collect();
            source.update_bridge(&gateway);
            let changed = tx.send_if_modified(|current| {
                if current.same_content(&snapshot) {
                    false
                } else {
                    *current = Arc::new(snapshot);
                    true
                }
            });
            if changed {
                let names: Vec<&str> = gateway.upstreams.iter().map(|u| &*u.name).collect();
                info!(upstreams = ?names, "configuration reloaded; pushing to Envoy");
            } else {
                info!("configuration unchanged");
            }
            Some(files)
        }
        Err(e) => {
            error!("configuration refused, the last good one stays in force: {e:#}");
            None
        }
    }
}
