//! Incremental state: the cursors a source sets, kept in a table of one of its destinations
//! (`backend_options`), one row per key.
//!
//! A cursor describes the rows a source sent before setting it, so it is saved only once every
//! destination of the source has made those rows durable: the engine sends a [`Checkpoint`]
//! down every destination's queue, each destination writes what it holds and flushes, and the
//! backend destination, once all have done so, upserts the cursors into the state table and
//! flushes again. A crash between the two loses no row: the next run starts from the older
//! cursor and sends some rows again (at least once, never a gap).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, SchemaRef};
use quarry_sdk::{Column, Table};
use tokio::sync::watch;

use crate::runtime::{DeleteRequest, Destination, ErrorKind, Phase, PluginError};
use crate::spec::MigrateMode;

/// The state table of a source: `key` (the primary key) and `value`, both text, as
/// CloudQuery's state tables have them.
pub fn schema(table: &str) -> SchemaRef {
    Table::new(table)
        .describe("Incremental-sync cursors of one source (Quarry's state backend)")
        .column(Column::new("key", DataType::Utf8).primary_key())
        .column(Column::new("value", DataType::Utf8))
        .schema()
}

/// Creates the state table if needed and reads every cursor in it.
pub async fn load(
    destination: &mut dyn Destination,
    name: &str,
    table: &str,
) -> Result<HashMap<String, String>, PluginError> {
    let schema = schema(table);
    // Quarry's own table, created or brought up to date even with `--no-migrate`.
    let plan = crate::plan::plan_table(destination, name, MigrateMode::Safe, &schema)
        .await
        .map_err(|e| e.for_table(table))?;
    if let crate::plan::MigrationPlan::Refused(changes) = plan {
        let refusal = crate::plan::Refusal {
            destination: name.to_string(),
            table: table.to_string(),
            changes,
        };
        return Err(PluginError::new(
            name,
            Phase::Migrate,
            ErrorKind::InvalidSpec,
            format!("the state table is not Quarry's: {refusal}"),
        )
        .with_help("name another table in `backend_options.table_name`"));
    }
    destination
        .migrate_table(&schema, false)
        .await
        .map_err(|e| e.for_table(table))?;
    let batches = destination
        .read(&schema)
        .await
        .map_err(|e| e.for_table(table))?;
    let mut cursors = HashMap::new();
    for batch in &batches {
        let column = |i: usize| batch.column(i).as_string_opt::<i32>();
        let (Some(keys), Some(values)) = (column(0), column(1)) else {
            return Err(PluginError::new(
                name,
                Phase::Sync,
                ErrorKind::Internal,
                format!("state table `{table}` does not hold text columns `key` and `value`"),
            ));
        };
        for (key, value) in keys.iter().zip(values) {
            if let (Some(key), Some(value)) = (key, value) {
                cursors.insert(key.to_string(), value.to_string());
            }
        }
    }
    Ok(cursors)
}

/// Upserts `cursors` into the state table and makes them durable.
pub async fn save(
    destination: &mut dyn Destination,
    table: &str,
    cursors: &BTreeMap<String, String>,
) -> Result<(), PluginError> {
    let keys = StringArray::from_iter_values(cursors.keys());
    let values = StringArray::from_iter_values(cursors.values());
    let batch = RecordBatch::try_new(schema(table), vec![Arc::new(keys), Arc::new(values)])
        .expect("two text columns of equal length");
    destination
        .insert(&batch)
        .await
        .map_err(|e| e.for_table(table))?;
    destination.flush().await.map_err(|e| e.for_table(table))
}

/// Deletes every cursor.
pub async fn reset(destination: &mut dyn Destination, table: &str) -> Result<(), PluginError> {
    let request = DeleteRequest {
        table: table.to_string(),
        where_clause: Vec::new(),
    };
    destination
        .delete_record(&request)
        .await
        .map_err(|e| e.for_table(table))?;
    destination.flush().await.map_err(|e| e.for_table(table))
}

/// What the backend destination saves at a checkpoint.
#[derive(Clone)]
pub struct Save {
    pub table: String,
    pub cursors: Arc<BTreeMap<String, String>>,
}

/// One checkpoint, shared by the destinations it was sent to: each acknowledges once it has
/// flushed every row it received before the checkpoint.
pub struct Checkpoint {
    /// Destinations yet to acknowledge, and whether one failed.
    state: watch::Sender<(usize, bool)>,
}

impl Checkpoint {
    pub fn new(destinations: usize) -> Arc<Self> {
        Arc::new(Checkpoint {
            state: watch::Sender::new((destinations, false)),
        })
    }

    /// One destination is done: `flushed` says whether its rows are durable.
    pub fn ack(&self, flushed: bool) {
        self.state.send_modify(|(remaining, failed)| {
            *remaining = remaining.saturating_sub(1);
            *failed |= !flushed;
        });
    }

    /// Waits for every destination; true if all of them flushed.
    pub async fn all_flushed(&self) -> bool {
        let mut rx = self.state.subscribe();
        match rx.wait_for(|(remaining, _)| *remaining == 0).await {
            Ok(state) => !state.1,
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_checkpoint_completes_when_every_destination_flushed() {
        let checkpoint = Checkpoint::new(2);
        checkpoint.ack(true);
        let waiting = tokio::spawn({
            let checkpoint = checkpoint.clone();
            async move { checkpoint.all_flushed().await }
        });
        checkpoint.ack(true);
        assert!(waiting.await.unwrap());

        let failed = Checkpoint::new(2);
        failed.ack(false);
        failed.ack(true);
        assert!(!failed.all_flushed().await);
    }
}
