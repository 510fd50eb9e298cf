//! The leaf values of the gateway YAML: addresses, URLs, names, durations and PEM files, each
//! checked as it is read (so its error is placed at its field).

use super::env::Expanded;
use super::error::ValueError;
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::time::Duration;

/// A PEM file the gateway reads and hands to Envoy by SDS (never inlined in a cluster).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PemFile {
    pub path: std::path::PathBuf,
    /// Filled by [`crate::config::load_file`]; empty when the config was parsed from text.
    pub pem: Vec<u8>,
}

impl<'de> Deserialize<'de> for PemFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Expanded::deserialize(d)?;
        if s.0.trim().is_empty() {
            return Err(serde::de::Error::custom("expected a file path"));
        }
        Ok(PemFile {
            path: s.0.into(),
            pem: Vec::new(),
        })
    }
}

pub(super) fn optional_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// A `host:port` socket address, `${VAR}` expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address(pub SocketAddr);

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Expanded::deserialize(d)?;
        s.0.parse().map(Address).map_err(|_| {
            serde::de::Error::custom(format!(
                "expected an IP address and port like 127.0.0.1:8080, found {:?}",
                s.0
            ))
        })
    }
}

/// An upstream's MCP endpoint: `http://` or `https://`, a host, no credentials in the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub url: url::Url,
}

/// Where Envoy reaches the bridge's endpoint of a stdio upstream (the cluster's address is
/// the bridge's; this names the host and path).
const BRIDGE_HOST: &str = "switchboard-bridge.invalid";

impl UpstreamUrl {
    /// Stands for "no `url` given" until the loader checks it.
    pub fn missing() -> Self {
        UpstreamUrl {
            url: url::Url::parse(&format!("http://{BRIDGE_HOST}/")).unwrap_or_else(|_| {
                // A fixed, valid URL: parsing cannot fail.
                unreachable!()
            }),
        }
    }

    pub fn is_missing(&self) -> bool {
        *self == Self::missing()
    }

    /// The bridge's endpoint of a stdio or legacy SSE upstream `name`.
    pub fn hosted(name: &str) -> Self {
        let mut u = Self::missing();
        u.url.set_path(&format!("/hosted/{name}/mcp"));
        u
    }

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let url = url::Url::parse(s)
            .map_err(|e| ValueError(format!("expected an http(s) URL, found {s:?} ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ValueError(format!(
                "expected an http:// or https:// URL, found scheme {:?}",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ValueError(format!(
                "expected a URL with a host, found {s:?}"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ValueError(
                "credentials in the URL are not allowed; put them in `headers` with ${VAR}".into(),
            ));
        }
        if url.fragment().is_some() {
            return Err(ValueError(format!(
                "expected a URL without a #fragment, found {s:?}"
            )));
        }
        Ok(UpstreamUrl { url })
    }

    pub fn is_tls(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// The host without IPv6 brackets.
    pub fn host(&self) -> String {
        match self.url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(h) => h.to_string(),
            None => String::new(),
        }
    }

    pub fn port(&self) -> u16 {
        self.url.port_or_known_default().unwrap_or(80)
    }

    /// `host[:port]` as it goes into `Host`/`:authority`.
    pub fn authority(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        }
    }

    /// Path and query, as the upstream expects them.
    pub fn path_and_query(&self) -> String {
        match self.url.query() {
            Some(q) => format!("{}?{q}", self.url.path()),
            None => self.url.path().to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for UpstreamUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Expanded::deserialize(d)?;
        UpstreamUrl::parse(&s.0).map_err(serde::de::Error::custom)
    }
}

/// `30s`, `1m30s`, `250ms`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = Expanded::deserialize(d)?;
    parse_duration(&s.0).map_err(serde::de::Error::custom)
}

pub fn parse_duration(s: &str) -> Result<Duration, ValueError> {
    humantime::parse_duration(s.trim()).map_err(|_| {
        ValueError(format!(
            "expected a duration like 30s, 1m or 250ms, found {s:?}"
        ))
    })
}

/// A checked upstream name (see [`check_upstream_name`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpstreamName(pub String);

impl std::ops::Deref for UpstreamName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UpstreamName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UpstreamName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_upstream_name(&s).map_err(serde::de::Error::custom)?;
        Ok(UpstreamName(s))
    }
}

/// Upstream names become Envoy cluster names, URL path segments and tool-name prefixes.
pub fn check_upstream_name(name: &str) -> Result<(), ValueError> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && !name.contains("__");
    // The metrics count the gateway's own answers and its fan-outs under these names.
    if ["gateway", "fan_out"]
        .iter()
        .any(|r| name.eq_ignore_ascii_case(r))
    {
        return Err(ValueError(format!(
            "upstream name {name:?} is reserved: the metrics count the gateway's own answers as \"gateway\" and its fan-outs as \"fan_out\""
        )));
    }
    if ok {
        Ok(())
    } else {
        Err(ValueError(format!(
            "upstream name {name:?} must be 1-48 letters, digits, '-' or '_', start with a letter or digit, and not contain \"__\" (the tool-name separator)"
        )))
    }
}
