//! One open file of one format: created from the first batch's schema, written batch by batch,
//! finished into a complete file. Each format holds at most one buffer or row group in memory.

mod csv;
mod json;
mod parquet;
pub mod text;

use std::fs::File;

use quarry_sdk::{RecordBatch, Result, SchemaRef};

use crate::spec::Compression;

/// The chosen format and its resolved options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatOptions {
    /// CSV.
    Csv(CsvOptions),
    /// JSON lines.
    Json,
    /// Parquet.
    Parquet(ParquetOptions),
}

/// CSV options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvOptions {
    /// The field delimiter.
    pub delimiter: u8,
    /// Whether a new file starts with a header row.
    pub header: bool,
}

/// Parquet options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParquetOptions {
    /// The compression codec.
    pub compression: Compression,
    /// Rows per row group.
    pub row_group_size: usize,
}

impl FormatOptions {
    /// The format's name, as substituted for `{{FORMAT}}`.
    pub fn name(&self) -> &'static str {
        match self {
            FormatOptions::Csv(_) => "csv",
            FormatOptions::Json => "json",
            FormatOptions::Parquet(_) => "parquet",
        }
    }

    /// Whether rows can be added to a file of this format after it was finished.
    pub fn can_append(&self) -> bool {
        !matches!(self, FormatOptions::Parquet(_))
    }
}

/// A file being written.
pub enum FileWriter {
    /// CSV.
    Csv(csv::CsvWriter),
    /// JSON lines.
    Json(json::JsonWriter),
    /// Parquet.
    Parquet(parquet::ParquetWriter),
}

impl FileWriter {
    /// A writer of `schema`'s batches to `file`. `appending` means the file already holds rows
    /// (and, for CSV, its header).
    pub fn new(
        options: &FormatOptions,
        file: File,
        schema: SchemaRef,
        appending: bool,
    ) -> Result<Self> {
        Ok(match options {
            FormatOptions::Csv(csv) => FileWriter::Csv(csv::CsvWriter::new(file, csv, appending)),
            FormatOptions::Json => FileWriter::Json(json::JsonWriter::new(file)),
            FormatOptions::Parquet(parquet) => {
                FileWriter::Parquet(parquet::ParquetWriter::new(file, schema, parquet)?)
            }
        })
    }

    /// Appends `batch`.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            FileWriter::Csv(w) => w.write(batch),
            FileWriter::Json(w) => w.write(batch),
            FileWriter::Parquet(w) => w.write(batch),
        }
    }

    /// Writes everything buffered (and Parquet's footer) and gives the file back for syncing.
    pub fn finish(self) -> Result<File> {
        match self {
            FileWriter::Csv(w) => w.finish(),
            FileWriter::Json(w) => w.finish(),
            FileWriter::Parquet(w) => w.finish(),
        }
    }
}
