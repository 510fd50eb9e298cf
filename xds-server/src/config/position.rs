//! Where a field path (`upstreams[0].url`) stands in the YAML text.
//!
//! serde reports errors raised inside a value's own `Deserialize` at the enclosing mapping,
//! so the loader looks the exact node up here, in a marked event stream of the same text.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// What of a mapping entry to point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The key: right for an unknown field.
    Key,
    /// The value: right for a value of the wrong form.
    Value,
}

/// 1-based line and column of the node at `path`, or `None` when the text does not hold it.
pub fn locate(text: &str, path: &[Step], target: Target) -> Option<(usize, usize)> {
    struct Collect(Vec<(Event, Marker)>);
    impl MarkedEventReceiver for Collect {
        fn on_event(&mut self, ev: Event, mark: Marker) {
            self.0.push((ev, mark));
        }
    }
    let mut events = Collect(Vec::new());
    Parser::new_from_str(text).load(&mut events, false).ok()?;
    let events = events.0;
    // Skip StreamStart and DocumentStart.
    let mut i = events
        .iter()
        .position(|(e, _)| !matches!(e, Event::StreamStart | Event::DocumentStart))?;
    let mut at = events.get(i)?.1;
    for step in path {
        match (&events.get(i)?.0, step) {
            (Event::MappingStart(..), Step::Key(key)) => {
                i += 1;
                loop {
                    match &events.get(i)?.0 {
                        Event::MappingEnd => return None,
                        Event::Scalar(k, ..) if k == key => {
                            at = events[i].1;
                            i += 1;
                            break;
                        }
                        _ => {
                            i = skip(&events, i)?; // the key
                            i = skip(&events, i)?; // its value
                        }
                    }
                }
            }
            (Event::SequenceStart(..), Step::Index(n)) => {
                i += 1;
                for _ in 0..*n {
                    if matches!(events.get(i)?.0, Event::SequenceEnd) {
                        return None;
                    }
                    i = skip(&events, i)?;
                }
                if matches!(events.get(i)?.0, Event::SequenceEnd) {
                    return None;
                }
                at = events[i].1;
            }
            _ => return None,
        }
    }
    if let (Target::Value, Some((Event::Scalar(..), m)), Some(Step::Key(_))) =
        (target, events.get(i), path.last())
    {
        at = *m;
    }
    Some((at.line(), at.col() + 1))
}

/// Index just past the node that starts at `i`.
fn skip(events: &[(Event, Marker)], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match events.get(i)?.0 {
            Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
            Event::MappingEnd | Event::SequenceEnd => depth = depth.checked_sub(1)?,
            _ => {}
        }
        i += 1;
        if depth == 0 {
            return Some(i);
        }
    }
}

/// Converts serde_path_to_error's path.
pub fn steps(path: &serde_path_to_error::Path) -> Vec<Step> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(Step::Index(*index)),
            Segment::Map { key } => Some(Step::Key(key.clone())),
            Segment::Enum { variant } => Some(Step::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Target::Value;

    fn key(k: &str) -> Step {
        Step::Key(k.into())
    }

    #[test]
    fn finds_nested_values() {
        let text = "server:\n  listen: x\nupstreams:\n  - name: a\n    url: u\n  - name: b\n    headers: {A: \"1\"}\n";
        assert_eq!(
            locate(text, &[key("server"), key("listen")], Value),
            Some((2, 11))
        );
        assert_eq!(
            locate(
                text,
                &[key("upstreams"), Step::Index(1), key("name")],
                Value
            ),
            Some((6, 11))
        );
        assert_eq!(
            locate(
                text,
                &[key("upstreams"), Step::Index(1), key("headers"), key("A")],
                Value
            ),
            Some((7, 18))
        );
        assert_eq!(
            locate(text, &[key("upstreams"), Step::Index(2)], Value),
            None
        );
        assert_eq!(locate(text, &[key("nope")], Value), None);
        assert_eq!(
            locate(
                text,
                &[key("upstreams"), Step::Index(0), key("url")],
                Target::Key
            ),
            Some((5, 5))
        );
    }

    #[test]
    fn json_is_yaml() {
        let text = "{\"mcpServers\": {\n  \"x\": {\"url\": 1}\n}}";
        assert_eq!(
            locate(text, &[key("mcpServers"), key("x"), key("url")], Value),
            Some((2, 16))
        );
    }
}
