//! The command line: one file per command under `cli/`, the exit codes, and the error every
//! command returns ([`CliError`]), which `main.rs` reports and turns into an exit code.

mod bench;
mod check;
mod init;
mod migrate;
mod plugin;
mod serve;
mod state;
mod sync;
mod tables;
mod test_connection;
mod validate;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::plan::{Environment, OpenError, Opened, RunError, open};
use crate::runtime::{ErrorKind, PluginError};
use crate::spec::{Permissions, SpecError, SyncSpec};
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
    /// Log to the console, with no live progress display (CloudQuery's flag; Quarry always logs
    /// to standard error).
    #[arg(long, global = true)]
    pub log_console: bool,
    /// Accepted for CloudQuery compatibility: Quarry writes no log file.
    #[arg(long, global = true)]
    pub no_log_file: bool,
    /// Accepted for CloudQuery compatibility: Quarry writes no log file.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file_name: Option<PathBuf>,
    /// The id of this run (a UUID), used as the summary's `sync_id`; random by default.
    #[arg(long, global = true, value_name = "UUID")]
    pub invocation_id: Option<String>,
    /// Accepted for CloudQuery compatibility: Quarry never sends telemetry, at any level.
    #[arg(long, global = true, value_name = "LEVEL", env = "CQ_TELEMETRY_LEVEL")]
    pub telemetry_level: Option<String>,
    /// Run from quarry.lock and the plugin store only: never contact a registry.
    #[arg(long, global = true, env = "QUARRY_OFFLINE", value_parser = clap::builder::FalseyValueParser::new())]
    pub offline: bool,
    /// Refuse to run if quarry.lock would change (for CI).
    #[arg(long, global = true)]
    pub locked: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the syncs described by spec files (or directories of them).
    Sync(sync::SyncArgs),
    /// Check specs without moving data: plugins, grants, schemas, tables, migrations.
    #[command(alias = "validate-config")]
    Validate(validate::ValidateArgs),
    /// Create and alter the destination tables the specs need, and nothing else.
    Migrate(migrate::MigrateArgs),
    /// Ask each plugin of the specs whether it can reach what its spec configures.
    TestConnection(test_connection::TestConnectionArgs),
    /// Document the tables of each source of the specs, as JSON or Markdown files.
    Tables(tables::TablesArgs),
    /// Write a commented spec for a source and a destination, from their spec schemas.
    Init(init::InitArgs),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Everything worked.
    Ok = 0,
    /// The sync ran to the end but recorded errors (or a connection test failed).
    SyncErrors = 1,
    /// The configuration or the command line is wrong.
    Config = 2,
    /// A plugin or the runtime failed.
    Failure = 3,
    /// The user stopped the sync (SIGINT or SIGTERM); what was flushed is kept (128 + SIGINT, as
    /// shells report an interrupted command).
    Interrupted = 130,
}

impl Exit {
    /// The exit code for a plugin failure: a crash, a limit or a load failure is a failure of the
    /// run; a spec the plugin refuses is the configuration's; any other error the plugin
    /// returned is an error of the sync.
    pub fn for_plugin_error(e: &PluginError) -> Exit {
        if e.kind.is_failure_of_the_run() {
            Exit::Failure
        } else if e.kind == ErrorKind::InvalidSpec {
            Exit::Config
        } else {
            Exit::SyncErrors
        }
    }
}

/// Why a command stopped: reported once, with its exit code, by `main.rs`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The spec is wrong (the error names its file, line and column).
    #[error("{0}")]
    Config(#[from] SpecError),
    /// A plugin failed before or outside a sync.
    #[error("{0}")]
    Plugin(#[from] PluginError),
    /// The command line asks for something that cannot be done.
    #[error("error: {0}")]
    Usage(String),
    /// The host itself failed (no cache directory, an unwritable output file, ...).
    #[error("error: {0:#}")]
    Runtime(#[from] anyhow::Error),
}

impl From<RunError> for CliError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Config(e) => CliError::Config(e),
            RunError::Plugin(e) => CliError::Plugin(e),
        }
    }
}

/// The spec files a command reads.
#[derive(Debug, clap::Args)]
pub struct Specs {
    /// Spec files, or directories whose `*.yml`/`*.yaml` files are specs.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Grant each sandboxed plugin the network hosts and environment variables it declares it
    /// needs (`quarry plugin inspect` lists them), beyond its `permissions`; each is logged.
    #[arg(long)]
    pub grant_declared: bool,
}

/// What every command that reads specs starts from: the specs, and the environment with the
/// lock file beside them.
pub(crate) fn load(specs: &Specs) -> Result<(SyncSpec, Environment), CliError> {
    let spec = crate::spec::load(&specs.paths)?;
    let mut env = Environment::from_process()?;
    env.grant_declared = specs.grant_declared;
    env.distribution
        .use_lock(lock_path(&specs.paths))
        .map_err(|e| CliError::Config(SpecError::new(e.to_string())))?;
    Ok((spec, env))
}

/// `quarry.lock` beside the spec files: in the first directory given, or the first file's.
pub(crate) fn lock_path(paths: &[PathBuf]) -> PathBuf {
    let dir = match paths.first() {
        Some(first) if first.is_dir() => first.clone(),
        Some(first) => first
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".")),
        None => PathBuf::from("."),
    };
    dir.join("quarry.lock")
}

/// Writes quarry.lock if planning changed it.
pub(crate) fn save_lock(env: &Environment) -> Result<(), CliError> {
    if env
        .distribution
        .save_lock()
        .map_err(|e| CliError::Runtime(anyhow::anyhow!("cannot write the lock file: {e}")))?
        && let Some(path) = env.distribution.lock_path()
    {
        tracing::info!(lock = %path.display(), "wrote the lock file");
    }
    Ok(())
}

/// Opens a plugin named on the command line (`quarry/<name>`, or a file), with no grants and
/// not initialised.
pub(crate) async fn open_reference(
    env: &Environment,
    reference: &str,
    name: &str,
    run_native: bool,
) -> Result<Opened, CliError> {
    let resolved = env
        .resolve_reference(reference)
        .await
        .map_err(CliError::Usage)?;
    open_resolved(
        env,
        reference,
        name,
        resolved,
        run_native,
        &Permissions::default(),
    )
    .await
}

/// Opens what `reference` resolved to. Someone else's native executable (not first-party) is
/// started only when `run_native` says so: it runs outside the sandbox, with the user's rights.
pub(crate) async fn open_resolved(
    env: &Environment,
    reference: &str,
    name: &str,
    resolved: quarry_registry::Resolved,
    run_native: bool,
    permissions: &Permissions,
) -> Result<Opened, CliError> {
    if !run_native
        && matches!(resolved, quarry_registry::Resolved::Executable(_))
        && crate::plan::registry_of(reference, &env.cwd) == crate::spec::Registry::Local
    {
        return Err(CliError::Usage(format!(
            "`{reference}` is a native executable: it would run outside the sandbox, with your rights; pass --run-native to start it"
        )));
    }
    open(env, name, resolved, permissions)
        .await
        .map_err(|e| match e {
            OpenError::Config(message) | OpenError::Grants(message) => {
                CliError::Usage(format!("`{reference}`: {message}"))
            }
            OpenError::Plugin(e) => CliError::Plugin(e),
        })
}

/// Prints a plugin's error the way every command does: `error: ...` and an indented help line.
pub fn report_plugin_error(e: &PluginError) {
    eprintln!("error: {e}");
    if let Some(help) = &e.help {
        eprintln!("  = help: {help}");
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<Exit, CliError> {
    crate::plan::distribution::set_mode(crate::plan::distribution::Mode {
        offline: cli.offline,
        locked: cli.locked,
        update: false,
    });
    let globals = Globals {
        invocation_id: cli.invocation_id,
        log_console: cli.log_console || cli.log_format == LogFormat::Json,
    };
    match cli.command {
        Command::Sync(args) => sync::run(args, &globals).await,
        Command::Validate(args) => validate::run(args).await,
        Command::Migrate(args) => migrate::run(args).await,
        Command::TestConnection(args) => test_connection::run(args).await,
        Command::Tables(args) => tables::run(args).await,
        Command::Init(args) => init::run(args).await,
        Command::Plugin(command) => plugin::run(command).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::State(command) => state::run(command).await,
    }
}

/// The global flags commands act on.
pub struct Globals {
    pub invocation_id: Option<String>,
    /// No live display: logs go to the console as they are (`--log-console`, JSON logs).
    pub log_console: bool,
}
