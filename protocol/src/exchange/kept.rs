//! Upstream sessions kept for stateless clients. A 2026-07-28 client has no session, but a
//! 2025 upstream needs one: the first request opens it (`initialize`,
//! `notifications/initialized`), and it is kept in the shared cache — every worker sees it —
//! for the next requests of the same client (its identity, the capabilities it declares,
//! the credentials passed through for it), instead of a handshake and a `DELETE` around every
//! request. What is kept is an upstream session id per client and upstream, not per
//! request, in a bounded number of slots ([`SLOTS`]); an entry unused for [`KEEP_MS`] is not
//! used again, and an upstream that forgot the session (404) gets a new one, the request
//! asked again once.

use super::*;

/// How long a kept session serves after its last use.
const KEEP_MS: u64 = 5 * 60_000;

/// A kept entry is written again (its last use) at most this often.
const TOUCH_MS: u64 = 60_000;

/// Entries per upstream: a client's entry lives in one of this many slots, so what is kept
/// stays bounded however many clients come (Envoy's shared data never forgets a key). Two
/// clients in one slot take turns: the one displaced opens a new session next time.
const SLOTS: u32 = 4096;

#[derive(Debug, Serialize, Deserialize)]
struct Kept {
    /// Whose it is (the full key digest): a slot's other tenants do not use it.
    #[serde(rename = "k")]
    owner: String,
    /// The upstream's `Mcp-Session-Id`.
    #[serde(rename = "s")]
    session_id: String,
    /// The version it negotiated.
    #[serde(rename = "v")]
    version: String,
    /// [`caps`] bits.
    #[serde(rename = "c")]
    capabilities: u8,
    /// Last use, ms since the epoch.
    #[serde(rename = "t")]
    used_ms: u64,
}

impl Exchange {
    /// Whose entry this request uses at upstream `u`: the upstream's address, the client's
    /// identity, the capabilities its `initialize` declares, and the values of the headers
    /// passed through to the upstream (a session opened with one user's token is never
    /// another's).
    /// The shared-data key of this client's slot at upstream `u`, and the digest that says
    /// the entry there is this client's.
    fn kept_key(&self, gw: &Gateway, u: usize) -> (String, String) {
        let upstream = &gw.config.upstreams[u];
        let mut h = Sha256::new();
        for part in [
            upstream.cluster.as_str(),
            upstream.authority.as_str(),
            upstream.path.as_str(),
            self.identity_key().as_deref().unwrap_or(""),
            self.client_meta
                .as_ref()
                .map_or("", |c| c.capabilities.as_str()),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for (k, v) in upstream.pass_through_headers(&self.pass_through) {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.as_bytes());
            h.update([0]);
        }
        let digest = h.finalize();
        let slot = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % SLOTS;
        let owner: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        (format!("kept/{}/{slot}", upstream.name), owner)
    }

    /// The kept session at upstream `u` for this client, as an opening's result: its
    /// answer (with the session id), an `initialize`-shaped result, and its last use.
    pub(super) fn kept_session(
        &self,
        gw: &Gateway,
        u: usize,
        now_ms: u64,
    ) -> Option<(CalloutAnswer, Value, u64)> {
        let (key, owner) = self.kept_key(gw, u);
        let raw = gw.cache.get(&key)?;
        let kept: Kept = serde_json::from_slice(&raw).ok()?;
        if kept.owner != owner || now_ms.saturating_sub(kept.used_ms) >= KEEP_MS {
            return None;
        }
        let answer = CalloutAnswer {
            status: 200,
            session_id: Some(kept.session_id),
            ..CalloutAnswer::default()
        };
        let result = era::known_result(&kept.version, kept.capabilities);
        Some((answer, result, kept.used_ms))
    }

    /// Keeps (or touches) the 2025 upstream sessions of `session` for the client's next
    /// requests; `reused` are those that came from the cache, with their last use.
    pub(super) fn keep_sessions(
        &self,
        gw: &Gateway,
        session: &Session,
        reused: &[(String, u64)],
        now_ms: u64,
    ) {
        for us in &session.upstreams {
            let Some(sid) = &us.session_id else { continue };
            let fresh = reused
                .iter()
                .find(|(n, _)| *n == us.name)
                .is_some_and(|(_, used)| now_ms.saturating_sub(*used) < TOUCH_MS);
            let Some((u, _)) = gw.by_name(&us.name) else {
                continue;
            };
            if fresh {
                continue;
            }
            let (key, owner) = self.kept_key(gw, u);
            let kept = Kept {
                owner,
                session_id: sid.clone(),
                version: us.protocol_version.clone(),
                capabilities: us.capabilities,
                used_ms: now_ms,
            };
            if let Ok(value) = serde_json::to_vec(&kept) {
                gw.cache.put(&key, &value);
            }
        }
    }

    /// The kept session at upstream `u` is gone (the upstream forgot it): not used again.
    pub(super) fn forget_kept(&self, gw: &Gateway, u: usize) {
        gw.cache.put(&self.kept_key(gw, u).0, b"");
    }
}
