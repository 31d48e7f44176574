//! Plugins over gRPC (CloudQuery plugin protocol v3): wasm plugins served by `quarry serve`,
//! started by quarry as local executables or dialed at an address.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    JSON_FILES, QUARRY, Workdir, hostile_plugin, make_executable, served, shared_cache,
};

/// The ids of a JSON-lines table written by the `file` plugin.
fn json_ids(path: &Path) -> Vec<i64> {
    let text = std::fs::read_to_string(path).expect("json output");
    text.lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).expect("json row");
            row["id"].as_i64().expect("id")
        })
        .collect()
}

fn file_destination(name: &str, path: &str) -> String {
    format!(
        r#"---
kind: destination
spec:
  name: {name}
  registry: local
  native: true
  path: {path}
  write_mode: append
  spec: {{ path: 'out/{{{{TABLE}}}}.{{{{FORMAT}}}}', format: json, no_rotate: true }}
"#
    )
}

#[test]
fn wasm_plugins_served_over_grpc_move_every_row() {
    let work = Workdir::new();
    served(&work, "test-plugin", "quarry/test", &[]);
    served(
        &work,
        "file-plugin",
        "quarry/file",
        &["--allow-write", "./out"],
    );
    let spec = format!(
        r#"kind: source
spec:
  name: test
  registry: local
  native: true
  path: ./test-plugin
  tables: [test_rows]
  destinations: [out]
  spec: {{ num_rows: 100000, batch_size: 7000 }}
{}"#,
        file_destination("out", "./file-plugin")
    );
    let spec = work.write("spec.yml", &spec);
    let run = work.quarry(&["sync", spec.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("Synced test → out: 100000 rows (test_rows 100000)"),
        "{run:?}"
    );
    let mut ids = json_ids(&work.path().join("out/test_rows.json"));
    ids.sort_unstable();
    assert_eq!(ids, (0..100_000).collect::<Vec<i64>>());
}

#[test]
fn a_grpc_destination_that_fails_mid_write_fails_the_sync_with_its_message() {
    let work = Workdir::new();
    served(
        &work,
        "bad-plugin",
        &hostile_plugin().display().to_string(),
        &[],
    );
    let spec = r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_rows]
  destinations: [bad]
  spec: { num_rows: 50000, batch_size: 5000 }
---
kind: destination
spec:
  name: bad
  registry: local
  native: true
  path: ./bad-plugin
  write_mode: append
  batch_size: 5000
  spec: { action: fail_writes, rows: 10000 }
"#;
    let spec = work.write("spec.yml", spec);
    let run = work.quarry(&["sync", spec.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("plugin `bad` failed in write")
            && run
                .stderr
                .contains("refusing rows of test_rows after 10000 rows, on purpose"),
        "{run:?}"
    );
    assert!(run.stdout.contains("Sync finished with errors"), "{run:?}");
}

/// A `quarry serve` left running on a loopback port.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

#[test]
fn a_running_plugin_is_dialed_at_its_address() {
    let work = Workdir::new();
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let child = Command::new(QUARRY)
        .current_dir(work.path())
        .env("QUARRY_CACHE_DIR", shared_cache())
        .args([
            "serve",
            "quarry/test",
            "--network",
            "tcp",
            "--address",
            &address,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start quarry serve");
    let _running = Running(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let spec = format!(
        r#"kind: source
spec:
  name: test
  registry: grpc
  path: {address}
  tables: [test_rows]
  destinations: [out]
  spec: {{ num_rows: 3000 }}
{JSON_FILES}"#
    );
    let spec = work.write("spec.yml", &spec);
    let run = work.quarry(&["sync", spec.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        json_ids(&work.path().join("out/test_rows.json")).len(),
        3000
    );
}

#[test]
fn an_executable_that_does_not_serve_is_refused_with_what_it_said() {
    let work = Workdir::new();
    let path = work.write(
        "not-a-plugin",
        "#!/bin/sh\necho \"unknown command: $1\" >&2\nexit 3\n",
    );
    make_executable(&path);
    let spec = r#"kind: source
spec:
  name: broken
  registry: local
  native: true
  path: ./not-a-plugin
  tables: ['*']
  destinations: [out]
---
kind: destination
spec:
  name: out
  path: quarry/test
"#;
    let spec = work.write("spec.yml", spec);
    let run = work.quarry(&["sync", spec.to_str().unwrap()]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr
            .contains("plugin `broken` failed in load: the plugin exited before it listened; its last output: unknown command: serve"),
        "{run:?}"
    );
}

/// `quarry serve --network unix --address F` replaces a stale socket at F, never a file.
#[test]
fn serve_never_removes_a_file_that_is_not_a_socket() {
    let work = Workdir::new();
    let precious = work.write("precious.txt", "keep me\n");
    let run = work.quarry(&[
        "serve",
        "quarry/test",
        "--network",
        "unix",
        "--address",
        precious.to_str().expect("path"),
    ]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("a file that is not a socket is there"),
        "{run:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&precious).expect("still there"),
        "keep me\n"
    );
}
