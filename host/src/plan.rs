//! From a loaded spec to a [`SyncPlan`], by validation alone: every plugin resolved, opened in
//! its sandbox with its grants and initialised with its `spec:` (checked against the schema it
//! declares), each source's table selection resolved, the state backend found, each
//! destination's batching and, per destination and table, the [`MigrationPlan`]. Nothing is
//! written anywhere. Configuration mistakes surface here, before any row moves, with the file,
//! line and column they came from. `quarry validate` prints the plan, `quarry migrate` applies
//! its migrations, `quarry sync` hands it to the engine (`crate::sync::execute`).

pub mod distribution;
mod migration;
mod open;
mod state;

use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow_schema::SchemaRef;
use quarry_registry::Resolver;

pub use migration::{MigrationPlan, Refusal, TableMigration, plan_table};
pub(crate) use open::declared_grants;
pub use open::{OpenError, Opened, Origin, PluginRef, Role, open, registry_of};
pub use state::{StateAction, state, state_destination};

use crate::runtime::wasm::WasmRuntime;
use crate::runtime::{AnyPlugin, ErrorKind, PluginError, TableSelection};
use crate::spec::{
    DestinationSpec, Location, PluginSpec, SourceSpec, SpecError, SyncSpec, TransformerSpec,
};
use crate::sync::batcher::Limits;

/// Why a plan could not be made or a sync could not run (as opposed to a sync that ran and
/// recorded errors).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration is wrong: exit code 2.
    #[error("{0}")]
    Config(#[from] SpecError),
    /// A plugin could not be loaded or failed before the sync started.
    #[error("{0}")]
    Plugin(#[from] PluginError),
}

/// What plans and syncs run with.
pub struct Environment {
    pub runtime: WasmRuntime,
    pub resolver: Resolver,
    /// Where relative paths in specs start.
    pub cwd: PathBuf,
    /// The compile cache: no grant may reach it (its entries run as native code).
    pub cache_dir: Option<PathBuf>,
    /// Plugins from OCI registries: the store (under the cache), the lock, the registries.
    pub distribution: distribution::Distribution,
    /// `--grant-declared`: a component also gets the network hosts and environment variables
    /// its info declares it needs.
    pub grant_declared: bool,
}

impl Environment {
    /// The environment of this process: the component cache, the plugin search path beside the
    /// executable, the working directory.
    pub fn from_process() -> anyhow::Result<Environment> {
        Environment::new(
            cache_dir(),
            std::env::current_dir()?,
            Resolver::from_env(std::env::current_exe().ok().as_deref()),
        )
    }

    /// An environment with its own compile cache (`None`: none), working directory and plugin
    /// search path.
    pub fn new(
        cache_dir: Option<PathBuf>,
        cwd: PathBuf,
        resolver: Resolver,
    ) -> anyhow::Result<Environment> {
        Ok(Environment {
            runtime: WasmRuntime::new(cache_dir.clone())?,
            resolver,
            cwd,
            distribution: distribution::Distribution::new(cache_dir.as_deref()),
            cache_dir,
            grant_declared: false,
        })
    }
}

/// Everything a sync will do, validated; its plugins are open and initialised.
pub struct SyncPlan<'s> {
    pub sources: Vec<SourcePlan<'s>>,
    pub destinations: Vec<DestinationPlan<'s>>,
}

pub struct SourcePlan<'s> {
    pub spec: &'s SourceSpec,
    pub plugin: Box<dyn AnyPlugin>,
    pub origin: Origin,
    pub selection: TableSelection,
    /// The selected tables, as the source declares them.
    pub tables: Vec<SchemaRef>,
    /// Indices into [`SyncPlan::destinations`].
    pub destinations: Vec<usize>,
    pub state: Option<StatePlan>,
    /// With `workers`, the source's other instances, open and initialised: the sync runs one
    /// lane per instance, each a share of the tables ([`lanes`]).
    pub extra: Vec<Box<dyn AnyPlugin>>,
}

impl SourcePlan<'_> {
    /// How many lanes the source's tables are synced in: `workers`, but no more than its
    /// top-level tables (a table and its children are synced by one instance).
    pub fn lanes(&self) -> usize {
        lanes(self.spec, &self.tables)
    }
}

/// `workers` of source `s`, no more than its `tables` have top-level tables, and at least 1.
fn lanes(s: &SourceSpec, tables: &[SchemaRef]) -> usize {
    let workers = s.workers.unwrap_or(1) as usize;
    workers.min(crate::sync::top_level(tables).len()).max(1)
}

/// Where a source keeps its cursors: a table of a destination of the specs (one of the source's,
/// or one it writes only its state to).
#[derive(Debug, Clone)]
pub struct StatePlan {
    /// An index into [`SyncPlan::destinations`].
    pub destination: usize,
    pub table: String,
    /// How often, at most, cursors are saved while the source runs (always at its end).
    pub interval: Duration,
}

pub struct DestinationPlan<'s> {
    pub spec: &'s DestinationSpec,
    pub plugin: Box<dyn AnyPlugin>,
    pub origin: Origin,
    pub batching: Limits,
    /// Per table its sources bring, in the order they come: the schema the last transformer
    /// gives, under the name it gives.
    pub migrations: Vec<TableMigration>,
    /// The transformers its rows go through, in order; instances of its own.
    pub transformers: Vec<TransformerPlan<'s>>,
    /// Its other instances, one per extra lane of the source with the most (`workers`), each
    /// with transformers of its own; they share `migrations`.
    pub extra: Vec<DestinationInstance<'s>>,
}

/// A further instance of a destination, open and initialised, for a lane of a source with
/// `workers`.
pub struct DestinationInstance<'s> {
    pub plugin: Box<dyn AnyPlugin>,
    pub transformers: Vec<TransformerPlan<'s>>,
}

/// One transformer of one destination, open and initialised.
pub struct TransformerPlan<'s> {
    pub spec: &'s TransformerSpec,
    pub plugin: Box<dyn AnyPlugin>,
}

impl DestinationPlan<'_> {
    /// `schema` (what the engine sends this destination for a table) as the destination's
    /// transformers leave it, each given the one before's answer.
    pub async fn transform_schema(&mut self, schema: SchemaRef) -> Result<SchemaRef, PluginError> {
        transform_schema(
            self.transformers.iter_mut().map(|t| t.plugin.as_mut()),
            schema,
        )
        .await
    }
}

/// `schema` through `chain`, each transformer given the one before's answer. A transformer's
/// error names the table it was given.
pub async fn transform_schema<'a>(
    chain: impl Iterator<Item = &'a mut (dyn AnyPlugin + 'static)>,
    schema: SchemaRef,
) -> Result<SchemaRef, PluginError> {
    let mut schema = schema;
    for transformer in chain {
        let table = quarry_sdk::table_name(&schema).to_string();
        schema = transformer
            .transform_schema(&schema)
            .await
            .map_err(|e| e.for_table(&table))?;
    }
    Ok(schema)
}

impl SyncPlan<'_> {
    /// The migrations `migrate_mode: safe` refuses, as one error at the first such destination
    /// listing each table and change.
    pub fn refusals(&self) -> Result<(), SpecError> {
        for d in &self.destinations {
            let refused: Vec<Refusal> = d
                .migrations
                .iter()
                .filter_map(|m| match &m.plan {
                    MigrationPlan::Refused(changes) => Some(Refusal {
                        destination: d.spec.name.clone(),
                        table: m.table.clone(),
                        changes: changes.clone(),
                    }),
                    _ => None,
                })
                .collect();
            if let Some(first) = refused.first() {
                let messages: Vec<String> = refused.iter().map(|r| r.to_string()).collect();
                return Err(SpecError::at(
                    d.spec.at.clone(),
                    format!(
                        "destination `{}` (migrate_mode: safe): {}",
                        d.spec.name,
                        messages.join("\n")
                    ),
                )
                .with_help(first.help()));
            }
        }
        Ok(())
    }

    /// Under `--no-migrate`, the first table that needs any migration (refused or not), as an
    /// error naming it.
    pub fn no_migrate_needed(&self) -> Result<(), PluginError> {
        for d in &self.destinations {
            if let Some(m) = d.migrations.iter().find(|m| !m.plan.up_to_date()) {
                return Err(crate::sync::no_migrate_error(
                    &d.spec.name,
                    &m.table,
                    &m.plan,
                ));
            }
        }
        Ok(())
    }

    /// Closes every plugin of the plan; the errors of those that failed to close.
    pub async fn close(self) -> Vec<PluginError> {
        let plugins = self
            .sources
            .into_iter()
            .flat_map(|s| std::iter::once(s.plugin).chain(s.extra))
            .chain(self.destinations.into_iter().flat_map(|d| {
                let extra = d.extra.into_iter().flat_map(|e| {
                    std::iter::once(e.plugin).chain(e.transformers.into_iter().map(|t| t.plugin))
                });
                std::iter::once(d.plugin)
                    .chain(d.transformers.into_iter().map(|t| t.plugin))
                    .chain(extra)
            }));
        let mut errors = Vec::new();
        for mut plugin in plugins {
            if let Err(e) = plugin.close().await {
                errors.push(e);
            }
        }
        errors
    }
}

/// Makes the plan of `spec`: opens and initialises every plugin, and asks each destination
/// what its tables need. Changes nothing in any destination.
pub async fn build<'s>(spec: &'s SyncSpec, env: &Environment) -> Result<SyncPlan<'s>, RunError> {
    let mut plan = SyncPlan {
        sources: Vec::new(),
        destinations: Vec::new(),
    };
    let filled = fill(&mut plan, spec, env).await;
    env.resolver.forget_read();
    match filled {
        Ok(()) => Ok(plan),
        Err(e) => {
            // The plugins opened so far are closed: a dialed plugin hears `Close`, a spawned one
            // stops cleanly. (The one that failed is dropped, which stops a process too.)
            for failed in plan.close().await {
                tracing::debug!("closing after a failed plan: {failed}");
            }
            Err(e)
        }
    }
}

async fn fill<'s>(
    plan: &mut SyncPlan<'s>,
    spec: &'s SyncSpec,
    env: &Environment,
) -> Result<(), RunError> {
    check_shared_state(spec)?;
    for d in &spec.destinations {
        plan.destinations.push(plan_destination(env, d).await?);
        // Each transformer joins the plan as it opens, so a failure closes those before it.
        for t in spec
            .transformers
            .iter()
            .filter(|t| d.transformers.contains(&t.name))
        {
            let opened = open_transformer(env, t).await?;
            if let Some(destination) = plan.destinations.last_mut() {
                destination.transformers.push(opened);
            }
        }
        log_transformer_order(d, &spec.transformers);
    }
    for s in &spec.sources {
        plan.sources
            .push(plan_source(env, s, &spec.destinations).await?);
    }
    plan_migrations(plan).await?;
    open_extra_destinations(plan, spec, env).await
}

/// Opens, for every destination, one more instance per extra lane of the source with the most
/// lanes that writes to it or keeps its state in it. An instance that cannot start (a database
/// file that takes one writer) is an error naming the source's `workers`.
async fn open_extra_destinations<'s>(
    plan: &mut SyncPlan<'s>,
    spec: &'s SyncSpec,
    env: &Environment,
) -> Result<(), RunError> {
    for (i, d) in spec.destinations.iter().enumerate() {
        let widest = plan
            .sources
            .iter()
            .filter(|s| {
                s.destinations.contains(&i) || s.state.as_ref().is_some_and(|p| p.destination == i)
            })
            .max_by_key(|s| s.lanes());
        let Some(source) = widest.filter(|s| s.lanes() > 1) else {
            continue;
        };
        let (source, lanes) = (source.spec, source.lanes());
        if let Some((field, file)) = one_file(d, plan.destinations[i].plugin.info(), &env.cwd) {
            return Err(SpecError::at(
                source.at.clone(),
                format!(
                    "source `{}` syncs with `workers: {}`, which opens destination `{}` {lanes} times, but it writes one file (`{field}: {file}`): its instances would write the file at once",
                    source.name,
                    source.workers.unwrap_or(1),
                    d.name
                ),
            )
            .with_help(format!(
                "remove `workers` from source `{}`, or write its rows to a destination that takes several writers (PostgreSQL, MySQL, files under a `{{{{TABLE}}}}` path)",
                source.name
            ))
            .into());
        }
        for _ in 1..lanes {
            let instance = open_instance(env, spec, d)
                .await
                .map_err(|e| another_instance_failed(e, d, source, lanes))?;
            plan.destinations[i].extra.push(instance);
        }
    }
    Ok(())
}

/// The path field of destination `d` that names one file, if any: a field its plugin says holds
/// a path, set to a path without a `{{...}}` placeholder that is no directory. Instances of
/// such a destination cannot write at once (a DuckDB or SQLite database file).
fn one_file(
    d: &DestinationSpec,
    info: &crate::runtime::PluginInfo,
    cwd: &Path,
) -> Option<(String, String)> {
    path_fields(d, info).find(|(_, value)| {
        let path = value.strip_prefix("file:").unwrap_or(value);
        let path = path.split('?').next().unwrap_or(path);
        !path.is_empty() && !path.contains("{{") && !cwd.join(path).is_dir()
    })
}

/// The fields of `d`'s spec that its plugin says hold paths, with their values.
fn path_fields<'a>(
    d: &'a DestinationSpec,
    info: &'a crate::runtime::PluginInfo,
) -> impl Iterator<Item = (String, String)> + 'a {
    info.needs_files.iter().filter_map(|field| {
        let value = d.spec.value.get(field)?.as_str()?.trim();
        Some((field.clone(), value.to_string()))
    })
}

/// Opens and initialises one more instance of destination `d`, with its transformers.
async fn open_instance<'s>(
    env: &Environment,
    spec: &'s SyncSpec,
    d: &'s DestinationSpec,
) -> Result<DestinationInstance<'s>, RunError> {
    let plugin = env.start(d.into(), Role::Destination).await?;
    let mut instance = DestinationInstance {
        plugin,
        transformers: Vec::new(),
    };
    for t in spec
        .transformers
        .iter()
        .filter(|t| d.transformers.contains(&t.name))
    {
        instance.transformers.push(open_transformer(env, t).await?);
    }
    Ok(instance)
}

/// The error of a destination's further instance that could not start, naming the `workers`
/// of the source that asked for it.
fn another_instance_failed(
    e: RunError,
    d: &DestinationSpec,
    source: &SourceSpec,
    lanes: usize,
) -> RunError {
    let why = format!(
        "source `{}` syncs with `workers: {}`, which opens destination `{}` {lanes} times, and another instance of it could not start",
        source.name,
        source.workers.unwrap_or(1),
        d.name
    );
    let help = format!(
        "a destination that takes one writer at a time cannot serve more than one worker: remove `workers` from source `{}`",
        source.name
    );
    match e {
        RunError::Plugin(mut e) => {
            e.message = format!("{why}: {}", e.message);
            e.help = Some(help);
            RunError::Plugin(e)
        }
        RunError::Config(e) => RunError::Config(e),
    }
}

/// Cursors are keyed by what each source names them (usually a table), not by source: two
/// sources keeping state in one table of one destination would read and overwrite each other's.
fn check_shared_state(spec: &SyncSpec) -> Result<(), RunError> {
    let mut seen: std::collections::HashMap<(&str, String), &str> = Default::default();
    for s in &spec.sources {
        if let (Some(options), Some(destination)) = (
            &s.backend_options,
            state_destination(s, &spec.destinations)?,
        ) && let Some(other) = seen.insert(
            (destination, options.table_name.trim().to_lowercase()),
            &s.name,
        ) {
            return Err(SpecError::at(
                s.at.clone(),
                format!(
                    "sources `{other}` and `{}` both keep their state in table `{}` of destination `{destination}`: their cursors would overwrite each other",
                    s.name, options.table_name
                ),
            )
            .with_help(
                "give each source its own `backend_options.table_name` (a new table starts with no cursors: the next sync of that source is a full one)",
            )
            .into());
        }
    }
    Ok(())
}

async fn plan_destination<'s>(
    env: &Environment,
    d: &'s DestinationSpec,
) -> Result<DestinationPlan<'s>, RunError> {
    let Opened { mut plugin, origin } = env.open(d.into(), Role::Destination).await?;
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
    env.initialise(d.into(), plugin.as_mut()).await?;
    let batching = batching(d, plugin.info());
    Ok(DestinationPlan {
        spec: d,
        plugin,
        origin,
        batching,
        migrations: Vec::new(),
        transformers: Vec::new(),
        extra: Vec::new(),
    })
}

/// Opens and initialises an instance of transformer `t` (each destination has its own).
async fn open_transformer<'s>(
    env: &Environment,
    t: &'s TransformerSpec,
) -> Result<TransformerPlan<'s>, RunError> {
    let plugin = env.start(t.into(), Role::Transformer).await?;
    Ok(TransformerPlan { spec: t, plugin })
}

/// A destination's transformers run in the order their documents were read (CloudQuery's
/// `sync` order), each once: said when its `transformers:` list differs.
fn log_transformer_order(d: &DestinationSpec, transformers: &[TransformerSpec]) {
    let order: Vec<&str> = transformers
        .iter()
        .filter(|t| d.transformers.contains(&t.name))
        .map(|t| t.name.as_str())
        .collect();
    if order.len() > 1
        && !order
            .iter()
            .copied()
            .eq(d.transformers.iter().map(String::as_str))
    {
        tracing::info!(
            destination = %d.name,
            "transformers run in the order their documents were read, as CloudQuery's sync runs them: {}",
            order.join(" → ")
        );
    }
}

async fn plan_source<'s>(
    env: &Environment,
    s: &'s SourceSpec,
    destinations: &[DestinationSpec],
) -> Result<SourcePlan<'s>, RunError> {
    let Opened { mut plugin, origin } = env.open(s.into(), Role::Source).await?;
    let spec = with_concurrency(s, plugin.as_mut()).await?;
    let reference = PluginRef {
        spec: spec.as_ref().unwrap_or(&s.spec),
        ..s.into()
    };
    env.initialise(reference, plugin.as_mut()).await?;
    let selection = selection(s);
    // The table selection is checked before any source runs: a pattern that matches nothing is
    // a mistake in this spec, not a failure halfway through a sync.
    let tables = match plugin.tables(&selection).await {
        Ok(tables) => tables,
        Err(e) if e.kind == ErrorKind::InvalidSpec => {
            let at = selection_error_at(s, plugin.as_mut()).await;
            return Err(
                SpecError::at(at, format!("source `{}`: {}", s.name, e.message))
                    .with_help("fix `tables` or `skip_tables` in this source's spec")
                    .into(),
            );
        }
        Err(e) => return Err(e.into()),
    };
    let index = |name: &str| destinations.iter().position(|d| d.name == name);
    let state = match (&s.backend_options, state_destination(s, destinations)?) {
        (Some(options), Some(name)) => Some(StatePlan {
            destination: index(name).expect("checked by state_destination"),
            table: options.table_name.clone(),
            interval: state::state_interval(),
        }),
        _ => None,
    };
    // The other instances of `workers`, as many as there are lanes for.
    let mut extra = Vec::new();
    for _ in 1..lanes(s, &tables) {
        extra.push(env.start(reference, Role::Source).await?);
    }
    Ok(SourcePlan {
        spec: s,
        plugin,
        origin,
        selection,
        tables,
        destinations: s.destinations.iter().filter_map(|n| index(n)).collect(),
        state,
        extra,
    })
}

/// A source's `concurrency` is handed to its plugin as the `concurrency` field of its spec, for
/// a plugin whose schema has one (as CloudQuery's plugins do); for any other plugin it is an
/// error, never silently ignored. Returns the spec with it, if it was set.
async fn with_concurrency(
    s: &SourceSpec,
    plugin: &mut dyn AnyPlugin,
) -> Result<Option<PluginSpec>, RunError> {
    let Some(concurrency) = s.concurrency else {
        return Ok(None);
    };
    let schema = plugin.spec_schema().await?;
    let declared = schema
        .as_deref()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .is_some_and(|schema| schema.pointer("/properties/concurrency").is_some());
    if !declared {
        return Err(SpecError::at(
            s.at.clone(),
            format!(
                "source `{}` sets `concurrency`, but plugin `{}` has no `concurrency` setting",
                s.name, s.path
            ),
        )
        .with_help("remove `concurrency`, or use the plugin's own setting under `spec:` (see `quarry plugin inspect`)")
        .into());
    }
    let mut spec = s.spec.clone();
    if let Some(fields) = spec.value.as_object_mut() {
        if fields.contains_key("concurrency") {
            return Err(SpecError::at(
                s.at.clone(),
                format!(
                    "source `{}` sets `concurrency` both on the source and in its `spec:`",
                    s.name
                ),
            )
            .with_help("keep one of the two")
            .into());
        }
        fields.insert("concurrency".into(), concurrency.into());
    }
    Ok(Some(spec))
}

/// Per destination, what each table its sources bring needs (and its sync summary table, with
/// `send_sync_summary`, so that `quarry migrate` makes it too).
async fn plan_migrations(plan: &mut SyncPlan<'_>) -> Result<(), RunError> {
    for d in plan
        .destinations
        .iter_mut()
        .filter(|d| d.spec.send_sync_summary)
    {
        // Transformers never see the summary table, as in CloudQuery.
        let wanted = crate::sync::summary_table::schema(d.spec.sync_group_id.is_some());
        plan_for(d, wanted).await?;
    }
    // Per destination and table there, the source and source table that first brought it.
    let mut brought: std::collections::HashMap<(usize, String), (String, String)> =
        Default::default();
    for source in &plan.sources {
        for &i in &source.destinations {
            let d = &mut plan.destinations[i];
            for schema in &source.tables {
                let wanted = crate::sync::destination_schema(
                    schema,
                    d.spec.write_mode,
                    d.spec.pk_mode,
                    d.spec.sync_group_id.is_some(),
                )
                .map_err(|e| {
                    SpecError::at(
                        d.spec.at.clone(),
                        format!("destination `{}`: {e}", d.spec.name),
                    )
                })?;
                let wanted = d.transform_schema(wanted).await?;
                let table = quarry_sdk::table_name(&wanted).to_string();
                let from = quarry_sdk::table_name(schema).to_string();
                if let Some(first) = d.migrations.iter().find(|m| m.table == table) {
                    // Two tables that disagree would migrate the table back and forth, each
                    // run losing the other's rows.
                    if first.wanted != wanted {
                        let (first_source, first_table) = brought
                            .get(&(i, table.clone()))
                            .cloned()
                            .unwrap_or_default();
                        let renamed = if d.transformers.is_empty() {
                            ""
                        } else {
                            " (its transformers name both so)"
                        };
                        return Err(SpecError::at(
                            d.spec.at.clone(),
                            format!(
                                "destination `{}`: table `{from}` of source `{}` and table `{first_table}` of source `{first_source}` both become table `{table}`{renamed}, with different schemas",
                                d.spec.name, source.spec.name
                            ),
                        )
                        .with_help("send them to different destinations, give them the same schema, or rename one of them")
                        .into());
                    }
                    if let Some((first_source, first_table)) = brought.get(&(i, table.clone())) {
                        let first = (first_source.as_str(), first_table.as_str());
                        lanes_apart(&plan.sources, d, source, &from, first, &table)?;
                    }
                    continue;
                }
                brought.insert((i, table), (source.spec.name.clone(), from));
                plan_for(d, wanted).await?;
            }
        }
    }
    Ok(())
}

/// With `workers`, a destination table that two source tables become must stay with one
/// instance of the destination: two lanes of one source would write it at once, and a
/// destination that names its files by table alone (a path field without `{{UUID}}`) starts the
/// file anew in each instance, so a second source's rows written through another instance would
/// replace the first's. Such a spec is refused, naming the tables.
fn lanes_apart(
    sources: &[SourcePlan<'_>],
    d: &DestinationPlan<'_>,
    source: &SourcePlan<'_>,
    from: &str,
    (first_source, first_table): (&str, &str),
    table: &str,
) -> Result<(), RunError> {
    let first = sources.iter().find(|s| s.spec.name == first_source);
    let with_workers: Vec<&str> = std::iter::once(source)
        .chain(first.filter(|f| f.spec.name != source.spec.name))
        .filter(|s| s.lanes() > 1)
        .map(|s| s.spec.name.as_str())
        .collect();
    if with_workers.is_empty() {
        return Ok(());
    }
    let why = if first_source == source.spec.name {
        let root = |name: &str| crate::sync::root_of(&source.tables, name);
        if root(from) == root(first_table) {
            return Ok(());
        }
        format!("two lanes of source `{first_source}` (`workers`) would write it at once")
    } else {
        let Some((field, value)) = files_per_table(d) else {
            return Ok(());
        };
        format!(
            "its files are named by table alone (`{field}: {value}`), so with `workers` the instance writing it for one source would start anew the file another instance wrote for the other"
        )
    };
    let names: Vec<String> = with_workers.iter().map(|n| format!("`{n}`")).collect();
    Err(SpecError::at(
        d.spec.at.clone(),
        format!(
            "destination `{}`: table `{from}` of source `{}` and table `{first_table}` of source `{first_source}` both become table `{table}`: {why}",
            d.spec.name, source.spec.name
        ),
    )
    .with_help(format!(
        "remove `workers` from source {}, or send the tables to different destinations (a file destination can also put `{{{{UUID}}}}` in its path)",
        names.join(" and ")
    ))
    .into())
}

/// The path field of destination `d` that names one file per table, if any: a field its plugin
/// says holds a path, with a `{{...}}` placeholder but not `{{UUID}}`.
fn files_per_table(d: &DestinationPlan<'_>) -> Option<(String, String)> {
    path_fields(d.spec, d.plugin.info())
        .find(|(_, value)| value.contains("{{") && !value.contains("{{UUID}}"))
}

/// Adds to `d`'s migrations what table `wanted` needs there.
async fn plan_for(d: &mut DestinationPlan<'_>, wanted: SchemaRef) -> Result<(), RunError> {
    let table = quarry_sdk::table_name(&wanted).to_string();
    let plan = plan_table(
        d.plugin.as_mut(),
        &d.spec.name,
        d.spec.migrate_mode,
        &wanted,
    )
    .await
    .map_err(|e| e.for_table(&table))?;
    d.migrations.push(TableMigration {
        table,
        wanted,
        plan,
    });
    Ok(())
}

/// Which tables a source's spec selects.
pub fn selection(spec: &SourceSpec) -> TableSelection {
    TableSelection {
        tables: spec.tables.clone(),
        skip_tables: spec.skip_tables.clone(),
        skip_dependent_tables: spec.skip_dependent_tables,
    }
}

/// Where a table-selection error points: the pattern at fault, found by redoing the selection
/// over every table the source has with the error as data; else `tables`.
async fn selection_error_at(source: &SourceSpec, plugin: &mut dyn AnyPlugin) -> Location {
    let everything = TableSelection {
        tables: vec!["*".into()],
        ..TableSelection::default()
    };
    let Ok(all) = plugin.tables(&everything).await else {
        return source.tables_at.clone();
    };
    let Ok(all) = all
        .iter()
        .map(|s| quarry_sdk::Table::from_schema(s))
        .collect::<Result<Vec<_>, _>>()
    else {
        return source.tables_at.clone();
    };
    let (list, index) = match quarry_sdk::selection(
        &all,
        &source.tables,
        &source.skip_tables,
        source.skip_dependent_tables,
    ) {
        Err(quarry_sdk::SelectionError::NoMatch { list, index, .. })
        | Err(quarry_sdk::SelectionError::OrphanChild { list, index, .. }) => (list, index),
        Ok(_) => return source.tables_at.clone(),
    };
    let index = match list {
        quarry_sdk::PatternList::Tables => index,
        quarry_sdk::PatternList::SkipTables => source.tables.len() + index,
    };
    source
        .patterns_at
        .get(index)
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
