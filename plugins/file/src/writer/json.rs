//! JSON lines through arrow-json, with [`quarry_sdk::json::ExtensionEncoders`] for CloudQuery's extension
//! types. arrow-json writes each batch to the file as it encodes it.

use std::fs::File;
use std::sync::Arc;

use arrow_json::writer::LineDelimited;
use quarry_sdk::{RecordBatch, Result};

use super::text;

/// A JSON-lines file being written.
pub struct JsonWriter {
    writer: arrow_json::Writer<File, LineDelimited>,
}

impl JsonWriter {
    /// A writer into `file`. Null values are left out of their row's object.
    pub fn new(file: File) -> Self {
        let writer = arrow_json::WriterBuilder::new()
            .with_encoder_factory(Arc::new(quarry_sdk::json::ExtensionEncoders))
            .build::<_, LineDelimited>(file);
        JsonWriter { writer }
    }

    /// Appends `batch`.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        Ok(self.writer.write(&text::json_batch(batch)?)?)
    }

    /// The file, with every row written to it.
    pub fn finish(mut self) -> Result<File> {
        self.writer.finish()?;
        Ok(self.writer.into_inner())
    }
}
