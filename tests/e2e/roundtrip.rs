//! Property tests of every destination's type mapping: random Arrow batches, rich in edge values
//! (each type's extremes, NaN and infinities, empty and awkward text, nulls inside lists and
//! structs), are written through a destination plugin as the engine writes them (migrate, insert,
//! flush) and read back with the plugin's own `read` — for files, with the format's reader. Every
//! value must come back exactly, or changed only as the destination's documented mapping says
//! (`Dest::stored`: PostgreSQL keeps microseconds, DuckDB's `TIME` too, and so on).
//!
//! Each run draws a new seed and prints it; `QUARRY_PROPTEST_SEED=<n>` replays a failure and
//! `QUARRY_PROPTEST_CASES=<n>` (default 6 tables per destination) runs longer.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Int64Builder, ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, Time64MicrosecondType, Time64NanosecondType, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, BinaryArray, BooleanArray, FixedSizeBinaryArray,
    Int64Array, LargeStringArray, PrimitiveArray, RecordBatch, StringArray, StructArray,
};
use arrow_buffer::NullBuffer;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, Field, Fields, SchemaRef, TimeUnit};
use quarry::plan::{self, Environment};
use quarry::runtime::wasm::WasmRuntime;
use quarry_sdk::fuzz::Mutator;
use quarry_sdk::{Column, Extension, Table};

use crate::support::{QUARRY, Schema, Workdir, read_parquet, shared_cache, warm};

/// A pseudo-random source with the helpers the generators need.
struct Gen(Mutator);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0.random()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Clone>(&mut self, values: &[T]) -> T {
        values[self.below(values.len() as u64) as usize].clone()
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi as i128 - lo as i128 + 1) as u128;
        let r = ((self.next() as u128) << 64 | self.next() as u128) % span;
        (lo as i128 + r as i128) as i64
    }

    /// A value, or `None` for one row in eight.
    fn maybe<T>(&mut self, value: impl FnOnce(&mut Self) -> T) -> Option<T> {
        (!self.one_in(8)).then(|| value(self))
    }

    /// An edge value half of the time, else `random`.
    fn edgy<T: Clone>(&mut self, edges: &[T], random: impl FnOnce(&mut Self) -> T) -> T {
        if self.one_in(2) {
            self.pick(edges)
        } else {
            random(self)
        }
    }

    fn text(&mut self) -> String {
        const EDGES: &[&str] = &[
            "",
            " ",
            "'",
            "''",
            "\"",
            "\\",
            "\\N",
            "\\\\N",
            "NULL",
            "null",
            "\t",
            "\n",
            "\r\n",
            "a,b",
            "a\tb\nc",
            "ü",
            "€",
            "𝄞",
            "😀\u{200d}🔥",
            "\u{7f}",
            "\u{1}",
            "\u{feff}",
            "  padded  ",
            "1e5",
            "-0",
            "{\"a\":1}",
            "[1]",
            "😀'\\\"",
        ];
        if self.one_in(2) {
            return self.pick(EDGES).to_string();
        }
        let len = if self.one_in(20) {
            2000 + self.below(3000)
        } else {
            self.below(40)
        };
        (0..len).map(|_| self.char()).collect()
    }

    fn char(&mut self) -> char {
        let code = match self.below(10) {
            0 => self.between(1, 0x1f),
            1 => self.between(0x80, 0x2ff),
            2 => self.between(0x4e00, 0x9fff),
            3 => self.between(0x1f300, 0x1faff),
            4 => self.pick(&[0x27, 0x22, 0x5c, 0x2c, 0x7b, 0x7d, 0x5b, 0x5d]),
            _ => self.between(0x20, 0x7e),
        };
        char::from_u32(code as u32).expect("the ranges hold only scalar values")
    }

    fn bytes(&mut self) -> Vec<u8> {
        match self.below(6) {
            0 => Vec::new(),
            1 => (0..=255).collect(),
            2 => vec![0],
            _ => (0..self.below(64)).map(|_| self.next() as u8).collect(),
        }
    }

    fn json(&mut self, depth: u32) -> serde_json::Value {
        use serde_json::Value;
        let leaf = depth == 0 || self.one_in(2);
        match self.below(if leaf { 5 } else { 7 }) {
            0 => Value::Null,
            1 => Value::Bool(self.one_in(2)),
            2 => Value::from(self.edgy(&[0, -1, i64::MIN, i64::MAX], |g| g.next() as i64 >> 20)),
            3 => Value::from(self.edgy(&[0.5, -1.25, 1e-7, 12345.678], |g| {
                g.between(-1_000_000, 1_000_000) as f64 / 64.0
            })),
            4 => Value::from(self.text()),
            5 => Value::Array((0..self.below(4)).map(|_| self.json(depth - 1)).collect()),
            _ => Value::Object(
                (0..self.below(4))
                    .map(|_| (self.text(), self.json(depth - 1)))
                    .collect(),
            ),
        }
    }

    fn inet(&mut self) -> String {
        const EDGES: &[&str] = &[
            "0.0.0.0",
            "255.255.255.255",
            "127.0.0.1",
            "10.0.0.0/8",
            "192.168.1.5/24",
            "::",
            "::1",
            "2001:db8::/32",
            "fe80::1:2:3:4",
            "::ffff:1.2.3.4",
        ];
        if self.one_in(2) {
            return self.pick(EDGES).to_string();
        }
        if self.one_in(2) {
            let a = std::net::Ipv4Addr::from(self.next() as u32);
            match self.below(3) {
                0 => format!("{a}/{}", self.below(32)),
                _ => a.to_string(),
            }
        } else {
            let mut words = [0u16; 8];
            for w in &mut words {
                // Runs of zeros, so that `::` compression shows up.
                *w = if self.one_in(3) {
                    0
                } else {
                    self.next() as u16
                };
            }
            let a = std::net::Ipv6Addr::from(words);
            match self.below(3) {
                0 => format!("{a}/{}", self.below(128)),
                _ => a.to_string(),
            }
        }
    }
}

/// One column of the generated table: its SDK column and how to fill it.
struct Generated {
    column: Column,
    fill: fn(&mut Gen, usize) -> ArrayRef,
}

fn primitive<T: ArrowPrimitiveType>(
    g: &mut Gen,
    n: usize,
    edges: &[T::Native],
    random: impl Fn(&mut Gen) -> T::Native,
) -> PrimitiveArray<T> {
    (0..n)
        .map(|_| g.maybe(|g| g.edgy(edges, &random)))
        .collect()
}

macro_rules! column {
    ($name:literal, $data_type:expr, |$g:ident, $n:ident| $fill:expr) => {
        Generated {
            column: Column::new($name, $data_type),
            fill: |$g, $n| Arc::new($fill),
        }
    };
}

const DAY_US: i64 = 86_400_000_000;
/// 0001-01-01 and 9999-12-31 as days since 1970: the dates every destination stores.
const FIRST_DAY: i64 = -719_162;
const LAST_DAY: i64 = 2_932_896;

fn timestamps<T: ArrowPrimitiveType<Native = i64>>(
    g: &mut Gen,
    n: usize,
    per_us: f64,
) -> PrimitiveArray<T> {
    let scale = |us: i64| (us as f64 * per_us) as i64;
    let (lo, hi) = (
        scale(FIRST_DAY * DAY_US),
        scale((LAST_DAY + 1) * DAY_US) - 1,
    );
    primitive::<T>(
        g,
        n,
        &[lo, hi, 0, -1, 1, scale(951_782_400_000_000)],
        move |g| g.between(lo, hi),
    )
}

/// Any nanosecond timestamp from the first whole microsecond on: before it, the microsecond a
/// destination keeps is one no nanosecond timestamp can hold.
fn nanos(g: &mut Gen, n: usize) -> PrimitiveArray<TimestampNanosecondType> {
    const FIRST: i64 = i64::MIN / 1000 * 1000;
    primitive::<TimestampNanosecondType>(g, n, &[FIRST, i64::MAX, 0, -1, 1], |g| {
        (g.next() as i64).max(FIRST)
    })
}

fn columns() -> Vec<Generated> {
    let item = |t: DataType| Arc::new(Field::new("item", t, true));
    let record = Fields::from(vec![
        Field::new("n", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]);
    vec![
        column!("boolean", DataType::Boolean, |g, n| (0..n)
            .map(|_| g.maybe(|g| g.one_in(2)))
            .collect::<BooleanArray>()),
        column!("int8", DataType::Int8, |g, n| primitive::<Int8Type>(
            g,
            n,
            &[i8::MIN, i8::MAX, 0, -1],
            |g| g.next() as i8
        )),
        column!("int16", DataType::Int16, |g, n| primitive::<Int16Type>(
            g,
            n,
            &[i16::MIN, i16::MAX, 0, -1],
            |g| g.next() as i16
        )),
        column!("int32", DataType::Int32, |g, n| primitive::<Int32Type>(
            g,
            n,
            &[i32::MIN, i32::MAX, 0, -1],
            |g| g.next() as i32
        )),
        column!("int64", DataType::Int64, |g, n| primitive::<Int64Type>(
            g,
            n,
            &[i64::MIN, i64::MAX, 0, -1],
            |g| g.next() as i64
        )),
        column!("uint8", DataType::UInt8, |g, n| primitive::<UInt8Type>(
            g,
            n,
            &[0, u8::MAX],
            |g| g.next() as u8
        )),
        column!("uint16", DataType::UInt16, |g, n| primitive::<UInt16Type>(
            g,
            n,
            &[0, u16::MAX],
            |g| g.next() as u16
        )),
        column!("uint32", DataType::UInt32, |g, n| primitive::<UInt32Type>(
            g,
            n,
            &[0, u32::MAX],
            |g| g.next() as u32
        )),
        column!("uint64", DataType::UInt64, |g, n| primitive::<UInt64Type>(
            g,
            n,
            &[0, u64::MAX, i64::MAX as u64 + 1],
            |g| g.next()
        )),
        column!(
            "float32",
            DataType::Float32,
            |g, n| primitive::<Float32Type>(
                g,
                n,
                &[
                    0.0,
                    -0.0,
                    1.0,
                    0.1,
                    f32::MIN,
                    f32::MAX,
                    f32::MIN_POSITIVE,
                    1e-45,
                    f32::EPSILON,
                    f32::NAN,
                    f32::INFINITY,
                    f32::NEG_INFINITY
                ],
                |g| f32::from_bits(g.next() as u32)
            )
        ),
        column!(
            "float64",
            DataType::Float64,
            |g, n| primitive::<Float64Type>(
                g,
                n,
                &[
                    0.0,
                    -0.0,
                    1.0,
                    0.1,
                    f64::MIN,
                    f64::MAX,
                    f64::MIN_POSITIVE,
                    5e-324,
                    f64::EPSILON,
                    f64::NAN,
                    f64::INFINITY,
                    f64::NEG_INFINITY
                ],
                |g| f64::from_bits(g.next())
            )
        ),
        column!("decimal", DataType::Decimal128(38, 9), |g, n| {
            let max = 10i128.pow(38) - 1;
            primitive::<Decimal128Type>(g, n, &[0, 1, -1, max, -max, 1_000_000_000], move |g| {
                ((g.next() as i128) << 64 | g.next() as i128) % (max + 1)
            })
            .with_precision_and_scale(38, 9)
            .expect("a valid decimal type")
        }),
        column!("small_decimal", DataType::Decimal128(5, 2), |g, n| {
            primitive::<Decimal128Type>(g, n, &[0, 99_999, -99_999, 5], |g| {
                g.between(-99_999, 99_999) as i128
            })
            .with_precision_and_scale(5, 2)
            .expect("a valid decimal type")
        }),
        column!("text", DataType::Utf8, |g, n| (0..n)
            .map(|_| g.maybe(Gen::text))
            .collect::<StringArray>()),
        column!("large_text", DataType::LargeUtf8, |g, n| (0..n)
            .map(|_| g.maybe(Gen::text))
            .collect::<LargeStringArray>()),
        column!("binary", DataType::Binary, |g, n| (0..n)
            .map(|_| g.maybe(Gen::bytes))
            .collect::<BinaryArray>()),
        column!("date", DataType::Date32, |g, n| primitive::<Date32Type>(
            g,
            n,
            &[FIRST_DAY as i32, LAST_DAY as i32, 0, -1, 11_016],
            |g| g.between(FIRST_DAY, LAST_DAY) as i32
        )),
        column!(
            "time_us",
            DataType::Time64(TimeUnit::Microsecond),
            |g, n| {
                primitive::<Time64MicrosecondType>(g, n, &[0, DAY_US - 1, 1], |g| {
                    g.between(0, DAY_US - 1)
                })
            }
        ),
        column!("time_ns", DataType::Time64(TimeUnit::Nanosecond), |g, n| {
            primitive::<Time64NanosecondType>(g, n, &[0, DAY_US * 1000 - 1, 1, 999], |g| {
                g.between(0, DAY_US * 1000 - 1)
            })
        }),
        column!(
            "ts_s",
            DataType::Timestamp(TimeUnit::Second, None),
            |g, n| timestamps::<TimestampSecondType>(g, n, 1e-6)
        ),
        column!(
            "ts_ms",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            |g, n| timestamps::<TimestampMillisecondType>(g, n, 1e-3)
        ),
        column!(
            "ts_us",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            |g, n| timestamps::<TimestampMicrosecondType>(g, n, 1.0)
        ),
        column!(
            "ts_us_utc",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            |g, n| timestamps::<TimestampMicrosecondType>(g, n, 1.0).with_timezone("UTC")
        ),
        column!(
            "ts_ns",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            |g, n| nanos(g, n)
        ),
        column!(
            "ts_ns_utc",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            |g, n| nanos(g, n).with_timezone("UTC")
        ),
        column!("int_list", DataType::List(item(DataType::Int64)), |g, n| {
            let mut list = ListBuilder::new(Int64Builder::new());
            for _ in 0..n {
                if g.one_in(8) {
                    list.append_null();
                    continue;
                }
                for _ in 0..g.below(5) {
                    let v = g.maybe(|g| g.edgy(&[i64::MIN, i64::MAX, 0], |g| g.next() as i64));
                    list.values().append_option(v);
                }
                list.append(true);
            }
            list.finish()
        }),
        column!("text_list", DataType::List(item(DataType::Utf8)), |g, n| {
            let mut list = ListBuilder::new(StringBuilder::new());
            for _ in 0..n {
                if g.one_in(8) {
                    list.append_null();
                    continue;
                }
                for _ in 0..g.below(4) {
                    let v = g.maybe(Gen::text);
                    list.values().append_option(v);
                }
                list.append(true);
            }
            list.finish()
        }),
        Generated {
            column: Column::new("record", DataType::Struct(record.clone())),
            fill: |g, n| {
                let nulls: NullBuffer = (0..n).map(|_| !g.one_in(8)).collect();
                let numbers: Int64Array = (0..n).map(|_| g.maybe(|g| g.next() as i64)).collect();
                let texts: StringArray = (0..n).map(|_| g.maybe(Gen::text)).collect();
                let fields = Fields::from(vec![
                    Field::new("n", DataType::Int64, true),
                    Field::new("s", DataType::Utf8, true),
                ]);
                Arc::new(
                    StructArray::try_new(
                        fields,
                        vec![Arc::new(numbers), Arc::new(texts)],
                        Some(nulls),
                    )
                    .expect("a valid struct"),
                )
            },
        },
        Generated {
            column: Column::extension("uuid", Extension::Uuid),
            fill: |g, n| {
                let values: Vec<Option<Vec<u8>>> = (0..n)
                    .map(|_| {
                        g.maybe(|g| {
                            g.edgy(&[vec![0; 16], vec![0xff; 16]], |g| {
                                (0..16).map(|_| g.next() as u8).collect()
                            })
                        })
                    })
                    .collect();
                Arc::new(
                    FixedSizeBinaryArray::try_from_sparse_iter_with_size(values.into_iter(), 16)
                        .expect("16-byte values"),
                )
            },
        },
        Generated {
            column: Column::extension("json", Extension::Json),
            fill: |g, n| {
                let values: Vec<Option<String>> =
                    (0..n).map(|_| g.maybe(|g| g.json(2).to_string())).collect();
                Arc::new(BinaryArray::from_iter(
                    values.iter().map(|v| v.as_deref().map(str::as_bytes)),
                ))
            },
        },
        Generated {
            column: Column::extension("inet", Extension::Inet),
            fill: |g, n| {
                let values: Vec<Option<String>> = (0..n).map(|_| g.maybe(Gen::inet)).collect();
                Arc::new(BinaryArray::from_iter(
                    values.iter().map(|v| v.as_deref().map(str::as_bytes)),
                ))
            },
        },
        Generated {
            column: Column::extension("mac", Extension::Mac),
            fill: |g, n| {
                let values: Vec<Option<String>> = (0..n)
                    .map(|_| {
                        g.maybe(|g| {
                            let bytes: Vec<String> =
                                (0..6).map(|_| format!("{:02x}", g.next() as u8)).collect();
                            bytes.join(":")
                        })
                    })
                    .collect();
                Arc::new(BinaryArray::from_iter(
                    values.iter().map(|v| v.as_deref().map(str::as_bytes)),
                ))
            },
        },
    ]
}

/// The seed of this run: `QUARRY_PROPTEST_SEED`, else the clock's.
fn seed() -> u64 {
    std::env::var("QUARRY_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_nanos() as u64
        })
}

fn cases() -> usize {
    std::env::var("QUARRY_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
}

/// A table named `name` of every generated column after an `id` key, and `rows` random rows.
fn random_batch(g: &mut Gen, name: &str, rows: usize) -> RecordBatch {
    let columns = columns();
    let mut table = Table::new(name).column(Column::new("id", DataType::Int64).primary_key());
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(0..rows as i64))];
    for c in columns {
        arrays.push((c.fill)(g, rows));
        table = table.column(c.column);
    }
    RecordBatch::try_new(table.schema(), arrays).expect("the arrays match the table")
}

/// A value as the comparison sees it: text, with JSON parsed (so that key order and spacing do
/// not count) and floats by their bits' meaning (`NaN` is `NaN`).
fn cell(field: &Field, formatter: &ArrayFormatter, array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".into();
    }
    match Extension::of(field) {
        Some(Extension::Json | Extension::Inet | Extension::Mac) => {
            let bytes = array.as_binary::<i32>().value(row);
            let text = String::from_utf8_lossy(bytes);
            if Extension::of(field) == Some(Extension::Json) {
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(v) => format!("json {v}"),
                    Err(_) => format!("not json {text:?}"),
                }
            } else if Extension::of(field) == Some(Extension::Inet) {
                // An address, whichever way it is spelled (`::f094:a5f5` is `::240.148.165.245`).
                let (address, prefix) = text.split_once('/').unwrap_or((&text, ""));
                match address.parse::<std::net::IpAddr>() {
                    Ok(address) if prefix.is_empty() => format!("inet {address}"),
                    Ok(address) => format!("inet {address}/{prefix}"),
                    Err(_) => format!("not an address {text:?}"),
                }
            } else {
                text.into_owned()
            }
        }
        _ => formatter.value(row).to_string(),
    }
}

/// The rows of `batch` ordered by `id`, each as one text per column.
fn rows(batch: &RecordBatch) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let ids = batch.column(0).as_primitive::<Int64Type>();
    let mut order: Vec<usize> = (0..batch.num_rows()).collect();
    order.sort_by_key(|&i| ids.value(i));
    // Zoned timestamps are shown as the UTC time they hold: Arrow's formatter needs the zone
    // database (not built here) to name `UTC`.
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Timestamp(unit, Some(_)) => {
                let naive = c
                    .to_data()
                    .into_builder()
                    .data_type(DataType::Timestamp(*unit, None));
                arrow_array::make_array(naive.build().expect("the same values"))
            }
            _ => c.clone(),
        })
        .collect();
    let formatters: Vec<ArrayFormatter> = columns
        .iter()
        .map(|c| ArrayFormatter::try_new(c, &options).expect("a displayable type"))
        .collect();
    order
        .into_iter()
        .map(|row| {
            batch
                .schema()
                .fields()
                .iter()
                .zip(&formatters)
                .zip(&columns)
                .map(|((f, fmt), a)| cell(f, fmt, a, row))
                .collect()
        })
        .collect()
}

/// `batch` with the nanosecond `columns` cut to the microsecond before (toward the past), as a
/// destination that keeps microseconds stores them; still in nanoseconds.
fn to_micros(batch: RecordBatch, columns: &[&str]) -> RecordBatch {
    let schema = batch.schema();
    let arrays = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, array)| {
            if !columns.contains(&field.name().as_str()) {
                return array.clone();
            }
            let nanos = array.to_data();
            let values: Vec<Option<i64>> = arrow_array::Int64Array::from(
                nanos
                    .clone()
                    .into_builder()
                    .data_type(DataType::Int64)
                    .build()
                    .expect("i64s"),
            )
            .iter()
            .map(|v| v.map(|ns| ns.div_euclid(1000) * 1000))
            .collect();
            let cut = Int64Array::from(values).into_data().into_builder();
            arrow_array::make_array(
                cut.data_type(field.data_type().clone())
                    .build()
                    .expect("i64s"),
            )
        })
        .collect();
    RecordBatch::try_new(schema, arrays).expect("the same types")
}

/// A destination under test.
trait Dest {
    /// The destination document of the spec, named `dest`; files go under `dir`.
    fn document(&self, dir: &Path) -> String;
    /// `batch` as the destination is documented to store it (identity where it keeps everything).
    fn stored(&self, batch: RecordBatch) -> RecordBatch {
        batch
    }
    /// The rows of `table` as stored, if they are not read with the plugin's own `read`.
    fn read_back(&self, _w: &Workdir, _table: &str) -> Option<Vec<RecordBatch>> {
        None
    }
}

/// The source document every spec opens with (a spec needs one; it is never run).
const SOURCE: &str = r#"kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_all_types]
  destinations: [dest]
"#;

/// Writes `cases()` random tables through `dest` and reads each back.
fn round_trips(dest: &dyn Dest) {
    warm();
    let seed = seed();
    eprintln!("round trip seed {seed} (QUARRY_PROPTEST_SEED={seed} replays it)");
    let w = Workdir::new();
    let file = w.write(
        "spec.yml",
        &format!("{SOURCE}---\n{}", dest.document(w.path())),
    );
    let spec = quarry::spec::load(&[file]).unwrap_or_else(|e| panic!("{e}"));
    let cache = shared_cache();
    let env = Environment {
        runtime: WasmRuntime::new(Some(cache.clone())).expect("a wasm runtime"),
        resolver: quarry_registry::Resolver::from_env(Some(Path::new(QUARRY))),
        cwd: w.path().to_path_buf(),
        distribution: plan::distribution::Distribution::new(Some(&cache)),
        cache_dir: Some(cache),
        grant_declared: false,
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let mut plan = plan::build(&spec, &env)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut g = Gen(Mutator::binary(seed));
        for case in 0..cases() {
            let n = 1 + g.below(if case == 0 { 3 } else { 120 }) as usize;
            let written = random_batch(&mut g, &format!("round_trip_{case}"), n);
            let schema: SchemaRef = written.schema();
            let plugin = &mut plan.destinations[0].plugin;
            plugin
                .migrate_table(&schema, false)
                .await
                .unwrap_or_else(|e| failed(seed, case, "migrate", e));
            plugin
                .insert(&written)
                .await
                .unwrap_or_else(|e| failed(seed, case, "insert", e));
            plugin
                .flush()
                .await
                .unwrap_or_else(|e| failed(seed, case, "flush", e));
            let read = match dest.read_back(&w, &format!("round_trip_{case}")) {
                Some(batches) => batches,
                None => plugin
                    .read(&schema)
                    .await
                    .unwrap_or_else(|e| failed(seed, case, "read", e)),
            };
            for batch in &read {
                let types = |s: &SchemaRef| -> Vec<DataType> {
                    s.fields().iter().map(|f| f.data_type().clone()).collect()
                };
                assert_eq!(
                    types(&batch.schema()),
                    types(&schema),
                    "seed {seed}, table {case}: read back in other types"
                );
            }
            let read = arrow_select::concat::concat_batches(&schema, &read)
                .unwrap_or_else(|e| panic!("seed {seed}: read batches of another schema: {e}"));
            compare(
                seed,
                case,
                &rows(&dest.stored(written)),
                &rows(&read),
                &schema,
            );
        }
        let failed: Vec<String> = plan.close().await.iter().map(ToString::to_string).collect();
        assert!(failed.is_empty(), "seed {seed}: closing: {failed:?}");
    });
}

fn failed<T>(seed: u64, case: usize, what: &str, e: quarry::runtime::PluginError) -> T {
    panic!("seed {seed}, table {case}: {what}: {e}")
}

fn compare(
    seed: u64,
    case: usize,
    written: &[Vec<String>],
    read: &[Vec<String>],
    schema: &SchemaRef,
) {
    assert_eq!(
        written.len(),
        read.len(),
        "seed {seed}, table {case}: wrote {} rows, read {}",
        written.len(),
        read.len()
    );
    let mut wrong = Vec::new();
    for (w, r) in written.iter().zip(read) {
        for ((field, a), b) in schema.fields().iter().zip(w).zip(r) {
            if a != b {
                wrong.push(format!(
                    "  id {}, {}: wrote {a:?}, read {b:?}",
                    w[0],
                    field.name()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "seed {seed}, table {case}: {} values came back changed:\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

struct Postgres(Schema);

impl Dest for Postgres {
    fn document(&self, _dir: &Path) -> String {
        format!(
            r#"kind: destination
spec:
  name: dest
  path: quarry/postgresql
  write_mode: append
  spec:
    connection_string: postgres://postgres@127.0.0.1:5432/test
    schema: {}
  permissions: {{ network: ['127.0.0.1:5432'] }}
"#,
            self.0.0
        )
    }

    /// PostgreSQL's `time` and `timestamp` hold microseconds.
    fn stored(&self, batch: RecordBatch) -> RecordBatch {
        to_micros(batch, &["time_ns", "ts_ns", "ts_ns_utc"])
    }
}

struct Sqlite;

impl Dest for Sqlite {
    /// SQLite stores -0.0 as 0 (they compare equal).
    fn stored(&self, batch: RecordBatch) -> RecordBatch {
        let schema = batch.schema();
        let arrays = batch
            .columns()
            .iter()
            .map(|array| -> ArrayRef {
                match array.data_type() {
                    DataType::Float32 => Arc::new(
                        array
                            .as_primitive::<Float32Type>()
                            .unary::<_, Float32Type>(|f| f + 0.0),
                    ),
                    DataType::Float64 => Arc::new(
                        array
                            .as_primitive::<Float64Type>()
                            .unary::<_, Float64Type>(|f| f + 0.0),
                    ),
                    _ => array.clone(),
                }
            })
            .collect();
        RecordBatch::try_new(schema, arrays).expect("the same types")
    }

    fn document(&self, _dir: &Path) -> String {
        r#"kind: destination
spec:
  name: dest
  path: quarry/sqlite
  write_mode: append
  spec: { connection_string: ./data/round.db }
  permissions: { files: { ./data: write } }
"#
        .into()
    }
}

struct Duckdb;

impl Dest for Duckdb {
    fn document(&self, dir: &Path) -> String {
        // A native plugin opens paths from the process's working directory, not the spec's.
        format!(
            r#"kind: destination
spec:
  name: dest
  path: quarry/duckdb
  write_mode: append
  spec: {{ connection_string: '{}' }}
"#,
            dir.join("round.db").display()
        )
    }

    /// DuckDB's `TIME` and `TIMESTAMP WITH TIME ZONE` hold microseconds.
    fn stored(&self, batch: RecordBatch) -> RecordBatch {
        to_micros(batch, &["time_ns", "ts_ns_utc"])
    }
}

struct Parquet;

impl Dest for Parquet {
    fn document(&self, _dir: &Path) -> String {
        r#"kind: destination
spec:
  name: dest
  path: quarry/file
  write_mode: append
  spec: { path: 'out/{{TABLE}}.{{FORMAT}}', format: parquet, no_rotate: true }
  permissions: { files: { out: write } }
"#
        .into()
    }

    fn read_back(&self, w: &Workdir, table: &str) -> Option<Vec<RecordBatch>> {
        Some(read_parquet(&w.path().join(format!("out/{table}.parquet"))))
    }
}

#[test]
fn parquet_keeps_every_value() {
    round_trips(&Parquet);
}

#[test]
fn postgresql_keeps_every_value() {
    round_trips(&Postgres(Schema::new()));
}

#[test]
fn sqlite_keeps_every_value() {
    round_trips(&Sqlite);
}

#[test]
fn duckdb_keeps_every_value() {
    round_trips(&Duckdb);
}
