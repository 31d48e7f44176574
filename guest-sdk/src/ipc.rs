//! Arrow IPC stream encoding of schemas and batches, as they cross the component boundary.
//!
//! Bytes that come from the host are decoded with the same checks the host applies to bytes that
//! come from a plugin: one schema, at most one batch, nothing after it.

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{Schema, SchemaRef};

use crate::{Error, Result};

/// A schema as an IPC stream with no batches.
pub fn encode_schema(schema: &Schema) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(1024);
    let mut writer = StreamWriter::try_new(&mut out, schema)?;
    writer.finish()?;
    drop(writer);
    Ok(out)
}

/// A batch as an IPC stream: its schema, then the batch.
pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size() + 1024);
    let mut writer = StreamWriter::try_new(&mut out, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(out)
}

/// `batch` as one or more IPC streams, each at most `limit` bytes unless a single row is larger
/// (then that row is its own stream: the receiver's limit decides, and says so). Rows keep their
/// order. Splits in proportion to the overshoot, so a batch 10x too large takes one pass.
pub fn encode_batch_within(batch: &RecordBatch, limit: usize) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    split_into(batch, limit, &mut out)?;
    Ok(out)
}

fn split_into(batch: &RecordBatch, limit: usize, out: &mut Vec<Vec<u8>>) -> Result<()> {
    let bytes = encode_batch(batch)?;
    if bytes.len() <= limit || batch.num_rows() <= 1 {
        out.push(bytes);
        return Ok(());
    }
    let parts = bytes.len().div_ceil(limit).max(2);
    let rows = batch.num_rows().div_ceil(parts).max(1);
    let mut offset = 0;
    while offset < batch.num_rows() {
        let len = rows.min(batch.num_rows() - offset);
        split_into(&batch.slice(offset, len), limit, out)?;
        offset += len;
    }
    Ok(())
}

/// The schema of an IPC stream that holds only a schema.
pub fn decode_schema(bytes: Vec<u8>) -> Result<SchemaRef> {
    let (schema, batch) = decode(bytes)?;
    match batch {
        None => Ok(schema),
        Some(_) => Err(Error::internal(
            "expected an Arrow schema, got a record batch",
        )),
    }
}

/// The one batch of an IPC stream that holds a schema and a batch.
pub fn decode_batch(bytes: Vec<u8>) -> Result<RecordBatch> {
    decode(bytes)?
        .1
        .ok_or_else(|| Error::internal("expected an Arrow record batch, got none"))
}

/// Decodes a stream of one schema and at most one batch, without copying the batch's buffers.
///
/// The bytes come from the other side of a trust boundary (a plugin, for the host), and Arrow's
/// decoder panics on some malformed streams: a panic is caught and becomes this call's error, so
/// bad input stops only the plugin that sent it.
pub fn decode(bytes: Vec<u8>) -> Result<(SchemaRef, Option<RecordBatch>)> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_stream(bytes))).unwrap_or_else(
        |panic| {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no reason given".into());
            Err(Error::internal(format!(
                "a malformed Arrow IPC stream: the decoder failed ({why})"
            )))
        },
    )
}

fn decode_stream(bytes: Vec<u8>) -> Result<(SchemaRef, Option<RecordBatch>)> {
    let mut buffer = Buffer::from_vec(bytes);
    let mut decoder = StreamDecoder::new().with_require_alignment(false);
    let mut batch = None;
    while !buffer.is_empty() {
        if let Some(b) = decoder.decode(&mut buffer)? {
            if batch.is_some() {
                return Err(Error::internal(
                    "an Arrow IPC stream held more than one batch",
                ));
            }
            batch = Some(b);
        }
    }
    decoder.finish()?;
    let schema = match (&batch, decoder.schema()) {
        (Some(b), _) => b.schema(),
        (None, Some(s)) => s,
        (None, None) => return Err(Error::internal("an empty Arrow IPC stream")),
    };
    Ok((schema, batch))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field};

    use super::*;

    #[test]
    fn batches_and_schemas_round_trip() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
            ],
        )
        .unwrap();
        assert_eq!(decode_batch(encode_batch(&batch).unwrap()).unwrap(), batch);
        assert_eq!(
            decode_schema(encode_schema(&schema).unwrap()).unwrap(),
            schema
        );
        assert!(decode_batch(encode_schema(&schema).unwrap()).is_err());
        assert!(decode_schema(encode_batch(&batch).unwrap()).is_err());
        assert!(decode(b"not arrow".to_vec()).is_err());
    }

    /// A stream found by mutating a valid one, on which arrow-ipc 60.1's decoder panics.
    #[test]
    fn a_stream_that_makes_the_decoder_panic_is_an_error() {
        let hex = include_str!("../../tests/fixtures/ipc/decoder-panic.hex").trim();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let err = decode(bytes).unwrap_err();
        assert!(
            err.message
                .starts_with("a malformed Arrow IPC stream: the decoder failed ("),
            "{}",
            err.message
        );
    }
}
