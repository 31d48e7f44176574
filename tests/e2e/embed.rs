//! Quarry as a library (`quarry::Sync`): the same syncs, run in the test's own process, with
//! progress events, a clean stop from another task, and errors as values.

use std::collections::BTreeMap;

use crate::support::{JSON_FILES, Workdir, shared_cache, wasm_dir};

const SOURCE: &str = r#"
kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_rows, test_parents]
  destinations: [out]
  spec: { num_rows: ROWS, batch_size: 1000, children_per_parent: 2 }
"#;

fn sync(w: &Workdir, rows: u64) -> quarry::Sync {
    let spec = format!("{}{JSON_FILES}", SOURCE.replace("ROWS", &rows.to_string()));
    quarry::Sync::from_yaml_str(&spec)
        .unwrap_or_else(|e| panic!("{e}"))
        .working_dir(w.path())
        .plugin_dir(wasm_dir())
        .cache_dir(shared_cache())
}

fn lines(w: &Workdir, table: &str) -> usize {
    std::fs::read_to_string(w.path().join(format!("out/{table}.json")))
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn a_sync_runs_in_process_and_reports_every_batch_as_an_event() {
    let w = Workdir::new();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let (summary, events) = runtime.block_on(async {
        let mut sync = sync(&w, 5000).invocation_id("embedded-1");
        let mut events = sync.events();
        let summary = sync.run().await.unwrap_or_else(|e| panic!("{e}"));
        let mut all = Vec::new();
        while let Some(event) = events.recv().await {
            all.push(event);
        }
        (summary, all)
    });
    assert!(summary.ok(), "{summary}");
    assert_eq!(summary.sync_id, "embedded-1");
    // 5,000 parents with two children each.
    assert_eq!(summary.rows(), 5000 + 5000 + 10_000);
    assert_eq!(lines(&w, "test_rows"), 5000);
    assert_eq!(lines(&w, "test_children"), 10_000);

    let (mut read, mut written) = (BTreeMap::new(), BTreeMap::new());
    for event in &events {
        match event {
            quarry::Event::Read { table, rows, .. } => {
                *read.entry(table.clone()).or_insert(0) += rows
            }
            quarry::Event::Written {
                table,
                rows,
                destination,
                ..
            } => {
                assert_eq!(destination, "out");
                *written.entry(table.clone()).or_insert(0) += rows
            }
            _ => {}
        }
    }
    assert_eq!(read, written);
    assert_eq!(read["test_rows"], 5000);
    assert!(matches!(&events[0], quarry::Event::SourceStarted { source, .. } if source == "test"));
    let Some(quarry::Event::SourceFinished(finished)) = events.last() else {
        panic!("the last event is the source's end: {:?}", events.last());
    };
    assert_eq!(finished.rows(), summary.rows());
}

#[test]
fn a_stopper_stops_the_sync_cleanly_and_errors_are_values() {
    let w = Workdir::new();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let summary = runtime.block_on(async {
        let mut sync = sync(&w, 5_000_000);
        let stopper = sync.stopper();
        let mut events = sync.events();
        tokio::spawn(async move {
            // Stop once rows are being written.
            while let Some(event) = events.recv().await {
                if matches!(event, quarry::Event::Written { .. }) {
                    stopper.stop();
                    break;
                }
            }
        });
        sync.run().await.unwrap_or_else(|e| panic!("{e}"))
    });
    assert!(!summary.ok());
    let errors = summary.errors().join("\n");
    assert!(
        errors.contains("was interrupted (stopped by the program)"),
        "{errors}"
    );
    let written = lines(&w, "test_rows");
    assert!(written > 0 && written < 5_000_000, "{written} rows written");

    let bad = quarry::Sync::from_yaml_str("kind: source\nspec:\n  name: s\n  path: quarry/test\n")
        .err()
        .expect("a spec without tables and destinations is refused");
    assert!(matches!(bad, quarry::Error::Config(_)), "{bad:?}");
    assert!(bad.to_string().contains("<yaml string>:3:3"), "{bad}");
}

/// The same `quarry/test` component the CLI runs, transpiled by jco and run by the JavaScript
/// host in `embed/js` (its own `node:test` suite checks the rows, the cursors and the errors).
/// The host's files are copied beside the installed npm packages, which its imports resolve from.
#[test]
fn the_test_component_runs_in_node() {
    let tools = crate::support::tools();
    let dir = tempfile::tempdir_in(tools.join("node")).expect("a directory beside node_modules");
    let host = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../embed/js");
    for file in ["quarry-host.js", "host.mjs", "host.test.mjs"] {
        std::fs::copy(host.join(file), dir.path().join(file)).expect("copy the Node host");
    }
    let out = std::process::Command::new("node")
        .current_dir(dir.path())
        .env(
            "QUARRY_TEST_WASM",
            wasm_dir().join("quarry_plugin_test.wasm"),
        )
        .args(["--test", "--test-reporter", "spec", "host.test.mjs"])
        .output()
        .expect("run node");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("pass 4") && report.contains("fail 0"),
        "{report}"
    );
}
