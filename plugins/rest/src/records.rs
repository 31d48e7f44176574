//! Records out of an answer (`data_selector`), their schema inferred from a sample (with the
//! user's declared types winning), and records into Arrow columns.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, StringArray};
use arrow_schema::{DataType, Field, TimeUnit};
use quarry_sdk::{Column, Error, Extension, Result, Table};
use serde_json::Value;

/// The value at a dot path (`data.items`, `links.next`); `$` or an empty path is `value` itself.
pub fn at_path<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() || path == "$" {
        return Some(value);
    }
    let path = path.strip_prefix("$.").unwrap_or(path);
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// The records of an answer: at `selector`, or the body if it is a list, or the body's only
/// list of objects (searched one level down), or the body itself if it is a single object.
pub fn select<'v>(
    body: &'v Value,
    selector: Option<&str>,
    resource: &str,
) -> Result<Vec<&'v Value>> {
    let found = match selector {
        Some(path) => at_path(body, path).ok_or_else(|| {
            Error::internal(format!(
                "resource `{resource}`: the answer has nothing at data_selector `{path}`; it \
                 starts with `{}`",
                preview(body)
            ))
        })?,
        None => match body {
            Value::Array(_) => body,
            Value::Object(map) => {
                let lists: Vec<(&String, &Value)> = map
                    .iter()
                    .filter(|(_, v)| {
                        matches!(v, Value::Array(items) if items.iter().all(Value::is_object))
                            && !v.as_array().is_some_and(Vec::is_empty)
                    })
                    .collect();
                match lists.as_slice() {
                    // An empty page of a wrapper (`{"results": [], "next": null}`); an object
                    // with an empty list of another name is a record of its own.
                    [] if WRAPPERS
                        .iter()
                        .any(|k| matches!(map.get(*k), Some(Value::Array(a)) if a.is_empty())) =>
                    {
                        return Ok(Vec::new());
                    }
                    [] => body,
                    [(_, list)] => list,
                    many => {
                        let keys: Vec<&str> = many.iter().map(|(k, _)| k.as_str()).collect();
                        return Err(Error::invalid_spec(format!(
                            "resource `{resource}`: the answer holds several lists of records \
                             ({}); say which with `data_selector`",
                            keys.join(", ")
                        )));
                    }
                }
            }
            _ => body,
        },
    };
    Ok(match found {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    })
}

/// The names APIs put their lists of records under, for telling an empty page from a record.
const WRAPPERS: &[&str] = &[
    "data", "results", "items", "records", "entries", "values", "objects", "hits", "elements",
    "list", "rows", "nodes",
];

/// The start of a JSON value, for messages.
pub fn preview(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    }
}

/// What a column holds, as far as the sample shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Nothing,
    Bool,
    Int,
    Float,
    Timestamp,
    Text,
    /// Objects, mixed types, lists of objects or of mixed values.
    Json,
    /// Lists whose items are all of one scalar kind.
    List(Scalar),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Nothing,
    Bool,
    Int,
    Float,
    Text,
}

fn scalar(value: &Value) -> Option<Scalar> {
    Some(match value {
        Value::Null => Scalar::Nothing,
        Value::Bool(_) => Scalar::Bool,
        Value::Number(n) if n.is_i64() => Scalar::Int,
        Value::Number(_) => Scalar::Float,
        Value::String(_) => Scalar::Text,
        _ => return None,
    })
}

fn merge_scalar(a: Scalar, b: Scalar) -> Option<Scalar> {
    use Scalar::*;
    Some(match (a, b) {
        (Nothing, x) | (x, Nothing) => x,
        (x, y) if x == y => x,
        (Int, Float) | (Float, Int) => Float,
        _ => return None,
    })
}

/// Whether text is an RFC 3339 timestamp with a zone (`2024-01-02T03:04:05Z`).
fn is_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't' || b[10] == b' ')
        && b[13] == b':'
        && (text.ends_with('Z')
            || text.ends_with('z')
            || b[19..].iter().any(|c| matches!(c, b'+' | b'-')))
        && arrow_cast::parse::string_to_timestamp_nanos(text).is_ok()
}

fn seen(value: &Value) -> Seen {
    match value {
        Value::Null => Seen::Nothing,
        Value::Bool(_) => Seen::Bool,
        Value::Number(n) if n.is_i64() => Seen::Int,
        Value::Number(_) => Seen::Float,
        Value::String(s) if is_timestamp(s) => Seen::Timestamp,
        Value::String(_) => Seen::Text,
        Value::Object(_) => Seen::Json,
        Value::Array(items) => items
            .iter()
            .try_fold(Scalar::Nothing, |acc, v| merge_scalar(acc, scalar(v)?))
            .map_or(Seen::Json, Seen::List),
    }
}

fn merge(a: Seen, b: Seen) -> Seen {
    use Seen::*;
    match (a, b) {
        (Nothing, x) | (x, Nothing) => x,
        (x, y) if x == y => x,
        (Int, Float) | (Float, Int) => Float,
        (Timestamp, Text) | (Text, Timestamp) => Text,
        (List(x), List(y)) => merge_scalar(x, y).map_or(Json, List),
        _ => Json,
    }
}

/// The column for what the sample showed.
fn column(name: &str, seen: Seen) -> Column {
    let list = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
    match seen {
        Seen::Json => Column::extension(name, Extension::Json),
        Seen::Bool => Column::new(name, DataType::Boolean),
        Seen::Int => Column::new(name, DataType::Int64),
        Seen::Float => Column::new(name, DataType::Float64),
        Seen::Timestamp => Column::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ),
        Seen::Nothing | Seen::Text => Column::new(name, DataType::Utf8),
        Seen::List(Scalar::Bool) => Column::new(name, list(DataType::Boolean)),
        Seen::List(Scalar::Int) => Column::new(name, list(DataType::Int64)),
        Seen::List(Scalar::Float) => Column::new(name, list(DataType::Float64)),
        Seen::List(Scalar::Nothing | Scalar::Text) => Column::new(name, list(DataType::Utf8)),
    }
}

/// A column the user declared: an Arrow type name, or `json`, `uuid`, `inet`, `mac`.
pub fn declared(resource: &str, name: &str, type_name: &str) -> Result<Column> {
    let extension = Extension::ALL
        .into_iter()
        .find(|e| e.name().eq_ignore_ascii_case(type_name.trim()));
    if let Some(extension) = extension {
        return Ok(Column::extension(name, extension));
    }
    let data_type: DataType = type_name.trim().parse().map_err(|e| {
        Error::invalid_spec(format!(
            "resources: `{resource}`: columns: `{name}`: `{type_name}` is not an Arrow type \
             ({e}); write e.g. Int64, Utf8, Float64, Boolean, \"Timestamp(Microsecond, Some(\\\"UTC\\\"))\" or json"
        ))
    })?;
    Ok(Column::new(name, data_type))
}

/// The table of a resource: the sample's keys (and the declared columns and the primary key) in
/// the order of their names, typed by their values unless declared.
pub fn infer(
    resource: &str,
    sample: &[&Value],
    declared_columns: &BTreeMap<String, String>,
    primary_key: &[String],
) -> Result<Table> {
    let mut order: Vec<String> = Vec::new();
    let mut kinds: BTreeMap<String, Seen> = BTreeMap::new();
    for record in sample {
        let Value::Object(map) = record else {
            return Err(Error::internal(format!(
                "resource `{resource}`: a record is not a JSON object: `{}`; point \
                 data_selector at the list of records",
                preview(record)
            )));
        };
        for (key, value) in map {
            match kinds.get_mut(key) {
                Some(kind) => *kind = merge(*kind, seen(value)),
                None => {
                    order.push(key.clone());
                    kinds.insert(key.clone(), seen(value));
                }
            }
        }
    }
    for name in declared_columns.keys().chain(primary_key) {
        if !kinds.contains_key(name) {
            order.push(name.clone());
            kinds.insert(name.clone(), Seen::Nothing);
        }
    }
    // JSON objects carry no order that serde_json keeps: names order the columns, so a table's
    // schema does not depend on which record came first.
    order.sort();
    let mut table = Table::new(resource);
    for name in order {
        if name.starts_with("_cq_") {
            continue;
        }
        let mut c = match declared_columns.get(&name) {
            Some(type_name) => declared(resource, &name, type_name)?,
            None => column(&name, kinds[&name]),
        };
        if primary_key.contains(&name) {
            c = c.primary_key();
        }
        table = table.column(c);
    }
    Ok(table)
}

/// A record's value as the text [`quarry_sdk::json::from_text`] reads into the column's type:
/// strings as they are, everything else as its JSON.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The columns of `table` for `records` (keys the table lacks are counted in `unknown`).
pub fn to_columns(
    table: &Table,
    records: &[&Value],
    unknown: &mut BTreeMap<String, usize>,
) -> Result<Vec<ArrayRef>> {
    for record in records {
        if let Value::Object(map) = record {
            for key in map.keys() {
                if !table.columns.iter().any(|c| &c.name == key) {
                    *unknown.entry(key.clone()).or_default() += 1;
                }
            }
        }
    }
    table
        .columns
        .iter()
        .map(|column| {
            let texts: StringArray = records
                .iter()
                .map(|r| r.get(&column.name).and_then(text))
                .collect();
            let field = column.field();
            // A JSON column keeps every value as JSON, strings included.
            let texts = if column.extension == Some(Extension::Json) {
                records
                    .iter()
                    .map(|r| {
                        r.get(&column.name)
                            .filter(|v| !v.is_null())
                            .map(Value::to_string)
                    })
                    .collect()
            } else {
                texts
            };
            quarry_sdk::json::from_text(&field, &texts).map_err(|e| {
                let example = records
                    .iter()
                    .filter_map(|r| r.get(&column.name))
                    .find(|v| !v.is_null())
                    .map(preview)
                    .unwrap_or_default();
                Error::internal(format!(
                    "table `{}`, column `{}` ({}): a value does not fit ({e}), e.g. `{example}`; \
                     declare the column's type under `columns`",
                    table.name, column.name, column.data_type
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_are_found_where_the_selector_or_the_shape_says() {
        let body = json!({"data": {"items": [{"id": 1}, {"id": 2}]}, "meta": {"total": 2}});
        assert_eq!(select(&body, Some("data.items"), "r").unwrap().len(), 2);
        let list = json!([{"id": 1}]);
        assert_eq!(select(&list, None, "r").unwrap().len(), 1);
        let wrapped = json!({"results": [{"id": 1}, {"id": 2}, {"id": 3}], "next": null});
        assert_eq!(select(&wrapped, None, "r").unwrap().len(), 3);
        let empty = json!({"results": [], "next": null});
        assert!(select(&empty, None, "r").unwrap().is_empty());
        let record = json!({"login": "x", "emails": []});
        assert_eq!(select(&record, None, "r").unwrap(), [&record]);
        // A title that looks like a time up to a multi-byte character is text.
        assert!(!is_timestamp("2024-01-02 10:00 – standup"));
        assert!(is_timestamp("2024-01-02T10:00:00.5+02:00"));
        let two = json!({"a": [{"x": 1}], "b": [{"y": 2}]});
        let err = select(&two, None, "r").unwrap_err();
        assert!(
            err.message.contains("several lists of records (a, b)"),
            "{err}"
        );
        let err = select(&body, Some("data.nope"), "r").unwrap_err();
        assert!(
            err.message.contains("nothing at data_selector `data.nope`"),
            "{err}"
        );
    }

    #[test]
    fn a_sample_types_its_columns_and_declarations_win() {
        let records = [
            json!({"id": 1, "name": "a", "at": "2024-01-02T03:04:05Z", "score": 1,
                   "tags": ["x"], "owner": {"login": "o"}, "mixed": 1, "gone": null}),
            json!({"id": 2, "name": null, "at": "2024-01-03T00:00:00.5+02:00", "score": 2.5,
                   "tags": [], "owner": null, "mixed": "one", "extra": true}),
        ];
        let sample: Vec<&Value> = records.iter().collect();
        let declarations = BTreeMap::from([("name".to_string(), "LargeUtf8".to_string())]);
        let table = infer("things", &sample, &declarations, &["id".into()]).unwrap();
        let described: Vec<String> = table
            .columns
            .iter()
            .map(|c| match c.extension {
                Some(e) => format!("{}:{}", c.name, e.name()),
                None => format!("{}:{}", c.name, c.data_type),
            })
            .collect();
        assert_eq!(
            described.join(" "),
            "at:Timestamp(µs, \"UTC\") extra:Boolean gone:Utf8 id:Int64 mixed:json name:LargeUtf8 \
             owner:json score:Float64 tags:List(Utf8)"
        );
        assert!(table.columns[3].primary_key);
        let mut unknown = BTreeMap::new();
        let more =
            json!({"id": 3, "new_key": 1, "at": "2024-01-01T00:00:00Z", "owner": {"a": [1]}});
        let rows: Vec<&Value> = records.iter().chain([&more]).collect();
        let columns = to_columns(&table, &rows, &mut unknown).unwrap();
        assert_eq!(unknown, BTreeMap::from([("new_key".to_string(), 1)]));
        assert_eq!(columns[0].len(), 3);
        let owner = arrow_array::cast::AsArray::as_binary::<i32>(&columns[6]);
        assert_eq!(owner.value(0), br#"{"login":"o"}"#);
        assert!(arrow_array::Array::is_null(owner, 1));
        let mixed = arrow_array::cast::AsArray::as_binary::<i32>(&columns[4]);
        assert_eq!(mixed.value(1), br#""one""#);

        let bad = json!({"id": "seven"});
        let err = to_columns(&table, &[&bad], &mut unknown).unwrap_err();
        assert!(
            err.message.contains("table `things`, column `id` (Int64)"),
            "{err}"
        );
        assert!(err.message.contains("\"seven\""), "{err}");
        let err = declared("things", "x", "Int65").unwrap_err();
        assert!(
            err.message.contains("`Int65` is not an Arrow type"),
            "{err}"
        );
    }
}
