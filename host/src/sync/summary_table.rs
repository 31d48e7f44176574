//! `send_sync_summary: true`: one row per source and destination of each sync in the
//! destination's table `cloudquery_sync_summaries`, with the columns CloudQuery's CLI writes (the
//! `--summary-location` line's fields: counts as uint64, the shard as int64, lists as lists, maps
//! as json), after the internal columns `_cq_source_name` (`NAME_NUM_TOTAL` under `--shard`),
//! `_cq_sync_time` and, with `sync_group_id`, `_cq_sync_group_id`. The table has no primary
//! key: every sync adds its rows.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, SchemaRef};
use quarry_sdk::{Column, Extension, Table};

use super::columns::{InternalColumns, SyncGroup};
use super::summary::SummaryLine;

pub(crate) const TABLE: &str = "cloudquery_sync_summaries";

/// The table as the source of the rows declares it (before the internal columns).
fn declared() -> SchemaRef {
    let text = |name: &str| Column::new(name, DataType::Utf8);
    let count = |name: &str| Column::new(name, DataType::UInt64);
    let shard = |name: &str| Column::new(name, DataType::Int64);
    let json = |name: &str| Column::extension(name, Extension::Json);
    Table::new(TABLE)
        .describe("One row per source and destination of each sync (`send_sync_summary`)")
        .column(text("cli_version"))
        .column(text("sync_id"))
        .column(count("sync_duration_ms"))
        .column(count("resources"))
        .column(text("source_name"))
        .column(text("source_path"))
        .column(text("source_version"))
        .column(count("source_errors"))
        .column(count("source_warnings"))
        .column(Column::new(
            "source_tables",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        ))
        .column(text("destination_name"))
        .column(text("destination_path"))
        .column(text("destination_version"))
        .column(count("destination_errors"))
        .column(count("destination_warnings"))
        .column(shard("shard_num"))
        .column(shard("shard_total"))
        .column(json("resources_per_table"))
        .column(json("errors_per_table"))
        .column(json("durations_per_table_ms"))
        .schema()
}

/// The table's schema in a destination (with `_cq_sync_group_id` when `sync_group`).
pub(crate) fn schema(sync_group: bool) -> SchemaRef {
    let extended = super::columns::extended_schema(&declared());
    if sync_group {
        SyncGroup::schema(&extended)
    } else {
        extended
    }
}

/// The table's one row for `line`, for the rows of `row_source` (the source's name, or its
/// shard's).
pub fn record(
    line: &SummaryLine,
    row_source: &str,
    sync_time_us: i64,
    sync_group: Option<&mut SyncGroup>,
) -> Result<RecordBatch, String> {
    let schema = declared();
    let text = |v: &str| Arc::new(StringArray::from(vec![v.to_string()])) as ArrayRef;
    let count = |v: u64| Arc::new(UInt64Array::from(vec![v])) as ArrayRef;
    let shard = |v: Option<u64>| Arc::new(Int64Array::from(vec![v.map(|v| v as i64)])) as ArrayRef;
    let json = |v: &std::collections::BTreeMap<String, u64>| {
        let text = serde_json::to_string(v).expect("a map of numbers serialises");
        Arc::new(BinaryArray::from(vec![Some(text.as_bytes())])) as ArrayRef
    };
    let mut tables = ListBuilder::new(StringBuilder::new());
    for table in &line.source_tables {
        tables.values().append_value(table);
    }
    tables.append(true);
    let columns: Vec<ArrayRef> = vec![
        text(&line.cli_version),
        text(&line.sync_id),
        count(line.sync_duration_ms),
        count(line.resources),
        text(&line.source_name),
        text(&line.source_path),
        text(&line.source_version),
        count(line.source_errors),
        count(line.source_warnings),
        Arc::new(tables.finish()),
        text(&line.destination_name),
        text(&line.destination_path),
        text(&line.destination_version),
        count(line.destination_errors),
        count(line.destination_warnings),
        shard(line.shard_num),
        shard(line.shard_total),
        json(&line.resources_per_table),
        json(&line.errors_per_table),
        json(&line.durations_per_table_ms),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())?;
    let mut internal = InternalColumns::new(row_source, sync_time_us);
    let extended = internal.migrate(TABLE, &schema);
    let batch = internal.extend(TABLE, &batch)?;
    debug_assert_eq!(batch.schema(), extended);
    match sync_group {
        None => Ok(batch),
        Some(group) => RecordBatch::try_new(SyncGroup::schema(&extended), group.columns(&batch))
            .map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow_array::cast::AsArray;

    use super::*;

    #[test]
    fn one_row_with_cloudquerys_columns_after_the_internal_ones() {
        let line = SummaryLine {
            cli_version: "1.0.0".into(),
            sync_id: "id".into(),
            sync_time: String::new(),
            sync_duration_ms: 12,
            resources: 3,
            source_name: "src".into(),
            source_path: "quarry/test".into(),
            source_version: "v1".into(),
            source_errors: 0,
            source_warnings: 1,
            source_tables: vec!["a".into(), "b".into()],
            destination_name: "pg".into(),
            destination_path: "quarry/postgresql".into(),
            destination_version: "v2".into(),
            destination_errors: 0,
            destination_warnings: 0,
            resources_per_table: BTreeMap::from([("a".into(), 1), ("b".into(), 2)]),
            errors_per_table: BTreeMap::new(),
            durations_per_table_ms: BTreeMap::new(),
            ipc_bytes: 0,
            destination_error: None,
            sync_group_id: Some("g".into()),
            shard_num: None,
            shard_total: None,
        };
        let mut group = SyncGroup::new("g");
        let batch = record(&line, "src_1_2", 0, Some(&mut group)).unwrap();
        assert_eq!(batch.schema(), schema(true));
        assert_eq!(quarry_sdk::table_name(batch.schema_ref()), TABLE);
        let names: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            &names[..5],
            [
                "_cq_source_name",
                "_cq_sync_time",
                "_cq_sync_group_id",
                "cli_version",
                "sync_id"
            ]
        );
        assert_eq!(batch.num_rows(), 1);
        let column = |name: &str| {
            batch
                .column(batch.schema_ref().index_of(name).unwrap())
                .clone()
        };
        assert_eq!(
            column("resources_per_table").as_binary::<i32>().value(0),
            br#"{"a":1,"b":2}"#
        );
        assert_eq!(column("source_tables").as_list::<i32>().value(0).len(), 2);
        assert!(column("shard_num").is_null(0));
        assert_eq!(column("_cq_sync_group_id").as_string::<i32>().value(0), "g");
        assert_eq!(
            column("_cq_source_name").as_string::<i32>().value(0),
            "src_1_2"
        );
        assert_eq!(column("resources").data_type(), &DataType::UInt64);
    }
}
