//! The bridge: what Envoy cannot do alone. Here, the merged server-to-client stream of the
//! aggregated endpoint (`GET /mcp`): a filter cannot merge several long-lived upstream
//! streams into one, so Envoy routes these GETs to the bridge, which runs inside
//! `switchboard`.
//!
//! [`merge`] is the pure part (rewriting events, resumable ids); [`stream`] the I/O.

pub mod merge;
pub mod stream;

pub use stream::{Bridge, BridgeState, GATEWAY_HEADER};
