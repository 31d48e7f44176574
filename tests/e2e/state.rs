//! Incremental syncs: cursors kept in a destination (`backend_options`), saved only after every
//! destination flushed the rows before them, shown and reset with `quarry state`. The source is
//! the `test` plugin's incremental table, `test_increments`.

use crate::support::{
    Run, Schema, Workdir, increments_into_postgres, psql, sqlite_query as query,
    sync_killed_after_a_checkpoint,
};

fn sqlite_spec(rows: u64) -> String {
    format!(
        r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_increments, test_rows]
  destinations: [lite]
  backend_options:
    table_name: cq_state
    connection: "@@plugins.lite.connection"
  spec: {{ num_rows: {rows}, batch_size: 100 }}
---
kind: destination
spec:
  name: lite
  path: quarry/sqlite
  write_mode: overwrite-delete-stale
  spec: {{ connection_string: ./data/sync.db }}
  permissions: {{ files: {{ ./data: write }} }}
"#
    )
}

fn ids(w: &Workdir, table: &str) -> String {
    query(
        &w.path().join("data/sync.db"),
        &format!("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM {table}"),
    )
}

#[test]
fn a_second_sync_continues_after_the_saved_cursor_and_reset_starts_over() {
    let w = Workdir::new();
    w.write("spec.yml", &sqlite_spec(1000));
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(ids(&w, "test_increments"), "1000\t1000\t0\t999");
    let show = w.quarry(&["state", "show", "test", "spec.yml"]);
    assert_eq!(
        (show.code, show.stdout.as_str()),
        (0, "test_increments\t1000\n"),
        "{show:?}"
    );

    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    // Only the new rows were sent; delete-stale left the incremental table's older rows alone,
    // and removed nothing of the full table it rewrote.
    assert!(run.stdout.contains("test_increments 1000"), "{run:?}");
    assert_eq!(ids(&w, "test_increments"), "2000\t2000\t0\t1999");
    assert_eq!(ids(&w, "test_rows"), "1000\t1000\t0\t999");
    assert_eq!(
        w.quarry(&["state", "show", "test", "spec.yml"]).stdout,
        "test_increments\t2000\n"
    );

    let reset = w.quarry(&["state", "reset", "test", "spec.yml"]);
    assert_eq!(reset.code, 0, "{reset:?}");
    assert!(
        reset
            .stderr
            .contains("Deleted 1 cursor(s) of source `test`"),
        "{reset:?}"
    );
    assert_eq!(w.quarry(&["state", "show", "test", "spec.yml"]).stdout, "");
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(ids(&w, "test_increments"), "2000\t2000\t0\t1999");
}

/// State in SQLite while the rows go to PostgreSQL (CloudQuery allows a backend that is no
/// destination of the source): the SQLite database holds only the state table, the second run
/// sends only the new rows, and `quarry state` reads the cursors where they are.
#[test]
fn state_kept_in_sqlite_while_rows_go_to_postgresql() {
    let schema = Schema::new();
    let s = &schema.0;
    let w = Workdir::new();
    let spec = increments_into_postgres("postgres://postgres@127.0.0.1:5432/test", s, 5432, 3000)
        .replace("@@plugins.pg.connection", "@@plugins.lite.connection");
    w.write(
        "spec.yml",
        &format!(
            "{spec}---
kind: destination
spec:
  name: lite
  path: quarry/sqlite
  spec: {{ connection_string: ./data/state.db }}
  permissions: {{ files: {{ ./data: write }} }}
"
        ),
    );
    let count = || {
        psql(&format!(
            "select count(*), count(distinct id), min(id), max(id) from {s}.test_increments"
        ))
    };
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(count(), "3000|3000|0|2999");
    // The backend is no destination of the rows: not in the summary, no table of them in it.
    assert!(!run.stdout.contains("lite"), "{run:?}");
    let state_db = w.path().join("data/state.db");
    assert_eq!(
        query(
            &state_db,
            "SELECT group_concat(name) FROM sqlite_master WHERE type = 'table'"
        ),
        "cq_state"
    );
    assert_eq!(
        query(&state_db, "SELECT key, value FROM cq_state"),
        "test_increments\t3000"
    );
    assert_eq!(
        psql(&format!(
            "select count(*) from information_schema.tables where table_schema = '{s}' and table_name = 'cq_state'"
        )),
        "0"
    );

    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("test_increments 3000"), "{run:?}");
    assert_eq!(count(), "6000|6000|0|5999");
    let show = w.quarry(&["state", "show", "test", "spec.yml"]);
    assert_eq!(
        (show.code, show.stdout.as_str()),
        (0, "test_increments\t6000\n"),
        "{show:?}"
    );
}

#[test]
fn a_backend_that_is_no_destination_of_the_specs_is_refused() {
    let w = Workdir::new();
    w.write(
        "spec.yml",
        &sqlite_spec(10).replace("@@plugins.lite.connection", "@@plugins.other.connection"),
    );
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(
            "backend_options.connection names destination `other`, which is not defined (defined: `lite`)"
        ),
        "{run:?}"
    );
    let show = w.quarry(&["state", "show", "nope", "spec.yml"]);
    assert_eq!(show.code, 2, "{show:?}");
    assert!(show.stderr.contains("no source named `nope`"), "{show:?}");
}

/// Two sources with one state table in one destination would overwrite each other's cursors:
/// refused before anything runs, naming both.
#[test]
fn two_sources_sharing_a_state_table_are_refused() {
    let w = Workdir::new();
    let second = sqlite_spec(10)
        .split("---")
        .next()
        .unwrap()
        .replace("name: test", "name: again");
    w.write("spec.yml", &format!("{}---\n{second}", sqlite_spec(10)));
    let run = w.quarry(&["validate", "spec.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(
            "sources `test` and `again` both keep their state in table `cq_state` of destination `lite`"
        ),
        "{run:?}"
    );
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(!w.path().join("data/sync.db").exists(), "nothing ran");
    // Each its own table: fine.
    let own = second.replace("table_name: cq_state", "table_name: cq_state_again");
    w.write("spec.yml", &format!("{}---\n{own}", sqlite_spec(10)));
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
}

/// Killed with SIGKILL mid-sync and run again: the second run starts from the last saved
/// cursor, and the table holds every row from 0 up exactly once (overwrite mode).
#[test]
fn a_sync_killed_mid_run_resumes_from_its_saved_cursor_and_misses_nothing() {
    let schema = Schema::new();
    let s = &schema.0;
    let w = Workdir::new();
    let rows = 400_000u64;
    w.write(
        "spec.yml",
        &increments_into_postgres("postgres://postgres@127.0.0.1:5432/test", s, 5432, rows),
    );
    let saved = sync_killed_after_a_checkpoint(&w, s);
    let written: u64 = psql(&format!("select count(*) from {s}.test_increments"))
        .parse()
        .unwrap();
    assert!(
        saved > 0 && saved < rows,
        "killed mid-sync at cursor {saved}"
    );
    // Never a gap: every row before the saved cursor was already written.
    assert!(written >= saved, "{written} rows written, cursor {saved}");

    let run: Run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    // The second run sent only the rows after the saved cursor.
    let total = saved + rows;
    assert_eq!(
        psql(&format!(
            "select count(*), count(distinct id), min(id), max(id) from {s}.test_increments"
        )),
        format!("{total}|{total}|0|{}", total - 1)
    );
    assert_eq!(
        psql(&format!("select value from {s}.cq_state")),
        total.to_string()
    );
}
