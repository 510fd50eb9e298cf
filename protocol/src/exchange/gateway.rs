use super::*;

/// Where list results (and what else the gateway learns once for every worker: upstream
/// revisions, kept sessions, listed tools) are kept between requests, shared by Envoy's
/// workers: the wasm shell uses Envoy's shared data, the native shell one bounded map per
/// process, which it shares across worker threads. A cached list is keyed by its upstream's
/// generation: `bump`, called when the upstream says its list changed, makes every cached
/// list of it stale.
pub trait ListCache: Send + Sync {
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    fn put(&self, key: &str, value: &[u8]);
    fn generation(&self, upstream: &str) -> u64;
    fn bump(&self, upstream: &str);
}

/// No cache: every list goes to the upstreams.
pub struct NoCache;

impl ListCache for NoCache {
    fn get(&self, _key: &str) -> Option<Vec<u8>> {
        None
    }
    fn put(&self, _key: &str, _value: &[u8]) {}
    fn generation(&self, _upstream: &str) -> u64 {
        0
    }
    fn bump(&self, _upstream: &str) {}
}

/// Whether names carry their upstream's prefix under this configuration.
pub(super) fn names_prefixed(config: &FilterConfig) -> bool {
    !(config.prefix_mode == PrefixMode::WhenNeeded && config.upstreams.len() == 1)
}

/// The configuration compiled for the data path: built once per configuration.
pub struct Gateway {
    pub config: FilterConfig,
    pub(super) key: SessionKey,
    pub(super) cache: Box<dyn ListCache>,
    /// Per upstream: what its cached pages depend on besides the upstream (prefixes,
    /// separator, tool filters), so a changed configuration never reads an older view; on
    /// the aggregated endpoint and on the upstream's own.
    pub(super) views: Vec<[String; 2]>,
    /// Full names of the tools this gateway has listed: only these get a metric series of
    /// their own; a name a client makes up counts as [`UNKNOWN_TOOL`]. Kept in the cache's
    /// shared store too, since a list and the calls after it may be served by different
    /// workers; this is the worker's own copy.
    pub(super) known_tools: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Some upstream gets tokens by exchange ([`crate::token_exchange`]).
    pub(super) exchanges_tokens: bool,
}

/// The metric series of `tools/call`s of tools the gateway never listed.
pub const UNKNOWN_TOOL: &str = "unknown";

/// At most this many tools get a series of their own (an upstream that lists millions of
/// tools must not make millions of stats).
pub(super) const MAX_KNOWN_TOOLS: usize = 4096;

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    pub fn new(config: FilterConfig) -> Gateway {
        Self::with_cache(config, Box::new(NoCache))
    }

    pub fn with_cache(config: FilterConfig, cache: Box<dyn ListCache>) -> Gateway {
        let key = config.session_keys();
        let prefixed = names_prefixed(&config);
        let view = |u: &Upstream, prefixed: bool| {
            let view = serde_json::to_string(&(
                prefixed,
                &u.prefix,
                &u.uri_prefix,
                &config.separator,
                &u.tools_include,
                &u.tools_exclude,
            ))
            .unwrap_or_default();
            let digest = Sha256::digest(view.as_bytes());
            digest[..8].iter().map(|b| format!("{b:02x}")).collect()
        };
        let views = config
            .upstreams
            .iter()
            .map(|u| [view(u, prefixed), view(u, false)])
            .collect();
        let exchanges_tokens = config.upstreams.iter().any(|u| u.token_exchange.is_some());
        Gateway {
            config,
            key,
            cache,
            views,
            known_tools: Default::default(),
            exchanges_tokens,
        }
    }

    /// Who sent a request: `Ok(None)` when the gateway has no clients to tell apart. A
    /// refused request gets 401 with the challenge.
    pub fn admit(
        &self,
        credentials: &crate::access::Credentials<'_>,
        now_s: u64,
    ) -> Result<Option<crate::access::Identity>, crate::access::Refused> {
        let Some(access) = &self.config.access else {
            return Ok(None);
        };
        let relayed = |token: &str| {
            crate::access::open_relayed(&self.key, token, now_s, self.config.session_max_age_s)
        };
        access.authenticate(credentials, &relayed).map(Some)
    }

    /// The sealed form of `who` that requests to the bridge carry ([`crate::access::IDENTITY_HEADER`]).
    pub fn relay(&self, who: &crate::access::Identity, clock: &Clock) -> String {
        crate::access::seal_relayed(&self.key, who, clock.now_s, &clock.seed)
    }

    pub(super) fn learn_tools<'a>(&self, names: impl Iterator<Item = &'a str>) {
        if let Ok(mut known) = self.known_tools.lock() {
            for n in names {
                if known.len() >= MAX_KNOWN_TOOLS {
                    return;
                }
                if known.insert(n.to_string()) {
                    self.cache.put(&format!("tool/{n}"), b"1");
                }
            }
        }
    }

    /// The metric series of a call of the tool `full` (`name` at its upstream): its own
    /// name once the gateway listed it, else [`UNKNOWN_TOOL`].
    pub(super) fn tool_series(&self, full: &str, name: &str) -> String {
        let Ok(mut known) = self.known_tools.lock() else {
            return UNKNOWN_TOOL.into();
        };
        if known.contains(full) {
            return name.into();
        }
        // Listed by another worker?
        if known.len() < MAX_KNOWN_TOOLS && self.cache.get(&format!("tool/{full}")).is_some() {
            known.insert(full.to_string());
            return name.into();
        }
        UNKNOWN_TOOL.into()
    }

    /// The upstream whose own endpoint `path` is.
    pub(super) fn own_endpoint(&self, path: &str) -> Option<usize> {
        let rest = path
            .strip_prefix(self.config.upstream_path.as_str())?
            .strip_prefix('/')?
            .strip_suffix("/mcp")?;
        self.config.upstreams.iter().position(|u| u.name == rest)
    }

    /// Whether names carry their upstream's prefix (`prefix_mode: when_needed` drops it while
    /// there is a single upstream).
    pub fn prefixed(&self) -> bool {
        names_prefixed(&self.config)
    }

    pub(super) fn by_name(&self, name: &str) -> Option<(usize, &Upstream)> {
        self.config
            .upstreams
            .iter()
            .enumerate()
            .find(|(_, u)| u.name == name)
    }

    /// The upstream Envoy reaches through `cluster` (a callout's).
    pub(super) fn by_cluster(&self, cluster: &str) -> Option<(usize, &Upstream)> {
        self.config
            .upstreams
            .iter()
            .enumerate()
            .find(|(_, u)| u.cluster == cluster)
    }

    pub(super) fn by_prefix(&self, prefix: &str) -> Option<&Upstream> {
        self.config.upstreams.iter().find(|u| u.prefix == prefix)
    }

    pub(super) fn by_uri_prefix(&self, prefix: &str) -> Option<&Upstream> {
        self.config
            .upstreams
            .iter()
            .find(|u| u.uri_prefix.eq_ignore_ascii_case(prefix))
    }
}
