//! Running the CLI from tests: a temporary working directory, a shared compile cache warmed once
//! (so parallel tests do not all compile the same components), and captured output.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;

pub const QUARRY: &str = env!("CARGO_BIN_EXE_quarry");

/// Where compiled components are cached for the whole test run.
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-component-cache")
}

/// The wasm build directory of the plugins that go with this `quarry` binary.
pub fn wasm_dir() -> PathBuf {
    let exe = Path::new(QUARRY);
    let profile = exe
        .parent()
        .and_then(Path::file_name)
        .expect("quarry lives in target/<profile>/");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("wasm32-wasip2")
        .join(profile)
}

pub fn hostile_plugin() -> PathBuf {
    wasm_dir().join("quarry_fixture_hostile.wasm")
}

pub fn store_plugin() -> PathBuf {
    wasm_dir().join("quarry_fixture_store.wasm")
}

pub fn transformer_fixture() -> PathBuf {
    wasm_dir().join("quarry_fixture_transformer.wasm")
}

/// Where `scripts/tools` installed the outside programs (CloudQuery's CLI and SDKs, oras).
/// Missing tools fail the test: CI installs them.
pub fn tools() -> PathBuf {
    let dir = std::env::var_os("QUARRY_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/quarry/tools")
        });
    assert!(
        dir.join("venv/bin/python").exists() && dir.join("node/node_modules").exists(),
        "the test tools are not installed in {}: run scripts/tools",
        dir.display()
    );
    dir
}

static WARM: Once = Once::new();

/// Compiles every plugin into the shared cache once, before the first test needs it.
pub fn warm() {
    WARM.call_once(|| {
        // Native plugins are executables, not components: there is nothing to compile.
        let first_party = quarry_registry::FIRST_PARTY
            .iter()
            .filter(|p| !p.native)
            .map(|p| format!("quarry/{}", p.name));
        let fixtures = [hostile_plugin(), store_plugin(), transformer_fixture()]
            .map(|p| p.display().to_string());
        for plugin in first_party.chain(fixtures) {
            let out = Command::new(QUARRY)
                .env("QUARRY_CACHE_DIR", shared_cache())
                .args(["plugin", "inspect", &plugin])
                .output()
                .expect("run quarry");
            assert!(
                out.status.success(),
                "`quarry plugin inspect {plugin}` failed (are the plugins built? run `cargo plugins`):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A temporary working directory to run `quarry` in.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Self {
        Workdir {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the file's directory");
        }
        std::fs::write(&path, text).expect("write spec");
        path
    }

    /// `quarry <args>` in this directory with the shared cache.
    pub fn quarry(&self, args: &[&str]) -> Run {
        self.quarry_with(args, &[])
    }

    pub fn quarry_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run(self.path(), args, env)
    }

    /// `quarry <args>` in another directory, with the shared cache.
    pub fn quarry_in(&self, cwd: &Path, args: &[&str]) -> Run {
        self.run(cwd, args, &[])
    }

    fn run(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        warm();
        let mut command = Command::new(QUARRY);
        command
            .current_dir(cwd)
            .env("QUARRY_CACHE_DIR", shared_cache())
            .args(args);
        for (k, v) in env {
            command.env(k, v);
        }
        let out = command.output().expect("run quarry");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Every batch of a Parquet file.
pub fn read_parquet(path: &Path) -> Vec<arrow_array::RecordBatch> {
    let file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("the Parquet file {}: {e}", path.display()));
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader")
        .collect::<Result<Vec<_>, _>>()
        .expect("batches")
}

/// Every file under `dir` whose name ends with `suffix`, sorted.
pub fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

/// A source document for the `store` fixture: one table, `items`, with these columns and rows
/// (YAML flow text), sent to destination `destination` (or several: `a, b`).
pub fn store_source(columns: &str, rows: &str, destination: &str) -> String {
    let plugin = store_plugin().display().to_string();
    format!(
        r#"kind: source
spec:
  name: src
  registry: local
  path: {plugin}
  tables: ['*']
  destinations: [{destination}]
  spec:
    tables:
      - name: items
        columns: {columns}
        rows: {rows}
"#
    )
}

/// A destination document named `out`: the file plugin writing a JSON-lines file per table under
/// `./out`, in append mode.
pub const JSON_FILES: &str = r#"---
kind: destination
spec:
  name: out
  path: quarry/file
  write_mode: append
  spec: { path: 'out/{{TABLE}}.{{FORMAT}}', format: json, no_rotate: true }
  permissions: { files: { ./out: write } }
"#;

/// `items` keyed on `id`, and two syncs' rows: the second changes 2 and 3, adds 4 and lacks 1.
pub const ITEMS: &str =
    "[{ name: id, type: int64, primary_key: true }, { name: name, type: utf8 }]";
pub const FIRST: &str = "[[1, a], [2, b], [3, c]]";
pub const SECOND: &str = "[[2, B], [3, C], [4, d]]";
/// `items` with a new nullable column, `note`: a safe migration.
pub const ITEMS_WITH_NOTE: &str = "[{ name: id, type: int64, primary_key: true }, { name: name, type: utf8 }, { name: note, type: utf8 }]";
/// `items` whose `name` becomes int64: a breaking migration.
pub const ITEMS_NAME_INT64: &str = "[{ name: id, type: int64, primary_key: true }, { name: name, type: int64 }, { name: note, type: utf8 }]";

/// Compares with the golden file `tests/ui/<name>` (`QUARRY_BLESS=1` rewrites it).
pub fn golden(actual: &str, name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/ui")
        .join(name);
    if std::env::var_os("QUARRY_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, format!("{}\n", actual.trim_end())).expect("bless");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (QUARRY_BLESS=1 writes it)", path.display()));
    assert_eq!(
        actual.trim_end(),
        expected.trim_end(),
        "{} differs",
        path.display()
    );
}

// Destinations read back, and servers and processes the tests share.

/// A schema for one test, dropped when the test ends.
pub struct Schema(pub String);

impl Schema {
    pub fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "quarry_e2e_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        psql(&format!("drop schema if exists {name} cascade"));
        Schema(name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc"])
            .arg(format!("drop schema if exists {} cascade", self.0))
            .output();
    }
}

/// Runs SQL with the `mariadb` client against the MariaDB on 127.0.0.1:3306 (root); its rows
/// tab-separated, without headers.
pub fn mariadb(sql: &str) -> String {
    let out = Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-u", "root", "-N", "-B", "-e", sql])
        .output()
        .expect("the mariadb client on PATH");
    assert!(
        out.status.success(),
        "mariadb -e {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// Runs `sql` with psql and returns its unaligned output.
pub fn psql(sql: &str) -> String {
    let out = Command::new("psql")
        .env("PGTZ", "UTC")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
        ])
        .arg(sql)
        .output()
        .expect("psql (PostgreSQL's client) on PATH");
    assert!(
        out.status.success(),
        "psql failed on {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The plugin's executable, built beside `quarry` (`cargo build -p quarry-plugin-duckdb`).
pub fn duckdb_plugin() -> PathBuf {
    let path = Path::new(QUARRY)
        .parent()
        .expect("target dir")
        .join("quarry-plugin-duckdb");
    assert!(
        path.exists(),
        "{} is missing: `cargo test --workspace` builds it (for the plugin's own CLI test), or `cargo build -p quarry-plugin-duckdb`",
        path.display()
    );
    path
}

/// A query's rows, tab-separated.
pub fn duckdb_query(db: &Path, sql: &str) -> String {
    let out = Command::new(duckdb_plugin())
        .args(["query", db.to_str().expect("path"), sql])
        .output()
        .expect("run quarry-plugin-duckdb query");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// A query's rows, tab-separated; blobs as hex, nulls as `NULL`.
pub fn sqlite_query(db: &Path, sql: &str) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    let mut statement = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = statement.column_count();
    let mut rows = statement.query([]).expect("query");
    let mut lines = Vec::new();
    while let Some(row) = rows.next().expect("row") {
        let values: Vec<String> = (0..n)
            .map(|i| match row.get_ref(i).expect("value") {
                ValueRef::Null => "NULL".into(),
                ValueRef::Integer(v) => v.to_string(),
                ValueRef::Real(v) => v.to_string(),
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                ValueRef::Blob(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
            })
            .collect();
        lines.push(values.join("\t"));
    }
    lines.join("\n")
}

/// An executable in `work` that serves `plugin` the way CloudQuery's CLI starts a plugin:
/// `<file> serve --network ... --address ...`.
pub fn served(work: &Workdir, file: &str, plugin: &str, grants: &[&str]) -> PathBuf {
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = serve ] && shift\nexec '{QUARRY}' serve '{plugin}' {} \"$@\"\n",
        grants.join(" ")
    );
    let path = work.write(file, &script);
    make_executable(&path);
    path
}

pub fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The `test` source's incremental table into PostgreSQL at `connection`, cursors in the same
/// database; `rows` rows per run, one batch per 1,000.
pub fn increments_into_postgres(connection: &str, schema: &str, port: u16, rows: u64) -> String {
    format!(
        r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_increments]
  destinations: [pg]
  backend_options:
    table_name: cq_state
    connection: "@@plugins.pg.connection"
  spec: {{ num_rows: {rows}, batch_size: 1000 }}
---
kind: destination
spec:
  name: pg
  path: quarry/postgresql
  write_mode: overwrite
  batch_size: 1000
  spec:
    connection_string: {connection}
    schema: {schema}
  permissions: {{ network: ['127.0.0.1:{port}'] }}
"#
    )
}

/// Runs `quarry sync spec.yml` in `w`, saving state every 50 ms into `{schema}.cq_state`, kills
/// it with `kill -9` once a cursor was saved, and returns the cursor it left.
pub fn sync_killed_after_a_checkpoint(w: &Workdir, schema: &str) -> u64 {
    let mut child = Command::new(QUARRY)
        .current_dir(w.path())
        .env("QUARRY_CACHE_DIR", shared_cache())
        .env("QUARRY_STATE_INTERVAL", "0.05")
        .args(["sync", "spec.yml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start quarry");
    let cursor = || -> u64 {
        if psql(&format!(
            "select to_regclass('{schema}.cq_state') is not null"
        )) != "t"
        {
            return 0;
        }
        psql(&format!(
            "select coalesce(max(value::bigint), 0) from {schema}.cq_state"
        ))
        .parse()
        .unwrap_or(0)
    };
    let started = Instant::now();
    while cursor() == 0 {
        assert!(started.elapsed().as_secs() < 120, "no cursor was saved");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    cursor()
}

/// A PostgreSQL cluster of its own for one test, on a free port, removed when dropped.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Cluster {
    /// Creates and starts a cluster with the default settings.
    pub fn start() -> Cluster {
        Cluster::start_with(&[], "", None)
    }

    /// Creates and starts a cluster: `files` are copied into its directory (`{dir}` in `conf`),
    /// `conf` lines go into its postgresql.conf, and `hba`, if given, replaces its pg_hba.conf.
    pub fn start_with(files: &[&Path], conf: &str, hba: Option<&str>) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        for file in files {
            let to = dir.path().join(file.file_name().expect("a file name"));
            std::fs::copy(file, &to).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            // PostgreSQL reads a key only if no one else can.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Cluster { dir, port };
        as_postgres(
            &cluster.dir,
            &["chown", "-R", "postgres:postgres", "."],
            true,
        );
        cluster.pg(&["initdb", "-A", "trust", "-U", "postgres", "-D", "data"]);
        let conf_path = cluster.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
        let at = cluster.dir.path().display().to_string();
        text.push_str(&format!(
            "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{at}'\nfsync = off\n{}\n",
            cluster.port,
            conf.replace("{dir}", &at)
        ));
        std::fs::write(&conf_path, text).expect("write postgresql.conf");
        if let Some(hba) = hba {
            std::fs::write(cluster.data().join("pg_hba.conf"), hba).expect("write pg_hba.conf");
        }
        cluster.pg_ctl("start");
        cluster
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `pg_ctl ACTION` on this cluster, waiting for it to finish.
    pub fn pg_ctl(&self, action: &str) {
        self.pg(&[
            "pg_ctl", "-D", "data", "-m", "fast", "-w", "-l", "log", action,
        ]);
    }

    fn pg(&self, args: &[&str]) {
        as_postgres(&self.dir, args, false);
    }

    /// Runs `sql` in database `postgres` with psql.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .env("PGTZ", "UTC")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-Atc",
            ])
            .arg(sql)
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .current_dir(self.dir.path())
            .args([
                "-u",
                "postgres",
                "--",
                "pg_ctl",
                "-D",
                "data",
                "-m",
                "immediate",
                "stop",
            ])
            .output();
        let _ = Command::new("pg_ctl")
            .current_dir(self.dir.path())
            .args(["-D", "data", "-m", "immediate", "stop"])
            .output();
    }
}

/// Runs `args` in `dir`, as the `postgres` user when this process is root (PostgreSQL refuses
/// to run as root); `root_only` commands are skipped when it is not.
fn as_postgres(dir: &tempfile::TempDir, args: &[&str], root_only: bool) {
    let root = unsafe { libc::geteuid() } == 0;
    let mut command = if root && !root_only {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).args(args);
        c
    } else if root_only && !root {
        return;
    } else {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    };
    let out = command
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}{}\n--- the server's log\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
    );
}

/// `quarry-fixture-http` serving a temporary directory (`dir`) on loopback, logging each request
/// to `log`; killed when dropped.
pub struct FileServer {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl FileServer {
    /// Starts the server, each answer delayed by `latency_ms`.
    pub fn start(latency_ms: u64) -> Self {
        let binary = Path::new(QUARRY).with_file_name("quarry-fixture-http");
        assert!(
            binary.exists(),
            "{} is missing: `cargo test --workspace` builds it, or `cargo build -p quarry-fixture-http`",
            binary.display()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("requests.log");
        let mut child = Command::new(&binary)
            .arg("--dir")
            .arg(dir.path())
            .arg("--log")
            .arg(&log)
            .args(["--latency-ms", &latency_ms.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start quarry-fixture-http");
        let address = listening_address(&mut child);
        FileServer {
            child,
            address,
            dir,
            log,
        }
    }
}

/// The `127.0.0.1:PORT` of a test server that prints `listening on 127.0.0.1:PORT` first.
pub fn listening_address(child: &mut std::process::Child) -> String {
    use std::io::{BufRead, BufReader};
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the server's address");
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line `{line}`"))
        .to_string()
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
