//! Arrow batches as `COPY ... FROM STDIN (FORMAT binary)` data: the signature and header, then
//! per row the field count and each field as a length and its binary value (-1 for NULL), then
//! the trailer. Each column's encoder is chosen once per batch, so the row loop only writes.

use std::net::IpAddr;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Float16Type, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, IntervalMonthDayNanoType, Time32MillisecondType,
    Time32SecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, TimeUnit};
use bytes::{BufMut, BytesMut};
use postgres_protocol::types as pg;
use quarry_sdk::{Column, Error, Extension, Result};

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const EPOCH_DAYS: i32 = 10_957;
const EPOCH_US: i64 = 946_684_800_000_000;

/// Each row's range of items in a list column.
type Ranges<'a> = Box<dyn Fn(usize) -> std::ops::Range<usize> + 'a>;

/// How one column's values are written.
enum Encoder<'a> {
    Bool(&'a arrow_array::BooleanArray),
    /// Any integer, widened to the column's width (2, 4 or 8 bytes).
    Int(Box<dyn Fn(usize) -> i64 + 'a>, usize),
    Float4(Box<dyn Fn(usize) -> f32 + 'a>),
    Float8(&'a arrow_array::Float64Array),
    /// Text, bytea, and the raw bytes of a uuid.
    Bytes(Box<dyn Fn(usize) -> &'a [u8] + 'a>),
    Jsonb(Box<dyn Fn(usize) -> &'a [u8] + 'a>),
    /// Nested values (structs, maps, lists of lists) as their JSON text, made once per batch.
    NestedJson(arrow_array::StringArray),
    Inet(Box<dyn Fn(usize) -> &'a [u8] + 'a>),
    Mac(Box<dyn Fn(usize) -> &'a [u8] + 'a>),
    Date(Box<dyn Fn(usize) -> i32 + 'a>),
    /// Microseconds since PostgreSQL's epoch, or since midnight for a time.
    Micros(Box<dyn Fn(usize) -> i64 + 'a>),
    Interval(Box<dyn Fn(usize) -> (i64, i32, i32) + 'a>),
    /// An unscaled integer and its scale.
    Numeric(Box<dyn Fn(usize) -> i128 + 'a>, i8),
    /// A `Decimal256`'s unscaled integer and its scale.
    WideNumeric(Box<dyn Fn(usize) -> arrow_buffer::i256 + 'a>, i8),
    /// A one-dimensional array: each row's range of items, and how items are written.
    List {
        ranges: Ranges<'a>,
        items: &'a dyn Array,
        item: Box<Encoder<'a>>,
        oid: u32,
        name: String,
    },
}

/// The type OID of an element type as our DDL names it (`types::column_type`).
fn element_oid(ddl: &str) -> Option<u32> {
    Some(match ddl {
        "boolean" => 16,
        "bytea" => 17,
        "bigint" => 20,
        "smallint" => 21,
        "integer" => 23,
        "text" => 25,
        "real" => 700,
        "double precision" => 701,
        "macaddr" => 829,
        "inet" => 869,
        "date" => 1082,
        "time" => 1083,
        "timestamp" => 1114,
        "timestamptz" => 1184,
        "interval" => 1186,
        "uuid" => 2950,
        "jsonb" => 3802,
        d if d.starts_with("numeric") => 1700,
        _ => return None,
    })
}

/// Microseconds since 1970 as PostgreSQL's binary timestamp counts them (since 2000). A value
/// beyond what that can hold is `±infinity` (`i64::MAX`/`MIN` on the wire), never a wrapped
/// date.
fn since_2000(micros: i64) -> i64 {
    match micros.checked_sub(EPOCH_US) {
        Some(t) if micros != i64::MAX && micros != i64::MIN => t,
        _ if micros < 0 => i64::MIN,
        _ => i64::MAX,
    }
}

/// `value` in microseconds, PostgreSQL's unit: nanoseconds are cut to the microsecond before
/// them (toward the past, on either side of 1970), and a value beyond `i64` microseconds — far
/// outside PostgreSQL's range of years — saturates (see [`since_2000`]).
fn micros(unit: &TimeUnit, value: i64) -> i64 {
    match unit {
        TimeUnit::Second => value.saturating_mul(1_000_000),
        TimeUnit::Millisecond => value.saturating_mul(1_000),
        TimeUnit::Microsecond => value,
        TimeUnit::Nanosecond => value.div_euclid(1_000),
    }
}

/// The values of any array stored as 64-bit integers (timestamps, durations, times), whatever
/// its unit: a view of its buffer, not a copy.
fn i64_values(array: &dyn Array) -> ScalarBuffer<i64> {
    let data = array.to_data();
    ScalarBuffer::new(data.buffers()[0].clone(), data.offset(), data.len())
}

fn binary_values<'a>(array: &'a dyn Array) -> Option<Box<dyn Fn(usize) -> &'a [u8] + 'a>> {
    Some(match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            Box::new(move |i| a.value(i).as_bytes())
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            Box::new(move |i| a.value(i).as_bytes())
        }
        DataType::Binary => {
            let a = array.as_binary::<i32>();
            Box::new(move |i| a.value(i))
        }
        DataType::LargeBinary => {
            let a = array.as_binary::<i64>();
            Box::new(move |i| a.value(i))
        }
        DataType::FixedSizeBinary(_) => {
            let a = array.as_fixed_size_binary();
            Box::new(move |i| a.value(i))
        }
        _ => return None,
    })
}

impl<'a> Encoder<'a> {
    fn new(column: &Column, array: &'a dyn Array) -> Result<Self> {
        let unsupported = || {
            Error::not_supported(format!(
                "column `{}`: the PostgreSQL destination cannot write Arrow type {} yet",
                column.name,
                array.data_type()
            ))
        };
        match column.extension {
            Some(Extension::Json) => {
                return binary_values(array)
                    .map(Encoder::Jsonb)
                    .ok_or_else(unsupported);
            }
            Some(Extension::Inet) => {
                return binary_values(array)
                    .map(Encoder::Inet)
                    .ok_or_else(unsupported);
            }
            Some(Extension::Mac) => {
                return binary_values(array)
                    .map(Encoder::Mac)
                    .ok_or_else(unsupported);
            }
            Some(Extension::Uuid) | None => {}
        }
        if column.extension.is_none() && crate::types::column_type(column)? == "jsonb" {
            let field = std::sync::Arc::new(column.field());
            let text = quarry_sdk::json::json_text(&field, array)
                .map_err(|e| Error::internal(format!("column `{}`: as JSON: {e}", column.name)))?;
            return Ok(Encoder::NestedJson(text.as_string::<i32>().clone()));
        }
        macro_rules! int {
            ($t:ty, $width:expr) => {{
                let a = array.as_primitive::<$t>();
                Encoder::Int(Box::new(move |i| a.value(i) as i64), $width)
            }};
        }
        Ok(match array.data_type() {
            DataType::Boolean => Encoder::Bool(array.as_boolean()),
            DataType::Int8 => int!(Int8Type, 2),
            DataType::Int16 => int!(Int16Type, 2),
            DataType::UInt8 => int!(UInt8Type, 2),
            DataType::Int32 => int!(Int32Type, 4),
            DataType::UInt16 => int!(UInt16Type, 4),
            DataType::Int64 => int!(Int64Type, 8),
            DataType::UInt32 => int!(UInt32Type, 8),
            DataType::UInt64 => {
                let a = array.as_primitive::<UInt64Type>();
                Encoder::Numeric(Box::new(move |i| a.value(i) as i128), 0)
            }
            DataType::Decimal128(_, scale) if *scale >= 0 => {
                let a = array.as_primitive::<Decimal128Type>();
                Encoder::Numeric(Box::new(move |i| a.value(i)), *scale)
            }
            DataType::Decimal256(_, scale) if *scale >= 0 => {
                let a = array.as_primitive::<arrow_array::types::Decimal256Type>();
                Encoder::WideNumeric(Box::new(move |i| a.value(i)), *scale)
            }
            DataType::Float16 => {
                let a = array.as_primitive::<Float16Type>();
                Encoder::Float4(Box::new(move |i| a.value(i).to_f32()))
            }
            DataType::Float32 => {
                let a = array.as_primitive::<Float32Type>();
                Encoder::Float4(Box::new(move |i| a.value(i)))
            }
            DataType::Float64 => Encoder::Float8(array.as_primitive::<Float64Type>()),
            DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::FixedSizeBinary(_) => {
                Encoder::Bytes(binary_values(array).ok_or_else(unsupported)?)
            }
            DataType::Date32 => {
                let a = array.as_primitive::<Date32Type>();
                Encoder::Date(Box::new(move |i| a.value(i) - EPOCH_DAYS))
            }
            DataType::Date64 => {
                let a = array.as_primitive::<Date64Type>();
                Encoder::Date(Box::new(move |i| {
                    (a.value(i).div_euclid(86_400_000)) as i32 - EPOCH_DAYS
                }))
            }
            DataType::Timestamp(unit, _) => {
                let (unit, values) = (*unit, i64_values(array));
                Encoder::Micros(Box::new(move |i| since_2000(micros(&unit, values[i]))))
            }
            DataType::Time32(TimeUnit::Second) => {
                let a = array.as_primitive::<Time32SecondType>();
                Encoder::Micros(Box::new(move |i| a.value(i) as i64 * 1_000_000))
            }
            DataType::Time32(_) => {
                let a = array.as_primitive::<Time32MillisecondType>();
                Encoder::Micros(Box::new(move |i| a.value(i) as i64 * 1_000))
            }
            DataType::Time64(unit) => {
                let (unit, values) = (*unit, i64_values(array));
                Encoder::Micros(Box::new(move |i| micros(&unit, values[i])))
            }
            DataType::Duration(unit) => {
                let (unit, values) = (*unit, i64_values(array));
                Encoder::Interval(Box::new(move |i| (micros(&unit, values[i]), 0, 0)))
            }
            DataType::Interval(arrow_schema::IntervalUnit::MonthDayNano) => {
                let a = array.as_primitive::<IntervalMonthDayNanoType>();
                Encoder::Interval(Box::new(move |i| {
                    let v = a.value(i);
                    (v.nanoseconds / 1_000, v.days, v.months)
                }))
            }
            DataType::List(_) | DataType::LargeList(_) => {
                let (item_field, items, ranges): (_, &dyn Array, Ranges<'_>) =
                    match array.data_type() {
                        DataType::List(f) => {
                            let a = array.as_list::<i32>();
                            let offsets = a.value_offsets();
                            (
                                f,
                                a.values().as_ref(),
                                Box::new(move |i| offsets[i] as usize..offsets[i + 1] as usize),
                            )
                        }
                        DataType::LargeList(f) => {
                            let a = array.as_list::<i64>();
                            let offsets = a.value_offsets();
                            (
                                f,
                                a.values().as_ref(),
                                Box::new(move |i| offsets[i] as usize..offsets[i + 1] as usize),
                            )
                        }
                        _ => return Err(unsupported()),
                    };
                let item_column = Column::from_field(item_field);
                let ddl = crate::types::column_type(&item_column)?;
                let oid = element_oid(&ddl).ok_or_else(unsupported)?;
                Encoder::List {
                    ranges,
                    items,
                    item: Box::new(Encoder::new(&item_column, items)?),
                    oid,
                    name: column.name.clone(),
                }
            }
            _ => return Err(unsupported()),
        })
    }

    /// Writes row `i`'s value (length and bytes).
    fn write(&self, i: usize, out: &mut BytesMut, column: &str) -> Result<()> {
        let at = out.len();
        out.put_i32(0);
        self.write_value(i, out, column)?;
        let len = (out.len() - at - 4) as i32;
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// Writes row `i`'s value bytes, without their length.
    fn write_value(&self, i: usize, out: &mut BytesMut, column: &str) -> Result<()> {
        match self {
            Encoder::Bool(a) => pg::bool_to_sql(a.value(i), out),
            Encoder::Int(v, 2) => out.put_i16(v(i) as i16),
            Encoder::Int(v, 4) => out.put_i32(v(i) as i32),
            Encoder::Int(v, _) => out.put_i64(v(i)),
            Encoder::Float4(v) => out.put_f32(v(i)),
            Encoder::Float8(a) => out.put_f64(a.value(i)),
            Encoder::Bytes(v) => out.put_slice(v(i)),
            Encoder::Jsonb(v) => {
                out.put_u8(1);
                out.put_slice(v(i));
            }
            Encoder::NestedJson(text) => {
                out.put_u8(1);
                out.put_slice(text.value(i).as_bytes());
            }
            Encoder::Inet(v) => {
                let text = std::str::from_utf8(v(i)).unwrap_or_default();
                let (ip, mask) = parse_inet(text).ok_or_else(|| {
                    Error::internal(format!(
                        "column `{column}`: `{text}` is not an IP address or network"
                    ))
                })?;
                pg::inet_to_sql(ip, mask, out);
            }
            Encoder::Mac(v) => {
                let mac = quarry_sdk::parse_mac(v(i)).ok_or_else(|| {
                    Error::internal(format!(
                        "column `{column}`: `{}` is not a MAC address",
                        String::from_utf8_lossy(v(i))
                    ))
                })?;
                pg::macaddr_to_sql(mac, out);
            }
            Encoder::Date(v) => pg::date_to_sql(v(i), out),
            Encoder::Micros(v) => out.put_i64(v(i)),
            Encoder::Interval(v) => {
                let (us, days, months) = v(i);
                out.put_i64(us);
                out.put_i32(days);
                out.put_i32(months);
            }
            Encoder::Numeric(v, scale) => numeric(v(i), *scale, out),
            Encoder::WideNumeric(v, scale) => wide_numeric(v(i), *scale, out),
            Encoder::List {
                ranges,
                items,
                item,
                oid,
                name,
            } => {
                let range = ranges(i);
                let dimension = pg::ArrayDimension {
                    len: range.len() as i32,
                    lower_bound: 1,
                };
                let mut failed = None;
                pg::array_to_sql(
                    [dimension],
                    *oid,
                    range,
                    |idx, buf| {
                        if items.is_null(idx) {
                            return Ok(postgres_protocol::IsNull::Yes);
                        }
                        if let Err(e) = item.write_value(idx, buf, name) {
                            failed = Some(e);
                        }
                        Ok(postgres_protocol::IsNull::No)
                    },
                    out,
                )
                .map_err(|e| Error::internal(format!("column `{name}`: {e}")))?;
                if let Some(e) = failed {
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// `10.0.0.1`, `10.0.0.0/8`, `::1`, `fe80::/10`.
fn parse_inet(text: &str) -> Option<(IpAddr, u8)> {
    let (ip, mask) = match text.split_once('/') {
        Some((ip, mask)) => (ip.parse::<IpAddr>().ok()?, Some(mask.parse::<u8>().ok()?)),
        None => (text.parse::<IpAddr>().ok()?, None),
    };
    let full = if ip.is_ipv4() { 32 } else { 128 };
    let mask = mask.unwrap_or(full);
    (mask <= full).then_some((ip, mask))
}

/// PostgreSQL's binary `numeric`: base-10000 digits with a weight, a sign and a display scale.
/// The integer and the fraction are split first, so that padding the fraction to whole digits
/// never multiplies past `u128` (a `Decimal128(38, s)` near its maximum leaves no room); no
/// allocation, as this runs for every decimal and `UInt64` value written.
fn numeric(unscaled: i128, scale: i8, out: &mut BytesMut) {
    let negative = unscaled < 0;
    let magnitude = unscaled.unsigned_abs();
    // A 128-bit decimal's scale is at most 38, and 10^38 fits.
    let scale = (scale.max(0) as u32).min(38);
    let divisor = 10u128.pow(scale);
    let (mut integer, mut fraction) = (magnitude / divisor, magnitude % divisor);
    // Base-10000 digits, least significant first: the fraction's, then the integer's.
    let mut digits = [0i16; 24];
    let mut n = 0;
    let fraction_digits = scale.div_ceil(4);
    if fraction_digits > 0 {
        // The last fraction digit holds what is left after whole groups, padded with zeros.
        let pad = fraction_digits * 4 - scale;
        let last = 10u128.pow(4 - pad);
        digits[n] = ((fraction % last) * 10u128.pow(pad)) as i16;
        fraction /= last;
        n += 1;
        for _ in 1..fraction_digits {
            digits[n] = (fraction % 10_000) as i16;
            fraction /= 10_000;
            n += 1;
        }
    }
    let mut weight = -1i16;
    while integer > 0 {
        digits[n] = (integer % 10_000) as i16;
        integer /= 10_000;
        n += 1;
        weight += 1;
    }
    let digits = &mut digits[..n];
    digits.reverse();
    let first = digits.iter().position(|&d| d != 0).unwrap_or(n);
    let last = digits
        .iter()
        .rposition(|&d| d != 0)
        .map_or(first, |i| i + 1);
    let digits = &digits[first..last];
    out.put_i16(digits.len() as i16);
    // Leading zero digits are dropped, each lowering the weight.
    out.put_i16(if digits.is_empty() {
        0
    } else {
        weight - first as i16
    });
    out.put_u16(if negative { 0x4000 } else { 0 });
    out.put_i16(scale as i16);
    for &d in digits {
        out.put_i16(d);
    }
}

/// [`numeric`] for a `Decimal256` (up to 76 digits), through the value's decimal digits: rarer
/// and wider, so simplicity wins over speed here.
fn wide_numeric(unscaled: arrow_buffer::i256, scale: i8, out: &mut BytesMut) {
    let text = unscaled.to_string();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, text.as_str()),
    };
    let scale = usize::try_from(scale).unwrap_or(0);
    // At least one integer digit, then both sides padded to whole base-10000 digits.
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (integer, fraction) = digits.split_at(digits.len() - scale);
    let integer = format!("{integer:0>width$}", width = integer.len().div_ceil(4) * 4);
    let fraction = format!(
        "{fraction:0<width$}",
        width = fraction.len().div_ceil(4) * 4
    );
    let group = |c: &[u8]| c.iter().fold(0i16, |n, d| n * 10 + i16::from(d - b'0'));
    let mut groups: Vec<i16> = integer
        .as_bytes()
        .chunks(4)
        .chain(fraction.as_bytes().chunks(4))
        .map(group)
        .collect();
    let mut weight = (integer.len() / 4) as i16 - 1;
    let leading = groups.iter().take_while(|&&d| d == 0).count();
    groups.drain(..leading);
    weight -= leading as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    out.put_i16(groups.len() as i16);
    out.put_i16(if groups.is_empty() { 0 } else { weight });
    out.put_u16(if negative { 0x4000 } else { 0 });
    out.put_i16(scale as i16);
    for d in groups {
        out.put_i16(d);
    }
}

/// The signature, flags and extension length that open binary COPY data.
pub fn header(out: &mut BytesMut) {
    out.put_slice(b"PGCOPY\n\xff\r\n\0");
    out.put_i32(0);
    out.put_i32(0);
}

/// The end of binary COPY data.
pub fn trailer(out: &mut BytesMut) {
    out.put_i16(-1);
}

/// Appends the rows of `batch`, whose columns are `columns` in order.
pub fn rows(columns: &[Column], batch: &RecordBatch, out: &mut BytesMut) -> Result<()> {
    let encoders = columns
        .iter()
        .zip(batch.columns())
        .map(|(c, a)| Encoder::new(c, a.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    let arrays = batch.columns();
    for row in 0..batch.num_rows() {
        out.put_i16(columns.len() as i16);
        for ((encoder, array), column) in encoders.iter().zip(arrays).zip(columns) {
            if array.is_null(row) {
                out.put_i32(-1);
            } else {
                encoder.write(row, out, &column.name)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::{Buf, BytesMut};

    /// The decimal text PostgreSQL shows for a binary `numeric`.
    fn shown(mut bytes: &[u8]) -> String {
        let (count, weight) = (bytes.get_i16(), bytes.get_i16());
        let (sign, scale) = (bytes.get_u16(), bytes.get_i16() as usize);
        let digits: Vec<i16> = (0..count).map(|_| bytes.get_i16()).collect();
        let digit = |at: i16| {
            usize::try_from(weight - at)
                .ok()
                .and_then(|i| digits.get(i).copied())
                .unwrap_or(0)
        };
        let mut integer: String = (0..=weight.max(0))
            .rev()
            .map(|at| format!("{:04}", digit(at)))
            .collect();
        integer = integer.trim_start_matches('0').to_string();
        if integer.is_empty() {
            integer.push('0');
        }
        let fraction: String = (1..=scale.div_ceil(4) as i16)
            .map(|at| format!("{:04}", digit(-at)))
            .collect();
        let sign = if sign == 0x4000 { "-" } else { "" };
        match scale {
            0 => format!("{sign}{integer}"),
            _ => format!("{sign}{integer}.{}", &fraction[..scale]),
        }
    }

    #[test]
    fn timestamps_beyond_the_wire_range_are_infinity_not_a_wrapped_date() {
        use arrow_schema::TimeUnit;
        let at = |unit, v| super::since_2000(super::micros(&unit, v));
        assert_eq!(at(TimeUnit::Second, i64::MIN), i64::MIN);
        assert_eq!(at(TimeUnit::Millisecond, i64::MAX), i64::MAX);
        assert_eq!(at(TimeUnit::Microsecond, i64::MIN + 1), i64::MIN);
        assert_eq!(at(TimeUnit::Microsecond, super::EPOCH_US), 0);
        assert_eq!(at(TimeUnit::Nanosecond, -1), -1 - super::EPOCH_US);
    }

    #[test]
    fn numeric_holds_every_decimal128_value() {
        let max = 10i128.pow(38) - 1;
        let cases: &[(i128, i8, &str)] = &[
            (0, 0, "0"),
            (0, 3, "0.000"),
            (1, 4, "0.0001"),
            (-12345, 2, "-123.45"),
            (10_000, 0, "10000"),
            (1_000_000_000, 9, "1.000000000"),
            (max, 0, "99999999999999999999999999999999999999"),
            (-max, 9, "-99999999999999999999999999999.999999999"),
            (max, 38, "0.99999999999999999999999999999999999999"),
            (u64::MAX as i128, 0, "18446744073709551615"),
        ];
        for &(unscaled, scale, text) in cases {
            let mut out = BytesMut::new();
            super::numeric(unscaled, scale, &mut out);
            assert_eq!(shown(&out), text, "{unscaled} at scale {scale}");
        }
    }
}
