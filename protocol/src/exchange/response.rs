use super::*;

#[derive(Debug)]
pub(super) struct Routed {
    pub(super) upstream: String,
    pub(super) id: Option<Box<RawValue>>,
    pub(super) timeout_ms: u64,
    /// `resources/read` answers name the upstream's URIs: prefix them back.
    pub(super) uri_prefix: Option<String>,
    pub(super) buffering: bool,
    /// Several upstreams share the session: requests the upstream sends in its SSE answer get
    /// ids that say whose they are.
    pub(super) tag_requests: bool,
    /// URIs are prefixed: a `resources/updated` in its SSE answer names the prefixed URI.
    pub(super) event_uri_prefix: Option<String>,
    /// What the upstream is reached through, for error messages (usually empty).
    pub(super) via: String,
    pub(super) splitter: Option<crate::sse::EventSplitter>,
}

/// Prefixes `result.contents[].uri` in a `resources/read` answer.
pub(super) fn rewrite_read_uris(json_text: &str, prefix: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(json_text) else {
        return json_text.to_string();
    };
    let Some(contents) = v
        .get_mut("result")
        .and_then(|r| r.get_mut("contents"))
        .and_then(Value::as_array_mut)
    else {
        return json_text.to_string();
    };
    for c in contents {
        if let Some(uri) = c.get("uri").and_then(Value::as_str) {
            c["uri"] = Value::String(naming::prefix_uri(prefix, uri));
        }
    }
    v.to_string()
}

/// Response headers of an upstream's answer that never reach the client: cookies (the
/// gateway's origin is not the upstream's) and CORS grants (only the gateway's own CORS
/// policy speaks for its origin; the filter adds those after this).
pub fn stripped_response_headers<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    names
        .filter(|n| {
            let n = n.to_ascii_lowercase();
            n == "set-cookie" || n == "set-cookie2" || n.starts_with("access-control-")
        })
        .collect()
}

/// Where a redirect pointed, for the operator's log: scheme and host only (a path or query
/// may carry a token).
pub(super) fn redirect_target(location: &str) -> String {
    match location.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}")
        }
        None => "a path on the same host".into(),
    }
}

impl Exchange {
    /// A host route's answer passes as it comes; only Envoy's own failure (it could not, or
    /// would not, connect) becomes a JSON-RPC error that names the route.
    fn host_route_answer(
        &mut self,
        route: &str,
        status: u16,
        code_details: Option<&str>,
    ) -> ResponseStep {
        let details = match code_details {
            Some(d) if status >= 500 && d != "via_upstream" => d,
            _ => return ResponseStep::Stream { remove: vec![] },
        };
        let (status, message) = if details.contains("no_healthy_upstream") {
            (
                502,
                format!(
                    "Host route {route:?}: the gateway will not connect to its upstream: none of the addresses it resolves to is in upstream.allowed_ips, or it did not resolve (the gateway's log says which)"
                ),
            )
        } else {
            (
                status,
                format!("Host route {route:?}: the upstream could not be reached ({details})"),
            )
        };
        self.log.push(message.clone());
        ResponseStep::Replace(json_reply(
            status,
            jsonrpc::error_body(None, UPSTREAM_ERROR, &message),
        ))
    }

    /// Response headers of a routed request. `code_details` is Envoy's
    /// `response.code_details`: `via_upstream` when the upstream answered, else why Envoy
    /// answered itself (connection failure, timeout…). `location`: the answer's `Location`.
    pub fn on_response_headers(
        &mut self,
        status: u16,
        content_type: Option<&str>,
        location: Option<&str>,
        code_details: Option<&str>,
    ) -> ResponseStep {
        if let State::Stream(_) = &self.state {
            if (200..300).contains(&status) && code_details.is_none_or(|d| d == "via_upstream") {
                return ResponseStep::Transform;
            }
            self.state = State::Done;
        }
        if let Some(route) = self.host_route.clone() {
            return self.host_route_answer(&route, status, code_details);
        }
        let State::Routed(routed) = &mut self.state else {
            return ResponseStep::Stream { remove: vec![] };
        };
        let json_or_sse = content_type.is_some_and(|t| {
            let t = t.split(';').next().unwrap_or_default().trim();
            t.eq_ignore_ascii_case("application/json")
                || t.eq_ignore_ascii_case("text/event-stream")
        });
        let from_upstream = code_details.is_none_or(|d| d == "via_upstream");
        // A redirect is never passed on: a client (a browser above all) would follow it to
        // wherever the upstream says, with what it holds.
        if from_upstream && (300..400).contains(&status) && status != 304 {
            let message = format!(
                "Upstream {:?} answered with a redirect (HTTP {status}), which the gateway does not follow",
                routed.upstream
            );
            self.log.push(format!(
                "{message}; it pointed to {}",
                location.map_or_else(|| "no location".into(), redirect_target)
            ));
            let body = jsonrpc::error_body(routed.id.as_deref(), UPSTREAM_ERROR, &message);
            self.state = State::Done;
            return ResponseStep::Replace(json_reply(200, body));
        }
        if !from_upstream || (status >= 400 && !json_or_sse) {
            let (code, mut message) = describe_failure(
                &routed.upstream,
                status,
                code_details.filter(|_| !from_upstream),
                routed.timeout_ms,
            );
            if !from_upstream {
                message.push_str(&via_note(&routed.via));
            }
            let body = jsonrpc::error_body(routed.id.as_deref(), code, &message);
            self.log.push(message);
            // A session the upstream no longer knows is one the client must renew; what
            // answers no request (a stream, a notification) gets an HTTP error, not a body.
            let status = if status == 404 && from_upstream {
                404
            } else if routed.id.is_none() {
                502
            } else {
                200
            };
            self.state = State::Done;
            return ResponseStep::Replace(json_reply(status, body));
        }
        if routed.uri_prefix.is_some() && (200..300).contains(&status) {
            routed.buffering = true;
            return ResponseStep::Buffer;
        }
        let is_sse = content_type.is_some_and(|t| {
            t.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        });
        // Events are read one by one: their ids name the upstream (a resumed stream must go
        // back to it), a server request may need a tag, a list change must invalidate the
        // cache, a resource update must name the prefixed URI.
        if is_sse && (200..300).contains(&status) {
            routed.splitter = Some(crate::sse::EventSplitter::new());
            return ResponseStep::Transform;
        }
        ResponseStep::Stream {
            remove: vec![SESSION_HEADER],
        }
    }

    /// One chunk of a response that [`ResponseStep::Transform`] asked for: the bytes to send
    /// instead. Whole events go out as soon as they are complete.
    pub fn on_response_chunk(
        &mut self,
        gw: &Gateway,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + 32);
        match &mut self.state {
            State::Routed(Routed {
                upstream,
                splitter: Some(splitter),
                tag_requests,
                event_uri_prefix,
                ..
            }) => {
                for event in splitter.push(chunk) {
                    if is_list_changed(&event) {
                        gw.cache.bump(upstream);
                    }
                    match routed_event(&event, upstream, event_uri_prefix.as_deref(), *tag_requests)
                    {
                        Some(rewritten) => out.extend(rewritten),
                        None => out.extend_from_slice(&event),
                    }
                }
            }
            // The merged GET stream: the bridge marks each upstream's `list_changed` with a
            // comment, which only the gateway reads.
            State::Stream(splitter) => {
                for event in splitter.push(chunk) {
                    match list_changed_marker(&event) {
                        Some(upstream) => gw.cache.bump(upstream),
                        None => out.extend_from_slice(&event),
                    }
                }
            }
            _ => return chunk.to_vec(),
        }
        if end_of_stream {
            match std::mem::take(&mut self.state) {
                // What the splitter still holds may be a whole event (one ended by a lone
                // `\r` at the very end, say): it gets the same treatment as the others.
                State::Routed(Routed {
                    splitter: Some(splitter),
                    upstream,
                    tag_requests,
                    event_uri_prefix,
                    ..
                }) => {
                    let tail = splitter.finish();
                    if is_list_changed(&tail) {
                        gw.cache.bump(&upstream);
                    }
                    match routed_event(&tail, &upstream, event_uri_prefix.as_deref(), tag_requests)
                    {
                        Some(rewritten) => out.extend(rewritten),
                        None => out.extend(tail),
                    }
                }
                State::Stream(splitter) => out.extend(splitter.finish()),
                other => self.state = other,
            }
        }
        out
    }

    /// The whole body of a response that [`ResponseStep::Buffer`] asked for: the body to send.
    pub fn on_response_body(&mut self, body: &[u8], content_type: Option<&str>) -> Vec<u8> {
        let State::Routed(Routed {
            uri_prefix: Some(prefix),
            buffering: true,
            upstream,
            ..
        }) = &self.state
        else {
            return body.to_vec();
        };
        let is_sse = content_type.is_some_and(|t| {
            t.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        });
        if is_sse {
            let mut out = String::new();
            for event in crate::sse::parse(body) {
                let data = rewrite_read_uris(&event.data, prefix);
                let id = event.id.as_deref().map(|id| stream_event_id(upstream, id));
                if let Some(retry) = event.retry {
                    out.push_str(&format!("retry: {retry}\n"));
                }
                out.push_str(&crate::sse::encode(
                    event.event.as_deref(),
                    id.as_deref(),
                    &data,
                ));
            }
            out.into_bytes()
        } else {
            let text = String::from_utf8_lossy(body);
            rewrite_read_uris(&text, prefix).into_bytes()
        }
    }
}
