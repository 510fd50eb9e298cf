//! MCP 2026-07-28, the stateless revision: what a request carries instead of a session, the
//! routing headers that mirror its body, and the shapes of its results and errors. Pure
//! functions the exchange uses to serve clients and upstreams of that revision (issue 16).
//!
//! A 2026 request names its revision and the client's capabilities in `params._meta` on
//! every request; over HTTP it also carries `MCP-Protocol-Version`, `Mcp-Method` and, for
//! `tools/call`, `prompts/get` and `resources/read`, `Mcp-Name`. A server checks the headers
//! against the body and refuses a mismatch with -32020 (HTTP 400); a version it does not
//! speak gets -32022 with the versions it does (HTTP 400) — which tells a client the server
//! is of the new revision, so a server that only speaks the 2025 ones must not send it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// The revision's version string.
pub const VERSION: &str = "2026-07-28";

/// Keys of `params._meta` on every request of the revision.
pub mod meta {
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
    /// On results: who answered.
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
}

/// What an upstream of this revision is told about the client on every request: the
/// capabilities and identity a 2025 client gave in `initialize`, or a 2026 client in its
/// request's `_meta`. Kept in the sealed session of a 2025 client.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ClientMeta {
    /// Compact JSON of the capabilities (`{}` when none were given).
    #[serde(rename = "c")]
    pub capabilities: String,
    /// Compact JSON of `clientInfo`, when given.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub info: Option<String>,
}

impl ClientMeta {
    pub fn new(capabilities: &Value, info: Option<&Value>) -> ClientMeta {
        ClientMeta {
            capabilities: if capabilities.is_object() {
                capabilities.to_string()
            } else {
                "{}".into()
            },
            info: info.filter(|i| i.is_object()).map(Value::to_string),
        }
    }
}

/// What a 2026 request says about itself in `params._meta`.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMeta {
    pub protocol_version: String,
    /// The client's capabilities for this request (`{}` when it sent none).
    pub client_capabilities: Value,
    pub client_info: Option<Value>,
}

impl RequestMeta {
    /// The request's `_meta`, if it is a request of a stateless revision (it names its
    /// version there); `None` for a 2025-era request.
    pub fn of(params: &Value) -> Option<RequestMeta> {
        let m = params.get("_meta")?;
        let version = m.get(meta::PROTOCOL_VERSION)?.as_str()?;
        Some(RequestMeta {
            protocol_version: version.to_string(),
            client_capabilities: m
                .get(meta::CLIENT_CAPABILITIES)
                .cloned()
                .unwrap_or_else(|| json!({})),
            client_info: m.get(meta::CLIENT_INFO).cloned(),
        })
    }
}

/// The capabilities a stateless client's `initialize` tells a 2025 upstream: without those
/// the upstream would use by sending server requests (`elicitation`, `sampling`, `roots`),
/// which the gateway cannot put to a client of this revision inside a 2025 session (it has
/// no back channel; the revision's `input_required` is not translated from them yet). The
/// upstream then knows not to ask and answers at once, instead of waiting for an answer
/// that never comes.
pub fn without_server_requests(capabilities: &Value) -> Value {
    let mut c = capabilities.clone();
    if let Some(map) = c.as_object_mut() {
        for key in ["elicitation", "sampling", "roots"] {
            map.remove(key);
        }
    }
    c
}

/// An upstream's `server/discover` result read as the `initialize` result the rest of the
/// gateway knows (version, capabilities, `serverInfo`, instructions); `None` when it does not
/// offer this revision.
pub fn discovered(result: &Value) -> Option<Value> {
    let offers = result
        .get("supportedVersions")?
        .as_array()?
        .iter()
        .any(|v| v == VERSION);
    if !offers {
        return None;
    }
    let mut r = json!({
        "protocolVersion": VERSION,
        "capabilities": result.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "serverInfo": result["_meta"]
            .get(meta::SERVER_INFO)
            .cloned()
            .unwrap_or_else(|| json!({"name": "", "version": ""})),
    });
    if let Some(i) = result.get("instructions") {
        r["instructions"] = i.clone();
    }
    Some(r)
}

/// A request of this revision to an upstream: `server/discover`, with the client's `_meta`.
pub fn discover_request(client: &ClientMeta) -> Vec<u8> {
    with_request_meta(
        br#"{"jsonrpc":"2.0","id":0,"method":"server/discover","params":{}}"#,
        client,
    )
}

/// `body` (a JSON-RPC request) with the revision's `_meta` keys set for `client`: what an
/// upstream of this revision needs on every request. Anything that is not a request
/// object is returned as it is.
pub fn with_request_meta(body: &[u8], client: &ClientMeta) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    let Some(request) = v.as_object_mut() else {
        return body.to_vec();
    };
    let params = request.entry("params").or_insert_with(|| json!({}));
    if !params.is_object() {
        return body.to_vec();
    }
    let m = &mut params["_meta"];
    if !m.is_object() {
        *m = json!({});
    }
    m[meta::PROTOCOL_VERSION] = json!(VERSION);
    m[meta::CLIENT_CAPABILITIES] =
        serde_json::from_str(&client.capabilities).unwrap_or_else(|_| json!({}));
    if let Some(info) = client
        .info
        .as_deref()
        .and_then(|i| serde_json::from_str::<Value>(i).ok())
    {
        m[meta::CLIENT_INFO] = info;
    }
    v.to_string().into_bytes()
}

/// `request` (a JSON-RPC request) as a 2025 session sends it: the revision's `_meta` keys
/// removed (and `_meta` with them when nothing else was in it).
pub fn without_request_meta(request: &mut Value) {
    let Some(params) = request.get_mut("params").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(m) = params.get_mut("_meta").and_then(Value::as_object_mut) {
        m.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
        if m.is_empty() {
            params.remove("_meta");
        }
    }
}

/// The routing headers a request of this revision carries to an upstream: the version,
/// `Mcp-Method`, and `Mcp-Name` where the method names something.
pub fn routing_headers(body: &[u8]) -> Vec<(String, String)> {
    let mut headers = vec![("mcp-protocol-version".to_string(), VERSION.to_string())];
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return headers;
    };
    let Some(method) = v["method"].as_str() else {
        return headers;
    };
    headers.push(("mcp-method".into(), encode_header_value(method)));
    if let Some(name) = named_param(method).and_then(|f| v["params"][f].as_str()) {
        headers.push(("mcp-name".into(), encode_header_value(name)));
    }
    headers
}

/// Whether `name` is an `Mcp-Param-*` header: a `tools/call` argument mirrored because the
/// tool's input schema annotates it with `x-mcp-header`. The gateway passes them on to
/// upstreams of this revision, which check them against the arguments.
pub fn is_param_header(name: &str) -> bool {
    // Bytes, not a `str` slice: a name with non-ASCII characters (a client's header, read
    // lossily) may have no character boundary where the prefix ends.
    name.len() > PARAM_HEADER_PREFIX.len()
        && name.as_bytes()[..PARAM_HEADER_PREFIX.len()]
            .eq_ignore_ascii_case(PARAM_HEADER_PREFIX.as_bytes())
}

const PARAM_HEADER_PREFIX: &str = "mcp-param-";

/// Whether a result asks the client for input before it can complete.
pub fn input_required(result: &Value) -> bool {
    result.get("resultType").and_then(Value::as_str) == Some("input_required")
}

/// The params field `Mcp-Name` mirrors for `method`.
pub fn named_param(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

const SENTINEL_START: &str = "=?base64?";
const SENTINEL_END: &str = "?=";

/// A routing header's value as the body carries it: `=?base64?…?=` (standard alphabet, over
/// UTF-8) decoded, anything else as it is.
pub fn decode_header_value(value: &str) -> Result<String, HeaderError> {
    let Some(inner) = value
        .strip_prefix(SENTINEL_START)
        .and_then(|v| v.strip_suffix(SENTINEL_END))
    else {
        return Ok(value.to_string());
    };
    let bytes = STANDARD
        .decode(inner)
        .map_err(|_| HeaderError::Encoding(value.to_string()))?;
    String::from_utf8(bytes).map_err(|_| HeaderError::Encoding(value.to_string()))
}

/// A value as a routing header carries it: printable ASCII without surrounding whitespace
/// as it is; anything else (and anything that looks like the encoded form) encoded.
pub fn encode_header_value(value: &str) -> String {
    let plain = value.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && value.trim() == value
        && !(value.starts_with(SENTINEL_START) && value.ends_with(SENTINEL_END));
    if plain {
        value.to_string()
    } else {
        format!("{SENTINEL_START}{}{SENTINEL_END}", STANDARD.encode(value))
    }
}

/// The routing headers of a request as received (raw values).
#[derive(Debug, Clone, Copy, Default)]
pub struct RoutingHeaders<'a> {
    /// `MCP-Protocol-Version`.
    pub version: Option<&'a str>,
    /// `Mcp-Method`.
    pub method: Option<&'a str>,
    /// `Mcp-Name`.
    pub name: Option<&'a str>,
}

/// Why a request's routing headers do not match its body (-32020, HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the Mcp-Method header is required")]
    MissingMethod,
    #[error("Mcp-Method {header:?} does not match the body's method {body:?}")]
    Method { header: String, body: String },
    #[error("the Mcp-Name header is required for {0}")]
    MissingName(String),
    #[error("Mcp-Name {header:?} does not match the body's {field} {body:?}")]
    Name {
        header: String,
        field: &'static str,
        body: String,
    },
    #[error("the header value {0:?} is not valid =?base64?...?= encoding")]
    Encoding(String),
    #[error("MCP-Protocol-Version {header:?} does not match the request's _meta version {meta:?}")]
    Version { header: String, meta: String },
}

/// Checks a 2026 request's routing headers against its body, as a server must before acting
/// on either. A request without `_meta` is not of the revision and is not checked here.
pub fn check_headers(
    headers: RoutingHeaders<'_>,
    method: &str,
    params: &Value,
    meta: &RequestMeta,
) -> Result<(), HeaderError> {
    if let Some(v) = headers.version
        && v.trim() != meta.protocol_version
    {
        return Err(HeaderError::Version {
            header: v.to_string(),
            meta: meta.protocol_version.clone(),
        });
    }
    let sent = headers.method.ok_or(HeaderError::MissingMethod)?;
    if sent.trim() != method {
        return Err(HeaderError::Method {
            header: sent.to_string(),
            body: method.to_string(),
        });
    }
    let Some(field) = named_param(method) else {
        return Ok(());
    };
    let Some(body) = params.get(field).and_then(Value::as_str) else {
        // Nothing to mirror: the method's own validation refuses the request.
        return Ok(());
    };
    let raw = headers
        .name
        .ok_or_else(|| HeaderError::MissingName(method.to_string()))?;
    let header = decode_header_value(raw.trim())?;
    if header != body {
        return Err(HeaderError::Name {
            header,
            field,
            body: body.to_string(),
        });
    }
    Ok(())
}

/// JSON-RPC code of a request whose routing headers do not match its body.
pub const HEADER_MISMATCH: i64 = -32020;
/// JSON-RPC code of a request on a revision the server does not speak.
pub const UNSUPPORTED_VERSION: i64 = -32022;

/// The error body for a header mismatch (sent with HTTP 400).
pub fn header_mismatch_body(id: Option<&Value>, why: &HeaderError) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {
        "code": HEADER_MISMATCH,
        "message": format!("Header mismatch: {why}"),
    }})
    .to_string()
}

/// The error body for a version the server does not speak (sent with HTTP 400), with the
/// versions it does.
pub fn unsupported_version_body(id: Option<&Value>, requested: &str, supported: &[&str]) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {
        "code": UNSUPPORTED_VERSION,
        "message": format!("Unsupported protocol version {requested:?}; supported: {}", supported.join(", ")),
        "data": {"requested": requested, "supported": supported},
    }})
    .to_string()
}

/// Marks a result as complete (every result of the revision says what kind it is).
pub fn complete(result: &mut Value) {
    if let Some(r) = result.as_object_mut() {
        r.entry("resultType")
            .or_insert_with(|| Value::String("complete".into()));
    }
}

/// Who may reuse a cacheable result: anyone, or only the same authorization context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CacheScope {
    Public,
    Private,
}

/// A cacheable result's hints (`ttlMs`, `cacheScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheHints {
    pub ttl_ms: Option<u64>,
    pub scope: Option<CacheScope>,
}

impl CacheHints {
    pub fn of(result: &Value) -> CacheHints {
        CacheHints {
            ttl_ms: result.get("ttlMs").and_then(Value::as_u64),
            scope: match result.get("cacheScope").and_then(Value::as_str) {
                Some("public") => Some(CacheScope::Public),
                // An unknown scope is read as the narrower one.
                Some(_) => Some(CacheScope::Private),
                None => None,
            },
        }
    }

    /// What a merged result may promise: the shortest time any part may be kept, and the
    /// narrowest scope any part allows (a part without hints promises nothing).
    pub fn merge(parts: impl IntoIterator<Item = CacheHints>) -> CacheHints {
        let mut out: Option<CacheHints> = None;
        for p in parts {
            out = Some(match out {
                None => p,
                Some(o) => CacheHints {
                    ttl_ms: match (o.ttl_ms, p.ttl_ms) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        _ => None,
                    },
                    scope: match (o.scope, p.scope) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    },
                },
            });
        }
        out.unwrap_or_default()
    }

    /// Writes the hints into a result (a part that gave none leaves them out).
    pub fn write(self, result: &mut Value) {
        if let Some(r) = result.as_object_mut() {
            if let Some(t) = self.ttl_ms {
                r.insert("ttlMs".into(), t.into());
            }
            if let Some(s) = self.scope {
                let s = match s {
                    CacheScope::Public => "public",
                    CacheScope::Private => "private",
                };
                r.insert("cacheScope".into(), s.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_headers_are_recognised_whatever_the_name_holds() {
        assert!(is_param_header("Mcp-Param-Region"));
        assert!(!is_param_header("mcp-param-"));
        assert!(!is_param_header("x-other"));
        // Found by the `stream` fuzz target: a multi-byte character across the prefix's end.
        assert!(!is_param_header("  \u{fffd}\u{fffd}\u{fffd}\u{fffd} {\"j"));
        assert!(!is_param_header("mcp-para\u{e9}m-x"));
    }

    fn meta_of(version: &str) -> RequestMeta {
        RequestMeta::of(&json!({"_meta": {meta::PROTOCOL_VERSION: version}})).unwrap()
    }

    #[test]
    fn a_requests_meta_says_its_revision_and_a_2025_request_has_none() {
        let params = json!({"name": "x", "_meta": {
            meta::PROTOCOL_VERSION: VERSION,
            meta::CLIENT_CAPABILITIES: {"elicitation": {}},
            meta::CLIENT_INFO: {"name": "c", "version": "1"},
            "progressToken": 3,
        }});
        let m = RequestMeta::of(&params).unwrap();
        assert_eq!(m.protocol_version, VERSION);
        assert_eq!(m.client_capabilities, json!({"elicitation": {}}));
        assert_eq!(m.client_info.unwrap()["name"], "c");
        assert_eq!(meta_of(VERSION).client_capabilities, json!({}));
        assert_eq!(
            RequestMeta::of(&json!({"_meta": {"progressToken": 1}})),
            None
        );
        assert_eq!(RequestMeta::of(&json!({"name": "x"})), None);
        assert_eq!(RequestMeta::of(&Value::Null), None);
    }

    #[test]
    fn header_values_round_trip_and_only_plain_ascii_goes_as_it_is() {
        for v in [
            "gh__create_issue",
            "file:///a b",
            "naïve",
            " padded ",
            "=?base64?eA==?=",
            "a\r\nX: y",
            "",
        ] {
            let encoded = encode_header_value(v);
            assert!(
                encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)),
                "{encoded:?}"
            );
            assert_eq!(decode_header_value(&encoded).unwrap(), v);
        }
        assert_eq!(encode_header_value("gh__create_issue"), "gh__create_issue");
        assert_eq!(encode_header_value("naïve"), "=?base64?bmHDr3Zl?=");
        assert_eq!(
            decode_header_value("=?base64?not base64?="),
            Err(HeaderError::Encoding("=?base64?not base64?=".into()))
        );
        // The specification's example: a literal that looks encoded is itself encoded.
        assert_eq!(
            decode_header_value("=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=").unwrap(),
            "=?base64?literal?="
        );
    }

    #[test]
    fn routing_headers_must_mirror_the_body() {
        let m = meta_of(VERSION);
        let call = json!({"name": "gh__create_issue"});
        let h = |version, method, name| RoutingHeaders {
            version,
            method,
            name,
        };
        let ok = h(Some(VERSION), Some("tools/call"), Some("gh__create_issue"));
        assert_eq!(check_headers(ok, "tools/call", &call, &m), Ok(()));
        assert_eq!(
            check_headers(
                h(Some(VERSION), None, Some("gh__create_issue")),
                "tools/call",
                &call,
                &m
            ),
            Err(HeaderError::MissingMethod)
        );
        assert!(matches!(
            check_headers(
                h(Some(VERSION), Some("tools/list"), None),
                "tools/call",
                &call,
                &m
            ),
            Err(HeaderError::Method { .. })
        ));
        assert_eq!(
            check_headers(
                h(Some(VERSION), Some("tools/call"), None),
                "tools/call",
                &call,
                &m
            ),
            Err(HeaderError::MissingName("tools/call".into()))
        );
        // A header naming another tool than the body is how a body smuggles past a
        // header-routing proxy: refused.
        assert!(matches!(
            check_headers(
                h(Some(VERSION), Some("tools/call"), Some("gh__read")),
                "tools/call",
                &call,
                &m
            ),
            Err(HeaderError::Name { .. })
        ));
        assert!(matches!(
            check_headers(
                h(
                    Some("2025-11-25"),
                    Some("tools/call"),
                    Some("gh__create_issue")
                ),
                "tools/call",
                &call,
                &m
            ),
            Err(HeaderError::Version { .. })
        ));
        // Encoded names compare decoded; methods without a name need no Mcp-Name.
        let read = json!({"uri": "file:///naïve.txt"});
        let encoded = encode_header_value("file:///naïve.txt");
        assert_eq!(
            check_headers(
                h(None, Some("resources/read"), Some(&encoded)),
                "resources/read",
                &read,
                &m
            ),
            Ok(())
        );
        assert_eq!(
            check_headers(
                h(None, Some("tools/list"), None),
                "tools/list",
                &json!({}),
                &m
            ),
            Ok(())
        );
    }

    #[test]
    fn errors_have_the_revisions_codes_and_data() {
        let id = json!(7);
        let v: Value = serde_json::from_str(&unsupported_version_body(
            Some(&id),
            "2027-01-01",
            &[VERSION, "2025-11-25"],
        ))
        .unwrap();
        assert_eq!(v["error"]["code"], UNSUPPORTED_VERSION);
        assert_eq!(
            v["error"]["data"],
            json!({"requested": "2027-01-01", "supported": [VERSION, "2025-11-25"]})
        );
        let v: Value = serde_json::from_str(&header_mismatch_body(
            Some(&id),
            &HeaderError::MissingMethod,
        ))
        .unwrap();
        assert_eq!(v["error"]["code"], HEADER_MISMATCH);
        assert_eq!(v["id"], 7);
    }

    #[test]
    fn merged_results_promise_what_every_part_allows() {
        let parts = [
            CacheHints::of(&json!({"ttlMs": 60000, "cacheScope": "public"})),
            CacheHints::of(&json!({"ttlMs": 5000, "cacheScope": "private"})),
        ];
        assert_eq!(
            CacheHints::merge(parts),
            CacheHints {
                ttl_ms: Some(5000),
                scope: Some(CacheScope::Private)
            }
        );
        // A part without hints (a 2025-era upstream) makes the merge promise nothing.
        let with_legacy = [parts[0], CacheHints::of(&json!({"tools": []}))];
        assert_eq!(CacheHints::merge(with_legacy), CacheHints::default());
        assert_eq!(
            CacheHints::of(&json!({"cacheScope": "galaxy"})).scope,
            Some(CacheScope::Private)
        );
        let mut r = json!({"tools": []});
        CacheHints::merge([parts[0]]).write(&mut r);
        complete(&mut r);
        assert_eq!(
            r,
            json!({"tools": [], "ttlMs": 60000, "cacheScope": "public", "resultType": "complete"})
        );
        let mut input = json!({"resultType": "input_required"});
        complete(&mut input);
        assert_eq!(
            input["resultType"], "input_required",
            "a result that says what it is keeps it"
        );
    }
}
