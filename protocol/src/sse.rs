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

    proptest! {
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
