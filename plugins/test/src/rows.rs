//! The `test_rows` table. Row `i` holds:
//! `id` = i; `name` = "name_" + i as 11 digits; `value` = (i % 100003) / 7;
//! `flag` = i % 3 == 0; `created_at` = 2024-01-01T00:00:00Z + i seconds + (i % 1000) µs;
//! `payload` = a 101-byte JSON text built from i; `tags` = ["a"+(i%5), "b"+(i%50), "c"+(i%500)].
//!
//! Fixed-width strings are written straight into their value buffers: at a million rows a second,
//! a `format!` per cell would be most of the plugin's time.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, ListArray, StringArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use quarry_sdk::{Column, DataType, Error, Field, Result, Table, TimeUnit};

/// 2024-01-01T00:00:00Z in microseconds.
const EPOCH_2024_US: i64 = 1_704_067_200_000_000;

const NAME_WIDTH: usize = 16;
const PAYLOAD_TEMPLATE: &[u8] =
    br#"{"ref":"00000000000","name":"name_00000000000","score":"000","group":"g00","active":0,"note":"lorem"}"#;
/// Where each number goes in the template: (offset, width).
const PAYLOAD_REF: (usize, usize) = (8, 11);
const PAYLOAD_NAME: (usize, usize) = (34, 11);
const PAYLOAD_SCORE: (usize, usize) = (56, 3);
const PAYLOAD_GROUP: (usize, usize) = (71, 2);
const PAYLOAD_ACTIVE: usize = 84;

pub fn table(name: &str) -> Table {
    Table::new(name)
        .describe("Synthetic rows; every value is a function of the row number `id`")
        .column(
            Column::new("id", DataType::Int64)
                .primary_key()
                .describe("The row number"),
        )
        .column(
            Column::new("name", DataType::Utf8)
                .describe("\"name_\" and the row number in 11 digits"),
        )
        .column(Column::new("value", DataType::Float64).describe("(id % 100003) / 7"))
        .column(Column::new("flag", DataType::Boolean).describe("id % 3 == 0"))
        .column(
            Column::new(
                "created_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            )
            .describe("2024-01-01T00:00:00Z + id seconds + (id % 1000) microseconds"),
        )
        .column(Column::new("payload", DataType::Utf8).describe("A 101-character JSON document"))
        .column(
            Column::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            )
            .describe("[\"a\" + id % 5, \"b\" + id % 50, \"c\" + id % 500]"),
        )
}

/// Writes `value` as `width` zero-padded decimal digits into `out`.
fn put_digits(out: &mut [u8], mut value: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// A string array whose values all have the same width, filled by `fill(row, value_bytes)`.
fn fixed_width_strings(
    rows: std::ops::Range<u64>,
    width: usize,
    fill: impl Fn(u64, &mut [u8]),
) -> Result<ArrayRef> {
    let n = (rows.end - rows.start) as usize;
    let mut values = vec![0u8; n * width];
    for (row, chunk) in rows.zip(values.chunks_exact_mut(width)) {
        fill(row, chunk);
    }
    let last = i32::try_from(n * width)
        .map_err(|_| Error::invalid_spec("batch_size is too large for one batch"))?;
    let offsets = OffsetBuffer::new(ScalarBuffer::from_iter((0..=last).step_by(width)));
    // Validated construction: checks the offsets and that every value is UTF-8.
    Ok(Arc::new(StringArray::try_new(
        offsets,
        Buffer::from_vec(values),
        None,
    )?))
}

fn tags(rows: std::ops::Range<u64>) -> Result<ArrayRef> {
    let n = (rows.end - rows.start) as usize;
    let mut values = Vec::with_capacity(n * 9);
    let mut offsets = Vec::with_capacity(n * 3 + 1);
    offsets.push(0i32);
    let mut digits = [0u8; 20];
    for i in rows {
        for (prefix, modulus) in [(b'a', 5), (b'b', 50), (b'c', 500)] {
            values.push(prefix);
            let mut v = i % modulus;
            let mut len = 0;
            loop {
                digits[len] = b'0' + (v % 10) as u8;
                len += 1;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            values.extend(digits[..len].iter().rev());
            offsets.push(values.len() as i32);
        }
    }
    let strings = StringArray::try_new(
        OffsetBuffer::new(offsets.into()),
        Buffer::from_vec(values),
        None,
    )?;
    let list_offsets = OffsetBuffer::<i32>::from_lengths(std::iter::repeat_n(3, n));
    let field = Arc::new(Field::new("item", DataType::Utf8, true));
    Ok(Arc::new(ListArray::try_new(
        field,
        list_offsets,
        Arc::new(strings),
        None,
    )?))
}

pub fn columns(start: u64, end: u64) -> Result<Vec<ArrayRef>> {
    let rows = start..end;
    let id: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.clone().map(|i| i as i64)));
    let name = fixed_width_strings(rows.clone(), NAME_WIDTH, |i, out| {
        out[..5].copy_from_slice(b"name_");
        put_digits(&mut out[5..], i);
    })?;
    let value: ArrayRef = Arc::new(Float64Array::from_iter_values(
        rows.clone().map(|i| (i % 100_003) as f64 / 7.0),
    ));
    let flag: ArrayRef = Arc::new(BooleanArray::from_iter(
        rows.clone().map(|i| Some(i % 3 == 0)),
    ));
    let created_at: ArrayRef = Arc::new(
        TimestampMicrosecondArray::from_iter_values(
            rows.clone()
                .map(|i| EPOCH_2024_US + i as i64 * 1_000_000 + (i % 1000) as i64),
        )
        .with_timezone("UTC"),
    );
    let payload = fixed_width_strings(rows.clone(), PAYLOAD_TEMPLATE.len(), |i, out| {
        out.copy_from_slice(PAYLOAD_TEMPLATE);
        let mut put = |(at, width): (usize, usize), v: u64| put_digits(&mut out[at..at + width], v);
        put(PAYLOAD_REF, i);
        put(PAYLOAD_NAME, i);
        put(PAYLOAD_SCORE, i % 1000);
        put(PAYLOAD_GROUP, i % 97);
        out[PAYLOAD_ACTIVE] = if i % 3 == 0 { b'1' } else { b'0' };
    })?;
    Ok(vec![
        id,
        name,
        value,
        flag,
        created_at,
        payload,
        tags(rows)?,
    ])
}

#[cfg(test)]
mod tests {
    use arrow_array::{Array, cast::AsArray};

    use super::*;

    #[test]
    fn row_values_follow_the_documented_formulas() {
        let cols = columns(49_999, 50_001).unwrap();
        // Row 50,000 is the second row of this range.
        assert_eq!(
            cols[0]
                .as_primitive::<arrow_array::types::Int64Type>()
                .value(1),
            50_000
        );
        assert_eq!(cols[1].as_string::<i32>().value(1), "name_00000050000");
        assert_eq!(
            cols[2]
                .as_primitive::<arrow_array::types::Float64Type>()
                .value(1),
            50_000.0 / 7.0
        );
        assert!(!cols[3].as_boolean().value(1));
        assert!(!cols[3].as_boolean().value(0)); // 49,999 % 3 == 1
        assert!(columns(3, 4).unwrap()[3].as_boolean().value(0));
        assert_eq!(
            cols[4]
                .as_primitive::<arrow_array::types::TimestampMicrosecondType>()
                .value(1),
            1_704_067_200_000_000 + 50_000 * 1_000_000
        );
        let payload = cols[5].as_string::<i32>().value(1);
        assert_eq!(
            payload,
            r#"{"ref":"00000050000","name":"name_00000050000","score":"000","group":"g45","active":0,"note":"lorem"}"#
        );
        assert_eq!(payload.len(), 101);
        let tags = cols[6].as_list::<i32>().value(0);
        let tags: Vec<&str> = tags.as_string::<i32>().iter().map(|t| t.unwrap()).collect();
        assert_eq!(tags, ["a4", "b49", "c499"]);
        assert_eq!(cols[6].len(), 2);
    }

    #[test]
    fn the_schema_matches_the_columns() {
        let batch =
            arrow_array::RecordBatch::try_new(table("t").schema(), columns(0, 3).unwrap()).unwrap();
        assert_eq!(batch.num_rows(), 3);
    }
}
