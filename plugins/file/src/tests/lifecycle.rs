//! When a table's files are created, rotated, appended to and finished.

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use quarry_sdk::ErrorKind;

use super::*;

#[test]
fn a_table_without_rows_gets_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let (items, empty) = (
        table(),
        Table::new("empty").column(Column::new("id", DataType::Int64)),
    );
    let mut plugin = plugin(spec(
        dir.path(),
        "{{TABLE}}/{{UUID}}.{{FORMAT}}",
        "parquet",
        json!({}),
    ));
    plugin.migrate_table(&items, false).unwrap();
    plugin.migrate_table(&empty, false).unwrap();
    assert_eq!(
        files(dir.path()),
        Vec::<PathBuf>::new(),
        "migrate creates nothing"
    );
    plugin.insert(&items, batch(&items, 0..1)).unwrap();
    plugin.close().unwrap();
    let files = files(dir.path());
    assert_eq!(files.len(), 1);
    assert!(files[0].starts_with(dir.path().join("items")), "{files:?}");
    assert!(!dir.path().join("empty").exists());
}

#[test]
fn max_rows_per_file_rotates_to_new_uuids() {
    let dir = tempfile::tempdir().unwrap();
    let table = table();
    let mut plugin = plugin(spec(
        dir.path(),
        "{{TABLE}}-{{UUID}}.{{FORMAT}}",
        "csv",
        json!({"max_rows_per_file": 4}),
    ));
    plugin.insert(&table, batch(&table, 0..3)).unwrap();
    plugin.insert(&table, batch(&table, 3..9)).unwrap();
    plugin.flush().unwrap();
    let mut contents: Vec<Vec<Vec<String>>> = files(dir.path())
        .iter()
        .map(|f| csv_rows(f, b','))
        .collect();
    assert!(
        contents.iter().all(|rows| rows[0] == HEADER),
        "every file has its header"
    );
    contents.sort_by_key(|rows| rows[1][0].parse::<i64>().unwrap());
    let ids: Vec<Vec<&str>> = contents
        .iter()
        .map(|rows| rows[1..].iter().map(|r| r[0].as_str()).collect())
        .collect();
    assert_eq!(
        ids,
        [
            vec!["0", "1", "2", "3"],
            vec!["4", "5", "6", "7"],
            vec!["8"]
        ]
    );
}

#[test]
fn inserts_after_a_flush_start_a_new_uuid_file() {
    let dir = tempfile::tempdir().unwrap();
    let table = table();
    let mut plugin = plugin(spec(
        dir.path(),
        "{{TABLE}}/{{UUID}}.{{FORMAT}}",
        "parquet",
        json!({}),
    ));
    plugin.insert(&table, batch(&table, 0..2)).unwrap();
    plugin.flush().unwrap();
    plugin.insert(&table, batch(&table, 2..5)).unwrap();
    plugin.flush().unwrap();
    plugin.close().unwrap();
    let mut rows: Vec<i64> = files(dir.path())
        .iter()
        .map(|f| {
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).unwrap()).unwrap();
            reader.metadata().file_metadata().num_rows()
        })
        .collect();
    rows.sort();
    assert_eq!(rows, [2, 3]);
}

#[test]
fn without_uuid_csv_and_json_append_after_a_flush() {
    for (format, expected) in [
        ("csv", "id\n0\n1\n2\n"),
        ("json", "{\"id\":0}\n{\"id\":1}\n{\"id\":2}\n"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let table = Table::new("t").column(Column::new("id", DataType::Int64));
        let ids = |v: Vec<i64>| {
            RecordBatch::try_new(table.schema(), vec![Arc::new(Int64Array::from(v))]).unwrap()
        };
        let path = dir.path().join(format!("t.{format}"));
        std::fs::write(&path, "left over from an earlier sync\n").unwrap();
        let mut plugin = plugin(spec(
            dir.path(),
            "{{TABLE}}.{{FORMAT}}",
            format,
            json!({"no_rotate": true}),
        ));
        plugin.insert(&table, ids(vec![0, 1])).unwrap();
        plugin.flush().unwrap();
        plugin.insert(&table, ids(vec![2])).unwrap();
        plugin.close().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            expected,
            "{format}"
        );
    }
}

#[test]
fn without_uuid_parquet_refuses_rows_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let table = table();
    let mut plugin = plugin(spec(
        dir.path(),
        "{{TABLE}}.{{FORMAT}}",
        "parquet",
        json!({}),
    ));
    plugin.insert(&table, batch(&table, 0..2)).unwrap();
    plugin.flush().unwrap();
    let err = plugin.insert(&table, batch(&table, 2..3)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidSpec);
    assert_eq!(
        err.message,
        format!(
            "table items: cannot add rows to {}/items.parquet after a flush finished it, because a \
             Parquet file cannot be appended to; put {{{{UUID}}}} in `path` so that each flush starts \
             a new file",
            dir.path().display()
        )
    );
    // The flushed file is intact.
    let file = std::fs::File::open(dir.path().join("items.parquet")).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 2);
}

#[test]
fn a_batch_with_other_columns_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let table = table();
    let mut plugin = plugin(spec(dir.path(), "{{TABLE}}.{{FORMAT}}", "csv", json!({})));
    plugin.insert(&table, batch(&table, 0..1)).unwrap();
    let other = Table::new("items").column(Column::new("id", DataType::Int64));
    let err = plugin
        .insert(
            &other,
            RecordBatch::try_new(other.schema(), vec![Arc::new(Int64Array::from(vec![1]))])
                .unwrap(),
        )
        .unwrap_err();
    assert!(
        err.message
            .starts_with("table items: a batch's columns differ from those already written to "),
        "{err}"
    );
    plugin.close().unwrap();
    assert_eq!(
        csv_rows(&dir.path().join("items.csv"), b',').len(),
        2,
        "the first batch is kept"
    );
}

#[test]
fn info_and_unsupported_operations() {
    let info = FilePlugin::info();
    assert_eq!(
        (info.name.as_str(), info.files),
        ("file", vec!["path".to_string(), "tables".to_string()])
    );
    let dir = tempfile::tempdir().unwrap();
    let mut plugin = plugin(spec(dir.path(), "{{TABLE}}", "csv", json!({})));
    let err = plugin.delete_stale("items", "src", 0).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotSupported);
    assert!(err.message.contains("use write_mode: append"), "{err}");
    assert_eq!(
        plugin.read(&table()).unwrap_err().kind,
        ErrorKind::NotSupported
    );
}
