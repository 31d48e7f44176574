//! The command line: one file per command under `cli/`, and the exit codes in one place.

mod bench;
mod plugin;
mod serve;
mod state;
mod sync;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::plan::RunError;
use crate::runtime::{ErrorKind, PluginError};
use crate::telemetry::{LogFormat, LogLevel};

/// Quarry moves data from sources to destinations; plugins run as sandboxed WebAssembly
/// components.
#[derive(Debug, Parser)]
#[command(name = "quarry", version, about)]
pub struct Cli {
    /// Log level on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogLevel::Info, env = "QUARRY_LOG_LEVEL")]
    pub log_level: LogLevel,
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the syncs described by spec files (or directories of them).
    Sync(sync::SyncArgs),
    /// Inspect plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Measure sync throughput and memory with the `test` source.
    Bench(bench::BenchArgs),
    /// Serve a plugin (wasm included, in its sandbox) over gRPC as a CloudQuery v3 plugin.
    Serve(serve::ServeCommand),
    /// Show or reset a source's incremental-sync cursors in its state backend.
    #[command(subcommand)]
    State(state::StateCommand),
}

/// How a command ended; the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything worked.
    Ok = 0,
    /// The sync ran to the end but recorded errors.
    SyncErrors = 1,
    /// The configuration or the command line is wrong.
    Config = 2,
    /// A plugin or the runtime failed.
    Failure = 3,
}

impl Exit {
    /// The exit code for a plugin failure: a crash, a limit or a load failure is a failure of the
    /// run; an error the plugin returned is an error of the sync.
    pub fn for_plugin_error(e: &PluginError) -> Exit {
        match e.kind {
            ErrorKind::Trap | ErrorKind::Timeout | ErrorKind::MemoryLimit | ErrorKind::Load => {
                Exit::Failure
            }
            ErrorKind::InvalidSpec => Exit::Config,
            _ => Exit::SyncErrors,
        }
    }
}

/// Prints an error the way every command does: `error: ...` and an indented help line.
pub fn report(e: &RunError) -> Exit {
    match e {
        RunError::Config(e) => {
            eprintln!("{e}");
            Exit::Config
        }
        RunError::Plugin(e) => {
            report_plugin_error(e);
            Exit::Failure
        }
    }
}

pub fn report_plugin_error(e: &PluginError) {
    eprintln!("error: {e}");
    if let Some(help) = &e.help {
        eprintln!("  = help: {help}");
    }
}

impl PartialOrd for Exit {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Exit {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Exit {
    match cli.command {
        Command::Sync(args) => sync::run(args).await,
        Command::Plugin(command) => plugin::run(command).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::State(command) => state::run(command).await,
    }
}

fn current_exe() -> Option<PathBuf> {
    std::env::current_exe().ok()
}
