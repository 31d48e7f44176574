//! `${NAME}` and `${file:path}` references in spec values.
//!
//! Expansion runs on the parsed tree, not on the file text, so a value containing quotes, colons
//! or newlines can never change the YAML structure around it. Only values are expanded (keys are
//! our field names or the plugin's). Expanded text is not expanded again: a secret that happens
//! to contain `${` stays as it is. `$${` is a literal `${`; `@@plugins.NAME.connection` is left
//! for the sync planner.

use std::env::VarError;

use super::error::NodeError;
use super::yaml::{Node, NodeKind, Pos};

/// Looks up an environment variable; `std::env::var` in production, a fixed table in tests.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Result<String, VarError>;

/// Expands every string value in `node` in place. Plain scalars keep their plain style, so that
/// `num_rows: ${ROWS}` is later typed as the number it expands to; quoted ones stay strings.
pub(crate) fn expand(node: &mut Node, env: Env<'_>) -> Result<(), NodeError> {
    match &mut node.kind {
        NodeKind::Scalar(scalar) => {
            if scalar.text.contains('$') {
                scalar.text = expand_text(&scalar.text, node.at, env)?;
            }
        }
        NodeKind::Seq(items) => {
            for item in items {
                expand(item, env)?;
            }
        }
        NodeKind::Map(entries) => {
            for (_, value) in entries {
                expand(value, env)?;
            }
        }
    }
    Ok(())
}

fn expand_text(text: &str, at: Pos, env: Env<'_>) -> Result<String, NodeError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let tail = &rest[dollar..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(close) = after.find('}') else {
                return Err(NodeError::at(at, "`${` is not closed with `}`")
                    .with_help("write `$${` for a literal `${`"));
            };
            out.push_str(&resolve(&after[..close], at, env)?);
            rest = &after[close + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve(reference: &str, at: Pos, env: Env<'_>) -> Result<String, NodeError> {
    if let Some(path) = reference.strip_prefix("file:") {
        return match std::fs::read_to_string(path) {
            // Files written by editors and `echo` end in a newline that is never part of a secret.
            Ok(text) => {
                let text = text.strip_suffix('\n').unwrap_or(&text);
                Ok(text.strip_suffix('\r').unwrap_or(text).to_owned())
            }
            Err(error) => Err(NodeError::at(at, format!("cannot read `{path}`: {error}"))
                .with_help("`${file:PATH}` reads PATH relative to the directory quarry runs in")),
        };
    }
    let valid_name = reference
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && reference
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(NodeError::at(
            at,
            format!("`${{{reference}}}` does not name an environment variable"),
        )
        .with_help("write `${NAME}` with letters, digits and `_`, or `$${` for a literal `${`"));
    }
    match env(reference) {
        Ok(value) => Ok(value),
        Err(VarError::NotPresent) => Err(NodeError::at(
            at,
            format!("environment variable `{reference}` is not set"),
        )
        .with_help(format!(
            "set it before running quarry, e.g. `export {reference}=...`; write `$${{` for a \
             literal `${{`"
        ))),
        Err(VarError::NotUnicode(_)) => Err(NodeError::at(
            at,
            format!("environment variable `{reference}` is not valid UTF-8"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::yaml::parse_documents;

    fn env(name: &str) -> Result<String, VarError> {
        match name {
            "ROWS" => Ok("42".into()),
            "TOKEN" => Ok("a: b ${NOT_AGAIN}".into()),
            _ => Err(VarError::NotPresent),
        }
    }

    fn expanded(text: &str) -> Result<Node, NodeError> {
        let mut node = parse_documents(text).unwrap().remove(0);
        expand(&mut node, &env)?;
        Ok(node)
    }

    /// The value under `key` as YAML would type it, in `Debug` form.
    fn typed(node: &Node, key: &str) -> String {
        match &node.get(key).map(|n| &n.kind) {
            Some(NodeKind::Scalar(s)) => format!("{:?}", s.resolve()),
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn plain_values_are_typed_after_expansion() {
        let node = expanded("a: ${ROWS}\nb: \"${ROWS}\"\nc: x${ROWS}\n").unwrap();
        assert_eq!(typed(&node, "a"), "Int(42)");
        assert_eq!(typed(&node, "b"), r#"Str("42")"#);
        assert_eq!(typed(&node, "c"), r#"Str("x42")"#);
    }

    #[test]
    fn expanded_text_is_not_expanded_again_and_escapes_work() {
        let node =
            expanded("a: ${TOKEN}\nb: $${ROWS} costs $5\nc: '@@plugins.pg.connection'\n").unwrap();
        assert_eq!(typed(&node, "a"), r#"Str("a: b ${NOT_AGAIN}")"#);
        assert_eq!(typed(&node, "b"), r#"Str("${ROWS} costs $5")"#);
        assert_eq!(typed(&node, "c"), r#"Str("@@plugins.pg.connection")"#);
    }

    #[test]
    fn reads_files_without_the_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "hunter2\r\n").unwrap();
        let node = expanded(&format!("a: ${{file:{}}}\n", path.display())).unwrap();
        assert_eq!(typed(&node, "a"), r#"Str("hunter2")"#);
    }

    #[test]
    fn errors_point_at_the_value() {
        let err = expanded("a: 1\nb: [x, \"${MISSING}\"]\n").unwrap_err();
        assert_eq!(err.at, Some(Pos { line: 2, column: 8 }));
        assert_eq!(err.message, "environment variable `MISSING` is not set");
        let err = expanded("a: ${ROWS\n").unwrap_err();
        assert_eq!(err.message, "`${` is not closed with `}`");
        let err = expanded("a: ${}\n").unwrap_err();
        assert_eq!(err.message, "`${}` does not name an environment variable");
        let err = expanded("a: ${file:/nonexistent/quarry-secret}\n").unwrap_err();
        assert_eq!(
            err.message,
            "cannot read `/nonexistent/quarry-secret`: No such file or directory (os error 2)"
        );
    }
}
