//! The bridge: what Envoy cannot do alone, run inside `switchboard`.
//!
//! - The merged server-to-client stream of the aggregated endpoint (`GET /mcp`): a filter
//!   cannot merge several long-lived upstream streams into one, so Envoy routes these GETs
//!   here. [`merge`] is the pure part (rewriting events, resumable ids); [`stream`] the I/O.
//! - A 2026-07-28 client's `subscriptions/listen` ([`listen`]), merged the same way: each
//!   upstream asked in its own revision through its endpoint on the gateway.
//! - A stateless client's call of a 2025 upstream that asks it something ([`interactive`]):
//!   the upstream's stream held while the client answers `input_required`.
//! - stdio and legacy-SSE MCP servers ([`hosted`]) as streamable HTTP endpoints Envoy routes to.
//! - The legacy `/sse` endpoint for old clients ([`legacy_endpoint`]).
//! - SOCKS5 ([`tunnel`]): Envoy has no SOCKS client, so each proxied upstream's cluster
//!   points at a loopback tunnel here.

pub mod gateway_address;
pub mod hosted;
pub mod interactive;
pub mod legacy_endpoint;
pub mod listen;
pub mod merge;
pub mod stream;
pub mod tunnel;

pub use gateway_address::GATEWAY_HEADER;
pub use stream::{Bridge, BridgeState, INGRESS_HEADER};
