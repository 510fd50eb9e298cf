//! Reading Envoy's admin API answers (shared by the launcher and the test harness).

use serde_json::Value;
use std::net::SocketAddr;

/// The bound address of listener `name` in the JSON of `/listeners?format=json` (the real
/// port when the configuration asked for port 0).
pub fn listener_address(listeners: &Value, name: &str) -> Option<SocketAddr> {
    let status = listeners["listener_statuses"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == name)?;
    let sa = &status["local_address"]["socket_address"];
    let ip: std::net::IpAddr = sa["address"].as_str()?.parse().ok()?;
    let port = u16::try_from(sa["port_value"].as_u64()?).ok()?;
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listeners_bound_address_is_read() {
        let v = serde_json::json!({"listener_statuses": [
            {"name": "other", "local_address": {"socket_address": {"address": "0.0.0.0", "port_value": 1}}},
            {"name": "switchboard-mcp", "local_address": {"socket_address": {"address": "127.0.0.1", "port_value": 41234}}}
        ]});
        assert_eq!(
            listener_address(&v, "switchboard-mcp"),
            Some(([127, 0, 0, 1], 41234).into())
        );
        assert_eq!(listener_address(&v, "missing"), None);
    }
}
