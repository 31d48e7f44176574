//! The source against the MariaDB this machine runs on 127.0.0.1:3306 (root, no password):
//! each test in a database of its own, dropped at the end.

use quarry_sdk::{ErrorKind, Message, Plugin, Result, Source, SyncOptions, run_sync};

use crate::wire::{Config, Connection};
use crate::{MySql, Spec};

struct Scratch {
    name: String,
    conn: Connection,
}

impl Scratch {
    fn new(test: &str) -> Scratch {
        let name = format!("quarry_src_{test}_{}", std::process::id());
        let mut conn = Connection::connect(&Config::parse("mysql://root@127.0.0.1:3306").unwrap())
            .expect("MariaDB on 127.0.0.1:3306");
        conn.query(&format!(
            "drop database if exists {name}; create database {name}"
        ))
        .unwrap();
        Scratch { name, conn }
    }

    fn sql(&mut self, sql: &str) {
        let sql = sql.replace("$d", &self.name);
        self.conn
            .query(&sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn source(&self, edit: impl FnOnce(&mut Spec)) -> Result<MySql> {
        let mut spec = spec(format!("mysql://root@127.0.0.1:3306/{}", self.name));
        edit(&mut spec);
        MySql::new(spec)
    }
}

/// The spec's defaults, with `connection_string`.
fn spec(connection_string: String) -> Spec {
    serde_json::from_value(serde_json::json!({ "connection_string": connection_string }))
        .expect("a spec with defaults")
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self
            .conn
            .query(&format!("drop database if exists {}", self.name));
    }
}

fn printed(messages: &[Message], table: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for m in messages {
        if let Message::Insert(b) = m
            && quarry_sdk::table_name(b.schema_ref()) == table
        {
            for i in 0..b.num_rows() {
                rows.push(
                    b.columns()
                        .iter()
                        .zip(b.schema().fields())
                        .filter(|(_, f)| !f.name().starts_with("_cq_"))
                        .map(|(c, f)| {
                            // Without chrono-tz, Arrow prints zones given as offsets only.
                            let c = match f.data_type() {
                                arrow_schema::DataType::Timestamp(unit, Some(_)) => {
                                    arrow_cast::cast(
                                        c,
                                        &arrow_schema::DataType::Timestamp(
                                            *unit,
                                            Some("+00:00".into()),
                                        ),
                                    )
                                    .unwrap()
                                }
                                _ => c.clone(),
                            };
                            arrow_cast::display::ArrayFormatter::try_new(
                                c.as_ref(),
                                &Default::default(),
                            )
                            .unwrap()
                            .value(i)
                            .to_string()
                        })
                        .collect(),
                );
            }
        }
    }
    rows
}

fn states(messages: &[Message]) -> Vec<(String, String)> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::State { key, value } => Some((key.clone(), value.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn every_type_reads_as_its_arrow_type_with_exact_values() {
    let mut db = Scratch::new("types");
    db.sql(
        "create table $d.every_type (
           id bigint primary key, t tinyint, tu tinyint unsigned, s smallint, m mediumint,
           i int unsigned, b bigint unsigned, d decimal(12, 3), d50 decimal(50, 10),
           f float, g double, c char(3), v varchar(20), tx text, e enum('a', 'b'),
           bin varbinary(8), bl blob, bits bit(12), day date, dt datetime(6), ts timestamp(6) null,
           tm time(6), y year, j json
         );
         set time_zone = '+00:00';
         insert into $d.every_type values
           (1, -128, 255, -32768, -8388608, 4294967295, 18446744073709551615, -1234.567,
            1234567890123456789012345678901234567890.0123456789, 1.5, 3.141592653589793,
            'abc', 'héllo', 'line\nbreak', 'b', x'00ff10', x'deadbeef', b'101010101010',
            '2024-02-29', '1999-12-31 23:59:59.999999', '2024-01-01 00:00:00.000001',
            '-838:59:59', 2155, '{\"a\": [1, 2]}'),
           (2, null, null, null, null, null, null, null, null, null, null, null, null, null,
            null, null, null, null, null, null, null, null, null, null);",
    );
    let mut source = db.source(|_| {}).unwrap();
    let mut messages = Vec::new();
    run_sync(&mut source, &SyncOptions::default(), &mut messages).unwrap();
    // MariaDB's `json` is `longtext` with a check: text, as the catalog says.
    let table = source.discover().unwrap().remove(0);
    let types: Vec<String> = table
        .columns
        .iter()
        .map(|c| match c.extension {
            Some(e) => format!("{}={}", c.name, e.name()),
            None => format!("{}={}", c.name, c.data_type),
        })
        .collect();
    assert_eq!(
        types.join(" "),
        "id=Int64 t=Int8 tu=UInt8 s=Int16 m=Int32 i=UInt32 b=UInt64 d=Decimal128(12, 3) \
         d50=Decimal256(50, 10) f=Float32 g=Float64 c=Utf8 v=Utf8 tx=Utf8 e=Utf8 bin=Binary \
         bl=Binary bits=UInt64 day=Date32 dt=Timestamp(µs) ts=Timestamp(µs, \"UTC\") \
         tm=Duration(µs) y=Int16 j=Utf8"
    );
    assert!(table.columns[0].primary_key);
    let rows = printed(&messages, "every_type");
    assert_eq!(
        rows[0],
        [
            "1",
            "-128",
            "255",
            "-32768",
            "-8388608",
            "4294967295",
            "18446744073709551615",
            "-1234.567",
            "1234567890123456789012345678901234567890.0123456789",
            "1.5",
            "3.141592653589793",
            "abc",
            "héllo",
            "line\nbreak",
            "b",
            "00ff10",
            "deadbeef",
            "2730",
            "2024-02-29",
            "1999-12-31T23:59:59.999999",
            "2024-01-01T00:00:00.000001Z",
            "-PT3020399S",
            "2155",
            "{\"a\": [1, 2]}",
        ]
    );
    assert!(rows[1][1..].iter().all(|v| v.is_empty()), "{:?}", rows[1]);
}

#[test]
fn incremental_tables_read_only_rows_past_the_saved_cursor() {
    let mut db = Scratch::new("incremental");
    db.sql(
        "create table $d.events (id bigint primary key, updated_at datetime not null, note text);
         insert into $d.events select seq, '2024-01-01 00:00:00' + interval (seq div 2) second,
           concat('n', seq) from $d.seq_1_to_9;",
    );
    let mut source = db
        .source(|s| {
            s.incremental.insert("events".into(), "updated_at".into());
            s.rows_per_batch = 4;
        })
        .unwrap();
    let mut messages = Vec::new();
    run_sync(&mut source, &SyncOptions::default(), &mut messages).unwrap();
    assert_eq!(printed(&messages, "events").len(), 9);
    let key = "events.updated_at".to_string();
    assert_eq!(
        states(&messages),
        [
            (key.clone(), "2024-01-01 00:00:01".to_string()),
            (key.clone(), "2024-01-01 00:00:03".to_string()),
            (key.clone(), "2024-01-01 00:00:04".to_string()),
        ]
    );
    db.sql(
        "insert into $d.events values (10, '2024-01-01 00:00:05', 'new');
         update $d.events set updated_at = '2024-01-01 00:00:09', note = 'changed' where id = 1",
    );
    let before = messages.len();
    run_sync(&mut source, &SyncOptions::default(), &mut messages).unwrap();
    let ids: Vec<String> = printed(&messages[before..], "events")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(ids, ["10", "1"]);
}

#[test]
fn what_cannot_be_read_is_named_and_refusals_are_unauthorized() {
    let mut db = Scratch::new("refused");
    db.sql("create table $d.shapes (id bigint, location point)");
    let err = db.source(|_| {}).unwrap().discover().unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotSupported);
    assert!(
        err.message.contains(&format!(
            "table `{}.shapes`, column `location` has type `point`",
            db.name
        )),
        "{err}"
    );
    db.sql("drop table $d.shapes; create table $d.d (id bigint, day date); insert into $d.d values (1, '0000-00-00')");
    let mut source = db.source(|_| {}).unwrap();
    let err = run_sync(&mut source, &SyncOptions::default(), &mut Vec::new()).unwrap_err();
    assert!(
        err.message.contains(&format!("table `{}.d`", db.name)),
        "{err}"
    );
    assert!(err.message.contains("column `day`"), "{err}");
    // The source reconnected: it still answers.
    source.test_connection().unwrap();
    // A table dropped between discovery and its read is named with the server's error.
    db.sql("drop table $d.d; create table $d.gone (id bigint); insert into $d.gone values (1)");
    let mut source = db.source(|_| {}).unwrap();
    source.discover().unwrap();
    db.sql("drop table $d.gone");
    let err = run_sync(&mut source, &SyncOptions::default(), &mut Vec::new()).unwrap_err();
    assert!(
        err.message.contains(&format!(
            "table `{}.gone`: MySQL at 127.0.0.1:3306: ERROR 1146",
            db.name
        )),
        "{err}"
    );
    let err = MySql::new(spec("mysql://quarry_nobody:x@127.0.0.1:3306/test".into()))
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::Unauthorized, "{err}");
}

#[test]
fn a_table_split_by_key_ranges_returns_each_row_exactly_once() {
    let mut db = Scratch::new("split");
    // Keys with gaps and negatives, and a table big enough by the estimate to be split.
    db.sql(
        "create table $d.big (id int primary key, v text);
         insert into $d.big select cast(seq as signed) * 7 - 20000, concat('v', seq) from $d.seq_1_to_20000;
         analyze table $d.big;
         create table $d.small (id bigint primary key);
         insert into $d.small values (1), (2);
         create table $d.myisam (id int primary key) engine = MyISAM;
         insert into $d.myisam select seq from $d.seq_1_to_20000;",
    );
    let split = |s: &mut Spec| {
        s.split_rows = 4_000;
        s.concurrency = 3;
        s.rows_per_batch = 1_000;
    };
    let mut source = db.source(split).unwrap();
    source.discover().unwrap();
    let [big, not_innodb, _] = source.discovered.clone().unwrap().try_into().unwrap();
    // A MyISAM table has no snapshots to read ranges in: it is read whole.
    assert_eq!(
        crate::source::ranges(&mut source.conn, &source.settings, &not_innodb).unwrap(),
        [(None, None)]
    );
    let ranges = crate::source::ranges(&mut source.conn, &source.settings, &big).unwrap();
    assert_eq!(
        ranges,
        [
            (None, Some(26_671)),
            (Some(26_671), Some(73_336)),
            (Some(73_336), None)
        ]
    );
    let expected: Vec<i64> = (1..=20000).map(|i| i * 7 - 20000).collect();
    let ids = |messages: &[Message], table: &str| -> Vec<i64> {
        let mut ids: Vec<i64> = printed(messages, table)
            .iter()
            .map(|r| r[0].parse().unwrap())
            .collect();
        ids.sort_unstable();
        ids
    };
    let in_order = |messages: &[Message]| -> Vec<i64> {
        printed(messages, "big")
            .iter()
            .map(|r| r[0].parse().unwrap())
            .collect()
    };
    let mut messages = Vec::new();
    run_sync(&mut source, &SyncOptions::default(), &mut messages).unwrap();
    // The ranges were read at once: rows of the last come among the first.
    assert!(
        in_order(&messages)[..1000].iter().any(|&id| id >= 73_336),
        "not read as ranges at once"
    );
    assert_eq!(ids(&messages, "big"), expected);
    assert_eq!(ids(&messages, "small"), [1, 2]);
    // The snapshots' transactions and the lock are over: the table takes writes, and the
    // source's connection reads on.
    db.sql("insert into $d.big values (1000000, 'after')");
    source.test_connection().unwrap();

    // A user who may not lock tables reads the table whole, on one connection.
    let user = format!("quarry_nolock_{}", std::process::id());
    db.sql(&format!(
        "create or replace user {user}@'%' identified by 'pw';
         grant select on $d.* to {user}@'%'"
    ));
    let mut no_lock = spec(format!("mysql://{user}:pw@127.0.0.1:3306/{}", db.name));
    split(&mut no_lock);
    let read = MySql::new(no_lock).and_then(|mut source| {
        let mut messages = Vec::new();
        run_sync(&mut source, &SyncOptions::default(), &mut messages)?;
        Ok(messages)
    });
    db.sql(&format!("drop user {user}@'%'"));
    let read = read.unwrap();
    // In key order: one stream.
    assert!(in_order(&read).is_sorted(), "read as ranges");
    let mut expected = expected;
    expected.push(1_000_000);
    assert_eq!(ids(&read, "big"), expected);
}

#[test]
fn connection_strings_parse_as_urls() {
    let c = Config::parse("mysql://app:p%40ss@db.example.com:3307/shop?ssl=off").unwrap();
    assert_eq!(
        (
            c.user.as_str(),
            c.password.as_deref(),
            c.host.as_str(),
            c.port,
            c.database.as_deref()
        ),
        ("app", Some("p@ss"), "db.example.com", 3307, Some("shop"))
    );
    let c = Config::parse("mariadb://127.0.0.1").unwrap();
    assert_eq!((c.user.as_str(), c.port, c.database), ("root", 3306, None));
    assert!(
        Config::parse("postgres://x")
            .unwrap_err()
            .message
            .contains("mysql://user:password@host:3306/database")
    );
    assert!(
        Config::parse("mysql://h:0/x")
            .unwrap_err()
            .message
            .contains("port `0`")
    );
}

/// The destination, writing into the scratch database.
fn destination(db: &Scratch) -> MySql {
    MySql::new(spec(format!("mysql://root@127.0.0.1:3306/{}", db.name))).unwrap()
}

#[test]
fn every_type_of_the_test_source_reads_back_as_it_was_written() {
    use arrow_schema::{DataType, TimeUnit};
    use quarry_plugin_test::types;
    use quarry_sdk::{Destination, RecordBatch};

    let db = Scratch::new("dest_types");
    let mut dest = destination(&db);
    let table = types::table();
    dest.migrate_table(&table, false).unwrap();
    let written = RecordBatch::try_new(table.schema(), types::columns(0, 30).unwrap()).unwrap();
    dest.insert(&table, written.clone()).unwrap();
    // Upserted on the key: the same rows again change nothing.
    dest.insert(&table, written.clone()).unwrap();
    dest.flush().unwrap();
    let read = dest.read(&table).unwrap();
    assert_eq!(read[0].num_rows(), 30);
    // The catalog's account of the table is what was asked for: a second migration is a no-op.
    let existing = dest.existing_table(&table).unwrap().unwrap();
    assert_eq!(quarry_sdk::migrate::changes(&existing, &table), []);
    for (i, field) in table.schema().fields().iter().enumerate() {
        let (got, want) = (read[0].column(i), written.column(i));
        match field.name().as_str() {
            // json keeps the value, not its spelling.
            "json" | "record" | "int_list" => {
                let values = |a: &arrow_array::ArrayRef| -> Vec<Option<String>> {
                    let text = quarry_sdk::json::json_text(
                        &std::sync::Arc::new(field.as_ref().clone()),
                        a.as_ref(),
                    )
                    .unwrap();
                    let text = arrow_array::cast::AsArray::as_string::<i32>(&text).clone();
                    text.iter().map(|v| v.map(serde_json_value)).collect()
                };
                assert_eq!(values(got), values(want), "column {}", field.name());
            }
            // MySQL keeps microseconds.
            "timestamp_ns" => {
                let micros = |a: &arrow_array::ArrayRef| {
                    arrow_cast::cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None)).unwrap()
                };
                assert_eq!(micros(got).as_ref(), micros(want).as_ref());
            }
            name => assert_eq!(got.as_ref(), want.as_ref(), "column {name}"),
        }
    }
}

/// A JSON text with its spelling normalised (key order kept, spaces dropped).
fn serde_json_value(text: &str) -> String {
    let mut out = Vec::new();
    quarry_sdk::json::push_compact_json(text.as_bytes(), &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn upserts_keep_the_last_row_of_a_key_and_stale_rows_are_deleted() {
    use arrow_array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
    use quarry_sdk::{Column, DataType, Destination, Table, TimeUnit};

    let mut db = Scratch::new("dest_upsert");
    let mut dest = destination(&db);
    let table = Table::new("items")
        .column(Column::new("id", DataType::Int64).primary_key())
        .column(Column::new("name", DataType::Utf8))
        .column(Column::new("_cq_source_name", DataType::Utf8))
        .column(Column::new(
            "_cq_sync_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ));
    dest.migrate_table(&table, false).unwrap();
    let batch = |ids: Vec<i64>, names: Vec<&str>, time: i64| {
        let n = ids.len();
        RecordBatch::try_new(
            table.schema(),
            vec![
                std::sync::Arc::new(Int64Array::from(ids)),
                std::sync::Arc::new(StringArray::from(names)),
                std::sync::Arc::new(StringArray::from(vec!["src"; n])),
                std::sync::Arc::new(
                    TimestampMicrosecondArray::from(vec![time; n]).with_timezone("UTC"),
                ),
            ],
        )
        .unwrap()
    };
    let names = |dest: &mut MySql| -> Vec<String> {
        let read = dest.read(&table).unwrap();
        let mut names: Vec<String> =
            arrow_array::cast::AsArray::as_string::<i32>(read[0].column(1))
                .iter()
                .map(|v| v.unwrap_or_default().to_string())
                .collect();
        names.sort();
        names
    };
    // Tabs, line breaks, backslashes and `\N` survive LOAD DATA's escapes.
    dest.insert(
        &table,
        batch(
            vec![1, 2, 3],
            vec!["a\nb", "tab\there", "back\\slash \\N"],
            1_000_000,
        ),
    )
    .unwrap();
    assert_eq!(names(&mut dest), ["a\nb", "back\\slash \\N", "tab\there"]);
    dest.insert(
        &table,
        batch(vec![2, 2, 4], vec!["b1", "b2", "d"], 2_000_000),
    )
    .unwrap();
    dest.delete_stale("items", "src", 2_000_000).unwrap();
    assert_eq!(names(&mut dest), ["b2", "d"]);
    // Text keys are exact: case and trailing spaces make different keys.
    let keyed = Table::new("keyed").column(Column::new("k", DataType::Utf8).primary_key());
    dest.migrate_table(&keyed, false).unwrap();
    let keys = RecordBatch::try_new(
        keyed.schema(),
        vec![std::sync::Arc::new(StringArray::from(vec!["a", "A", "a "]))],
    )
    .unwrap();
    dest.insert(&keyed, keys.clone()).unwrap();
    dest.insert(&keyed, keys).unwrap();
    assert_eq!(dest.read(&keyed).unwrap()[0].num_rows(), 3);
    // A column added by a safe migration; the old rows get nulls.
    let wider = table.clone().column(Column::new("note", DataType::Utf8));
    dest.migrate_table(&wider, false).unwrap();
    db.sql("select note from $d.items");
}
