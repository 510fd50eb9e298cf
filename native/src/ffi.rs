//! Envoy's dynamic-module ABI: the one module with `unsafe`. The entry points Envoy calls
//! (`envoy_dynamic_module_on_*`) and the callbacks the Envoy binary exports
//! (`envoy_dynamic_module_callback_*`), declared by hand from Envoy's
//! `source/extensions/dynamic_modules/abi/abi.h` and checked against the 1.40.0 binary by the
//! end-to-end tests (each callback used here is on a path those tests take).
//!
//! Everything above this module is safe Rust: [`EnvoyFilter`] and [`EnvoyConfig`] wrap
//! Envoy's pointers with safe methods, and every entry point runs its work under
//! [`crate::guard`], so a panic fails one stream and never unwinds into Envoy.
//!
//! Why the pointers are sound to use: Envoy passes each filter's pointer to every hook of
//! that filter, on the worker thread that owns it, and it stays valid until
//! `on_http_filter_destroy`; the filter keeps it and calls back only from inside a hook.
//! Buffers Envoy hands out are valid until the hook returns: they are copied before that.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void};

/// The ABI version this module was written against (the 1.40.0 binary reports `v0.2.0`).
static ABI_VERSION: &[u8] = b"v0.2.0\0";

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleBuffer {
    ptr: *const c_char,
    len: usize,
}

impl ModuleBuffer {
    fn of(bytes: &[u8]) -> ModuleBuffer {
        ModuleBuffer {
            ptr: bytes.as_ptr().cast(),
            len: bytes.len(),
        }
    }

    const NULL: ModuleBuffer = ModuleBuffer {
        ptr: std::ptr::null(),
        len: 0,
    };
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    ptr: *const c_char,
    len: usize,
}

impl EnvoyBuffer {
    const NULL: EnvoyBuffer = EnvoyBuffer {
        ptr: std::ptr::null(),
        len: 0,
    };

    /// # Safety
    /// `ptr` points at `len` readable bytes (or is null), valid for the current hook.
    unsafe fn bytes(&self) -> &[u8] {
        if self.ptr.is_null() || self.len == 0 {
            return &[];
        }
        // SAFETY: per the caller.
        unsafe { std::slice::from_raw_parts(self.ptr.cast(), self.len) }
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleHeader {
    key: ModuleBuffer,
    value: ModuleBuffer,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHeader {
    key: EnvoyBuffer,
    value: EnvoyBuffer,
}

type RawFilter = *mut c_void;
type RawConfig = *mut c_void;

// envoy_dynamic_module_type_http_header_type
const REQUEST_HEADERS: u32 = 0;
const RESPONSE_HEADERS: u32 = 2;
// envoy_dynamic_module_type_http_body_type
const RECEIVED_REQUEST_BODY: u32 = 0;
const BUFFERED_REQUEST_BODY: u32 = 1;
const RECEIVED_RESPONSE_BODY: u32 = 2;
const BUFFERED_RESPONSE_BODY: u32 = 3;
// envoy_dynamic_module_type_attribute_id
const ATTRIBUTE_SOURCE_ADDRESS: u32 = 24;
// Every *_init_result, *_callout_result and *_metrics_result: 0 is success.
const OK: u32 = 0;
// on_http_filter_*_status
const CONTINUE: u32 = 0;
const STOP_ITERATION: u32 = 1;
const STOP_ITERATION_AND_BUFFER: u32 = 1;

type RawSpan = *mut c_void;

unsafe extern "C" {
    fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer);
    // Tracing: null when Envoy does not trace the request.
    fn envoy_dynamic_module_callback_http_get_active_span(f: RawFilter) -> RawSpan;
    fn envoy_dynamic_module_callback_http_span_spawn_child(
        f: RawFilter,
        span: RawSpan,
        operation: ModuleBuffer,
    ) -> RawSpan;
    fn envoy_dynamic_module_callback_http_span_set_tag(
        span: RawSpan,
        key: ModuleBuffer,
        value: ModuleBuffer,
    );
    fn envoy_dynamic_module_callback_http_span_get_trace_id(
        span: RawSpan,
        out: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_span_get_span_id(
        span: RawSpan,
        out: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_child_span_finish(span: RawSpan);
    fn envoy_dynamic_module_callback_http_get_headers_size(f: RawFilter, kind: u32) -> usize;
    fn envoy_dynamic_module_callback_http_get_headers(
        f: RawFilter,
        kind: u32,
        out: *mut EnvoyHeader,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        f: RawFilter,
        kind: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_body_chunks_size(f: RawFilter, kind: u32) -> usize;
    fn envoy_dynamic_module_callback_http_get_body_chunks(
        f: RawFilter,
        kind: u32,
        out: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_drain_body(f: RawFilter, kind: u32, n: usize) -> bool;
    fn envoy_dynamic_module_callback_http_append_body(
        f: RawFilter,
        kind: u32,
        data: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_clear_route_cache(f: RawFilter);
    fn envoy_dynamic_module_callback_http_filter_continue_decoding(f: RawFilter);
    fn envoy_dynamic_module_callback_http_send_response(
        f: RawFilter,
        status: u32,
        headers: *const ModuleHeader,
        headers_len: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );
    fn envoy_dynamic_module_callback_http_filter_http_callout(
        f: RawFilter,
        id: *mut u64,
        cluster: ModuleBuffer,
        headers: *const ModuleHeader,
        headers_len: usize,
        body: ModuleBuffer,
        timeout_ms: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        f: RawFilter,
        id: u32,
        out: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
        f: RawFilter,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        c: RawConfig,
        name: ModuleBuffer,
        labels: *const ModuleBuffer,
        labels_len: usize,
        id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        c: RawConfig,
        name: ModuleBuffer,
        labels: *const ModuleBuffer,
        labels_len: usize,
        id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_increment_counter(
        f: RawFilter,
        id: usize,
        labels: *const ModuleBuffer,
        labels_len: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        f: RawFilter,
        id: usize,
        labels: *const ModuleBuffer,
        labels_len: usize,
        value: u64,
    ) -> u32;
}

/// Envoy's log levels (spdlog's).
#[derive(Debug, Clone, Copy)]
pub enum LogLevel {
    Info = 2,
    Warn = 3,
    Error = 4,
}

/// Writes one line to Envoy's log (the `dynamic_modules` logger).
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: the buffer is valid for the call; Envoy copies it.
    unsafe { envoy_dynamic_module_callback_log(level as u32, ModuleBuffer::of(message.as_bytes())) }
}

/// A metric defined on a filter configuration.
#[derive(Debug, Clone, Copy)]
pub struct MetricId(usize);

/// Envoy's side of one filter configuration, while Envoy creates it.
pub struct EnvoyConfig(RawConfig);

impl EnvoyConfig {
    fn define(&self, histogram: bool, name: &str, labels: &[&str]) -> Option<MetricId> {
        let labels = buffers(labels);
        let mut id = 0usize;
        // SAFETY: `self.0` is the config pointer of the running `on_http_filter_config_new`;
        // the buffers live across the call.
        let result = unsafe {
            let define = if histogram {
                envoy_dynamic_module_callback_http_filter_config_define_histogram
            } else {
                envoy_dynamic_module_callback_http_filter_config_define_counter
            };
            define(
                self.0,
                ModuleBuffer::of(name.as_bytes()),
                labels.as_ptr(),
                labels.len(),
                &mut id,
            )
        };
        (result == OK).then_some(MetricId(id))
    }

    pub fn counter(&self, name: &str, labels: &[&str]) -> Option<MetricId> {
        self.define(false, name, labels)
    }

    pub fn histogram(&self, name: &str, labels: &[&str]) -> Option<MetricId> {
        self.define(true, name, labels)
    }
}

/// Envoy's side of one HTTP stream. Only used from inside that stream's hooks.
#[derive(Debug, Clone, Copy)]
pub struct EnvoyFilter(RawFilter);

/// Which body: the request's or the response's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

impl Direction {
    fn bodies(self) -> [u32; 2] {
        match self {
            Direction::Request => [BUFFERED_REQUEST_BODY, RECEIVED_REQUEST_BODY],
            Direction::Response => [BUFFERED_RESPONSE_BODY, RECEIVED_RESPONSE_BODY],
        }
    }

    fn headers(self) -> u32 {
        match self {
            Direction::Request => REQUEST_HEADERS,
            Direction::Response => RESPONSE_HEADERS,
        }
    }
}

/// Label names or values as Envoy reads them (borrowing `labels` for the call).
fn buffers(labels: &[&str]) -> Vec<ModuleBuffer> {
    labels
        .iter()
        .map(|l| ModuleBuffer::of(l.as_bytes()))
        .collect()
}

/// A span the module opened ([`EnvoyFilter::child_span`]): finished, exactly once, when
/// dropped (at the latest with its stream's filter, inside `on_http_filter_destroy`).
pub struct ChildSpan(RawSpan);

impl ChildSpan {
    pub fn set_tag(&self, key: &str, value: &str) {
        // SAFETY: the span is ours until drop; Envoy copies key and value.
        unsafe {
            envoy_dynamic_module_callback_http_span_set_tag(
                self.0,
                ModuleBuffer::of(key.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            );
        }
    }
}

impl Drop for ChildSpan {
    fn drop(&mut self) {
        // SAFETY: the span is ours; Envoy finishes and frees it, and it is never used again.
        unsafe { envoy_dynamic_module_callback_http_child_span_finish(self.0) }
    }
}

fn to_string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn module_headers(headers: &[(String, String)]) -> Vec<ModuleHeader> {
    headers
        .iter()
        .map(|(k, v)| ModuleHeader {
            key: ModuleBuffer::of(k.as_bytes()),
            value: ModuleBuffer::of(v.as_bytes()),
        })
        .collect()
}

impl EnvoyFilter {
    pub fn headers(&self, direction: Direction) -> Vec<(String, String)> {
        let kind = direction.headers();
        // SAFETY: see the module's comment; `out` has room for `n` entries, and what Envoy
        // writes there is copied before the hook returns.
        unsafe {
            let n = envoy_dynamic_module_callback_http_get_headers_size(self.0, kind);
            if n == 0 {
                return Vec::new();
            }
            let mut out = vec![
                EnvoyHeader {
                    key: EnvoyBuffer::NULL,
                    value: EnvoyBuffer::NULL
                };
                n
            ];
            if !envoy_dynamic_module_callback_http_get_headers(self.0, kind, out.as_mut_ptr()) {
                return Vec::new();
            }
            out.iter()
                .map(|h| (to_string(h.key.bytes()), to_string(h.value.bytes())))
                .collect()
        }
    }

    /// Sets a header, or removes it (`None`).
    pub fn set_header(&self, direction: Direction, name: &str, value: Option<&str>) {
        let value = value.map_or(ModuleBuffer::NULL, |v| ModuleBuffer::of(v.as_bytes()));
        // SAFETY: see the module's comment; Envoy copies both buffers.
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.0,
                direction.headers(),
                ModuleBuffer::of(name.as_bytes()),
                value,
            );
        }
    }

    /// Envoy's chunks of one body, borrowed for the current hook.
    fn chunks(&self, kind: u32) -> Vec<EnvoyBuffer> {
        // SAFETY: see the module's comment; `out` has room for `n` chunks.
        unsafe {
            let n = envoy_dynamic_module_callback_http_get_body_chunks_size(self.0, kind);
            if n == 0 {
                return Vec::new();
            }
            let mut out = vec![EnvoyBuffer::NULL; n];
            if envoy_dynamic_module_callback_http_get_body_chunks(self.0, kind, out.as_mut_ptr()) {
                out
            } else {
                Vec::new()
            }
        }
    }

    /// The body's chunks so far: what Envoy buffered for the filter, then the chunk of this
    /// hook. When a filter before this one held the request (`jwt_authn` fetching keys), Envoy
    /// hands the held body over as this hook's chunk while it is still the buffered body: the
    /// same bytes twice, taken once.
    fn body_chunks(&self, direction: Direction) -> Vec<EnvoyBuffer> {
        let [buffered, received] = direction.bodies();
        let mut chunks = self.chunks(buffered);
        let this_hook = self.chunks(received);
        let same = |a: &[EnvoyBuffer], b: &[EnvoyBuffer]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| x.ptr == y.ptr && x.len == y.len)
        };
        if !same(&chunks, &this_hook) || chunks.is_empty() {
            chunks.extend(this_hook);
        }
        chunks
    }

    /// The body's size so far (buffered and this hook's chunk).
    pub fn body_size(&self, direction: Direction) -> usize {
        self.body_chunks(direction).iter().map(|c| c.len).sum()
    }

    /// The body so far: what Envoy buffered for the filter, then the chunk of this hook.
    pub fn body(&self, direction: Direction) -> Vec<u8> {
        let chunks = self.body_chunks(direction);
        let mut body = Vec::with_capacity(chunks.iter().map(|c| c.len).sum());
        for chunk in &chunks {
            // SAFETY: Envoy's chunk, valid until this hook returns; copied here.
            body.extend_from_slice(unsafe { chunk.bytes() });
        }
        body
    }

    /// Replaces the whole body (buffered and this hook's chunk) with `body`.
    pub fn replace_body(&self, direction: Direction, body: &[u8]) -> bool {
        let [buffered, received] = direction.bodies();
        // SAFETY: see the module's comment; Envoy copies `body`.
        unsafe {
            envoy_dynamic_module_callback_http_drain_body(self.0, buffered, usize::MAX);
            let in_hook =
                envoy_dynamic_module_callback_http_drain_body(self.0, received, usize::MAX);
            if body.is_empty() {
                return true;
            }
            // Outside a body hook (after a callout) only the buffered body exists.
            let target = if in_hook { received } else { buffered };
            envoy_dynamic_module_callback_http_append_body(self.0, target, ModuleBuffer::of(body))
        }
    }

    pub fn clear_route_cache(&self) {
        // SAFETY: see the module's comment.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.0) }
    }

    pub fn continue_decoding(&self) {
        // SAFETY: see the module's comment.
        unsafe { envoy_dynamic_module_callback_http_filter_continue_decoding(self.0) }
    }

    pub fn send_response(&self, status: u16, headers: &[(String, String)], body: &[u8]) {
        let headers = module_headers(headers);
        // SAFETY: see the module's comment; the header array and buffers live across the
        // call, and Envoy copies them.
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self.0,
                u32::from(status),
                headers.as_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(b"switchboard"),
            );
        }
    }

    /// Starts a callout; its answer comes to `on_http_filter_http_callout_done` with the id.
    pub fn callout(
        &self,
        cluster: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u64, u32> {
        let headers = module_headers(headers);
        let mut id = 0u64;
        // SAFETY: see the module's comment; Envoy copies headers and body.
        let result = unsafe {
            envoy_dynamic_module_callback_http_filter_http_callout(
                self.0,
                &mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                headers.as_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                timeout_ms,
            )
        };
        if result == OK { Ok(id) } else { Err(result) }
    }

    /// A child of the request's span, named `operation`, when Envoy traces the request: the
    /// span and its W3C trace and span ids (hex).
    pub fn child_span(&self, operation: &str) -> Option<(ChildSpan, String, String)> {
        // SAFETY: see the module's comment. The active span belongs to the stream; the
        // child is ours from here until `ChildSpan` finishes it (once, on drop); the ids
        // Envoy hands out live in its thread-local storage until the next tracing call, so
        // each is copied at once.
        unsafe {
            let active = envoy_dynamic_module_callback_http_get_active_span(self.0);
            if active.is_null() {
                return None;
            }
            let child = envoy_dynamic_module_callback_http_span_spawn_child(
                self.0,
                active,
                ModuleBuffer::of(operation.as_bytes()),
            );
            if child.is_null() {
                return None;
            }
            let span = ChildSpan(child);
            let mut out = EnvoyBuffer::NULL;
            let trace = envoy_dynamic_module_callback_http_span_get_trace_id(child, &mut out)
                .then(|| to_string(out.bytes()))?;
            let mut out = EnvoyBuffer::NULL;
            let id = envoy_dynamic_module_callback_http_span_get_span_id(child, &mut out)
                .then(|| to_string(out.bytes()))?;
            Some((span, trace, id))
        }
    }

    /// The downstream peer's address (`ip:port`).
    pub fn source_address(&self) -> Option<String> {
        let mut out = EnvoyBuffer::NULL;
        // SAFETY: see the module's comment; the string is copied before the hook returns.
        unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.0,
                ATTRIBUTE_SOURCE_ADDRESS,
                &mut out,
            )
            .then(|| to_string(out.bytes()))
        }
    }

    /// Filter state (a string) the access log reads as `%FILTER_STATE(<key>:PLAIN)%`.
    pub fn set_filter_state(&self, key: &str, value: &str) {
        // SAFETY: see the module's comment; Envoy copies both.
        unsafe {
            envoy_dynamic_module_callback_http_set_filter_state_bytes(
                self.0,
                ModuleBuffer::of(key.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            );
        }
    }

    pub fn increment(&self, id: MetricId, labels: &[&str]) {
        let labels = buffers(labels);
        // SAFETY: see the module's comment; Envoy copies the label values.
        unsafe {
            envoy_dynamic_module_callback_http_filter_increment_counter(
                self.0,
                id.0,
                labels.as_ptr(),
                labels.len(),
                1,
            );
        }
    }

    pub fn record(&self, id: MetricId, labels: &[&str], value: u64) {
        let labels = buffers(labels);
        // SAFETY: see the module's comment; Envoy copies the label values.
        unsafe {
            envoy_dynamic_module_callback_http_filter_record_histogram_value(
                self.0,
                id.0,
                labels.as_ptr(),
                labels.len(),
                value,
            );
        }
    }
}

// ---- Entry points: Envoy calls these. Each one hands safe values to `crate`. ----

/// # Safety
/// `ptr` is null or a pointer this module returned from `Box::into_raw` as a `T`, not yet freed.
unsafe fn borrow<'a, T>(ptr: *mut c_void) -> Option<&'a mut T> {
    // SAFETY: per the caller.
    unsafe { ptr.cast::<T>().as_mut() }
}

/// # Safety
/// As [`borrow`]; the pointer is not used again.
unsafe fn free<T>(ptr: *mut c_void) {
    if !ptr.is_null() {
        // SAFETY: per the caller.
        drop(unsafe { Box::from_raw(ptr.cast::<T>()) });
    }
}

/// # Safety
/// `b` is Envoy's buffer, valid for the call.
unsafe fn bytes_of<'a>(b: EnvoyBuffer) -> &'a [u8] {
    if b.ptr.is_null() || b.len == 0 {
        return &[];
    }
    // SAFETY: per the caller.
    unsafe { std::slice::from_raw_parts(b.ptr.cast(), b.len) }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    ABI_VERSION.as_ptr().cast()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: RawConfig,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *mut c_void {
    // SAFETY: Envoy's buffers, valid for this call.
    let (name, config) = unsafe { (bytes_of(name), bytes_of(config)) };
    let made = crate::guard(|| crate::Config::new(&EnvoyConfig(config_envoy), name, config));
    match made {
        Ok(Some(config)) => Box::into_raw(Box::new(config)).cast(),
        // Null: Envoy rejects the configuration (and keeps the one it has).
        _ => std::ptr::null_mut(),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *mut c_void) {
    // SAFETY: Envoy passes back what `config_new` returned, once.
    unsafe { free::<crate::Config>(config) }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *mut c_void {
    log(
        LogLevel::Error,
        "switchboard: per-route configuration is not supported",
    );
    std::ptr::null_mut()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(_: *mut c_void) {}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *mut c_void,
    filter_envoy: RawFilter,
) -> *mut c_void {
    // SAFETY: `config` is what `config_new` returned; Envoy keeps it alive while filters exist.
    let Some(config) = (unsafe { borrow::<crate::Config>(config) }) else {
        return std::ptr::null_mut();
    };
    match crate::guard(|| config.filter(EnvoyFilter(filter_envoy))) {
        Ok(filter) => Box::into_raw(Box::new(filter)).cast(),
        Err(()) => std::ptr::null_mut(),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter: *mut c_void) {
    // SAFETY: Envoy passes back what `filter_new` returned, once, after its last hook.
    unsafe { free::<crate::Filter>(filter) }
}

/// Runs `f` on the filter, or answers `fallback` when there is none.
///
/// # Safety
/// `filter` is what `on_http_filter_new` returned, not yet destroyed.
unsafe fn with_filter<R>(
    filter: *mut c_void,
    fallback: R,
    f: impl FnOnce(&mut crate::Filter) -> R,
) -> R {
    // SAFETY: per the caller; Envoy calls one hook of a filter at a time, on its worker.
    match unsafe { borrow::<crate::Filter>(filter) } {
        Some(filter) => f(filter),
        None => fallback,
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    _: RawFilter,
    filter: *mut c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: `filter` comes from `filter_new`.
    let paused = unsafe { with_filter(filter, false, |f| f.on_request_headers(end_of_stream)) };
    if paused { STOP_ITERATION } else { CONTINUE }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _: RawFilter,
    filter: *mut c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: `filter` comes from `filter_new`.
    let paused = unsafe { with_filter(filter, false, |f| f.on_request_body(end_of_stream)) };
    if paused {
        STOP_ITERATION_AND_BUFFER
    } else {
        CONTINUE
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _: RawFilter,
    _: *mut c_void,
) -> u32 {
    CONTINUE
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    _: RawFilter,
    filter: *mut c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: `filter` comes from `filter_new`.
    let paused = unsafe { with_filter(filter, false, |f| f.on_response_headers(end_of_stream)) };
    if paused { STOP_ITERATION } else { CONTINUE }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _: RawFilter,
    filter: *mut c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: `filter` comes from `filter_new`.
    let paused = unsafe { with_filter(filter, false, |f| f.on_response_body(end_of_stream)) };
    if paused {
        STOP_ITERATION_AND_BUFFER
    } else {
        CONTINUE
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _: RawFilter,
    _: *mut c_void,
) -> u32 {
    CONTINUE
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(
    _: RawFilter,
    filter: *mut c_void,
    _status: u32,
    details: EnvoyBuffer,
    _reset: bool,
) -> u32 {
    // SAFETY: Envoy's buffer, valid for this call; `filter` comes from `filter_new`.
    unsafe {
        let details = to_string(bytes_of(details));
        with_filter(filter, (), |f| f.on_local_reply(details));
    }
    CONTINUE
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _: RawFilter,
    filter: *mut c_void,
    id: u64,
    result: u32,
    headers: *const EnvoyHeader,
    headers_len: usize,
    chunks: *const EnvoyBuffer,
    chunks_len: usize,
) {
    // SAFETY: Envoy's arrays (or null), valid for this call, copied here.
    let answer = unsafe {
        (result == OK && !headers.is_null()).then(|| {
            let headers = std::slice::from_raw_parts(headers, headers_len)
                .iter()
                .map(|h| (to_string(h.key.bytes()), to_string(h.value.bytes())))
                .collect::<Vec<_>>();
            let mut body = Vec::new();
            if !chunks.is_null() {
                for c in std::slice::from_raw_parts(chunks, chunks_len) {
                    body.extend_from_slice(c.bytes());
                }
            }
            (headers, body)
        })
    };
    // SAFETY: `filter` comes from `filter_new`.
    unsafe { with_filter(filter, (), |f| f.on_callout_done(id, answer)) }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _: RawFilter,
    _: *mut c_void,
) {
}

// Entry points the 1.40 binary resolves when it loads a module (dlopen with RTLD_NOW), for
// features Switchboard does not use.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _: RawFilter,
    _: *mut c_void,
    _: u64,
) {
}
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _: RawFilter,
    _: *mut c_void,
) {
}
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _: RawFilter,
    _: *mut c_void,
) {
}
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _: RawFilter,
    _: *mut c_void,
    _: u64,
    _: *const c_void,
    _: usize,
    _: bool,
) {
}
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _: RawFilter,
    _: *mut c_void,
    _: u64,
    _: *const c_void,
    _: usize,
    _: bool,
) {
}
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _: RawFilter,
    _: *mut c_void,
    _: u64,
    _: *const c_void,
    _: usize,
) {
}
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _: RawFilter,
    _: *mut c_void,
    _: u64,
) {
}
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _: RawFilter,
    _: *mut c_void,
    _: u64,
    _: u32,
) {
}
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _: RawConfig,
    _: *mut c_void,
    _: u64,
) {
}
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _: RawConfig,
    _: *mut c_void,
    _: u64,
    _: u32,
    _: *const c_void,
    _: usize,
    _: *const c_void,
    _: usize,
) {
}
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_headers(
    _: RawConfig,
    _: *mut c_void,
    _: u64,
    _: *const c_void,
    _: usize,
    _: bool,
) {
}
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_data(
    _: RawConfig,
    _: *mut c_void,
    _: u64,
    _: *const c_void,
    _: usize,
    _: bool,
) {
}
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_trailers(
    _: RawConfig,
    _: *mut c_void,
    _: u64,
    _: *const c_void,
    _: usize,
) {
}
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_complete(
    _: RawConfig,
    _: *mut c_void,
    _: u64,
) {
}
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_reset(
    _: RawConfig,
    _: *mut c_void,
    _: u64,
    _: u32,
) {
}
