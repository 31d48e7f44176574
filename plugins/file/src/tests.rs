//! The plugin through the `Destination` trait, on a temporary directory: the fixtures (a table of
//! common and extension types whose every value is a function of its row number, and readers of
//! what was written), then [`formats`] (each format round-trips the table) and [`lifecycle`] (when
//! files start, rotate and end).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, FixedSizeBinaryArray, Float64Array, Int64Array,
    StringArray, TimestampMicrosecondArray,
};
use quarry_sdk::{
    Column, DataType, Destination, Extension, Field, Plugin, RecordBatch, Table, TimeUnit,
};
use serde_json::{Value, json};

use crate::FilePlugin;

mod formats;
mod lifecycle;
mod reading;

const EPOCH_US: i64 = 1_700_000_000_000_000; // 2023-11-14T22:13:20Z

fn table() -> Table {
    let tags = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    Table::new("items")
        .column(Column::new("id", DataType::Int64).primary_key())
        .column(Column::new("name", DataType::Utf8))
        .column(Column::new("score", DataType::Float64))
        .column(Column::new("active", DataType::Boolean))
        .column(Column::new(
            "seen",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ))
        .column(Column::new("tags", tags))
        .column(Column::extension("uid", Extension::Uuid))
        .column(Column::extension("doc", Extension::Json))
}

fn name(i: i64) -> Option<String> {
    match i {
        1 => Some("one, \"quoted\"".into()),
        4 => None,
        _ => Some(format!("n{i}")),
    }
}

fn uid(i: i64) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x1234_5678_9abc_4ef0_8000_0000_0000_0000 | i as u128)
}

fn doc(i: i64) -> String {
    format!("{{\"n\": {i},\n  \"s\": \"x y\"}}")
}

/// Rows `range` of [`table`]: every value is a function of the row number.
fn batch(table: &Table, range: Range<i64>) -> RecordBatch {
    let rows: Vec<i64> = range.collect();
    let mut tags = ListBuilder::new(StringBuilder::new());
    for i in &rows {
        tags.append_value([
            Some(format!("a{i}")),
            Some(format!("b{i}")),
            Some(format!("c{i}")),
        ]);
    }
    let docs: Vec<String> = rows.iter().map(|&i| doc(i)).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(rows.clone())),
        Arc::new(StringArray::from(
            rows.iter().map(|&i| name(i)).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            rows.iter().map(|&i| i as f64 + 0.5).collect::<Vec<_>>(),
        )),
        Arc::new(BooleanArray::from(
            rows.iter().map(|i| i % 2 == 0).collect::<Vec<_>>(),
        )),
        Arc::new(
            TimestampMicrosecondArray::from(
                rows.iter()
                    .map(|i| EPOCH_US + i * 1_000_001)
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(tags.finish()),
        Arc::new(
            FixedSizeBinaryArray::try_from_iter(rows.iter().map(|&i| uid(i).into_bytes())).unwrap(),
        ),
        Arc::new(BinaryArray::from_iter_values(
            docs.iter().map(|d| d.as_bytes()),
        )),
    ];
    RecordBatch::try_new(table.schema(), columns).unwrap()
}

fn plugin(spec: Value) -> FilePlugin {
    FilePlugin::new(serde_json::from_value(spec).unwrap()).unwrap()
}

/// A spec writing under `dir` with `path` (a template relative to `dir`) and `extra` keys.
fn spec(dir: &Path, path: &str, format: &str, extra: Value) -> Value {
    let mut spec = json!({"path": format!("{}/{path}", dir.display()), "format": format});
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    spec
}

/// Every file under `dir`, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path)
            } else {
                found.push(path)
            }
        }
    }
    found.sort();
    found
}

/// Writes rows 0..3 and 3..6 of [`table`] in two inserts and flushes; returns the one file.
fn write_two_batches(dir: &Path, format: &str) -> PathBuf {
    let table = table();
    let mut plugin = plugin(spec(
        dir,
        "{{TABLE}}/{{UUID}}.{{FORMAT}}",
        format,
        json!({}),
    ));
    plugin.migrate_table(&table, false).unwrap();
    plugin.insert(&table, batch(&table, 0..3)).unwrap();
    plugin.insert(&table, batch(&table, 3..6)).unwrap();
    plugin.flush().unwrap();
    let files = files(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let file = files[0].clone();
    assert_eq!(file.parent(), Some(dir.join("items").as_path()));
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(stem).map(|u| u.get_version_num()),
        Ok(4),
        "{file:?}"
    );
    assert_eq!(file.extension().and_then(|e| e.to_str()), Some(format));
    file
}

/// The CSV rows of `path` as text, header first.
fn csv_rows(path: &Path, delimiter: u8) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut rows = Vec::new();
    let mut record = Vec::new();
    let (mut field, mut quoted, mut chars) = (String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            '\n' if !quoted => {
                record.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut record));
            }
            c if c == char::from(delimiter) && !quoted => record.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    assert!(
        field.is_empty() && record.is_empty(),
        "the file ends with a line break"
    );
    rows
}

fn csv_row(i: i64) -> Vec<String> {
    let seconds = [
        "20",
        "21.000001",
        "22.000002",
        "23.000003",
        "24.000004",
        "25.000005",
    ];
    vec![
        i.to_string(),
        name(i).unwrap_or_default(),
        format!("{}.5", i),
        (i % 2 == 0).to_string(),
        format!("2023-11-14T22:13:{}Z", seconds[i as usize]),
        format!(r#"["a{i}","b{i}","c{i}"]"#),
        uid(i).to_string(),
        doc(i),
    ]
}

const HEADER: [&str; 8] = [
    "id", "name", "score", "active", "seen", "tags", "uid", "doc",
];
