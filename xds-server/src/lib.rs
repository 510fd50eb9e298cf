//! `switchboard`'s control plane as a library: the gateway YAML ([`config`]), its translation
//! into Envoy resources ([`translate`]), the snapshot pushed over xDS ([`resources`]) and its
//! YAML rendering ([`render`]). The binary adds the servers, the watcher and Envoy's process;
//! tests and tools (golden snapshots, the fuzz targets) use the same code.

pub mod admin;
pub mod certs;
pub mod config;
pub mod openapi;
pub mod protojson;
pub mod render;
pub mod resources;
pub mod translate;
