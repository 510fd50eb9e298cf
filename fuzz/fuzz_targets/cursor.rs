//! The cursor decoder, through the gateway itself: a `tools/list` with any cursor on a real
//! session must be answered (a list or a JSON-RPC error), never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz_support::{gateway, session, list_with_cursor};

fuzz_target!(|cursor: &str| {
    let gw = gateway();
    let token = session(&gw);
    list_with_cursor(&gw, &token, cursor);
});
