//! The traits a plugin implements.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::{DeleteRequest, Error, Relation, Result, SyncContext, Table};

/// What a plugin is and what it needs from the sandbox.
#[derive(Debug, Clone, Default)]
pub struct Info {
    /// Short name, as in `quarry/<name>`.
    pub name: String,
    /// The plugin's version (semver).
    pub version: String,
    /// One line on what the plugin does.
    pub description: String,
    /// Hosts the plugin connects to (`host`, `host:port`, `*.domain`).
    pub network: Vec<String>,
    /// Spec fields that hold paths the plugin reads or writes.
    pub files: Vec<String>,
    /// Environment variables the plugin reads.
    pub env: Vec<String>,
    /// The write modes a destination implements (all three unless it says otherwise).
    pub write_modes: Vec<WriteMode>,
    /// The rows per write a destination works best with; 0 for the host's default.
    pub batch_rows: u64,
    /// The bytes per write a destination works best with; 0 for the host's default.
    pub batch_bytes: u64,
}

/// How a destination applies rows. The host reads the same words from a destination's
/// `write_mode:` (serde and [`Display`](std::fmt::Display) spell them alike).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum WriteMode {
    /// Every row is added; primary keys are not enforced.
    Append,
    /// Rows are upserted on the primary key.
    Overwrite,
    /// Upserted, then rows of the source older than the sync are deleted.
    #[default]
    OverwriteDeleteStale,
}

impl WriteMode {
    /// Every write mode.
    pub const ALL: [WriteMode; 3] = [
        WriteMode::Append,
        WriteMode::Overwrite,
        WriteMode::OverwriteDeleteStale,
    ];

    /// The mode as a spec spells it: `append`, `overwrite`, `overwrite-delete-stale`.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteMode::Append => "append",
            WriteMode::Overwrite => "overwrite",
            WriteMode::OverwriteDeleteStale => "overwrite-delete-stale",
        }
    }
}

impl std::fmt::Display for WriteMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Info {
    /// A plugin that needs nothing from the sandbox.
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Info {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            write_modes: WriteMode::ALL.to_vec(),
            ..Info::default()
        }
    }

    /// Declares the only write modes the destination implements.
    pub fn write_modes(mut self, modes: &[WriteMode]) -> Self {
        self.write_modes = modes.to_vec();
        self
    }

    /// Declares the batch a destination writes best (rows, bytes; 0 for the host's default).
    /// The user's `batch_size` and `batch_size_bytes` still win.
    pub fn preferred_batch(mut self, rows: u64, bytes: u64) -> Self {
        self.batch_rows = rows;
        self.batch_bytes = bytes;
        self
    }

    /// Declares that spec field `field` holds a path the plugin reads or writes.
    pub fn needs_files(mut self, field: &str) -> Self {
        self.files.push(field.into());
        self
    }

    /// Declares an outbound host the plugin connects to (`host`, `host:port`, `*.domain`), or
    /// `spec:FIELD` for the host of a URL the user sets in that spec field (`spec:base_url`).
    /// `quarry sync --grant-declared` grants what is declared; the default stays deny.
    pub fn needs_network(mut self, host: &str) -> Self {
        self.network.push(host.into());
        self
    }

    /// Declares an environment variable the plugin reads.
    pub fn needs_env(mut self, var: &str) -> Self {
        self.env.push(var.into());
        self
    }
}

/// Every plugin: its identity, its spec and its lifecycle.
pub trait Plugin: Sized + 'static {
    /// The plugin's `spec:`. Its JSON Schema (from `schemars`) is what the host validates the
    /// user's spec against, so the two cannot drift; use `#[serde(deny_unknown_fields)]`.
    type Spec: DeserializeOwned + JsonSchema;

    /// Name, version, description and the permissions the plugin needs.
    fn info() -> Info;

    /// Creates the plugin from the user's validated spec.
    fn new(spec: Self::Spec) -> Result<Self>;

    /// Checks that the configured service can be reached with the given credentials. A plugin
    /// that reaches nothing keeps this default, which tells the host it has no such test.
    fn test_connection(&mut self) -> Result<()> {
        Err(crate::Error::not_supported(
            "this plugin has no connection test",
        ))
    }

    /// Releases what the plugin holds. Called once, last.
    fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A plugin that produces tables.
pub trait Source: Plugin {
    /// Every table this source can produce. The SDK applies the user's table selection.
    fn tables(&self) -> Vec<Table>;

    /// Every table this source can produce, for a source that must do work that can fail to
    /// know them (read a database's catalog). The SDK calls this, not [`Source::tables`], before
    /// it lists or syncs tables; the default returns [`Source::tables`].
    fn discover(&mut self) -> Result<Vec<Table>> {
        Ok(self.tables())
    }

    /// Sends the rows of `tables` through `out`: the selected top-level tables (already
    /// migrated). Child tables are not in the list: their rows come from [`Source::relation`],
    /// resolved for each batch of their parent.
    fn sync(&mut self, tables: &[Table], out: &mut SyncContext<'_>) -> Result<()>;

    /// The resolver of child table `table` (one whose `parent` is set), called once per sync for
    /// each selected child table. A source with child tables must return one for each.
    fn relation(&mut self, table: &Table) -> Option<Box<dyn Relation>> {
        let _ = table;
        None
    }
}

/// A plugin that stores tables.
pub trait Destination: Plugin {
    /// The table as the destination holds it, or `None` if it does not exist. The host compares
    /// it with `wanted` (see [`crate::migrate::changes`]) to decide whether the migration is safe.
    /// Report a column whose stored type is what `wanted`'s column would be stored as with
    /// `wanted`'s type, so that only real differences show. A destination that keeps no tables
    /// (files written anew each sync) keeps the default.
    fn existing_table(&mut self, wanted: &Table) -> Result<Option<Table>> {
        let _ = wanted;
        Ok(None)
    }

    /// Creates `table`, or brings an existing table to its schema. Without `force` the host asks
    /// only for safe changes (new nullable columns, dropped columns kept, not-null relaxed); with
    /// `force`, changes that lose data drop and recreate the table.
    fn migrate_table(&mut self, table: &Table, force: bool) -> Result<()>;

    /// Writes rows of a migrated table. `batch` carries `table`'s schema.
    fn insert(&mut self, table: &Table, batch: RecordBatch) -> Result<()>;

    /// Makes every earlier write durable.
    fn flush(&mut self) -> Result<()>;

    /// Deletes the rows of `table` written by `source_name` before `sync_time_us`.
    fn delete_stale(&mut self, table: &str, source_name: &str, sync_time_us: i64) -> Result<()> {
        let _ = (source_name, sync_time_us);
        Err(Error::not_supported(format!(
            "{} cannot delete stale rows (table {table}); use write_mode: append",
            Self::info().name
        )))
    }

    /// Deletes the rows the request matches.
    fn delete_record(&mut self, request: &DeleteRequest) -> Result<()> {
        Err(Error::not_supported(format!(
            "{} cannot delete records (table {})",
            Self::info().name,
            request.table
        )))
    }

    /// Every row of `table`.
    fn read(&mut self, table: &Table) -> Result<Vec<RecordBatch>> {
        Err(Error::not_supported(format!(
            "{} cannot read tables back (table {})",
            Self::info().name,
            table.name
        )))
    }
}

/// A plugin that sits between the engine and a destination and changes schemas and rows
/// (CloudQuery's transformer plugins). Schemas and batches come and go as Arrow, metadata
/// (`cq:table_name`, `cq:extension:*`) included: a transformer that changes `cq:table_name`
/// renames the table in the destination.
pub trait Transformer: Plugin {
    /// The schema of this transformer's output for input of `schema`. It must be exactly the
    /// schema [`Transformer::transform`] gives its batches of that input.
    fn transform_schema(&mut self, schema: SchemaRef) -> Result<SchemaRef>;

    /// Transforms one batch: zero or more batches out (none drops its rows).
    fn transform(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>>;
}

#[cfg(test)]
mod tests {
    use super::WriteMode;

    /// serde and `Display` spell every mode alike, as a spec writes it.
    #[test]
    fn write_modes_spell_alike_in_serde_and_display() {
        for mode in WriteMode::ALL {
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{mode}\""));
            assert_eq!(serde_json::from_str::<WriteMode>(&json).unwrap(), mode);
        }
        assert_eq!(WriteMode::default(), WriteMode::OverwriteDeleteStale);
    }
}
