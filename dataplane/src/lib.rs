//! The data-plane driver: one HTTP stream through Switchboard, whatever embeds it. Every
//! decision is the protocol core's (`switchboard_protocol::exchange`); this crate reads what
//! the [`Host`] delivers, feeds it to the exchange and carries out the steps it returns. A
//! shell (the proxy-wasm filter; a native module) implements [`Host`] and forwards Envoy's
//! callbacks to [`Stream`].

mod host;
mod stream;

pub use host::{Host, HostError, Level};
pub use stream::{Flow, Stream};
