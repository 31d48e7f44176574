//! Golden tests of what users read when a spec is wrong: every `tests/ui/**/*.yaml` fails with
//! exit code 2 and exactly the diagnostic in the `.stderr` file beside it. `tests/ui/*.yaml` are
//! errors of the spec loader; `tests/ui/plan/*.yaml` are errors found when plugins are resolved
//! and their specs validated. `quarry sync` and `quarry validate` must print the same.
//! `QUARRY_BLESS=1` rewrites the expected files.

use std::path::{Path, PathBuf};

use crate::support::Workdir;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

fn cases() -> Vec<PathBuf> {
    let mut cases = Vec::new();
    for dir in ["tests/ui", "tests/ui/plan"] {
        for entry in std::fs::read_dir(workspace().join(dir))
            .expect("tests/ui")
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                cases.push(
                    path.strip_prefix(workspace())
                        .expect("relative")
                        .to_path_buf(),
                );
            }
        }
    }
    cases.sort();
    cases
}

#[test]
fn bad_specs_fail_with_their_golden_diagnostic() {
    let cases = cases();
    assert!(cases.len() >= 10, "{cases:?}");
    let bless = std::env::var_os("QUARRY_BLESS").is_some();
    let mut failures = Vec::new();
    let work = Workdir::new();
    // `sync` and `validate` find the same mistakes, before any source runs.
    for (case, command) in cases
        .iter()
        .flat_map(|case| ["sync", "validate"].map(|command| (case, command)))
    {
        let spec = workspace().join(case);
        let run = work.quarry_in(
            &workspace(),
            &["--log-level", "error", command, case.to_str().unwrap()],
        );
        assert_eq!(run.code, 2, "{command} {}: {run:?}", spec.display());
        assert_eq!(run.stdout, "", "{command} {}: {run:?}", spec.display());
        let expected_path = spec.with_extension("stderr");
        if bless {
            std::fs::write(&expected_path, &run.stderr).expect("bless");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if run.stderr != expected {
            failures.push(format!(
                "{command} {}\n--- expected\n{expected}--- actual\n{}",
                case.display(),
                run.stderr
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ (QUARRY_BLESS=1 to accept):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
