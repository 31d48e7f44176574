//! The `test_all_types` table: one column of every other Arrow type the SDK supports, the
//! CloudQuery extension types included, with values derived from the row number and a null in
//! every nullable column on each seventh row.

use std::sync::Arc;

use arrow_array::builder::{FixedSizeBinaryBuilder, Int64Builder, ListBuilder};
use arrow_array::{
    ArrayRef, BinaryArray, Date32Array, Decimal128Array, Float32Array, Int8Array, Int16Array,
    Int32Array, LargeStringArray, StructArray, Time64MicrosecondArray, TimestampNanosecondArray,
    UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow_buffer::NullBuffer;
use quarry_sdk::{Column, DataType, Extension, Field, Result, Table, TimeUnit};

pub const NAME: &str = "test_all_types";

fn struct_fields() -> Vec<Field> {
    vec![
        Field::new("n", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]
}

pub fn table() -> Table {
    Table::new(NAME)
        .describe("One column per supported Arrow type; row `id` % 7 == 6 holds nulls")
        .column(Column::new("id", DataType::Int64).primary_key())
        .column(Column::new("int8", DataType::Int8))
        .column(Column::new("int16", DataType::Int16))
        .column(Column::new("int32", DataType::Int32))
        .column(Column::new("uint8", DataType::UInt8))
        .column(Column::new("uint16", DataType::UInt16))
        .column(Column::new("uint32", DataType::UInt32))
        .column(Column::new("uint64", DataType::UInt64))
        .column(Column::new("float32", DataType::Float32))
        .column(Column::new("decimal", DataType::Decimal128(20, 4)))
        .column(Column::new("binary", DataType::Binary))
        .column(Column::new("large_text", DataType::LargeUtf8))
        .column(Column::new("date", DataType::Date32))
        .column(Column::new("time", DataType::Time64(TimeUnit::Microsecond)))
        .column(Column::new(
            "timestamp_ns",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
        ))
        .column(Column::new(
            "int_list",
            DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
        ))
        .column(Column::new(
            "record",
            DataType::Struct(struct_fields().into()),
        ))
        .column(Column::extension("uuid", Extension::Uuid))
        .column(Column::extension("json", Extension::Json))
        .column(Column::extension("inet", Extension::Inet))
        .column(Column::extension("mac", Extension::Mac))
}

/// Every nullable column is null on rows where this is true.
fn is_null_row(i: u64) -> bool {
    i % 7 == 6
}

fn opt<T>(i: u64, value: T) -> Option<T> {
    (!is_null_row(i)).then_some(value)
}

pub fn columns(start: u64, end: u64) -> Result<Vec<ArrayRef>> {
    let rows = || start..end;
    let n = (end - start) as usize;

    let mut uuid = FixedSizeBinaryBuilder::with_capacity(n, 16);
    let mut list = ListBuilder::new(Int64Builder::new());
    for i in rows() {
        if is_null_row(i) {
            uuid.append_null();
            list.append_null();
            continue;
        }
        // A version-4-shaped UUID whose last 8 bytes are the row number.
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&0x5155_4152_5259_4000u64.to_be_bytes());
        bytes[8..].copy_from_slice(&(0x8000_0000_0000_0000 | i).to_be_bytes());
        uuid.append_value(bytes)?;
        list.append_value((0..(i % 4) as i64).map(|k| Some(i as i64 * 10 + k)));
    }

    let texts: Vec<Option<String>> = rows().map(|i| opt(i, format!("text {i}"))).collect();
    let record = StructArray::try_new(
        struct_fields().into(),
        vec![
            Arc::new(arrow_array::Int64Array::from_iter(
                rows().map(|i| opt(i, i as i64)),
            )),
            Arc::new(arrow_array::StringArray::from_iter(
                texts.iter().map(|t| t.as_deref()),
            )),
        ],
        Some(NullBuffer::from_iter(rows().map(|i| !is_null_row(i)))),
    )?;
    let json: Vec<Option<String>> = rows()
        .map(|i| opt(i, format!(r#"{{"row":{i},"even":{}}}"#, i % 2 == 0)))
        .collect();
    let inet: Vec<Option<String>> = rows()
        .map(|i| opt(i, format!("10.{}.{}.0/24", (i >> 8) % 256, i % 256)))
        .collect();
    let mac: Vec<Option<String>> = rows()
        .map(|i| {
            opt(
                i,
                format!(
                    "02:00:00:{:02x}:{:02x}:{:02x}",
                    (i >> 16) & 0xff,
                    (i >> 8) & 0xff,
                    i & 0xff
                ),
            )
        })
        .collect();
    let bytes = |v: &[Option<String>]| -> ArrayRef {
        Arc::new(BinaryArray::from_iter(
            v.iter().map(|s| s.as_deref().map(str::as_bytes)),
        ))
    };

    Ok(vec![
        Arc::new(arrow_array::Int64Array::from_iter_values(
            rows().map(|i| i as i64),
        )),
        Arc::new(Int8Array::from_iter(
            rows().map(|i| opt(i, (i % 256) as u8 as i8)),
        )),
        Arc::new(Int16Array::from_iter(
            rows().map(|i| opt(i, (i % 65536) as u16 as i16)),
        )),
        Arc::new(Int32Array::from_iter(rows().map(|i| opt(i, -(i as i32))))),
        Arc::new(UInt8Array::from_iter(
            rows().map(|i| opt(i, (i % 256) as u8)),
        )),
        Arc::new(UInt16Array::from_iter(
            rows().map(|i| opt(i, (i % 65536) as u16)),
        )),
        Arc::new(UInt32Array::from_iter(rows().map(|i| opt(i, i as u32)))),
        Arc::new(UInt64Array::from_iter(rows().map(|i| opt(i, u64::MAX - i)))),
        Arc::new(Float32Array::from_iter(
            rows().map(|i| opt(i, i as f32 / 4.0)),
        )),
        Arc::new(
            Decimal128Array::from_iter(rows().map(|i| opt(i, i as i128 * 12_345)))
                .with_precision_and_scale(20, 4)?,
        ),
        Arc::new(BinaryArray::from_iter(
            rows().map(|i| opt(i, i.to_le_bytes())),
        )),
        Arc::new(LargeStringArray::from_iter(
            texts.iter().map(|t| t.as_deref()),
        )),
        Arc::new(Date32Array::from_iter(
            rows().map(|i| opt(i, 19_723 + (i % 3650) as i32)),
        )),
        Arc::new(Time64MicrosecondArray::from_iter(
            rows().map(|i| opt(i, (i % 86_400) as i64 * 1_000_000)),
        )),
        Arc::new(TimestampNanosecondArray::from_iter(rows().map(|i| {
            opt(i, 1_704_067_200_000_000_000 + i as i64 * 1_000_000_001)
        }))),
        Arc::new(list.finish()),
        Arc::new(record),
        Arc::new(uuid.finish()),
        bytes(&json),
        bytes(&inet),
        bytes(&mac),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_match_the_schema_and_hold_nulls() {
        let batch =
            arrow_array::RecordBatch::try_new(table().schema(), columns(0, 14).unwrap()).unwrap();
        assert_eq!(batch.num_rows(), 14);
        for (i, column) in batch.columns().iter().enumerate().skip(1) {
            assert_eq!(
                column.null_count(),
                2,
                "column {}",
                batch.schema().field(i).name()
            );
        }
    }

    /// The fuzz corpus of plugin output (`tests/fuzz/ipc`): valid IPC streams as a plugin sends
    /// them, which the host's fuzz target mutates. Regenerated with `QUARRY_BLESS=1`; compared
    /// otherwise, so the corpus follows the encoder.
    #[test]
    fn the_ipc_fuzz_corpus_is_current() {
        use quarry_sdk::ipc;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/ipc");
        let all =
            arrow_array::RecordBatch::try_new(table().schema(), columns(0, 8).unwrap()).unwrap();
        let rows_table = crate::rows::table("test_rows");
        let rows = arrow_array::RecordBatch::try_new(
            rows_table.schema(),
            crate::rows::columns(0, 5).unwrap(),
        )
        .unwrap();
        let entries = [
            (
                "all_types.schema.arrows",
                ipc::encode_schema(&table().schema()).unwrap(),
            ),
            ("all_types.batch.arrows", ipc::encode_batch(&all).unwrap()),
            (
                "all_types.one_row.arrows",
                ipc::encode_batch(&all.slice(6, 1)).unwrap(),
            ),
            (
                "test_rows.schema.arrows",
                ipc::encode_schema(&rows_table.schema()).unwrap(),
            ),
            ("test_rows.batch.arrows", ipc::encode_batch(&rows).unwrap()),
        ];
        let bless = std::env::var_os("QUARRY_BLESS").is_some();
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
        }
        for (name, bytes) in entries {
            let path = dir.join(name);
            if bless {
                std::fs::write(&path, &bytes).unwrap();
            } else {
                let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
                    panic!("{}: {e} (QUARRY_BLESS=1 writes it)", path.display())
                });
                assert!(
                    on_disk == bytes,
                    "{} is stale: QUARRY_BLESS=1 rewrites it",
                    path.display()
                );
            }
        }
    }
}
