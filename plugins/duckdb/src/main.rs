//! `quarry-plugin-duckdb serve ...`: the DuckDB destination as a CloudQuery v3 gRPC plugin.
//! `quarry-plugin-duckdb query <file> <sql>`: prints a query's rows, tab-separated (`NULL` for
//! null), to look into a database without a DuckDB shell.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("query") {
        let [_, _, path, sql] = args.as_slice() else {
            eprintln!("usage: quarry-plugin-duckdb query <database file> <sql>");
            return ExitCode::from(2);
        };
        return query(path, sql);
    }
    quarry_grpc::sdk::main::<quarry_plugin_duckdb::DuckDb>()
}

fn query(path: &str, sql: &str) -> ExitCode {
    let rows = quarry_plugin_duckdb::ffi::Database::open(path, &[("access_mode", "READ_ONLY")])
        .and_then(|mut db| {
            db.execute("SET TimeZone = 'UTC'")?;
            db.query_text(sql)
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
