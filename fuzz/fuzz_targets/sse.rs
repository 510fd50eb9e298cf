//! The SSE decoder and event splitter, on any byte stream an upstream can send, cut into
//! chunks anywhere: both must see the same events, and nothing may be lost or invented by
//! the splitter (it passes events through byte for byte).
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard_protocol::sse;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let size = usize::from(cut).max(1);
    let mut decoder = sse::Decoder::new();
    let mut splitter = sse::EventSplitter::new();
    let mut decoded = Vec::new();
    let mut split = Vec::new();
    let mut split_events = Vec::new();
    for chunk in stream.chunks(size) {
        decoded.extend(decoder.push(chunk));
        for event in splitter.push(chunk) {
            split.extend_from_slice(&event);
            split_events.extend(sse::Decoder::new().push(&event));
        }
    }
    // The tail it still holds may be a whole event (ended by a lone `\r` at the very end).
    let tail = splitter.finish();
    split_events.extend(sse::Decoder::new().push(&tail));
    split.extend(tail);
    assert_eq!(split, stream, "the splitter passes every byte through, in order");
    // However the bytes are cut, the decoder sees the events it sees in one piece, and each
    // event the splitter hands on decodes to the same event.
    let whole = sse::Decoder::new().push(stream);
    assert_eq!(decoded, whole, "chunking changed the decoded events");
    assert_eq!(split_events, whole, "the splitter's events decode differently");
    // `parse` reads a whole body the same way, plus a last event left unterminated.
    let parsed = sse::parse(stream);
    assert!(
        parsed.len() <= whole.len() + 1 && parsed[..whole.len().min(parsed.len())] == whole[..],
        "parse disagrees with the decoder"
    );
});
