//! The gateway's request handling, on any body a client can send with a real session: an
//! answer, a route or callouts, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz_support::{gateway, post, session};

fuzz_target!(|body: &[u8]| {
    let gw = gateway();
    let token = session(&gw);
    let _ = post(&gw, Some(&token), body);
    let _ = post(&gw, None, body);
});
