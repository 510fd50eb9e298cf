//! Envoy through proxy-wasm host calls: the [`Host`] of the wasm shell, the list cache in
//! Envoy's shared data, and the filter's stats. Raw host calls throughout: the SDK's helpers
//! panic when the host refuses.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};
use switchboard_dataplane::{Host, HostError, Level};
use switchboard_protocol::audit::{Counter, Series};
use switchboard_protocol::exchange::{Callout, ListCache};

/// The stream the current proxy-wasm callback is for (the host knows which).
pub struct WasmHost;

fn refused(e: proxy_wasm::types::Status) -> HostError {
    HostError(format!("{e:?}"))
}

impl Host for WasmHost {
    fn request_headers(&self) -> Vec<(String, String)> {
        hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default()
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) {
        let _ = match value {
            Some(v) => hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(v)),
            None => hostcalls::remove_map_value(MapType::HttpRequestHeaders, name),
        };
    }

    fn request_body(&self, size: usize) -> Result<Vec<u8>, HostError> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)
            .map(Option::unwrap_or_default)
            .map_err(refused)
    }

    fn set_request_body(&self, body: &[u8]) -> Result<(), HostError> {
        hostcalls::set_buffer(BufferType::HttpRequestBody, 0, usize::MAX, body).map_err(refused)
    }

    fn resume_request(&self) {
        let _ = hostcalls::resume_http_request();
    }

    fn clear_route_cache(&self) {
        // Envoy clears the route cache when a wasm filter changes request headers; the
        // explicit call keeps that true on hosts that do not.
        let _ = hostcalls::call_foreign_function("clear_route_cache", None);
    }

    fn response_headers(&self) -> Vec<(String, String)> {
        hostcalls::get_map(MapType::HttpResponseHeaders).unwrap_or_default()
    }

    fn set_response_header(&self, name: &str, value: Option<&str>) {
        let _ = match value {
            Some(v) => hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(v)),
            None => hostcalls::remove_map_value(MapType::HttpResponseHeaders, name),
        };
    }

    fn replace_response_headers(&self, headers: &[(String, String)]) {
        let all = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let _ = hostcalls::set_map(MapType::HttpResponseHeaders, all);
    }

    fn response_body(&self, size: usize) -> Vec<u8> {
        hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn set_response_body(&self, size: usize, body: &[u8]) -> Result<(), HostError> {
        hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, body).map_err(refused)
    }

    fn property(&self, path: &[&str]) -> Option<String> {
        hostcalls::get_property(path.to_vec())
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    fn set_property(&self, name: &str, value: &str) {
        // Envoy keeps it as filter state `wasm.<name>`, which the access log reads.
        let _ = hostcalls::set_property(vec![name], Some(value.as_bytes()));
    }

    fn dispatch(&self, c: &Callout) -> Result<u32, HostError> {
        let headers: Vec<(&str, &str)> = c
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = (!c.body.is_empty()).then_some(c.body.as_slice());
        hostcalls::dispatch_http_call(
            &c.cluster,
            headers,
            body,
            vec![],
            Duration::from_millis(c.timeout_ms),
        )
        .map_err(refused)
    }

    fn callout_headers(&self) -> Vec<(String, String)> {
        hostcalls::get_map(MapType::HttpCallResponseHeaders).unwrap_or_default()
    }

    fn callout_body(&self, size: usize) -> Vec<u8> {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn send_reply(
        &self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), HostError> {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = (!body.is_empty()).then_some(body);
        hostcalls::send_http_response(u32::from(status), headers, body).map_err(refused)
    }

    fn increment(&self, counter: &Counter) {
        if let Some(id) = metric(MetricType::Counter, &counter.name()) {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    fn record(&self, series: &Series, value: u64) {
        let (histogram, values) = series.duration();
        if let Some(id) = metric(MetricType::Histogram, &histogram.flat_name(&values)) {
            let _ = hostcalls::record_metric(id, value);
        }
    }

    fn now(&self) -> Duration {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default()
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        let _ = hostcalls::log(level, message);
    }
}

thread_local! {
    /// Stat ids per VM (Envoy names them `wasmcustom.<name>`; the bootstrap's tag extraction
    /// turns the label segments of the flat names back into labels): defining is a host call.
    static METRICS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

fn metric(kind: MetricType, name: &str) -> Option<u32> {
    METRICS.with(|ids| {
        if let Some(id) = ids.borrow().get(name) {
            return Some(*id);
        }
        let id = hostcalls::define_metric(kind, name).ok()?;
        ids.borrow_mut().insert(name.to_string(), id);
        Some(id)
    })
}

/// List results in Envoy's shared data, which every worker's VM (of this VM id) sees.
pub struct SharedCache;

impl SharedCache {
    fn key(key: &str) -> String {
        format!("switchboard/{key}")
    }
}

impl ListCache for SharedCache {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        hostcalls::get_shared_data(&Self::key(key)).ok()?.0
    }

    fn put(&self, key: &str, value: &[u8]) {
        if let Err(e) = hostcalls::set_shared_data(&Self::key(key), Some(value), None) {
            let _ = hostcalls::log(
                LogLevel::Warn,
                &format!("switchboard: cannot cache a list: {e:?}"),
            );
        }
    }

    fn generation(&self, upstream: &str) -> u64 {
        self.get(&format!("gen/{upstream}"))
            .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
            .unwrap_or(0)
    }

    fn bump(&self, upstream: &str) {
        let key = Self::key(&format!("gen/{upstream}"));
        // Workers may bump at once: compare-and-swap, a few tries.
        for _ in 0..8 {
            let (value, cas) = hostcalls::get_shared_data(&key).unwrap_or((None, None));
            let current: u64 = value
                .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
                .unwrap_or(0);
            let next = (current + 1).to_string();
            if hostcalls::set_shared_data(&key, Some(next.as_bytes()), cas).is_ok() {
                return;
            }
        }
        let _ = hostcalls::log(
            LogLevel::Warn,
            &format!("switchboard: cannot mark the lists of {upstream:?} as changed"),
        );
    }
}
