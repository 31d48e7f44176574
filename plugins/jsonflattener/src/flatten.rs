//! The flattening of one batch (CloudQuery's `recordupdater` and `schemaupdater`): which columns
//! carry a type schema, the new columns' names, types and order, and their values row by row.
//! Schemas go through the same code as a batch of no rows, so the two cannot disagree.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BinaryArray, RecordBatch};
use arrow_schema::{DataType, FieldRef, Schema};
use quarry_sdk::{Error, Extension, Result, metadata};
use serde_json::{Map, Value};

use crate::caser::to_snake;
use crate::cells::{Cells, FlatType};

/// Type schemas that were skipped and already logged, so that each is logged once rather than
/// for every batch.
pub type Skipped = HashSet<(String, String)>;

/// `batch` with the first level of its type-schema'd JSON columns appended as columns of their
/// own, or `batch` itself when it has no such column.
pub fn flatten(batch: RecordBatch, table: &str, skipped: &mut Skipped) -> Result<RecordBatch> {
    let schema = batch.schema();
    let flagged = flagged_columns(&schema, table, skipped);
    if flagged.is_empty() {
        return Ok(batch);
    }
    // CloudQuery checks generated names only against each other, so a key could come out as an
    // existing column's name; here existing names are taken too and the key gets the `_` suffix.
    let mut taken: HashSet<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for (name, (index, type_schema)) in &flagged {
        let json = json_column(&schema, batch.column(*index), *index, table)?;
        let keys = resolve_types(type_schema, table, name)?;
        columns.extend(flatten_column(name, json, &keys)?);
        for (key, ty) in &keys {
            let mut field_name = format!("{name}__{}", to_snake(key));
            while !taken.insert(field_name.clone()) {
                field_name.push('_');
            }
            fields.push(Arc::new(ty.field(&field_name)));
        }
    }
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
}

/// The columns whose `cq:extension:type_schema` is a JSON object, by name (sorted, which is the
/// order their new columns come in), with their index and the object's first level: each key's
/// type name, `json` for a nested object or list, `any` and `binary`. The key `utf8` (a map's
/// key type) is left out.
fn flagged_columns(
    schema: &Schema,
    table: &str,
    skipped: &mut Skipped,
) -> BTreeMap<String, (usize, BTreeMap<String, String>)> {
    let mut flagged = BTreeMap::new();
    for (index, field) in schema.fields().iter().enumerate() {
        let Some(raw) = field.metadata().get(metadata::TYPE_SCHEMA) else {
            continue;
        };
        if raw.is_empty() {
            continue;
        }
        let object = match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(object)) => object,
            Ok(other) => {
                if skipped.insert((table.to_string(), field.name().clone())) {
                    quarry_sdk::log::info(
                        "skipping a type schema that is not a JSON object",
                        &[
                            ("table", table),
                            ("column", field.name()),
                            ("type_schema", json_kind(&other)),
                        ],
                    );
                }
                continue;
            }
            Err(e) => {
                if skipped.insert((table.to_string(), field.name().clone())) {
                    quarry_sdk::log::warn(
                        "skipping a type schema that is not valid JSON",
                        &[
                            ("table", table),
                            ("column", field.name()),
                            ("error", &e.to_string()),
                        ],
                    );
                }
                continue;
            }
        };
        let types = object
            .into_iter()
            .filter(|(key, _)| key != "utf8")
            .map(|(key, ty)| {
                let ty = match ty {
                    Value::String(ty) if ty != "any" && ty != "binary" => ty,
                    _ => "json".to_string(),
                };
                (key, ty)
            })
            .collect();
        flagged.insert(field.name().clone(), (index, types));
    }
    flagged
}

/// The column's values, if it is a `json` extension column.
fn json_column<'a>(
    schema: &Schema,
    column: &'a ArrayRef,
    index: usize,
    table: &str,
) -> Result<&'a BinaryArray> {
    let field = schema.field(index);
    let extension = Extension::of(field);
    let json = match (extension, field.data_type()) {
        (Some(Extension::Json), DataType::Binary) => column.as_binary_opt::<i32>(),
        _ => None,
    };
    json.ok_or_else(|| {
        let got = match extension {
            Some(extension) => format!("{} ({})", extension.name(), field.data_type()),
            None => field.data_type().to_string(),
        };
        Error::internal(format!(
            "expected JSONArray column, got {got}: column [{table}.{}] has `{}` metadata, which \
             only a `json` column can carry",
            field.name(),
            metadata::TYPE_SCHEMA
        ))
    })
}

/// The type schema's keys, sorted, with their types; an error names the first unsupported one.
fn resolve_types(
    type_schema: &BTreeMap<String, String>,
    table: &str,
    column: &str,
) -> Result<Vec<(String, FlatType)>> {
    type_schema
        .iter()
        .map(|(key, name)| {
            let ty = FlatType::from_name(name).ok_or_else(|| {
                Error::internal(format!(
                    "unsupported type for column [{key}] on original column [{table}.{column}]: \
                     [{name}] (the flattener reads utf8, int64, float64, bool, json, uuid and \
                     timestamp[us, tz=UTC])"
                ))
            })?;
            Ok((key.clone(), ty))
        })
        .collect()
}

/// The new columns of one JSON column, in the order of `keys`.
fn flatten_column(
    name: &str,
    json: &BinaryArray,
    keys: &[(String, FlatType)],
) -> Result<Vec<ArrayRef>> {
    let mut cells: Vec<Cells> = keys
        .iter()
        .map(|(_, ty)| Cells::new(*ty, json.len()))
        .collect();
    let mut matcher = KeyMatcher::default();
    for row in 0..json.len() {
        let object = row_object(name, json, row)?;
        let object = matcher.apply(object, keys);
        for ((key, _), cells) in keys.iter().zip(&mut cells) {
            cells.push(object.get(key))?;
        }
    }
    Ok(cells.into_iter().map(Cells::finish).collect())
}

/// One row's JSON object; a null cell and JSON `null` are an empty one.
fn row_object(name: &str, json: &BinaryArray, row: usize) -> Result<Map<String, Value>> {
    if json.is_null(row) {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_slice(json.value(row)).map_err(|e| {
        Error::internal(format!(
            "column {name}, row {row}: the value is not valid JSON ({e})"
        ))
    })?;
    match value {
        Value::Object(object) => Ok(object),
        Value::Null => Ok(Map::new()),
        other => Err(Error::internal(format!(
            "expected JSON column for column {name}, got {} (row {row}): only JSON objects can \
             be flattened",
            json_kind(&other)
        ))),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// How a row's keys are matched against the type schema's, chosen as CloudQuery chooses it: the
/// keys as they are, or snake_cased (camelCase data against a snake_case schema), whichever
/// matches more of the schema's keys (as they are, on a tie). A choice that matches all of them
/// holds for the rest of the batch; any other is made again on the next row.
#[derive(Default)]
struct KeyMatcher {
    /// The choice that matched every key: `true` for snake_cased.
    settled: Option<bool>,
    /// Snake-cased data keys, so each distinct key is converted once.
    snake: HashMap<String, String>,
}

impl KeyMatcher {
    fn apply(
        &mut self,
        object: Map<String, Value>,
        keys: &[(String, FlatType)],
    ) -> Map<String, Value> {
        match self.settled {
            Some(false) => return object,
            Some(true) => return self.snake_cased(object),
            None => {}
        }
        let matches =
            |o: &Map<String, Value>| keys.iter().filter(|(k, _)| o.contains_key(k)).count();
        let as_is = matches(&object);
        if as_is == keys.len() {
            self.settled = Some(false);
            return object;
        }
        let snake = self.snake_cased(object.clone());
        let snake_matches = matches(&snake);
        if snake_matches > as_is {
            if snake_matches == keys.len() {
                self.settled = Some(true);
            }
            snake
        } else {
            object
        }
    }

    fn snake_cased(&mut self, object: Map<String, Value>) -> Map<String, Value> {
        object
            .into_iter()
            .map(|(key, value)| {
                let snake = self
                    .snake
                    .entry(key)
                    .or_insert_with_key(|key| to_snake(key))
                    .clone();
                (snake, value)
            })
            .collect()
    }
}
