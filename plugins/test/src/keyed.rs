//! A two-column table keyed on `id`, and its batches: for destinations' upsert tests.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use quarry_sdk::{Column, DataType, Table};

/// `keyed (id BIGINT PRIMARY KEY, name TEXT)`.
pub fn table() -> Table {
    Table::new("keyed")
        .column(Column::new("id", DataType::Int64).primary_key())
        .column(Column::new("name", DataType::Utf8))
}

/// Rows of [`table`]: `ids[i]` named `names[i]`.
pub fn batch(ids: &[i64], names: &[&str]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(StringArray::from(names.to_vec())),
    ];
    RecordBatch::try_new(table().schema(), columns).expect("columns of the keyed table")
}
