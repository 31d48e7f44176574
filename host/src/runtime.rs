//! The transport-agnostic face of a plugin. The sync engine sees sources and destinations only
//! through [`Source`] and [`Destination`]; each transport (wasm components, native plugins over
//! gRPC) implements them in its own module.

#[cfg(test)]
mod fuzz;
pub mod grpc;
pub mod wasm;

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
pub use quarry_sdk::DeleteRequest;
use tokio::sync::mpsc;

/// What a plugin says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub source: bool,
    pub destination: bool,
    /// A transformer (CloudQuery's `kind: transformer`): neither a source nor a destination.
    pub transformer: bool,
    /// Hosts it connects to, spec fields that hold its paths, environment variables it reads.
    pub needs_network: Vec<String>,
    pub needs_files: Vec<String>,
    pub needs_env: Vec<String>,
    /// For a destination: the write modes it implements.
    pub write_modes: Vec<quarry_sdk::WriteMode>,
    /// For a destination: the batch it writes best (0: the host's default).
    pub batch_rows: u64,
    pub batch_bytes: u64,
}

impl PluginInfo {
    /// The kinds it says it is, by the names a spec's `kind:` gives them.
    pub fn kinds(&self) -> Vec<&'static str> {
        [
            (self.source, "source"),
            (self.destination, "destination"),
            (self.transformer, "transformer"),
        ]
        .into_iter()
        .filter_map(|(is, kind)| is.then_some(kind))
        .collect()
    }
}

/// What went wrong, as the host classifies it: the plugin's own error kinds (one definition,
/// [`quarry_sdk::ErrorKind`]), plus the ways the sandbox stops a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A kind a plugin reports itself, or the host reports on a plugin's behalf.
    Plugin(quarry_sdk::ErrorKind),
    /// The plugin trapped (a panic, an out-of-bounds access, ...). Its store is gone.
    Trap,
    /// The plugin ran past `permissions.timeout`.
    Timeout,
    /// The plugin asked for more memory than `permissions.memory`.
    MemoryLimit,
    /// The plugin could not be loaded or instantiated.
    Load,
}

impl ErrorKind {
    /// The kind as a failure code, in the spelling of CloudQuery's `TestConnection` codes.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Plugin(kind) => match kind {
                quarry_sdk::ErrorKind::InvalidSpec => "INVALID_SPEC",
                quarry_sdk::ErrorKind::Unauthorized => "UNAUTHORIZED",
                quarry_sdk::ErrorKind::Unavailable => "UNAVAILABLE",
                quarry_sdk::ErrorKind::NotSupported => "UNIMPLEMENTED",
                quarry_sdk::ErrorKind::Internal => "INTERNAL",
            },
            ErrorKind::Trap => "TRAP",
            ErrorKind::Timeout => "TIMEOUT",
            ErrorKind::MemoryLimit => "MEMORY_LIMIT",
            ErrorKind::Load => "LOAD",
        }
    }

    /// Whether the sandbox stopped the plugin (as opposed to an error the plugin returned).
    pub fn is_failure_of_the_run(self) -> bool {
        matches!(
            self,
            ErrorKind::Trap | ErrorKind::Timeout | ErrorKind::MemoryLimit | ErrorKind::Load
        )
    }
}

/// The plugin's kinds by their own names, as values and in patterns (`ErrorKind::InvalidSpec`).
#[expect(
    non_upper_case_globals,
    reason = "they stand for enum variants and read like the sandbox's kinds beside them"
)]
impl ErrorKind {
    pub const InvalidSpec: Self = Self::Plugin(quarry_sdk::ErrorKind::InvalidSpec);
    pub const Unauthorized: Self = Self::Plugin(quarry_sdk::ErrorKind::Unauthorized);
    pub const Unavailable: Self = Self::Plugin(quarry_sdk::ErrorKind::Unavailable);
    pub const NotSupported: Self = Self::Plugin(quarry_sdk::ErrorKind::NotSupported);
    pub const Internal: Self = Self::Plugin(quarry_sdk::ErrorKind::Internal);
}

impl From<quarry_sdk::ErrorKind> for ErrorKind {
    fn from(kind: quarry_sdk::ErrorKind) -> Self {
        ErrorKind::Plugin(kind)
    }
}

/// The step of a plugin's life an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Load,
    Init,
    TestConnection,
    Tables,
    Sync,
    Migrate,
    Write,
    Flush,
    Transform,
    Close,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Load => "load",
            Phase::Init => "init",
            Phase::TestConnection => "test-connection",
            Phase::Tables => "tables",
            Phase::Sync => "sync",
            Phase::Migrate => "migrate-table",
            Phase::Write => "write",
            Phase::Flush => "flush",
            Phase::Transform => "transform",
            Phase::Close => "close",
        })
    }
}

/// A plugin failed: which plugin, in which phase, how, and what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub struct PluginError {
    pub plugin: String,
    pub phase: Phase,
    pub kind: ErrorKind,
    pub message: String,
    pub help: Option<String>,
    /// The table being written, when the failure concerns one.
    pub table: Option<String>,
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plugin `{}` failed in {}", self.plugin, self.phase)?;
        if let Some(table) = &self.table {
            write!(f, " of table `{table}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl PluginError {
    pub fn new(plugin: &str, phase: Phase, kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError {
            plugin: plugin.into(),
            phase,
            kind,
            message: message.into(),
            help: None,
            table: None,
        }
    }

    /// The same error, about `table` (unless it already names one).
    pub fn for_table(mut self, table: &str) -> Self {
        self.table.get_or_insert_with(|| table.to_string());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// What a plugin's connection test found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    Succeeded,
    /// The plugin's failure code (CloudQuery's, or the error kind) and its description.
    Failed {
        code: String,
        message: String,
    },
    /// The plugin does not implement a connection test.
    NotImplemented,
}

/// Checks a table name a plugin sent: the host prints it, logs it, keys maps and names files by
/// it, so it is one plain name — not empty, at most 255 bytes, no control characters (no forged
/// terminal output), no `/` or `\\` and no leading `.` (no path out of a directory).
pub fn check_table_name(name: &str) -> Result<(), String> {
    let bad = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 255 {
        Some("it is longer than 255 bytes")
    } else if name.chars().any(char::is_control) {
        Some("it holds a control character")
    } else if name.contains(['/', '\\']) || name.starts_with('.') {
        Some("it holds a path separator or starts with `.`")
    } else {
        None
    };
    match bad {
        None => Ok(()),
        Some(why) => Err(format!(
            "the table name {:?} is refused: {why}",
            name.chars().take(64).collect::<String>()
        )),
    }
}

/// How long one destination or transformer call (a batch written or transformed, a flush, the
/// final close) may take before the plugin is deemed stuck: `QUARRY_CALL_TIMEOUT` (e.g. `30m`; `0s` for no limit), else 10
/// minutes. Migrations are not limited: altering a large table may take long, and stopping one
/// halfway is worse than waiting.
pub(crate) fn call_timeout() -> Option<Duration> {
    const DEFAULT: Duration = Duration::from_secs(600);
    let Ok(text) = std::env::var("QUARRY_CALL_TIMEOUT") else {
        return Some(DEFAULT);
    };
    match crate::spec::units::parse_duration(&text) {
        Ok(limit) if limit.is_zero() => None,
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!("QUARRY_CALL_TIMEOUT=`{text}`: {e}; using the default of 10m");
            Some(DEFAULT)
        }
    }
}

/// A limit as a person writes it: `10m`, `2h`, `30s`, `500ms`.
pub(crate) fn humantime(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Which tables a source should produce (globs over table names).
#[derive(Debug, Clone, Default)]
pub struct TableSelection {
    pub tables: Vec<String>,
    pub skip_tables: Vec<String>,
    pub skip_dependent_tables: bool,
}

/// A message from a running source.
#[derive(Debug)]
pub enum SourceMessage {
    MigrateTable(SchemaRef),
    /// Rows, and how many bytes of Arrow IPC carried them across the plugin boundary.
    Insert {
        batch: RecordBatch,
        ipc_bytes: usize,
    },
    DeleteRecord(DeleteRequest),
    /// A table failed; the source goes on with the others (CloudQuery's `MessageError`).
    TableError {
        table: String,
        message: String,
    },
    /// The source set an incremental cursor: it describes every row sent before this message.
    State {
        key: String,
        value: String,
    },
}

/// What every plugin does, whatever its kind and transport.
#[async_trait::async_trait]
pub trait Plugin: Send {
    fn info(&self) -> &PluginInfo;

    /// The JSON Schema of the plugin's `spec:`, if it declares one.
    async fn spec_schema(&mut self) -> Result<Option<String>, PluginError>;

    /// Initialises the plugin with its `spec:` as JSON text.
    async fn init(&mut self, spec_json: String) -> Result<(), PluginError>;

    /// Checks that what `spec_json` configures can be reached with its credentials. A wasm
    /// plugin is initialised with the spec and asked; a gRPC plugin gets CloudQuery's
    /// `TestConnection`, which needs no `init`.
    async fn test_connection(&mut self, spec_json: String) -> Result<Connection, PluginError>;

    /// Flushes and releases everything; the plugin is not called again.
    async fn close(&mut self) -> Result<(), PluginError>;

    /// The warnings and errors this plugin has logged so far.
    fn logged(&self) -> crate::telemetry::LogCounts {
        crate::telemetry::LogCounts::default()
    }
}

/// A plugin of any kind (a wasm component or a gRPC plugin can be any; the spec says which role
/// it plays).
pub trait AnyPlugin: Source + Destination + Transformer {}

impl<T: Source + Destination + Transformer> AnyPlugin for T {}

/// A plugin between the engine and one destination that changes schemas and rows (CloudQuery's
/// transformer plugins). Each destination has its own instances, one per transformer it lists.
#[async_trait::async_trait]
pub trait Transformer: Plugin {
    /// The schema of the transformer's output for input of `schema`.
    async fn transform_schema(&mut self, schema: &SchemaRef) -> Result<SchemaRef, PluginError>;

    /// One batch transformed: zero or more batches, each of the schema
    /// [`Transformer::transform_schema`] gave for the input's.
    async fn transform(&mut self, batch: &RecordBatch) -> Result<Vec<RecordBatch>, PluginError>;
}

/// A plugin that produces tables.
#[async_trait::async_trait]
pub trait Source: Plugin {
    /// The schemas of the selected tables.
    async fn tables(&mut self, selection: &TableSelection) -> Result<Vec<SchemaRef>, PluginError>;

    /// Runs the sync, sending every message to `out` (a bounded channel: a full channel holds
    /// the source back). Returns when the source has sent everything. `input` holds the
    /// incremental cursors the state backend holds; the source reads them (a component with
    /// `state.get`, a gRPC source from the backend it is given) and the cursors it sets arrive in
    /// `out` as [`SourceMessage::State`].
    async fn sync(
        &mut self,
        selection: &TableSelection,
        deterministic_cq_id: bool,
        input: SyncInput,
        out: mpsc::Sender<SourceMessage>,
    ) -> Result<(), PluginError>;

    /// Whether the source cuts its own work into shards when given [`SyncInput::shard`] (a
    /// CloudQuery SDK plugin cuts its table-client pairs). For any other source the engine cuts
    /// the selected tables.
    fn shards_itself(&self) -> bool {
        false
    }
}

/// What a source's sync is given besides its tables.
#[derive(Debug, Clone, Default)]
pub struct SyncInput {
    /// The state table (`backend_options.table_name`); none for a source that keeps no state.
    pub table: Option<String>,
    /// The cursors the backend holds.
    pub cursors: HashMap<String, String>,
    /// `--shard`, for a source that [`Source::shards_itself`].
    pub shard: Option<Shard>,
}

/// `--shard NUM/TOTAL`: this process syncs part NUM (from 1) of TOTAL. As in CloudQuery, the
/// ordered list of work is cut into contiguous chunks and the shard takes chunk NUM; Quarry's
/// chunks hold `ceil(len / TOTAL)` items, so every item is in exactly one shard (the last shards
/// may get fewer, or none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub num: u32,
    pub total: u32,
}

impl Shard {
    /// Reads `NUM/TOTAL` with `1 <= NUM <= TOTAL`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let wrong = || {
            format!("`{text}` is not a shard: write NUM/TOTAL with 1 <= NUM <= TOTAL, e.g. `2/4`")
        };
        let (num, total) = text.split_once('/').ok_or_else(wrong)?;
        let (num, total): (u32, u32) = (
            num.trim().parse().map_err(|_| wrong())?,
            total.trim().parse().map_err(|_| wrong())?,
        );
        // The protocol carries shards as int32.
        if num == 0 || num > total || total > i32::MAX as u32 {
            return Err(wrong());
        }
        Ok(Shard { num, total })
    }

    /// This shard's chunk of `items`.
    pub fn cut<T: Clone>(&self, items: &[T]) -> Vec<T> {
        let size = items.len().div_ceil(self.total as usize).max(1);
        items
            .chunks(size)
            .nth(self.num as usize - 1)
            .map(<[T]>::to_vec)
            .unwrap_or_default()
    }

    /// The `_cq_source_name` of source `name`'s rows in this shard, as CloudQuery names it.
    pub fn source_name(&self, name: &str) -> String {
        format!("{name}_{}_{}", self.num, self.total)
    }
}

/// A plugin that stores tables.
#[async_trait::async_trait]
pub trait Destination: Plugin {
    /// Whether [`Destination::existing_table`] says what the destination holds; a gRPC plugin
    /// cannot (protocol v3 has no call for it) and decides migrations itself.
    fn reports_tables(&self) -> bool {
        true
    }

    /// The table as the destination holds it, or `None` if it does not exist. `wanted` is the
    /// schema about to be migrated to.
    async fn existing_table(
        &mut self,
        wanted: &SchemaRef,
    ) -> Result<Option<SchemaRef>, PluginError>;

    async fn migrate_table(&mut self, schema: &SchemaRef, force: bool) -> Result<(), PluginError>;

    async fn insert(&mut self, batch: &RecordBatch) -> Result<(), PluginError>;

    async fn delete_stale(
        &mut self,
        table: &str,
        source_name: &str,
        sync_time_us: i64,
    ) -> Result<(), PluginError>;

    async fn delete_record(&mut self, request: &DeleteRequest) -> Result<(), PluginError>;

    /// After this returns ok, every earlier write is durable.
    async fn flush(&mut self) -> Result<(), PluginError>;

    /// Every row of the table, as the destination stores it.
    async fn read(&mut self, table: &SchemaRef) -> Result<Vec<RecordBatch>, PluginError>;
}

#[cfg(test)]
mod tests {
    use super::{Shard, check_table_name};

    #[test]
    fn shards_cut_every_item_into_exactly_one_contiguous_chunk() {
        let items: Vec<u32> = (1..=7).collect();
        let parts: Vec<Vec<u32>> = (1..=4)
            .map(|num| Shard { num, total: 4 }.cut(&items))
            .collect();
        assert_eq!(parts, [vec![1, 2], vec![3, 4], vec![5, 6], vec![7]]);
        assert_eq!(Shard { num: 3, total: 3 }.cut(&[1, 2]), Vec::<i32>::new());
        assert_eq!(Shard { num: 1, total: 1 }.cut(&[1, 2]), [1, 2]);
        assert!(Shard { num: 1, total: 2 }.cut::<u8>(&[]).is_empty());
        assert_eq!(Shard::parse("2/4"), Ok(Shard { num: 2, total: 4 }));
        assert_eq!(Shard { num: 2, total: 4 }.source_name("aws"), "aws_2_4");
        for bad in ["0/4", "5/4", "4", "a/b", "1/4294967295", "-1/2"] {
            assert!(
                Shard::parse(bad).unwrap_err().contains("is not a shard"),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_table_name_is_one_plain_name() {
        assert!(check_table_name("aws_ec2_instances").is_ok());
        for bad in [
            "",
            "../x",
            "a/b",
            "/etc/x",
            ".hidden",
            "a\\b",
            "nul\0",
            "esc\u{1b}[2J",
        ] {
            assert!(check_table_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_table_name(&"t".repeat(256)).is_err());
    }
}
