//! The source: tables found in `information_schema` (`tables` globs over `database.table`), read
//! with one streamed text-protocol `SELECT` each, the values turned into Arrow by type; a table
//! with an incremental cursor column is read in that column's order from after the saved value,
//! the cursor saved with every batch at the last value fully read.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, DurationMicrosecondBuilder, StringBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, StringArray};
use arrow_schema::{DataType, Field, TimeUnit};
use quarry_sdk::cursor::OrderedCursor;
use quarry_sdk::{Column, Error, Extension, Result, SyncContext, Table, matches_glob};

use crate::wire::{Config, Connection};

/// What the source side of the spec says.
#[derive(Debug, Clone)]
pub struct Settings {
    pub tables: Vec<String>,
    pub incremental: BTreeMap<String, String>,
    pub rows_per_batch: usize,
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
}

impl SourceTable {
    fn label(&self) -> String {
        format!("{}.{}", self.database, self.name)
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
  c.COLUMN_TYPE, c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.IS_NULLABLE, c.COLUMN_KEY \
  from information_schema.COLUMNS c \
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
        found.push(SourceTable {
            database,
            name,
            table,
            decodes,
            cursor,
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

/// Reads one table into batches. A read that stops early leaves the result half read: `conn`
/// is then replaced by a new connection.
pub fn sync_table(
    conn: &mut Connection,
    config: &Config,
    settings: &Settings,
    table: &SourceTable,
    out: &mut SyncContext<'_>,
) -> Result<()> {
    let result = read_table(conn, settings, table, out);
    if result.is_err()
        && let Ok(mut fresh) = Connection::connect(config)
        && fresh.query(SESSION).is_ok()
    {
        std::mem::replace(conn, fresh).close().ok();
    }
    result
}

fn read_table(
    conn: &mut Connection,
    settings: &Settings,
    table: &SourceTable,
    out: &mut SyncContext<'_>,
) -> Result<()> {
    let context =
        |e: Error| Error::new(e.kind, format!("table `{}`: {}", table.label(), e.message));
    let key = table
        .cursor
        .map(|i| format!("{}.{}", table.table.name, table.table.columns[i].name));
    let from = match &key {
        Some(key) => out.state_get(key)?,
        None => None,
    };
    let select: Vec<String> = table.table.columns.iter().map(|c| ident(&c.name)).collect();
    let mut sql = format!(
        "select {} from {}.{}",
        select.join(", "),
        ident(&table.database),
        ident(&table.name)
    );
    if let Some(i) = table.cursor {
        let cursor = ident(&table.table.columns[i].name);
        if let Some(from) = &from {
            sql.push_str(&format!(" where {cursor} > {}", literal(from)));
        }
        sql.push_str(&format!(" order by {cursor}"));
    }
    let schema = table.table.schema();
    let fields = schema.fields().clone();
    let mut values: Vec<Values> = table.decodes.iter().map(Values::new).collect();
    let mut rows = 0usize;
    let mut track = OrderedCursor::default();
    let mut saved = from.clone();
    let batch = settings.rows_per_batch.max(1);
    let emit = |values: &mut Vec<Values>, out: &mut SyncContext<'_>| -> Result<()> {
        let arrays = values
            .iter_mut()
            .zip(&table.decodes)
            .zip(fields.iter())
            .map(|((v, decode), field)| {
                v.finish(decode, field)
                    .map_err(|why| Error::internal(format!("column `{}`: {why}", field.name())))
            })
            .collect::<Result<Vec<_>>>()?;
        out.insert(&table.table, arrays)
    };
    conn.query_rows(
        &sql,
        |_| Ok(()),
        |row| {
            for ((v, value), column) in values.iter_mut().zip(row).zip(&table.table.columns) {
                v.append(*value).map_err(|why| {
                    Error::internal(format!("column `{}` holds {why}", column.name))
                })?;
            }
            if let Some(i) = table.cursor
                && let Some(value) = row[i]
            {
                track.see(value);
            }
            rows += 1;
            if rows >= batch {
                emit(&mut values, out)?;
                rows = 0;
                if let (Some(key), Some(safe)) = (&key, track.safe())
                    && saved.as_deref() != Some(safe)
                {
                    out.state_set(key, safe)?;
                    saved = Some(safe.to_string());
                }
            }
            Ok(())
        },
    )
    .map_err(context)?;
    if rows > 0 {
        emit(&mut values, out).map_err(context)?;
    }
    if let (Some(key), Some(last)) = (&key, track.last())
        && saved.as_deref() != Some(last.as_str())
    {
        out.state_set(key, &last)?;
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
