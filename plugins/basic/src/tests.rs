//! Unit tests: each kind on CloudQuery's own test data with its expected values, the spec
//! checks, and the text helpers. Every transformation goes through [`run`], which also checks
//! that `transform_schema` gives exactly the schema of the batches `transform` returns.

mod case;
mod columns;
mod drop_rows;
mod except;
mod obfuscate;
mod spec;
mod text;

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use quarry_sdk::{Column, Extension, Plugin, Table, Transformer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{Basic, Spec};

/// The plugin for a list of transformations written as JSON.
fn basic(transformations: Value) -> Basic {
    let spec: Spec = serde_json::from_value(json!({ "transformations": transformations }))
        .expect("the test spec deserialises");
    Basic::new(spec).expect("the test spec is valid")
}

/// The error `new` gives for a list of transformations.
fn spec_error(transformations: Value) -> String {
    let spec: Spec = serde_json::from_value(json!({ "transformations": transformations }))
        .expect("the test spec deserialises");
    match Basic::new(spec) {
        Ok(_) => panic!("the spec was accepted"),
        Err(e) => {
            assert_eq!(e.kind, quarry_sdk::ErrorKind::InvalidSpec);
            e.message
        }
    }
}

/// `batch` through the plugin, checking that its schema answer for the input's schema is the
/// schema of every batch out.
fn run(plugin: &mut Basic, batch: RecordBatch) -> Vec<RecordBatch> {
    let schema = plugin
        .transform_schema(batch.schema())
        .expect("transform_schema succeeds");
    let out = plugin.transform(batch).expect("transform succeeds");
    for b in &out {
        assert_eq!(
            b.schema(),
            schema,
            "transform_schema and transform disagree"
        );
    }
    out
}

/// `batch` through the plugin, expecting exactly one batch out.
fn run_one(plugin: &mut Basic, batch: RecordBatch) -> RecordBatch {
    let mut out = run(plugin, batch);
    assert_eq!(out.len(), 1, "expected one batch");
    out.remove(0)
}

/// The error of running `batch` through the plugin (which `transform_schema` must give too).
fn run_error(plugin: &mut Basic, batch: RecordBatch) -> String {
    let schema_error = plugin.transform_schema(batch.schema()).err();
    let error = plugin
        .transform(batch)
        .expect_err("transform fails")
        .message;
    assert_eq!(schema_error.map(|e| e.message), Some(error.clone()));
    error
}

fn sha(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// CloudQuery's marker with the hash of `raw`.
fn marked(raw: &str) -> String {
    format!("Redacted by CloudQuery | {}", sha(raw))
}

fn json_field(name: &str) -> Column {
    Column::extension(name, Extension::Json)
}

fn batch(table: &Table, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(table.schema(), columns).expect("test batch")
}

fn utf8(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn binary(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(
        values
            .iter()
            .map(|v| v.map(str::as_bytes))
            .collect::<BinaryArray>(),
    )
}

/// CloudQuery's `createTestRecord`: two rows of two utf8 columns and a JSON column.
fn cq_record() -> RecordBatch {
    let table = Table::new("testTable")
        .column(Column::new("col1", DataType::Utf8))
        .column(Column::new("col2", DataType::Utf8))
        .column(json_field("col3"));
    batch(
        &table,
        vec![
            utf8(&[Some("val1"), Some("val2")]),
            utf8(&[Some("val3"), Some("val4")]),
            binary(&[
                Some(r#"{"foo":{"bar":["a","b","c"]},"hello":"world"}"#),
                Some(r#"{"foo":{"bar":["d","e","f"]}}"#),
            ]),
        ],
    )
}

/// CloudQuery's `createTestRecordWithMetadata`: `cq_record` plus a binary `col4`, with the
/// given extra schema metadata.
fn cq_record_with(meta: &[(&str, &str)]) -> RecordBatch {
    let record = cq_record();
    let mut fields: Vec<Field> = record
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("col4", DataType::Binary, true));
    let mut metadata = record.schema().metadata().clone();
    for (k, v) in meta {
        metadata.insert(*k, *v);
    }
    let mut columns = record.columns().to_vec();
    columns.push(binary(&[Some("val1"), Some("val5")]));
    RecordBatch::try_new(
        Arc::new(Schema::new_with_metadata(fields, metadata)),
        columns,
    )
    .expect("test batch")
}

/// The values of a utf8 column.
fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let column = batch.column_by_name(name).expect("column exists");
    column
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

/// The values of a binary (or JSON) column, as text.
fn texts(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let column = batch.column_by_name(name).expect("column exists");
    column
        .as_binary::<i32>()
        .iter()
        .map(|v| v.map(|v| String::from_utf8_lossy(v).into_owned()))
        .collect()
}

fn names(schema: &SchemaRef) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

fn some(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| Some(v.to_string())).collect()
}

/// Every kind has a transformation here, and each gives the schema its batches have.
#[test]
fn every_kind_gives_the_schema_its_batches_have() {
    let sensitive = r#"["col1","col3.foo.bar.0"]"#;
    let cases = [
        json!({"kind": "remove_columns", "columns": ["col2", "col3.hello"]}),
        json!({"kind": "add_column", "name": "source", "value": "xkcd"}),
        json!({"kind": "add_current_timestamp_column", "name": "seen_at"}),
        json!({"kind": "obfuscate_columns", "columns": ["col1", "col3.foo.bar.0", "col4"]}),
        json!({"kind": "change_table_names", "new_table_name_template": "cq_{{.OldName}}"}),
        json!({"kind": "rename_column", "name": "col1", "value": "first"}),
        json!({"kind": "add_primary_keys", "columns": ["col2"]}),
        json!({"kind": "obfuscate_sensitive_columns"}),
        json!({"kind": "obfuscate_columns_except", "columns": ["col1", "col3.foo"], "unmatched": "redact"}),
        json!({"kind": "uppercase", "columns": ["col1", "col3"]}),
        json!({"kind": "lowercase", "columns": ["col2", "col3.hello"]}),
        json!({"kind": "drop_rows", "columns": ["col1"], "value": "val1"}),
    ];
    let covered: Vec<&str> = cases.iter().filter_map(|c| c["kind"].as_str()).collect();
    for kind in crate::spec::Kind::ALL {
        assert!(
            covered.contains(&kind.name()),
            "{} has no case",
            kind.name()
        );
    }
    for case in cases {
        let mut plugin = basic(json!([case.clone()]));
        let out = run(
            &mut plugin,
            cq_record_with(&[(crate::obfuscate::SENSITIVE_COLUMNS, sensitive)]),
        );
        assert!(!out.is_empty(), "{case}: no batch");
    }
}

/// A batch whose schema has no `cq:table_name` cannot be matched, as in CloudQuery.
#[test]
fn a_batch_without_a_table_name_is_an_error() {
    let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(schema, vec![utf8(&[Some("x")])]).expect("batch");
    let mut plugin = basic(json!([{"kind": "add_column", "name": "b", "value": "c"}]));
    let error = run_error(&mut plugin, batch);
    assert!(
        error.contains("table name not found in record's metadata"),
        "{error}"
    );
}

/// With no transformations, or none matching, batches pass unchanged.
#[test]
fn unmatched_tables_and_empty_specs_pass_through() {
    let record = cq_record();
    let mut plugin = Basic::new(Spec::default()).expect("empty spec");
    assert_eq!(run_one(&mut plugin, record.clone()), record);
    let mut plugin = basic(json!([
        {"kind": "add_column", "tables": ["other*"], "name": "b", "value": "c"}
    ]));
    assert_eq!(run_one(&mut plugin, record.clone()), record);
}

/// An empty batch in gives no batch out (CloudQuery skips empty records).
#[test]
fn an_empty_batch_is_not_passed_on() {
    let mut plugin = basic(json!([]));
    let empty = RecordBatch::new_empty(cq_record().schema());
    assert!(run(&mut plugin, empty).is_empty());
}
