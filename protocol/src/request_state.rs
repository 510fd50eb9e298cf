//! The `requestState` of a multi-round-trip request (2026-07-28), as the gateway hands it on.
//!
//! An upstream that needs input answers `resultType: "input_required"` with opaque state the
//! client echoes when it retries. Through the gateway the client gets that state sealed with
//! what it is bound to — the upstream, the client's identity, the method and the name it was
//! asked for — so a retry reaches the upstream that asked with its own state, and a state
//! made up, altered, taken from another client or replayed against another tool is refused
//! before any upstream sees it.

use crate::session::{self, Sealed, SessionError, SessionKey};
use serde::{Deserialize, Serialize};

/// What a sealed `requestState` carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestState {
    /// The upstream that asked for input.
    #[serde(rename = "u")]
    pub upstream: String,
    /// Who the request was for ([`crate::access::Identity::key`]), when clients authenticate.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The request's method and the (client-facing) name or URI it named.
    #[serde(rename = "m")]
    pub method: String,
    #[serde(rename = "n")]
    pub name: String,
    /// The upstream's own `requestState`, when it sent one.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub inner: Option<String>,
    /// Seconds since the epoch.
    #[serde(rename = "t")]
    pub issued_at: u64,
}

/// Why a retry's `requestState` is refused (-32602: it is a parameter of the request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the requestState is not one this gateway issued ({0})")]
    Sealing(#[from] SessionError),
    #[error("the requestState has expired")]
    Expired,
    #[error("the requestState was issued for another client")]
    Identity,
    #[error("the requestState was issued for {method} {name:?}, not this request")]
    Request { method: String, name: String },
}

impl RequestState {
    pub fn seal(&self, key: &SessionKey, seed: &[u8]) -> String {
        session::seal_value(key, Sealed::RequestState, self, seed)
    }

    /// Opens a retry's state and checks it belongs to this request: the same client, the
    /// same method and name, not older than `max_age` seconds (0: no limit).
    pub fn open(
        key: &SessionKey,
        token: &str,
        expect: Expected<'_>,
        now: u64,
        max_age: u64,
    ) -> Result<RequestState, StateError> {
        let state: RequestState = session::open_value(key, Sealed::RequestState, token)?;
        if max_age > 0 && now.saturating_sub(state.issued_at) > max_age {
            return Err(StateError::Expired);
        }
        if state.identity.as_deref() != expect.identity {
            return Err(StateError::Identity);
        }
        if state.method != expect.method || state.name != expect.name {
            return Err(StateError::Request {
                method: state.method,
                name: state.name,
            });
        }
        Ok(state)
    }
}

/// What a retry must match.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub identity: Option<&'a str>,
    pub method: &'a str,
    pub name: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> RequestState {
        RequestState {
            upstream: "a".into(),
            identity: Some("alice".into()),
            method: "tools/call".into(),
            name: "a__ask".into(),
            inner: Some("upstream-state".into()),
            issued_at: 100,
        }
    }

    fn expect<'a>(identity: Option<&'a str>, name: &'a str) -> Expected<'a> {
        Expected {
            identity,
            method: "tools/call",
            name,
        }
    }

    #[test]
    fn a_state_opens_for_its_own_client_and_request_only() {
        let key = SessionKey::derive(b"k");
        let token = state().seal(&key, b"seed");
        assert!(token.starts_with("sbr1."));
        let opened = RequestState::open(&key, &token, expect(Some("alice"), "a__ask"), 110, 600);
        assert_eq!(opened, Ok(state()));
        assert_eq!(
            RequestState::open(&key, &token, expect(Some("bob"), "a__ask"), 110, 600),
            Err(StateError::Identity)
        );
        assert!(matches!(
            RequestState::open(&key, &token, expect(Some("alice"), "a__other"), 110, 600),
            Err(StateError::Request { .. })
        ));
        assert_eq!(
            RequestState::open(&key, &token, expect(Some("alice"), "a__ask"), 800, 600),
            Err(StateError::Expired)
        );
    }

    #[test]
    fn forged_altered_or_foreign_states_are_refused() {
        let key = SessionKey::derive(b"k");
        let e = expect(Some("alice"), "a__ask");
        assert!(RequestState::open(&key, "upstream-state", e, 110, 0).is_err());
        let token = state().seal(&key, b"seed");
        let mut altered = token.clone().into_bytes();
        let last = altered.len() - 3;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap_or_default();
        assert!(RequestState::open(&key, &altered, e, 110, 0).is_err());
        let other_gateway = SessionKey::derive(b"other");
        assert!(RequestState::open(&other_gateway, &token, e, 110, 0).is_err());
        // A session token is not a request state.
        let session = session::seal_value(&key, Sealed::Session, &state(), b"s");
        assert!(RequestState::open(&key, &session, e, 110, 0).is_err());
    }
}
