//! Host routes: requests routed by their hostname to a whole MCP server, path and query
//! untouched — the gateway YAML's `hosts:` section, and the tunnel proxy's own file
//! ([`TunnelFile`]), which the loader turns into a gateway with only host routes.
//!
//! The IP guard (`upstream.allowed_ips`) is checked here for IP literals; names are resolved
//! by the control plane, which gives Envoy only the addresses the guard permits
//! (`crate::dns`), so Envoy never connects where DNS alone would send it.

use super::env::Expanded;
use super::error::FieldError;
use super::values::{Address, PemFile, duration};
use indexmap::IndexMap;
use serde::{Deserialize, Deserializer};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// `hosts:` as written (the same keys as the tunnel file's).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostsSection {
    #[serde(default)]
    pub tunnel_domain: Option<Expanded>,
    pub routes: IndexMap<String, HostTarget>,
    #[serde(default)]
    pub upstream: UpstreamPolicy,
    /// Forward the credentials clients show the gateway (its API-key headers, the bearer
    /// token of its JWT clients) to host routes too; by default they stop at the gateway.
    #[serde(default)]
    pub forward_credentials: bool,
}

/// The tunnel proxy's configuration file, read as it is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelFile {
    pub listen_addr: Address,
    #[serde(default)]
    pub log_level: LogLevel,
    #[serde(default = "default_shutdown_timeout", deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    #[serde(default)]
    pub tunnel_domain: Option<Expanded>,
    pub tls: TunnelTls,
    pub routes: IndexMap<String, HostTarget>,
    #[serde(default)]
    pub upstream: UpstreamPolicy,
}

impl TunnelFile {
    /// Whether a document is a tunnel file rather than gateway YAML: it has the keys only
    /// that file has at its top.
    pub fn is_one(text: &str) -> bool {
        let Ok(serde_yaml_ng::Value::Mapping(map)) = serde_yaml_ng::from_str(text) else {
            return false;
        };
        ["listen_addr", "routes", "tunnel_domain"]
            .iter()
            .any(|k| map.contains_key(*k))
    }

    /// The host-route part, as the gateway YAML's section would spell it.
    pub fn hosts(&self) -> HostsSection {
        HostsSection {
            tunnel_domain: self.tunnel_domain.clone(),
            routes: self.routes.clone(),
            upstream: self.upstream.clone(),
            forward_credentials: false,
        }
    }
}

pub fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelTls {
    pub cert_file: PemFile,
    pub key_file: PemFile,
}

/// `debug`, `info`, `warn`, `error`: switchboard's log and Envoy's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// switchboard's log filter: `debug` for its own crates only (the libraries' debug
    /// lines drown what an operator looks for).
    pub fn filter(self) -> &'static str {
        match self {
            LogLevel::Debug => "info,switchboard=debug,switchboard_bridge=debug",
            other => other.as_str(),
        }
    }

    /// As `tracing`'s filter spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    /// As Envoy's `--log-level` spells it.
    pub fn envoy(self) -> &'static str {
        match self {
            LogLevel::Warn => "warning",
            other => other.as_str(),
        }
    }
}

/// Where and how host routes may connect.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamPolicy {
    /// IPv4 CIDRs or addresses; `None`: the RFC 1918 private ranges.
    #[serde(default)]
    pub allowed_ips: Option<Vec<Cidr>>,
    #[serde(default)]
    pub disable_ip_validation: bool,
    #[serde(default)]
    pub tls: UpstreamTrust,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTrust {
    #[serde(default)]
    pub ca_file: Option<PemFile>,
    #[serde(default)]
    pub include_system_cas: bool,
}

/// An IPv4 network (`10.0.0.0/8`) or address (`10.1.2.3`, a /32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub ipnet::Ipv4Net);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Expanded::deserialize(d)?;
        let s = s.0.trim();
        s.parse::<ipnet::Ipv4Net>()
            .or_else(|_| s.parse::<Ipv4Addr>().map(ipnet::Ipv4Net::from))
            .map(|n| Cidr(n.trunc()))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "expected an IPv4 address or CIDR like 10.0.0.0/8, found {s:?}"
                ))
            })
    }
}

/// A route's upstream: exactly `scheme://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTarget {
    pub tls: bool,
    /// Lowercase; an IPv6 address without brackets.
    pub host: String,
    pub port: u16,
}

const TARGET_FORM: &str = "invalid upstream (must be scheme://host:port)";

impl HostTarget {
    pub fn parse(s: &str) -> Result<HostTarget, String> {
        let bad = |why: &str| format!("{TARGET_FORM}: {why} in {s:?}");
        let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let tls = match scheme {
            "http" => false,
            "https" => true,
            _ => return Err(bad("the scheme is not http or https")),
        };
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad("a path, query or credentials"));
        }
        // The port is mandatory: a tunnel names exactly where it connects.
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("not a port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let valid = host.parse::<IpAddr>().is_ok() || is_hostname(host);
        if !valid {
            return Err(bad("not a host"));
        }
        Ok(HostTarget {
            tls,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The address when the host is written as one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// `host:port` as it goes into `Host`.
    pub fn authority(&self) -> String {
        match self.ip() {
            Some(IpAddr::V6(ip)) => format!("[{ip}]:{}", self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

impl<'de> Deserialize<'de> for HostTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Expanded::deserialize(d)?;
        HostTarget::parse(s.0.trim()).map_err(serde::de::Error::custom)
    }
}

/// DNS labels of letters, digits and hyphens.
fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// What each name of a host route resolved to (all of it: the translation applies the
/// guard).
pub type Resolved = std::collections::BTreeMap<String, Vec<IpAddr>>;

/// The checked host routes.
#[derive(Debug, Clone, PartialEq)]
pub struct Hosts {
    /// The tunnel domain, lowercase, without a leading dot.
    pub domain: Option<String>,
    /// In file order; keys lowercase.
    pub routes: Vec<HostRoute>,
    pub guard: IpGuard,
    /// Trust for `https://` routes: this CA bundle, and/or the system roots.
    pub ca_file: Option<PemFile>,
    pub include_system_cas: bool,
    pub forward_credentials: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostRoute {
    /// The key as written (lowercase): a bare subdomain or a full hostname.
    pub key: String,
    pub target: HostTarget,
}

/// Which addresses host routes may connect to.
#[derive(Debug, Clone, PartialEq)]
pub enum IpGuard {
    Allowed(Vec<ipnet::Ipv4Net>),
    /// `disable_ip_validation: true`.
    Off,
}

impl IpGuard {
    pub fn permits(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (IpGuard::Off, _) => true,
            (IpGuard::Allowed(nets), IpAddr::V4(v4)) => nets.iter().any(|n| n.contains(&v4)),
            // The list is IPv4; an IPv4-mapped IPv6 address is judged as its IPv4 one.
            (IpGuard::Allowed(nets), IpAddr::V6(v6)) => v6
                .to_ipv4_mapped()
                .is_some_and(|v4| nets.iter().any(|n| n.contains(&v4))),
        }
    }

    /// The private ranges of RFC 1918.
    pub fn private() -> IpGuard {
        IpGuard::Allowed(
            ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
        )
    }
}

impl Hosts {
    /// Checks a section; `at` is where it sits (`hosts.` in gateway YAML, nothing in a
    /// tunnel file), for the field paths of errors.
    pub fn check(section: HostsSection, at: &str) -> Result<Hosts, FieldError> {
        let field = |f: &str| format!("{at}{f}");
        let domain = section
            .tunnel_domain
            .map(|d| d.0.trim().trim_start_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty());
        if let Some(d) = &domain
            && !is_hostname(d)
        {
            return Err(FieldError::new(
                field("tunnel_domain"),
                format!("expected a domain like tunnel.example.com, found {d:?}"),
            ));
        }
        let policy = section.upstream;
        let guard = match (policy.allowed_ips, policy.disable_ip_validation) {
            (Some(_), true) => {
                return Err(FieldError::new(
                    field("upstream.disable_ip_validation"),
                    "give upstream.allowed_ips or upstream.disable_ip_validation, not both",
                ));
            }
            (Some(list), false) => IpGuard::Allowed(list.into_iter().map(|c| c.0).collect()),
            (None, false) => IpGuard::private(),
            (None, true) => IpGuard::Off,
        };
        if section.routes.is_empty() {
            return Err(FieldError::new(
                field("routes"),
                "expected at least one route (hostname: scheme://host:port)",
            ));
        }
        let mut routes: Vec<HostRoute> = Vec::new();
        for (key, target) in section.routes {
            let route_field = field(&format!("routes.{key}"));
            let lower = key.trim().to_ascii_lowercase();
            if !is_hostname(&lower) {
                return Err(FieldError::new(
                    route_field,
                    format!("expected a subdomain or hostname as the key, found {key:?}"),
                ));
            }
            if routes.iter().any(|r| r.key == lower) {
                return Err(FieldError::new(
                    route_field,
                    format!("{key:?} is routed twice (hostnames do not differ by case)"),
                ));
            }
            if let Some(ip) = target.ip()
                && !guard.permits(ip)
            {
                return Err(FieldError::new(
                    route_field,
                    format!(
                        "{ip} is outside upstream.allowed_ips ({}): the gateway will not connect there",
                        guard_list(&guard)
                    ),
                ));
            }
            if target.tls && policy.tls.ca_file.is_none() && !policy.tls.include_system_cas {
                return Err(FieldError::new(
                    route_field,
                    "an https:// upstream needs upstream.tls.ca_file or upstream.tls.include_system_cas: true",
                ));
            }
            routes.push(HostRoute { key: lower, target });
        }
        Ok(Hosts {
            domain,
            routes,
            guard,
            ca_file: policy.tls.ca_file,
            include_system_cas: policy.tls.include_system_cas,
            forward_credentials: section.forward_credentials,
        })
    }

    /// The hostnames each route answers, exact keys first: a key `wiki` with the domain
    /// `t.example.com` answers `wiki` and `wiki.t.example.com`, unless another route's key
    /// is that name exactly (exact match wins); a key in the domain answers itself only.
    pub fn domains(&self) -> Vec<(&HostRoute, Vec<String>)> {
        let exact: std::collections::BTreeSet<&str> =
            self.routes.iter().map(|r| r.key.as_str()).collect();
        self.routes
            .iter()
            .map(|r| {
                let mut names = vec![r.key.clone()];
                if let Some(d) = &self.domain {
                    let full = format!("{}.{d}", r.key);
                    // A key that is a name in the domain already needs no second suffix.
                    let in_domain = r.key == *d || r.key.ends_with(&format!(".{d}"));
                    if !in_domain && !exact.contains(full.as_str()) {
                        names.push(full);
                    }
                }
                (r, names)
            })
            .collect()
    }

    /// The names the control plane resolves (routes written with an IP address need none).
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .routes
            .iter()
            .filter(|r| r.target.ip().is_none())
            .map(|r| r.target.host.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

fn guard_list(guard: &IpGuard) -> String {
    match guard {
        IpGuard::Off => "any".into(),
        IpGuard::Allowed(nets) => nets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_is_exactly_scheme_host_port() {
        let t = HostTarget::parse("https://Wiki.Internal:8443").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port),
            (true, "wiki.internal", 8443)
        );
        assert_eq!(
            HostTarget::parse("http://[::1]:80").unwrap().authority(),
            "[::1]:80"
        );
        for bad in [
            "http://wiki:8080/mcp",
            "http://wiki:8080/",
            "http://wiki",
            "wiki:8080",
            "ftp://wiki:21",
            "http://user@wiki:80",
            "http://wiki:0",
            "http://wiki:8080?x=1",
            "http://wi_ki:80",
        ] {
            let e = HostTarget::parse(bad).unwrap_err();
            assert!(e.starts_with(TARGET_FORM), "{bad}: {e}");
        }
    }

    #[test]
    fn the_guard_defaults_to_private_ranges_and_judges_mapped_addresses() {
        let g = IpGuard::private();
        for ok in ["10.1.2.3", "172.31.0.1", "192.168.1.1", "::ffff:10.0.0.1"] {
            assert!(g.permits(ok.parse().unwrap()), "{ok}");
        }
        for no in [
            "127.0.0.1",
            "169.254.169.254",
            "172.32.0.1",
            "8.8.8.8",
            "::1",
            "fd00::1",
        ] {
            assert!(!g.permits(no.parse().unwrap()), "{no}");
        }
        assert!(IpGuard::Off.permits("169.254.169.254".parse().unwrap()));
    }

    #[test]
    fn exact_keys_win_over_stripped_ones() {
        let section: HostsSection = serde_yaml_ng::from_str(
            "tunnel_domain: .T.example.com\nroutes:\n  wiki: http://10.0.0.1:80\n  wiki.t.example.com: http://10.0.0.2:80\n  Docs.Example.org: http://10.0.0.3:80\n",
        )
        .unwrap();
        let hosts = Hosts::check(section, "").unwrap();
        let domains: Vec<(String, Vec<String>)> = hosts
            .domains()
            .into_iter()
            .map(|(r, d)| (r.key.clone(), d))
            .collect();
        assert_eq!(
            domains,
            [
                ("wiki".to_string(), vec!["wiki".to_string()]),
                (
                    "wiki.t.example.com".into(),
                    vec!["wiki.t.example.com".into()]
                ),
                (
                    "docs.example.org".into(),
                    vec![
                        "docs.example.org".into(),
                        "docs.example.org.t.example.com".into()
                    ]
                ),
            ]
        );
    }

    #[test]
    fn refusals_name_their_field() {
        let check = |yaml: &str| {
            let section: HostsSection = serde_yaml_ng::from_str(yaml).unwrap();
            Hosts::check(section, "hosts.").unwrap_err()
        };
        let e = check("routes:\n  a: http://8.8.8.8:80\n");
        assert_eq!(e.field, "hosts.routes.a");
        assert!(e.message.contains("outside upstream.allowed_ips"), "{e:?}");
        let e = check("routes:\n  a: https://10.0.0.1:443\n");
        assert!(e.message.contains("ca_file"), "{e:?}");
        let e = check(
            "routes:\n  a: http://10.0.0.1:80\nupstream:\n  allowed_ips: [10.0.0.0/8]\n  disable_ip_validation: true\n",
        );
        assert_eq!(e.field, "hosts.upstream.disable_ip_validation");
        let e = check("routes:\n  a: http://10.0.0.1:80\n  A: http://10.0.0.2:80\n");
        assert!(e.message.contains("twice"), "{e:?}");
    }
}
