//! Plugins as WebAssembly components: one shared [`Engine`], components compiled once and cached
//! on disk, pre-instantiated once and instantiated per run in a store of their own (a trap
//! poisons the whole store). Every call runs under the plugin's grants: its memory cap, its
//! wall-clock budget, its preopened directories.

mod cache;
mod imports;

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use tokio::sync::mpsc;
use tokio::time::Instant;
use wasmtime::component::{HasSelf, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};

pub use cache::sha256_hex;

use self::bindings::exports::quarry::plugin::{destination, plugin, source};
use self::bindings::quarry::plugin::types as wit;
use super::{
    Destination, ErrorKind, Phase, PluginError, PluginInfo, Source, SourceMessage, TableSelection,
};
use crate::sandbox::{Grants, MemoryCap, PluginOutput, human_bytes};
use crate::spec::WriteMode;

mod bindings {
    wasmtime::component::bindgen!({
        world: "source-destination-plugin",
        path: "../wit/plugin@0.1.0",
        imports: { default: async },
        exports: { default: async },
    });
}

/// The contract versions this host speaks, newest first.
pub const CONTRACT_VERSIONS: &[&str] = &["0.1.0"];

/// How often the epoch advances: the granularity of timeouts and of cooperative yielding.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The state of one plugin instance's store.
pub struct PluginState {
    wasi: wasmtime_wasi::WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
    plugin: Arc<str>,
    /// Where `sink.emit` sends, while a sync runs.
    sink: Option<mpsc::Sender<SourceMessage>>,
    /// Tables the running sync has migrated: an insert into another is refused.
    migrated: std::collections::HashSet<String>,
    /// The first message of the plugin's that the host refused, reported even if the plugin
    /// ignores the error `emit` returned.
    refused: Option<String>,
    /// Incremental cursors for this run.
    cursors: std::collections::HashMap<String, String>,
}

impl wasmtime_wasi::WasiView for PluginState {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Advances the engine's epoch until dropped.
struct EpochTicker(Arc<AtomicBool>);

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("quarry-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| {
                tracing::error!("cannot start the epoch thread, timeouts will not preempt: {e}")
            });
        EpochTicker(stop)
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The engine, the linker with every host import, and the compile cache.
pub struct WasmRuntime {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: cache::CompileCache,
    /// Components loaded by this process, by digest: three destinations of one plugin compile it
    /// once.
    loaded: std::sync::Mutex<std::collections::HashMap<String, Arc<LoadedComponent>>>,
    _ticker: EpochTicker,
}

/// A compiled, pre-instantiated component: instantiate it as often as needed.
pub struct LoadedComponent {
    pub digest: String,
    /// Whether this load compiled it (rather than reading the cache).
    pub compiled: bool,
    pre: InstancePre<PluginState>,
    plugin: plugin::GuestIndices,
    source: Option<source::GuestIndices>,
    destination: Option<destination::GuestIndices>,
}

fn load_error(plugin: &str, message: impl Into<String>) -> PluginError {
    PluginError::new(plugin, Phase::Load, ErrorKind::Load, message)
}

impl WasmRuntime {
    /// `cache_dir`: where compiled components are kept (`None`: compile every time).
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        bindings::SourceDestinationPlugin::add_to_linker::<PluginState, HasSelf<PluginState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(WasmRuntime {
            engine,
            linker,
            cache: cache::CompileCache::new(cache_dir),
            loaded: Default::default(),
            _ticker: ticker,
        })
    }

    /// Compiles (or loads from the cache) a component and checks that it implements a contract
    /// version this host speaks.
    pub fn load(&self, plugin: &str, bytes: &[u8]) -> Result<Arc<LoadedComponent>, PluginError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(load_error(
                plugin,
                "the file is not a WebAssembly component",
            ));
        }
        let digest = cache::sha256_hex(bytes);
        let mut loaded = self
            .loaded
            .lock()
            .map_err(|_| load_error(plugin, "the component table is poisoned"))?;
        if let Some(component) = loaded.get(&digest) {
            return Ok(component.clone());
        }
        let component = Arc::new(self.compile(plugin, bytes, digest.clone())?);
        loaded.insert(digest, component.clone());
        Ok(component)
    }

    fn compile(
        &self,
        plugin: &str,
        bytes: &[u8],
        digest: String,
    ) -> Result<LoadedComponent, PluginError> {
        let (component, compiled) = self
            .cache
            .load_or_compile(&self.engine, plugin, bytes, &digest)
            .map_err(|e| load_error(plugin, format!("cannot compile the component: {e:#}")))?;
        let exports: Vec<String> = component
            .component_type()
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let want = |iface: &str| format!("quarry:plugin/{iface}@{}", CONTRACT_VERSIONS[0]);
        if !exports.contains(&want("plugin")) {
            let theirs: Vec<&str> = exports
                .iter()
                .filter(|e| e.starts_with("quarry:plugin/"))
                .map(String::as_str)
                .collect();
            let message = if theirs.is_empty() {
                format!(
                    "not a Quarry plugin: it exports {}",
                    list_or_nothing(&exports)
                )
            } else {
                format!(
                    "built for another version of the plugin contract ({}); this quarry speaks {}",
                    theirs.join(", "),
                    CONTRACT_VERSIONS.join(", ")
                )
            };
            return Err(load_error(plugin, message));
        }
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            load_error(
                plugin,
                format!("the component needs imports quarry does not provide: {e:#}"),
            )
        })?;
        let indices_error = |e: wasmtime::Error| load_error(plugin, format!("{e:#}"));
        let plugin_indices = plugin::GuestIndices::new(&pre).map_err(indices_error)?;
        let source = exports
            .contains(&want("source"))
            .then(|| source::GuestIndices::new(&pre))
            .transpose()
            .map_err(indices_error)?;
        let destination = exports
            .contains(&want("destination"))
            .then(|| destination::GuestIndices::new(&pre))
            .transpose()
            .map_err(indices_error)?;
        Ok(LoadedComponent {
            digest,
            compiled,
            pre,
            plugin: plugin_indices,
            source,
            destination,
        })
    }

    /// Instantiates a loaded component in a fresh store with `grants`, and asks it for its info.
    pub async fn start(
        &self,
        loaded: &LoadedComponent,
        name: &str,
        grants: &Grants,
    ) -> Result<WasmPlugin, PluginError> {
        let stdout = PluginOutput::new(name, "stdout");
        let stderr = PluginOutput::new(name, "stderr");
        let wasi = grants
            .wasi(stdout.clone(), stderr.clone())
            .map_err(|e| load_error(name, format!("cannot set up the sandbox: {e:#}")))?;
        let state = PluginState {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap {
                limit: grants.memory,
                refused: None,
            },
            plugin: name.into(),
            sink: None,
            migrated: Default::default(),
            refused: None,
            cursors: Default::default(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        store.epoch_deadline_async_yield_and_update(1);
        let deadline = grants.timeout.map(|t| Instant::now() + t);
        let mut plugin = WasmPlugin {
            name: name.into(),
            store,
            guests: None,
            info: PluginInfo::default(),
            deadline,
            timeout: grants.timeout,
            failed: None,
            stdout,
            stderr,
        };
        let (pre, indices) = (
            loaded.pre.clone(),
            (
                loaded.plugin.clone(),
                loaded.source.clone(),
                loaded.destination.clone(),
            ),
        );
        let guests = plugin
            .run(Phase::Load, move |store| {
                Box::pin(async move {
                    let instance = pre.instantiate_async(&mut *store).await?;
                    let guests = Guests {
                        plugin: indices.0.load(&mut *store, &instance)?,
                        source: indices
                            .1
                            .map(|i| i.load(&mut *store, &instance))
                            .transpose()?,
                        destination: indices
                            .2
                            .map(|i| i.load(&mut *store, &instance))
                            .transpose()?,
                    };
                    Ok(Ok(guests))
                })
            })
            .await?;
        plugin.guests = Some(Arc::new(guests));
        let info = plugin
            .guard(Phase::Load, |store, g| {
                Box::pin(async move { g.plugin.call_info(store).await.map(Ok) })
            })
            .await?;
        plugin.info = PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            source: info.kinds.contains(&wit::PluginKind::Source) && plugin.has_source(),
            destination: info.kinds.contains(&wit::PluginKind::Destination)
                && plugin.has_destination(),
            needs_network: info.needs.network,
            needs_files: info.needs.files,
            needs_env: info.needs.env,
            write_modes: info
                .write_modes
                .iter()
                .map(|m| match m {
                    wit::WriteMode::Append => WriteMode::Append,
                    wit::WriteMode::Overwrite => WriteMode::Overwrite,
                    wit::WriteMode::OverwriteDeleteStale => WriteMode::OverwriteDeleteStale,
                })
                .collect(),
        };
        Ok(plugin)
    }
}

fn list_or_nothing(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".into()
    } else {
        items.join(", ")
    }
}

struct Guests {
    plugin: plugin::Guest,
    source: Option<source::Guest>,
    destination: Option<destination::Guest>,
}

type CallFuture<'a, R> =
    Pin<Box<dyn Future<Output = wasmtime::Result<Result<R, wit::Error>>> + Send + 'a>>;

/// One running instance of a plugin.
pub struct WasmPlugin {
    name: String,
    store: Store<PluginState>,
    guests: Option<Arc<Guests>>,
    info: PluginInfo,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    /// Set once the store is unusable (a trap, a timeout): every later call fails with it.
    failed: Option<PluginError>,
    stdout: PluginOutput,
    stderr: PluginOutput,
}

impl WasmPlugin {
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn has_source(&self) -> bool {
        self.guests.as_ref().is_some_and(|g| g.source.is_some())
    }

    fn has_destination(&self) -> bool {
        self.guests
            .as_ref()
            .is_some_and(|g| g.destination.is_some())
    }

    /// Runs one call into the guest under the plugin's deadline, and turns every way it can fail
    /// into a [`PluginError`] that names the plugin, the phase and the limit involved.
    async fn run<R>(
        &mut self,
        phase: Phase,
        call: impl for<'a> FnOnce(&'a mut Store<PluginState>) -> CallFuture<'a, R>,
    ) -> Result<R, PluginError> {
        if let Some(failed) = &self.failed {
            return Err(failed.clone());
        }
        let future = call(&mut self.store);
        let outcome = match self.deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
            None => Some(future.await),
        };
        let error = match outcome {
            Some(Ok(Ok(value))) => return Ok(value),
            Some(Ok(Err(e))) => return Err(self.plugin_error(phase, e)),
            Some(Err(trap)) => self.trap_error(phase, trap),
            None => {
                let limit = self.timeout.map(humantime).unwrap_or_default();
                PluginError::new(
                    &self.name,
                    phase,
                    ErrorKind::Timeout,
                    format!("it ran past its timeout of {limit}"),
                )
                .with_help(format!(
                    "raise it in the plugin's spec: `permissions: {{ timeout: ... }}` (now {limit})"
                ))
            }
        };
        // A trap or an abandoned call leaves the store in an unknown state: never enter it again.
        self.failed = Some(error.clone());
        self.finish_output();
        Err(error)
    }

    /// [`Self::run`] for a call into one of the instance's exports.
    async fn guard<R>(
        &mut self,
        phase: Phase,
        call: impl for<'a> FnOnce(&'a mut Store<PluginState>, Arc<Guests>) -> CallFuture<'a, R>,
    ) -> Result<R, PluginError> {
        let guests = self.guests.clone().ok_or_else(|| {
            PluginError::new(
                &self.name,
                phase,
                ErrorKind::Internal,
                "the plugin is not instantiated",
            )
        })?;
        self.run(phase, move |store| call(store, guests)).await
    }

    fn plugin_error(&mut self, phase: Phase, e: wit::Error) -> PluginError {
        let kind = match e.kind {
            wit::ErrorKind::InvalidSpec => ErrorKind::InvalidSpec,
            wit::ErrorKind::Unauthorized => ErrorKind::Unauthorized,
            wit::ErrorKind::Unavailable => ErrorKind::Unavailable,
            wit::ErrorKind::NotSupported => ErrorKind::NotSupported,
            wit::ErrorKind::Internal => ErrorKind::Internal,
        };
        let mut message = e.message;
        if let Some(refused) = self.store.data_mut().refused.take() {
            message = format!("{refused} (the plugin then said: {message})");
        }
        PluginError::new(&self.name, phase, kind, message)
    }

    fn trap_error(&mut self, phase: Phase, trap: wasmtime::Error) -> PluginError {
        let memory = &self.store.data().memory;
        if let Some(refused) = memory.refused {
            let limit = human_bytes(memory.limit);
            return PluginError::new(
                &self.name,
                phase,
                ErrorKind::MemoryLimit,
                format!(
                    "it exceeded its memory limit of {limit} (it asked for {})",
                    human_bytes(refused)
                ),
            )
            .with_help(format!(
                "raise it in the plugin's spec: `permissions: {{ memory: ... }}` (now {limit})"
            ));
        }
        let mut message = format!("it crashed: {}", trap_summary(&trap));
        let last = self.stderr.last_lines();
        if !last.is_empty() {
            message.push_str(&format!("; its last output: {}", last.join(" | ")));
        }
        PluginError::new(&self.name, phase, ErrorKind::Trap, message)
    }

    fn finish_output(&self) {
        self.stdout.finish();
        self.stderr.finish();
    }

    /// The JSON Schema of the plugin's `spec:`.
    pub async fn spec_schema(&mut self) -> Result<String, PluginError> {
        self.guard(Phase::Init, |store, g| {
            Box::pin(async move { g.plugin.call_spec_schema(store).await.map(Ok) })
        })
        .await
    }

    /// Initialises the plugin with its `spec:` as JSON text.
    pub async fn init(&mut self, spec_json: String) -> Result<(), PluginError> {
        self.guard(Phase::Init, move |store, g| {
            Box::pin(async move { g.plugin.call_init(store, &spec_json).await })
        })
        .await
    }

    async fn close_plugin(&mut self) -> Result<(), PluginError> {
        let result = self
            .guard(Phase::Close, |store, g| {
                Box::pin(async move { g.plugin.call_close(store).await })
            })
            .await;
        self.finish_output();
        result
    }
}

fn trap_summary(trap: &wasmtime::Error) -> String {
    if let Some(code) = trap.downcast_ref::<wasmtime::Trap>() {
        return format!("wasm trap: {code}");
    }
    format!("{trap:#}")
}

fn humantime(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn selection(s: &TableSelection) -> wit::TableOptions {
    wit::TableOptions {
        tables: s.tables.clone(),
        skip_tables: s.skip_tables.clone(),
        skip_dependent_tables: s.skip_dependent_tables,
    }
}

fn not_a(plugin: &str, phase: Phase, what: &str) -> PluginError {
    PluginError::new(
        plugin,
        phase,
        ErrorKind::NotSupported,
        format!("it is not a {what} plugin"),
    )
}

#[async_trait::async_trait]
impl Source for WasmPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    async fn tables(&mut self, s: &TableSelection) -> Result<Vec<SchemaRef>, PluginError> {
        if !self.has_source() {
            return Err(not_a(&self.name, Phase::Tables, "source"));
        }
        let options = selection(s);
        let schemas = self
            .guard(Phase::Tables, move |store, g| {
                Box::pin(async move {
                    match &g.source {
                        Some(source) => source.call_tables(store, &options).await,
                        None => Ok(Ok(Vec::new())),
                    }
                })
            })
            .await?;
        schemas
            .into_iter()
            .map(|bytes| {
                imports::decode_schema(bytes).map_err(|e| {
                    PluginError::new(&self.name, Phase::Tables, ErrorKind::Internal, e)
                })
            })
            .collect()
    }

    async fn sync(
        &mut self,
        s: &TableSelection,
        deterministic_cq_id: bool,
        out: mpsc::Sender<SourceMessage>,
    ) -> Result<(), PluginError> {
        if !self.has_source() {
            return Err(not_a(&self.name, Phase::Sync, "source"));
        }
        let state = self.store.data_mut();
        state.sink = Some(out);
        state.migrated.clear();
        state.refused = None;
        let options = wit::SyncOptions {
            tables: selection(s),
            deterministic_cq_id,
        };
        let result = self
            .guard(Phase::Sync, move |store, g| {
                Box::pin(async move {
                    match &g.source {
                        Some(source) => source.call_sync(store, &options).await,
                        None => Ok(Ok(())),
                    }
                })
            })
            .await;
        // Dropping the sender tells the engine the source is done.
        self.store.data_mut().sink = None;
        result?;
        match self.store.data_mut().refused.take() {
            Some(refused) => Err(PluginError::new(
                &self.name,
                Phase::Sync,
                ErrorKind::Internal,
                refused,
            )),
            None => Ok(()),
        }
    }

    async fn close(&mut self) -> Result<(), PluginError> {
        self.close_plugin().await
    }
}

#[async_trait::async_trait]
impl Destination for WasmPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    async fn migrate_table(&mut self, schema: &SchemaRef, force: bool) -> Result<(), PluginError> {
        let bytes = imports::encode_schema(schema)
            .map_err(|e| PluginError::new(&self.name, Phase::Migrate, ErrorKind::Internal, e))?;
        self.guard(Phase::Migrate, move |store, g| {
            Box::pin(async move {
                match &g.destination {
                    Some(d) => d.call_migrate_table(store, &bytes, force).await,
                    None => Ok(Err(no_destination())),
                }
            })
        })
        .await
    }

    async fn insert(&mut self, batch: &RecordBatch) -> Result<(), PluginError> {
        let bytes = imports::encode_batch(batch)
            .map_err(|e| PluginError::new(&self.name, Phase::Write, ErrorKind::Internal, e))?;
        self.guard(Phase::Write, move |store, g| {
            Box::pin(async move {
                match &g.destination {
                    Some(d) => d.call_insert(store, &bytes).await,
                    None => Ok(Err(no_destination())),
                }
            })
        })
        .await
    }

    async fn delete_stale(
        &mut self,
        table: &str,
        source_name: &str,
        sync_time_us: i64,
    ) -> Result<(), PluginError> {
        let (table, source_name) = (table.to_string(), source_name.to_string());
        self.guard(Phase::Write, move |store, g| {
            Box::pin(async move {
                match &g.destination {
                    Some(d) => {
                        d.call_delete_stale(store, &table, &source_name, sync_time_us)
                            .await
                    }
                    None => Ok(Err(no_destination())),
                }
            })
        })
        .await
    }

    async fn flush(&mut self) -> Result<(), PluginError> {
        self.guard(Phase::Flush, |store, g| {
            Box::pin(async move {
                match &g.destination {
                    Some(d) => d.call_flush(store).await,
                    None => Ok(Err(no_destination())),
                }
            })
        })
        .await
    }

    async fn close(&mut self) -> Result<(), PluginError> {
        self.close_plugin().await
    }
}

fn no_destination() -> wit::Error {
    wit::Error {
        kind: wit::ErrorKind::NotSupported,
        message: "it is not a destination plugin".into(),
    }
}
