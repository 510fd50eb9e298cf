//! What the gateway's peers see on the wire besides MCP's own messages: the streamable-HTTP
//! headers it reads and sets, and the JSON-RPC error codes it answers with. Shared by the
//! exchange, the audit classes, the data-plane shells and the bridge, so each is spelled once.

/// The session header of streamable HTTP (lower case: HTTP/2 and Envoy's maps).
pub const SESSION_HEADER: &str = "mcp-session-id";
/// The negotiated protocol version, on every request after `initialize`.
pub const VERSION_HEADER: &str = "mcp-protocol-version";
/// The event a `GET` resumes a stream after.
pub const LAST_EVENT_ID_HEADER: &str = "last-event-id";
/// The stateless revision's mirror of the body's method.
pub const METHOD_HEADER: &str = "mcp-method";
/// ... and of the tool or prompt name or resource URI.
pub const NAME_HEADER: &str = "mcp-name";

/// JSON-RPC code for an unknown or expired session (answered with HTTP 404).
pub const SESSION_NOT_FOUND: i64 = -32001;
/// JSON-RPC code for an upstream that could not be reached or answered badly.
pub const UPSTREAM_ERROR: i64 = -32002;
/// JSON-RPC code for an upstream that did not answer in time.
pub const UPSTREAM_TIMEOUT: i64 = -32003;
/// JSON-RPC code for a call the client's access rules do not allow.
pub const ACCESS_DENIED: i64 = -32004;
