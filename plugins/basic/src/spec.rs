//! The `spec:` of `quarry/basic`: CloudQuery's field names, defaults and validation messages
//! (`client/spec/spec.go` of the `basic` plugin, v2.7.0), and its compilation into the
//! [`Transformation`]s the plugin runs.
//!
//! CloudQuery ignores unknown fields; Quarry refuses them (the host checks the spec against its
//! JSON Schema), so that a misspelt `column:` is reported instead of silently doing nothing.
//! Everything CloudQuery's documentation writes is accepted.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::path::{self, ColumnRef};
use crate::template::Template;
use crate::transform::{Op, Transformation, Unmatched};

/// The `basic` transformer's `spec:`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The transformations, applied in this order to every batch: each one sees the output of
    /// the one before (so after `change_table_names`, later entries match the new name).
    /// Absent or empty, rows pass through unchanged.
    #[serde(default)]
    pub transformations: Option<Vec<TransformationSpec>>,
}

/// One transformation, as CloudQuery's `basic` plugin spells it.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformationSpec {
    /// What to do: `remove_columns`, `add_column`, `add_current_timestamp_column`,
    /// `obfuscate_columns`, `obfuscate_sensitive_columns`, `obfuscate_columns_except`,
    /// `change_table_names`, `rename_column`, `add_primary_keys`, `uppercase`, `lowercase` or
    /// `drop_rows`.
    pub kind: String,
    /// Globs of the tables (`cq:table_name`) this applies to; `*` is the only wildcard. Absent
    /// or empty means every table.
    #[serde(default)]
    pub tables: Option<Vec<String>>,
    /// The columns to act on. For remove/obfuscate/uppercase/lowercase, `column.path` names a
    /// path inside a JSON column (`.` separates keys, `#` is every array element, `\.` is a
    /// literal dot); for `obfuscate_columns_except` it is the allowlist.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// The new column's name (`add_column`, `add_current_timestamp_column`), or the column to
    /// rename (`rename_column`).
    #[serde(default)]
    pub name: Option<String>,
    /// The new column's value (`add_column`), the new name (`rename_column`), or the text a
    /// row's value must equal to be dropped (`drop_rows`; absent or null drops rows whose
    /// value is null).
    #[serde(default)]
    pub value: Option<String>,
    /// Obfuscation kinds only: append `| <sha256>` of the original value to the marker
    /// (default true).
    #[serde(default)]
    pub include_sha: Option<bool>,
    /// `obfuscate_columns_except` only: what happens to what is not allowlisted: `drop`
    /// (default), `collapse` or `redact`.
    #[serde(default)]
    pub unmatched: Option<String>,
    /// `change_table_names` only: the new name, with `{{.OldName}}` for the current one.
    #[serde(default)]
    pub new_table_name_template: Option<String>,
}

/// The transformation kinds, as CloudQuery names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    RemoveColumns,
    AddColumn,
    ObfuscateColumns,
    ChangeTableNames,
    AddCurrentTimestampColumn,
    RenameColumn,
    AddPrimaryKeys,
    ObfuscateSensitiveColumns,
    ObfuscateColumnsExcept,
    Uppercase,
    Lowercase,
    DropRows,
}

impl Kind {
    /// Every kind, in CloudQuery's order.
    pub(crate) const ALL: [Kind; 12] = [
        Kind::RemoveColumns,
        Kind::AddColumn,
        Kind::ObfuscateColumns,
        Kind::ChangeTableNames,
        Kind::AddCurrentTimestampColumn,
        Kind::RenameColumn,
        Kind::AddPrimaryKeys,
        Kind::ObfuscateSensitiveColumns,
        Kind::ObfuscateColumnsExcept,
        Kind::Uppercase,
        Kind::Lowercase,
        Kind::DropRows,
    ];

    /// The kind as a spec writes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::RemoveColumns => "remove_columns",
            Kind::AddColumn => "add_column",
            Kind::ObfuscateColumns => "obfuscate_columns",
            Kind::ChangeTableNames => "change_table_names",
            Kind::AddCurrentTimestampColumn => "add_current_timestamp_column",
            Kind::RenameColumn => "rename_column",
            Kind::AddPrimaryKeys => "add_primary_keys",
            Kind::ObfuscateSensitiveColumns => "obfuscate_sensitive_columns",
            Kind::ObfuscateColumnsExcept => "obfuscate_columns_except",
            Kind::Uppercase => "uppercase",
            Kind::Lowercase => "lowercase",
            Kind::DropRows => "drop_rows",
        }
    }

    fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    fn obfuscates(self) -> bool {
        matches!(
            self,
            Kind::ObfuscateColumns | Kind::ObfuscateSensitiveColumns | Kind::ObfuscateColumnsExcept
        )
    }
}

/// A text field as Go's `string` sees it: absent and null are both `""`.
fn text(field: &Option<String>) -> &str {
    field.as_deref().unwrap_or("")
}

impl TransformationSpec {
    fn has_columns(&self) -> bool {
        self.columns.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// CloudQuery's `t.Value != nil && *t.Value != ""`.
    fn has_value(&self) -> bool {
        !text(&self.value).is_empty()
    }

    fn has_name(&self) -> bool {
        !text(&self.name).is_empty()
    }

    fn has_template(&self) -> bool {
        !text(&self.new_table_name_template).is_empty()
    }

    /// CloudQuery's checks for this entry (`Spec.Validate`), message for message.
    fn cloudquery_problems(&self, problems: &mut Vec<String>) {
        let kind = self.kind.as_str();
        match Kind::parse(kind) {
            Some(
                Kind::RemoveColumns
                | Kind::AddPrimaryKeys
                | Kind::ObfuscateColumns
                | Kind::ObfuscateColumnsExcept,
            ) => {
                if !self.has_columns() {
                    problems.push(format!(
                        "'columns' field must be specified for {kind} transformation"
                    ));
                }
                if self.has_name() || self.has_value() || self.has_template() {
                    problems.push(format!("name/value/new_table_name_template fields must not be specified for {kind} transformation"));
                }
            }
            Some(Kind::AddColumn) => {
                if !self.has_name() || !self.has_value() {
                    problems.push(format!(
                        "'name' and 'value' fields must be specified for {kind} transformation"
                    ));
                }
                if self.has_template() {
                    problems.push(format!(
                        "new_table_name_template field must not be specified for {kind} transformation"
                    ));
                }
            }
            Some(Kind::AddCurrentTimestampColumn) => {
                if !self.has_name() {
                    problems.push(format!(
                        "'name' field must be specified for {kind} transformation"
                    ));
                }
                if self.has_value() || self.has_columns() || self.has_template() {
                    problems.push(format!("value/columns/new_table_name_template fields must not be specified for {kind} transformation"));
                }
                if self.has_template() {
                    problems.push(format!(
                        "new_table_name_template field must not be specified for {kind} transformation"
                    ));
                }
            }
            Some(Kind::ObfuscateSensitiveColumns) => {
                if self.has_columns() {
                    problems.push(format!(
                        "'columns' field must not be specified for {kind} transformation"
                    ));
                }
                if self.has_name() || self.has_value() || self.has_template() {
                    problems.push(format!("name/value/new_table_name_template fields must not be specified for {kind} transformation"));
                }
            }
            Some(Kind::ChangeTableNames) => {
                if !self.has_template() {
                    problems.push(format!(
                        "'new_table_name_template' field must be specified for {kind} transformation"
                    ));
                }
                if self.has_name() || self.has_value() || self.has_columns() {
                    problems.push(format!(
                        "name/value/columns fields must not be specified for {kind} transformation"
                    ));
                }
            }
            Some(Kind::RenameColumn) => {
                if !self.has_name() || !self.has_value() {
                    problems.push(format!(
                        "'name' and 'value' fields must be specified for {kind} transformation"
                    ));
                }
                if self.has_template() {
                    problems.push(format!(
                        "new_table_name_template field must not be specified for {kind} transformation"
                    ));
                }
                if self.has_columns() {
                    problems.push(format!(
                        "columns field must not be specified for {kind} transformation"
                    ));
                }
            }
            Some(Kind::Uppercase | Kind::Lowercase) => {
                if self.has_value() {
                    problems.push(format!(
                        "value field must be empty for {kind} transformation"
                    ));
                }
                if !self.has_columns() {
                    problems.push(format!(
                        "'columns' field must be specified for {kind} transformation"
                    ));
                }
                if self.has_name() || self.has_template() {
                    problems.push(format!(
                        "name/new_table_name_template fields must not be specified for {kind} transformation"
                    ));
                }
            }
            Some(Kind::DropRows) => {
                if !self.has_columns() {
                    problems.push(format!(
                        "'columns' must be specified for {kind} transformation"
                    ));
                }
            }
            None => problems.push(format!("unknown transformation kind: {kind}")),
        }

        let obfuscates = Kind::parse(kind).is_some_and(Kind::obfuscates);
        if self.include_sha.is_some() && !obfuscates {
            problems.push(format!(
                "include_sha field must not be specified for {kind} transformation"
            ));
        }
        let unmatched = text(&self.unmatched);
        if !unmatched.is_empty() {
            if Kind::parse(kind) != Some(Kind::ObfuscateColumnsExcept) {
                problems.push(format!(
                    "unmatched field must not be specified for {kind} transformation"
                ));
            } else if Unmatched::parse(unmatched).is_none() {
                problems.push(format!(
                    r#"unmatched must be one of "drop", "collapse", "redact" for {kind} transformation"#
                ));
            }
        }
    }

    /// Compiles the entry, adding what Quarry refuses beyond CloudQuery's checks (a template
    /// or JSON path it cannot honour) to `problems`.
    fn compile(&self, kind: Kind, problems: &mut Vec<String>) -> Option<Transformation> {
        let columns = || self.columns.clone().unwrap_or_default();
        let include_sha = self.include_sha.unwrap_or(true);
        let column_refs = |problems: &mut Vec<String>| -> Vec<ColumnRef> {
            columns()
                .iter()
                .filter_map(|c| ColumnRef::parse(c).map_err(|e| problems.push(e)).ok())
                .collect()
        };
        let op = match kind {
            Kind::RemoveColumns => Op::RemoveColumns(column_refs(problems)),
            Kind::AddColumn => Op::AddColumn {
                name: text(&self.name).to_string(),
                value: text(&self.value).to_string(),
            },
            Kind::AddCurrentTimestampColumn => Op::AddTimestampColumn {
                name: text(&self.name).to_string(),
            },
            Kind::ObfuscateColumns => Op::Obfuscate {
                columns: column_refs(problems),
                include_sha,
            },
            Kind::ChangeTableNames => {
                let source = text(&self.new_table_name_template);
                match Template::parse(source) {
                    Ok(template) => Op::ChangeTableNames(template),
                    Err(e) => {
                        problems.push(format!(
                            "error parsing new_table_name_template {source:?}: {e}"
                        ));
                        return None;
                    }
                }
            }
            Kind::RenameColumn => Op::RenameColumn {
                from: text(&self.name).to_string(),
                to: text(&self.value).to_string(),
            },
            Kind::AddPrimaryKeys => Op::AddPrimaryKeys(columns()),
            Kind::ObfuscateSensitiveColumns => Op::ObfuscateSensitive { include_sha },
            Kind::ObfuscateColumnsExcept => Op::ObfuscateExcept {
                allowlist: path::Allowlist::new(&columns()),
                include_sha,
                unmatched: Unmatched::parse(text(&self.unmatched)).unwrap_or(Unmatched::Drop),
            },
            Kind::Uppercase | Kind::Lowercase => Op::ChangeCase {
                upper: kind == Kind::Uppercase,
                columns: column_refs(problems),
            },
            Kind::DropRows => Op::DropRows {
                columns: columns(),
                value: self.value.clone(),
            },
        };
        let tables = match &self.tables {
            Some(t) if !t.is_empty() => t.clone(),
            _ => vec!["*".to_string()],
        };
        Some(Transformation::new(kind, tables, op))
    }
}

impl Spec {
    /// The transformations the spec describes, or every problem with it: CloudQuery's messages
    /// first (as its `errors.Join` lists them), each prefixed with the entry it is about.
    pub(crate) fn compile(&self) -> Result<Vec<Transformation>, Vec<String>> {
        let entries = self.transformations.as_deref().unwrap_or_default();
        let mut problems = Vec::new();
        let mut compiled = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let mut own = Vec::new();
            entry.cloudquery_problems(&mut own);
            // Compiled even after a problem, so that its own problems are reported too.
            if let Some(kind) = Kind::parse(&entry.kind)
                && let Some(t) = entry.compile(kind, &mut own)
            {
                compiled.push(t);
            }
            problems.extend(
                own.into_iter()
                    .map(|p| format!("transformations[{i}]: {p}")),
            );
        }
        if problems.is_empty() {
            Ok(compiled)
        } else {
            Err(problems)
        }
    }
}
