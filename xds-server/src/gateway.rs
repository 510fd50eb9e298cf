//! One configuration in force: load the file, translate, check, and publish the snapshot that
//! every ADS stream follows. A bad edit is refused here and the last good snapshot stays.

use crate::config::{self, env::Environment};
use crate::resources::Snapshot;
use crate::translate::{self, FilterModule};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use switchboard_protocol::filter_config::SECRETS_KEY_ENV;
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
    /// Resolves the names of host routes (`None`: `render`, which connects nowhere).
    pub dns: Option<Arc<crate::dns::Dns>>,
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
        let tunnels = self.tunnels.ensure(&gateway)?;
        let mut module = translate::hosted_module(&gateway, &self.module, tunnels)?;
        if let Some(dns) = &self.dns {
            dns.follow(gateway.hosts.as_ref());
            module.resolved = dns.answers();
        }
        let snapshot = Snapshot::new(&translate::translate(&gateway, &module));
        snapshot
            .check_consistent()
            .map_err(|e| anyhow::anyhow!("internal error: inconsistent snapshot: {e}"))?;
        Ok((gateway, snapshot))
    }
}

/// Replaces `path` whole (a reader never sees half of it), with `mode` from the start: the
/// keys and certificates of `switchboard certs`.
pub fn write_whole(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

impl Source {
    /// Hands the configuration in force to the bridge, if this control plane runs one.
    pub fn update_bridge(&self, gateway: &config::Gateway) {
        if let Some(bridge) = &self.bridge {
            bridge.set_config(
                translate::filter_config(gateway, &self.module),
                gateway.server.upstream_path.clone(),
            );
            bridge.hosted.configure(translate::hosted_configs(gateway));
            bridge.set_key(self.module.bridge_key.clone());
            bridge.set_ingress_secret(self.module.bridge_ingress.clone());
        }
    }
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
        data_plane: translate::DataPlane::Wasm,
        data_plane_pinned: false,
        path: path.display().to_string(),
        native_path: String::new(),
        secrets_key: std::env::var(SECRETS_KEY_ENV)
            .ok()
            .filter(|k| !k.is_empty()),
        sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        fallback_session_key: process_session_key().to_string(),
        bridge: None,
        tunnels: Default::default(),
        resolved: Default::default(),
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
pub fn process_secret(purpose: &str) -> &'static str {
    static SESSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static BRIDGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static INGRESS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static SECRETS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let cell = match purpose {
        "bridge" => &BRIDGE,
        "bridge-ingress" => &INGRESS,
        "secrets" => &SECRETS,
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
    // One at a time (a file edit and a changed DNS answer may race): a load that read older
    // answers never publishes after one that read newer ones.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
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
