//! The protocol's payloads: every table is an Arrow IPC stream holding only a schema, every
//! record a stream holding a schema and one batch, and delete requests carry their values as
//! one-row records.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use quarry_sdk::ipc;
use quarry_sdk::{DeleteRequest, Grouping, Predicate, PredicateGroup};

use crate::pb::plugin as pb;

/// A payload that could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

impl From<quarry_sdk::Error> for PayloadError {
    fn from(e: quarry_sdk::Error) -> Self {
        PayloadError(e.to_string())
    }
}

impl From<PayloadError> for tonic::Status {
    fn from(e: PayloadError) -> Self {
        tonic::Status::invalid_argument(e.0)
    }
}

pub fn encode_schema(schema: &SchemaRef) -> Result<Vec<u8>, PayloadError> {
    Ok(ipc::encode_schema(schema)?)
}

pub fn decode_schema(bytes: Vec<u8>) -> Result<SchemaRef, PayloadError> {
    ipc::decode_schema(bytes).map_err(|e| PayloadError(format!("a table's schema: {e}")))
}

pub fn decode_record(bytes: Vec<u8>) -> Result<RecordBatch, PayloadError> {
    ipc::decode_batch(bytes).map_err(|e| PayloadError(format!("a record: {e}")))
}

/// `batch` as one or more records, each at most `limit` bytes unless a single row is larger
/// (then that row is its own record: the receiver's limit decides, and says so).
pub fn encode_records(batch: &RecordBatch, limit: usize) -> Result<Vec<Vec<u8>>, PayloadError> {
    Ok(ipc::encode_batch_within(batch, limit)?)
}

pub fn delete_request_to_pb(
    request: &DeleteRequest,
) -> Result<Vec<pb::PredicatesGroup>, PayloadError> {
    let mut groups = Vec::new();
    for group in &request.where_clause {
        let mut predicates = Vec::new();
        for p in &group.predicates {
            predicates.push(pb::Predicate {
                operator: pb::predicate::Operator::Eq as i32,
                column: p.column.clone(),
                record: ipc::encode_batch(&p.value)?,
            });
        }
        groups.push(pb::PredicatesGroup {
            grouping_type: match group.grouping {
                Grouping::And => pb::predicates_group::GroupingType::And,
                Grouping::Or => pb::predicates_group::GroupingType::Or,
            } as i32,
            predicates,
        });
    }
    Ok(groups)
}

pub fn delete_request_from_pb(
    table: String,
    groups: Vec<pb::PredicatesGroup>,
) -> Result<DeleteRequest, PayloadError> {
    let mut where_clause = Vec::new();
    for group in groups {
        let grouping = match pb::predicates_group::GroupingType::try_from(group.grouping_type) {
            Ok(pb::predicates_group::GroupingType::And) => Grouping::And,
            Ok(pb::predicates_group::GroupingType::Or) => Grouping::Or,
            Err(_) => {
                return Err(PayloadError(format!(
                    "delete-record for `{table}`: unknown grouping type {}",
                    group.grouping_type
                )));
            }
        };
        let mut predicates = Vec::new();
        for p in group.predicates {
            if pb::predicate::Operator::try_from(p.operator) != Ok(pb::predicate::Operator::Eq) {
                return Err(PayloadError(format!(
                    "delete-record for `{table}`: operator {} on `{}` is not supported (only EQ)",
                    p.operator, p.column
                )));
            }
            let value = decode_record(p.record)?;
            predicates.push(Predicate {
                column: p.column,
                value,
            });
        }
        where_clause.push(PredicateGroup {
            grouping,
            predicates,
        });
    }
    Ok(DeleteRequest {
        table,
        where_clause,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn batch(rows: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("text", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows as i64)),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("row {i:>40}")),
                )),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_batch_over_the_limit_is_split_into_records_under_it_that_keep_every_row_in_order() {
        let batch = batch(100_000);
        let whole = ipc::encode_batch(&batch).unwrap().len();
        let limit = whole / 7;
        let records = encode_records(&batch, limit).unwrap();
        assert!(records.len() >= 7, "{} records", records.len());
        let mut next = 0i64;
        for record in records {
            assert!(record.len() <= limit, "{} > {limit}", record.len());
            let decoded = decode_record(record).unwrap();
            let ids = decoded
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            for id in ids.values() {
                assert_eq!(*id, next);
                next += 1;
            }
        }
        assert_eq!(next, 100_000);
    }

    #[test]
    fn a_batch_under_the_limit_is_one_record() {
        let records = encode_records(&batch(10), super::super::MAX_RECORD_BYTES).unwrap();
        assert_eq!(records.len(), 1);
    }

    #[test]
    fn delete_requests_round_trip() {
        let request =
            DeleteRequest::equal("items", "id", Arc::new(Int64Array::from(vec![7]))).unwrap();
        let groups = delete_request_to_pb(&request).unwrap();
        let back = delete_request_from_pb("items".into(), groups).unwrap();
        assert_eq!(back, request);
    }
}
