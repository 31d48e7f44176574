//! CloudQuery's state client, for a source Quarry serves: when the CLI's `Sync` request names a
//! backend (`backend_options`), the source's cursors are read from that destination plugin's
//! state table before the sync and written back after it, as CloudQuery's SDKs do
//! (`Write{migrate_table}`, `Read`, then `Write{insert}` of the changed keys).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, SchemaRef};
use quarry_sdk::{Column, Table};
use tonic::transport::Channel;

use crate::connect::{self, Address};
use crate::pb::plugin as pb;
use crate::pb::plugin::plugin_client::PluginClient;
use crate::{MAX_RECORD_BYTES, payload};

/// The (key, value) rows of a state-table record: its `key` and `value` text columns, by name
/// (CloudQuery's Go client adds a `version` column).
pub fn cursors_of(batch: &RecordBatch) -> Result<Vec<(String, String)>, String> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| format!("a state record without a text column `{name}`"))
    };
    let (keys, values) = (column("key")?, column("value")?);
    Ok(keys
        .iter()
        .zip(values)
        .filter_map(|(k, v)| Some((k?.to_string(), v?.to_string())))
        .collect())
}

/// The backend a `Sync` request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub table_name: String,
    pub connection: String,
}

/// A connection to the backend, with the state table's schema.
pub struct StateClient {
    client: PluginClient<Channel>,
    schema: SchemaRef,
}

impl StateClient {
    /// Connects, creates the state table if needed and reads every cursor in it.
    pub async fn open(backend: &Backend) -> Result<(StateClient, HashMap<String, String>), String> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            format!("the state backend at {} ({what}): {e}", backend.connection)
        };
        let channel = connect::dial(&Address::parse(&backend.connection))
            .await
            .map_err(|e| failed("connect", &e))?;
        let mut client = connect::plugin_client(channel);
        let schema = Table::new(&backend.table_name)
            .column(Column::new("key", DataType::Utf8).primary_key())
            .column(Column::new("value", DataType::Utf8))
            .schema();
        let table = payload::encode_schema(&schema).map_err(|e| failed("schema", &e.0))?;
        let migrate = pb::write::Request {
            message: Some(pb::write::request::Message::MigrateTable(
                pb::write::MessageMigrateTable {
                    table: table.clone(),
                    migrate_force: false,
                },
            )),
        };
        client
            .write(tokio_stream::iter(vec![migrate]))
            .await
            .map_err(|e| failed("create the state table", &e.message()))?;
        let mut stream = client
            .read(pb::read::Request { table })
            .await
            .map_err(|e| failed("read", &e.message()))?
            .into_inner();
        let mut cursors = HashMap::new();
        while let Some(response) = stream
            .message()
            .await
            .map_err(|e| failed("read", &e.message()))?
        {
            let batch =
                payload::decode_record(response.record).map_err(|e| failed("read", &e.0))?;
            // Later rows win, as CloudQuery's clients read an append-only table.
            cursors.extend(cursors_of(&batch).map_err(|e| failed("read", &e))?);
        }
        Ok((StateClient { client, schema }, cursors))
    }

    /// Writes `cursors` (the keys that changed) into the state table; the destination makes them
    /// durable when the stream ends.
    pub async fn save(&mut self, cursors: &BTreeMap<String, String>) -> Result<(), String> {
        if cursors.is_empty() {
            return Ok(());
        }
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(cursors.keys())),
                Arc::new(StringArray::from_iter_values(cursors.values())),
            ],
        )
        .map_err(|e| e.to_string())?;
        let requests: Vec<pb::write::Request> = payload::encode_records(&batch, MAX_RECORD_BYTES)
            .map_err(|e| e.0)?
            .into_iter()
            .map(|record| pb::write::Request {
                message: Some(pb::write::request::Message::Insert(
                    pb::write::MessageInsert { record },
                )),
            })
            .collect();
        self.client
            .write(tokio_stream::iter(requests))
            .await
            .map_err(|e| format!("the state backend (save the cursors): {}", e.message()))?;
        Ok(())
    }
}
