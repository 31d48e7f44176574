//! The flattened columns' types, and what one JSON value becomes in each: the value when it has
//! the JSON type the column expects, null otherwise (CloudQuery's `column_builders_*.go`).

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, FixedSizeBinaryBuilder, Float64Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_schema::{DataType, Field, TimeUnit};
use quarry_sdk::{Column, Extension, Result};
use serde_json::{Number, Value};

use crate::timestamp;

/// A flattened column's type: one of the type names CloudQuery's type schemas use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlatType {
    /// `utf8`: JSON strings.
    Utf8,
    /// `int64`: JSON numbers, truncated toward zero.
    Int64,
    /// `float64`: JSON numbers.
    Float64,
    /// `bool`: JSON booleans.
    Bool,
    /// `json` (and `any`, `binary`, nested objects and lists): any JSON value, as compact text.
    Json,
    /// `uuid`: JSON strings that parse as a UUID.
    Uuid,
    /// `timestamp[us, tz=UTC]`: JSON strings in one of the layouts of [`timestamp`].
    Timestamp,
}

/// The time zone of flattened timestamps.
const UTC: &str = "UTC";

impl FlatType {
    /// The type a type-schema name stands for, if the flattener supports it.
    pub fn from_name(name: &str) -> Option<FlatType> {
        Some(match name {
            "utf8" => FlatType::Utf8,
            "int64" => FlatType::Int64,
            "float64" => FlatType::Float64,
            "bool" => FlatType::Bool,
            "json" => FlatType::Json,
            "uuid" => FlatType::Uuid,
            "timestamp[us, tz=UTC]" => FlatType::Timestamp,
            _ => return None,
        })
    }

    /// The new column's field: nullable, without metadata but an extension type's.
    pub fn field(self, name: &str) -> Field {
        let plain = |data_type| Field::new(name, data_type, true);
        match self {
            FlatType::Utf8 => plain(DataType::Utf8),
            FlatType::Int64 => plain(DataType::Int64),
            FlatType::Float64 => plain(DataType::Float64),
            FlatType::Bool => plain(DataType::Boolean),
            FlatType::Timestamp => {
                plain(DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())))
            }
            FlatType::Json => Column::extension(name, Extension::Json).field(),
            FlatType::Uuid => Column::extension(name, Extension::Uuid).field(),
        }
    }
}

/// The values of one flattened column, as they are read.
pub enum Cells {
    Utf8(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
    Json(BinaryBuilder),
    Uuid(FixedSizeBinaryBuilder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl Cells {
    /// An empty column of `ty` with room for `rows` values.
    pub fn new(ty: FlatType, rows: usize) -> Self {
        match ty {
            FlatType::Utf8 => Cells::Utf8(StringBuilder::with_capacity(rows, rows * 8)),
            FlatType::Int64 => Cells::Int64(Int64Builder::with_capacity(rows)),
            FlatType::Float64 => Cells::Float64(Float64Builder::with_capacity(rows)),
            FlatType::Bool => Cells::Bool(BooleanBuilder::with_capacity(rows)),
            FlatType::Json => Cells::Json(BinaryBuilder::with_capacity(rows, rows * 8)),
            FlatType::Uuid => Cells::Uuid(FixedSizeBinaryBuilder::with_capacity(rows, 16)),
            FlatType::Timestamp => Cells::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(UTC),
            ),
        }
    }

    /// Appends what `value` (`None` for a missing key) becomes in this column.
    pub fn push(&mut self, value: Option<&Value>) -> Result<()> {
        match self {
            Cells::Utf8(b) => b.append_option(value.and_then(Value::as_str)),
            Cells::Int64(b) => b.append_option(value.and_then(Value::as_number).and_then(int64)),
            Cells::Float64(b) => b.append_option(value.and_then(Value::as_f64)),
            Cells::Bool(b) => b.append_option(value.and_then(Value::as_bool)),
            Cells::Json(b) => match value {
                None | Some(Value::Null) => b.append_null(),
                Some(v) => {
                    let mut text = String::new();
                    write_json(&mut text, v);
                    b.append_value(text);
                }
            },
            Cells::Uuid(b) => match value.and_then(Value::as_str).and_then(parse_uuid) {
                Some(bytes) => b.append_value(bytes)?,
                None => b.append_null(),
            },
            Cells::Timestamp(b) => b.append_option(
                value
                    .and_then(Value::as_str)
                    .and_then(timestamp::parse_micros),
            ),
        }
        Ok(())
    }

    /// The finished column.
    pub fn finish(self) -> ArrayRef {
        match self {
            Cells::Utf8(mut b) => Arc::new(b.finish()),
            Cells::Int64(mut b) => Arc::new(b.finish()),
            Cells::Float64(mut b) => Arc::new(b.finish()),
            Cells::Bool(mut b) => Arc::new(b.finish()),
            Cells::Json(mut b) => Arc::new(b.finish()),
            Cells::Uuid(mut b) => Arc::new(b.finish()),
            Cells::Timestamp(mut b) => Arc::new(b.finish()),
        }
    }
}

/// A JSON number as an `int64`: integers exactly, fractions truncated toward zero, and null for
/// what `int64` cannot hold.
fn int64(n: &Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.is_u64() {
        return None;
    }
    let f = n.as_f64()?.trunc();
    // -2^63 is exact in f64; 2^63 is the first value past the range.
    (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0)
        .contains(&f)
        .then_some(f as i64)
}

/// A UUID in any form Go's `uuid.Parse` reads: 36 characters with dashes, the same in braces or
/// after `urn:uuid:`, or 32 hex digits.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let s = s.as_bytes();
    let hex: Vec<u8> = match s.len() {
        32 => s.to_vec(),
        36 | 38 | 45 => {
            let s = match s.len() {
                38 if s[0] == b'{' && s[37] == b'}' => &s[1..37],
                45 if s[..9].eq_ignore_ascii_case(b"urn:uuid:") => &s[9..],
                36 => s,
                _ => return None,
            };
            if [8, 13, 18, 23].iter().any(|&i| s[i] != b'-') {
                return None;
            }
            s.iter().copied().filter(|&b| b != b'-').collect()
        }
        _ => return None,
    };
    if hex.len() != 32 {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut bytes = [0u8; 16];
    for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(bytes)
}

/// Writes `value` as compact JSON the way CloudQuery's Go encoder does: object keys sorted, no
/// HTML escaping, `U+2028`/`U+2029` escaped, fractions in Go's float format (`1.0` is `1`,
/// `1e21` is `1e+21`). Integers are written exactly, where Go would round them through `float64`.
pub fn write_json(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_json(out, item);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &Number) {
    if n.is_i64() || n.is_u64() {
        out.push_str(&n.to_string());
        return;
    }
    let Some(f) = n.as_f64() else {
        out.push_str(&n.to_string());
        return;
    };
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Go: shortest digits in `e` form, a sign on the exponent, no leading zero in it.
        let text = format!("{f:e}");
        match text.split_once('e') {
            Some((mantissa, exponent)) if !exponent.starts_with('-') => {
                out.push_str(mantissa);
                out.push_str("e+");
                out.push_str(exponent);
            }
            _ => out.push_str(&text),
        }
    } else {
        out.push_str(&f.to_string());
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(value: Value) -> String {
        let mut out = String::new();
        write_json(&mut out, &value);
        out
    }

    #[test]
    fn json_is_written_as_go_writes_it() {
        assert_eq!(
            text(json!({"b": [1, 2.5, null], "a": {"y": true, "x": "<&>"}})),
            r#"{"a":{"x":"<&>","y":true},"b":[1,2.5,null]}"#
        );
        let numbers: Value =
            serde_json::from_str("[1.0, 1e2, 1e21, 1.5e-7, 0.000001, -2.25]").expect("valid JSON");
        assert_eq!(text(numbers), "[1,100,1e+21,1.5e-7,0.000001,-2.25]");
        assert_eq!(
            text(json!(["q\"\\\n\t\u{1}\u{2028}é"])),
            r#"["q\"\\\n\t\u0001\u2028é"]"#
        );
        assert_eq!(text(json!(9_007_199_254_740_993_u64)), "9007199254740993");
    }

    #[test]
    fn uuids_are_read_in_every_form_go_reads() {
        let want = [
            0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17,
            0x40, 0x00,
        ];
        for text in [
            "123e4567-e89b-12d3-a456-426614174000",
            "123E4567-E89B-12D3-A456-426614174000",
            "{123e4567-e89b-12d3-a456-426614174000}",
            "URN:uuid:123e4567-e89b-12d3-a456-426614174000",
            "123e4567e89b12d3a456426614174000",
        ] {
            assert_eq!(parse_uuid(text), Some(want), "{text}");
        }
        for text in [
            "",
            "test",
            "123e4567-e89b-12d3-a456-42661417400g",
            "123e4567e-89b-12d3-a456-426614174000",
            "(123e4567-e89b-12d3-a456-426614174000)",
            "+23e4567e89b12d3a456426614174000",
        ] {
            assert_eq!(parse_uuid(text), None, "{text}");
        }
    }

    #[test]
    fn int64_truncates_toward_zero_and_refuses_what_it_cannot_hold() {
        let n = |text: &str| serde_json::from_str::<Number>(text).expect("a number");
        assert_eq!(int64(&n("2")), Some(2));
        assert_eq!(int64(&n("-2.9")), Some(-2));
        assert_eq!(int64(&n("2.9")), Some(2));
        assert_eq!(int64(&n("1e3")), Some(1000));
        assert_eq!(int64(&n("9223372036854775807")), Some(i64::MAX));
        assert_eq!(int64(&n("9223372036854775808")), None);
        assert_eq!(int64(&n("1e300")), None);
    }
}
