//! What the filter does with one downstream request: a pure decision over the filter config,
//! the request line and the buffered body. The wasm glue only carries the verdict out.

use crate::filter_config::FilterConfig;
use crate::jsonrpc::{self, code};

/// The filter's decision for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not the MCP endpoint: let Envoy handle it unchanged.
    PassThrough,
    /// A POST to the MCP endpoint: buffer the body, then call [`on_body`].
    AwaitBody,
    /// Send it to the upstream at this index of `FilterConfig::upstreams`.
    Route(usize),
    /// Answer the client directly; nothing reaches an upstream.
    Respond { status: u16, body: String },
}

/// Decides on the request headers. `path` may carry a query string.
pub fn on_headers(config: &FilterConfig, method: &str, path: &str) -> Verdict {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    if path != config.mcp_path {
        return Verdict::PassThrough;
    }
    match method {
        "POST" => Verdict::AwaitBody,
        // GET (server-to-client stream) and DELETE (end of session) carry no JSON-RPC body.
        _ => default_route(config),
    }
}

/// Called while the body arrives; `Some` when it is already too large to accept.
pub fn on_body_progress(config: &FilterConfig, buffered: u64) -> Option<Verdict> {
    (buffered > config.max_request_bytes).then(|| Verdict::Respond {
        status: 413,
        body: jsonrpc::error_body(
            None,
            code::INVALID_REQUEST,
            &format!(
                "Request body exceeds the gateway's limit of {} bytes",
                config.max_request_bytes
            ),
        ),
    })
}

/// Decides on the complete body of a POST to the MCP endpoint.
pub fn on_body(config: &FilterConfig, body: &[u8]) -> Verdict {
    if let Some(v) = on_body_progress(config, body.len() as u64) {
        return v;
    }
    match jsonrpc::parse(body) {
        // The streamable-HTTP transport answers a message it cannot accept with HTTP 400 and
        // a JSON-RPC error body.
        Err(rejection) => Verdict::Respond {
            status: 400,
            body: rejection.to_body(),
        },
        Ok(_) => default_route(config),
    }
}

/// Until aggregation routes by tool name, the MCP endpoint reaches the first upstream.
fn default_route(config: &FilterConfig) -> Verdict {
    if config.upstreams.is_empty() {
        Verdict::Respond {
            status: 503,
            body: jsonrpc::error_body(
                None,
                code::INTERNAL_ERROR,
                "No upstream MCP server is configured",
            ),
        }
    } else {
        Verdict::Route(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter_config::Upstream;

    fn config(upstreams: usize) -> FilterConfig {
        FilterConfig {
            mcp_path: "/mcp".into(),
            max_request_bytes: 64,
            upstreams: (0..upstreams)
                .map(|i| Upstream {
                    name: format!("u{i}"),
                    cluster: format!("upstream-u{i}"),
                    authority: "127.0.0.1:1".into(),
                    path: "/mcp".into(),
                    timeout_ms: 1000,
                })
                .collect(),
        }
    }

    fn error_code(v: &Verdict) -> (u16, i64) {
        match v {
            Verdict::Respond { status, body } => {
                let j: serde_json::Value = serde_json::from_str(body).unwrap();
                (*status, j["error"]["code"].as_i64().unwrap())
            }
            other => panic!("expected a response, got {other:?}"),
        }
    }

    #[test]
    fn only_the_mcp_path_is_handled() {
        let c = config(1);
        assert_eq!(on_headers(&c, "POST", "/other"), Verdict::PassThrough);
        assert_eq!(on_headers(&c, "POST", "/mcp/x"), Verdict::PassThrough);
        assert_eq!(on_headers(&c, "POST", "/mcp?x=1"), Verdict::AwaitBody);
        assert_eq!(on_headers(&c, "GET", "/mcp"), Verdict::Route(0));
        assert_eq!(on_headers(&c, "DELETE", "/mcp"), Verdict::Route(0));
    }

    #[test]
    fn malformed_body_is_answered_with_400_and_parse_error() {
        assert_eq!(
            error_code(&on_body(&config(1), b"{oops")),
            (400, code::PARSE_ERROR)
        );
        assert_eq!(
            error_code(&on_body(&config(1), b"[]")),
            (400, code::INVALID_REQUEST)
        );
    }

    #[test]
    fn valid_message_is_routed() {
        let v = on_body(&config(2), br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
        assert_eq!(v, Verdict::Route(0));
    }

    #[test]
    fn oversized_body_is_413() {
        let c = config(1);
        assert_eq!(on_body_progress(&c, 64), None);
        assert_eq!(error_code(&on_body_progress(&c, 65).unwrap()).0, 413);
        assert_eq!(error_code(&on_body(&c, &[b' '; 100])).0, 413);
    }

    #[test]
    fn no_upstream_is_503() {
        assert_eq!(error_code(&on_headers(&config(0), "GET", "/mcp")).0, 503);
    }
}
