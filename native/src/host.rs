//! Envoy through the dynamic-module callbacks: the [`Host`] of the native shell.

use crate::ffi::{Direction, EnvoyFilter, LogLevel};
use crate::metrics::Metrics;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchboard_dataplane::{Host, HostError, Level};
use switchboard_protocol::audit::{Counter, Series};
use switchboard_protocol::exchange::Callout;

/// A callout's answer: its headers and body.
pub type Answer = (Vec<(String, String)>, Vec<u8>);

pub struct NativeHost {
    envoy: EnvoyFilter,
    metrics: Arc<Metrics>,
    /// Why Envoy answered itself (its local reply's details); none: the upstream answered.
    details: RefCell<Option<String>>,
    /// The callout answer being delivered, for the length of that hook.
    answer: RefCell<Option<Answer>>,
    /// Spans of the filter's own calls, open until their answers (finished on drop).
    spans: RefCell<Vec<(u64, crate::ffi::ChildSpan)>>,
    next_span: std::cell::Cell<u64>,
}

impl NativeHost {
    pub fn new(envoy: EnvoyFilter, metrics: Arc<Metrics>) -> NativeHost {
        NativeHost {
            envoy,
            metrics,
            details: RefCell::new(None),
            answer: RefCell::new(None),
            spans: RefCell::new(Vec::new()),
            next_span: std::cell::Cell::new(0),
        }
    }

    pub fn envoy(&self) -> EnvoyFilter {
        self.envoy
    }

    pub fn set_details(&self, details: String) {
        *self.details.borrow_mut() = Some(details);
    }

    pub fn set_callout_answer(&self, answer: Option<Answer>) {
        *self.answer.borrow_mut() = answer;
    }

    pub fn request_body_size(&self) -> usize {
        self.envoy.body_size(Direction::Request)
    }

    pub fn response_body_size(&self) -> usize {
        self.envoy.body_size(Direction::Response)
    }
}

impl Host for NativeHost {
    fn start_span(&self, operation: &str) -> Option<(u64, String, String)> {
        let (span, trace, id) = self.envoy.child_span(operation)?;
        let n = self.next_span.get();
        self.next_span.set(n + 1);
        self.spans.borrow_mut().push((n, span));
        Some((n, trace, id))
    }

    fn end_span(&self, span: u64, tags: &[(&str, &str)]) {
        let mut spans = self.spans.borrow_mut();
        if let Some(at) = spans.iter().position(|(n, _)| *n == span) {
            let (_, span) = spans.swap_remove(at);
            for (k, v) in tags {
                span.set_tag(k, v);
            }
            // Dropped here: finished.
        }
    }

    fn request_headers(&self) -> Vec<(String, String)> {
        self.envoy.headers(Direction::Request)
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) {
        self.envoy.set_header(Direction::Request, name, value);
    }

    fn request_body(&self, _size: usize) -> Result<Vec<u8>, HostError> {
        Ok(self.envoy.body(Direction::Request))
    }

    fn set_request_body(&self, body: &[u8]) -> Result<(), HostError> {
        if self.envoy.replace_body(Direction::Request, body) {
            Ok(())
        } else {
            Err(HostError("Envoy refused the new request body".into()))
        }
    }

    fn resume_request(&self) {
        self.envoy.continue_decoding();
    }

    fn clear_route_cache(&self) {
        self.envoy.clear_route_cache();
    }

    fn response_headers(&self) -> Vec<(String, String)> {
        self.envoy.headers(Direction::Response)
    }

    fn set_response_header(&self, name: &str, value: Option<&str>) {
        self.envoy.set_header(Direction::Response, name, value);
    }

    fn replace_response_headers(&self, headers: &[(String, String)]) {
        for (name, _) in self.envoy.headers(Direction::Response) {
            if name != ":status" {
                self.envoy.set_header(Direction::Response, &name, None);
            }
        }
        for (name, value) in headers {
            self.envoy
                .set_header(Direction::Response, name, Some(value));
        }
    }

    fn response_body(&self, _size: usize) -> Vec<u8> {
        self.envoy.body(Direction::Response)
    }

    fn set_response_body(&self, _size: usize, body: &[u8]) -> Result<(), HostError> {
        if self.envoy.replace_body(Direction::Response, body) {
            Ok(())
        } else {
            Err(HostError("Envoy refused the new response body".into()))
        }
    }

    fn property(&self, path: &[&str]) -> Option<String> {
        match path {
            ["source", "address"] => self.envoy.source_address(),
            ["response", "code_details"] => Some(
                self.details
                    .borrow()
                    .clone()
                    .unwrap_or_else(|| "via_upstream".into()),
            ),
            _ => None,
        }
    }

    fn set_property(&self, name: &str, value: &str) {
        self.envoy.set_filter_state(name, value);
    }

    fn dispatch(&self, c: &Callout) -> Result<u32, HostError> {
        let id = self
            .envoy
            .callout(&c.cluster, &c.headers, &c.body, c.timeout_ms)
            .map_err(|code| HostError(format!("Envoy refused the callout (result {code})")))?;
        u32::try_from(id).map_err(|_| HostError(format!("callout id {id} out of range")))
    }

    fn callout_headers(&self) -> Vec<(String, String)> {
        self.answer
            .borrow()
            .as_ref()
            .map(|(h, _)| h.clone())
            .unwrap_or_default()
    }

    fn callout_body(&self, _size: usize) -> Vec<u8> {
        self.answer
            .borrow_mut()
            .as_mut()
            .map(|(_, b)| std::mem::take(b))
            .unwrap_or_default()
    }

    fn send_reply(
        &self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), HostError> {
        self.envoy.send_response(status, headers, body);
        Ok(())
    }

    fn increment(&self, counter: &Counter) {
        self.metrics.increment(&self.envoy, counter);
    }

    fn record(&self, series: &Series, value: u64) {
        self.metrics.record(&self.envoy, series, value);
    }

    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        crate::ffi::log(level, message);
    }
}
