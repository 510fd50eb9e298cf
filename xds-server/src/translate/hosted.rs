//! The upstreams the bridge runs for Envoy (stdio servers, legacy SSE servers), as the
//! bridge's own configuration.

use super::FilterModule;
use crate::config::Gateway;
use crate::config::model::{SessionMode, UpstreamKind};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use switchboard_bridge::hosted::{HostedConfig, Transport};

/// A configuration this control plane cannot translate as it runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    #[error(
        "upstream {0:?} is a stdio or legacy SSE server, which needs the bridge: use `switchboard run`, or `switchboard serve --bridge ADDR`"
    )]
    UpstreamNeedsBridge(String),
    #[error(
        "server.transports has sse, which needs the bridge: use `switchboard run`, or `switchboard serve --bridge ADDR`"
    )]
    LegacySseNeedsBridge,
}

/// `module` for `gateway`: the upstreams the bridge stands in for point at it — a stdio or
/// legacy SSE upstream at the bridge itself, a proxied one at its SOCKS5 tunnel (`tunnels`).
pub fn hosted_module(
    gateway: &Gateway,
    module: &FilterModule,
    mut tunnels: BTreeMap<String, SocketAddr>,
) -> Result<FilterModule, TranslateError> {
    for u in gateway
        .upstreams
        .iter()
        .filter(|u| !matches!(u.kind, UpstreamKind::Http | UpstreamKind::Openapi))
    {
        let bridge = module
            .bridge
            .ok_or_else(|| TranslateError::UpstreamNeedsBridge(u.name.to_string()))?;
        tunnels.insert(u.name.to_string(), bridge);
    }
    if gateway.legacy_sse() && module.bridge.is_none() {
        return Err(TranslateError::LegacySseNeedsBridge);
    }
    Ok(FilterModule {
        tunnels,
        ..module.clone()
    })
}

/// What the bridge needs to run the gateway's stdio and legacy SSE upstreams.
pub fn hosted_configs(gateway: &Gateway) -> Vec<HostedConfig> {
    gateway
        .upstreams
        .iter()
        .filter_map(|u| {
            let transport = match u.kind {
                UpstreamKind::Http | UpstreamKind::Openapi => return None,
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
