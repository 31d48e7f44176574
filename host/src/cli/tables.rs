//! `quarry tables <spec>... [--format json|markdown] [--output-dir DIR]`: documents every table
//! each source of the specs offers, as its destinations will hold it (internal columns
//! included), in CloudQuery's layout: `DIR/<source>/__tables.json`, or `DIR/<source>/README.md`
//! (an index) and one `DIR/<source>/<table>.md` per table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use quarry_sdk::{Column, Table};
use serde_json::json;

use super::{CliError, Exit};
use crate::plan::{PluginRef, Role};
use crate::runtime::TableSelection;
use crate::spec::{PkMode, WriteMode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Markdown,
}

#[derive(Debug, clap::Args)]
pub struct TablesArgs {
    #[command(flatten)]
    pub specs: super::Specs,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Where the files go: one directory per source inside it.
    #[arg(long, default_value = "cq-docs")]
    pub output_dir: PathBuf,
}

pub async fn run(args: TablesArgs) -> Result<Exit, CliError> {
    let (spec, env) = super::load(&args.specs)?;
    for s in &spec.sources {
        let mut plugin = env.start(PluginRef::from(s), Role::Source).await?;
        let everything = TableSelection {
            tables: vec!["*".into()],
            ..TableSelection::default()
        };
        let schemas = plugin.tables(&everything).await;
        let _ = plugin.close().await;
        let tables = schemas?
            .iter()
            .map(|schema| {
                let stored = crate::sync::destination_schema(
                    schema,
                    WriteMode::default(),
                    PkMode::Default,
                    false,
                )
                .map_err(anyhow::Error::msg)?;
                Table::from_schema(&stored).map_err(|e| anyhow::anyhow!(e.message))
            })
            .collect::<anyhow::Result<Vec<Table>>>()
            .with_context(|| format!("source `{}` declares a table Quarry cannot read", s.name))?;
        // Table names become file names; the runtime admits only plain names
        // (`runtime::check_table_name`), so a plugin never chooses where Quarry writes.
        let dir = args.output_dir.join(&s.name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let files = match args.format {
            Format::Json => vec![("__tables.json".to_string(), json_document(&tables))],
            Format::Markdown => markdown_documents(&s.path, &tables),
        };
        for (name, text) in &files {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        println!(
            "source `{}`: {} tables documented in {}",
            s.name,
            tables.len(),
            display(&dir)
        );
    }
    Ok(Exit::Ok)
}

fn display(dir: &Path) -> String {
    dir.display().to_string()
}

/// A column's type as documents show it: the extension's name, else Arrow's.
fn type_name(c: &Column) -> String {
    match c.extension {
        Some(e) => e.name().to_string(),
        None => c.data_type.to_string(),
    }
}

fn children<'t>(tables: &'t [Table], parent: &str) -> Vec<&'t Table> {
    tables
        .iter()
        .filter(|t| t.parent.as_deref() == Some(parent))
        .collect()
}

/// CloudQuery's `__tables.json`: top-level tables, their children nested under `relations`.
fn json_document(tables: &[Table]) -> String {
    fn table(t: &Table, all: &[Table]) -> serde_json::Value {
        let columns: Vec<serde_json::Value> = t
            .columns
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": type_name(c),
                    "description": c.description,
                    "is_primary_key": c.primary_key,
                    "is_incremental_key": c.incremental_key,
                    "not_null": !c.nullable,
                    "unique": c.unique,
                })
            })
            .collect();
        let relations: Vec<serde_json::Value> = children(all, &t.name)
            .into_iter()
            .map(|child| table(child, all))
            .collect();
        json!({
            "name": t.name,
            "title": t.title,
            "description": t.description,
            "is_incremental": t.incremental,
            "columns": columns,
            "relations": relations,
        })
    }
    let top: Vec<serde_json::Value> = tables
        .iter()
        .filter(|t| t.parent.is_none())
        .map(|t| table(t, tables))
        .collect();
    let mut text = serde_json::to_string_pretty(&top).unwrap_or_else(|_| "[]".into());
    text.push('\n');
    text
}

/// `README.md`, an index of the tables as a tree, and one page per table.
fn markdown_documents(plugin: &str, tables: &[Table]) -> Vec<(String, String)> {
    fn index(out: &mut String, t: &Table, all: &[Table], depth: usize) {
        let _ = writeln!(out, "{}- [{}]({}.md)", "  ".repeat(depth), t.name, t.name);
        for child in children(all, &t.name) {
            index(out, child, all, depth + 1);
        }
    }
    let mut readme = format!("# Source Plugin: {plugin}\n\n## Tables\n\n");
    for t in tables.iter().filter(|t| t.parent.is_none()) {
        index(&mut readme, t, tables, 0);
    }
    let mut files = vec![("README.md".to_string(), readme)];
    for t in tables {
        files.push((format!("{}.md", t.name), table_page(t, tables)));
    }
    files
}

fn table_page(t: &Table, all: &[Table]) -> String {
    let mut out = format!("# Table: {}\n\n", t.name);
    if !t.description.is_empty() {
        let _ = writeln!(out, "{}\n", t.description);
    }
    let keys: Vec<String> = t
        .columns
        .iter()
        .filter(|c| c.primary_key)
        .map(|c| format!("**{}**", c.name))
        .collect();
    match keys.len() {
        0 => out += "This table has no primary key; `_cq_id` identifies its rows.\n\n",
        1 => {
            let _ = writeln!(out, "The primary key for this table is {}.\n", keys[0]);
        }
        _ => {
            let _ = writeln!(
                out,
                "The composite primary key for this table is ({}).\n",
                keys.join(", ")
            );
        }
    }
    if t.incremental {
        out +=
            "It supports incremental syncs: each sync sends only what is new since the last.\n\n";
    }
    let children = children(all, &t.name);
    if t.parent.is_some() || !children.is_empty() {
        out += "## Relations\n\n";
        if let Some(parent) = &t.parent {
            let _ = writeln!(out, "This table depends on [{parent}]({parent}.md).\n");
        }
        if !children.is_empty() {
            let _ = writeln!(out, "The following tables depend on {}:\n", t.name);
            for child in children {
                let _ = writeln!(out, "  - [{0}]({0}.md)", child.name);
            }
            out.push('\n');
        }
    }
    out += "## Columns\n\n| Name | Type | Description |\n| --- | --- | --- |\n";
    for c in &t.columns {
        let mut name = c.name.clone();
        if c.primary_key {
            name += " (PK)";
        }
        if c.incremental_key {
            name += " (Incremental Key)";
        }
        let _ = writeln!(
            out,
            "|{name}|`{}`|{}|",
            type_name(c),
            c.description.replace('|', "\\|")
        );
    }
    out
}
