//! `quarry-plugin-duckdb serve ...`: the DuckDB destination as a CloudQuery v3 gRPC plugin.
//! `quarry-plugin-duckdb query <file> <sql>`: prints a query's rows, tab-separated (`NULL` for
//! null), to look into a database without a DuckDB shell; `exec <file> <sql>` runs statements
//! that change it.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(command @ ("query" | "exec")) = args.get(1).map(String::as_str) {
        let [_, _, path, sql] = args.as_slice() else {
            eprintln!("usage: quarry-plugin-duckdb {command} <database file> <sql>");
            return ExitCode::from(2);
        };
        return query(path, sql, command == "exec");
    }
    quarry_grpc::sdk::main::<quarry_plugin_duckdb::DuckDb>()
}

fn query(path: &str, sql: &str, write: bool) -> ExitCode {
    let access = if write { "READ_WRITE" } else { "READ_ONLY" };
    let rows = quarry_plugin_duckdb::ffi::Database::open(path, &[("access_mode", access)])
        .and_then(|mut db| {
            db.execute("SET TimeZone = 'UTC'")?;
            if write {
                db.execute(sql).map(|()| Vec::new())
            } else {
                db.query_text(sql)
            }
        });
    match rows {
        Ok(rows) => {
            for row in rows {
                let cells: Vec<String> = row
                    .into_iter()
                    .map(|v| v.unwrap_or_else(|| "NULL".into()))
                    .collect();
                println!("{}", cells.join("\t"));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
