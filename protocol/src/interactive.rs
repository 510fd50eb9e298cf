//! What the filter and the bridge share about calls the bridge holds while a stateless
//! client answers an upstream's question ([`crate::exchange`]'s `interactive`, and the
//! bridge's `interactive` module).

/// The route selector value that sends such a call to the bridge (no upstream name can be
/// it: names are letters, digits, `-` and `_`).
pub const INTERACTIVE_ROUTE: &str = "~interactive";

/// The upstream the call is for (set by the filter only: the route is the filter's).
pub const TARGET_HEADER: &str = "x-switchboard-target";

/// The name or URI the client called, as it wrote it (prefixed): what the `requestState` is
/// bound to. `=?base64?…?=` when it is not plain ASCII.
pub const ASKED_HEADER: &str = "x-switchboard-asked";

/// How the inner state of a `requestState` names a call the bridge holds.
pub const HELD_PREFIX: &str = "bridge:";
