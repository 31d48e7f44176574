//! The source against the real server on 127.0.0.1:5432 (database `test`): each test in a
//! schema of its own, dropped at the end.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, RecordBatch};
use quarry_sdk::{Destination, ErrorKind, Message, Plugin, Result, Source, SyncOptions, run_sync};

use crate::wire::Connection;
use crate::{PostgreSql, Spec};

const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema for one test, dropped (with what is in it) when the test ends.
struct Scratch {
    name: String,
    conn: Connection,
}

impl Scratch {
    fn new(test: &str) -> Scratch {
        let name = format!("quarry_src_{test}_{}", std::process::id());
        let config = crate::config::Config::parse(URL).unwrap();
        let mut conn = Connection::connect(&config).expect("PostgreSQL on 127.0.0.1:5432");
        conn.query(&format!(
            "drop schema if exists {name} cascade; create schema {name}"
        ))
        .unwrap();
        Scratch { name, conn }
    }

    fn sql(&mut self, sql: &str) -> Vec<Vec<Option<String>>> {
        let sql = sql.replace("$s", &self.name);
        self.conn
            .query(&sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .pop()
            .map(|r| r.rows)
            .unwrap_or_default()
    }

    /// The source, reading this schema's tables, with `edit` applied to its spec.
    fn source(&self, edit: impl FnOnce(&mut Spec)) -> Result<PostgreSql> {
        let mut spec = Spec::new(URL);
        spec.tables = vec![format!("{}.*", self.name)];
        edit(&mut spec);
        PostgreSql::new(spec)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self
            .conn
            .query(&format!("drop schema if exists {} cascade", self.name));
    }
}

fn sync(db: &mut PostgreSql, messages: &mut Vec<Message>) -> Result<()> {
    run_sync(db, &SyncOptions::default(), messages)
}

fn batches<'m>(messages: &'m [Message], table: &str) -> Vec<&'m RecordBatch> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Insert(b) if quarry_sdk::table_name(b.schema_ref()) == table => Some(b),
            _ => None,
        })
        .collect()
}

fn ids(messages: &[Message], table: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = batches(messages, table)
        .iter()
        .flat_map(|b| {
            let column = b.column_by_name("id").expect("an id column");
            let column = arrow_cast::cast(column, &arrow_schema::DataType::Int64).unwrap();
            column.as_primitive::<Int64Type>().values().to_vec()
        })
        .collect();
    ids.sort_unstable();
    ids
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

/// Every type the source maps, with edge values and nulls.
const ALL_TYPES: &str = "
create type $s.mood as enum ('sad', 'ok', 'happy');
create domain $s.positive as int4 check (value > 0);
create table $s.every_type (
  id int8 primary key,
  b bool, i2 int2, i4 int4, pos $s.positive, o oid, f4 real, f8 double precision,
  n12 numeric(12, 3), n20 numeric(20, 0), n60 numeric(60, 10), nany numeric,
  t text, vc varchar(10), ch char(3), nm name, m $s.mood, x xml,
  by bytea, d date, ts timestamp, tstz timestamptz, tm time, iv interval,
  u uuid, j json, jb jsonb, ip inet, net cidr, mac macaddr,
  ai int4[], at text[], an numeric(5, 2)[], au uuid[], ats timestamptz[]
);
insert into $s.every_type values
 (1, true, -32768, 2147483647, 7, 4294967295, 1.5, 3.141592653589793,
  -1234.567, 18446744073709551615, 12345678901234567890123456789012345678901234567890.0123456789,
  'NaN', 'héllo', 'abc', 'ab', 'pg_name', 'happy', '<a>1</a>',
  '\\x00ff', '2024-02-29', '1999-12-31 23:59:59.999999', '2024-01-01 00:00:00.000001+00',
  '23:59:59.999999', '1 year 2 months 3 days 04:05:06.000007',
  '12121212-1212-1212-1212-121212121212', '{\"a\": [1, 2], \"b\": \"x\"}', '{\"z\": 1, \"a\": null}',
  '10.1.2.3', '10.1.2.0/24', '08:00:2b:01:02:03',
  '{1, NULL, -3}', '{\"a b\", \"\", NULL}', '{1.25, -0.5}',
  '{00112233-4455-6677-8899-aabbccddeeff}', '{2024-01-01 12:00:00+00}'),
 (2, false, 0, -2147483648, 1, 0, '-Infinity', 'NaN',
  0.005, 0, -0.0000000001, '-12.50', '', '', '', '', 'sad', '',
  '\\x', '0001-01-01', '4713-01-01 00:00:00 BC', '1970-01-01 00:00:00+00',
  '00:00:00', '-1 days -00:00:00.000001',
  '00000000-0000-0000-0000-000000000000', 'null', '[]',
  '2001:db8::1', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff',
  '{}', '{}', '{}', '{}', '{}'),
 (3, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
  null, null, null, null, null, null, null, null, null, null, null, null, null, null,
  null, null, null, null, null);
";

#[test]
fn every_type_reads_back_exactly_and_round_trips_through_the_destination() {
    let mut db = Scratch::new("types");
    db.sql(ALL_TYPES);
    let mut source = db.source(|_| {}).unwrap();
    let mut messages = Vec::new();
    sync(&mut source, &mut messages).unwrap();
    let read = batches(&messages, "every_type");
    assert_eq!(read.iter().map(|b| b.num_rows()).sum::<usize>(), 3);

    // The Arrow types the catalog maps to.
    let table = match &messages[0] {
        Message::MigrateTable(t) => t.clone(),
        other => panic!("first message: {other:?}"),
    };
    let types: Vec<String> = table
        .columns
        .iter()
        .filter(|c| !c.name.starts_with("_cq_"))
        .map(|c| match c.extension {
            Some(e) => format!("{}={}", c.name, e.name()),
            None => format!("{}={}", c.name, c.data_type),
        })
        .collect();
    assert_eq!(
        types.join(" "),
        "id=Int64 b=Boolean i2=Int16 i4=Int32 pos=Int32 o=Int64 f4=Float32 f8=Float64 \
         n12=Decimal128(12, 3) n20=Decimal128(20, 0) n60=Decimal256(60, 10) nany=Utf8 t=Utf8 \
         vc=Utf8 ch=Utf8 nm=Utf8 m=Utf8 x=Utf8 by=Binary d=Date32 ts=Timestamp(µs) \
         tstz=Timestamp(µs, \"UTC\") tm=Time64(µs) iv=Interval(MonthDayNano) u=uuid j=json \
         jb=json ip=inet net=inet mac=mac ai=List(Int32) at=List(Utf8) \
         an=List(Decimal128(5, 2)) au=List(Utf8) ats=List(Timestamp(µs, \"UTC\"))"
    );
    assert!(
        table
            .columns
            .iter()
            .any(|c| c.name == "id" && c.primary_key)
    );

    // Written by the destination into a schema of its own, every value reads back the same:
    // compared as PostgreSQL prints each one (as JSON, so `char(3)` keeps its padding).
    let copy = format!("{}_copy", db.name);
    db.sql(&format!("drop schema if exists {copy} cascade"));
    let mut destination = PostgreSql::new(Spec {
        schema: copy.clone(),
        ..Spec::new(URL)
    })
    .unwrap();
    destination.migrate_table(&table, false).unwrap();
    for batch in &read {
        destination.insert(&table, (*batch).clone()).unwrap();
    }
    let columns: Vec<String> = table
        .columns
        .iter()
        .filter(|c| !c.name.starts_with("_cq_"))
        .map(|c| c.name.clone())
        .collect();
    let printed = |db: &mut Scratch, schema: &str| {
        let list: Vec<String> = columns
            .iter()
            .map(|c| format!("to_jsonb({c}) #>> '{{}}'"))
            .collect();
        db.sql(&format!(
            "set timezone = 'UTC'; select {} from {schema}.every_type order by id",
            list.join(", ")
        ))
    };
    let (original, copied) = (printed(&mut db, "$s"), printed(&mut db, &copy));
    db.sql(&format!("drop schema {copy} cascade"));
    for (row, (a, b)) in original.iter().zip(&copied).enumerate() {
        for (i, (a, b)) in a.iter().zip(b).enumerate() {
            assert_eq!(a, b, "row {row}, column {}", columns[i]);
        }
    }
    assert_eq!((original.len(), copied.len()), (3, 3));
    // A few values, as Arrow holds them.
    let first = read[0];
    let text = |name: &str, row: usize| -> String {
        let column = first.column_by_name(name).unwrap();
        arrow_cast::display::ArrayFormatter::try_new(column, &Default::default())
            .unwrap()
            .value(row)
            .to_string()
    };
    assert_eq!(text("n20", 0), "18446744073709551615");
    assert_eq!(text("nany", 0), "NaN");
    assert_eq!(text("nany", 1), "-12.50");
    assert_eq!(text("ts", 1), "-4712-01-01T00:00:00");
    assert_eq!(text("ip", 0), "31302e312e322e33"); // "10.1.2.3", bytes
    assert!(first.column_by_name("i4").unwrap().is_null(2));
}

#[test]
fn incremental_tables_read_only_rows_past_the_saved_cursor_and_none_is_lost() {
    let mut db = Scratch::new("incremental");
    db.sql(
        "create table $s.events (id int8 primary key, updated_at timestamptz not null, note text);
         insert into $s.events select i, timestamptz '2024-01-01 00:00:00+00' + (i / 2) * interval '1 second', 'n' || i
         from generate_series(1, 9) i;",
    );
    let mut source = db
        .source(|s| {
            s.incremental.insert("events".into(), "updated_at".into());
            s.rows_per_batch = 4;
        })
        .unwrap();
    let mut messages = Vec::new();
    sync(&mut source, &mut messages).unwrap();
    assert_eq!(ids(&messages, "events"), (1..=9).collect::<Vec<_>>());
    // Batches of 4 rows: rows 1-4 hold seconds 0,1,1,2 (row 5 is second 2 as well), so after
    // the first batch only second 1 is safe; after rows 5-8 (2,3,3,4) second 3; at the end 4.
    let key = "events.updated_at".to_string();
    assert_eq!(
        states(&messages),
        [
            (key.clone(), "2024-01-01 00:00:01+00".to_string()),
            (key.clone(), "2024-01-01 00:00:03+00".to_string()),
            (key.clone(), "2024-01-01 00:00:04+00".to_string()),
        ]
    );
    assert!(source.discover().unwrap()[0].incremental);

    // New rows, one at the last saved value's second (read again: past it means after it).
    db.sql(
        "insert into $s.events values (10, '2024-01-01 00:00:04.5+00', 'late'), \
         (11, '2024-01-01 00:00:09+00', 'new'), (12, '2023-12-31 00:00:00+00', 'too old');
         update $s.events set updated_at = '2024-01-01 00:00:10+00', note = 'changed' where id = 1",
    );
    let before = messages.len();
    sync(&mut source, &mut messages).unwrap();
    assert_eq!(ids(&messages[before..], "events"), [1, 10, 11]);
    assert_eq!(
        states(&messages[before..]).last().unwrap().1,
        "2024-01-01 00:00:10+00"
    );
    // Nothing new: nothing read, no cursor moved.
    let before = messages.len();
    sync(&mut source, &mut messages).unwrap();
    assert!(ids(&messages[before..], "events").is_empty());
    assert!(states(&messages[before..]).is_empty());
}

#[test]
fn a_table_split_by_key_ranges_returns_each_row_exactly_once() {
    let mut db = Scratch::new("split");
    // Keys with gaps and negatives, and a table big enough by the estimate to be split.
    db.sql(
        "create table $s.big (id int4 primary key, v text);
         insert into $s.big select i * 7 - 20000, 'v' || i from generate_series(1, 20000) i;
         analyze $s.big;
         create table $s.small (id int8 primary key);
         insert into $s.small values (1), (2);",
    );
    let mut source = db
        .source(|s| {
            s.split_rows = 4_000;
            s.concurrency = 3;
            s.rows_per_batch = 1_000;
        })
        .unwrap();
    let tables = source.discover().unwrap();
    assert_eq!(tables.len(), 2);
    let big = source.discovered.as_ref().unwrap()[0].clone();
    let ranges = crate::source::ranges(&mut source.conn, &source.settings, &big).unwrap();
    assert_eq!(
        ranges,
        [
            (None, Some(26_671)),
            (Some(26_671), Some(73_336)),
            (Some(73_336), None)
        ]
    );
    let mut messages = Vec::new();
    sync(&mut source, &mut messages).unwrap();
    let expected: Vec<i64> = (1..=20000).map(|i| i * 7 - 20000).collect();
    assert_eq!(ids(&messages, "big"), expected);
    assert_eq!(ids(&messages, "small"), [1, 2]);
    // The connection reads on afterwards (the snapshot's transaction is over).
    assert_eq!(
        db.sql("select count(*) from $s.big")[0][0].as_deref(),
        Some("20000")
    );
    source.test_connection().unwrap();
}

#[test]
fn what_cannot_be_read_is_named_with_its_table_and_column() {
    let mut db = Scratch::new("refused");
    db.sql("create table $s.shapes (id int8, location point)");
    let err = db.source(|_| {}).unwrap().discover().unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotSupported);
    assert!(
        err.message.contains(&format!(
            "table `{}.shapes`, column `location` has type `point`",
            db.name
        )),
        "{err}"
    );
    assert!(err.message.contains("create view"), "{err}");

    db.sql("drop table $s.shapes; create table $s.gone (id int8); insert into $s.gone values (1)");
    let mut source = db.source(|_| {}).unwrap();
    source.discover().unwrap();
    db.sql("drop table $s.gone");
    let err = sync(&mut source, &mut Vec::new()).unwrap_err();
    assert!(
        err.message
            .contains(&format!("table `{}.gone`: PostgreSQL at", db.name)),
        "{err}"
    );
    assert!(err.message.contains("42P01"), "{err}");

    db.sql("create table $s.t (id int8)");
    let err = db
        .source(|s| {
            s.incremental.insert("t".into(), "updated_at".into());
        })
        .unwrap()
        .discover()
        .unwrap_err();
    assert!(err.message.contains("has no column `updated_at`"), "{err}");
    let err = db
        .source(|s| {
            s.incremental.insert("nope".into(), "id".into());
        })
        .unwrap()
        .discover()
        .unwrap_err();
    assert!(
        err.message.contains("`nope` is not one of the tables"),
        "{err}"
    );
    let other = format!("{}_other", db.name);
    db.sql(&format!(
        "drop schema if exists {other} cascade; create schema {other}; create table {other}.t (id int8)"
    ));
    let err = db
        .source(|s| s.tables.push(format!("{other}.*")))
        .unwrap()
        .discover()
        .unwrap_err();
    db.sql(&format!("drop schema {other} cascade"));
    assert!(err.message.contains("would both be table `t`"), "{err}");
}
