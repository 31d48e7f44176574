//! The `postgresql` destination, a sandboxed component, against the real server on
//! 127.0.0.1:5432 (database `test`), each test in a schema of its own.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::Workdir;

/// A schema for one test, dropped when the test ends.
struct Schema(String);

impl Schema {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "quarry_e2e_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        psql(&format!("drop schema if exists {name} cascade"));
        Schema(name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc"])
            .arg(format!("drop schema if exists {} cascade", self.0))
            .output();
    }
}

/// Runs `sql` with psql and returns its unaligned output.
fn psql(sql: &str) -> String {
    let out = Command::new("psql")
        .env("PGTZ", "UTC")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
        ])
        .arg(sql)
        .output()
        .expect("psql (PostgreSQL's client) on PATH");
    assert!(
        out.status.success(),
        "psql failed on {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn spec(schema: &str, rows: u64, grant: &str, write_mode: &str) -> String {
    format!(
        "kind: source\nspec:\n  name: test\n  path: quarry/test\n  tables: [test_rows, test_parents]\n  destinations: [pg]\n  deterministic_cq_id: true\n  spec: {{ num_rows: {rows}, batch_size: 3000, children_per_parent: 2 }}\n---\nkind: destination\nspec:\n  name: pg\n  path: quarry/postgresql\n  write_mode: {write_mode}\n  spec:\n    connection_string: postgres://postgres@127.0.0.1:5432/test\n    schema: {schema}\n  permissions: {{ {grant} }}\n"
    )
}

#[test]
fn test_rows_reach_postgresql_and_a_second_sync_replaces_them() {
    let schema = Schema::new();
    let s = &schema.0;
    let w = Workdir::new();
    let grant = "network: ['127.0.0.1:5432']";
    w.write(
        "spec.yml",
        &spec(s, 10_000, grant, "overwrite-delete-stale"),
    );
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        psql(&format!("select count(*), sum(id) from {s}.test_rows")),
        "10000|49995000"
    );
    let row = psql(&format!(
        "select name, flag, created_at, tags from {s}.test_rows where id = 4321"
    ));
    assert_eq!(
        row,
        "name_00000004321|f|2024-01-01 01:12:01.000321+00|{a1,b21,c321}"
    );
    assert_eq!(
        psql(&format!(
            "select count(*) from {s}.test_children c join {s}.test_parents p \
             on c._cq_parent_id = p._cq_id and c.parent_id = p.id"
        )),
        "20000"
    );
    let key = psql(&format!(
        "select string_agg(a.attname, ',' order by a.attname) from pg_index i join pg_attribute a \
         on a.attrelid = i.indrelid and a.attnum = any(i.indkey) \
         where i.indrelid = '{s}.test_rows'::regclass and i.indisprimary"
    ));
    assert_eq!(key, "id");

    // Fewer rows the second time: upserted, and the stale ones deleted.
    w.write("spec.yml", &spec(s, 6_000, grant, "overwrite-delete-stale"));
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        psql(&format!(
            "select count(*), sum(id), count(distinct _cq_sync_time) from {s}.test_rows"
        )),
        "6000|17997000|1"
    );
    assert_eq!(
        psql(&format!("select count(*) from {s}.test_children")),
        "12000"
    );

    // Append keeps both syncs' rows (the table loses its key: a breaking change, forced).
    let append = spec(s, 1_000, grant, "append").replace(
        "  write_mode: append\n",
        "  write_mode: append\n  migrate_mode: forced\n",
    );
    w.write("spec.yml", &append);
    for _ in 0..2 {
        let run = w.quarry(&["sync", "spec.yml"]);
        assert_eq!(run.code, 0, "{run:?}");
    }
    assert_eq!(psql(&format!("select count(*) from {s}.test_rows")), "2000");
}

#[test]
fn without_a_network_grant_the_plugin_cannot_reach_the_server() {
    let schema = Schema::new();
    let w = Workdir::new();
    w.write("spec.yml", &spec(&schema.0, 10, "", "overwrite"));
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("cannot connect to PostgreSQL at 127.0.0.1:5432"),
        "{run:?}"
    );
    assert!(run.stderr.contains("permissions: { network"), "{run:?}");
}
