//! The internal columns every destination row carries: `_cq_source_name` and `_cq_sync_time`
//! (and `_cq_sync_group_id` in a destination with `sync_group_id`), with CloudQuery's names and
//! types so that existing tables and queries keep working. They are
//! filled from arrays built once per sync and sliced per batch, so no work is done per row.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub const SOURCE_NAME: &str = "_cq_source_name";
pub const SYNC_TIME: &str = "_cq_sync_time";
/// A destination's `sync_group_id`, rendered for this sync (only with `sync_group_id`).
pub const SYNC_GROUP_ID: &str = "_cq_sync_group_id";

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

/// The `_cq_sync_group_id` column of one destination: after the other internal columns, part
/// of the primary key when the table has one (so that each group keeps its own copy of a row;
/// in a table without a key it would make every row of a group one row).
pub struct SyncGroup {
    id: String,
    values: ArrayRef,
}

impl SyncGroup {
    pub fn new(id: &str) -> Self {
        SyncGroup {
            id: id.into(),
            values: Arc::new(StringArray::new_null(0)),
        }
    }

    /// The rendered group id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `extended` (a table with the other internal columns in front) with the group column.
    pub fn schema(extended: &SchemaRef) -> SchemaRef {
        let keyed = extended.fields().iter().any(|f| {
            f.name() != SYNC_GROUP_ID
                && f.metadata()
                    .get(quarry_sdk::metadata::PRIMARY_KEY)
                    .is_some_and(|v| v == quarry_sdk::metadata::TRUE)
        });
        let mut group = Field::new(SYNC_GROUP_ID, DataType::Utf8, !keyed);
        if keyed {
            group = group.with_metadata(HashMap::from([(
                quarry_sdk::metadata::PRIMARY_KEY.to_string(),
                quarry_sdk::metadata::TRUE.to_string(),
            )]));
        }
        let mut fields: Vec<_> = extended
            .fields()
            .iter()
            .filter(|f| f.name() != SYNC_GROUP_ID)
            .cloned()
            .collect();
        let at = fields.len().min(2);
        fields.insert(at, Arc::new(group));
        Arc::new(Schema::new_with_metadata(
            fields,
            extended.metadata().clone(),
        ))
    }

    /// The columns of `batch` (in a [`Self::schema`]-less table layout) with the group's.
    pub fn columns(&mut self, batch: &RecordBatch) -> Vec<ArrayRef> {
        let rows = batch.num_rows();
        if self.values.len() < rows {
            self.values = Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                &self.id,
                rows.next_power_of_two(),
            )));
        }
        let mut columns: Vec<ArrayRef> = batch
            .schema_ref()
            .fields()
            .iter()
            .zip(batch.columns())
            .filter(|(f, _)| f.name() != SYNC_GROUP_ID)
            .map(|(_, c)| c.clone())
            .collect();
        let at = columns.len().min(2);
        columns.insert(at, self.values.slice(0, rows));
        columns
    }
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
    fn the_sync_group_follows_the_internal_columns_and_keys_only_keyed_tables() {
        let mut columns = InternalColumns::new("src", 0);
        let extended = columns.migrate("t", &schema());
        let grouped = SyncGroup::schema(&extended);
        let names: Vec<&str> = grouped.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "_cq_source_name",
                "_cq_sync_time",
                "_cq_sync_group_id",
                "id"
            ]
        );
        assert!(grouped.field(2).metadata().is_empty() && grouped.field(2).is_nullable());
        let keyed = Arc::new(Schema::new_with_metadata(
            vec![
                Field::new("id", DataType::Int64, false).with_metadata(HashMap::from([(
                    "cq:extension:primary_key".to_string(),
                    "true".to_string(),
                )])),
            ],
            schema().metadata().clone(),
        ));
        let keyed_group = SyncGroup::schema(&extended_schema(&keyed));
        assert_eq!(
            keyed_group.field(2).metadata()["cq:extension:primary_key"],
            "true"
        );
        assert!(!keyed_group.field(2).is_nullable());

        let batch =
            RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from_iter_values(0..3))])
                .unwrap();
        let out = columns.extend("t", &batch).unwrap();
        let mut group = SyncGroup::new("g1");
        let out = RecordBatch::try_new(grouped, group.columns(&out)).unwrap();
        assert_eq!(out.column(2).as_string::<i32>().value(2), "g1");
        assert_eq!(out.num_columns(), 4);
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
