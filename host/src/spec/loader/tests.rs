use std::env::VarError;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::spec::{Access, MigrateMode, Permissions, PkMode, WriteMode};

fn env(name: &str) -> Result<String, VarError> {
    match name {
        "ROWS" => Ok("7".into()),
        _ => Err(VarError::NotPresent),
    }
}

const DESTINATION: &str = "kind: destination\nspec:\n  name: sqlite\n  path: quarry/sqlite\n";

/// Writes `files` into a fresh directory and loads the directory.
fn load_files(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<SyncSpec, SpecError>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let result = load(&[dir.path().to_owned()], &env);
    (dir, result)
}

/// The error of loading `text` (plus a valid destination) as `location: message [help]`, with
/// the location relative to the temporary directory.
fn error(text: &str) -> String {
    let (dir, result) = load_files(&[("a.yml", text), ("z.yml", DESTINATION)]);
    let err = result.unwrap_err();
    let at = err.location.map(|mut l| {
        l.file = l.file.strip_prefix(dir.path()).unwrap().to_owned();
        format!("{l}: ")
    });
    let help = err.help.map(|h| format!(" [{h}]")).unwrap_or_default();
    format!("{}{}{help}", at.unwrap_or_default(), err.message)
        .replace(&dir.path().display().to_string(), "DIR")
}

#[test]
fn reads_every_field() {
    let source = r#"kind: source
spec:
  name: test
  path: quarry/test
  version: v1.0.0
  tables: ["*"]
  skip_tables: [b]
  skip_dependent_tables: true
  destinations: [sqlite]
  deterministic_cq_id: true
  concurrency: 4
  backend_options:
    table_name: state
    connection: "@@plugins.sqlite.connection"
  otel_endpoint: ""
  spec:
    num_rows: ${ROWS}
  permissions:
    files: {"./out": write}
    memory: 1GiB
"#;
    let destination = r#"kind: destination
spec:
  name: sqlite
  registry: local
  path: ./plugins/sqlite.wasm
  write_mode: append
  migrate_mode: forced
  pk_mode: cq-id-only
  batch_size: 1000
  batch_size_bytes: 1000000
  batch_timeout: 20s
  sync_group_id: nightly-{{YEAR}}
  send_sync_summary: true
"#;
    let (dir, result) = load_files(&[("spec.yml", &format!("{source}---\n{destination}"))]);
    let spec = result.unwrap();
    let [s] = spec.sources.as_slice() else {
        panic!("one source expected")
    };
    assert_eq!(
        (s.name.as_str(), s.path.as_str(), s.registry),
        ("test", "quarry/test", Registry::Quarry)
    );
    assert_eq!(s.version.as_deref(), Some("v1.0.0"));
    assert_eq!(
        (s.tables.as_slice(), s.skip_tables.as_slice()),
        (&["*".to_owned()][..], &["b".to_owned()][..])
    );
    assert!(s.skip_dependent_tables && s.deterministic_cq_id);
    assert_eq!(s.destinations, ["sqlite"]);
    assert_eq!(s.concurrency, Some(4));
    let backend = s.backend_options.as_ref().unwrap();
    assert_eq!(backend.connection, "@@plugins.sqlite.connection");
    assert_eq!(s.spec.value, json!({"num_rows": 7}));
    assert_eq!(s.permissions.files, [("./out".to_owned(), Access::Write)]);
    assert_eq!(s.permissions.memory, Some(1 << 30));
    assert_eq!(s.at, Location::new(dir.path().join("spec.yml"), 3, 3));

    let [d] = spec.destinations.as_slice() else {
        panic!("one destination expected")
    };
    assert_eq!(
        (d.registry, d.path.as_str()),
        (Registry::Local, "./plugins/sqlite.wasm")
    );
    assert_eq!(
        (d.write_mode, d.migrate_mode, d.pk_mode),
        (WriteMode::Append, MigrateMode::Forced, PkMode::CqIdOnly)
    );
    assert_eq!(
        (d.batch_size, d.batch_size_bytes),
        (Some(1000), Some(1_000_000))
    );
    assert_eq!(d.batch_timeout, Some(Duration::from_secs(20)));
    assert_eq!(d.sync_group_id.as_deref(), Some("nightly-{{YEAR}}"));
    assert!(d.send_sync_summary);
    assert_eq!(d.at, Location::new(dir.path().join("spec.yml"), 24, 3));
}

#[test]
fn defaults_and_empty_plugin_spec() {
    let source = "kind: source\nspec:\n  name: s\n  path: quarry/test\n  tables: [a]\n  \
                  destinations: [sqlite]\n  spec:\n";
    let (_dir, result) = load_files(&[("a.yml", source), ("b.yml", DESTINATION)]);
    let spec = result.unwrap();
    let (s, d) = (&spec.sources[0], &spec.destinations[0]);
    assert_eq!(s.spec.value, json!({}));
    assert_eq!(s.permissions, Permissions::default());
    assert!(!s.skip_dependent_tables && s.skip_tables.is_empty() && s.backend_options.is_none());
    assert_eq!(
        (d.write_mode, d.migrate_mode, d.pk_mode),
        (
            WriteMode::OverwriteDeleteStale,
            MigrateMode::Safe,
            PkMode::Default
        )
    );
    assert_eq!(d.spec.value, json!({}));
    // An absent `spec:` is validated as `{}` and reported at the document's `spec:` mapping.
    let err = d
        .spec
        .validate("sqlite", r#"{"required": ["path"]}"#)
        .unwrap_err();
    assert_eq!(err.location, Some(d.at.clone()));
}

#[test]
fn directories_are_read_in_name_order_and_only_yaml() {
    let source = |name: &str| {
        format!(
            "kind: source\nspec:\n  name: {name}\n  path: quarry/t\n  tables: [a]\n  \
             destinations: [sqlite]\n"
        )
    };
    let (_dir, result) = load_files(&[
        ("b.yaml", &source("second")),
        (
            "a.yml",
            &format!("# leading comment\n---\n{}", source("first")),
        ),
        ("c.yml.bak", &source("ignored")),
        ("d.yml", DESTINATION),
    ]);
    let names: Vec<String> = result
        .unwrap()
        .sources
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["first", "second"]);
}

#[test]
fn cross_document_errors() {
    let source = |name: &str, destinations: &str| {
        format!(
            "kind: source\nspec:\n  name: {name}\n  path: quarry/t\n  tables: [a]\n  \
             destinations: {destinations}\n"
        )
    };
    assert_eq!(
        error(&format!(
            "{}---\n{}",
            source("s", "[sqlite]"),
            source("s", "[sqlite]")
        )),
        "a.yml:10:9: duplicate source name `s` [the first source named `s` is at DIR/a.yml:3:9]"
    );
    assert_eq!(
        error(&source("s", "[sqlite, pg]")),
        "a.yml:6:26: source `s` writes to undefined destination `pg` \
         [defined destinations: `sqlite`]"
    );
    assert_eq!(
        error(&source("s", "[]")),
        "a.yml:6:17: source `s` has no destinations \
         [name the destinations to write to, e.g. `destinations: [postgresql]`]"
    );
    let (dir, result) = load_files(&[("z.yml", DESTINATION)]);
    let err = result.unwrap_err();
    assert_eq!(
        err.message,
        format!("no sources defined in `{}`", dir.path().display())
    );
    assert_eq!(err.location, None);
}

#[test]
fn per_document_errors() {
    assert_eq!(
        error("kind: source\nspec:\n  name: s\n  path: quarry/t\n  destinations: [sqlite]\n"),
        "a.yml:3:3: missing field `tables` [add `tables:` to this mapping]"
    );
    assert_eq!(
        error(
            "kind: source\nspec:\n  name: s\n  path: ./t.wasm\n  tables: [a]\n  \
             destinations: [sqlite]\n"
        ),
        "a.yml:4:9: `path`: `./t.wasm` is not a registry plugin name [write `OWNER/NAME` (e.g. \
         `quarry/test`), or set `registry: local` to load a component file]"
    );
    assert_eq!(
        error("kind: sauce\nspec: {}\n"),
        "a.yml:1:7: `kind`: unknown value `sauce`, expected one of `source`, `destination`, `transformer` \
         [did you mean `source`?]"
    );
    assert_eq!(
        error("- kind: source\n"),
        "a.yml:1:1: expected a mapping with `kind` and `spec`, found a list"
    );
    assert_eq!(
        error(
            "kind: source\nspec:\n  name: s\n  path: quarry/t\n  tables: 5\n  \
             destinations: [sqlite]\n"
        ),
        "a.yml:5:11: `tables`: expected a list of strings, found integer `5`"
    );
}

#[test]
fn missing_paths_are_reported() {
    let err = load(&[PathBuf::from("/nonexistent/quarry/spec.yml")], &env).unwrap_err();
    assert_eq!(
        err.message,
        "cannot read `/nonexistent/quarry/spec.yml`: No such file or directory (os error 2)"
    );
    assert_eq!(load(&[], &env).unwrap_err().message, "no spec files given");
}
