//! Spec diagnostics: where a problem is, and how it is shown to the user.
//!
//! `SpecError` is the one error the loader returns; its `Display` renders a rustc-style report that
//! quotes the offending line. `NodeError` is the loader's internal error while the file is not yet
//! known (YAML building, expansion, serde); it doubles as the serde error type, which is how every
//! serde complaint picks up the position of the node being deserialized.

use std::fmt::{self, Display};
use std::path::{Path, PathBuf};

use serde::de::{Expected, Unexpected};

use super::yaml::Pos;

/// A place in a spec file, as the user should look it up: `file` as given to `load`, 1-based
/// `line` and `column` (columns count characters, not bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, line: usize, column: usize) -> Self {
        Location {
            file: file.into(),
            line,
            column,
        }
    }

    /// Placeholder until the loader knows the position (serde cannot supply it).
    pub(crate) fn unset() -> Self {
        Location::new(PathBuf::new(), 0, 0)
    }

    pub(crate) fn from_pos(file: &Path, pos: Pos) -> Self {
        Location::new(file, pos.line, pos.column)
    }
}

impl Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A problem in the user's spec files.
///
/// `Display` prints the whole report, starting with `error: ` and without a trailing newline, e.g.
///
/// ```text
/// error: unknown field `nmae`, expected one of `name`, `path`, ...
///  --> spec.yml:4:3
///   |
/// 4 |   nmae: test
///   |   ^
///   |
///   = help: did you mean `name`?
/// ```
///
/// The quoted line is read from `location.file` when the error is displayed; if the file cannot be
/// read any more, the report simply leaves the quote out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub message: String,
    pub location: Option<Location>,
    pub help: Option<String>,
}

impl SpecError {
    /// An error about the spec as a whole (no single place to point at).
    pub fn new(message: impl Into<String>) -> Self {
        SpecError {
            message: message.into(),
            location: None,
            help: None,
        }
    }

    pub fn at(location: Location, message: impl Into<String>) -> Self {
        SpecError {
            message: message.into(),
            location: Some(location),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl std::error::Error for SpecError {}

impl Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        let Some(location) = &self.location else {
            if let Some(help) = &self.help {
                write!(f, "\n  = help: {help}")?;
            }
            return Ok(());
        };
        let number = location.line.to_string();
        let pad = " ".repeat(number.len());
        write!(f, "\n{pad}--> {location}")?;
        if let Some(line) = source_line(&location.file, location.line) {
            // Copy tabs from the quoted line so that the caret lines up in any terminal.
            let indent: String = line
                .chars()
                .take(location.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n{pad} |\n{number} |")?;
            if !line.is_empty() {
                write!(f, " {line}")?;
            }
            write!(f, "\n{pad} | {indent}^")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n{pad} |\n{pad} = help: {help}")?;
        }
        Ok(())
    }
}

fn source_line(file: &Path, line: usize) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().nth(line.checked_sub(1)?).map(str::to_owned)
}

/// A problem found before the file name is attached (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeError {
    pub at: Option<Pos>,
    /// The mapping key whose value was being read; shown as a `` `key`: `` prefix.
    pub field: Option<String>,
    pub message: String,
    pub help: Option<String>,
}

impl NodeError {
    pub fn new(message: impl Into<String>) -> Self {
        NodeError {
            at: None,
            field: None,
            message: message.into(),
            help: None,
        }
    }

    pub fn at(at: Pos, message: impl Into<String>) -> Self {
        NodeError {
            at: Some(at),
            ..NodeError::new(message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Errors travel outwards through the nested deserializers; the innermost position wins.
    pub fn or_at(mut self, at: Pos) -> Self {
        self.at.get_or_insert(at);
        self
    }

    /// Likewise the innermost key wins: `` `memory`: `` rather than `` `permissions`: ``.
    pub fn or_field(mut self, field: &str) -> Self {
        self.field.get_or_insert_with(|| field.to_owned());
        self
    }

    /// Attaches the file. `fallback` is used when nothing more precise is known.
    pub fn into_spec(self, file: &Path, fallback: Pos) -> SpecError {
        let message = match &self.field {
            Some(field) => format!("`{field}`: {}", self.message),
            None => self.message,
        };
        SpecError {
            message,
            location: Some(Location::from_pos(file, self.at.unwrap_or(fallback))),
            help: self.help,
        }
    }
}

impl Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NodeError {}

impl serde::de::Error for NodeError {
    fn custom<T: Display>(msg: T) -> Self {
        NodeError::new(msg.to_string())
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        let expected = expected(exp);
        let error = NodeError::new(format!("expected {expected}, found {}", unexpected(&unexp)));
        // `version: 1.10` is the classic YAML surprise: unquoted, it is the number 1.1.
        let typed_scalar = matches!(
            unexp,
            Unexpected::Bool(_)
                | Unexpected::Signed(_)
                | Unexpected::Unsigned(_)
                | Unexpected::Float(_)
        );
        if typed_scalar && expected == "a string" {
            return error.with_help("put the value in quotes to keep it as text");
        }
        error
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self::invalid_type(unexp, exp)
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        NodeError::new(format!("unknown value `{variant}`, {}", one_of(expected)))
            .with_suggestion(variant, expected)
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        NodeError::new(format!("unknown field `{field}`, {}", one_of(expected)))
            .with_suggestion(field, expected)
    }

    fn missing_field(field: &'static str) -> Self {
        NodeError::new(format!("missing field `{field}`"))
            .with_help(format!("add `{field}:` to this mapping"))
    }
}

impl NodeError {
    fn with_suggestion(self, written: &str, candidates: &[&str]) -> Self {
        let closest = candidates
            .iter()
            .map(|c| (edit_distance(written, c), *c))
            .filter(|(distance, c)| *distance <= c.len().div_ceil(3))
            .min();
        match closest {
            Some((_, c)) => self.with_help(format!("did you mean `{c}`?")),
            None => self,
        }
    }
}

/// serde's built-in expectations spelled for YAML users rather than Rust programmers.
fn expected(exp: &dyn Expected) -> String {
    let text = exp.to_string();
    match text.as_str() {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a sequence" => "a list".to_owned(),
        "a map" => "a mapping".to_owned(),
        _ => text,
    }
}

fn unexpected(unexp: &Unexpected<'_>) -> String {
    match unexp {
        Unexpected::Unit | Unexpected::Option => "null".to_owned(),
        Unexpected::Seq => "a list".to_owned(),
        Unexpected::Map => "a mapping".to_owned(),
        Unexpected::Str(s) => format!("string {s:?}"),
        other => other.to_string(),
    }
}

fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [] => "there are none".to_owned(),
        [only] => format!("expected {only}"),
        [first, second] => format!("expected {first} or {second}"),
        all => format!("expected one of {}", all.join(", ")),
    }
}

/// Levenshtein distance, for "did you mean" hints over a handful of short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_without_location() {
        let err = SpecError::new("no sources").with_help("add one");
        assert_eq!(err.to_string(), "error: no sources\n  = help: add one");
    }

    #[test]
    fn renders_location_even_when_the_file_is_gone() {
        let err = SpecError::at(Location::new("/nonexistent/quarry.yml", 12, 3), "bad");
        assert_eq!(
            err.to_string(),
            "error: bad\n  --> /nonexistent/quarry.yml:12:3"
        );
    }

    #[test]
    fn renders_the_offending_line_with_a_caret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.yml");
        std::fs::write(&file, "kind: source\nspec:\n\tname:  x\n").unwrap();
        let err = SpecError::at(Location::new(&file, 3, 8), "bad").with_help("fix it");
        let expected = format!(
            "error: bad\n --> {}:3:8\n  |\n3 | \tname:  x\n  | \t      ^\n  |\n  = help: fix it",
            file.display()
        );
        assert_eq!(err.to_string(), expected);
    }

    #[test]
    fn suggests_close_names_only() {
        let err = <NodeError as serde::de::Error>::unknown_field("nmae", &["name", "path"]);
        assert_eq!(
            err.message,
            "unknown field `nmae`, expected `name` or `path`"
        );
        assert_eq!(err.help.as_deref(), Some("did you mean `name`?"));
        let err = <NodeError as serde::de::Error>::unknown_field("zzzz", &["name", "path"]);
        assert_eq!(err.help, None);
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("nmae", "name"), 2);
        assert_eq!(edit_distance("tables", "table"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
