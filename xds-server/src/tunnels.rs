//! The SOCKS5 tunnels of proxied upstreams (see `switchboard_bridge::tunnel`), kept across
//! reloads: a tunnel keeps its port while its upstream stays proxied, so a change of
//! credentials or proxy reaches new connections without changing Envoy's cluster.

use crate::config::Gateway;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use switchboard_bridge::tunnel::{Route, Tunnel};

pub enum Tunnels {
    /// Tunnels listen on this address (where Envoy reaches the bridge).
    Live {
        bind: IpAddr,
        running: Mutex<BTreeMap<String, Tunnel>>,
    },
    /// No bridge runs (`serve` without `--bridge`): proxied upstreams are refused.
    Unavailable,
    /// `render`: port 0 stands for the tunnel `run` would start.
    Placeholder,
}

impl Tunnels {
    pub fn live(bind: IpAddr) -> Tunnels {
        Tunnels::Live {
            bind,
            running: Mutex::default(),
        }
    }

    /// A tunnel for every proxied upstream of `gateway` (and none for the others): the
    /// address Envoy's cluster of each must point at.
    pub fn ensure(&self, gateway: &Gateway) -> anyhow::Result<BTreeMap<String, SocketAddr>> {
        let wanted: BTreeMap<String, Route> = gateway
            .upstreams
            .iter()
            .filter_map(|u| {
                let p = u.proxy.as_ref()?;
                Some((
                    u.name.to_string(),
                    Route {
                        upstream: u.name.to_string(),
                        proxy: (p.url.host.clone(), p.url.port),
                        target: (u.url.host(), u.url.port()),
                        credentials: p
                            .username
                            .as_ref()
                            .zip(p.password.as_ref())
                            .map(|(user, pass)| (user.0.clone(), pass.0.clone())),
                    },
                ))
            })
            .collect();
        match self {
            Tunnels::Placeholder => Ok(wanted
                .into_keys()
                .map(|name| (name, SocketAddr::from(([127, 0, 0, 1], 0))))
                .collect()),
            Tunnels::Unavailable => match wanted.keys().next() {
                Some(name) => anyhow::bail!(
                    "upstream {name:?} has a SOCKS5 proxy, which needs the bridge: use `switchboard run`, or `switchboard serve --bridge ADDR`"
                ),
                None => Ok(BTreeMap::new()),
            },
            Tunnels::Live { bind, running } => {
                let mut running = running.lock().unwrap_or_else(|e| e.into_inner());
                running.retain(|name, _| wanted.contains_key(name));
                let mut out = BTreeMap::new();
                for (name, route) in wanted {
                    match running.get(&name) {
                        Some(t) => {
                            if t.route().as_ref() != Some(&route) {
                                tracing::info!(upstream = %name, "SOCKS5 proxy settings changed; new connections use them");
                                t.set_route(route);
                            }
                        }
                        None => {
                            let t =
                                Tunnel::start(route, SocketAddr::new(*bind, 0)).map_err(|e| {
                                    anyhow::anyhow!(
                                        "cannot start the SOCKS5 tunnel of upstream {name:?}: {e}"
                                    )
                                })?;
                            tracing::info!(upstream = %name, addr = %t.addr, "SOCKS5 tunnel listening");
                            running.insert(name.clone(), t);
                        }
                    }
                    if let Some(t) = running.get(&name) {
                        out.insert(name, t.addr);
                    }
                }
                Ok(out)
            }
        }
    }
}
