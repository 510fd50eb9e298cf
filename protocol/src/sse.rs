//! Server-sent events as streamable HTTP uses them: a decoder that takes bytes as they come
//! (any split, `\n`, `\r\n` or `\r` line ends) and an encoder.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// `event:`; `None` means the default type, `message`.
    pub event: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: String,
    /// `id:` as last set (the spec's "last event ID" is per stream; this is per event).
    pub id: Option<String>,
    /// `retry:` in milliseconds.
    pub retry: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Decoder {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` opening the next one belongs to it.
    after_cr: bool,
    pending: Event,
    has_data: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(&mut out),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut out);
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    /// Ends the stream: an event not closed by a blank line is dropped, as the spec says.
    pub fn finish(self) {}

    fn end_line(&mut self, out: &mut Vec<Event>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            let event = std::mem::take(&mut self.pending);
            if std::mem::take(&mut self.has_data) {
                out.push(event);
            }
            return;
        }
        if line[0] == b':' {
            return; // comment (keep-alive)
        }
        let text = String::from_utf8_lossy(&line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.pending.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.pending.id = Some(value.to_string()),
            "retry" => self.pending.retry = value.parse().ok(),
            _ => {}
        }
    }
}

/// Splits a stream into whole raw events (each with its terminating blank line), byte for
/// byte, so a stream can be edited event by event without touching what is not edited
/// (comments, `retry:`, line endings).
#[derive(Debug, Default)]
pub struct EventSplitter {
    pending: Vec<u8>,
    /// Where the line being read started, in `pending`.
    line_start: usize,
    /// Bytes of `pending` already scanned.
    scanned: usize,
    /// The last byte scanned was `\r`: a following `\n` belongs to the same line end.
    after_cr: bool,
}

impl EventSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the raw events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut i = self.scanned;
        while i < self.pending.len() {
            if !self.after_cr {
                // Up to the next line end nothing changes: skip it in one search (an event
                // can be a 100 KB line).
                match memchr::memchr2(b'\n', b'\r', &self.pending[i..]) {
                    Some(p) => i += p,
                    None => {
                        i = self.pending.len();
                        break;
                    }
                }
            }
            let b = self.pending[i];
            if b == b'\r' && i == self.line_start && !self.after_cr && i + 1 == self.pending.len() {
                // A blank line ending in `\r`: wait for the next byte, which may be its `\n`.
                break;
            }
            if self.after_cr && b == b'\n' {
                self.after_cr = false;
                self.line_start = i + 1;
                i += 1;
                continue;
            }
            self.after_cr = b == b'\r';
            if b == b'\n' || b == b'\r' {
                let empty = i == self.line_start;
                self.line_start = i + 1;
                if empty {
                    // A blank line ends the event; a `\r\n` ending is completed by the
                    // next chunk's first byte, which then starts the next raw event.
                    let mut end = i + 1;
                    if b == b'\r' && self.pending.get(end) == Some(&b'\n') {
                        end += 1;
                        self.after_cr = false;
                    }
                    out.push(self.pending.drain(..end).collect());
                    self.line_start = 0;
                    i = 0;
                    continue;
                }
            }
            i += 1;
        }
        self.scanned = i;
        out
    }

    /// What is left when the stream ends (an event without its blank line).
    pub fn finish(self) -> Vec<u8> {
        self.pending
    }
}

/// A raw event (as [`EventSplitter`] gives it) with every non-empty `id:` value replaced by
/// `f(value)`, everything else byte for byte; `None` when it has no such id. An empty id
/// (which resets the client's last event id) and one with NUL (which clients ignore) stay.
pub fn map_ids(raw: &[u8], f: impl Fn(&str) -> String) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut start = 0;
    while start < raw.len() {
        // A line and its ending (`\n`, `\r\n` or `\r`).
        let end_of_text =
            memchr::memchr2(b'\n', b'\r', &raw[start..]).map_or(raw.len(), |p| start + p);
        let next = match raw.get(end_of_text) {
            None => end_of_text,
            Some(b'\r') if raw.get(end_of_text + 1) == Some(&b'\n') => end_of_text + 2,
            Some(_) => end_of_text + 1,
        };
        let line = &raw[start..end_of_text];
        let value = match line.iter().position(|&b| b == b':') {
            Some(colon) if &line[..colon] == b"id" => {
                let v = &line[colon + 1..];
                Some(v.strip_prefix(b" ").unwrap_or(v))
            }
            _ => None,
        };
        let replaced = value
            .filter(|v| !v.is_empty() && !v.contains(&0))
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(|v| format!("id: {}", f(v)));
        match (replaced, &mut out) {
            (Some(line), out) => {
                let buf = out.get_or_insert_with(|| raw[..start].to_vec());
                buf.extend_from_slice(line.as_bytes());
                buf.extend_from_slice(&raw[end_of_text..next]);
            }
            (None, Some(buf)) => buf.extend_from_slice(&raw[start..next]),
            (None, None) => {}
        }
        start = next;
    }
    out
}

/// Every complete event in a whole body.
pub fn parse(body: &[u8]) -> Vec<Event> {
    let mut d = Decoder::new();
    let mut events = d.push(body);
    // A body that ends without the final blank line still carries its last event.
    events.extend(d.push(b"\n\n"));
    events
}

/// Encodes one event; multi-line data becomes several `data:` lines.
pub fn encode(event: Option<&str>, id: Option<&str>, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 32);
    if let Some(e) = event {
        out.push_str("event: ");
        out.push_str(e);
        out.push('\n');
    }
    if let Some(i) = id {
        out.push_str("id: ");
        out.push_str(i);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_are_mapped_and_nothing_else_changes() {
        let tag = |id: &str| format!("up:{id}");
        let raw = b"retry: 1000\r\nid: 7\r\ndata: {}\r\n\r\n";
        assert_eq!(
            map_ids(raw, tag).as_deref(),
            Some(&b"retry: 1000\r\nid: up:7\r\ndata: {}\r\n\r\n"[..])
        );
        assert_eq!(
            map_ids(b"id:a b\rdata: x\r\r", tag).as_deref(),
            Some(&b"id: up:a b\rdata: x\r\r"[..])
        );
        // No id, an empty one (a reset), `idx:` and an id in the data stay as they are.
        for raw in [
            &b"data: x\n\n"[..],
            b"id\ndata: x\n\n",
            b"id:\n\n",
            b"idx: 1\n\n",
            b"data: id: 1\n\n",
        ] {
            assert_eq!(
                map_ids(raw, tag),
                None,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    proptest! {
        /// Whatever the events, mapping ids changes the ids the decoder reads and nothing else.
        #[test]
        fn mapping_ids_changes_only_ids(body in "((id|data|event|retry|:)(: ?[a-z0-9 ]{0,6})?(\n|\r\n|\r)){0,12}(\n|\r\n)") {
            let raw = body.as_bytes();
            let mapped = map_ids(raw, |id| format!("t:{id}")).unwrap_or_else(|| raw.to_vec());
            let (before, after) = (parse(raw), parse(&mapped));
            prop_assert_eq!(before.len(), after.len());
            for (b, a) in before.iter().zip(&after) {
                prop_assert_eq!(&b.data, &a.data);
                prop_assert_eq!(&b.event, &a.event);
                prop_assert_eq!(&b.retry, &a.retry);
                let want = b.id.as_ref().map(|i| if i.is_empty() { i.clone() } else { format!("t:{i}") });
                prop_assert_eq!(&want, &a.id);
            }
        }
    }

    #[test]
    fn parses_events_with_every_line_ending() {
        let body = b"event: message\r\nid: 1\r\ndata: {\"a\":1}\r\n\r\n: keep-alive\n\ndata: x\rdata: y\r\r";
        let events = parse(body);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event.as_deref(), Some("message"));
        assert_eq!(events[0].id.as_deref(), Some("1"));
        assert_eq!(events[0].data, "{\"a\":1}");
        assert_eq!(events[1].data, "x\ny");
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        assert!(parse(b"event: ping\n\nid: 3\n\n").is_empty());
        assert_eq!(parse(b"data\n\n")[0].data, "");
    }

    #[test]
    fn unterminated_last_event_in_a_whole_body_counts() {
        assert_eq!(parse(b"data: tail")[0].data, "tail");
    }

    #[test]
    fn splitter_keeps_bytes_and_cuts_at_blank_lines() {
        let body = b": keep-alive\r\n\r\nevent: message\ndata: {}\nretry: 3\n\ndata: tail";
        let mut s = EventSplitter::new();
        let mut events = Vec::new();
        for chunk in body.chunks(3) {
            events.extend(s.push(chunk));
        }
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], b": keep-alive\r\n\r\n");
        assert_eq!(events[1], b"event: message\ndata: {}\nretry: 3\n\n");
        assert_eq!(s.finish(), b"data: tail");
    }

    proptest! {
        #[test]
        fn splitting_in_any_chunks_loses_no_byte(
            body in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'a'), Just(b':')], 0..120),
            split in 1usize..9,
        ) {
            let mut s = EventSplitter::new();
            let mut out = Vec::new();
            for chunk in body.chunks(split) {
                for e in s.push(chunk) {
                    out.extend(e);
                }
            }
            out.extend(s.finish());
            prop_assert_eq!(out, body);
        }

        #[test]
        fn encode_then_decode_in_any_chunks(
            datas in proptest::collection::vec("[^\r\n]{0,20}(\n[^\r\n]{0,20}){0,3}", 1..5),
            split in 1usize..17,
        ) {
            let body: String = datas.iter().map(|d| encode(Some("message"), Some("7"), d)).collect();
            let mut dec = Decoder::new();
            let mut got = Vec::new();
            for chunk in body.as_bytes().chunks(split) {
                got.extend(dec.push(chunk));
            }
            let want: Vec<&str> = datas.iter().map(String::as_str).collect();
            let got_data: Vec<&str> = got.iter().map(|e| e.data.as_str()).collect();
            prop_assert_eq!(got_data, want);
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }
    }
}
