//! The sync engine: runs one source and streams its messages to each of its destinations.
//!
//! The source runs on this task; each destination runs on a task of its own behind a bounded
//! queue, so a slow destination holds the source back (the source's `emit` waits) instead of
//! buffering without bound, and source and destinations use different cores. The engine adds
//! the internal columns and counts; it does no per-row work. Every failure is recorded in the
//! summary; a failing destination stops only itself.

pub mod batcher;
pub(crate) mod columns;
pub mod migrate;
pub mod progress;
pub mod state;
pub mod summary;
pub(crate) mod summary_table;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use tokio::sync::mpsc;

pub use columns::{SOURCE_NAME, SYNC_TIME};
pub use summary::{DestinationSummary, SourceSummary, TableSummary};

use crate::plan::{
    DestinationPlan, MigrationPlan, Refusal, StatePlan, SyncPlan, TableMigration, plan_table,
};
use crate::runtime::{
    DeleteRequest, Destination, ErrorKind, Phase, PluginError, Source, SourceMessage,
    TableSelection,
};
use crate::spec::{MigrateMode, PkMode, WriteMode};

/// Messages in flight per queue. Each holds one batch, so this bounds memory to a few batches
/// per destination.
const QUEUE: usize = 4;

/// A destination as the engine drives it.
pub struct DestinationSlot {
    pub name: String,
    pub plugin: Box<dyn Destination>,
    pub write_mode: WriteMode,
    pub migrate_mode: MigrateMode,
    pub pk_mode: PkMode,
    pub batching: batcher::Limits,
    /// The plan's migrations not yet applied, by table: each is applied before its table's
    /// first row, then removed (a table's later schemas, and a second source of the same table,
    /// are compared anew).
    pub planned: HashMap<String, TableMigration>,
    /// `--no-migrate`: tables are used as they are; one that needs a migration is an error.
    pub no_migrate: bool,
    /// `_cq_sync_group_id`, with `sync_group_id`.
    pub sync_group: Option<columns::SyncGroup>,
    /// `send_sync_summary`: a row per source in `cloudquery_sync_summaries`.
    pub send_sync_summary: bool,
    /// The destination's path and version, for the summary.
    pub description: summary::PluginDescription,
    /// The transformers its rows go through, in order (name, instance).
    pub transformers: Vec<(String, Box<dyn crate::runtime::AnyPlugin>)>,
    /// Per source table, the table the transformers write it to (when they rename it).
    pub renamed: HashMap<String, String>,
    /// Per destination table written through transformers, the schema they said it has: each
    /// batch they return is checked against it.
    pub transformed: HashMap<String, SchemaRef>,
}

impl DestinationSlot {
    /// The slot of `plan`'s destination for a sync that started at `sync_time_us` with id
    /// `sync_id` (they fill its `sync_group_id`).
    pub fn new(
        plan: DestinationPlan<'_>,
        no_migrate: bool,
        sync_time_us: i64,
        sync_id: &str,
    ) -> Self {
        let description = summary::SummaryLine::describe_destination(&plan);
        DestinationSlot {
            sync_group: plan.spec.sync_group_id.as_deref().map(|template| {
                columns::SyncGroup::new(&crate::spec::sync_group::render(
                    template,
                    sync_time_us,
                    sync_id,
                ))
            }),
            send_sync_summary: plan.spec.send_sync_summary,
            description,
            transformers: plan
                .transformers
                .into_iter()
                .map(|t| (t.spec.name.clone(), t.plugin))
                .collect(),
            renamed: HashMap::new(),
            transformed: HashMap::new(),
            name: plan.spec.name.clone(),
            plugin: plan.plugin,
            write_mode: plan.spec.write_mode,
            migrate_mode: plan.spec.migrate_mode,
            pk_mode: plan.spec.pk_mode,
            batching: plan.batching,
            planned: plan
                .migrations
                .into_iter()
                .map(|m| (m.table.clone(), m))
                .collect(),
            no_migrate,
        }
    }

    /// The table a source table's rows are written to here.
    fn table_for<'a>(&'a self, source_table: &'a str) -> &'a str {
        self.renamed
            .get(source_table)
            .map_or(source_table, String::as_str)
    }

    /// `batch` through the destination's transformers, each given every batch the one before
    /// returned. A transformer's error stops this destination, naming the transformer.
    async fn transform(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>, PluginError> {
        let table = table_name(batch.schema_ref());
        let mut batches = vec![batch];
        for (_, transformer) in &mut self.transformers {
            let mut next = Vec::with_capacity(batches.len());
            for batch in &batches {
                next.extend(
                    transformer
                        .transform(batch)
                        .await
                        .map_err(|e| e.for_table(&table))?,
                );
            }
            batches = next;
        }
        for batch in &batches {
            let out = table_name(batch.schema_ref());
            let expected = self.transformed.get(&out);
            if expected.is_none_or(|e| e.fields() != batch.schema_ref().fields()) {
                let names = self
                    .transformers
                    .iter()
                    .map(|(n, _)| format!("`{n}`"))
                    .collect::<Vec<_>>();
                let names = match names.len() {
                    1 => format!("transformer {}", names[0]),
                    _ => format!("transformers {}", names.join(", ")),
                };
                let why = match expected {
                    None => {
                        format!("for table `{out}`, which its transform-schema answers never named")
                    }
                    Some(e) => format!(
                        "for table `{out}` with columns ({}), but its transform-schema answer has ({})",
                        columns_of(batch.schema_ref()),
                        columns_of(e)
                    ),
                };
                return Err(PluginError::new(
                    &self.name,
                    Phase::Transform,
                    ErrorKind::Internal,
                    format!("the {names} returned rows {why}"),
                )
                .for_table(&table)
                .with_help("a transformer must give its batches the schema its transform-schema gives for their table: report this to the transformer's author"));
            }
        }
        Ok(batches)
    }
}

/// `name type, ...` of a schema's fields, for messages.
fn columns_of(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How the engine runs a plan.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Skip migrations (`quarry sync --no-migrate`).
    pub no_migrate: bool,
    /// Where rows and batches are reported as they move.
    pub progress: progress::Progress,
    /// Set when the user asks the sync to stop (SIGINT, SIGTERM).
    pub interrupt: Interrupt,
    /// The sync's id (`--invocation-id`): `{{SYNC_ID}}` of `sync_group_id`, `sync_id` of the
    /// summary. A random one when unset.
    pub sync_id: Option<String>,
    /// `--shard NUM/TOTAL`: this process syncs one part of every source.
    pub shard: Option<crate::runtime::Shard>,
}

/// A request to stop a sync early and cleanly: the sources stop, every destination writes and
/// flushes what it was sent, and a source's cursors are saved for exactly those rows.
#[derive(Clone)]
pub struct Interrupt(tokio::sync::watch::Receiver<Option<&'static str>>);

impl Default for Interrupt {
    /// An interrupt that never comes.
    fn default() -> Self {
        let (tx, rx) = tokio::sync::watch::channel(None);
        // The receiver keeps its last value once the sender is gone.
        drop(tx);
        Interrupt(rx)
    }
}

impl Interrupt {
    /// An interrupt and the sender that raises it with the reason (the signal's name).
    pub fn new() -> (tokio::sync::watch::Sender<Option<&'static str>>, Self) {
        let (tx, rx) = tokio::sync::watch::channel(None);
        (tx, Interrupt(rx))
    }

    /// Why the sync was asked to stop, if it was.
    pub fn reason(&self) -> Option<&'static str> {
        *self.0.borrow()
    }

    /// Waits until the sync is asked to stop (forever if it never is).
    async fn raised(&self) -> &'static str {
        let mut rx = self.0.clone();
        // The value is copied out: the watch's guard must not live across an await.
        let raised = match rx.wait_for(Option::is_some).await {
            Ok(reason) => Some((*reason).unwrap_or("an interrupt")),
            Err(_) => None,
        };
        match raised {
            Some(reason) => reason,
            None => std::future::pending().await,
        }
    }
}

/// A source run: which source, which tables, where its cursors are.
pub struct SourceRun<'a> {
    pub name: &'a str,
    pub plugin: &'a mut dyn Source,
    pub selection: TableSelection,
    pub deterministic_cq_id: bool,
    /// Where the source's cursors are kept, if anywhere.
    pub state: Option<StateBackend>,
    /// `--shard`: the rows' `_cq_source_name` is `NAME_NUM_TOTAL`, and a source that shards
    /// itself is told its part (the engine has already cut the selection of any other).
    pub shard: Option<crate::runtime::Shard>,
    /// How many lanes the source runs in (`workers`). With more than one, a cursor set to the
    /// value it was loaded with is not saved: each lane saves only the cursors it moves, never
    /// another lane's as it found it.
    pub lanes: usize,
}

/// A source's state backend: a table in one of its destinations, and the cursors read from it.
#[derive(Clone)]
pub struct StateBackend {
    /// The destination's name; it must be one of the run's destinations.
    pub destination: String,
    pub table: String,
    pub cursors: HashMap<String, String>,
    /// How often, at most, cursors are saved while the source runs (always at its end).
    pub interval: Duration,
}

impl StateBackend {
    /// Creates the state table in the backend destination if needed and reads the cursors.
    async fn load(slot: &mut DestinationSlot, plan: &StatePlan) -> Result<Self, PluginError> {
        let cursors = state::load(slot.plugin.as_mut(), &slot.name, &plan.table).await?;
        tracing::debug!(destination = %slot.name, table = %plan.table, cursors = cursors.len(), "state loaded");
        Ok(StateBackend {
            destination: slot.name.clone(),
            table: plan.table.clone(),
            cursors,
            interval: plan.interval,
        })
    }
}

/// A destination's task: it hands the slot back with how the writing ended.
type Writer = tokio::task::JoinHandle<(DestinationSlot, Result<(), WriteError>)>;

/// Why a destination stopped.
#[derive(Debug)]
enum WriteError {
    Plugin(PluginError),
    /// The engine refused a migration that would lose data.
    Refused(Refusal),
}

impl From<PluginError> for WriteError {
    fn from(e: PluginError) -> Self {
        WriteError::Plugin(e)
    }
}

#[derive(Clone)]
pub(crate) enum WriteMessage {
    Migrate(SchemaRef),
    Insert(RecordBatch),
    Delete(DeleteRequest),
    /// Write and flush everything received so far, then acknowledge; the backend destination
    /// also saves the cursors once every destination has acknowledged.
    Checkpoint {
        checkpoint: Arc<state::Checkpoint>,
        save: Option<state::Save>,
    },
}

/// The schema a destination is migrated to for a source table: the internal columns (with
/// `_cq_sync_group_id` when `sync_group`), then the write mode and `pk_mode` applied.
pub fn destination_schema(
    schema: &SchemaRef,
    write_mode: WriteMode,
    pk_mode: PkMode,
    sync_group: bool,
) -> Result<SchemaRef, String> {
    let mut extended = columns::extended_schema(schema);
    if sync_group {
        extended = columns::SyncGroup::schema(&extended);
    }
    migrate::destination_schema(&extended, write_mode, pk_mode)
}

/// The sync time of a run starting now, in microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Runs every source of `plan` into its destinations, one source after another, and closes every
/// plugin. Returns one summary per source, with every error that happened in it (a state backend
/// that could not be read stops only its source).
pub async fn execute(plan: SyncPlan<'_>, options: &RunOptions) -> Vec<SourceSummary> {
    let sync_time_us = now_us();
    let sync_id = options
        .sync_id
        .clone()
        .unwrap_or_else(crate::runtime::grpc::invocation_id);
    let mut slots: Vec<Option<DestinationSlot>> = Vec::new();
    // Per destination, its further instances (`workers`): the one of lane `j` at `j - 1`.
    let mut extras: Vec<Vec<Option<DestinationSlot>>> = Vec::new();
    for mut d in plan.destinations {
        let extra = std::mem::take(&mut d.extra);
        let lanes = extra
            .into_iter()
            .map(|instance| {
                Some(DestinationSlot::new(
                    DestinationPlan {
                        spec: d.spec,
                        plugin: instance.plugin,
                        origin: d.origin.clone(),
                        batching: d.batching,
                        migrations: d.migrations.clone(),
                        transformers: instance.transformers,
                        extra: Vec::new(),
                    },
                    options.no_migrate,
                    sync_time_us,
                    &sync_id,
                ))
            })
            .collect();
        extras.push(lanes);
        slots.push(Some(DestinationSlot::new(
            d,
            options.no_migrate,
            sync_time_us,
            &sync_id,
        )));
    }
    let mut summaries = Vec::new();
    for mut source in plan.sources {
        if let Some(reason) = options.interrupt.reason() {
            let mut summary = SourceSummary::new(&source.spec.name);
            summary.errors.push(format!(
                "source `{}` did not run: the sync was interrupted ({reason})",
                source.spec.name
            ));
            close_source(&mut source, &mut summary).await;
            summaries.push(summary);
            continue;
        }
        let state = match &source.state {
            Some(plan) => {
                let slot = slots[plan.destination]
                    .as_mut()
                    .expect("slots return after each source");
                let mut loaded = StateBackend::load(slot, plan).await;
                // Every lane's instance of the backend saves cursors: each creates the table
                // (or finds it) first, as the first instance did.
                let lanes = source.extra.len();
                for slot in extras[plan.destination].iter_mut().take(lanes).flatten() {
                    if loaded.is_ok() {
                        loaded = StateBackend::load(slot, plan).await;
                    }
                }
                match loaded {
                    Ok(state) => Some(state),
                    Err(e) => {
                        let mut summary = SourceSummary::new(&source.spec.name);
                        summary.plugin_errors.push(e);
                        close_source(&mut source, &mut summary).await;
                        summaries.push(summary);
                        continue;
                    }
                }
            }
            None => None,
        };
        let mut selection = source.selection.clone();
        let mut tables = source.tables.clone();
        if let Some(shard) = options.shard
            && !source.plugin.shards_itself()
        {
            selection = shard_selection(shard, &source.tables, selection);
            tables.retain(|t| selection.tables.contains(&table_name(t)));
            if selection.tables.is_empty() {
                tracing::info!(source = %source.spec.name, "shard {}/{} has no tables of this source", shard.num, shard.total);
                let mut summary = SourceSummary::new(&source.spec.name);
                summary.shard = Some(shard);
                summary.sync_time_us = sync_time_us;
                close_source(&mut source, &mut summary).await;
                summaries.push(summary);
                continue;
            }
        }
        let before = source.plugin.logged();
        let before_extra: Vec<_> = source.extra.iter().map(|p| p.logged()).collect();
        options.progress.event(|| progress::Event::SourceStarted {
            source: source.spec.name.clone(),
        });
        // A backend outside the source's destinations takes its checkpoints, and only them.
        let state_only = source
            .state
            .as_ref()
            .map(|plan| plan.destination)
            .filter(|i| !source.destinations.contains(i));
        let involved: Vec<usize> = source
            .destinations
            .iter()
            .copied()
            .chain(state_only)
            .collect();
        // One lane per instance of the source, each with a share of the tables and instances
        // of its own of the destinations; a lane whose share is empty does not run.
        let lanes = 1 + source.extra.len();
        let selections = match lanes {
            1 => vec![selection],
            n => (0..n)
                .map(|lane| lane_selection(lane, n, &tables, selection.clone()))
                .collect(),
        };
        // Lane 0 runs on this task with the first instance; every other lane on a task of its
        // own with the instance it owns until it ends, so sources, too, use several cores.
        let mut extra: Vec<Option<Box<dyn crate::runtime::AnyPlugin>>> =
            std::mem::take(&mut source.extra)
                .into_iter()
                .map(Some)
                .collect();
        let mut first = None;
        let mut spawned = Vec::new();
        for (lane, selection) in selections.into_iter().enumerate() {
            if selection.tables.is_empty() && lanes > 1 {
                continue;
            }
            let destinations: Vec<(usize, DestinationSlot)> = involved
                .iter()
                .filter_map(|&i| {
                    let slot = match lane {
                        0 => slots[i].take(),
                        j => extras[i].get_mut(j - 1).and_then(Option::take),
                    };
                    slot.map(|slot| (i, slot))
                })
                .collect();
            if lane == 0 {
                first = Some((selection, destinations));
                continue;
            }
            let Some(mut plugin) = extra[lane - 1].take() else {
                continue;
            };
            let (name, options, state) = (source.spec.name.clone(), options.clone(), state.clone());
            let deterministic_cq_id = source.spec.deterministic_cq_id;
            spawned.push(tokio::spawn(async move {
                let run = SourceRun {
                    name: &name,
                    plugin: plugin.as_mut(),
                    selection,
                    deterministic_cq_id,
                    state,
                    shard: options.shard,
                    lanes,
                };
                let ran = run_source(run, destinations, state_only, sync_time_us, &options).await;
                (lane, plugin, ran)
            }));
        }
        let started = Instant::now();
        let first = async {
            let (selection, destinations) = first?;
            let run = SourceRun {
                name: &source.spec.name,
                plugin: source.plugin.as_mut(),
                selection,
                deterministic_cq_id: source.spec.deterministic_cq_id,
                state: state.clone(),
                shard: options.shard,
                lanes,
            };
            Some(run_source(run, destinations, state_only, sync_time_us, options).await)
        };
        // The other lanes already run on their tasks: their handles are awaited in turn.
        let others = async {
            let mut others = Vec::with_capacity(spawned.len());
            for lane in spawned {
                others.push(lane.await);
            }
            others
        };
        let (first, others) = tokio::join!(first, others);
        let mut summary = SourceSummary::new(&source.spec.name);
        summary.sync_time_us = sync_time_us;
        summary.shard = options.shard;
        let mut outcomes = Vec::new();
        outcomes.extend(first.map(|ran| (0, ran)));
        for other in others {
            match other {
                Ok((lane, plugin, ran)) => {
                    extra[lane - 1] = Some(plugin);
                    outcomes.push((lane, ran));
                }
                // Its instances are lost with it; the task's panic is the engine's error.
                Err(e) => summary.errors.push(format!(
                    "a lane of source `{}` failed: {e}",
                    source.spec.name
                )),
            }
        }
        source.extra = extra.into_iter().flatten().collect();
        let mut ran = Vec::new();
        for (lane, (returned, lane_summary, incremental)) in outcomes {
            let tables: Vec<String> = lane_summary
                .tables
                .keys()
                .filter(|t| !incremental.contains(t))
                .cloned()
                .collect();
            summary.merge(lane_summary);
            ran.push((lane, returned, tables));
        }
        // CloudQuery's name for a shard's rows; delete-stale then touches only this shard's.
        let row_source = match options.shard {
            Some(shard) => shard.source_name(&source.spec.name),
            None => source.spec.name.clone(),
        };
        // Stale rows are deleted only when the whole source succeeded, in every lane.
        if summary.ok() {
            for (_, returned, tables) in &mut ran {
                let slots = returned.iter_mut().filter(|(i, _)| Some(*i) != state_only);
                delete_stale(slots, tables, &mut summary, &row_source, sync_time_us).await;
            }
        }
        summary.count_table_errors();
        summary.duration = started.elapsed();
        if let Err(e) = source.plugin.close().await {
            summary.plugin_errors.push(e);
        }
        summary.logged = source.plugin.logged().since(before);
        for (plugin, before) in source.extra.iter_mut().zip(before_extra) {
            if let Err(e) = plugin.close().await {
                summary.plugin_errors.push(e);
            }
            let logged = plugin.logged().since(before);
            summary.logged.warnings += logged.warnings;
            summary.logged.errors += logged.errors;
        }
        let described = summary::SummaryLine::describe_source(&source);
        for (lane, returned, _) in ran {
            for (i, mut slot) in returned {
                // The summary row is written once, by the destination's first instance.
                if lane == 0 && slot.send_sync_summary && Some(i) != state_only {
                    send_sync_summary(&mut slot, &sync_id, &mut summary, &described, &row_source)
                        .await;
                }
                match lane {
                    0 => slots[i] = Some(slot),
                    j => extras[i][j - 1] = Some(slot),
                }
            }
        }
        // A migration one instance applied is done for all: the next source's rows of the
        // table may come through another, which compares the table anew.
        for &i in &involved {
            let instances = slots[i].iter_mut().chain(extras[i].iter_mut().flatten());
            applied_by_one_done_for_all(instances.collect());
        }
        tracing::info!(
            source = %source.spec.name,
            rows = summary.rows(),
            errors = summary.error_count(),
            elapsed_ms = summary.duration.as_millis() as u64,
            lanes,
            "source finished"
        );
        options
            .progress
            .event(|| progress::Event::SourceFinished(Box::new(summary.clone())));
        summaries.push(summary);
    }
    let all = slots
        .into_iter()
        .flatten()
        .chain(extras.into_iter().flatten().flatten());
    close_destinations(all, &mut summaries).await;
    summaries
}

/// Drops from every instance's planned migrations those that any of them has applied.
fn applied_by_one_done_for_all(mut instances: Vec<&mut DestinationSlot>) {
    if instances.len() < 2 {
        return;
    }
    let pending: Vec<String> = instances[0]
        .planned
        .keys()
        .filter(|t| instances.iter().all(|s| s.planned.contains_key(*t)))
        .cloned()
        .collect();
    for slot in &mut instances {
        slot.planned.retain(|t, _| pending.contains(t));
    }
}

/// Closes a source that does not run, with its further instances; their errors go into
/// `summary`.
async fn close_source(source: &mut crate::plan::SourcePlan<'_>, summary: &mut SourceSummary) {
    let instances = std::iter::once(&mut source.plugin).chain(source.extra.iter_mut());
    for plugin in instances {
        if let Err(e) = plugin.close().await {
            summary.plugin_errors.push(e);
        }
    }
}

/// Closes every destination and its transformers; a failure is counted against the last source
/// that wrote to the destination.
async fn close_destinations(
    slots: impl Iterator<Item = DestinationSlot>,
    summaries: &mut [SourceSummary],
) {
    for mut slot in slots {
        let mut errors = Vec::new();
        for (_, mut transformer) in std::mem::take(&mut slot.transformers) {
            errors.extend(transformer.close().await.err());
        }
        errors.extend(slot.plugin.close().await.err());
        for e in errors {
            match summaries
                .iter_mut()
                .rev()
                .find(|s| s.destinations.iter().any(|d| d.name == slot.name))
            {
                Some(summary) => summary.plugin_errors.push(e),
                None => tracing::warn!(destination = %slot.name, "closing failed: {e}"),
            }
        }
    }
}

/// Runs `source` into `destinations` (each with its index in the plan) and returns them with
/// the run's summary and the incremental tables it saw. The destination at plan index
/// `state_only`, if any, is the source's state backend and no destination of its rows: it gets
/// checkpoints only. Stale rows are not deleted here: that waits for every lane of the source.
async fn run_source(
    source: SourceRun<'_>,
    destinations: Vec<(usize, DestinationSlot)>,
    state_only: Option<usize>,
    sync_time_us: i64,
    options: &RunOptions,
) -> (Vec<(usize, DestinationSlot)>, SourceSummary, Vec<String>) {
    let mut summary = SourceSummary::new(source.name);
    summary.sync_time_us = sync_time_us;
    summary.shard = source.shard;
    // CloudQuery's name for a shard's rows; delete-stale then touches only this shard's.
    let row_source = match source.shard {
        Some(shard) => shard.source_name(source.name),
        None => source.name.to_string(),
    };
    let loaded = match (&source.state, source.lanes) {
        (Some(b), lanes) if lanes > 1 => b.cursors.clone(),
        _ => HashMap::new(),
    };
    let (backend, mut sync_state) = match source.state {
        Some(b) => (
            destinations
                .iter()
                .position(|(_, d)| d.name == b.destination)
                .map(|i| (i, b.table.clone(), b.interval)),
            crate::runtime::SyncInput {
                table: Some(b.table),
                cursors: b.cursors,
                shard: None,
            },
        ),
        None => (None, crate::runtime::SyncInput::default()),
    };
    if source.plugin.shards_itself() {
        sync_state.shard = source.shard;
    }
    let mut queues = Vec::new();
    let mut writers = Vec::new();
    let mut state_queue = None;
    for (index, slot) in destinations {
        let before = slot.plugin.logged();
        let (tx, rx) = mpsc::channel::<WriteMessage>(QUEUE);
        let progress = if Some(index) == state_only {
            state_queue = Some(queues.len());
            progress::DestinationProgress::none()
        } else {
            options.progress.destination(source.name, &slot.name, &tx)
        };
        queues.push(Some(tx));
        writers.push((index, before, tokio::spawn(write(slot, rx, progress))));
    }
    let (tx, rx) = mpsc::channel::<SourceMessage>(QUEUE);
    let sync = source.plugin.sync(
        &source.selection,
        source.deterministic_cq_id,
        sync_state,
        tx,
    );
    let forwarder = Forwarder {
        source: source.name,
        columns: columns::InternalColumns::new(&row_source, sync_time_us),
        queues,
        backend,
        state_queue,
        progress: options.progress.source(source.name),
        out: Forwarded::default(),
        cursors: BTreeMap::new(),
        loaded,
        unsaved: false,
        last_checkpoint: Instant::now(),
    };
    let (sync_result, forwarded) = tokio::join!(sync, forwarder.run(rx, &options.interrupt));
    summary.tables = forwarded.tables;
    let slots = collect_writers(writers, state_only, &mut summary).await;
    if let Some(e) = forwarded.engine_error {
        summary.errors.push(e);
    }
    let interrupted = forwarded.interrupted.is_some();
    if let Some(reason) = forwarded.interrupted {
        summary.errors.push(format!(
            "source `{}` was interrupted ({reason}): the rows it sent before are written and \
             flushed, and its state covers exactly them; run the sync again to continue",
            source.name
        ));
    }
    match sync_result {
        // A source cancelled because every destination failed reports the destinations'
        // errors; one cancelled by an interrupt, the interrupt.
        Err(e)
            if e.kind != ErrorKind::Unavailable
                || (summary.plugin_errors.is_empty() && !interrupted) =>
        {
            summary.plugin_errors.insert(0, e)
        }
        _ => {}
    }
    summary.plugin_errors.extend(forwarded.table_errors);
    (slots, summary, forwarded.incremental)
}

/// What forwarding a source's messages found.
#[derive(Default)]
struct Forwarded {
    tables: BTreeMap<String, TableSummary>,
    incremental: Vec<String>,
    engine_error: Option<String>,
    /// Why the forwarding stopped early at the user's request.
    interrupted: Option<&'static str>,
    table_errors: Vec<PluginError>,
}

/// Takes a source's messages, adds the internal columns, counts, and sends each to every open
/// destination queue; sends checkpoints when the source sets cursors.
struct Forwarder<'a> {
    source: &'a str,
    columns: columns::InternalColumns,
    queues: Vec<Option<mpsc::Sender<WriteMessage>>>,
    /// The backend destination's position in `queues`, its state table, the save interval.
    backend: Option<(usize, String, Duration)>,
    /// The position in `queues` of a backend that takes no rows, only checkpoints.
    state_queue: Option<usize>,
    progress: progress::SourceProgress,
    out: Forwarded,
    /// The cursors the source has set; `unsaved` when they changed since the last checkpoint.
    cursors: BTreeMap<String, String>,
    /// In a lane of several, the cursors as loaded: setting one to that value saves nothing.
    loaded: HashMap<String, String>,
    unsaved: bool,
    last_checkpoint: Instant,
}

impl Forwarder<'_> {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<SourceMessage>,
        interrupt: &Interrupt,
    ) -> Forwarded {
        loop {
            let message = tokio::select! {
                biased;
                reason = interrupt.raised() => {
                    self.out.interrupted = Some(reason);
                    break;
                }
                message = rx.recv() => message,
            };
            let Some(message) = message else { break };
            let Some(outgoing) = self.handle(message).await else {
                if self.out.engine_error.is_some() {
                    break;
                }
                continue;
            };
            if !self.send(outgoing).await {
                break;
            }
        }
        // Dropping the receiver cancels the source if it is still sending.
        drop(rx);
        // The last cursors describe every row sent: saved once all of them are flushed.
        if let Some((at, table, _)) = &self.backend
            && self.unsaved
            && self.out.engine_error.is_none()
        {
            checkpoint(&mut self.queues, *at, table, &self.cursors).await;
        }
        self.out
    }

    /// The message for the destinations, if the source's message is one.
    async fn handle(&mut self, message: SourceMessage) -> Option<WriteMessage> {
        match message {
            SourceMessage::MigrateTable(schema) => {
                let table = table_name(&schema);
                self.out.tables.entry(table.clone()).or_default().seen();
                if is_incremental(&schema) && !self.out.incremental.contains(&table) {
                    self.out.incremental.push(table.clone());
                }
                Some(WriteMessage::Migrate(self.columns.migrate(&table, &schema)))
            }
            SourceMessage::Insert { batch, ipc_bytes } => {
                let table = table_name(batch.schema_ref());
                let stats = self.out.tables.entry(table.clone()).or_default();
                stats.seen();
                stats.rows += batch.num_rows() as u64;
                stats.ipc_bytes += ipc_bytes as u64;
                stats.batches += 1;
                self.progress
                    .rows(&table, batch.num_rows() as u64, ipc_bytes as u64);
                match self.columns.extend(&table, &batch) {
                    Ok(batch) => Some(WriteMessage::Insert(batch)),
                    Err(e) => {
                        self.out.engine_error = Some(format!("source `{}`: {e}", self.source));
                        None
                    }
                }
            }
            SourceMessage::DeleteRecord(request) => {
                let stats = self.out.tables.entry(request.table.clone()).or_default();
                stats.seen();
                stats.delete_requests += 1;
                Some(WriteMessage::Delete(request))
            }
            SourceMessage::TableError { table, message } => {
                self.out.tables.entry(table.clone()).or_default().seen();
                self.progress.error(&table);
                self.out.table_errors.push(
                    PluginError::new(self.source, Phase::Sync, ErrorKind::Internal, message)
                        .for_table(&table),
                );
                None
            }
            SourceMessage::State { key, value } => {
                if self.loaded.get(&key) == Some(&value) {
                    return None;
                }
                self.cursors.insert(key, value);
                self.unsaved = true;
                if let Some((at, table, interval)) = &self.backend
                    && self.last_checkpoint.elapsed() >= *interval
                {
                    checkpoint(&mut self.queues, *at, table, &self.cursors).await;
                    self.unsaved = false;
                    self.last_checkpoint = Instant::now();
                }
                None
            }
        }
    }

    /// Sends `message` to every open queue; false once none is open.
    async fn send(&mut self, message: WriteMessage) -> bool {
        let mut open = 0;
        for (i, queue) in self.queues.iter_mut().enumerate() {
            if Some(i) == self.state_queue {
                continue;
            }
            if let Some(tx) = queue {
                if tx.send(message.clone()).await.is_err() {
                    // The destination stopped; its task reports why.
                    *queue = None;
                } else {
                    open += 1;
                }
            }
        }
        open > 0
    }
}

/// Waits for every destination task and records how each ended; the state-only backend (plan
/// index `state_only`) is reported only by its errors.
async fn collect_writers(
    writers: Vec<(usize, crate::telemetry::LogCounts, Writer)>,
    state_only: Option<usize>,
    summary: &mut SourceSummary,
) -> Vec<(usize, DestinationSlot)> {
    let mut slots = Vec::new();
    for (index, before, writer) in writers {
        match writer.await {
            Ok((slot, result)) => {
                let mut report = DestinationSummary::new(&slot.name);
                report.logged = slot.plugin.logged().since(before);
                report.sync_group_id = slot.sync_group.as_ref().map(|g| g.id().to_string());
                match result {
                    Ok(()) => {}
                    Err(WriteError::Plugin(e)) => {
                        report.error = Some(e.to_string());
                        summary.plugin_errors.push(e);
                    }
                    Err(WriteError::Refused(refusal)) => {
                        let message = format!("destination `{}`: {refusal}", refusal.destination);
                        report.error = Some(message.clone());
                        summary
                            .errors
                            .push(format!("{message}\n  = help: {}", refusal.help()));
                    }
                }
                if Some(index) != state_only {
                    summary.destinations.push(report);
                }
                slots.push((index, slot));
            }
            Err(e) => summary
                .errors
                .push(format!("a destination task failed: {e}")),
        }
    }
    slots
}

/// Drives one destination from its queue, batching its rows, then writes what is pending and
/// flushes. On the first failure it stops taking messages (the engine sees the queue close) but
/// still flushes, so what was written before the failure is kept.
async fn write(
    mut slot: DestinationSlot,
    mut rx: mpsc::Receiver<WriteMessage>,
    progress: progress::DestinationProgress,
) -> (DestinationSlot, Result<(), WriteError>) {
    let result = drive(&mut slot, &mut rx, &progress).await;
    // Checkpoints this destination will not reach fail: their cursors are not saved.
    rx.close();
    while let Some(message) = rx.recv().await {
        if let WriteMessage::Checkpoint { checkpoint, .. } = message {
            checkpoint.ack(false);
        }
    }
    let flushed = slot.plugin.flush().await;
    (slot, result.and(flushed.map_err(WriteError::from)))
}

async fn drive(
    slot: &mut DestinationSlot,
    rx: &mut mpsc::Receiver<WriteMessage>,
    progress: &progress::DestinationProgress,
) -> Result<(), WriteError> {
    let mut batcher = batcher::Batcher::new(slot.batching);
    // Per table: the schema this destination stores, when it differs from the source's
    // (write mode and pk_mode applied); batches are re-labelled with it.
    let mut schemas: HashMap<String, SchemaRef> = HashMap::new();
    let engine_error =
        |name: &str, e: String| PluginError::new(name, Phase::Write, ErrorKind::Internal, e);
    loop {
        let deadline = batcher.deadline();
        let message = tokio::select! {
            message = rx.recv() => message,
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                let expired = batcher.take_expired(tokio::time::Instant::now()).map_err(|e| engine_error(&slot.name, e))?;
                for batch in expired {
                    write_batch(slot, &batch, progress).await?;
                }
                continue;
            }
        };
        match message {
            Some(WriteMessage::Migrate(schema)) => {
                let table = table_name(&schema);
                // Rows batched under an earlier schema of the table go first.
                let written_to = slot.table_for(&table).to_string();
                flush_table(slot, &mut batcher, &written_to, progress).await?;
                let grouped = match slot.sync_group {
                    Some(_) => columns::SyncGroup::schema(&schema),
                    None => schema.clone(),
                };
                let wanted = migrate::destination_schema(&grouped, slot.write_mode, slot.pk_mode)
                    .map_err(|e| {
                    PluginError::new(&slot.name, Phase::Migrate, ErrorKind::InvalidSpec, e)
                        .for_table(&table)
                })?;
                let stored = if slot.transformers.is_empty() {
                    wanted.clone()
                } else {
                    let chain = slot.transformers.iter_mut().map(|(_, t)| t.as_mut());
                    let stored = crate::plan::transform_schema(chain, wanted.clone()).await?;
                    let name = table_name(&stored);
                    slot.transformed.insert(name.clone(), stored.clone());
                    slot.renamed.insert(table.clone(), name);
                    stored
                };
                migrate_table(slot, &table_name(&stored), &stored).await?;
                if Arc::ptr_eq(&wanted, &schema) {
                    schemas.remove(&table);
                } else {
                    schemas.insert(table, wanted);
                }
            }
            Some(WriteMessage::Insert(batch)) => {
                let table = table_name(batch.schema_ref());
                let batch = match schemas.get(&table) {
                    Some(schema) => {
                        let columns = match &mut slot.sync_group {
                            Some(group) => group.columns(&batch),
                            None => batch.columns().to_vec(),
                        };
                        RecordBatch::try_new(schema.clone(), columns).map_err(|e| {
                            engine_error(&slot.name, format!("table `{table}`: {e}"))
                        })?
                    }
                    None => batch,
                };
                let batches = if slot.transformers.is_empty() {
                    vec![batch]
                } else {
                    slot.transform(batch).await?
                };
                for batch in batches {
                    let table = table_name(batch.schema_ref());
                    let ready = batcher
                        .push(&table, batch)
                        .map_err(|e| engine_error(&slot.name, e))?;
                    for batch in ready {
                        write_batch(slot, &batch, progress).await?;
                    }
                }
            }
            Some(WriteMessage::Delete(mut request)) => {
                request.table = slot.table_for(&request.table).to_string();
                // The table's rows sent before the request must be written before it applies.
                flush_table(slot, &mut batcher, &request.table, progress).await?;
                slot.plugin
                    .delete_record(&request)
                    .await
                    .map_err(|e| e.for_table(&request.table))?;
            }
            Some(WriteMessage::Checkpoint { checkpoint, save }) => {
                let mut flushed = write_pending(slot, &mut batcher, progress).await;
                if flushed.is_ok() {
                    flushed = slot.plugin.flush().await;
                }
                checkpoint.ack(flushed.is_ok());
                flushed?;
                progress.flushed();
                if let Some(save) = save
                    && checkpoint.all_flushed().await
                {
                    state::save(slot.plugin.as_mut(), &save.table, &save.cursors).await?;
                    tracing::debug!(destination = %slot.name, table = %save.table, cursors = save.cursors.len(), "state saved");
                }
            }
            None => break,
        }
    }
    Ok(write_pending(slot, &mut batcher, progress).await?)
}

/// Brings `table` in the destination to `wanted`: the plan's migration when it was made for
/// this schema, else one planned now (the source's schema changed while it ran, or a second
/// source brings the table).
async fn migrate_table(
    slot: &mut DestinationSlot,
    table: &str,
    wanted: &SchemaRef,
) -> Result<(), WriteError> {
    let planned = slot.planned.remove(table).filter(|m| m.wanted == *wanted);
    let plan = match planned {
        Some(m) => m.plan,
        None => plan_table(slot.plugin.as_mut(), &slot.name, slot.migrate_mode, wanted)
            .await
            .map_err(|e| e.for_table(table))?,
    };
    if let MigrationPlan::Refused(changes) = plan {
        return Err(WriteError::Refused(Refusal {
            destination: slot.name.clone(),
            table: table.to_string(),
            changes,
        }));
    }
    if slot.no_migrate {
        match &plan {
            // A gRPC destination is told nothing: any migration message could change its table.
            MigrationPlan::Unknown => return Ok(()),
            // The table is as wanted: the call changes nothing, and tells the destination the
            // schema its rows come in.
            plan if plan.up_to_date() => {}
            plan => return Err(no_migrate_error(&slot.name, table, plan).into()),
        }
    }
    let force = plan.force(slot.migrate_mode);
    Ok(slot
        .plugin
        .migrate_table(wanted, force)
        .await
        .map_err(|e| e.for_table(table))?)
}

/// The error of a table that `--no-migrate` finds in need of a migration.
pub fn no_migrate_error(destination: &str, table: &str, plan: &MigrationPlan) -> PluginError {
    let what = match plan {
        MigrationPlan::Create => "does not exist".to_string(),
        other => format!("needs a migration ({other})"),
    };
    PluginError::new(
        destination,
        Phase::Migrate,
        ErrorKind::InvalidSpec,
        format!("table `{table}` {what}, and `--no-migrate` skips migrations"),
    )
    .for_table(table)
    .with_help("run `quarry migrate` with the same specs first, or sync without `--no-migrate`")
}

/// Writes every batch the batcher holds.
async fn write_pending(
    slot: &mut DestinationSlot,
    batcher: &mut batcher::Batcher,
    progress: &progress::DestinationProgress,
) -> Result<(), PluginError> {
    let batches = batcher
        .take_all()
        .map_err(|e| PluginError::new(&slot.name, Phase::Write, ErrorKind::Internal, e))?;
    for batch in batches {
        write_batch(slot, &batch, progress).await?;
    }
    Ok(())
}

async fn write_batch(
    slot: &mut DestinationSlot,
    batch: &RecordBatch,
    progress: &progress::DestinationProgress,
) -> Result<(), PluginError> {
    let table = table_name(batch.schema_ref());
    slot.plugin
        .insert(batch)
        .await
        .map_err(|e| e.for_table(&table))?;
    progress.written(&table, batch.num_rows() as u64);
    Ok(())
}

/// Writes the rows of `table` the batcher holds.
async fn flush_table(
    slot: &mut DestinationSlot,
    batcher: &mut batcher::Batcher,
    table: &str,
    progress: &progress::DestinationProgress,
) -> Result<(), PluginError> {
    let pending = batcher
        .take(table)
        .map_err(|e| PluginError::new(&slot.name, Phase::Write, ErrorKind::Internal, e))?;
    if let Some(batch) = pending {
        write_batch(slot, &batch, progress).await?;
    }
    Ok(())
}

/// Sends a checkpoint down every open queue; the backend's copy carries the cursors to save.
async fn checkpoint(
    queues: &mut [Option<mpsc::Sender<WriteMessage>>],
    backend: usize,
    table: &str,
    cursors: &BTreeMap<String, String>,
) {
    let open = queues.iter().filter(|q| q.is_some()).count();
    // A destination that stopped did not get every row these cursors describe: saving them
    // would make the next run skip those rows for it. The cursors stay where all had them.
    let all_open = open == queues.len();
    if !all_open && queues.get(backend).is_some_and(Option::is_some) {
        tracing::debug!(
            "a destination of this source stopped: its cursors are not saved past the rows every destination has, so the next run sends them again"
        );
    }
    let checkpoint = state::Checkpoint::new(open);
    let save = state::Save {
        table: table.to_string(),
        cursors: Arc::new(cursors.clone()),
    };
    for (i, queue) in queues.iter_mut().enumerate() {
        let Some(tx) = queue else { continue };
        let message = WriteMessage::Checkpoint {
            checkpoint: checkpoint.clone(),
            save: (i == backend && all_open).then(|| save.clone()),
        };
        if tx.send(message).await.is_err() {
            checkpoint.ack(false);
            *queue = None;
        }
    }
}

/// Writes the summary row of `summary`'s source into `slot`'s `cloudquery_sync_summaries`
/// (migrating the table first, unless `--no-migrate` finds it as wanted); a failure is the
/// destination's error in the summary.
async fn send_sync_summary(
    slot: &mut DestinationSlot,
    sync_id: &str,
    summary: &mut SourceSummary,
    source: &summary::PluginDescription,
    row_source: &str,
) {
    let Some(outcome) = summary.destinations.iter().find(|d| d.name == slot.name) else {
        return;
    };
    let line = summary::SummaryLine::new(sync_id, summary, source, &slot.description, outcome);
    let table = summary_table::TABLE;
    let written = async {
        let batch = summary_table::record(
            &line,
            row_source,
            summary.sync_time_us,
            slot.sync_group.as_mut(),
        )
        .map_err(|e| {
            PluginError::new(&slot.name, Phase::Write, ErrorKind::Internal, e).for_table(table)
        })?;
        migrate_table(slot, table, batch.schema_ref()).await?;
        write_batch(slot, &batch, &progress::DestinationProgress::none()).await?;
        Ok::<_, WriteError>(slot.plugin.flush().await?)
    }
    .await;
    let e = match written {
        Ok(()) => return,
        Err(WriteError::Plugin(e)) => e,
        Err(WriteError::Refused(refusal)) => PluginError::new(
            &slot.name,
            Phase::Migrate,
            ErrorKind::InvalidSpec,
            refusal.to_string(),
        )
        .with_help(refusal.help()),
    };
    if let Some(report) = summary
        .destinations
        .iter_mut()
        .find(|d| d.name == slot.name)
    {
        report
            .error
            .get_or_insert_with(|| format!("sync summary: {e}"));
    }
    summary.plugin_errors.push(e);
}

/// The top-level table of `name` among `tables`: itself, or the ancestor its parents lead to.
pub(crate) fn root_of(tables: &[SchemaRef], name: &str) -> String {
    let parent = |name: &str| -> Option<String> {
        tables
            .iter()
            .find(|t| quarry_sdk::table_name(t) == name)
            .and_then(|t| t.metadata().get(quarry_sdk::metadata::TABLE_DEPENDS_ON))
            .filter(|p| !p.is_empty() && p.as_str() != name)
            .cloned()
    };
    let mut at = name.to_string();
    // A cycle of parents cannot come from a valid source; the walk stops anyway.
    for _ in 0..tables.len() {
        match parent(&at) {
            Some(p) => at = p,
            None => break,
        }
    }
    at
}

/// The top-level tables of `tables` (each table's root), in the order the source lists them.
pub(crate) fn top_level(tables: &[SchemaRef]) -> Vec<String> {
    let mut top: Vec<String> = Vec::new();
    for r in tables
        .iter()
        .map(|t| root_of(tables, quarry_sdk::table_name(t)))
    {
        if !top.contains(&r) {
            top.push(r);
        }
    }
    top
}

/// The part of a source's selected tables that `shard` syncs: its chunk of the top-level tables,
/// in the order the source lists them, each with every selected table below it.
fn shard_selection(
    shard: crate::runtime::Shard,
    tables: &[SchemaRef],
    selection: TableSelection,
) -> TableSelection {
    let chunk = shard.cut(&top_level(tables));
    families(tables, &chunk, selection)
}

/// The tables lane `lane` (from 0) of `lanes` syncs: every `lanes`-th top-level table from its
/// own on, each with every selected table below it, so that the lanes share the tables evenly.
fn lane_selection(
    lane: usize,
    lanes: usize,
    tables: &[SchemaRef],
    selection: TableSelection,
) -> TableSelection {
    let roots: Vec<String> = top_level(tables)
        .into_iter()
        .skip(lane)
        .step_by(lanes.max(1))
        .collect();
    families(tables, &roots, selection)
}

/// `selection` narrowed to the tables whose root is one of `roots`, named one by one (so the
/// selection's other settings select no more and no less).
fn families(tables: &[SchemaRef], roots: &[String], selection: TableSelection) -> TableSelection {
    TableSelection {
        tables: tables
            .iter()
            .map(table_name)
            .filter(|n| roots.contains(&root_of(tables, n)))
            .collect(),
        ..selection
    }
}

fn is_incremental(schema: &SchemaRef) -> bool {
    schema
        .metadata()
        .get(quarry_sdk::metadata::TABLE_INCREMENTAL)
        .is_some_and(|v| v == quarry_sdk::metadata::TRUE)
}

/// Deletes, in each `overwrite-delete-stale` destination, the rows of `tables` (the source's
/// tables these instances wrote, incremental ones left out: a sync sends only their new rows)
/// that this sync did not write; failures go into `summary`.
async fn delete_stale<'a>(
    slots: impl Iterator<Item = &'a mut (usize, DestinationSlot)>,
    tables: &[String],
    summary: &mut SourceSummary,
    source: &str,
    sync_time_us: i64,
) {
    for (_, slot) in slots.filter(|(_, s)| s.write_mode == WriteMode::OverwriteDeleteStale) {
        let mut deleted = Ok(());
        for table in tables {
            let table = slot.table_for(table).to_string();
            deleted = slot
                .plugin
                .delete_stale(&table, source, sync_time_us)
                .await
                .map_err(|e| e.for_table(&table));
            if deleted.is_err() {
                break;
            }
        }
        // The deletes are durable before the run reports success.
        if let Err(e) = deleted.and(slot.plugin.flush().await) {
            if let Some(report) = summary
                .destinations
                .iter_mut()
                .find(|d| d.name == slot.name)
            {
                report.error.get_or_insert_with(|| e.to_string());
            }
            summary.plugin_errors.push(e);
        }
    }
}

fn table_name(schema: &SchemaRef) -> String {
    quarry_sdk::table_name(schema).to_string()
}

#[cfg(test)]
mod tests {
    use quarry_sdk::{Column, Table};

    use super::*;

    fn table(name: &str, parent: Option<&str>) -> SchemaRef {
        let mut t = Table::new(name).column(Column::new("id", arrow_schema::DataType::Int64));
        if let Some(p) = parent {
            t = t.child_of(p);
        }
        t.schema()
    }

    /// Three families: `a` with a child, `b` alone, `c` with a child and a grandchild.
    fn families() -> Vec<SchemaRef> {
        vec![
            table("a", None),
            table("a_child", Some("a")),
            table("b", None),
            table("c", None),
            table("c_child", Some("c")),
            table("c_grandchild", Some("c_child")),
        ]
    }

    /// Every table, a skipped one and `skip_dependent_tables`: settings a cut must keep.
    fn everything() -> TableSelection {
        TableSelection {
            tables: vec!["*".into()],
            skip_tables: vec!["x".into()],
            skip_dependent_tables: true,
        }
    }

    /// Children and grandchildren go with their root, even when they were selected on their own
    /// (with `skip_dependent_tables`), and the other settings are kept.
    #[test]
    fn a_shard_takes_whole_families_of_tables() {
        let (tables, selection) = (families(), everything());
        let part = |num| {
            shard_selection(
                crate::runtime::Shard { num, total: 2 },
                &tables,
                selection.clone(),
            )
        };
        assert_eq!(part(1).tables, ["a", "a_child", "b"]);
        assert_eq!(part(2).tables, ["c", "c_child", "c_grandchild"]);
        assert_eq!(part(2).skip_tables, ["x"]);
        assert!(part(2).skip_dependent_tables);
    }

    /// Lanes of `workers` take the top-level tables round-robin, each with its family, so that
    /// together they take every table once; the other settings are kept.
    #[test]
    fn lanes_deal_whole_families_round_robin() {
        let mut tables = families();
        tables.push(table("d", None));
        assert_eq!(top_level(&tables), ["a", "b", "c", "d"]);
        let selection = everything();
        let lane = |lane, lanes| lane_selection(lane, lanes, &tables, selection.clone());
        assert_eq!(lane(0, 3).tables, ["a", "a_child", "d"]);
        assert_eq!(lane(1, 3).tables, ["b"]);
        assert_eq!(lane(2, 3).tables, ["c", "c_child", "c_grandchild"]);
        assert_eq!(lane(2, 3).skip_tables, ["x"]);
        assert!(lane(1, 3).skip_dependent_tables);
        assert_eq!(lane(0, 1).tables.len(), tables.len());
        assert!(lane(4, 5).tables.is_empty());
    }
}
