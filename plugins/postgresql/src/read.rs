//! Reading PostgreSQL's binary COPY format into Arrow: which Arrow type each PostgreSQL type
//! becomes (the inverse of [`crate::types`], so that a table written by the destination reads
//! back as the same Arrow schema), and the decoders that append binary values to builders.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, IntervalMonthDayNanoBuilder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::types::IntervalMonthDayNano;
use arrow_array::{ArrayRef, ListArray};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer, i256};
use arrow_schema::{DataType, Field, FieldRef, IntervalUnit, TimeUnit};
use quarry_sdk::{Column, Extension};

/// Microseconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const EPOCH_US: i64 = 946_684_800_000_000;
/// Days from 1970-01-01 to 2000-01-01.
const EPOCH_DAYS: i32 = 10_957;

/// How a column's binary values are decoded, and so its Arrow type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decode {
    Bool,
    Int2,
    Int4,
    Int8,
    /// `oid`: an unsigned 32-bit number, widened.
    Oid,
    Float4,
    Float8,
    /// `numeric(p, s)`, exact in a decimal of that precision and scale.
    Numeric {
        precision: u8,
        scale: i8,
    },
    /// `numeric` without a declared precision: any value (NaN and infinities included), as text.
    NumericText,
    /// Text in any of its types (`text`, `varchar`, `char`, `name`, enums, `xml`, `citext`).
    Text,
    Json,
    /// `jsonb`: a version byte, then the text.
    Jsonb,
    Bytea,
    Date,
    Timestamp,
    Timestamptz,
    Time,
    Interval,
    Uuid,
    Inet,
    Mac,
    /// A one-dimensional array of the element type.
    Array(Box<Decode>),
}

/// The OIDs of the built-in types this source reads.
mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const CIDR: u32 = 650;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const MACADDR: u32 = 829;
    pub const INET: u32 = 869;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// A PostgreSQL type as the catalog describes it (domains already resolved to their base).
#[derive(Debug, Clone, Default)]
pub struct PgType {
    pub oid: u32,
    /// `pg_type.typname`, for types without a fixed OID (`citext`).
    pub name: String,
    /// `pg_type.typtype`: `b` base, `e` enum, `c` composite, `r` range...
    pub kind: String,
    /// The declared modifier (`numeric(p, s)`), -1 for none.
    pub typmod: i32,
}

impl Decode {
    /// How values of `ty` are read, or `None` for a type this source cannot map.
    pub fn of(ty: &PgType) -> Option<Decode> {
        if ty.kind == "e" {
            return Some(Decode::Text);
        }
        Some(match ty.oid {
            oid::BOOL => Decode::Bool,
            oid::INT2 => Decode::Int2,
            oid::INT4 => Decode::Int4,
            oid::INT8 => Decode::Int8,
            oid::OID => Decode::Oid,
            oid::FLOAT4 => Decode::Float4,
            oid::FLOAT8 => Decode::Float8,
            oid::NUMERIC => numeric(ty.typmod),
            oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::CHAR | oid::XML => {
                Decode::Text
            }
            oid::JSON => Decode::Json,
            oid::JSONB => Decode::Jsonb,
            oid::BYTEA => Decode::Bytea,
            oid::DATE => Decode::Date,
            oid::TIMESTAMP => Decode::Timestamp,
            oid::TIMESTAMPTZ => Decode::Timestamptz,
            oid::TIME => Decode::Time,
            oid::INTERVAL => Decode::Interval,
            oid::UUID => Decode::Uuid,
            oid::INET | oid::CIDR => Decode::Inet,
            oid::MACADDR => Decode::Mac,
            _ if ty.name == "citext" => Decode::Text,
            _ => return None,
        })
    }

    /// For an array: whether its elements are read as text (`col::text[]`) because Arrow has
    /// no list of an extension type that the destinations keep.
    pub fn element_as_text(&self) -> bool {
        matches!(
            self,
            Decode::Json | Decode::Jsonb | Decode::Uuid | Decode::Inet | Decode::Mac
        )
    }

    /// The Arrow type values are read into.
    pub fn data_type(&self) -> DataType {
        match self {
            Decode::Bool => DataType::Boolean,
            Decode::Int2 => DataType::Int16,
            Decode::Int4 => DataType::Int32,
            Decode::Int8 | Decode::Oid => DataType::Int64,
            Decode::Float4 => DataType::Float32,
            Decode::Float8 => DataType::Float64,
            Decode::Numeric { precision, scale } if *precision <= 38 => {
                DataType::Decimal128(*precision, *scale)
            }
            Decode::Numeric { precision, scale } => DataType::Decimal256(*precision, *scale),
            Decode::NumericText | Decode::Text => DataType::Utf8,
            Decode::Json | Decode::Jsonb | Decode::Bytea | Decode::Inet | Decode::Mac => {
                DataType::Binary
            }
            Decode::Date => DataType::Date32,
            Decode::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Decode::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Decode::Time => DataType::Time64(TimeUnit::Microsecond),
            Decode::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            Decode::Uuid => DataType::FixedSizeBinary(16),
            Decode::Array(element) => {
                DataType::List(Arc::new(Field::new("item", element.data_type(), true)))
            }
        }
    }

    /// The column Quarry syncs: the Arrow type, and CloudQuery's extension where there is one.
    pub fn column(&self, name: &str) -> Column {
        let extension = match self {
            Decode::Json | Decode::Jsonb => Some(Extension::Json),
            Decode::Uuid => Some(Extension::Uuid),
            Decode::Inet => Some(Extension::Inet),
            Decode::Mac => Some(Extension::Mac),
            _ => None,
        };
        match extension {
            Some(extension) => Column::extension(name, extension),
            None => Column::new(name, self.data_type()),
        }
    }
}

/// `numeric` with its modifier: PostgreSQL packs precision and scale as `((p << 16) | s) + 4`,
/// the scale an 11-bit signed number (negative scales exist since PostgreSQL 15).
fn numeric(typmod: i32) -> Decode {
    if typmod < 4 {
        return Decode::NumericText;
    }
    let packed = typmod - 4;
    let precision = (packed >> 16) & 0xffff;
    let scale = ((packed & 0x7ff) ^ 0x400) - 0x400;
    match (u8::try_from(precision), i8::try_from(scale)) {
        (Ok(precision @ 1..=76), Ok(scale))
            if scale >= 0 && i32::from(scale) <= i32::from(precision) =>
        {
            Decode::Numeric { precision, scale }
        }
        // Negative scales and the like: exact as text.
        _ => Decode::NumericText,
    }
}

/// A value that does not fit its column's Arrow type, said for a person.
pub type DecodeError = String;

/// An Arrow builder for one column, fed binary values.
pub enum Builder {
    Bool(BooleanBuilder),
    Int2(Int16Builder),
    Int4(Int32Builder),
    Int8(Int64Builder),
    Oid(Int64Builder),
    Float4(Float32Builder),
    Float8(Float64Builder),
    Decimal128(Decimal128Builder, i8),
    Decimal256(Decimal256Builder, i8),
    NumericText(StringBuilder),
    Text(StringBuilder),
    Json(BinaryBuilder),
    Jsonb(BinaryBuilder),
    Bytea(BinaryBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Timestamptz(TimestampMicrosecondBuilder),
    Time(Time64MicrosecondBuilder),
    Interval(IntervalMonthDayNanoBuilder),
    Uuid(FixedSizeBinaryBuilder),
    Inet(BinaryBuilder),
    Mac(BinaryBuilder),
    List {
        field: FieldRef,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        values: Box<Builder>,
    },
}

fn be<const N: usize>(value: &[u8]) -> Result<[u8; N], DecodeError> {
    value
        .try_into()
        .map_err(|_| format!("a value of {} bytes where {N} were expected", value.len()))
}

impl Builder {
    pub fn new(decode: &Decode) -> Builder {
        match decode {
            Decode::Bool => Builder::Bool(BooleanBuilder::new()),
            Decode::Int2 => Builder::Int2(Int16Builder::new()),
            Decode::Int4 => Builder::Int4(Int32Builder::new()),
            Decode::Int8 => Builder::Int8(Int64Builder::new()),
            Decode::Oid => Builder::Oid(Int64Builder::new()),
            Decode::Float4 => Builder::Float4(Float32Builder::new()),
            Decode::Float8 => Builder::Float8(Float64Builder::new()),
            Decode::Numeric { precision, scale } if *precision <= 38 => Builder::Decimal128(
                Decimal128Builder::new().with_data_type(decode.data_type()),
                *scale,
            ),
            Decode::Numeric { scale, .. } => Builder::Decimal256(
                Decimal256Builder::new().with_data_type(decode.data_type()),
                *scale,
            ),
            Decode::NumericText => Builder::NumericText(StringBuilder::new()),
            Decode::Text => Builder::Text(StringBuilder::new()),
            Decode::Json => Builder::Json(BinaryBuilder::new()),
            Decode::Jsonb => Builder::Jsonb(BinaryBuilder::new()),
            Decode::Bytea => Builder::Bytea(BinaryBuilder::new()),
            Decode::Date => Builder::Date(Date32Builder::new()),
            Decode::Timestamp => Builder::Timestamp(TimestampMicrosecondBuilder::new()),
            Decode::Timestamptz => {
                Builder::Timestamptz(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            Decode::Time => Builder::Time(Time64MicrosecondBuilder::new()),
            Decode::Interval => Builder::Interval(IntervalMonthDayNanoBuilder::new()),
            Decode::Uuid => Builder::Uuid(FixedSizeBinaryBuilder::new(16)),
            Decode::Inet => Builder::Inet(BinaryBuilder::new()),
            Decode::Mac => Builder::Mac(BinaryBuilder::new()),
            Decode::Array(element) => Builder::List {
                field: Arc::new(Field::new("item", element.data_type(), true)),
                offsets: vec![0],
                nulls: NullBufferBuilder::new(0),
                values: Box::new(Builder::new(element)),
            },
        }
    }

    /// Appends one value in PostgreSQL's binary format, or a null.
    pub fn append(&mut self, value: Option<&[u8]>) -> Result<(), DecodeError> {
        let Some(v) = value else {
            self.append_null();
            return Ok(());
        };
        match self {
            Builder::Bool(b) => b.append_value(be::<1>(v)?[0] != 0),
            Builder::Int2(b) => b.append_value(i16::from_be_bytes(be(v)?)),
            Builder::Int4(b) => b.append_value(i32::from_be_bytes(be(v)?)),
            Builder::Int8(b) => b.append_value(i64::from_be_bytes(be(v)?)),
            Builder::Oid(b) => b.append_value(i64::from(u32::from_be_bytes(be(v)?))),
            Builder::Float4(b) => b.append_value(f32::from_be_bytes(be(v)?)),
            Builder::Float8(b) => b.append_value(f64::from_be_bytes(be(v)?)),
            Builder::Decimal128(b, scale) => {
                let n = scaled(&Numeric::parse(v)?, *scale)?;
                b.append_value(
                    n.to_i128()
                        .ok_or_else(|| "a number too large for its precision".to_string())?,
                );
            }
            Builder::Decimal256(b, scale) => b.append_value(scaled(&Numeric::parse(v)?, *scale)?),
            Builder::NumericText(b) => b.append_value(Numeric::parse(v)?.to_string()),
            Builder::Text(b) => b.append_value(text(v)?),
            Builder::Json(b) | Builder::Bytea(b) => b.append_value(v),
            Builder::Jsonb(b) => match v.split_first() {
                Some((1, json)) => b.append_value(json),
                _ => return Err("a jsonb value in a format version other than 1".into()),
            },
            Builder::Date(b) => {
                let days = i32::from_be_bytes(be(v)?);
                if days == i32::MAX || days == i32::MIN {
                    return Err("the date `infinity`, which Arrow cannot hold".into());
                }
                b.append_value(
                    days.checked_add(EPOCH_DAYS)
                        .ok_or_else(|| "a date out of range".to_string())?,
                );
            }
            Builder::Timestamp(b) | Builder::Timestamptz(b) => b.append_value(timestamp(v)?),
            Builder::Time(b) => b.append_value(i64::from_be_bytes(be(v)?)),
            Builder::Interval(b) => {
                let v: [u8; 16] = be(v)?;
                let micros = i64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
                let days = i32::from_be_bytes(v[8..12].try_into().expect("4 bytes"));
                let months = i32::from_be_bytes(v[12..].try_into().expect("4 bytes"));
                let nanos = micros
                    .checked_mul(1_000)
                    .ok_or_else(|| "an interval too long for nanoseconds".to_string())?;
                b.append_value(IntervalMonthDayNano::new(months, days, nanos));
            }
            Builder::Uuid(b) => b.append_value(be::<16>(v)?).map_err(|e| e.to_string())?,
            Builder::Inet(b) => b.append_value(inet(v)?),
            Builder::Mac(b) => {
                let m: [u8; 6] = be(v)?;
                b.append_value(format!(
                    "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    m[0], m[1], m[2], m[3], m[4], m[5]
                ));
            }
            Builder::List {
                offsets,
                nulls,
                values,
                ..
            } => {
                let count = array(v, |element| values.append(element))?;
                let last = *offsets.last().expect("offsets start with 0");
                offsets.push(
                    last.checked_add(count)
                        .ok_or_else(|| "more than 2^31 array elements in one batch".to_string())?,
                );
                nulls.append_non_null();
            }
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match self {
            Builder::Bool(b) => b.append_null(),
            Builder::Int2(b) => b.append_null(),
            Builder::Int4(b) => b.append_null(),
            Builder::Int8(b) | Builder::Oid(b) => b.append_null(),
            Builder::Float4(b) => b.append_null(),
            Builder::Float8(b) => b.append_null(),
            Builder::Decimal128(b, _) => b.append_null(),
            Builder::Decimal256(b, _) => b.append_null(),
            Builder::NumericText(b) | Builder::Text(b) => b.append_null(),
            Builder::Json(b)
            | Builder::Jsonb(b)
            | Builder::Bytea(b)
            | Builder::Inet(b)
            | Builder::Mac(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Timestamp(b) | Builder::Timestamptz(b) => b.append_null(),
            Builder::Time(b) => b.append_null(),
            Builder::Interval(b) => b.append_null(),
            Builder::Uuid(b) => b.append_null(),
            Builder::List { offsets, nulls, .. } => {
                offsets.push(*offsets.last().expect("offsets start with 0"));
                nulls.append_null();
            }
        }
    }

    /// The values appended since the last call, as an array; the builder starts over.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Int2(b) => Arc::new(b.finish()),
            Builder::Int4(b) => Arc::new(b.finish()),
            Builder::Int8(b) | Builder::Oid(b) => Arc::new(b.finish()),
            Builder::Float4(b) => Arc::new(b.finish()),
            Builder::Float8(b) => Arc::new(b.finish()),
            Builder::Decimal128(b, _) => Arc::new(b.finish()),
            Builder::Decimal256(b, _) => Arc::new(b.finish()),
            Builder::NumericText(b) | Builder::Text(b) => Arc::new(b.finish()),
            Builder::Json(b)
            | Builder::Jsonb(b)
            | Builder::Bytea(b)
            | Builder::Inet(b)
            | Builder::Mac(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) | Builder::Timestamptz(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::Interval(b) => Arc::new(b.finish()),
            Builder::Uuid(b) => Arc::new(b.finish()),
            Builder::List {
                field,
                offsets,
                nulls,
                values,
            } => {
                let offsets = std::mem::replace(offsets, vec![0]);
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                Arc::new(ListArray::new(
                    field.clone(),
                    offsets,
                    values.finish(),
                    nulls.finish(),
                ))
            }
        }
    }
}

fn text(v: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(v).map_err(|e| format!("text that is not UTF-8 ({e})"))
}

fn timestamp(v: &[u8]) -> Result<i64, DecodeError> {
    let micros = i64::from_be_bytes(be(v)?);
    if micros == i64::MAX || micros == i64::MIN {
        return Err("the timestamp `infinity`, which Arrow cannot hold".into());
    }
    micros
        .checked_add(EPOCH_US)
        .ok_or_else(|| "a timestamp out of range".into())
}

/// Walks a binary one-dimensional array, handing each element (or null) to `element`; returns
/// the number of elements.
fn array(
    v: &[u8],
    mut element: impl FnMut(Option<&[u8]>) -> Result<(), DecodeError>,
) -> Result<i32, DecodeError> {
    let short = || "an array value cut short".to_string();
    let int = |at: usize| -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(
            v.get(at..at + 4)
                .ok_or_else(short)?
                .try_into()
                .expect("4 bytes"),
        ))
    };
    let dimensions = int(0)?;
    if dimensions == 0 {
        return Ok(0);
    }
    if dimensions != 1 {
        return Err(format!(
            "an array of {dimensions} dimensions; only one-dimensional arrays map to Arrow lists"
        ));
    }
    let count = int(12)?;
    if count < 0 {
        return Err(format!("an array of {count} elements"));
    }
    let mut at = 20;
    for _ in 0..count {
        let len = int(at)?;
        at += 4;
        if len < 0 {
            element(None)?;
        } else {
            let end = at + len as usize;
            element(Some(v.get(at..end).ok_or_else(short)?))?;
            at = end;
        }
    }
    Ok(count)
}

/// `inet` and `cidr` as PostgreSQL prints them: the address, and `/bits` for a network (or an
/// `inet` whose mask is not the whole address).
fn inet(v: &[u8]) -> Result<String, DecodeError> {
    let [family, bits, is_cidr, len, address @ ..] = v else {
        return Err("an inet value cut short".into());
    };
    let text = match (family, address.len(), *len as usize == address.len()) {
        (2, 4, true) => {
            std::net::Ipv4Addr::new(address[0], address[1], address[2], address[3]).to_string()
        }
        (3, 16, true) => {
            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(address).expect("16 bytes")).to_string()
        }
        _ => {
            return Err(format!(
                "an inet value of family {family}, which is neither IPv4 nor IPv6"
            ));
        }
    };
    let full = if *family == 2 { 32 } else { 128 };
    Ok(if *is_cidr != 0 || *bits != full {
        format!("{text}/{bits}")
    } else {
        text
    })
}

/// A `numeric` in PostgreSQL's binary form: base-10000 digits with a weight and a display scale.
pub struct Numeric {
    negative: bool,
    special: Option<&'static str>,
    weight: i16,
    dscale: u16,
    digits: Vec<i16>,
}

impl Numeric {
    pub fn parse(v: &[u8]) -> Result<Numeric, DecodeError> {
        let short = || "a numeric value cut short".to_string();
        let word = |i: usize| -> Result<[u8; 2], DecodeError> {
            Ok(v.get(i * 2..i * 2 + 2)
                .ok_or_else(short)?
                .try_into()
                .expect("2 bytes"))
        };
        let count = i16::from_be_bytes(word(0)?).max(0) as usize;
        let weight = i16::from_be_bytes(word(1)?);
        let sign = u16::from_be_bytes(word(2)?);
        let dscale = u16::from_be_bytes(word(3)?);
        let digits = (0..count)
            .map(|i| Ok(i16::from_be_bytes(word(4 + i)?)))
            .collect::<Result<Vec<_>, DecodeError>>()?;
        let special = match sign {
            0x0000 | 0x4000 => None,
            0xC000 => Some("NaN"),
            0xD000 => Some("Infinity"),
            0xF000 => Some("-Infinity"),
            other => return Err(format!("a numeric with sign word {other:#06x}")),
        };
        Ok(Numeric {
            negative: sign == 0x4000,
            special,
            weight,
            dscale,
            digits,
        })
    }

    /// The base-10000 digit of weight `w` (10000^w).
    fn digit(&self, w: i32) -> i16 {
        let i = i32::from(self.weight) - w;
        usize::try_from(i)
            .ok()
            .and_then(|i| self.digits.get(i).copied())
            .unwrap_or(0)
    }
}

impl std::fmt::Display for Numeric {
    /// As PostgreSQL prints it: every digit of the display scale, no exponent.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(special) = self.special {
            return f.write_str(special);
        }
        let mut out = String::new();
        if self.negative {
            out.push('-');
        }
        if self.weight < 0 {
            out.push('0');
        } else {
            for w in (0..=i32::from(self.weight)).rev() {
                let d = self.digit(w);
                if w == i32::from(self.weight) {
                    out.push_str(&d.to_string());
                } else {
                    out.push_str(&format!("{d:04}"));
                }
            }
        }
        if self.dscale > 0 {
            out.push('.');
            let mut fraction = String::new();
            let mut w = -1;
            while fraction.len() < usize::from(self.dscale) {
                fraction.push_str(&format!("{:04}", self.digit(w)));
                w -= 1;
            }
            fraction.truncate(usize::from(self.dscale));
            out.push_str(&fraction);
        }
        f.write_str(&out)
    }
}

/// The value times 10^scale, as the integer an Arrow decimal of that scale stores; a value with
/// more fractional digits than the scale is refused rather than rounded.
fn scaled(n: &Numeric, scale: i8) -> Result<i256, DecodeError> {
    if let Some(special) = n.special {
        return Err(format!(
            "the numeric `{special}`, which an Arrow decimal cannot hold"
        ));
    }
    let overflow = || "a number too large for its precision".to_string();
    let ten_thousand = i256::from_i128(10_000);
    let mut acc = i256::ZERO;
    for d in &n.digits {
        acc = acc
            .checked_mul(ten_thousand)
            .and_then(|a| a.checked_add(i256::from_i128(i128::from(*d))))
            .ok_or_else(overflow)?;
    }
    // The last digit stands for 10000^(weight - count + 1).
    let exponent = 4 * (i32::from(n.weight) - n.digits.len() as i32 + 1) + i32::from(scale);
    let ten = i256::from_i128(10);
    if exponent >= 0 {
        for _ in 0..exponent {
            acc = acc.checked_mul(ten).ok_or_else(overflow)?;
        }
    } else {
        for _ in 0..-exponent {
            let (quotient, remainder) = (acc.wrapping_div(ten), acc.wrapping_rem(ten));
            if remainder != i256::ZERO {
                return Err(format!(
                    "{n} has more decimal places than the column's scale {scale}"
                ));
            }
            acc = quotient;
        }
    }
    Ok(if n.negative { acc.wrapping_neg() } else { acc })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL's binary numeric for `text`, built the way the server does.
    fn numeric_bytes(weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend((digits.len() as i16).to_be_bytes());
        v.extend(weight.to_be_bytes());
        v.extend(sign.to_be_bytes());
        v.extend(dscale.to_be_bytes());
        for d in digits {
            v.extend(d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_print_and_scale_as_postgresql_means_them() {
        // -1234.567: digits 1234 . 5670, weight 0, scale 3.
        let n = Numeric::parse(&numeric_bytes(0, 0x4000, 3, &[1234, 5670])).unwrap();
        assert_eq!(n.to_string(), "-1234.567");
        assert_eq!(scaled(&n, 3).unwrap(), i256::from_i128(-1_234_567));
        assert_eq!(scaled(&n, 5).unwrap(), i256::from_i128(-123_456_700));
        assert!(scaled(&n, 2).unwrap_err().contains("decimal places"));
        // 0.005: one digit 50 of weight -1.
        let n = Numeric::parse(&numeric_bytes(-1, 0, 3, &[50])).unwrap();
        assert_eq!(n.to_string(), "0.005");
        assert_eq!(scaled(&n, 3).unwrap(), i256::from_i128(5));
        // 120000000 (weight 2, trailing zero digits dropped) and 0.00000001 (weight -2).
        let n = Numeric::parse(&numeric_bytes(2, 0, 0, &[1, 2000])).unwrap();
        assert_eq!(n.to_string(), "120000000");
        let n = Numeric::parse(&numeric_bytes(-2, 0, 8, &[1])).unwrap();
        assert_eq!(n.to_string(), "0.00000001");
        assert_eq!(
            Numeric::parse(&numeric_bytes(0, 0, 0, &[]))
                .unwrap()
                .to_string(),
            "0"
        );
        let nan = Numeric::parse(&numeric_bytes(0, 0xC000, 0, &[])).unwrap();
        assert_eq!(nan.to_string(), "NaN");
        assert!(scaled(&nan, 0).unwrap_err().contains("NaN"));
        // 18446744073709551615 (u64::MAX) fits a decimal(20, 0).
        let n = Numeric::parse(&numeric_bytes(4, 0, 0, &[1844, 6744, 737, 955, 1615])).unwrap();
        assert_eq!(n.to_string(), "18446744073709551615");
        assert_eq!(scaled(&n, 0).unwrap(), i256::from_i128(u64::MAX as i128));
    }

    #[test]
    fn typmods_unpack_into_precision_and_scale() {
        let typmod = |p: i32, s: i32| ((p << 16) | (s & 0x7ff)) + 4;
        assert_eq!(
            numeric(typmod(12, 3)),
            Decode::Numeric {
                precision: 12,
                scale: 3
            }
        );
        assert_eq!(
            numeric(typmod(60, 10)).data_type(),
            DataType::Decimal256(60, 10)
        );
        assert_eq!(numeric(-1), Decode::NumericText);
        assert_eq!(numeric(typmod(5, -2)), Decode::NumericText);
    }

    #[test]
    fn inet_and_cidr_print_as_postgresql_prints_them() {
        assert_eq!(inet(&[2, 32, 0, 4, 10, 1, 2, 3]).unwrap(), "10.1.2.3");
        assert_eq!(inet(&[2, 24, 0, 4, 10, 1, 2, 0]).unwrap(), "10.1.2.0/24");
        assert_eq!(inet(&[2, 32, 1, 4, 10, 1, 2, 3]).unwrap(), "10.1.2.3/32");
        let mut v6 = vec![3, 32, 1, 16, 0x20, 0x01, 0x0d, 0xb8];
        v6.extend([0; 12]);
        assert_eq!(inet(&v6).unwrap(), "2001:db8::/32");
    }
}
