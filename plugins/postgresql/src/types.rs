//! How each Arrow type is stored in PostgreSQL: the column type a table is created with. Chosen
//! so that every value survives a round trip: unsigned integers go one size up (`UInt64` to
//! `numeric(20,0)`), nested values without a PostgreSQL equivalent become `jsonb`, and
//! CloudQuery's extension types map to PostgreSQL's own `uuid`, `jsonb`, `inet` and `macaddr`.

use arrow_schema::DataType;
use quarry_sdk::{Column, Error, Extension, Result};

/// The PostgreSQL type of a column, as written in DDL.
pub fn column_type(column: &Column) -> Result<String> {
    if let Some(extension) = column.extension {
        return Ok(match extension {
            Extension::Uuid => "uuid",
            Extension::Json => "jsonb",
            Extension::Inet => "inet",
            Extension::Mac => "macaddr",
        }
        .into());
    }
    sql_type(&column.data_type).map_err(|unsupported| {
        Error::not_supported(format!(
            "column `{}` has Arrow type {unsupported}, which the PostgreSQL destination cannot store",
            column.name
        ))
    })
}

fn sql_type(data_type: &DataType) -> std::result::Result<String, String> {
    Ok(match data_type {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "numeric(20,0)".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            if *s >= 0 {
                format!("numeric({p},{s})")
            } else {
                "numeric".into()
            }
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "bytea".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Time32(_) | DataType::Time64(_) => "time".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Duration(_) | DataType::Interval(_) => "interval".into(),
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::ListView(item)
        | DataType::LargeListView(item)
        | DataType::FixedSizeList(item, _) => match item.data_type() {
            // PostgreSQL arrays are not nested: a list of lists is JSON.
            t if t.is_nested() => "jsonb".into(),
            t => format!("{}[]", sql_type(t)?),
        },
        DataType::Struct(_) | DataType::Map(..) => "jsonb".into(),
        DataType::Dictionary(_, value) => sql_type(value)?,
        other => return Err(other.to_string()),
    })
}

/// How `read` selects a column: as text that [`quarry_sdk::json::from_text`] parses into the
/// column's Arrow type (bytes as hex, which [`from_hex`] decodes). `name` is quoted.
pub fn read_expr(column: &Column, name: &str) -> Result<String> {
    match column.extension {
        // `abbrev` is the `inet` output: a cast to text always adds the netmask (`/32`).
        Some(Extension::Inet) => return Ok(format!("abbrev({name})")),
        Some(_) => return Ok(format!("{name}::text")),
        None => {}
    }
    Ok(match &column.data_type {
        DataType::Timestamp(_, Some(_)) => {
            format!("to_char({name} at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")
        }
        DataType::Timestamp(_, None) => format!("to_char({name}, 'YYYY-MM-DD HH24:MI:SS.US')"),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => format!("encode({name}, 'hex')"),
        DataType::Duration(_) | DataType::Interval(_) => {
            return Err(Error::not_supported(format!(
                "column `{}`: the PostgreSQL destination cannot read {} values back yet",
                column.name, column.data_type
            )));
        }
        _ if column_type(column)?.ends_with("[]") => format!("array_to_json({name})::text"),
        _ => format!("{name}::text"),
    })
}

/// Bytes from the hex text `encode(..., 'hex')` gives.
pub fn from_hex(column: &str, hex: &str) -> Result<Vec<u8>> {
    let digit = |b: u8| (b as char).to_digit(16);
    hex.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some((digit(*hi)? * 16 + digit(*lo)?) as u8),
            _ => None,
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| Error::internal(format!("column `{column}`: `{hex}` is not hex")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{Field, Fields, IntervalUnit, TimeUnit};

    use super::*;

    fn of(data_type: DataType) -> String {
        column_type(&Column::new("c", data_type)).unwrap()
    }

    #[test]
    fn every_arrow_type_has_a_column_type_that_holds_its_values() {
        let item = |t: DataType| Arc::new(Field::new("item", t, true));
        let cases = [
            (DataType::Boolean, "boolean"),
            (DataType::Int8, "smallint"),
            (DataType::UInt8, "smallint"),
            (DataType::UInt16, "integer"),
            (DataType::UInt32, "bigint"),
            (DataType::UInt64, "numeric(20,0)"),
            (DataType::Float32, "real"),
            (DataType::Float64, "double precision"),
            (DataType::Decimal128(38, 9), "numeric(38,9)"),
            (DataType::LargeUtf8, "text"),
            (DataType::FixedSizeBinary(8), "bytea"),
            (DataType::Date64, "date"),
            (DataType::Time64(TimeUnit::Nanosecond), "time"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "timestamptz",
            ),
            (DataType::Timestamp(TimeUnit::Second, None), "timestamp"),
            (DataType::Interval(IntervalUnit::MonthDayNano), "interval"),
            (DataType::List(item(DataType::Utf8)), "text[]"),
            (
                DataType::List(item(DataType::List(item(DataType::Int64)))),
                "jsonb",
            ),
            (
                DataType::Struct(Fields::from(vec![Field::new("a", DataType::Int64, true)])),
                "jsonb",
            ),
        ];
        for (data_type, expected) in cases {
            assert_eq!(of(data_type.clone()), expected, "{data_type}");
        }
        for (extension, expected) in [
            (Extension::Uuid, "uuid"),
            (Extension::Json, "jsonb"),
            (Extension::Inet, "inet"),
            (Extension::Mac, "macaddr"),
        ] {
            assert_eq!(
                column_type(&Column::extension("c", extension)).unwrap(),
                expected
            );
        }
        let err = column_type(&Column::new("u", DataType::Null)).unwrap_err();
        assert!(
            err.message.contains("column `u` has Arrow type Null"),
            "{err}"
        );
    }
}
