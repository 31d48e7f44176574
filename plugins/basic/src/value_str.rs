//! Values as text the way arrow-go's `ValueStr` (and CloudQuery's extension arrays) write them:
//! what `drop_rows` compares its `value` with. Also Go's names of Arrow types, for messages.
//!
//! Integers are decimal; floats Go's `strconv.FormatFloat(v, 'g', -1, bits)` (`1e+06`,
//! `0.0001`, `NaN`, `+Inf`); booleans `true`/`false`; binary base64; UUIDs canonical; inet
//! `addr/prefix`; MAC `aa:bb:..`; JSON its stored text; dates `2006-01-02`; timestamps RFC 3339
//! with as many fractional digits as needed and `Z` for UTC (`2025-06-27T10:40:35.000914Z`);
//! times `15:04:05[.000...]` by unit; durations `<n><unit>`; decimals `big.Float.Text('g',
//! precision)`.

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_schema::{DataType, Field, TimeUnit};
use base64::Engine;
use quarry_sdk::{Extension, parse_mac};

/// Whether [`value_str`] can render values of this field (it can for the scalar types).
pub(crate) fn supported(field: &Field) -> bool {
    supported_type(field.data_type())
}

fn supported_type(data_type: &DataType) -> bool {
    use DataType::*;
    match data_type {
        Null
        | Boolean
        | Int8
        | Int16
        | Int32
        | Int64
        | UInt8
        | UInt16
        | UInt32
        | UInt64
        | Float16
        | Float32
        | Float64
        | Utf8
        | LargeUtf8
        | Utf8View
        | Binary
        | LargeBinary
        | BinaryView
        | FixedSizeBinary(_)
        | Date32
        | Date64
        | Time32(_)
        | Time64(_)
        | Duration(_)
        | Decimal128(_, _)
        | Decimal256(_, _) => true,
        Timestamp(_, tz) => tz.as_deref().is_none_or(|tz| utc_offset(tz).is_some()),
        Dictionary(_, values) => supported_type(values),
        _ => false,
    }
}

/// The text of the valid value at `row` (check [`supported`] first; other types give `None`).
pub(crate) fn value_str(field: &Field, array: &dyn Array, row: usize) -> Option<String> {
    let ext = Extension::of(field);
    render(array, row, ext)
}

fn render(array: &dyn Array, row: usize, ext: Option<Extension>) -> Option<String> {
    use DataType::*;
    Some(match array.data_type() {
        Boolean => array.as_boolean().value(row).to_string(),
        Int8 => array.as_primitive::<Int8Type>().value(row).to_string(),
        Int16 => array.as_primitive::<Int16Type>().value(row).to_string(),
        Int32 => array.as_primitive::<Int32Type>().value(row).to_string(),
        Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        UInt8 => array.as_primitive::<UInt8Type>().value(row).to_string(),
        UInt16 => array.as_primitive::<UInt16Type>().value(row).to_string(),
        UInt32 => array.as_primitive::<UInt32Type>().value(row).to_string(),
        UInt64 => array.as_primitive::<UInt64Type>().value(row).to_string(),
        Float16 => go_float(
            f64::from(array.as_primitive::<Float16Type>().value(row).to_f32()),
            32,
        ),
        Float32 => go_float(
            f64::from(array.as_primitive::<Float32Type>().value(row)),
            32,
        ),
        Float64 => go_float(array.as_primitive::<Float64Type>().value(row), 64),
        Utf8 => array.as_string::<i32>().value(row).to_string(),
        LargeUtf8 => array.as_string::<i64>().value(row).to_string(),
        Utf8View => array.as_string_view().value(row).to_string(),
        Binary => binary(array.as_binary::<i32>().value(row), ext),
        LargeBinary => base64(array.as_binary::<i64>().value(row)),
        BinaryView => base64(array.as_binary_view().value(row)),
        FixedSizeBinary(16) if ext == Some(Extension::Uuid) => {
            uuid(array.as_fixed_size_binary().value(row))
        }
        FixedSizeBinary(_) => base64(array.as_fixed_size_binary().value(row)),
        Date32 => date(i64::from(array.as_primitive::<Date32Type>().value(row))),
        // Go truncates the milliseconds to whole days towards zero.
        Date64 => date(array.as_primitive::<Date64Type>().value(row) / 86_400_000),
        Timestamp(unit, tz) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row)
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
            };
            let offset = match tz.as_deref() {
                None => 0,
                Some(tz) => utc_offset(tz)?,
            };
            timestamp(v, *unit, offset)
        }
        Time32(unit) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive_opt::<Time32SecondType>()?.value(row),
                _ => array
                    .as_primitive_opt::<Time32MillisecondType>()?
                    .value(row),
            };
            time_of_day(i64::from(v), *unit)
        }
        Time64(unit) => {
            let v = match unit {
                TimeUnit::Microsecond => array
                    .as_primitive_opt::<Time64MicrosecondType>()?
                    .value(row),
                _ => array.as_primitive_opt::<Time64NanosecondType>()?.value(row),
            };
            time_of_day(v, *unit)
        }
        Duration(unit) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<DurationSecondType>().value(row),
                TimeUnit::Millisecond => array.as_primitive::<DurationMillisecondType>().value(row),
                TimeUnit::Microsecond => array.as_primitive::<DurationMicrosecondType>().value(row),
                TimeUnit::Nanosecond => array.as_primitive::<DurationNanosecondType>().value(row),
            };
            format!("{v}{}", unit_name(*unit))
        }
        Decimal128(precision, scale) => go_decimal(
            &array
                .as_primitive::<Decimal128Type>()
                .value(row)
                .to_string(),
            *precision,
            *scale,
        ),
        Decimal256(precision, scale) => go_decimal(
            &array
                .as_primitive::<Decimal256Type>()
                .value(row)
                .to_string(),
            *precision,
            *scale,
        ),
        Dictionary(_, _) => {
            let dict = array.as_any_dictionary();
            let key = *dict.normalized_keys().get(row)?;
            return render(dict.values().as_ref(), key, ext);
        }
        _ => return None,
    })
}

fn binary(value: &[u8], ext: Option<Extension>) -> String {
    match ext {
        Some(Extension::Json) => String::from_utf8_lossy(value).into_owned(),
        Some(Extension::Inet) => inet(&String::from_utf8_lossy(value)),
        Some(Extension::Mac) => match parse_mac(value) {
            Some(mac) => mac
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
            None => String::from_utf8_lossy(value).into_owned(),
        },
        _ => base64(value),
    }
}

fn base64(value: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(value)
}

fn uuid(b: &[u8]) -> String {
    let hex: String = b.iter().map(|b| format!("{b:02x}")).collect();
    if hex.len() != 32 {
        return base64(b);
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `addr/prefix` with the address in its canonical form (CloudQuery parses the stored CIDR
/// and prints it back, host bits kept).
fn inet(text: &str) -> String {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    match (
        addr.parse::<std::net::IpAddr>(),
        prefix.map(str::parse::<u8>),
    ) {
        (Ok(ip), Some(Ok(p))) => format!("{ip}/{p}"),
        (Ok(ip), None) => ip.to_string(),
        _ => text.to_string(),
    }
}

/// A time zone's offset from UTC in seconds, for the zones arrow-go resolves without a time
/// zone database: UTC and fixed `±hh:mm` offsets.
fn utc_offset(tz: &str) -> Option<i64> {
    match tz {
        "" | "UTC" | "utc" | "Etc/UTC" | "Z" | "GMT" | "Etc/GMT" | "Zulu" | "Universal" => {
            return Some(0);
        }
        _ => {}
    }
    let (sign, rest) = match tz.as_bytes().first()? {
        b'+' => (1, &tz[1..]),
        b'-' => (-1, &tz[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    let (h, m) = (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?);
    (h < 24 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

fn unit_name(unit: TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    }
}

fn nanos_per(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// Go's `2006`: at least four digits, a minus sign before them for years before 0.
fn year(y: i64) -> String {
    if y < 0 {
        format!("-{:04}", -y)
    } else {
        format!("{y:04}")
    }
}

fn date(days: i64) -> String {
    let (y, m, d) = quarry_sdk::time::civil_from_days(days);
    format!("{}-{m:02}-{d:02}", year(y))
}

/// Go's `time.RFC3339Nano` of an instant, shown at `offset` seconds east of UTC.
fn timestamp(value: i64, unit: TimeUnit, offset: i64) -> String {
    let per = nanos_per(unit);
    let per_second = 1_000_000_000 / per;
    let seconds = value.div_euclid(per_second).saturating_add(offset);
    let nanos = value.rem_euclid(per_second) * per;
    let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let mut out = format!(
        "{}T{:02}:{:02}:{:02}",
        date(days),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    if offset == 0 {
        out.push('Z');
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let minutes = offset.abs() / 60;
        out.push_str(&format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60));
    }
    out
}

/// arrow-go's `Time32`/`Time64` `FormattedString`: the time of day, with a fraction of as many
/// digits as the unit has.
fn time_of_day(value: i64, unit: TimeUnit) -> String {
    let nanos = (i128::from(value) * i128::from(nanos_per(unit))).rem_euclid(86_400_000_000_000);
    let secs = (nanos / 1_000_000_000) as i64;
    let base = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    let fraction = (nanos % 1_000_000_000) as i64;
    match unit {
        TimeUnit::Second => base,
        TimeUnit::Millisecond => format!("{base}.{:03}", fraction / 1_000_000),
        TimeUnit::Microsecond => format!("{base}.{:06}", fraction / 1_000),
        TimeUnit::Nanosecond => format!("{base}.{fraction:09}"),
    }
}

/// Decimal digits without trailing zeros, and the decimal point's position relative to them
/// (Go's `decimal`: value = 0.digits × 10^point).
fn digits_and_point(mantissa: &str, exponent: i64) -> (String, i64) {
    let digits = mantissa.trim_start_matches('0');
    let leading = (mantissa.len() - digits.len()) as i64;
    let trimmed = digits.trim_end_matches('0');
    (
        trimmed.to_string(),
        mantissa.len() as i64 - leading + exponent,
    )
}

/// Go's `%e` and `%f` tails of the `'g'` format, shared by `strconv` and `math/big`.
fn go_g(negative: bool, digits: &str, point: i64, prec: i64, eprec: i64) -> String {
    let nd = digits.len() as i64;
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    let exp = point - 1;
    if exp < -4 || exp >= eprec {
        let prec = prec.min(nd);
        out.push(digits.chars().next().unwrap_or('0'));
        if prec > 1 {
            out.push('.');
            out.push_str(&digits[1..prec as usize]);
        }
        let e = if nd == 0 { 0 } else { exp };
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", e.abs()));
        return out;
    }
    let frac = if prec > point {
        nd - point
    } else {
        prec - point
    }
    .max(0);
    if point > 0 {
        for i in 0..point {
            out.push(
                digits
                    .as_bytes()
                    .get(i as usize)
                    .map_or('0', |&b| b as char),
            );
        }
    } else {
        out.push('0');
    }
    if frac > 0 {
        out.push('.');
        for i in 0..frac {
            let j = point + i;
            let c = if j >= 0 && j < nd {
                digits.as_bytes()[j as usize] as char
            } else {
                '0'
            };
            out.push(c);
        }
    }
    out
}

/// Go's `strconv.FormatFloat(v, 'g', -1, bits)`.
pub(crate) fn go_float(v: f64, bits: u32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let negative = v.is_sign_negative();
    if v == 0.0 {
        return if negative { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` is the shortest text that reads back as the same value, as Go's is.
    let text = if bits == 32 {
        format!("{:e}", (v as f32).abs())
    } else {
        format!("{:e}", v.abs())
    };
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let mantissa = mantissa.replace('.', "");
    let (digits, point) = digits_and_point(&mantissa, exponent + 1 - mantissa.len() as i64);
    let nd = digits.len() as i64;
    go_g(negative, &digits, point, nd, 6)
}

/// arrow-go's decimal `ValueStr`: `big.Float.Text('g', precision)` of the unscaled value
/// `unscaled` × 10^-scale (exact for decimal128, whose 128-bit float holds every digit).
fn go_decimal(unscaled: &str, precision: u8, scale: i8) -> String {
    let (negative, magnitude) = match unscaled.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, unscaled),
    };
    let (digits, point) = digits_and_point(magnitude, -i64::from(scale));
    if digits.is_empty() {
        return "0".into();
    }
    let prec = i64::from(precision.max(1));
    let nd = digits.len() as i64;
    let eprec = if prec > nd && nd >= point { nd } else { prec };
    go_g(negative, &digits, point, prec, eprec)
}

/// Go's `DataType.String()` of a field's type (`int64`, `timestamp[us, tz=UTC]`, `uuid`...).
pub(crate) fn go_type_name(field: &Field) -> String {
    match Extension::of(field) {
        Some(ext) if ext.storage_type() == *field.data_type() => ext.name().to_string(),
        _ => go_data_type(field.data_type()),
    }
}

fn go_data_type(data_type: &DataType) -> String {
    use DataType::*;
    match data_type {
        Null => "null".into(),
        Boolean => "bool".into(),
        Int8 => "int8".into(),
        Int16 => "int16".into(),
        Int32 => "int32".into(),
        Int64 => "int64".into(),
        UInt8 => "uint8".into(),
        UInt16 => "uint16".into(),
        UInt32 => "uint32".into(),
        UInt64 => "uint64".into(),
        Float16 => "float16".into(),
        Float32 => "float32".into(),
        Float64 => "float64".into(),
        Utf8 => "utf8".into(),
        LargeUtf8 => "large_utf8".into(),
        Utf8View => "string_view".into(),
        Binary => "binary".into(),
        LargeBinary => "large_binary".into(),
        BinaryView => "binary_view".into(),
        FixedSizeBinary(n) => format!("fixed_size_binary[{n}]"),
        Date32 => "date32".into(),
        Date64 => "date64".into(),
        Timestamp(unit, None) => format!("timestamp[{}]", unit_name(*unit)),
        Timestamp(unit, Some(tz)) => format!("timestamp[{}, tz={tz}]", unit_name(*unit)),
        Time32(unit) => format!("time32[{}]", unit_name(*unit)),
        Time64(unit) => format!("time64[{}]", unit_name(*unit)),
        Duration(unit) => format!("duration[{}]", unit_name(*unit)),
        Decimal128(p, s) => format!("decimal({p}, {s})"),
        Decimal256(p, s) => format!("decimal256({p}, {s})"),
        List(f) | LargeList(f) => {
            let prefix = if matches!(data_type, LargeList(_)) {
                "large_list"
            } else {
                "list"
            };
            let nullable = if f.is_nullable() { ", nullable" } else { "" };
            format!("{prefix}<{}: {}{nullable}>", f.name(), go_type_name(f))
        }
        Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| {
                    let nullable = if f.is_nullable() { " nullable" } else { "" };
                    format!("{}: {}{nullable}", f.name(), go_type_name(f))
                })
                .collect();
            format!("struct<{}>", inner.join(", "))
        }
        other => other.to_string(),
    }
}
