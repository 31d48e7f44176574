//! `quarry/file` as a source: CSV files under a granted directory, globbed, into SQLite, read
//! incrementally by file name with the cursor in the state backend.

use crate::support::{Workdir, sqlite_query};

const SPEC: &str = r#"kind: source
spec:
  name: exports
  path: quarry/file
  tables: [orders]
  destinations: [lite]
  backend_options:
    table_name: cq_state
    connection: "@@plugins.lite.connection"
  spec:
    tables:
      - name: orders
        paths: ["exports/orders/*.csv"]
        primary_key: [id]
        columns: { amount: Float64 }
        incremental: name
  permissions: { files: { ./exports: read } }
---
kind: destination
spec:
  name: lite
  path: quarry/sqlite
  spec: { connection_string: ./data/out.db }
  permissions: { files: { ./data: write } }
"#;

#[test]
fn csv_files_sync_and_the_next_run_reads_only_the_new_files() {
    let w = Workdir::new();
    w.write(
        "exports/orders/2026-01.csv",
        "id,amount,note\n1,10.5,a\n2,3,\n",
    );
    w.write(
        "exports/orders/2026-02.csv",
        "id,amount,note\n3,7.25,\"c, d\"\n",
    );
    w.write("exports/orders/readme.txt", "not a match");
    w.write("spec.yml", SPEC);
    let db = w.path().join("data/out.db");
    let rows = || {
        sqlite_query(
            &db,
            "SELECT group_concat(id || ':' || amount || ':' || ifnull(note, '-'), ' ') FROM (SELECT * FROM orders ORDER BY id)",
        )
    };
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(rows(), "1:10.5:a 2:3.0:- 3:7.25:c, d");
    let show = w.quarry(&["state", "show", "exports", "spec.yml"]);
    assert_eq!(
        show.stdout,
        "orders\t{\"mode\":\"name\",\"after\":{\"exports/orders/*.csv\":\"exports/orders/2026-02.csv\"}}\n",
        "{show:?}"
    );

    w.write("exports/orders/2026-03.csv", "id,amount,note\n4,1,e\n");
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("(orders 1)"), "{run:?}");
    assert_eq!(rows(), "1:10.5:a 2:3.0:- 3:7.25:c, d 4:1.0:e");

    // A file that does not fit the table's schema is named with the reader's complaint, and so
    // is one whose header has the columns in another order (CSV columns go by position).
    w.write("exports/orders/2026-04.csv", "id,amount,note\nfive,2,x\n");
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("exports/orders/2026-04.csv"), "{run:?}");
    w.write("exports/orders/2026-04.csv", "id,note,amount\n5,x,2\n");
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("its header is `id,note,amount`, but the table's columns (from its first file) are `id,amount,note`"),
        "{run:?}"
    );
    assert_eq!(rows(), "1:10.5:a 2:3.0:- 3:7.25:c, d 4:1.0:e");

    // A second pattern keeps its own cursor: a file it finds that sorts before the first
    // pattern's cursor is still new.
    std::fs::remove_file(w.path().join("exports/orders/2026-04.csv")).unwrap();
    w.write(
        "exports/archive/2020/orders.csv",
        "id,amount,note\n0,9,old\n",
    );
    w.write(
        "spec.yml",
        &SPEC.replace(
            r#"paths: ["exports/orders/*.csv"]"#,
            r#"paths: ["exports/orders/*.csv", "exports/archive/*/orders.csv"]"#,
        ),
    );
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(rows(), "0:9.0:old 1:10.5:a 2:3.0:- 3:7.25:c, d 4:1.0:e");
    // A cursor saved in another mode is refused, with the reset that fixes it.
    w.write(
        "spec.yml",
        &SPEC.replace("incremental: name", "incremental: modified"),
    );
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("its cursor was saved with `incremental: name`"),
        "{run:?}"
    );
}

#[test]
fn without_a_grant_the_files_are_out_of_reach() {
    let w = Workdir::new();
    w.write("exports/orders/2026-01.csv", "id,amount,note\n1,10.5,a\n");
    w.write(
        "spec.yml",
        &SPEC.replace("  permissions: { files: { ./exports: read } }\n", ""),
    );
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("table `orders`: no file matches exports/orders/*.csv"),
        "{run:?}"
    );
    assert!(run.stderr.contains("permissions: { files:"), "{run:?}");
}
