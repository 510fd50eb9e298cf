//! Who may call what: client authentication (API keys, JWT claims verified by Envoy's
//! `jwt_authn`, source addresses) and the access rules on upstreams, tools, prompts and
//! resources. Pure: the filter hands in what the request carries.

use crate::glob;
use crate::session::{self, Sealed, SessionKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// The header in which Envoy's `jwt_authn` forwards a verified token's payload (base64url
/// JSON). The listener removes any a client sends before `jwt_authn` runs.
pub const JWT_PAYLOAD_HEADER: &str = "x-switchboard-jwt-payload";

/// The identity the filter established, sealed ([`seal_relayed`]), on requests to the bridge;
/// the bridge relays it back on the requests it makes on that client's behalf, where it
/// counts only with the bridge's key and only if it opens. Upstream routes remove it.
pub const IDENTITY_HEADER: &str = "x-switchboard-identity";

/// The bridge's key on the requests it makes to the gateway on a client's behalf.
pub const BRIDGE_KEY_HEADER: &str = "x-switchboard-bridge-key";

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// In order: the first that matches is the identity.
    pub clients: Vec<Client>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Digest of the bridge's key ([`BRIDGE_KEY_HEADER`]), when a bridge runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge_key_sha256: Option<String>,
    /// MCP authorization: how a client learns where to get a token, and what scopes
    /// using things needs ([`crate::oauth`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<crate::oauth::OAuth>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    pub name: String,
    /// API key: the header it travels in and the hex SHA-256 of each accepted key (keys
    /// themselves never reach Envoy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKey>,
    /// A token `jwt_authn` verified, from this issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_issuer: Option<String>,
    /// Source addresses, `10.0.0.0/8` or `::1/128`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub header: String,
    pub sha256: Vec<String>,
}

/// Applies to the clients it names and to JWT identities whose claims all match.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<String>,
    /// Claim name → required value (a string, or an element of an array claim).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<(String, String)>,
    #[serde(default)]
    pub allow: Lists,
    #[serde(default)]
    pub deny: Lists,
}

/// Globs on the names clients see (prefixed): upstream names, tool and prompt names,
/// resource URIs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lists {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Host routes, by key (`wiki`, `docs.example.org`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Upstream,
    Tool,
    Prompt,
    Resource,
    Host,
}

impl Kind {
    /// The word for it in messages to clients and operators.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Upstream => "upstream",
            Kind::Tool => "tool",
            Kind::Prompt => "prompt",
            Kind::Resource => "resource",
            Kind::Host => "host route",
        }
    }
}

impl Lists {
    pub(crate) fn of(&self, kind: Kind) -> &[String] {
        match kind {
            Kind::Upstream => &self.upstreams,
            Kind::Tool => &self.tools,
            Kind::Prompt => &self.prompts,
            Kind::Resource => &self.resources,
            Kind::Host => &self.hosts,
        }
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "c")]
    pub client: String,
    /// The verified token's payload, for JWT clients.
    #[serde(rename = "j", default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Value>,
    /// The bridge made this request on the client's behalf (the merged stream reading an
    /// upstream's, a legacy `/sse` message): the audit log says so.
    #[serde(skip)]
    pub via_bridge: bool,
}

impl Identity {
    /// Who it is, as the audit log and operators name it: the client, and the token's
    /// subject for JWT clients.
    pub fn key(&self) -> String {
        match self.claims.as_ref().and_then(|c| c["sub"].as_str()) {
            Some(sub) => format!("{}/{sub}", self.client),
            None => self.client.clone(),
        }
    }

    /// What sessions and a user's upstream tokens are bound to: [`Identity::key`] and, for a
    /// token, its issuer too. A subject names one user only at its issuer: with several
    /// authorization servers, two users may have the same `sub`.
    pub fn binding(&self) -> String {
        match self.claims.as_ref().and_then(|c| c["iss"].as_str()) {
            Some(iss) => format!("{} {iss}", self.key()),
            None => self.key(),
        }
    }
}

/// An identity as the filter hands it to the bridge: sealed with the session key, so the
/// bridge can relay it but nobody can make one up, and dated, so one relayed long ago stops
/// counting (after `session.max_age`, as the sessions it serves do).
#[derive(Serialize, Deserialize)]
struct Relayed {
    #[serde(rename = "i")]
    identity: Identity,
    #[serde(rename = "t")]
    at: u64,
}

/// The [`IDENTITY_HEADER`] value for `who`; `seed` as for [`crate::session::seal`].
pub fn seal_relayed(key: &SessionKey, who: &Identity, now_s: u64, seed: &[u8]) -> String {
    let relayed = Relayed {
        identity: who.clone(),
        at: now_s,
    };
    session::seal_value(key, Sealed::Identity, &relayed, seed)
}

/// The identity in an [`IDENTITY_HEADER`] value the filter sealed, if it is not older than
/// `max_age_s` (0: no limit).
pub fn open_relayed(key: &SessionKey, token: &str, now_s: u64, max_age_s: u64) -> Option<Identity> {
    let r: Relayed = session::open_value(key, Sealed::Identity, token).ok()?;
    (max_age_s == 0 || now_s.saturating_sub(r.at) <= max_age_s).then_some(r.identity)
}

/// What the request carries that can identify its client.
pub struct Credentials<'a> {
    pub header: &'a dyn Fn(&str) -> Option<String>,
    pub source: Option<IpAddr>,
}

/// Why a request is refused: the `WWW-Authenticate` challenge to send with the 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub challenge: String,
    pub message: String,
}

impl AccessConfig {
    /// Who sent a request. `relayed` opens an [`IDENTITY_HEADER`] value ([`open_relayed`]
    /// with the gateway's key): the bridge's key vouches only for an identity the filter
    /// itself sealed, never for one the bridge (or whoever holds its key) makes up.
    pub fn authenticate(
        &self,
        c: &Credentials<'_>,
        relayed: &dyn Fn(&str) -> Option<Identity>,
    ) -> Result<Identity, Refused> {
        if let (Some(digest), Some(key)) = (&self.bridge_key_sha256, (c.header)(BRIDGE_KEY_HEADER))
            && hex_eq(digest, &Sha256::digest(key.trim().as_bytes()))
        {
            return (c.header)(IDENTITY_HEADER)
                .and_then(|h| relayed(&h))
                .map(|who| Identity {
                    via_bridge: true,
                    ..who
                })
                .ok_or_else(|| Refused {
                    challenge: self.challenge(),
                    message:
                        "Unauthorized: the bridge relayed no identity this gateway established"
                            .into(),
                });
        }
        let claims = (c.header)(JWT_PAYLOAD_HEADER).and_then(|p| decode_payload(&p));
        for client in &self.clients {
            if let Some(key) = &client.api_key
                && let Some(presented) = (c.header)(&key.header)
            {
                let digest = Sha256::digest(presented.trim().as_bytes());
                if key.sha256.iter().any(|h| hex_eq(h, &digest)) {
                    return Ok(Identity {
                        client: client.name.clone(),
                        claims: None,
                        ..Default::default()
                    });
                }
            }
            if let (Some(issuer), Some(claims)) = (&client.jwt_issuer, &claims)
                && claims["iss"].as_str() == Some(issuer)
            {
                return Ok(Identity {
                    client: client.name.clone(),
                    claims: Some(claims.clone()),
                    ..Default::default()
                });
            }
            if let Some(ip) = c.source
                && client.cidrs.iter().any(|n| in_cidr(n, ip))
            {
                return Ok(Identity {
                    client: client.name.clone(),
                    claims: None,
                    ..Default::default()
                });
            }
        }
        Err(Refused {
            challenge: self.challenge(),
            message: "Unauthorized: no valid credentials for this gateway".into(),
        })
    }

    /// Whether a token lets `who` use `name`: the scopes that `auth.oauth.require` ties to
    /// it, all of which the token must hold. Clients without a token (API keys, addresses)
    /// hold no scopes and are judged by the rules alone.
    pub fn holds_scopes(&self, who: &Identity, kind: Kind, name: &str) -> bool {
        match (&self.oauth, &who.claims) {
            (Some(oauth), Some(claims)) => oauth.missing(claims, kind, name).is_empty(),
            _ => true,
        }
    }

    /// `Bearer` when tokens are accepted, else the API key scheme with its header.
    fn challenge(&self) -> String {
        if self.clients.iter().any(|c| c.jwt_issuer.is_some()) {
            return "Bearer realm=\"switchboard\"".into();
        }
        match self.clients.iter().find_map(|c| c.api_key.as_ref()) {
            Some(k) => format!("ApiKey realm=\"switchboard\", header=\"{}\"", k.header),
            None => "Basic realm=\"switchboard\"".into(),
        }
    }

    /// Whether `who` may use `name`. No rule at all: everything. Otherwise the rules that
    /// apply to `who` decide: a deny that matches wins, then an allow that matches; nothing
    /// that matches means no. An empty list in a rule says nothing about that kind.
    pub fn allows(&self, who: &Identity, kind: Kind, name: &str) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        let applying: Vec<&Rule> = self.rules.iter().filter(|r| r.applies(who)).collect();
        if applying
            .iter()
            .any(|r| r.deny.of(kind).iter().any(|g| glob::matches(g, name)))
        {
            return false;
        }
        applying.iter().any(|r| {
            let allow = r.allow.of(kind);
            // A rule that lists upstreams but not tools (say) allows the tools of those
            // upstreams; the upstream check decides those.
            (allow.is_empty()
                && !matches!(kind, Kind::Upstream | Kind::Host)
                && !r.allow.upstreams.is_empty())
                || allow.iter().any(|g| glob::matches(g, name))
        })
    }
}

impl Rule {
    fn applies(&self, who: &Identity) -> bool {
        let by_client = self.clients.iter().any(|c| glob::matches(c, &who.client));
        let by_claims = !self.claims.is_empty()
            && who.claims.as_ref().is_some_and(|claims| {
                self.claims.iter().all(|(k, v)| match &claims[k.as_str()] {
                    Value::String(s) => s == v,
                    Value::Array(items) => items.iter().any(|i| i.as_str() == Some(v)),
                    Value::Bool(b) => b.to_string() == *v,
                    Value::Number(n) => n.to_string() == *v,
                    _ => false,
                })
            });
        by_client || by_claims
    }
}

fn decode_payload(b64: &str) -> Option<Value> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64.trim().trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Constant-time comparison of a hex digest with raw bytes.
fn hex_eq(hex: &str, digest: &[u8]) -> bool {
    let hex = hex.as_bytes();
    if hex.len() != digest.len() * 2 {
        return false;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0xff,
    };
    let mut diff = 0u8;
    for (i, b) in digest.iter().enumerate() {
        let (hi, lo) = (nibble(hex[2 * i]), nibble(hex[2 * i + 1]));
        diff |= (hi.wrapping_shl(4) | (lo & 0x0f)) ^ b;
        diff |= (hi | lo) & 0xf0;
    }
    diff == 0
}

/// `ip` is inside `cidr` (`10.0.0.0/8`, `::1/128`, or a bare address).
pub fn in_cidr(cidr: &str, ip: IpAddr) -> bool {
    let (net, len) = match cidr.split_once('/') {
        Some((n, l)) => (n, l.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    // An IPv4 client may arrive as an IPv4-mapped IPv6 address.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let len = len.unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let len = len.unwrap_or(128).min(128);
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// Is `cidr` well formed? (For the control plane's checks.)
pub fn valid_cidr(cidr: &str) -> bool {
    let (net, len) = match cidr.split_once('/') {
        Some((n, l)) => (n, Some(l)),
        None => (cidr, None),
    };
    match (net.parse::<IpAddr>(), len.map(str::parse::<u32>)) {
        (Ok(IpAddr::V4(_)), None) | (Ok(IpAddr::V6(_)), None) => true,
        (Ok(IpAddr::V4(_)), Some(Ok(l))) => l <= 32,
        (Ok(IpAddr::V6(_)), Some(Ok(l))) => l <= 128,
        _ => false,
    }
}

/// The hex SHA-256 of an API key, as the filter's configuration carries it.
pub fn key_digest(key: &str) -> String {
    Sha256::digest(key.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> AccessConfig {
        AccessConfig {
            clients: vec![
                Client {
                    name: "ci".into(),
                    api_key: Some(ApiKey {
                        header: "x-api-key".into(),
                        sha256: vec![key_digest("s3cret")],
                    }),
                    ..Default::default()
                },
                Client {
                    name: "people".into(),
                    jwt_issuer: Some("https://idp".into()),
                    ..Default::default()
                },
                Client {
                    name: "office".into(),
                    cidrs: vec!["10.1.0.0/16".into()],
                    ..Default::default()
                },
            ],
            rules: vec![
                Rule {
                    clients: vec!["ci".into()],
                    allow: Lists {
                        tools: vec!["gh__*".into()],
                        ..Default::default()
                    },
                    deny: Lists {
                        tools: vec!["*__delete_*".into()],
                        ..Default::default()
                    },
                    ..Default::default()
                },
                Rule {
                    claims: vec![("groups".into(), "admin".into())],
                    allow: Lists {
                        upstreams: vec!["*".into()],
                        ..Default::default()
                    },
                    ..Default::default()
                },
            ],
            bridge_key_sha256: None,
            oauth: None,
        }
    }

    fn who(headers: &[(&str, &str)], source: &str) -> Result<Identity, Refused> {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = move |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        config().authenticate(
            &Credentials {
                header: &get,
                source: source.parse().ok(),
            },
            &|_| None,
        )
    }

    fn payload(v: Value) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn each_kind_of_credential_identifies_its_client() {
        assert_eq!(
            who(&[("x-api-key", "s3cret")], "192.0.2.1").unwrap().client,
            "ci"
        );
        assert!(who(&[("x-api-key", "wrong")], "192.0.2.1").is_err());
        let jwt = payload(json!({"iss": "https://idp", "sub": "ada", "groups": ["admin"]}));
        let id = who(&[(JWT_PAYLOAD_HEADER, &jwt)], "192.0.2.1").unwrap();
        assert_eq!(
            (id.client.as_str(), id.key().as_str()),
            ("people", "people/ada")
        );
        let other = payload(json!({"iss": "https://elsewhere", "sub": "x"}));
        assert!(who(&[(JWT_PAYLOAD_HEADER, &other)], "192.0.2.1").is_err());
        assert_eq!(who(&[], "10.1.2.3").unwrap().client, "office");
        assert_eq!(who(&[], "::ffff:10.1.2.3").unwrap().client, "office");
        let refused = who(&[], "10.2.0.1").unwrap_err();
        assert!(refused.challenge.starts_with("Bearer"), "{refused:?}");
    }

    #[test]
    fn deny_beats_allow_and_no_matching_rule_denies() {
        let c = config();
        let ci = Identity {
            client: "ci".into(),
            claims: None,
            ..Default::default()
        };
        assert!(c.allows(&ci, Kind::Tool, "gh__create_issue"));
        assert!(!c.allows(&ci, Kind::Tool, "gh__delete_repo"), "deny wins");
        assert!(!c.allows(&ci, Kind::Tool, "jira__create"), "not allowed");
        assert!(
            !c.allows(&ci, Kind::Prompt, "gh__p"),
            "no rule lists prompts for ci"
        );
        let admin = Identity {
            client: "people".into(),
            claims: Some(json!({"groups": ["admin"]})),
            ..Default::default()
        };
        assert!(c.allows(&admin, Kind::Upstream, "jira"));
        assert!(
            c.allows(&admin, Kind::Tool, "jira__create"),
            "upstream rule covers its tools"
        );
        let plain = Identity {
            client: "people".into(),
            claims: Some(json!({"groups": ["dev"]})),
            ..Default::default()
        };
        assert!(!c.allows(&plain, Kind::Tool, "gh__create_issue"));
        let open = AccessConfig::default();
        assert!(
            open.allows(&plain, Kind::Tool, "anything"),
            "no rules: everything"
        );
    }

    #[test]
    fn the_bridge_speaks_only_for_an_identity_the_filter_sealed() {
        let mut c = config();
        c.bridge_key_sha256 = Some(key_digest("bridge-secret-0123456789"));
        let key = SessionKey::derive(b"session key");
        let ada = Identity {
            client: "people".into(),
            claims: Some(json!({"sub": "ada", "groups": ["admin"]})),
            ..Default::default()
        };
        let sealed = seal_relayed(&key, &ada, 1_000, b"seed");
        let open = |h: &str| open_relayed(&key, h, 1_010, 3_600);
        let run = |headers: &[(&str, &str)]| {
            let get = |name: &str| {
                headers
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            };
            c.authenticate(
                &Credentials {
                    header: &get,
                    source: None,
                },
                &open,
            )
        };
        let bridge = ("x-switchboard-bridge-key", "bridge-secret-0123456789");
        let relayed = run(&[bridge, (IDENTITY_HEADER, &sealed)]).unwrap();
        assert_eq!((relayed.key(), relayed.via_bridge), (ada.key(), true));
        // The key alone, or with an identity it made up, is nobody.
        assert!(run(&[bridge]).is_err());
        use base64::Engine;
        let made_up = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&ada).unwrap());
        assert!(run(&[bridge, (IDENTITY_HEADER, &made_up)]).is_err());
        let other_key = seal_relayed(&SessionKey::derive(b"another"), &ada, 1_000, b"s");
        assert!(run(&[bridge, (IDENTITY_HEADER, &other_key)]).is_err());
        // A sealed identity without the key is nothing either.
        assert!(run(&[(IDENTITY_HEADER, &sealed)]).is_err());
        // A relayed identity gets old.
        assert_eq!(open_relayed(&key, &sealed, 1_000 + 3_601, 3_600), None);
        assert!(open_relayed(&key, &sealed, 9_999_999, 0).is_some());
    }

    #[test]
    fn cidrs_and_digests() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_cidr("10.0.0.0/8", ip("10.200.1.1")));
        assert!(!in_cidr("10.0.0.0/8", ip("11.0.0.1")));
        assert!(in_cidr("0.0.0.0/0", ip("192.0.2.1")));
        assert!(in_cidr("::1/128", ip("::1")));
        assert!(in_cidr("127.0.0.1", ip("127.0.0.1")));
        assert!(!valid_cidr("10.0.0.0/33") && valid_cidr("fd00::/8") && !valid_cidr("x/8"));
        let d = key_digest("k");
        assert!(hex_eq(&d, &Sha256::digest(b"k")));
        assert!(hex_eq(&d.to_uppercase(), &Sha256::digest(b"k")));
        assert!(!hex_eq(&d, &Sha256::digest(b"j")));
        assert!(!hex_eq("zz", &Sha256::digest(b"k")));
    }
}
