//! What a sync did: per source, rows and bytes per table, each destination's outcome, every
//! error. Printed as the final lines of `quarry sync` and written as JSON with
//! `--summary-location`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::runtime::PluginError;
use crate::telemetry::LogCounts;

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
    /// The destination's `sync_group_id`, rendered for this sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_group_id: Option<String>,
    /// The destination plugin's WARN and ERROR records during this source's run.
    #[serde(skip)]
    pub logged: LogCounts,
}

impl DestinationSummary {
    pub fn new(name: &str) -> Self {
        DestinationSummary {
            name: name.into(),
            error: None,
            sync_group_id: None,
            logged: LogCounts::default(),
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
    /// The source plugin's WARN and ERROR records during the run.
    #[serde(skip)]
    pub logged: LogCounts,
    /// `--shard`, when the sync ran one.
    #[serde(skip)]
    pub shard: Option<crate::runtime::Shard>,
    /// The sync's time, in microseconds since the Unix epoch.
    pub sync_time_us: i64,
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
            logged: LogCounts::default(),
            shard: None,
            sync_time_us: 0,
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

    /// Adds what another lane of the same source (`workers`) did: its tables, errors and log
    /// counts, and each destination's outcome under the destination's one name.
    pub fn merge(&mut self, lane: SourceSummary) {
        self.tables.extend(lane.tables);
        for d in lane.destinations {
            match self.destinations.iter_mut().find(|m| m.name == d.name) {
                Some(mine) => {
                    mine.logged.warnings += d.logged.warnings;
                    mine.logged.errors += d.logged.errors;
                    mine.error = match (mine.error.take(), d.error) {
                        (Some(a), Some(b)) if a != b => Some(format!("{a}; {b}")),
                        (a, b) => a.or(b),
                    };
                }
                None => self.destinations.push(d),
            }
        }
        self.plugin_errors.extend(lane.plugin_errors);
        // The same engine error (an interrupt) is reported once, not once per lane.
        for e in lane.errors {
            if !self.errors.contains(&e) {
                self.errors.push(e);
            }
        }
        self.logged.warnings += lane.logged.warnings;
        self.logged.errors += lane.logged.errors;
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
    /// `Synced test → out: 100000 rows (test_rows 100000) in 1.23s, 0 errors, 0 warnings`, then
    /// a line per table: rows, errors, duration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let destinations: Vec<&str> = self.destinations.iter().map(|d| d.name.as_str()).collect();
        let tables: Vec<String> = self
            .tables
            .iter()
            .map(|(name, t)| format!("{name} {}", t.rows))
            .collect();
        writeln!(
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
            self.logged.warnings
        )?;
        if self.tables.is_empty() {
            return Ok(());
        }
        let width = self
            .tables
            .keys()
            .map(|t| t.len())
            .max()
            .unwrap_or(0)
            .max(5);
        writeln!(
            f,
            "  {:<width$}  {:>12}  {:>6}  {:>9}",
            "table", "rows", "errors", "duration"
        )?;
        for (name, t) in &self.tables {
            writeln!(
                f,
                "  {name:<width$}  {:>12}  {:>6}  {:>8.2}s",
                t.rows,
                t.errors,
                t.duration.as_secs_f64()
            )?;
        }
        Ok(())
    }
}

/// Who a plugin of the summary is: its name in the spec, its path, its version.
#[derive(Debug, Clone)]
pub struct PluginDescription {
    pub name: String,
    pub path: String,
    pub version: String,
}

/// One source–destination pair of a sync, in the shape of CloudQuery's summary line
/// (`--summary-location`), plus Quarry's `ipc_bytes` and `destination_error`.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryLine {
    pub cli_version: String,
    pub sync_id: String,
    /// RFC 3339, UTC.
    pub sync_time: String,
    pub sync_duration_ms: u64,
    /// Rows the source sent.
    pub resources: u64,
    pub source_name: String,
    pub source_path: String,
    pub source_version: String,
    pub source_errors: u64,
    pub source_warnings: u64,
    pub source_tables: Vec<String>,
    pub destination_name: String,
    pub destination_path: String,
    pub destination_version: String,
    pub destination_errors: u64,
    pub destination_warnings: u64,
    pub resources_per_table: BTreeMap<String, u64>,
    pub errors_per_table: BTreeMap<String, u64>,
    pub durations_per_table_ms: BTreeMap<String, u64>,
    pub ipc_bytes: u64,
    pub destination_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_num: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_total: Option<u64>,
}

impl SummaryLine {
    pub fn describe_source(s: &crate::plan::SourcePlan<'_>) -> PluginDescription {
        PluginDescription {
            name: s.spec.name.clone(),
            path: s.spec.path.clone(),
            version: s.plugin.info().version.clone(),
        }
    }

    pub fn describe_destination(d: &crate::plan::DestinationPlan<'_>) -> PluginDescription {
        PluginDescription {
            name: d.spec.name.clone(),
            path: d.spec.path.clone(),
            version: d.plugin.info().version.clone(),
        }
    }

    /// A line per source and each of its destinations.
    pub fn all(
        sync_id: &str,
        summaries: &[SourceSummary],
        sources: &[PluginDescription],
        destinations: &[PluginDescription],
    ) -> Vec<SummaryLine> {
        let mut lines = Vec::new();
        for summary in summaries {
            let Some(source) = sources.iter().find(|s| s.name == summary.source) else {
                continue;
            };
            for d in &summary.destinations {
                let Some(destination) = destinations.iter().find(|x| x.name == d.name) else {
                    continue;
                };
                lines.push(SummaryLine::new(sync_id, summary, source, destination, d));
            }
        }
        lines
    }

    pub(crate) fn new(
        sync_id: &str,
        summary: &SourceSummary,
        source: &PluginDescription,
        destination: &PluginDescription,
        outcome: &DestinationSummary,
    ) -> SummaryLine {
        let per_table = |f: &dyn Fn(&TableSummary) -> u64| -> BTreeMap<String, u64> {
            summary
                .tables
                .iter()
                .map(|(name, t)| (name.clone(), f(t)))
                .collect()
        };
        let source_errors = summary
            .plugin_errors
            .iter()
            .filter(|e| e.plugin == source.name)
            .count() as u64;
        SummaryLine {
            cli_version: env!("CARGO_PKG_VERSION").to_string(),
            sync_id: sync_id.to_string(),
            sync_time: rfc3339(summary.sync_time_us),
            sync_duration_ms: summary.duration.as_millis() as u64,
            resources: summary.rows(),
            source_name: source.name.clone(),
            source_path: source.path.clone(),
            source_version: source.version.clone(),
            source_errors: source_errors.max(summary.logged.errors),
            source_warnings: summary.logged.warnings,
            source_tables: summary.tables.keys().cloned().collect(),
            destination_name: destination.name.clone(),
            destination_path: destination.path.clone(),
            destination_version: destination.version.clone(),
            destination_errors: u64::from(outcome.error.is_some()).max(outcome.logged.errors),
            destination_warnings: outcome.logged.warnings,
            resources_per_table: per_table(&|t| t.rows),
            errors_per_table: per_table(&|t| t.errors),
            durations_per_table_ms: per_table(&|t| t.duration.as_millis() as u64),
            ipc_bytes: summary.ipc_bytes(),
            destination_error: outcome.error.clone(),
            sync_group_id: outcome.sync_group_id.clone(),
            shard_num: summary.shard.map(|s| u64::from(s.num)),
            shard_total: summary.shard.map(|s| u64::from(s.total)),
        }
    }
}

impl SourceSummary {
    /// One JSON object per table (`--tables-metrics-location`).
    pub fn table_metrics(&self, sync_id: &str) -> Vec<serde_json::Value> {
        self.tables
            .iter()
            .map(|(name, t)| {
                serde_json::json!({
                    "sync_id": sync_id,
                    "source_name": self.source,
                    "table_name": name,
                    "resources": t.rows,
                    "errors": t.errors,
                    "duration_ms": t.duration.as_millis() as u64,
                    "ipc_bytes": t.ipc_bytes,
                })
            })
            .collect()
    }
}

/// Microseconds since the Unix epoch as RFC 3339 in UTC, e.g. `2026-12-01T07:23:24.123456Z`.
pub fn rfc3339(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let rest = secs.rem_euclid(86_400);
    let (year, month, day) = quarry_sdk::time::civil_from_days(secs.div_euclid(86_400));
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339(1_796_109_804_123_456),
            "2026-12-01T07:23:24.123456Z"
        );
        assert_eq!(rfc3339(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
    }
}
