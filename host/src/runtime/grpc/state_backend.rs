//! The state backend a CloudQuery source dials (`Sync.Request.backend`), as CloudQuery's CLI
//! offers one: a v3 plugin on a Unix socket in a directory only this user can enter, holding
//! only the source's state table. Its rows are the cursors Quarry loaded from the real backend (`backend_options`), and
//! what the source writes to it becomes the source's [`SourceMessage::State`], so the engine
//! saves it like any source's cursors: only once every destination has flushed the rows before
//! it, into the table `quarry state show` reads.
//!
//! A source that writes its state here does so outside its sync stream, so a write can arrive
//! before rows the source sent earlier are read. Those writes are therefore handed to the engine
//! only when the sync stream has ended cleanly. A source that supports checkpoints (the Python
//! SDK's state client with `supports_checkpoints`) sends each cursor on the sync stream after the
//! rows it covers instead, and it is saved as the sync goes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow_schema::{DataType, SchemaRef};
use quarry_grpc::serve::{Local, Selection, Served, SyncMessage, WriteMessage};
use tokio::sync::mpsc;
use tonic::Status;

/// The served table's state.
struct Store {
    table: String,
    cursors: Mutex<BTreeMap<String, String>>,
    /// Keys written by the source, in order, not yet handed to the engine.
    written: Mutex<Vec<(String, String)>>,
}

/// A running state backend.
pub struct StateBackend {
    store: Arc<Store>,
    server: Local,
}

impl StateBackend {
    /// Serves `cursors` as table `table`.
    pub async fn start(
        table: &str,
        cursors: impl IntoIterator<Item = (String, String)>,
    ) -> Result<StateBackend, String> {
        let store = Arc::new(Store {
            table: table.to_string(),
            cursors: Mutex::new(cursors.into_iter().collect()),
            written: Mutex::new(Vec::new()),
        });
        let server = Local::start(store.clone()).await?;
        tracing::debug!(address = %server.connection, table, "state backend for a gRPC source listening");
        Ok(StateBackend { store, server })
    }

    /// The address the source dials (`unix:///...`, as `Sync.Request.backend.connection`).
    pub fn connection(&self) -> String {
        self.server.connection.clone()
    }

    /// Stops the server; returns what the source wrote, in order.
    pub async fn stop(self) -> Vec<(String, String)> {
        self.server.stop().await;
        std::mem::take(&mut *lock(&self.store.written))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Store {
    fn is_state_table(&self, schema: &SchemaRef) -> Result<(), Status> {
        let table = quarry_sdk::table_name(schema);
        if table == self.table {
            Ok(())
        } else {
            Err(Status::invalid_argument(format!(
                "this state backend holds only table `{}`, not `{table}`",
                self.table
            )))
        }
    }
}

#[async_trait::async_trait]
impl Served for Store {
    fn name(&self) -> String {
        "quarry-state-backend".into()
    }

    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").into()
    }

    async fn spec_schema(&self) -> Result<Option<String>, Status> {
        Ok(None)
    }

    async fn init(&self, _: serde_json::Value, _: bool) -> Result<(), Status> {
        Ok(())
    }

    async fn tables(&self, _: Selection) -> Result<Vec<SchemaRef>, Status> {
        Ok(Vec::new())
    }

    async fn sync(
        &self,
        _: Selection,
        _: bool,
        _: Option<quarry_grpc::state_client::Backend>,
        _: mpsc::Sender<SyncMessage>,
    ) -> Result<(), Status> {
        Err(Status::unimplemented("a state backend is no source"))
    }

    /// The cursors as rows of the schema asked for: `key` and `value` filled, any other column
    /// (the Go SDK's `version`) null.
    async fn read(&self, schema: SchemaRef) -> Result<Vec<RecordBatch>, Status> {
        self.is_state_table(&schema)?;
        let cursors = lock(&self.cursors).clone();
        let rows = cursors.len();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| match (f.name().as_str(), f.data_type()) {
                ("key", DataType::Utf8) => {
                    Arc::new(StringArray::from_iter_values(cursors.keys())) as ArrayRef
                }
                ("value", DataType::Utf8) => {
                    Arc::new(StringArray::from_iter_values(cursors.values()))
                }
                _ => new_null_array(f.data_type(), rows),
            })
            .collect();
        let batch = RecordBatch::try_new(schema, columns)
            .map_err(|e| Status::invalid_argument(format!("the state table's schema: {e}")))?;
        Ok(vec![batch])
    }

    async fn write(&self, message: WriteMessage) -> Result<(), Status> {
        match message {
            // The table is Quarry's, in the real backend; nothing to create here.
            WriteMessage::MigrateTable { schema, .. } => self.is_state_table(&schema),
            WriteMessage::Insert(batch) => {
                self.is_state_table(batch.schema_ref())?;
                let rows = quarry_grpc::state_client::cursors_of(&batch)
                    .map_err(Status::invalid_argument)?;
                lock(&self.cursors).extend(rows.iter().cloned());
                lock(&self.written).extend(rows);
                Ok(())
            }
            WriteMessage::DeleteStale { .. } | WriteMessage::DeleteRecord(_) => Err(
                Status::unimplemented("a state backend takes only the state table's rows"),
            ),
        }
    }

    async fn flush(&self) -> Result<(), Status> {
        Ok(())
    }

    async fn close(&self) -> Result<(), Status> {
        Ok(())
    }
}
