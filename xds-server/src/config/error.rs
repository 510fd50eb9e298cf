//! The configuration's errors, from the leaf to the operator: a value that does not parse
//! ([`ValueError`]), a field a check refuses ([`FieldError`]), and either placed in its file
//! ([`ConfigError`]: file, line, column, field, message).

/// A configuration refused, as the operator reads it:
/// `gateway.yaml:4:5: upstreams[0].timout: unknown field ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}{}: {message}", position(.line, .column), field(.path))]
pub struct ConfigError {
    pub file: String,
    /// 1-based.
    pub line: Option<usize>,
    /// 1-based.
    pub column: Option<usize>,
    /// `upstreams[0].url`; empty for the document itself.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    /// An error of the whole file (it cannot be read, a setting that is nowhere in it).
    pub fn file(file: &str, path: &str, message: String) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            line: None,
            column: None,
            path: path.to_string(),
            message,
        }
    }
}

fn position(line: &Option<usize>, column: &Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

fn field(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(": {path}")
    }
}

/// A field a check refused, before it is placed in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field's path (`server.listen`, `upstreams[2].tls.client_key`).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error of a field inside `parent` (`auth` + `clients[0].jwt`).
    pub fn within(self, parent: &str) -> FieldError {
        let field = if self.field.is_empty() {
            parent.to_string()
        } else {
            format!("{parent}.{}", self.field)
        };
        FieldError { field, ..self }
    }
}

/// A value that does not parse (a URL, a duration, a name, a `${VAR}`): serde places it at
/// the field it was read for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);
