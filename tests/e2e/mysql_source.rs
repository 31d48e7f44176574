//! `quarry/mysql` as a source, a sandboxed component, against the MariaDB this machine runs on
//! 127.0.0.1:3306 (root, no password): a database's tables into SQLite, incrementally, and
//! refused without the network grant.

use crate::support::{Workdir, mariadb, sqlite_query};

fn spec(database: &str, grant: &str) -> String {
    format!(
        r#"kind: source
spec:
  name: shop
  path: quarry/mysql
  tables: ["*"]
  destinations: [lite]
  backend_options: {{ table_name: cq_state, connection: "@@plugins.lite.connection" }}
  spec:
    connection_string: mysql://root@127.0.0.1:3306/{database}
    incremental: {{ orders: id }}
  permissions: {{ {grant} }}
---
kind: destination
spec:
  name: lite
  path: quarry/sqlite
  write_mode: overwrite
  spec: {{ connection_string: ./data/shop.db }}
  permissions: {{ files: {{ ./data: write }} }}
"#
    )
}

#[test]
fn a_databases_tables_reach_sqlite_and_the_next_sync_reads_only_new_rows() {
    let database = format!("quarry_e2e_{}", std::process::id());
    mariadb(&format!(
        "drop database if exists {database}; create database {database};
         create table {database}.customers (id int primary key, name varchar(50) not null,
           balance decimal(10, 2), joined datetime(6));
         insert into {database}.customers values (1, 'Ada', 1234.50, '2026-01-02 03:04:05.000006'),
           (2, 'Bob', -0.01, null);
         create table {database}.orders (id bigint primary key auto_increment, customer int,
           total decimal(10, 2));
         insert into {database}.orders (customer, total) select 1 + seq % 2, seq * 1.25 from {database}.seq_1_to_500;"
    ));
    let w = Workdir::new();
    w.write("spec.yml", &spec(&database, ""));
    let denied = w.quarry(&["sync", "spec.yml"]);
    assert_ne!(denied.code, 0, "{denied:?}");
    assert!(
        denied
            .stderr
            .contains("cannot connect to MySQL at 127.0.0.1:3306")
            && denied.stderr.contains("permissions: { network"),
        "{denied:?}"
    );
    w.write("spec.yml", &spec(&database, "network: ['127.0.0.1:3306']"));
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    let db = w.path().join("data/shop.db");
    assert_eq!(
        sqlite_query(
            &db,
            "SELECT group_concat(id || ':' || name || ':' || balance || ':' || ifnull(joined, '-'), ' ') FROM (SELECT * FROM customers ORDER BY id)"
        ),
        "1:Ada:1234.50:2026-01-02 03:04:05.000006 2:Bob:-0.01:-"
    );
    assert_eq!(
        sqlite_query(&db, "SELECT count(*), sum(total) FROM orders"),
        "500\t156562.5"
    );
    mariadb(&format!(
        "insert into {database}.orders (customer, total) values (1, 9.99), (2, 0.01)"
    ));
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("orders 2"), "{run:?}");
    assert_eq!(sqlite_query(&db, "SELECT count(*) FROM orders"), "502");
    let show = w.quarry(&["state", "show", "shop", "spec.yml"]);
    // auto_increment leaves gaps after a bulk insert: the cursor is the largest id there is.
    let last = mariadb(&format!("select max(id) from {database}.orders"));
    assert_eq!(show.stdout, format!("orders.id\t{last}\n"), "{show:?}");
    mariadb(&format!("drop database {database}"));
}
