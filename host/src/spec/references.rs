//! `@@plugins.NAME.spec.FIELD` in a plugin's `spec:`: the value of another plugin's spec field,
//! so that a setting (a connection string, a schema) is written once. CloudQuery's
//! `@@plugins.NAME.connection` (a plugin's gRPC address) means something only in
//! `backend_options.connection`, where the planner reads it; anywhere else it is refused rather
//! than passed on as text a plugin would take literally.

use serde_json::Value;

use super::error::SpecError;
use super::{DestinationSpec, PluginSpec, SourceSpec, TransformerSpec};

const PREFIX: &str = "@@plugins.";

/// Replaces every reference in the plugin specs of `sources` and `destinations`. A string that is
/// exactly one reference takes the referenced value with its type; a reference inside a longer
/// string is replaced by the value's text (a number, a boolean or a string).
pub(super) fn resolve(
    sources: &mut [SourceSpec],
    destinations: &mut [DestinationSpec],
    transformers: &mut [TransformerSpec],
) -> Result<(), SpecError> {
    // Referenced values as written: a reference is not followed into another reference.
    let specs: Vec<(String, Value)> = destinations
        .iter()
        .map(|d| (d.name.clone(), d.spec.value.clone()))
        .chain(
            sources
                .iter()
                .map(|s| (s.name.clone(), s.spec.value.clone())),
        )
        .chain(
            transformers
                .iter()
                .map(|t| (t.name.clone(), t.spec.value.clone())),
        )
        .collect();
    let lookup = |name: &str| specs.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let specs_mut = sources
        .iter_mut()
        .map(|s| (&s.name, &mut s.spec))
        .chain(destinations.iter_mut().map(|d| (&d.name, &mut d.spec)))
        .chain(transformers.iter_mut().map(|t| (&t.name, &mut t.spec)));
    for (owner, spec) in specs_mut {
        let mut path = Vec::new();
        let mut value = std::mem::take(&mut spec.value);
        let resolved = walk(&mut value, &mut path, &lookup);
        spec.value = value;
        if let Err((path, message, help)) = resolved {
            return Err(located(
                spec,
                &path,
                format!("plugin `{owner}`: {message}"),
                help,
            ));
        }
    }
    Ok(())
}

type Failure = (Vec<String>, String, String);

fn walk<'v>(
    value: &mut Value,
    path: &mut Vec<String>,
    lookup: &impl Fn(&str) -> Option<&'v Value>,
) -> Result<(), Failure> {
    match value {
        Value::String(text) if text.contains(PREFIX) => {
            *value = substitute(text, lookup).map_err(|(m, h)| (path.clone(), m, h))?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                walk(item, path, lookup)?;
                path.pop();
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields.iter_mut() {
                path.push(key.clone());
                walk(item, path, lookup)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

/// `text` with its references replaced.
fn substitute<'v>(
    text: &str,
    lookup: &impl Fn(&str) -> Option<&'v Value>,
) -> Result<Value, (String, String)> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        out.push_str(&rest[..at]);
        let after = &rest[at + PREFIX.len()..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .unwrap_or(after.len());
        // A sentence's full stop is not part of the reference.
        let reference = after[..len].trim_end_matches('.');
        let value = referenced(reference, lookup)?;
        if at == 0 && reference.len() + PREFIX.len() == text.len() {
            return Ok(value.clone());
        }
        match value {
            Value::String(s) => out.push_str(s),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::Bool(b) => out.push_str(&b.to_string()),
            _ => {
                return Err((
                    format!(
                        "`{PREFIX}{reference}` is not text, a number or a boolean, so it cannot be part of a longer string"
                    ),
                    "make the reference the whole value".into(),
                ));
            }
        }
        rest = &after[reference.len()..];
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

fn referenced<'v>(
    reference: &str,
    lookup: &impl Fn(&str) -> Option<&'v Value>,
) -> Result<&'v Value, (String, String)> {
    let form = "write `@@plugins.NAME.spec.FIELD` (FIELD may be a dotted path)";
    let mut parts = reference.split('.');
    let (Some(name), field) = (parts.next().filter(|n| !n.is_empty()), parts.next()) else {
        return Err((
            format!("`{PREFIX}{reference}` names no plugin"),
            form.into(),
        ));
    };
    let Some(spec) = lookup(name) else {
        return Err((
            format!("`{PREFIX}{reference}` names plugin `{name}`, which is not defined"),
            form.into(),
        ));
    };
    match field {
        Some("connection") => {
            return Err((
                format!(
                    "`{PREFIX}{reference}` is a plugin's gRPC address, which Quarry reads only in `backend_options.connection`"
                ),
                format!("to reuse a setting of `{name}`, write `@@plugins.{name}.spec.FIELD`"),
            ));
        }
        Some("spec") => {}
        _ => {
            return Err((
                format!("`{PREFIX}{reference}` is not a reference Quarry knows"),
                form.into(),
            ));
        }
    }
    let mut value = spec;
    let mut walked = String::new();
    for part in parts {
        let next = match value {
            Value::Object(fields) => fields.get(part),
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        let Some(next) = next else {
            let fields = match value {
                Value::Object(fields) if !fields.is_empty() => {
                    let keys: Vec<String> = fields.keys().map(|k| format!("`{k}`")).collect();
                    format!("its fields: {}", keys.join(", "))
                }
                _ => "it has no fields there".into(),
            };
            return Err((
                format!("`{PREFIX}{reference}`: the spec of `{name}` has no `{walked}{part}`"),
                fields,
            ));
        };
        walked.push_str(part);
        walked.push('.');
        value = next;
    }
    if walked.is_empty() {
        return Err((
            format!("`{PREFIX}{reference}` names no field of `{name}`'s spec"),
            form.into(),
        ));
    }
    if value.as_str().is_some_and(|s| s.contains(PREFIX)) {
        return Err((
            format!("`{PREFIX}{reference}` is itself a reference; references are not followed"),
            "write the value where it is referenced".into(),
        ));
    }
    Ok(value)
}

fn located(spec: &PluginSpec, path: &[String], message: String, help: String) -> SpecError {
    match spec.location_of(path) {
        Some(at) => SpecError::at(at, message),
        None => SpecError::new(message),
    }
    .with_help(help)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(values: &[(&str, Value)]) -> Result<Vec<Value>, String> {
        let specs: Vec<(String, Value)> = values
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect();
        let lookup = |name: &str| specs.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let mut out = Vec::new();
        for (_, v) in values {
            let mut v = v.clone();
            walk(&mut v, &mut Vec::new(), &lookup).map_err(|(p, m, _)| format!("{p:?} {m}"))?;
            out.push(v);
        }
        Ok(out)
    }

    #[test]
    fn references_take_the_value_or_its_text() {
        let out = run(&[
            (
                "pg",
                json!({"connection_string": "postgres://db", "port": 5432, "opts": {"a": [1, 2]}}),
            ),
            (
                "src",
                json!({
                    "dsn": "@@plugins.pg.spec.connection_string",
                    "url": "@@plugins.pg.spec.connection_string/x?port=@@plugins.pg.spec.port.",
                    "n": "@@plugins.pg.spec.opts.a.1",
                    "all": "@@plugins.pg.spec.opts",
                }),
            ),
        ])
        .unwrap();
        assert_eq!(
            out[1],
            json!({"dsn": "postgres://db", "url": "postgres://db/x?port=5432.", "n": 2, "all": {"a": [1, 2]}})
        );
    }

    #[test]
    fn wrong_references_say_what_is_wrong() {
        let pg = (
            "pg",
            json!({"schema": "s", "nested": "@@plugins.pg.spec.schema"}),
        );
        let err = |text: &str| run(&[pg.clone(), ("src", json!({"list": [text]}))]).unwrap_err();
        assert!(
            err("@@plugins.pg.connection")
                .contains("[\"list\", \"0\"] `@@plugins.pg.connection` is a plugin's gRPC address")
        );
        assert!(err("@@plugins.nope.spec.x").contains("names plugin `nope`, which is not defined"));
        assert!(err("@@plugins.pg.spec.missing").contains("the spec of `pg` has no `missing`"));
        assert!(err("@@plugins.pg.name").contains("is not a reference Quarry knows"));
        assert!(err("@@plugins.pg.spec").contains("names no field"));
        assert!(err("@@plugins.pg.spec.nested").contains("references are not followed"));
        assert!(err("x @@plugins.pg.spec").contains("names no field"));
    }
}
