use super::*;
use crate::wire::LAST_EVENT_ID_HEADER;

/// The comment the bridge puts before an upstream's `list_changed`.
pub const LIST_CHANGED_MARKER: &str = "switchboard list_changed ";

/// Whether an event tells that a list changed (`notifications/tools/list_changed`…).
pub(super) fn is_list_changed(raw: &[u8]) -> bool {
    memchr::memmem::find(raw, b"list_changed").is_some()
        && crate::sse::parse(raw)
            .into_iter()
            .next()
            .is_some_and(|event| {
                serde_json::from_str::<Value>(&event.data).is_ok_and(|m| {
                    m["method"]
                        .as_str()
                        .is_some_and(|method| method.ends_with("/list_changed"))
                })
            })
}

/// The upstream named by a raw event that is only the bridge's marker comment.
pub(super) fn list_changed_marker(raw: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(raw).ok()?;
    let line = text.trim_end_matches(['\r', '\n']);
    if line.contains('\n') {
        return None;
    }
    line.strip_prefix(':')?
        .trim_start()
        .strip_prefix(LIST_CHANGED_MARKER)
        .map(str::trim)
}

/// The id a client sees for an event of `upstream`'s stream: `<upstream>:<its id>`, so a
/// `GET` that resumes it ([`resume_point`]) goes back to that upstream. Upstream names have
/// no `:`, and the bridge's merged-stream ids are base64url, so neither is read as the other.
pub(super) fn stream_event_id(upstream: &str, id: &str) -> String {
    if id.is_empty() {
        return String::new();
    }
    format!("{upstream}:{id}")
}

/// The upstream (index) and its own event id in a client's `Last-Event-ID`, when it is one
/// that [`stream_event_id`] made for an upstream of this configuration.
pub(super) fn resume_point<'a>(gw: &Gateway, last_event_id: &'a str) -> Option<(usize, &'a str)> {
    let (name, id) = last_event_id.trim().split_once(':')?;
    let (index, _) = gw.by_name(name)?;
    (!id.is_empty()).then_some((index, id))
}

/// A raw event of `upstream`'s stream as the client must see it: its message rewritten
/// ([`client_event`]) and its id tagged ([`stream_event_id`]).
pub(super) fn routed_event(
    raw: &[u8],
    upstream: &str,
    uri_prefix: Option<&str>,
    tag: bool,
) -> Option<Vec<u8>> {
    client_event(raw, upstream, uri_prefix, tag)
        .map(String::into_bytes)
        .or_else(|| crate::sse::map_ids(raw, |id| stream_event_id(upstream, id)))
}

/// An SSE event as the client must see it ([`server_message::for_client`]); `None` when it
/// goes out unchanged.
pub(super) fn client_event(
    raw: &[u8],
    upstream: &str,
    uri_prefix: Option<&str>,
    tag: bool,
) -> Option<String> {
    // Most events are results: skip parsing what is neither a request nor a notification.
    memchr::memmem::find(raw, b"\"method\"")?;
    let event = crate::sse::parse(raw).into_iter().next()?;
    let mut message: Value = serde_json::from_str(&event.data).ok()?;
    if !server_message::for_client(&mut message, upstream, uri_prefix, tag) {
        return None;
    }
    let id = event.id.as_deref().map(|id| stream_event_id(upstream, id));
    let mut out = crate::sse::encode(event.event.as_deref(), id.as_deref(), &message.to_string());
    if let Some(retry) = event.retry {
        out.insert_str(0, &format!("retry: {retry}\n"));
    }
    Some(out)
}

impl Exchange {
    /// The server-to-client stream of a session, opened exactly as a POST opens it: only by
    /// the client that opened the session.
    pub(super) fn get(&mut self, gw: &Gateway, head: &RequestHead) -> Step {
        let resume = head
            .last_event_id
            .as_deref()
            .and_then(|id| resume_point(gw, id));
        if self.scope == Scope::Aggregated && !gw.config.get_stream && resume.is_none() {
            // The merged stream needs the bridge; the specification allows 405 for a server
            // that offers none.
            self.state = State::Done;
            return not_allowed(
                "This gateway offers no server-to-client event stream; use POST",
                "POST, DELETE",
            );
        }
        let session = match self.open_session(gw, head.session_id.as_deref(), None) {
            Ok(s) => s,
            Err(step) => return step,
        };
        if let Some((index, upstream_id)) = resume {
            return self.resume(gw, &session, index, upstream_id);
        }
        match self.scope {
            // The bridge merges the upstreams' streams; Envoy routes the GET to it.
            Scope::Aggregated => {
                self.state = State::Stream(crate::sse::EventSplitter::new());
                Step::PassThrough
            }
            Scope::Upstream(index) => {
                let name = gw.config.upstreams[index].name.clone();
                self.route_with(gw, &session, &name, None, None, None)
            }
        }
    }

    /// A `GET` with the `Last-Event-ID` of a routed stream: the stream goes on at the upstream
    /// that sent the event (with its own id), whichever endpoint the client asks, so an answer
    /// the upstream sends after cutting a stream still reaches the client.
    pub(super) fn resume(
        &mut self,
        gw: &Gateway,
        session: &Session,
        index: usize,
        upstream_id: &str,
    ) -> Step {
        let name = gw.config.upstreams[index].name.clone();
        if matches!(self.scope, Scope::Upstream(own) if own != index) {
            self.state = State::Done;
            return error_reply(
                400,
                None,
                code::INVALID_REQUEST,
                "Last-Event-ID names a stream of another upstream",
            );
        }
        self.audit.upstream = name.clone();
        if !self.permits(gw, Kind::Upstream, &name) {
            return self.upstream_denied(gw, &name);
        }
        let mut step = self.route_with(gw, session, &name, None, None, None);
        if let Step::Route(route) = &mut step {
            route
                .headers
                .push((LAST_EVENT_ID_HEADER.into(), Some(upstream_id.to_string())));
        }
        step
    }
}
