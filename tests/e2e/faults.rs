//! Faults around a sync (issue 16): the user stops it, its PostgreSQL restarts under it, its disk
//! fills up. After each, a second run completes and the destination holds every row exactly once
//! (checked by the exact id set of the `test` source's incremental table).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    Cluster, QUARRY, Run, Schema, Workdir, increments_into_postgres, psql, shared_cache,
    sqlite_query,
};

/// `quarry sync spec.yml` in `w`, started in the background with `env`.
fn start_sync(w: &Workdir, env: &[(&str, &str)]) -> Child {
    Command::new(QUARRY)
        .current_dir(w.path())
        .env("QUARRY_CACHE_DIR", shared_cache())
        .envs(env.iter().copied())
        .args(["sync", "spec.yml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start quarry")
}

/// Waits for `child` and returns what it printed.
fn finish(child: Child) -> Run {
    let out = child.wait_with_output().expect("wait for quarry");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Polls `ready` every 20 ms for up to two minutes.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < Duration::from_secs(120), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `count(*)|count(distinct id)|min(id)|max(id)` of a table holding rows 0..total exactly once.
fn exactly(total: u64) -> String {
    format!("{total}|{total}|0|{}", total - 1)
}

/// SIGTERM mid-sync: the source stops, the destination flushes what it was sent, the cursor is
/// saved for it (no periodic save happens in this test: the one saved is the interrupt's), the
/// exit is 130; a second run continues from there and nothing is missing or doubled.
#[test]
fn sigterm_flushes_what_was_sent_and_saves_its_cursor() {
    let schema = Schema::new();
    let s = &schema.0;
    let w = Workdir::new();
    let rows = 100_000u64;
    w.write(
        "spec.yml",
        &increments_into_postgres("postgres://postgres@127.0.0.1:5432/test", s, 5432, rows),
    );
    let child = start_sync(&w, &[("QUARRY_STATE_INTERVAL", "3600")]);
    let written = || -> u64 {
        if psql(&format!(
            "select to_regclass('{s}.test_increments') is not null"
        )) != "t"
        {
            return 0;
        }
        psql(&format!("select count(*) from {s}.test_increments"))
            .parse()
            .unwrap()
    };
    wait_until("no rows reached PostgreSQL", || written() >= 5000);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let run = finish(child);
    assert_eq!(run.code, 130, "{run:?}");
    assert!(run.stderr.contains("was interrupted (SIGTERM)"), "{run:?}");
    let saved: u64 = psql(&format!("select value from {s}.cq_state"))
        .parse()
        .expect("a cursor saved at the interrupt");
    let kept = written();
    assert!(saved > 0 && saved < rows, "cursor {saved}");
    // Every row before the cursor is written; at most the batch whose cursor had not yet
    // arrived is written beyond it.
    assert!(
        kept >= saved && kept - saved <= 1000,
        "{kept} rows written, cursor {saved}"
    );

    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        psql(&format!(
            "select count(*), count(distinct id), min(id), max(id) from {s}.test_increments"
        )),
        exactly(saved + rows)
    );
}

/// The processes whose working directory is `dir`: the native plugins a sync in `dir` started.
fn processes_in(dir: &Path) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(entry.path().join("cwd")).ok()?;
            // A zombie has no working directory left: it is gone in all but name.
            (cwd == dir).then_some(pid)
        })
        .collect()
}

/// A second SIGINT exits at once, without flushing, and takes the native plugins it started
/// with it: none is left running (DuckDB's would hold its database's lock).
#[test]
fn a_second_interrupt_exits_at_once_and_leaves_no_native_plugin_running() {
    let w = Workdir::new();
    w.write(
        "spec.yml",
        r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_rows]
  destinations: [duck]
  spec: { num_rows: 5000000 }
---
kind: destination
spec:
  name: duck
  path: quarry/duckdb
  write_mode: append
  spec: { connection_string: big.db }
"#,
    );
    let child = start_sync(&w, &[]);
    let quarry = child.id();
    let dir = std::fs::canonicalize(w.path()).expect("workdir");
    wait_until("the DuckDB plugin never started", || {
        processes_in(&dir).iter().any(|&pid| pid != quarry)
    });
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..2 {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(quarry as i32, libc::SIGINT) }, 0);
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = finish(child);
    assert_eq!(run.code, 130, "{run:?}");
    assert!(run.stderr.contains("SIGINT again"), "{run:?}");
    wait_until("a native plugin outlived quarry", || {
        processes_in(&dir).is_empty()
    });
}

/// PostgreSQL restarted mid-sync: the sync fails naming the destination and what PostgreSQL
/// said; a second run completes, and the rows are exactly those of the saved cursor plus one run.
#[test]
fn a_postgresql_restart_mid_sync_loses_no_row() {
    let cluster = Cluster::start();
    let w = Workdir::new();
    let rows = 200_000u64;
    let port = cluster.port;
    w.write(
        "spec.yml",
        &increments_into_postgres(
            &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            "faults",
            port,
            rows,
        ),
    );
    let child = start_sync(&w, &[("QUARRY_STATE_INTERVAL", "0.05")]);
    let cursor = || -> u64 {
        if cluster.psql("select to_regclass('faults.cq_state') is not null") != "t" {
            return 0;
        }
        cluster
            .psql("select coalesce(max(value::bigint), 0) from faults.cq_state")
            .parse()
            .unwrap()
    };
    wait_until("no cursor was saved", || cursor() > 0);
    cluster.pg_ctl("restart");
    let run = finish(child);
    assert!(run.code == 1 || run.code == 3, "{run:?}");
    assert!(run.stderr.contains("plugin `pg` failed"), "{run:?}");
    let saved = cursor();
    let kept: u64 = cluster
        .psql("select count(*) from faults.test_increments")
        .parse()
        .unwrap();
    assert!(
        saved < rows && kept >= saved,
        "{kept} rows written, cursor {saved}"
    );

    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        cluster.psql(
            "select count(*), count(distinct id), min(id), max(id) from faults.test_increments"
        ),
        exactly(saved + rows)
    );
}

/// A tmpfs of `size` mounted at `at` for one test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill it up (it needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount(at.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .expect("remount");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

/// The SQLite database's disk fills up mid-sync: the sync fails with the destination's error,
/// nothing already committed is lost; once there is room, a second run completes with every row
/// exactly once.
#[test]
fn a_full_disk_under_sqlite_loses_no_row() {
    let w = Workdir::new();
    let mount = Mount::tmpfs(&w.path().join("data"), "3m");
    let rows = 200_000u64;
    w.write(
        "spec.yml",
        &format!(
            r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_increments]
  destinations: [lite]
  backend_options:
    table_name: cq_state
    connection: "@@plugins.lite.connection"
  spec: {{ num_rows: {rows}, batch_size: 1000 }}
---
kind: destination
spec:
  name: lite
  path: quarry/sqlite
  write_mode: overwrite
  batch_size: 1000
  spec: {{ connection_string: ./data/sync.db }}
  permissions: {{ files: {{ ./data: write }} }}
"#
        ),
    );
    let run = w.quarry_with(&["sync", "spec.yml"], &[("QUARRY_STATE_INTERVAL", "0")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("plugin `lite` failed in flush")
            && run.stderr.contains("check the disk's free space"),
        "{run:?}"
    );
    // The failure is said once, not again when the plugin is closed.
    assert_eq!(
        run.stderr.matches("plugin `lite` failed").count(),
        1,
        "{run:?}"
    );
    let db = w.path().join("data/sync.db");
    let saved: u64 = sqlite_query(
        &db,
        "SELECT coalesce(max(CAST(value AS INTEGER)), 0) FROM cq_state",
    )
    .parse()
    .unwrap();
    let kept: u64 = sqlite_query(&db, "SELECT count(*) FROM test_increments")
        .parse()
        .unwrap();
    assert!(
        saved > 0 && kept >= saved && kept < rows,
        "{kept} rows kept, cursor {saved}"
    );

    rerun_with_room(&w, &mount, &db, saved + rows);
}

/// Grows the full disk and runs the sync again: SQLite then holds ids `0..total` once each.
fn rerun_with_room(w: &Workdir, mount: &Mount, db: &Path, total: u64) -> u64 {
    mount.resize("200m");
    let run = w.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        sqlite_query(
            db,
            "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM test_increments"
        ),
        format!("{total}\t{total}\t0\t{}", total - 1)
    );
    total
}

/// One of two destinations fails mid-sync (SQLite's disk fills) while the other, which keeps the
/// state, goes on: the cursors saved never pass the rows the failed one holds, so the next run
/// sends it everything it missed. Both end with every row exactly once.
#[test]
fn a_failed_destination_holds_back_the_cursor_its_siblings_would_save() {
    let w = Workdir::new();
    let mount = Mount::tmpfs(&w.path().join("data"), "3m");
    let schema = Schema::new();
    let rows = 200_000u64;
    let pg = increments_into_postgres(
        "postgres://postgres@127.0.0.1:5432/test",
        &schema.0,
        5432,
        rows,
    );
    let spec = pg.replace("destinations: [pg]", "destinations: [lite, pg]")
        + r#"---
kind: destination
spec:
  name: lite
  path: quarry/sqlite
  write_mode: overwrite
  batch_size: 1000
  spec: { connection_string: ./data/sync.db }
  permissions: { files: { ./data: write } }
"#;
    w.write("spec.yml", &spec);
    let run = w.quarry_with(&["sync", "spec.yml"], &[("QUARRY_STATE_INTERVAL", "0")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("plugin `lite` failed"), "{run:?}");
    let db = w.path().join("data/sync.db");
    let kept: u64 = sqlite_query(&db, "SELECT count(*) FROM test_increments")
        .parse()
        .unwrap();
    let saved: u64 = psql(&format!(
        "select coalesce(max(value::bigint), 0) from {}.cq_state",
        schema.0
    ))
    .parse()
    .unwrap();
    assert!(
        kept < rows && saved <= kept,
        "SQLite kept {kept} of {rows} rows, but the cursor saved is {saved}"
    );

    let total = rerun_with_room(&w, &mount, &db, saved + rows);
    assert_eq!(
        psql(&format!(
            "select count(*), count(distinct id), min(id), max(id) from {}.test_increments",
            schema.0
        )),
        exactly(total.max(rows))
    );
}

/// Backpressure (issue 20): a destination that sleeps 20 ms per batch holds the source back
/// instead of making the host buffer what it has not written. The host's peak RSS (`time -f %M`,
/// the process with both components in it) for four times the rows stays about the same: the
/// bounded queues hold a few batches, whatever the total. (A memory bound, not a timing.)
#[test]
fn a_slow_destination_holds_the_source_back_and_memory_stays_bounded() {
    let peak_kib = |rows: u64| -> u64 {
        let w = Workdir::new();
        w.write(
            "spec.yml",
            &format!(
                r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_rows]
  destinations: [slow]
  spec: {{ num_rows: {rows}, batch_size: 10000 }}
---
kind: destination
spec:
  name: slow
  registry: local
  path: {}
  write_mode: append
  batch_size: 10000
  spec: {{ action: slow_writes, mib: 20 }}
"#,
                crate::support::hostile_plugin().display()
            ),
        );
        let out = Command::new("/usr/bin/time")
            .current_dir(w.path())
            .env("QUARRY_CACHE_DIR", shared_cache())
            .args(["-f", "peak %M", QUARRY, "sync", "spec.yml"])
            .output()
            .expect("run quarry under /usr/bin/time");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("test_rows {rows}")),
            "{stderr}"
        );
        stderr
            .lines()
            .find_map(|l| l.strip_prefix("peak "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no peak RSS in {stderr}"))
    };
    // The first run compiles the components, which takes more memory than any sync here.
    peak_kib(10_000);
    let (small, large) = (peak_kib(100_000), peak_kib(400_000));
    // 300,000 more rows of test_rows are ~60 MB of Arrow: buffered, they would show.
    assert!(
        large < small + 30 * 1024,
        "peak RSS grew from {small} KiB (100k rows) to {large} KiB (400k rows) behind a slow destination"
    );
}
