//! Destination conformance: the same cases against every destination that keeps tables, so they
//! all behave as README's "Write modes and migrations" says. The source is always the `store`
//! fixture's `items` (`support::ITEMS` and its variants); each destination says how to write its
//! document and how to read `items` back as text.
//!
//! `conformance!` makes one module per destination with one test per case, e.g.
//! `conformance::sqlite::every_write_mode_over_two_syncs`. A new destination needs a type that
//! implements `Dest` and a line in the macro call at the end.
//!
//! Rows are read back as `id\tname` lines ordered by `id, name`, a null as `NULL`, whatever the
//! database prints for one.

use std::fs::File;

use arrow_array::Array;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_ipc::reader::FileReader;

use crate::support::{
    FIRST, ITEMS, ITEMS_NAME_INT64, ITEMS_WITH_NOTE, Run, SECOND, Schema, Workdir, duckdb_query,
    mariadb, psql, sqlite_query, store_plugin, store_source,
};

/// The destination's name in every spec.
const DEST: &str = "dest";

/// A destination under test. `new` makes what one test needs of its own (a schema).
trait Dest {
    /// Whether the engine refuses a breaking change before any source runs (exit 2) because it
    /// can ask the destination for its table. A gRPC plugin cannot be asked under protocol v3,
    /// so it refuses the change itself during the sync (exit 1).
    const REFUSED_BEFORE_SYNC: bool = true;
    /// How the destination names the type of an int64 column.
    const INT64: &'static str;
    fn new() -> Self;
    /// The destination document (starting with `---`), named `DEST`.
    fn document(&self, write_mode: &str, migrate_mode: &str) -> String;
    /// `items`' `columns` (the first two `id, name`), tab-separated, ordered by `id, name`.
    fn read(&self, w: &Workdir, columns: &[&str]) -> String;
    /// The type of `items.name`, as the destination names it.
    fn name_type(&self, w: &Workdir) -> String;
}

/// SQL reading `columns` of `table` as text, a null as `NULL`, ordered by `id, name`.
fn select(table: &str, columns: &[&str]) -> String {
    let texts: Vec<String> = columns
        .iter()
        .map(|c| format!("coalesce(CAST({c} AS TEXT), 'NULL')"))
        .collect();
    format!("SELECT {} FROM {table} ORDER BY id, name", texts.join(", "))
}

struct Sqlite;

impl Dest for Sqlite {
    const INT64: &'static str = "BIGINT";

    fn new() -> Self {
        Sqlite
    }

    fn document(&self, write_mode: &str, migrate_mode: &str) -> String {
        format!(
            r#"---
kind: destination
spec:
  name: {DEST}
  path: quarry/sqlite
  write_mode: {write_mode}
  migrate_mode: {migrate_mode}
  spec: {{ connection_string: ./data/sync.db }}
  permissions: {{ files: {{ ./data: write }} }}
"#
        )
    }

    fn read(&self, w: &Workdir, columns: &[&str]) -> String {
        sqlite_query(&w.path().join("data/sync.db"), &select("items", columns))
    }

    fn name_type(&self, w: &Workdir) -> String {
        sqlite_query(
            &w.path().join("data/sync.db"),
            "SELECT type FROM pragma_table_info('items') WHERE name = 'name'",
        )
    }
}

struct DuckDb;

impl Dest for DuckDb {
    const REFUSED_BEFORE_SYNC: bool = false;
    const INT64: &'static str = "BIGINT";

    fn new() -> Self {
        DuckDb
    }

    fn document(&self, write_mode: &str, migrate_mode: &str) -> String {
        format!(
            r#"---
kind: destination
spec:
  name: {DEST}
  path: quarry/duckdb
  write_mode: {write_mode}
  migrate_mode: {migrate_mode}
  spec: {{ connection_string: ./sync.db }}
"#
        )
    }

    fn read(&self, w: &Workdir, columns: &[&str]) -> String {
        duckdb_query(&w.path().join("sync.db"), &select("items", columns))
    }

    fn name_type(&self, w: &Workdir) -> String {
        duckdb_query(
            &w.path().join("sync.db"),
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'name'",
        )
    }
}

/// A schema of the test's own on the server at 127.0.0.1:5432, dropped when the test ends.
struct Postgresql(Schema);

impl Dest for Postgresql {
    const INT64: &'static str = "bigint";

    fn new() -> Self {
        Postgresql(Schema::new())
    }

    fn document(&self, write_mode: &str, migrate_mode: &str) -> String {
        let schema = &self.0.0;
        format!(
            r#"---
kind: destination
spec:
  name: {DEST}
  path: quarry/postgresql
  write_mode: {write_mode}
  migrate_mode: {migrate_mode}
  spec:
    connection_string: postgres://postgres@127.0.0.1:5432/test
    schema: {schema}
  permissions: {{ network: ["127.0.0.1:5432"] }}
"#
        )
    }

    fn read(&self, _: &Workdir, columns: &[&str]) -> String {
        // psql -At separates values with `|`, which no value here contains.
        psql(&select(&format!("{}.items", self.0.0), columns)).replace('|', "\t")
    }

    fn name_type(&self, _: &Workdir) -> String {
        psql(&format!(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = '{}' AND table_name = 'items' AND column_name = 'name'",
            self.0.0
        ))
    }
}

/// A database of the test's own on the MariaDB at 127.0.0.1:3306, dropped when the test ends.
struct Mysql(String);

impl Dest for Mysql {
    const INT64: &'static str = "bigint";

    fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!(
            "quarry_conf_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        mariadb(&format!(
            "drop database if exists {name}; create database {name}"
        ));
        Mysql(name)
    }

    fn document(&self, write_mode: &str, migrate_mode: &str) -> String {
        let database = &self.0;
        format!(
            r#"---
kind: destination
spec:
  name: {DEST}
  path: quarry/mysql
  write_mode: {write_mode}
  migrate_mode: {migrate_mode}
  spec:
    connection_string: mysql://root@127.0.0.1:3306/{database}
  permissions: {{ network: ["127.0.0.1:3306"] }}
"#
        )
    }

    fn read(&self, _: &Workdir, columns: &[&str]) -> String {
        let texts: Vec<String> = columns
            .iter()
            .map(|c| format!("coalesce(cast({c} as char), 'NULL')"))
            .collect();
        mariadb(&format!(
            "select {} from {}.items order by id, name",
            texts.join(", "),
            self.0
        ))
    }

    fn name_type(&self, _: &Workdir) -> String {
        mariadb(&format!(
            "select data_type from information_schema.columns where table_schema = '{}' and table_name = 'items' and column_name = 'name'",
            self.0
        ))
    }
}

impl Drop for Mysql {
    fn drop(&mut self) {
        let _ = std::process::Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-u", "root", "-e"])
            .arg(format!("drop database if exists {}", self.0))
            .output();
    }
}

/// The `store` fixture: one Arrow IPC file per table under `./db`.
struct Store;

impl Store {
    fn reader(w: &Workdir) -> FileReader<File> {
        let path = w.path().join("db/items.arrow");
        let file = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        FileReader::try_new(file, None).expect("arrow file")
    }
}

impl Dest for Store {
    const INT64: &'static str = "Int64";

    fn new() -> Self {
        Store
    }

    fn document(&self, write_mode: &str, migrate_mode: &str) -> String {
        let plugin = store_plugin().display().to_string();
        format!(
            r#"---
kind: destination
spec:
  name: {DEST}
  registry: local
  path: {plugin}
  write_mode: {write_mode}
  migrate_mode: {migrate_mode}
  spec: {{ dir: db }}
  permissions: {{ files: {{ ./db: write }} }}
"#
        )
    }

    fn read(&self, w: &Workdir, columns: &[&str]) -> String {
        let mut rows: Vec<Vec<String>> = Vec::new();
        for batch in Store::reader(w) {
            let batch = batch.expect("batch");
            let texts: Vec<Vec<String>> = columns
                .iter()
                .map(|c| {
                    let array: &dyn Array = &**batch
                        .column_by_name(c)
                        .unwrap_or_else(|| panic!("no column {c}"));
                    let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())
                        .expect("formatter");
                    (0..array.len())
                        .map(|i| {
                            if array.is_null(i) {
                                "NULL".to_string()
                            } else {
                                formatter.value(i).to_string()
                            }
                        })
                        .collect()
                })
                .collect();
            for i in 0..batch.num_rows() {
                rows.push(texts.iter().map(|t| t[i].clone()).collect());
            }
        }
        rows.sort_by_key(|r| (r[0].parse::<i64>().expect("id"), r[1].clone()));
        let lines: Vec<String> = rows.iter().map(|r| r.join("\t")).collect();
        lines.join("\n")
    }

    fn name_type(&self, w: &Workdir) -> String {
        let schema = Store::reader(w).schema();
        let field = schema.field_with_name("name").expect("column name");
        field.data_type().to_string()
    }
}

/// One test's working directory and destination.
struct Case<D> {
    w: Workdir,
    dest: D,
}

impl<D: Dest> Case<D> {
    fn new() -> Self {
        Case {
            w: Workdir::new(),
            dest: D::new(),
        }
    }

    /// `quarry sync` of the source document `source` into the destination.
    fn sync(&self, source: &str, write_mode: &str, migrate_mode: &str) -> Run {
        let spec = source.to_string() + &self.dest.document(write_mode, migrate_mode);
        self.w.write("spec.yml", &spec);
        self.w.quarry(&["sync", "spec.yml"])
    }

    fn ok(&self, source: &str, write_mode: &str, migrate_mode: &str) {
        let run = self.sync(source, write_mode, migrate_mode);
        assert_eq!(run.code, 0, "{run:?}");
    }

    fn items(&self, columns: &[&str]) -> String {
        self.dest.read(&self.w, columns)
    }
}

/// The store fixture as a source of `items`, sent to `DEST`.
fn items(columns: &str, rows: &str) -> String {
    store_source(columns, rows, DEST)
}

fn every_write_mode_over_two_syncs<D: Dest>() {
    for (write_mode, expected) in [
        ("append", "1\ta\n2\tB\n2\tb\n3\tC\n3\tc\n4\td"),
        ("overwrite", "1\ta\n2\tB\n3\tC\n4\td"),
        ("overwrite-delete-stale", "2\tB\n3\tC\n4\td"),
    ] {
        let case = Case::<D>::new();
        for rows in [FIRST, SECOND] {
            case.ok(&items(ITEMS, rows), write_mode, "safe");
        }
        assert_eq!(
            case.items(&["id", "name"]),
            expected,
            "write_mode: {write_mode}"
        );
    }
}

fn safe_migration_adds_columns_and_a_breaking_change_needs_forced<D: Dest>() {
    let case = Case::<D>::new();
    let all = ["id", "name", "note"];
    case.ok(&items(ITEMS, FIRST), "overwrite", "safe");

    // A new nullable column is safe: the old rows get nulls.
    case.ok(
        &items(ITEMS_WITH_NOTE, "[[4, d, new]]"),
        "overwrite",
        "safe",
    );
    let before = case.items(&all);
    assert_eq!(before, "1\ta\tNULL\n2\tb\tNULL\n3\tc\tNULL\n4\td\tnew");

    // A type change loses data: refused, and the table is left as it was.
    let breaking = items(ITEMS_NAME_INT64, "[[5, 55, x]]");
    let run = case.sync(&breaking, "overwrite", "safe");
    assert_eq!(
        run.code,
        if D::REFUSED_BEFORE_SYNC { 2 } else { 1 },
        "{run:?}"
    );
    for expected in [
        "column `name` changes type from Utf8 to Int64",
        "migrate_mode: forced",
    ] {
        assert!(
            run.stderr.contains(expected),
            "missing {expected:?}: {run:?}"
        );
    }
    assert_eq!(
        case.items(&all),
        before,
        "a refused migration changed the table"
    );

    // Forced: the table is recreated with the new schema and holds only the new sync's rows.
    case.ok(&breaking, "overwrite", "forced");
    assert_eq!(case.items(&all), "5\t55\tx");
    assert_eq!(case.dest.name_type(&case.w), D::INT64);
}

fn delete_record_removes_the_rows_sent_before_it<D: Dest>() {
    let case = Case::<D>::new();
    // The fixture sends its delete requests after all its rows.
    let source = items(ITEMS, FIRST) + "    delete: [{ table: items, column: id, value: 2 }]\n";
    case.ok(&source, "overwrite", "safe");
    assert_eq!(case.items(&["id", "name"]), "1\ta\n3\tc");
}

/// One module per destination (`$module`, with its `Dest` type), one test per case.
macro_rules! conformance {
    ($($module:ident: $dest:ident),* $(,)?) => {$(
        mod $module {
            #[test]
            fn every_write_mode_over_two_syncs() {
                super::every_write_mode_over_two_syncs::<super::$dest>();
            }

            #[test]
            fn safe_migration_adds_columns_and_a_breaking_change_needs_forced() {
                super::safe_migration_adds_columns_and_a_breaking_change_needs_forced::<super::$dest>();
            }

            #[test]
            fn delete_record_removes_the_rows_sent_before_it() {
                super::delete_record_removes_the_rows_sent_before_it::<super::$dest>();
            }
        }
    )*};
}

conformance!(
    sqlite: Sqlite,
    duckdb: DuckDb,
    postgresql: Postgresql,
    mysql: Mysql,
    store: Store,
);
