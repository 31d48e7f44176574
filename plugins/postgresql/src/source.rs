//! The source: tables found in the catalog (`tables` globs over `schema.table`), read with
//! `COPY (SELECT ...) TO STDOUT (FORMAT binary)` and decoded straight into Arrow builders
//! ([`crate::read`]). A large table with a one-column integer primary key is cut into key ranges
//! read at once over several connections that share one snapshot, so every row comes exactly
//! once; a table with an incremental cursor column is read in the column's order from after the
//! saved cursor, the cursor saved with every batch.

use std::collections::BTreeMap;

use arrow_array::ArrayRef;
use bytes::{Buf, Bytes, BytesMut};
use quarry_sdk::cursor::OrderedCursor;
use quarry_sdk::sql::range_count;
use quarry_sdk::{Error, Result, SyncContext, Table, matches_glob};

use crate::config::Config;
use crate::read::{Builder, Decode, PgType};
use crate::wire::Connection;

pub use quarry_sdk::sql::{ident, literal};

/// The most bytes of row data one batch holds before it is sent, whatever `rows_per_batch` says.
const BATCH_BYTES: usize = 32 << 20;

/// What the source side of the spec says (the fields are in [`crate::Spec`]).
#[derive(Debug, Clone)]
pub struct Settings {
    pub tables: Vec<String>,
    pub incremental: BTreeMap<String, String>,
    pub rows_per_batch: usize,
    pub concurrency: usize,
    pub split_rows: u64,
}

/// A column as it is read.
#[derive(Debug, Clone)]
struct ReadColumn {
    name: String,
    /// The expression in the COPY's select list.
    select: String,
    decode: Decode,
}

/// A table or view found in the catalog, with how to read it.
#[derive(Debug, Clone)]
pub struct SourceTable {
    pub schema: String,
    pub relation: String,
    pub table: Table,
    columns: Vec<ReadColumn>,
    /// The one-column integer primary key that key ranges split on.
    split_key: Option<String>,
    /// `pg_class.reltuples`: the planner's estimate of the rows (-1 when never analyzed).
    estimate: f64,
    /// The incremental cursor column, from `incremental:`.
    cursor: Option<String>,
}

impl SourceTable {
    fn qualified(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.relation))
    }

    fn label(&self) -> String {
        format!("{}.{}", self.schema, self.relation)
    }

    fn state_key(&self, cursor: &str) -> String {
        format!("{}.{cursor}", self.table.name)
    }
}

/// One row of the catalog query: a column of a relation.
struct CatalogColumn {
    schema: String,
    relation: String,
    estimate: f64,
    name: String,
    type_text: String,
    not_null: bool,
    primary_key: bool,
    ty: PgType,
    element: Option<PgType>,
}

const CATALOG: &str = "\
select n.nspname, c.relname, c.reltuples::float8::text, a.attname, \
  format_type(a.atttypid, a.atttypmod), a.attnotnull, \
  exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary \
          and a.attnum = any(i.indkey)), \
  bt.oid, bt.typname, bt.typtype, \
  case when t.typtype = 'd' then t.typtypmod else a.atttypmod end, \
  et.oid, et.typname, et.typtype \
from pg_class c \
join pg_namespace n on n.oid = c.relnamespace \
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped \
join pg_type t on t.oid = a.atttypid \
join pg_type bt on bt.oid = case when t.typtype = 'd' then t.typbasetype else t.oid end \
left join pg_type et on et.oid = bt.typelem and bt.typcategory = 'A' \
where c.relkind in ('r', 'p', 'v', 'm', 'f') and not c.relispartition \
  and n.nspname not in ('pg_catalog', 'information_schema') \
  and n.nspname !~ '^pg_(toast|temp_)' \
order by n.nspname, c.relname, a.attnum";

fn catalog(conn: &mut Connection) -> Result<Vec<CatalogColumn>> {
    let rows = conn.query(CATALOG)?.remove(0).rows;
    let mut columns = Vec::with_capacity(rows.len());
    for row in rows {
        let text = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let number = |i: usize| text(i).parse::<i64>().unwrap_or(-1);
        let ty = |at: usize| PgType {
            oid: u32::try_from(number(at)).unwrap_or(0),
            name: text(at + 1),
            kind: text(at + 2),
            typmod: i32::try_from(number(10)).unwrap_or(-1),
        };
        // An array's modifier is its elements' (`numeric(5, 2)[]`).
        let element = row.get(11).cloned().flatten().map(|_| ty(11));
        columns.push(CatalogColumn {
            schema: text(0),
            relation: text(1),
            estimate: text(2).parse().unwrap_or(-1.0),
            name: text(3),
            type_text: text(4),
            not_null: text(5) == "t",
            primary_key: text(6) == "t",
            ty: ty(7),
            element,
        });
    }
    Ok(columns)
}

/// How a catalog column is read, or why it cannot be.
fn read_column(c: &CatalogColumn) -> std::result::Result<ReadColumn, String> {
    let name = ident(&c.name);
    let unmappable = || {
        format!(
            "type `{}`, which the PostgreSQL source cannot map",
            c.type_text
        )
    };
    let (select, decode) = match &c.element {
        Some(element) => {
            let element = Decode::of(element).ok_or_else(unmappable)?;
            if element.element_as_text() {
                (
                    format!("{name}::text[]"),
                    Decode::Array(Box::new(Decode::Text)),
                )
            } else {
                (name, Decode::Array(Box::new(element)))
            }
        }
        None => (name, Decode::of(&c.ty).ok_or_else(unmappable)?),
    };
    Ok(ReadColumn {
        name: c.name.clone(),
        select,
        decode,
    })
}

/// The tables of the catalog that `settings.tables` selects, each with its columns mapped.
pub fn discover(conn: &mut Connection, settings: &Settings) -> Result<Vec<SourceTable>> {
    let mut found: Vec<SourceTable> = Vec::new();
    let mut unused_incremental: BTreeMap<&str, &str> = settings
        .incremental
        .iter()
        .map(|(t, c)| (t.as_str(), c.as_str()))
        .collect();
    let columns = catalog(conn)?;
    let mut rest = columns.as_slice();
    while let Some(first) = rest.first() {
        let n = rest
            .iter()
            .take_while(|c| c.schema == first.schema && c.relation == first.relation)
            .count();
        let (relation, after) = rest.split_at(n);
        rest = after;
        let label = format!("{}.{}", first.schema, first.relation);
        if !settings.tables.iter().any(|p| matches_glob(p, &label)) {
            continue;
        }
        if let Some(other) = found.iter().find(|t| t.relation == first.relation) {
            return Err(Error::invalid_spec(format!(
                "tables: `{}` and `{label}` would both be table `{}`; narrow `tables` to one \
                 schema, or sync the other schema with a second source",
                other.label(),
                first.relation
            )));
        }
        let mut table = Table::new(&first.relation);
        let mut reads = Vec::new();
        let keys: Vec<&CatalogColumn> = relation.iter().filter(|c| c.primary_key).collect();
        for c in relation {
            // Quarry's own columns of a table it wrote: a sync makes them anew.
            if c.name.starts_with("_cq_") {
                continue;
            }
            let read = read_column(c).map_err(|why| {
                Error::not_supported(format!(
                    "table `{label}`, column `{}` has {why}; cast it in a view (`create view ... \
                     as select ..., {}::text as {}`) and sync the view, or leave the table out \
                     of `tables`",
                    c.name,
                    ident(&c.name),
                    ident(&c.name)
                ))
            })?;
            let mut column = read.decode.column(&c.name);
            if c.primary_key {
                column = column.primary_key();
            } else if c.not_null {
                column = column.not_null();
            }
            table = table.column(column);
            reads.push(read);
        }
        let split_key = match keys.as_slice() {
            [key]
                if matches!(
                    Decode::of(&key.ty),
                    Some(Decode::Int2 | Decode::Int4 | Decode::Int8)
                ) =>
            {
                Some(key.name.clone())
            }
            _ => None,
        };
        let cursor = unused_incremental
            .remove(label.as_str())
            .or_else(|| unused_incremental.remove(first.relation.as_str()))
            .map(str::to_string);
        if let Some(cursor) = &cursor {
            let Some(column) = table.columns.iter_mut().find(|c| &c.name == cursor) else {
                return Err(Error::invalid_spec(format!(
                    "incremental: table `{label}` has no column `{cursor}`"
                )));
            };
            column.incremental_key = true;
            table = table.incremental();
        }
        found.push(SourceTable {
            schema: first.schema.clone(),
            relation: first.relation.clone(),
            table,
            columns: reads,
            split_key,
            estimate: first.estimate,
            cursor,
        });
    }
    if let Some((table, _)) = unused_incremental.into_iter().next() {
        return Err(Error::invalid_spec(format!(
            "incremental: table `{table}` is not one of the tables `tables` selects ({})",
            settings.tables.join(", ")
        )));
    }
    Ok(found)
}

/// Session settings every source connection uses, so text values (the saved cursors) are
/// written and read back the same way.
const SESSION: &str = "set timezone = 'UTC'; set datestyle = 'ISO, YMD'; \
    set intervalstyle = 'iso_8601'; set extra_float_digits = 3";

/// Reads one table: its key ranges over several connections, or the whole of it over `conn`.
/// A read that stops early (a value Arrow cannot hold, a cancelled sync) leaves its COPY
/// unfinished: `conn` is then replaced by a new connection, so the next table starts clean.
pub fn sync_table(
    conn: &mut Connection,
    config: &Config,
    settings: &Settings,
    table: &SourceTable,
    out: &mut SyncContext<'_>,
) -> Result<()> {
    let result = read_table(conn, config, settings, table, out);
    if result.is_err()
        && let Ok(fresh) = Connection::connect(config)
    {
        std::mem::replace(conn, fresh).close().ok();
    }
    result
}

fn read_table(
    conn: &mut Connection,
    config: &Config,
    settings: &Settings,
    table: &SourceTable,
    out: &mut SyncContext<'_>,
) -> Result<()> {
    conn.query(SESSION)?;
    let context =
        |e: Error| Error::new(e.kind, format!("table `{}`: {}", table.label(), e.message));
    let mut reader = Reader::new(table, settings.rows_per_batch);
    if let Some(cursor) = &table.cursor {
        let key = table.state_key(cursor);
        let from = out.state_get(&key)?;
        let mut saved = from.clone();
        let sql = table_copy(table, from.as_deref(), None);
        read_copy(
            conn,
            &sql,
            &mut reader,
            out,
            &context,
            |reader, out| match reader.cursor.safe().map(str::to_string) {
                Some(safe) if saved.as_ref() != Some(&safe) => {
                    out.state_set(&key, &safe)?;
                    saved = Some(safe);
                    Ok(())
                }
                _ => Ok(()),
            },
        )?;
        if let Some(last) = reader.cursor.last()
            && saved.as_deref() != Some(last.as_str())
        {
            out.state_set(&key, &last)?;
        }
        return Ok(());
    }
    let ranges = ranges(conn, settings, table).map_err(context)?;
    if ranges.len() <= 1 {
        let sql = table_copy(table, None, None);
        return read_copy(conn, &sql, &mut reader, out, &context, |_, _| Ok(()));
    }
    read_ranges(conn, config, table, &ranges, &mut reader, out).map_err(context)?;
    reader.emit(out)
}

/// Runs one COPY over `conn` into `reader`, sending a batch whenever one is full (then calling
/// `sent`) and the rest at the end.
fn read_copy(
    conn: &mut Connection,
    sql: &str,
    reader: &mut Reader,
    out: &mut SyncContext<'_>,
    context: &dyn Fn(Error) -> Error,
    mut sent: impl FnMut(&Reader, &mut SyncContext<'_>) -> Result<()>,
) -> Result<()> {
    conn.copy_out_start(sql).map_err(context)?;
    let mut stream = CopyStream::default();
    while let Some(data) = conn.copy_out_next().map_err(context)? {
        stream.feed(data, reader).map_err(context)?;
        if reader.full() {
            reader.emit(out)?;
            sent(reader, out)?;
        }
    }
    stream.finish().map_err(context)?;
    reader.emit(out)
}

pub(crate) use quarry_sdk::sql::KeyRange as Range;

/// The key ranges `table` is read in: [`quarry_sdk::sql::range_count`] of them, cut by
/// [`quarry_sdk::sql::key_ranges`].
pub(crate) fn ranges(
    conn: &mut Connection,
    settings: &Settings,
    table: &SourceTable,
) -> Result<Vec<Range>> {
    let Some(key) = &table.split_key else {
        return Ok(vec![(None, None)]);
    };
    let count = range_count(table.estimate, settings.split_rows, settings.concurrency);
    if count == 1 {
        return Ok(vec![(None, None)]);
    }
    let bounds = conn
        .query(&format!(
            "select min({0})::int8, max({0})::int8 from {1}",
            ident(key),
            table.qualified()
        ))?
        .remove(0)
        .rows;
    let parse = |i: usize| -> Option<i64> { bounds.first()?.get(i)?.as_deref()?.parse().ok() };
    let (Some(low), Some(high)) = (parse(0), parse(1)) else {
        return Ok(vec![(None, None)]);
    };
    Ok(quarry_sdk::sql::key_ranges(low, high, count))
}

/// The COPY statement that reads `table`: after the saved cursor in cursor order, or one key
/// range, or all of it.
fn table_copy(table: &SourceTable, after: Option<&str>, range: Option<Range>) -> String {
    let mut select: Vec<&str> = table.columns.iter().map(|c| c.select.as_str()).collect();
    let cursor_text;
    let mut filter = Vec::new();
    let mut order = String::new();
    if let Some(cursor) = &table.cursor {
        // The cursor's text comes last, for the state; it is not a column of the table.
        cursor_text = format!("{}::text as quarry_cursor", ident(cursor));
        select.push(&cursor_text);
        if let Some(after) = after {
            filter.push(format!("{} > {}", ident(cursor), literal(after)));
        }
        order = format!(" order by {}", ident(cursor));
    }
    if let (Some((from, to)), Some(key)) = (range, &table.split_key) {
        if let Some(from) = from {
            filter.push(format!("{} >= {from}", ident(key)));
        }
        if let Some(to) = to {
            filter.push(format!("{} < {to}", ident(key)));
        }
    }
    let filter = if filter.is_empty() {
        String::new()
    } else {
        format!(" where {}", filter.join(" and "))
    };
    format!(
        "copy (select {} from {}{filter}{order}) to stdout (format binary)",
        select.join(", "),
        table.qualified()
    )
}

/// Reads `ranges` at once, a connection each, all in one snapshot (exported by `conn`'s
/// transaction, as `pg_dump --jobs` does), so each row is read exactly once.
fn read_ranges(
    conn: &mut Connection,
    config: &Config,
    table: &SourceTable,
    ranges: &[Range],
    reader: &mut Reader,
    out: &mut SyncContext<'_>,
) -> Result<()> {
    let snapshot = conn
        .query("begin isolation level repeatable read read only; select pg_export_snapshot()")?
        .pop()
        .and_then(|r| r.rows.into_iter().next())
        .and_then(|r| r.into_iter().next().flatten())
        .ok_or_else(|| Error::internal("pg_export_snapshot() returned nothing"))?;
    let result = (|| {
        let mut others = Vec::with_capacity(ranges.len() - 1);
        for _ in 1..ranges.len() {
            let mut other = Connection::connect(config)?;
            other.query(SESSION)?;
            other.query(&format!(
                "begin isolation level repeatable read read only; set transaction snapshot {}",
                literal(&snapshot)
            ))?;
            others.push(other);
        }
        // Each connection, its stream, and whether the server has finished the COPY.
        let mut streams: Vec<(&mut Connection, CopyStream, bool)> = std::iter::once(&mut *conn)
            .chain(others.iter_mut())
            .map(|c| (c, CopyStream::default(), false))
            .collect();
        for ((c, _, _), range) in streams.iter_mut().zip(ranges) {
            c.copy_out_start(&table_copy(table, None, Some(*range)))?;
        }
        // Round-robin over the streams, a message at a time: the servers fill their sockets in
        // parallel while this decodes.
        let mut open = streams.len();
        while open > 0 {
            for (c, stream, finished) in streams.iter_mut() {
                if *finished {
                    continue;
                }
                match c.copy_out_next()? {
                    Some(data) => stream.feed(data, reader)?,
                    None => {
                        stream.finish()?;
                        *finished = true;
                        open -= 1;
                    }
                }
                if reader.full() {
                    reader.emit(out)?;
                }
            }
        }
        for other in others {
            other.close().ok();
        }
        Ok(())
    })();
    // Ends the exporting transaction; after an error `conn` may be inside a COPY, and
    // `sync_table` replaces it.
    if result.is_ok() {
        conn.query("commit")?;
    }
    result
}

/// Where a binary COPY stream is: before its header, in its rows, or past its trailer. Rows
/// usually come one per message; bytes of a row split across messages wait in `pending`.
#[derive(Default)]
struct CopyStream {
    header: bool,
    done: bool,
    pending: BytesMut,
}

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

impl CopyStream {
    fn feed(&mut self, data: Bytes, reader: &mut Reader) -> Result<()> {
        if self.pending.is_empty() {
            let mut data = data;
            self.parse(&mut data, reader)?;
            if !data.is_empty() {
                self.pending.extend_from_slice(&data);
            }
        } else {
            self.pending.extend_from_slice(&data);
            let mut data = std::mem::take(&mut self.pending).freeze();
            self.parse(&mut data, reader)?;
            self.pending.extend_from_slice(&data);
        }
        Ok(())
    }

    /// Consumes the complete rows at the front of `data`, leaving a partial one.
    fn parse(&mut self, data: &mut Bytes, reader: &mut Reader) -> Result<()> {
        if !self.header {
            if data.len() < SIGNATURE.len() + 8 {
                return Ok(());
            }
            if &data[..SIGNATURE.len()] != SIGNATURE {
                return Err(Error::internal("COPY data without the binary signature"));
            }
            let extension = u32::from_be_bytes(data[15..19].try_into().expect("4 bytes")) as usize;
            if data.len() < 19 + extension {
                return Ok(());
            }
            data.advance(19 + extension);
            self.header = true;
        }
        while data.len() >= 2 && !self.done {
            let fields = i16::from_be_bytes([data[0], data[1]]);
            if fields == -1 {
                data.advance(2);
                self.done = true;
                break;
            }
            let Some(len) = row_length(data, fields) else {
                return Ok(());
            };
            let row = data.split_to(len);
            reader.row(&row[2..], fields)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.done = true;
        if !self.pending.is_empty() {
            return Err(Error::internal(format!(
                "the COPY stream ended inside a row ({} bytes left)",
                self.pending.len()
            )));
        }
        Ok(())
    }
}

/// The length of the row at the front of `data` (its field count included), if all of it is
/// there.
fn row_length(data: &[u8], fields: i16) -> Option<usize> {
    let mut at = 2;
    for _ in 0..fields {
        let len = i32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?);
        at += 4;
        if len > 0 {
            at += len as usize;
        }
    }
    (at <= data.len()).then_some(at)
}

/// Decodes rows into the table's builders and sends them in batches.
struct Reader<'t> {
    table: &'t SourceTable,
    builders: Vec<Builder>,
    rows: usize,
    bytes: usize,
    rows_per_batch: usize,
    cursor: OrderedCursor,
}

impl<'t> Reader<'t> {
    fn new(table: &'t SourceTable, rows_per_batch: usize) -> Self {
        Reader {
            table,
            builders: table
                .columns
                .iter()
                .map(|c| Builder::new(&c.decode))
                .collect(),
            rows: 0,
            bytes: 0,
            rows_per_batch: rows_per_batch.max(1),
            cursor: OrderedCursor::default(),
        }
    }

    /// One row's fields (after the field count).
    fn row(&mut self, mut data: &[u8], fields: i16) -> Result<()> {
        let expected = self.builders.len() + usize::from(self.table.cursor.is_some());
        if usize::try_from(fields).ok() != Some(expected) {
            return Err(Error::internal(format!(
                "a row of {fields} fields where the table has {expected} columns: was it altered \
                 during the sync?"
            )));
        }
        self.bytes += data.len();
        for (i, builder) in self.builders.iter_mut().enumerate() {
            let len = i32::from_be_bytes(data[..4].try_into().expect("4 bytes"));
            data = &data[4..];
            let value = if len < 0 {
                None
            } else {
                let (value, rest) = data.split_at(len as usize);
                data = rest;
                Some(value)
            };
            builder.append(value).map_err(|why| {
                Error::internal(format!(
                    "column `{}` holds {why}",
                    self.table.columns[i].name
                ))
            })?;
        }
        if self.table.cursor.is_some() {
            let len = i32::from_be_bytes(data[..4].try_into().expect("4 bytes"));
            if len >= 0 {
                self.cursor.see(&data[4..4 + len as usize]);
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn full(&self) -> bool {
        self.rows >= self.rows_per_batch || self.bytes >= BATCH_BYTES
    }

    fn emit(&mut self, out: &mut SyncContext<'_>) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        self.rows = 0;
        self.bytes = 0;
        out.insert(&self.table.table, columns)
    }
}
