//! Interoperability with CloudQuery's own programs, installed by `scripts/tools` from PyPI and
//! npm: its CLI runs Quarry's wasm plugins through `quarry serve`, and Quarry runs source plugins
//! written with its Python and JavaScript SDKs.

use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_schema::{DataType, TimeUnit};

use crate::support::{Workdir, files, make_executable, read_parquet, served, shared_cache, tools};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/cloudquery")
        .join(name)
}

/// The batches of the one Parquet file under `dir`.
fn read_only_parquet(dir: &Path) -> Vec<RecordBatch> {
    let found = files(dir, ".parquet");
    assert_eq!(found.len(), 1, "{found:?}");
    read_parquet(&found[0])
}

fn parquet_destination() -> &'static str {
    r#"---
kind: destination
spec:
  name: out
  path: quarry/file
  write_mode: append
  spec: { path: 'out/{{TABLE}}.{{FORMAT}}', format: parquet, no_rotate: true }
  permissions: { files: { ./out: write } }
"#
}

/// Checks the rows an SDK source wrote: ids 0..n once each, and the values that follow from them.
fn check_sdk_rows(batches: &[RecordBatch], rows: usize) {
    let schema = batches[0].schema();
    let type_of = |name: &str| {
        schema
            .field_with_name(name)
            .map(|f| f.data_type().clone())
            .unwrap_or_else(|_| panic!("no column {name} in {schema:?}"))
    };
    assert_eq!(type_of("id"), DataType::Int64);
    assert_eq!(type_of("name"), DataType::Utf8);
    assert_eq!(type_of("price"), DataType::Float64);
    assert_eq!(type_of("active"), DataType::Boolean);
    assert_eq!(
        type_of("created"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    let mut seen = vec![false; rows];
    for batch in batches {
        let column = |name: &str| batch.column_by_name(name).expect("column");
        let ids = column("id").as_primitive::<Int64Type>();
        let prices = column("price").as_primitive::<Float64Type>();
        let names = column("name").as_string::<i32>();
        let active = column("active").as_boolean();
        let created = column("created").as_primitive::<TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            let id = ids.value(i);
            let n = usize::try_from(id).expect("id");
            assert!(!seen[n], "id {id} twice");
            seen[n] = true;
            assert_eq!(prices.value(i), id as f64 / 4.0);
            assert_eq!(names.value(i), format!("item-{id}"));
            assert_eq!(active.value(i), id % 2 == 0);
            assert_eq!(created.value(i), 1_704_067_200_000_000 + id * 1_000_000);
        }
    }
    assert!(seen.iter().all(|s| *s), "rows are missing");
}

/// Runs `cloudquery sync SPEC` in `work` and returns its log; fails the test if the sync failed.
fn cloudquery_sync(work: &Workdir, spec: &str) -> String {
    let out = Command::new(tools().join("venv/bin/python"))
        .current_dir(work.path())
        .env("QUARRY_CACHE_DIR", shared_cache())
        .args([
            "-m",
            "cloudquery",
            "sync",
            spec,
            "--log-console",
            "--telemetry-level",
            "none",
        ])
        .output()
        .expect("run the CloudQuery CLI");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("Sync completed successfully"), "{log}");
    log
}

/// Under CloudQuery's CLI, a Quarry source served by `quarry serve` keeps its cursors in the
/// backend the spec names (`backend_options`): it reads them from that destination plugin (here
/// Quarry's SQLite component, served too) and writes them back after its rows, as CloudQuery's
/// SDKs do, so a second sync sends only the new rows.
#[test]
fn the_cloudquery_cli_keeps_a_served_quarry_sources_cursors_in_its_backend() {
    let work = Workdir::new();
    served(&work, "test-plugin", "quarry/test", &[]);
    served(
        &work,
        "lite-plugin",
        "quarry/sqlite",
        &["--allow-write", "./data"],
    );
    std::fs::create_dir_all(work.path().join("data")).expect("data/");
    work.write(
        "cq.yml",
        r#"kind: source
spec:
  name: test
  registry: local
  path: ./test-plugin
  version: v0.1.0
  tables: [test_increments]
  destinations: [lite]
  backend_options:
    table_name: cq_state
    connection: "@@plugins.lite.connection"
  spec: { num_rows: 1500, batch_size: 500 }
---
kind: destination
spec:
  name: lite
  registry: local
  path: ./lite-plugin
  version: v0.1.0
  write_mode: append
  spec: { connection_string: ./data/out.db }
"#,
    );
    let db = work.path().join("data/out.db");
    let ids = || {
        crate::support::sqlite_query(
            &db,
            "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM test_increments",
        )
    };
    cloudquery_sync(&work, "cq.yml");
    assert_eq!(ids(), "1500\t1500\t0\t1499");
    assert_eq!(
        crate::support::sqlite_query(&db, "SELECT key, value FROM cq_state"),
        "test_increments\t1500"
    );
    cloudquery_sync(&work, "cq.yml");
    assert_eq!(ids(), "3000\t3000\t0\t2999");
}

/// CloudQuery's CLI runs a Quarry transformer served by `quarry serve` (its `Transform` and
/// `TransformSchema`), between a served source and a served destination: the table arrives
/// renamed, without the removed column, and without the dropped rows.
#[test]
fn the_cloudquery_cli_runs_a_served_quarry_transformer() {
    let work = Workdir::new();
    served(&work, "test-plugin", "quarry/test", &[]);
    served(&work, "basic-plugin", "quarry/basic", &[]);
    served(
        &work,
        "lite-plugin",
        "quarry/sqlite",
        &["--allow-write", "./data"],
    );
    std::fs::create_dir_all(work.path().join("data")).expect("data/");
    work.write(
        "cq.yml",
        r#"kind: source
spec:
  name: test
  registry: local
  path: ./test-plugin
  version: v0.1.0
  tables: [test_rows]
  destinations: [lite]
  spec: { num_rows: 3000, batch_size: 500 }
---
kind: destination
spec:
  name: lite
  registry: local
  path: ./lite-plugin
  version: v0.1.0
  write_mode: append
  transformers: [basic]
  spec: { connection_string: ./data/out.db }
---
kind: transformer
spec:
  name: basic
  registry: local
  path: ./basic-plugin
  version: v0.1.0
  spec:
    transformations:
      - kind: remove_columns
        tables: [test_rows]
        columns: [payload]
      - kind: drop_rows
        tables: [test_rows]
        columns: [flag]
        value: "true"
      - kind: change_table_names
        tables: [test_rows]
        new_table_name_template: "cq_{{.OldName}}"
"#,
    );
    cloudquery_sync(&work, "cq.yml");
    let db = work.path().join("data/out.db");
    // Rows whose id is a multiple of 3 have `flag` true.
    assert_eq!(
        crate::support::sqlite_query(
            &db,
            "SELECT count(*), sum(id % 3 = 0), min(id), max(id) FROM cq_test_rows"
        ),
        "2000\t0\t1\t2999"
    );
    let columns = crate::support::sqlite_query(
        &db,
        "SELECT group_concat(name, ',') FROM pragma_table_info('cq_test_rows')",
    );
    // CloudQuery's CLI adds its internal columns first; `payload` is gone.
    assert_eq!(
        columns,
        "_cq_sync_time,_cq_source_name,_cq_id,_cq_parent_id,id,name,value,flag,created_at,tags"
    );
    assert_eq!(
        crate::support::sqlite_query(
            &db,
            "SELECT count(*) FROM sqlite_master WHERE name = 'test_rows'"
        ),
        "0"
    );
}

#[test]
fn the_cloudquery_cli_syncs_quarry_wasm_plugins_served_by_quarry() {
    let work = Workdir::new();
    served(&work, "test-plugin", "quarry/test", &[]);
    served(
        &work,
        "file-plugin",
        "quarry/file",
        &["--allow-write", "./out"],
    );
    // `registry: local` executables: the CLI starts each with `serve --network unix`.
    let spec = r#"kind: source
spec:
  name: test
  registry: local
  path: ./test-plugin
  version: v0.1.0
  tables: [test_rows]
  destinations: [out]
  spec: { num_rows: 30000, batch_size: 4000 }
---
kind: destination
spec:
  name: out
  registry: local
  path: ./file-plugin
  version: v0.1.0
  write_mode: append
  spec: { path: 'out/{{TABLE}}.{{FORMAT}}', format: parquet, no_rotate: true }
"#;
    work.write("cq.yml", spec);
    cloudquery_sync(&work, "cq.yml");
    let batches = read_only_parquet(&work.path().join("out"));
    let mut ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("id")
                .expect("id")
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..30_000).collect::<Vec<i64>>());
    // The CLI added its internal columns; the source's own came through.
    let schema = batches[0].schema();
    for column in [
        "_cq_sync_time",
        "_cq_source_name",
        "_cq_id",
        "name",
        "payload",
    ] {
        assert!(
            schema.field_with_name(column).is_ok(),
            "{column} in {schema:?}"
        );
    }
}

/// `./python-source` in `work`: the Python SDK fixture, run with the tools' Python.
fn python_source(work: &Workdir) {
    let script = work.write(
        "python-source",
        &format!(
            "#!/bin/sh\nexec '{}' '{}' \"$@\"\n",
            tools().join("venv/bin/python").display(),
            fixture("python_source.py").display()
        ),
    );
    make_executable(&script);
}

#[test]
fn a_python_sdk_source_runs_as_a_local_executable() {
    let work = Workdir::new();
    python_source(&work);
    sync_sdk_source(&work, "py", "./python-source", "py_items");
}

/// A CloudQuery Python SDK source keeps its incremental cursor with the SDK's own state client:
/// Quarry serves it the backend (`Sync.Request.backend`) holding the cursors of its state table
/// in SQLite, takes what it checkpoints, and saves it once the rows before it are written.
#[test]
fn a_python_sdk_source_keeps_its_cursor_across_runs() {
    let work = Workdir::new();
    python_source(&work);
    work.write(
        "spec.yml",
        r#"kind: source
spec:
  name: py
  registry: local
  path: ./python-source
  native: true
  tables: [py_increments]
  destinations: [lite]
  backend_options:
    table_name: cq_state
    connection: "@@plugins.lite.connection"
  spec: { num_rows: 1200 }
---
kind: destination
spec:
  name: lite
  path: quarry/sqlite
  write_mode: append
  spec: { connection_string: ./data/out.db }
  permissions: { files: { ./data: write } }
"#,
    );
    let db = work.path().join("data/out.db");
    let ids = || {
        crate::support::sqlite_query(
            &db,
            "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM py_increments",
        )
    };
    let run = work.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(ids(), "1200\t1200\t0\t1199");
    let show = work.quarry(&["state", "show", "py", "spec.yml"]);
    assert_eq!(
        (show.code, show.stdout.as_str()),
        (0, "py_increments\t1200\n"),
        "{show:?}"
    );

    let run = work.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("(py_increments 1200)"), "{run:?}");
    assert_eq!(ids(), "2400\t2400\t0\t2399");
    let show = work.quarry(&["state", "show", "py", "spec.yml"]);
    assert_eq!(show.stdout, "py_increments\t2400\n", "{show:?}");
}

/// Syncs 2,500 rows of an SDK source (`name`, the executable `path`) into Parquet and checks
/// them.
fn sync_sdk_source(work: &Workdir, name: &str, path: &str, table: &str) {
    let spec = format!(
        r#"kind: source
spec:
  name: {name}
  registry: local
  path: {path}
  native: true
  tables: ['{table}']
  destinations: [out]
  spec: {{ num_rows: 2500 }}
{}"#,
        parquet_destination()
    );
    work.write("spec.yml", &spec);
    let run = work.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("Synced {name} → out: 2500 rows ({table} 2500)")),
        "{run:?}"
    );
    check_sdk_rows(&read_only_parquet(&work.path().join("out")), 2500);
}

#[test]
fn a_javascript_sdk_source_runs_as_a_local_executable() {
    let tools = tools();
    let work = Workdir::new();
    // ES modules resolve packages from node_modules beside them.
    std::fs::copy(fixture("js_source.mjs"), work.path().join("js_source.mjs")).expect("copy");
    std::os::unix::fs::symlink(
        tools.join("node/node_modules"),
        work.path().join("node_modules"),
    )
    .expect("link node_modules");
    let script = work.write(
        "js-source",
        &format!(
            "#!/bin/sh\nexec node '{}' \"$@\"\n",
            work.path().join("js_source.mjs").display()
        ),
    );
    make_executable(&script);
    sync_sdk_source(&work, "js", "./js-source", "js_items");
}
