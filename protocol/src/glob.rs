//! Shell-style globs for tool filters: `*` matches any run of characters, `?` one character;
//! everything else matches itself. Small on purpose: the filter is loaded by every Envoy worker.

pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and the name position it is trying to cover up to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Include/exclude lists: an empty include list lets everything in; exclude wins.
pub fn allowed(include: &[String], exclude: &[String], name: &str) -> bool {
    (include.is_empty() || include.iter().any(|p| matches(p, name)))
        && !exclude.iter().any(|p| matches(p, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wildcards() {
        assert!(matches("*", ""));
        assert!(matches("create_*", "create_issue"));
        assert!(!matches("create_*", "delete_issue"));
        assert!(matches("*_issue", "create_issue"));
        assert!(matches("c?eate*", "create"));
        assert!(matches("*a*b*c", "xxaxxbxxc"));
        assert!(!matches("*a*b*c", "xxaxxbxx"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
        assert!(matches("ü*", "über"));
    }

    #[test]
    fn include_and_exclude() {
        let inc = vec!["get_*".to_string(), "list_*".to_string()];
        let exc = vec!["get_secret*".to_string()];
        assert!(allowed(&inc, &exc, "get_issue"));
        assert!(!allowed(&inc, &exc, "get_secret_key"));
        assert!(!allowed(&inc, &exc, "delete_repo"));
        assert!(allowed(&[], &exc, "delete_repo"));
    }

    proptest! {
        #[test]
        fn a_name_matches_itself_and_star(name in "[a-z_]{0,20}") {
            prop_assert!(matches(&name, &name));
            prop_assert!(matches("*", &name));
            let star_suffix = format!("{}*", name.get(..name.len() / 2).unwrap_or_default());
            prop_assert!(matches(&star_suffix, &name));
        }
    }
}
