//! `quarry/postgresql` as a source, a sandboxed component: tables of a schema on the real server
//! (127.0.0.1:5432, database `test`) into DuckDB, incrementally by a cursor column kept in the
//! state backend, and refused without its network grant.

use crate::support::{Schema, Workdir, duckdb_query, psql};

fn spec(schema: &str, grant: &str) -> String {
    format!(
        r#"kind: source
spec:
  name: shop
  path: quarry/postgresql
  tables: ["*"]
  destinations: [duck]
  backend_options:
    table_name: cq_state
    connection: "@@plugins.duck.connection"
  spec:
    connection_string: postgres://postgres@127.0.0.1:5432/test
    tables: ["{schema}.*"]
    incremental: {{ orders: updated_at }}
  permissions: {{ {grant} }}
---
kind: destination
spec:
  name: duck
  path: quarry/duckdb
  write_mode: overwrite
  spec: {{ connection_string: shop.db }}
"#
    )
}

#[test]
fn tables_of_a_schema_reach_duckdb_and_the_next_sync_reads_only_changed_rows() {
    let schema = Schema::new();
    let s = &schema.0;
    psql(&format!(
        "create schema {s};
         create type {s}.status as enum ('new', 'paid');
         create table {s}.customers (id int4 primary key, name text not null, tags text[],
           doc jsonb, uid uuid, balance numeric(12, 2), ip inet);
         insert into {s}.customers values
           (1, 'Ada', '{{a,b}}', '{{\"vip\": true}}', '00112233-4455-6677-8899-aabbccddeeff', 1234.50, '10.0.0.1'),
           (2, 'Bob', null, null, null, -0.01, null);
         create table {s}.orders (id int8 primary key, customer int4, status {s}.status,
           updated_at timestamptz not null, total numeric(10, 2));
         insert into {s}.orders select i, 1 + i % 2, 'new',
           timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute', i * 1.25
           from generate_series(1, 500) i;"
    ));
    let w = Workdir::new();
    w.write("spec.yml", &spec(s, ""));
    let denied = w.quarry(&["sync", "spec.yml"]);
    assert_ne!(denied.code, 0, "{denied:?}");
    assert!(
        denied
            .stderr
            .contains("cannot connect to PostgreSQL at 127.0.0.1:5432"),
        "{denied:?}"
    );
    assert!(
        denied.stderr.contains("permissions: { network"),
        "{denied:?}"
    );

    w.write("spec.yml", &spec(s, "network: ['127.0.0.1:5432']"));
    let tables = w.quarry(&["tables", "spec.yml", "--format", "json"]);
    assert_eq!(tables.code, 0, "{tables:?}");
    let docs = std::fs::read_to_string(w.path().join("cq-docs/shop/__tables.json")).unwrap();
    assert!(
        docs.contains("\"customers\"") && docs.contains("\"orders\""),
        "{docs}"
    );

    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    let db = w.path().join("shop.db");
    assert_eq!(
        duckdb_query(
            &db,
            "SELECT id, name, tags, doc, uid, balance, ip FROM customers ORDER BY id"
        ),
        "1\tAda\t[a, b]\t{\"vip\": true}\t00112233-4455-6677-8899-aabbccddeeff\t1234.50\t10.0.0.1\n\
         2\tBob\tNULL\tNULL\tNULL\t-0.01\tNULL"
    );
    assert_eq!(
        duckdb_query(
            &db,
            "SELECT count(*), sum(total), max(updated_at) FROM orders"
        ),
        "500\t156562.50\t2026-01-01 08:20:00+00"
    );
    let show = w.quarry(&["state", "show", "shop", "spec.yml"]);
    assert_eq!(
        show.stdout, "orders.updated_at\t2026-01-01 08:20:00+00\n",
        "{show:?}"
    );

    // Two orders change and one is new: only those three are read, and upserted.
    psql(&format!(
        "update {s}.orders set status = 'paid', updated_at = '2026-02-01 00:00:00+00' where id in (7, 8);
         insert into {s}.orders values (501, 1, 'new', '2026-02-02 00:00:00+00', 9.99);"
    ));
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("orders 3"), "{run:?}");
    assert_eq!(
        duckdb_query(
            &db,
            "SELECT count(*), count(*) FILTER (WHERE status = 'paid') FROM orders"
        ),
        "501\t2"
    );
}
