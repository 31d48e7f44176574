//! `quarry plugin check PLUGIN`: runs a plugin through the calls the host will make and reports
//! what is wrong, one line per check, for authors in any language. In order: `info` (a name, a
//! version, its kinds, write modes that fit them, needs that parse as grants), `spec-schema` (a
//! JSON Schema that compiles), the spec (`--spec FILE`, else `{}`) against it, `init`; for a
//! source `tables` (names, keys, parents) and a short `sync` (a schema before each table's rows,
//! rows in that schema, tables it declared); for a destination, with `--write`, a test table
//! migrated, written, flushed and read back; then `close`. Exit 1 if any check failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, SchemaRef};
use quarry_sdk::{Column, Table};
use tokio::sync::mpsc;

use super::{CliError, Exit};
use crate::plan::Environment;
use crate::runtime::{
    AnyPlugin, DeleteRequest, ErrorKind, PluginInfo, SourceMessage, SyncInput, TableSelection,
};
use crate::spec::PluginSpec;

/// The whole check's deadline for a component, unless `--timeout` sets one.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// `quarry/<name>`, or the path of a `.wasm` component (or, with --run-native, of a native
    /// plugin's executable).
    pub plugin: String,
    /// The plugin's `spec:` as a YAML or JSON file (default: `{}`).
    #[arg(long, value_name = "FILE")]
    pub spec: Option<std::path::PathBuf>,
    /// For a destination: also migrate, write, flush and read back a table
    /// `quarry_plugin_check` (its rows are deleted after, where the plugin can).
    #[arg(long)]
    pub write: bool,
    /// Rows of the source's sync to check before stopping it.
    #[arg(long, default_value_t = 10_000)]
    pub rows: u64,
    /// Start a native executable (it runs outside the sandbox, with your rights).
    #[arg(long)]
    pub run_native: bool,
    #[command(flatten)]
    pub grants: super::serve::GrantArgs,
}

/// The outcome of the checks so far.
#[derive(Default)]
struct Report {
    failed: usize,
    passed: usize,
}

impl Report {
    fn ok(&mut self, what: impl std::fmt::Display) {
        self.passed += 1;
        println!("ok    {what}");
    }

    fn fail(&mut self, what: impl std::fmt::Display) {
        self.failed += 1;
        println!("FAIL  {what}");
    }

    fn note(&self, what: impl std::fmt::Display) {
        println!("note  {what}");
    }

    fn check(&mut self, passed: bool, what: impl std::fmt::Display) -> bool {
        if passed {
            self.ok(what)
        } else {
            self.fail(what)
        }
        passed
    }
}

pub async fn run(args: CheckArgs) -> Result<Exit, CliError> {
    let env = Environment::from_process()?;
    let spec = match &args.spec {
        Some(path) => crate::spec::load_value(path)?,
        None => serde_json::json!({}),
    };
    let name = std::path::Path::new(&args.plugin)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or(args.plugin.clone());
    let resolved = env
        .resolve_reference(&args.plugin)
        .await
        .map_err(CliError::Usage)?;
    // A plugin that never returns (or never emits) is stopped by its sandbox's deadline rather
    // than holding the check: two minutes unless --timeout says otherwise.
    let mut permissions = args.grants.permissions();
    permissions.timeout.get_or_insert(CHECK_TIMEOUT);
    let mut opened = super::open_resolved(
        &env,
        &args.plugin,
        &name,
        resolved,
        args.run_native,
        &permissions,
    )
    .await?;
    let mut report = Report::default();
    report.ok(format!("loaded `{}`", args.plugin));
    let initialised = check_plugin(&mut report, opened.plugin.as_mut(), &args, spec).await;
    match opened.plugin.close().await {
        Ok(()) => report.ok("close"),
        Err(e) if initialised => report.fail(format!("close: {e}")),
        // A plugin that was never initialised may refuse to close.
        Err(_) => {}
    }
    println!(
        "{} checks, {} failed",
        report.passed + report.failed,
        report.failed
    );
    Ok(if report.failed == 0 {
        Exit::Ok
    } else {
        Exit::SyncErrors
    })
}

/// Runs the checks; whether the plugin was initialised.
async fn check_plugin(
    report: &mut Report,
    plugin: &mut dyn AnyPlugin,
    args: &CheckArgs,
    spec: serde_json::Value,
) -> bool {
    let info = plugin.info().clone();
    check_info(report, &info);
    let schema = match plugin.spec_schema().await {
        Ok(schema) => schema,
        Err(e) => {
            report.fail(format!("spec-schema: {e}"));
            return false;
        }
    };
    let spec = PluginSpec::new(spec);
    match &schema {
        None => report.ok("spec-schema: none (any spec is accepted)"),
        Some(text) => {
            let compiled = serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| e.to_string())
                .and_then(|v| {
                    jsonschema::options()
                        .build(&v)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                });
            if report.check(
                compiled.is_ok(),
                format!(
                    "spec-schema: {}",
                    compiled
                        .as_ref()
                        .err()
                        .map_or("a JSON Schema that compiles".to_string(), |e| format!(
                            "not a valid JSON Schema: {e}"
                        ))
                ),
            ) {
                match spec.validate(&info.name, text) {
                    Ok(()) => report.ok("the spec fits the schema"),
                    Err(e) => {
                        report.fail(format!("the spec does not fit the schema: {}", e.message));
                        report.note("pass the plugin's spec with --spec FILE");
                        return false;
                    }
                }
            }
        }
    }
    if let Err(e) = plugin.init(spec.value.to_string()).await {
        report.fail(format!("init: {e}"));
        if e.kind == ErrorKind::Plugin(quarry_sdk::ErrorKind::InvalidSpec) {
            report.note("pass the plugin's spec with --spec FILE, and its grants with --allow-*");
        }
        return false;
    }
    report.ok("init");
    if info.source {
        check_source(report, plugin, args.rows).await;
    }
    if info.destination {
        if args.write {
            check_destination(report, plugin).await;
        } else {
            report.note("destination not written to (pass --write to write a test table)");
        }
    }
    if info.transformer {
        check_transformer(report, plugin).await;
    }
    true
}

/// A transformer's schema answer for a test table, and a test batch through it: every batch
/// out must carry the schema it answered.
async fn check_transformer(report: &mut Report, plugin: &mut dyn AnyPlugin) {
    let (schema, batch) = test_table();
    let answered = match plugin.transform_schema(&schema).await {
        Ok(answered) => answered,
        // A gRPC plugin cannot say what it is: one that is no transformer says so here.
        Err(e)
            if e.kind == ErrorKind::NotSupported
                && (plugin.info().source || plugin.info().destination) =>
        {
            report.note(format!("not a transformer: {}", e.message));
            return;
        }
        Err(e) => {
            report.fail(format!("transform-schema: {e}"));
            return;
        }
    };
    report.ok(format!(
        "transform-schema: table `{}` with {} columns",
        quarry_sdk::table_name(&answered),
        answered.fields().len()
    ));
    match plugin.transform(&batch).await {
        Ok(batches) => {
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            let wrong = batches
                .iter()
                .find(|b| b.schema_ref().fields() != answered.fields());
            match wrong {
                None => report.ok(format!(
                    "transform: 3 rows in, {rows} out in {} batches, each of the schema transform-schema answered",
                    batches.len()
                )),
                Some(b) => report.fail(format!(
                    "transform: a batch out has schema {:?}, but transform-schema answered {:?}",
                    b.schema_ref(),
                    answered
                )),
            }
        }
        Err(e) => report.fail(format!("transform: {e}")),
    }
}

fn check_info(report: &mut Report, info: &PluginInfo) {
    report.check(
        !info.name.trim().is_empty() && !info.version.trim().is_empty(),
        format!(
            "info: name `{}`, version `{}` (both must be set)",
            info.name, info.version
        ),
    );
    let kinds = info.kinds();
    report.check(
        !kinds.is_empty(),
        format!("info: kinds [{}] (at least one)", kinds.join(", ")),
    );
    if info.destination {
        report.check(
            !info.write_modes.is_empty(),
            format!(
                "info: write modes {:?} (a destination implements at least one)",
                info.write_modes
            ),
        );
    } else {
        report.check(
            info.write_modes.is_empty(),
            "info: no write modes (the plugin is no destination)",
        );
    }
    for host in &info.needs_network {
        let parsed = if host.starts_with("spec:") {
            Ok(())
        } else {
            crate::sandbox::HostGrant::parse(host).map(|_| ())
        };
        report.check(
            parsed.is_ok(),
            format!(
                "info: needs network `{host}`{}",
                parsed.err().map_or(String::new(), |e| format!(": {e}"))
            ),
        );
    }
}

async fn check_source(report: &mut Report, plugin: &mut dyn AnyPlugin, rows: u64) {
    let everything = TableSelection {
        tables: vec!["*".into()],
        ..TableSelection::default()
    };
    let tables = match plugin.tables(&everything).await {
        Ok(tables) => tables,
        Err(e) => {
            report.fail(format!("tables: {e}"));
            return;
        }
    };
    let names: Vec<String> = tables
        .iter()
        .map(|t| quarry_sdk::table_name(t).to_string())
        .collect();
    report.check(
        !tables.is_empty(),
        format!("tables: {} ({})", tables.len(), names.join(", ")),
    );
    for schema in &tables {
        let table = quarry_sdk::table_name(schema);
        if let Err(e) = crate::runtime::check_table_name(table) {
            report.fail(format!("table `{table}`: its name: {e}"));
        }
        match Table::from_schema(schema) {
            Err(e) => report.fail(format!("table `{table}`: {e}")),
            Ok(t) => {
                if let Some(parent) = &t.parent
                    && !names.contains(parent)
                {
                    report.fail(format!(
                        "table `{table}`: its parent `{parent}` is not among the tables"
                    ));
                }
            }
        }
    }
    let (tx, mut rx) = mpsc::channel::<SourceMessage>(4);
    let consume = async {
        let started = Instant::now();
        let mut migrated: std::collections::HashMap<String, SchemaRef> = Default::default();
        let (mut seen, mut problems, mut cursors) = (0u64, Vec::new(), 0usize);
        while let Some(message) = rx.recv().await {
            match message {
                SourceMessage::MigrateTable(schema) => {
                    let table = quarry_sdk::table_name(&schema).to_string();
                    if !names.contains(&table) {
                        problems.push(format!(
                            "sync: migrated table `{table}`, which `tables` did not declare"
                        ));
                    }
                    migrated.insert(table, schema);
                }
                SourceMessage::Insert { batch, .. } => {
                    let table = quarry_sdk::table_name(batch.schema_ref()).to_string();
                    match migrated.get(&table) {
                        None => problems.push(format!(
                            "sync: rows of `{table}` before its schema (send migrate-table first)"
                        )),
                        Some(schema) if schema.fields() != batch.schema_ref().fields() => problems
                            .push(format!(
                                "sync: rows of `{table}` in another schema than the one it migrated"
                            )),
                        Some(_) => {}
                    }
                    seen += batch.num_rows() as u64;
                }
                SourceMessage::State { .. } => cursors += 1,
                SourceMessage::TableError { table, message } => {
                    problems.push(format!("sync: table `{table}` failed: {message}"))
                }
                SourceMessage::DeleteRecord(_) => {}
            }
            if seen >= rows || started.elapsed() > Duration::from_secs(60) || problems.len() > 5 {
                break;
            }
        }
        // Dropping the receiver cancels the source, as the engine does when it stops.
        drop(rx);
        (seen, problems, cursors)
    };
    let (synced, (seen, problems, cursors)) = tokio::join!(
        plugin.sync(&everything, false, SyncInput::default(), tx),
        consume
    );
    for problem in &problems {
        report.fail(problem);
    }
    match synced {
        Ok(()) => report.ok(format!("sync: {seen} rows, {cursors} cursors, to its end")),
        Err(e) if e.kind == ErrorKind::Unavailable || seen >= rows => report.ok(format!(
            "sync: {seen} rows, {cursors} cursors, then stopped by the check (it stopped when asked)"
        )),
        Err(e) => report.fail(format!("sync: {e}")),
    }
}

/// The test table `quarry plugin check` writes and transforms, and its three rows.
fn test_table() -> (arrow_schema::SchemaRef, RecordBatch) {
    let schema = Table::new(TEST_TABLE)
        .column(Column::new("id", DataType::Int64).primary_key())
        .column(Column::new("name", DataType::Utf8))
        .column(Column::new("amount", DataType::Float64))
        .schema();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec![Some("a"), None, Some("c, \"d\"")])),
            Arc::new(Float64Array::from(vec![0.5, -1.0, 1e300])),
        ],
    )
    .expect("a valid batch");
    (schema, batch)
}

const TEST_TABLE: &str = "quarry_plugin_check";

async fn check_destination(report: &mut Report, plugin: &mut dyn AnyPlugin) {
    const TABLE: &str = TEST_TABLE;
    let (schema, batch) = test_table();
    if let Err(e) = plugin.existing_table(&schema).await {
        report.fail(format!("existing-table: {e}"));
    }
    let steps = async {
        plugin
            .migrate_table(&schema, false)
            .await
            .map_err(|e| format!("migrate-table: {e}"))?;
        plugin
            .insert(&batch)
            .await
            .map_err(|e| format!("insert: {e}"))?;
        plugin.flush().await.map_err(|e| format!("flush: {e}"))
    };
    if let Err(e) = steps.await {
        report.fail(e);
        return;
    }
    report.ok(format!(
        "migrate-table, insert (3 rows), flush: table `{TABLE}`"
    ));
    match plugin.read(&schema).await {
        Ok(batches) => {
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            let same = batches.len() == 1 && batches[0].columns() == batch.columns();
            report.check(
                rows >= 3 && (same || rows > 3),
                format!(
                    "read: {rows} rows back{}",
                    if same { ", as written" } else { "" }
                ),
            );
        }
        Err(e) if e.kind == ErrorKind::Plugin(quarry_sdk::ErrorKind::NotSupported) => {
            report.note("read: not supported (such a destination cannot keep state)")
        }
        Err(e) => report.fail(format!("read: {e}")),
    }
    let delete = DeleteRequest {
        table: TABLE.to_string(),
        where_clause: Vec::new(),
    };
    match plugin.delete_record(&delete).await {
        Ok(()) => match plugin.flush().await {
            Ok(()) => report.ok(format!("delete-record: the rows of `{TABLE}` removed")),
            Err(e) => report.fail(format!("flush after delete-record: {e}")),
        },
        Err(e) if e.kind == ErrorKind::Plugin(quarry_sdk::ErrorKind::NotSupported) => report.note(
            format!("delete-record: not supported; `{TABLE}` keeps the test rows"),
        ),
        Err(e) => report.fail(format!("delete-record: {e}")),
    }
}
