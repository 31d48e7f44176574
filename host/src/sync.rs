//! The sync engine: runs one source and streams its messages to each of its destinations.
//!
//! The source runs on this task; each destination runs on a task of its own behind a bounded
//! queue, so a slow destination holds the source back (the source's `emit` waits) instead of
//! buffering without bound, and source and destinations use different cores. The engine adds
//! the internal columns and counts; it does no per-row work. Every failure is recorded in the
//! summary; a failing destination stops only itself.

pub mod batcher;
mod columns;
pub mod migrate;
pub mod state;
pub mod summary;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use tokio::sync::mpsc;

pub use columns::{SOURCE_NAME, SYNC_TIME};
pub use summary::{DestinationSummary, SourceSummary, TableSummary};

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
}

/// A source run: which source, which tables, which destinations (indices into the slots).
pub struct SourceRun<'a> {
    pub name: &'a str,
    pub plugin: &'a mut dyn Source,
    pub selection: TableSelection,
    pub deterministic_cq_id: bool,
    /// Where the source's cursors are kept, if anywhere.
    pub state: Option<StateBackend>,
}

/// A source's state backend: a table in one of its destinations, and the cursors read from it.
pub struct StateBackend {
    /// The destination's name; it must be one of the run's destinations.
    pub destination: String,
    pub table: String,
    pub cursors: HashMap<String, String>,
    /// How often, at most, cursors are saved while the source runs (always at its end).
    pub interval: Duration,
}

#[derive(Clone)]
enum WriteMessage {
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

/// The schema a destination is migrated to for a source table: the internal columns, then the
/// write mode and `pk_mode` applied.
pub fn destination_schema(
    schema: &SchemaRef,
    write_mode: WriteMode,
    pk_mode: PkMode,
) -> Result<SchemaRef, String> {
    migrate::destination_schema(&columns::extended_schema(schema), write_mode, pk_mode)
}

/// The sync time of a run starting now, in microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Runs `source` into `destinations` and returns them with the run's summary.
pub async fn run(
    source: SourceRun<'_>,
    destinations: Vec<DestinationSlot>,
    sync_time_us: i64,
) -> (Vec<DestinationSlot>, SourceSummary) {
    let started = Instant::now();
    let mut summary = SourceSummary::new(source.name);
    let mut columns = columns::InternalColumns::new(source.name, sync_time_us);

    let (backend, cursors) = match source.state {
        Some(b) => (
            destinations
                .iter()
                .position(|d| d.name == b.destination)
                .map(|i| (i, b.table, b.interval)),
            b.cursors,
        ),
        None => (None, HashMap::new()),
    };
    let mut queues = Vec::new();
    let mut writers = Vec::new();
    for slot in destinations {
        let (tx, rx) = mpsc::channel::<WriteMessage>(QUEUE);
        queues.push(Some(tx));
        writers.push(tokio::spawn(write(slot, rx)));
    }

    let (tx, mut rx) = mpsc::channel::<SourceMessage>(QUEUE);
    let sync = source
        .plugin
        .sync(&source.selection, source.deterministic_cq_id, cursors, tx);
    let forward = async {
        let mut tables: BTreeMap<String, TableSummary> = BTreeMap::new();
        let mut incremental = Vec::new();
        let mut engine_error = None;
        let mut table_errors = Vec::new();
        // The cursors the source has set; `unsaved` when they changed since the last checkpoint.
        let mut cursors: BTreeMap<String, String> = BTreeMap::new();
        let mut unsaved = false;
        let mut last_checkpoint = Instant::now();
        while let Some(message) = rx.recv().await {
            let outgoing = match message {
                SourceMessage::MigrateTable(schema) => {
                    let table = table_name(&schema);
                    tables.entry(table.clone()).or_default().seen();
                    if is_incremental(&schema) && !incremental.contains(&table) {
                        incremental.push(table.clone());
                    }
                    WriteMessage::Migrate(columns.migrate(&table, &schema))
                }
                SourceMessage::Insert { batch, ipc_bytes } => {
                    let table = table_name(batch.schema_ref());
                    let stats = tables.entry(table.clone()).or_default();
                    stats.seen();
                    stats.rows += batch.num_rows() as u64;
                    stats.ipc_bytes += ipc_bytes as u64;
                    stats.batches += 1;
                    match columns.extend(&table, &batch) {
                        Ok(batch) => WriteMessage::Insert(batch),
                        Err(e) => {
                            engine_error = Some(format!("source `{}`: {e}", source.name));
                            break;
                        }
                    }
                }
                SourceMessage::DeleteRecord(request) => {
                    let stats = tables.entry(request.table.clone()).or_default();
                    stats.seen();
                    stats.delete_requests += 1;
                    WriteMessage::Delete(request)
                }
                SourceMessage::TableError { table, message } => {
                    tables.entry(table.clone()).or_default().seen();
                    table_errors.push(
                        PluginError::new(source.name, Phase::Sync, ErrorKind::Internal, message)
                            .for_table(&table),
                    );
                    continue;
                }
                SourceMessage::State { key, value } => {
                    cursors.insert(key, value);
                    unsaved = true;
                    if let Some((at, table, interval)) = &backend
                        && last_checkpoint.elapsed() >= *interval
                    {
                        checkpoint(&mut queues, *at, table, &cursors).await;
                        unsaved = false;
                        last_checkpoint = Instant::now();
                    }
                    continue;
                }
            };
            let mut open = 0;
            for queue in queues.iter_mut() {
                if let Some(tx) = queue {
                    if tx.send(outgoing.clone()).await.is_err() {
                        // The destination stopped; its task reports why.
                        *queue = None;
                    } else {
                        open += 1;
                    }
                }
            }
            if open == 0 {
                break;
            }
        }
        // Dropping the receiver cancels the source if it is still sending.
        drop(rx);
        // The last cursors describe every row sent: saved once all of them are flushed.
        if let Some((at, table, _)) = &backend
            && unsaved
            && engine_error.is_none()
        {
            checkpoint(&mut queues, *at, table, &cursors).await;
        }
        queues.clear();
        (tables, engine_error, table_errors, incremental)
    };
    let (sync_result, (tables, engine_error, table_errors, incremental)) =
        tokio::join!(sync, forward);
    summary.tables = tables;

    let mut slots = Vec::new();
    for writer in writers {
        match writer.await {
            Ok((slot, result)) => {
                let mut report = DestinationSummary::new(&slot.name);
                if let Err(e) = result {
                    report.error = Some(e.to_string());
                    summary.plugin_errors.push(e);
                }
                summary.destinations.push(report);
                slots.push(slot);
            }
            Err(e) => summary
                .errors
                .push(format!("a destination task failed: {e}")),
        }
    }
    if let Some(e) = engine_error {
        summary.errors.push(e);
    }
    match sync_result {
        // A source cancelled because every destination failed reports the destinations' errors.
        Err(e)
            if summary.plugin_errors.is_empty()
                || e.kind != crate::runtime::ErrorKind::Unavailable =>
        {
            summary.plugin_errors.insert(0, e)
        }
        _ => {}
    }
    summary.plugin_errors.extend(table_errors);

    if summary.ok() {
        delete_stale(
            &mut slots,
            &mut summary,
            source.name,
            sync_time_us,
            &incremental,
        )
        .await;
    }
    summary.count_table_errors();
    summary.duration = started.elapsed();
    (slots, summary)
}

/// Drives one destination from its queue, batching its rows, then writes what is pending and
/// flushes. On the first failure it stops taking messages (the engine sees the queue close) but
/// still flushes, so what was written before the failure is kept.
async fn write(
    mut slot: DestinationSlot,
    mut rx: mpsc::Receiver<WriteMessage>,
) -> (DestinationSlot, Result<(), PluginError>) {
    let result = drive(&mut slot, &mut rx).await;
    // Checkpoints this destination will not reach fail: their cursors are not saved.
    rx.close();
    while let Some(message) = rx.recv().await {
        if let WriteMessage::Checkpoint { checkpoint, .. } = message {
            checkpoint.ack(false);
        }
    }
    let flushed = slot.plugin.flush().await;
    (slot, result.and(flushed))
}

async fn drive(
    slot: &mut DestinationSlot,
    rx: &mut mpsc::Receiver<WriteMessage>,
) -> Result<(), PluginError> {
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
                    write_batch(slot, &batch).await?;
                }
                continue;
            }
        };
        match message {
            Some(WriteMessage::Migrate(schema)) => {
                let table = table_name(&schema);
                // Rows batched under an earlier schema of the table go first.
                flush_table(slot, &mut batcher, &table).await?;
                let wanted = migrate::destination_schema(&schema, slot.write_mode, slot.pk_mode)
                    .map_err(|e| {
                        PluginError::new(&slot.name, Phase::Migrate, ErrorKind::InvalidSpec, e)
                            .for_table(&table)
                    })?;
                migrate::migrate(slot.plugin.as_mut(), &slot.name, slot.migrate_mode, &wanted)
                    .await
                    .map_err(|e| e.for_table(&table))?;
                if Arc::ptr_eq(&wanted, &schema) {
                    schemas.remove(&table);
                } else {
                    schemas.insert(table, wanted);
                }
            }
            Some(WriteMessage::Insert(batch)) => {
                let table = table_name(batch.schema_ref());
                let batch = match schemas.get(&table) {
                    Some(schema) => RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                        .map_err(|e| engine_error(&slot.name, format!("table `{table}`: {e}")))?,
                    None => batch,
                };
                let ready = batcher
                    .push(&table, batch)
                    .map_err(|e| engine_error(&slot.name, e))?;
                for batch in ready {
                    write_batch(slot, &batch).await?;
                }
            }
            Some(WriteMessage::Delete(request)) => {
                // The table's rows sent before the request must be written before it applies.
                flush_table(slot, &mut batcher, &request.table).await?;
                slot.plugin
                    .delete_record(&request)
                    .await
                    .map_err(|e| e.for_table(&request.table))?;
            }
            Some(WriteMessage::Checkpoint { checkpoint, save }) => {
                let mut flushed = write_pending(slot, &mut batcher).await;
                if flushed.is_ok() {
                    flushed = slot.plugin.flush().await;
                }
                checkpoint.ack(flushed.is_ok());
                flushed?;
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
    write_pending(slot, &mut batcher).await
}

/// Writes every batch the batcher holds.
async fn write_pending(
    slot: &mut DestinationSlot,
    batcher: &mut batcher::Batcher,
) -> Result<(), PluginError> {
    let batches = batcher
        .take_all()
        .map_err(|e| PluginError::new(&slot.name, Phase::Write, ErrorKind::Internal, e))?;
    for batch in batches {
        write_batch(slot, &batch).await?;
    }
    Ok(())
}

async fn write_batch(slot: &mut DestinationSlot, batch: &RecordBatch) -> Result<(), PluginError> {
    slot.plugin
        .insert(batch)
        .await
        .map_err(|e| e.for_table(&table_name(batch.schema_ref())))
}

/// Writes the rows of `table` the batcher holds.
async fn flush_table(
    slot: &mut DestinationSlot,
    batcher: &mut batcher::Batcher,
    table: &str,
) -> Result<(), PluginError> {
    let pending = batcher
        .take(table)
        .map_err(|e| PluginError::new(&slot.name, Phase::Write, ErrorKind::Internal, e))?;
    if let Some(batch) = pending {
        write_batch(slot, &batch).await?;
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
    let checkpoint = state::Checkpoint::new(open);
    let save = state::Save {
        table: table.to_string(),
        cursors: Arc::new(cursors.clone()),
    };
    for (i, queue) in queues.iter_mut().enumerate() {
        let Some(tx) = queue else { continue };
        let message = WriteMessage::Checkpoint {
            checkpoint: checkpoint.clone(),
            save: (i == backend).then(|| save.clone()),
        };
        if tx.send(message).await.is_err() {
            checkpoint.ack(false);
            *queue = None;
        }
    }
}

fn is_incremental(schema: &SchemaRef) -> bool {
    schema
        .metadata()
        .get(quarry_sdk::metadata::TABLE_INCREMENTAL)
        .is_some_and(|v| v == quarry_sdk::metadata::TRUE)
}

/// Deletes, in each `overwrite-delete-stale` destination, the rows of this source's tables that
/// this sync did not write. Incremental tables are left alone: a sync sends only their new rows.
async fn delete_stale(
    slots: &mut [DestinationSlot],
    summary: &mut SourceSummary,
    source: &str,
    sync_time_us: i64,
    incremental: &[String],
) {
    let tables: Vec<String> = summary
        .tables
        .keys()
        .filter(|t| !incremental.contains(t))
        .cloned()
        .collect();
    for slot in slots
        .iter_mut()
        .filter(|s| s.write_mode == WriteMode::OverwriteDeleteStale)
    {
        let mut deleted = Ok(());
        for table in &tables {
            deleted = slot
                .plugin
                .delete_stale(table, source, sync_time_us)
                .await
                .map_err(|e| e.for_table(table));
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
