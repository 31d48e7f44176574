//! `quarry bench`: syncs N rows of the `test` source's `test_rows` into the `file` destination
//! (Parquet), into the `test` destination (which decodes and discards), into DuckDB, SQLite and
//! the local PostgreSQL (append, and overwrite of rows that exist), each as a child
//! `quarry sync` process, and reports the median rows/s, MB/s of Arrow IPC out of the source, and
//! the peak RSS of the whole process. Each scenario runs once to warm the compile cache first.
//! One scenario syncs the `hackernews` source from the fixture server (`quarry-fixture-http`,
//! built beside the CLI) with 50 ms of latency per request and `item_concurrency: 100`: its
//! rows/s are items/s, bounded by 100 / 50 ms = 2,000.
//! The `rest children` scenario reads 1,000 ids (one page) and each id's item (a child resource,
//! 10 requests in flight) from the same server: at most 10 / 50 ms = 200 items/s, its rows/s
//! twice that (ids and items). `rest pages` reads 100 pages of 10 items by page number, the page
//! count in the first answer, 10 pages in flight: at most 2,000 items/s.
//! One scenario puts the `basic` transformer between `test` and Parquet, to price that hop.
//! The Python and JavaScript example sources (built by `scripts/plugins`) produce the same
//! `test_rows` into Parquet and into the discarding destination, next to the Rust `test` source;
//! `first compile` times the first use of each of those three components (an empty compile
//! cache).
//! One scenario runs the same `test` source through `quarry serve` over gRPC (a Unix socket), to
//! price the transport against the in-process component. The peak RSS is the kernel's account of
//! the `quarry sync` child, which takes in the native plugin processes it started and reaped.
//!
//! The `postgresql` source scenarios read N rows of `test_rows` that the bench first loads into
//! the local PostgreSQL (schema `quarry_bench_source`, keyed on `id`, analyzed): whole, and cut
//! into two key ranges read at once; next to them, `psql`'s `\copy ... TO (FORMAT binary)` of
//! the same columns into /dev/null, the limit of reading that table.
//!
//! The `mysql` source scenarios read N rows made by SQL in the local MariaDB (database
//! `quarry_bench_source`) into the discarding destination and into Parquet, next to the
//! `mariadb` client selecting the same rows into /dev/null. After `test -> mysql`, the rows it
//! wrote are exported once (`SELECT ... INTO OUTFILE`) and loaded by the `mariadb` client with
//! `LOAD DATA LOCAL INFILE` into an empty copy of the table: the limit of writing them.
//!
//! The distribution scenarios (`--only oci`, or all) start Debian's `docker-registry` on a free
//! loopback port, push the `test` plugin padded to 10 MB with a custom section, and time, as wall
//! clock of child processes: `quarry plugin pull` into an empty store; the first sync with it
//! (1 row; pull + verify + compile, empty store and compile cache); and a cached sync of 1 row.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;

use super::{CliError, Exit};

mod distribution;
mod report;

use report::{LIMIT_DUCKDB, LIMIT_NATIVE, LIMIT_PSQL_IN, LIMIT_SQLITE, Report, STARTUP};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Rows of `test_rows` per run.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Measured runs per scenario (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Rows per batch the source emits.
    #[arg(long, default_value_t = 10_000)]
    pub batch_size: u64,
    /// Only the scenarios whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Also write the results as Markdown to this file (`docs/benchmarks.md`): the machine, the
    /// command, every median, and the performance targets computed from them.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Internal: run only the SQLite limit on this bench working directory and print its
    /// seconds, one run a line (a process of its own, so that holding the rows in memory does
    /// not count in the peak RSS of the `quarry sync` children forked later).
    #[arg(long, hide = true, value_name = "DIR")]
    pub sqlite_limit: Option<PathBuf>,
}

struct Scenario {
    name: &'static str,
    source: &'static str,
    destination: &'static str,
}

/// The `test` source as a component in this process.
const IN_PROCESS: &str = "  path: quarry/test\n  tables: [test_rows]\n  spec: { num_rows: {{ROWS}}, batch_size: {{BATCH}} }\n";
/// The same source with 16 tables of that many rows each (`test_rows`, `test_rows_2`, ...), in
/// four lanes (`workers: 4`), each into an instance of its own of the destination: on 2 cores,
/// four lanes keep both busy where two leave gaps (a lane's source waits for its destination).
const SIXTEEN_TABLES: &str = "  path: quarry/test\n  tables: [\"test_rows*\"]\n  workers: 4\n  spec: { num_rows: {{ROWS}}, num_tables: 16, batch_size: {{BATCH}} }\n";
/// The `test` source served by `quarry serve`, started as a local executable.
const OVER_GRPC: &str = "  registry: local\n  path: ./served-test\n  native: true\n  tables: [test_rows]\n  spec: { num_rows: {{ROWS}}, batch_size: {{BATCH}} }\n";
/// The example source written in Python (examples/python-source, built by `scripts/plugins`
/// beside the Rust components), producing the same `test_rows`.
const PYTHON: &str = "  registry: local\n  path: {{PYTHON}}\n  tables: [test_rows]\n  spec: { num_rows: {{ROWS}}, batch_size: {{BATCH}} }\n";
/// The example source written in JavaScript (examples/js-source), producing the same `test_rows`.
const JAVASCRIPT: &str = "  registry: local\n  path: {{JS}}\n  tables: [test_rows]\n  spec: { num_rows: {{ROWS}}, batch_size: {{BATCH}} }\n";
/// The `hackernews` source against the fixture server, every item from the first (no cursor:
/// the destination keeps no state).
const HACKERNEWS: &str = "  path: quarry/hackernews\n  tables: [hackernews_items]\n  spec: { item_concurrency: 100, base_url: \"http://{{HN}}\" }\n  permissions: { network: [\"{{HN}}\"] }\n";
/// The `postgresql` source reading the table [`load_pg_source`] fills, whole (no table is as
/// large as `split_rows`).
const PG_SOURCE: &str = "  path: quarry/postgresql\n  tables: [test_rows]\n  spec:\n    connection_string: postgres://postgres@127.0.0.1:5432/test\n    tables: [quarry_bench_source.test_rows]\n    split_rows: 1000000000000\n  permissions:\n    network: [\"127.0.0.1:5432\"]\n";
/// The same, cut into two ranges of its key read at once (`split_rows` a little under half the
/// rows, as PostgreSQL's estimate of them may fall short).
const PG_SOURCE_SPLIT: &str = "  path: quarry/postgresql\n  tables: [test_rows]\n  spec:\n    connection_string: postgres://postgres@127.0.0.1:5432/test\n    tables: [quarry_bench_source.test_rows]\n    split_rows: {{HALF}}\n  permissions:\n    network: [\"127.0.0.1:5432\"]\n";
/// The schema [`load_pg_source`] fills.
const PG_SOURCE_SCHEMA: &str = "quarry_bench_source";
/// The `mysql` source reading the table [`load_mysql_source`] fills in the local MariaDB.
const MYSQL_SOURCE: &str = "  path: quarry/mysql\n  tables: [test_rows]\n  spec:\n    connection_string: mysql://root@127.0.0.1:3306/quarry_bench_source\n  permissions:\n    network: [\"127.0.0.1:3306\"]\n";
/// The same, the table read as two key ranges at once (`split_rows` a quarter of the rows, as
/// InnoDB's estimate of them may fall well short; `concurrency` caps the ranges at two).
const MYSQL_SOURCE_SPLIT: &str = "  path: quarry/mysql\n  tables: [test_rows]\n  spec:\n    connection_string: mysql://root@127.0.0.1:3306/quarry_bench_source\n    split_rows: {{QUARTER}}\n    concurrency: 2\n  permissions:\n    network: [\"127.0.0.1:3306\"]\n";
/// The database [`load_mysql_source`] fills.
const MYSQL_SOURCE_DATABASE: &str = "quarry_bench_source";

/// The columns of `test_rows` (not Quarry's own), as `psql`'s copy reads them.
const TEST_ROWS_COLUMNS: &str = "id, name, value, flag, created_at, payload, tags";

/// The `rest` source against the same fixture server: a list of [`REST_ITEMS`] ids (one page),
/// and each id's item as a child resource, 10 requests at once (`concurrency`). Its rows are the
/// ids and the items, so items/s are half its rows/s.
const REST: &str = "  path: quarry/rest\n  tables: [\"*\"]\n  spec:\n    concurrency: 10\n    client: { base_url: \"http://{{HN}}\" }\n    resources:\n      - { name: ids, primary_key: id, endpoint: rest/ids.json }\n      - name: items\n        primary_key: id\n        endpoint:\n          path: \"v0/item/{id}.json\"\n          params: { id: { type: resolve, resource: ids, field: id } }\n  permissions: { network: [\"{{HN}}\"] }\n";
const REST_ITEMS: u64 = 1_000;
/// The `rest` source reading [`REST_PAGES`] pages of [`REST_PAGE_ITEMS`] items by page number,
/// the page count in the first answer, so 10 pages are in flight at once.
const REST_PAGED: &str = "  path: quarry/rest\n  tables: [\"*\"]\n  spec:\n    concurrency: 10\n    client: { base_url: \"http://{{HN}}\" }\n    resources:\n      - name: paged\n        primary_key: id\n        endpoint:\n          path: rest/pages.json\n          data_selector: items\n          paginator: { type: page_number, total_path: pages }\n  permissions: { network: [\"{{HN}}\"] }\n";
const REST_PAGES: u64 = 100;
const REST_PAGE_ITEMS: u64 = 10;

/// Items served to the `hackernews` scenario, and the latency of each answer.
const HN_ITEMS: u64 = 10_000;
const HN_LATENCY_MS: u64 = 50;

/// The `test` destination, which decodes each batch and discards it.
const DISCARD: &str = "  path: quarry/test\n  write_mode: append\n";
const PARQUET: &str = "  path: quarry/file\n  write_mode: append\n  spec:\n    path: out/{{TABLE}}/{{UUID}}.{{FORMAT}}\n    format: parquet\n  permissions:\n    files: { ./out: write }\n";

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "test -> file (parquet)",
        source: IN_PROCESS,
        destination: PARQUET,
    },
    Scenario {
        name: report::SIXTEEN_TABLES,
        source: SIXTEEN_TABLES,
        destination: PARQUET,
    },
    // The same through a transformer (each batch crosses into and out of `quarry/basic`): the
    // price of the hop.
    Scenario {
        name: "test -> basic -> file (parquet)",
        source: IN_PROCESS,
        destination: "  path: quarry/file\n  write_mode: append\n  transformers: [basic]\n  spec:\n    path: out/{{TABLE}}/{{UUID}}.{{FORMAT}}\n    format: parquet\n  permissions:\n    files: { ./out: write }\n---\nkind: transformer\nspec:\n  name: basic\n  path: quarry/basic\n  spec:\n    transformations:\n      - { kind: remove_columns, columns: [payload] }\n      - { kind: add_current_timestamp_column, name: loaded_at }\n",
    },
    Scenario {
        name: "test (grpc) -> file (parquet)",
        source: OVER_GRPC,
        destination: PARQUET,
    },
    Scenario {
        name: "python -> file (parquet)",
        source: PYTHON,
        destination: PARQUET,
    },
    Scenario {
        name: "python -> test (discard)",
        source: PYTHON,
        destination: DISCARD,
    },
    Scenario {
        name: "javascript -> file (parquet)",
        source: JAVASCRIPT,
        destination: PARQUET,
    },
    Scenario {
        name: "javascript -> test (discard)",
        source: JAVASCRIPT,
        destination: DISCARD,
    },
    Scenario {
        name: "test -> test (discard)",
        source: IN_PROCESS,
        destination: DISCARD,
    },
    Scenario {
        name: "hackernews (50 ms) -> discard",
        source: HACKERNEWS,
        destination: DISCARD,
    },
    Scenario {
        name: "rest children (50 ms) -> discard",
        source: REST,
        destination: DISCARD,
    },
    Scenario {
        name: "rest pages (50 ms) -> discard",
        source: REST_PAGED,
        destination: DISCARD,
    },
    // DuckDB, a native plugin over gRPC, into a file in the working directory that the runs
    // share: append grows it, overwrite replaces every row.
    Scenario {
        name: "test -> duckdb (append)",
        source: IN_PROCESS,
        destination: "  path: quarry/duckdb\n  write_mode: append\n  spec: { connection_string: append.db }\n",
    },
    Scenario {
        name: "test -> duckdb (overwrite)",
        source: IN_PROCESS,
        destination: "  path: quarry/duckdb\n  write_mode: overwrite\n  spec: { connection_string: overwrite.db }\n",
    },
    // SQLite, compiled into a sandboxed component, in a granted directory the runs share.
    Scenario {
        name: "test -> sqlite (append)",
        source: IN_PROCESS,
        destination: "  path: quarry/sqlite\n  write_mode: append\n  spec: { connection_string: ./lite/append.db }\n  permissions:\n    files: { ./lite: write }\n",
    },
    Scenario {
        name: "test -> sqlite (overwrite)",
        source: IN_PROCESS,
        destination: "  path: quarry/sqlite\n  write_mode: overwrite\n  spec: { connection_string: ./lite/overwrite.db }\n  permissions:\n    files: { ./lite: write }\n",
    },
    // The local PostgreSQL (127.0.0.1:5432, database `test`); each scenario in its own schema,
    // which keeps the previous runs' rows: append grows, overwrite updates every row in place.
    Scenario {
        name: "test -> postgresql (append)",
        source: IN_PROCESS,
        destination: "  path: quarry/postgresql\n  write_mode: append\n  spec:\n    connection_string: postgres://postgres@127.0.0.1:5432/test\n    schema: quarry_bench_append\n  permissions:\n    network: [\"127.0.0.1:5432\"]\n",
    },
    Scenario {
        name: "test -> postgresql (overwrite)",
        source: IN_PROCESS,
        destination: "  path: quarry/postgresql\n  write_mode: overwrite\n  spec:\n    connection_string: postgres://postgres@127.0.0.1:5432/test\n    schema: quarry_bench_overwrite\n  permissions:\n    network: [\"127.0.0.1:5432\"]\n",
    },
    Scenario {
        name: "postgresql -> test (discard)",
        source: PG_SOURCE,
        destination: DISCARD,
    },
    Scenario {
        name: "postgresql (2 ranges) -> test (discard)",
        source: PG_SOURCE_SPLIT,
        destination: DISCARD,
    },
    Scenario {
        name: "postgresql -> file (parquet)",
        source: PG_SOURCE,
        destination: PARQUET,
    },
    Scenario {
        name: "postgresql -> postgresql (append)",
        source: PG_SOURCE,
        destination: "  path: quarry/postgresql\n  write_mode: append\n  spec:\n    connection_string: postgres://postgres@127.0.0.1:5432/test\n    schema: quarry_bench_copy\n  permissions:\n    network: [\"127.0.0.1:5432\"]\n",
    },
    // The local MariaDB (127.0.0.1:3306, root), database `quarry_bench_mysql`, which keeps the
    // previous runs' rows.
    Scenario {
        name: "test -> mysql (append)",
        source: IN_PROCESS,
        destination: "  path: quarry/mysql\n  write_mode: append\n  spec:\n    connection_string: mysql://root@127.0.0.1:3306/quarry_bench_mysql\n  permissions:\n    network: [\"127.0.0.1:3306\"]\n",
    },
    Scenario {
        name: "mysql -> test (discard)",
        source: MYSQL_SOURCE,
        destination: DISCARD,
    },
    Scenario {
        name: "mysql (2 ranges) -> test (discard)",
        source: MYSQL_SOURCE_SPLIT,
        destination: DISCARD,
    },
    Scenario {
        name: "mysql -> file (parquet)",
        source: MYSQL_SOURCE,
        destination: PARQUET,
    },
];

struct Sample {
    /// The sync's own duration, from its summary.
    seconds: f64,
    /// The child process's, start to exit.
    wall_seconds: f64,
    ipc_bytes: u64,
    rows: u64,
    peak_rss_kib: u64,
    /// User and system CPU time of the process tree, start to exit.
    cpu_seconds: f64,
}

pub async fn run(args: BenchArgs) -> Result<Exit, CliError> {
    if let Some(work) = &args.sqlite_limit {
        let seconds = rusqlite_inserts(work, &args).map_err(anyhow::Error::msg)?;
        for s in seconds {
            println!("{s}");
        }
        return Ok(Exit::Ok);
    }
    let exe = std::env::current_exe().context("cannot find the quarry executable to run")?;
    let work = tempfile_dir().context("cannot create a working directory")?;
    write_served_test(&exe, &work)?;
    println!(
        "quarry bench: {} rows of test_rows, batch_size {} ({HN_ITEMS} items for hackernews), \
         median of {} runs",
        args.rows, args.batch_size, args.runs
    );
    Report::header();
    let mut report = Report::default();
    let mut exit = Exit::Ok;
    let mut hn_server: Option<HnServer> = None;
    let selected: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| {
            args.only
                .as_ref()
                .is_none_or(|o| s.name.contains(o.as_str()))
        })
        .collect();
    let mut pg_loaded = None;
    let mut mysql_loaded = None;
    for scenario in selected {
        if scenario.name.starts_with("mysql") && mysql_loaded.is_none() {
            let loaded = load_mysql_source(&args);
            if let Err(e) = &loaded {
                eprintln!("error: loading {MYSQL_SOURCE_DATABASE}.test_rows: {e}");
                exit = Exit::Failure;
            }
            mysql_loaded = Some(loaded.is_ok());
        }
        if scenario.name.starts_with("mysql") && mysql_loaded != Some(true) {
            continue;
        }
        if scenario.name.starts_with("postgresql") && pg_loaded.is_none() {
            let loaded = load_pg_source(&exe, &work, &args);
            if let Err(e) = &loaded {
                eprintln!("error: loading {PG_SOURCE_SCHEMA}.test_rows: {e}");
                exit = Exit::Failure;
            }
            pg_loaded = Some(loaded.is_ok());
        }
        if scenario.name.starts_with("postgresql") && pg_loaded != Some(true) {
            continue;
        }
        // Appends start from nothing, whatever earlier bench runs left.
        let emptied = match scenario.name {
            "test -> postgresql (append)" => {
                psql("drop schema if exists quarry_bench_append cascade")
            }
            "test -> mysql (append)" => mariadb("drop database if exists quarry_bench_mysql"),
            _ => Ok(()),
        };
        if let Err(e) = emptied {
            eprintln!("error: {}: {e}", scenario.name);
            exit = Exit::Failure;
            continue;
        }
        let spec_path = match write_spec(scenario, &args, &exe, &work, &mut hn_server) {
            Ok(path) => path,
            Err(e) => {
                eprintln!("error: {}: {e}", scenario.name);
                exit = Exit::Failure;
                continue;
            }
        };
        let mut samples = Vec::new();
        for i in 0..=args.runs {
            let _ = std::fs::remove_dir_all(work.join("out"));
            // Each overwrite leaves a dead version of every row, which autovacuum would clear
            // (it is off on the test server): each run starts from a vacuumed table, as a
            // scheduled sync would. (The first run of all finds no table: nothing to vacuum.)
            if scenario.name == "test -> postgresql (overwrite)" {
                let _ = psql("vacuum quarry_bench_overwrite.test_rows");
            }
            match run_once(&exe, &work, &spec_path) {
                Ok(sample) if i > 0 => samples.push(sample),
                Ok(_) => {}
                Err(e) => {
                    eprintln!("error: {}: {e}", scenario.name);
                    exit = Exit::Failure;
                    break;
                }
            }
        }
        let complete = samples.len() == args.runs;
        report.scenario(scenario.name, &samples);
        // The limit of a destination, measured right after it on the rows it wrote, into a
        // table that grows over as many runs as the scenario's did.
        if !complete {
            continue;
        }
        let limits = match scenario.name {
            "test -> file (parquet)" => vec![
                (LIMIT_DUCKDB, duckdb_import(&exe, &work, &args)),
                (LIMIT_NATIVE, native_parquet(&exe, &work, &args)),
            ],
            "test -> postgresql (append)" => vec![(LIMIT_PSQL_IN, psql_copy_in(&work, &args))],
            "test -> sqlite (append)" => vec![(LIMIT_SQLITE, sqlite_limit(&exe, &work, &args))],
            "test -> mysql (append)" => vec![(
                "limit: mariadb load data local infile",
                mariadb_load_data(&args, &work),
            )],
            _ => Vec::new(),
        };
        for (name, measured) in limits {
            match measured {
                Ok(seconds) => report.limit(name, args.rows, &seconds),
                Err(e) => {
                    eprintln!("error: {name}: {e}");
                    exit = Exit::Failure;
                }
            }
        }
    }
    if mysql_loaded == Some(true) {
        match mariadb_select_out(&args) {
            Ok(seconds) => report.limit("limit: mariadb select to /dev/null", args.rows, &seconds),
            Err(e) => {
                eprintln!("error: mariadb select: {e}");
                exit = Exit::Failure;
            }
        }
    }
    if pg_loaded == Some(true) {
        match psql_copy_out(&args) {
            Ok(seconds) => report.limit("limit: psql \\copy to (binary)", args.rows, &seconds),
            Err(e) => {
                eprintln!("error: psql \\copy: {e}");
                exit = Exit::Failure;
            }
        }
    }
    drop(hn_server);
    if args
        .only
        .as_ref()
        .is_none_or(|o| STARTUP.contains(o.as_str()))
        && let Err(e) = startup(&exe, &work, &args, &mut report)
    {
        eprintln!("error: {STARTUP}: {e}");
        exit = Exit::Failure;
    }
    if args
        .only
        .as_ref()
        .is_none_or(|o| "first compile".contains(o.as_str()))
        && let Err(e) = first_compiles(&exe, &work, &mut report)
    {
        eprintln!("error: first compile: {e}");
        exit = Exit::Failure;
    }
    if args
        .only
        .as_ref()
        .is_none_or(|o| "oci distribution".contains(o.as_str()))
        && let Err(e) = distribution::run(&exe, &work, args.runs, &mut report)
    {
        eprintln!("error: oci distribution: {e}");
        exit = Exit::Failure;
    }
    let _ = std::fs::remove_dir_all(&work);
    if let Some(path) = &args.report {
        let command = std::iter::once("quarry".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" ");
        let markdown = report.markdown(&report::machine(&exe), &command, args.rows, args.runs);
        std::fs::write(path, markdown)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    Ok(exit)
}

/// Runs `sql` with `psql` against the local PostgreSQL.
fn psql(sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
        ])
        .arg(sql)
        .output()
        .map_err(|e| format!("cannot run psql (PostgreSQL's client): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "psql -c {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Runs `sql` with the `mariadb` client against the local MariaDB, its output thrown away.
fn mariadb(sql: &str) -> Result<(), String> {
    let out = Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "--local-infile=1",
            "-N",
            "-B",
            "-e",
        ])
        .arg(sql)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run mariadb (MariaDB's client): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mariadb -e {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Fills the local MariaDB's `quarry_bench_source.test_rows` with the run's rows, the values of
/// the `test` source's `test_rows` made by SQL (MariaDB's sequence engine), keyed on `id`.
fn load_mysql_source(args: &BenchArgs) -> Result<(), String> {
    let db = MYSQL_SOURCE_DATABASE;
    mariadb(&format!(
        "drop database if exists {db}; create database {db};
         create table {db}.test_rows (id bigint primary key, name varchar(16), value double,
           flag boolean, created_at datetime(6), payload text, tags json);
         insert into {db}.test_rows select seq, concat('name_', lpad(seq, 11, '0')),
           (seq % 100003) / 7, seq % 3 = 0,
           timestamp '2024-01-01 00:00:00' + interval seq second + interval (seq % 1000) microsecond,
           concat('{{\"id\":', seq, ',\"text\":\"', repeat('x', 80), '\"}}'),
           json_array(concat('a', seq % 5), concat('b', seq % 50), concat('c', seq % 500))
           from {db}.seq_1_to_{};
         analyze table {db}.test_rows",
        args.rows.max(1)
    ))
}

/// Wall seconds of `run`, `runs` times after one warm-up, as the scenarios are measured.
fn limit_runs(
    runs: usize,
    mut run: impl FnMut() -> Result<(), String>,
) -> Result<Vec<f64>, String> {
    let mut seconds = Vec::new();
    for i in 0..=runs {
        let started = Instant::now();
        run()?;
        if i > 0 {
            seconds.push(started.elapsed().as_secs_f64());
        }
    }
    Ok(seconds)
}

/// The `mariadb` client reading the same rows over the text protocol into /dev/null: what the
/// server hands out to a client that does nothing with them.
fn mariadb_select_out(args: &BenchArgs) -> Result<Vec<f64>, String> {
    limit_runs(args.runs, || {
        mariadb(&format!("select * from {MYSQL_SOURCE_DATABASE}.test_rows"))
    })
}

/// `LOAD DATA LOCAL INFILE` by the `mariadb` client of N rows `test -> mysql` wrote (exported
/// once by the server into a file; the bench runs as a user who can read it) into a table like
/// theirs, appended to over as many runs: how fast the server takes the rows in its own
/// bulk-load format.
fn mariadb_load_data(args: &BenchArgs, work: &Path) -> Result<Vec<f64>, String> {
    let db = "quarry_bench_mysql";
    let dir = work.join("mysql-export");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // The server, running as another user, writes the file.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join("test_rows.tsv");
    let file = file
        .to_str()
        .ok_or("a working directory that is not UTF-8")?;
    let _ = std::fs::remove_file(file);
    mariadb(&format!(
        "select * from {db}.test_rows limit {} into outfile '{file}'",
        args.rows
    ))?;
    mariadb(&format!(
        "drop table if exists {db}.load_limit; create table {db}.load_limit like {db}.test_rows"
    ))?;
    let seconds = limit_runs(args.runs, || {
        mariadb(&format!(
            "load data local infile '{file}' into table {db}.load_limit"
        ))
    })?;
    mariadb(&format!("drop table {db}.load_limit"))?;
    let _ = std::fs::remove_file(file);
    Ok(seconds)
}

/// `psql`'s `\copy ... from` in the binary format of N rows `test -> postgresql (append)` wrote
/// (copied out once into a file) into a table like theirs, with its keys and indexes, appended
/// to over as many runs: PostgreSQL taking the rows in its own bulk format.
fn psql_copy_in(work: &Path, args: &BenchArgs) -> Result<Vec<f64>, String> {
    let table = "quarry_bench_append.test_rows";
    let limit = "quarry_bench_append.copy_limit";
    let file = work.join("test_rows.pgcopy");
    let file = file
        .to_str()
        .ok_or("a working directory that is not UTF-8")?;
    psql(&format!(
        "\\copy (select * from {table} limit {}) to '{file}' with (format binary)",
        args.rows
    ))?;
    psql(&format!(
        "drop table if exists {limit}; create table {limit} (like {table} including all)"
    ))?;
    let seconds = limit_runs(args.runs, || {
        psql(&format!(
            "\\copy {limit} from '{file}' with (format binary)"
        ))
    })?;
    psql(&format!("drop table {limit}"))?;
    let _ = std::fs::remove_file(file);
    Ok(seconds)
}

/// DuckDB importing the Parquet files `test -> file (parquet)` wrote (`insert into ... select *
/// from read_parquet(...)` by `quarry-plugin-duckdb exec`, the DuckDB library the destination
/// links), into one table over as many runs as the DuckDB append scenario's.
fn duckdb_import(exe: &Path, work: &Path, args: &BenchArgs) -> Result<Vec<f64>, String> {
    let duckdb = exe.with_file_name("quarry-plugin-duckdb");
    if !duckdb.is_file() {
        return Err(format!(
            "{} is missing; build it with `cargo build -p quarry-plugin-duckdb`",
            duckdb.display()
        ));
    }
    let parquet = format!(
        "read_parquet('{}')",
        work.join("out/test_rows/*.parquet").display()
    );
    let db = work.join("import-limit.duckdb");
    let exec = |sql: &str| {
        let out = Command::new(&duckdb)
            .arg("exec")
            .arg(&db)
            .arg(sql)
            .output()
            .map_err(|e| format!("cannot start {}: {e}", duckdb.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    };
    let _ = std::fs::remove_file(&db);
    exec(&format!(
        "create table test_rows as select * from {parquet} limit 0"
    ))?;
    let seconds = limit_runs(args.runs, || {
        exec(&format!("insert into test_rows select * from {parquet}"))
    })?;
    let _ = std::fs::remove_file(&db);
    let _ = std::fs::remove_file(db.with_extension("duckdb.wal"));
    Ok(seconds)
}

/// [`rusqlite_inserts`] in a `quarry bench --sqlite-limit` child: a kernel counts the peak RSS
/// of a process that forked a child into the child's, so the bench itself stays small.
fn sqlite_limit(exe: &Path, work: &Path, args: &BenchArgs) -> Result<Vec<f64>, String> {
    let out = Command::new(exe)
        .args(["bench", "--rows", &args.rows.to_string()])
        .args(["--runs", &args.runs.to_string()])
        .arg("--sqlite-limit")
        .arg(work)
        .output()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse().map_err(|_| format!("not seconds: {l}")))
        .collect()
}

/// A native, in-process rusqlite loop inserting N rows `test -> sqlite (append)` wrote (read
/// back into memory first) into a new database with the same tables and indexes, appended to
/// over as many runs: one prepared `INSERT` per row, a transaction per run, the page cache and
/// locking the `sqlite` plugin sets.
fn rusqlite_inserts(work: &Path, args: &BenchArgs) -> Result<Vec<f64>, String> {
    use rusqlite::types::Value;
    let error = |e: rusqlite::Error| e.to_string();
    let written = rusqlite::Connection::open(work.join("lite/append.db")).map_err(error)?;
    let schema: Vec<String> = written
        .prepare(
            "select sql from sqlite_master where tbl_name = 'test_rows' and sql is not null \
             order by type desc",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(error)?;
    let mut select = written
        .prepare(&format!("select * from test_rows limit {}", args.rows))
        .map_err(error)?;
    let columns = select.column_count();
    let rows: Vec<Vec<Value>> = select
        .query_map([], |r| (0..columns).map(|i| r.get::<_, Value>(i)).collect())
        .and_then(Iterator::collect)
        .map_err(error)?;
    drop(select);
    drop(written);
    let path = work.join("lite/limit.db");
    let _ = std::fs::remove_file(&path);
    let mut db = rusqlite::Connection::open(&path).map_err(error)?;
    db.execute_batch("PRAGMA locking_mode = EXCLUSIVE; PRAGMA cache_size = -65536;")
        .map_err(error)?;
    for sql in &schema {
        db.execute_batch(sql).map_err(error)?;
    }
    let insert = format!(
        "insert into test_rows values ({})",
        vec!["?"; columns].join(", ")
    );
    let seconds = limit_runs(args.runs, || {
        let tx = db.transaction().map_err(error)?;
        {
            let mut insert = tx.prepare_cached(&insert).map_err(error)?;
            for row in &rows {
                insert
                    .execute(rusqlite::params_from_iter(row.iter()))
                    .map_err(error)?;
            }
        }
        tx.commit().map_err(error)
    })?;
    drop(db);
    let _ = std::fs::remove_file(&path);
    Ok(seconds)
}

/// The same rows through the same `test` source and `file` destination compiled natively into
/// one process (`quarry-bench-native`, beside this executable): what the components would
/// cost without the sandbox.
fn native_parquet(exe: &Path, work: &Path, args: &BenchArgs) -> Result<Vec<f64>, String> {
    let binary = exe.with_file_name("quarry-bench-native");
    if !binary.is_file() {
        return Err(format!(
            "{} is missing; build it with `cargo build -p quarry-bench-native` (--release for a \
             release quarry)",
            binary.display()
        ));
    }
    let out = Command::new(&binary)
        .arg(args.rows.to_string())
        .arg(args.batch_size.to_string())
        .arg(args.runs.to_string())
        .arg(work.join("native"))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse::<f64>().map_err(|e| format!("{l:?}: {e}")))
        .collect()
}

/// Fills `quarry_bench_source.test_rows` with the run's rows, keyed on `id` (a sync with
/// `write_mode: overwrite` into a new schema), and analyzes it so its size is known.
fn load_pg_source(exe: &Path, work: &Path, args: &BenchArgs) -> Result<(), String> {
    psql(&format!("drop schema if exists {PG_SOURCE_SCHEMA} cascade"))?;
    let spec = format!(
        "kind: source\nspec:\n  name: bench_load\n{}  destinations: [load]\n---\nkind: destination\nspec:\n  name: load\n  path: quarry/postgresql\n  write_mode: overwrite\n  spec:\n    connection_string: postgres://postgres@127.0.0.1:5432/test\n    schema: {PG_SOURCE_SCHEMA}\n  permissions:\n    network: [\"127.0.0.1:5432\"]\n",
        IN_PROCESS
            .replace("{{ROWS}}", &args.rows.to_string())
            .replace("{{BATCH}}", &args.batch_size.to_string())
    );
    let path = work.join("bench-load.yml");
    std::fs::write(&path, spec).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    run_once(exe, work, &path)?;
    psql(&format!("analyze {PG_SOURCE_SCHEMA}.test_rows"))
}

/// `psql`'s `\copy` of the loaded table's columns to /dev/null in the binary format: the rows/s
/// of reading that table with nothing done to them.
fn psql_copy_out(args: &BenchArgs) -> Result<Vec<f64>, String> {
    limit_runs(args.runs, || {
        psql(&format!(
            "\\copy (select {TEST_ROWS_COLUMNS} from {PG_SOURCE_SCHEMA}.test_rows) to '/dev/null' with (format binary)"
        ))
    })
}

/// A native-plugin stand-in for the gRPC scenario: `quarry serve quarry/test` behind a script.
fn write_served_test(exe: &Path, work: &Path) -> Result<(), CliError> {
    let served = work.join("served-test");
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = serve ] && shift\nexec '{}' serve quarry/test \"$@\"\n",
        exe.display()
    );
    std::fs::write(&served, script)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&served, std::fs::Permissions::from_mode(0o755))
        })
        .with_context(|| format!("cannot write {}", served.display()))?;
    Ok(())
}

/// Writes the scenario's spec (starting the Hacker News fixture server the first time one needs
/// it) and returns its path.
fn write_spec(
    scenario: &Scenario,
    args: &BenchArgs,
    exe: &Path,
    work: &Path,
    hn_server: &mut Option<HnServer>,
) -> Result<PathBuf, String> {
    let mut source = scenario
        .source
        .replace("{{HALF}}", &(args.rows * 45 / 100).max(1).to_string())
        .replace("{{QUARTER}}", &(args.rows / 4).max(1).to_string())
        .replace("{{ROWS}}", &args.rows.to_string())
        .replace("{{BATCH}}", &args.batch_size.to_string());
    for (placeholder, file) in [
        ("{{PYTHON}}", "quarry_python_example.wasm"),
        ("{{JS}}", "quarry_js_example.wasm"),
    ] {
        if source.contains(placeholder) {
            let path = example_component(exe, file)?;
            source = source.replace(placeholder, &path.display().to_string());
        }
    }
    if source.contains("{{HN}}") {
        if hn_server.is_none() {
            *hn_server = Some(HnServer::start(exe, work)?);
        }
        if let Some(server) = hn_server {
            source = source.replace("{{HN}}", &server.address);
        }
    }
    let spec = format!(
        "kind: source\nspec:\n  name: bench_source\n{source}  destinations: [bench]\n---\nkind: destination\nspec:\n  name: bench\n{}",
        scenario.destination
    );
    let spec_path = work.join("bench.yml");
    std::fs::write(&spec_path, spec)
        .map_err(|e| format!("cannot write {}: {e}", spec_path.display()))?;
    Ok(spec_path)
}

/// The first use of each component costs its compilation: the wall time of `quarry plugin
/// inspect` (compile, instantiate, `info`) with an empty compile cache, for every first-party
/// component and the Python and JavaScript examples.
fn first_compiles(exe: &Path, work: &Path, report: &mut Report) -> Result<(), String> {
    println!("{:<40} {:>12} {:>10}", "first compile", "seconds", "MB");
    let mut plugins: Vec<(String, String)> = quarry_registry::FIRST_PARTY
        .iter()
        .filter(|p| !p.native)
        .map(|p| (format!("quarry/{}", p.name), p.file_name()))
        .collect();
    plugins.push(("python example".into(), "quarry_python_example.wasm".into()));
    plugins.push(("javascript example".into(), "quarry_js_example.wasm".into()));
    let cache = work.join("first-compile-cache");
    for (name, file) in plugins {
        let path = example_component(exe, &file)?;
        let _ = std::fs::remove_dir_all(&cache);
        let started = Instant::now();
        let out = Command::new(exe)
            .current_dir(work)
            .env("QUARRY_CACHE_DIR", &cache)
            .args(["plugin", "inspect"])
            .arg(&path)
            .output()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let seconds = started.elapsed().as_secs_f64();
        if !out.status.success() {
            return Err(format!(
                "quarry plugin inspect {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let mb = path.metadata().map_or(0.0, |m| m.len() as f64 / 1e6);
        report.compile(&name, seconds, mb);
    }
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}

/// The wall time of a whole `quarry sync` process of one row from the `test` source into the
/// discarding destination, both components compiled already: what a scheduled sync of little
/// data costs.
fn startup(exe: &Path, work: &Path, args: &BenchArgs, report: &mut Report) -> Result<(), String> {
    let one = BenchArgs {
        rows: 1,
        ..args.clone()
    };
    let scenario = Scenario {
        name: STARTUP,
        source: IN_PROCESS,
        destination: DISCARD,
    };
    let spec = write_spec(&scenario, &one, exe, work, &mut None)?;
    let mut seconds = Vec::new();
    for i in 0..=args.runs.max(5) {
        let sample = run_once(exe, work, &spec)?;
        if i > 0 {
            seconds.push(sample.wall_seconds);
        }
    }
    report.timing(STARTUP, report::median(seconds));
    Ok(())
}

/// A component `scripts/plugins` built for the same profile as `exe` (the examples in Python and
/// JavaScript are not first-party plugins, so they are not found as `quarry/<name>`).
fn example_component(exe: &Path, file: &str) -> Result<PathBuf, String> {
    let dir = exe
        .parent()
        .ok_or("the quarry executable has no directory")?;
    let (Some(profile), Some(target)) = (dir.file_name(), dir.parent()) else {
        return Err(format!(
            "{} is not in a cargo target directory",
            exe.display()
        ));
    };
    let path = target.join("wasm32-wasip2").join(profile).join(file);
    if !path.is_file() {
        return Err(format!(
            "{} is missing; build it with scripts/plugins (--release for a release quarry)",
            path.display()
        ));
    }
    Ok(path)
}

/// The fixture server with [`HN_ITEMS`] generated stories, answering after [`HN_LATENCY_MS`].
struct HnServer {
    child: std::process::Child,
    address: String,
}

impl HnServer {
    fn start(exe: &Path, work: &Path) -> Result<Self, String> {
        let binary = exe.with_file_name("quarry-fixture-http");
        if !binary.is_file() {
            return Err(format!(
                "{} is missing; build it with `cargo build --release -p quarry-fixture-http`",
                binary.display()
            ));
        }
        let dir = work.join("hackernews");
        let items = dir.join("v0/item");
        std::fs::create_dir_all(&items).map_err(|e| format!("{}: {e}", items.display()))?;
        for id in 1..=HN_ITEMS {
            let item = serde_json::json!({
                "id": id, "type": "story", "by": "bench", "time": 1_709_809_200 + id,
                "title": format!("Story {id}"), "url": format!("https://example.com/{id}"),
                "score": id % 500, "descendants": 0, "kids": [],
            });
            std::fs::write(items.join(format!("{id}.json")), item.to_string())
                .map_err(|e| format!("{}: {e}", items.display()))?;
        }
        std::fs::write(dir.join("v0/maxitem.json"), HN_ITEMS.to_string())
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        // The `rest` scenario's parent list.
        let ids: Vec<serde_json::Value> = (1..=REST_ITEMS)
            .map(|id| serde_json::json!({ "id": id }))
            .collect();
        std::fs::create_dir_all(dir.join("rest"))
            .and_then(|()| {
                std::fs::write(
                    dir.join("rest/ids.json"),
                    serde_json::Value::from(ids).to_string(),
                )
            })
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        // The `rest pages` scenario's pages (`pages.json@page=N`).
        for page in 1..=REST_PAGES {
            let items: Vec<serde_json::Value> = (1..=REST_PAGE_ITEMS)
                .map(|i| {
                    let id = (page - 1) * REST_PAGE_ITEMS + i;
                    serde_json::json!({ "id": id, "title": format!("Item {id}"), "score": id % 500 })
                })
                .collect();
            let body = serde_json::json!({ "items": items, "pages": REST_PAGES });
            std::fs::write(
                dir.join(format!("rest/pages.json@page={page}")),
                body.to_string(),
            )
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let mut child = Command::new(&binary)
            .arg("--dir")
            .arg(&dir)
            .args(["--latency-ms", &HN_LATENCY_MS.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            use std::io::BufRead;
            let _ = std::io::BufReader::new(out).read_line(&mut line);
        }
        match line.trim().strip_prefix("listening on ") {
            Some(address) => Ok(HnServer {
                address: address.to_string(),
                child,
            }),
            None => {
                let _ = child.kill();
                Err(format!(
                    "{} did not start: `{}`",
                    binary.display(),
                    line.trim()
                ))
            }
        }
    }
}

impl Drop for HnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("quarry-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// One `quarry sync` child: its sync duration and IPC bytes from its JSON summary, its peak RSS
/// from the kernel's accounting of that child alone.
fn run_once(exe: &Path, work: &Path, spec: &Path) -> Result<Sample, String> {
    let summary_path = work.join("summary.json");
    let started = Instant::now();
    let child = Command::new(exe)
        .current_dir(work)
        .args(["--log-level", "warn", "sync"])
        .arg(spec)
        .arg("--summary-location")
        .arg(&summary_path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let (status, peak_rss_kib, cpu_seconds) = wait_with_rusage(child.id())?;
    let wall_seconds = started.elapsed().as_secs_f64();
    if status != 0 {
        return Err(format!(
            "quarry sync exited with {status} after {:.1}s",
            started.elapsed().as_secs_f64()
        ));
    }
    let text = std::fs::read_to_string(&summary_path).map_err(|e| format!("no summary: {e}"))?;
    let _ = std::fs::remove_file(&summary_path);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap_or(""))
        .map_err(|e| format!("bad summary: {e}"))?;
    let rows = first["resources"].as_u64().ok_or("summary without rows")?;
    let ipc_bytes = first["ipc_bytes"].as_u64().unwrap_or(0);
    let ms = first["sync_duration_ms"]
        .as_u64()
        .ok_or("summary without duration")?;
    Ok(Sample {
        seconds: (ms as f64 / 1000.0).max(1e-3),
        wall_seconds,
        ipc_bytes,
        rows,
        peak_rss_kib,
        cpu_seconds,
    })
}

/// Waits for a child and returns its exit status, peak resident set size (KiB) and CPU seconds
/// (user and system, with those of the children it waited for).
fn wait_with_rusage(pid: u32) -> Result<(i32, u64, f64), String> {
    let mut status = 0;
    // SAFETY: `rusage` is plain data that the kernel fills; `wait4` reaps exactly our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    if reaped < 0 {
        return Err(format!("wait4 failed: {}", std::io::Error::last_os_error()));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    Ok((code, usage.ru_maxrss as u64, cpu))
}
