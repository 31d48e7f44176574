//! The plugin's own command line: `exec` changes a database, `query` reads it (read-only), and
//! a wrong invocation says how to call it. (Building this test also builds the executable the
//! end-to-end tests start.)

use std::process::{Command, Output};

const PLUGIN: &str = env!("CARGO_BIN_EXE_quarry-plugin-duckdb");

fn run(args: &[&str]) -> Output {
    Command::new(PLUGIN)
        .args(args)
        .output()
        .expect("run the plugin")
}

#[test]
fn exec_writes_and_query_reads_tab_separated_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("cli.db");
    let db = db.to_str().expect("path");
    let out = run(&[
        "exec",
        db,
        "CREATE TABLE t (id INTEGER, name VARCHAR); INSERT INTO t VALUES (1, 'a'), (2, NULL)",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["query", db, "SELECT id, name FROM t ORDER BY id"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\ta\n2\tNULL\n");
    // A query cannot change the database.
    let out = run(&["query", db, "DROP TABLE t"]);
    assert!(!out.status.success());
    let out = run(&["query", db, "SELECT count(*) FROM t"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n");
}

#[test]
fn a_missing_argument_prints_the_usage() {
    let out = run(&["query", "only-a-file.db"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("usage: quarry-plugin-duckdb query <database file> <sql>")
    );
}
