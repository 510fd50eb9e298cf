//! The proxy-wasm adapter. Every decision is made by `switchboard_protocol`; this crate reads
//! Envoy's buffers, carries the verdict out with host calls and handles their errors.

use log::{error, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use std::rc::Rc;
use switchboard_protocol::filter_config::{FilterConfig, ROUTE_HEADER};
use switchboard_protocol::jsonrpc;
use switchboard_protocol::request::{self, Verdict};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    std::panic::set_hook(Box::new(|info| {
        let _ = hostcalls::log(LogLevel::Critical, &format!("switchboard filter panicked: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { config: None }) });
}}

struct Root {
    config: Option<Rc<FilterConfig>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            error!("switchboard: the filter has no configuration");
            return false;
        };
        match FilterConfig::from_json(&bytes) {
            Ok(config) => {
                self.config = Some(Rc::new(config));
                true
            }
            Err(e) => {
                // Returning false makes Envoy reject this config and keep the previous one.
                error!("switchboard: invalid filter configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = self.config.clone()?;
        Some(Box::new(Request {
            config,
            awaiting_body: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request {
    config: Rc<FilterConfig>,
    /// Set when the headers phase decided the body decides; other bodies pass untouched.
    awaiting_body: bool,
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        // A client must never pick a route by sending the selector itself.
        let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, ROUTE_HEADER);
        let method = header(":method").unwrap_or_default();
        let path = header(":path").unwrap_or_default();
        match request::on_headers(&self.config, &method, &path) {
            Verdict::AwaitBody if end_of_stream => {
                self.carry_out(request::on_body(&self.config, &[]))
            }
            // Hold the headers so the route can still be chosen from the body.
            Verdict::AwaitBody => {
                self.awaiting_body = true;
                Action::Pause
            }
            verdict => self.carry_out(verdict),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.awaiting_body {
            return Action::Continue;
        }
        if let Some(verdict) = request::on_body_progress(&self.config, body_size as u64) {
            return self.carry_out(verdict);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.awaiting_body = false;
        // The raw host call: the SDK helper panics when the host refuses.
        let body = match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size) {
            Ok(body) => body.unwrap_or_default(),
            Err(e) => {
                error!("switchboard: cannot read the request body: {e:?}");
                return self.respond(
                    500,
                    &jsonrpc::error_body(
                        None,
                        jsonrpc::code::INTERNAL_ERROR,
                        "The gateway could not read the request body",
                    ),
                );
            }
        };
        self.carry_out(request::on_body(&self.config, &body))
    }
}

impl Request {
    fn carry_out(&self, verdict: Verdict) -> Action {
        match verdict {
            Verdict::PassThrough | Verdict::AwaitBody => Action::Continue,
            Verdict::Route(index) => {
                let Some(upstream) = self.config.upstreams.get(index) else {
                    return self.respond(
                        500,
                        &jsonrpc::error_body(
                            None,
                            jsonrpc::code::INTERNAL_ERROR,
                            "The gateway selected an unknown upstream",
                        ),
                    );
                };
                // The raw host call, not the SDK helper: the helper panics if the host refuses.
                if let Err(e) = hostcalls::set_map_value(
                    MapType::HttpRequestHeaders,
                    ROUTE_HEADER,
                    Some(&upstream.name),
                ) {
                    warn!("switchboard: cannot set the route header: {e:?}");
                }
                // Envoy clears the route cache when a wasm filter changes request headers; the
                // explicit call keeps that true on hosts that do not.
                let _ = hostcalls::call_foreign_function("clear_route_cache", None);
                Action::Continue
            }
            Verdict::Respond { status, body } => self.respond(status, &body),
        }
    }

    fn respond(&self, status: u16, body: &str) -> Action {
        if let Err(e) = hostcalls::send_http_response(
            u32::from(status),
            vec![("content-type", "application/json")],
            Some(body.as_bytes()),
        ) {
            error!("switchboard: cannot send a local response: {e:?}");
        }
        Action::Pause
    }
}

fn header(name: &str) -> Option<String> {
    hostcalls::get_map_value(MapType::HttpRequestHeaders, name)
        .ok()
        .flatten()
}
