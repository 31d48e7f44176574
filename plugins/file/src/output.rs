//! The files of one table during a sync: which one is open, when the next one starts (after
//! `max_rows_per_file` rows, or after a flush finished the last one), and where its rows go.

use std::path::PathBuf;

use arrow_schema::Fields;
use quarry_sdk::{Error, RecordBatch, Result};

use crate::fs::{self, Open};
use crate::spec::Settings;
use crate::writer::FileWriter;

/// One table's files.
#[derive(Default)]
pub struct TableFiles {
    open: Option<OpenFile>,
    /// A file was started for this table earlier in this sync. Without `{{UUID}}` in the path
    /// that file is the one the next rows must go to.
    started: bool,
}

struct OpenFile {
    path: PathBuf,
    writer: FileWriter,
    /// The columns of the file, from its first batch.
    fields: Fields,
    rows: u64,
    /// Created (not reopened) in this sync: its directory entry is new too.
    created: bool,
}

impl TableFiles {
    /// Writes `batch` to the table's open file, starting files as needed.
    pub fn write(&mut self, settings: &Settings, table: &str, batch: RecordBatch) -> Result<()> {
        let mut rest = batch;
        while rest.num_rows() > 0 {
            let file = match &mut self.open {
                Some(file) => file,
                slot @ None => slot.insert(start(settings, table, &rest, self.started)?),
            };
            self.started = true;
            if file.fields != *rest.schema_ref().fields() {
                return Err(Error::internal(format!(
                    "table {table}: a batch's columns differ from those already written to {}; \
                     every batch of a table in one sync must have the same columns",
                    file.path.display()
                )));
            }
            let room = settings
                .max_rows_per_file
                .map_or(u64::MAX, |max| max.saturating_sub(file.rows));
            let take = rest
                .num_rows()
                .min(usize::try_from(room).unwrap_or(usize::MAX));
            let result = file.writer.write(&rest.slice(0, take));
            if let Err(e) = result {
                let path = file.path.clone();
                // The writer's state is unknown after a failed write: drop it rather than finish
                // a file that may not hold what it claims.
                self.open = None;
                return Err(fs::write_error(&path, e));
            }
            file.rows += take as u64;
            if settings
                .max_rows_per_file
                .is_some_and(|max| file.rows >= max)
            {
                self.finish()?;
            }
            rest = rest.slice(take, rest.num_rows() - take);
        }
        Ok(())
    }

    /// Finishes the open file, if any, and makes it durable. The next rows start a new file
    /// (or, without `{{UUID}}` in the path, go after the rows of this one).
    pub fn finish(&mut self) -> Result<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let file = open
            .writer
            .finish()
            .map_err(|e| fs::write_error(&open.path, e))?;
        fs::sync(&file, &open.path, open.created)
    }
}

/// Opens the table's next file for `batch`'s columns.
fn start(settings: &Settings, table: &str, batch: &RecordBatch, started: bool) -> Result<OpenFile> {
    let path = settings
        .template
        .expand(table, &uuid::Uuid::new_v4(), settings.format.name());
    let appending = started && !settings.template.has_uuid();
    if appending && !settings.format.can_append() {
        return Err(Error::invalid_spec(format!(
            "table {table}: cannot add rows to {} after a flush finished it, because a Parquet file \
             cannot be appended to; put {{{{UUID}}}} in `path` so that each flush starts a new file",
            path.display()
        )));
    }
    let how = if appending {
        Open::Append
    } else {
        Open::Create
    };
    let file = fs::open(&path, how)?;
    let writer = FileWriter::new(&settings.format, file, batch.schema(), appending)
        .map_err(|e| fs::write_error(&path, e))?;
    Ok(OpenFile {
        path,
        writer,
        fields: batch.schema_ref().fields().clone(),
        rows: 0,
        created: !appending,
    })
}
