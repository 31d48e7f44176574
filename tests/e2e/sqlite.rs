//! The SQLite destination, a sandboxed component with SQLite compiled in: the table rebuilt for a
//! relaxed not-null column, every type of the `test` source, a million rows, and the grant it
//! needs (write modes and migrations are in `conformance`). The database is read back with SQLite itself (rusqlite).

use crate::support::{
    FIRST, ITEMS, ITEMS_WITH_NOTE, Run, Workdir, golden, sqlite_query as query, store_source,
};

/// The destination document: `data/sync.db`, its directory granted.
fn destination(settings: &str) -> String {
    format!(
        r#"---
kind: destination
spec:
  name: lite
  path: quarry/sqlite
  {settings}
  spec: {{ connection_string: ./data/sync.db }}
  permissions: {{ files: {{ ./data: write }} }}
"#
    )
}

fn sync(w: &Workdir, spec: &str) -> Run {
    w.write("spec.yml", spec);
    w.quarry(&["sync", "spec.yml"])
}

fn items(columns: &str, rows: &str, settings: &str) -> String {
    store_source(columns, rows, "lite") + &destination(settings)
}
/// SQLite cannot alter a column: a not-null column that becomes nullable rebuilds the table, its
/// rows and key kept. (The other migrations are in the conformance suite.)
#[test]
fn a_relaxed_not_null_column_rebuilds_the_table() {
    let strict = "[{ name: id, type: int64, primary_key: true }, { name: name, type: utf8, not_null: true }, { name: note, type: utf8 }]";
    let w = Workdir::new();
    let run = sync(
        &w,
        &items(strict, "[[1, a, x], [2, b, y]]", "write_mode: overwrite"),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let run = sync(
        &w,
        &items(ITEMS_WITH_NOTE, "[[3, null, z]]", "write_mode: overwrite"),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let db = w.path().join("data/sync.db");
    assert_eq!(
        query(&db, "SELECT id, name, note FROM items ORDER BY id"),
        "1\ta\tx\n2\tb\ty\n3\tNULL\tz"
    );
    assert_eq!(
        query(
            &db,
            "SELECT name, \"notnull\", pk FROM pragma_table_info('items') WHERE name IN ('id', 'name')"
        ),
        "id\t1\t1\nname\t0\t0"
    );
}

#[test]
fn every_type_of_the_test_source_arrives_exactly() {
    let w = Workdir::new();
    let spec = r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_all_types]
  destinations: [lite]
  spec: { num_rows: 20 }
"#
    .to_string()
        + &destination("write_mode: append");
    let run = sync(&w, &spec);
    assert_eq!(run.code, 0, "{run:?}");
    let db = w.path().join("data/sync.db");
    let types = query(
        &db,
        "SELECT name || ' ' || type || CASE WHEN \"notnull\" THEN ' NOT NULL' ELSE '' END FROM pragma_table_info('test_all_types') ORDER BY cid",
    );
    golden(&types, "sqlite/all_types.txt");
    // Row 1 and the nulls' row 6: every value with its storage class, exactly as stored.
    let columns = query(
        &db,
        "SELECT group_concat(format('''%s: '' || typeof(\"%s\") || '' '' || quote(\"%s\")', name, name, name), ', ') FROM pragma_table_info('test_all_types') WHERE name NOT IN ('_cq_sync_time', '_cq_id')",
    );
    let rows = query(
        &db,
        &format!("SELECT {columns} FROM test_all_types WHERE id IN (1, 6) ORDER BY id"),
    );
    golden(&rows.replace('\t', "\n"), "sqlite/all_types_rows.txt");
    assert_eq!(query(&db, "SELECT count(*) FROM test_all_types"), "20");
}

#[test]
fn a_million_rows_of_test_rows() {
    let w = Workdir::new();
    let spec = r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_rows]
  destinations: [lite]
  spec: { num_rows: 1000000, batch_size: 10000 }
"#
    .to_string()
        + &destination("write_mode: overwrite-delete-stale");
    let run = sync(&w, &spec);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        query(
            &w.path().join("data/sync.db"),
            "SELECT count(*), sum(id), count(DISTINCT id) FROM test_rows"
        ),
        "1000000\t499999500000\t1000000"
    );
}

#[test]
fn the_database_directory_must_be_granted() {
    let w = Workdir::new();
    std::fs::create_dir_all(w.path().join("data")).expect("mkdir");
    let spec = store_source(ITEMS, FIRST, "lite")
        + r#"---
kind: destination
spec:
  name: lite
  path: quarry/sqlite
  spec: { connection_string: ./data/sync.db }
"#;
    w.write("spec.yml", &spec);
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("cannot open the SQLite database `./data/sync.db`")
            && run
                .stderr
                .contains("permissions: { files: { \"./data\": write } }"),
        "{run:?}"
    );
    assert!(!w.path().join("data/sync.db").exists());
}

/// A source with `workers` opens each destination once per lane; a SQLite database is one file
/// that two instances would write at once, so the spec is refused before anything is written,
/// naming the file and what to do.
#[test]
fn workers_into_one_database_file_are_refused_before_the_sync() {
    let w = Workdir::new();
    let spec = r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: ["test_rows*"]
  workers: 2
  destinations: [lite]
  spec: { num_tables: 2, num_rows: 10 }
"#
    .to_string()
        + &destination("");
    let run = sync(&w, &spec);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(
            "source `test` syncs with `workers: 2`, which opens destination `lite` 2 times, but it writes one file (`connection_string: ./data/sync.db`)"
        ),
        "{run:?}"
    );
    assert!(run.stderr.contains("spec.yml:3:3"), "{run:?}");
    assert!(
        run.stderr.contains("remove `workers` from source `test`"),
        "{run:?}"
    );
    // One table: one lane, one instance, nothing to refuse.
    let run = sync(&w, &spec.replace("num_tables: 2", "num_tables: 1"));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        query(
            &w.path().join("data/sync.db"),
            "SELECT count(*) FROM test_rows"
        ),
        "10"
    );
}
