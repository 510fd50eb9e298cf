//! A retry's `requestState` (2026-07-28), on any string a client can send: never a panic, and
//! nothing opens unless this gateway sealed it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard_protocol::request_state::{Expected, RequestState};
use switchboard_protocol::session::SessionKey;

fuzz_target!(|token: &str| {
    let key = SessionKey::derive(b"fuzzing key, fixed for the run");
    let expect = Expected {
        identity: None,
        method: "tools/call",
        name: "a__ask",
    };
    let opened = RequestState::open(&key, token, expect, 1_700_000_000, 3600);
    assert!(opened.is_err(), "a state nobody sealed opened: {token:?}");
});
