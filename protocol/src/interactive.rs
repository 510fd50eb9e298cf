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

/// Whose call it is, when not a stateless client's: [`SESSION_CLIENT`] for a 2025 client's
/// call (questions go to it as server requests), [`ANSWER`] for its answer to one.
pub const ERA_HEADER: &str = "x-switchboard-client";

/// A 2025 client's call of an upstream of the stateless revision.
pub const SESSION_CLIENT: &str = "session";

/// A 2025 client's answer to a question the bridge put to it.
pub const ANSWER: &str = "answer";

/// The id prefix of the questions the bridge puts to a 2025 client (inside the gateway's
/// `sb:<upstream>:` tag): `held-<token>/<input key>`.
pub const QUESTION_PREFIX: &str = "held-";
