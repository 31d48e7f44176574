//! Parquet through parquet's `ArrowWriter`, which stores the Arrow schema (with its extension
//! metadata) in the file. A row group is written out when it reaches `row_group_size` rows, or
//! earlier when its buffers pass [`MAX_BUFFERED_BYTES`], so wide rows cannot exhaust the
//! component's memory.

use std::fs::File;

use ::parquet::arrow::ArrowWriter;
use ::parquet::basic::{Compression as Codec, GzipLevel};
use ::parquet::errors::ParquetError;
use ::parquet::file::properties::WriterProperties;
use quarry_sdk::{Error, RecordBatch, Result, SchemaRef};

use super::ParquetOptions;
use crate::spec::Compression;

/// The memory a row group may buffer before it is written out.
const MAX_BUFFERED_BYTES: usize = 64 << 20;

/// A column's dictionary stops growing past this (and its values are written plain): a column of
/// few distinct values stays dictionary-encoded, one of mostly unique values (names, ids,
/// payloads) stops paying for hashing every value into a dictionary that does not shrink it.
const DICTIONARY_PAGE_LIMIT: usize = 64 * 1024;

/// A Parquet file being written.
pub struct ParquetWriter {
    writer: ArrowWriter<File>,
}

impl ParquetWriter {
    /// A writer of `schema`'s batches into `file`.
    pub fn new(file: File, schema: SchemaRef, options: &ParquetOptions) -> Result<Self> {
        let codec = match options.compression {
            Compression::Snappy => Codec::SNAPPY,
            Compression::None => Codec::UNCOMPRESSED,
            Compression::Gzip => Codec::GZIP(GzipLevel::default()),
            Compression::Lz4 => Codec::LZ4_RAW,
        };
        let properties = WriterProperties::builder()
            .set_compression(codec)
            .set_max_row_group_row_count(Some(options.row_group_size.max(1)))
            .set_dictionary_page_size_limit(DICTIONARY_PAGE_LIMIT)
            .build();
        let writer = ArrowWriter::try_new(file, schema, Some(properties)).map_err(parquet_error)?;
        Ok(ParquetWriter { writer })
    }

    /// Appends `batch`.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(parquet_error)?;
        if self.writer.in_progress_size() > MAX_BUFFERED_BYTES {
            self.writer.flush().map_err(parquet_error)?;
        }
        Ok(())
    }

    /// The file, with its last row group and footer written.
    pub fn finish(self) -> Result<File> {
        self.writer.into_inner().map_err(parquet_error)
    }
}

fn parquet_error(e: ParquetError) -> Error {
    Error::internal(e.to_string())
}
