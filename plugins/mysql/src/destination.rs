//! The destination: tables in the connection string's database, created and migrated from Arrow
//! schemas, loaded with `LOAD DATA LOCAL INFILE` fed from memory (tab-separated, MySQL's own
//! escapes; binary columns as hex through `UNHEX`). With a primary key, rows go to a session
//! temporary staging table and are merged with `INSERT ... ON DUPLICATE KEY UPDATE` (the last row
//! of a key wins); without one they are loaded straight into the table.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{
    Array, ArrayRef, BinaryArray, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, TimeUnit};
use quarry_sdk::migrate::{self, Change, Plan};
use quarry_sdk::{Column, DeleteRequest, Destination, Error, Extension, Result, Table};

use crate::MySql;
use crate::source::{decode_of, literal};

/// The MySQL type a column is created with.
pub fn column_type(column: &Column) -> Result<String> {
    if let Some(extension) = column.extension {
        return Ok(match extension {
            Extension::Uuid => "char(36)",
            Extension::Json => "json",
            Extension::Inet => "varchar(64)",
            Extension::Mac => "varchar(32)",
        }
        .into());
    }
    let unsupported = || {
        Error::not_supported(format!(
            "column `{}` has Arrow type {}, which the MySQL destination cannot store",
            column.name, column.data_type
        ))
    };
    Ok(match &column.data_type {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::UInt8 => "tinyint unsigned".into(),
        DataType::UInt16 => "smallint unsigned".into(),
        DataType::UInt32 => "int unsigned".into(),
        DataType::UInt64 => "bigint unsigned".into(),
        DataType::Float16 | DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s)
            if *s >= 0 && *p <= 65 && i16::from(*s) <= 30 =>
        {
            format!("decimal({p},{s})")
        }
        // A key must have a bounded length.
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if column.primary_key => {
            "varchar(255)".into()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "longtext".into(),
        DataType::FixedSizeBinary(n) if *n <= 255 => format!("binary({n})"),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView if column.primary_key => {
            "varbinary(255)".into()
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "longblob".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Time32(_) | DataType::Time64(_) | DataType::Duration(_) => "time(6)".into(),
        DataType::Timestamp(..) => "datetime(6)".into(),
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..) => "json".into(),
        DataType::Dictionary(_, value) => column_type(&Column {
            data_type: (**value).clone(),
            ..column.clone()
        })?,
        _ => return Err(unsupported()),
    })
}

/// A type as the catalog prints it, made comparable: integer display widths dropped, MariaDB's
/// `json` (a `longtext`), booleans as `tinyint(1)`.
fn normal(type_text: &str) -> String {
    let t = type_text.to_ascii_lowercase().replace(", ", ",");
    if t == "boolean" || t == "bool" || t == "tinyint(1)" {
        return "boolean".into();
    }
    if t == "json" {
        return "longtext".into();
    }
    for int in ["tinyint", "smallint", "mediumint", "int", "bigint"] {
        if let Some(rest) = t.strip_prefix(&format!("{int}("))
            && let Some(close) = rest.find(')')
        {
            return format!("{int}{}", &rest[close + 1..]);
        }
    }
    t
}

fn micros(array: &ArrayRef) -> Result<ArrayRef> {
    // The instants, without their zone: a `datetime` holds UTC.
    let us = arrow_cast::cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))
        .or_else(|_| {
            let zoned = arrow_cast::cast(
                array,
                &DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            )?;
            let zoned = zoned.as_primitive::<TimestampMicrosecondType>();
            Ok::<ArrayRef, arrow_schema::ArrowError>(Arc::new(TimestampMicrosecondArray::new(
                zoned.values().clone(),
                zoned.nulls().cloned(),
            )))
        })
        .map_err(|e| Error::internal(e.to_string()))?;
    Ok(us)
}

/// `[-]H:MM:SS.ffffff` of a span in microseconds, as `time` takes it.
pub fn time_text(us: i64) -> String {
    let sign = if us < 0 { "-" } else { "" };
    let us = us.unsigned_abs();
    let (s, f) = (us / 1_000_000, us % 1_000_000);
    format!("{sign}{}:{:02}:{:02}.{f:06}", s / 3600, s / 60 % 60, s % 60)
}

/// Appends `text` with LOAD DATA's escapes (backslash, tab, newline, carriage return, NUL).
fn escaped(text: &[u8], out: &mut Vec<u8>) {
    for &b in text {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            b => out.push(b),
        }
    }
}

/// Each value of a column as the text LOAD DATA reads into its type, `None` for NULL; and
/// whether the text is hex for `UNHEX`.
fn texts(column: &Column, array: &ArrayRef) -> Result<(Vec<Option<Vec<u8>>>, bool)> {
    let n = array.len();
    let map = |f: &dyn Fn(usize) -> Vec<u8>| -> Vec<Option<Vec<u8>>> {
        (0..n).map(|i| (!array.is_null(i)).then(|| f(i))).collect()
    };
    let bytes_of = |i: usize| -> Vec<u8> {
        match array.data_type() {
            DataType::FixedSizeBinary(_) => array.as_fixed_size_binary().value(i).to_vec(),
            DataType::LargeBinary => array.as_binary::<i64>().value(i).to_vec(),
            DataType::BinaryView => array.as_binary_view().value(i).to_vec(),
            _ => array.as_binary::<i32>().value(i).to_vec(),
        }
    };
    match column.extension {
        Some(Extension::Uuid) => {
            return Ok((
                map(&|i| {
                    let mut out = Vec::new();
                    quarry_sdk::json::push_uuid(&bytes_of(i), &mut out);
                    out
                }),
                false,
            ));
        }
        Some(Extension::Mac) => {
            return Ok((
                map(&|i| {
                    let raw = bytes_of(i);
                    match quarry_sdk::parse_mac(&raw) {
                        Some(m) => format!(
                            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                            m[0], m[1], m[2], m[3], m[4], m[5]
                        )
                        .into_bytes(),
                        None => raw,
                    }
                }),
                false,
            ));
        }
        Some(Extension::Json | Extension::Inet) => return Ok((map(&bytes_of), false)),
        None => {}
    }
    let field = column.field();
    Ok(match array.data_type() {
        DataType::Boolean => {
            let b = array.as_boolean();
            (
                map(&|i| {
                    if b.value(i) {
                        b"1".to_vec()
                    } else {
                        b"0".to_vec()
                    }
                }),
                false,
            )
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            (
                map(&|i| {
                    bytes_of(i)
                        .iter()
                        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
                        .collect()
                }),
                true,
            )
        }
        DataType::Timestamp(..) => {
            let us = micros(array)?;
            let options =
                FormatOptions::default().with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.6f"));
            let format = ArrayFormatter::try_new(us.as_ref(), &options)
                .map_err(|e| Error::internal(e.to_string()))?;
            (map(&|i| format.value(i).to_string().into_bytes()), false)
        }
        DataType::Duration(_) => {
            let us = arrow_cast::cast(array, &DataType::Duration(TimeUnit::Microsecond))
                .map_err(|e| Error::internal(e.to_string()))?;
            let us = us.as_primitive::<DurationMicrosecondType>().clone();
            (map(&|i| time_text(us.value(i)).into_bytes()), false)
        }
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..) => {
            let json = quarry_sdk::json::json_text(&Arc::new(field), array.as_ref())
                .map_err(|e| Error::internal(e.to_string()))?;
            let json = json.as_string::<i32>().clone();
            (map(&|i| json.value(i).as_bytes().to_vec()), false)
        }
        DataType::Dictionary(_, value) => {
            let plain =
                arrow_cast::cast(array, value).map_err(|e| Error::internal(e.to_string()))?;
            return texts(
                &Column {
                    data_type: (**value).clone(),
                    ..column.clone()
                },
                &plain,
            );
        }
        _ => {
            let format = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
                .map_err(|e| Error::internal(e.to_string()))?;
            (map(&|i| format.value(i).to_string().into_bytes()), false)
        }
    })
}

impl MySql {
    fn database(&self) -> Result<&str> {
        self.config.database.as_deref().ok_or_else(|| {
            Error::invalid_spec(
                "connection_string: name the database the tables go in (mysql://user@host:3306/DATABASE)",
            )
        })
    }

    fn table_name(&self, table: &str) -> Result<String> {
        Ok(format!(
            "{}.{}",
            crate::source::ident(self.database()?),
            crate::source::ident(table)
        ))
    }

    /// A binary collation without PAD SPACE, so `a`, `A` and `a ` are three keys (a case- or
    /// space-insensitive key would merge distinct rows on upsert): MariaDB's
    /// `utf8mb4_nopad_bin`, MySQL 8's `utf8mb4_0900_bin`.
    fn collation(&mut self) -> Result<&'static str> {
        let version = self
            .conn
            .query("select version()")?
            .remove(0)
            .text(0, 0)
            .unwrap_or_default();
        Ok(if version.contains("MariaDB") {
            "utf8mb4_nopad_bin"
        } else {
            "utf8mb4_0900_bin"
        })
    }

    /// The session's staging table for `table`, in the destination's database.
    fn stage_name(&self, table: &str) -> Result<String> {
        // At most 64 characters, and distinct for tables whose names start alike: a prefix cut
        // at a character boundary, then a hash of the whole name (FNV-1a).
        let hash = table.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let prefix: String = table.chars().take(32).collect();
        let name = format!("quarry_stage_{prefix}_{hash:016x}");
        Ok(format!(
            "{}.{}",
            crate::source::ident(self.database()?),
            crate::source::ident(&name)
        ))
    }

    fn create(&mut self, table: &Table) -> Result<()> {
        let name = self.table_name(&table.name)?;
        // The database too, as the PostgreSQL destination makes its schema.
        let database = crate::source::ident(self.database()?);
        let collation = self.collation()?;
        self.conn.query(&format!(
            "create database if not exists {database} character set utf8mb4 collate {collation}; \
             use {database}"
        ))?;
        let mut parts = Vec::new();
        for c in &table.columns {
            let not_null = if c.nullable { "" } else { " not null" };
            parts.push(format!(
                "{} {}{not_null}",
                crate::source::ident(&c.name),
                column_type(c)?
            ));
        }
        let keys: Vec<String> = table
            .primary_keys()
            .iter()
            .map(|k| crate::source::ident(k))
            .collect();
        if !keys.is_empty() {
            parts.push(format!("primary key ({})", keys.join(", ")));
        }
        self.conn
            .query(&format!(
                // Binary collation: `a` and `A` are different keys (a case-insensitive key
                // would merge distinct rows on upsert).
                "create table if not exists {name} ({}) character set utf8mb4 collate {collation}",
                parts.join(", ")
            ))
            .map(drop)
    }

    /// `LOAD DATA LOCAL INFILE` of `batch` into `target` (a quoted name).
    fn load(&mut self, target: &str, table: &Table, batch: &RecordBatch) -> Result<()> {
        let mut columns = Vec::with_capacity(table.columns.len());
        let mut sets = Vec::new();
        let mut values = Vec::with_capacity(table.columns.len());
        for (i, column) in table.columns.iter().enumerate() {
            let (texts, hex) = texts(column, batch.column(i))
                .map_err(|e| e.context(format!("column `{}`", column.name)))?;
            let name = crate::source::ident(&column.name);
            if hex {
                columns.push(format!("@v{i}"));
                sets.push(format!("{name} = unhex(@v{i})"));
            } else {
                columns.push(name);
            }
            values.push(texts);
        }
        let mut data = Vec::with_capacity(batch.get_array_memory_size() + batch.num_rows() * 8);
        for row in 0..batch.num_rows() {
            for (i, column) in values.iter().enumerate() {
                if i > 0 {
                    data.push(b'\t');
                }
                match &column[row] {
                    Some(text) => escaped(text, &mut data),
                    None => data.extend_from_slice(b"\\N"),
                }
            }
            data.push(b'\n');
        }
        let set = if sets.is_empty() {
            String::new()
        } else {
            format!(" set {}", sets.join(", "))
        };
        let sql = format!(
            // The escapes spelled as hex: NO_BACKSLASH_ESCAPES would otherwise leave LOAD DATA
            // without its backslash.
            "load data local infile 'quarry.tsv' into table {target} character set utf8mb4 \
             fields terminated by X'09' escaped by X'5C' lines terminated by X'0A' ({}){set}",
            columns.join(", ")
        );
        let results = self.conn.query_with_file(&sql, Some(&data))?;
        let loaded = results.first().map_or(0, |r| r.affected_rows);
        let warned = results.first().is_some_and(|r| r.warnings > 0);
        if loaded != batch.num_rows() as u64 || warned {
            // LOAD DATA LOCAL turns errors into warnings (the server cannot stop the client's
            // file): a value the column changed is an error here, not data quietly lost.
            let warnings = self.conn.query("show warnings limit 3")?;
            let said: Vec<String> = warnings
                .first()
                .map(|w| (0..w.rows.len()).filter_map(|r| w.text(r, 2)).collect())
                .unwrap_or_default();
            return Err(Error::internal(format!(
                "table `{}`: {loaded} of {} rows were loaded, with warnings: {}",
                table.name,
                batch.num_rows(),
                said.join("; ")
            )));
        }
        Ok(())
    }
}

impl Destination for MySql {
    fn existing_table(&mut self, wanted: &Table) -> Result<Option<Table>> {
        let sql = format!(
            "select COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, \
             IS_NULLABLE, COLUMN_KEY from information_schema.COLUMNS where TABLE_SCHEMA = {} \
             and TABLE_NAME = {} order by ORDINAL_POSITION",
            literal(self.database()?),
            literal(&wanted.name)
        );
        let result = self.conn.query(&sql)?.remove(0);
        if result.rows.is_empty() {
            return Ok(None);
        }
        let mut table = Table::new(&wanted.name);
        for r in 0..result.rows.len() {
            let text = |c: usize| result.text(r, c).unwrap_or_default();
            let name = text(0);
            let same = wanted.columns.iter().find(|c| {
                c.name == name && column_type(c).is_ok_and(|t| normal(&t) == normal(&text(2)))
            });
            let mut column = match same {
                Some(c) => c.clone(),
                None => {
                    let number = |c: usize| text(c).parse::<u32>().ok();
                    match decode_of(&text(1), &text(2), number(3), number(4)) {
                        Some(decode) => decode.column(&name),
                        // Named by its storage: an honest placeholder.
                        None => Column::new(&name, DataType::LargeBinary),
                    }
                }
            };
            column.nullable = text(5) == "YES";
            column.primary_key = text(6) == "PRI";
            table = table.column(column);
        }
        Ok(Some(table))
    }

    fn migrate_table(&mut self, table: &Table, force: bool) -> Result<()> {
        // The staging table copies the table's columns when it is made: make it anew.
        self.conn.query(&format!(
            "drop temporary table if exists {}",
            self.stage_name(&table.name)?
        ))?;
        let existing = self.existing_table(table)?;
        let name = self.table_name(&table.name)?;
        let found = match migrate::plan(existing.as_ref(), table, force)? {
            Plan::Create => return self.create(table),
            Plan::Recreate => {
                self.conn.query(&format!("drop table {name}"))?;
                return self.create(table);
            }
            Plan::Alter(found) => found,
        };
        for change in &found {
            let sql = match change {
                Change::AddColumn(c) => format!(
                    "alter table {name} add column {} {}",
                    crate::source::ident(&c.name),
                    column_type(c)?
                ),
                Change::DropNotNull(c) => {
                    let Some(column) = table.columns.iter().find(|w| &w.name == c) else {
                        continue;
                    };
                    format!(
                        "alter table {name} modify column {} {} null",
                        crate::source::ident(c),
                        column_type(column)?
                    )
                }
                // A column the source dropped stays, and gets nulls.
                _ => continue,
            };
            self.conn.query(&sql)?;
        }
        Ok(())
    }

    fn insert(&mut self, table: &Table, batch: RecordBatch) -> Result<()> {
        let target = self.table_name(&table.name)?;
        let keys = table.primary_keys();
        if keys.is_empty() {
            // In a transaction: a load the warning check refuses leaves nothing behind.
            self.conn.query("start transaction")?;
            return match self.load(&target, table, &batch) {
                Ok(()) => self.conn.query("commit").map(drop),
                Err(e) => {
                    self.conn.query("rollback").ok();
                    Err(e)
                }
            };
        }
        let stage = self.stage_name(&table.name)?;
        // Emptied first: a load refused earlier must not reach the table with this batch.
        self.conn.query(&format!(
            "create temporary table if not exists {stage} like {target}; delete from {stage}"
        ))?;
        // The staging table takes every copy of a key: the merge keeps the last.
        self.conn
            .query(&format!("alter table {stage} drop primary key"))
            .ok();
        self.load(&stage, table, &batch)?;
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|c| crate::source::ident(&c.name))
            .collect();
        let updates: Vec<String> = table
            .columns
            .iter()
            .filter(|c| !c.primary_key)
            .map(|c| format!("{0} = values({0})", crate::source::ident(&c.name)))
            .collect();
        let update = if updates.is_empty() {
            // Only keys: a duplicate has nothing to change.
            format!("{0} = values({0})", crate::source::ident(keys[0]))
        } else {
            updates.join(", ")
        };
        self.conn.query(&format!(
            "insert into {target} ({cols}) select {cols} from {stage} on duplicate key update {update}; \
             delete from {stage}",
            cols = columns.join(", ")
        ))?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn delete_stale(&mut self, table: &str, source_name: &str, sync_time_us: i64) -> Result<()> {
        let time = TimestampMicrosecondArray::from(vec![sync_time_us]);
        let options = FormatOptions::default().with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.6f"));
        let at = ArrayFormatter::try_new(&time, &options)
            .map_err(|e| Error::internal(e.to_string()))?
            .value(0)
            .to_string();
        self.conn
            .query(&format!(
                "delete from {} where \"_cq_source_name\" = {} and \"_cq_sync_time\" < {}",
                self.table_name(table)?,
                literal(source_name),
                literal(&at)
            ))
            .map(drop)
    }

    fn delete_record(&mut self, request: &DeleteRequest) -> Result<()> {
        let filter = quarry_sdk::sql::delete_filter(request)?;
        self.conn
            .query(&format!(
                "delete from {}{filter}",
                self.table_name(&request.table)?
            ))
            .map(drop)
    }

    fn read(&mut self, table: &Table) -> Result<Vec<RecordBatch>> {
        let exprs: Vec<String> = table
            .columns
            .iter()
            .map(|c| {
                let name = crate::source::ident(&c.name);
                match (&c.data_type, c.extension) {
                    (
                        DataType::Binary | DataType::LargeBinary | DataType::FixedSizeBinary(_),
                        None,
                    ) => {
                        format!("hex({name})")
                    }
                    _ => name,
                }
            })
            .collect();
        let result = self
            .conn
            .query(&format!(
                "select {} from {}",
                exprs.join(", "),
                self.table_name(&table.name)?
            ))?
            .remove(0);
        let schema = table.schema();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(exprs.len());
        for (i, field) in schema.fields().iter().enumerate() {
            let texts: StringArray = (0..result.rows.len()).map(|r| result.text(r, i)).collect();
            let column = &table.columns[i];
            columns.push(match (&column.data_type, column.extension) {
                (DataType::Binary | DataType::LargeBinary | DataType::FixedSizeBinary(_), None) => {
                    let bytes: Vec<Option<Vec<u8>>> = texts
                        .iter()
                        .map(|t| {
                            t.map(|t| {
                                (0..t.len() / 2)
                                    .map(|j| {
                                        u8::from_str_radix(&t[2 * j..2 * j + 2], 16).unwrap_or(0)
                                    })
                                    .collect()
                            })
                        })
                        .collect();
                    let bytes = BinaryArray::from_iter(bytes);
                    quarry_sdk::json::cast(&bytes, field.data_type())?
                }
                (DataType::Duration(_), None) => {
                    let us: arrow_array::DurationMicrosecondArray = texts
                        .iter()
                        .map(|t| {
                            t.map(|t| crate::source::time_micros(t.as_bytes()))
                                .transpose()
                        })
                        .collect::<std::result::Result<_, String>>()
                        .map_err(Error::internal)?;
                    quarry_sdk::json::cast(&us, field.data_type())?
                }
                (DataType::Boolean, None) => {
                    let b: arrow_array::BooleanArray =
                        texts.iter().map(|t| t.map(|t| t != "0")).collect();
                    Arc::new(b)
                }
                _ => quarry_sdk::json::from_text(field, &texts)?,
            });
        }
        Ok(vec![RecordBatch::try_new(schema, columns)?])
    }
}
