//! `drop_rows` (CloudQuery's `DropRows`): a row goes when any listed column matches, that is,
//! is null when no `value` is given, or is not null and reads as exactly `value` (its text as
//! arrow-go's `ValueStr` writes it, see [`crate::value_str`]). Listed names that do not exist
//! are ignored; every column of a listed name is checked.

use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_select::filter::filter_record_batch;
use quarry_sdk::{Error, Result};

use crate::value_str;

pub(crate) fn drop_rows(
    batch: RecordBatch,
    columns: &[String],
    value: Option<&str>,
) -> Result<RecordBatch> {
    let schema = batch.schema();
    let rows = batch.num_rows();
    let mut drop = vec![false; rows];
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if !columns.iter().any(|c| c == field.name()) {
            continue;
        }
        // Logical nulls: a `null`-typed column has no validity buffer, yet is all null.
        let nulls = column.logical_nulls();
        let is_null = |row: usize| nulls.as_ref().is_some_and(|n| n.is_null(row));
        match value {
            None => {
                for (row, dropped) in drop.iter_mut().enumerate() {
                    *dropped |= is_null(row);
                }
            }
            Some(value) => {
                // Checked on the type, so that a schema (an empty batch) fails as rows would.
                if !value_str::supported(field) {
                    return Err(Error::invalid_spec(format!(
                        "drop_rows cannot compare values of column {} (type {}) with a value; only scalar columns can be matched",
                        field.name(),
                        value_str::go_type_name(field)
                    )));
                }
                for (row, dropped) in drop.iter_mut().enumerate() {
                    if !*dropped
                        && !is_null(row)
                        && value_str::value_str(field, column.as_ref(), row).as_deref()
                            == Some(value)
                    {
                        *dropped = true;
                    }
                }
            }
        }
    }
    if !drop.contains(&true) {
        return Ok(batch);
    }
    let keep: BooleanArray = drop.iter().map(|d| Some(!d)).collect();
    Ok(filter_record_batch(&batch, &keep)?)
}
