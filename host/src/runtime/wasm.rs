//! Plugins as WebAssembly components: one shared [`Engine`], components compiled once and cached
//! on disk, pre-instantiated once and instantiated per run in a store of their own (a trap
//! poisons the whole store). Every call runs under the plugin's grants: its memory cap, its
//! wall-clock budget, its preopened directories.

mod cache;
pub(crate) mod imports;
mod instance;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use wasmtime::component::{HasSelf, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};

pub use cache::sha256_hex;
pub use instance::WasmPlugin;

use self::instance::Guests;

use self::bindings::exports::quarry::plugin::{destination, plugin, source, transformer};
use self::bindings::quarry::plugin::types as wit;
use super::{ErrorKind, Phase, PluginError, PluginInfo, SourceMessage};
use crate::sandbox::{Grants, MemoryCap, OutboundHttp, PluginOutput};

mod bindings {
    wasmtime::component::bindgen!({
        world: "any-plugin",
        path: "../wit/plugin@0.1.0",
        imports: { default: async },
        exports: { default: async },
    });

    // The enums a plugin sends, read as the SDK's one definition of them (the guest's side of
    // these conversions is in `quarry_sdk::bindings`).
    use self::quarry::plugin::types as wit;

    impl From<wit::ErrorKind> for quarry_sdk::ErrorKind {
        fn from(kind: wit::ErrorKind) -> Self {
            match kind {
                wit::ErrorKind::InvalidSpec => quarry_sdk::ErrorKind::InvalidSpec,
                wit::ErrorKind::Unauthorized => quarry_sdk::ErrorKind::Unauthorized,
                wit::ErrorKind::Unavailable => quarry_sdk::ErrorKind::Unavailable,
                wit::ErrorKind::NotSupported => quarry_sdk::ErrorKind::NotSupported,
                wit::ErrorKind::Internal => quarry_sdk::ErrorKind::Internal,
            }
        }
    }

    impl From<wit::WriteMode> for quarry_sdk::WriteMode {
        fn from(mode: wit::WriteMode) -> Self {
            match mode {
                wit::WriteMode::Append => quarry_sdk::WriteMode::Append,
                wit::WriteMode::Overwrite => quarry_sdk::WriteMode::Overwrite,
                wit::WriteMode::OverwriteDeleteStale => quarry_sdk::WriteMode::OverwriteDeleteStale,
            }
        }
    }
}

/// The contract versions this host speaks, newest first.
pub const CONTRACT_VERSIONS: &[&str] = &["0.1.0"];

/// How often the epoch advances: the granularity of timeouts and of cooperative yielding.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The state of one plugin instance's store.
pub struct PluginState {
    wasi: wasmtime_wasi::WasiCtx,
    table: ResourceTable,
    http: wasmtime_wasi_http::WasiHttpCtx,
    /// Outbound HTTP: the plugin's network grants and its connection pool.
    outbound: OutboundHttp,
    /// The network grants, for name lookups (`sandbox::lookup`).
    network: Arc<[crate::sandbox::HostGrant]>,
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
    /// Bytes of `host.log` records this instance has written (they stop at a budget).
    logged: u64,
    /// Its WARN and ERROR records.
    log_counts: crate::telemetry::LogCounts,
}

impl wasmtime_wasi::WasiView for PluginState {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for PluginState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
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
    transformer: Option<transformer::GuestIndices>,
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
        // `QUARRY_WASM_PERFMAP=1`: name the components' compiled functions for `perf report`
        // (in /tmp/perf-PID.map).
        if std::env::var_os("QUARRY_WASM_PERFMAP").is_some_and(|v| v != "0") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        // Name lookups only for granted names, over wasmtime-wasi's any-name lookups.
        crate::sandbox::lookup::add_to_linker(&mut linker, |s: &mut PluginState| {
            let (grants, plugin, denials) =
                (s.network.clone(), s.plugin.clone(), s.outbound.denials());
            crate::sandbox::lookup::LookupView::new(grants, plugin, denials, s)
        })
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        // `wasi:http/outgoing-handler` and its types; requests go through `OutboundHttp`.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        // Its `handle` over theirs: it frees the request options the guest hands over.
        crate::sandbox::link_outgoing_handler(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        bindings::AnyPlugin::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)
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
        self.load_hashed(plugin, bytes, cache::sha256_hex(bytes))
    }

    /// [`Self::load`] for bytes whose sha256 was just computed from them (a resolved
    /// `Artifact`'s): a 10 MB component is not hashed twice on every start.
    pub fn load_hashed(
        &self,
        plugin: &str,
        bytes: &[u8],
        digest: String,
    ) -> Result<Arc<LoadedComponent>, PluginError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(load_error(
                plugin,
                "the file is not a WebAssembly component",
            ));
        }
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

    /// The names a loaded component imports and exports (for an artifact's config).
    pub fn interfaces(&self, loaded: &LoadedComponent) -> (Vec<String>, Vec<String>) {
        let ty = loaded.pre.component().component_type();
        let names = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>();
        (
            names(&mut ty.imports(&self.engine).map(|(n, _)| n.to_string())),
            names(&mut ty.exports(&self.engine).map(|(n, _)| n.to_string())),
        )
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
        // Components built before transformers were added to the contract do not export it.
        let transformer = exports
            .contains(&want("transformer"))
            .then(|| transformer::GuestIndices::new(&pre))
            .transpose()
            .map_err(indices_error)?;
        Ok(LoadedComponent {
            digest,
            compiled,
            pre,
            plugin: plugin_indices,
            source,
            destination,
            transformer,
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
        let outbound = OutboundHttp::new(name, &grants.network);
        let wasi = grants
            .wasi(stdout.clone(), stderr.clone(), name, outbound.denials())
            .map_err(|e| load_error(name, format!("cannot set up the sandbox: {e:#}")))?;
        let state = PluginState {
            wasi,
            table: {
                let mut table = ResourceTable::new();
                table.set_max_capacity(crate::sandbox::MAX_HANDLES);
                table
            },
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            outbound,
            network: grants.network.clone().into(),
            memory: MemoryCap::new(grants.memory),
            plugin: name.into(),
            sink: None,
            migrated: Default::default(),
            refused: None,
            cursors: Default::default(),
            logged: 0,
            log_counts: Default::default(),
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
                loaded.transformer.clone(),
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
                        transformer: indices
                            .3
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
            // The contract's kinds cannot name a transformer: one reports none.
            transformer: info.kinds.is_empty() && plugin.has_transformer(),
            needs_network: info.needs.network,
            needs_files: info.needs.files,
            needs_env: info.needs.env,
            write_modes: info.write_modes.into_iter().map(Into::into).collect(),
            batch_rows: info.batch_rows,
            batch_bytes: info.batch_bytes,
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
