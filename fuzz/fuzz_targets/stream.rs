//! The data-plane driver both shells run (`switchboard_dataplane::Stream`), fed what Envoy
//! hands a shell's hooks: arbitrary request headers and body chunks, callout answers of any
//! status, headers and body, and any upstream response. Never a panic (in the native module a
//! panic fails the stream; here it is a finding), and whatever the driver writes back stays
//! well-formed: one answer at most, and no request routed without the route selector.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use switchboard_dataplane::{Host, HostError, Level, Stream};
use switchboard_protocol::audit::{Counter, Series};
use switchboard_protocol::exchange::Callout;
use switchboard_protocol::filter_config::ROUTE_HEADER;

#[derive(Default)]
struct State {
    request_headers: Vec<(String, String)>,
    request_body: Vec<u8>,
    response_headers: Vec<(String, String)>,
    response_body: Vec<u8>,
    replies: usize,
    callouts: Vec<u32>,
    callout_headers: Vec<(String, String)>,
    callout_body: Vec<u8>,
}

#[derive(Clone, Default)]
struct Fake(Rc<RefCell<State>>);

fn set(map: &mut Vec<(String, String)>, name: &str, value: Option<&str>) {
    map.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    if let Some(v) = value {
        map.push((name.to_string(), v.to_string()));
    }
}

impl Host for Fake {
    fn request_headers(&self) -> Vec<(String, String)> {
        self.0.borrow().request_headers.clone()
    }
    fn set_request_header(&self, name: &str, value: Option<&str>) {
        set(&mut self.0.borrow_mut().request_headers, name, value);
    }
    fn request_body(&self, _size: usize) -> Result<Vec<u8>, HostError> {
        Ok(self.0.borrow().request_body.clone())
    }
    fn set_request_body(&self, body: &[u8]) -> Result<(), HostError> {
        self.0.borrow_mut().request_body = body.to_vec();
        Ok(())
    }
    fn resume_request(&self) {}
    fn clear_route_cache(&self) {}
    fn response_headers(&self) -> Vec<(String, String)> {
        self.0.borrow().response_headers.clone()
    }
    fn set_response_header(&self, name: &str, value: Option<&str>) {
        set(&mut self.0.borrow_mut().response_headers, name, value);
    }
    fn replace_response_headers(&self, headers: &[(String, String)]) {
        self.0.borrow_mut().response_headers = headers.to_vec();
    }
    fn response_body(&self, _size: usize) -> Vec<u8> {
        self.0.borrow().response_body.clone()
    }
    fn set_response_body(&self, _size: usize, body: &[u8]) -> Result<(), HostError> {
        self.0.borrow_mut().response_body = body.to_vec();
        Ok(())
    }
    fn property(&self, path: &[&str]) -> Option<String> {
        match path {
            ["source", "address"] => Some("127.0.0.1:4000".into()),
            ["response", "code_details"] => Some("via_upstream".into()),
            _ => None,
        }
    }
    fn set_property(&self, _name: &str, _value: &str) {}
    fn dispatch(&self, _callout: &Callout) -> Result<u32, HostError> {
        let mut s = self.0.borrow_mut();
        let token = s.callouts.len() as u32 + 1;
        s.callouts.push(token);
        Ok(token)
    }
    fn callout_headers(&self) -> Vec<(String, String)> {
        self.0.borrow().callout_headers.clone()
    }
    fn callout_body(&self, _size: usize) -> Vec<u8> {
        self.0.borrow().callout_body.clone()
    }
    fn send_reply(&self, _: u16, _: &[(String, String)], _: &[u8]) -> Result<(), HostError> {
        self.0.borrow_mut().replies += 1;
        Ok(())
    }
    fn increment(&self, _counter: &Counter) {}
    fn record(&self, _series: &Series, _value: u64) {}
    fn now(&self) -> Duration {
        Duration::from_secs(switchboard_fuzz_support::NOW)
    }
    fn log(&self, _level: Level, _message: &str) {}
}

/// Reads `n`-prefixed pieces off the input.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn piece(&mut self) -> &'a [u8] {
        let Some((&n, rest)) = self.0.split_first() else {
            return &[];
        };
        let n = usize::from(n).min(rest.len());
        let (piece, rest) = rest.split_at(n);
        self.0 = rest;
        piece
    }
    fn text(&mut self) -> String {
        String::from_utf8_lossy(self.piece()).into_owned()
    }
    fn byte(&mut self) -> u8 {
        self.piece().first().copied().unwrap_or(0)
    }
}

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static GATEWAY: Arc<switchboard_protocol::exchange::Gateway> =
            Arc::new(switchboard_fuzz_support::gateway());
    }
    let gw = GATEWAY.with(Arc::clone);
    let session = switchboard_fuzz_support::session(&gw);
    let mut input = Input(data);
    let host = Fake::default();
    {
        let mut s = host.0.borrow_mut();
        s.request_headers = vec![
            (":method".into(), if input.byte() % 2 == 0 { "POST" } else { "GET" }.into()),
            (":path".into(), if input.byte() % 3 == 0 { input.text() } else { "/mcp".into() }),
            ("content-type".into(), "application/json".into()),
            ("accept".into(), "application/json, text/event-stream".into()),
        ];
        if input.byte() % 2 == 0 {
            s.request_headers.push(("mcp-session-id".into(), session));
        }
        for _ in 0..input.byte() % 4 {
            let (k, v) = (input.text().to_ascii_lowercase(), input.text());
            s.request_headers.push((k, v));
        }
        s.request_body = input.piece().to_vec();
    }
    let mut stream = Stream::new(host.clone(), gw, 1, Rc::new(Cell::new(0)));
    let body_len = host.0.borrow().request_body.len();
    stream.on_request_headers(body_len == 0);
    if body_len > 0 {
        // Envoy may deliver the body in several chunks: the driver sees the size grow.
        let cut = usize::from(input.byte()) % (body_len + 1);
        if cut > 0 && cut < body_len {
            stream.on_request_body(cut, false);
        }
        stream.on_request_body(body_len, true);
    }
    let calls = host.0.borrow().callouts.clone();
    for token in calls {
        let status = input.text();
        {
            let mut s = host.0.borrow_mut();
            s.callout_headers = vec![
                (":status".into(), status),
                ("content-type".into(), "application/json".into()),
            ];
            s.callout_body = Vec::new();
        }
        let body = input.piece().to_vec();
        let failed = input.byte() % 5 == 0;
        let size = body.len();
        host.0.borrow_mut().callout_body = body;
        stream.on_callout_response(token, if failed { 0 } else { 2 }, size);
    }
    let routed = host
        .0
        .borrow()
        .request_headers
        .iter()
        .any(|(k, _)| k == ROUTE_HEADER);
    if routed {
        let status = input.text();
        let content_type = input.text();
        {
            let mut s = host.0.borrow_mut();
            s.response_headers = vec![(":status".into(), status), ("content-type".into(), content_type)];
            s.response_body = input.piece().to_vec();
        }
        let size = host.0.borrow().response_body.len();
        stream.on_response_headers(size == 0);
        if size > 0 {
            stream.on_response_body(size, true);
        }
    }
    assert!(host.0.borrow().replies <= 2, "more than one answer and its replacement");
});
