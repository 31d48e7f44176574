//! Quarry's PostgreSQL destination, as a sandboxed component: it reaches the server through
//! `wasi:sockets`, so only the hosts granted under `permissions.network`. This crate holds, so
//! far, the connection string and the wire-protocol client; the destination itself (type
//! mapping, binary COPY, merges, migrations) builds on them.

pub mod config;
pub mod types;
pub mod wire;

#[cfg(test)]
mod tests {
    //! Against the real server this machine runs on 127.0.0.1:5432 (trust auth, database `test`).

    use quarry_sdk::ErrorKind;

    use crate::config::Config;
    use crate::wire::Connection;

    fn connect() -> Connection {
        let config = Config::parse("postgres://postgres@127.0.0.1:5432/test").unwrap();
        Connection::connect(&config).expect("PostgreSQL on 127.0.0.1:5432 (database `test`)")
    }

    #[test]
    fn simple_queries_return_text_rows_and_nulls() {
        let mut conn = connect();
        let results = conn
            .query("select 1 as one, null::text as nothing, 'x' as x; select 2")
            .unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].columns, ["one", "nothing", "x"]);
        assert_eq!(
            results[0].rows,
            [vec![Some("1".into()), None, Some("x".into())]]
        );
        assert_eq!(results[0].tag, "SELECT 1");
        assert_eq!(results[1].rows, [vec![Some("2".into())]]);
        conn.close().unwrap();
    }

    #[test]
    fn a_server_error_names_its_code_and_leaves_the_connection_usable() {
        let mut conn = connect();
        let err = conn
            .query("select * from quarry_no_such_table")
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal);
        assert!(err.message.contains("42P01"), "{err}");
        assert!(err.message.contains("quarry_no_such_table"), "{err}");
        assert_eq!(
            conn.query("select 3").unwrap()[0].rows,
            [vec![Some("3".into())]]
        );
    }

    #[test]
    fn copy_in_loads_rows() {
        let mut conn = connect();
        conn.query("create temporary table copied (id bigint, name text)")
            .unwrap();
        let data: String = (0..1000).map(|i| format!("{i}\tname {i}\n")).collect();
        let rows = conn
            .copy_in("copy copied from stdin", data.as_bytes())
            .unwrap();
        assert_eq!(rows, 1000);
        let sum = conn.query("select count(*), sum(id) from copied").unwrap();
        assert_eq!(
            sum[0].rows,
            [vec![Some("1000".into()), Some("499500".into())]]
        );
        let err = conn
            .copy_in("copy copied from stdin", b"not a number\tx\n")
            .unwrap_err();
        assert!(err.message.contains("22P02"), "{err}");
    }

    #[test]
    fn connection_failures_say_what_to_check() {
        let refused = Connection::connect(&Config::parse("host=127.0.0.1 port=1").unwrap())
            .err()
            .unwrap();
        assert_eq!(refused.kind, ErrorKind::Unavailable);
        assert!(
            refused.message.contains("permissions: { network"),
            "{refused}"
        );
        let unknown = Connection::connect(
            &Config::parse("host=127.0.0.1 user=quarry_no_such_role dbname=test").unwrap(),
        )
        .err()
        .unwrap();
        assert_eq!(unknown.kind, ErrorKind::Unauthorized, "{unknown}");
        assert!(unknown.message.contains("quarry_no_such_role"), "{unknown}");
    }

    #[test]
    fn the_server_accepts_every_mapped_column_type() {
        use arrow_schema::{DataType, Field, TimeUnit};
        use quarry_sdk::{Column, Extension};
        let item = std::sync::Arc::new(Field::new("item", DataType::Int32, true));
        let columns = [
            Column::new("b", DataType::Boolean),
            Column::new("u64", DataType::UInt64),
            Column::new("d", DataType::Decimal128(38, 9)),
            Column::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ),
            Column::new("t", DataType::Time64(TimeUnit::Microsecond)),
            Column::new(
                "i",
                DataType::Interval(arrow_schema::IntervalUnit::MonthDayNano),
            ),
            Column::new("l", DataType::List(item)),
            Column::extension("id", Extension::Uuid),
            Column::extension("ip", Extension::Inet),
            Column::extension("mac", Extension::Mac),
            Column::extension("doc", Extension::Json),
        ];
        let ddl: Vec<String> = columns
            .iter()
            .map(|c| format!("\"{}\" {}", c.name, crate::types::column_type(c).unwrap()))
            .collect();
        let mut conn = connect();
        conn.query(&format!(
            "create temporary table typed ({})",
            ddl.join(", ")
        ))
        .unwrap();
        let types = conn
            .query("select format_type(atttypid, atttypmod) from pg_attribute where attrelid = 'typed'::regclass and attnum > 0 order by attnum")
            .unwrap();
        let types: Vec<String> = types[0]
            .rows
            .iter()
            .map(|r| r[0].clone().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "boolean",
                "numeric(20,0)",
                "numeric(38,9)",
                "timestamp with time zone",
                "time without time zone",
                "interval",
                "integer[]",
                "uuid",
                "inet",
                "macaddr",
                "jsonb"
            ]
        );
    }
}
