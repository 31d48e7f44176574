//! Arrow values as JSON text, the way JSON-lines writers and `jsonb` columns want them:
//! arrow-json's encoders, plus CloudQuery's extension types at any depth (a `uuid` as its
//! hyphenated text, a `json` value embedded as JSON, `inet` and `mac` as strings). Behind the
//! `json` feature, so that plugins that do not need it do not build arrow-json.

use std::sync::Arc;

use arrow_array::builder::{FixedSizeBinaryBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, FixedSizeBinaryArray, GenericBinaryArray, OffsetSizeTrait, StringArray,
};
use arrow_json::writer::{Encoder, EncoderFactory, EncoderOptions, NullableEncoder, make_encoder};
use arrow_schema::{ArrowError, DataType, Field, FieldRef};

use crate::Extension;

/// arrow-json encoders for CloudQuery's extension types, at any depth.
#[derive(Debug)]
pub struct ExtensionEncoders;

impl EncoderFactory for ExtensionEncoders {
    fn make_default_encoder<'a>(
        &self,
        field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        let encoder: Box<dyn Encoder + 'a> = match (Extension::of(field), array.data_type()) {
            (Some(Extension::Uuid), DataType::FixedSizeBinary(16)) => {
                Box::new(UuidEncoder(array.as_fixed_size_binary()))
            }
            (Some(Extension::Json), DataType::Binary) => {
                Box::new(RawJsonEncoder(array.as_binary::<i32>()))
            }
            (Some(Extension::Json), DataType::LargeBinary) => {
                Box::new(RawJsonEncoder(array.as_binary::<i64>()))
            }
            (Some(Extension::Inet | Extension::Mac), DataType::Binary) => {
                Box::new(TextEncoder(array.as_binary::<i32>()))
            }
            (Some(Extension::Inet | Extension::Mac), DataType::LargeBinary) => {
                Box::new(TextEncoder(array.as_binary::<i64>()))
            }
            _ => return Ok(None),
        };
        Ok(Some(NullableEncoder::new(encoder, array.nulls().cloned())))
    }
}

/// A uuid as a JSON string.
struct UuidEncoder<'a>(&'a FixedSizeBinaryArray);

impl Encoder for UuidEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        out.push(b'"');
        push_uuid(self.0.value(idx), out);
        out.push(b'"');
    }
}

/// A `json` value embedded as JSON, without the line breaks that would split its JSON line. A
/// value that is not valid JSON is written as a string, so the line stays valid.
struct RawJsonEncoder<'a, O: OffsetSizeTrait>(&'a GenericBinaryArray<O>);

impl<O: OffsetSizeTrait> Encoder for RawJsonEncoder<'_, O> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let value = self.0.value(idx);
        if serde_json::from_slice::<serde::de::IgnoredAny>(value).is_ok() {
            push_compact_json(value, out);
        } else {
            push_json_string(&String::from_utf8_lossy(value), out);
        }
    }
}

/// UTF-8 text stored as binary, as a JSON string.
struct TextEncoder<'a, O: OffsetSizeTrait>(&'a GenericBinaryArray<O>);

impl<O: OffsetSizeTrait> Encoder for TextEncoder<'_, O> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        push_json_string(&String::from_utf8_lossy(self.0.value(idx)), out);
    }
}

/// The canonical text of a 16-byte uuid (8-4-4-4-12 lowercase hex); other widths as plain hex.
pub fn push_uuid(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in bytes.iter().enumerate() {
        if bytes.len() == 16 && matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.extend_from_slice(&[HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]]);
    }
}

/// Copies valid JSON without the whitespace between its tokens.
pub fn push_compact_json(json: &[u8], out: &mut Vec<u8>) {
    let (mut in_string, mut escaped) = (false, false);
    for &byte in json {
        if in_string {
            (escaped, in_string) = match byte {
                _ if escaped => (false, true),
                b'\\' => (true, true),
                b'"' => (false, false),
                _ => (false, true),
            };
        } else if byte.is_ascii_whitespace() {
            continue;
        } else if byte == b'"' {
            in_string = true;
        }
        out.push(byte);
    }
}

fn push_json_string(text: &str, out: &mut Vec<u8>) {
    // Serialising a `str` into a `Vec` cannot fail: only the writer could, and a `Vec` does not.
    let _ = serde_json::to_writer(out, text);
}

/// `batch` with every column arrow-csv cannot write (or would write as hex) turned into text.
/// A nested column as one JSON text per row, encoded as the JSON-lines writer would.
pub fn json_text(field: &FieldRef, array: &dyn Array) -> Result<ArrayRef, ArrowError> {
    let options = EncoderOptions::default().with_encoder_factory(Arc::new(ExtensionEncoders));
    let mut encoder = make_encoder(field, array, &options)?;
    let mut text = StringBuilder::with_capacity(array.len(), array.len() * 16);
    let mut buffer = Vec::new();
    for idx in 0..array.len() {
        if encoder.is_null(idx) {
            text.append_null();
        } else {
            buffer.clear();
            encoder.encode(idx, &mut buffer);
            text.append_value(String::from_utf8_lossy(&buffer));
        }
    }
    Ok(Arc::new(text.finish()))
}

/// A column a database returned as text, in `field`'s type: a `uuid` from its hyphenated text,
/// `json`, `inet` and `mac` as their bytes, nested types from JSON, and every other type as
/// Arrow's cast parses text (numbers, decimals, booleans, ISO dates, times and timestamps, a
/// zoned timestamp's text in UTC).
pub fn from_text(field: &Field, texts: &StringArray) -> Result<ArrayRef, ArrowError> {
    match Extension::of(field) {
        Some(Extension::Uuid) => return uuids_from_text(field.name(), texts),
        Some(_) => return cast(texts, &DataType::Binary),
        None => {}
    }
    match field.data_type() {
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..) => nested_from_json(field, texts),
        // A zoned timestamp's values count from the epoch in UTC, and so does the UTC text read
        // back: parse it as a naive timestamp and label it with the zone. (Arrow's own parse
        // needs the zone database to resolve a name such as `UTC`; plugins leave it out.)
        to @ DataType::Timestamp(unit, Some(_)) => {
            let naive = cast(texts, &DataType::Timestamp(*unit, None))?;
            let zoned = naive.into_data().into_builder().data_type(to.clone());
            Ok(arrow_array::make_array(zoned.build()?))
        }
        to => cast(texts, to),
    }
}

/// Arrow's cast, failing on a value it cannot convert (its default makes such a value null:
/// a value read back must never silently vanish).
pub fn cast(array: &dyn Array, to: &DataType) -> Result<ArrayRef, ArrowError> {
    let options = arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    };
    arrow_cast::cast_with_options(array, to, &options)
}

fn uuids_from_text(column: &str, texts: &StringArray) -> Result<ArrayRef, ArrowError> {
    let mut out = FixedSizeBinaryBuilder::with_capacity(texts.len(), 16);
    for v in texts {
        let Some(text) = v else {
            out.append_null();
            continue;
        };
        let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
        let bytes: Option<Vec<u8>> = (hex.len() == 32)
            .then(|| {
                hex.chunks(2)
                    .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
                    .collect()
            })
            .flatten();
        match bytes {
            Some(bytes) => out.append_value(bytes)?,
            None => {
                return Err(ArrowError::ParseError(format!(
                    "column `{column}` holds `{text}`, which is not a uuid"
                )));
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

fn nested_from_json(field: &Field, texts: &StringArray) -> Result<ArrayRef, ArrowError> {
    let inner = Field::new("v", field.data_type().clone(), true);
    let schema = Arc::new(arrow_schema::Schema::new(vec![inner]));
    let mut decoder = arrow_json::ReaderBuilder::new(schema)
        .with_batch_size(texts.len().max(1))
        .build_decoder()?;
    let mut lines = String::new();
    for v in texts {
        lines.push_str("{\"v\":");
        lines.push_str(v.unwrap_or("null"));
        lines.push_str("}\n");
    }
    decoder.decode(lines.as_bytes())?;
    Ok(match decoder.flush()? {
        Some(batch) => batch.column(0).clone(),
        None => arrow_array::new_empty_array(field.data_type()),
    })
}

#[cfg(test)]
mod tests {
    use arrow_array::BinaryArray;

    use super::*;

    #[test]
    fn compact_json_keeps_string_contents() {
        let mut out = Vec::new();
        push_compact_json(
            b"{ \"a b\" :\n [1, \"x\\\" y\"],\r\n\t\"c\": {} }",
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a b":[1,"x\" y"],"c":{}}"#
        );
    }

    #[test]
    fn invalid_json_in_a_json_column_is_written_as_a_string() {
        let docs = BinaryArray::from(vec![&b"{\"a\":\n 1}"[..], &b"{not json"[..]]);
        let mut encoder = RawJsonEncoder(&docs);
        let mut out = Vec::new();
        encoder.encode(0, &mut out);
        out.push(b' ');
        encoder.encode(1, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a":1} "{not json""#);
    }

    #[test]
    fn a_zoned_timestamp_is_read_from_its_utc_text() {
        use arrow_array::cast::AsArray;
        use arrow_array::types::TimestampMicrosecondType;
        let zoned = DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into()));
        let texts = StringArray::from(vec![Some("2024-03-07 11:00:00.000001"), None]);
        let read = from_text(&Field::new("t", zoned.clone(), true), &texts).unwrap();
        assert_eq!(read.data_type(), &zoned);
        let values = read.as_primitive::<TimestampMicrosecondType>();
        assert_eq!(values.value(0), 1_709_809_200_000_001);
        assert!(values.is_null(1));
    }
}
