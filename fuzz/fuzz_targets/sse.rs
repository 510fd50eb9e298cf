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
    let mut split = Vec::new();
    for chunk in stream.chunks(size) {
        let _ = decoder.push(chunk);
        for event in splitter.push(chunk) {
            split.extend_from_slice(&event);
        }
    }
    split.extend(splitter.finish());
    assert_eq!(split, stream, "the splitter passes every byte through, in order");
    let _ = sse::parse(stream);
});
