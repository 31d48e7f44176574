//! Quarry's `file` plugin. As a destination it writes each table as CSV, JSON lines or Parquet
//! files under a path template, in a directory the user granted to the sandbox; as a source it
//! reads such files back as tables (`source.rs`).
//!
//! A table's first insert creates its file; `flush` finishes every open file (Parquet footer
//! written, buffers written out, the file synced), so after it every row inserted so far can be
//! read back. Rows inserted after a flush go to a new file (or, without `{{UUID}}` in the path,
//! after the rows already in the CSV or JSON file).

mod fs;
mod output;
mod path;
mod source;
mod spec;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use quarry_sdk::{
    Destination, Error, Info, Plugin, RecordBatch, Result, Source, SyncContext, Table, WriteMode,
};

pub use source::{Incremental, TableSpec};
pub use spec::{Compression, Format, FormatSpec, Spec};

/// The `file` plugin, configured by its spec as a destination or as a source.
pub struct FilePlugin {
    config: spec::Config,
    tables: HashMap<String, output::TableFiles>,
}

impl Plugin for FilePlugin {
    type Spec = Spec;

    fn info() -> Info {
        Info::new(
            "file",
            env!("CARGO_PKG_VERSION"),
            "Writes tables as CSV, JSON lines or Parquet files, and reads them back as tables",
        )
        .needs_files("path")
        .needs_files("tables")
        // Files can only grow: no upsert, no deleting stale rows.
        .write_modes(&[WriteMode::Append])
    }

    fn new(spec: Spec) -> Result<Self> {
        let config = spec.validate()?;
        // Create the directory every file goes under now, so that a directory the sandbox does
        // not grant is a configuration error before the sync starts, not a failure mid-way.
        if let spec::Config::Destination(settings) = &config
            && let Some(dir) = settings.template.fixed_dir()
        {
            fs::create_dir(&dir)?;
        }
        Ok(FilePlugin {
            config,
            tables: HashMap::new(),
        })
    }

    fn close(&mut self) -> Result<()> {
        self.flush()
    }
}

impl FilePlugin {
    fn settings(&self) -> Result<&spec::Settings> {
        match &self.config {
            spec::Config::Destination(settings) => Ok(settings),
            spec::Config::Source(_) => Err(Error::invalid_spec(
                "this `quarry/file` has `tables`, which makes it a source; a destination needs `path` and `format` instead",
            )),
        }
    }
}

impl Source for FilePlugin {
    fn tables(&self) -> Vec<Table> {
        match &self.config {
            spec::Config::Source(tables) => tables.iter().map(|t| t.table.clone()).collect(),
            spec::Config::Destination(_) => {
                quarry_sdk::log::warn(
                    "this `quarry/file` has `path` and `format`, which make it a destination; as a source it needs `tables: [{ name, paths }]`",
                    &[],
                );
                Vec::new()
            }
        }
    }

    fn sync(&mut self, tables: &[Table], out: &mut SyncContext<'_>) -> Result<()> {
        let spec::Config::Source(all) = &self.config else {
            return Err(Error::invalid_spec(
                "this `quarry/file` has `path` and `format`, which make it a destination; as a source it needs `tables`",
            ));
        };
        for table in tables {
            if let Some(source) = all.iter().find(|t| t.table.name == table.name) {
                source.sync(out)?;
            }
        }
        Ok(())
    }
}

impl Destination for FilePlugin {
    fn migrate_table(&mut self, table: &Table, _force: bool) -> Result<()> {
        self.settings()?;
        // Files are created by the first insert, so that a table without rows leaves none.
        self.tables.entry(table.name.clone()).or_default();
        Ok(())
    }

    fn insert(&mut self, table: &Table, batch: RecordBatch) -> Result<()> {
        let settings = match &self.config {
            spec::Config::Destination(settings) => settings,
            spec::Config::Source(_) => return self.settings().map(|_| ()),
        };
        let files = self.tables.entry(table.name.clone()).or_default();
        files.write(settings, &table.name, batch)
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

quarry_sdk::export_source_and_destination!(FilePlugin);
