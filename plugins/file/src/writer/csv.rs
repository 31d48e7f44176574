//! CSV through arrow-csv, after [`text::csv_batch`] turned the columns arrow-csv cannot write
//! into text. arrow-csv flushes its buffer into the file after every batch, so between batches
//! nothing is held in memory.

use std::fs::File;

use arrow_csv::WriterBuilder;
use quarry_sdk::{RecordBatch, Result};

use super::CsvOptions;
use super::text;

/// A CSV file being written.
pub struct CsvWriter {
    writer: arrow_csv::Writer<File>,
}

impl CsvWriter {
    /// A writer into `file`; the header row is written before the first row of a new file.
    pub fn new(file: File, options: &CsvOptions, appending: bool) -> Self {
        let writer = WriterBuilder::new()
            .with_delimiter(options.delimiter)
            .with_header(options.header && !appending)
            .build(file);
        CsvWriter { writer }
    }

    /// Appends `batch`.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        Ok(self.writer.write(&text::csv_batch(batch)?)?)
    }

    /// The file, with every row written to it.
    pub fn finish(self) -> Result<File> {
        // `write` flushed arrow-csv's buffer, so unwrapping the writer writes nothing more.
        Ok(self.writer.into_inner())
    }
}
