//! `quarry/sqlite`: a SQLite destination as a sandboxed component. SQLite's C sources are
//! compiled into the component (for `wasm32-wasip2`, with the clang and WASI headers that
//! `scripts/wasi-c` provides), so the plugin touches nothing but the database file's directory,
//! which the user grants.
//!
//! Rows go in through one prepared `INSERT` per batch inside a transaction that stays open until
//! the host's flush: SQLite has no faster bulk path, and one commit per flush means one journal
//! sync per flush rather than per batch. With a primary key the statement is
//! `INSERT OR REPLACE` (the last row of a key wins; a column the source no longer sends
//! becomes null, as with every other destination).
//!
//! WASI has no file locks, so inside the sandbox the database is opened with SQLite's `unix-none`
//! VFS in exclusive locking mode: nothing else may write the file while a sync runs.

pub mod types;

use std::path::Path;

use quarry_sdk::migrate::{self, Change, Plan};
use quarry_sdk::sql::{ident, literal};
use quarry_sdk::{
    Column, DeleteRequest, Destination, Error, Info, Plugin, RecordBatch, Result, Table,
};
use rusqlite::{Connection, OpenFlags};
use schemars::JsonSchema;
use serde::Deserialize;

/// The spec of CloudQuery's SQLite destination; specs written for it run unchanged.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The database file, created if missing (relative paths start in the directory quarry runs
    /// in). Its directory must be granted: `permissions: { files: { ./data: write } }`.
    pub connection_string: String,
    /// Accepted for compatibility with CloudQuery's SQLite spec; set `batch_size` on the
    /// destination instead.
    #[serde(default)]
    pub batch_size: Option<u64>,
    /// Accepted for compatibility; set `batch_size_bytes` on the destination instead.
    #[serde(default)]
    pub batch_size_bytes: Option<u64>,
}

/// The SQLite destination.
pub struct Sqlite {
    conn: Connection,
    path: String,
    /// Whether a transaction is open (it is committed by `flush`).
    open: bool,
}

fn db(e: rusqlite::Error) -> Error {
    Error::internal(format!("SQLite: {e}"))
}

/// One row of `pragma_table_info`.
struct Declared {
    name: String,
    declared: String,
    not_null: bool,
    key: bool,
}

impl Sqlite {
    /// Opens a transaction unless one is open.
    fn begin(&mut self) -> Result<()> {
        if !self.open {
            self.conn.execute_batch("BEGIN").map_err(db)?;
            self.open = true;
        }
        Ok(())
    }

    fn execute(&mut self, sql: &str) -> Result<()> {
        self.begin()?;
        self.conn
            .execute_batch(sql)
            .map_err(|e| Error::internal(format!("SQLite: {e} (in `{sql}`)")))
    }

    fn declared(&self, table: &str) -> Result<Vec<Declared>> {
        let mut statement = self
            .conn
            .prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid")
            .map_err(db)?;
        let rows = statement
            .query_map([table], |r| {
                Ok(Declared {
                    name: r.get(0)?,
                    declared: r.get(1)?,
                    not_null: r.get::<_, i64>(2)? != 0,
                    key: r.get::<_, i64>(3)? != 0,
                })
            })
            .map_err(db)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db)
    }

    fn create(&mut self, table: &Table) -> Result<()> {
        let ddl = quarry_sdk::sql::create_table(&ident(&table.name), table, types::column_type)?;
        self.execute(&ddl)
    }

    /// Rebuilds a table with the same columns but every one of `relax` nullable: SQLite cannot
    /// alter a column in place. One transaction, so it is never seen half done.
    fn relax_not_null(&mut self, table: &str, relax: &[&str]) -> Result<()> {
        let columns = self.declared(table)?;
        let mut parts = Vec::new();
        for c in &columns {
            let not_null = if c.not_null && !relax.contains(&c.name.as_str()) {
                " NOT NULL"
            } else {
                ""
            };
            parts.push(format!("{} {}{not_null}", ident(&c.name), c.declared));
        }
        let keys: Vec<String> = columns
            .iter()
            .filter(|c| c.key)
            .map(|c| ident(&c.name))
            .collect();
        if !keys.is_empty() {
            parts.push(format!("PRIMARY KEY ({})", keys.join(", ")));
        }
        let names: Vec<String> = columns.iter().map(|c| ident(&c.name)).collect();
        let (old, new) = (ident(table), ident(&format!("quarry_rebuild_{table}")));
        self.execute(&format!(
            "CREATE TABLE {new} ({}); INSERT INTO {new} SELECT {} FROM {old}; DROP TABLE {old}; \
             ALTER TABLE {new} RENAME TO {old}",
            parts.join(", "),
            names.join(", ")
        ))
    }
}

impl Plugin for Sqlite {
    type Spec = Spec;

    fn info() -> Info {
        Info::new(
            "sqlite",
            env!("CARGO_PKG_VERSION"),
            "Writes tables into a SQLite database file (SQLite compiled into the sandboxed plugin)",
        )
        .needs_files("connection_string")
        .preferred_batch(50_000, 32 * 1024 * 1024)
    }

    fn new(spec: Spec) -> Result<Self> {
        let path = spec.connection_string.trim().to_string();
        if path.is_empty() || path == ":memory:" {
            return Err(Error::invalid_spec(
                "connection_string must name the database file, e.g. `./data/sync.db`",
            ));
        }
        let conn = open(&path)?;
        Ok(Sqlite {
            conn,
            path,
            open: false,
        })
    }

    fn test_connection(&mut self) -> Result<()> {
        self.conn.query_row("SELECT 1", [], |_| Ok(())).map_err(db)
    }

    fn close(&mut self) -> Result<()> {
        self.flush()
    }
}

/// Opens (creating) the database, with the advice a denied directory needs.
fn open(path: &str) -> Result<Connection> {
    let dir = match Path::new(path).parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let refused = |e: &dyn std::fmt::Display| {
        Error::invalid_spec(format!(
            "cannot open the SQLite database `{path}`: {e}; grant its directory in the \
             destination's permissions, e.g. permissions: {{ files: {{ \"{}\": write }} }}, \
             and check that the directory exists",
            grant(dir)
        ))
    };
    std::fs::metadata(dir).map_err(|e| refused(&e))?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    // WASI has no file locks: SQLite's WASI default (`unix-dotfile`) would leave a lock
    // directory behind a plugin stopped by a timeout, and every later run would be refused.
    #[cfg(target_os = "wasi")]
    let conn = Connection::open_with_flags_and_vfs(path, flags, c"unix-none");
    #[cfg(not(target_os = "wasi"))]
    let conn = Connection::open_with_flags(path, flags);
    let conn = conn.map_err(|e| refused(&e))?;
    let pragmas = if cfg!(target_os = "wasi") {
        "PRAGMA locking_mode = EXCLUSIVE; PRAGMA cache_size = -65536;"
    } else {
        "PRAGMA cache_size = -65536;"
    };
    conn.execute_batch(pragmas)
        .map_err(|e| refused(&format_args!("{e} (is it a SQLite database?)")))?;
    Ok(conn)
}

/// The directory to grant, as the user would write it.
fn grant(dir: &Path) -> String {
    let text = dir.display().to_string();
    if dir.is_relative() && !text.starts_with('.') {
        format!("./{text}")
    } else {
        text
    }
}

impl Destination for Sqlite {
    fn existing_table(&mut self, wanted: &Table) -> Result<Option<Table>> {
        let declared = self.declared(&wanted.name)?;
        if declared.is_empty() {
            return Ok(None);
        }
        let mut table = Table::new(&wanted.name);
        for d in declared {
            let same = wanted.columns.iter().find(|c| {
                c.name == d.name
                    && types::column_type(c).is_ok_and(|t| t.eq_ignore_ascii_case(&d.declared))
            });
            let mut column = match same {
                Some(c) => c.clone(),
                None => {
                    let (data_type, extension) = types::arrow_type(&d.declared);
                    Column {
                        extension,
                        ..Column::new(&d.name, data_type)
                    }
                }
            };
            column.nullable = !d.not_null && !d.key;
            column.primary_key = d.key;
            table = table.column(column);
        }
        Ok(Some(table))
    }

    fn migrate_table(&mut self, table: &Table, force: bool) -> Result<()> {
        let existing = self.existing_table(table)?;
        let found = match migrate::plan(existing.as_ref(), table, force)? {
            Plan::Create => return self.create(table),
            Plan::Recreate => {
                self.execute(&format!("DROP TABLE {}", ident(&table.name)))?;
                return self.create(table);
            }
            Plan::Alter(found) => found,
        };
        let name = ident(&table.name);
        let mut relax = Vec::new();
        for change in &found {
            match change {
                Change::AddColumn(c) => self.execute(&format!(
                    "ALTER TABLE {name} ADD COLUMN {} {}",
                    ident(&c.name),
                    types::column_type(c)?
                ))?,
                Change::DropNotNull(c) => relax.push(c.as_str()),
                // A column the source dropped stays, and gets nulls.
                _ => {}
            }
        }
        if !relax.is_empty() {
            self.relax_not_null(&table.name, &relax)?;
        }
        Ok(())
    }

    fn insert(&mut self, table: &Table, batch: RecordBatch) -> Result<()> {
        let schema = batch.schema();
        let columns: Vec<String> = schema.fields().iter().map(|f| ident(f.name())).collect();
        let values: Vec<types::Values> = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(field, array)| types::values(field, array))
            .collect::<Result<_>>()?;
        let verb = if table.primary_keys().is_empty() {
            "INSERT"
        } else {
            "INSERT OR REPLACE"
        };
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "{verb} INTO {} ({}) VALUES ({})",
            ident(&table.name),
            columns.join(", "),
            placeholders.join(", ")
        );
        self.begin()?;
        let mut statement = self.conn.prepare_cached(&sql).map_err(db)?;
        for row in 0..batch.num_rows() {
            for (i, column) in values.iter().enumerate() {
                statement
                    .raw_bind_parameter(
                        i + 1,
                        rusqlite::types::ToSqlOutput::Borrowed(column.get(row)),
                    )
                    .map_err(db)?;
            }
            statement.raw_execute().map_err(|e| {
                Error::internal(format!(
                    "SQLite: {e} (row {row} of a batch of table `{}`)",
                    table.name
                ))
            })?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.open {
            // Whatever the outcome, this transaction is over: a failed commit (a full disk, an
            // I/O error) is rolled back, so close does not try to commit it again; the rows in
            // it were never acknowledged, so their cursors were not saved.
            self.open = false;
            if let Err(e) = self.conn.execute_batch("COMMIT") {
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                return Err(Error::internal(format!(
                    "SQLite: cannot commit to `{}`: {e}; check the disk's free space",
                    self.path
                )));
            }
        }
        Ok(())
    }

    fn delete_stale(&mut self, table: &str, source_name: &str, sync_time_us: i64) -> Result<()> {
        let before = types::timestamp_text(sync_time_us, arrow_schema::TimeUnit::Microsecond);
        self.execute(&format!(
            "DELETE FROM {} WHERE \"_cq_source_name\" = {} AND \"_cq_sync_time\" < {}",
            ident(table),
            literal(source_name),
            literal(&before)
        ))
    }

    fn delete_record(&mut self, request: &DeleteRequest) -> Result<()> {
        let filter = quarry_sdk::sql::delete_filter(request)?;
        self.execute(&format!("DELETE FROM {}{filter}", ident(&request.table)))
    }

    fn read(&mut self, table: &Table) -> Result<Vec<RecordBatch>> {
        let schema = table.schema();
        let columns: Vec<String> = schema.fields().iter().map(|f| ident(f.name())).collect();
        let mut readers: Vec<types::Reader> = schema
            .fields()
            .iter()
            .map(|f| types::Reader::new(f))
            .collect::<Result<_>>()?;
        let sql = format!("SELECT {} FROM {}", columns.join(", "), ident(&table.name));
        let mut statement = self.conn.prepare(&sql).map_err(db)?;
        let mut rows = statement.query([]).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            for (i, reader) in readers.iter_mut().enumerate() {
                reader.push(row.get_ref(i).map_err(db)?)?;
            }
        }
        let arrays = readers
            .into_iter()
            .map(types::Reader::finish)
            .collect::<Result<Vec<_>>>()?;
        Ok(vec![RecordBatch::try_new(schema, arrays)?])
    }
}

quarry_sdk::export_destination!(Sqlite);

#[cfg(test)]
mod tests {
    //! Natively, against the same SQLite sources the component compiles.

    use quarry_plugin_test::types;

    use super::*;

    #[test]
    fn every_type_of_the_test_source_reads_back_as_it_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Sqlite::new(Spec {
            connection_string: dir.path().join("t.db").display().to_string(),
            batch_size: None,
            batch_size_bytes: None,
        })
        .unwrap();
        let table = types::table();
        db.migrate_table(&table, false).unwrap();
        let written = RecordBatch::try_new(table.schema(), types::columns(0, 30).unwrap()).unwrap();
        db.insert(&table, written.clone()).unwrap();
        db.flush().unwrap();
        let read = db.read(&table).unwrap();
        assert_eq!(read.len(), 1);
        for (i, field) in table.schema().fields().iter().enumerate() {
            assert_eq!(
                read[0].column(i).as_ref(),
                written.column(i).as_ref(),
                "column {}",
                field.name()
            );
        }
        // Unsynced rows are not promised: a second batch, dropped without a flush, is gone.
        let more = RecordBatch::try_new(table.schema(), types::columns(30, 40).unwrap()).unwrap();
        db.insert(&table, more).unwrap();
        drop(db);
        let mut db = Sqlite::new(Spec {
            connection_string: dir.path().join("t.db").display().to_string(),
            batch_size: None,
            batch_size_bytes: None,
        })
        .unwrap();
        assert_eq!(db.read(&table).unwrap()[0].num_rows(), 30);
    }
}
