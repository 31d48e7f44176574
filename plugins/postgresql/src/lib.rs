//! Quarry's PostgreSQL plugin, destination and source, as a sandboxed component: it reaches the
//! server through `wasi:sockets`, so only the hosts granted under `permissions.network`.

pub mod config;
pub mod copy;
mod destination;
pub mod read;
mod source;
pub mod tls;
pub mod types;
pub mod wire;

pub use destination::{PostgreSql, Spec};

impl quarry_sdk::Source for PostgreSql {
    fn tables(&self) -> Vec<quarry_sdk::Table> {
        self.discovered
            .iter()
            .flatten()
            .map(|t| t.table.clone())
            .collect()
    }

    fn discover(&mut self) -> quarry_sdk::Result<Vec<quarry_sdk::Table>> {
        if self.discovered.is_none() {
            self.discovered = Some(source::discover(&mut self.conn, &self.settings)?);
        }
        Ok(self.tables())
    }

    fn sync(
        &mut self,
        tables: &[quarry_sdk::Table],
        out: &mut quarry_sdk::SyncContext<'_>,
    ) -> quarry_sdk::Result<()> {
        let discovered = self.discovered.clone().unwrap_or_default();
        for table in tables {
            if let Some(found) = discovered.iter().find(|t| t.table.name == table.name) {
                source::sync_table(&mut self.conn, &self.config, &self.settings, found, out)?;
            }
        }
        Ok(())
    }
}

quarry_sdk::export_source_and_destination!(PostgreSql);

#[cfg(test)]
mod source_tests;

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

    #[test]
    fn binary_copy_writes_every_supported_type_as_the_server_reads_it() {
        use std::sync::Arc;

        use arrow_array::types::IntervalMonthDayNano;
        use arrow_array::*;
        use arrow_schema::{DataType, Field, Schema, TimeUnit};
        use quarry_sdk::{Column, Extension};

        let columns = vec![
            Column::new("b", DataType::Boolean),
            Column::new("i8", DataType::Int8),
            Column::new("u16", DataType::UInt16),
            Column::new("i64", DataType::Int64),
            Column::new("u64", DataType::UInt64),
            Column::new("d", DataType::Decimal128(12, 3)),
            Column::new("f32", DataType::Float32),
            Column::new("f64", DataType::Float64),
            Column::new("s", DataType::Utf8),
            Column::new("bin", DataType::Binary),
            Column::new("day", DataType::Date32),
            Column::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ),
            Column::new("tsn", DataType::Timestamp(TimeUnit::Nanosecond, None)),
            Column::new("t", DataType::Time64(TimeUnit::Microsecond)),
            Column::new(
                "iv",
                DataType::Interval(arrow_schema::IntervalUnit::MonthDayNano),
            ),
            Column::new("dur", DataType::Duration(TimeUnit::Millisecond)),
            Column::extension("id", Extension::Uuid),
            Column::extension("doc", Extension::Json),
            Column::extension("ip", Extension::Inet),
            Column::extension("mac", Extension::Mac),
        ];
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(BooleanArray::from(vec![Some(true), None])),
            Arc::new(Int8Array::from(vec![-8, 8])),
            Arc::new(UInt16Array::from(vec![65535, 0])),
            Arc::new(Int64Array::from(vec![i64::MIN, 42])),
            Arc::new(UInt64Array::from(vec![u64::MAX, 0])),
            Arc::new(
                Decimal128Array::from(vec![-1234567, 5])
                    .with_precision_and_scale(12, 3)
                    .unwrap(),
            ),
            Arc::new(Float32Array::from(vec![1.5, -0.25])),
            Arc::new(Float64Array::from(vec![std::f64::consts::PI, 1e300])),
            Arc::new(StringArray::from(vec![Some("héllo"), Some("")])),
            Arc::new(BinaryArray::from(vec![&b"\x00\xff"[..], b""])),
            Arc::new(Date32Array::from(vec![0, 19723])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![0, 1_704_067_200_000_001])
                    .with_timezone("UTC"),
            ),
            Arc::new(TimestampNanosecondArray::from(vec![
                -1_000,
                946_684_800_000_000_000,
            ])),
            Arc::new(Time64MicrosecondArray::from(vec![0, 86_399_999_999])),
            Arc::new(IntervalMonthDayNanoArray::from(vec![
                IntervalMonthDayNano::new(14, 3, 4_000_005_000),
                IntervalMonthDayNano::new(0, 0, 0),
            ])),
            Arc::new(DurationMillisecondArray::from(vec![1_500, -2])),
            Arc::new(
                FixedSizeBinaryArray::try_from_iter(
                    [
                        [0x12u8; 16],
                        *b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff",
                    ]
                    .into_iter(),
                )
                .unwrap(),
            ),
            Arc::new(BinaryArray::from(vec![&br#"{"a": [1, 2]}"#[..], b"null"])),
            Arc::new(BinaryArray::from(vec![&b"10.1.2.3"[..], b"2001:db8::/32"])),
            Arc::new(BinaryArray::from(vec![
                &b"08:00:2b:01:02:03"[..],
                &[1u8, 2, 3, 4, 5, 6][..],
            ])),
        ];
        let schema = Arc::new(Schema::new(
            columns.iter().map(|c| c.field()).collect::<Vec<Field>>(),
        ));
        let batch = RecordBatch::try_new(schema, arrays).unwrap();

        let ddl: Vec<String> = columns
            .iter()
            .map(|c| format!("\"{}\" {}", c.name, crate::types::column_type(c).unwrap()))
            .collect();
        let mut conn = connect();
        conn.query("set timezone = 'UTC'; set intervalstyle = 'iso_8601'")
            .unwrap();
        conn.query(&format!(
            "create temporary table copied_types ({})",
            ddl.join(", ")
        ))
        .unwrap();
        let mut data = bytes::BytesMut::new();
        crate::copy::header(&mut data);
        crate::copy::rows(&columns, &batch, &mut data).unwrap();
        crate::copy::trailer(&mut data);
        let n = conn
            .copy_in("copy copied_types from stdin (format binary)", &data)
            .unwrap();
        assert_eq!(n, 2);
        let rows = conn
            .query("select * from copied_types")
            .unwrap()
            .remove(0)
            .rows;
        let text =
            |row: usize| -> Vec<Option<&str>> { rows[row].iter().map(|v| v.as_deref()).collect() };
        assert_eq!(
            text(0),
            [
                Some("t"),
                Some("-8"),
                Some("65535"),
                Some("-9223372036854775808"),
                Some("18446744073709551615"),
                Some("-1234.567"),
                Some("1.5"),
                Some("3.141592653589793"),
                Some("héllo"),
                Some("\\x00ff"),
                Some("1970-01-01"),
                Some("1970-01-01 00:00:00+00"),
                Some("1969-12-31 23:59:59.999999"),
                Some("00:00:00"),
                Some("P1Y2M3DT4.000005S"),
                Some("PT1.5S"),
                Some("12121212-1212-1212-1212-121212121212"),
                Some("{\"a\": [1, 2]}"),
                Some("10.1.2.3"),
                Some("08:00:2b:01:02:03"),
            ]
        );
        assert_eq!(
            text(1),
            [
                None,
                Some("8"),
                Some("0"),
                Some("42"),
                Some("0"),
                Some("0.005"),
                Some("-0.25"),
                Some("1e+300"),
                Some(""),
                Some("\\x"),
                Some("2024-01-01"),
                Some("2024-01-01 00:00:00.000001+00"),
                Some("2000-01-01 00:00:00"),
                Some("23:59:59.999999"),
                Some("PT0S"),
                Some("PT-0.002S"),
                Some("00112233-4455-6677-8899-aabbccddeeff"),
                Some("null"),
                Some("2001:db8::/32"),
                Some("01:02:03:04:05:06"),
            ]
        );
    }

    #[test]
    fn every_type_of_the_test_source_reads_back_as_it_was_written() {
        use arrow_schema::{DataType, TimeUnit};
        use quarry_plugin_test::types;
        use quarry_sdk::{Destination, Plugin, RecordBatch};

        let schema = format!("quarry_read_{}", std::process::id());
        let mut db = crate::PostgreSql::new(crate::Spec {
            schema: schema.clone(),
            ..crate::Spec::new("postgres://postgres@127.0.0.1:5432/test")
        })
        .expect("PostgreSQL on 127.0.0.1:5432 (database `test`)");
        let table = types::table();
        db.migrate_table(&table, false).unwrap();
        let written = RecordBatch::try_new(table.schema(), types::columns(0, 30).unwrap()).unwrap();
        db.insert(&table, written.clone()).unwrap();
        db.flush().unwrap();
        let read = db.read(&table);
        let _ = connect().query(&format!("drop schema {schema} cascade"));
        let read = read.unwrap();
        for (i, field) in table.schema().fields().iter().enumerate() {
            let (got, want) = (read[0].column(i), written.column(i));
            match field.name().as_str() {
                // jsonb keeps the value, not its spelling (key order, spaces).
                "json" => {
                    let values = |a: &arrow_array::ArrayRef| -> Vec<Option<serde_json::Value>> {
                        arrow_array::cast::AsArray::as_binary::<i32>(a)
                            .iter()
                            .map(|v| v.map(|v| serde_json::from_slice(v).unwrap()))
                            .collect()
                    };
                    assert_eq!(values(got), values(want));
                }
                // PostgreSQL keeps microseconds.
                "timestamp_ns" => {
                    let micros = |a: &arrow_array::ArrayRef| {
                        let us = DataType::Timestamp(TimeUnit::Microsecond, None);
                        arrow_cast::cast(a, &us).unwrap()
                    };
                    assert_eq!(micros(got).as_ref(), micros(want).as_ref());
                }
                name => assert_eq!(got.as_ref(), want.as_ref(), "column {name}"),
            }
        }
    }

    #[test]
    fn upserts_replace_rows_by_key_and_the_last_row_of_a_repeated_key_wins() {
        use quarry_sdk::{Destination, Plugin};

        let schema = format!("quarry_upsert_{}", std::process::id());
        let mut db = crate::PostgreSql::new(crate::Spec {
            schema: schema.clone(),
            ..crate::Spec::new("postgres://postgres@127.0.0.1:5432/test")
        })
        .expect("PostgreSQL on 127.0.0.1:5432 (database `test`)");
        use quarry_plugin_test::keyed::{self, batch};
        let table = keyed::table();
        db.migrate_table(&table, false).unwrap();
        let mut written = || -> quarry_sdk::Result<()> {
            // New keys; then one replaced and one new; then a key twice in one batch (the last
            // one wins).
            db.insert(&table, batch(&[1, 2], &["one", "two"]))?;
            db.insert(&table, batch(&[2, 3], &["two'", "three"]))?;
            db.insert(&table, batch(&[3, 4, 3], &["x", "four", "three'"]))?;
            db.flush()?;
            // A column the rows do not carry (added by hand) keeps its values.
            connect().query(&format!(
                "alter table {schema}.keyed add column note text default 'kept'"
            ))?;
            db.migrate_table(&table, false)?;
            db.insert(&table, batch(&[1], &["uno"]))?;
            db.flush()
        };
        let outcome = written();
        let rows = connect().query(&format!(
            "select id::text, name, note from {schema}.keyed order by id"
        ));
        let _ = connect().query(&format!("drop schema {schema} cascade"));
        outcome.unwrap();
        let text = |id: &str, name: &str| {
            vec![
                Some(id.to_string()),
                Some(name.to_string()),
                Some("kept".to_string()),
            ]
        };
        assert_eq!(
            rows.unwrap()[0].rows,
            [
                text("1", "uno"),
                text("2", "two'"),
                text("3", "three'"),
                text("4", "four")
            ]
        );
    }
}
