//! The JSON-RPC parser, on any body a client can send.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let _ = switchboard_protocol::jsonrpc::parse(body);
});
