//! The gateway-YAML loader of `switchboard` as a library: the binary uses it, and so can the
//! fuzz target and other tools. Everything else lives in the binary.

pub mod config;
