//! Quarry's `file` destination: writes each table as CSV, JSON lines or Parquet files under a
//! path template, in a directory the user granted to the sandbox.
//!
//! A table's first insert creates its file; `flush` finishes every open file (Parquet footer
//! written, buffers written out, the file synced), so after it every row inserted so far can be
//! read back. Rows inserted after a flush go to a new file (or, without `{{UUID}}` in the path,
//! after the rows already in the CSV or JSON file).

mod fs;
mod output;
mod path;
mod spec;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use quarry_sdk::{Destination, Info, Plugin, RecordBatch, Result, Table, WriteMode};

pub use spec::{Compression, Format, FormatSpec, Spec};

/// The `file` destination.
pub struct FilePlugin {
    settings: spec::Settings,
    tables: HashMap<String, output::TableFiles>,
}

impl Plugin for FilePlugin {
    type Spec = Spec;

    fn info() -> Info {
        Info::new(
            "file",
            env!("CARGO_PKG_VERSION"),
            "Writes tables as CSV, JSON lines or Parquet files",
        )
        .needs_files("path")
        // Files can only grow: no upsert, no deleting stale rows.
        .write_modes(&[WriteMode::Append])
    }

    fn new(spec: Spec) -> Result<Self> {
        let settings = spec.validate()?;
        // Create the directory every file goes under now, so that a directory the sandbox does
        // not grant is a configuration error before the sync starts, not a failure mid-way.
        if let Some(dir) = settings.template.fixed_dir() {
            fs::create_dir(&dir)?;
        }
        Ok(FilePlugin {
            settings,
            tables: HashMap::new(),
        })
    }

    fn close(&mut self) -> Result<()> {
        self.flush()
    }
}

impl Destination for FilePlugin {
    fn migrate_table(&mut self, table: &Table, _force: bool) -> Result<()> {
        // Files are created by the first insert, so that a table without rows leaves none.
        self.tables.entry(table.name.clone()).or_default();
        Ok(())
    }

    fn insert(&mut self, table: &Table, batch: RecordBatch) -> Result<()> {
        let files = self.tables.entry(table.name.clone()).or_default();
        files.write(&self.settings, &table.name, batch)
    }

    fn flush(&mut self) -> Result<()> {
        // Finish every file even if one fails, so that one bad file does not cost the others.
        let mut first_error = None;
        for files in self.tables.values_mut() {
            if let Err(e) = files.finish() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

quarry_sdk::export_destination!(FilePlugin);
