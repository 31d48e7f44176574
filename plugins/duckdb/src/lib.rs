//! `quarry/duckdb`: a DuckDB destination. DuckDB is a C++ library, which cannot run inside the
//! wasm sandbox, so this plugin is a native executable served over gRPC (CloudQuery plugin
//! protocol v3) by the same server every Quarry plugin uses; it implements the same
//! `quarry_sdk::Destination` a wasm destination does.
//!
//! Rows go in through DuckDB's own Arrow importer and its appender, at most 2048 rows per data
//! chunk; upserts go through a staging table, a delete of the keys present and an insert.
//!
//! Appends run in one transaction from the first after a commit to the host's flush (an
//! appender's autocommit per batch wrote each batch through the write-ahead log; one large
//! transaction writes full row groups straight into the database file). A write through the
//! staging table (upserts) commits when it is done, with the appends before it: the rows an
//! upsert deletes are held until their transaction ends. Rows not yet committed were never
//! acknowledged, so their cursors were not saved: a failure loses nothing the next run does not
//! send again.

pub mod ffi;
pub mod types;

use std::collections::HashMap;

use arrow_array::RecordBatch;
use quarry_sdk::migrate::{self, Change, Plan};
use quarry_sdk::sql::{ident, literal};
use quarry_sdk::{Column, DeleteRequest, Destination, Error, Info, Plugin, Result, Table};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::ffi::{Database, DbError};

/// The spec of CloudQuery's DuckDB destination; specs written for it run unchanged.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The database file, created if missing (relative paths start in the directory quarry runs
    /// in), or `:memory:`.
    pub connection_string: String,
    /// Accepted for compatibility with CloudQuery's DuckDB spec; set `batch_size` on the
    /// destination instead.
    #[serde(default)]
    pub batch_size: Option<u64>,
    /// Accepted for compatibility; set `batch_size_bytes` on the destination instead.
    #[serde(default)]
    pub batch_size_bytes: Option<u64>,
    /// Accepted for compatibility; use `--log-level debug`.
    #[serde(default)]
    pub debug: bool,
}

/// The DuckDB destination.
pub struct DuckDb {
    db: Database,
    /// Per table: whether a batch's columns are the table's, in order (then rows are appended
    /// straight into it; otherwise through a staging table that names the columns).
    direct: HashMap<String, bool>,
    /// Whether a transaction is open (committed by `flush`, or by a write through the staging
    /// table).
    open: bool,
}

fn db(e: DbError) -> Error {
    Error::internal(format!("DuckDB: {e}"))
}

const SCHEMA: &str = "main";

fn stage_name(table: &str) -> String {
    ident(&format!("quarry_stage_{table}"))
}

impl DuckDb {
    /// Opens a transaction unless one is open.
    fn begin(&mut self) -> Result<()> {
        if !self.open {
            self.db.execute("BEGIN TRANSACTION").map_err(db)?;
            self.open = true;
        }
        Ok(())
    }

    /// Commits the open transaction, if any. Whatever the outcome it is over: a failed commit
    /// is rolled back, so a later flush does not commit it again.
    fn commit(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.open) {
            return Ok(());
        }
        self.db.execute("COMMIT").map_err(|e| {
            let _ = self.db.execute("ROLLBACK");
            Error::internal(format!("DuckDB: cannot commit: {e}"))
        })
    }

    /// Rolls the open transaction back after a failed write: it cannot go on, and none of its
    /// rows were acknowledged.
    fn abort(&mut self) {
        if std::mem::take(&mut self.open) {
            let _ = self.db.execute("ROLLBACK");
        }
    }

    /// Writes a prepared batch inside the open transaction.
    fn write(
        &mut self,
        table: &Table,
        batch: &RecordBatch,
        columns: &[String],
        direct: bool,
    ) -> Result<()> {
        let keys = table.primary_keys();
        if keys.is_empty() && direct {
            return self.db.append(None, SCHEMA, &table.name, batch).map_err(db);
        }
        // Through a staging table with the batch's columns: for upserts, and for tables that
        // hold more columns than the batch (or in another order).
        let stage = stage_name(&table.name);
        let quoted: Vec<String> = columns.iter().map(|c| ident(c)).collect();
        let list = quoted.join(", ");
        let target = ident(&table.name);
        self.db
            .execute(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS {stage} AS SELECT {list} FROM {target} LIMIT 0"
            ))
            .map_err(db)?;
        let stage_table = format!("quarry_stage_{}", table.name);
        self.db
            .append(Some("temp"), SCHEMA, &stage_table, batch)
            .map_err(db)?;
        let statement = if keys.is_empty() {
            format!("INSERT INTO {target} ({list}) SELECT {list} FROM temp.{stage}")
        } else {
            // An upsert as a delete of the keys present and an insert (much faster in DuckDB
            // than INSERT OR REPLACE). The last row of a key within one batch wins: rows are in
            // the staging table in the order they were appended.
            let keys: Vec<String> = keys.iter().map(|k| ident(k)).collect();
            let matches: Vec<String> = keys
                .iter()
                .map(|k| format!("{target}.{k} = s.{k}"))
                .collect();
            format!(
                "DELETE FROM {target} USING temp.{stage} s WHERE {}; \
                 INSERT INTO {target} ({list}) SELECT {list} FROM temp.{stage} \
                 QUALIFY row_number() OVER (PARTITION BY {} ORDER BY rowid DESC) = 1",
                matches.join(" AND "),
                keys.join(", ")
            )
        };
        self.db
            .execute(&format!("{statement}; DELETE FROM temp.{stage}"))
            .map_err(db)?;
        // Committed write by write: 1M rows overwritten in one transaction took 3x the memory of
        // appending them.
        self.commit()
    }

    fn create(&mut self, table: &Table) -> Result<()> {
        let ddl = quarry_sdk::sql::create_table(&ident(&table.name), table, types::column_type)?;
        self.db.execute(&ddl).map_err(db)
    }

    /// The table's columns, in order.
    fn column_names(&mut self, table: &str) -> Result<Vec<String>> {
        let rows = self
            .db
            .query_text(&format!(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = {} \
                 AND table_name = {} ORDER BY ordinal_position",
                literal(SCHEMA),
                literal(table)
            ))
            .map_err(db)?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect())
    }
}

impl Plugin for DuckDb {
    type Spec = Spec;

    fn info() -> Info {
        Info::new(
            "duckdb",
            env!("CARGO_PKG_VERSION"),
            "Writes tables into a DuckDB database file (native: DuckDB is a C++ library)",
        )
        .needs_files("connection_string")
        .preferred_batch(100_000, 64 * 1024 * 1024)
    }

    fn new(spec: Spec) -> Result<Self> {
        if spec.connection_string.trim().is_empty() {
            return Err(Error::invalid_spec(
                "connection_string is empty; give the database file, e.g. `sync.db`",
            ));
        }
        // Offline and deterministic: no extension downloads, timestamps shown in UTC.
        let options = [
            ("autoinstall_known_extensions", "false"),
            ("autoload_known_extensions", "true"),
        ];
        let mut db = Database::open(&spec.connection_string, &options).map_err(|e| {
            Error::invalid_spec(format!(
                "cannot open the DuckDB database `{}`: {e}",
                spec.connection_string
            ))
        })?;
        db.execute("SET TimeZone = 'UTC'").map_err(self::db)?;
        Ok(DuckDb {
            db,
            direct: HashMap::new(),
            open: false,
        })
    }

    fn test_connection(&mut self) -> Result<()> {
        self.db.execute("SELECT 1").map_err(db)
    }

    fn close(&mut self) -> Result<()> {
        self.commit()
    }
}

impl Destination for DuckDb {
    fn existing_table(&mut self, wanted: &Table) -> Result<Option<Table>> {
        let rows = self
            .db
            .query_text(&format!(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
                 WHERE table_schema = {0} AND table_name = {1} ORDER BY ordinal_position",
                literal(SCHEMA),
                literal(&wanted.name)
            ))
            .map_err(db)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let keys: Vec<String> = self
            .db
            .query_text(&format!(
                "SELECT unnest(constraint_column_names) FROM duckdb_constraints() \
                 WHERE schema_name = {} AND table_name = {} AND constraint_type = 'PRIMARY KEY'",
                literal(SCHEMA),
                literal(&wanted.name)
            ))
            .map_err(db)?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect();
        let mut table = Table::new(&wanted.name);
        for row in rows {
            let text = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
            let (name, catalog) = (text(0), text(1));
            let same = wanted.columns.iter().find(|c| {
                c.name == name
                    && types::column_type(c)
                        .is_ok_and(|ddl| types::normalized(&ddl) == types::normalized(&catalog))
            });
            let mut column = match same {
                Some(c) => c.clone(),
                None => {
                    let (data_type, extension) = types::arrow_type(&catalog);
                    Column {
                        extension,
                        ..Column::new(&name, data_type)
                    }
                }
            };
            column.nullable = text(2) == "YES";
            column.primary_key = keys.contains(&name);
            table = table.column(column);
        }
        Ok(Some(table))
    }

    fn migrate_table(&mut self, table: &Table, force: bool) -> Result<()> {
        // Schema changes commit on their own, after the rows already written.
        self.commit()?;
        self.db
            .execute(&format!(
                "DROP TABLE IF EXISTS temp.{}",
                stage_name(&table.name)
            ))
            .map_err(db)?;
        self.direct.remove(&table.name);
        let existing = self.existing_table(table)?;
        let found = match migrate::plan(existing.as_ref(), table, force)? {
            Plan::Create => return self.create(table),
            Plan::Recreate => {
                self.db
                    .execute(&format!("DROP TABLE {}", ident(&table.name)))
                    .map_err(db)?;
                return self.create(table);
            }
            Plan::Alter(found) => found,
        };
        let name = ident(&table.name);
        for change in &found {
            let statement = match change {
                Change::AddColumn(c) => format!(
                    "ALTER TABLE {name} ADD COLUMN {} {}",
                    ident(&c.name),
                    types::column_type(c)?
                ),
                Change::DropNotNull(c) => {
                    format!("ALTER TABLE {name} ALTER COLUMN {} DROP NOT NULL", ident(c))
                }
                // A column the source dropped stays, and gets nulls.
                _ => continue,
            };
            self.db.execute(&statement).map_err(db)?;
        }
        Ok(())
    }

    fn insert(&mut self, table: &Table, batch: RecordBatch) -> Result<()> {
        let batch = types::prepare(table, &batch)?;
        let columns: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        let direct = match self.direct.get(&table.name) {
            Some(direct) => *direct,
            None => {
                let direct = self.column_names(&table.name)? == columns;
                self.direct.insert(table.name.clone(), direct);
                direct
            }
        };
        self.begin()?;
        let written = self.write(table, &batch, &columns, direct);
        if written.is_err() {
            self.abort();
        }
        written
    }

    fn flush(&mut self) -> Result<()> {
        self.commit()
    }

    // Deletes and reads commit the rows written before them first: a failed statement would
    // abort the open transaction with every row in it.
    fn delete_stale(&mut self, table: &str, source_name: &str, sync_time_us: i64) -> Result<()> {
        self.commit()?;
        self.db
            .execute(&format!(
                "DELETE FROM {} WHERE \"_cq_source_name\" = {} AND epoch_us(\"_cq_sync_time\") < {sync_time_us}",
                ident(table),
                literal(source_name)
            ))
            .map_err(db)
    }

    fn delete_record(&mut self, request: &DeleteRequest) -> Result<()> {
        let filter = quarry_sdk::sql::delete_filter(request)?;
        self.commit()?;
        self.db
            .execute(&format!("DELETE FROM {}{filter}", ident(&request.table)))
            .map_err(db)
    }

    fn read(&mut self, table: &Table) -> Result<Vec<RecordBatch>> {
        self.commit()?;
        let columns: Vec<String> = table.columns.iter().map(|c| ident(&c.name)).collect();
        let batches = self
            .db
            .query_arrow(&format!(
                "SELECT {} FROM {}",
                columns.join(", "),
                ident(&table.name)
            ))
            .map_err(db)?;
        let schema = table.schema();
        batches
            .iter()
            .map(|batch| types::in_table_types(&schema, batch))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;

    use super::*;

    fn open(path: &std::path::Path) -> DuckDb {
        DuckDb::new(Spec {
            connection_string: path.display().to_string(),
            batch_size: None,
            batch_size_bytes: None,
            debug: false,
        })
        .unwrap()
    }

    #[test]
    fn upserts_keep_the_last_row_of_a_key_and_unflushed_appends_are_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        use quarry_plugin_test::keyed::{self, batch};
        let table = keyed::table();
        // The same columns without a key: appended, in one transaction until the flush.
        let mut plain = keyed::table();
        plain.name = "plain".into();
        for column in &mut plain.columns {
            column.primary_key = false;
        }
        let rows = |ids: &[i64]| {
            let names = vec!["p"; ids.len()];
            RecordBatch::try_new(plain.schema(), batch(ids, &names).columns().to_vec()).unwrap()
        };
        let mut db = open(&path);
        db.migrate_table(&table, false).unwrap();
        db.migrate_table(&plain, false).unwrap();
        // The same keys deleted and inserted again batch after batch.
        db.insert(&table, batch(&[1, 2], &["one", "two"])).unwrap();
        db.insert(&table, batch(&[2, 3], &["two'", "three"]))
            .unwrap();
        db.insert(&table, batch(&[3, 2, 3], &["x", "two''", "three'"]))
            .unwrap();
        db.insert(&plain, rows(&[7])).unwrap();
        db.flush().unwrap();
        // Appended, never flushed: not promised, and gone when the plugin stops without a flush.
        db.insert(&plain, rows(&[8])).unwrap();
        drop(db);
        let mut db = open(&path);
        let mut text = |sql: &str| db.db.query_text(sql).unwrap();
        let row = |id: &str, name: &str| vec![Some(id.to_string()), Some(name.to_string())];
        assert_eq!(
            text("SELECT id, name FROM keyed ORDER BY id"),
            [row("1", "one"), row("2", "two''"), row("3", "three'")]
        );
        assert_eq!(text("SELECT id, name FROM plain"), [row("7", "p")]);
        // A read sees the rows appended before it.
        db.insert(&plain, rows(&[9])).unwrap();
        let read = db.read(&plain).unwrap();
        let ids: Vec<i64> = read
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ids, [7, 9]);
    }
}
