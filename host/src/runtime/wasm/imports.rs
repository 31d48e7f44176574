//! The host side of the contract's imports (`host`, `sink`, `state`), and the Arrow IPC checks
//! every byte from a plugin passes: plugin output is untrusted input.

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{Schema, SchemaRef};

use super::PluginState;
use super::bindings::quarry::plugin::{host, sink, state, types};
use crate::runtime::SourceMessage;

/// The schema metadata key that names a table.
pub const TABLE_NAME: &str = "cq:table_name";

/// Decodes an IPC stream of one schema and at most one batch, without copying the batch.
fn decode(bytes: Vec<u8>) -> Result<(SchemaRef, Option<RecordBatch>), String> {
    let mut buffer = Buffer::from_vec(bytes);
    let mut decoder = StreamDecoder::new().with_require_alignment(false);
    let mut batch = None;
    while !buffer.is_empty() {
        match decoder
            .decode(&mut buffer)
            .map_err(|e| format!("invalid Arrow IPC: {e}"))?
        {
            Some(_) if batch.is_some() => {
                return Err("an Arrow IPC stream held more than one batch".into());
            }
            Some(b) => batch = Some(b),
            None => {}
        }
    }
    decoder
        .finish()
        .map_err(|e| format!("invalid Arrow IPC: {e}"))?;
    let schema = match (&batch, decoder.schema()) {
        (Some(b), _) => b.schema(),
        (None, Some(s)) => s,
        (None, None) => return Err("an empty Arrow IPC stream".into()),
    };
    Ok((schema, batch))
}

fn table_name(schema: &Schema) -> Result<String, String> {
    match schema.metadata().get(TABLE_NAME) {
        Some(name) if !name.is_empty() => Ok(name.clone()),
        _ => Err(format!(
            "an Arrow schema without the `{TABLE_NAME}` metadata"
        )),
    }
}

pub fn decode_schema(bytes: Vec<u8>) -> Result<SchemaRef, String> {
    match decode(bytes)? {
        (schema, None) => table_name(&schema).map(|_| schema),
        (_, Some(_)) => Err("expected an Arrow schema, got a record batch".into()),
    }
}

pub fn decode_batch(bytes: Vec<u8>) -> Result<RecordBatch, String> {
    match decode(bytes)? {
        (_, Some(batch)) => table_name(batch.schema_ref()).map(|_| batch),
        (_, None) => Err("expected an Arrow record batch, got a schema alone".into()),
    }
}

pub fn encode_schema(schema: &Schema) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(1024);
    let mut writer = StreamWriter::try_new(&mut out, schema).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    Ok(out)
}

pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size() + 4096);
    let mut writer =
        StreamWriter::try_new(&mut out, batch.schema_ref()).map_err(|e| e.to_string())?;
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    Ok(out)
}

fn error(kind: types::ErrorKind, message: impl Into<String>) -> types::Error {
    types::Error {
        kind,
        message: message.into(),
    }
}

impl types::Host for PluginState {}

impl host::Host for PluginState {
    async fn log(
        &mut self,
        level: types::LogLevel,
        message: String,
        fields: Vec<(String, String)>,
    ) {
        let fields: String = fields.iter().map(|(k, v)| format!(" {k}={v}")).collect();
        let plugin = &*self.plugin;
        match level {
            types::LogLevel::Trace => tracing::trace!(plugin, "{message}{fields}"),
            types::LogLevel::Debug => tracing::debug!(plugin, "{message}{fields}"),
            types::LogLevel::Info => tracing::info!(plugin, "{message}{fields}"),
            types::LogLevel::Warn => tracing::warn!(plugin, "{message}{fields}"),
            types::LogLevel::Error => tracing::error!(plugin, "{message}{fields}"),
        }
    }
}

impl PluginState {
    /// Checks a message from the source and turns it into the engine's form.
    fn accept(&mut self, message: types::SyncMessage) -> Result<SourceMessage, String> {
        match message {
            types::SyncMessage::MigrateTable(bytes) => {
                let schema = decode_schema(bytes)?;
                self.migrated.insert(table_name(&schema)?);
                Ok(SourceMessage::MigrateTable(schema))
            }
            types::SyncMessage::Insert(bytes) => {
                let ipc_bytes = bytes.len();
                let batch = decode_batch(bytes)?;
                let table = table_name(batch.schema_ref())?;
                if !self.migrated.contains(&table) {
                    return Err(format!(
                        "an insert into table `{table}` before its migrate-table message"
                    ));
                }
                Ok(SourceMessage::Insert { batch, ipc_bytes })
            }
            types::SyncMessage::DeleteRecord(request) => Err(format!(
                "delete-record messages (table `{}`) are not carried by this version of quarry yet",
                request.table_name
            )),
        }
    }
}

impl sink::Host for PluginState {
    async fn emit(&mut self, message: types::SyncMessage) -> Result<(), types::Error> {
        let Some(out) = self.sink.clone() else {
            return Err(error(
                types::ErrorKind::Internal,
                "emit was called outside a sync",
            ));
        };
        let message = match self.accept(message) {
            Ok(m) => m,
            Err(e) => {
                let e = format!("the plugin sent a message the host refused: {e}");
                self.refused.get_or_insert_with(|| e.clone());
                return Err(error(types::ErrorKind::Internal, e));
            }
        };
        // A full channel parks the guest here: backpressure from the slowest destination.
        out.send(message).await.map_err(|_| {
            error(
                types::ErrorKind::Unavailable,
                "the sync was cancelled; stop and return this error",
            )
        })
    }
}

impl state::Host for PluginState {
    async fn get(&mut self, key: String) -> Result<Option<String>, types::Error> {
        Ok(self.cursors.get(&key).cloned())
    }

    async fn set(&mut self, key: String, value: String) -> Result<(), types::Error> {
        self.cursors.insert(key, value);
        Ok(())
    }
}
