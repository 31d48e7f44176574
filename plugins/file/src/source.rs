//! `quarry/file` as a source: CSV, JSON lines and Parquet files under directories the user
//! granted, found by glob patterns, one table per entry of `tables`. A table's schema comes from
//! its first file (Parquet's own schema; CSV and JSON inferred from the first 1,000 rows), with
//! the user's type overrides; every file of the table must fit it (a CSV header naming the same
//! columns in order, JSON lines without other keys). With `incremental`, a sync reads only the
//! files after each pattern's cursor (by name, or by modification time), and moves the cursor
//! after each file, so an interrupted sync starts again at the file it was reading.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use quarry_sdk::{Column, Error, Result, SyncContext, Table};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::spec::Format;

/// Rows sampled to infer a CSV or JSON table's types.
const INFER_ROWS: usize = 1000;
/// Rows per batch read.
const BATCH_ROWS: usize = 8192;

/// One table of the source: its files and how to read them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// The table's name.
    pub name: String,
    /// Glob patterns of its files, relative to the working directory: `*` and `?` match within
    /// one path segment, e.g. `exports/orders/*.csv` or `exports/*/orders.parquet`.
    pub paths: Vec<String>,
    /// The files' format; by default from the extension (`.csv`, `.json`/`.jsonl`/`.ndjson`,
    /// `.parquet`).
    pub format: Option<Format>,
    /// Columns that form the primary key.
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// Column types instead of the inferred ones, in Arrow's spelling: `Int64`, `Float64`,
    /// `Utf8`, `Boolean`, `Date32`, `Decimal128(12, 2)`, `Timestamp(Microsecond, Some("UTC"))`.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// csv: the field delimiter, one ASCII character (default `,`).
    pub delimiter: Option<String>,
    /// csv: whether the first line names the columns (default true; without it they are
    /// `column_1`, `column_2`...).
    pub has_header: Option<bool>,
    /// Read only files after the last sync's: `name` (paths in name order) or `modified` (by
    /// modification time, then name). The table is then incremental: kept across syncs.
    pub incremental: Option<Incremental>,
    /// Leave files modified less than this long ago for a later sync (`30s`, `5m`, `1h`), so a
    /// file still being written is not read half-way. A pattern's files after such a file wait
    /// with it, so the cursor never passes it.
    pub min_age: Option<String>,
}

/// Which files are new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Incremental {
    /// Files whose path sorts after the last one read.
    Name,
    /// Files modified after the last one read (ties broken by path).
    Modified,
}

impl Incremental {
    fn name(self) -> &'static str {
        match self {
            Incremental::Name => "name",
            Incremental::Modified => "modified",
        }
    }
}

/// A table, ready to read.
#[derive(Debug)]
pub struct SourceTable {
    pub table: Table,
    patterns: Vec<String>,
    format: Option<Format>,
    delimiter: u8,
    has_header: bool,
    incremental: Option<Incremental>,
    min_age: std::time::Duration,
}

/// A file of a table, with what orders it and the pattern that found it.
struct Found {
    path: PathBuf,
    cursor: String,
    pattern: usize,
}

/// A table's incremental state: the mode it was made with, and per pattern the cursor of the
/// last file read. Kept per pattern, so that a file one pattern finds is never compared with
/// another pattern's files.
#[derive(Debug, serde::Serialize, Deserialize)]
struct Cursors {
    mode: Incremental,
    after: BTreeMap<String, String>,
}

impl Cursors {
    fn new(mode: Incremental) -> Self {
        Cursors {
            mode,
            after: BTreeMap::new(),
        }
    }

    fn parse(saved: &str, mode: Incremental, table: &str) -> Result<Self> {
        let cursors: Cursors = serde_json::from_str(saved).map_err(|e| {
            Error::invalid_spec(format!(
                "table `{table}`: its saved cursor `{saved}` is not this plugin's ({e}); reset it with `quarry state reset`"
            ))
        })?;
        if cursors.mode != mode {
            return Err(Error::invalid_spec(format!(
                "table `{table}`: its cursor was saved with `incremental: {}`, and the spec now says `{}`; reset it with `quarry state reset` (the next sync reads every file)",
                cursors.mode.name(),
                mode.name()
            )));
        }
        Ok(cursors)
    }

    fn has_read(&self, pattern: &str, cursor: &str) -> bool {
        self.after
            .get(pattern)
            .is_some_and(|after| cursor <= after.as_str())
    }

    fn read(&mut self, pattern: &str, cursor: &str) {
        self.after.insert(pattern.to_string(), cursor.to_string());
    }

    fn text(&self) -> String {
        serde_json::to_string(self).expect("strings serialise")
    }
}

impl TableSpec {
    /// Finds the table's files and reads its schema from the first.
    pub fn open(self) -> Result<SourceTable> {
        let what = format!("table `{}`", self.name);
        if self.paths.is_empty() {
            return Err(Error::invalid_spec(format!(
                "{what} has no `paths`; list glob patterns of its files, e.g. paths: [\"exports/{}/*.csv\"]",
                self.name
            )));
        }
        let delimiter = crate::spec::csv_delimiter(
            &format!("tables.{}.delimiter", self.name),
            self.delimiter.as_deref(),
        )?;
        let mut table = SourceTable {
            table: Table::new(&self.name),
            patterns: self.paths.clone(),
            format: self.format,
            delimiter,
            has_header: self.has_header.unwrap_or(true),
            incremental: self.incremental,
            min_age: match &self.min_age {
                Some(text) => parse_age(text).ok_or_else(|| {
                    Error::invalid_spec(format!(
                        "{what}: `min_age` is `{text}`; write a duration such as `30s`, `5m` or `1h`"
                    ))
                })?,
                None => std::time::Duration::ZERO,
            },
        };
        let files = table.files()?;
        let Some(first) = files.first() else {
            return Err(Error::invalid_spec(format!(
                "{what}: no file matches {}; its schema comes from its first file, so at least one must exist (and be granted: `permissions: {{ files: {{ DIR: read }} }}`)",
                self.paths.join(", ")
            )));
        };
        let inferred = table.infer(&first.path)?;
        let mut fields: Vec<Field> = inferred
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for (column, type_name) in &self.columns {
            let data_type = DataType::from_str(type_name).map_err(|e| {
                Error::invalid_spec(format!(
                    "{what}: `columns.{column}`: `{type_name}` is not an Arrow type ({e}); write e.g. Int64, Utf8, Decimal128(12, 2)"
                ))
            })?;
            let Some(field) = fields.iter_mut().find(|f| f.name() == column) else {
                return Err(Error::invalid_spec(format!(
                    "{what}: `columns.{column}`: {} has no column `{column}` (its columns: {})",
                    first.path.display(),
                    names(&fields)
                )));
            };
            *field = Field::new(column, data_type, true);
        }
        for key in &self.primary_key {
            if !fields.iter().any(|f| f.name() == key) {
                return Err(Error::invalid_spec(format!(
                    "{what}: `primary_key` names `{key}`, which {} does not have (its columns: {})",
                    first.path.display(),
                    names(&fields)
                )));
            }
        }
        let mut t = Table::new(&self.name).describe(&format!("Files {}", self.paths.join(", ")));
        for field in &fields {
            let mut column = Column::new(field.name(), field.data_type().clone());
            if self.primary_key.contains(field.name()) {
                column = column.primary_key();
            }
            t = t.column(column);
        }
        if self.incremental.is_some() {
            t = t.incremental();
        }
        table.table = t;
        Ok(table)
    }
}

fn names(fields: &[Field]) -> String {
    fields
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl SourceTable {
    fn format_of(&self, path: &Path) -> Result<Format> {
        if let Some(format) = self.format {
            return Ok(format);
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Ok(Format::Csv),
            Some("json" | "jsonl" | "ndjson") => Ok(Format::Json),
            Some("parquet") => Ok(Format::Parquet),
            _ => Err(Error::invalid_spec(format!(
                "table `{}`: cannot tell the format of {} from its extension; set `format: csv`, `json` or `parquet`",
                self.table.name,
                path.display()
            ))),
        }
    }

    /// The table's files, in the order they are read, each once (under the first pattern that
    /// matches it): pattern by pattern, each in cursor order.
    fn files(&self) -> Result<Vec<Found>> {
        let mut found: Vec<Found> = Vec::new();
        for (index, pattern) in self.patterns.iter().enumerate() {
            let mut paths = Vec::new();
            glob(pattern, &mut paths)?;
            let mut here = Vec::new();
            for path in paths {
                if found.iter().chain(&here).any(|f: &Found| f.path == path) {
                    continue;
                }
                let cursor = match self.incremental {
                    Some(Incremental::Modified) => {
                        let modified = std::fs::metadata(&path)
                            .and_then(|m| m.modified())
                            .map_err(|e| read_error(&path, &e))?;
                        let ns = modified
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_nanos())
                            .unwrap_or(0);
                        // Zero-padded, so that cursors compare as text in time order.
                        format!("{ns:030}:{}", path.display())
                    }
                    _ => path.display().to_string(),
                };
                here.push(Found {
                    path,
                    cursor,
                    pattern: index,
                });
            }
            here.sort_by(|a, b| a.cursor.cmp(&b.cursor));
            found.extend(here);
        }
        Ok(found)
    }

    fn infer(&self, path: &Path) -> Result<SchemaRef> {
        let file = open(path)?;
        let schema = match self.format_of(path)? {
            Format::Parquet => {
                let builder =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .map_err(|e| read_error(path, &e))?;
                // The columns, without metadata another writer left on them.
                let fields: Vec<Field> = builder
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| Field::new(f.name(), f.data_type().clone(), true))
                    .collect();
                Arc::new(Schema::new(fields))
            }
            Format::Csv => {
                let (schema, _) = arrow_csv::reader::Format::default()
                    .with_header(self.has_header)
                    .with_delimiter(self.delimiter)
                    .infer_schema(file, Some(INFER_ROWS))
                    .map_err(|e| read_error(path, &e))?;
                Arc::new(schema)
            }
            Format::Json => {
                let mut reader = BufReader::new(file);
                let (schema, _) = arrow_json::reader::infer_json_schema_from_seekable(
                    &mut reader,
                    Some(INFER_ROWS),
                )
                .map_err(|e| read_error(path, &e))?;
                Arc::new(schema)
            }
        };
        if schema.fields().is_empty() {
            return Err(Error::invalid_spec(format!(
                "table `{}`: {} has no columns",
                self.table.name,
                path.display()
            )));
        }
        Ok(schema)
    }

    /// Sends the rows of every file after its pattern's cursor, moving the cursor after each
    /// file. The table's state is one JSON value: the mode, and per pattern the last file read.
    pub fn sync(&self, out: &mut SyncContext<'_>) -> Result<()> {
        let key = self.table.name.as_str();
        let mut cursors = match (self.incremental, out.state_get(key)?) {
            (Some(mode), Some(saved)) => Cursors::parse(&saved, mode, key)?,
            (Some(mode), None) => Cursors::new(mode),
            (None, _) => Cursors::new(Incremental::Name),
        };
        let schema = self.table.schema();
        let mut waiting: Option<usize> = None;
        for file in self.files()? {
            let pattern = &self.patterns[file.pattern];
            if self.incremental.is_some() && cursors.has_read(pattern, &file.cursor) {
                continue;
            }
            if waiting == Some(file.pattern) {
                continue;
            }
            let before = stamp(&file.path)?;
            if !self.min_age.is_zero() && before.age() < self.min_age {
                // This file and the pattern's later ones wait for the next sync.
                waiting = Some(file.pattern);
                continue;
            }
            self.read(&file.path, &schema, &mut |batch| {
                out.insert(&self.table, batch.columns().to_vec())
            })?;
            if stamp(&file.path)? != before {
                return Err(Error::internal(format!(
                    "table `{}`: {} changed while it was read: its rows so far were sent, and the next sync reads it again; \
                     write files elsewhere and rename them into place, or set `min_age`",
                    self.table.name,
                    file.path.display()
                )));
            }
            if self.incremental.is_some() {
                cursors.read(pattern, &file.cursor);
                out.state_set(key, &cursors.text())?;
            }
        }
        Ok(())
    }

    /// A CSV file's header must name the table's columns in order: the reader maps them by
    /// position.
    fn check_header(&self, path: &Path, schema: &SchemaRef) -> Result<()> {
        let (header, _) = arrow_csv::reader::Format::default()
            .with_header(true)
            .with_delimiter(self.delimiter)
            .infer_schema(open(path)?, Some(0))
            .map_err(|e| read_error(path, &e))?;
        let found: Vec<&str> = header.fields().iter().map(|f| f.name().as_str()).collect();
        let wanted: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        if found != wanted {
            return Err(Error::internal(format!(
                "table `{}`: {}: its header is `{}`, but the table's columns (from its first file) are `{}`",
                self.table.name,
                path.display(),
                found.join(","),
                wanted.join(",")
            )));
        }
        Ok(())
    }

    fn read(
        &self,
        path: &Path,
        schema: &SchemaRef,
        emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let bad = |e: &dyn std::fmt::Display| {
            Error::internal(format!(
                "table `{}`: {}: {e}",
                self.table.name,
                path.display()
            ))
        };
        let file = File::open(path).map_err(|e| bad(&e))?;
        match self.format_of(path)? {
            Format::Csv => {
                if self.has_header {
                    self.check_header(path, schema)?;
                }
                let reader = arrow_csv::ReaderBuilder::new(schema.clone())
                    .with_header(self.has_header)
                    .with_delimiter(self.delimiter)
                    .with_batch_size(BATCH_ROWS)
                    .build(file)
                    .map_err(|e| bad(&e))?;
                for batch in reader {
                    emit(batch.map_err(|e| bad(&e))?)?;
                }
            }
            Format::Json => {
                // A key the table lacks stops the sync rather than being dropped unseen.
                let reader = arrow_json::ReaderBuilder::new(schema.clone())
                    .with_strict_mode(true)
                    .with_coerce_primitive(true)
                    .with_batch_size(BATCH_ROWS)
                    .build(BufReader::new(file))
                    .map_err(|e| bad(&e))?;
                for batch in reader {
                    emit(batch.map_err(|e| bad(&e))?)?;
                }
            }
            Format::Parquet => {
                let reader =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .map_err(|e| bad(&e))?
                        .with_batch_size(BATCH_ROWS)
                        .build()
                        .map_err(|e| bad(&e))?;
                for batch in reader {
                    let batch = batch.map_err(|e| bad(&e))?;
                    emit(conform(&batch, schema).map_err(|e| bad(&e))?)?;
                }
            }
        }
        Ok(())
    }
}

/// A Parquet batch in the table's schema: its columns by name, cast to the table's types.
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> std::result::Result<RecordBatch, String> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = batch.column_by_name(field.name()).ok_or_else(|| {
            format!(
                "it has no column `{}` (the table's schema comes from its first file)",
                field.name()
            )
        })?;
        let column = if column.data_type() == field.data_type() {
            column.clone()
        } else {
            let options = arrow_cast::CastOptions {
                safe: false,
                ..Default::default()
            };
            arrow_cast::cast_with_options(column, field.data_type(), &options)
                .map_err(|e| format!("column `{}`: {e}", field.name()))?
        };
        columns.push(column);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

/// A file's size and modification time: a file that changes while it is read was being written.
#[derive(PartialEq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl Stamp {
    fn age(&self) -> std::time::Duration {
        self.modified
            .and_then(|m| std::time::SystemTime::now().duration_since(m).ok())
            .unwrap_or_default()
    }
}

fn stamp(path: &Path) -> Result<Stamp> {
    let meta = std::fs::metadata(path).map_err(|e| read_error(path, &e))?;
    Ok(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// `30s`, `5m`, `1h`, `2d`, or seconds as a bare number.
fn parse_age(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: f64 = number
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    let seconds = match unit.trim() {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return None,
    };
    Some(std::time::Duration::from_secs_f64(number * seconds))
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| read_error(path, &e))
}

fn read_error(path: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::invalid_spec(format!("cannot read {}: {e}", path.display()))
}

/// Adds the files `pattern` matches to `out`. A segment with `*` or `?` matches names in one
/// directory; `**` is refused rather than read as `*`.
fn glob(pattern: &str, out: &mut Vec<PathBuf>) -> Result<()> {
    if pattern.contains("**") {
        return Err(Error::invalid_spec(format!(
            "`paths`: `{pattern}`: `**` is not supported; `*` matches within one directory, so list a pattern per depth"
        )));
    }
    let mut dirs = vec![PathBuf::new()];
    let segments: Vec<&str> = pattern
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if pattern.starts_with('/') {
        dirs = vec![PathBuf::from("/")];
    }
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let mut next = Vec::new();
        for dir in &dirs {
            if !segment.contains(['*', '?']) {
                let path = dir.join(segment);
                if path.exists() {
                    next.push(path);
                }
                continue;
            }
            let listing = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let entries = match std::fs::read_dir(listing) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(read_error(listing, &e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| read_error(listing, &e))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if quarry_sdk::matches_glob(segment, name) {
                    next.push(dir.join(name));
                }
            }
        }
        if !last {
            next.retain(|p| p.is_dir());
        }
        dirs = next;
    }
    out.extend(dirs.into_iter().filter(|p| p.is_file()));
    Ok(())
}
