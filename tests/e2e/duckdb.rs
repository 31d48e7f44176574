//! The DuckDB destination, a native plugin served over gRPC, against the real DuckDB library:
//! every write mode over two syncs, safe and forced migration, every type of the `test` source,
//! and a million rows. The database is read back with the plugin's own `query` command.

use crate::support::{
    FIRST, ITEMS as COLUMNS, ITEMS_NAME_INT64, ITEMS_WITH_NOTE, Run, SECOND, Workdir,
    duckdb_query as query, golden, store_source,
};

fn store_spec(columns: &str, rows: &str, destination: &str) -> String {
    format!(
        "{}---\nkind: destination\nspec:\n  name: duck\n  path: quarry/duckdb\n  {destination}\n  spec: {{ connection_string: sync.db }}\n",
        store_source(columns, rows, "duck")
    )
}

fn sync(w: &Workdir, spec: &str) -> Run {
    w.write("spec.yml", spec);
    w.quarry(&["sync", "spec.yml"])
}

fn two_syncs(write_mode: &str) -> String {
    let w = Workdir::new();
    for rows in [FIRST, SECOND] {
        let run = sync(
            &w,
            &store_spec(COLUMNS, rows, &format!("write_mode: {write_mode}")),
        );
        assert_eq!(run.code, 0, "{run:?}");
    }
    query(
        &w.path().join("sync.db"),
        "SELECT id, name FROM items ORDER BY id, name",
    )
}

#[test]
fn every_write_mode_over_two_syncs() {
    assert_eq!(two_syncs("append"), "1\ta\n2\tB\n2\tb\n3\tC\n3\tc\n4\td");
    assert_eq!(two_syncs("overwrite"), "1\ta\n2\tB\n3\tC\n4\td");
    assert_eq!(two_syncs("overwrite-delete-stale"), "2\tB\n3\tC\n4\td");
}

#[test]
fn safe_migration_adds_columns_and_a_breaking_change_needs_forced() {
    let w = Workdir::new();
    let db = w.path().join("sync.db");
    let run = sync(&w, &store_spec(COLUMNS, FIRST, "write_mode: overwrite"));
    assert_eq!(run.code, 0, "{run:?}");
    let added = ITEMS_WITH_NOTE;
    let run = sync(
        &w,
        &store_spec(added, "[[4, d, new]]", "write_mode: overwrite"),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        query(&db, "SELECT id, name, note FROM items ORDER BY id"),
        "1\ta\tNULL\n2\tb\tNULL\n3\tc\tNULL\n4\td\tnew"
    );

    // A type change: protocol v3 cannot ask a gRPC destination for its table before the sync,
    // so the plugin itself refuses it, and leaves the table as it was.
    let breaking = ITEMS_NAME_INT64;
    let run = sync(
        &w,
        &store_spec(breaking, "[[5, 55, x]]", "write_mode: overwrite"),
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("column `name` changes type from Utf8 to Int64")
            && run.stderr.contains("migrate_mode: forced"),
        "{run:?}"
    );
    assert_eq!(query(&db, "SELECT count(*) FROM items"), "4");

    let run = sync(
        &w,
        &store_spec(
            breaking,
            "[[5, 55, x]]",
            "write_mode: overwrite\n  migrate_mode: forced",
        ),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(query(&db, "SELECT id, name, note FROM items"), "5\t55\tx");
    assert_eq!(
        query(
            &db,
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'name'"
        ),
        "BIGINT"
    );
}

#[test]
fn every_type_of_the_test_source_arrives_in_its_duckdb_type() {
    let w = Workdir::new();
    let spec = "kind: source\nspec:\n  name: test\n  path: quarry/test\n  tables: [test_all_types]\n  destinations: [duck]\n  spec: { num_rows: 20 }\n---\nkind: destination\nspec:\n  name: duck\n  path: quarry/duckdb\n  write_mode: append\n  spec: { connection_string: types.db }\n";
    let run = sync(&w, spec);
    assert_eq!(run.code, 0, "{run:?}");
    let db = w.path().join("types.db");
    let types = query(
        &db,
        "SELECT column_name || ' ' || data_type FROM information_schema.columns WHERE table_name = 'test_all_types' ORDER BY ordinal_position",
    );
    golden(&types, "duckdb/duckdb_all_types.txt");
    // One whole row, every value as DuckDB prints it.
    let row = query(
        &db,
        "SELECT * EXCLUDE (_cq_sync_time, _cq_id) FROM test_all_types WHERE id = 1",
    );
    golden(&row, "duckdb/duckdb_all_types_row1.txt");
    assert_eq!(query(&db, "SELECT count(*) FROM test_all_types"), "20");
}

#[test]
fn a_million_rows_of_test_rows() {
    let w = Workdir::new();
    let spec = "kind: source\nspec:\n  name: test\n  path: quarry/test\n  tables: [test_rows]\n  destinations: [duck]\n  spec: { num_rows: 1000000, batch_size: 10000 }\n---\nkind: destination\nspec:\n  name: duck\n  path: quarry/duckdb\n  spec: { connection_string: big.db }\n";
    let run = sync(&w, spec);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        query(
            &w.path().join("big.db"),
            "SELECT count(*), sum(id), count(DISTINCT id) FROM test_rows"
        ),
        "1000000\t499999500000\t1000000"
    );
}
