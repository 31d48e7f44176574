//! What a sync did: per source, rows and bytes per table, each destination's outcome, every
//! error. Printed as the final lines of `quarry sync` and written as JSON with
//! `--summary-location`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::runtime::PluginError;

#[derive(Debug, Clone, Default, Serialize)]
pub struct TableSummary {
    pub rows: u64,
    pub batches: u64,
    /// Bytes of Arrow IPC that carried the rows out of the source.
    pub ipc_bytes: u64,
    pub delete_requests: u64,
    /// Errors of any plugin about this table.
    pub errors: u64,
    /// From the table's first message to its last, as the engine saw them.
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
    #[serde(skip)]
    pub(crate) first_seen: Option<std::time::Instant>,
}

impl TableSummary {
    /// Notes that a message of the table arrived now.
    pub(crate) fn seen(&mut self) {
        let now = std::time::Instant::now();
        let first = *self.first_seen.get_or_insert(now);
        self.duration = now - first;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DestinationSummary {
    pub name: String,
    pub error: Option<String>,
}

impl DestinationSummary {
    pub fn new(name: &str) -> Self {
        DestinationSummary {
            name: name.into(),
            error: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceSummary {
    pub source: String,
    pub tables: BTreeMap<String, TableSummary>,
    pub destinations: Vec<DestinationSummary>,
    /// Failures of plugins (the source's or a destination's).
    #[serde(serialize_with = "messages")]
    pub plugin_errors: Vec<PluginError>,
    /// Failures of the engine itself (a batch it could not route, a task that died).
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
}

fn messages<S: serde::Serializer>(errors: &[PluginError], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(errors.iter().map(|e| e.to_string()))
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl SourceSummary {
    pub fn new(source: &str) -> Self {
        SourceSummary {
            source: source.into(),
            tables: BTreeMap::new(),
            destinations: Vec::new(),
            plugin_errors: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            duration: Duration::ZERO,
        }
    }

    pub fn ok(&self) -> bool {
        self.plugin_errors.is_empty() && self.errors.is_empty()
    }

    pub fn rows(&self) -> u64 {
        self.tables.values().map(|t| t.rows).sum()
    }

    pub fn ipc_bytes(&self) -> u64 {
        self.tables.values().map(|t| t.ipc_bytes).sum()
    }

    pub fn error_count(&self) -> usize {
        self.plugin_errors.len() + self.errors.len()
    }

    /// Counts each plugin error against the table it names.
    pub fn count_table_errors(&mut self) {
        for e in &self.plugin_errors {
            if let Some(table) = e.table.as_ref().and_then(|t| self.tables.get_mut(t)) {
                table.errors += 1;
            }
        }
    }
}

impl fmt::Display for SourceSummary {
    /// `Sync test → out: 100000 rows (test_rows 100000) in 1.23s, 0 errors, 0 warnings`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let destinations: Vec<&str> = self.destinations.iter().map(|d| d.name.as_str()).collect();
        let tables: Vec<String> = self
            .tables
            .iter()
            .map(|(name, t)| format!("{name} {}", t.rows))
            .collect();
        write!(
            f,
            "{} {} → {}: {} rows ({}) in {:.2}s, {} errors, {} warnings",
            if self.ok() {
                "Synced"
            } else {
                "Sync finished with errors:"
            },
            self.source,
            destinations.join(", "),
            self.rows(),
            if tables.is_empty() {
                "no tables".into()
            } else {
                tables.join(", ")
            },
            self.duration.as_secs_f64(),
            self.error_count(),
            self.warnings.len()
        )
    }
}
