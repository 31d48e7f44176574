//! `quarry sync` from the wasm `test` source to the wasm `file` destination, read back.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};

use crate::support::{Workdir, files, read_parquet};

const ROWS: u64 = 100_000;
const SUM_IDS: i64 = (ROWS as i64 - 1) * ROWS as i64 / 2;
/// 2024-01-01T00:00:00Z + 50,000 s.
const ROW_50K_CREATED_US: i64 = 1_704_067_200_000_000 + 50_000 * 1_000_000;
const ROW_50K_PAYLOAD: &str = r#"{"ref":"00000050000","name":"name_00000050000","score":"000","group":"g45","active":0,"note":"lorem"}"#;

fn spec(rows: u64) -> String {
    let destination = |name: &str, format: &str| {
        format!(
            r#"---
kind: destination
spec:
  name: {name}
  path: quarry/file
  write_mode: append
  spec:
    path: out/{format}/{{{{TABLE}}}}.{{{{FORMAT}}}}
    format: {format}
    no_rotate: true
  permissions:
    files: {{ ./out: write }}
"#
        )
    };
    format!(
        r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_rows]
  destinations: [parquet, csv, json]
  spec:
    num_rows: {rows}
    batch_size: 7000
{}{}{}"#,
        destination("parquet", "parquet"),
        destination("csv", "csv"),
        destination("json", "json"),
    )
}

/// Splits one CSV record (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let (mut fields, mut field, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[test]
fn test_source_to_parquet_csv_and_json() {
    let work = Workdir::new();
    let spec = work.write("spec.yml", &spec(ROWS));
    let run = work.quarry(&["sync", spec.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("Synced test → parquet, csv, json: 100000 rows (test_rows 100000)"),
        "{run:?}"
    );

    // Parquet: the Arrow types survive, internal columns lead.
    let parquet = files(&work.path().join("out/parquet"), ".parquet");
    assert_eq!(parquet.len(), 1, "one file per table per sync: {parquet:?}");
    let batches = read_parquet(&parquet[0]);
    let schema = batches[0].schema();
    let types: Vec<(&str, &DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type()))
        .collect();
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    assert_eq!(
        types[..11].iter().map(|t| t.0).collect::<Vec<_>>(),
        [
            "_cq_source_name",
            "_cq_sync_time",
            "_cq_id",
            "_cq_parent_id",
            "id",
            "name",
            "value",
            "flag",
            "created_at",
            "payload",
            "tags"
        ]
    );
    assert_eq!(types[0].1, &DataType::Utf8);
    assert_eq!(types[1].1, &utc);
    assert_eq!(types[2].1, &DataType::FixedSizeBinary(16));
    assert_eq!(types[3].1, &DataType::FixedSizeBinary(16));
    assert_eq!(types[4].1, &DataType::Int64);
    assert_eq!(types[7].1, &DataType::Boolean);
    assert_eq!(types[8].1, &utc);
    assert!(matches!(types[10].1, DataType::List(f) if f.data_type() == &DataType::Utf8));
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows as u64, ROWS);
    let mut sum = 0i64;
    let mut found = false;
    for batch in &batches {
        let ids = batch.column(4).as_primitive::<Int64Type>();
        sum += ids.values().iter().sum::<i64>();
        if let Some(i) = ids.values().iter().position(|&id| id == 50_000) {
            found = true;
            assert_eq!(batch.column(0).as_string::<i32>().value(i), "test");
            assert_eq!(
                batch.column(5).as_string::<i32>().value(i),
                "name_00000050000"
            );
            assert_eq!(
                batch.column(6).as_primitive::<Float64Type>().value(i),
                50_000.0 / 7.0
            );
            assert!(!batch.column(7).as_boolean().value(i));
            assert_eq!(
                batch
                    .column(8)
                    .as_primitive::<TimestampMicrosecondType>()
                    .value(i),
                ROW_50K_CREATED_US
            );
            assert_eq!(batch.column(9).as_string::<i32>().value(i), ROW_50K_PAYLOAD);
            let tags = batch.column(10).as_list::<i32>().value(i);
            let tags: Vec<&str> = tags.as_string::<i32>().iter().flatten().collect();
            assert_eq!(tags, ["a0", "b0", "c0"]);
            assert!(batch.column(1).is_valid(i));
        }
    }
    assert_eq!(sum, SUM_IDS);
    assert!(found, "row 50,000 is in the Parquet file");

    // CSV: a header, one line per row, lists as JSON text.
    let csv = files(&work.path().join("out/csv"), ".csv");
    assert_eq!(csv.len(), 1, "{csv:?}");
    let text = std::fs::read_to_string(&csv[0]).unwrap();
    let mut lines = text.lines();
    let header = csv_fields(lines.next().unwrap());
    assert_eq!(
        header,
        [
            "_cq_source_name",
            "_cq_sync_time",
            "_cq_id",
            "_cq_parent_id",
            "id",
            "name",
            "value",
            "flag",
            "created_at",
            "payload",
            "tags"
        ]
    );
    let records: Vec<Vec<String>> = lines.map(csv_fields).collect();
    assert_eq!(records.len() as u64, ROWS);
    assert_eq!(
        records
            .iter()
            .map(|r| r[4].parse::<i64>().unwrap())
            .sum::<i64>(),
        SUM_IDS
    );
    let row = records
        .iter()
        .find(|r| r[4] == "50000")
        .expect("row 50,000 in CSV");
    assert_eq!(row[2].len(), 36, "_cq_id as uuid text: {}", row[2]);
    assert_eq!(row[3], "", "a top-level row has no parent");
    assert_eq!(row[5], "name_00000050000");
    assert_eq!(row[6].parse::<f64>().unwrap(), 50_000.0 / 7.0);
    assert_eq!(row[7], "false");
    assert!(
        row[8].starts_with("2024-01-01T13:53:20"),
        "created_at {}",
        row[8]
    );
    assert_eq!(row[9], ROW_50K_PAYLOAD);
    assert_eq!(row[10], r#"["a0","b0","c0"]"#);

    // JSON lines: one object per row, lists as arrays.
    let json = files(&work.path().join("out/json"), ".json");
    assert_eq!(json.len(), 1, "{json:?}");
    let text = std::fs::read_to_string(&json[0]).unwrap();
    let objects: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len() as u64, ROWS);
    assert_eq!(
        objects
            .iter()
            .map(|o| o["id"].as_i64().unwrap())
            .sum::<i64>(),
        SUM_IDS
    );
    let row = objects
        .iter()
        .find(|o| o["id"] == 50_000)
        .expect("row 50,000 in JSON");
    assert_eq!(row["name"], "name_00000050000");
    assert_eq!(row["value"].as_f64().unwrap(), 50_000.0 / 7.0);
    assert_eq!(row["flag"], false);
    assert!(
        row["created_at"]
            .as_str()
            .unwrap()
            .starts_with("2024-01-01T13:53:20"),
        "{row}"
    );
    assert_eq!(row["payload"], ROW_50K_PAYLOAD);
    assert_eq!(row["tags"], serde_json::json!(["a0", "b0", "c0"]));
    assert_eq!(row["_cq_source_name"], "test");
}

#[test]
fn a_second_sync_loads_compiled_components_from_the_cache() {
    let work = Workdir::new();
    let cache = work.path().join("cache");
    let cache = cache.to_str().unwrap();
    let spec = work.write("spec.yml", &spec(10));
    let args = ["--log-level", "debug", "sync", spec.to_str().unwrap()];
    let first = work.quarry_with(&args, &[("QUARRY_CACHE_DIR", cache)]);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(
        first.stderr.matches("compiled plugin component").count(),
        2,
        "test and file compiled: {first:?}"
    );
    let second = work.quarry_with(&args, &[("QUARRY_CACHE_DIR", cache)]);
    assert_eq!(second.code, 0, "{second:?}");
    assert!(
        !second.stderr.contains("compiled plugin component"),
        "{second:?}"
    );
    assert_eq!(
        second
            .stderr
            .matches("loaded compiled component from cache")
            .count(),
        2,
        "{second:?}"
    );
}

#[test]
fn every_arrow_type_of_the_test_source_reaches_parquet() {
    let work = Workdir::new();
    let spec = work.write(
        "spec.yml",
        r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_all_types]
  destinations: [out]
  spec: { num_rows: 21 }
---
kind: destination
spec:
  name: out
  path: quarry/file
  write_mode: append
  spec: { path: 'out/{{TABLE}}.{{FORMAT}}', format: parquet, no_rotate: true }
  permissions: { files: { out: write } }
"#,
    );
    let run = work.quarry(&["sync", spec.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    let batches = read_parquet(&work.path().join("out/test_all_types.parquet"));
    let schema = batches[0].schema();
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 21);
    let uuid = schema.field_with_name("uuid").unwrap();
    assert_eq!(uuid.data_type(), &DataType::FixedSizeBinary(16));
    assert_eq!(uuid.metadata()["ARROW:extension:name"], "uuid");
    assert_eq!(
        schema.field_with_name("json").unwrap().metadata()["ARROW:extension:name"],
        "json"
    );
    assert_eq!(
        schema.field_with_name("decimal").unwrap().data_type(),
        &DataType::Decimal128(20, 4)
    );
    // Rows 6 and 13 and 20 are the null rows.
    let int32 = batches[0].column(schema.index_of("int32").unwrap());
    assert_eq!(int32.null_count(), 3);
}

/// wasmtime copies at most 128 MiB out of a component in one call: a source batch whose Arrow
/// stream is larger (1M rows of `test_rows` is about 200 MB) crosses in pieces, every row kept.
#[test]
fn a_source_batch_larger_than_a_host_call_arrives_whole() {
    let w = Workdir::new();
    w.write(
        "spec.yml",
        r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_rows]
  destinations: [out]
  spec: { num_rows: 1000000, batch_size: 1000000 }
  permissions: { memory: 3GiB }
---
kind: destination
spec:
  name: out
  path: quarry/test
  write_mode: append
"#,
    );
    let run = w.quarry(&["sync", "spec.yml", "--summary-location", "summary.json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let summary = std::fs::read_to_string(w.path().join("summary.json")).unwrap();
    let source: serde_json::Value = serde_json::from_str(summary.lines().next().unwrap()).unwrap();
    assert_eq!(source["resources"], 1_000_000, "{summary}");
    assert!(
        source["ipc_bytes"].as_u64().unwrap() > 128 << 20,
        "{summary}"
    );
}

/// `workers: 2` into Parquet files: two lanes, each an instance of the source and of the
/// destination, write every table's rows once. When a second source brings the same tables to
/// a destination that names its files by table alone, an instance would start anew a file
/// another wrote: refused before the sync, naming the tables and the path; with `{{UUID}}` in
/// the path each instance writes files of its own and both sources' rows are kept.
#[test]
fn workers_write_each_table_once_and_files_named_by_table_alone_are_refused() {
    let w = Workdir::new();
    let source = |name: &str, workers: u32| {
        format!(
            "kind: source\nspec:\n  name: {name}\n  path: quarry/test\n  tables: [\"test_rows*\"]\n  workers: {workers}\n  destinations: [out]\n  spec: {{ num_rows: 500, num_tables: 4, batch_size: 100 }}\n---\n"
        )
    };
    let destination = |path: &str| {
        format!(
            "kind: destination\nspec:\n  name: out\n  path: quarry/file\n  write_mode: append\n  spec: {{ path: \"{path}\", format: parquet }}\n  permissions: {{ files: {{ ./out: write }} }}\n"
        )
    };
    w.write(
        "one.yml",
        &(source("a", 2) + &destination("out/one/{{TABLE}}.{{FORMAT}}")),
    );
    let run = w.quarry(&["--log-level", "info", "sync", "one.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("lanes=2"), "{run:?}");
    assert!(run.stdout.contains("Synced a → out: 2000 rows"), "{run:?}");
    for table in ["test_rows", "test_rows_2", "test_rows_3", "test_rows_4"] {
        let batches = read_parquet(&w.path().join(format!("out/one/{table}.parquet")));
        let ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                let ids = b
                    .column_by_name("id")
                    .expect("id")
                    .as_primitive::<Int64Type>();
                ids.values().to_vec()
            })
            .collect();
        assert_eq!(ids, (0..500).collect::<Vec<i64>>(), "table {table}");
    }

    let two = source("a", 2) + &source("b", 1) + &destination("out/two/{{TABLE}}.{{FORMAT}}");
    w.write("two.yml", &two);
    let run = w.quarry(&["sync", "two.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(
            "destination `out`: table `test_rows` of source `b` and table `test_rows` of source `a` both become table `test_rows`: its files are named by table alone (`path: out/two/{{TABLE}}.{{FORMAT}}`)"
        ),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("remove `workers` from source `a`"),
        "{run:?}"
    );
    assert!(
        files(&w.path().join("out/two"), ".parquet").is_empty(),
        "{run:?}"
    );

    w.write(
        "two.yml",
        &two.replace(
            "out/two/{{TABLE}}.{{FORMAT}}",
            "out/two/{{TABLE}}/{{UUID}}.{{FORMAT}}",
        ),
    );
    let run = w.quarry(&["sync", "two.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    let rows: usize = files(&w.path().join("out/two/test_rows_3"), ".parquet")
        .iter()
        .flat_map(|f| read_parquet(f))
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 1000);
}
