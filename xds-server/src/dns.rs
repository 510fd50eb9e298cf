//! The names of host routes, resolved by the control plane for the IP guard.
//!
//! Envoy cannot check a resolved address against a CIDR list when it connects, so it never
//! resolves these names: the control plane does, keeps the answers, and the translation gives
//! each route's cluster only the addresses `upstream.allowed_ips` permits. A name that now
//! resolves elsewhere leaves its cluster without endpoints, and Envoy answers the client with
//! a JSON-RPC error naming the route instead of connecting. Answers are refreshed every
//! [`REFRESH`] (the resolver caches them for their TTL) and on every reload.

use crate::config::Gateway;
use crate::config::hosts::Hosts;
use crate::gateway::{self, Source};
use crate::resources::Snapshot;
use anyhow::Context;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

/// How often names are looked up again (answers still in the resolver's cache cost nothing).
pub const REFRESH: Duration = Duration::from_secs(2);

/// Name servers to ask instead of the system's (`/etc/resolv.conf`): `ip:port`, commas.
pub const SERVERS_ENV: &str = "SWITCHBOARD_DNS_SERVERS";

pub use switchboard::config::hosts::Resolved as Answers;

pub struct Dns {
    resolver: TokioResolver,
    answers: Mutex<Answers>,
    /// The host routes in force, whose names are kept resolved.
    wanted: Mutex<Option<Hosts>>,
    /// Wakes the refresher (a reload named new hosts).
    wake: Notify,
}

impl Dns {
    /// The system's resolver, or the name servers of [`SERVERS_ENV`].
    pub fn from_env() -> anyhow::Result<Dns> {
        let provider = TokioRuntimeProvider::default();
        let builder = match std::env::var(SERVERS_ENV) {
            Ok(list) if !list.trim().is_empty() => {
                let mut servers = Vec::new();
                for s in list.split(',') {
                    let addr: SocketAddr = s.trim().parse().with_context(|| {
                        format!("{SERVERS_ENV}: expected ip:port, found {:?}", s.trim())
                    })?;
                    let mut udp = ConnectionConfig::udp();
                    udp.port = addr.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = addr.port();
                    servers.push(NameServerConfig::new(addr.ip(), true, vec![udp, tcp]));
                }
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(servers),
                    provider,
                )
            }
            _ => TokioResolver::builder(provider)
                .context("cannot read the system's DNS configuration (/etc/resolv.conf)")?,
        };
        let mut builder = builder;
        // Short: a changed answer should reach Envoy within seconds whatever the TTL says.
        builder.options_mut().positive_max_ttl = Some(Duration::from_secs(30));
        builder.options_mut().timeout = Duration::from_secs(2);
        Ok(Dns {
            resolver: builder.build().context("cannot build the DNS resolver")?,
            answers: Mutex::default(),
            wanted: Mutex::default(),
            wake: Notify::new(),
        })
    }

    /// The resolver of `run` and `serve`. A bad [`SERVERS_ENV`] is an error; without the
    /// system's configuration (no readable `/etc/resolv.conf`) the gateway still starts:
    /// routes written with an address work, named ones have no address (they fail closed)
    /// and the log says why.
    pub fn shared() -> anyhow::Result<Option<Arc<Dns>>> {
        match Dns::from_env() {
            Ok(dns) => Ok(Some(Arc::new(dns))),
            Err(e) if std::env::var_os(SERVERS_ENV).is_some() => Err(e),
            Err(e) => {
                warn!("no DNS resolver, so host routes to names will not connect: {e:#}");
                Ok(None)
            }
        }
    }

    /// The answers so far.
    pub fn answers(&self) -> Answers {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Follows the host routes of the configuration in force; new names are looked up at
    /// once.
    pub fn follow(&self, hosts: Option<&Hosts>) {
        let mut wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
        let known = self.answers();
        let new_names = hosts.is_some_and(|h| h.names().iter().any(|n| !known.contains_key(n)));
        *wanted = hosts.cloned();
        if new_names {
            self.wake.notify_one();
        }
    }

    /// Looks every wanted name up; `true` when an answer changed. A failed lookup keeps no
    /// address (the route fails closed) and says why.
    pub async fn refresh(&self) -> bool {
        let Some(hosts) = self
            .wanted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return false;
        };
        let mut fresh = Answers::new();
        for name in hosts.names() {
            let addresses = match self.resolver.lookup_ip(format!("{name}.")).await {
                Ok(found) => {
                    let mut v: Vec<IpAddr> = found.iter().collect();
                    v.sort();
                    v.dedup();
                    v
                }
                Err(e) => {
                    warn!("host routes: cannot resolve {name}: {e}");
                    Vec::new()
                }
            };
            fresh.insert(name, addresses);
        }
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if *answers == fresh {
            return false;
        }
        for (name, addresses) in &fresh {
            if answers.get(name) == Some(addresses) {
                continue;
            }
            let refused: Vec<String> = addresses
                .iter()
                .filter(|a| !hosts.guard.permits(**a))
                .map(ToString::to_string)
                .collect();
            let routes: Vec<&str> = hosts
                .routes
                .iter()
                .filter(|r| r.target.host == *name)
                .map(|r| r.key.as_str())
                .collect();
            if refused.is_empty() {
                info!(?routes, "host routes: {name} resolves to {addresses:?}");
            } else {
                warn!(
                    ?routes,
                    "host routes: {name} resolves to {}, outside upstream.allowed_ips: the gateway will not connect there{}",
                    refused.join(", "),
                    if refused.len() == addresses.len() {
                        " (the route answers an error until it resolves inside)"
                    } else {
                        ""
                    }
                );
            }
        }
        *answers = fresh;
        true
    }
}

/// The first load: the names of host routes are resolved before Envoy gets a configuration.
pub async fn load_resolved(source: &Source) -> anyhow::Result<(Gateway, Snapshot)> {
    let first = source.load()?;
    match &source.dns {
        Some(dns) if first.0.hosts.is_some() => {
            dns.refresh().await;
            source.load()
        }
        _ => Ok(first),
    }
}

/// Keeps the names of `source`'s host routes resolved, and publishes a new snapshot when an
/// answer changes.
pub fn spawn(source: Source, tx: watch::Sender<Arc<Snapshot>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(dns) = source.dns.clone() else {
            return;
        };
        loop {
            tokio::select! {
                () = tokio::time::sleep(REFRESH) => {}
                () = dns.wake.notified() => {}
            }
            if dns.refresh().await {
                let source = source.clone();
                let tx = tx.clone();
                let _ = tokio::task::spawn_blocking(move || gateway::reload(&source, &tx)).await;
            }
        }
    })
}
