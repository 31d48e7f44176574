//! How each Arrow type is stored in SQLite, and back.
//!
//! SQLite keeps five storage classes (integer, real, text, blob, null) and converts a value to
//! its column's *affinity* on the way in: a column whose declared type contains `INT` turns the
//! text `18446744073709551615` into a lossy real, a `NUMERIC` one turns `1234.5000` into
//! `1234.5`. So each Arrow type gets a declared type whose affinity keeps its values exactly:
//!
//! | Arrow | declared | stored as |
//! |---|---|---|
//! | Boolean | `BOOLEAN` | integer 0/1 |
//! | Int8..Int64, UInt8..UInt32 | `TINYINT`, `SMALLINT`, `INTEGER`, `BIGINT`, `UTINYINT`, `USMALLINT`, `UINTEGER` | integer |
//! | UInt64, Decimal | `TEXT` | the exact decimal text (an integer may exceed SQLite's 64-bit signed range) |
//! | Float16/32, Float64 | `FLOAT`, `DOUBLE` | real; NaN as the text `NaN` (SQLite would store NULL), -0.0 as 0 |
//! | Utf8 (all widths), `json` | `TEXT` | text |
//! | Binary (all widths) | `BLOB` | blob |
//! | Date | `DATE` | `YYYY-MM-DD` |
//! | Time | `TIME` | `HH:MM:SS[.fff…]`, digits by unit |
//! | Timestamp | `TIMESTAMP` | `YYYY-MM-DD HH:MM:SS[.fff…]` in UTC, digits by unit: SQLite's date functions read it, and text of one unit sorts as time does |
//! | List, Struct, Map | `JSON` | JSON text (always an array or object, so never taken for a number) |
//! | `uuid`, `inet`, `mac` | `UUID`, `INET`, `MACADDR` | their text |

use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, BinaryArray, Float64Array, Int64Array, StringArray};
use arrow_schema::{DataType, Field, TimeUnit};
use quarry_sdk::{Column, Error, Extension, Result};
use rusqlite::types::ValueRef;

/// The declared type of a column, as written in DDL and as `pragma_table_info` prints it.
pub fn column_type(column: &Column) -> Result<String> {
    if let Some(extension) = column.extension {
        return Ok(match extension {
            Extension::Uuid => "UUID",
            // Not `JSON`: that declared type has numeric affinity, which would turn the JSON
            // scalar `12345678901234567890` into a lossy real.
            Extension::Json => "TEXT",
            Extension::Inet => "INET",
            Extension::Mac => "MACADDR",
        }
        .into());
    }
    storage(&column.data_type)
        .map(|s| s.declared.to_string())
        .ok_or_else(|| unsupported(&column.name, &column.data_type))
}

fn unsupported(column: &str, data_type: &DataType) -> Error {
    Error::not_supported(format!(
        "column `{column}` has Arrow type {data_type}, which the SQLite destination cannot store"
    ))
}

/// How values of one Arrow type are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Integer,
    Real,
    /// Decimal text (UInt64, Decimal).
    Number,
    Text,
    Blob,
    Date,
    Time,
    Timestamp,
    Json,
}

struct Storage {
    declared: &'static str,
    class: Class,
}

fn storage(data_type: &DataType) -> Option<Storage> {
    let (declared, class) = match data_type {
        DataType::Boolean => ("BOOLEAN", Class::Integer),
        DataType::Int8 => ("TINYINT", Class::Integer),
        DataType::Int16 => ("SMALLINT", Class::Integer),
        DataType::Int32 => ("INTEGER", Class::Integer),
        DataType::Int64 => ("BIGINT", Class::Integer),
        DataType::UInt8 => ("UTINYINT", Class::Integer),
        DataType::UInt16 => ("USMALLINT", Class::Integer),
        DataType::UInt32 => ("UINTEGER", Class::Integer),
        DataType::UInt64 => ("TEXT", Class::Number),
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => ("TEXT", Class::Number),
        DataType::Float16 | DataType::Float32 => ("FLOAT", Class::Real),
        DataType::Float64 => ("DOUBLE", Class::Real),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ("TEXT", Class::Text),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => ("BLOB", Class::Blob),
        DataType::Date32 | DataType::Date64 => ("DATE", Class::Date),
        DataType::Time32(_) | DataType::Time64(_) => ("TIME", Class::Time),
        DataType::Timestamp(..) => ("TIMESTAMP", Class::Timestamp),
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..) => ("JSON", Class::Json),
        DataType::Dictionary(_, value) => return storage(value),
        _ => return None,
    };
    Some(Storage { declared, class })
}

/// The Arrow type for a declared type this destination did not create (or that differs from
/// what the source wants), so that a migration message can name what the table holds.
pub fn arrow_type(declared: &str) -> (DataType, Option<Extension>) {
    let t = match declared.to_ascii_uppercase().as_str() {
        "BOOLEAN" => DataType::Boolean,
        "TINYINT" => DataType::Int8,
        "SMALLINT" => DataType::Int16,
        "INTEGER" | "INT" => DataType::Int32,
        "BIGINT" => DataType::Int64,
        "UTINYINT" => DataType::UInt8,
        "USMALLINT" => DataType::UInt16,
        "UINTEGER" => DataType::UInt32,
        "FLOAT" => DataType::Float32,
        "DOUBLE" | "REAL" => DataType::Float64,
        "TEXT" | "VARCHAR" => DataType::Utf8,
        "BLOB" => DataType::Binary,
        "DATE" => DataType::Date32,
        "TIME" => DataType::Time64(TimeUnit::Microsecond),
        "TIMESTAMP" | "DATETIME" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "UUID" => return (DataType::FixedSizeBinary(16), Some(Extension::Uuid)),
        "INET" => return (DataType::Binary, Some(Extension::Inet)),
        "MACADDR" => return (DataType::Binary, Some(Extension::Mac)),
        // Anything else (a table SQLite users made themselves) is named by a distinct,
        // honest placeholder.
        _ => DataType::LargeBinary,
    };
    (t, None)
}

/// One column of a batch, converted for binding: every value in the storage class it is
/// written as.
pub enum Values {
    Integer(Int64Array),
    Real(Float64Array),
    Text(StringArray),
    Blob(BinaryArray),
}

impl Values {
    /// The value of row `i`, for binding.
    pub fn get(&self, i: usize) -> ValueRef<'_> {
        let null = |a: &dyn Array| a.is_null(i);
        match self {
            Values::Integer(a) if !null(a) => ValueRef::Integer(a.value(i)),
            // SQLite stores a NaN real as NULL: it is kept as the text `NaN`, which a `FLOAT`
            // column's affinity leaves as text and `Reader` reads back. (-0.0 is stored as 0,
            // which compares equal to it.)
            Values::Real(a) if !null(a) && a.value(i).is_nan() => ValueRef::Text(b"NaN"),
            Values::Real(a) if !null(a) => ValueRef::Real(a.value(i)),
            Values::Text(a) if !null(a) => ValueRef::Text(a.value(i).as_bytes()),
            Values::Blob(a) if !null(a) => ValueRef::Blob(a.value(i)),
            _ => ValueRef::Null,
        }
    }
}

fn cast(array: &dyn Array, to: &DataType) -> Result<ArrayRef> {
    quarry_sdk::json::cast(array, to).map_err(Error::from)
}

/// A batch column as the values it is written as.
pub fn values(field: &Field, array: &ArrayRef) -> Result<Values> {
    let text = |a: ArrayRef| Values::Text(a.as_string::<i32>().clone());
    if let Some(extension) = Extension::of(field) {
        return Ok(match extension {
            Extension::Uuid => text(uuid_text(array)?),
            Extension::Json | Extension::Inet | Extension::Mac => {
                let bytes = cast(array, &DataType::Binary)?;
                let mut out = StringBuilder::with_capacity(array.len(), array.len() * 16);
                for v in bytes.as_binary::<i32>() {
                    out.append_option(v.map(String::from_utf8_lossy));
                }
                Values::Text(out.finish())
            }
        });
    }
    let class = storage(field.data_type())
        .ok_or_else(|| unsupported(field.name(), field.data_type()))?
        .class;
    let array = match field.data_type() {
        DataType::Dictionary(_, value) => cast(array, value)?,
        _ => array.clone(),
    };
    Ok(match class {
        Class::Integer => Values::Integer(cast(&array, &DataType::Int64)?.as_primitive().clone()),
        Class::Real => Values::Real(cast(&array, &DataType::Float64)?.as_primitive().clone()),
        Class::Number | Class::Text | Class::Date => text(cast(&array, &DataType::Utf8)?),
        Class::Blob => Values::Blob(cast(&array, &DataType::Binary)?.as_binary().clone()),
        Class::Time | Class::Timestamp => text(temporal_text(&array)?),
        Class::Json => text(quarry_sdk::json::json_text(
            &Arc::new(field.clone()),
            array.as_ref(),
        )?),
    })
}

fn uuid_text(array: &ArrayRef) -> Result<ArrayRef> {
    let uuids = array.as_fixed_size_binary_opt().ok_or_else(|| {
        Error::internal(format!(
            "a uuid column holds {}, not FixedSizeBinary(16)",
            array.data_type()
        ))
    })?;
    let mut out = StringBuilder::with_capacity(uuids.len(), uuids.len() * 36);
    let mut buffer = Vec::with_capacity(36);
    for v in uuids {
        match v {
            Some(bytes) => {
                buffer.clear();
                quarry_sdk::json::push_uuid(bytes, &mut buffer);
                out.append_value(String::from_utf8_lossy(&buffer));
            }
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// Digits after the second for a unit.
fn digits(unit: TimeUnit) -> usize {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

fn per_second(unit: TimeUnit) -> i64 {
    10_i64.pow(digits(unit) as u32)
}

/// `YYYY-MM-DD HH:MM:SS[.fff…]` (UTC) for `value` units since the epoch: fixed width per unit,
/// so that text comparison is time comparison.
pub fn timestamp_text(value: i64, unit: TimeUnit) -> String {
    let mut text = String::with_capacity(29);
    push_timestamp(&mut text, value, unit);
    text
}

/// Digits are written by hand: two timestamps a row through `format!` were most of the time this
/// destination spent outside SQLite.
fn push_timestamp(text: &mut String, value: i64, unit: TimeUnit) {
    let per_second = per_second(unit);
    let (seconds, fraction) = (value.div_euclid(per_second), value.rem_euclid(per_second));
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (y, m, d) = quarry_sdk::time::civil_from_days(days);
    if (0..=9999).contains(&y) {
        push_digits(text, y as u64, 4);
    } else {
        use std::fmt::Write;
        let _ = write!(text, "{y:04}");
    }
    text.push('-');
    push_digits(text, u64::from(m), 2);
    text.push('-');
    push_digits(text, u64::from(d), 2);
    text.push(' ');
    push_time(text, second_of_day, fraction, unit);
}

/// `value` as `width` zero-padded decimal digits (its lowest `width` digits).
fn push_digits(text: &mut String, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut rest = value;
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    text.extend(digits[..width].iter().map(|&b| char::from(b)));
}

fn push_time(text: &mut String, second_of_day: i64, fraction: i64, unit: TimeUnit) {
    let (h, mi, s) = (
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
    );
    if (0..360_000).contains(&second_of_day) {
        push_digits(text, h as u64, 2);
        text.push(':');
        push_digits(text, mi as u64, 2);
        text.push(':');
        push_digits(text, s as u64, 2);
    } else {
        // A time Arrow holds but no clock shows (negative, or 100 hours and more): as it is.
        use std::fmt::Write;
        let _ = write!(text, "{h:02}:{mi:02}:{s:02}");
    }
    let width = digits(unit);
    if width > 0 {
        text.push('.');
        push_digits(text, fraction as u64, width);
    }
}

/// Times and timestamps as fixed-width text.
fn temporal_text(array: &ArrayRef) -> Result<ArrayRef> {
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 26);
    let mut text = String::with_capacity(32);
    macro_rules! each {
        ($type:ty, $unit:expr, $push:expr) => {{
            for v in array.as_primitive::<$type>() {
                match v {
                    Some(v) => {
                        text.clear();
                        $push(&mut text, i64::from(v), $unit);
                        out.append_value(&text);
                    }
                    None => out.append_null(),
                }
            }
        }};
    }
    let time = |text: &mut String, v: i64, unit: TimeUnit| {
        let per_second = per_second(unit);
        push_time(
            text,
            v.div_euclid(per_second),
            v.rem_euclid(per_second),
            unit,
        );
    };
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            each!(TimestampSecondType, TimeUnit::Second, push_timestamp)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            each!(
                TimestampMillisecondType,
                TimeUnit::Millisecond,
                push_timestamp
            )
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            each!(
                TimestampMicrosecondType,
                TimeUnit::Microsecond,
                push_timestamp
            )
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            each!(
                TimestampNanosecondType,
                TimeUnit::Nanosecond,
                push_timestamp
            )
        }
        DataType::Time32(TimeUnit::Second) => each!(Time32SecondType, TimeUnit::Second, time),
        DataType::Time32(TimeUnit::Millisecond) => {
            each!(Time32MillisecondType, TimeUnit::Millisecond, time)
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            each!(Time64MicrosecondType, TimeUnit::Microsecond, time)
        }
        DataType::Time64(TimeUnit::Nanosecond) => {
            each!(Time64NanosecondType, TimeUnit::Nanosecond, time)
        }
        other => {
            return Err(Error::not_supported(format!(
                "the SQLite destination cannot store {other} values"
            )));
        }
    }
    Ok(Arc::new(out.finish()))
}

/// Reads one column back into `field`'s type from the values SQLite returns for it.
pub struct Reader {
    field: Arc<Field>,
    class: Class,
    integers: Vec<Option<i64>>,
    reals: Vec<Option<f64>>,
    texts: StringBuilder,
    blobs: BinaryBuilder,
}

impl Reader {
    pub fn new(field: &Field) -> Result<Self> {
        let extension = Extension::of(field);
        let class = match extension {
            Some(Extension::Uuid | Extension::Json | Extension::Inet | Extension::Mac) => {
                Class::Text
            }
            None => {
                storage(field.data_type())
                    .ok_or_else(|| unsupported(field.name(), field.data_type()))?
                    .class
            }
        };
        Ok(Reader {
            field: Arc::new(field.clone()),
            class,
            integers: Vec::new(),
            reals: Vec::new(),
            texts: StringBuilder::new(),
            blobs: BinaryBuilder::new(),
        })
    }

    /// Takes one value; a value of another storage class is converted where nothing is lost.
    pub fn push(&mut self, value: ValueRef<'_>) -> Result<()> {
        let wrong = |found: &str| {
            Error::internal(format!(
                "column `{}` holds {found} where the SQLite destination wrote {:?} values; \
                 was the table changed outside Quarry?",
                self.field.name(),
                self.class
            ))
        };
        match (self.class, value) {
            (Class::Integer, ValueRef::Null) => self.integers.push(None),
            (Class::Integer, ValueRef::Integer(i)) => self.integers.push(Some(i)),
            (Class::Integer, _) => return Err(wrong("a non-integer")),
            (Class::Real, ValueRef::Null) => self.reals.push(None),
            (Class::Real, ValueRef::Real(f)) => self.reals.push(Some(f)),
            (Class::Real, ValueRef::Integer(i)) => self.reals.push(Some(i as f64)),
            (Class::Real, ValueRef::Text(b"NaN")) => self.reals.push(Some(f64::NAN)),
            (Class::Real, _) => return Err(wrong("a non-number")),
            (Class::Blob, ValueRef::Null) => self.blobs.append_null(),
            (Class::Blob, ValueRef::Blob(b) | ValueRef::Text(b)) => self.blobs.append_value(b),
            (Class::Blob, _) => return Err(wrong("a number")),
            (_, ValueRef::Null) => self.texts.append_null(),
            (_, ValueRef::Text(t)) => self.texts.append_value(String::from_utf8_lossy(t)),
            (_, ValueRef::Integer(i)) => self.texts.append_value(i.to_string()),
            (_, ValueRef::Real(f)) => self.texts.append_value(f.to_string()),
            (_, ValueRef::Blob(_)) => return Err(wrong("a blob")),
        }
        Ok(())
    }

    /// The column, in the field's type.
    pub fn finish(mut self) -> Result<ArrayRef> {
        let to = self.field.data_type().clone();
        let stored: ArrayRef = match self.class {
            Class::Integer => Arc::new(Int64Array::from(std::mem::take(&mut self.integers))),
            Class::Real => Arc::new(Float64Array::from(std::mem::take(&mut self.reals))),
            Class::Blob => Arc::new(self.blobs.finish()),
            _ => Arc::new(self.texts.finish()),
        };
        match self.class {
            Class::Integer | Class::Real | Class::Blob => cast(&stored, &to),
            _ => quarry_sdk::json::from_text(&self.field, stored.as_string::<i32>())
                .map_err(Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_utc_text() {
        assert_eq!(
            timestamp_text(0, TimeUnit::Microsecond),
            "1970-01-01 00:00:00.000000"
        );
        assert_eq!(
            timestamp_text(1_704_067_200_000_000_001, TimeUnit::Nanosecond),
            "2024-01-01 00:00:00.000000001"
        );
        assert_eq!(timestamp_text(-1, TimeUnit::Second), "1969-12-31 23:59:59");
        assert_eq!(
            timestamp_text(951_782_400_123, TimeUnit::Millisecond),
            "2000-02-29 00:00:00.123"
        );
        assert_eq!(
            timestamp_text(253_402_300_799_999_999, TimeUnit::Microsecond),
            "9999-12-31 23:59:59.999999"
        );
        // Years past 9999 (or before 0) are wider, as `format!` writes them.
        assert_eq!(
            timestamp_text(253_402_300_800, TimeUnit::Second),
            "10000-01-01 00:00:00"
        );
        assert_eq!(
            timestamp_text(-62_167_219_201, TimeUnit::Second),
            "-001-12-31 23:59:59"
        );
    }

    #[test]
    fn times_outside_a_day_are_written_as_they_are() {
        let time = |seconds: i64| {
            let mut text = String::new();
            push_time(&mut text, seconds, 0, TimeUnit::Second);
            text
        };
        assert_eq!(time(3_723), "01:02:03");
        assert_eq!(time(24 * 3600), "24:00:00");
        assert_eq!(time(360_000), "100:00:00");
        assert_eq!(time(-1), "00:00:-1");
    }

    #[test]
    fn declared_types_keep_values_exact() {
        let declared = |t: DataType| column_type(&Column::new("c", t)).unwrap();
        assert_eq!(declared(DataType::UInt64), "TEXT");
        assert_eq!(declared(DataType::Decimal128(20, 4)), "TEXT");
        assert_eq!(declared(DataType::UInt32), "UINTEGER");
        let json = column_type(&Column::extension("j", Extension::Json)).unwrap();
        assert_eq!(json, "TEXT");
        assert!(
            column_type(&Column::new("d", DataType::Duration(TimeUnit::Second)))
                .unwrap_err()
                .message
                .contains("column `d` has Arrow type Duration(s)")
        );
    }
}
