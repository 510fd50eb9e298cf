//! Resource URI normalization, which every access rule on resources relies on: any input is
//! normalized or refused, never a panic; a normalized URI normalizes to itself; and what is
//! accepted never keeps a `.` or `..` step, spelled or escaped.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard_protocol::uri::normalize;

fuzz_target!(|uri: &str| {
    if let Ok(once) = normalize(uri) {
        assert_eq!(normalize(&once).as_deref(), Ok(once.as_str()), "{uri:?}");
        let path = once
            .split_once("://")
            .map_or(once.as_str(), |(_, rest)| rest)
            .split(['?', '#'])
            .next()
            .unwrap_or_default();
        assert!(
            !path.split('/').any(|s| s == ".." || s == "."),
            "{uri:?} -> {once:?}"
        );
    }
});
