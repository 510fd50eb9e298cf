//! The gateway YAML: its schema ([`model`]), how a file becomes a validated [`Gateway`]
//! ([`load`]), `${VAR}` expansion ([`env`]) and the `mcpServers` format of desktop clients
//! ([`mcp_servers`]).

pub mod auth;
pub mod certs;
pub mod document;
pub mod env;
pub mod env_upstreams;
pub mod error;
pub mod hosts;
pub mod load;
pub mod mcp_servers;
pub mod model;
pub mod oauth;
pub mod openapi_docs;
pub mod position;
pub mod values;

pub use error::{ConfigError, FieldError, ValueError};
pub use load::{load_file, load_str};
pub use model::Gateway;
