//! Values that have no native text form in CSV or JSON, made into text.
//!
//! CloudQuery's extension types ride in plain storage types that would otherwise print as hex:
//! `uuid` (16 bytes) becomes its hyphenated lowercase form, `inet` and `mac` (UTF-8 text in
//! binary) become their text, and `json` is embedded as a JSON value in JSON lines and as its text
//! in CSV. CSV has no nested values, so lists, structs and maps become their JSON text there.
//! Binary columns without an extension are hex, as arrow-json and arrow-csv write them.
//! Timestamps are RFC 3339; those with a named zone are written in UTC (see [`utc_offset`]).

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::timezone::Tz;
use arrow_array::types::{
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow_array::{
    Array, ArrayRef, FixedSizeBinaryArray, GenericBinaryArray, GenericStringArray, OffsetSizeTrait,
};
use arrow_schema::{ArrowError, DataType, FieldRef, Schema, TimeUnit};
use quarry_sdk::json::{json_text, push_uuid};
use quarry_sdk::{Extension, RecordBatch, Result};

pub fn csv_batch(batch: &RecordBatch) -> Result<RecordBatch> {
    replace_columns(batch, csv_text)
}

/// `batch` with its top-level timestamps in a zone arrow-json can format.
pub fn json_batch(batch: &RecordBatch) -> Result<RecordBatch> {
    replace_columns(batch, |_, column| Ok(utc_offset(column)))
}

/// `batch` with the columns `replace` returns a new array for; the same batch if there are none.
fn replace_columns(
    batch: &RecordBatch,
    replace: impl Fn(&FieldRef, &ArrayRef) -> Result<Option<ArrayRef>, ArrowError>,
) -> Result<RecordBatch> {
    let schema = batch.schema_ref();
    let mut replaced = false;
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        match replace(field, column)? {
            Some(new) => {
                replaced = true;
                fields.push(Arc::new(
                    field
                        .as_ref()
                        .clone()
                        .with_data_type(new.data_type().clone()),
                ));
                columns.push(new);
            }
            None => {
                fields.push(Arc::clone(field));
                columns.push(Arc::clone(column));
            }
        }
    }
    if !replaced {
        return Ok(batch.clone());
    }
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
}

/// The text form of one column, or `None` if arrow-csv writes it well as it is.
fn csv_text(field: &FieldRef, column: &ArrayRef) -> Result<Option<ArrayRef>, ArrowError> {
    Ok(Some(match (Extension::of(field), column.data_type()) {
        (Some(Extension::Uuid), DataType::FixedSizeBinary(16)) => {
            uuid_text(column.as_fixed_size_binary())
        }
        (Some(_), DataType::Binary) => utf8_text(column.as_binary::<i32>()),
        (Some(_), DataType::LargeBinary) => utf8_text(column.as_binary::<i64>()),
        (_, data_type) if data_type.is_nested() => json_text(field, column.as_ref())?,
        _ => return Ok(utc_offset(column)),
    }))
}

/// A timestamp column with a named zone (`UTC`, `Europe/Paris`), relabelled `+00:00`: the same
/// instants, which arrow then writes in RFC 3339 with `Z`. Without the `chrono-tz` feature (a
/// time-zone database the component would have to carry) arrow can format only fixed offsets.
/// Timestamps nested in lists or structs keep their zone and fail to format if it is named.
fn utc_offset(column: &ArrayRef) -> Option<ArrayRef> {
    const UTC: &str = "+00:00";
    let DataType::Timestamp(unit, Some(tz)) = column.data_type() else {
        return None;
    };
    if tz.parse::<Tz>().is_ok() {
        return None;
    }
    Some(match unit {
        TimeUnit::Second => Arc::new(
            column
                .as_primitive::<TimestampSecondType>()
                .clone()
                .with_timezone(UTC),
        ),
        TimeUnit::Millisecond => Arc::new(
            column
                .as_primitive::<TimestampMillisecondType>()
                .clone()
                .with_timezone(UTC),
        ),
        TimeUnit::Microsecond => Arc::new(
            column
                .as_primitive::<TimestampMicrosecondType>()
                .clone()
                .with_timezone(UTC),
        ),
        TimeUnit::Nanosecond => Arc::new(
            column
                .as_primitive::<TimestampNanosecondType>()
                .clone()
                .with_timezone(UTC),
        ),
    })
}

fn uuid_text(array: &FixedSizeBinaryArray) -> ArrayRef {
    let mut text = StringBuilder::with_capacity(array.len(), array.len() * 36);
    let mut buffer = Vec::with_capacity(36);
    for value in array {
        match value {
            Some(bytes) => {
                buffer.clear();
                push_uuid(bytes, &mut buffer);
                text.append_value(String::from_utf8_lossy(&buffer));
            }
            None => text.append_null(),
        }
    }
    Arc::new(text.finish())
}

/// UTF-8 stored as binary, as a string column: without a copy when it is valid UTF-8 (it should
/// be), with invalid sequences replaced otherwise.
fn utf8_text<O: OffsetSizeTrait>(array: &GenericBinaryArray<O>) -> ArrayRef {
    match GenericStringArray::<O>::try_from_binary(array.clone()) {
        Ok(text) => Arc::new(text),
        Err(_) => Arc::new(
            array
                .iter()
                .map(|v| v.map(String::from_utf8_lossy))
                .collect::<GenericStringArray<O>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::BinaryArray;
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use quarry_sdk::Column;

    use super::*;

    fn field(column: Column) -> FieldRef {
        Arc::new(column.field())
    }

    fn strings(array: &ArrayRef) -> Vec<Option<&str>> {
        array.as_string::<i32>().iter().collect()
    }

    #[test]
    fn extension_columns_become_text_for_csv() {
        let uuid = FixedSizeBinaryArray::try_from_sparse_iter_with_size(
            [
                Some(uuid::Uuid::from_u128(0xa1a2a3a4_b1b2_c1c2_d1d2_d3d4d5d6d7d8).into_bytes()),
                None,
            ]
            .into_iter(),
            16,
        )
        .unwrap();
        let text = csv_text(
            &field(Column::extension("u", Extension::Uuid)),
            &(Arc::new(uuid) as ArrayRef),
        );
        let text = text.unwrap().unwrap();
        assert_eq!(
            strings(&text),
            [Some("a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8"), None]
        );

        let inet: ArrayRef = Arc::new(BinaryArray::from(vec![
            Some(&b"10.0.0.0/8"[..]),
            Some(&b"\xff"[..]),
        ]));
        let text = csv_text(&field(Column::extension("i", Extension::Inet)), &inet)
            .unwrap()
            .unwrap();
        assert_eq!(strings(&text), [Some("10.0.0.0/8"), Some("\u{fffd}")]);

        let plain = csv_text(&field(Column::new("b", DataType::Binary)), &inet).unwrap();
        assert!(
            plain.is_none(),
            "binary without an extension stays binary (arrow-csv writes hex)"
        );
    }

    #[test]
    fn nested_columns_become_json_text_for_csv() {
        let mut list = ListBuilder::new(StringBuilder::new());
        list.append_value([Some("a1"), None, Some("c1")]);
        list.append_null();
        list.append_value(Vec::<Option<&str>>::new());
        let list: ArrayRef = Arc::new(list.finish());
        let column = Column::new("tags", list.data_type().clone());
        let text = csv_text(&field(column), &list).unwrap().unwrap();
        assert_eq!(
            strings(&text),
            [Some(r#"["a1",null,"c1"]"#), None, Some("[]")]
        );
    }
}
