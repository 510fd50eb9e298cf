//! Where the gateway's listener is, as Envoy tells the bridge on each request: the bridge
//! reads upstream streams back through the same listener the client came in on.

/// The header in which Envoy tells the bridge the listener address the client came in on
/// (`%DOWNSTREAM_LOCAL_ADDRESS%`, set by the route, so a client cannot choose it).
pub const GATEWAY_HEADER: &str = "x-switchboard-gateway";

/// `http(s)://<address>` from [`GATEWAY_HEADER`] (a bare address means http); anything
/// else is refused.
pub(crate) fn gateway_url(value: &str) -> Option<String> {
    let (scheme, addr) = match value.split_once("://") {
        Some((s @ ("http" | "https"), a)) => (s, a),
        Some(_) => return None,
        None => ("http", value),
    };
    let addr: std::net::SocketAddr = addr.parse().ok()?;
    Some(format!("{scheme}://{addr}"))
}
