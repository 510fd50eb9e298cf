//! The native shell: Switchboard as an Envoy dynamic module. Envoy's hooks (in [`ffi`], the
//! only module with `unsafe`) reach [`Filter`], which forwards them to the data-plane driver
//! (`switchboard_dataplane::Stream`) exactly as the proxy-wasm shell does; every MCP decision
//! is the protocol core's. What native code allows and wasm does not lives here too: one list
//! cache for the whole process ([`BoundedCache`]) and metrics with labels ([`metrics`]).

mod ffi;
mod host;
mod metrics;

use ffi::{EnvoyConfig, EnvoyFilter, LogLevel};
use host::NativeHost;
use metrics::Metrics;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use switchboard_dataplane::{Flow, Stream};
use switchboard_protocol::exchange::{BoundedCache, Gateway, ListCache};
use switchboard_protocol::filter_config::{FilterConfig, SECRETS_KEY_ENV};
use switchboard_protocol::jsonrpc;

/// The filter name the control plane configures (`DynamicModuleFilter.filter_name`).
pub const FILTER_NAME: &str = "switchboard";

/// What the process-wide list cache may hold, keys and values together.
const CACHE_BYTES: usize = 64 << 20;

/// Runs `f`; a panic becomes `Err` (logged to Envoy's log), never an unwind into Envoy.
pub(crate) fn guard<R>(f: impl FnOnce() -> R) -> Result<R, ()> {
    guard_with(|line| ffi::log(LogLevel::Error, line), f)
}

fn guard_with<R>(log: impl Fn(&str), f: impl FnOnce() -> R) -> Result<R, ()> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        log(&format!("switchboard: the module panicked: {what}"));
    })
}

/// The one list cache of this Envoy process, whatever the configuration (keys name their
/// view of the configuration, so an edited one never reads an older one's entries).
struct ProcessCache;

fn process_cache() -> &'static BoundedCache {
    static CACHE: OnceLock<BoundedCache> = OnceLock::new();
    CACHE.get_or_init(|| BoundedCache::new(CACHE_BYTES))
}

impl ListCache for ProcessCache {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        process_cache().get(key)
    }
    fn put(&self, key: &str, value: &[u8]) {
        process_cache().put(key, value);
    }
    fn generation(&self, upstream: &str) -> u64 {
        process_cache().generation(upstream)
    }
    fn bump(&self, upstream: &str) {
        process_cache().bump(upstream);
    }
}

/// The filter configuration, its secrets opened with the key in Envoy's environment (see
/// [`FilterConfig::sealed_secrets`]), so they never pass through Envoy's configuration.
fn read_config(bytes: &[u8]) -> Result<FilterConfig, String> {
    let mut config = FilterConfig::from_json(bytes).map_err(|e| e.to_string())?;
    let key = std::env::var(SECRETS_KEY_ENV).ok();
    config
        .open_secrets(key.as_deref())
        .map_err(|e| e.to_string())?;
    Ok(config)
}

/// One filter configuration (each ECDS update makes a new one); shared by every worker.
pub struct Config {
    gateway: Arc<Gateway>,
    metrics: Arc<Metrics>,
}

impl Config {
    /// `None` (logged) when the configuration is not Switchboard's or does not parse: Envoy
    /// then rejects it and keeps the one it has.
    fn new(envoy: &EnvoyConfig, name: &[u8], config: &[u8]) -> Option<Config> {
        if name != FILTER_NAME.as_bytes() {
            ffi::log(
                LogLevel::Error,
                &format!(
                    "switchboard: unknown filter_name {:?} (this module has {FILTER_NAME:?})",
                    String::from_utf8_lossy(name)
                ),
            );
            return None;
        }
        let config = match read_config(config) {
            Ok(c) => c,
            Err(e) => {
                ffi::log(
                    LogLevel::Error,
                    &format!("switchboard: invalid filter configuration: {e}"),
                );
                return None;
            }
        };
        Some(Config {
            gateway: Arc::new(Gateway::with_cache(config, Box::new(ProcessCache))),
            metrics: Arc::new(Metrics::define(envoy)),
        })
    }

    fn filter(&self, envoy: EnvoyFilter) -> Filter {
        thread_local! {
            /// Seals made on this worker: part of every nonce seed. Each worker starts at its
            /// own multiple of 2^40, so no two workers' seeds repeat.
            static SEALS: Rc<Cell<u64>> = {
                static WORKERS: AtomicU64 = AtomicU64::new(0);
                Rc::new(Cell::new(WORKERS.fetch_add(1, Ordering::Relaxed) << 40))
            };
            static STREAMS: Cell<u32> = const { Cell::new(0) };
        }
        let id = STREAMS.with(|n| {
            n.set(n.get().wrapping_add(1));
            n.get()
        });
        let host = NativeHost::new(envoy, self.metrics.clone());
        Filter {
            stream: Stream::new(host, self.gateway.clone(), id, SEALS.with(Rc::clone)),
            failed: false,
        }
    }
}

/// One HTTP stream.
pub struct Filter {
    stream: Stream<NativeHost>,
    /// A hook panicked: the stream was answered with an error and is left alone.
    failed: bool,
}

impl Filter {
    /// Runs a hook's work; true: Envoy waits. A panic fails this stream only, with a
    /// JSON-RPC error when the client can still get one.
    fn run(&mut self, f: impl FnOnce(&mut Stream<NativeHost>) -> Flow) -> bool {
        if self.failed {
            return false;
        }
        match guard(|| f(&mut self.stream)) {
            Ok(flow) => flow == Flow::Pause,
            Err(()) => {
                self.failed = true;
                let body = jsonrpc::error_body(
                    None,
                    jsonrpc::code::INTERNAL_ERROR,
                    "The gateway failed on this request",
                );
                let headers = [("content-type".to_string(), "application/json".to_string())];
                self.stream
                    .host()
                    .envoy()
                    .send_response(500, &headers, body.as_bytes());
                true
            }
        }
    }

    fn on_request_headers(&mut self, end_of_stream: bool) -> bool {
        self.run(|s| s.on_request_headers(end_of_stream))
    }

    fn on_request_body(&mut self, end_of_stream: bool) -> bool {
        // The driver reads the whole body once it has ended; the size only decides whether
        // the body is too big before that.
        self.run(|s| {
            let size = s.host().request_body_size();
            s.on_request_body(size, end_of_stream)
        })
    }

    fn on_response_headers(&mut self, end_of_stream: bool) -> bool {
        self.run(|s| s.on_response_headers(end_of_stream))
    }

    fn on_response_body(&mut self, end_of_stream: bool) -> bool {
        self.run(|s| {
            let size = s.host().response_body_size();
            s.on_response_body(size, end_of_stream)
        })
    }

    fn on_local_reply(&mut self, details: String) {
        self.stream.host().set_details(details);
    }

    /// `answer`: the callout's headers and body, `None` when it failed.
    fn on_callout_done(&mut self, id: u64, answer: Option<host::Answer>) {
        let Ok(token) = u32::try_from(id) else {
            return;
        };
        self.run(|s| {
            let (headers, size) = answer
                .as_ref()
                .map_or((0, 0), |(h, b)| (h.len().max(1), b.len()));
            s.host().set_callout_answer(answer);
            s.on_callout_response(token, headers, size);
            s.host().set_callout_answer(None);
            Flow::Continue
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::panic)]
    fn a_panic_is_caught_and_named() {
        let lines = std::cell::RefCell::new(Vec::new());
        let log = |l: &str| lines.borrow_mut().push(l.to_string());
        assert_eq!(guard_with(log, || 7), Ok(7));
        assert_eq!(guard_with(log, || -> u8 { panic!("boom {}", 1) }), Err(()));
        assert_eq!(guard_with(log, || -> u8 { panic!("static") }), Err(()));
        assert_eq!(
            *lines.borrow(),
            [
                "switchboard: the module panicked: boom 1",
                "switchboard: the module panicked: static"
            ]
        );
    }

    #[test]
    fn the_process_cache_is_one_for_every_configuration() {
        ProcessCache.put("era/x", b"modern");
        assert_eq!(
            process_cache().get("era/x").as_deref(),
            Some(&b"modern"[..])
        );
    }
}
