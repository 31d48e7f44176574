//! Each format writes the fixture table so that it reads back the same.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;

#[test]
fn csv_round_trips_every_type() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_two_batches(dir.path(), "csv");
    let rows = csv_rows(&file, b',');
    assert_eq!(rows[0], HEADER);
    assert_eq!(rows[1..], (0..6).map(csv_row).collect::<Vec<_>>());
    assert_eq!(rows[2][6], "12345678-9abc-4ef0-8000-000000000001");
}

#[test]
fn json_lines_round_trip_every_type() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_two_batches(dir.path(), "json");
    let text = std::fs::read_to_string(file).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    let seconds = [
        "20",
        "21.000001",
        "22.000002",
        "23.000003",
        "24.000004",
        "25.000005",
    ];
    for (i, line) in (0..6).zip(&lines) {
        let mut expected = json!({
            "id": i,
            "score": i as f64 + 0.5,
            "active": i % 2 == 0,
            "seen": format!("2023-11-14T22:13:{}Z", seconds[i as usize]),
            "tags": [format!("a{i}"), format!("b{i}"), format!("c{i}")],
            "uid": uid(i).to_string(),
            "doc": {"n": i, "s": "x y"},
        });
        if let Some(name) = name(i) {
            expected["name"] = json!(name);
        }
        assert_eq!(line, &expected, "row {i}");
    }
}

#[test]
fn parquet_round_trips_types_values_and_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_two_batches(dir.path(), "parquet");
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap()).unwrap();
    let (schema, expected) = (reader.schema().clone(), batch(&table(), 0..6));
    assert_eq!(
        schema.fields(),
        expected.schema().fields(),
        "types and field metadata"
    );
    assert_eq!(Extension::of(schema.field(6)), Some(Extension::Uuid));
    assert_eq!(Extension::of(schema.field(7)), Some(Extension::Json));
    assert_eq!(schema.metadata()["cq:table_name"], "items");
    let batches: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
    assert_eq!(batches.len(), 1);
    let read = &batches[0];
    assert_eq!(read.num_rows(), 6);
    assert_eq!(read.columns(), expected.columns());
    assert_eq!(
        read.column(0).as_primitive::<Int64Type>().values(),
        &[0, 1, 2, 3, 4, 5]
    );
    assert_eq!(read.column(2).as_primitive::<Float64Type>().value(5), 5.5);
    assert_eq!(
        read.column(4)
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        EPOCH_US
    );
}

#[test]
fn parquet_options_shape_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let table = table();
    let options = json!({"format_spec": {"compression": "gzip", "row_group_size": 2}});
    let mut plugin = plugin(spec(dir.path(), "{{TABLE}}.{{FORMAT}}", "parquet", options));
    plugin.insert(&table, batch(&table, 0..5)).unwrap();
    plugin.close().unwrap();
    let file = std::fs::File::open(dir.path().join("items.parquet")).unwrap();
    let metadata = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .metadata()
        .clone();
    let rows: Vec<i64> = metadata.row_groups().iter().map(|g| g.num_rows()).collect();
    assert_eq!(rows, [2, 2, 1]);
    assert_eq!(
        metadata.row_group(0).column(0).compression(),
        parquet::basic::Compression::GZIP(Default::default())
    );
}

#[test]
fn csv_options_apply() {
    let dir = tempfile::tempdir().unwrap();
    let table = table();
    let options =
        json!({"no_rotate": true, "format_spec": {"delimiter": ";", "skip_header": true}});
    let mut plugin = plugin(spec(dir.path(), "./out/./{{TABLE}}.csv", "csv", options));
    plugin.insert(&table, batch(&table, 0..2)).unwrap();
    plugin.close().unwrap();
    let rows = csv_rows(&dir.path().join("out/items.csv"), b';');
    assert_eq!(rows, [csv_row(0), csv_row(1)]);
}

#[test]
fn extra_columns_of_a_batch_are_written_too() {
    let dir = tempfile::tempdir().unwrap();
    let table = Table::new("t").column(Column::new("id", DataType::Int64));
    let schema = quarry_sdk::Schema::new_with_metadata(
        vec![
            Field::new("id", DataType::Int64, true),
            Field::new("_cq_source_name", DataType::Utf8, true),
        ],
        table.schema().metadata().clone(),
    );
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![7])),
        Arc::new(StringArray::from(vec!["src"])),
    ];
    let mut plugin = plugin(spec(dir.path(), "{{TABLE}}.{{FORMAT}}", "json", json!({})));
    plugin
        .insert(
            &table,
            RecordBatch::try_new(Arc::new(schema), columns).unwrap(),
        )
        .unwrap();
    plugin.flush().unwrap();
    let text = std::fs::read_to_string(dir.path().join("t.json")).unwrap();
    assert_eq!(text, "{\"id\":7,\"_cq_source_name\":\"src\"}\n");
}
