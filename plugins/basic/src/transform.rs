//! One transformation: the tables it applies to and what it does to a batch, and the kinds
//! that only rearrange columns and metadata (CloudQuery's `transformers`, `tablematcher` and
//! the column-level parts of `recordupdater`/`schemaupdater`).
//!
//! There is one function per kind, and it serves schemas too: a schema is run through it as an
//! empty batch, as CloudQuery does, so the schema a table is migrated with is exactly the schema
//! its batches come with.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::{
    ArrayRef, RecordBatch, RecordBatchOptions, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, FieldRef, Metadata, Schema, SchemaRef, TimeUnit};
use quarry_sdk::{Error, Result, metadata};

use crate::json;
use crate::path::{Allowlist, ColumnRef, JsonPath};
use crate::spec::Kind;
use crate::template::Template;

/// `obfuscate_columns_except`'s treatment of what is not allowlisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unmatched {
    Drop,
    Collapse,
    Redact,
}

impl Unmatched {
    pub(crate) fn parse(s: &str) -> Option<Unmatched> {
        match s {
            "" | "drop" => Some(Unmatched::Drop),
            "collapse" => Some(Unmatched::Collapse),
            "redact" => Some(Unmatched::Redact),
            _ => None,
        }
    }
}

/// What a transformation does, with its spec fields checked and parsed.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    RemoveColumns(Vec<ColumnRef>),
    AddColumn {
        name: String,
        value: String,
    },
    AddTimestampColumn {
        name: String,
    },
    Obfuscate {
        columns: Vec<ColumnRef>,
        include_sha: bool,
    },
    ChangeTableNames(Template),
    RenameColumn {
        from: String,
        to: String,
    },
    AddPrimaryKeys(Vec<String>),
    ObfuscateSensitive {
        include_sha: bool,
    },
    ObfuscateExcept {
        allowlist: Allowlist,
        include_sha: bool,
        unmatched: Unmatched,
    },
    ChangeCase {
        upper: bool,
        columns: Vec<ColumnRef>,
    },
    DropRows {
        columns: Vec<String>,
        value: Option<String>,
    },
}

/// One entry of `transformations`, ready to run.
#[derive(Debug, Clone)]
pub(crate) struct Transformation {
    kind: Kind,
    tables: Vec<String>,
    op: Op,
    /// Whether each table name seen so far matches `tables`.
    matches: HashMap<String, bool>,
}

impl Transformation {
    pub(crate) fn new(kind: Kind, tables: Vec<String>, op: Op) -> Self {
        Transformation {
            kind,
            tables,
            op,
            matches: HashMap::new(),
        }
    }

    /// The batch transformed, or as it is if its table is not one of `tables`.
    pub(crate) fn apply(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let table = batch
            .schema_ref()
            .metadata()
            .get(metadata::TABLE_NAME)
            .cloned()
            .ok_or_else(|| {
                Error::internal(format!(
                    "{}: table name not found in record's metadata (`{}`)",
                    self.kind.name(),
                    metadata::TABLE_NAME
                ))
            })?;
        let tables = &self.tables;
        let matched = *self.matches.entry(table.clone()).or_insert_with(|| {
            tables
                .iter()
                .any(|p| quarry_sdk::matches_star_glob(p, &table))
        });
        if !matched {
            return Ok(batch);
        }
        self.run(batch, &table)
            .map_err(|e| e.context(format_args!("{} on table {table}", self.kind.name())))
    }

    fn run(&self, batch: RecordBatch, table: &str) -> Result<RecordBatch> {
        match &self.op {
            Op::RemoveColumns(columns) => remove_columns(batch, columns),
            Op::AddColumn { name, value } => {
                let rows = batch.num_rows();
                let column = Arc::new(StringArray::from(vec![value.as_str(); rows]));
                append(batch, Field::new(name, DataType::Utf8, false), column)
            }
            Op::AddTimestampColumn { name } => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
                let data_type = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
                let column = TimestampMicrosecondArray::from(vec![now; batch.num_rows()])
                    .with_timezone("UTC");
                append(batch, Field::new(name, data_type, true), Arc::new(column))
            }
            Op::Obfuscate {
                columns,
                include_sha,
            } => crate::obfuscate::obfuscate(batch, columns, *include_sha),
            Op::ChangeTableNames(template) => {
                let mut meta = batch.schema().metadata().clone();
                meta.insert(metadata::TABLE_NAME.to_string(), template.render(table));
                with_fields(batch, |fields| fields, meta)
            }
            Op::RenameColumn { from, to } => {
                let meta = batch.schema().metadata().clone();
                with_fields(
                    batch,
                    |fields| {
                        fields
                            .into_iter()
                            .map(|f| {
                                if f.name() == from {
                                    Arc::new(f.as_ref().clone().with_name(to))
                                } else {
                                    f
                                }
                            })
                            .collect()
                    },
                    meta,
                )
            }
            Op::AddPrimaryKeys(columns) => add_primary_keys(batch, columns, table),
            Op::ObfuscateSensitive { include_sha } => {
                crate::obfuscate::obfuscate_sensitive(batch, *include_sha)
            }
            Op::ObfuscateExcept {
                allowlist,
                include_sha,
                unmatched,
            } => crate::obfuscate::obfuscate_except(batch, allowlist, *include_sha, *unmatched),
            Op::ChangeCase { upper, columns } => crate::case::change_case(batch, columns, *upper),
            Op::DropRows { columns, value } => {
                crate::drop_rows::drop_rows(batch, columns, value.as_deref())
            }
        }
    }
}

/// A batch of `schema` and `columns`, `rows` long (also when there are no columns).
pub(crate) fn rebuild(
    schema: SchemaRef,
    columns: Vec<ArrayRef>,
    rows: usize,
) -> Result<RecordBatch> {
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        schema, columns, &options,
    )?)
}

/// The batch with its fields changed by `f` (same columns) and schema metadata `meta`.
fn with_fields(
    batch: RecordBatch,
    f: impl FnOnce(Vec<FieldRef>) -> Vec<FieldRef>,
    meta: Metadata,
) -> Result<RecordBatch> {
    let fields = f(batch.schema().fields().iter().cloned().collect());
    let schema = Arc::new(Schema::new_with_metadata(fields, meta));
    rebuild(schema, batch.columns().to_vec(), batch.num_rows())
}

/// The batch with one more column, last.
fn append(batch: RecordBatch, field: Field, column: ArrayRef) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(field));
    let mut columns = batch.columns().to_vec();
    columns.push(column);
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    rebuild(Arc::new(schema), columns, batch.num_rows())
}

/// `remove_columns`: whole columns dropped (names that do not exist ignored), and paths deleted
/// inside JSON columns. Null values stay null (CloudQuery writes arrow-go's `(null)` text into
/// them when it deletes paths).
fn remove_columns(batch: RecordBatch, refs: &[ColumnRef]) -> Result<RecordBatch> {
    let schema = batch.schema();
    let resolved = crate::path::Resolved::new(refs, &schema);
    let mut columns = batch.columns().to_vec();
    for (&i, paths) in &resolved.paths {
        let field = schema.field(i);
        if crate::obfuscate::Storage::of(field) != crate::obfuscate::Storage::Json {
            return Err(Error::invalid_spec(format!(
                "column {} is not a JSON column",
                field.name()
            )));
        }
        columns[i] = delete_paths(&columns[i], paths);
    }
    if resolved.whole.is_empty() {
        return rebuild(schema, columns, batch.num_rows());
    }
    if resolved.whole.len() == schema.fields().len() {
        return Err(Error::invalid_spec("cannot remove all columns"));
    }
    let (fields, columns): (Vec<FieldRef>, Vec<ArrayRef>) = schema
        .fields()
        .iter()
        .cloned()
        .zip(columns)
        .enumerate()
        .filter(|(i, _)| !resolved.whole.contains(i))
        .map(|(_, pair)| pair)
        .unzip();
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    rebuild(Arc::new(schema), columns, batch.num_rows())
}

/// A JSON column's values with the paths deleted, one path after the other, as sjson's
/// `Delete` does. Values that are not valid JSON are left as they are.
fn delete_paths(column: &ArrayRef, paths: &[&JsonPath]) -> ArrayRef {
    json::map_documents(column, |text| {
        json::edit_paths(text, paths, |text, _, _, found| {
            found
                .into_iter()
                .map(|e| (json::deletion(text, e), String::new()))
                .collect()
        })
    })
}

/// `add_primary_keys`: the listed columns become primary-key columns (nullability as it is),
/// and no column stays unique, so that a destination does not get a second unique constraint.
/// Only those two keys change: CloudQuery rebuilds the schema from its table model, which also
/// writes explicit `false` flags and drops metadata the model does not know (Quarry's column
/// descriptions among them); the keys Quarry reads mean the same either way.
fn add_primary_keys(batch: RecordBatch, columns: &[String], table: &str) -> Result<RecordBatch> {
    let schema = batch.schema();
    if let Some(missing) = columns
        .iter()
        .find(|c| !schema.fields().iter().any(|f| f.name() == *c))
    {
        return Err(Error::invalid_spec(format!(
            "new primary key column: {missing} not found in: {table}"
        )));
    }
    let meta = schema.metadata().clone();
    with_fields(
        batch,
        |fields| {
            let mut seen = std::collections::HashSet::new();
            fields
                .into_iter()
                .map(|f| {
                    let mut field_meta = f.metadata().clone();
                    field_meta.remove(metadata::UNIQUE);
                    // CloudQuery's table model keeps one column per name: the first.
                    if columns.contains(f.name()) && seen.insert(f.name().clone()) {
                        field_meta.insert(metadata::PRIMARY_KEY, metadata::TRUE);
                    }
                    Arc::new(f.as_ref().clone().with_metadata(field_meta))
                })
                .collect()
        },
        meta,
    )
}
