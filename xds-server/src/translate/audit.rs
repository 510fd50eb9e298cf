//! The audit log is Envoy's access log: one JSON line per request on the gateway's port, with
//! what Envoy knows (time, source, status, duration, bytes) and what the filter learned (the
//! identity, the session's digest, the JSON-RPC method, the tool/prompt/resource, the
//! upstream, the JSON-RPC error code and the class of the outcome), which it leaves in filter
//! state. No header value is logged, so no secret can be.

use super::DataPlane;
use crate::config::model::Gateway;
use envoy_types::pb::envoy::config::accesslog::v3 as accesslog;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::access_loggers::file::v3 as file;
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3 as stream;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::util::pack_any;

/// The fields of an audit line and the Envoy command each comes from.
pub const FIELDS: [(&str, &str); 16] = [
    ("time", "%START_TIME(%Y-%m-%dT%H:%M:%S.%3fZ)%"),
    ("source", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
    (
        "identity",
        "%FILTER_STATE(STATE.switchboard_identity:PLAIN)%",
    ),
    ("session", "%FILTER_STATE(STATE.switchboard_session:PLAIN)%"),
    ("method", "%FILTER_STATE(STATE.switchboard_method:PLAIN)%"),
    ("name", "%FILTER_STATE(STATE.switchboard_name:PLAIN)%"),
    (
        "upstream",
        "%FILTER_STATE(STATE.switchboard_upstream:PLAIN)%",
    ),
    ("http_method", "%REQ(:METHOD)%"),
    // The path the client asked for, not the upstream's a route rewrote it to.
    ("path", "%REQ_WITHOUT_QUERY(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("status", "%RESPONSE_CODE%"),
    (
        "rpc_error",
        "%FILTER_STATE(STATE.switchboard_rpc_code:PLAIN)%",
    ),
    ("class", "%FILTER_STATE(STATE.switchboard_class:PLAIN)%"),
    // `bridge`: the bridge's request on the client's behalf, not one the client sent.
    ("via", "%FILTER_STATE(STATE.switchboard_via:PLAIN)%"),
    ("duration_ms", "%DURATION%"),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
];

/// `FIELDS` with the data plane's filter-state keys (`STATE.` stands for their prefix).
pub fn fields(data_plane: DataPlane) -> Vec<(&'static str, String)> {
    FIELDS
        .iter()
        .map(|(k, v)| (*k, v.replace("STATE.", data_plane.state_prefix())))
        .collect()
}

fn format(data_plane: DataPlane) -> core::SubstitutionFormatString {
    let fields = fields(data_plane)
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                Value {
                    kind: Some(Kind::StringValue(v)),
                },
            )
        })
        .collect();
    use envoy_types::pb::envoy::extensions::formatter::req_without_query::v3::ReqWithoutQuery;
    core::SubstitutionFormatString {
        format: Some(core::substitution_format_string::Format::JsonFormat(
            Struct { fields },
        )),
        // `REQ_WITHOUT_QUERY` is an extension: the path, never a query string.
        formatters: vec![core::TypedExtensionConfig {
            name: "envoy.formatter.req_without_query".into(),
            typed_config: Some(pack_any(ReqWithoutQuery::default())),
        }],
        ..Default::default()
    }
}

pub fn access_logs(gateway: &Gateway, data_plane: DataPlane) -> Vec<accesslog::AccessLog> {
    let Some(audit) = &gateway.audit else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(path) = &audit.file {
        out.push(accesslog::AccessLog {
            name: "envoy.access_loggers.file".into(),
            config_type: Some(accesslog::access_log::ConfigType::TypedConfig(pack_any(
                file::FileAccessLog {
                    path: path.0.clone(),
                    access_log_format: Some(file::file_access_log::AccessLogFormat::LogFormat(
                        format(data_plane),
                    )),
                },
            ))),
            ..Default::default()
        });
    }
    if audit.stdout {
        out.push(accesslog::AccessLog {
            name: "envoy.access_loggers.stdout".into(),
            config_type: Some(accesslog::access_log::ConfigType::TypedConfig(pack_any(
                stream::StdoutAccessLog {
                    access_log_format: Some(stream::stdout_access_log::AccessLogFormat::LogFormat(
                        format(data_plane),
                    )),
                },
            ))),
            ..Default::default()
        });
    }
    out
}
