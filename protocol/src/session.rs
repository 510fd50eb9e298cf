//! The gateway's session: every upstream's `Mcp-Session-Id` and negotiated protocol version,
//! sealed into the one `Mcp-Session-Id` the client holds.
//!
//! The token is encrypted and authenticated (XChaCha20-Poly1305) with a key derived from
//! `session.key`, so the gateway keeps no session state: any Envoy worker or replica with the
//! same key opens it, and no upstream session id ever reaches the client.
//!
//! `wasm32-unknown-unknown` has no randomness, so the nonce is synthetic (as in SIV modes):
//! an HMAC over a caller-given seed (time, worker, counter) and the plaintext. Distinct seeds
//! never repeat a nonce; even a repeated seed only repeats a nonce for the same plaintext,
//! which reveals nothing but equality.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const NONCE_LEN: usize = 24;

/// What a sealed value is: each kind has its own prefix and associated data, so a cursor can
/// never be opened as a session or the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealed {
    Session,
    Cursor,
    /// An identity the filter established, relayed by the bridge ([`crate::access`]).
    Identity,
    /// An upstream's `requestState`, bound to it and the client ([`crate::request_state`]).
    RequestState,
    /// The filter's own secrets in its configuration
    /// ([`crate::filter_config::FilterConfig::seal_secrets`]).
    FilterSecrets,
}

impl Sealed {
    fn prefix(self) -> &'static str {
        match self {
            Sealed::Session => "sb1.",
            Sealed::Cursor => "sbc1.",
            Sealed::Identity => "sbi1.",
            Sealed::RequestState => "sbr1.",
            Sealed::FilterSecrets => "sbs1.",
        }
    }

    fn aad(self) -> &'static [u8] {
        match self {
            Sealed::Session => b"switchboard-session-v1",
            Sealed::Cursor => b"switchboard-cursor-v1",
            Sealed::Identity => b"switchboard-identity-v1",
            Sealed::RequestState => b"switchboard-request-state-v1",
            Sealed::FilterSecrets => b"switchboard-filter-secrets-v1",
        }
    }

    /// The longest token accepted: what clients send is small; a configuration's secrets
    /// (every client's API-key digests) can be large, and come from the control plane.
    fn max_len(self) -> usize {
        match self {
            Sealed::FilterSecrets => 16 << 20,
            _ => 16 * 1024,
        }
    }
}

/// Keys derived from the configured secret (HKDF-SHA256): the one that seals, and earlier
/// ones that still open what they sealed, so a key can be rotated without ending sessions.
#[derive(Clone)]
pub struct SessionKey {
    cipher: XChaCha20Poly1305,
    /// Keyed with a full SHA-256 block, so construction is infallible; cloned per token.
    nonce_mac: Hmac<Sha256>,
    /// Keys being rotated out: they open, never seal.
    previous: Vec<XChaCha20Poly1305>,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// `current` seals and opens; each of `previous` only opens.
    pub fn rotating(current: &[u8], previous: &[&[u8]]) -> SessionKey {
        SessionKey {
            previous: previous
                .iter()
                .map(|p| SessionKey::derive(p).cipher)
                .collect(),
            ..SessionKey::derive(current)
        }
    }

    pub fn derive(secret: &[u8]) -> SessionKey {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"switchboard session key"), secret);
        let mut okm = [0u8; 96];
        // 96 bytes is far below HKDF-SHA256's limit of 8160: expand cannot fail.
        let _ = hk.expand(b"xchacha20poly1305 + nonce", &mut okm);
        let mut enc = [0u8; 32];
        let mut nonce_key = [0u8; 64];
        enc.copy_from_slice(&okm[..32]);
        nonce_key.copy_from_slice(&okm[32..]);
        SessionKey {
            cipher: XChaCha20Poly1305::new(&enc.into()),
            nonce_mac: <Hmac<Sha256> as Mac>::new(&nonce_key.into()),
            previous: Vec::new(),
        }
    }
}

/// MCP capabilities of one upstream that decide where the gateway fans out.
pub mod caps {
    pub const TOOLS: u8 = 1;
    pub const PROMPTS: u8 = 2;
    pub const RESOURCES: u8 = 4;
    pub const LOGGING: u8 = 8;
    pub const COMPLETIONS: u8 = 16;
    pub const RESOURCE_SUBSCRIBE: u8 = 32;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The protocol version negotiated with the client.
    #[serde(rename = "v")]
    pub protocol_version: String,
    /// Seconds since the epoch.
    #[serde(rename = "t")]
    pub issued_at: u64,
    /// The upstreams that joined this session at `initialize`, in configuration order.
    #[serde(rename = "u")]
    pub upstreams: Vec<UpstreamSession>,
    /// Who opened it ([`crate::access::Identity::key`]), when clients authenticate: a token
    /// presented by anyone else is refused.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// What the client said of itself in `initialize`, kept when an upstream speaks the
    /// stateless revision (it is told on every request).
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub client: Option<crate::modern::ClientMeta>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamSession {
    #[serde(rename = "n")]
    pub name: String,
    /// The upstream's own `Mcp-Session-Id`; `None` for a stateless upstream.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(rename = "v")]
    pub protocol_version: String,
    /// [`caps`] bits.
    #[serde(rename = "c")]
    pub capabilities: u8,
}

impl Session {
    pub fn upstream(&self, name: &str) -> Option<&UpstreamSession> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// 16 hex digits that tell this session from any other (its opener, its time and every
    /// upstream's own session): what a cursor is bound to.
    pub fn digest(&self) -> String {
        use sha2::Digest as _;
        let text = serde_json::to_vec(self).unwrap_or_default();
        sha2::Sha256::digest(&text)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the session id is not one this gateway issued")]
    Malformed,
    #[error("the session id failed authentication")]
    Tampered,
    #[error("the session has expired")]
    Expired,
}

/// Seals a session. `seed` must differ between calls (time, worker id, counter).
pub fn seal(key: &SessionKey, session: &Session, seed: &[u8]) -> String {
    seal_value(key, Sealed::Session, session, seed)
}

/// Opens a session token; `now` and `max_age` in seconds (`max_age` 0: no expiry).
pub fn open(
    key: &SessionKey,
    token: &str,
    now: u64,
    max_age: u64,
) -> Result<Session, SessionError> {
    let session: Session = open_value(key, Sealed::Session, token)?;
    if max_age > 0 && now.saturating_sub(session.issued_at) > max_age {
        return Err(SessionError::Expired);
    }
    Ok(session)
}

/// Seals any serializable value as `kind`.
pub fn seal_value<T: Serialize>(key: &SessionKey, kind: Sealed, value: &T, seed: &[u8]) -> String {
    // The sealed types hold plain strings, integers and arrays: serialization cannot fail.
    let plaintext = serde_json::to_vec(value).unwrap_or_default();
    let nonce = synthetic_nonce(key, seed, &plaintext);
    // Encryption only fails for plaintexts beyond 256 GiB.
    let ciphertext = key
        .cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plaintext,
                aad: kind.aad(),
            },
        )
        .unwrap_or_default();
    let mut raw = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(&ciphertext);
    let mut token = String::with_capacity(kind.prefix().len() + raw.len() * 4 / 3 + 4);
    token.push_str(kind.prefix());
    URL_SAFE_NO_PAD.encode_string(&raw, &mut token);
    token
}

/// Opens a value sealed as `kind`.
pub fn open_value<T: serde::de::DeserializeOwned>(
    key: &SessionKey,
    kind: Sealed,
    token: &str,
) -> Result<T, SessionError> {
    let body = token
        .strip_prefix(kind.prefix())
        .ok_or(SessionError::Malformed)?;
    if body.len() > kind.max_len() {
        return Err(SessionError::Malformed);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| SessionError::Malformed)?;
    if raw.len() < NONCE_LEN + 16 {
        return Err(SessionError::Malformed);
    }
    let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
    let payload = || Payload {
        msg: ciphertext,
        aad: kind.aad(),
    };
    let plaintext = std::iter::once(&key.cipher)
        .chain(&key.previous)
        .find_map(|c| c.decrypt(XNonce::from_slice(nonce), payload()).ok())
        .ok_or(SessionError::Tampered)?;
    serde_json::from_slice(&plaintext).map_err(|_| SessionError::Malformed)
}

fn synthetic_nonce(key: &SessionKey, seed: &[u8], plaintext: &[u8]) -> [u8; NONCE_LEN] {
    let mut mac = key.nonce_mac.clone();
    mac.update(&(seed.len() as u64).to_be_bytes());
    mac.update(seed);
    mac.update(plaintext);
    let tag = mac.finalize().into_bytes();
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&tag[..NONCE_LEN]);
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn session() -> Session {
        Session {
            identity: None,
            client: None,
            protocol_version: "2025-06-18".into(),
            issued_at: 1_000,
            upstreams: vec![
                UpstreamSession {
                    name: "a".into(),
                    session_id: Some("up-123".into()),
                    protocol_version: "2025-06-18".into(),
                    capabilities: caps::TOOLS,
                },
                UpstreamSession {
                    name: "b".into(),
                    session_id: None,
                    protocol_version: "2025-03-26".into(),
                    capabilities: caps::TOOLS | caps::PROMPTS,
                },
            ],
        }
    }

    #[test]
    fn seal_then_open() {
        let key = SessionKey::derive(b"secret");
        let token = seal(&key, &session(), b"seed-1");
        assert!(token.starts_with("sb1."));
        assert!(
            !token.contains("up-123"),
            "upstream ids must not be readable"
        );
        assert!(
            token.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "visible ASCII only"
        );
        assert_eq!(open(&key, &token, 1_000, 3600), Ok(session()));
    }

    #[test]
    fn another_key_or_a_flipped_bit_is_refused() {
        let key = SessionKey::derive(b"secret");
        let token = seal(&key, &session(), b"seed");
        assert_eq!(
            open(&SessionKey::derive(b"other"), &token, 1_000, 0),
            Err(SessionError::Tampered)
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&token[4..]).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let tampered = format!("sb1.{}", URL_SAFE_NO_PAD.encode(raw));
        assert_eq!(open(&key, &tampered, 1_000, 0), Err(SessionError::Tampered));
        assert_eq!(open(&key, "sb1.!!", 1_000, 0), Err(SessionError::Malformed));
        assert_eq!(
            open(&key, "uuid-from-elsewhere", 1_000, 0),
            Err(SessionError::Malformed)
        );
        assert_eq!(open(&key, "sb1.", 1_000, 0), Err(SessionError::Malformed));
    }

    #[test]
    fn a_cursor_is_not_a_session() {
        let key = SessionKey::derive(b"secret");
        let cursor = seal_value(&key, Sealed::Cursor, &session(), b"s");
        assert!(cursor.starts_with("sbc1."));
        assert_eq!(open(&key, &cursor, 1_000, 0), Err(SessionError::Malformed));
        let as_session = format!("sb1.{}", &cursor[5..]);
        assert_eq!(
            open(&key, &as_session, 1_000, 0),
            Err(SessionError::Tampered),
            "different associated data"
        );
        assert_eq!(
            open_value::<Session>(&key, Sealed::Cursor, &cursor),
            Ok(session())
        );
    }

    #[test]
    fn a_rotated_key_still_opens_what_it_sealed_and_seals_nothing() {
        let old = SessionKey::derive(b"old secret");
        let token = seal(&old, &session(), b"seed");
        let rotating = SessionKey::rotating(b"new secret", &[b"old secret"]);
        assert_eq!(open(&rotating, &token, 1_000, 0), Ok(session()));
        let fresh = seal(&rotating, &session(), b"seed-2");
        assert_eq!(
            open(&SessionKey::derive(b"new secret"), &fresh, 1_000, 0),
            Ok(session()),
            "the new key seals"
        );
        assert_eq!(
            open(&SessionKey::derive(b"new secret"), &token, 1_000, 0),
            Err(SessionError::Tampered),
            "once the old key is gone, so are its sessions"
        );
    }

    #[test]
    fn expiry() {
        let key = SessionKey::derive(b"secret");
        let token = seal(&key, &session(), b"seed");
        assert!(open(&key, &token, 1_000 + 60, 60).is_ok());
        assert_eq!(
            open(&key, &token, 1_000 + 61, 60),
            Err(SessionError::Expired)
        );
        assert!(open(&key, &token, 1_000 + 10_000_000, 0).is_ok());
    }

    #[test]
    fn different_seeds_give_different_tokens() {
        let key = SessionKey::derive(b"secret");
        assert_ne!(seal(&key, &session(), b"1"), seal(&key, &session(), b"2"));
        assert_eq!(seal(&key, &session(), b"1"), seal(&key, &session(), b"1"));
    }

    proptest! {
        #[test]
        fn opening_arbitrary_input_never_panics(s in ".{0,300}") {
            let key = SessionKey::derive(b"k");
            let _ = open(&key, &s, 0, 0);
            let _ = open(&key, &format!("sb1.{s}"), 0, 0);
        }
    }
}
