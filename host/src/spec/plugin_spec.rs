//! A plugin's own `spec:` block: opaque JSON to the host, checked against the JSON Schema that the
//! plugin publishes, with violations reported at the YAML line that caused them.

use std::path::{Path, PathBuf};

use jsonschema::paths::LocationSegment;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::error::{Location, SpecError};
use super::yaml::{Node, NodeKind, Pos};

/// The plugin's `spec:` as JSON (`{}` when absent or empty), plus the YAML it came from so that
/// schema violations can name a line.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    pub value: Value,
    origin: Option<Origin>,
}

#[derive(Debug, Clone, PartialEq)]
struct Origin {
    file: PathBuf,
    /// `None` when the spec was absent; errors then point at `fallback`.
    node: Option<Node>,
    fallback: Pos,
}

impl Default for PluginSpec {
    fn default() -> Self {
        PluginSpec::new(Value::Object(serde_json::Map::new()))
    }
}

/// Reads the value only; the loader attaches the YAML origin afterwards (`locate`).
impl<'de> Deserialize<'de> for PluginSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(PluginSpec::new(Value::deserialize(d)?))
    }
}

impl PluginSpec {
    /// A spec built in code; validation errors will carry no position. `null` means `{}`.
    pub fn new(value: Value) -> Self {
        let value = if value.is_null() {
            Value::Object(serde_json::Map::new())
        } else {
            value
        };
        PluginSpec {
            value,
            origin: None,
        }
    }

    pub(crate) fn locate(&mut self, file: &Path, node: Option<&Node>, fallback: Pos) {
        let node = node.filter(|n| !n.is_null()).cloned();
        self.origin = Some(Origin {
            file: file.to_owned(),
            node,
            fallback,
        });
    }

    /// Validates the spec against `schema_json`, the JSON Schema text returned by plugin `plugin`.
    ///
    /// Returns the violation that comes first in the file (a missing property counts at the
    /// mapping that lacks it); its `help` says how many more there are, so that a user fixing one
    /// problem at a time knows what to expect. Remote `$ref`s are not fetched: the schema must be
    /// self-contained. A schema that is not valid JSON or not a valid schema is reported as the
    /// plugin's fault, without a position.
    pub fn validate(&self, plugin: &str, schema_json: &str) -> Result<(), SpecError> {
        let schema: Value = serde_json::from_str(schema_json).map_err(|e| {
            SpecError::new(format!(
                "plugin `{plugin}` returned a spec schema that is not JSON: {e}"
            ))
        })?;
        let validator = jsonschema::options().build(&schema).map_err(|e| {
            SpecError::new(format!(
                "plugin `{plugin}` returned an invalid spec schema: {e}"
            ))
        })?;
        let mut violations: Vec<(Option<Location>, String)> = validator
            .iter_errors(&self.value)
            .map(|error| {
                let path = error.instance_path();
                let field = display_path(path.iter());
                let what = choices_error(&schema, &error).unwrap_or_else(|| error.to_string());
                let message = match field {
                    Some(field) => format!("plugin `{plugin}` spec: `{field}`: {what}"),
                    None => format!("plugin `{plugin}` spec: {what}"),
                };
                (self.locate_pointer(path.iter()), message)
            })
            .collect();
        violations.sort_by_key(|(location, _)| location.as_ref().map(|l| (l.line, l.column)));
        let mut violations = violations.into_iter();
        let Some((location, message)) = violations.next() else {
            return Ok(());
        };
        let mut error = SpecError {
            message,
            location,
            help: None,
        };
        match violations.len() {
            0 => {}
            1 => error.help = Some("the plugin's schema reports 1 more problem".to_owned()),
            more => error.help = Some(format!("the plugin's schema reports {more} more problems")),
        }
        Err(error)
    }

    /// The YAML position of the value at `path` (keys, and indices as text), or of its nearest
    /// existing ancestor.
    pub(crate) fn location_of(&self, path: &[String]) -> Option<Location> {
        self.locate_pointer(path.iter().map(|part| match part.parse::<usize>() {
            Ok(i) => LocationSegment::Index(i),
            Err(_) => LocationSegment::Property(part.as_str().into()),
        }))
    }

    /// The YAML position of the node at a JSON pointer, or of its nearest existing ancestor.
    fn locate_pointer<'a>(
        &self,
        segments: impl Iterator<Item = LocationSegment<'a>>,
    ) -> Option<Location> {
        let origin = self.origin.as_ref()?;
        let Some(mut node) = origin.node.as_ref() else {
            return Some(Location::from_pos(&origin.file, origin.fallback));
        };
        for segment in segments {
            let child = match (&node.kind, segment) {
                (NodeKind::Seq(items), LocationSegment::Index(i)) => items.get(i),
                // The pointer does not say whether `/0` is an index or a key named "0".
                (NodeKind::Map(_), LocationSegment::Index(i)) => node.get(&i.to_string()),
                (NodeKind::Map(_), LocationSegment::Property(key)) => node.get(&key),
                _ => None,
            };
            match child {
                Some(child) => node = child,
                None => break,
            }
        }
        Some(Location::from_pos(&origin.file, node.at))
    }
}

/// `tables[0].name`; `None` for the spec itself.
fn display_path<'a>(segments: impl Iterator<Item = LocationSegment<'a>>) -> Option<String> {
    let mut out = String::new();
    for segment in segments {
        match segment {
            LocationSegment::Index(i) => out.push_str(&format!("[{i}]")),
            LocationSegment::Property(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&key);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `"xml" is not one of "csv", "json" or "parquet"` for a `oneOf` whose branches are all `const`
/// (what schemars makes of an enum with documented variants), where the validator would say only
/// that no branch matched.
fn choices_error(schema: &Value, error: &jsonschema::ValidationError<'_>) -> Option<String> {
    if !matches!(
        error.kind(),
        jsonschema::error::ValidationErrorKind::OneOfNotValid { .. }
    ) {
        return None;
    }
    let branches = schema.pointer(error.schema_path().as_str())?.as_array()?;
    let choices: Vec<String> = branches
        .iter()
        .map(|b| b.get("const").map(Value::to_string))
        .collect::<Option<_>>()?;
    let (last, rest) = choices.split_last()?;
    let list = if rest.is_empty() {
        last.clone()
    } else {
        format!("{} or {last}", rest.join(", "))
    };
    Some(format!("{} is not one of {list}", error.instance()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::de::from_node;
    use crate::spec::yaml::parse_documents;

    const SCHEMA: &str = r#"{
        "type": "object",
        "required": ["path"],
        "additionalProperties": false,
        "properties": {
            "path": {"type": "string"},
            "format": {"enum": ["csv", "json", "parquet"]},
            "columns": {"type": "array", "items": {"type": "object",
                "properties": {"name": {"type": "string"}}}}
        }
    }"#;

    fn spec(text: &str) -> PluginSpec {
        let doc = parse_documents(text).unwrap().remove(0);
        let node = doc.get("spec");
        let mut spec: PluginSpec = node.map(|n| from_node(n).unwrap()).unwrap_or_default();
        spec.locate(Path::new("s.yml"), node, Pos { line: 1, column: 1 });
        spec
    }

    fn check(text: &str) -> (String, String, Option<String>) {
        let err = spec(text).validate("file", SCHEMA).unwrap_err();
        let at = err.location.map(|l| l.to_string()).unwrap_or_default();
        (at, err.message, err.help)
    }

    #[test]
    fn valid_spec_passes() {
        assert_eq!(
            spec("spec:\n  path: ./x\n  format: csv\n").validate("file", SCHEMA),
            Ok(())
        );
        assert_eq!(
            spec("spec:\n  path: 5\n").value,
            serde_json::json!({"path": 5})
        );
    }

    #[test]
    fn violations_point_at_the_yaml() {
        assert_eq!(
            check("spec:\n  path: ./x\n  format: xml\n"),
            (
                "s.yml:3:11".into(),
                r#"plugin `file` spec: `format`: "xml" is not one of "csv", "json" or "parquet""#
                    .into(),
                None
            )
        );
        assert_eq!(
            check("spec:\n  path: ./x\n  columns:\n    - name: 5\n").1,
            "plugin `file` spec: `columns[0].name`: 5 is not of type \"string\""
        );
        assert_eq!(
            check("spec:\n  path: ./x\n  columns:\n    - name: 5\n").0,
            "s.yml:4:13"
        );
    }

    #[test]
    fn missing_property_points_at_the_mapping_and_counts_the_rest() {
        let (at, message, help) = check("spec:\n  format: xml\n");
        assert_eq!(at, "s.yml:2:3");
        assert_eq!(
            message,
            "plugin `file` spec: \"path\" is a required property"
        );
        assert_eq!(
            help.as_deref(),
            Some("the plugin's schema reports 1 more problem")
        );
        // No `spec:` at all: `{}` is validated and the error points at the fallback position.
        let (at, message, _) = check("kind: source\n");
        assert_eq!(
            (at.as_str(), message.as_str()),
            ("s.yml:1:1", message.as_str())
        );
        assert!(
            message.ends_with("\"path\" is a required property"),
            "{message}"
        );
    }

    #[test]
    fn bad_schemas_are_the_plugins_fault() {
        let err = PluginSpec::default().validate("file", "{").unwrap_err();
        assert!(
            err.message
                .starts_with("plugin `file` returned a spec schema that is not JSON")
        );
        let err = PluginSpec::default()
            .validate("file", r#"{"type": 5}"#)
            .unwrap_err();
        assert!(
            err.message
                .starts_with("plugin `file` returned an invalid spec schema")
        );
        assert_eq!(err.location, None);
    }
}
