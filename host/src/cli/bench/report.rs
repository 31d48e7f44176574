//! What a bench run measured: each line printed as it is measured, kept, and with `--report`
//! written as Markdown (`docs/benchmarks.md`) with the machine, the command, and the issue's
//! targets computed from the medians of this one run.

use std::fmt::Write as _;

use super::Sample;

/// The medians of one scenario or limit.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub rows_per_s: Option<f64>,
    pub mb_per_s: Option<f64>,
    pub rss_mb: Option<f64>,
    /// CPU time of the process tree over its wall time: how many cores it kept busy.
    pub cores: Option<f64>,
    pub seconds: f64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<Line>,
    /// The first compile of each component: name, seconds, component MB.
    pub compiles: Vec<(String, f64, f64)>,
}

/// The median of `values` (the upper one of an even count, as the printed medians always were).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"))
}

impl Report {
    pub fn header() {
        println!(
            "{:<40} {:>12} {:>10} {:>12} {:>6} {:>10}",
            "scenario", "rows/s", "IPC MB/s", "peak RSS MB", "cores", "seconds"
        );
    }

    /// A `quarry sync` scenario's medians (nothing if no run succeeded).
    pub fn scenario(&mut self, name: &str, samples: &[Sample]) {
        if samples.is_empty() {
            return;
        }
        let of = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f).collect());
        self.push(Line {
            name: name.into(),
            rows_per_s: Some(of(&|s| s.rows as f64 / s.seconds)),
            mb_per_s: Some(of(&|s| s.ipc_bytes as f64 / 1e6 / s.seconds)),
            rss_mb: Some(of(&|s| s.peak_rss_kib as f64 / 1024.0)),
            cores: Some(of(&|s| s.cpu_seconds / s.wall_seconds)),
            seconds: of(&|s| s.seconds),
        });
    }

    /// A limit: another program doing the same work, `rows` rows in each of `seconds`.
    pub fn limit(&mut self, name: &str, rows: u64, seconds: &[f64]) {
        if seconds.is_empty() {
            return;
        }
        let median = median(seconds.to_vec());
        self.push(Line {
            name: name.into(),
            rows_per_s: Some(rows as f64 / median),
            mb_per_s: None,
            rss_mb: None,
            cores: None,
            seconds: median,
        });
    }

    /// A wall-clock timing with no rows (a cached start, a pull).
    pub fn timing(&mut self, name: &str, seconds: f64) {
        self.push(Line {
            name: name.into(),
            rows_per_s: None,
            mb_per_s: None,
            rss_mb: None,
            cores: None,
            seconds,
        });
    }

    fn push(&mut self, line: Line) {
        println!(
            "{:<40} {:>12} {:>10} {:>12} {:>6} {:>10.3}",
            line.name,
            cell(line.rows_per_s, 0),
            cell(line.mb_per_s, 1),
            cell(line.rss_mb, 1),
            cell(line.cores, 2),
            line.seconds
        );
        self.lines.push(line);
    }

    pub fn compile(&mut self, name: &str, seconds: f64, mb: f64) {
        println!("{name:<40} {seconds:>12.2} {mb:>10.1}");
        self.compiles.push((name.into(), seconds, mb));
    }

    fn get(&self, name: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.name == name)
    }

    fn rate(&self, name: &str) -> Option<f64> {
        self.get(name)?.rows_per_s
    }

    /// Each target of the performance issue: what it asks, what this run measured, and whether
    /// that meets it (`None`: not measured in this run).
    pub fn targets(&self) -> Vec<(String, String, Option<bool>)> {
        let mut out = Vec::new();
        let ratio = |out: &mut Vec<_>, what: &str, a: &str, b: &str, at_least: f64| {
            let measured = match (self.rate(a), self.rate(b)) {
                (Some(x), Some(y)) => {
                    Some((x / y, format!("{:.2}× ({x:.0} / {y:.0} rows/s)", x / y)))
                }
                _ => None,
            };
            out.push((
                what.to_string(),
                measured
                    .as_ref()
                    .map_or_else(|| "not measured".into(), |m| m.1.clone()),
                measured.map(|m| m.0 >= at_least),
            ));
        };
        let parquet = self.rate("test -> file (parquet)");
        out.push((
            "`test` → Parquet ≥ 1,000,000 rows/s".into(),
            parquet.map_or_else(|| "not measured".into(), |r| format!("{r:.0} rows/s")),
            parquet.map(|r| r >= 1e6),
        ));
        ratio(
            &mut out,
            "`test` → DuckDB append ≥ 0.8× DuckDB's `read_parquet` import",
            "test -> duckdb (append)",
            LIMIT_DUCKDB,
            0.8,
        );
        ratio(
            &mut out,
            "`test` → DuckDB overwrite ≥ 0.5× append",
            "test -> duckdb (overwrite)",
            "test -> duckdb (append)",
            0.5,
        );
        let rss = |name: &str| self.get(name).and_then(|l| l.rss_mb);
        let duck_rss = match (
            rss("test -> duckdb (overwrite)"),
            rss("test -> duckdb (append)"),
        ) {
            (Some(o), Some(a)) => Some((o / a, format!("{:.2}× ({o:.0} / {a:.0} MB)", o / a))),
            _ => None,
        };
        out.push((
            "DuckDB overwrite peak RSS ≤ 2× append".into(),
            duck_rss
                .as_ref()
                .map_or_else(|| "not measured".into(), |m| m.1.clone()),
            duck_rss.map(|m| m.0 <= 2.0),
        ));
        ratio(
            &mut out,
            "`test` → PostgreSQL append ≥ 1.0× `psql \\copy ... from (format binary)`",
            "test -> postgresql (append)",
            LIMIT_PSQL_IN,
            1.0,
        );
        ratio(
            &mut out,
            "`test` → PostgreSQL overwrite ≥ 0.5× append",
            "test -> postgresql (overwrite)",
            "test -> postgresql (append)",
            0.5,
        );
        ratio(
            &mut out,
            "`test` → SQLite append ≥ 0.8× a native rusqlite prepared-insert loop",
            "test -> sqlite (append)",
            LIMIT_SQLITE,
            0.8,
        );
        for name in [
            "test -> file (parquet)",
            "test -> postgresql (append)",
            "test -> sqlite (append)",
        ] {
            let mb = rss(name);
            out.push((
                format!("peak RSS of `{name}` ≤ 200 MB (the target is at 10M rows)"),
                mb.map_or_else(|| "not measured".into(), |mb| format!("{mb:.0} MB")),
                mb.map(|mb| mb <= 200.0),
            ));
        }
        let start = self.get(STARTUP).map(|l| l.seconds);
        out.push((
            "a cached 1-row sync ≤ 50 ms wall".into(),
            start.map_or_else(|| "not measured".into(), |s| format!("{:.0} ms", s * 1e3)),
            start.map(|s| s <= 0.050),
        ));
        for (name, seconds, _) in &self.compiles {
            out.push((
                format!("first compile of {name} ≤ 3 s"),
                format!("{seconds:.2} s"),
                Some(*seconds <= 3.0),
            ));
        }
        ratio(
            &mut out,
            "16 tables × 1M rows ≥ 1.7× the single-table rows/s (into Parquet)",
            SIXTEEN_TABLES,
            "test -> file (parquet)",
            1.7,
        );
        // Here the ratio is the native rate over the components': at most 1.25.
        let wasm = match (self.rate(LIMIT_NATIVE), parquet) {
            (Some(native), Some(wasm)) => Some((
                native / wasm,
                format!("{:.2}× ({native:.0} / {wasm:.0} rows/s)", native / wasm),
            )),
            _ => None,
        };
        out.push((
            "wasm cost: `test` → `file` (Parquet) natively in one process vs as components ≤ 1.25×"
                .into(),
            wasm.as_ref()
                .map_or_else(|| "not measured".into(), |m| m.1.clone()),
            wasm.map(|m| m.0 <= 1.25),
        ));
        out
    }

    /// The whole run as Markdown.
    pub fn markdown(&self, machine: &str, command: &str, rows: u64, runs: usize) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# Benchmarks\n\nWritten by `{command}`; regenerate with `scripts/benchmarks`. \
             Do not edit by hand.\n\n{machine}\n\nEach scenario is a `quarry sync` child process: \
             {rows} rows of `test_rows` per run (per table with 16 tables), the median of {runs} \
             runs after one warm-up. Rows/s and IPC MB/s are over the sync's own duration from \
             its summary; peak RSS is the kernel's for the whole process tree; CPU cores is the \
             tree's user and system CPU time over its wall time (a database server's own work is \
             not in it). Limits are other programs doing the same work in the same run (wall \
             clock, their RSS not measured).\n"
        );
        let _ = writeln!(
            md,
            "## Targets\n\n| target | this run | met |\n|---|---|---|"
        );
        for (what, measured, met) in self.targets() {
            let met = match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            };
            let _ = writeln!(md, "| {what} | {measured} | {met} |");
        }
        let _ = writeln!(
            md,
            "\n## Scenarios and limits\n\n| scenario | rows/s | IPC MB/s | peak RSS MB | CPU cores | seconds |\n|---|--:|--:|--:|--:|--:|"
        );
        for l in &self.lines {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.3} |",
                l.name.replace('|', "\\|"),
                cell(l.rows_per_s, 0),
                cell(l.mb_per_s, 1),
                cell(l.rss_mb, 1),
                cell(l.cores, 2),
                l.seconds
            );
        }
        if !self.compiles.is_empty() {
            let _ = writeln!(
                md,
                "\n## First compile\n\nThe wall time of `quarry plugin inspect` with an empty \
                 compile cache (compile, instantiate, `info`).\n\n| component | seconds | MB |\n|---|--:|--:|"
            );
            for (name, seconds, mb) in &self.compiles {
                let _ = writeln!(md, "| {name} | {seconds:.2} | {mb:.1} |");
            }
        }
        md
    }
}

/// The names the targets look up.
pub const LIMIT_DUCKDB: &str = "limit: duckdb read_parquet import";
pub const LIMIT_PSQL_IN: &str = "limit: psql \\copy from (binary)";
pub const LIMIT_SQLITE: &str = "limit: rusqlite prepared inserts";
pub const LIMIT_NATIVE: &str = "limit: native test -> file (parquet)";
pub const SIXTEEN_TABLES: &str = "test (16 tables, 4 workers) -> file (parquet)";
pub const STARTUP: &str = "test -> test, 1 row, cached (wall)";

/// This machine, as the report's opening line.
pub fn machine(exe: &std::path::Path) -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or_else(|| "?".into(), |kib| format!("{:.0}", kib / 1024.0 / 1024.0));
    let kernel = read("/proc/sys/kernel/osrelease");
    let profile = if exe.components().any(|c| c.as_os_str() == "release") {
        "release"
    } else {
        "dev (debug) — numbers for comparison only"
    };
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "Measured {date} on {cpu}, {cores} cores, {memory_gib} GiB, Linux {}; quarry {} ({profile} build).",
        kernel.trim(),
        env!("CARGO_PKG_VERSION")
    )
}
