//! `quarry-bench-native ROWS BATCH_SIZE RUNS DIR`: `quarry bench`'s baseline for the cost of the
//! sandbox. The same `test` source and `file` destination code that the components run, compiled
//! natively and linked into this one process: the source on a thread of its own sending each
//! batch through a queue of four to the destination on the main thread (the shape of a
//! `quarry sync`, without WebAssembly, Arrow IPC or the host between them). Each run writes
//! `test_rows` as Parquet under `DIR` (emptied before each run) and prints its seconds; the first
//! run is a warm-up and is not printed.
//!
//! Quarry's own columns (`_cq_source_name`, `_cq_sync_time`) are added in front of each batch as
//! the host adds them, so the files hold what the sync's files hold.

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};

use quarry_plugin_file::FilePlugin;
use quarry_plugin_test::TestPlugin;
use quarry_sdk::{
    Column, DataType, Destination, Error, Message, Plugin, Result, SyncOptions, Table, TimeUnit,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [rows, batch, runs, dir] => rows
            .parse::<u64>()
            .ok()
            .zip(batch.parse::<u64>().ok())
            .zip(runs.parse::<usize>().ok())
            .map(|((rows, batch), runs)| (rows, batch, runs, Path::new(dir))),
        _ => None,
    };
    let Some((rows, batch, runs, dir)) = parsed else {
        eprintln!("usage: quarry-bench-native ROWS BATCH_SIZE RUNS DIR");
        std::process::exit(2);
    };
    for run in 0..=runs {
        let _ = std::fs::remove_dir_all(dir);
        let started = Instant::now();
        match sync(rows, batch, dir) {
            Ok(written) if written == rows => {}
            Ok(written) => {
                eprintln!("error: {written} rows written, not {rows}");
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
        if run > 0 {
            println!("{}", started.elapsed().as_secs_f64());
        }
    }
}

/// One sync of `rows` rows of `test_rows` into Parquet files under `dir`; the rows written.
fn sync(rows: u64, batch: u64, dir: &Path) -> Result<u64> {
    let source_spec = serde_json::json!({ "num_rows": rows, "batch_size": batch });
    let mut source = TestPlugin::new(serde_json::from_value(source_spec).map_err(spec_error)?)?;
    let path = dir.join("{{TABLE}}/{{UUID}}.{{FORMAT}}");
    let destination_spec = serde_json::json!({ "path": path, "format": "parquet" });
    let mut destination =
        FilePlugin::new(serde_json::from_value(destination_spec).map_err(spec_error)?)?;
    let options = SyncOptions {
        tables: vec!["test_rows".into()],
        ..SyncOptions::default()
    };
    let sync_time_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let mut internal = Internal::new(sync_time_us);
    let (tx, rx) = mpsc::sync_channel::<Message>(4);
    let producer = std::thread::spawn(move || {
        quarry_sdk::sync_each(&mut source, &options, |message| {
            tx.send(message)
                .map_err(|_| Error::internal("the destination stopped"))
        })
    });
    let mut tables: Vec<Table> = Vec::new();
    let mut written = 0;
    let mut failed = None;
    for message in rx {
        let done = match message {
            Message::MigrateTable(table) => {
                let table = with_internal_columns(table);
                let done = destination.migrate_table(&table, false);
                tables.push(table);
                done
            }
            Message::Insert(batch) => {
                let name = quarry_sdk::table_name(batch.schema_ref());
                match tables.iter().find(|t| t.name == name) {
                    Some(table) => {
                        written += batch.num_rows() as u64;
                        internal
                            .extend(table, &batch)
                            .and_then(|batch| destination.insert(table, batch))
                    }
                    None => Err(Error::internal("rows of a table never migrated")),
                }
            }
            Message::DeleteRecord(_) | Message::State { .. } => Ok(()),
        };
        if let Err(e) = done {
            failed = Some(e);
            break;
        }
    }
    let produced = producer
        .join()
        .map_err(|_| Error::internal("the source thread panicked"))?;
    if let Some(e) = failed {
        return Err(e);
    }
    produced?;
    destination.close()?;
    Ok(written)
}

/// The table with the host's two columns in front, as `quarry sync` writes it.
fn with_internal_columns(mut table: Table) -> Table {
    let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    table.columns.splice(
        0..0,
        [
            Column::new("_cq_source_name", DataType::Utf8),
            Column::new("_cq_sync_time", time),
        ],
    );
    table
}

/// Quarry's two columns, made once as long as the longest batch so far and sliced for each
/// batch, as the host does.
struct Internal {
    names: ArrayRef,
    times: ArrayRef,
    sync_time_us: i64,
}

impl Internal {
    fn new(sync_time_us: i64) -> Self {
        Internal {
            names: Arc::new(StringArray::new_null(0)),
            times: Arc::new(TimestampMicrosecondArray::new_null(0)),
            sync_time_us,
        }
    }

    fn grow(&mut self, rows: usize) {
        self.names = Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            "bench", rows,
        )));
        self.times = Arc::new(
            TimestampMicrosecondArray::from_iter_values(std::iter::repeat_n(
                self.sync_time_us,
                rows,
            ))
            .with_timezone("UTC"),
        );
    }

    /// `batch` with the source's name and the sync's time in front, in `table`'s schema.
    fn extend(&mut self, table: &Table, batch: &RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        if self.names.len() < rows {
            self.grow(rows);
        }
        let mut columns = vec![self.names.slice(0, rows), self.times.slice(0, rows)];
        columns.extend(batch.columns().iter().cloned());
        Ok(RecordBatch::try_new(table.schema(), columns)?)
    }
}

fn spec_error(e: serde_json::Error) -> Error {
    Error::invalid_spec(e.to_string())
}
