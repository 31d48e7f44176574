//! From a loaded spec to a finished sync: resolve every plugin, start it in its sandbox with its
//! grants, validate its `spec:` against the schema it declares, initialise it, then run each
//! source into its destinations and close everything. Configuration mistakes surface here,
//! before any row moves, with the file, line and column they came from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use quarry_registry::{RegistryKind, Resolved, Resolver};

use crate::runtime::grpc::GrpcPlugin;
use crate::runtime::wasm::WasmRuntime;
use crate::runtime::{AnyPlugin, ErrorKind, PluginError, TableSelection};
use crate::sandbox::Grants;
use crate::spec::{
    DestinationSpec, Location, MigrateMode, Permissions, PluginSpec, Registry, SourceSpec,
    SpecError, SyncSpec,
};
use crate::sync::batcher::Limits;
use crate::sync::{self, DestinationSlot, SourceRun, SourceSummary};

/// Why a sync could not run (as opposed to a sync that ran and recorded errors).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration is wrong: exit code 2.
    #[error("{0}")]
    Config(#[from] SpecError),
    /// A plugin could not be loaded or failed before the sync started: exit code 3.
    #[error("{0}")]
    Plugin(#[from] PluginError),
}

/// What a sync runs with.
pub struct Environment {
    pub runtime: WasmRuntime,
    pub resolver: Resolver,
    /// Where relative paths in specs start.
    pub cwd: PathBuf,
}

/// One plugin reference from a spec document.
struct PluginRef<'a> {
    name: &'a str,
    registry: Registry,
    path: &'a str,
    version: Option<&'a str>,
    permissions: &'a Permissions,
    spec: &'a PluginSpec,
    at: &'a Location,
}

impl<'a> From<&'a SourceSpec> for PluginRef<'a> {
    fn from(s: &'a SourceSpec) -> Self {
        PluginRef {
            name: &s.name,
            registry: s.registry,
            path: &s.path,
            version: s.version.as_deref(),
            permissions: &s.permissions,
            spec: &s.spec,
            at: &s.at,
        }
    }
}

impl<'a> From<&'a DestinationSpec> for PluginRef<'a> {
    fn from(s: &'a DestinationSpec) -> Self {
        PluginRef {
            name: &s.name,
            registry: s.registry,
            path: &s.path,
            version: s.version.as_deref(),
            permissions: &s.permissions,
            spec: &s.spec,
            at: &s.at,
        }
    }
}

fn registry_kind(registry: Registry) -> RegistryKind {
    match registry {
        Registry::Quarry => RegistryKind::Quarry,
        Registry::Local => RegistryKind::Local,
        Registry::Grpc => RegistryKind::Grpc,
        Registry::Oci => RegistryKind::Oci,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Source,
    Destination,
}

impl Environment {
    /// Resolves, starts, validates and initialises one plugin.
    async fn start(
        &self,
        plugin: PluginRef<'_>,
        role: Role,
    ) -> Result<Box<dyn AnyPlugin>, RunError> {
        let at = |message: String| SpecError::at(plugin.at.clone(), message);
        let resolved = self
            .resolver
            .resolve(registry_kind(plugin.registry), plugin.path, &self.cwd)
            .map_err(|e| at(format!("plugin `{}`: {e}", plugin.name)))?;
        let (mut instance, origin): (Box<dyn AnyPlugin>, String) = match resolved {
            Resolved::Component(artifact) => {
                // A file that is not a component for this contract is the spec's mistake: say
                // where.
                let loaded = self
                    .runtime
                    .load(plugin.name, &artifact.bytes)
                    .map_err(|e| {
                        at(format!(
                            "plugin `{}` ({}): {}",
                            plugin.name, plugin.path, e.message
                        ))
                    })?;
                let grants = Grants::resolve(plugin.permissions, &self.cwd)
                    .map_err(|e| at(format!("plugin `{}`: {e}", plugin.name)))?;
                let instance = self.runtime.start(&loaded, plugin.name, &grants).await?;
                (Box::new(instance), format!("digest {}", loaded.digest))
            }
            Resolved::Executable(path) => {
                self.warn_unsandboxed(&plugin);
                let instance = GrpcPlugin::spawn(plugin.name, &path).await?;
                (Box::new(instance), format!("executable {}", path.display()))
            }
            Resolved::Address(address) => {
                self.warn_unsandboxed(&plugin);
                let instance = GrpcPlugin::dial(plugin.name, &address).await?;
                (Box::new(instance), format!("address {address}"))
            }
        };
        let info = instance.info().clone();
        let (wanted, has) = match role {
            Role::Source => ("source", info.source),
            Role::Destination => ("destination", info.destination),
        };
        if !has {
            let is = if info.source { "source" } else { "destination" };
            return Err(at(format!(
                "`{}` is a {is} plugin, not a {wanted} plugin",
                plugin.path
            ))
            .with_help(format!("declare it as `kind: {is}`"))
            .into());
        }
        if let Some(version) = plugin.version
            && version.trim_start_matches('v') != info.version
        {
            return Err(at(format!(
                "plugin `{}` is version {}, but the spec asks for {version}",
                plugin.path, info.version
            ))
            .with_help("change `version:` or remove it to use the plugin that is installed")
            .into());
        }
        if let Some(schema) = instance.spec_schema().await? {
            plugin.spec.validate(plugin.name, &schema)?;
        }
        instance
            .init(plugin.spec.value.to_string())
            .await
            .map_err(|e| match e.kind {
                ErrorKind::InvalidSpec => {
                    RunError::Config(at(format!("plugin `{}` spec: {}", plugin.name, e.message)))
                }
                _ => RunError::Plugin(e),
            })?;
        tracing::debug!(plugin = plugin.name, version = %info.version, %origin, "plugin ready");
        Ok(instance)
    }

    fn warn_unsandboxed(&self, plugin: &PluginRef<'_>) {
        if *plugin.permissions != Permissions::default() {
            tracing::warn!(
                plugin = plugin.name,
                "`permissions` apply only to wasm plugins; `{}` runs natively with your own rights",
                plugin.path
            );
        }
    }
}

/// Runs every source of `spec` into its destinations. Returns one summary per source; errors
/// that happened while rows moved are in the summaries, not in the `Err`.
pub async fn execute(spec: &SyncSpec, env: &Environment) -> Result<Vec<SourceSummary>, RunError> {
    let mut slots: HashMap<String, DestinationSlot> = HashMap::new();
    for d in &spec.destinations {
        let plugin = env.start(d.into(), Role::Destination).await?;
        let modes = &plugin.info().write_modes;
        if !modes.contains(&d.write_mode) {
            let supported: Vec<String> = modes.iter().map(|m| format!("`{m}`")).collect();
            let first = modes.first().map(|m| m.to_string()).unwrap_or_default();
            return Err(SpecError::at(
                d.at.clone(),
                format!(
                    "destination `{}` asks for write_mode `{}`, but `{}` supports only {}",
                    d.name,
                    d.write_mode,
                    d.path,
                    supported.join(", ")
                ),
            )
            .with_help(format!(
                "set `write_mode: {first}` in this destination's spec"
            ))
            .into());
        }
        let batching = batching(d, plugin.info());
        slots.insert(
            d.name.clone(),
            DestinationSlot {
                name: d.name.clone(),
                plugin,
                write_mode: d.write_mode,
                migrate_mode: d.migrate_mode,
                pk_mode: d.pk_mode,
                batching,
            },
        );
    }
    let mut sources = Vec::new();
    for s in &spec.sources {
        let mut plugin = env.start(s.into(), Role::Source).await?;
        // The table selection is checked before any source runs: a pattern that matches nothing
        // is a mistake in this spec, not a failure halfway through a sync.
        let schemas = plugin
            .tables(&selection(s))
            .await
            .map_err(|e| match e.kind {
                ErrorKind::InvalidSpec => RunError::Config(
                    SpecError::at(
                        selection_error_at(s, &e.message),
                        format!("source `{}`: {}", s.name, e.message),
                    )
                    .with_help("fix `tables` or `skip_tables` in this source's spec"),
                ),
                _ => RunError::Plugin(e),
            })?;
        sources.push((s, plugin, schemas));
    }
    check_migrations(spec, &sources, &mut slots).await?;
    for (s, _, _) in &sources {
        state_destination(s)?;
    }

    let sync_time_us = sync::now_us();
    let mut summaries = Vec::new();
    for (spec, mut plugin, _) in sources {
        let state = match (&spec.backend_options, state_destination(spec)?) {
            (Some(options), Some(destination)) => {
                let slot = slots
                    .get_mut(destination)
                    .expect("checked by state_destination");
                let cursors =
                    sync::state::load(slot.plugin.as_mut(), &slot.name, &options.table_name)
                        .await?;
                tracing::debug!(source = %spec.name, destination, table = %options.table_name, cursors = cursors.len(), "state loaded");
                Some(sync::StateBackend {
                    destination: destination.to_string(),
                    table: options.table_name.clone(),
                    cursors,
                    interval: state_interval(),
                })
            }
            _ => None,
        };
        let run = SourceRun {
            name: &spec.name,
            plugin: plugin.as_mut(),
            selection: selection(spec),
            deterministic_cq_id: spec.deterministic_cq_id,
            state,
        };
        let destinations = spec
            .destinations
            .iter()
            .filter_map(|name| slots.remove(name))
            .collect();
        let (returned, mut summary) = sync::run(run, destinations, sync_time_us).await;
        for slot in returned {
            slots.insert(slot.name.clone(), slot);
        }
        if let Err(e) = plugin.close().await {
            summary.plugin_errors.push(e);
        }
        tracing::info!(
            source = %spec.name,
            rows = summary.rows(),
            errors = summary.error_count(),
            elapsed_ms = summary.duration.as_millis() as u64,
            "source finished"
        );
        summaries.push(summary);
    }
    for (name, mut slot) in slots {
        if let Err(e) = slot.plugin.close().await {
            match summaries
                .iter_mut()
                .find(|s| s.destinations.iter().any(|d| d.name == name))
            {
                Some(summary) => summary.plugin_errors.push(e),
                None => tracing::warn!(destination = %name, "closing failed: {e}"),
            }
        }
    }
    Ok(summaries)
}

/// What `quarry state` does with a source's cursors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateAction {
    Show,
    Reset,
}

/// Starts only the state backend of source `source` and shows or deletes its cursors. Returns
/// the cursors it held, sorted by key.
pub async fn state(
    spec: &SyncSpec,
    env: &Environment,
    source: &str,
    action: StateAction,
) -> Result<Vec<(String, String)>, RunError> {
    let Some(s) = spec.sources.iter().find(|s| s.name == source) else {
        let names: Vec<&str> = spec.sources.iter().map(|s| s.name.as_str()).collect();
        return Err(SpecError::new(format!(
            "no source named `{source}` in the spec (its sources: {})",
            names.join(", ")
        ))
        .into());
    };
    let (Some(options), Some(backend)) = (&s.backend_options, state_destination(s)?) else {
        return Err(SpecError::at(
            s.at.clone(),
            format!("source `{source}` keeps no state: it has no `backend_options`"),
        )
        .with_help("add `backend_options: { table_name: cq_state, connection: \"@@plugins.DESTINATION.connection\" }`")
        .into());
    };
    let d = spec
        .destinations
        .iter()
        .find(|d| d.name == backend)
        .ok_or_else(|| SpecError::at(s.at.clone(), format!("no destination named `{backend}`")))?;
    let mut plugin = env.start(d.into(), Role::Destination).await?;
    let result = async {
        let cursors = sync::state::load(plugin.as_mut(), backend, &options.table_name).await?;
        if action == StateAction::Reset {
            sync::state::reset(plugin.as_mut(), &options.table_name).await?;
        }
        Ok::<_, PluginError>(cursors)
    }
    .await;
    let closed = plugin.close().await;
    let mut cursors: Vec<(String, String)> = result?.into_iter().collect();
    closed?;
    cursors.sort();
    Ok(cursors)
}

/// The destination a source's `backend_options` keep its cursors in: `connection` must be
/// `@@plugins.NAME.connection` (CloudQuery's spelling) and NAME one of the source's destinations.
pub fn state_destination(source: &SourceSpec) -> Result<Option<&str>, SpecError> {
    let Some(options) = &source.backend_options else {
        return Ok(None);
    };
    let name = options
        .connection
        .strip_prefix("@@plugins.")
        .and_then(|rest| rest.strip_suffix(".connection"))
        .filter(|name| !name.is_empty());
    let Some(name) = name else {
        return Err(SpecError::at(
            source.at.clone(),
            format!(
                "source `{}`: backend_options.connection is `{}`, but Quarry keeps state only in a destination of the sync",
                source.name, options.connection
            ),
        )
        .with_help("write `connection: \"@@plugins.DESTINATION.connection\"` with one of this source's destinations"));
    };
    if !source.destinations.iter().any(|d| d == name) {
        return Err(SpecError::at(
            source.at.clone(),
            format!(
                "source `{}`: backend_options.connection names destination `{name}`, which is not one of its destinations ({})",
                source.name,
                source.destinations.join(", ")
            ),
        )
        .with_help(format!("add `{name}` to this source's `destinations`, or name one of them")));
    }
    if options.table_name.trim().is_empty() {
        return Err(SpecError::at(
            source.at.clone(),
            format!(
                "source `{}`: backend_options.table_name is empty",
                source.name
            ),
        )
        .with_help("name the table the cursors are kept in, e.g. `table_name: cq_state`"));
    }
    Ok(Some(name))
}

/// How often cursors are saved while a source runs: `QUARRY_STATE_INTERVAL` seconds (for
/// operators who want more frequent saves of long runs), else every 10 seconds.
fn state_interval() -> std::time::Duration {
    let seconds = std::env::var("QUARRY_STATE_INTERVAL")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(10.0);
    std::time::Duration::from_secs_f64(seconds)
}

fn selection(spec: &SourceSpec) -> TableSelection {
    TableSelection {
        tables: spec.tables.clone(),
        skip_tables: spec.skip_tables.clone(),
        skip_dependent_tables: spec.skip_dependent_tables,
    }
}

/// The directory compiled components are cached in: `QUARRY_CACHE_DIR`, else the user's cache
/// directory (`$XDG_CACHE_HOME/quarry` or `~/.cache/quarry`).
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("QUARRY_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("quarry").join("components"))
}

/// Where a table-selection error points: the pattern it quotes, or else `tables`.
fn selection_error_at(source: &SourceSpec, message: &str) -> Location {
    source
        .patterns_at
        .iter()
        .find(|(pattern, _)| message.contains(&format!("`{pattern}`")))
        .map_or_else(|| source.tables_at.clone(), |(_, at)| at.clone())
}

/// A destination's batch limits: the user's settings, else what the plugin says it writes best,
/// else the engine's defaults.
fn batching(d: &DestinationSpec, info: &crate::runtime::PluginInfo) -> Limits {
    let preferred = |n: u64| (n > 0).then_some(n as usize);
    Limits {
        rows: d
            .batch_size
            .map(|n| n as usize)
            .or(preferred(info.batch_rows))
            .unwrap_or(Limits::DEFAULT.rows),
        bytes: d
            .batch_size_bytes
            .map(|n| n as usize)
            .or(preferred(info.batch_bytes))
            .unwrap_or(Limits::DEFAULT.bytes),
        timeout: d.batch_timeout.unwrap_or(Limits::DEFAULT.timeout),
    }
}

/// Refuses, before any source runs, a sync whose tables would need a breaking migration in a
/// `migrate_mode: safe` destination: every such table and change is listed at once. The engine
/// checks again when each table's schema arrives, for sources whose schemas change as they run.
async fn check_migrations(
    spec: &SyncSpec,
    sources: &[(
        &SourceSpec,
        Box<dyn AnyPlugin>,
        Vec<arrow_schema::SchemaRef>,
    )],
    slots: &mut HashMap<String, DestinationSlot>,
) -> Result<(), RunError> {
    for d in &spec.destinations {
        let Some(slot) = slots.get_mut(&d.name) else {
            continue;
        };
        if slot.migrate_mode == MigrateMode::Forced {
            continue;
        }
        let mut refused = Vec::new();
        let mut help = None;
        for (_, _, schemas) in sources
            .iter()
            .filter(|(s, ..)| s.destinations.contains(&d.name))
        {
            for schema in schemas {
                let wanted = sync::destination_schema(schema, slot.write_mode, slot.pk_mode)
                    .map_err(|e| {
                        SpecError::at(d.at.clone(), format!("destination `{}`: {e}", d.name))
                    })?;
                match sync::migrate::plan(
                    slot.plugin.as_mut(),
                    &slot.name,
                    slot.migrate_mode,
                    &wanted,
                )
                .await
                {
                    Ok(_) => {}
                    Err(e) if e.kind == ErrorKind::BreakingMigration => {
                        help = help.or(e.help.clone());
                        refused.push(e.message);
                    }
                    Err(e) => return Err(RunError::Plugin(e)),
                }
            }
        }
        if !refused.is_empty() {
            let mut error = SpecError::at(
                d.at.clone(),
                format!(
                    "destination `{}` (migrate_mode: safe): {}",
                    d.name,
                    refused.join("\n")
                ),
            );
            if let Some(help) = help {
                error = error.with_help(help);
            }
            return Err(error.into());
        }
    }
    Ok(())
}
