//! The source: tables found in `information_schema` (`tables` globs over `database.table`), read
//! with streamed text-protocol `SELECT`s, the values turned into Arrow by type. A table with an
//! incremental cursor column is read in that column's order from after the saved value, the
//! cursor saved with every batch at the last value fully read. A large table with a one-column
//! integer primary key is read as key ranges at once over several connections whose snapshots
//! all start while the table is locked against writes, so every row comes exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, DurationMicrosecondBuilder, StringBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, StringArray};
use arrow_schema::{DataType, Field, TimeUnit};
use quarry_sdk::cursor::OrderedCursor;
use quarry_sdk::sql::range_count;
use quarry_sdk::{Column, Error, Extension, Result, SyncContext, Table, matches_glob};

use crate::wire::{Config, Connection, Row};

/// What the source side of the spec says.
#[derive(Debug, Clone)]
pub struct Settings {
    pub tables: Vec<String>,
    pub incremental: BTreeMap<String, String>,
    pub rows_per_batch: usize,
    pub concurrency: usize,
    pub split_rows: u64,
}

/// How a column's text-protocol values become Arrow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decode {
    /// Parsed from its text into the column's Arrow type (numbers, decimals, dates, times).
    Text(DataType),
    /// `json`: the text, as CloudQuery's json extension.
    Json,
    /// Bytes as they are (`binary`, `varbinary`, blobs).
    Bytes,
    /// `bit(n)`: big-endian bytes, as a number.
    Bit,
    /// `time`: `[-]HHH:MM:SS[.ffffff]`, a signed span up to 838 hours.
    Time,
}

impl Decode {
    pub fn column(&self, name: &str) -> Column {
        match self {
            Decode::Text(t) => Column::new(name, t.clone()),
            Decode::Json => Column::extension(name, Extension::Json),
            Decode::Bytes => Column::new(name, DataType::Binary),
            Decode::Bit => Column::new(name, DataType::UInt64),
            Decode::Time => Column::new(name, DataType::Duration(TimeUnit::Microsecond)),
        }
    }
}

/// The decoding of a column from `information_schema.COLUMNS` (`DATA_TYPE`, `COLUMN_TYPE`,
/// precision, scale), or `None` for a type this source cannot map.
pub fn decode_of(
    data_type: &str,
    column_type: &str,
    precision: Option<u32>,
    scale: Option<u32>,
) -> Option<Decode> {
    let unsigned = column_type.contains("unsigned");
    let int = |signed: DataType, unsigned_type: DataType| {
        Decode::Text(if unsigned { unsigned_type } else { signed })
    };
    Some(match data_type {
        "tinyint" => int(DataType::Int8, DataType::UInt8),
        "smallint" => int(DataType::Int16, DataType::UInt16),
        "mediumint" | "int" | "integer" => int(DataType::Int32, DataType::UInt32),
        "bigint" => int(DataType::Int64, DataType::UInt64),
        "decimal" | "numeric" => {
            let p = u8::try_from(precision?).ok()?;
            let s = i8::try_from(scale.unwrap_or(0)).ok()?;
            Decode::Text(if p <= 38 {
                DataType::Decimal128(p, s)
            } else {
                DataType::Decimal256(p, s)
            })
        }
        "float" => Decode::Text(DataType::Float32),
        "double" | "real" => Decode::Text(DataType::Float64),
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set" => {
            Decode::Text(DataType::Utf8)
        }
        "json" => Decode::Json,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Decode::Bytes,
        "bit" => Decode::Bit,
        "date" => Decode::Text(DataType::Date32),
        "datetime" => Decode::Text(DataType::Timestamp(TimeUnit::Microsecond, None)),
        // Read in the session's UTC.
        "timestamp" => Decode::Text(DataType::Timestamp(
            TimeUnit::Microsecond,
            Some("UTC".into()),
        )),
        "time" => Decode::Time,
        "year" => Decode::Text(DataType::Int16),
        _ => return None,
    })
}

/// A table found in the catalog, with how to read it.
#[derive(Debug, Clone)]
pub struct SourceTable {
    pub database: String,
    pub name: String,
    pub table: Table,
    decodes: Vec<Decode>,
    cursor: Option<usize>,
    /// The one-column integer primary key that key ranges split on (InnoDB tables only).
    split_key: Option<String>,
    /// The server's estimate of its rows (`information_schema.TABLES.TABLE_ROWS`).
    estimate: u64,
}

impl SourceTable {
    fn label(&self) -> String {
        format!("{}.{}", self.database, self.name)
    }

    fn qualified(&self) -> String {
        format!("{}.{}", ident(&self.database), ident(&self.name))
    }
}

/// `name` quoted as MySQL quotes identifiers.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `'text'` with quotes doubled (the session sets NO_BACKSLASH_ESCAPES, so backslashes are
/// plain characters).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Set on every connection: UTC for `timestamp` values (read, compared and written as text),
/// strict values, and standard identifiers and literals (`"name"`, backslashes that mean
/// themselves), as `quarry_sdk::sql` writes them.
pub const SESSION: &str = "set time_zone = '+00:00', sql_mode = concat(@@sql_mode, \
    ',ANSI_QUOTES,NO_BACKSLASH_ESCAPES,STRICT_ALL_TABLES')";

const CATALOG: &str = "select c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, \
  c.COLUMN_TYPE, c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.IS_NULLABLE, c.COLUMN_KEY, t.TABLE_ROWS, \
  t.ENGINE \
  from information_schema.COLUMNS c left join information_schema.TABLES t \
  on t.TABLE_SCHEMA = c.TABLE_SCHEMA and t.TABLE_NAME = c.TABLE_NAME \
  where c.TABLE_SCHEMA not in ('mysql', 'information_schema', 'performance_schema', 'sys') \
  order by c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION";

/// The tables `settings.tables` selects, each with its columns mapped.
pub fn discover(conn: &mut Connection, settings: &Settings) -> Result<Vec<SourceTable>> {
    let result = conn.query(CATALOG)?.remove(0);
    let mut found: Vec<SourceTable> = Vec::new();
    let mut unused: BTreeMap<&str, &str> = settings
        .incremental
        .iter()
        .map(|(t, c)| (t.as_str(), c.as_str()))
        .collect();
    let text = |row: usize, col: usize| result.text(row, col).unwrap_or_default();
    let mut row = 0;
    while row < result.rows.len() {
        let (database, name) = (text(row, 0), text(row, 1));
        let end = (row..result.rows.len())
            .find(|&r| text(r, 0) != database || text(r, 1) != name)
            .unwrap_or(result.rows.len());
        let label = format!("{database}.{name}");
        let rows = row..end;
        row = end;
        if !settings.tables.iter().any(|p| matches_glob(p, &label)) {
            continue;
        }
        if let Some(other) = found.iter().find(|t| t.name == name) {
            return Err(Error::invalid_spec(format!(
                "tables: `{}` and `{label}` would both be table `{name}`; narrow `tables` to one \
                 database, or sync the other with a second source",
                other.label()
            )));
        }
        let mut table = Table::new(&name);
        let mut decodes = Vec::new();
        let estimate = text(rows.start, 9).parse().unwrap_or(0);
        // Only InnoDB has the snapshots that make key ranges read at once consistent.
        let snapshots = text(rows.start, 10).eq_ignore_ascii_case("InnoDB");
        for r in rows {
            let column = text(r, 2);
            if column.starts_with("_cq_") {
                continue;
            }
            let number = |c: usize| text(r, c).parse::<u32>().ok();
            let decode =
                decode_of(&text(r, 3), &text(r, 4), number(5), number(6)).ok_or_else(|| {
                    Error::not_supported(format!(
                        "table `{label}`, column `{column}` has type `{}`, which the MySQL source \
                     cannot map; cast it in a view (`create view ... as select ..., cast({} as \
                     char) as {}`) and sync the view, or leave the table out of `tables`",
                        text(r, 4),
                        ident(&column),
                        ident(&column)
                    ))
                })?;
            let mut c = decode.column(&column);
            if text(r, 8) == "PRI" {
                c = c.primary_key();
            } else if text(r, 7) == "NO" {
                c = c.not_null();
            }
            table = table.column(c);
            decodes.push(decode);
        }
        let cursor_name = unused
            .remove(label.as_str())
            .or_else(|| unused.remove(name.as_str()));
        let cursor = match cursor_name {
            Some(cursor) => {
                let Some(i) = table.columns.iter().position(|c| c.name == cursor) else {
                    return Err(Error::invalid_spec(format!(
                        "incremental: table `{label}` has no column `{cursor}`"
                    )));
                };
                table.columns[i].incremental_key = true;
                table = table.incremental();
                Some(i)
            }
            None => None,
        };
        let keys: Vec<usize> = (0..table.columns.len())
            .filter(|&i| table.columns[i].primary_key)
            .collect();
        let split_key = match keys.as_slice() {
            [i] if snapshots && matches!(&decodes[*i], Decode::Text(t) if t.is_integer()) => {
                Some(table.columns[*i].name.clone())
            }
            _ => None,
        };
        found.push(SourceTable {
            database,
            name,
            table,
            decodes,
            cursor,
            split_key,
            estimate,
        });
    }
    if let Some((table, _)) = unused.into_iter().next() {
        return Err(Error::invalid_spec(format!(
            "incremental: table `{table}` is not one of the tables `tables` selects ({})",
            settings.tables.join(", ")
        )));
    }
    Ok(found)
}

/// A column's values of one batch.
enum Values {
    Text(StringBuilder),
    Bytes(BinaryBuilder),
    Bit(UInt64Builder),
    Time(DurationMicrosecondBuilder),
}

impl Values {
    fn new(decode: &Decode) -> Values {
        match decode {
            Decode::Text(_) | Decode::Json => Values::Text(StringBuilder::new()),
            Decode::Bytes => Values::Bytes(BinaryBuilder::new()),
            Decode::Bit => Values::Bit(UInt64Builder::new()),
            Decode::Time => Values::Time(DurationMicrosecondBuilder::new()),
        }
    }

    fn append(&mut self, value: Option<&[u8]>) -> std::result::Result<(), String> {
        match (self, value) {
            (Values::Text(b), None) => b.append_null(),
            (Values::Bytes(b), None) => b.append_null(),
            (Values::Bit(b), None) => b.append_null(),
            (Values::Time(b), None) => b.append_null(),
            (Values::Text(b), Some(v)) => b.append_value(
                std::str::from_utf8(v).map_err(|e| format!("text that is not UTF-8 ({e})"))?,
            ),
            (Values::Bytes(b), Some(v)) => b.append_value(v),
            (Values::Bit(b), Some(v)) if v.len() <= 8 => {
                b.append_value(v.iter().fold(0u64, |n, byte| (n << 8) | u64::from(*byte)))
            }
            (Values::Bit(_), Some(v)) => return Err(format!("a bit value of {} bytes", v.len())),
            (Values::Time(b), Some(v)) => b.append_value(time_micros(v)?),
        }
        Ok(())
    }

    fn finish(&mut self, decode: &Decode, field: &Field) -> std::result::Result<ArrayRef, String> {
        Ok(match self {
            Values::Text(b) => {
                let texts: StringArray = b.finish();
                match decode {
                    Decode::Json => Arc::new(arrow_array::BinaryArray::from(
                        texts
                            .iter()
                            .map(|t| t.map(str::as_bytes))
                            .collect::<Vec<_>>(),
                    )),
                    _ => quarry_sdk::json::from_text(field, &texts).map_err(|e| e.to_string())?,
                }
            }
            Values::Bytes(b) => Arc::new(b.finish()),
            Values::Bit(b) => Arc::new(b.finish()),
            Values::Time(b) => Arc::new(b.finish()),
        })
    }
}

/// `[-]H+:MM:SS[.ffffff]` in microseconds.
pub fn time_micros(v: &[u8]) -> std::result::Result<i64, String> {
    let text = std::str::from_utf8(v).map_err(|e| e.to_string())?;
    let bad = || format!("the time `{text}`");
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = rest.split_once('.').unwrap_or((rest, ""));
    let mut parts = whole.split(':');
    let mut next = || -> std::result::Result<i64, String> {
        parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)
    };
    let (h, m, s) = (next()?, next()?, next()?);
    let micros = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<6}")[..6]
            .parse::<i64>()
            .map_err(|_| bad())?
    };
    let total = ((h * 60 + m) * 60 + s) * 1_000_000 + micros;
    Ok(if negative { -total } else { total })
}

/// Reads one table into batches. A read that stops early leaves a result half read: `conn` is
/// then replaced by a new connection.
pub fn sync_table(
    conn: &mut Connection,
    config: &Config,
    settings: &Settings,
    table: &SourceTable,
    out: &mut SyncContext<'_>,
) -> Result<()> {
    let result = read_table(conn, config, settings, table, out)
        .map_err(|e| Error::new(e.kind, format!("table `{}`: {}", table.label(), e.message)));
    if result.is_err()
        && let Ok(fresh) = session(config)
    {
        std::mem::replace(conn, fresh).close().ok();
    }
    result
}

/// The rows of one batch as they are read, from one stream or several.
struct Batch<'t> {
    table: &'t SourceTable,
    fields: arrow_schema::Fields,
    values: Vec<Values>,
    rows: usize,
    limit: usize,
}

impl<'t> Batch<'t> {
    fn new(table: &'t SourceTable, limit: usize) -> Self {
        Batch {
            table,
            fields: table.table.schema().fields().clone(),
            values: table.decodes.iter().map(Values::new).collect(),
            rows: 0,
            limit: limit.max(1),
        }
    }

    fn push(&mut self, row: &Row) -> Result<()> {
        for (i, (v, column)) in self
            .values
            .iter_mut()
            .zip(&self.table.table.columns)
            .enumerate()
        {
            v.append(row.get(i))
                .map_err(|why| Error::internal(format!("column `{}` holds {why}", column.name)))?;
        }
        self.rows += 1;
        Ok(())
    }

    fn full(&self) -> bool {
        self.rows >= self.limit
    }

    fn emit(&mut self, out: &mut SyncContext<'_>) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let arrays = self
            .values
            .iter_mut()
            .zip(&self.table.decodes)
            .zip(self.fields.iter())
            .map(|((v, decode), field)| {
                v.finish(decode, field)
                    .map_err(|why| Error::internal(format!("column `{}`: {why}", field.name())))
            })
            .collect::<Result<Vec<_>>>()?;
        self.rows = 0;
        out.insert(&self.table.table, arrays)
    }
}

/// The `SELECT` of `table`'s columns, with a filter and an order if given.
fn select(table: &SourceTable, filter: &[String], order: Option<&str>) -> String {
    let columns: Vec<String> = table.table.columns.iter().map(|c| ident(&c.name)).collect();
    let mut sql = format!("select {} from {}", columns.join(", "), table.qualified());
    if !filter.is_empty() {
        sql.push_str(&format!(" where {}", filter.join(" and ")));
    }
    if let Some(order) = order {
        sql.push_str(&format!(" order by {order}"));
    }
    sql
}

fn read_table(
    conn: &mut Connection,
    config: &Config,
    settings: &Settings,
    table: &SourceTable,
    out: &mut SyncContext<'_>,
) -> Result<()> {
    if let Some(i) = table.cursor {
        return read_incremental(conn, settings, table, i, out);
    }
    let ranges = ranges(conn, settings, table)?;
    if ranges.len() > 1
        && let Some(others) = snapshots(conn, config, table, ranges.len())?
    {
        return read_ranges(conn, others, table, &ranges, settings, out);
    }
    let mut batch = Batch::new(table, settings.rows_per_batch);
    let mut row = Row::default();
    conn.start_rows(&select(table, &[], None))?;
    while conn.next_row(&mut row)? {
        batch.push(&row)?;
        if batch.full() {
            batch.emit(out)?;
        }
    }
    batch.emit(out)
}

/// Reads `table` in its cursor column's order from after the saved value, saving the cursor
/// with every batch at the last value fully read.
fn read_incremental(
    conn: &mut Connection,
    settings: &Settings,
    table: &SourceTable,
    cursor: usize,
    out: &mut SyncContext<'_>,
) -> Result<()> {
    let column = ident(&table.table.columns[cursor].name);
    let key = format!("{}.{}", table.table.name, table.table.columns[cursor].name);
    let from = out.state_get(&key)?;
    let filter: Vec<String> = from
        .iter()
        .map(|from| format!("{column} > {}", literal(from)))
        .collect();
    let mut track = OrderedCursor::default();
    let mut saved = from.clone();
    let mut batch = Batch::new(table, settings.rows_per_batch);
    let mut row = Row::default();
    conn.start_rows(&select(table, &filter, Some(column.as_str())))?;
    while conn.next_row(&mut row)? {
        batch.push(&row)?;
        if let Some(value) = row.get(cursor) {
            track.see(value);
        }
        if batch.full() {
            batch.emit(out)?;
            if let Some(safe) = track.safe()
                && saved.as_deref() != Some(safe)
            {
                out.state_set(&key, safe)?;
                saved = Some(safe.to_string());
            }
        }
    }
    batch.emit(out)?;
    if let Some(last) = track.last()
        && saved.as_deref() != Some(last.as_str())
    {
        out.state_set(&key, &last)?;
    }
    Ok(())
}

pub(crate) use quarry_sdk::sql::KeyRange as Range;

/// The key ranges `table` is read in: [`quarry_sdk::sql::range_count`] of them, cut by
/// [`quarry_sdk::sql::key_ranges`].
pub(crate) fn ranges(
    conn: &mut Connection,
    settings: &Settings,
    table: &SourceTable,
) -> Result<Vec<Range>> {
    let whole = vec![(None, None)];
    let Some(key) = &table.split_key else {
        return Ok(whole);
    };
    let count = range_count(
        table.estimate as f64,
        settings.split_rows,
        settings.concurrency,
    );
    if count == 1 {
        return Ok(whole);
    }
    let bounds = conn
        .query(&format!(
            "select min({0}), max({0}) from {1}",
            ident(key),
            table.qualified()
        ))?
        .remove(0);
    // An unsigned bigint past i64 is read whole.
    let parse = |i: usize| -> Option<i64> { bounds.text(0, i)?.parse().ok() };
    let (Some(low), Some(high)) = (parse(0), parse(1)) else {
        return Ok(whole);
    };
    Ok(quarry_sdk::sql::key_ranges(low, high, count))
}

/// A new connection with the session settings, no database selected (queries name theirs).
fn session(config: &Config) -> Result<Connection> {
    let mut conn = Connection::connect(&Config {
        database: None,
        ..config.clone()
    })?;
    conn.query(SESSION)?;
    Ok(conn)
}

/// Opens the connections that read `count` ranges of `table` besides `conn` and starts a
/// consistent snapshot on each and on `conn`, all while a further connection holds the table's
/// read lock: no write to it commits between the first snapshot and the last, so the ranges
/// together hold each row once (as `mydumper` does). `None`, and the table is read whole on
/// `conn`, when the connections cannot be opened (`max_user_connections`), the lock is refused
/// (no `LOCK TABLES` privilege), or running writes keep it from being granted within 10 s.
fn snapshots(
    conn: &mut Connection,
    config: &Config,
    table: &SourceTable,
    count: usize,
) -> Result<Option<Vec<Connection>>> {
    const BEGIN: &str = "set transaction isolation level repeatable read; \
        start transaction with consistent snapshot, read only";
    let refused = |why: &Error| {
        quarry_sdk::log::warn(
            "table read whole on one connection, not as key ranges",
            &[("table", &table.label()), ("why", &why.message)],
        );
    };
    // Everything is opened first, so the lock is held only while the snapshots begin.
    let opened = (0..count)
        .map(|_| session(config))
        .collect::<Result<Vec<_>>>()
        .and_then(|mut opened| {
            opened[0].query("set session lock_wait_timeout = 10")?;
            Ok(opened)
        });
    let mut opened = match opened {
        Ok(opened) => opened,
        Err(e) => {
            refused(&e);
            return Ok(None);
        }
    };
    let others = opened.split_off(1);
    let mut lock = opened.remove(0);
    if let Err(e) = lock.query(&format!("lock tables {} read", table.qualified())) {
        refused(&e);
        for c in std::iter::once(lock).chain(others) {
            c.close().ok();
        }
        return Ok(None);
    }
    let mut others = others;
    for other in &mut others {
        other.query(BEGIN)?;
    }
    conn.query(BEGIN)?;
    lock.query("unlock tables")?;
    lock.close().ok();
    Ok(Some(others))
}

/// Reads `ranges` at once, the first on `conn` and the others each on one of `others`, a few
/// rows from each in turn: the server fills every socket at once while this decodes.
fn read_ranges(
    conn: &mut Connection,
    mut others: Vec<Connection>,
    table: &SourceTable,
    ranges: &[Range],
    settings: &Settings,
    out: &mut SyncContext<'_>,
) -> Result<()> {
    const TURN: usize = 256;
    let key = ident(table.split_key.as_deref().expect("ranges need a key"));
    let mut streams: Vec<(&mut Connection, bool)> = std::iter::once(&mut *conn)
        .chain(others.iter_mut())
        .map(|c| (c, true))
        .collect();
    for ((c, _), (from, to)) in streams.iter_mut().zip(ranges) {
        let mut filter = Vec::new();
        if let Some(from) = from {
            filter.push(format!("{key} >= {from}"));
        }
        if let Some(to) = to {
            filter.push(format!("{key} < {to}"));
        }
        c.start_rows(&select(table, &filter, None))?;
    }
    let mut batch = Batch::new(table, settings.rows_per_batch);
    let mut row = Row::default();
    let mut open = streams.len();
    while open > 0 {
        for (c, reading) in streams.iter_mut().filter(|(_, reading)| *reading) {
            for _ in 0..TURN {
                if !c.next_row(&mut row)? {
                    *reading = false;
                    open -= 1;
                    break;
                }
                batch.push(&row)?;
                if batch.full() {
                    batch.emit(out)?;
                }
            }
        }
    }
    batch.emit(out)?;
    for (c, _) in streams {
        c.query("commit")?;
    }
    for other in others {
        other.close().ok();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_across_their_whole_range() {
        assert_eq!(time_micros(b"00:00:00").unwrap(), 0);
        assert_eq!(
            time_micros(b"-838:59:59.000000").unwrap(),
            -3_020_399_000_000
        );
        assert_eq!(time_micros(b"12:34:56.5").unwrap(), 45_296_500_000);
        assert!(time_micros(b"noon").is_err());
    }
}
