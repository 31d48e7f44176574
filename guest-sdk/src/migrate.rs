//! What a migration changes: the difference between the table a destination holds and the table
//! a sync brings, and which of those changes lose data.
//!
//! The host decides with [`changes`] whether a migration may run in `migrate_mode: safe`;
//! destinations use the same list to apply the safe ones, so the two cannot disagree.

use std::fmt;

use arrow_schema::DataType;

use crate::{Column, Table};

/// One difference between a destination's table and the wanted table.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A column the destination does not have.
    AddColumn(Column),
    /// A column the wanted table no longer has; the destination's column.
    RemoveColumn(Column),
    /// A column whose type (or extension type) differs.
    ChangeType {
        /// The column.
        column: String,
        /// Its type in the destination.
        from: String,
        /// Its type in the wanted table.
        to: String,
    },
    /// A nullable column that becomes not null.
    SetNotNull(String),
    /// A not-null column that becomes nullable.
    DropNotNull(String),
    /// The primary key's columns differ.
    ChangePrimaryKey {
        /// The destination's key columns.
        from: Vec<String>,
        /// The wanted key columns.
        to: Vec<String>,
    },
}

impl Change {
    /// Whether applying the change can lose rows or make inserts fail, so that it needs
    /// `migrate_mode: forced` (drop and recreate the table).
    pub fn is_breaking(&self) -> bool {
        match self {
            Change::AddColumn(c) => !c.nullable || c.primary_key,
            Change::RemoveColumn(c) => !c.nullable || c.primary_key,
            Change::ChangeType { .. } | Change::SetNotNull(_) | Change::ChangePrimaryKey { .. } => {
                true
            }
            Change::DropNotNull(_) => false,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = |k: &[String]| {
            if k.is_empty() {
                "none".to_string()
            } else {
                format!("({})", k.join(", "))
            }
        };
        match self {
            Change::AddColumn(c) if c.primary_key => {
                write!(f, "new primary-key column `{}` ({})", c.name, type_name(c))
            }
            Change::AddColumn(c) if !c.nullable => {
                write!(f, "new not-null column `{}` ({})", c.name, type_name(c))
            }
            Change::AddColumn(c) => write!(f, "new column `{}` ({})", c.name, type_name(c)),
            Change::RemoveColumn(c) if c.primary_key || !c.nullable => write!(
                f,
                "column `{}` is gone from the source but is {} in the destination",
                c.name,
                if c.primary_key {
                    "part of the primary key"
                } else {
                    "not null"
                }
            ),
            Change::RemoveColumn(c) => write!(
                f,
                "column `{}` is gone from the source (kept, filled with nulls)",
                c.name
            ),
            Change::ChangeType { column, from, to } => {
                write!(f, "column `{column}` changes type from {from} to {to}")
            }
            Change::SetNotNull(c) => write!(f, "column `{c}` becomes not null"),
            Change::DropNotNull(c) => write!(f, "column `{c}` becomes nullable"),
            Change::ChangePrimaryKey { from, to } => {
                write!(f, "primary key changes from {} to {}", keys(from), keys(to))
            }
        }
    }
}

/// A column's type as people read it: the extension name, or the Arrow type.
fn type_name(c: &Column) -> String {
    match c.extension {
        Some(e) => e.name().to_string(),
        None => c.data_type.to_string(),
    }
}

/// Whether two types are the same for storage. Names of list items and struct fields' metadata
/// do not matter; everything else does.
fn same_type(a: &DataType, b: &DataType) -> bool {
    match (a, b) {
        (DataType::List(x), DataType::List(y))
        | (DataType::LargeList(x), DataType::LargeList(y)) => {
            same_type(x.data_type(), y.data_type())
        }
        (DataType::FixedSizeList(x, n), DataType::FixedSizeList(y, m)) => {
            n == m && same_type(x.data_type(), y.data_type())
        }
        _ => a == b,
    }
}

/// What a destination does to bring its table to the wanted one.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The table does not exist: create it.
    Create,
    /// A breaking change in `migrate_mode: forced`: drop the table and create it anew.
    Recreate,
    /// Only safe changes (possibly none): apply the ones the destination can express.
    Alter(Vec<Change>),
}

/// The plan for `existing` (`None`: no such table) to become `wanted`. A breaking change without
/// `force` is refused with an error that lists it and names the setting.
pub fn plan(existing: Option<&Table>, wanted: &Table, force: bool) -> crate::Result<Plan> {
    let Some(existing) = existing else {
        return Ok(Plan::Create);
    };
    let found = changes(existing, wanted);
    let breaking: Vec<String> = found
        .iter()
        .filter(|c| c.is_breaking())
        .map(|c| c.to_string())
        .collect();
    if breaking.is_empty() {
        Ok(Plan::Alter(found))
    } else if force {
        Ok(Plan::Recreate)
    } else {
        Err(crate::Error::internal(format!(
            "table `{}` needs changes that lose data ({}); they need migrate_mode: forced",
            wanted.name,
            breaking.join("; ")
        )))
    }
}

/// The changes that bring `existing` to `wanted`, in column order: changes to existing columns
/// and removals first, then additions, then the primary key.
pub fn changes(existing: &Table, wanted: &Table) -> Vec<Change> {
    let mut out = Vec::new();
    for old in &existing.columns {
        match wanted.columns.iter().find(|c| c.name == old.name) {
            None => out.push(Change::RemoveColumn(old.clone())),
            Some(new) => {
                if old.extension != new.extension || !same_type(&old.data_type, &new.data_type) {
                    out.push(Change::ChangeType {
                        column: old.name.clone(),
                        from: type_name(old),
                        to: type_name(new),
                    });
                }
                if old.nullable && !new.nullable && !new.primary_key {
                    out.push(Change::SetNotNull(old.name.clone()));
                }
                if !old.nullable && new.nullable && !old.primary_key {
                    out.push(Change::DropNotNull(old.name.clone()));
                }
            }
        }
    }
    for new in &wanted.columns {
        if !existing.columns.iter().any(|c| c.name == new.name) {
            out.push(Change::AddColumn(new.clone()));
        }
    }
    let keys =
        |t: &Table| -> Vec<String> { t.primary_keys().into_iter().map(String::from).collect() };
    let (from, to) = (keys(existing), keys(wanted));
    let mut sorted = (from.clone(), to.clone());
    sorted.0.sort();
    sorted.1.sort();
    if sorted.0 != sorted.1 {
        out.push(Change::ChangePrimaryKey { from, to });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Extension;

    fn base() -> Table {
        Table::new("t")
            .column(Column::new("id", DataType::Int64).primary_key())
            .column(Column::new("name", DataType::Utf8))
            .column(Column::new("n", DataType::Int32).not_null())
    }

    #[test]
    fn the_same_table_has_no_changes() {
        assert_eq!(changes(&base(), &base()), []);
    }

    #[test]
    fn a_new_nullable_column_and_a_dropped_nullable_column_are_safe() {
        let mut wanted = base();
        wanted.columns.retain(|c| c.name != "name");
        let wanted = wanted.column(Column::new("extra", DataType::Utf8));
        let found = changes(&base(), &wanted);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|c| !c.is_breaking()), "{found:?}");
        assert_eq!(
            found[0].to_string(),
            "column `name` is gone from the source (kept, filled with nulls)"
        );
        assert_eq!(found[1].to_string(), "new column `extra` (Utf8)");
    }

    #[test]
    fn type_changes_new_keys_and_new_not_null_columns_are_breaking() {
        let wanted = Table::new("t")
            .column(Column::new("id", DataType::Int64).primary_key())
            .column(Column::new("name", DataType::Int64))
            .column(Column::new("n", DataType::Int32).not_null())
            .column(Column::new("k", DataType::Utf8).primary_key())
            .column(Column::new("m", DataType::Utf8).not_null());
        let found: Vec<String> = changes(&base(), &wanted)
            .iter()
            .filter(|c| c.is_breaking())
            .map(Change::to_string)
            .collect();
        assert_eq!(
            found,
            [
                "column `name` changes type from Utf8 to Int64",
                "new primary-key column `k` (Utf8)",
                "new not-null column `m` (Utf8)",
                "primary key changes from (id) to (id, k)",
            ]
        );
    }

    #[test]
    fn extension_types_and_nullability_are_compared() {
        let old = Table::new("t")
            .column(Column::new("u", DataType::FixedSizeBinary(16)))
            .column(Column::new("a", DataType::Utf8).not_null())
            .column(Column::new("b", DataType::Utf8));
        let new = Table::new("t")
            .column(Column::extension("u", Extension::Uuid))
            .column(Column::new("a", DataType::Utf8))
            .column(Column::new("b", DataType::Utf8).not_null());
        let found = changes(&old, &new);
        assert_eq!(
            found
                .iter()
                .map(|c| (c.to_string(), c.is_breaking()))
                .collect::<Vec<_>>(),
            [
                (
                    "column `u` changes type from FixedSizeBinary(16) to uuid".to_string(),
                    true
                ),
                ("column `a` becomes nullable".to_string(), false),
                ("column `b` becomes not null".to_string(), true),
            ]
        );
    }

    #[test]
    fn list_item_names_do_not_matter() {
        use std::sync::Arc;
        let list = |item: &str| {
            DataType::List(Arc::new(arrow_schema::Field::new(
                item,
                DataType::Utf8,
                true,
            )))
        };
        let old = Table::new("t").column(Column::new("l", list("item")));
        let new = Table::new("t").column(Column::new("l", list("element")));
        assert_eq!(changes(&old, &new), []);
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    fn items(name_type: DataType) -> Table {
        Table::new("items")
            .column(Column::new("id", DataType::Int64).primary_key())
            .column(Column::new("name", name_type))
    }

    #[test]
    fn a_plan_creates_alters_refuses_or_recreates() {
        let stored = items(DataType::Utf8);
        assert_eq!(plan(None, &stored, false), Ok(Plan::Create));
        let wider = stored.clone().column(Column::new("note", DataType::Utf8));
        assert!(matches!(
            plan(Some(&stored), &wider, false),
            Ok(Plan::Alter(found)) if found.len() == 1 && !found[0].is_breaking()
        ));
        let retyped = items(DataType::Int64);
        let refused = plan(Some(&stored), &retyped, false).unwrap_err();
        assert!(
            refused
                .message
                .contains("column `name` changes type from Utf8 to Int64")
                && refused.message.contains("migrate_mode: forced"),
            "{}",
            refused.message
        );
        assert_eq!(plan(Some(&stored), &retyped, true), Ok(Plan::Recreate));
    }
}
