//! Quarry inside another program: the same syncs `quarry sync` runs, started from specs in a
//! file or a string, with the same sandbox, lock file and state, returning the summary instead of
//! printing it.
//!
//! ```no_run
//! # async fn example() -> Result<(), quarry::Error> {
//! let spec = r#"
//! kind: source
//! spec:
//!   name: test
//!   path: quarry/test
//!   tables: [test_rows]
//!   destinations: [out]
//!   spec: { num_rows: 1000 }
//! ---
//! kind: destination
//! spec:
//!   name: out
//!   path: quarry/file
//!   write_mode: append
//!   spec: { path: 'out/{{TABLE}}.{{FORMAT}}', format: json, no_rotate: true }
//!   permissions: { files: { ./out: write } }
//! "#;
//! let mut sync = quarry::Sync::from_yaml_str(spec)?.working_dir("/srv/exports");
//! let mut events = sync.events();
//! tokio::spawn(async move {
//!     while let Some(event) = events.recv().await {
//!         if let quarry::Event::Written { table, rows, .. } = event {
//!             println!("{rows} more rows in {table}");
//!         }
//!     }
//! });
//! let summary = sync.run().await?;
//! assert!(summary.ok(), "{summary}");
//! println!("{} rows", summary.rows());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, watch};

use crate::plan::{self, Environment, RunError};
use crate::runtime::{PluginError, Shard};
use crate::spec::{SpecError, SyncSpec};
use crate::sync::progress::{Event, Progress};
use crate::sync::{self, Interrupt, RunOptions, SourceSummary};

/// Why a sync could not run. A sync that ran and recorded errors is not one: it returns a
/// [`Summary`] whose [`Summary::ok`] is false.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The specs are wrong; the message names the file (or the string's name), line and field,
    /// and says what to do.
    #[error("{0}")]
    Config(#[from] SpecError),
    /// A plugin could not be loaded, started or initialised.
    #[error("{0}")]
    Plugin(#[from] PluginError),
    /// The runtime itself failed (the compile cache, the async runtime, the lock file).
    #[error("{0:#}")]
    Runtime(#[from] anyhow::Error),
}

impl From<RunError> for Error {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Config(e) => Error::Config(e),
            RunError::Plugin(e) => Error::Plugin(e),
        }
    }
}

/// What a sync did: per source, its tables' rows and every error, as `quarry sync` prints them.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The sync's id (`sync_id` in summaries, `{{SYNC_ID}}` in `sync_group_id`).
    pub sync_id: String,
    pub sources: Vec<SourceSummary>,
}

impl Summary {
    /// Whether every source ran to its end without an error.
    pub fn ok(&self) -> bool {
        self.sources.iter().all(SourceSummary::ok)
    }

    /// Rows the sources sent.
    pub fn rows(&self) -> u64 {
        self.sources.iter().map(SourceSummary::rows).sum()
    }

    /// Every error of every source, as text (each names its plugin and, where there is one, its
    /// table).
    pub fn errors(&self) -> Vec<String> {
        self.sources
            .iter()
            .flat_map(|s| {
                s.plugin_errors
                    .iter()
                    .map(ToString::to_string)
                    .chain(s.errors.iter().cloned())
            })
            .collect()
    }
}

impl fmt::Display for Summary {
    /// The lines `quarry sync` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for source in &self.sources {
            write!(f, "{source}")?;
        }
        for error in self.errors() {
            writeln!(f, "error: {error}")?;
        }
        Ok(())
    }
}

/// Stops a running [`Sync`] as the first Ctrl-C stops `quarry sync`: the sources stop, every
/// destination writes and flushes what it was sent, cursors are saved for exactly that, and
/// [`Sync::run`] returns a summary with the interruption among its errors.
#[derive(Clone)]
pub struct Stopper(std::sync::Arc<watch::Sender<Option<&'static str>>>);

impl Stopper {
    pub fn stop(&self) {
        let _ = self.0.send(Some("stopped by the program"));
    }
}

/// One sync of a set of specs: configure it, then [`Sync::run`] it.
pub struct Sync {
    spec: SyncSpec,
    lock: Option<PathBuf>,
    cwd: Option<PathBuf>,
    cache_dir: Option<Option<PathBuf>>,
    plugin_dirs: Vec<PathBuf>,
    grant_declared: bool,
    no_migrate: bool,
    shard: Option<Shard>,
    invocation_id: Option<String>,
    events: Option<mpsc::UnboundedSender<Event>>,
    stop: Option<(Stopper, Interrupt)>,
}

impl Sync {
    /// The specs in these files and directories (every `*.yml`/`*.yaml` of a directory), as
    /// `quarry sync` reads them; `quarry.lock` is read and written beside the first.
    pub fn from_files<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Result<Sync, Error> {
        let paths: Vec<PathBuf> = paths
            .into_iter()
            .map(|p| p.as_ref().to_path_buf())
            .collect();
        let spec = crate::spec::load(&paths)?;
        Ok(Sync::new(spec, Some(crate::cli::lock_path(&paths))))
    }

    /// The specs in `yaml` (documents separated by `---`); errors name it `<yaml string>`. OCI
    /// plugins are not locked unless [`Sync::lock_file`] says where.
    pub fn from_yaml_str(yaml: &str) -> Result<Sync, Error> {
        let spec = crate::spec::load_str(yaml, Path::new("<yaml string>"))?;
        Ok(Sync::new(spec, None))
    }

    fn new(spec: SyncSpec, lock: Option<PathBuf>) -> Sync {
        Sync {
            spec,
            lock,
            cwd: None,
            cache_dir: None,
            plugin_dirs: Vec::new(),
            grant_declared: false,
            no_migrate: false,
            shard: None,
            invocation_id: None,
            events: None,
            stop: None,
        }
    }

    /// Where relative paths of the specs (grants, plugin settings) start; the process's working
    /// directory by default.
    pub fn working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Where compiled components are cached (`QUARRY_CACHE_DIR`, else the user's cache
    /// directory, by default). No grant may reach it.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(Some(dir.into()));
        self
    }

    /// Compiles components on every run instead of caching them.
    pub fn no_cache(mut self) -> Self {
        self.cache_dir = Some(None);
        self
    }

    /// Looks for first-party plugins (`quarry/<name>`) in `dir` before the default places:
    /// `QUARRY_PLUGIN_DIR`, `plugins/` beside this program's executable, the cargo build
    /// directory that goes with it, and the executable's own directory (where a native
    /// first-party plugin such as `quarry/duckdb` is looked for).
    pub fn plugin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.plugin_dirs.push(dir.into());
        self
    }

    /// Where `quarry.lock` is read and written.
    pub fn lock_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.lock = Some(path.into());
        self
    }

    /// `--grant-declared`: each component also gets the hosts and variables it declares it
    /// needs (each grant is logged).
    pub fn grant_declared(mut self, yes: bool) -> Self {
        self.grant_declared = yes;
        self
    }

    /// `--no-migrate`: tables are used as they are; one that needs a migration is an error
    /// before any source runs.
    pub fn no_migrate(mut self, yes: bool) -> Self {
        self.no_migrate = yes;
        self
    }

    /// `--shard NUM/TOTAL`: sync only this part of every source.
    pub fn shard(mut self, num: u32, total: u32) -> Result<Self, Error> {
        let shard = Shard::parse(&format!("{num}/{total}")).map_err(SpecError::new)?;
        self.shard = Some(shard);
        Ok(self)
    }

    /// The sync's id (`--invocation-id`); a random UUID by default.
    pub fn invocation_id(mut self, id: impl Into<String>) -> Self {
        self.invocation_id = Some(id.into());
        self
    }

    /// The events of the run to come, as they happen: one per source start and end and per batch
    /// read or written. Unbounded, so a program that reads slowly holds them in memory rather
    /// than slowing the sync; drop the receiver to stop them.
    pub fn events(&mut self) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.events = Some(tx);
        rx
    }

    /// A handle that stops the run to come cleanly, from another task. A stop asked for while
    /// the sync is still planning (plugins opening) takes effect once the plan is made: no source
    /// then runs.
    pub fn stopper(&mut self) -> Stopper {
        if let Some((stopper, _)) = &self.stop {
            return stopper.clone();
        }
        let (tx, interrupt) = Interrupt::new();
        let stopper = Stopper(std::sync::Arc::new(tx));
        self.stop = Some((stopper.clone(), interrupt));
        stopper
    }

    /// Plans (every plugin opened and checked, nothing written), then runs every source into its
    /// destinations. Returns the summary even when sources failed: see [`Summary::ok`]. Stop a
    /// run with a [`Stopper`] rather than by dropping this future: dropped, its plugins are
    /// killed or dropped without their clean close.
    pub async fn run(self) -> Result<Summary, Error> {
        let cwd = match self.cwd {
            Some(dir) => dir,
            None => std::env::current_dir().map_err(anyhow::Error::from)?,
        };
        let cache_dir = self.cache_dir.unwrap_or_else(plan::cache_dir);
        let mut search_path = self.plugin_dirs;
        let default = quarry_registry::Resolver::from_env(std::env::current_exe().ok().as_deref());
        search_path.extend(default.search_path().iter().cloned());
        let mut env =
            Environment::new(cache_dir, cwd, quarry_registry::Resolver::new(search_path))?;
        env.grant_declared = self.grant_declared;
        if let Some(lock) = self.lock {
            env.distribution
                .use_lock(lock)
                .map_err(|e| SpecError::new(e.to_string()))?;
        }
        let plan = plan::build(&self.spec, &env).await?;
        let checked = match env.distribution.save_lock() {
            Err(e) => Err(Error::Runtime(anyhow::anyhow!(
                "cannot write the lock file: {e}"
            ))),
            Ok(saved) => {
                if saved && let Some(path) = env.distribution.lock_path() {
                    tracing::info!(lock = %path.display(), "wrote the lock file");
                }
                if self.no_migrate {
                    plan.no_migrate_needed().map_err(Error::from)
                } else {
                    plan.refusals().map_err(Error::from)
                }
            }
        };
        if let Err(e) = checked {
            plan.close().await;
            return Err(e);
        }
        let sync_id = self
            .invocation_id
            .unwrap_or_else(crate::runtime::grpc::invocation_id);
        let mut progress = Progress::default();
        if let Some(events) = self.events {
            progress = progress.with_events(events);
        }
        let options = RunOptions {
            no_migrate: self.no_migrate,
            progress,
            interrupt: self.stop.map(|(_, i)| i).unwrap_or_default(),
            sync_id: Some(sync_id.clone()),
            shard: self.shard,
        };
        let sources = sync::execute(plan, &options).await;
        Ok(Summary { sync_id, sources })
    }
}
