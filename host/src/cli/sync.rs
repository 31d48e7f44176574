//! `quarry sync <spec>...`: plan, then run the plan; a summary per source, and per source and
//! destination a JSON line with `--summary-location`.

use std::path::PathBuf;

use super::{CliError, Exit, Globals, report_plugin_error};
use crate::plan;
use crate::sync::progress::Progress;
use crate::sync::summary::SummaryLine;
use crate::sync::{self, RunOptions};

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub specs: super::Specs,
    /// Append one JSON line per source and destination, with CloudQuery's field names, to this
    /// file.
    #[arg(long, value_name = "FILE")]
    pub summary_location: Option<PathBuf>,
    /// Write to the destination tables as they are: no table is created or altered, and a table
    /// that is missing or needs a migration is an error before any source runs.
    #[arg(long)]
    pub no_migrate: bool,
    /// Append one JSON line per table (rows, errors, duration) to this file.
    #[arg(long, value_name = "FILE")]
    pub tables_metrics_location: Option<PathBuf>,
    /// Sync only part NUM of TOTAL of every source: N processes with `--shard 1/N` ...
    /// `--shard N/N` together sync what one would. A wasm source's selected tables (with their
    /// children) are cut into N contiguous chunks; a gRPC source is told its shard and cuts its
    /// own work. Rows carry `_cq_source_name` NAME_NUM_TOTAL.
    #[arg(long, value_name = "NUM/TOTAL", value_parser = crate::runtime::Shard::parse)]
    pub shard: Option<crate::runtime::Shard>,
}

pub async fn run(args: SyncArgs, globals: &Globals) -> Result<Exit, CliError> {
    let (spec, env) = super::load(&args.specs)?;
    let plan = plan::build(&spec, &env).await?;
    super::save_lock(&env)?;
    // With `--no-migrate` a table that needs any migration is the error, refused or not.
    let checked = if args.no_migrate {
        plan.no_migrate_needed().map_err(CliError::from)
    } else {
        plan.refusals().map_err(CliError::from)
    };
    if let Err(e) = checked {
        plan.close().await;
        return Err(e);
    }
    let sources = plan
        .sources
        .iter()
        .map(|s| SummaryLine::describe_source(s))
        .collect::<Vec<_>>();
    let destinations = plan
        .destinations
        .iter()
        .map(|d| SummaryLine::describe_destination(d))
        .collect::<Vec<_>>();
    let sync_id = globals
        .invocation_id
        .clone()
        .unwrap_or_else(crate::runtime::grpc::invocation_id);
    let progress = Progress::start(globals.log_console);
    let options = RunOptions {
        no_migrate: args.no_migrate,
        progress: progress.clone(),
        interrupt: stop_on_signals(),
        sync_id: Some(sync_id.clone()),
        shard: args.shard,
    };
    let summaries = sync::execute(plan, &options).await;
    progress.finish().await;
    let mut exit = Exit::Ok;
    if options.interrupt.reason().is_some() {
        exit = Exit::Interrupted;
    }
    for summary in &summaries {
        for e in &summary.plugin_errors {
            report_plugin_error(e);
            exit = exit.max(Exit::for_plugin_error(e).max(Exit::SyncErrors));
        }
        for e in &summary.errors {
            eprintln!("error: {e}");
            exit = exit.max(Exit::SyncErrors);
        }
        print!("{summary}");
    }
    let lines = SummaryLine::all(&sync_id, &summaries, &sources, &destinations);
    if let Some(path) = &args.summary_location {
        exit = exit.max(append_lines(path, &lines));
    }
    if let Some(path) = &args.tables_metrics_location {
        let tables: Vec<serde_json::Value> = summaries
            .iter()
            .flat_map(|s| s.table_metrics(&sync_id))
            .collect();
        exit = exit.max(append_lines(path, &tables));
    }
    Ok(exit)
}

/// The first SIGINT or SIGTERM stops the sync cleanly (the sources stop, the destinations flush
/// what they were sent, state is saved for exactly that); a second one exits at once.
fn stop_on_signals() -> sync::Interrupt {
    use tokio::signal::unix::{SignalKind, signal};
    let (raise, interrupt) = sync::Interrupt::new();
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot listen for SIGINT and SIGTERM: they will stop the sync at once");
        return interrupt;
    };
    tokio::spawn(async move {
        let mut raised = false;
        loop {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            if raised {
                eprintln!("error: {name} again: exiting without flushing");
                crate::runtime::grpc::kill_all();
                std::process::exit(Exit::Interrupted as i32);
            }
            raised = true;
            eprintln!(
                "warning: {name}: stopping the sources; the destinations flush what they were \
                 sent and state is saved for it (send it again to exit at once)"
            );
            let _ = raise.send(Some(name));
        }
    });
    interrupt
}

/// With `--no-migrate`, every table must be usable as it is before any source runs.
/// Appends one JSON line per item to `path`; an error is reported and makes the exit 1.
fn append_lines<T: serde::Serialize>(path: &std::path::Path, items: &[T]) -> Exit {
    use std::io::Write;
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| {
            let mut text = Vec::new();
            for item in items {
                serde_json::to_writer(&mut text, item)?;
                text.push(b'\n');
            }
            file.write_all(&text)
        });
    match written {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: cannot write to {}: {e}", path.display());
            Exit::SyncErrors
        }
    }
}
