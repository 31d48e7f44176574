//! The plugin's spec and its destination side: tables in one schema, created and migrated from Arrow schemas, loaded with
//! binary COPY. With a primary key, rows are copied into a session-local staging table and merged
//! with `INSERT ... ON CONFLICT DO UPDATE`, in one transaction per batch; without one they are
//! copied straight into the table. Every batch is committed when `insert` returns, so `flush`
//! has nothing left to do.

use arrow_array::{ArrayRef, BinaryArray, StringArray};
use bytes::BytesMut;
use quarry_sdk::migrate::{self, Change, Plan};
use quarry_sdk::{
    Column, DataType, DeleteRequest, Destination, Extension, Info, Plugin, RecordBatch, Result,
    Table,
};
use schemars::JsonSchema;
use serde::Deserialize;

use std::collections::BTreeMap;

use crate::config::Config;
use crate::wire::Connection;
use crate::{copy, source, types};

/// The PostgreSQL destination's `spec:`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `postgres://user:password@host:port/database` or libpq's `host=... user=... dbname=...`.
    /// Keep the password out of the file with `${PG_PASSWORD}`. The host must be granted under
    /// `permissions: { network: ["host:port"] }`.
    pub connection_string: String,
    /// Destination: the schema (namespace) the tables are created in; created if missing.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Source: the tables and views to read, globs over `schema.table` (`*` any run of
    /// characters, `?` one); each becomes a Quarry table of its own name.
    #[serde(default = "default_tables")]
    pub tables: Vec<String>,
    /// Source: per table (`name` or `schema.name`), a column that grows with every change (an
    /// `updated_at`, a serial id): each sync reads only rows past the last value it saved.
    #[serde(default)]
    pub incremental: BTreeMap<String, String>,
    /// Source: the rows per batch sent (also cut at 32 MiB of row data).
    #[serde(default = "default_rows_per_batch")]
    pub rows_per_batch: usize,
    /// Source: how many connections read one large table at once, each a range of its integer
    /// primary key (a source's `concurrency:` sets it).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Source: a table is split into key ranges only with at least this many rows per range
    /// (by PostgreSQL's estimate, `pg_class.reltuples`, which ANALYZE keeps).
    #[serde(default = "default_split_rows")]
    pub split_rows: u64,
}

fn default_schema() -> String {
    "public".into()
}

fn default_tables() -> Vec<String> {
    vec!["public.*".into()]
}

fn default_rows_per_batch() -> usize {
    50_000
}

fn default_concurrency() -> usize {
    4
}

fn default_split_rows() -> u64 {
    1_000_000
}

impl Spec {
    /// A spec with every default: the server, and nothing else said.
    pub fn new(connection_string: &str) -> Spec {
        Spec {
            connection_string: connection_string.into(),
            schema: default_schema(),
            tables: default_tables(),
            incremental: BTreeMap::new(),
            rows_per_batch: default_rows_per_batch(),
            concurrency: default_concurrency(),
            split_rows: default_split_rows(),
        }
    }
}

pub struct PostgreSql {
    pub(crate) conn: Connection,
    pub(crate) config: Config,
    schema: String,
    pub(crate) settings: source::Settings,
    /// The source's tables, once the catalog has been read.
    pub(crate) discovered: Option<Vec<source::SourceTable>>,
}

pub use quarry_sdk::sql::{ident, literal};

/// The type name `format_type` prints for a type as written in our DDL.
fn catalog_name(ddl: &str) -> String {
    let (base, array) = match ddl.strip_suffix("[]") {
        Some(base) => (base, "[]"),
        None => (ddl, ""),
    };
    let base = match base {
        "timestamptz" => "timestamp with time zone",
        "timestamp" => "timestamp without time zone",
        "time" => "time without time zone",
        other => other,
    };
    format!("{base}{array}")
}

/// The Arrow type for a column type this destination did not create (or that differs from what
/// the source wants), so that a migration message can name it.
fn arrow_type(catalog: &str) -> (DataType, Option<Extension>) {
    let t = match catalog {
        "boolean" => DataType::Boolean,
        "smallint" => DataType::Int16,
        "integer" => DataType::Int32,
        "bigint" => DataType::Int64,
        "real" => DataType::Float32,
        "double precision" => DataType::Float64,
        "text" | "character varying" => DataType::Utf8,
        "bytea" => DataType::Binary,
        "date" => DataType::Date32,
        "uuid" => return (DataType::FixedSizeBinary(16), Some(Extension::Uuid)),
        "jsonb" | "json" => return (DataType::Binary, Some(Extension::Json)),
        "inet" => return (DataType::Binary, Some(Extension::Inet)),
        "macaddr" => return (DataType::Binary, Some(Extension::Mac)),
        t if t.starts_with("timestamp with") => {
            DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into()))
        }
        t if t.starts_with("timestamp") => {
            DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None)
        }
        // Anything else is named by its storage: a distinct, honest placeholder.
        _ => DataType::LargeBinary,
    };
    (t, None)
}

impl PostgreSql {
    fn table_name(&self, table: &str) -> String {
        format!("{}.{}", ident(&self.schema), ident(table))
    }

    fn create(&mut self, table: &Table) -> Result<()> {
        let ddl = quarry_sdk::sql::create_table(
            &self.table_name(&table.name),
            table,
            types::column_type,
        )?;
        self.conn.query(&ddl).map(drop)
    }

    /// The session's staging table for `table`. PostgreSQL cuts names at 63 bytes: a longer one
    /// keeps what fits (on a character boundary) and a hash of the whole, so that two long names
    /// never share a stage.
    fn stage_name(table: &str) -> String {
        let name = format!("quarry_stage_{table}");
        if name.len() <= 63 {
            return ident(&name);
        }
        let hash = table.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        let mut end = 54;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        ident(&format!("{}_{hash:08x}", &name[..end]))
    }
}

impl Plugin for PostgreSql {
    type Spec = Spec;

    fn info() -> Info {
        Info::new(
            "postgresql",
            env!("CARGO_PKG_VERSION"),
            "PostgreSQL: a destination (binary COPY, upserts on primary keys, migrations) and a \
             source (binary COPY out, key-range splits, incremental cursors)",
        )
        .preferred_batch(50_000, 0)
    }

    fn new(spec: Spec) -> Result<Self> {
        if spec.rows_per_batch == 0 || spec.concurrency == 0 || spec.split_rows == 0 {
            return Err(quarry_sdk::Error::invalid_spec(
                "rows_per_batch, concurrency and split_rows must be at least 1",
            ));
        }
        let config = Config::parse(&spec.connection_string)?;
        let mut conn = Connection::connect(&config)?;
        let created = conn.query(&format!(
            "create schema if not exists {}",
            ident(&spec.schema)
        ));
        if let Err(e) = created {
            // Syncs that start at once (shards) race on `create schema if not exists`: PostgreSQL
            // fails the losers with a unique violation although the schema now exists.
            let exists = conn.query(&format!(
                "select 1 from pg_namespace where nspname = {}",
                quarry_sdk::sql::literal(&spec.schema)
            ))?;
            if exists.first().is_none_or(|r| r.rows.is_empty()) {
                return Err(e);
            }
        }
        Ok(PostgreSql {
            conn,
            config,
            schema: spec.schema,
            settings: source::Settings {
                tables: spec.tables,
                incremental: spec.incremental,
                rows_per_batch: spec.rows_per_batch,
                concurrency: spec.concurrency,
                split_rows: spec.split_rows,
            },
            discovered: None,
        })
    }

    fn test_connection(&mut self) -> Result<()> {
        self.conn.query("select 1").map(drop)
    }
}

impl Destination for PostgreSql {
    fn existing_table(&mut self, wanted: &Table) -> Result<Option<Table>> {
        let sql = format!(
            "select a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
             coalesce((select true from pg_index i where i.indrelid = c.oid and i.indisprimary \
             and a.attnum = any(i.indkey)), false) \
             from pg_attribute a join pg_class c on c.oid = a.attrelid \
             join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname = {} and c.relname = {} and c.relkind = 'r' and a.attnum > 0 \
             and not a.attisdropped order by a.attnum",
            literal(&self.schema),
            literal(&wanted.name)
        );
        let rows = self.conn.query(&sql)?.remove(0).rows;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut table = Table::new(&wanted.name);
        for row in rows {
            let text = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
            let (name, catalog) = (text(0), text(1));
            let same = wanted.columns.iter().find(|c| {
                c.name == name
                    && types::column_type(c).is_ok_and(|ddl| catalog_name(&ddl) == catalog)
            });
            let mut column = match same {
                Some(c) => Column {
                    nullable: true,
                    primary_key: false,
                    ..c.clone()
                },
                None => {
                    let (data_type, extension) = arrow_type(&catalog);
                    Column {
                        extension,
                        ..Column::new(&name, data_type)
                    }
                }
            };
            column.nullable = text(2) != "t";
            column.primary_key = text(3) == "t";
            table = table.column(column);
        }
        Ok(Some(table))
    }

    fn migrate_table(&mut self, table: &Table, force: bool) -> Result<()> {
        // The staging table copies the table's columns when it is made: make it anew.
        self.conn.query(&format!(
            "drop table if exists pg_temp.{}",
            Self::stage_name(&table.name)
        ))?;
        let existing = self.existing_table(table)?;
        let found = match migrate::plan(existing.as_ref(), table, force)? {
            Plan::Create => return self.create(table),
            Plan::Recreate => {
                self.conn
                    .query(&format!("drop table {}", self.table_name(&table.name)))?;
                return self.create(table);
            }
            Plan::Alter(found) => found,
        };
        let name = self.table_name(&table.name);
        let mut statements = Vec::new();
        for change in &found {
            match change {
                Change::AddColumn(c) => statements.push(format!(
                    "alter table {name} add column {} {}",
                    ident(&c.name),
                    types::column_type(c)?
                )),
                Change::DropNotNull(c) => statements.push(format!(
                    "alter table {name} alter column {} drop not null",
                    ident(c)
                )),
                // A column the source dropped stays, and gets nulls.
                _ => {}
            }
        }
        if !statements.is_empty() {
            self.conn.query(&statements.join("; "))?;
        }
        Ok(())
    }

    fn insert(&mut self, table: &Table, batch: RecordBatch) -> Result<()> {
        let mut data = BytesMut::with_capacity(batch.get_array_memory_size() + 1024);
        copy::header(&mut data);
        copy::rows(&table.columns, &batch, &mut data)?;
        copy::trailer(&mut data);
        let columns: Vec<String> = table.columns.iter().map(|c| ident(&c.name)).collect();
        let columns = columns.join(", ");
        let target = self.table_name(&table.name);
        let keys = table.primary_keys();
        if keys.is_empty() {
            self.conn.copy_in(
                &format!("copy {target} ({columns}) from stdin (format binary)"),
                &data,
            )?;
            return Ok(());
        }
        let stage = Self::stage_name(&table.name);
        self.conn.query(&format!(
            "create temporary table if not exists {stage} (like {target} including defaults)"
        ))?;
        self.conn.copy_in(
            &format!("copy {stage} ({columns}) from stdin (format binary)"),
            &data,
        )?;
        let keys: Vec<String> = keys.iter().map(|k| ident(k)).collect();
        let keys = keys.join(", ");
        let updates: Vec<String> = table
            .columns
            .iter()
            .filter(|c| !c.primary_key)
            .map(|c| format!("{0} = excluded.{0}", ident(&c.name)))
            .collect();
        let on_conflict = if updates.is_empty() {
            "do nothing".to_string()
        } else {
            format!("do update set {}", updates.join(", "))
        };
        // The last row of a key within one batch wins: rows are in the staging table in the
        // order they were copied.
        self.conn.query(&format!(
            "insert into {target} ({columns}) select distinct on ({keys}) {columns} from {stage} \
             order by {keys}, ctid desc on conflict ({keys}) {on_conflict}; truncate {stage}"
        ))?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn delete_stale(&mut self, table: &str, source_name: &str, sync_time_us: i64) -> Result<()> {
        self.conn
            .query(&format!(
                "delete from {} where \"_cq_source_name\" = {} and \"_cq_sync_time\" < \
                 timestamptz '1970-01-01 00:00:00+00' + interval '{sync_time_us} microseconds'",
                self.table_name(table),
                literal(source_name)
            ))
            .map(drop)
    }

    fn delete_record(&mut self, request: &DeleteRequest) -> Result<()> {
        let filter = quarry_sdk::sql::delete_filter(request)?;
        self.conn
            .query(&format!(
                "delete from {}{filter}",
                self.table_name(&request.table)
            ))
            .map(drop)
    }

    fn read(&mut self, table: &Table) -> Result<Vec<RecordBatch>> {
        let exprs: Vec<String> = table
            .columns
            .iter()
            .map(|c| types::read_expr(c, &ident(&c.name)))
            .collect::<Result<_>>()?;
        let sql = format!(
            "select {} from {}",
            exprs.join(", "),
            self.table_name(&table.name)
        );
        let rows = self.conn.query(&sql)?.remove(0).rows;
        let schema = table.schema();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(exprs.len());
        for (i, field) in schema.fields().iter().enumerate() {
            let texts: StringArray = rows.iter().map(|r| r[i].as_deref()).collect();
            let hex = Extension::of(field).is_none()
                && matches!(
                    field.data_type(),
                    DataType::Binary
                        | DataType::LargeBinary
                        | DataType::BinaryView
                        | DataType::FixedSizeBinary(_)
                );
            columns.push(if hex {
                let bytes: Vec<Option<Vec<u8>>> = texts
                    .iter()
                    .map(|t| t.map(|t| types::from_hex(field.name(), t)).transpose())
                    .collect::<Result<_>>()?;
                let bytes = BinaryArray::from_iter(bytes);
                quarry_sdk::json::cast(&bytes, field.data_type())?
            } else {
                quarry_sdk::json::from_text(field, &texts)?
            });
        }
        Ok(vec![RecordBatch::try_new(schema, columns)?])
    }
}

#[cfg(test)]
mod tests {
    use super::PostgreSql;

    #[test]
    fn stage_names_fit_postgresql_and_long_ones_stay_apart() {
        assert_eq!(PostgreSql::stage_name("items"), "\"quarry_stage_items\"");
        let long = |tail: &str| format!("{}{tail}", "é".repeat(40));
        let (a, b) = (
            PostgreSql::stage_name(&long("a")),
            PostgreSql::stage_name(&long("b")),
        );
        assert_ne!(a, b);
        for name in [&a, &b] {
            assert!(name.trim_matches('"').len() <= 63, "{name}");
        }
    }
}
