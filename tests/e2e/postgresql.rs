//! The `postgresql` destination, a sandboxed component, against the real server on
//! 127.0.0.1:5432 (database `test`), each test in a schema of its own.

use crate::support::{Schema, Workdir, psql};

fn spec(schema: &str, rows: u64, grant: &str, write_mode: &str) -> String {
    format!(
        r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_rows, test_parents]
  destinations: [pg]
  deterministic_cq_id: true
  spec: {{ num_rows: {rows}, batch_size: 3000, children_per_parent: 2 }}
---
kind: destination
spec:
  name: pg
  path: quarry/postgresql
  write_mode: {write_mode}
  spec:
    connection_string: postgres://postgres@127.0.0.1:5432/test
    schema: {schema}
  permissions: {{ {grant} }}
"#
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

fn all_types_spec(schema: &str) -> String {
    format!(
        r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_all_types]
  destinations: [pg]
  spec: {{ num_rows: 21 }}
---
kind: destination
spec:
  name: pg
  path: quarry/postgresql
  write_mode: overwrite
  spec:
    connection_string: postgres://postgres@127.0.0.1:5432/test
    schema: {schema}
  permissions: {{ network: ['127.0.0.1:5432'] }}
"#
    )
}

#[test]
fn every_type_of_the_test_source_arrives_in_its_postgresql_type() {
    let schema = Schema::new();
    let s = &schema.0;
    let w = Workdir::new();
    w.write("spec.yml", &all_types_spec(s));
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        psql(&format!("select count(*) from {s}.test_all_types")),
        "21"
    );
    let types = psql(&format!(
        "select string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' order by attnum) \
         from pg_attribute where attrelid = '{s}.test_all_types'::regclass and attnum > 0"
    ));
    for expected in [
        "uint64 numeric(20,0)",
        "decimal numeric(20,4)",
        "timestamp_ns timestamp without time zone",
        "int_list bigint[]",
        "record jsonb",
        "uuid uuid",
        "json jsonb",
        "inet inet",
        "mac macaddr",
        "_cq_id uuid",
    ] {
        assert!(types.contains(expected), "{expected} in {types}");
    }
    // Row 5: every value present; row 6: every nullable column null.
    let row = psql(&format!(
        "select int_list, record, uuid, json, inet, mac from {s}.test_all_types where id = 5"
    ));
    assert_eq!(
        row,
        "{50}|{\"n\": 5, \"s\": \"text 5\"}|51554152-5259-4000-8000-000000000005|{\"row\": 5, \"even\": false}|10.0.5.0/24|02:00:00:00:00:05"
    );
    let nulls = psql(&format!(
        "select count(*) from {s}.test_all_types where id = 6 and int_list is null and record is null \
         and uuid is null and json is null and inet is null and mac is null"
    ));
    assert_eq!(nulls, "1");
}

#[test]
fn a_million_rows_arrive_exactly_once_even_after_the_cli_is_killed() {
    let schema = Schema::new();
    let s = &schema.0;
    let w = Workdir::new();
    let rows = 1_000_000u64;
    w.write(
        "spec.yml",
        &spec(s, rows, "network: ['127.0.0.1:5432']", "overwrite")
            .replace("tables: [test_rows, test_parents]", "tables: [test_rows]"),
    );
    // Killed mid-sync: some batches are committed, the rest never arrive.
    let mut child = std::process::Command::new(crate::support::QUARRY)
        .current_dir(w.path())
        .env("QUARRY_CACHE_DIR", crate::support::shared_cache())
        .args(["sync", "spec.yml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start quarry");
    let table = format!("{s}.test_rows");
    let started = std::time::Instant::now();
    loop {
        let exists = psql(&format!("select to_regclass('{table}') is not null"));
        if exists == "t" && psql(&format!("select count(*) > 0 from {table}")) == "t" {
            break;
        }
        assert!(started.elapsed().as_secs() < 120, "no rows arrived");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    let partial: u64 = psql(&format!("select count(*) from {table}"))
        .parse()
        .unwrap();
    assert!(
        partial > 0 && partial < rows,
        "killed mid-sync: {partial} rows"
    );

    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        psql(&format!(
            "select count(*), count(distinct id), sum(id) from {table}"
        )),
        format!("{rows}|{rows}|{}", (rows - 1) * rows / 2)
    );
}
