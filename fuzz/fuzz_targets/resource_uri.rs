//! Resource URI normalization, which every access rule on resources relies on: any input is
//! normalized or refused, never a panic; a normalized URI normalizes to itself; and what is
//! accepted never keeps a `.` or `..` step, spelled or escaped.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard_protocol::uri::normalize;

fuzz_target!(|uri: &str| {
    if let Ok(once) = normalize(uri) {
        assert_eq!(normalize(&once).as_deref(), Ok(once.as_str()), "{uri:?}");
        // The path: after the scheme and any authority, before a query or fragment.
        let no_query = once.split(['?', '#']).next().unwrap_or_default();
        let hier = no_query.split_once(':').map_or(no_query, |(_, rest)| rest);
        let path = match hier.strip_prefix("//") {
            Some(rest) => rest.find('/').map_or("", |i| &rest[i..]),
            None => hier,
        };
        assert!(
            !path.split('/').any(|s| s == ".." || s == "."),
            "{uri:?} -> {once:?}"
        );
    }
});
