//! The commands around `sync`: `validate`, `migrate` then `sync --no-migrate`, `test-connection`,
//! `tables`, `init`, the progress display (under a pseudo-terminal and piped) and the summary
//! lines, each against the real plugins and servers.

use std::path::Path;
use std::process::Command;

use crate::support::{
    ITEMS, ITEMS_NAME_INT64, QUARRY, Schema, Workdir, duckdb_query, golden, hostile_plugin, psql,
    shared_cache, sqlite_query, store_plugin,
};

/// A `test` source of `test_rows` and the parent/child pair, into `destination` (a document
/// named `db`).
fn test_source(rows: u64) -> String {
    format!(
        r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_rows, test_parents]
  destinations: [db]
  spec: {{ num_rows: {rows}, children_per_parent: 2 }}
"#
    )
}

fn postgresql(schema: &str, port: u16, grant: &str) -> String {
    format!(
        r#"---
kind: destination
spec:
  name: db
  path: quarry/postgresql
  spec:
    connection_string: postgres://postgres@127.0.0.1:{port}/test
    schema: {schema}
  permissions: {{ {grant} }}
"#
    )
}

const SQLITE: &str = r#"---
kind: destination
spec:
  name: db
  path: quarry/sqlite
  spec: { connection_string: ./data/sync.db }
  permissions: { files: { ./data: write } }
"#;

const DUCKDB: &str = r#"---
kind: destination
spec:
  name: db
  path: quarry/duckdb
  spec: { connection_string: ./sync.db }
"#;

/// How many rows of each table a destination holds, as `table count` lines, given a query.
fn counts(query: impl Fn(&str) -> String) -> String {
    ["test_rows", "test_parents", "test_children"]
        .map(|t| format!("{t} {}", query(&format!("select count(*) from {t}"))))
        .join("\n")
}

/// The row counts of the destination a case writes to.
type Counts = fn(&Workdir, &str) -> String;

fn sqlite_counts(w: &Workdir, _: &str) -> String {
    counts(|sql| sqlite_query(&w.path().join("data/sync.db"), sql))
}

fn duckdb_counts(w: &Workdir, _: &str) -> String {
    counts(|sql| duckdb_query(&w.path().join("sync.db"), sql))
}

fn postgresql_counts(_: &Workdir, schema: &str) -> String {
    counts(|sql| psql(&sql.replace(" from ", &format!(" from {schema}."))))
}

#[test]
fn migrate_then_sync_without_migrations_in_every_database() {
    let schema = Schema::new();
    let cases: [(&str, String, Counts); 3] = [
        ("sqlite", SQLITE.to_string(), sqlite_counts),
        ("duckdb", DUCKDB.to_string(), duckdb_counts),
        (
            "postgresql",
            postgresql(&schema.0, 5432, "network: [\"127.0.0.1:5432\"]"),
            postgresql_counts,
        ),
    ];
    for (name, destination, counts) in cases {
        let w = Workdir::new();
        std::fs::create_dir(w.path().join("data")).expect("mkdir");
        w.write("spec.yml", &(test_source(500) + &destination));
        if name != "duckdb" {
            // Before `migrate`, the tables are missing: refused before any source runs.
            let run = w.quarry(&["sync", "--no-migrate", "spec.yml"]);
            assert_eq!(run.code, 2, "{name}: {run:?}");
            assert!(
                run.stderr
                    .contains("does not exist, and `--no-migrate` skips migrations")
                    && run.stderr.contains("run `quarry migrate`"),
                "{name}: {run:?}"
            );
        }
        let run = w.quarry(&["migrate", "spec.yml"]);
        assert_eq!(run.code, 0, "{name}: {run:?}");
        assert!(run.stdout.contains("`test_rows`"), "{name}: {run:?}");
        assert_eq!(
            counts(&w, &schema.0),
            "test_rows 0\ntest_parents 0\ntest_children 0",
            "{name}: migrate creates the tables and moves no row"
        );
        let run = w.quarry(&["sync", "--no-migrate", "spec.yml"]);
        assert_eq!(run.code, 0, "{name}: {run:?}");
        assert_eq!(
            counts(&w, &schema.0),
            "test_rows 500\ntest_parents 500\ntest_children 1000",
            "{name}: {run:?}"
        );
        // A second `migrate` finds every table up to date.
        let run = w.quarry(&["migrate", "spec.yml"]);
        assert_eq!(run.code, 0, "{name}: {run:?}");
        if name != "duckdb" {
            assert!(
                run.stdout.contains("`test_rows` is up to date"),
                "{name}: {run:?}"
            );
        }
    }
}

#[test]
fn validate_changes_nothing_in_the_destination() {
    let schema = Schema::new();
    let w = Workdir::new();
    w.write(
        "spec.yml",
        &(test_source(10) + &postgresql(&schema.0, 5432, "network: [\"127.0.0.1:5432\"]")),
    );
    let run = w.quarry(&["validate", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    golden(
        &run.stdout.replace(&schema.0, "SCHEMA"),
        "validate/good_spec.txt",
    );
    assert_eq!(
        psql(&format!(
            "select count(*) from pg_tables where schemaname = '{}'",
            schema.0
        )),
        "0",
        "validate created no table"
    );
    // CloudQuery's name for it.
    let run = w.quarry(&["validate-config", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn test_connection_reports_success_and_each_failure_with_its_code() {
    let schema = Schema::new();
    let w = Workdir::new();
    let grant = "network: [\"127.0.0.1:5432\"]";
    w.write(
        "good.yml",
        &(test_source(1) + &postgresql(&schema.0, 5432, grant)),
    );
    let run = w.quarry(&["test-connection", "good.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "source `test` (quarry/test): the plugin does not implement a connection test\n\
         destination `db` (quarry/postgresql): connection succeeded\n",
        "{run:?}"
    );

    // Nothing listens on port 1.
    w.write(
        "port.yml",
        &(test_source(1) + &postgresql(&schema.0, 1, "network: [\"127.0.0.1:1\"]")),
    );
    let run = w.quarry(&["test-connection", "port.yml"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("destination `db` (quarry/postgresql): connection failed: UNAVAILABLE: "),
        "{run:?}"
    );

    // The server is not granted: the sandbox refuses the socket, and the failure says which
    // grant would allow it.
    w.write(
        "grant.yml",
        &(test_source(1) + &postgresql(&schema.0, 5432, "")),
    );
    let run = w.quarry(&["test-connection", "grant.yml"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains(
            "destination `db` (quarry/postgresql): connection failed: UNAUTHORIZED: connecting to 127.0.0.1:5432 was denied: plugin `db` has no network grant for it; to allow it, add it to the plugin's spec: `permissions: { network: [\"127.0.0.1:5432\"] }`"
        ) && run
            .stdout
            .contains("(the plugin then said: cannot connect to PostgreSQL at 127.0.0.1:5432"),
        "{run:?}"
    );
}

#[test]
fn tables_documents_the_test_and_hackernews_sources() {
    let w = Workdir::new();
    w.write(
        "spec.yml",
        r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: ["*"]
  destinations: [db]
---
kind: source
spec:
  name: hackernews
  path: quarry/hackernews
  tables: ["*"]
  destinations: [db]
---
kind: destination
spec:
  name: db
  path: quarry/test
"#,
    );
    let run = w.quarry(&[
        "tables",
        "spec.yml",
        "--format",
        "markdown",
        "--output-dir",
        "docs",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let docs = w.path().join("docs");
    let listing = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("docs dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        listing(&docs.join("test")),
        [
            "README.md",
            "test_all_types.md",
            "test_children.md",
            "test_increments.md",
            "test_parents.md",
            "test_rows.md"
        ]
    );
    assert_eq!(
        listing(&docs.join("hackernews")),
        ["README.md", "hackernews_items.md"]
    );
    let read = |path: &str| std::fs::read_to_string(docs.join(path)).expect(path);
    golden(&read("test/README.md"), "tables/test_README.md");
    golden(&read("test/test_children.md"), "tables/test_children.md");
    golden(
        &read("hackernews/hackernews_items.md"),
        "tables/hackernews_items.md",
    );

    let run = w.quarry(&["tables", "spec.yml", "--output-dir", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let tables: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(w.path().join("json/test/__tables.json")).expect("json"),
    )
    .expect("__tables.json is JSON");
    let parents = tables
        .as_array()
        .expect("an array of tables")
        .iter()
        .find(|t| t["name"] == "test_parents")
        .expect("test_parents");
    assert_eq!(parents["relations"][0]["name"], "test_children");
    let id = parents["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .find(|c| c["name"] == "_cq_id")
        .expect("_cq_id");
    assert_eq!(id["type"], "uuid");
}

#[test]
fn init_writes_a_spec_that_validates_once_filled() {
    let w = Workdir::new();
    let run = w.quarry(&[
        "init",
        "--source",
        "quarry/test",
        "--destination",
        "quarry/sqlite",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let path = w.path().join("test_to_sqlite.yaml");
    let text = std::fs::read_to_string(&path).expect("the written spec");
    golden(&text, "init/test_to_sqlite.yaml");
    // As written, the required field is empty: validate says which line to fill.
    let run = w.quarry(&["validate", "test_to_sqlite.yaml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("connection_string"), "{run:?}");
    // Filled, it validates.
    let filled = text.replace(
        "    connection_string:\n",
        "    connection_string: ./sync.db\n",
    );
    assert_ne!(filled, text);
    std::fs::write(&path, filled).expect("fill");
    let run = w.quarry(&["validate", "test_to_sqlite.yaml"]);
    assert_eq!(run.code, 0, "{run:?}");
    // It is never overwritten.
    let run = w.quarry(&["init"]);
    assert_eq!(run.code, 2, "{run:?}");
}

/// A sync slow enough to be seen: 200,000 rows into SQLite.
fn slow_spec(w: &Workdir) {
    std::fs::create_dir(w.path().join("data")).expect("mkdir");
    w.write("spec.yml", &(test_source(200_000) + SQLITE));
}

#[test]
fn a_sync_on_a_terminal_shows_live_progress() {
    let w = Workdir::new();
    slow_spec(&w);
    // `script` runs the sync under a pseudo-terminal and records what it showed.
    let command = format!("{QUARRY} sync spec.yml");
    let out = Command::new("script")
        .current_dir(w.path())
        .env("QUARRY_CACHE_DIR", shared_cache())
        .args(["-qefc", &command, "typescript"])
        .output()
        .expect("script (util-linux) on PATH");
    let shown = std::fs::read_to_string(w.path().join("typescript")).expect("typescript");
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("test → db:") && shown.contains("rows written"),
        "the live display: {shown}"
    );
    assert!(shown.contains("Synced test → db"), "{shown}");
}

#[test]
fn a_piped_sync_logs_progress_and_appends_summary_lines() {
    let w = Workdir::new();
    slow_spec(&w);
    let run = w.quarry_with(
        &[
            "sync",
            "spec.yml",
            "--summary-location",
            "summary.jsonl",
            "--invocation-id",
            "3f1c1a5e-0000-4000-8000-000000000001",
            "--telemetry-level",
            "none",
            "--no-log-file",
            "--tables-metrics-location",
            "tables.jsonl",
        ],
        &[("QUARRY_PROGRESS_INTERVAL", "0.05")],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("progress: test: ") && run.stderr.contains("rows/s"),
        "periodic progress lines: {run:?}"
    );
    assert!(
        run.stdout.lines().any(|l| l
            .split_whitespace()
            .take(3)
            .eq(["test_rows", "200000", "0"])),
        "per-table summary: {run:?}"
    );
    let text = std::fs::read_to_string(w.path().join("summary.jsonl")).expect("summary");
    let line: serde_json::Value = serde_json::from_str(text.trim_end()).expect("one JSON line");
    for field in [
        "cli_version",
        "sync_id",
        "sync_time",
        "sync_duration_ms",
        "resources",
        "source_name",
        "source_path",
        "source_version",
        "source_errors",
        "source_warnings",
        "source_tables",
        "destination_name",
        "destination_path",
        "destination_version",
        "destination_errors",
        "destination_warnings",
        "resources_per_table",
        "errors_per_table",
        "durations_per_table_ms",
    ] {
        assert!(line.get(field).is_some(), "{field} missing: {line}");
    }
    assert_eq!(line["sync_id"], "3f1c1a5e-0000-4000-8000-000000000001");
    assert_eq!(line["resources"], 800_000, "{line}");
    assert_eq!(
        line["resources_per_table"]["test_children"], 400_000,
        "{line}"
    );
    assert_eq!(line["source_path"], "quarry/test");
    let tables: Vec<serde_json::Value> = std::fs::read_to_string(w.path().join("tables.jsonl"))
        .expect("table metrics")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let rows: Vec<(String, u64)> = tables
        .iter()
        .map(|t| {
            (
                t["table_name"].as_str().expect("name").to_string(),
                t["resources"].as_u64().expect("rows"),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("test_children".to_string(), 400_000),
            ("test_parents".to_string(), 200_000),
            ("test_rows".to_string(), 200_000)
        ]
    );
    assert_eq!(line["destination_path"], "quarry/sqlite");
}

#[test]
fn two_sources_writing_one_table_with_different_schemas_are_refused_before_any_runs() {
    let w = Workdir::new();
    let store = store_plugin().display().to_string();
    let source = |name: &str, columns: &str| {
        format!(
            r#"kind: source
spec:
  name: {name}
  registry: local
  path: {store}
  tables: ['*']
  destinations: [db]
  spec:
    tables:
      - name: items
        columns: {columns}
        rows: [[1, a]]
---
"#
        )
    };
    let destination = format!(
        r#"kind: destination
spec:
  name: db
  registry: local
  path: {store}
  write_mode: overwrite
  migrate_mode: forced
  spec: {{ dir: db }}
  permissions: {{ files: {{ ./db: write }} }}
"#
    );
    let spec = source("first", ITEMS) + &source("second", ITEMS_NAME_INT64) + &destination;
    w.write("spec.yml", &spec);
    for command in ["validate", "sync"] {
        let run = w.quarry(&[command, "spec.yml"]);
        assert_eq!(run.code, 2, "{command}: {run:?}");
        assert!(
            run.stderr.contains(
                "destination `db`: table `items` of source `second` and table `items` of source `first` both become table `items`, with different schemas"
            ),
            "{command}: {run:?}"
        );
    }
    assert!(
        !w.path().join("db/items.arrow").exists(),
        "nothing was written"
    );
}

/// `quarry plugin check`: a good source and a good destination pass every check; a missing
/// spec, a source that traps mid-sync and a destination that fails its writes are each a FAIL
/// line naming the call, with exit 1.
#[test]
fn plugin_check_passes_good_plugins_and_names_what_is_wrong() {
    let w = Workdir::new();
    let run = w.quarry(&["plugin", "check", "quarry/test"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("ok    tables: 5 (test_rows"), "{run:?}");
    assert!(run.stdout.contains("rows, 1 cursors"), "{run:?}");
    assert!(run.stdout.ends_with(" checks, 0 failed\n"), "{run:?}");

    w.write("lite.yml", "connection_string: ./db/check.db\n");
    std::fs::create_dir_all(w.path().join("db")).unwrap();
    let args = [
        "plugin",
        "check",
        "quarry/sqlite",
        "--spec",
        "lite.yml",
        "--allow-write",
        "./db",
        "--write",
    ];
    let run = w.quarry(&args);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("ok    read: 3 rows back, as written"),
        "{run:?}"
    );

    let run = w.quarry(&["plugin", "check", "quarry/sqlite"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains(
            "FAIL  the spec does not fit the schema: plugin `sqlite` spec: \"connection_string\" is a required property"
        ),
        "{run:?}"
    );

    let hostile = hostile_plugin().display().to_string();
    w.write("panic.yml", "action: panic\n");
    let run = w.quarry(&["plugin", "check", &hostile, "--spec", "panic.yml"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("FAIL  sync: "), "{run:?}");

    // A source that never returns is stopped by the check's deadline (`--timeout`, else 2 min).
    w.write("spin.yml", "action: spin\n");
    let run = w.quarry(&[
        "plugin",
        "check",
        &hostile,
        "--spec",
        "spin.yml",
        "--timeout",
        "2s",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("FAIL  sync: ") && run.stdout.contains("timeout"),
        "{run:?}"
    );

    w.write("fail.yml", "action: fail_writes\nrows: 0\n");
    let run = w.quarry(&["plugin", "check", &hostile, "--spec", "fail.yml", "--write"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("FAIL  insert: "), "{run:?}");

    // Transformers: a test table through them; one whose batches lie about their schema fails.
    for transformer in ["quarry/basic", "quarry/jsonflattener"] {
        let run = w.quarry(&["plugin", "check", transformer]);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(
            run.stdout.contains("ok    info: kinds [transformer]")
                && run
                    .stdout
                    .contains("ok    transform: 3 rows in, 3 out in 1 batches"),
            "{run:?}"
        );
    }
    let liar = crate::support::transformer_fixture().display().to_string();
    w.write("liar.yml", "lie_about_schema: true\n");
    let run = w.quarry(&["plugin", "check", &liar, "--spec", "liar.yml"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("FAIL  transform: a batch out has schema"),
        "{run:?}"
    );
}

/// The bench cannot rot: a CI-sized run (100k rows, one run) of its Parquet scenarios — the
/// component, the transformer hop, the source over gRPC — reports a rate and a peak RSS for each,
/// DuckDB's import of the same files as a limit, and writes its report.
#[test]
fn a_small_bench_run_measures_every_parquet_scenario() {
    let w = Workdir::new();
    let run = w.quarry(&[
        "bench", "--rows", "100000", "--runs", "1", "--only", "parquet", "--report", "bench.md",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    for name in [
        "test -> file (parquet)",
        "test (16 tables, 4 workers) -> file (parquet)",
        "test -> basic -> file (parquet)",
        "test (grpc) -> file (parquet)",
    ] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no line for {name}: {run:?}"));
        let numbers: Vec<f64> = line[name.len()..]
            .split_whitespace()
            .map(|n| n.parse().expect("a number"))
            .collect();
        // rows/s, IPC MB/s, peak RSS MB, CPU cores, seconds
        assert!(
            numbers.len() == 5 && numbers[0] > 0.0 && numbers[2] > 0.0 && numbers[3] > 0.0,
            "{line}"
        );
    }
    // DuckDB importing the Parquet files the scenario wrote, and the same source and
    // destination compiled natively in one process.
    for name in [
        "limit: duckdb read_parquet import",
        "limit: native test -> file (parquet)",
    ] {
        let limit = run
            .stdout
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no line for {name}: {run:?}"));
        let rate: f64 = limit[name.len()..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no rate: {limit}"));
        assert!(rate > 0.0, "{limit}");
    }
    let report = std::fs::read_to_string(w.path().join("bench.md")).expect("the report");
    assert!(
        report.contains("100000 rows of `test_rows` per run"),
        "{report}"
    );
    let target = report
        .lines()
        .find(|l| l.starts_with("| `test` → Parquet ≥ 1,000,000 rows/s | "))
        .unwrap_or_else(|| panic!("no Parquet target: {report}"));
    assert!(
        target.ends_with("rows/s | yes |") || target.ends_with("rows/s | **no** |"),
        "{target}"
    );
    assert!(
        report.contains(
            "| `test` → DuckDB append ≥ 0.8× DuckDB's `read_parquet` import | not measured | - |"
        ),
        "{report}"
    );
    for target in ["| wasm cost: ", "| 16 tables × 1M rows "] {
        let line = report
            .lines()
            .find(|l| l.starts_with(target))
            .unwrap_or_else(|| panic!("no target {target}: {report}"));
        assert!(
            line.ends_with("rows/s) | yes |") || line.ends_with("rows/s) | **no** |"),
            "{line}"
        );
    }
}
