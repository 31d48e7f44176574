//! The DuckDB destination, a native plugin served over gRPC, against the real DuckDB library:
//! every type of the `test` source and a million rows (write modes and migrations are in
//! `conformance`). The database is read back with the plugin's own `query` command.

use crate::support::{Run, Workdir, duckdb_query as query, golden};
fn sync(w: &Workdir, spec: &str) -> Run {
    w.write("spec.yml", spec);
    w.quarry(&["sync", "spec.yml"])
}
#[test]
fn every_type_of_the_test_source_arrives_in_its_duckdb_type() {
    let w = Workdir::new();
    let spec = r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_all_types]
  destinations: [duck]
  spec: { num_rows: 20 }
---
kind: destination
spec:
  name: duck
  path: quarry/duckdb
  write_mode: append
  spec: { connection_string: types.db }
"#;
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
    let spec = r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_rows]
  destinations: [duck]
  spec: { num_rows: 1000000, batch_size: 10000 }
---
kind: destination
spec:
  name: duck
  path: quarry/duckdb
  spec: { connection_string: big.db }
"#;
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
