//! Prefixed names and URIs: how one upstream's tools, prompts and resources are told apart in
//! the merged lists, and how a call finds its way back.
//!
//! - Tool and prompt names: `<prefix><separator><name>`, separator `__` by default. A prefix
//!   never contains the separator and never starts or ends with `_` (checked at load), so the
//!   *first* separator always ends the prefix, whatever the upstream's own name contains.
//! - Resource URIs and URI templates: `<prefix>+<original>`, which keeps a valid URI (the
//!   prefix becomes part of the scheme: `files+file:///etc/hosts`). A prefix never contains
//!   `+`, so the first `+` ends it. Schemes are case-insensitive, so is the lookup.

pub const DEFAULT_SEPARATOR: &str = "__";
/// Many clients refuse tool and prompt names longer than this.
pub const MAX_NAME_LEN: usize = 64;
const HASH_LEN: usize = 8;
const URI_SEPARATOR: char = '+';

/// `github` + `create_issue` → `github__create_issue`.
pub fn prefix_name(prefix: &str, separator: &str, name: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + separator.len() + name.len());
    out.push_str(prefix);
    out.push_str(separator);
    out.push_str(name);
    out
}

/// A name within [`MAX_NAME_LEN`]: longer ones become `<head>~<8 hex of SHA-256 of the whole
/// name>`, deterministic, and resolved back by listing the upstream's names again.
pub fn shorten(name: &str) -> std::borrow::Cow<'_, str> {
    use sha2::{Digest, Sha256};
    if name.len() <= MAX_NAME_LEN {
        return name.into();
    }
    let mut head = MAX_NAME_LEN - HASH_LEN - 1;
    while !name.is_char_boundary(head) {
        head -= 1;
    }
    let digest = Sha256::digest(name.as_bytes());
    let mut out = String::with_capacity(MAX_NAME_LEN);
    out.push_str(&name[..head]);
    out.push('~');
    for b in &digest[..HASH_LEN / 2] {
        out.push_str(&format!("{b:02x}"));
    }
    out.into()
}

/// Whether `name` has the form [`shorten`] gives long names.
pub fn looks_shortened(name: &str) -> bool {
    let Some((head, hash)) = name.rsplit_once('~') else {
        return false;
    };
    hash.len() == HASH_LEN
        && hash
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && head.len() + 1 + HASH_LEN <= MAX_NAME_LEN
        && head.len() + 1 + HASH_LEN > MAX_NAME_LEN - 4
}

/// `github__create_issue` → (`github`, `create_issue`).
pub fn split_name<'a>(prefixed: &'a str, separator: &str) -> Option<(&'a str, &'a str)> {
    if separator.is_empty() {
        return None;
    }
    prefixed
        .split_once(separator)
        .filter(|(prefix, _)| !prefix.is_empty())
}

/// `files` + `file:///etc/hosts` → `files+file:///etc/hosts`.
pub fn prefix_uri(prefix: &str, uri: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1 + uri.len());
    out.push_str(prefix);
    out.push(URI_SEPARATOR);
    out.push_str(uri);
    out
}

/// `files+file:///etc/hosts` → (`files`, `file:///etc/hosts`).
pub fn split_uri(prefixed: &str) -> Option<(&str, &str)> {
    prefixed
        .split_once(URI_SEPARATOR)
        .filter(|(prefix, _)| !prefix.is_empty())
}

/// The URI form of a prefix: letters, digits and `-` (a URI scheme cannot hold `_`).
pub fn uri_prefix(prefix: &str) -> String {
    prefix
        .chars()
        .map(|c| {
            if c == '_' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Why a prefix cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("a prefix cannot be empty")]
    Empty,
    #[error("prefix {0:?} may hold only letters, digits, '-' and '_'")]
    Characters(String),
    #[error("prefix {prefix:?} contains the separator {separator:?}")]
    Separator { prefix: String, separator: String },
    #[error("prefix {0:?} may not start or end with '_' (it would blur into the separator)")]
    Underscore(String),
}

/// Whether `prefix` can be used with `separator`.
pub fn check_prefix(prefix: &str, separator: &str) -> Result<(), PrefixError> {
    if prefix.is_empty() {
        return Err(PrefixError::Empty);
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(PrefixError::Characters(prefix.into()));
    }
    if prefix.contains(separator) {
        return Err(PrefixError::Separator {
            prefix: prefix.into(),
            separator: separator.into(),
        });
    }
    if prefix.starts_with('_') || prefix.ends_with('_') {
        return Err(PrefixError::Underscore(prefix.into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip() {
        let p = prefix_name("github", "__", "create_issue");
        assert_eq!(p, "github__create_issue");
        assert_eq!(split_name(&p, "__"), Some(("github", "create_issue")));
        assert_eq!(
            split_name("my_srv____x__y", "__"),
            Some(("my_srv", "__x__y"))
        );
        assert_eq!(split_name("noprefix", "__"), None);
        assert_eq!(split_name("__x", "__"), None);
    }

    #[test]
    fn uris_round_trip_and_stay_uris() {
        let p = prefix_uri("files", "git+https://example.com/x?y=1#z");
        assert_eq!(p, "files+git+https://example.com/x?y=1#z");
        assert_eq!(
            split_uri(&p),
            Some(("files", "git+https://example.com/x?y=1#z"))
        );
        assert_eq!(uri_prefix("My_Server"), "my-server");
        assert_eq!(split_uri("nouri"), None);
    }

    #[test]
    fn long_names_are_shortened_deterministically() {
        let long = prefix_name("github", "__", &"x".repeat(80));
        let short = shorten(&long);
        assert_eq!(short.len(), MAX_NAME_LEN);
        assert!(short.starts_with("github__xxx"));
        assert!(looks_shortened(&short));
        assert_eq!(shorten(&long), short, "deterministic");
        assert_ne!(
            shorten(&format!("{long}y")),
            short,
            "another name, another hash"
        );
        assert_eq!(shorten("github__short"), "github__short");
        assert!(!looks_shortened("github__short"));
        assert!(!looks_shortened("a~deadbeef"));
        let wide = "é".repeat(40);
        assert!(shorten(&wide).len() <= MAX_NAME_LEN);
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("gh", "__").is_ok());
        assert!(check_prefix("my_srv", "__").is_ok());
        assert!(check_prefix("a__b", "__").is_err());
        assert!(check_prefix("a_", "__").is_err());
        assert!(check_prefix("_a", "__").is_err());
        assert!(check_prefix("a.b", "__").is_err());
        assert!(check_prefix("", "__").is_err());
    }

    fn prefix_strategy() -> impl Strategy<Value = String> {
        "[A-Za-z0-9]([A-Za-z0-9-]|_[A-Za-z0-9-]){0,20}"
    }

    proptest! {
        #[test]
        fn prefix_then_split_returns_the_original(prefix in prefix_strategy(), name in ".{0,40}") {
            prop_assume!(check_prefix(&prefix, "__").is_ok());
            let joined = prefix_name(&prefix, "__", &name);
            prop_assert_eq!(split_name(&joined, "__"), Some((prefix.as_str(), name.as_str())));
        }

        #[test]
        fn other_separators_round_trip(prefix in "[a-z0-9]{1,10}", name in ".{0,40}", sep in "[.:~/]{1,3}") {
            prop_assume!(check_prefix(&prefix, &sep).is_ok());
            let joined = prefix_name(&prefix, &sep, &name);
            prop_assert_eq!(split_name(&joined, &sep), Some((prefix.as_str(), name.as_str())));
        }

        #[test]
        fn shortened_names_fit_and_are_recognized(name in ".{65,200}") {
            let s = shorten(&name);
            prop_assert!(s.len() <= MAX_NAME_LEN);
            prop_assert!(looks_shortened(&s));
        }

        #[test]
        fn uri_prefix_then_split_returns_the_original(prefix in prefix_strategy(), uri in ".{0,60}") {
            let scheme = uri_prefix(&prefix);
            let joined = prefix_uri(&scheme, &uri);
            prop_assert_eq!(split_uri(&joined), Some((scheme.as_str(), uri.as_str())));
        }
    }
}
