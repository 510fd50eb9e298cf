//! The driver against a fake host: what a shell must do with each step, checked without
//! Envoy (the end-to-end tests run the same through the real one).

// Clippy counts only `cfg(test)` code as test code (unwrap, expect and panic are allowed there).
#[cfg(test)]
mod driven {
    use serde_json::{Value, json};
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::sync::Arc;
    use std::time::Duration;
    use switchboard_dataplane::{Flow, Host, HostError, Level, Stream};
    use switchboard_protocol::audit::{Counter, Series};
    use switchboard_protocol::exchange::{Callout, Gateway};
    use switchboard_protocol::filter_config::{FilterConfig, ROUTE_HEADER};

    /// A local reply: status, headers, body.
    type Sent = (u16, Vec<(String, String)>, Vec<u8>);

    #[derive(Default)]
    struct State {
        resumed: usize,
        request_headers: Vec<(String, String)>,
        request_body: Vec<u8>,
        response_headers: Vec<(String, String)>,
        response_body: Vec<u8>,
        sent: Option<Sent>,
        dispatched: Vec<Callout>,
        refuse_dispatch: bool,
        callout_headers: Vec<(String, String)>,
        callout_body: Vec<u8>,
        properties: Vec<(String, String)>,
        counters: Vec<String>,
        histograms: Vec<String>,
        route_cache_cleared: bool,
        logs: Vec<String>,
    }

    #[derive(Clone, Default)]
    struct FakeHost(Rc<RefCell<State>>);

    /// The value of header `name` (as the driver spelled it).
    fn value(map: &[(String, String)], name: &str) -> Option<String> {
        map.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn set(map: &mut Vec<(String, String)>, name: &str, value: Option<&str>) {
        map.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            map.push((name.to_string(), v.to_string()));
        }
    }

    impl Host for FakeHost {
        fn request_headers(&self) -> Vec<(String, String)> {
            self.0.borrow().request_headers.clone()
        }
        fn set_request_header(&self, name: &str, value: Option<&str>) {
            set(&mut self.0.borrow_mut().request_headers, name, value);
        }
        fn request_body(&self, size: usize) -> Result<Vec<u8>, HostError> {
            let body = &self.0.borrow().request_body;
            Ok(body[..size.min(body.len())].to_vec())
        }
        fn set_request_body(&self, body: &[u8]) -> Result<(), HostError> {
            self.0.borrow_mut().request_body = body.to_vec();
            Ok(())
        }
        fn resume_request(&self) {
            self.0.borrow_mut().resumed += 1;
        }
        fn clear_route_cache(&self) {
            self.0.borrow_mut().route_cache_cleared = true;
        }
        fn response_headers(&self) -> Vec<(String, String)> {
            self.0.borrow().response_headers.clone()
        }
        fn set_response_header(&self, name: &str, value: Option<&str>) {
            set(&mut self.0.borrow_mut().response_headers, name, value);
        }
        fn replace_response_headers(&self, headers: &[(String, String)]) {
            self.0.borrow_mut().response_headers = headers.to_vec();
        }
        fn response_body(&self, size: usize) -> Vec<u8> {
            let body = &self.0.borrow().response_body;
            body[..size.min(body.len())].to_vec()
        }
        fn set_response_body(&self, _size: usize, body: &[u8]) -> Result<(), HostError> {
            self.0.borrow_mut().response_body = body.to_vec();
            Ok(())
        }
        fn property(&self, path: &[&str]) -> Option<String> {
            (path == ["source", "address"]).then(|| "10.0.0.7:4000".to_string())
        }
        fn set_property(&self, name: &str, value: &str) {
            let mut s = self.0.borrow_mut();
            s.properties.push((name.to_string(), value.to_string()));
        }
        fn dispatch(&self, callout: &Callout) -> Result<u32, HostError> {
            let mut s = self.0.borrow_mut();
            if s.refuse_dispatch {
                return Err(HostError("BadArgument".into()));
            }
            s.dispatched.push(callout.clone());
            Ok(100 + s.dispatched.len() as u32)
        }
        fn callout_headers(&self) -> Vec<(String, String)> {
            self.0.borrow().callout_headers.clone()
        }
        fn callout_body(&self, size: usize) -> Vec<u8> {
            let body = &self.0.borrow().callout_body;
            body[..size.min(body.len())].to_vec()
        }
        fn send_reply(
            &self,
            status: u16,
            headers: &[(String, String)],
            body: &[u8],
        ) -> Result<(), HostError> {
            self.0.borrow_mut().sent = Some((status, headers.to_vec(), body.to_vec()));
            Ok(())
        }
        fn increment(&self, counter: &Counter) {
            self.0.borrow_mut().counters.push(counter.name());
        }
        fn record(&self, series: &Series, _value: u64) {
            let (metric, values) = series.duration();
            self.0
                .borrow_mut()
                .histograms
                .push(metric.flat_name(&values));
        }
        fn now(&self) -> Duration {
            Duration::from_secs(1_700_000_000)
        }
        fn log(&self, _level: Level, message: &str) {
            self.0.borrow_mut().logs.push(message.to_string());
        }
    }

    fn upstream(i: usize) -> Value {
        json!({
            "name": format!("u{i}"), "prefix": format!("u{i}"), "uri_prefix": format!("u{i}"),
            "cluster": format!("upstream-u{i}"), "authority": format!("127.0.0.1:{}", 3000 + i),
            "path": "/mcp", "timeout_ms": 1000, "headers": [["x-key", format!("k{i}")]],
            "tools_include": [], "tools_exclude": [], "cache_ms": 0, "via": "",
            "max_list_bytes": 1_048_576, "max_list_items": 100
        })
    }

    fn gateway(extra: Value) -> Arc<Gateway> {
        let mut config = json!({
            "mcp_path": "/mcp", "max_request_bytes": 1_048_576, "server_name": "switchboard",
            "server_version": "0.1.0", "session_key": "test-key", "session_max_age_s": 3600,
            "separator": "__", "fan_out": "fail_open", "upstreams": [upstream(0), upstream(1)],
            "credential_headers": ["authorization"],
            "cors": {"origins": ["https://app.example"], "methods": "POST", "headers": "content-type", "max_age_s": 5},
            "audit": true
        });
        if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        let config =
            FilterConfig::from_json(config.to_string().as_bytes()).expect("a valid filter config");
        Arc::new(Gateway::new(config))
    }

    fn stream(
        gw: &Arc<Gateway>,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (FakeHost, Stream<FakeHost>) {
        let host = FakeHost::default();
        {
            let mut s = host.0.borrow_mut();
            s.request_headers = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            s.request_body = body.as_bytes().to_vec();
        }
        let stream = Stream::new(host.clone(), gw.clone(), 7, Rc::new(Cell::new(0)));
        (host, stream)
    }

    fn answer_callouts(
        host: &FakeHost,
        stream: &mut Stream<FakeHost>,
        body: impl Fn(&Callout) -> Value,
    ) {
        let calls = host.0.borrow().dispatched.clone();
        for (i, c) in calls.iter().enumerate() {
            {
                let mut s = host.0.borrow_mut();
                s.callout_headers = vec![
                    (":status".into(), "200".into()),
                    ("content-type".into(), "application/json".into()),
                    ("Mcp-Session-Id".into(), format!("sid-{i}")),
                ];
                s.callout_body = body(c).to_string().into_bytes();
            }
            let size = host.0.borrow().callout_body.len();
            stream.on_callout_response(101 + i as u32, 3, size);
        }
    }

    const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;

    fn initialized(gw: &Arc<Gateway>) -> String {
        let post = [
            (":method", "POST"),
            (":path", "/mcp"),
            ("origin", "https://app.example"),
        ];
        let (host, mut s) = stream(gw, &post, INIT);
        assert_eq!(s.on_request_headers(false), Flow::Pause, "the body decides");
        assert_eq!(
            s.on_request_body(INIT.len(), true),
            Flow::Pause,
            "waiting for the fan-out"
        );
        let dispatched = host.0.borrow().dispatched.clone();
        assert_eq!(dispatched.len(), 2);
        assert!(
            dispatched[0]
                .headers
                .contains(&("x-key".into(), "k0".into()))
        );
        answer_callouts(
            &host,
            &mut s,
            |_| json!({"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"up","version":"1"}}}),
        );
        let state = host.0.borrow();
        let (status, headers, _) = state.sent.clone().expect("the merged answer was sent");
        assert_eq!(status, 200);
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "access-control-allow-origin" && v == "https://app.example")
        );
        assert!(
            state
                .counters
                .contains(&"switchboard.upstream_requests_total.upstream.fan_out".to_string())
        );
        assert!(
            state
                .properties
                .contains(&("switchboard_method".into(), "initialize".into()))
        );
        headers
            .into_iter()
            .find(|(k, _)| k == "mcp-session-id")
            .expect("a session")
            .1
    }

    #[test]
    fn initialize_fans_out_through_the_host_and_answers_with_the_sealed_session() {
        initialized(&gateway(json!({})));
    }

    #[test]
    fn a_call_goes_on_to_its_upstreams_route_with_only_the_headers_that_belong_there() {
        let gw = gateway(json!({}));
        let token = initialized(&gw);
        let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"u1__echo","arguments":{}}}"#;
        let headers = [
            (":method", "POST"),
            (":path", "/mcp"),
            ("mcp-session-id", token.as_str()),
            (ROUTE_HEADER, "u0"),
            ("authorization", "Bearer for-the-gateway"),
            ("cookie", "session=browser"),
            ("traceparent", "00-abc-def-01"),
        ];
        let (host, mut s) = stream(&gw, &headers, call);
        assert_eq!(s.on_request_headers(false), Flow::Pause);
        assert_eq!(s.on_request_body(call.len(), true), Flow::Continue);
        {
            let state = host.0.borrow();
            let h = |n: &str| value(&state.request_headers, n);
            assert_eq!(
                h(ROUTE_HEADER).as_deref(),
                Some("u1"),
                "the gateway's choice, not the client's"
            );
            assert_eq!(
                h("mcp-session-id").as_deref(),
                Some("sid-1"),
                "the upstream's own session"
            );
            assert_eq!(h("authorization"), None);
            assert_eq!(h("cookie"), None);
            assert_eq!(h("traceparent").as_deref(), Some("00-abc-def-01"));
            assert!(state.route_cache_cleared);
            let body: Value = serde_json::from_slice(&state.request_body).expect("json");
            assert_eq!(body["params"]["name"], "echo");
            assert_eq!(
                h("content-length"),
                Some(state.request_body.len().to_string())
            );
        }
        // The upstream's answer: its session header and cookies stay behind.
        {
            let mut state = host.0.borrow_mut();
            state.response_headers = vec![
                (":status".into(), "200".into()),
                ("content-type".into(), "application/json".into()),
                ("mcp-session-id".into(), "sid-1".into()),
                ("set-cookie".into(), "upstream=1".into()),
            ];
        }
        assert_eq!(s.on_response_headers(false), Flow::Continue);
        let state = host.0.borrow();
        let names: Vec<&str> = state
            .response_headers
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(names, [":status", "content-type"]);
        assert!(
            state
                .counters
                .contains(&"switchboard.upstream_requests_total.upstream.u1".to_string())
        );
        assert!(
            state
                .counters
                .contains(&"switchboard.tool_calls_total.upstream.u1.tool.unknown".to_string()),
            "{:?}",
            state.counters
        );
    }

    #[test]
    fn a_callout_the_host_refuses_is_that_upstreams_failure() {
        let gw = gateway(json!({"fan_out": "fail_closed"}));
        let (host, mut s) = stream(&gw, &[(":method", "POST"), (":path", "/mcp")], INIT);
        host.0.borrow_mut().refuse_dispatch = true;
        s.on_request_headers(false);
        assert_eq!(s.on_request_body(INIT.len(), true), Flow::Pause);
        let state = host.0.borrow();
        let (status, _, body) = state.sent.clone().expect("answered at once");
        assert_eq!(status, 200);
        let body: Value = serde_json::from_slice(&body).expect("json");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("could not be called (BadArgument)"),
            "{message}"
        );
        assert!(
            state
                .logs
                .iter()
                .any(|l| l.contains("failed during initialize"))
        );
    }

    #[test]
    fn a_refused_origin_is_answered_by_the_host_and_goes_nowhere() {
        let gw = gateway(json!({}));
        let headers = [
            (":method", "POST"),
            (":path", "/mcp"),
            ("origin", "https://evil.example"),
        ];
        let (host, mut s) = stream(&gw, &headers, INIT);
        assert_eq!(s.on_request_headers(false), Flow::Pause);
        assert_eq!(
            s.on_request_body(INIT.len(), true),
            Flow::Continue,
            "the body is not read"
        );
        let state = host.0.borrow();
        assert_eq!(state.sent.as_ref().map(|s| s.0), Some(403));
        assert!(state.dispatched.is_empty());
        assert!(state.counters.is_empty(), "no MCP method: no metric");
        assert!(
            state
                .properties
                .contains(&("switchboard_class".into(), "client".into()))
        );
    }

    /// A request of the session `token` on `/mcp`, carried through its headers and body.
    fn routed(gw: &Arc<Gateway>, token: &str, body: &str) -> (FakeHost, Stream<FakeHost>) {
        let headers = [
            (":method", "POST"),
            (":path", "/mcp"),
            ("mcp-session-id", token),
            ("origin", "https://app.example"),
        ];
        let (host, mut s) = stream(gw, &headers, body);
        assert_eq!(s.on_request_headers(false), Flow::Pause);
        assert_eq!(
            s.on_request_body(body.len(), true),
            Flow::Continue,
            "routed"
        );
        (host, s)
    }

    fn respond(host: &FakeHost, headers: &[(&str, &str)], body: &str) {
        let mut state = host.0.borrow_mut();
        state.response_headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        state.response_body = body.as_bytes().to_vec();
    }

    #[test]
    fn an_sse_answer_is_edited_as_it_passes_its_events_naming_their_upstream() {
        let gw = gateway(json!({}));
        let token = initialized(&gw);
        let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"u1__echo"}}"#;
        let (host, mut s) = routed(&gw, &token, call);
        let event = "id: 5\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\n";
        respond(
            &host,
            &[
                (":status", "200"),
                ("content-type", "text/event-stream"),
                ("content-length", "99"),
                ("mcp-session-id", "sid-1"),
            ],
            event,
        );
        assert_eq!(
            s.on_response_headers(false),
            Flow::Continue,
            "streamed, not held"
        );
        {
            let state = host.0.borrow();
            let names: Vec<&str> = state
                .response_headers
                .iter()
                .map(|(k, _)| k.as_str())
                .collect();
            assert!(
                !names.contains(&"mcp-session-id") && !names.contains(&"content-length"),
                "{names:?}"
            );
        }
        assert_eq!(s.on_response_body(event.len(), true), Flow::Continue);
        let body = String::from_utf8(host.0.borrow().response_body.clone()).unwrap();
        assert!(body.starts_with("id: u1:5\n"), "{body:?}");
        assert!(
            body.contains("\"id\":2"),
            "the message itself is the upstream's: {body:?}"
        );
    }

    #[test]
    fn a_read_answer_is_held_whole_and_its_uris_get_their_prefix_back() {
        let gw = gateway(json!({}));
        let token = initialized(&gw);
        let read = r#"{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"u1+file:///a.txt"}}"#;
        let (host, mut s) = routed(&gw, &token, read);
        let routed_body: Value = serde_json::from_slice(&host.0.borrow().request_body).unwrap();
        assert_eq!(routed_body["params"]["uri"], "file:///a.txt");
        let answer = r#"{"jsonrpc":"2.0","id":3,"result":{"contents":[{"uri":"file:///a.txt","text":"x"}]}}"#;
        respond(
            &host,
            &[(":status", "200"), ("content-type", "application/json")],
            answer,
        );
        assert_eq!(
            s.on_response_headers(false),
            Flow::Pause,
            "held for the rewrite"
        );
        assert_eq!(s.on_response_body(answer.len(), false), Flow::Pause);
        assert_eq!(s.on_response_body(answer.len(), true), Flow::Continue);
        let body: Value = serde_json::from_slice(&host.0.borrow().response_body).unwrap();
        assert_eq!(body["result"]["contents"][0]["uri"], "u1+file:///a.txt");
    }

    #[test]
    fn a_redirect_becomes_the_gateways_error_in_place_of_the_upstreams_answer() {
        let gw = gateway(json!({}));
        let token = initialized(&gw);
        let call = r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"u0__echo"}}"#;

        // With a body still to come: the headers are replaced, then the body.
        let (host, mut s) = routed(&gw, &token, call);
        respond(
            &host,
            &[
                (":status", "302"),
                ("location", "https://elsewhere.example/?token=t"),
                ("set-cookie", "a=b"),
            ],
            "moved",
        );
        assert_eq!(s.on_response_headers(false), Flow::Pause);
        {
            let state = host.0.borrow();
            let h = |n: &str| value(&state.response_headers, n);
            assert_eq!(h(":status").as_deref(), Some("200"));
            assert_eq!(h("set-cookie"), None);
            assert_eq!(
                h("access-control-allow-origin").as_deref(),
                Some("https://app.example")
            );
        }
        assert_eq!(s.on_response_body(5, true), Flow::Continue);
        let body: Value = serde_json::from_slice(&host.0.borrow().response_body).unwrap();
        assert_eq!(body["id"], 4);
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("\"u0\"") && message.contains("redirect"),
            "{message}"
        );
        assert!(
            host.0
                .borrow()
                .logs
                .iter()
                .any(|l| l.contains("https://elsewhere.example") && !l.contains("token"))
        );

        // Without a body: answered anew.
        let (host, mut s) = routed(&gw, &token, call);
        respond(&host, &[(":status", "301"), ("location", "/other")], "");
        assert_eq!(s.on_response_headers(true), Flow::Pause);
        assert_eq!(host.0.borrow().sent.as_ref().map(|r| r.0), Some(200));
    }
}
