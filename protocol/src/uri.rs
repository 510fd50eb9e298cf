//! Resource URIs as rules and routing see them. One resource can be spelled many ways
//! (`EV+demo://X/a/../b`, `ev+demo://x/%62`); a rule that compared the client's spelling could
//! be walked around. So every URI a client sends is normalized once, by RFC 3986's
//! syntax-based normalization (§6.2.2: scheme and host in lower case, unreserved characters
//! unescaped, escapes in upper case, dot segments removed), before any rule or routing
//! decision, and the upstream is sent the same normalized URI: the rule sees exactly the
//! resource that is read.
//!
//! A URI that keeps a `.` or `..` step hidden behind an escaped separator (`a/..%2Fb`), which
//! a server that unescapes before resolving would walk, is refused rather than guessed at.

use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("{uri:?} is not a URI ({why})")]
    Invalid { uri: String, why: String },
    #[error("{0:?} hides a \".\" or \"..\" path step behind an escaped separator")]
    HiddenDotSegment(String),
}

/// The normalized form of `uri`.
pub fn normalize(uri: &str) -> Result<String, UriError> {
    normalize_with(uri, false)
}

/// The normalized form of a URI template (RFC 6570, as `completion/complete` references
/// carry): its `{expressions}` are kept as they are.
pub fn normalize_template(uri: &str) -> Result<String, UriError> {
    normalize_with(uri, true)
}

fn normalize_with(uri: &str, template: bool) -> Result<String, UriError> {
    let escaped = escape_outside_grammar(uri);
    let parsed = fluent_uri::Uri::parse(escaped.as_str()).map_err(|e| UriError::Invalid {
        uri: uri.to_string(),
        why: e.to_string(),
    })?;
    let normalized = parsed.normalize();
    if hides_dot_segment(normalized.path().as_str()) {
        return Err(UriError::HiddenDotSegment(uri.to_string()));
    }
    let out = normalized.as_str().to_string();
    Ok(if template {
        out.replace("%7B", "{").replace("%7D", "}")
    } else {
        out
    })
}

/// Characters a URI may hold: unreserved, reserved, and `%` before two hex digits. The rest
/// (spaces, braces, non-ASCII…) are escaped as browsers and the MCP SDKs' URL parsers do, so
/// a server's loosely written URI still names one resource.
fn escape_outside_grammar(uri: &str) -> String {
    let bytes = uri.as_bytes();
    let mut out = String::with_capacity(uri.len());
    for (i, &b) in bytes.iter().enumerate() {
        let allowed = b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b);
        let escape = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if allowed || escape {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Whether a normalized path still has a `.` or `..` step once every escape is undone and
/// `/` and `\` both count as separators.
fn hides_dot_segment(path: &str) -> bool {
    let decoded = percent_decode(path);
    decoded
        .split(['/', '\\'])
        .any(|step| step == "." || step == "..")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            // Two hex digits make a byte: h and l are below 16.
            out.push(u8::try_from(h * 16 + l).unwrap_or(0));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_spelling_of_one_resource_is_one_uri() {
        let want = "ev1+demo://resource/static/document/a.md";
        for spelled in [
            "ev1+demo://resource/static/document/a.md",
            "EV1+demo://resource/static/document/a.md",
            "ev1+DEMO://RESOURCE/static/document/a.md",
            "ev1+demo://resource/static/x/../document/a.md",
            "ev1+demo://resource/./static/./document/a.md",
            "ev1+demo://resource/dynamic/../static/document/a.md",
            "ev1+demo://resource/%73tatic/document/a.md",
            "ev1+demo://resource/dynamic/%2e%2E/static/document/a.md",
            "ev1+demo://resource/static/document/a%2Emd",
        ] {
            assert_eq!(normalize(spelled).as_deref(), Ok(want), "{spelled}");
        }
    }

    #[test]
    fn escapes_that_are_not_unreserved_stay_and_get_upper_case() {
        assert_eq!(
            normalize("file:///a%2fb%20c").as_deref(),
            Ok("file:///a%2Fb%20c")
        );
        assert_eq!(
            normalize("note://1").as_deref(),
            Ok("note://1"),
            "a canonical URI is unchanged"
        );
        assert_eq!(
            normalize("file:///My Documents/ä.txt").as_deref(),
            Ok("file:///My%20Documents/%C3%A4.txt")
        );
        assert_eq!(normalize("x:100%").as_deref(), Ok("x:100%25"));
    }

    #[test]
    fn a_dot_step_behind_an_escaped_separator_is_refused() {
        for hidden in [
            "ev+demo://r/public/..%2Fsecret",
            "ev+demo://r/public/..%2fsecret",
            "ev+demo://r/public/..%5Csecret",
            "ev+demo://r/public/..\\secret",
            "x:rootless/../secret",
        ] {
            assert!(
                matches!(normalize(hidden), Err(UriError::HiddenDotSegment(_))),
                "{hidden}: {:?}",
                normalize(hidden)
            );
        }
        assert!(matches!(
            normalize("no scheme"),
            Err(UriError::Invalid { .. })
        ));
    }

    #[test]
    fn templates_keep_their_expressions() {
        assert_eq!(
            normalize_template("EV+demo://resource/dynamic/./text/{resourceId}").as_deref(),
            Ok("ev+demo://resource/dynamic/text/{resourceId}")
        );
        assert_eq!(
            normalize_template("repo://{owner}/{repo}/contents{/path*}").as_deref(),
            Ok("repo://{owner}/{repo}/contents{/path*}")
        );
    }

    proptest! {
        #[test]
        fn normalizing_is_idempotent_and_never_panics(s in ".{0,80}") {
            if let Ok(once) = normalize(&s) {
                prop_assert_eq!(normalize(&once), Ok(once.clone()));
            }
        }
    }
}
