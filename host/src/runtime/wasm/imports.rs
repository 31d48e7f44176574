//! The host side of the contract's imports (`host`, `sink`, `state`), and the Arrow IPC checks
//! every byte from a plugin passes: plugin output is untrusted input.

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use quarry_sdk::ipc;
use quarry_sdk::metadata::TABLE_NAME;

use super::PluginState;
use super::bindings::quarry::plugin::{host, sink, state, types};
use quarry_sdk::{Grouping, Predicate, PredicateGroup};

use crate::runtime::{DeleteRequest, SourceMessage};

/// The Arrow IPC codec is the SDK's, so both sides of the boundary check bytes the same way; the
/// host adds that every schema names its table.
fn table_name(schema: &Schema) -> Result<String, String> {
    match schema.metadata().get(TABLE_NAME) {
        Some(name) if !name.is_empty() => {
            crate::runtime::check_table_name(name)?;
            Ok(name.clone())
        }
        _ => Err(format!(
            "an Arrow schema without the `{TABLE_NAME}` metadata"
        )),
    }
}

pub fn decode_schema(bytes: Vec<u8>) -> Result<SchemaRef, String> {
    let schema = ipc::decode_schema(bytes).map_err(|e| e.message)?;
    table_name(&schema).map(|_| schema)
}

pub fn decode_batch(bytes: Vec<u8>) -> Result<RecordBatch, String> {
    let batch = ipc::decode_batch(bytes).map_err(|e| e.message)?;
    table_name(batch.schema_ref()).map(|_| batch)
}

pub fn encode_schema(schema: &Schema) -> Result<Vec<u8>, String> {
    ipc::encode_schema(schema).map_err(|e| e.message)
}

pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>, String> {
    ipc::encode_batch(batch).map_err(|e| e.message)
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
        let Some(message) = log_record(&mut self.logged, &self.plugin, &message, &fields) else {
            return;
        };
        let plugin = &*self.plugin;
        match level {
            types::LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            types::LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            types::LogLevel::Info => tracing::info!(plugin, "{message}"),
            types::LogLevel::Warn => {
                self.log_counts.count(false);
                tracing::warn!(plugin, "{message}")
            }
            types::LogLevel::Error => {
                self.log_counts.count(true);
                tracing::error!(plugin, "{message}")
            }
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
            types::SyncMessage::DeleteRecord(request) => {
                let request = delete_request_from_wit(request)?;
                if !self.migrated.contains(&request.table) {
                    return Err(format!(
                        "a delete-record for table `{}` before its migrate-table message",
                        request.table
                    ));
                }
                Ok(SourceMessage::DeleteRecord(request))
            }
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
        self.cursors.insert(key.clone(), value.clone());
        // In the stream, after the rows it describes: the engine persists it once every
        // destination has flushed them.
        let Some(out) = &self.sink else {
            return Err(error(
                types::ErrorKind::Internal,
                "state.set is only allowed while the source syncs",
            ));
        };
        out.send(SourceMessage::State { key, value })
            .await
            .map_err(|_| {
                error(
                    types::ErrorKind::Unavailable,
                    "the sync was cancelled; stop and return this error",
                )
            })
    }
}

/// A delete request as the guest sent it, checked: each value is one row of one column.
fn delete_request_from_wit(request: types::DeleteRequest) -> Result<DeleteRequest, String> {
    let mut where_clause = Vec::new();
    for group in request.where_clause {
        let mut predicates = Vec::new();
        for p in group.predicates {
            let value = ipc::decode_batch(p.value).map_err(|e| e.message)?;
            if value.num_rows() != 1 || value.num_columns() != 1 {
                return Err(format!(
                    "a delete-record on `{}` whose value for `{}` is not one row of one column",
                    request.table_name, p.column
                ));
            }
            predicates.push(Predicate {
                column: p.column,
                value,
            });
        }
        where_clause.push(PredicateGroup {
            grouping: match group.grouping {
                types::PredicateGrouping::And => Grouping::And,
                types::PredicateGrouping::Or => Grouping::Or,
            },
            predicates,
        });
    }
    Ok(DeleteRequest {
        table: request.table_name,
        where_clause,
    })
}

/// A delete request as a guest destination takes it.
pub(super) fn delete_request_to_wit(
    request: &DeleteRequest,
) -> Result<types::DeleteRequest, String> {
    let mut groups = Vec::new();
    for group in &request.where_clause {
        let mut predicates = Vec::new();
        for p in &group.predicates {
            predicates.push(types::Predicate {
                operator: types::PredicateOperator::Eq,
                column: p.column.clone(),
                value: encode_batch(&p.value)?,
            });
        }
        groups.push(types::PredicateGroup {
            grouping: match group.grouping {
                Grouping::And => types::PredicateGrouping::And,
                Grouping::Or => types::PredicateGrouping::Or,
            },
            predicates,
        });
    }
    Ok(types::DeleteRequest {
        table_name: request.table.clone(),
        where_clause: groups,
    })
}

/// The most of one `host.log` record that is written; the rest is cut, and said so.
const LOG_RECORD_MAX: usize = 16 * 1024;
/// The most a plugin instance may log in all; later records are dropped, once said so.
const LOG_BUDGET: u64 = 64 * 1024 * 1024;

/// A plugin's log record as it is written: one line (control characters escaped, so it cannot
/// forge lines of Quarry's own), at most [`LOG_RECORD_MAX`] bytes, while the instance's
/// [`LOG_BUDGET`] lasts. `None` once the budget is spent.
fn log_record(logged: &mut u64, plugin: &str, message: &str, fields: &str) -> Option<String> {
    if *logged >= LOG_BUDGET {
        return None;
    }
    let mut line = String::with_capacity((message.len() + fields.len()).min(LOG_RECORD_MAX));
    let mut cut = 0;
    for c in message.chars().chain(fields.chars()) {
        if line.len() >= LOG_RECORD_MAX {
            cut += c.len_utf8();
            continue;
        }
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    if cut > 0 {
        line.push_str(&format!(" … ({cut} more bytes cut)"));
    }
    *logged += (message.len() + fields.len()) as u64;
    if *logged >= LOG_BUDGET {
        tracing::warn!(
            plugin,
            "the plugin has logged {} MiB; its further log records are dropped",
            LOG_BUDGET / (1024 * 1024)
        );
    }
    Some(line)
}

#[cfg(test)]
mod log_tests {
    use super::*;

    #[test]
    fn records_are_one_capped_line_within_a_budget() {
        let mut logged = 0;
        let forged = log_record(&mut logged, "p", "ok\n2026-01-01 ERROR forged", " k=v\r").unwrap();
        assert_eq!(forged, "ok\\n2026-01-01 ERROR forged k=v\\r");
        let huge = "x".repeat(LOG_RECORD_MAX + 10);
        let cut = log_record(&mut logged, "p", &huge, "").unwrap();
        assert!(
            cut.ends_with(" … (10 more bytes cut)"),
            "{}",
            &cut[cut.len() - 40..]
        );
        let mut spent = LOG_BUDGET - 1;
        assert!(log_record(&mut spent, "p", "last", "").is_some());
        assert!(log_record(&mut spent, "p", "dropped", "").is_none());
    }
}
