//! Pure MCP and JSON-RPC logic for Switchboard: no I/O, builds for native and `wasm32`.
//!
//! The wasm filter and the control plane only call into this crate, so everything that decides
//! what happens to a message is unit-tested natively.

pub mod access;
pub mod aggregate;
pub mod audit;
pub mod exchange;
pub mod filter_config;
pub mod glob;
pub mod interactive;
pub mod jsonrpc;
pub mod mcp;
pub mod modern;
pub mod naming;
pub mod oauth;
pub mod request_state;
pub mod rest;
pub mod server_message;
pub mod session;
pub mod sse;
pub mod subscriptions;
pub mod token_exchange;
pub mod uri;
pub mod wire;
