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
        show.stdout, "orders\texports/orders/2026-02.csv\n",
        "{show:?}"
    );

    w.write("exports/orders/2026-03.csv", "id,amount,note\n4,1,e\n");
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("(orders 1)"), "{run:?}");
    assert_eq!(rows(), "1:10.5:a 2:3.0:- 3:7.25:c, d 4:1.0:e");

    // A file that does not fit the table's schema is named with the reader's complaint.
    w.write("exports/orders/2026-04.csv", "id,amount,note\nfive,2,x\n");
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("exports/orders/2026-04.csv"), "{run:?}");
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
