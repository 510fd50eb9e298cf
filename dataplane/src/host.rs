//! What a data-plane shell must offer: Envoy, seen through one HTTP stream. The proxy-wasm
//! filter implements it with host calls; a fake implements it in tests.

use std::time::Duration;
use switchboard_protocol::audit::{Counter, Series};
use switchboard_protocol::exchange::Callout;

/// The host refused a call (the stream is gone, a buffer cannot be read…).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HostError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// Envoy for one HTTP stream. Header names are matched without regard to case.
pub trait Host {
    fn request_headers(&self) -> Vec<(String, String)>;
    /// Sets (`Some`) or removes (`None`) a request header.
    fn set_request_header(&self, name: &str, value: Option<&str>);
    fn request_body(&self, size: usize) -> Result<Vec<u8>, HostError>;
    fn set_request_body(&self, body: &[u8]) -> Result<(), HostError>;
    /// Lets a request held for the filter's callouts go on.
    fn resume_request(&self);
    /// Makes Envoy pick the route again (after the route selector header changed).
    fn clear_route_cache(&self);

    fn response_headers(&self) -> Vec<(String, String)>;
    fn set_response_header(&self, name: &str, value: Option<&str>);
    /// Replaces every response header (`:status` included).
    fn replace_response_headers(&self, headers: &[(String, String)]);
    fn response_body(&self, size: usize) -> Vec<u8>;
    fn set_response_body(&self, size: usize, body: &[u8]) -> Result<(), HostError>;

    /// A property of the stream (`["source", "address"]`, `["response", "code_details"]`).
    fn property(&self, path: &[&str]) -> Option<String>;
    /// Filter state the access log reads.
    fn set_property(&self, name: &str, value: &str);

    /// Starts a call of the filter's own; its answer comes with the returned token.
    fn dispatch(&self, callout: &Callout) -> Result<u32, HostError>;
    fn callout_headers(&self) -> Vec<(String, String)>;
    fn callout_body(&self, size: usize) -> Vec<u8>;

    fn send_reply(
        &self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), HostError>;

    /// Opens a span for a call of the filter's own, `operation`, as a child of the request's
    /// span when Envoy traces it: its id for [`Host::end_span`] and its W3C trace and span
    /// ids (hex). Default: none (proxy-wasm has no tracing calls).
    fn start_span(&self, _operation: &str) -> Option<(u64, String, String)> {
        None
    }
    /// Tags and finishes a span [`Host::start_span`] opened.
    fn end_span(&self, _span: u64, _tags: &[(&str, &str)]) {}

    fn increment(&self, counter: &Counter);
    /// Records a latency (milliseconds) in the series' histogram.
    fn record(&self, series: &Series, value: u64);
    /// Time since the Unix epoch.
    fn now(&self) -> Duration;
    fn log(&self, level: Level, message: &str);
}
