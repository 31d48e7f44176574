//! What each destination table needs before a sync writes to it, decided by comparing the table
//! the destination holds with the one the sync brings. The plan is computed once, before any
//! source runs; `quarry validate` prints it, `quarry migrate` applies it, and the engine applies
//! it before a table's first row.

use std::fmt;

use arrow_schema::SchemaRef;
use quarry_sdk::Table;
use quarry_sdk::migrate::{Change, changes};

use crate::runtime::{Destination, ErrorKind, Phase, PluginError};
use crate::spec::MigrateMode;

/// What a destination's table needs.
#[derive(Debug, Clone, PartialEq)]
pub enum MigrationPlan {
    /// The table does not exist: it is created.
    Create,
    /// Changes that lose nothing, applied in place (none: the table is up to date).
    Apply(Vec<Change>),
    /// Changes that lose data, in `migrate_mode: forced`: the table is dropped and recreated.
    Recreate(Vec<Change>),
    /// Changes that lose data, which `migrate_mode: safe` refuses (the breaking ones).
    Refused(Vec<Change>),
    /// The destination cannot report its tables (a gRPC plugin): it decides itself, told only
    /// whether `migrate_mode` is forced.
    Unknown,
}

impl MigrationPlan {
    /// Compares `existing` (the destination's table, if any) with `wanted`.
    pub fn between(existing: Option<&Table>, wanted: &Table, mode: MigrateMode) -> MigrationPlan {
        let Some(existing) = existing else {
            return MigrationPlan::Create;
        };
        let found = changes(existing, wanted);
        if !found.iter().any(Change::is_breaking) {
            MigrationPlan::Apply(found)
        } else if mode == MigrateMode::Forced {
            MigrationPlan::Recreate(found)
        } else {
            MigrationPlan::Refused(found.into_iter().filter(Change::is_breaking).collect())
        }
    }

    /// Whether the destination is asked to drop and recreate the table.
    pub fn force(&self, mode: MigrateMode) -> bool {
        match self {
            MigrationPlan::Recreate(_) => true,
            MigrationPlan::Unknown => mode == MigrateMode::Forced,
            _ => false,
        }
    }

    /// Whether the table is usable as it is, without a migration.
    pub fn up_to_date(&self) -> bool {
        match self {
            MigrationPlan::Apply(changes) => changes.is_empty(),
            MigrationPlan::Unknown => true,
            _ => false,
        }
    }
}

impl fmt::Display for MigrationPlan {
    /// One line: `create`, `up to date`, or the kind of migration and its changes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |changes: &[Change]| {
            changes
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        };
        match self {
            MigrationPlan::Create => f.write_str("create"),
            MigrationPlan::Apply(changes) if changes.is_empty() => f.write_str("up to date"),
            MigrationPlan::Apply(changes) => write!(f, "alter: {}", list(changes)),
            MigrationPlan::Recreate(changes) => {
                write!(f, "drop and recreate (forced): {}", list(changes))
            }
            MigrationPlan::Refused(changes) => write!(f, "REFUSED (safe): {}", list(changes)),
            MigrationPlan::Unknown => f.write_str("decided by the destination"),
        }
    }
}

/// One table of one destination: the schema it is migrated to and what that takes.
#[derive(Debug, Clone)]
pub struct TableMigration {
    pub table: String,
    /// The source's table as this destination stores it (internal columns, write mode and
    /// `pk_mode` applied).
    pub wanted: SchemaRef,
    pub plan: MigrationPlan,
}

/// The engine's refusal of a migration that would lose data in `migrate_mode: safe`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("table `{table}` needs changes that lose data, which `migrate_mode: safe` does not make; nothing was written to it:{}", self.list())]
pub struct Refusal {
    pub destination: String,
    pub table: String,
    pub changes: Vec<Change>,
}

impl Refusal {
    fn list(&self) -> String {
        self.changes.iter().map(|c| format!("\n  - {c}")).collect()
    }

    /// What to do about it.
    pub fn help(&self) -> String {
        format!(
            "to drop and recreate `{}` (its rows are lost and synced anew), set `migrate_mode: forced` on destination `{}`",
            self.table, self.destination
        )
    }
}

/// Asks `destination` for its table and compares it with `wanted`. Changes nothing.
pub async fn plan_table(
    destination: &mut dyn Destination,
    name: &str,
    mode: MigrateMode,
    wanted: &SchemaRef,
) -> Result<MigrationPlan, PluginError> {
    if !destination.reports_tables() {
        return Ok(MigrationPlan::Unknown);
    }
    let parse = |s: &arrow_schema::Schema| {
        Table::from_schema(s)
            .map_err(|e| PluginError::new(name, Phase::Migrate, ErrorKind::Internal, e.message))
    };
    let existing = match destination.existing_table(wanted).await? {
        Some(existing) => Some(parse(&existing)?),
        None => None,
    };
    let plan = MigrationPlan::between(existing.as_ref(), &parse(wanted)?, mode);
    tracing::debug!(destination = name, table = %quarry_sdk::table_name(wanted), "migration: {plan}");
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use arrow_schema::DataType;
    use quarry_sdk::Column;

    use super::*;

    fn table(v: DataType, extra: bool) -> Table {
        let mut t = Table::new("t")
            .column(Column::new("id", DataType::Int64).primary_key())
            .column(Column::new("v", v));
        if extra {
            t = t.column(Column::new("w", DataType::Utf8));
        }
        t
    }

    #[test]
    fn plans_follow_the_changes_and_the_mode() {
        let now = table(DataType::Utf8, false);
        assert_eq!(
            MigrationPlan::between(None, &now, MigrateMode::Safe),
            MigrationPlan::Create
        );
        let same = MigrationPlan::between(Some(&now), &now, MigrateMode::Safe);
        assert!(same.up_to_date());
        assert_eq!(same.to_string(), "up to date");
        let added =
            MigrationPlan::between(Some(&now), &table(DataType::Utf8, true), MigrateMode::Safe);
        assert_eq!(added.to_string(), "alter: new column `w` (Utf8)");
        assert!(!added.force(MigrateMode::Safe));
        let retyped = table(DataType::Int32, false);
        let refused = MigrationPlan::between(Some(&now), &retyped, MigrateMode::Safe);
        assert!(matches!(&refused, MigrationPlan::Refused(c) if c.len() == 1));
        let forced = MigrationPlan::between(Some(&now), &retyped, MigrateMode::Forced);
        assert!(forced.force(MigrateMode::Forced));
        assert!(MigrationPlan::Unknown.force(MigrateMode::Forced));
        assert!(!MigrationPlan::Unknown.force(MigrateMode::Safe));
    }
}
