//! The session-token opener, on any `Mcp-Session-Id` a client can send: never a panic, and
//! nothing opens unless it was sealed with the key.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard_protocol::session::{self, SessionKey};

fuzz_target!(|token: &str| {
    let key = SessionKey::derive(b"fuzzing key, fixed for the run");
    let opened = session::open(&key, token, 1_700_000_000, 3600);
    assert!(opened.is_err(), "a token nobody sealed opened: {token:?}");
});
