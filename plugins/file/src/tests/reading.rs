//! The plugin as a source: files found by glob, schemas read or inferred, overrides, the rows of
//! every file, incremental cursors, and the errors of a bad `tables` entry.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use quarry_sdk::{Message, Source, SyncOptions};

use super::*;

fn source(tables: Value) -> quarry_sdk::Result<FilePlugin> {
    FilePlugin::new(serde_json::from_value(json!({ "tables": tables })).unwrap())
}

/// The batches a sync of every table sends, and its cursors.
fn sync(plugin: &mut FilePlugin) -> (Vec<RecordBatch>, Vec<(String, String)>) {
    let options = SyncOptions {
        tables: vec!["*".into()],
        ..SyncOptions::default()
    };
    let mut out = Vec::new();
    quarry_sdk::run_sync(plugin, &options, &mut out).unwrap();
    let mut batches = Vec::new();
    let mut cursors = Vec::new();
    for message in out {
        match message {
            Message::Insert(batch) => batches.push(batch),
            Message::State { key, value } => cursors.push((key, value)),
            _ => {}
        }
    }
    (batches, cursors)
}

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("id")
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

#[test]
fn csv_and_json_files_are_read_with_inferred_types_and_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    std::fs::write(
        dir.path().join("a/1.csv"),
        "id,name,price\n1,x,1.5\n2,\"y, z\",\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("a/2.csv"), "id,name,price\n3,w,4\n").unwrap();
    std::fs::write(dir.path().join("a/skip.txt"), "not matched").unwrap();
    std::fs::write(
        dir.path().join("events.jsonl"),
        "{\"id\": 7, \"kind\": \"a\", \"n\": {\"x\": 1}}\n{\"id\": 8, \"kind\": null}\n",
    )
    .unwrap();
    let mut plugin = source(json!([
        { "name": "prices", "paths": [format!("{d}/a/*.csv")], "primary_key": ["id"],
          "columns": { "price": "Decimal128(10, 2)" } },
        { "name": "events", "paths": [format!("{d}/*.jsonl")] },
    ]))
    .unwrap();
    let tables = plugin.tables();
    let prices = &tables[0];
    let types: Vec<String> = prices
        .columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.data_type))
        .collect();
    assert_eq!(types, ["id Int64", "name Utf8", "price Decimal128(10, 2)"]);
    assert!(prices.columns[0].primary_key);
    let (batches, cursors) = sync(&mut plugin);
    assert!(cursors.is_empty(), "not incremental");
    let price_batches: Vec<RecordBatch> = batches
        .iter()
        .filter(|b| quarry_sdk::table_name(b.schema_ref()) == "prices")
        .cloned()
        .collect();
    assert_eq!(ids(&price_batches), [1, 2, 3]);
    let names = price_batches[0]
        .column_by_name("name")
        .unwrap()
        .as_string::<i32>();
    assert_eq!(names.value(1), "y, z");
    let price = arrow_cast::display::array_value_to_string(
        price_batches[0].column_by_name("price").unwrap(),
        0,
    )
    .unwrap();
    assert_eq!(price, "1.50");
    let events: Vec<RecordBatch> = batches
        .iter()
        .filter(|b| quarry_sdk::table_name(b.schema_ref()) == "events")
        .cloned()
        .collect();
    assert_eq!(ids(&events), [7, 8]);
}

/// What the destination wrote as Parquet, the source reads back unchanged, every type and
/// extension; with `incremental` the file's path is the table's cursor.
#[test]
fn parquet_written_by_the_destination_reads_back_and_increments_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let table = table();
    let mut writer = plugin(spec(
        dir.path(),
        "{{TABLE}}/{{UUID}}.{{FORMAT}}",
        "parquet",
        json!({}),
    ));
    writer.migrate_table(&table, false).unwrap();
    writer.insert(&table, batch(&table, 0..10)).unwrap();
    writer.flush().unwrap();
    let spec = json!([{ "name": "items", "paths": [format!("{}/items/*.parquet", dir.path().display())],
                        "incremental": "name" }]);
    let mut reader = source(spec.clone()).unwrap();
    let (batches, cursors) = sync(&mut reader);
    assert_eq!(ids(&batches), (0..10).collect::<Vec<_>>());
    let back = &batches[0];
    let wrote = batch(&table, 0..10);
    for (i, field) in wrote.schema().fields().iter().enumerate() {
        let column = back.column_by_name(field.name()).unwrap();
        assert_eq!(column.data_type(), field.data_type(), "{}", field.name());
        assert_eq!(
            column.to_data(),
            wrote.column(i).to_data(),
            "{}",
            field.name()
        );
    }
    assert!(reader.tables()[0].incremental);
    // One cursor, after the one file: its path (the engine saves it once the rows are durable).
    let file = std::fs::read_dir(dir.path().join("items"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .unwrap();
    let pattern = format!("{}/items/*.parquet", dir.path().display());
    assert_eq!(cursors.len(), 1);
    assert_eq!(cursors[0].0, "items");
    let saved: Value = serde_json::from_str(&cursors[0].1).unwrap();
    assert_eq!(
        saved,
        json!({"mode": "name", "after": {pattern: file.display().to_string()}})
    );
}

#[test]
fn a_bad_table_entry_names_the_table_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::write(dir.path().join("t.csv"), "id,name\n1,a\n").unwrap();
    let error = |tables: Value| source(tables).err().expect("refused").message;
    assert!(
        error(json!([{ "name": "t", "paths": [format!("{d}/none/*.csv")] }]))
            .starts_with("table `t`: no file matches"),
    );
    let e = error(
        json!([{ "name": "t", "paths": [format!("{d}/t.csv")], "columns": { "nope": "Int64" } }]),
    );
    assert!(
        e.contains("`columns.nope`") && e.contains("(its columns: id, name)"),
        "{e}"
    );
    let e = error(
        json!([{ "name": "t", "paths": [format!("{d}/t.csv")], "columns": { "id": "Integer" } }]),
    );
    assert!(e.contains("`Integer` is not an Arrow type"), "{e}");
    let e = error(json!([{ "name": "t", "paths": [format!("{d}/**/t.csv")] }]));
    assert!(e.contains("`**` is not supported"), "{e}");
    let e =
        error(json!([{ "name": "t", "paths": [format!("{d}/t.csv")], "primary_key": ["key"] }]));
    assert!(e.contains("`primary_key` names `key`"), "{e}");
    std::fs::write(dir.path().join("t.dat"), "x").unwrap();
    let e = error(json!([{ "name": "t", "paths": [format!("{d}/t.dat")] }]));
    assert!(e.contains("cannot tell the format"), "{e}");
    let e = error(
        json!([{ "name": "t", "paths": [format!("{d}/t.csv")] }, { "name": "t", "paths": [format!("{d}/t.csv")] }]),
    );
    assert_eq!(e, "`tables` names table `t` twice");
}

/// `min_age` leaves young files, and the pattern's files after them, for a later sync.
#[test]
fn files_younger_than_min_age_wait_with_the_files_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::write(dir.path().join("a.csv"), "id\n1\n").unwrap();
    std::fs::write(dir.path().join("b.csv"), "id\n2\n").unwrap();
    let spec = |age: &str| json!([{ "name": "t", "paths": [format!("{d}/*.csv")], "incremental": "name", "min_age": age }]);
    // Both files were just written: nothing is old enough.
    let (batches, cursors) = sync(&mut source(spec("1h")).unwrap());
    assert!(batches.is_empty() && cursors.is_empty());
    let (batches, _) = sync(&mut source(spec("0s")).unwrap());
    assert_eq!(ids(&batches), [1, 2]);
    let e = source(spec("soon")).err().expect("refused").message;
    assert!(e.contains("`min_age` is `soon`"), "{e}");
}
