//! Golden tests for what users read: each `tests/ui/<case>.yaml` is a bad spec and
//! `tests/ui/<case>.stderr` holds exactly `SpecError`'s `Display` output plus a newline, with paths
//! as a user would type them from the workspace root (`tests/ui/<case>.yaml`). The CLI's own UI
//! test can compare its stderr with the same files. `QUARRY_BLESS=1` rewrites the expected files.

use std::path::{Path, PathBuf};

/// The workspace root as this test names it; stripped from output so expectations are portable.
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../");

#[test]
fn ui_specs_render_the_expected_diagnostics() {
    let dir = Path::new(ROOT).join("tests/ui");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.map(|e| e.path()).unwrap_or_else(|e| panic!("{e}")))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 8,
        "expected at least 8 UI cases in {}",
        dir.display()
    );

    let bless = std::env::var_os("QUARRY_BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for case in &cases {
        let actual = match super::load(std::slice::from_ref(case)) {
            Ok(_) => "unexpectedly loaded without error\n".to_owned(),
            Err(err) => format!("{err}\n").replace(ROOT, ""),
        };
        let expected_path = case.with_extension("stderr");
        if bless {
            std::fs::write(&expected_path, &actual)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", expected_path.display()));
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            failures.push(format!(
                "--- {}\n{expected}+++ actual\n{actual}",
                expected_path.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} UI case(s) differ (QUARRY_BLESS=1 rewrites them):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}
