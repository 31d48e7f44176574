//! The obfuscation kinds: `obfuscate_columns`, `obfuscate_sensitive_columns` and
//! `obfuscate_columns_except` (CloudQuery's `ObfuscateColumns`, `ObfuscateSensitiveColumns`,
//! `ObfuscateColumnsExcept`).
//!
//! A value is replaced by the marker `Redacted by CloudQuery`, followed by ` | <sha256>` of the
//! value (lowercase hex) unless `include_sha: false`. A utf8 column gets the marker as text, a
//! binary column as bytes (the hash over the raw bytes), a whole JSON column the object
//! `{"redacted_by_cloudquery":"<sha256 or marker>"}`; a path inside a JSON column turns the
//! values it reaches into the marker string, hashed over their JSON text (for `#`, over the
//! `[...]` of everything it reaches, so every element gets the same marker). Nulls stay null and
//! the column keeps its field; any other type is an error.
//!
//! With several paths into one column, each is hashed over the value as the paths before it
//! left it (CloudQuery hashes the original); they differ only when one path is inside another.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, FieldRef, Schema};
use quarry_sdk::{Error, Extension, Result, metadata};
use sha2::{Digest, Sha256};

use crate::json;
use crate::path::{Allowlist, ColumnRef, JsonPath, Resolved};
use crate::transform::{Unmatched, rebuild};

const MARKER: &str = "Redacted by CloudQuery";
const JSON_KEY: &str = "redacted_by_cloudquery";
const INTERNAL_PREFIX: &str = "_cq_";

/// The marker for a value, with or without its hash.
pub(crate) fn marker(raw: &[u8], include_sha: bool) -> String {
    if include_sha {
        format!("{MARKER} | {}", sha256_hex(raw))
    } else {
        MARKER.to_string()
    }
}

fn sha256_hex(raw: &[u8]) -> String {
    Sha256::digest(raw)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What CloudQuery treats a column as, by its Arrow type and extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Storage {
    Utf8,
    Binary,
    Json,
    Other,
}

impl Storage {
    pub(crate) fn of(field: &Field) -> Storage {
        match (field.data_type(), Extension::of(field)) {
            (DataType::Utf8, _) => Storage::Utf8,
            (DataType::Binary, Some(Extension::Json)) => Storage::Json,
            // inet and mac are extension types in CloudQuery, not binary.
            (DataType::Binary, None) => Storage::Binary,
            _ => Storage::Other,
        }
    }
}

/// Every value of a utf8 column replaced by its marker.
fn redact_utf8(column: &ArrayRef, include_sha: bool) -> ArrayRef {
    let values = column.as_string::<i32>();
    Arc::new(
        values
            .iter()
            .map(|v| v.map(|v| marker(v.as_bytes(), include_sha)))
            .collect::<StringArray>(),
    )
}

/// Every value of a binary column replaced by its marker, as bytes.
fn redact_binary(column: &ArrayRef, include_sha: bool) -> ArrayRef {
    let values = column.as_binary::<i32>();
    Arc::new(
        values
            .iter()
            .map(|v| v.map(|v| marker(v, include_sha).into_bytes()))
            .collect::<BinaryArray>(),
    )
}

/// A whole JSON value replaced (CloudQuery's `entireJSONRedaction`).
pub(crate) fn redact_json_value(raw: &[u8], include_sha: bool) -> String {
    let inner = if include_sha {
        sha256_hex(raw)
    } else {
        MARKER.to_string()
    };
    format!(
        "{{{}:{}}}",
        json::sjson_quote(JSON_KEY),
        json::sjson_quote(&inner)
    )
}

fn redact_json(column: &ArrayRef, include_sha: bool) -> ArrayRef {
    let values = column.as_binary::<i32>();
    Arc::new(
        values
            .iter()
            .map(|v| v.map(|v| redact_json_value(v, include_sha).into_bytes()))
            .collect::<BinaryArray>(),
    )
}

/// A whole column redacted in place, or `None` for a type that cannot be.
fn redact_whole(field: &Field, column: &ArrayRef, include_sha: bool) -> Option<ArrayRef> {
    Some(match Storage::of(field) {
        Storage::Utf8 => redact_utf8(column, include_sha),
        Storage::Json => redact_json(column, include_sha),
        Storage::Binary => redact_binary(column, include_sha),
        Storage::Other => return None,
    })
}

/// A JSON column's values with the given paths redacted. Values that are not valid JSON are
/// left as they are.
fn redact_paths(column: &ArrayRef, paths: &[&JsonPath], include_sha: bool) -> ArrayRef {
    json::map_documents(column, |text| redact_document(text, paths, include_sha))
}

fn redact_document(text: &str, paths: &[&JsonPath], include_sha: bool) -> String {
    json::edit_paths(text, paths, |text, root, path, found| {
        // Every place the path reaches gets the one marker of all of them (a `#` path hashes
        // the whole matched set once, as CloudQuery does).
        let Some(raw) = json::get_raw(text, root, &path.segments) else {
            return Vec::new();
        };
        let replacement = json::sjson_quote(&marker(raw.as_bytes(), include_sha));
        found
            .into_iter()
            .map(|e| (e.node.span.clone(), replacement.clone()))
            .collect()
    })
}

/// `obfuscate_columns` (and `obfuscate_sensitive_columns` once it has its list).
pub(crate) fn obfuscate(
    batch: RecordBatch,
    refs: &[ColumnRef],
    include_sha: bool,
) -> Result<RecordBatch> {
    let schema = batch.schema();
    let resolved = Resolved::new(refs, &schema);
    let mut columns = batch.columns().to_vec();
    for &i in &resolved.whole {
        let field = schema.field(i);
        columns[i] = redact_whole(field, &columns[i], include_sha).ok_or_else(|| {
            Error::invalid_spec(format!(
                "column {} is not a string, binary or JSON column",
                field.name()
            ))
        })?;
    }
    for (&i, paths) in &resolved.paths {
        let field = schema.field(i);
        if Storage::of(field) != Storage::Json {
            return Err(Error::invalid_spec(format!(
                "column {} is not a JSON column",
                field.name()
            )));
        }
        columns[i] = redact_paths(&columns[i], paths, include_sha);
    }
    rebuild(schema, columns, batch.num_rows())
}

/// `obfuscate_sensitive_columns`: the columns the source marked sensitive
/// (`cq:table_sensitive_columns`, a JSON array of names and paths).
pub(crate) fn obfuscate_sensitive(batch: RecordBatch, include_sha: bool) -> Result<RecordBatch> {
    let Some(listed) = batch.schema().metadata().get(SENSITIVE_COLUMNS).cloned() else {
        return Ok(batch);
    };
    let names: Option<Vec<String>> = serde_json::from_str(&listed)
        .map_err(|e| Error::internal(format!("failed to unmarshal sensitive columns: {e}")))?;
    let names = names.unwrap_or_default();
    if names.is_empty() {
        return Ok(batch);
    }
    let refs = names
        .iter()
        .map(|n| ColumnRef::parse(n))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::internal(format!(
                "the table's sensitive columns (`{SENSITIVE_COLUMNS}`): {e}"
            ))
        })?;
    obfuscate(batch, &refs, include_sha)
}

/// The schema metadata key of a table's sensitive columns.
pub(crate) const SENSITIVE_COLUMNS: &str = "cq:table_sensitive_columns";

fn is_primary_key(field: &Field) -> bool {
    field
        .metadata()
        .get(metadata::PRIMARY_KEY)
        .is_some_and(|v| v == metadata::TRUE)
}

/// `obfuscate_columns_except`: keeps `_cq_*` columns and the allowlist, and drops or redacts
/// the rest.
pub(crate) fn obfuscate_except(
    batch: RecordBatch,
    allowlist: &Allowlist,
    include_sha: bool,
    unmatched: Unmatched,
) -> Result<RecordBatch> {
    let schema = batch.schema();
    let present = |name: &String| schema.fields().iter().any(|f| f.name() == name);
    let mut missing: Vec<&String> = allowlist
        .whole
        .iter()
        .chain(allowlist.nested.keys())
        .filter(|name| !present(name))
        .collect();
    if !missing.is_empty() {
        missing.sort();
        missing.dedup();
        let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        return Err(Error::invalid_spec(format!(
            "obfuscate_columns_except allowlist references unknown column(s): {}",
            names.join(", ")
        )));
    }
    check_primary_keys_survive(&schema, allowlist, include_sha, unmatched)?;

    let mut fields: Vec<FieldRef> = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let name = field.name();
        let storage = Storage::of(field);
        let kept = if name.starts_with(INTERNAL_PREFIX) || allowlist.whole.contains(name) {
            Some(column.clone())
        } else if let Some(patterns) = allowlist.nested.get(name).filter(|p| !p.is_empty()) {
            if storage != Storage::Json {
                return Err(Error::invalid_spec(format!(
                    "column {name:?} is referenced with a nested path in the allowlist but is not a JSON column"
                )));
            }
            Some(redact_json_except(column, patterns, include_sha, unmatched))
        } else if unmatched == Unmatched::Drop {
            None
        } else {
            redact_whole(field, column, include_sha)
        };
        if let Some(column) = kept {
            fields.push(field.clone());
            columns.push(column);
        }
    }
    if columns.is_empty() {
        return Err(Error::invalid_spec(
            "obfuscate_columns_except would drop every column; allowlist at least one column",
        ));
    }
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    rebuild(Arc::new(schema), columns, batch.num_rows())
}

fn redact_json_except(
    column: &ArrayRef,
    patterns: &[Vec<String>],
    include_sha: bool,
    unmatched: Unmatched,
) -> ArrayRef {
    let values = column.as_binary::<i32>();
    Arc::new(
        values
            .iter()
            .map(|v| {
                v.map(|v| {
                    std::str::from_utf8(v)
                        .ok()
                        .and_then(|text| {
                            crate::except::redact_except(text, patterns, include_sha, unmatched)
                        })
                        .unwrap_or_else(|| redact_json_value(v, include_sha))
                        .into_bytes()
                })
            })
            .collect::<BinaryArray>(),
    )
}

/// CloudQuery refuses to run when a primary-key column would lose what identifies its rows.
fn check_primary_keys_survive(
    schema: &Schema,
    allowlist: &Allowlist,
    include_sha: bool,
    unmatched: Unmatched,
) -> Result<()> {
    for field in schema.fields() {
        let name = field.name();
        if name.starts_with(INTERNAL_PREFIX)
            || !is_primary_key(field)
            || allowlist.whole.contains(name)
        {
            continue;
        }
        let storage = Storage::of(field);
        if allowlist.nested.contains_key(name) && storage == Storage::Json {
            continue;
        }
        let message = if unmatched == Unmatched::Drop {
            format!(
                "primary-key column {name:?} is not on the allowlist; with unmatched=drop it would be removed and break row identity at the destination; add {name:?} to the allowlist"
            )
        } else if storage == Storage::Other {
            format!(
                "primary-key column {name:?} has type {} that cannot be redacted in place, so it would be dropped and break row identity at the destination; add {name:?} to the allowlist",
                crate::value_str::go_type_name(field)
            )
        } else if !include_sha {
            format!(
                "primary-key column {name:?} is not on the allowlist; with include_sha=false its redacted value is identical for every row and would break upserts at the destination; add {name:?} to the allowlist or use include_sha=true"
            )
        } else {
            continue;
        };
        return Err(Error::invalid_spec(message));
    }
    Ok(())
}
