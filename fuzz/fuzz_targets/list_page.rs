//! An upstream's list result, as the gateway merges it: any text must give a page or an
//! error, never panic; every page survives the list cache's framing unchanged; any cache
//! entry decodes or is refused.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard_protocol::aggregate::{ListKind, Page, Prefixes, list_result, prefixed_page};

fuzz_target!(|text: &str| {
    let _ = Page::decode(text);
    let Ok(result) = serde_json::value::RawValue::from_string(text.to_string()) else {
        return;
    };
    let prefixes = Some(Prefixes {
        name: "gh",
        uri: "gh",
    });
    for kind in [
        ListKind::Tools,
        ListKind::Prompts,
        ListKind::Resources,
        ListKind::ResourceTemplates,
    ] {
        if let Ok(page) = prefixed_page(kind, &result, prefixes, prefixes, "__", |n| !n.is_empty()) {
            assert_eq!(Page::decode(&page.encode()).as_ref(), Some(&page));
            let merged = list_result(
                kind,
                page.items.iter().map(|i| i.text.as_str()),
                page.next_cursor.as_deref(),
            );
            // Valid JSON text (numbers beyond f64 pass through as the upstream wrote them).
            assert!(
                serde_json::from_str::<&serde_json::value::RawValue>(&merged).is_ok(),
                "{merged}"
            );
        }
    }
});
