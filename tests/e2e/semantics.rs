//! Sync semantics through the `store` fixture, a destination that keeps rows in Arrow IPC files:
//! `pk_mode`, the full text of a refused migration, relations and `_cq_id`s, the batches a
//! destination asks for. Write modes, migrations and delete-record for every destination are in
//! `conformance`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_ipc::reader::FileReader;
use arrow_schema::DataType;

use crate::support::{
    FIRST, ITEMS as COLUMNS, ITEMS_WITH_NOTE, JSON_FILES, Run, SECOND, Workdir, golden,
    store_plugin, store_source,
};

/// A spec: the store fixture as a source of `items` (columns and rows given as YAML flow
/// text), into the store fixture as a destination with `destination` settings.
fn store_spec(columns: &str, rows: &str, destination: &str) -> String {
    let plugin = store_plugin().display().to_string();
    format!(
        r#"{}---
kind: destination
spec:
  name: db
  registry: local
  path: {plugin}
  {destination}
  spec: {{ dir: db }}
  permissions: {{ files: {{ ./db: write }} }}
"#,
        store_source(columns, rows, "db")
    )
}

fn read_table(dir: &Path, table: &str) -> RecordBatch {
    let path = dir.join(format!("{table}.arrow"));
    let file = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = FileReader::try_new(file, None).expect("arrow file");
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("batches");
    arrow_select::concat::concat_batches(&schema, &batches).expect("concat")
}

fn int64s(batch: &RecordBatch, column: &str) -> Vec<i64> {
    batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("no column {column}"))
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let a = batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("no column {column}"))
        .as_string::<i32>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
        .collect()
}

fn uuids(batch: &RecordBatch, column: &str) -> Vec<Vec<u8>> {
    let a = batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("no column {column}"))
        .as_fixed_size_binary();
    (0..a.len()).map(|i| a.value(i).to_vec()).collect()
}

fn sync(w: &Workdir, spec: &str) -> Run {
    w.write("spec.yml", spec);
    w.quarry(&["sync", "spec.yml"])
}

fn two_syncs(write_mode: &str) -> Workdir {
    let w = Workdir::new();
    std::fs::create_dir(w.path().join("db")).expect("mkdir");
    let destination = format!("write_mode: {write_mode}");
    for rows in [FIRST, SECOND] {
        let run = sync(&w, &store_spec(COLUMNS, rows, &destination));
        assert_eq!(run.code, 0, "{run:?}");
    }
    w
}
#[test]
fn pk_mode_cq_id_only_upserts_on_the_row_id() {
    // Random row ids differ between syncs, so nothing is replaced.
    let w = two_syncs("overwrite\n  pk_mode: cq-id-only");
    let stored = read_table(&w.path().join("db"), "items");
    assert_eq!(stored.num_rows(), 6);
    let keys: Vec<&str> = stored
        .schema_ref()
        .fields()
        .iter()
        .filter(|f| {
            f.metadata()
                .get("cq:extension:primary_key")
                .is_some_and(|v| v == "true")
        })
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(keys, ["_cq_id"]);
}

#[test]
fn safe_migration_adds_nullable_columns_and_refuses_breaking_changes_until_forced() {
    let w = Workdir::new();
    let db = w.path().join("db");
    std::fs::create_dir(&db).expect("mkdir");
    let run = sync(&w, &store_spec(COLUMNS, FIRST, "write_mode: overwrite"));
    assert_eq!(run.code, 0, "{run:?}");

    // A new nullable column is safe: old rows get nulls.
    let added = ITEMS_WITH_NOTE;
    let run = sync(
        &w,
        &store_spec(added, "[[4, d, new]]", "write_mode: overwrite"),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let stored = read_table(&db, "items");
    assert_eq!(int64s(&stored, "id"), [1, 2, 3, 4]);
    assert_eq!(
        strings(&stored, "note"),
        [None, None, None, Some("new".into())]
    );
    let before = std::fs::read(db.join("items.arrow")).expect("table file");

    // A type change and a new not-null column are breaking: refused before the sync starts,
    // nothing written.
    let breaking = "[{ name: id, type: int64, primary_key: true }, { name: name, type: int64 }, { name: note, type: utf8 }, { name: size, type: int64, not_null: true }]";
    let run = sync(
        &w,
        &store_spec(breaking, "[[5, 55, x, 1]]", "write_mode: overwrite"),
    );
    assert_eq!(run.code, 2, "refused before any source runs: {run:?}");
    for expected in [
        "destination `db` (migrate_mode: safe): table `items` needs changes that lose data",
        "column `name` changes type from Utf8 to Int64",
        "new not-null column `size` (Int64)",
        "set `migrate_mode: forced` on destination `db`",
    ] {
        assert!(
            run.stderr.contains(expected),
            "missing {expected:?}: {run:?}"
        );
    }
    assert_eq!(
        std::fs::read(db.join("items.arrow")).expect("table file"),
        before,
        "a refused migration must not touch the table"
    );
    // `quarry validate` prints the plan with the refusal, exits 2 and changes nothing either.
    let run = w.quarry(&["validate", "spec.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    let plugin = store_plugin().display().to_string();
    golden(
        &format!("--- stdout\n{}--- stderr\n{}", run.stdout, run.stderr).replace(&plugin, "STORE"),
        "validate/refused_migration.txt",
    );
    assert_eq!(
        std::fs::read(db.join("items.arrow")).expect("table file"),
        before
    );

    // Forced: the table is recreated with the new schema and holds the new sync's rows.
    let run = sync(
        &w,
        &store_spec(
            breaking,
            "[[5, 55, x, 1]]",
            "write_mode: overwrite\n  migrate_mode: forced",
        ),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let stored = read_table(&db, "items");
    assert_eq!(int64s(&stored, "id"), [5]);
    assert_eq!(int64s(&stored, "name"), [55]);
    assert_eq!(
        stored
            .schema()
            .field_with_name("name")
            .map(|f| f.data_type().clone())
            .ok(),
        Some(DataType::Int64)
    );
}
#[test]
fn the_file_destination_refuses_delete_record_with_an_error() {
    let w = Workdir::new();
    let plugin = store_plugin().display().to_string();
    let spec = format!(
        r#"kind: source
spec:
  name: src
  registry: local
  path: {plugin}
  tables: ['*']
  destinations: [out]
  spec:
    tables: [{{ name: items, columns: {COLUMNS}, rows: {FIRST} }}]
    delete: [{{ table: items, column: id, value: 2 }}]
{JSON_FILES}"#
    );
    w.write("spec.yml", &spec);
    let run = w.quarry(&["sync", "spec.yml", "--summary-location", "summary.json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("plugin `out` failed in write of table `items`: file cannot delete records"),
        "{run:?}"
    );
    // One JSON line per source and destination, with CloudQuery's field names.
    let text = std::fs::read_to_string(w.path().join("summary.json")).expect("summary.json");
    assert_eq!(text.lines().count(), 1, "{text}");
    let summary: serde_json::Value = serde_json::from_str(&text).expect("summary JSON line");
    assert_eq!(summary["source_name"], "src", "{summary}");
    assert_eq!(summary["destination_name"], "out", "{summary}");
    assert_eq!(summary["destination_path"], "quarry/file", "{summary}");
    assert_eq!(summary["resources"], 3, "{summary}");
    assert_eq!(summary["resources_per_table"]["items"], 3, "{summary}");
    assert_eq!(summary["errors_per_table"]["items"], 1, "{summary}");
    assert_eq!(summary["destination_errors"], 1, "{summary}");
    assert!(
        summary["durations_per_table_ms"]["items"].is_u64(),
        "{summary}"
    );
    assert_eq!(
        summary["source_tables"],
        serde_json::json!(["items"]),
        "{summary}"
    );
    assert!(
        summary["destination_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot delete records")),
        "{summary}"
    );
    // The rows sent before the request were written.
    let written = std::fs::read_to_string(w.path().join("out/items.json")).expect("json file");
    assert_eq!(written.lines().count(), 3);
    // A second run appends its line.
    w.quarry(&["sync", "spec.yml", "--summary-location", "summary.json"]);
    let text = std::fs::read_to_string(w.path().join("summary.json")).expect("summary.json");
    assert_eq!(text.lines().count(), 2, "{text}");
}

fn family_spec(deterministic: bool) -> String {
    let plugin = store_plugin().display().to_string();
    format!(
        r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_parents]
  destinations: [db]
  deterministic_cq_id: {deterministic}
  spec: {{ num_rows: 40, batch_size: 15, children_per_parent: 3 }}
---
kind: destination
spec:
  name: db
  registry: local
  path: {plugin}
  write_mode: overwrite-delete-stale
  spec: {{ dir: db }}
  permissions: {{ files: {{ ./db: write }} }}
"#
    )
}

/// `(parent id → parent _cq_id, (parent_id, n) → (child _cq_id, child _cq_parent_id))`.
type Family = (
    HashMap<i64, Vec<u8>>,
    BTreeMap<(i64, i32), (Vec<u8>, Vec<u8>)>,
);

fn family(db: &Path) -> Family {
    let parents = read_table(db, "test_parents");
    let parent_ids: HashMap<i64, Vec<u8>> = int64s(&parents, "id")
        .into_iter()
        .zip(uuids(&parents, "_cq_id"))
        .collect();
    let children = read_table(db, "test_children");
    let ns = children
        .column_by_name("n")
        .expect("n")
        .as_primitive::<Int32Type>()
        .values()
        .to_vec();
    let keys = int64s(&children, "parent_id").into_iter().zip(ns);
    let ids = uuids(&children, "_cq_id")
        .into_iter()
        .zip(uuids(&children, "_cq_parent_id"));
    (parent_ids, keys.zip(ids).collect())
}

#[test]
fn child_rows_carry_their_parents_cq_id_and_deterministic_ids_are_stable() {
    let w = Workdir::new();
    let db = w.path().join("db");
    std::fs::create_dir(&db).expect("mkdir");
    let run = sync(&w, &family_spec(true));
    assert_eq!(run.code, 0, "{run:?}");
    let (parents, children) = family(&db);
    assert_eq!(parents.len(), 40);
    assert_eq!(children.len(), 120);
    for ((parent, n), (_, parent_cq_id)) in &children {
        assert_eq!(
            Some(parent_cq_id),
            parents.get(parent),
            "child ({parent}, {n})"
        );
    }

    let run = sync(&w, &family_spec(true));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        family(&db),
        (parents.clone(), children.clone()),
        "deterministic ids change"
    );

    // Random ids: a new id per sync, and the children still point at their parents.
    let run = sync(&w, &family_spec(false));
    assert_eq!(run.code, 0, "{run:?}");
    let (random_parents, random_children) = family(&db);
    assert!(random_parents.iter().all(|(id, cq)| parents[id] != *cq));
    for ((parent, _), (_, parent_cq_id)) in &random_children {
        assert_eq!(Some(parent_cq_id), random_parents.get(parent));
    }
}

#[test]
fn a_destination_states_its_preferred_batch_and_write_modes() {
    let w = Workdir::new();
    let run = w.quarry(&["plugin", "inspect", &store_plugin().display().to_string()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("write modes: append, overwrite, overwrite-delete-stale"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("batch:       1000 rows, 104857600 (the default) bytes"),
        "{run:?}"
    );
    let run = w.quarry(&["plugin", "inspect", "quarry/file"]);
    assert!(run.stdout.contains("write modes: append\n"), "{run:?}");
}
