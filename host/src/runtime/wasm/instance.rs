//! One running plugin instance: every call into it goes through [`WasmPlugin::run`], which
//! applies the deadline and turns traps, timeouts and memory refusals into errors that name the
//! plugin and the limit. After a trap or a timeout the store is never entered again.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use tokio::sync::mpsc;
use tokio::time::Instant;
use wasmtime::Store;

use super::bindings::exports::quarry::plugin::{destination, plugin, source, transformer};
use super::bindings::quarry::plugin::types as wit;
use super::{PluginState, imports};
use crate::runtime::{
    Connection, DeleteRequest, Destination, ErrorKind, Phase, Plugin, PluginError, PluginInfo,
    Source, SourceMessage, SyncInput, TableSelection, Transformer,
};
use crate::sandbox::{PluginOutput, human_bytes};

pub(super) struct Guests {
    pub(super) plugin: plugin::Guest,
    pub(super) source: Option<source::Guest>,
    pub(super) destination: Option<destination::Guest>,
    pub(super) transformer: Option<transformer::Guest>,
}

type CallFuture<'a, R> =
    Pin<Box<dyn Future<Output = wasmtime::Result<Result<R, wit::Error>>> + Send + 'a>>;

/// One running instance of a plugin.
pub struct WasmPlugin {
    pub(super) name: String,
    pub(super) store: Store<PluginState>,
    pub(super) guests: Option<Arc<Guests>>,
    pub(super) info: PluginInfo,
    pub(super) deadline: Option<Instant>,
    pub(super) timeout: Option<Duration>,
    /// Set once the store is unusable (a trap, a timeout): every later call fails with it.
    pub(super) failed: Option<PluginError>,
    pub(super) stdout: PluginOutput,
    pub(super) stderr: PluginOutput,
}

impl WasmPlugin {
    pub(super) fn has_source(&self) -> bool {
        self.guests.as_ref().is_some_and(|g| g.source.is_some())
    }

    pub(super) fn has_destination(&self) -> bool {
        self.guests
            .as_ref()
            .is_some_and(|g| g.destination.is_some())
    }

    pub(super) fn has_transformer(&self) -> bool {
        self.guests
            .as_ref()
            .is_some_and(|g| g.transformer.is_some())
    }

    /// Runs one call into the guest under the plugin's deadline, and turns every way it can fail
    /// into a [`PluginError`] that names the plugin, the phase and the limit involved.
    pub(super) async fn run<R>(
        &mut self,
        phase: Phase,
        call: impl for<'a> FnOnce(&'a mut Store<PluginState>) -> CallFuture<'a, R>,
    ) -> Result<R, PluginError> {
        if let Some(failed) = &self.failed {
            return Err(failed.clone());
        }
        // A destination's (or a transformer's) calls each handle one batch or one table: one
        // that runs far longer than any batch should is stuck, and is stopped so that it cannot
        // stall the others.
        let call_limit = matches!(
            phase,
            Phase::Write | Phase::Flush | Phase::Close | Phase::Transform
        )
        .then(crate::runtime::call_timeout)
        .flatten();
        let call_deadline = call_limit.map(|limit| Instant::now() + limit);
        let deadline = match (self.deadline, call_deadline) {
            (Some(run), Some(call)) => Some(run.min(call)),
            (run, call) => run.or(call),
        };
        let future = call(&mut self.store);
        let outcome = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
            None => Some(future.await),
        };
        let error = match outcome {
            Some(Ok(Ok(value))) => return Ok(value),
            Some(Ok(Err(e))) => return Err(self.plugin_error(phase, e)),
            Some(Err(trap)) => self.trap_error(phase, trap),
            None if deadline == call_deadline && self.deadline != deadline => {
                let limit = call_limit
                    .map(crate::runtime::humantime)
                    .unwrap_or_default();
                PluginError::new(
                    &self.name,
                    phase,
                    ErrorKind::Timeout,
                    format!(
                        "one {phase} call ran past {limit}: the plugin seems stuck, and was stopped so that the other destinations go on"
                    ),
                )
                .with_help(format!(
                    "if one batch legitimately takes longer, raise the limit with QUARRY_CALL_TIMEOUT (now {limit})"
                ))
            }
            None => {
                let limit = self
                    .timeout
                    .map(crate::runtime::humantime)
                    .unwrap_or_default();
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
    pub(super) async fn guard<R>(
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
        let mut kind = ErrorKind::Plugin(e.kind.into());
        let mut message = e.message;
        if let Some(refused) = self.store.data_mut().refused.take() {
            message = format!("{refused} (the plugin then said: {message})");
        }
        // A request the sandbox denied explains the failure, whether or not the plugin quoted it.
        if let Some(denied) = self.store.data().outbound.take_denial() {
            kind = ErrorKind::Unauthorized;
            if !message.contains(&denied) {
                message = format!("{denied} (the plugin then said: {message})");
            }
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
        if format!("{trap:#}").contains("resource table has no free keys") {
            return PluginError::new(
                &self.name,
                phase,
                ErrorKind::Trap,
                format!(
                    "it held more than {} handles at once (open files, sockets, streams), the most a plugin may",
                    crate::sandbox::MAX_HANDLES
                ),
            )
            .with_help("a plugin should close what it no longer uses; this one leaks or hoards them");
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
}

#[async_trait::async_trait]
impl Plugin for WasmPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn logged(&self) -> crate::telemetry::LogCounts {
        self.store.data().log_counts
    }

    async fn spec_schema(&mut self) -> Result<Option<String>, PluginError> {
        self.guard(Phase::Init, |store, g| {
            Box::pin(async move { g.plugin.call_spec_schema(store).await.map(Ok) })
        })
        .await
        .map(Some)
    }

    async fn init(&mut self, spec_json: String) -> Result<(), PluginError> {
        self.guard(Phase::Init, move |store, g| {
            Box::pin(async move { g.plugin.call_init(store, &spec_json).await })
        })
        .await
    }

    async fn test_connection(&mut self, spec_json: String) -> Result<Connection, PluginError> {
        let tested = match self.init(spec_json).await {
            Ok(()) => {
                self.guard(Phase::TestConnection, |store, g| {
                    Box::pin(async move { g.plugin.call_test_connection(store).await })
                })
                .await
            }
            Err(e) => Err(e),
        };
        match tested {
            Ok(()) => Ok(Connection::Succeeded),
            Err(e) if e.kind == ErrorKind::NotSupported => Ok(Connection::NotImplemented),
            Err(e) if e.kind.is_failure_of_the_run() => Err(e),
            Err(e) => Ok(Connection::Failed {
                code: e.kind.code().to_string(),
                message: e.message,
            }),
        }
    }

    async fn close(&mut self) -> Result<(), PluginError> {
        // A plugin that failed was reported by the call that failed; its store is not entered
        // again, and the failure is not reported a second time as a failure to close.
        if self.failed.is_some() {
            self.finish_output();
            return Ok(());
        }
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
        let code = code.to_string();
        return if code.starts_with("wasm trap") {
            code
        } else {
            format!("wasm trap: {code}")
        };
    }
    format!("{trap:#}")
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
        sync_state: SyncInput,
        out: mpsc::Sender<SourceMessage>,
    ) -> Result<(), PluginError> {
        if !self.has_source() {
            return Err(not_a(&self.name, Phase::Sync, "source"));
        }
        let state = self.store.data_mut();
        state.sink = Some(out);
        state.cursors = sync_state.cursors;
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
}

#[async_trait::async_trait]
impl Destination for WasmPlugin {
    async fn existing_table(
        &mut self,
        wanted: &SchemaRef,
    ) -> Result<Option<SchemaRef>, PluginError> {
        let bytes = imports::encode_schema(wanted)
            .map_err(|e| PluginError::new(&self.name, Phase::Migrate, ErrorKind::Internal, e))?;
        let existing = self
            .guard(Phase::Migrate, move |store, g| {
                Box::pin(async move {
                    match &g.destination {
                        Some(d) => d.call_existing_table(store, &bytes).await,
                        None => Ok(Err(no_destination())),
                    }
                })
            })
            .await?;
        existing
            .map(|bytes| {
                imports::decode_schema(bytes).map_err(|e| {
                    PluginError::new(
                        &self.name,
                        Phase::Migrate,
                        ErrorKind::Internal,
                        format!("its existing-table answer: {e}"),
                    )
                })
            })
            .transpose()
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

    async fn delete_record(&mut self, request: &DeleteRequest) -> Result<(), PluginError> {
        let request = imports::delete_request_to_wit(request)
            .map_err(|e| PluginError::new(&self.name, Phase::Write, ErrorKind::Internal, e))?;
        self.guard(Phase::Write, move |store, g| {
            Box::pin(async move {
                match &g.destination {
                    Some(d) => d.call_delete_record(store, &request).await,
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

    async fn read(&mut self, table: &SchemaRef) -> Result<Vec<RecordBatch>, PluginError> {
        let bytes = imports::encode_schema(table)
            .map_err(|e| PluginError::new(&self.name, Phase::Write, ErrorKind::Internal, e))?;
        let records = self
            .guard(Phase::Write, move |store, g| {
                Box::pin(async move {
                    match &g.destination {
                        Some(d) => d.call_read(store, &bytes).await,
                        None => Ok(Err(no_destination())),
                    }
                })
            })
            .await?;
        records
            .into_iter()
            .map(|bytes| {
                imports::decode_batch(bytes)
                    .map_err(|e| PluginError::new(&self.name, Phase::Write, ErrorKind::Internal, e))
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl Transformer for WasmPlugin {
    async fn transform_schema(&mut self, schema: &SchemaRef) -> Result<SchemaRef, PluginError> {
        if !self.info.transformer {
            return Err(not_a(&self.name, Phase::Transform, "transformer"));
        }
        let bytes = imports::encode_schema(schema)
            .map_err(|e| PluginError::new(&self.name, Phase::Transform, ErrorKind::Internal, e))?;
        let answer = self
            .guard(Phase::Transform, move |store, g| {
                Box::pin(async move {
                    match &g.transformer {
                        Some(t) => t.call_transform_schema(store, &bytes).await,
                        None => Ok(Err(no_transformer())),
                    }
                })
            })
            .await?;
        imports::decode_schema(answer).map_err(|e| {
            PluginError::new(
                &self.name,
                Phase::Transform,
                ErrorKind::Internal,
                format!("its transform-schema answer: {e}"),
            )
        })
    }

    async fn transform(&mut self, batch: &RecordBatch) -> Result<Vec<RecordBatch>, PluginError> {
        if !self.info.transformer {
            return Err(not_a(&self.name, Phase::Transform, "transformer"));
        }
        let bytes = imports::encode_batch(batch)
            .map_err(|e| PluginError::new(&self.name, Phase::Transform, ErrorKind::Internal, e))?;
        let answer = self
            .guard(Phase::Transform, move |store, g| {
                Box::pin(async move {
                    match &g.transformer {
                        Some(t) => t.call_transform(store, &bytes).await,
                        None => Ok(Err(no_transformer())),
                    }
                })
            })
            .await?;
        answer
            .into_iter()
            .map(|bytes| {
                imports::decode_batch(bytes).map_err(|e| {
                    PluginError::new(
                        &self.name,
                        Phase::Transform,
                        ErrorKind::Internal,
                        format!("a batch it transformed: {e}"),
                    )
                })
            })
            .collect()
    }
}

fn no_transformer() -> wit::Error {
    wit::Error {
        kind: wit::ErrorKind::NotSupported,
        message: "it is not a transformer plugin".into(),
    }
}

fn no_destination() -> wit::Error {
    wit::Error {
        kind: wit::ErrorKind::NotSupported,
        message: "it is not a destination plugin".into(),
    }
}
