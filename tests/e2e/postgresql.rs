//! The `postgresql` destination, a sandboxed component, against the real server on
//! 127.0.0.1:5432 (database `test`), each test in a schema of its own.

use crate::support::{Cluster, Schema, Workdir, psql};

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

/// PostgreSQL over TLS (issue 16): a cluster of its own that accepts only TLS (`hostssl`), with
/// the test CA's certificate for `127.0.0.1` and `localhost`, listening on 127.0.0.1 and
/// 127.0.0.2 (an address the certificate does not name). The component does the TLS itself, so
/// the grant is still the one address and port.
#[test]
fn the_destination_speaks_tls_and_checks_the_certificate_as_sslmode_says() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tls");
    let (ca, pem, key) = (
        fixtures.join("ca.pem"),
        fixtures.join("server.pem"),
        fixtures.join("server.key"),
    );
    let cluster = Cluster::start_with(
        &[&pem, &key],
        "ssl = on\nssl_cert_file = '{dir}/server.pem'\nssl_key_file = '{dir}/server.key'\nlisten_addresses = '127.0.0.1,127.0.0.2'",
        Some(
            "local all all trust\nhostssl all all 127.0.0.0/8 trust\nhostnossl all all 127.0.0.0/8 reject\n",
        ),
    );
    let port = cluster.port;
    let w = Workdir::new();
    std::fs::create_dir(w.path().join("certs")).expect("certs");
    std::fs::copy(&ca, w.path().join("certs/ca.pem")).expect("copy the CA");
    // A CA that signed nothing here.
    let made = std::process::Command::new("openssl")
        .current_dir(w.path().join("certs"))
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-keyout",
            "wrong.key",
            "-out",
            "wrong.pem",
            "-days",
            "2",
        ])
        .args(["-subj", "/CN=Some other CA"])
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    let spec = |host: &str, query: &str| {
        format!(
            r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_rows]
  destinations: [pg]
  spec: {{ num_rows: 1000 }}
---
kind: destination
spec:
  name: pg
  path: quarry/postgresql
  write_mode: append
  spec:
    connection_string: "postgres://postgres@{host}:{port}/postgres?{query}"
    schema: tls
  permissions:
    network: ['{host}:{port}']
    files: {{ ./certs: read }}
"#
        )
    };
    let sync = |host: &str, query: &str| {
        w.write("spec.yml", &spec(host, query));
        w.quarry(&["sync", "spec.yml"])
    };
    let rows = || cluster.psql("select count(*) from tls.test_rows");

    // The whole chain and the name: the rows arrive (the server refuses anything but TLS).
    let run = sync(
        "127.0.0.1",
        "sslmode=verify-full&sslrootcert=./certs/ca.pem",
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(rows(), "1000");
    // The default, `prefer`, tries loopback plainly, and takes TLS when the server insists.
    let run = sync("127.0.0.1", "");
    assert_eq!(run.code, 0, "{run:?}");
    // `require` encrypts without checking; `verify-ca` checks the chain but not the name.
    let run = sync("127.0.0.2", "sslmode=require");
    assert_eq!(run.code, 0, "{run:?}");
    let run = sync("127.0.0.2", "sslmode=verify-ca&sslrootcert=./certs/ca.pem");
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(rows(), "4000");

    // A name the certificate does not hold.
    let run = sync(
        "127.0.0.2",
        "sslmode=verify-full&sslrootcert=./certs/ca.pem",
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "TLS handshake with PostgreSQL at 127.0.0.2:{port} failed"
        )) && run.stderr.contains("names `127.0.0.2`"),
        "{run:?}"
    );
    // The wrong CA.
    let run = sync(
        "127.0.0.1",
        "sslmode=verify-full&sslrootcert=./certs/wrong.pem",
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("UnknownIssuer")
            && run.stderr.contains("sslrootcert `./certs/wrong.pem`"),
        "{run:?}"
    );
    // The built-in roots do not include the test CA either.
    let run = sync("127.0.0.1", "sslmode=verify-full");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("built-in Mozilla roots"), "{run:?}");
    // Without TLS the server refuses: the test really is over TLS.
    let run = sync("127.0.0.1", "sslmode=disable");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("no encryption"), "{run:?}");
    assert_eq!(rows(), "4000");
}

/// `sync_group_id` (CloudQuery's): each sync's rows carry the rendered group in
/// `_cq_sync_group_id`, part of the key, so `overwrite` keeps one copy per group and replaces a
/// group synced again; `send_sync_summary` adds a row per sync to `cloudquery_sync_summaries`.
#[test]
fn sync_groups_keep_a_copy_per_group_and_each_sync_sends_its_summary() {
    let schema = Schema::new();
    let s = &schema.0;
    let w = Workdir::new();
    let spec = spec(s, 1000, "network: ['127.0.0.1:5432']", "overwrite")
        .replace("tables: [test_rows, test_parents]", "tables: [test_rows]")
        .replace(
            "  write_mode: overwrite\n",
            "  write_mode: overwrite\n  sync_group_id: \"g-{{YEAR}}-{{SYNC_ID}}\"\n  send_sync_summary: true\n",
        );
    w.write("spec.yml", &spec);
    let year = psql("select extract(year from now() at time zone 'utc')::int");
    // The last run changes no table, the summary table included (the plan migrates it).
    for (id, flag) in [
        ("first", "--"),
        ("second", "--"),
        ("second", "--no-migrate"),
    ] {
        let mut args = vec!["--invocation-id", id, "sync", "spec.yml"];
        if flag != "--" {
            args.push(flag);
        }
        let run = w.quarry(&args);
        assert_eq!(run.code, 0, "{run:?}");
    }
    assert_eq!(
        psql(&format!(
            "select _cq_sync_group_id, count(*), count(distinct id) from {s}.test_rows group by 1 order by 1"
        )),
        format!("g-{year}-first|1000|1000\ng-{year}-second|1000|1000")
    );
    assert_eq!(
        psql(&format!(
            "select string_agg(a.attname, ',' order by a.attname) from pg_index i \
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) \
             where i.indrelid = '{s}.test_rows'::regclass and i.indisprimary"
        )),
        "_cq_sync_group_id,id"
    );
    assert_eq!(
        psql(&format!(
            "select sync_id, _cq_sync_group_id, _cq_source_name, source_name, source_path, \
             destination_name, destination_path, resources, source_errors, \
             array_to_string(source_tables, ','), resources_per_table->>'test_rows', \
             shard_num is null from {s}.cloudquery_sync_summaries order by _cq_sync_time"
        )),
        [
            format!("first|g-{year}-first|test|test|quarry/test|pg|quarry/postgresql|1000|0|test_rows|1000|t"),
            format!("second|g-{year}-second|test|test|quarry/test|pg|quarry/postgresql|1000|0|test_rows|1000|t"),
            format!("second|g-{year}-second|test|test|quarry/test|pg|quarry/postgresql|1000|0|test_rows|1000|t"),
        ]
        .join("\n")
    );
}

/// `--shard NUM/4` (CloudQuery's): four processes run in parallel, each on its chunk of the
/// source's top-level tables (children follow their parent), together write exactly the rows of
/// one unsharded run, each shard's rows named `test_NUM_4`; delete-stale of one shard leaves the
/// others' rows alone.
#[test]
fn four_shards_in_parallel_write_what_one_unsharded_run_writes() {
    let (whole, sharded) = (Schema::new(), Schema::new());
    let w = Workdir::new();
    let spec = |schema: &str| {
        spec(
            schema,
            2000,
            "network: ['127.0.0.1:5432']",
            "overwrite-delete-stale",
        )
        .replace(
            "tables: [test_rows, test_parents]",
            "tables: ['test_rows*', test_parents]",
        )
        .replace(
            "children_per_parent: 2",
            "children_per_parent: 2, num_tables: 6",
        )
    };
    w.write("whole.yml", &spec(&whole.0));
    w.write("sharded.yml", &spec(&sharded.0));
    let run = w.quarry(&["sync", "whole.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    let runs: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..=4)
            .map(|n| {
                let w = &w;
                scope
                    .spawn(move || w.quarry(&["sync", "--shard", &format!("{n}/4"), "sharded.yml"]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for run in &runs {
        assert_eq!(run.code, 0, "{run:?}");
    }
    // Seven top-level tables in chunks of two: the fourth shard has the last, with its children.
    assert!(
        runs[3]
            .stdout
            .contains("Synced test → pg: 6000 rows (test_children 4000, test_parents 2000)"),
        "{:?}",
        runs[3]
    );
    assert!(
        runs[0]
            .stdout
            .contains("(test_rows 2000, test_rows_2 2000)"),
        "{:?}",
        runs[0]
    );
    let tables = [
        "test_rows",
        "test_rows_2",
        "test_rows_3",
        "test_rows_4",
        "test_rows_5",
        "test_rows_6",
        "test_parents",
        "test_children",
    ];
    let digest = |schema: &str, table: &str| {
        psql(&format!(
            "select count(*), md5(string_agg(_cq_id::text, ',' order by _cq_id)) from {schema}.{table}"
        ))
    };
    let mut names = Vec::new();
    for table in tables {
        assert_eq!(
            digest(&whole.0, table),
            digest(&sharded.0, table),
            "table {table}"
        );
        names.push(psql(&format!(
            "select string_agg(distinct _cq_source_name, ',') from {}.{table}",
            sharded.0
        )));
    }
    assert_eq!(
        names.iter().filter(|n| n.as_str() == "test_1_4").count(),
        2,
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("test_") && n.ends_with("_4")),
        "{names:?}"
    );

    // A shard synced again deletes only its own stale rows.
    let run = w.quarry(&["sync", "--shard", "1/4", "sharded.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    for table in tables {
        assert_eq!(
            digest(&whole.0, table),
            digest(&sharded.0, table),
            "table {table}"
        );
    }
    let bad = w.quarry(&["sync", "--shard", "5/4", "sharded.yml"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("`5/4` is not a shard"), "{bad:?}");
}

/// `workers: 3`: three instances of the source, each syncing its share of the top-level tables
/// (children with their parent) into an instance of its own of the destination, write exactly
/// what one instance writes, as one source: one summary, every row's `_cq_source_name` the
/// source's, stale rows deleted in every lane's tables, and the incremental table's cursor saved
/// by the lane that synced it.
#[test]
fn workers_write_what_one_instance_writes() {
    let (one, three) = (Schema::new(), Schema::new());
    let w = Workdir::new();
    let spec = |schema: &str, workers: u32, rows: u64| {
        spec(schema, rows, "network: ['127.0.0.1:5432']", "overwrite-delete-stale")
            .replace(
                "tables: [test_rows, test_parents]",
                &format!(
                    "tables: ['test_rows*', test_parents, test_increments]\n  workers: {workers}\n  \
                     backend_options: {{ table_name: cq_state, connection: \"@@plugins.pg.connection\" }}"
                ),
            )
            .replace(
                "children_per_parent: 2",
                "children_per_parent: 2, num_tables: 4",
            )
    };
    let tables = [
        "test_rows",
        "test_rows_2",
        "test_rows_3",
        "test_rows_4",
        "test_parents",
        "test_children",
        "test_increments",
    ];
    let digest = |schema: &str, table: &str| {
        psql(&format!(
            "select count(*), md5(string_agg(_cq_id::text, ',' order by _cq_id)), \
             string_agg(distinct _cq_source_name, ',') from {schema}.{table}"
        ))
    };
    // The second run has fewer rows: each lane deletes its tables' stale ones, and the
    // incremental table continues from its cursor.
    for rows in [2000, 1000] {
        w.write("one.yml", &spec(&one.0, 1, rows));
        w.write("three.yml", &spec(&three.0, 3, rows));
        let run = w.quarry(&["sync", "one.yml"]);
        assert_eq!(run.code, 0, "{run:?}");
        let run = w.quarry(&["--log-level", "info", "sync", "three.yml"]);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stderr.contains("lanes=3"), "{run:?}");
        let total = rows * 4 + rows + rows * 2 + rows;
        assert_eq!(
            run.stdout.matches("Synced test → pg:").count(),
            1,
            "{run:?}"
        );
        assert!(
            run.stdout
                .contains(&format!("Synced test → pg: {total} rows")),
            "{run:?}"
        );
        for table in tables {
            let d = digest(&three.0, table);
            assert_eq!(digest(&one.0, table), d, "table {table}");
            assert!(d.ends_with("|test"), "table {table}: {d}");
        }
    }
    assert_eq!(
        psql(&format!(
            "select count(*), max(id) from {}.test_increments",
            three.0
        )),
        "3000|2999"
    );
    assert_eq!(
        psql(&format!("select count(*) from {}.test_rows_3", three.0)),
        "1000"
    );
}
