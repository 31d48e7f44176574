//! Native plugins over gRPC (CloudQuery plugin protocol v3): an executable started with `serve`
//! on a private Unix socket, or a plugin already running at an address. Either way the engine
//! sees the same [`Source`] and [`Destination`] as for a wasm component. Native plugins are not
//! sandboxed: they run with the user's own rights.

mod process;
mod state_backend;
pub(crate) use process::kill_all;

use std::collections::HashSet;
use std::path::Path;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use quarry_grpc::connect::{self, Address};
use quarry_grpc::pb::plugin as pb;
use quarry_grpc::pb::plugin::plugin_client::PluginClient;
use quarry_grpc::{MAX_RECORD_BYTES, code, payload};
use quarry_sdk::WriteMode;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use self::process::PluginProcess;

use super::{
    Connection, DeleteRequest, Destination, ErrorKind, Phase, Plugin, PluginError, PluginInfo,
    Source, SourceMessage, SyncInput, TableSelection, Transformer,
};

/// A plugin reached over gRPC.
pub struct GrpcPlugin {
    name: String,
    info: PluginInfo,
    client: PluginClient<Channel>,
    /// The process, when this host started it.
    process: Option<PluginProcess>,
    /// The open `Write` stream, between two flushes.
    writer: Option<Writer>,
    closed: bool,
}

struct Writer {
    tx: mpsc::Sender<pb::write::Request>,
    done: JoinHandle<Result<(), tonic::Status>>,
}

impl GrpcPlugin {
    /// Starts `executable` with `serve` and connects to it.
    pub async fn spawn(name: &str, executable: &Path) -> Result<Self, PluginError> {
        let (process, channel) = PluginProcess::start(name, executable).await?;
        Self::connected(name, channel, Some(process)).await
    }

    /// Connects to a plugin that is already running at `address`.
    pub async fn dial(name: &str, address: &str) -> Result<Self, PluginError> {
        let address = Address::parse(address);
        let channel = connect::dial(&address).await.map_err(|e| {
            PluginError::new(
                name,
                Phase::Load,
                ErrorKind::Unavailable,
                format!("cannot connect to {address}: {e}"),
            )
            .with_help("start the plugin with `serve --address ...` first, or fix `path`")
        })?;
        Self::connected(name, channel, None).await
    }

    async fn connected(
        name: &str,
        channel: Channel,
        process: Option<PluginProcess>,
    ) -> Result<Self, PluginError> {
        let mut plugin = GrpcPlugin {
            name: name.to_string(),
            info: PluginInfo::default(),
            client: connect::plugin_client(channel.clone()),
            process,
            writer: None,
            closed: false,
        };
        if let Err(e) = connect::negotiate(&channel).await {
            return Err(plugin
                .error(Phase::Load, ErrorKind::Load, e)
                .await
                .with_help("this plugin does not speak CloudQuery's plugin protocol v3"));
        }
        let mut client = plugin.client.clone();
        let plugin_name = match client.get_name(pb::get_name::Request {}).await {
            Ok(r) => r.into_inner().name,
            Err(status) => return Err(plugin.failed(Phase::Load, status).await),
        };
        let version = match client.get_version(pb::get_version::Request {}).await {
            Ok(r) => r.into_inner().version,
            Err(status) => return Err(plugin.failed(Phase::Load, status).await),
        };
        // Protocol v3 is unified: any plugin may be a source and a destination, and every
        // CloudQuery destination implements every write mode.
        plugin.info = PluginInfo {
            name: plugin_name,
            version: version.trim_start_matches('v').to_string(),
            description: String::new(),
            source: true,
            destination: true,
            transformer: true,
            write_modes: WriteMode::ALL.to_vec(),
            ..PluginInfo::default()
        };
        tracing::info!(
            plugin = name,
            "`{}` {} runs outside Quarry's sandbox (a gRPC plugin)",
            plugin.info.name,
            plugin.info.version
        );
        Ok(plugin)
    }

    /// An error of the plugin's, with what its process said last if it has exited.
    async fn error(&mut self, phase: Phase, kind: ErrorKind, message: String) -> PluginError {
        let mut message = message;
        if let Some(process) = &mut self.process
            && let Some(exit) = process.exited().await
        {
            message.push_str(&format!("; the plugin process {exit}"));
            process.drain_stderr().await;
            let last = process.last_output();
            if !last.is_empty() {
                message.push_str(&format!("; its last output: {}", last.join(" | ")));
            }
        }
        PluginError::new(&self.name, phase, kind, message)
    }

    async fn failed(&mut self, phase: Phase, status: tonic::Status) -> PluginError {
        let message = if status.message().is_empty() {
            format!("gRPC status {:?}", status.code())
        } else {
            status.message().to_string()
        };
        let kind = ErrorKind::Plugin(code::kind(status.code()));
        self.error(phase, kind, message).await
    }

    fn encode_error(&self, phase: Phase, e: impl std::fmt::Display) -> PluginError {
        PluginError::new(&self.name, phase, ErrorKind::Internal, e.to_string())
    }

    /// Sends one message on the open `Write` stream (opening it if needed). A stream the plugin
    /// ended reports the plugin's error.
    async fn send(
        &mut self,
        phase: Phase,
        message: pb::write::request::Message,
    ) -> Result<(), PluginError> {
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => {
                let (tx, rx) = mpsc::channel(4);
                let mut client = self.client.clone();
                let done =
                    tokio::spawn(
                        async move { client.write(ReceiverStream::new(rx)).await.map(|_| ()) },
                    );
                self.writer.insert(Writer { tx, done })
            }
        };
        let request = pb::write::Request {
            message: Some(message),
        };
        if writer.tx.send(request).await.is_ok() {
            return Ok(());
        }
        match self.finish_write(phase).await {
            Err(e) => Err(e),
            Ok(()) => Err(self
                .error(
                    phase,
                    ErrorKind::Internal,
                    "the plugin ended the write stream early".into(),
                )
                .await),
        }
    }

    /// Ends the open `Write` stream and waits for the plugin's answer: CloudQuery plugins write
    /// everything they were sent before they answer, so this is a flush.
    async fn finish_write(&mut self, phase: Phase) -> Result<(), PluginError> {
        let Some(Writer { tx, done }) = self.writer.take() else {
            return Ok(());
        };
        drop(tx);
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(status)) => Err(self.failed(phase, status).await),
            Err(e) => Err(self.encode_error(phase, format!("the write task failed: {e}"))),
        }
    }
}

#[async_trait::async_trait]
impl Plugin for GrpcPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn logged(&self) -> crate::telemetry::LogCounts {
        self.process
            .as_ref()
            .map(|p| p.log_counts())
            .unwrap_or_default()
    }

    async fn spec_schema(&mut self) -> Result<Option<String>, PluginError> {
        match self
            .client
            .get_spec_schema(pb::get_spec_schema::Request {})
            .await
        {
            Ok(r) => Ok(r.into_inner().json_schema.filter(|s| !s.trim().is_empty())),
            // Older plugins have no schema to give.
            Err(status) if status.code() == tonic::Code::Unimplemented => Ok(None),
            Err(status) => Err(self.failed(Phase::Init, status).await),
        }
    }

    async fn init(&mut self, spec_json: String) -> Result<(), PluginError> {
        let request = pb::init::Request {
            spec: spec_json.into_bytes(),
            no_connection: false,
            invocation_id: invocation_id(),
        };
        match self.client.init(request).await {
            Ok(_) => Ok(()),
            Err(status) => Err(self.failed(Phase::Init, status).await),
        }
    }

    async fn test_connection(&mut self, spec_json: String) -> Result<Connection, PluginError> {
        let request = pb::test_connection::Request {
            spec: spec_json.into_bytes(),
        };
        match self.client.test_connection(request).await {
            Ok(r) => {
                let r = r.into_inner();
                Ok(if r.success {
                    Connection::Succeeded
                } else {
                    Connection::Failed {
                        code: r.failure_code,
                        message: r.failure_description,
                    }
                })
            }
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                Ok(Connection::NotImplemented)
            }
            Err(status) => Err(self.failed(Phase::TestConnection, status).await),
        }
    }

    async fn close(&mut self) -> Result<(), PluginError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let written = self.finish_write(Phase::Close).await;
        let closed = match self.client.close(pb::close::Request {}).await {
            Ok(_) => Ok(()),
            Err(status) => Err(self.failed(Phase::Close, status).await),
        };
        if let Some(process) = &mut self.process {
            process.stop().await;
        }
        written.and(closed)
    }
}

/// A fresh id for one run, as CloudQuery's CLI sends (a random UUID).
pub fn invocation_id() -> String {
    let mut bytes = [0u8; 16];
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        ^ u128::from(std::process::id()) << 64;
    // Not a secret: a per-run label, unique enough from the clock and the process.
    let digest = <sha2::Sha256 as sha2::Digest>::digest(seed.to_le_bytes());
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut text = Vec::with_capacity(36);
    quarry_sdk::json::push_uuid(&bytes, &mut text);
    String::from_utf8_lossy(&text).into_owned()
}

#[async_trait::async_trait]
impl Source for GrpcPlugin {
    fn shards_itself(&self) -> bool {
        true
    }

    async fn tables(&mut self, s: &TableSelection) -> Result<Vec<SchemaRef>, PluginError> {
        let request = pb::get_tables::Request {
            tables: s.tables.clone(),
            skip_tables: s.skip_tables.clone(),
            skip_dependent_tables: s.skip_dependent_tables,
        };
        let tables = match self.client.get_tables(request).await {
            Ok(r) => r.into_inner().tables,
            Err(status) => return Err(self.failed(Phase::Tables, status).await),
        };
        tables
            .into_iter()
            .map(|bytes| {
                let schema = payload::decode_schema(bytes)
                    .map_err(|e| self.encode_error(Phase::Tables, e))?;
                super::check_table_name(quarry_sdk::table_name(&schema))
                    .map_err(|e| self.encode_error(Phase::Tables, e))?;
                Ok(schema)
            })
            .collect()
    }

    async fn sync(
        &mut self,
        s: &TableSelection,
        deterministic_cq_id: bool,
        state: SyncInput,
        out: mpsc::Sender<SourceMessage>,
    ) -> Result<(), PluginError> {
        let shard = state.shard.map(|s| pb::sync::request::Shard {
            num: s.num as i32,
            total: s.total as i32,
        });
        // A CloudQuery source reads and writes its cursors through a state backend it dials: one
        // this host serves on a local socket, so only to a plugin it started itself.
        let backend = match &state.table {
            Some(_) if self.process.is_none() => {
                tracing::warn!(
                    plugin = %self.name,
                    "this source runs elsewhere (`registry: grpc`) and cannot reach a state backend Quarry serves: its cursors are not kept, so each sync is a full one"
                );
                None
            }
            Some(table) => Some(
                state_backend::StateBackend::start(table, state.cursors)
                    .await
                    .map_err(|e| {
                        PluginError::new(&self.name, Phase::Sync, ErrorKind::Internal, e)
                    })?,
            ),
            None => None,
        };
        let request = pb::sync::Request {
            tables: s.tables.clone(),
            skip_tables: s.skip_tables.clone(),
            skip_dependent_tables: s.skip_dependent_tables,
            deterministic_cq_id,
            with_error_messages: true,
            backend: backend.as_ref().map(|b| pb::sync::BackendOptions {
                table_name: state.table.clone().unwrap_or_default(),
                connection: b.connection(),
            }),
            // Cursors on the sync stream come after the rows they cover.
            supports_checkpoints: backend.is_some(),
            shard,
        };
        let synced = self.stream_sync(request, &out).await;
        let Some(backend) = backend else {
            return synced;
        };
        let written = backend.stop().await;
        if synced.is_err() {
            if !written.is_empty() {
                tracing::debug!(plugin = %self.name, cursors = written.len(), "the sync failed: the cursors the source wrote to its backend are not kept");
            }
            return synced;
        }
        // Written beside the sync stream: only now is every row sent before them read.
        for (key, value) in written {
            if out.send(SourceMessage::State { key, value }).await.is_err() {
                break;
            }
        }
        Ok(())
    }
}

impl GrpcPlugin {
    /// Sends the sync request and forwards the stream's messages to `out` until it ends.
    async fn stream_sync(
        &mut self,
        request: pb::sync::Request,
        out: &mpsc::Sender<SourceMessage>,
    ) -> Result<(), PluginError> {
        let mut stream = match self.client.sync(request).await {
            Ok(r) => r.into_inner(),
            Err(status) => return Err(self.failed(Phase::Sync, status).await),
        };
        let cancelled = |name: &str| {
            PluginError::new(
                name,
                Phase::Sync,
                ErrorKind::Unavailable,
                "the sync was cancelled: no destination is taking rows",
            )
        };
        let mut migrated: HashSet<String> = HashSet::new();
        loop {
            let response = match stream.message().await {
                Ok(Some(response)) => response,
                Ok(None) => return Ok(()),
                Err(status) => return Err(self.failed(Phase::Sync, status).await),
            };
            let messages = accept_sync_response(response.message, &mut migrated)
                .map_err(|e| self.encode_error(Phase::Sync, e))?;
            for message in messages {
                if out.send(message).await.is_err() {
                    return Err(cancelled(&self.name));
                }
            }
        }
    }
}

/// Checks one message of a gRPC source's sync stream and turns it into the engine's messages;
/// `migrated` holds the tables seen so far. The bytes come from a plugin: any of them is an
/// error or messages, never a panic (the gRPC fuzz target holds it to that).
pub(crate) fn accept_sync_response(
    message: Option<pb::sync::response::Message>,
    migrated: &mut HashSet<String>,
) -> Result<Vec<SourceMessage>, String> {
    use pb::sync::response::Message as M;
    Ok(match message {
        Some(M::MigrateTable(m)) => {
            let schema = payload::decode_schema(m.table).map_err(|e| e.to_string())?;
            super::check_table_name(quarry_sdk::table_name(&schema))?;
            migrated.insert(quarry_sdk::table_name(&schema).to_string());
            vec![SourceMessage::MigrateTable(schema)]
        }
        Some(M::Insert(m)) => {
            let ipc_bytes = m.record.len();
            let batch = payload::decode_record(m.record).map_err(|e| e.to_string())?;
            let table = quarry_sdk::table_name(batch.schema_ref()).to_string();
            if table.is_empty() {
                return Err("it sent a record without a `cq:table_name` in its schema".into());
            }
            super::check_table_name(&table)?;
            let mut messages = Vec::with_capacity(2);
            // Some SDKs send a table's rows without a migrate message first.
            if migrated.insert(table) {
                messages.push(SourceMessage::MigrateTable(batch.schema()));
            }
            messages.push(SourceMessage::Insert { batch, ipc_bytes });
            messages
        }
        Some(M::DeleteRecord(m)) => {
            let request = payload::delete_request_from_pb(m.table_name, m.where_clause)
                .map_err(|e| e.to_string())?;
            vec![SourceMessage::DeleteRecord(request)]
        }
        Some(M::Error(m)) => vec![SourceMessage::TableError {
            table: m.table_name,
            message: m.error,
        }],
        Some(M::Checkpoint(m)) => {
            let batch = payload::decode_record(m.record).map_err(|e| e.to_string())?;
            quarry_grpc::state_client::cursors_of(&batch)?
                .into_iter()
                .map(|(key, value)| SourceMessage::State { key, value })
                .collect()
        }
        None => Vec::new(),
    })
}

#[async_trait::async_trait]
impl Destination for GrpcPlugin {
    fn reports_tables(&self) -> bool {
        // Protocol v3 has no way to ask; the plugin decides, told whether `migrate_mode` is forced.
        false
    }

    async fn existing_table(&mut self, _: &SchemaRef) -> Result<Option<SchemaRef>, PluginError> {
        Ok(None)
    }

    async fn migrate_table(&mut self, schema: &SchemaRef, force: bool) -> Result<(), PluginError> {
        let table =
            payload::encode_schema(schema).map_err(|e| self.encode_error(Phase::Migrate, e))?;
        self.send(
            Phase::Migrate,
            pb::write::request::Message::MigrateTable(pb::write::MessageMigrateTable {
                table,
                migrate_force: force,
            }),
        )
        .await
    }

    async fn insert(&mut self, batch: &RecordBatch) -> Result<(), PluginError> {
        let records = payload::encode_records(batch, MAX_RECORD_BYTES)
            .map_err(|e| self.encode_error(Phase::Write, e))?;
        for record in records {
            self.send(
                Phase::Write,
                pb::write::request::Message::Insert(pb::write::MessageInsert { record }),
            )
            .await?;
        }
        Ok(())
    }

    async fn delete_stale(
        &mut self,
        table: &str,
        source_name: &str,
        sync_time_us: i64,
    ) -> Result<(), PluginError> {
        let sync_time = prost_types::Timestamp {
            seconds: sync_time_us.div_euclid(1_000_000),
            nanos: (sync_time_us.rem_euclid(1_000_000) * 1_000) as i32,
        };
        self.send(
            Phase::Write,
            pb::write::request::Message::Delete(pb::write::MessageDeleteStale {
                table: Vec::new(),
                source_name: source_name.to_string(),
                sync_time: Some(sync_time),
                table_name: table.to_string(),
            }),
        )
        .await
    }

    async fn delete_record(&mut self, request: &DeleteRequest) -> Result<(), PluginError> {
        let where_clause = payload::delete_request_to_pb(request)
            .map_err(|e| self.encode_error(Phase::Write, e))?;
        self.send(
            Phase::Write,
            pb::write::request::Message::DeleteRecord(pb::write::MessageDeleteRecord {
                table_name: request.table.clone(),
                where_clause,
                table_relations: Vec::new(),
            }),
        )
        .await
    }

    async fn flush(&mut self) -> Result<(), PluginError> {
        self.finish_write(Phase::Flush).await
    }

    async fn read(&mut self, table: &SchemaRef) -> Result<Vec<RecordBatch>, PluginError> {
        // `Read` is a call of its own: what went down the open `Write` stream (the table's
        // migration, say) must be applied first, or the read races it.
        self.finish_write(Phase::Write).await?;
        let request = pb::read::Request {
            table: payload::encode_schema(table).map_err(|e| self.encode_error(Phase::Write, e))?,
        };
        let mut stream = match self.client.read(request).await {
            Ok(r) => r.into_inner(),
            Err(status) => return Err(self.failed(Phase::Write, status).await),
        };
        let mut batches = Vec::new();
        loop {
            match stream.message().await {
                Ok(Some(r)) => batches.push(
                    payload::decode_record(r.record)
                        .map_err(|e| self.encode_error(Phase::Write, e))?,
                ),
                Ok(None) => return Ok(batches),
                Err(status) => return Err(self.failed(Phase::Write, status).await),
            }
        }
    }
}

#[async_trait::async_trait]
impl Transformer for GrpcPlugin {
    async fn transform_schema(&mut self, schema: &SchemaRef) -> Result<SchemaRef, PluginError> {
        let request = pb::transform_schema::Request {
            schema: payload::encode_schema(schema)
                .map_err(|e| self.encode_error(Phase::Transform, e))?,
        };
        let mut client = self.client.clone();
        let answer = match self
            .within_call_timeout(async move { client.transform_schema(request).await })
            .await?
        {
            Ok(r) => r.into_inner().schema,
            Err(status) => return Err(self.failed(Phase::Transform, status).await),
        };
        let schema = payload::decode_schema(answer).map_err(|e| {
            self.encode_error(Phase::Transform, format!("its TransformSchema answer: {e}"))
        })?;
        self.checked_table(&schema)?;
        Ok(schema)
    }

    /// One `Transform` stream per batch: the batch goes down, the stream is half-closed, and
    /// every record the plugin answers before it ends the stream is the batch's output. (Protocol
    /// v3 does not pair outputs with inputs, so only the end of a stream says a batch is done.)
    async fn transform(&mut self, batch: &RecordBatch) -> Result<Vec<RecordBatch>, PluginError> {
        let requests: Vec<pb::transform::Request> =
            payload::encode_records(batch, MAX_RECORD_BYTES)
                .map_err(|e| self.encode_error(Phase::Transform, e))?
                .into_iter()
                .map(|record| pb::transform::Request { record })
                .collect();
        let mut client = self.client.clone();
        let answered = self
            .within_call_timeout(async move {
                let mut stream = client
                    .transform(tokio_stream::iter(requests))
                    .await?
                    .into_inner();
                let mut records = Vec::new();
                while let Some(r) = stream.message().await? {
                    records.push(r.record);
                }
                Ok::<_, tonic::Status>(records)
            })
            .await?;
        let records = match answered {
            Ok(records) => records,
            Err(status) => return Err(self.failed(Phase::Transform, status).await),
        };
        let mut batches = Vec::with_capacity(records.len());
        for record in records {
            let batch = payload::decode_record(record)
                .map_err(|e| self.encode_error(Phase::Transform, e))?;
            self.checked_table(batch.schema_ref())?;
            batches.push(batch);
        }
        Ok(batches)
    }
}

impl GrpcPlugin {
    /// A transformer's call, stopped after `QUARRY_CALL_TIMEOUT` (as a component's is): a stuck
    /// transformer must not hold its destination, and the source, forever.
    async fn within_call_timeout<T>(
        &self,
        call: impl Future<Output = T>,
    ) -> Result<T, PluginError> {
        let Some(limit) = super::call_timeout() else {
            return Ok(call.await);
        };
        tokio::time::timeout(limit, call).await.map_err(|_| {
            PluginError::new(
                &self.name,
                Phase::Transform,
                ErrorKind::Timeout,
                format!(
                    "one transform call ran past {}: the plugin seems stuck, and its destination was stopped so that the others go on",
                    super::humantime(limit)
                ),
            )
            .with_help("if one batch legitimately takes longer, raise the limit with QUARRY_CALL_TIMEOUT")
        })
    }

    /// A schema a transformer answered names its table as every plugin's output must.
    fn checked_table(&self, schema: &SchemaRef) -> Result<(), PluginError> {
        super::check_table_name(quarry_sdk::table_name(schema))
            .map_err(|e| self.encode_error(Phase::Transform, format!("its answer is refused: {e}")))
    }
}
