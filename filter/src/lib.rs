//! The proxy-wasm shell: Envoy's wasm callbacks forwarded to the data-plane driver
//! (`switchboard_dataplane::Stream`), which carries out what the protocol core decides.
//! Everything proxy-wasm specific is in [`host`].

mod host;
mod wasi;

use host::{SharedCache, WasmHost};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use switchboard_dataplane::{Flow, Stream};
use switchboard_protocol::exchange::Gateway;
use switchboard_protocol::filter_config::{FilterConfig, SECRETS_KEY_ENV};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    std::panic::set_hook(Box::new(|info| {
        let _ = hostcalls::log(LogLevel::Critical, &format!("switchboard filter panicked: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { gateway: None, seals: Rc::new(Cell::new(0)) }) });
}}

struct Root {
    gateway: Option<Arc<Gateway>>,
    /// Tokens sealed by this VM: part of each nonce seed.
    seals: Rc<Cell<u64>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(b)) => b,
            _ => {
                let _ = hostcalls::log(
                    LogLevel::Error,
                    "switchboard: the filter has no configuration",
                );
                return false;
            }
        };
        // The secrets are sealed with a key in Envoy's environment (`host_env_keys`).
        let config = FilterConfig::from_json(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|mut c| {
                c.open_secrets(wasi::var(SECRETS_KEY_ENV).as_deref())
                    .map_err(|e| e.to_string())?;
                Ok(c)
            });
        match config {
            Ok(config) => {
                self.gateway = Some(Arc::new(Gateway::with_cache(config, Box::new(SharedCache))));
                true
            }
            Err(e) => {
                // Returning false makes Envoy reject this configuration and keep the last one.
                let _ = hostcalls::log(
                    LogLevel::Error,
                    &format!("switchboard: invalid filter configuration: {e}"),
                );
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let gateway = self.gateway.clone()?;
        Some(Box::new(Http(Stream::new(
            WasmHost,
            gateway,
            context_id,
            self.seals.clone(),
        ))))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http(Stream<WasmHost>);

fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Pause => Action::Pause,
    }
}

impl Context for Http {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _: usize,
    ) {
        self.0.on_callout_response(token, num_headers, body_size);
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(self.0.on_request_headers(end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(self.0.on_request_body(body_size, end_of_stream))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(self.0.on_response_headers(end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(self.0.on_response_body(body_size, end_of_stream))
    }
}
