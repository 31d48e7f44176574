//! How each Arrow type is stored in DuckDB, spelled as DuckDB's catalog prints it (so that a
//! table this plugin created compares equal to what the source wants), and how batches are
//! prepared for DuckDB's Arrow importer: CloudQuery's extension columns become text that DuckDB
//! casts into `UUID` and `JSON`.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use quarry_sdk::{Column, Error, Extension, Result, Table};

/// The DuckDB type of a column, as written in DDL and as `information_schema` prints it.
pub fn column_type(column: &Column) -> Result<String> {
    if let Some(extension) = column.extension {
        return Ok(match extension {
            Extension::Uuid => "UUID",
            Extension::Json => "JSON",
            // DuckDB's inet extension is not in the prebuilt library: addresses stay text.
            Extension::Inet | Extension::Mac => "VARCHAR",
        }
        .into());
    }
    sql_type(&column.data_type).map_err(|unsupported| {
        Error::not_supported(format!(
            "column `{}` has Arrow type {unsupported}, which the DuckDB destination cannot store",
            column.name
        ))
    })
}

fn sql_type(data_type: &DataType) -> std::result::Result<String, String> {
    Ok(match data_type {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "UTINYINT".into(),
        DataType::UInt16 => "USMALLINT".into(),
        DataType::UInt32 => "UINTEGER".into(),
        DataType::UInt64 => "UBIGINT".into(),
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s)
            if *p <= 38 && *s >= 0 =>
        {
            format!("DECIMAL({p},{s})")
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "BLOB".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP WITH TIME ZONE".into(),
        // DuckDB keeps nanoseconds only without a time zone.
        DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, None) => "TIMESTAMP_NS".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP".into(),
        DataType::Duration(_) | DataType::Interval(_) => "INTERVAL".into(),
        DataType::List(item) | DataType::LargeList(item) | DataType::ListView(item) => {
            format!("{}[]", sql_type(item.data_type())?)
        }
        DataType::FixedSizeList(item, n) => format!("{}[{n}]", sql_type(item.data_type())?),
        DataType::Struct(fields) => {
            let mut parts = Vec::new();
            for f in fields {
                parts.push(format!(
                    "{} {}",
                    quarry_sdk::sql::ident(f.name()),
                    sql_type(f.data_type())?
                ));
            }
            format!("STRUCT({})", parts.join(", "))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "MAP({}, {})",
                sql_type(kv[0].data_type())?,
                sql_type(kv[1].data_type())?
            ),
            other => return Err(other.to_string()),
        },
        DataType::Dictionary(_, value) => sql_type(value)?,
        other => return Err(other.to_string()),
    })
}

/// A type as DuckDB's catalog prints it, reduced so that spellings compare: no quotes, no
/// spaces, upper case (`STRUCT("a" INTEGER)` and `STRUCT(a INTEGER)` are the same type).
pub fn normalized(type_name: &str) -> String {
    type_name
        .chars()
        .filter(|c| *c != '"' && !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

/// The Arrow type for a DuckDB type this destination did not create, so that a migration
/// message can name what the table holds.
pub fn arrow_type(catalog: &str) -> (DataType, Option<Extension>) {
    let t = match catalog {
        "BOOLEAN" => DataType::Boolean,
        "TINYINT" => DataType::Int8,
        "SMALLINT" => DataType::Int16,
        "INTEGER" => DataType::Int32,
        "BIGINT" => DataType::Int64,
        "FLOAT" => DataType::Float32,
        "DOUBLE" => DataType::Float64,
        "VARCHAR" => DataType::Utf8,
        "BLOB" => DataType::Binary,
        "DATE" => DataType::Date32,
        "UUID" => return (DataType::FixedSizeBinary(16), Some(Extension::Uuid)),
        "JSON" => return (DataType::Binary, Some(Extension::Json)),
        "TIMESTAMP WITH TIME ZONE" => {
            DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into()))
        }
        "TIMESTAMP" => DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None),
        "TIMESTAMP_NS" => DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, None),
        // Anything else is named by its storage: a distinct, honest placeholder.
        _ => DataType::LargeBinary,
    };
    (t, None)
}

/// `batch`, as DuckDB returns a query's rows, in the types of the table's `schema`: DuckDB gives
/// its own types (`TIME` in microseconds, a `TIMESTAMP` for every unit, text for the extension
/// columns), which hold the values written and are cast back without loss.
pub fn in_table_types(schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| {
            if column.data_type() == field.data_type() {
                return Ok(column.clone());
            }
            match (Extension::of(field), column.as_string_opt::<i32>()) {
                (Some(_), Some(texts)) => quarry_sdk::json::from_text(field, texts),
                _ => quarry_sdk::json::cast(column, field.data_type()),
            }
            .map_err(|e| {
                Error::internal(format!(
                    "column `{}`: DuckDB returned {}, which does not read back as {}: {e}",
                    field.name(),
                    column.data_type(),
                    field.data_type()
                ))
            })
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Nanoseconds where DuckDB keeps microseconds (`TIME`, `TIMESTAMP WITH TIME ZONE`), cut to the
/// microsecond before them. DuckDB's importer would round, and turn `23:59:59.9999999` into
/// `24:00:00`, which no Arrow time can hold.
fn in_micros(array: &ArrayRef) -> Result<ArrayRef> {
    use arrow_array::types::{Int64Type, Time64NanosecondType, TimestampNanosecondType};
    use arrow_schema::TimeUnit::{Microsecond, Nanosecond};
    let micros = match array.data_type() {
        DataType::Time64(Nanosecond) => DataType::Time64(Microsecond),
        DataType::Timestamp(Nanosecond, Some(zone)) => {
            DataType::Timestamp(Microsecond, Some(zone.clone()))
        }
        _ => return Ok(array.clone()),
    };
    let cut: arrow_array::PrimitiveArray<Int64Type> = match array.data_type() {
        DataType::Time64(_) => array
            .as_primitive::<Time64NanosecondType>()
            .unary(|ns| ns.div_euclid(1_000)),
        _ => array
            .as_primitive::<TimestampNanosecondType>()
            .unary(|ns| ns.div_euclid(1_000)),
    };
    let data = cut.into_data().into_builder().data_type(micros).build()?;
    Ok(arrow_array::make_array(data))
}

/// `batch` as DuckDB's Arrow importer takes it: UUIDs as Arrow's canonical `arrow.uuid` (16
/// bytes, which DuckDB reads as `UUID` without parsing text), the other extension columns as text
/// (DuckDB casts it to `JSON`), and no other field metadata.
pub fn prepare(table: &Table, batch: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        let extension = table
            .columns
            .iter()
            .find(|c| c.name == *field.name())
            .and_then(|c| c.extension)
            .or_else(|| Extension::of(field));
        if extension == Some(Extension::Uuid) && *array.data_type() == DataType::FixedSizeBinary(16)
        {
            let metadata = [("ARROW:extension:name".to_string(), "arrow.uuid".to_string())];
            fields.push(
                Field::new(field.name(), array.data_type().clone(), field.is_nullable())
                    .with_metadata(std::collections::HashMap::from(metadata)),
            );
            columns.push(array.clone());
            continue;
        }
        let array = match extension {
            Some(extension) => as_text(extension, array, field.name())?,
            None => in_micros(array)?,
        };
        fields.push(Field::new(
            field.name(),
            array.data_type().clone(),
            field.is_nullable(),
        ));
        columns.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::internal(format!("preparing a batch for DuckDB: {e}")))
}

fn as_text(extension: Extension, array: &ArrayRef, column: &str) -> Result<ArrayRef> {
    let text: StringArray = match (extension, array.data_type()) {
        (Extension::Mac, DataType::Binary) => {
            let a = array.as_binary::<i32>();
            let mut text = Vec::with_capacity(a.len());
            for i in 0..a.len() {
                if a.is_null(i) {
                    text.push(None);
                    continue;
                }
                let mac = quarry_sdk::parse_mac(a.value(i)).ok_or_else(|| {
                    Error::internal(format!(
                        "column `{column}`: `{}` is not a MAC address",
                        String::from_utf8_lossy(a.value(i))
                    ))
                })?;
                let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
                text.push(Some(parts.join(":")));
            }
            text.into_iter().collect()
        }
        // JSON and inet values are UTF-8 text already.
        (Extension::Json | Extension::Inet, DataType::Binary) => {
            let a = array.as_binary::<i32>();
            (0..a.len())
                .map(|i| {
                    a.is_valid(i)
                        .then(|| String::from_utf8_lossy(a.value(i)).into_owned())
                })
                .collect()
        }
        (_, DataType::Utf8) => return Ok(array.clone()),
        (extension, other) => {
            return Err(Error::internal(format!(
                "column `{column}`: a {} value stored as {other}",
                extension.name()
            )));
        }
    };
    Ok(Arc::new(text))
}

#[cfg(test)]
mod tests {
    use arrow_schema::{Fields, IntervalUnit, TimeUnit};

    use super::*;

    fn of(data_type: DataType) -> String {
        column_type(&Column::new("c", data_type)).unwrap()
    }

    #[test]
    fn every_arrow_type_has_a_duckdb_type() {
        assert_eq!(of(DataType::UInt64), "UBIGINT");
        assert_eq!(of(DataType::Decimal128(10, 2)), "DECIMAL(10,2)");
        assert_eq!(
            of(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into())
            )),
            "TIMESTAMP WITH TIME ZONE"
        );
        assert_eq!(
            of(DataType::Interval(IntervalUnit::MonthDayNano)),
            "INTERVAL"
        );
        let item = Arc::new(Field::new("item", DataType::Int64, true));
        assert_eq!(of(DataType::List(item)), "BIGINT[]");
        let fields = Fields::from(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        assert_eq!(
            of(DataType::Struct(fields)),
            "STRUCT(\"a\" INTEGER, \"b\" VARCHAR)"
        );
        assert_eq!(
            normalized("STRUCT(\"a\" INTEGER, \"b\" VARCHAR)"),
            normalized("STRUCT(a INTEGER, b VARCHAR)")
        );
        assert!(column_type(&Column::new("c", DataType::Decimal256(76, 0))).is_err());
    }
}
