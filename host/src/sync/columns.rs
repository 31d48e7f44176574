//! The internal columns every destination row carries: `_cq_source_name` and `_cq_sync_time`,
//! with CloudQuery's names and types so that existing tables and queries keep working. They are
//! filled from arrays built once per sync and sliced per batch, so no work is done per row.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub const SOURCE_NAME: &str = "_cq_source_name";
pub const SYNC_TIME: &str = "_cq_sync_time";

fn sync_time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Adds the internal columns to one source's tables and batches.
pub struct InternalColumns {
    source_name: String,
    sync_time_us: i64,
    names: ArrayRef,
    times: ArrayRef,
    /// Per table: the source's schema and the schema with the internal columns.
    tables: HashMap<String, (SchemaRef, SchemaRef)>,
}

impl InternalColumns {
    pub fn new(source_name: &str, sync_time_us: i64) -> Self {
        let mut columns = InternalColumns {
            source_name: source_name.into(),
            sync_time_us,
            names: Arc::new(StringArray::new_null(0)),
            times: Arc::new(TimestampMicrosecondArray::new_null(0)),
            tables: HashMap::new(),
        };
        columns.grow(8192);
        columns
    }

    fn grow(&mut self, rows: usize) {
        self.names = Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            &self.source_name,
            rows,
        )));
        self.times = Arc::new(
            TimestampMicrosecondArray::from_iter_values(std::iter::repeat_n(
                self.sync_time_us,
                rows,
            ))
            .with_timezone("UTC"),
        );
    }

    /// The destination schema of a table: the internal columns first (replacing any the source
    /// declared itself), then the source's columns, with the source's metadata.
    pub fn migrate(&mut self, table: &str, schema: &SchemaRef) -> SchemaRef {
        let extended = extended_schema(schema);
        self.tables
            .insert(table.into(), (schema.clone(), extended.clone()));
        extended
    }

    /// The batch with the internal columns, in the table's destination schema. Fails if the batch
    /// does not have the schema its table was migrated with.
    pub fn extend(&mut self, table: &str, batch: &RecordBatch) -> Result<RecordBatch, String> {
        let (source_schema, extended) = self
            .tables
            .get(table)
            .ok_or_else(|| format!("rows for table `{table}` before its schema"))?
            .clone();
        if batch.schema_ref().fields() != source_schema.fields() {
            return Err(format!(
                "rows for table `{table}` do not have the table's schema (expected {:?}, got {:?})",
                field_names(&source_schema),
                field_names(batch.schema_ref())
            ));
        }
        let rows = batch.num_rows();
        if self.names.len() < rows {
            self.grow(rows.next_power_of_two());
        }
        let mut columns = vec![self.names.slice(0, rows), self.times.slice(0, rows)];
        columns.extend(
            batch
                .schema_ref()
                .fields()
                .iter()
                .zip(batch.columns())
                .filter(|(f, _)| !is_internal(f.name()))
                .map(|(_, c)| c.clone()),
        );
        RecordBatch::try_new(extended, columns).map_err(|e| format!("table `{table}`: {e}"))
    }
}

/// A source table's schema with the internal columns in front (replacing any it declared).
pub fn extended_schema(schema: &SchemaRef) -> SchemaRef {
    let mut fields = vec![
        Arc::new(Field::new(SOURCE_NAME, DataType::Utf8, true)),
        Arc::new(Field::new(SYNC_TIME, sync_time_type(), true)),
    ];
    fields.extend(
        schema
            .fields()
            .iter()
            .filter(|f| !is_internal(f.name()))
            .cloned(),
    );
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn is_internal(name: &str) -> bool {
    name == SOURCE_NAME || name == SYNC_TIME
}

fn field_names(schema: &Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect()
}

#[cfg(test)]
mod tests {
    use arrow_array::Int64Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampMicrosecondType;

    use super::*;

    fn schema() -> SchemaRef {
        let meta = HashMap::from([("cq:table_name".to_string(), "t".to_string())]);
        Arc::new(Schema::new_with_metadata(
            vec![Field::new("id", DataType::Int64, false)],
            meta,
        ))
    }

    #[test]
    fn internal_columns_lead_every_batch_and_keep_the_metadata() {
        let mut columns = InternalColumns::new("src", 1_700_000_000_000_000);
        let extended = columns.migrate("t", &schema());
        assert_eq!(extended.metadata()["cq:table_name"], "t");
        let names: Vec<&str> = extended
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["_cq_source_name", "_cq_sync_time", "id"]);
        // Larger than the prebuilt arrays, to exercise growth.
        let batch = RecordBatch::try_new(
            schema(),
            vec![Arc::new(Int64Array::from_iter_values(0..10_000))],
        )
        .unwrap();
        let out = columns.extend("t", &batch).unwrap();
        assert_eq!(out.num_rows(), 10_000);
        assert_eq!(out.column(0).as_string::<i32>().value(9_999), "src");
        assert_eq!(
            out.column(1)
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_700_000_000_000_000
        );
    }

    #[test]
    fn a_batch_with_another_schema_is_refused() {
        let mut columns = InternalColumns::new("src", 0);
        columns.migrate("t", &schema());
        let other = Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, true)]));
        let batch =
            RecordBatch::try_new(other, vec![Arc::new(StringArray::from(vec!["a"]))]).unwrap();
        let err = columns.extend("t", &batch).unwrap_err();
        assert!(
            err.starts_with("rows for table `t` do not have the table's schema"),
            "{err}"
        );
        assert!(columns.extend("u", &batch).is_err());
    }
}
